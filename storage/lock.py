"""One writer per output folder: the lock a run holds in ``--output`` while it runs.

A run takes ``DIR/_LOCK`` before it touches anything else in ``DIR`` and keeps it until it has
finished (the leading underscore keeps it out of ``pyarrow.parquet.read_table(DIR)``). A
second run on the same folder refuses to start (exit status 2, one line naming the holder:
host, pid, start time), so it neither scores the same URIs again nor removes the first run's
folder as "a run that did not finish".

- Local folders: ``flock`` on ``DIR/_LOCK``, which holds the holder's record. The kernel
  releases it when the holding process ends, however it ends, so a killed run's lock is free
  at once (a process id reused since cannot fool it) and a live run's lock is never taken.
- s3:// and gs://: ``DIR/_LOCK`` is created with a conditional write (S3 ``If-None-Match: *``,
  GCS ``ifGenerationMatch=0``), refreshed every ``REFRESH_SECONDS`` with a write conditional
  on the version this run wrote last (S3 ``If-Match``, GCS ``ifGenerationMatch``), and
  deleted the same way at the end. A lock whose holder is gone is taken over (again a
  conditional write): at once when the holder ran on this host and its process no longer
  exists, otherwise once it has not been refreshed for ``STALE_SECONDS``. Before writing,
  the lock is always read first, so a server that ignores the conditions (the GCS emulator
  does) still refuses a run that starts while another one runs.
- Other filesystems (hdfs://, azfs://, ...): the same record and rules through Beam's
  FileSystems, read-then-write (not atomic against two runs starting in the same instant).

This module holds the protocol (the holder's record, the rules above, the refresh thread); each
store's reads and conditional writes are in ``storage/lock_stores.py``.

``--break-lock`` takes the lock whatever its state, for the operator who knows its holder is gone.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import socket
import threading
import time
import uuid

from .filesystems import FileSystems
from .layout import LOCK_FILE
from .lock_stores import Store, object_store
from .options import StorageOptions
from .results_folder import OutputDirError

REFRESH_SECONDS = 30.0
STALE_SECONDS = 300.0

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    return started is None or _process_start(pid) in (None, started)


@dataclasses.dataclass
class Holder:
    host: str
    pid: int
    started_at: str
    refreshed_at: str
    token: str
    process_start: str | None = None

    @classmethod
    def this_process(cls) -> "Holder":
        now = _now()
        return cls(socket.gethostname(), os.getpid(), now, now, uuid.uuid4().hex, _process_start(os.getpid()))

    @classmethod
    def parse(cls, data: bytes) -> "Holder | None":
        try:
            record = json.loads(data)
            return cls(**{f.name: record.get(f.name) for f in dataclasses.fields(cls)})
        except (ValueError, TypeError, AttributeError):
            return None

    def encode(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode() + b"\n"

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, started at {self.started_at}, last refreshed at {self.refreshed_at}"

    def gone(self) -> str | None:
        """Why this holder is gone, or ``None`` while it may still be running."""
        if self.host == socket.gethostname() and not _alive(self.pid, self.process_start):
            return f"its process {self.pid} on this host no longer exists"
        try:
            age = time.time() - datetime.datetime.fromisoformat(self.refreshed_at).timestamp()
        except (TypeError, ValueError):
            return "its record is unreadable"
        if age > STALE_SECONDS:
            return f"not refreshed for {age:.0f} s"
        return None


class LockHeld(OutputDirError):
    """Another run holds the output folder."""


def _held(path: str, holder: Holder | None) -> LockHeld:
    who = holder.describe() if holder else "a run that is just starting"
    return LockHeld(f"{path}: another run is writing to this output folder ({who}); wait for it to finish, "
                    f"or use --break-lock if that run is gone")


class _LocalLock:
    def __init__(self, path: str):
        self.path = path
        self._fd = None

    def acquire(self, record: Holder, break_lock: bool) -> None:
        import fcntl

        if break_lock and os.path.exists(self.path):
            os.remove(self.path)  # a holder still alive keeps its lock on the removed file only
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = Holder.parse(os.pread(fd, 4096, 0))
                os.close(fd)
                raise _held(self.path, holder) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a file that its holder removed while releasing it
                break
            os.close(fd)
        earlier = Holder.parse(os.pread(fd, 4096, 0))
        if earlier:
            log.info("took over the lock of %s: that run ended without releasing it", earlier.describe())
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        self._fd = fd

    def refresh(self, record: Holder) -> bool:
        return True  # the kernel holds it while this process lives

    def release(self) -> None:
        if self._fd is not None:
            os.remove(self.path)
            os.close(self._fd)  # closing releases the flock
            self._fd = None


class _ObjectLock:
    """The lock as one object, written with conditions on its version (see the module doc)."""

    def __init__(self, path: str, store: Store):
        self.path = path
        self._store = store
        self._version = None

    def acquire(self, record: Holder, break_lock: bool) -> None:
        for _ in range(5):
            current = self._store.read()
            if current is None:
                version = self._store.create(record.encode())
            else:
                holder = Holder.parse(current[0])
                why = "--break-lock" if break_lock else holder.gone() if holder else "its record is unreadable"
                if not why:
                    raise _held(self.path, holder)
                log.info("taking over the lock of %s (%s)", holder.describe() if holder else "?", why)
                version = self._store.replace(record.encode(), current[1])
            if version is None:
                continue  # another run wrote it in between: look again
            confirmed = self._store.read()
            if confirmed and (holder := Holder.parse(confirmed[0])) and holder.token == record.token:
                self._version = confirmed[1]
                return
        current = self._store.read()
        raise _held(self.path, Holder.parse(current[0]) if current else None)

    def refresh(self, record: Holder) -> bool:
        version = self._store.replace(record.encode(), self._version)
        if version is None:
            return False
        self._version = version
        return True

    def release(self) -> None:
        if self._version is not None:
            self._store.delete(self._version)
            self._version = None


class OutputLock:
    """``with OutputLock(output, storage):`` holds ``output/_LOCK`` (see the module doc)."""

    def __init__(self, output: str, storage: StorageOptions | None = None, break_lock: bool = False):
        self.path = FileSystems.join(output, LOCK_FILE)
        self._output = output
        self._storage = storage or StorageOptions()
        self._break = break_lock
        self._record = Holder.this_process()
        self._lock = None
        self._stop = threading.Event()
        self._thread = None
        self.lost: str | None = None

    def __enter__(self) -> "OutputLock":
        try:
            if "://" not in self._output:
                self._lock = _LocalLock(self.path)
            else:
                self._lock = _ObjectLock(self.path, object_store(self.path, self._storage))
            self._lock.acquire(self._record, self._break)
        except LockHeld:
            raise
        except Exception as exc:  # no such bucket, access denied, the store unreachable
            raise OutputDirError(f"{self.path}: cannot take the output folder's lock: {type(exc).__name__}: {exc}"[:500]) from None
        self._thread = threading.Thread(target=self._keep, name="nsfw-scan-lock", daemon=True)
        self._thread.start()
        return self

    def _keep(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            self._record.refreshed_at = _now()
            try:
                kept = self._lock.refresh(self._record)
            except Exception as exc:  # the store unreachable for a while: try again next time
                log.warning("%s: could not refresh the lock: %s", self.path, exc)
                continue
            if not kept:
                self.lost = "another run took the lock over"
                log.error("%s: %s; this run will not remove or rewrite anything when it ends", self.path, self.lost)
                return

    def check(self) -> None:
        """Raise if the lock was lost: nothing may be removed or rewritten then."""
        if self.lost:
            raise LockHeld(f"{self.path}: {self.lost} while this run was going; its results are kept, "
                           f"but no earlier run was removed or rewritten")

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        if not self.lost:
            self._lock.release()
