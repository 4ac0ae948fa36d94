"""Read each image's bytes and preprocess it; every failure becomes a row, never an exception.

``LoadImage`` reads and decodes ahead: each element is handed to a pool of reading threads
shared by the worker process, and, once read, to a pool of decoding threads (one per core);
its output is emitted, in order, once ``ahead`` newer elements have been handed over (the rest
at the end of the bundle). Reads of remote objects (gs://, s3://, https://) wait on the
network, so many more of them overlap than there are cores (``reading.threads``), while
decoding, which needs a core, stays at one thread per core. Bytes read but not yet decoded are
capped per process (``reading.max_bytes_in_flight``): readers wait when the cap is reached.
Decoding then runs while the same worker thread is busy in the model downstream; Pillow, the
sockets and TensorFlow release the GIL for the heavy parts.
"""

from __future__ import annotations

import collections
import hashlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import apache_beam as beam
import numpy as np
from apache_beam.utils.windowed_value import WindowedValue

from ..model.runtime import cpu_threads
from ..model.preprocess import ImageError, load_image
from .filesystems import use_storage_options
from .manifests import NAMESPACE, Entry
from .read import ByteBudget, ReadPolicy, read_bytes
from .results import bad_line, base_row, fail

ERRORS = "errors"  # tag of the output that carries finished error rows

_pools: dict[tuple[str, int], ThreadPoolExecutor] = {}
_budgets: dict[int, ByteBudget] = {}
_pools_lock = threading.Lock()


def _pool(kind: str, threads: int) -> ThreadPoolExecutor:
    with _pools_lock:
        if (kind, threads) not in _pools:
            _pools[kind, threads] = ThreadPoolExecutor(threads, thread_name_prefix=f"nsfw-scan-{kind}")
        return _pools[kind, threads]


def decode_pool(threads: int | None) -> ThreadPoolExecutor | None:
    """This process's pool of decoding threads (``None``: one per core of the machine it runs
    on; 0: no pool, decode in the caller's thread). One pool per size, shared by all of the
    process's DoFn instances so that threads stay bounded per process."""
    if threads == 0:
        return None
    return _pool("decode", threads or cpu_threads())


def read_pool(threads: int) -> ThreadPoolExecutor | None:
    """This process's pool of reading threads (0: none, read in the decoding thread)."""
    return _pool("read", threads) if threads else None


def byte_budget(limit: int) -> ByteBudget:
    """This process's cap on bytes read but not yet decoded (one per limit, shared)."""
    with _pools_lock:
        return _budgets.setdefault(limit, ByteBudget(limit))


class _ReadsFiles(beam.DoFn):
    """Reads an image's bytes into a row: ``bytes`` and ``sha256`` set."""

    def __init__(self, loader: str, max_bytes: int, max_pixels: int, read_policy: ReadPolicy = ReadPolicy(),
                 storage: dict | None = None):
        self._loader = loader
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._policy = read_policy
        self._storage = storage  # see transforms/filesystems.py

    def setup(self):
        use_storage_options(self._storage)
        self._bytes_read = beam.metrics.Metrics.counter(NAMESPACE, "bytes_read")

    def _read_into(self, row: dict, budget: ByteBudget | None = None) -> bytes:
        data = read_bytes(row["uri"], self._max_bytes, self._policy, budget)
        row["bytes"] = len(data)
        row["sha256"] = hashlib.sha256(data).hexdigest()
        return data

    def _count(self, row: dict) -> None:
        # Beam's metrics live in the worker thread: counted there, never in a decoding thread.
        if row.get("bytes"):
            self._bytes_read.inc(row["bytes"])


def _failed(row: dict):
    """A finished error row, on the ``errors`` output."""
    return beam.pvalue.TaggedOutput(ERRORS, row)


class _ReadsAhead(_ReadsFiles):
    """Hands each element to a pool (``_submit``) and emits the results in order, once
    ``ahead`` newer elements have been handed over (the rest at the end of the bundle)."""

    _ahead = 64

    def start_bundle(self):
        self._pending = collections.deque()

    def process(self, element, window=beam.DoFn.WindowParam, timestamp=beam.DoFn.TimestampParam):
        future = self._submit(element)
        if future is None:
            yield from self._emit(self._now(element))
            return
        self._pending.append((future, timestamp, window))
        while len(self._pending) > self._ahead:
            yield from self._emit_oldest()

    def finish_bundle(self):
        while self._pending:
            yield from self._emit_oldest()

    def _emit_oldest(self):
        future, timestamp, window = self._pending.popleft()
        result = future.result()
        if isinstance(result, Future):  # read, then handed to a decoding thread
            result = result.result()
        for output in self._emit(result):
            if isinstance(output, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(output.tag, WindowedValue(output.value, timestamp, (window,)))
            else:
                yield WindowedValue(output, timestamp, (window,))

    def _read(self, entry: Entry, budget: ByteBudget | None = None) -> tuple[dict, bytes] | dict:
        """``(row, bytes)``, or a finished error row."""
        row = base_row(entry)
        if entry.error:
            return bad_line(row, entry.error)
        try:
            return row, self._read_into(row, budget)
        except ImageError as exc:
            return fail(row, exc.kind, exc.message)


class LoadImage(_ReadsAhead):
    """``Entry`` -> ``(row, array)`` on the main output, or a finished error row on ``errors``.

    ``decode_threads``: size of the process's decoding pool (see :func:`decode_pool`; resolved
    in ``setup``, on the worker); ``ahead``: how many elements may be in the pools per DoFn
    instance (at least a batch, so that the next batch decodes while this one is scored);
    ``read_threads``: size of the process's reading pool (0: each element is read in its
    decoding thread); ``max_bytes_in_flight``: the process's cap on bytes read and waiting to
    be decoded."""

    def __init__(self, loader: str, max_bytes: int, max_pixels: int,
                 decode_threads: int | None = 0, ahead: int = 64, read_policy: ReadPolicy = ReadPolicy(),
                 read_threads: int = 0, max_bytes_in_flight: int = 256 << 20, storage: dict | None = None):
        super().__init__(loader, max_bytes, max_pixels, read_policy, storage)
        self._threads = decode_threads
        self._ahead = ahead
        self._read_threads = read_threads
        self._max_in_flight = max_bytes_in_flight

    def setup(self):
        super().setup()
        self._pool = decode_pool(self._threads)
        self._readers = read_pool(self._read_threads) if self._pool else None
        self._budget = byte_budget(self._max_in_flight) if self._readers else None

    def _submit(self, element) -> Future | None:
        if self._pool is None:
            return None
        if self._readers is None:
            return self._pool.submit(self._now, element)
        return self._readers.submit(self._read_then_decode, element)

    def _emit(self, loaded: tuple[dict, np.ndarray] | dict):
        if isinstance(loaded, dict):
            self._count(loaded)
            yield _failed(loaded)
        else:
            self._count(loaded[0])
            yield loaded

    def _now(self, entry: Entry) -> tuple[dict, np.ndarray] | dict:
        """``(row, array)``, or a finished error row; reads and decodes in this thread."""
        read = self._read(entry)
        return read if isinstance(read, dict) else self._decode(*read)

    def _read_then_decode(self, entry: Entry) -> dict | Future:
        """Runs in a reading thread: the read's error row, or the future of its decoding."""
        read = self._read(entry, self._budget)
        return read if isinstance(read, dict) else self._pool.submit(self._decode_counted, *read)

    def _decode_counted(self, row: dict, data: bytes) -> tuple[dict, np.ndarray] | dict:
        try:
            return self._decode(row, data)
        finally:
            self._budget.release(len(data))

    def _decode(self, row: dict, data: bytes) -> tuple[dict, np.ndarray] | dict:
        row["loader"] = self._loader
        try:
            image = load_image(data, self._loader, self._max_pixels)
        except ImageError as exc:
            return fail(row, exc.kind, exc.message)
        row["width"], row["height"] = image.width, image.height
        return row, image.array


class HashFile(_ReadsAhead):
    """``Entry`` -> ``(sha256, (entry, size in bytes))`` without decoding (for content
    de-duplication), or a finished error row on ``errors``. ``read_threads``: reads overlap in
    the process's reading pool, ``ahead`` of them per DoFn instance (0 threads: read in the
    worker thread)."""

    def __init__(self, loader: str, max_bytes: int, max_pixels: int,
                 read_policy: ReadPolicy = ReadPolicy(), read_threads: int = 0, ahead: int = 64,
                 storage: dict | None = None):
        super().__init__(loader, max_bytes, max_pixels, read_policy, storage)
        self._read_threads = read_threads
        self._ahead = ahead

    def setup(self):
        super().setup()
        self._readers = read_pool(self._read_threads)

    def _submit(self, element) -> Future | None:
        return self._readers.submit(self._now, element) if self._readers else None

    def _now(self, entry: Entry) -> tuple[Entry, dict] | dict:
        read = self._read(entry)  # the bytes are dropped here: only the hash travels
        return read if isinstance(read, dict) else (entry, read[0])

    def _emit(self, hashed: tuple[Entry, dict] | dict):
        if isinstance(hashed, dict):
            self._count(hashed)
            yield _failed(hashed)
            return
        entry, row = hashed
        self._count(row)
        yield row["sha256"], (entry, row["bytes"])
