"""Read each image's bytes and preprocess it; every failure becomes a row, never an exception.

``LoadImage`` reads and decodes ahead: each element is handed to a small thread pool shared by
the worker process, and its output is emitted, in order, once ``ahead`` newer elements have
been handed over (the rest at the end of the bundle). Decoding then runs while the same worker
thread is busy in the model downstream, and remote reads (gs://, s3://) overlap each other;
Pillow, the Beam filesystems and TensorFlow release the GIL for the heavy parts.
"""

from __future__ import annotations

import collections
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import apache_beam as beam
import numpy as np
from apache_beam.utils.windowed_value import WindowedValue

from ..model.engines import cpu_threads
from ..model.preprocess import ImageError, load_image
from .filesystems import use_storage_options
from .manifests import NAMESPACE, Entry
from .read import read_bytes
from .results import base_row, finish

ERRORS = "errors"  # tag of the output that carries finished error rows

_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def decode_pool(threads: int | None) -> ThreadPoolExecutor | None:
    """This process's pool of decoding threads (``None``: one per core of the machine it runs
    on; 0: no pool, decode in the caller's thread). One pool per size, shared by all of the
    process's DoFn instances so that threads stay bounded per process."""
    if threads == 0:
        return None
    threads = threads or cpu_threads()
    with _pools_lock:
        if threads not in _pools:
            _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="nsfw-scan-decode")
        return _pools[threads]


class _ReadsFiles(beam.DoFn):
    """Reads an image's bytes into a row: ``bytes`` and ``sha256`` set."""

    def __init__(self, loader: str, max_bytes: int, max_pixels: int, model_id: str, storage: dict | None = None):
        self._loader = loader
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._model_id = model_id
        self._storage = storage  # see transforms/filesystems.py

    def setup(self):
        use_storage_options(self._storage)
        self._bytes_read = beam.metrics.Metrics.counter(NAMESPACE, "bytes_read")

    def _row(self, entry: Entry) -> dict:
        return base_row(entry.uri, entry.columns, self._loader, self._model_id)

    def _read_into(self, row: dict) -> bytes:
        data = read_bytes(row["uri"], self._max_bytes)
        row["bytes"] = len(data)
        row["sha256"] = hashlib.sha256(data).hexdigest()
        return data

    def _count(self, row: dict) -> None:
        # Beam's metrics live in the worker thread: counted there, never in a decoding thread.
        if row.get("bytes"):
            self._bytes_read.inc(row["bytes"])


def _failed(row: dict, error: str):
    return beam.pvalue.TaggedOutput(ERRORS, finish(row, decision="error", error=error))


class LoadImage(_ReadsFiles):
    """``Entry`` (or a row from ``HashFile``) -> ``(row, array)`` on the main output, or a
    finished error row on ``errors``.

    ``decode_threads``: size of the process's decoding pool (see :func:`decode_pool`; resolved
    in ``setup``, on the worker); ``ahead``: how many elements may be in the pool per DoFn instance (at least a
    batch, so that the next batch decodes while this one is scored)."""

    def __init__(self, loader: str, max_bytes: int, max_pixels: int, model_id: str,
                 decode_threads: int | None = 0, ahead: int = 64, storage: dict | None = None):
        super().__init__(loader, max_bytes, max_pixels, model_id, storage)
        self._threads = decode_threads
        self._ahead = ahead

    def setup(self):
        super().setup()
        self._pool = decode_pool(self._threads)

    def start_bundle(self):
        self._pending = collections.deque()

    def process(self, element, window=beam.DoFn.WindowParam, timestamp=beam.DoFn.TimestampParam):
        if self._pool is None:
            yield from self._emit(self._load(element))
            return
        self._pending.append((self._pool.submit(self._load, element), timestamp, window))
        while len(self._pending) > self._ahead:
            yield from self._emit_oldest()

    def finish_bundle(self):
        while self._pending:
            yield from self._emit_oldest()

    def _emit_oldest(self):
        future, timestamp, window = self._pending.popleft()
        for output in self._emit(future.result()):
            if isinstance(output, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(output.tag, WindowedValue(output.value, timestamp, (window,)))
            else:
                yield WindowedValue(output, timestamp, (window,))

    def _emit(self, loaded: tuple[dict, np.ndarray | str]):
        row, result = loaded
        self._count(row)
        yield _failed(row, result) if isinstance(result, str) else (row, result)

    def _load(self, element) -> tuple[dict, np.ndarray | str]:
        """``(row, array)``, or ``(row, error message)``; runs in a decoding thread."""
        if isinstance(element, Entry):
            row = self._row(element)
            if element.error:
                return row, element.error
        else:
            row = dict(element)
        try:
            image = load_image(self._read_into(row), self._loader, self._max_pixels)
        except ImageError as exc:
            return row, str(exc)
        row["width"], row["height"] = image.width, image.height
        return row, image.array


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
        finally:
            self._count(row)
        yield row["sha256"], row
