"""Read each image's bytes and preprocess it; every failure becomes a row, never an exception."""

from __future__ import annotations

import hashlib

import apache_beam as beam

from ..model.preprocess import ImageError, load_image
from .manifests import NAMESPACE, Entry
from .read import read_bytes
from .results import base_row, finish

ERRORS = "errors"  # tag of the output that carries finished error rows


class _ReadsFiles(beam.DoFn):
    """Reads an image's bytes into a row: ``bytes`` and ``sha256`` set, bytes counted."""

    def __init__(self, loader: str, max_bytes: int, max_pixels: int, model_id: str):
        self._loader = loader
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._model_id = model_id

    def setup(self):
        self._bytes_read = beam.metrics.Metrics.counter(NAMESPACE, "bytes_read")

    def _row(self, entry: Entry) -> dict:
        return base_row(entry.uri, entry.columns, self._loader, self._model_id)

    def _read_into(self, row: dict) -> bytes:
        data = read_bytes(row["uri"], self._max_bytes)
        self._bytes_read.inc(len(data))
        row["bytes"] = len(data)
        row["sha256"] = hashlib.sha256(data).hexdigest()
        return data


def _failed(row: dict, error: str):
    return beam.pvalue.TaggedOutput(ERRORS, finish(row, decision="error", error=error))


class LoadImage(_ReadsFiles):
    """``Entry`` (or a row from ``HashFile``) -> ``(row, array)`` on the main output, or a
    finished error row on ``errors``."""

    def process(self, element):
        if isinstance(element, Entry):
            row = self._row(element)
            if element.error:
                yield _failed(row, element.error)
                return
        else:
            row = dict(element)
        try:
            image = load_image(self._read_into(row), self._loader, self._max_pixels)
        except ImageError as exc:
            yield _failed(row, str(exc))
            return
        row["width"], row["height"] = image.width, image.height
        yield row, image.array


class HashFile(_ReadsFiles):
    """``Entry`` -> ``(sha256, row)`` without decoding (for content de-duplication), or a
    finished error row on ``errors``."""

    def process(self, entry: Entry):
        row = self._row(entry)
        if entry.error:
            yield _failed(row, entry.error)
            return
        try:
            self._read_into(row)
        except ImageError as exc:
            yield _failed(row, str(exc))
            return
        yield row["sha256"], row
