"""Servers on 127.0.0.1 that misbehave on purpose: an HTTP file server and a proxy in front of
an S3 server (moto), both injecting faults per path and counting the requests they get.

A fault is ``Fault(kind, times)``: the first ``times`` requests for the path get it (None: all
of them), the later ones are answered normally. Kinds: an HTTP status (``503``, ``429``,
``404``, ...), ``reset`` (connection closed with RST before any answer), ``truncate`` (the
headers promise the whole body, half of it comes, then the connection closes), ``slow`` (no
answer for ``slow_s``), ``drip`` (headers, then one byte every 0.1 s), ``endless`` (a body that
never ends), ``redirect`` (302 to ``location``).
"""

from __future__ import annotations

import collections
import dataclasses
import http.client
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

S3_ERRORS = {503: "SlowDown", 500: "InternalError", 429: "SlowDown", 403: "AccessDenied", 404: "NoSuchKey"}


@dataclasses.dataclass
class Fault:
    kind: str | int
    times: int | None = None
    location: str = ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that hang up on a slow or endless answer are the point


class FaultServer:
    """``files``: path -> bytes served directly; ``upstream``: (host, port) to forward to
    instead (a proxy). ``delay_s``: added before every answer (latency)."""

    def __init__(self, files: dict[str, bytes] | None = None, upstream: tuple[str, int] | None = None,
                 host: str = "127.0.0.1", slow_s: float = 5.0, delay_s: float = 0.0, tls=None):
        self.files = dict(files or {})
        self.upstream = upstream
        self.faults: dict[str, Fault] = {}
        self.requests: collections.Counter = collections.Counter()
        self.headers: dict[str, dict] = {}
        self.slow_s = slow_s
        self.delay_s = delay_s
        self._lock = threading.Lock()
        self._server = _Server((host, 0), self._handler())
        if tls is not None:  # an ssl.SSLContext: serve https
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            self.requests[path] += 1
            fault = self.faults.get(path)
            if fault is None or (fault.times is not None and self.requests[path] > fault.times):
                return None
            return fault

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(head=True)

            def do_GET(self):
                self._answer()

            def do_PUT(self):
                self._answer()

            def _answer(self, head=False):
                path = self.path.split("?", 1)[0]
                server.headers[path] = dict(self.headers)
                body_in = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = server._take_fault(path) if self.command in ("GET", "HEAD") else None
                if server.delay_s:
                    time.sleep(server.delay_s)
                if fault is not None and fault.kind == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if fault is not None and fault.kind == "slow":
                    time.sleep(server.slow_s)
                if fault is not None and isinstance(fault.kind, int):
                    return self._status(fault.kind)
                if fault is not None and fault.kind == "redirect":
                    self.send_response(302)
                    self.send_header("Location", fault.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault is not None and fault.kind == "endless":
                    return self._endless()
                status, headers, body = self._fetch(path, body_in)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                if head:
                    return
                if fault is not None and fault.kind == "truncate" and status == 200:
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if fault is not None and fault.kind == "drip" and status == 200:
                    for byte in body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.1)
                    return
                self.wfile.write(body)

            def _fetch(self, path, body_in):
                if server.upstream is None:
                    if path not in server.files:
                        return 404, [("Content-Length", "0")], b""
                    data = server.files[path]
                    return 200, [("Content-Type", "image/jpeg"), ("Content-Length", str(len(data)))], data
                upstream = http.client.HTTPConnection(*server.upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                    upstream.request(self.command, self.path, body=body_in or None, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    skip = ("connection", "transfer-encoding", "content-length", "keep-alive")
                    headers = [(k, v) for k, v in response.getheaders() if k.lower() not in skip]
                    length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
                    return response.status, headers + [("Content-Length", length or "0")], data
                finally:
                    upstream.close()

            def _status(self, status):
                body = b""
                if server.upstream is not None:  # an S3 error document
                    code = S3_ERRORS.get(status, "InternalError")
                    body = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                            f"<Message>injected</Message></Error>").encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _endless(self):
                self.send_response(200)
                if server.upstream is not None:  # S3: a huge declared length, streamed forever
                    self.send_header("Content-Length", str(1 << 40))
                else:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"\xff" * 65536
                framed = chunk if server.upstream is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk)
                try:
                    while True:
                        self.wfile.write(framed)
                except OSError:
                    self.close_connection = True

        return Handler


class MotoS3:
    """moto's S3 server on 127.0.0.1 (a free port), with a bucket; ``put`` stores objects."""

    KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}

    def __init__(self, bucket: str = "uploads"):
        from moto.server import ThreadedMotoServer

        self.bucket = bucket
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)

    def __enter__(self):
        import boto3

        self._server.start()
        self.host, self.port = self._server.get_host_and_port()
        self.client = boto3.session.Session().client("s3", endpoint_url=f"http://{self.host}:{self.port}", **self.KEYS)
        self.client.create_bucket(Bucket=self.bucket)
        return self

    def __exit__(self, *exc):
        self._server.stop()

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"


def tls_files(directory, name: str) -> tuple[str, str]:
    """A self-signed certificate for the host ``name`` and its key, as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = f"{directory}/{name}.pem", f"{directory}/{name}.key"
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def s3_flags(endpoint: str) -> list[str]:
    """Beam's S3 options for an endpoint, as flags."""
    return [f"--s3_endpoint_url={endpoint}", "--s3_access_key_id=testing", "--s3_secret_access_key=testing",
            "--s3_region_name=us-east-1"]


if __name__ == "__main__":  # a latency proxy for benchmarks/remote_read.py: faults.py UPSTREAM_PORT DELAY_MS
    import sys

    with FaultServer(upstream=("127.0.0.1", int(sys.argv[1])), delay_s=float(sys.argv[2]) / 1000) as proxy:
        print(proxy.port, flush=True)
        threading.Event().wait()
