"""Remote reads against servers on 127.0.0.1 that fail on purpose (tests/support/faults.py): an HTTP
server, and a proxy in front of moto's S3 server. Transient faults are retried and end scored;
permanent ones end at once as one error row; the address guard refuses private addresses
before any request and re-checks every redirect."""

from __future__ import annotations

import io
import ipaddress
import socket
import ssl
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from nsfw_scan.model.errors import Unscorable
from nsfw_scan.pipeline.config import ConfigError, load_config
from nsfw_scan.storage import http_reading
from nsfw_scan.storage.filesystems import FileSystems, HttpFileSystem
from nsfw_scan.storage.http_reading import BlockedAddress, HttpSettings, is_blocked
from nsfw_scan.storage.options import StorageOptions, applied
from nsfw_scan.storage.read import ReadPolicy, read_bytes
from nsfw_scan.transforms.manifest_formats import records, resolve
from nsfw_scan.transforms.manifest_plan import plan_manifests
from support.faults import Fault, FaultServer, MotoS3, s3_flags, tls_files

LOOPBACK = ("127.0.0.0/8",)
# S3 reads time out after 1 s (the proxy's "slow" answers take 1.5 s), http(s) ones after 0.5 s
POLICY = ReadPolicy(attempts=4, backoff_s=0.02, max_wait_s=5, timeout_s=1.0)
HTTP = HttpSettings(LOOPBACK, timeout_s=0.5)
LIMIT = 1 << 20


def photo(seed: int) -> bytes:
    """A small JPEG of smooth colour fields and noise, different for every seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:192, 0:256]
    base = np.stack([x * rng.uniform(0.3, 1), y * rng.uniform(0.3, 1.3), (x + y) * rng.uniform(0.2, 0.5)], -1)
    pixels = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


# fault -> (requests the server sees, outcome: "ok" or the error kind)
MATRIX = [
    (None, 1, "ok"),
    (Fault(503, 2), 3, "ok"),
    (Fault(429, 1), 2, "ok"),
    (Fault(500, 3), 4, "ok"),
    (Fault("reset", 2), 3, "ok"),
    (Fault("truncate", 2), 3, "ok"),
    (Fault("slow", 1), 2, "ok"),
    (Fault(503), 4, "read_error"),
    (Fault("reset"), 4, "read_error"),
    (Fault("truncate"), 4, "read_error"),
    (Fault("slow"), 4, "timeout"),
    (Fault("endless"), 1, "too_large"),
    (Fault(404), 1, "not_found"),
    (Fault(403), 1, "read_error"),
]
HTTP_ONLY = [
    (Fault("drip"), 4, "timeout"),
    (Fault(410), 1, "not_found"),
]


def outcome(uri: str, expected: bytes, policy: ReadPolicy = POLICY, http: HttpSettings = HTTP) -> str:
    try:
        data = read_bytes(uri, LIMIT, policy, http)
    except Unscorable as exc:
        return exc.kind
    assert data == expected
    return "ok"


@pytest.fixture
def web():
    with FaultServer({"/a.jpg": photo(1)}, slow_s=1.5) as server:
        yield server


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server, a fault proxy in front of it, and Beam's S3 options pointing at the
    proxy (set in this process, as a pipeline run sets them)."""
    before = applied()
    with MotoS3() as store, FaultServer(upstream=(store.host, store.port), slow_s=1.5) as proxy:
        StorageOptions.from_beam_args(s3_flags(proxy.url(""))).apply()
        proxy.store = store
        # one read first: the process's S3 client and the server's first answer cost more than
        # a read, and the tests count the requests each read makes
        assert read_bytes(store.put("warm-up.jpg", photo(0)), LIMIT, POLICY, HTTP)
        yield proxy
    before.apply()


@pytest.mark.parametrize("fault, requests, expected", MATRIX + HTTP_ONLY, ids=str)
def test_http_fault(web, fault, requests, expected):
    if fault:
        web.faults["/a.jpg"] = fault
    started = time.monotonic()
    assert outcome(web.url("/a.jpg"), web.files["/a.jpg"]) == expected
    assert web.requests["/a.jpg"] == requests
    assert time.monotonic() - started < 10  # a hanging server costs timeouts, not the run


@pytest.mark.parametrize("fault, requests, expected", MATRIX, ids=str)
def test_s3_fault(s3, fault, requests, expected):
    key = f"fault-{abs(hash(str(fault)))}.jpg"
    data = photo(2)
    uri = s3.store.put(key, data)
    if fault:
        s3.faults[f"/uploads/{key}"] = fault
    assert outcome(uri, data) == expected
    assert s3.requests[f"/uploads/{key}"] == requests


def test_s3_missing_object_is_not_found_at_once(s3):
    assert outcome("s3://uploads/no-such-key.jpg", b"") == "not_found"
    assert s3.requests["/uploads/no-such-key.jpg"] == 1


def test_retries_stop_at_the_total_wait(web):
    web.faults["/a.jpg"] = Fault(503)
    patient = ReadPolicy(attempts=50, backoff_s=0.2, max_wait_s=1.0)
    started = time.monotonic()
    assert outcome(web.url("/a.jpg"), b"", patient) == "read_error"
    assert time.monotonic() - started < 2.5
    assert 2 <= web.requests["/a.jpg"] < 10


def test_user_agent_names_the_job(web):
    outcome(web.url("/a.jpg"), web.files["/a.jpg"])
    assert web.headers["/a.jpg"]["User-Agent"].startswith("nsfw-scan/")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.1", "[::ffff:127.0.0.1]", "0.0.0.0"])
def test_guard_refuses_loopback_without_sending_anything(web, host):
    closed = HttpSettings()  # the default: no network opened
    assert outcome(f"http://{host}:{web.port}/a.jpg", b"", ReadPolicy(backoff_s=0.02), closed) == "blocked_address"
    assert web.requests["/a.jpg"] == 0


def test_guard_checks_every_redirect(web):
    """The first server is allowed and redirects to a second loopback address that is not;
    the second server never sees a request."""
    with FaultServer({"/b.jpg": photo(3)}, host="127.0.0.2") as other:
        web.faults["/a.jpg"] = Fault("redirect", location=other.url("/b.jpg"))
        narrow = HttpSettings(("127.0.0.1/32",))
        assert outcome(web.url("/a.jpg"), b"", ReadPolicy(backoff_s=0.02), narrow) == "blocked_address"
        assert other.requests["/b.jpg"] == 0
        assert outcome(web.url("/a.jpg"), other.files["/b.jpg"]) == "ok"  # both allowed: followed
        assert other.requests["/b.jpg"] == 1


def test_redirect_loop_ends(web):
    web.faults["/a.jpg"] = Fault("redirect", location="/a.jpg")
    assert outcome(web.url("/a.jpg"), b"") == "read_error"
    assert web.requests["/a.jpg"] == HTTP.max_redirects + 1


def test_connects_to_the_address_it_checked(web, monkeypatch):
    """A resolver that answers an allowed address first and another one after (DNS
    rebinding): the request goes to the first, and the name is asked for only once."""
    with FaultServer({"/a.jpg": b"other"}, host="127.0.0.2") as other:
        answers = iter(["127.0.0.1", "127.0.0.2"])
        real = socket.getaddrinfo

        def rebinding(host, port, *args, **kwargs):
            if host == "uploads.example":
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        narrow = HttpSettings(("127.0.0.1/32",))
        assert outcome(f"http://uploads.example:{web.port}/a.jpg", web.files["/a.jpg"], ReadPolicy(backoff_s=0.02),
                       narrow) == "ok"
        assert web.headers["/a.jpg"]["Host"] == f"uploads.example:{web.port}"
        assert other.requests["/a.jpg"] == 0


def test_https_checks_the_certificate_against_the_url_host(tmp_path, monkeypatch):
    """TLS goes to the pinned address but verifies the URL's host name; an untrusted
    certificate is a permanent read_error (not retried)."""
    cert, key = tls_files(tmp_path, "uploads.example")
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(cert, key)
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: real(
        "127.0.0.1" if host == "uploads.example" else host, port, *a, **k))
    with FaultServer({"/a.jpg": photo(4)}, tls=served) as server:
        url = f"https://uploads.example:{server.port}/a.jpg"
        untrusted = outcome(url, b"")
        assert untrusted == "read_error" and server.requests["/a.jpg"] == 0
        trusting = ssl.create_default_context(cafile=cert)
        monkeypatch.setattr(http_reading, "_TLS", trusting)
        assert outcome(url, server.files["/a.jpg"]) == "ok"
        assert outcome(f"https://127.0.0.1:{server.port}/a.jpg", b"") == "read_error"  # name mismatch
        assert server.requests["/a.jpg"] == 1


@pytest.mark.parametrize("address, blocked", [
    ("169.254.169.254", True), ("10.1.2.3", True), ("172.16.0.1", True), ("192.168.0.1", True),
    ("127.0.0.1", True), ("0.0.0.0", True), ("100.64.0.1", True), ("224.0.0.1", True),
    ("240.0.0.1", True), ("255.255.255.255", True), ("::1", True), ("::", True), ("fe80::1", True),
    ("fc00::1", True), ("ff02::1", True), ("::ffff:10.0.0.1", True), ("::ffff:169.254.169.254", True),
    ("2002:a00:1::", True), ("2001:db8::1", True), ("64:ff9b::a9fe:a9fe", True), ("64:ff9b::808:808", False),
    ("8.8.8.8", False), ("151.101.1.140", False), ("2606:4700:4700::1111", False), ("::ffff:8.8.8.8", False),
])
def test_address_classes(address, blocked):
    assert is_blocked(ipaddress.ip_address(address)) == blocked


def test_unsupported_scheme_names_the_right_fix():
    with pytest.raises(Unscorable) as ftp:
        read_bytes("ftp://example.com/a.jpg", LIMIT)
    assert ftp.value.kind == "unsupported_scheme" and "[gcp]" not in ftp.value.message
    assert "https://" in ftp.value.message


def test_beam_filesystems_open_http_with_the_guard_on(web):
    with pytest.raises(BlockedAddress):
        FileSystems.open(web.url("/a.jpg"))
    assert web.requests["/a.jpg"] == 0


def test_manifest_over_http(web, monkeypatch):
    monkeypatch.setattr(HttpFileSystem, "settings", HttpSettings(LOOPBACK))
    web.files["/lists/today.txt"] = b"# uploads\n../a.jpg\nhttps://cdn.example/b.jpg\n"
    plan = plan_manifests([web.url("/lists/today.txt")])
    assert plan.files == (web.url("/lists/today.txt"),)
    uris = [record.uri for record in records(plan.files[0]) if record.skipped is None]
    assert [resolve(u, plan.files[0]) for u in uris] == [web.url("/a.jpg"), "https://cdn.example/b.jpg"]


@pytest.mark.parametrize("text", ["reading:\n  attempts: 0\n", "reading:\n  timeout_s: 0\n",
                                  "reading:\n  threads: -1\n", "http:\n  allow_networks: [intranet]\n",
                                  "http:\n  allow_networks: 10.0.0.0/8\n", "http:\n  max_redirects: -1\n"])
def test_bad_reading_config_is_refused(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(str(path))


def test_reading_config_is_the_read_policy(tmp_path):
    """The ``reading`` and ``http`` sections are the objects reads are made with."""
    path = tmp_path / "intranet.yaml"
    path.write_text("reading:\n  attempts: 2\n  timeout_s: 5\n  threads: 100\n"
                    "http:\n  allow_networks: [10.20.0.0/16]\n  timeout_s: 3\n")
    config = load_config(str(path))
    assert config.reading == ReadPolicy(attempts=2, timeout_s=5.0, threads=100)
    assert config.http == HttpSettings(("10.20.0.0/16",), timeout_s=3.0)
    assert config.reading.connections == 100 and load_config(None).reading.connections == 64
    assert load_config(None).http.allow_networks == ()


@pytest.mark.slow
def test_job_over_faulty_servers_one_row_per_uri_with_the_right_scores(tmp_path, s3, web):
    """A local-runner job over S3 and HTTP URIs with faults: every URI gives exactly one row,
    transiently failing ones are scored like their local copies, the rest are classified."""
    from nsfw_scan.pipeline.run import run

    images = {name: photo(10 + i) for i, name in enumerate(["p0", "p1", "p2", "p3", "p4", "p5"])}
    local = {}
    for name, data in images.items():
        (tmp_path / f"{name}.jpg").write_bytes(data)
        local[name] = str(tmp_path / f"{name}.jpg")
    s3_faults = {"p0": None, "p1": Fault(503, 2), "p2": Fault("reset", 1), "p3": Fault("truncate", 1),
                 "p4": Fault("slow", 1), "p5": Fault(503)}
    expected_kind = {}
    uris = []
    for name, fault in s3_faults.items():
        uri = s3.store.put(f"job/{name}.jpg", images[name])
        if fault:
            s3.faults[f"/uploads/job/{name}.jpg"] = fault
        uris.append(uri)
        expected_kind[uri] = ("read_error", None) if name == "p5" else (None, name)
    for name, fault in {"p0": Fault(503, 1), "p1": Fault("truncate", 2), "p2": Fault(404)}.items():
        web.files[f"/{name}.jpg"] = images[name]
        web.faults[f"/{name}.jpg"] = fault
        uris.append(web.url(f"/{name}.jpg"))
        expected_kind[uris[-1]] = ("not_found", None) if name == "p2" else (None, name)
    uris.append("http://169.254.169.254/latest/meta-data/iam")
    expected_kind[uris[-1]] = ("blocked_address", None)
    uris.append(s3.store.put("job/gone.jpg", b"x")[:-len("gone.jpg")] + "never-uploaded.jpg")
    expected_kind[uris[-1]] = ("not_found", None)
    manifest = tmp_path / "backlog.txt"
    manifest.write_text("\n".join(list(local.values()) + uris + uris[:3]) + "\n")  # duplicates too
    config = tmp_path / "faults.yaml"
    config.write_text("reading:\n  backoff_s: 0.02\n  timeout_s: 0.5\n  threads: 8\n"
                      "http:\n  allow_networks: ['127.0.0.0/8']\n  timeout_s: 0.5\n")

    started = time.monotonic()
    run(["--manifest", str(manifest), "--output", str(tmp_path / "out"), "--config", str(config),
         *s3_flags(s3.url(""))])
    assert time.monotonic() - started < 300
    rows = pq.read_table(tmp_path / "out").to_pylist()
    assert sorted(r["uri"] for r in rows) == sorted(set(local.values()) | set(uris))  # exactly one row each
    row = {r["uri"]: r for r in rows}
    for uri, (kind, same_as) in expected_kind.items():
        if kind:
            assert row[uri]["decision"] == "error" and row[uri]["error_kind"] == kind, (uri, row[uri])
        else:
            assert row[uri]["error"] is None, (uri, row[uri])
            assert abs(row[uri]["score"] - row[local[same_as]]["score"]) < 1e-6, uri
            assert row[uri]["sha256"] == row[local[same_as]]["sha256"]
    assert s3.requests["/uploads/job/p5.jpg"] == 4  # always failing: every attempt, then one row
    assert s3.requests["/uploads/job/p1.jpg"] == 3


def test_score_command_reads_urls_with_the_configured_guard(tmp_path, web):
    """``nsfw-scan score`` in its own process: the URL (refused by default, see above) is
    scored like its local copy once the config opens loopback; a 503 on the way is retried."""
    import json

    from support.cli import nsfw_scan

    copy = tmp_path / "a.jpg"
    copy.write_bytes(web.files["/a.jpg"])
    config = tmp_path / "loopback.yaml"
    config.write_text("reading:\n  backoff_s: 0.02\nhttp:\n  allow_networks: ['127.0.0.0/8']\n")
    web.faults["/a.jpg"] = Fault(503, 1)
    opened = nsfw_scan("score", "--config", config, web.url("/a.jpg"), copy)
    assert opened.returncode == 0, opened.stderr
    url_line, local_line = map(json.loads, opened.stdout.splitlines())
    assert url_line["error"] is None and url_line["score"] == local_line["score"]
    assert web.requests["/a.jpg"] == 2


def test_blocked_urls_are_named_at_the_end_with_the_flag_that_reads_them_again(tmp_path, web):
    """Loopback URLs are refused by default; the run says which rows may pass and how. Once the
    config opens the network, the same command says so again (nothing new to score); with
    --rescore-errors they are scored and replace their error rows."""
    import json

    from support.cli import nsfw_scan

    for name in ("b", "c"):
        web.files[f"/{name}.jpg"] = photo(ord(name))
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    manifest.write_text("".join(web.url(f"/{name}.jpg") + "\n" for name in ("a", "b", "c")))
    first = nsfw_scan("run", "--manifest", manifest, "--output", out)
    assert first.returncode == 1 and "every one of the 3 rows this run wrote is an error" in first.stderr, first.stderr
    assert "retryable      3 error rows of this run may pass if read again (blocked_address 3)" in first.stdout
    assert "open the network in http.allow_networks" in first.stdout and "--rescore-errors" in first.stdout
    assert json.loads((out / "_SUMMARY.json").read_text())["retryable"] == {"blocked_address": 3}

    config = tmp_path / "intranet.yaml"
    config.write_text("http:\n  allow_networks: ['127.0.0.0/8']\n")
    again = nsfw_scan("run", "--manifest", manifest, "--output", out, "--config", config)
    assert again.returncode == 0, again.stderr
    assert "retryable      3 error rows of earlier runs may pass if read again (blocked_address 3)" in again.stdout
    assert "then run the same command with --rescore-errors" in again.stdout

    healed = nsfw_scan("run", "--manifest", manifest, "--output", out, "--config", config, "--rescore-errors")
    assert healed.returncode == 0, healed.stderr
    assert "retryable" not in healed.stdout
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 3 and all(r["error"] is None and r["score"] is not None for r in rows), rows
