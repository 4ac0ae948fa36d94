"""One GET per ``s3://`` image, with bounded timeouts and no retries of its own.

Beam's S3 filesystem builds a new boto3 client for every file it opens, asks for the object's
metadata before reading it (two round trips per image), and retries inside itself (botocore's
attempts times Beam's seven, from 5 s apart), so one object that keeps failing holds a thread
for many minutes. Images are small and read whole, so ``storage/read.py`` reads them here
instead: one shared client per process, made from the storage options applied in it (the
``S3Options`` Beam's filesystem uses, ``storage/clients.py``), one GET, socket timeouts, and
failures translated to the types ``storage/http_reading.py`` uses, so that ``read.py``'s retries
decide for both.
Manifests and results still go through Beam's filesystem.
"""

from __future__ import annotations

import io

from .deadline import Deadline
from .http_reading import HttpStatusError, IncompleteBody
from .worker import once_per_process

CHUNK = 64 << 10


def _client(timeout_s: float, connections: int):
    """This process's client for the storage options applied in it (those Beam's S3 filesystem
    uses too), one per distinct S3 settings, timeout and pool size. (Those options are Beam's:
    imported here, at the first s3:// read, so that reading local files needs no Beam.)"""
    from .clients import s3_client
    from .options import applied

    options = applied()
    s3 = tuple(item for item in options.given if item[0].startswith("s3_"))
    return once_per_process(("s3 client", s3, timeout_s, connections),
                            lambda: s3_client(options, timeout_s, connections))


def _translated(exc: Exception, uri: str) -> Exception:
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = exc.response.get("Error", {}).get("Code", "")
        if status == 404 or code in ("NoSuchKey", "NoSuchBucket", "404"):
            return FileNotFoundError(f"no such object: {uri}")
        return HttpStatusError(status, f"{uri} ({code})")
    if isinstance(exc, (bx.ReadTimeoutError, bx.ConnectTimeoutError)):
        return TimeoutError(f"{uri}: {exc}")
    if isinstance(exc, (bx.IncompleteReadError, bx.ResponseStreamingError)):
        return IncompleteBody(f"{uri}: {exc}")
    if isinstance(exc, (bx.HTTPClientError, bx.ConnectionError)):
        return ConnectionError(f"{uri}: {exc}")
    return exc


class S3Body(io.RawIOBase):
    """An object's body; ``size`` is its Content-Length, and a body that ends short of it
    raises :class:`IncompleteBody`."""

    def __init__(self, uri: str, body, size: int, deadline: Deadline):
        self._uri, self._body, self.size, self._deadline = uri, body, size, deadline
        self._received = 0

    def readable(self):
        return True

    def readinto(self, buffer) -> int:
        self._deadline.left()
        try:
            data = self._body.read(min(len(buffer), CHUNK))
        except Exception as exc:
            raise _translated(exc, self._uri) from None
        buffer[:len(data)] = data
        self._received += len(data)
        if not data and self._received < self.size:
            raise IncompleteBody(f"{self._uri}: body ended after {self._received} of {self.size} bytes")
        return len(data)

    def close(self):
        if not self.closed:
            self._body.close()
        super().close()


def open_object(uri: str, deadline: Deadline, connections: int = 64) -> S3Body:
    """GET the object; ``deadline`` bounds the whole answer (and each socket wait)."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    try:
        response = _client(deadline.seconds, connections).get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise _translated(exc, uri) from None
    return S3Body(uri, response["Body"], response["ContentLength"], deadline)
