"""Real object stores on 127.0.0.1 for the tests: moto's standalone S3 server and
gcp-storage-emulator, each started on a free port by a fixture and stopped after. The job's
own processes (launcher, ``nsfw-scan`` subprocesses, worker-pool workers) reach them over the
network, as they would reach S3 or GCS."""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

BIN = Path(sys.executable).parent

# Nothing may look for a cloud metadata server (these also reach the job's subprocesses).
NO_METADATA = {"NO_GCE_CHECK": "true", "GCE_METADATA_HOST": "127.0.0.1:1", "GCE_METADATA_IP": "127.0.0.1:1"}
os.environ.update(NO_METADATA)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(command: list[str], url: str, log: Path, env: dict | None = None) -> subprocess.Popen:
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{command[0]} exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return proc
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"{command[0]} did not answer at {url}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclasses.dataclass
class Store:
    """A bucket on a store, and how the job is told about the store."""

    scheme: str
    bucket: str
    flags: list[str]  # Beam flags for nsfw-scan run / score / report
    env: dict  # environment for processes that talk to it
    client: object

    def uri(self, key: str) -> str:
        return f"{self.scheme}://{self.bucket}/{key}"

    def put(self, key: str, data: bytes) -> str:
        if self.scheme == "s3":
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        else:
            self.client.bucket(self.bucket).blob(key).upload_from_string(data)
        return self.uri(key)

    def get(self, key: str) -> bytes:
        if self.scheme == "s3":
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return self.client.bucket(self.bucket).blob(key).download_as_bytes()

    def keys(self, prefix: str) -> list[str]:
        if self.scheme == "s3":
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            return sorted(o["Key"] for page in pages for o in page.get("Contents", []))
        return sorted(b.name for b in self.client.list_blobs(self.bucket, prefix=prefix))


_buckets = iter(range(10**6))


def s3_store(endpoint: str) -> Store:
    import boto3

    flags = ["--s3_endpoint_url", endpoint, "--s3_access_key_id", "testing", "--s3_secret_access_key", "testing",
             "--s3_region_name", "us-east-1"]
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
    bucket = f"uploads-{next(_buckets)}"
    client.create_bucket(Bucket=bucket)
    return Store("s3", bucket, flags, {}, client)


def gcs_store(endpoint: str) -> Store:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    # the job reaches the emulator through the standard variable, in every process
    os.environ["STORAGE_EMULATOR_HOST"] = endpoint
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    bucket = f"uploads-{next(_buckets)}"
    client.create_bucket(bucket)
    return Store("gs", bucket, [], {"STORAGE_EMULATOR_HOST": endpoint}, client)


def image_bytes(i: int, size=(96, 80), fmt="PNG") -> bytes:
    """A small distinct image (a colour gradient per ``i``), made here."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:size[1], 0:size[0]]
    pixels = np.stack([(x * (i + 3)) % 256, (y * (2 * i + 5)) % 256, ((x + y) * (i + 1)) % 256], -1)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype("uint8")).save(buffer, format=fmt)
    return buffer.getvalue()


def rows(store, output_key: str) -> list[dict]:
    """Every result row in the bucket's output folder, read with the store's own client."""
    parts = [k for k in store.keys(output_key + "/run-") if k.rsplit("/", 1)[-1].startswith("part-")]
    tables = [pq.read_table(io.BytesIO(store.get(k))) for k in parts]
    return pa.concat_tables(tables).to_pylist() if tables else []


def one_row_per_uri(store, output_key: str) -> dict[str, dict]:
    found = rows(store, output_key)
    uris = [r["uri"] for r in found]
    assert len(uris) == len(set(uris)), "one row per URI"
    return {r["uri"]: r for r in found}


def counts(summary: dict) -> tuple[int, int, int]:
    return summary["manifest_rows"], summary["rows"], summary["scored"]
