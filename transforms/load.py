"""Read each image's bytes and preprocess it; every failure becomes a row, never an exception.

``Loading`` reads and decodes (no Beam): each entry is handed to a pool of reading threads
shared by the process, and, once read, to a pool of decoding threads (one per core). Reads of
remote objects (gs://, s3://, https://) wait on the network, so many more of them overlap than
there are cores (``reading.threads``), while decoding, which needs a core, stays at one thread
per core. Bytes read but not yet decoded are capped per process
(``reading.max_bytes_in_flight``): readers wait when the cap is reached. ``Ahead`` takes the
results back in order with a bounded number in flight. The DoFns ``LoadImage`` and
``HashFile`` and ``nsfw-scan score`` are built on the two: decoding runs while the worker
thread is busy in the model downstream; Pillow, the sockets and TensorFlow release the GIL
for the heavy parts."""

from __future__ import annotations

import collections
import hashlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import apache_beam as beam
from apache_beam.utils.windowed_value import WindowedValue

from ..model.preprocess import EXACT_LOADER, YAHOO_ONLY, ImageError, View, ViewPolicy, load_image
from ..model.runtime import cpu_threads
from ..storage.httpfs import HttpSettings
from ..storage.options import StorageOptions
from ..storage.read import ByteBudget, ReadPolicy, read_bytes
from ..storage.schema import Column
from . import metrics
from .manifests import Entry
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


class Ahead:
    """Work handed to pools, taken back in the order it was handed over, with at most ``limit``
    pieces in flight: the one read-ahead of the job and of ``nsfw-scan score``. A piece's result
    may itself be a future (read in the reading pool, then handed to the decoding pool)."""

    def __init__(self, limit: int):
        self._limit = limit
        self._pending = collections.deque()

    def add(self, future: Future, context=None):
        """Hands one piece over; yields ``(result, context)`` of the oldest beyond the limit."""
        self._pending.append((future, context))
        while len(self._pending) > self._limit:
            yield self._oldest()

    def drain(self):
        """``(result, context)`` of every piece still in flight, in order."""
        while self._pending:
            yield self._oldest()

    def _oldest(self):
        future, context = self._pending.popleft()
        result = future.result()
        if isinstance(result, Future):
            result = result.result()
        return result, context


class Loading:
    """Reading and preprocessing of manifest entries in this process's pools (no Beam here): a
    result is ``(row, views)`` (``row`` with ``bytes``, ``sha256``, ``width``, ``height``,
    ``loader``, ``frames`` and ``views`` set; ``views``: the file's ``model.preprocess.View``
    list, Yahoo's first) or a finished error row. ``views``: which views are made
    (``model.preprocess.ViewPolicy``).

    ``reading``: retries and timeouts of each read, and the size of the process's reading pool
    (``threads``; 0: each entry is read in its decoding thread) and its cap on bytes read and
    waiting to be decoded (``max_bytes_in_flight``); ``http``: how http(s) URLs are fetched;
    ``decode_threads``: size of the process's decoding pool (see :func:`decode_pool`). Pools
    are taken in :meth:`start`, in the process that loads (a DoFn's ``setup``, on the worker)."""

    def __init__(self, loader: str, max_bytes: int, max_pixels: int, reading: ReadPolicy = ReadPolicy(),
                 http: HttpSettings = HttpSettings(), decode_threads: int | None = 0,
                 views: ViewPolicy = YAHOO_ONLY):
        self._loader = loader
        self._views = views
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._reading = reading
        self._http = http
        self._threads = decode_threads
        self._pool = self._readers = self._budget = None

    @property
    def exact(self) -> bool:
        """Whether this is Yahoo's exact preprocessing."""
        return self._loader == EXACT_LOADER

    def start(self) -> "Loading":
        self._pool = decode_pool(self._threads)
        self._readers = read_pool(self._reading.threads)
        self._budget = byte_budget(self._reading.max_bytes_in_flight) if self._readers and self._pool else None
        return self

    def __getstate__(self):  # pickled without this process's pools
        return dict(self.__dict__, _pool=None, _readers=None, _budget=None)

    # reading and decoding
    def submit(self, entry: Entry) -> Future | None:
        """The future of ``load(entry)`` in the pools; ``None`` without a decoding pool."""
        if self._pool is None:
            return None
        if self._readers is None:
            return self._pool.submit(self.load, entry)
        return self._readers.submit(self._read_then_decode, entry)

    def load(self, entry: Entry) -> tuple[dict, tuple[View, ...]] | dict:
        """Reads and decodes in this thread."""
        read = self.read(entry)
        return read if isinstance(read, dict) else self._decode(*read)

    def _read_then_decode(self, entry: Entry) -> dict | Future:
        """Runs in a reading thread: the read's error row, or the future of its decoding."""
        read = self.read(entry, self._budget)
        return read if isinstance(read, dict) else self._pool.submit(self._decode_counted, *read)

    def _decode_counted(self, row: dict, data: bytes) -> tuple[dict, tuple[View, ...]] | dict:
        try:
            return self._decode(row, data)
        finally:
            self._budget.release(len(data))

    def _decode(self, row: dict, data: bytes) -> tuple[dict, tuple[View, ...]] | dict:
        try:
            image = load_image(data, self._loader, self._max_pixels, self._views)
        except ImageError as exc:  # never decoded: no loader ran to its end
            return fail(row, exc.kind, exc.message)
        row[Column.LOADER] = self._loader
        row[Column.WIDTH], row[Column.HEIGHT] = image.width, image.height
        row[Column.FRAMES], row[Column.VIEWS] = image.frames, len(image.views)
        return row, image.views

    # reading only (content de-duplication hashes first)
    def submit_hash(self, entry: Entry) -> Future | None:
        """The future of ``hash(entry)`` in the reading pool; ``None`` without one."""
        return self._readers.submit(self.hash, entry) if self._readers else None

    def hash(self, entry: Entry) -> tuple[Entry, dict] | dict:
        """``(entry, row)`` with the row's ``bytes`` and ``sha256`` set, or a finished error row;
        the bytes themselves are dropped here: only the hash travels."""
        read = self.read(entry)
        return read if isinstance(read, dict) else (entry, read[0])

    def read(self, entry: Entry, budget: ByteBudget | None = None) -> tuple[dict, bytes] | dict:
        """``(row, bytes)``, or a finished error row."""
        row = base_row(entry)
        if entry.error:
            return bad_line(row, entry.error)
        try:
            data = read_bytes(entry.uri, self._max_bytes, self._reading, self._http, budget)
        except ImageError as exc:
            if exc.kind == "empty":  # read, and known: no bytes
                row[Column.BYTES], row[Column.SHA256] = 0, hashlib.sha256(b"").hexdigest()
            return fail(row, exc.kind, exc.message)
        row[Column.BYTES] = len(data)
        row[Column.SHA256] = hashlib.sha256(data).hexdigest()
        return row, data


def _failed(row: dict):
    """A finished error row, on the ``errors`` output."""
    return beam.pvalue.TaggedOutput(ERRORS, row)


class _LoadsAhead(beam.DoFn):
    """Hands each entry to ``Loading`` in this process's pools and emits the results in order,
    once ``ahead`` newer entries have been handed over (the rest at the end of the bundle)."""

    def __init__(self, loading: Loading, ahead: int, storage: StorageOptions | None = None):
        self._loading = loading
        self._limit = ahead
        self._storage = storage  # see storage/options.py

    @property
    def exact(self) -> bool:
        """Whether it loads with Yahoo's exact preprocessing."""
        return self._loading.exact

    def setup(self):
        if self._storage is not None:
            self._storage.apply()
        self._loading.start()
        self._bytes_read = metrics.counter(metrics.BYTES_READ)

    def start_bundle(self):
        self._ahead = Ahead(self._limit)

    def process(self, entry: Entry, window=beam.DoFn.WindowParam, timestamp=beam.DoFn.TimestampParam):
        future = self._submit(entry)
        if future is None:
            yield from self._emit(self._now(entry))
            return
        for result, (timestamp, window) in self._ahead.add(future, (timestamp, window)):
            yield from self._windowed(result, timestamp, window)

    def finish_bundle(self):
        for result, (timestamp, window) in self._ahead.drain():
            yield from self._windowed(result, timestamp, window)

    def _windowed(self, result, timestamp, window):
        for output in self._emit(result):
            if isinstance(output, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(output.tag, WindowedValue(output.value, timestamp, (window,)))
            else:
                yield WindowedValue(output, timestamp, (window,))

    def _count(self, row: dict) -> None:
        # Beam's metrics live in the worker thread: counted there, never in a pool's thread.
        if row.get(Column.BYTES):
            self._bytes_read.inc(row[Column.BYTES])


def view_key(row: dict, index: int, view: View, count: int) -> tuple:
    """The key of one view of a file with several: ``(uri, index, name, count, row)``, the row
    carried by the first view only (the others need only be matched to it)."""
    return row[Column.URI], index, view.name, count, row if index == 0 else None


class LoadImage(_LoadsAhead):
    """``Entry`` -> ``(row, pixels)`` on the main output for a file with one view (``pixels``:
    ``View.pixels``, uint8), one ``(view_key, pixels)`` per view for a file with several, or a
    finished error row on ``errors``. ``ahead``: how many entries may be in the pools per DoFn
    instance (at least a batch, so that the next batch decodes while this one is scored)."""

    def _submit(self, entry: Entry) -> Future | None:
        return self._loading.submit(entry)

    def _now(self, entry: Entry):
        return self._loading.load(entry)

    def _emit(self, loaded: tuple[dict, tuple[View, ...]] | dict):
        if isinstance(loaded, dict):
            self._count(loaded)
            yield _failed(loaded)
            return
        row, views = loaded
        self._count(row)
        # uint8 pixels travel to the model, a quarter of the float input's size
        if len(views) == 1:
            yield row, views[0].pixels
            return
        for index, view in enumerate(views):
            yield view_key(row, index, view, len(views)), view.pixels


class HashFile(_LoadsAhead):
    """``Entry`` -> ``(sha256, (entry, size in bytes))`` without decoding (for content
    de-duplication), or a finished error row on ``errors``; reads overlap in the process's
    reading pool, ``ahead`` of them per DoFn instance (no reading pool: in the worker thread)."""

    def _submit(self, entry: Entry) -> Future | None:
        return self._loading.submit_hash(entry)

    def _now(self, entry: Entry):
        return self._loading.hash(entry)

    def _emit(self, hashed: tuple[Entry, dict] | dict):
        if isinstance(hashed, dict):
            self._count(hashed)
            yield _failed(hashed)
            return
        entry, row = hashed
        self._count(row)
        yield row[Column.SHA256], (entry, row[Column.BYTES])
