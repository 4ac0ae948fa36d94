"""Read each image's bytes and preprocess it, in this process's pools (no Beam here); every
failure becomes a ``Failure``, never an exception.

``Loading`` reads and decodes: each entry is handed to a pool of reading threads
shared by the process, and, once read, to a pool of decoding threads (one per core). Reads of
remote objects (gs://, s3://, https://) wait on the network, so many more of them overlap than
there are cores (``reading.threads``), while decoding, which needs a core, stays at one thread
per core. Bytes read but not yet decoded are capped per process
(``reading.max_bytes_in_flight``): readers wait when the cap is reached. ``Ahead`` takes the
results back in order with a bounded number in flight. The DoFns ``LoadImage`` and
``HashFile`` (``transforms/load_steps.py``) and ``nsfw-scan score`` are built on the two: decoding
runs while the worker thread is busy in the model downstream; Pillow, the sockets and
TensorFlow release the GIL for the heavy parts."""

from __future__ import annotations

import collections
import logging
from concurrent.futures import Future, ThreadPoolExecutor

from threadpoolctl import threadpool_limits

from ..model.errors import Unscorable
from ..model.hash_list import Match, Matching
from ..model.pictures.preprocess import EXACT_LOADER, load_image
from ..model.pictures.views import YAHOO_ONLY, ViewPolicy
from ..model.pictures.yahoo_steps import View
from ..model.scorer import cpu_threads
from ..storage.http_reading import HttpSettings
from ..storage.read import ByteBudget, ReadPolicy, read_bytes
from ..storage.worker import once_per_process
from .elements import Entry, Failure, Image, Loaded, Read
from .known_content import hash_list, nearest
from .results import bad_line_error

_log = logging.getLogger(__name__)


def _pool(kind: str, threads: int) -> ThreadPoolExecutor:
    return once_per_process((f"{kind} pool", threads),
                            lambda: ThreadPoolExecutor(threads, thread_name_prefix=f"nsfw-scan-{kind}"))


def decode_pool(threads: int | None) -> ThreadPoolExecutor | None:
    """This process's pool of decoding threads (``None``: one per core of the machine it runs
    on; 0: no pool, decode in the caller's thread). One pool per size, shared by all of the
    process's DoFn instances so that threads stay bounded per process."""
    if threads == 0:
        return None
    return _pool("decode", threads or cpu_threads())


def one_blas_thread() -> None:
    """Keeps numpy's BLAS (OpenBLAS, in the hashing's and the luma's matrix products) to the
    calling thread, once per process. Its own pool would claim every core again on top of the
    decoding pool's threads and TensorFlow's, and its threads spin while they wait. Measured on
    2 cores (benchmarks/cpu_profile.py), on 90 files, where the hashing's solve for each new
    side length weighs most: the hashing cost 5.5 ms of CPU per image with OpenBLAS's pool and
    0.5 ms without. On 1,035 files the steady state did not move measurably."""
    once_per_process("one BLAS thread", lambda: threadpool_limits(limits=1, user_api="blas"))


def read_pool(threads: int) -> ThreadPoolExecutor | None:
    """This process's pool of reading threads (0: none, read in the decoding thread)."""
    return _pool("read", threads) if threads else None


def byte_budget(limit: int) -> ByteBudget:
    """This process's cap on bytes read but not yet decoded (one per limit, shared)."""
    return once_per_process(("byte budget", limit), lambda: ByteBudget(limit))


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
    result is a :class:`Loaded` (the file's facts and its views, ``model.pictures.yahoo_steps.View``,
    Yahoo's first) or a :class:`Failure`. ``views``: which views are made
    (``model.pictures.views.ViewPolicy``).

    ``reading``: retries and timeouts of each read, and the size of the process's reading pool
    (``threads``; 0: each entry is read in its decoding thread) and its cap on bytes read and
    waiting to be decoded (``max_bytes_in_flight``); ``http``: how http(s) URLs are fetched;
    ``decode_threads``: size of the process's decoding pool (see :func:`decode_pool`);
    ``matching``: the hash list each decoded file's views are matched against
    (``model.hash_list.Matching``). Pools and the list are taken in :meth:`start`, in the
    process that loads (a DoFn's ``setup``, on the worker)."""

    def __init__(self, loader: str, max_bytes: int, max_pixels: int, reading: ReadPolicy = ReadPolicy(),
                 http: HttpSettings = HttpSettings(), decode_threads: int | None = 0,
                 views: ViewPolicy = YAHOO_ONLY, matching: Matching = Matching()):
        self._loader = loader
        self._matching = matching
        self._views = views
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._reading = reading
        self._http = http
        self._threads = decode_threads
        self._pool = self._readers = self._budget = self._hashes = None

    @property
    def exact(self) -> bool:
        """Whether this is Yahoo's exact preprocessing."""
        return self._loader == EXACT_LOADER

    def start(self) -> "Loading":
        one_blas_thread()
        self._pool = decode_pool(self._threads)
        self._readers = read_pool(self._reading.threads)
        self._budget = byte_budget(self._reading.max_bytes_in_flight) if self._readers and self._pool else None
        self._hashes = hash_list(self._matching) if self._matching.list else None
        return self

    def __getstate__(self):  # pickled without this process's pools and hash list
        return dict(self.__dict__, _pool=None, _readers=None, _budget=None, _hashes=None)

    # reading and decoding
    def submit(self, entry: Entry) -> Future | None:
        """The future of ``load(entry)`` in the pools; ``None`` without a decoding pool."""
        if self._pool is None:
            return None
        if self._readers is None:
            return self._pool.submit(self.load, entry)
        return self._readers.submit(self._read_then_decode, entry)

    def load(self, entry: Entry) -> Loaded | Failure:
        """Reads and decodes in this thread."""
        try:
            data = self._read(entry)
        except Exception as exc:
            return Failure.of(entry, _unscorable(exc, entry, "reading"))
        return self._decode(Read.of(entry, data), data)

    def _read_then_decode(self, entry: Entry) -> Failure | Future:
        """Runs in a reading thread (the bytes hashed here too, off the decoding threads): the
        read's failure, or the future of its decoding."""
        try:
            data = self._read(entry, self._budget)
        except Exception as exc:
            return Failure.of(entry, _unscorable(exc, entry, "reading"))
        return self._pool.submit(self._decode_counted, Read.of(entry, data), data)

    def _decode_counted(self, read: Read, data: bytes) -> Loaded | Failure:
        try:
            return self._decode(read, data)
        finally:
            self._budget.release(len(data))

    def _decode(self, read: Read, data: bytes) -> Loaded | Failure:
        """The file's views and facts; a failure on the way (decoding, hashing, matching) is the
        file's ``Failure``: never decoded, no loader ran to its end."""
        try:
            image = load_image(data, self._loader, self._max_pixels, self._views)
            facts = Image(read, self._loader, image.width, image.height, image.frames, image.scored,
                          *self._match(image.views))
        except Exception as exc:
            return Failure.of(read.entry, _unscorable(exc, read.entry, "decoding"), read)
        return Loaded(facts, tuple(image.views))

    def _match(self, views: tuple[View, ...]) -> tuple[Match | None, bool | None]:
        """The nearest listed hash to any view's (the earliest view's of equals), and whether any
        view's hash was good enough to be matched; ``(None, None)`` without a list."""
        if self._hashes is None:
            return None, None
        trusted = [view.pdq.hex for view in views if view.pdq and view.pdq.quality >= self._matching.min_quality]
        return nearest(self._hashes, trusted), bool(trusted)

    # reading only (content de-duplication hashes first)
    def submit_hash(self, entry: Entry) -> Future | None:
        """The future of ``hash(entry)`` in the reading pool; ``None`` without one."""
        return self._readers.submit(self.hash, entry) if self._readers else None

    def hash(self, entry: Entry) -> Read | Failure:
        """The file's size and sha256; the bytes themselves are dropped here."""
        try:
            return Read.of(entry, self._read(entry))
        except Exception as exc:
            return Failure.of(entry, _unscorable(exc, entry, "reading"))

    def _read(self, entry: Entry, budget: ByteBudget | None = None) -> bytes:
        """The entry's bytes; a malformed line or a failed read raises :class:`Unscorable`."""
        if entry.error:
            raise bad_line_error(entry)
        return read_bytes(entry.uri, self._max_bytes, self._reading, self._http, budget)


def _unscorable(exc: Exception, entry: Entry, doing: str) -> Unscorable:
    """What a failure while ``doing`` (reading, decoding) one file makes of that file: its own
    :class:`Unscorable` as it is; running out of memory ``too_large``; anything else, which no
    step expected, an error of its stage (``read_error``, ``undecodable``) whose message names
    the exception, logged with its traceback. One file's row, never its batch's or the job's."""
    if isinstance(exc, Unscorable):
        return exc
    if isinstance(exc, MemoryError):
        return Unscorable("too_large", f"not enough memory for {doing} the file")
    _log.warning("unexpected failure while %s %r", doing, entry.uri, exc_info=exc)
    kind = "read_error" if doing == "reading" else "undecodable"
    return Unscorable(kind, f"{doing} failed unexpectedly: {type(exc).__name__}: {str(exc)[:300]}")
