"""Reading one image's bytes from any filesystem Beam knows (local, gs://, s3://, http(s)://, ...).

Remote reads fail for a moment now and then (503 SlowDown, connection resets, bodies cut
short) and some never answer. :func:`read_bytes` tries each read up to ``attempts`` times,
waiting with jittered exponential backoff (``backoff_s``, doubling) but never more than
``max_wait_s`` in all, and only for transient failures: 408, 429 and 5xx answers, resets and
refused connections, timeouts and bodies shorter than their Content-Length. Permanent answers
(404, 403, a refused address, a file over the byte limit) end the read at once. Each try has a
timeout (``timeout_s``: connecting, every socket read, and the whole answer); after the last
try the error kind says what happened (``timeout``, ``read_error``, ...).

Local paths are opened directly, ``s3://`` images are read with one GET each
(``storage/s3read.py``), ``http(s)://`` by ``storage/http_reading.py``, and everything else through
Beam's ``FileSystems.open`` (``storage/filesystems.py``), imported at its first use: reading
local files (``nsfw-scan score``) needs no Beam.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import random
import re
import threading
import time
import urllib.parse

from ..model.errors import Unscorable
from . import s3read
from .deadline import Deadline
from .http_reading import BlockedAddress, HttpSettings, HttpStatusError, open_url

CHUNK = 1 << 20
EXTRAS = {"gs": "gcp", "s3": "aws"}  # schemes whose Beam filesystem comes with an nsfw-scan extra


@dataclasses.dataclass(frozen=True)
class ReadPolicy:
    """Reading images' bytes: the ``reading`` section of the job's configuration
    (``configs/default.yaml`` explains each key). How hard to try a remote read (see the
    module's docstring; local files are read once), and how many reads a worker process
    overlaps (``threads``, ``max_bytes_in_flight``: used by ``transforms.read_and_decode.Loading``)."""

    threads: int = 32  # reading threads per worker process; 0: read in the decoding thread
    max_bytes_in_flight: int = 256 << 20  # read but not yet decoded, per worker process
    attempts: int = 4
    backoff_s: float = 0.5
    max_wait_s: float = 20.0
    timeout_s: float = 30.0  # s3:// and other remote schemes; http(s) uses HttpSettings.timeout_s

    @property
    def connections(self) -> int:
        """The per-process connection pool of the S3 client: at least one per reading thread."""
        return max(64, self.threads)

    def problems(self):
        """``(key, why)`` for each impossible value (the configuration names them)."""
        if (self.threads < 0 or self.max_bytes_in_flight < 1 or self.attempts < 1
                or min(self.backoff_s, self.max_wait_s) < 0 or self.timeout_s <= 0):
            yield "", ("need threads >= 0, max_bytes_in_flight >= 1, attempts >= 1, backoff_s and max_wait_s "
                       ">= 0, timeout_s > 0")


class ByteBudget:
    """Bytes of read-but-not-yet-decoded images a process holds at once: ``acquire`` waits
    until they fit under ``limit`` (one image always fits, however large)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._changed = threading.Condition()

    def acquire(self, n: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self.used == 0 or self.used + n <= self.limit)
            self.used += n

    def release(self, n: int) -> None:
        with self._changed:
            self.used -= n
            self._changed.notify_all()


_SCHEME = re.compile(r"([a-zA-Z][-a-zA-Z0-9+.]*)://")  # as Beam's FileSystems.get_scheme reads a URI


def scheme_of(uri: str) -> str | None:
    """The URI's scheme as Beam's ``FileSystems`` takes it; ``None`` for a local path."""
    match = _SCHEME.match(uri.strip())
    return match.group(1) if match else None


_URL_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")  # what http.client refuses in a URL
_NEEDS_HOST = ("http", "https", "s3", "gs")


def never_readable(uri: str) -> Unscorable | None:
    """The ``bad_uri`` error of a URI that no attempt can ever read, before any is made: an
    http(s) URL with raw whitespace or control characters (unencoded, which no server receives),
    a URL of a scheme that needs a host or bucket without one or with a port that is not a
    number, a path with a NUL character."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else None
    if scheme is None:
        return Unscorable("bad_uri", "the path contains a NUL character") if "\0" in uri else None
    if scheme in ("http", "https"):
        bad = _URL_SPACE_OR_CONTROL.search(uri)
        if bad:
            what = "a space" if bad.group() == " " else f"the control character {bad.group()!r}"
            return Unscorable("bad_uri", f"the URL contains {what} at position {bad.start()}; "
                                         f"URLs must be percent-encoded (%20 for a space)")
    if scheme in _NEEDS_HOST:
        try:
            parts = urllib.parse.urlsplit(uri)
            host = parts.hostname if scheme in ("http", "https") else parts.netloc
            parts.port  # noqa: B018 (a port that is not a number raises)
        except ValueError as exc:  # a port that is not a number, an unbalanced [ of an IPv6 host
            return Unscorable("bad_uri", f"the URL cannot be parsed ({exc})")
        if not host:
            return Unscorable("bad_uri", f"the URL has no {'bucket' if scheme in ('s3', 'gs') else 'host'}")
    return None


def _failure(exc: Exception, uri: str) -> tuple[Unscorable, bool]:
    """The error row's kind and message for ``exc``, and whether another try may succeed."""
    text = f"{type(exc).__name__}: {exc}"[:300]
    if isinstance(exc, Unscorable):
        return exc, False
    if isinstance(exc, BlockedAddress):
        return Unscorable("blocked_address", str(exc)[:300]), False
    if isinstance(exc, FileNotFoundError):
        return Unscorable("not_found", "no such file"), False
    if isinstance(exc, IsADirectoryError):
        return Unscorable("not_a_file", "the path is a directory"), False
    if isinstance(exc, TimeoutError):  # socket timeouts included
        return Unscorable("timeout", str(exc)[:300] or "no answer within the timeout"), True
    if isinstance(exc, HttpStatusError):
        return Unscorable("read_error", str(exc)[:300]), exc.transient
    if isinstance(exc, http.client.InvalidURL):  # e.g. a port that is not a number
        return Unscorable("bad_uri", str(exc)[:300]), False
    if isinstance(exc, (ConnectionError, http.client.HTTPException)):  # resets, refusals, short bodies
        return Unscorable("read_error", text), True
    if isinstance(exc, ValueError) and "Unable to get filesystem" in str(exc):
        return _unsupported(uri), False
    code = getattr(exc, "code", None)  # google.api_core's errors and others carry the HTTP status
    if isinstance(code, int) and code == 404:
        return Unscorable("not_found", "no such file"), False
    if isinstance(code, int) and (code in (408, 429) or code >= 500):
        return Unscorable("read_error", text), True
    return Unscorable("read_error", text), False


def _unsupported(uri: str) -> Unscorable:
    scheme = scheme_of(uri) or uri
    if scheme in EXTRAS:
        hint = f"install its extra: pip install 'nsfw-scan[{EXTRAS[scheme]}]'"
    else:
        hint = "nsfw-scan reads local paths, gs://, s3://, http:// and https://, and any scheme of an installed Beam filesystem"
    return Unscorable("unsupported_scheme", f"no Beam filesystem for {scheme!r}; {hint}")


def _open(uri: str, policy: ReadPolicy, http: HttpSettings, deadline: Deadline):
    scheme = scheme_of(uri)
    if scheme is None:
        return open(uri, "rb"), False
    if scheme in ("http", "https"):
        return open_url(uri, http, deadline=deadline), True
    if scheme == "s3":
        try:
            return s3read.open_object(uri, deadline, policy.connections), True
        except ImportError:
            raise _unsupported(uri) from None
    from apache_beam.io.filesystem import CompressionTypes

    from .filesystems import FileSystems

    return FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED), scheme != "file"


def _read_once(uri: str, max_bytes: int, policy: ReadPolicy, http: HttpSettings, budget: ByteBudget | None) -> bytes:
    reserved = 0
    http_url = scheme_of(uri) in ("http", "https")
    deadline = Deadline(http.timeout_s if http_url else policy.timeout_s, uri)  # one per try
    try:
        f, remote = _open(uri, policy, http, deadline)
        with f:
            size = getattr(f, "size", None)
            if isinstance(size, int) and size > max_bytes:
                raise Unscorable("too_large", f"the file is larger than the limit of {max_bytes} bytes")
            if budget and isinstance(size, int):
                budget.acquire(size)
                reserved = size
            if not remote:
                data = f.read(max_bytes + 1)
            else:
                chunks, total = [], 0
                while total <= max_bytes:
                    deadline.left()
                    chunk = f.read(min(CHUNK, max_bytes + 1 - total))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    total += len(chunk)
                data = b"".join(chunks)
        if len(data) > max_bytes:
            raise Unscorable("too_large", f"the file is larger than the limit of {max_bytes} bytes")
        if budget:
            if len(data) > reserved:
                budget.acquire(len(data) - reserved)
            elif len(data) < reserved:
                budget.release(reserved - len(data))
            reserved = len(data)
        return data
    except BaseException:
        if budget and reserved:
            budget.release(reserved)
        raise


def read_bytes(uri: str, max_bytes: int, policy: ReadPolicy = ReadPolicy(), http: HttpSettings = HttpSettings(),
               budget: ByteBudget | None = None) -> bytes:
    """The file's bytes, as stored (never decompressed); failures are :class:`Unscorable`.
    ``policy``: retries and timeouts; ``http``: the address guard and timeout of http(s) URLs.

    With a ``budget``, the returned bytes are counted in it (the caller releases them). A URI
    that can never be read (:func:`never_readable`) is not tried at all."""
    error = never_readable(uri)
    if error is not None:
        raise error
    waited = 0.0
    for attempt in range(1, policy.attempts + 1):
        try:
            data = _read_once(uri, max_bytes, policy, http, budget)
        except Exception as exc:
            error, transient = _failure(exc, uri)
            delay = policy.backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
            if not transient or attempt == policy.attempts or waited + delay > policy.max_wait_s:
                if attempt > 1:
                    raise Unscorable(error.kind, f"{error.message} ({attempt} attempts)") from None
                if error.kind == "read_error" and scheme_of(uri) not in ("http", "https", "s3"):
                    error = _exists_or(error, uri)
                raise error from None
            time.sleep(delay)
            waited += delay
            continue
        if not data:
            raise Unscorable("empty", "the file has no bytes")
        return data
    raise AssertionError("unreachable")


def _exists_or(error: Unscorable, uri: str) -> Unscorable:
    """Filesystems raise their own types for a missing file; ask whether it exists."""
    try:
        if scheme_of(uri) is None:
            exists = os.path.exists(uri)
        else:
            from .filesystems import FileSystems

            exists = FileSystems.exists(uri)
    except Exception:
        exists = True
    return error if exists else Unscorable("not_found", "no such file")
