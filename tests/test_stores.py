"""Manifests, images and results in a bucket: S3 (moto's server) and GCS (gcp-storage-emulator),
both on 127.0.0.1, reached over the network by the job's own processes."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli import nsfw_scan
from stores import gcs_emulator, image_bytes, moto_server, store  # noqa: F401 (fixtures)
from nsfw_scan.pipeline.run import run


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


@pytest.mark.slow
def test_runs_in_a_bucket_keep_one_row_per_uri(store):
    images = [store.put(f"img/{i}.png", image_bytes(i)) for i in range(5)]
    late = store.uri("img/late.png")  # listed before it is uploaded
    manifest = store.put("manifests/m.txt", "\n".join(images[:3] + [late]).encode())
    out = store.uri("out")

    def job(*flags):
        return run(["--manifest", manifest, "--output", out, "--batch-size", "4", *store.flags, *flags])

    first = job()
    assert counts(first) == (4, 4, 3) and first["errors_by_kind"] == {"not_found": 1}
    again = job()
    assert counts(again) == (4, 0, 0) and again["already_done"] == 4
    assert len(one_row_per_uri(store, "out")) == 4

    store.put("manifests/m.txt", "\n".join(images + [late]).encode())  # two new uploads
    grown = job()
    assert counts(grown) == (6, 2, 2) and grown["already_done"] == 4

    store.put("img/late.png", image_bytes(9))
    rescored = job("--rescore-errors")
    assert counts(rescored) == (6, 1, 1)
    found = one_row_per_uri(store, "out")
    assert set(found) == set(images + [late]) and found[late]["error"] is None

    forced = job("--force")
    assert counts(forced) == (6, 6, 6)
    assert {k.split("/")[1] for k in store.keys("out/run-")} == {forced["results"].rsplit("/", 1)[-1]}
    assert len(one_row_per_uri(store, "out")) == 6
    assert not store.keys("out/_LOCK")  # released


def test_store_errors_stop_the_run(store, tmp_path):
    manifest = tmp_path / "m.txt"
    manifest.write_bytes(b"a.png\n")
    missing = f"{store.scheme}://no-such-bucket/out"
    result = nsfw_scan("run", "--manifest", manifest, "--output", missing, *store.flags)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{missing}/_LOCK: cannot take the output folder's lock: " in result.stderr

    from nsfw_scan.pipeline.filesystems import storage_from_beam_args
    from nsfw_scan.pipeline.output_dir import OutputDirError, result_files

    storage_from_beam_args(store.flags)
    assert result_files(store.uri("nothing-yet")) == []
    if store.scheme == "gs":  # (Beam's S3 listing reads a missing bucket as an empty one)
        with pytest.raises(OutputDirError, match=f"^cannot list {missing}/run-.*NotFound"):
            result_files(missing)


@pytest.mark.slow
def test_score_and_report_read_the_bucket(store, tmp_path):
    images = [store.put(f"img/{i}.png", image_bytes(i)) for i in range(3)]
    manifest = store.put("m.csv", ("uri,upload\n" + "".join(f"{u},u{i}\n" for i, u in enumerate(images))
                                   + f"{store.uri('gone.png')},u9\n").encode())
    env = {**os.environ, **store.env}
    scored = subprocess.run([sys.executable, "-m", "nsfw_scan.pipeline.cli", "score", images[0], store.uri("gone.png"),
                             *store.flags], capture_output=True, text=True, env=env, timeout=600)
    assert scored.returncode == 1, scored.stderr
    lines = [json.loads(line) for line in scored.stdout.splitlines()]
    assert lines[0]["error"] is None and 0 <= lines[0]["score"] <= 1
    assert lines[1]["error"].startswith("not_found")

    policy = tmp_path / "policy.yaml"  # every score is "review" or "nsfw": all rows in the queue
    policy.write_text("thresholds: {safe_below: 0.0000001, nsfw_from: 0.5}\n")
    summary = run(["--manifest", manifest, "--output", store.uri("out"), "--config", str(policy), *store.flags])
    assert counts(summary) == (4, 4, 3)
    report = subprocess.run([sys.executable, "-m", "nsfw_scan.pipeline.cli", "report", store.uri("out"),
                             "--config", policy, *store.flags], capture_output=True, text=True, env=env, timeout=600)
    assert report.returncode == 0, report.stderr
    assert report.stdout.splitlines()[0].endswith("error 1") and "errors: not_found 1" in report.stdout
    queue = store.get("out/_report/review_queue.csv").decode().splitlines()
    assert queue[0].startswith('"uri","upload","score"') and len(queue) == 1 + 3
    assert store.get("out/_report/report.png").startswith(b"\x89PNG")

    elsewhere = subprocess.run([sys.executable, "-m", "nsfw_scan.pipeline.cli", "report", store.uri("out"),
                                "--report-dir", tmp_path / "rep", *store.flags],
                               capture_output=True, text=True, env=env, timeout=600)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert (tmp_path / "rep" / "review_queue.csv").is_file() and (tmp_path / "rep" / "report.png").is_file()


def _start_run(manifest: str, output: str, flags: list[str], env: dict, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nsfw_scan.pipeline.cli", "run", "--manifest", manifest,
                             "--output", output, "--batch-size", "2", *flags],
                            stdout=subprocess.DEVNULL, stderr=log, env=env)


def _wait_for(condition, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the first run ended early"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
def test_one_writer_at_a_time_and_a_killed_run_resumes(store, tmp_path):
    # enough images to keep the first run going while the second one starts (reading from S3
    # is slower: Beam's S3 filesystem makes a new client for every file)
    images = [store.put(f"img/{i}.png", image_bytes(i)) for i in range(80 if store.scheme == "s3" else 300)]
    manifest = store.put("m.txt", "\n".join(images).encode())
    env = {**os.environ, **store.env}
    with open(tmp_path / "first.log", "w") as log:
        first = _start_run(manifest, store.uri("out"), store.flags, env, log)
        try:
            _wait_for(lambda: store.keys("out/_LOCK"), first)  # it holds the folder
            second = nsfw_scan("run", "--manifest", manifest, "--output", store.uri("out"), *store.flags)
            assert second.returncode == 2, second.stderr
            line = [x for x in second.stderr.splitlines() if "another run is writing" in x]
            assert len(line) == 1 and f"pid {first.pid}, started at " in line[0]
            assert first.poll() is None, "the first run should still be going"
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=60)
        finally:
            first.kill()
    assert store.keys("out/_LOCK")  # a killed run cannot release its lock
    unfinished = {k.split("/")[1] for k in store.keys("out/run-")}

    third = nsfw_scan("run", "--manifest", manifest, "--output", store.uri("out"), *store.flags)
    assert third.returncode == 0, third.stderr
    assert "taking over the lock" in third.stderr and "no longer exists" in third.stderr
    assert not unfinished & {k.split("/")[1] for k in store.keys("out/run-")}  # its folder was removed
    assert set(one_row_per_uri(store, "out")) == set(images)
