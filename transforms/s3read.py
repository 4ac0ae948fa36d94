"""One GET per ``s3://`` image, with bounded timeouts and no retries of its own.

Beam's S3 filesystem builds a new boto3 client for every file it opens, asks for the object's
metadata before reading it (two round trips per image), and retries inside itself (botocore's
attempts times Beam's seven, from 5 s apart), so one object that keeps failing holds a thread
for many minutes. Images are small and read whole, so ``transforms/read.py`` reads them here
instead: one shared client per process, made from the same ``S3Options`` Beam's filesystem
uses (``FileSystems``' pipeline options), one GET, socket timeouts, and failures translated to
the types ``transforms/httpfs.py`` uses, so that ``read.py``'s retries decide for both.
Manifests and results still go through Beam's filesystem.
"""

from __future__ import annotations

import io
import threading
import time

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, S3Options
from apache_beam.options.value_provider import RuntimeValueProvider

from .httpfs import HttpStatusError, IncompleteBody

_clients: dict[tuple, object] = {}
_lock = threading.Lock()
CHUNK = 64 << 10


def _client(timeout_s: float, connections: int):
    import boto3
    from botocore.config import Config

    # What Beam's own S3 filesystem is given (FileSystems.get_filesystem does the same).
    options = FileSystems._pipeline_options or RuntimeValueProvider.runtime_options or {}
    if not isinstance(options, PipelineOptions):
        options = PipelineOptions.from_dictionary(dict(options))
    s3 = options.view_as(S3Options)
    settings = (s3.s3_access_key_id, s3.s3_secret_access_key, s3.s3_session_token, s3.s3_endpoint_url,
                s3.s3_disable_ssl, s3.s3_region_name, s3.s3_api_version, s3.s3_verify)
    key = settings + (timeout_s, connections)
    with _lock:
        if key not in _clients:
            _clients[key] = boto3.session.Session().client(
                "s3", region_name=s3.s3_region_name, api_version=s3.s3_api_version, use_ssl=not s3.s3_disable_ssl,
                verify=s3.s3_verify, endpoint_url=s3.s3_endpoint_url, aws_access_key_id=s3.s3_access_key_id,
                aws_secret_access_key=s3.s3_secret_access_key, aws_session_token=s3.s3_session_token,
                config=Config(connect_timeout=timeout_s, read_timeout=timeout_s, max_pool_connections=connections,
                              retries={"total_max_attempts": 1, "mode": "standard"}))
        return _clients[key]


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

    def __init__(self, uri: str, body, size: int, deadline: float):
        self._uri, self._body, self.size, self._deadline = uri, body, size, deadline
        self._received = 0

    def readable(self):
        return True

    def readinto(self, buffer) -> int:
        if time.monotonic() > self._deadline:
            raise TimeoutError(f"{self._uri}: the answer took longer than its timeout")
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


def open_object(uri: str, timeout_s: float, connections: int = 64) -> S3Body:
    bucket, _, key = uri[len("s3://"):].partition("/")
    deadline = time.monotonic() + timeout_s
    try:
        response = _client(timeout_s, connections).get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise _translated(exc, uri) from None
    return S3Body(uri, response["Body"], response["ContentLength"], deadline)
