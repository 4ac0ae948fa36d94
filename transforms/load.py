"""Read each image's bytes and preprocess it; every failure becomes a row, never an exception."""

from __future__ import annotations

import hashlib

import apache_beam as beam

from ..model.preprocess import ImageError, load_image
from .manifests import NAMESPACE, Entry
from .read import read_bytes
from .results import base_row, finish

ERRORS = "errors"  # tag of the output that carries finished error rows


class LoadImage(beam.DoFn):
    """``Entry`` -> ``(row, array)`` on the main output, or a finished error row on ``errors``."""

    def __init__(self, loader: str, max_bytes: int, max_pixels: int, model_id: str):
        self._loader = loader
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._model_id = model_id

    def setup(self):
        self._bytes_read = beam.metrics.Metrics.counter(NAMESPACE, "bytes_read")

    def process(self, entry: Entry):
        row = base_row(entry.uri, entry.columns, self._loader, self._model_id)
        if entry.error:
            yield beam.pvalue.TaggedOutput(ERRORS, finish(row, decision="error", error=entry.error))
            return
        try:
            data = read_bytes(entry.uri, self._max_bytes)
            self._bytes_read.inc(len(data))
            row["bytes"] = len(data)
            row["sha256"] = hashlib.sha256(data).hexdigest()
            image = load_image(data, self._loader, self._max_pixels)
        except ImageError as exc:
            yield beam.pvalue.TaggedOutput(ERRORS, finish(row, decision="error", error=str(exc)))
            return
        row["width"], row["height"] = image.width, image.height
        yield row, image.array
