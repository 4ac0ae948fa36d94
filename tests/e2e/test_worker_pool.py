"""Workers started the way Flink, Spark and Dataflow start them from a worker pool: Beam's
external worker pool (``python -m apache_beam.runners.worker.worker_pool_main``) and the portable
runner with ``--environment_type EXTERNAL``. Its workers are separate processes, in another
folder, that never see the launcher's process state."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from nsfw_scan.pipeline.run import run
from support.stores import BIN, counts, free_port, image_bytes, one_row_per_uri, stop


@pytest.fixture
def worker_pool(tmp_path):
    """Start a pool; returns a function giving its address, started with the environment of now."""
    pools = []

    def start(env: dict | None = None) -> str:
        port = free_port()
        folder = tmp_path / "pool"  # the workers run in a folder of their own
        folder.mkdir(exist_ok=True)
        log = open(folder / "pool.log", "wb")
        # the pool starts each worker as `python ...`: this environment's python
        environment = {**os.environ, **(env or {}), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        proc = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                                 "--service_port", str(port)], cwd=folder, env=environment,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        pools.append((proc, log))
        deadline = time.monotonic() + 60
        while True:  # until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return f"localhost:{port}"
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the worker pool did not start"
                time.sleep(0.2)

    yield start
    for proc, log in pools:
        stop(proc)
        log.close()


def external(address: str) -> list[str]:
    return ["--runner", "PortableRunner", "--job_endpoint", "embed", "--environment_type", "EXTERNAL",
            "--environment_config", address]


@pytest.mark.slow
def test_worker_pool_reads_and_writes_the_bucket(store, worker_pool):
    images = [store.put(f"img/{i}.png", image_bytes(i)) for i in range(6)]
    manifest = store.put("m.txt", "\n".join(images + [store.uri("img/gone.png")]).encode())
    address = worker_pool(store.env)
    summary = run(["--manifest", manifest, "--output", store.uri("out"), *store.flags, *external(address)])
    assert counts(summary) == (7, 7, 6) and summary["model_loads"] == 1
    assert summary["errors_by_kind"] == {"not_found": 1}
    assert set(one_row_per_uri(store, "out")) == set(images + [store.uri("img/gone.png")])
    again = run(["--manifest", manifest, "--output", store.uri("out"), *store.flags, *external(address)])
    assert counts(again) == (7, 0, 0) and again["already_done"] == 7


@pytest.mark.slow
def test_worker_pool_with_relative_local_paths(tmp_path, worker_pool, monkeypatch):
    job = tmp_path / "job"
    (job / "img").mkdir(parents=True)
    for i in range(3):
        (job / "img" / f"{i}.png").write_bytes(image_bytes(i))
    (job / "m.txt").write_text("img/0.png\nimg/1.png\nimg/2.png\n")  # relative to the manifest
    monkeypatch.chdir(job)
    summary = run(["--manifest", "m.txt", "--output", "out", *external(worker_pool())])
    assert counts(summary) == (3, 3, 3) and summary["model_loads"] == 1
    assert summary["output"] == "out"  # shown relative to the working folder, as given
    assert len(list((job / "out").glob("run-*/part-*.parquet"))) >= 1
