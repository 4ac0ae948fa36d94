"""The job on the real Flink and Spark clusters (``tests/support/clusters.py``) when a machine or
a worker is lost mid-run: a TaskManager, a Spark executor or the Python SDK workers killed with
SIGKILL while they score. The engine's own recovery (Flink's restart strategy, Spark's task
retries) finishes the job, and the run keeps one row per URI, nothing lost, nothing twice; where
the engine does not recover (a Flink cluster without a restart strategy), the run keeps what its
workers had made durable, says why and what to do, and the same command scores the rest."""

from __future__ import annotations

import importlib.resources
import json
import os
import signal
import subprocess
import time

import pyarrow.parquet as pq
import pytest

from support.clusters import start_flink
from support.jobs import durable_rows
from support.stores import image_bytes

pytestmark = [pytest.mark.slow, pytest.mark.engines, pytest.mark.xdist_group("engines")]

UPLOADS = 400


def uploads(folder, n: int = UPLOADS):
    images = folder / "img"
    images.mkdir()
    uris = []
    for i in range(n):
        path = images / f"{i}.png"
        path.write_bytes(image_bytes(i))
        uris.append(str(path))
    manifest = folder / "m.txt"
    manifest.write_text("\n".join(uris) + "\n")
    return manifest, uris


def start_job(cluster, manifest, out, *flags) -> subprocess.Popen:
    """``nsfw-scan run`` on the cluster with its packaged preset, rows made durable every 50 rows
    or 5 s, in the background (as the engines' environment runs it)."""
    preset = importlib.resources.files("nsfw_scan.configs") / f"{cluster.engine}.yaml"
    config = out.parent / f"{cluster.engine}.yaml"
    config.write_text(preset.read_text() + "checkpoint:\n  rows: 50\n  seconds: 5\n")
    return subprocess.Popen([cluster.python, "-m", "nsfw_scan.pipeline.cli", "run", "--manifest", str(manifest),
                             "--output", str(out), "--config", str(config), *cluster.flags, *map(str, flags)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_until_scoring(cluster, out, job: subprocess.Popen, timeout: float = 300) -> int:
    """Until the workers have made some rows durable, not all: the job is scoring. Returns them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job.poll() is not None:
            raise AssertionError(f"the job ended before it scored: {job.communicate()}\n{cluster.explain()}")
        if rows := durable_rows(out):
            assert rows < UPLOADS, "the kill is to come while the workers score"
            return rows
        time.sleep(0.2)
    raise AssertionError(f"no rows made durable within {timeout} s\n{cluster.explain()}")


def finished(job: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    try:
        out, err = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        raise
    return job.returncode, out, err


def one_row_each(out, uris) -> None:
    rows = pq.read_table(out).to_pylist()
    assert sorted(r["uri"] for r in rows) == sorted(uris), "one row per URI, every URI"
    assert all(r["score"] is not None for r in rows)


def test_a_lost_task_manager_costs_a_restart_and_nothing_else(flink_cluster, tmp_path):
    cluster = flink_cluster
    manifest, uris = uploads(tmp_path)
    out = tmp_path / "out"
    # the cluster has the restart strategy docs/runners.md recommends; an engine option of this job
    job = start_job(cluster, manifest, out, "--max_bundle_size", "64")
    wait_until_scoring(cluster, out, job)
    cluster.kill("taskmanager1")  # the machine is gone, and its Python workers with it
    cluster.start_worker("taskmanager3")  # its replacement, as Kubernetes or YARN would start one
    code, stdout, stderr = finished(job)
    assert code == 0, f"{stderr}\n{cluster.explain()}"
    one_row_each(out, uris)
    summary = json.loads((out / "_SUMMARY.json").read_text())
    assert summary["rows"] == UPLOADS and "accounting_problem" not in summary

    # from the engine's side: the job restarted after the loss, and had the option this run gave
    jobs = [j for j in cluster.rest_json("/jobs/overview")["jobs"] if j["state"] == "FINISHED"]
    newest = max(jobs, key=lambda j: j["start-time"])
    config = cluster.rest_json(f"/jobs/{newest['jid']}/config")["execution-config"]
    assert config["user-config"].get("maxBundleSize") == "64", config["user-config"]
    exceptions = cluster.rest_json(f"/jobs/{newest['jid']}/exceptions")
    assert exceptions.get("exceptionHistory", {}).get("entries"), "the job recovered from the lost TaskManager"


def test_a_lost_spark_executor_is_retried_and_the_run_keeps_its_rows(spark_cluster, tmp_path):
    cluster = spark_cluster
    manifest, uris = uploads(tmp_path)
    out = tmp_path / "out"
    job = start_job(cluster, manifest, out, "--app_name", "nightly-scan")  # an engine option of this job
    wait_until_scoring(cluster, out, job)
    executors = cluster.executor_pids()
    assert executors, cluster.explain()
    for pid in executors:
        os.kill(pid, signal.SIGKILL)  # Spark's worker starts another; the lost tasks are retried
    code, stdout, stderr = finished(job)
    assert code in (0, 1), f"{stderr}\n{cluster.explain()}"
    one_row_each(out, uris)
    summary = json.loads((out / "_SUMMARY.json").read_text())
    assert summary["rows"] == UPLOADS  # counted from the files, whatever the retried tasks' metrics say
    if code == 1:  # the runner's attempted metrics counted the retried work twice: said, and nothing lost
        assert "Every row written is kept" in summary["accounting_problem"], summary
    # from the engine's side: the application had the name this run gave
    assert "nightly-scan" in [app["name"] for app in cluster.rest_json("/json")["completedapps"]]
    again = cluster.nsfw_scan("run", "--manifest", manifest, "--output", out, "--config", cluster.engine, *cluster.flags)
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "_SUMMARY.json").read_text())["already_done"] == UPLOADS


def test_a_killed_python_worker_costs_a_restart_and_nothing_else(cluster, tmp_path):
    """The Python SDK workers of one TaskManager (Flink) or of the executor (Spark) SIGKILLed
    mid-scoring, as the kernel's OOM killer ends a process: the engine restarts or retries the
    work, and the run keeps one row per URI."""
    manifest, uris = uploads(tmp_path)
    out = tmp_path / "out"
    job = start_job(cluster, manifest, out)
    wait_until_scoring(cluster, out, job)
    workers = cluster.sdk_worker_pids("taskmanager2" if cluster.engine == "flink" else "worker")
    assert workers, cluster.explain()
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    code, stdout, stderr = finished(job)
    assert code in (0, 1), f"{stderr}\n{cluster.explain()}"
    one_row_each(out, uris)
    summary = json.loads((out / "_SUMMARY.json").read_text())
    assert summary["rows"] == UPLOADS
    if code == 1:  # attempted metrics counted the retried work twice: said, and nothing lost
        assert "Every row written is kept" in summary["accounting_problem"], summary


def test_without_a_restart_strategy_the_failed_job_keeps_its_durable_rows_and_the_rerun_scores_the_rest(tmp_path):
    """A cluster that restarts no job (Flink's default for a batch job) loses a TaskManager
    mid-scoring: the job fails, the message names the lost worker and the fix, the rows the
    workers had made durable are kept, and the same command (the cluster whole again) scores
    only the URIs without a row."""
    (tmp_path / "cluster").mkdir()
    cluster = start_flink(tmp_path / "cluster", restarts=False)
    try:
        manifest, uris = uploads(tmp_path)
        out = tmp_path / "out"
        job = start_job(cluster, manifest, out)
        wait_until_scoring(cluster, out, job)
        cluster.kill("taskmanager1")
        code, stdout, stderr = finished(job)
        kept = pq.read_table(out).to_pylist()
        assert 0 < len(kept) < UPLOADS and len({r["uri"] for r in kept}) == len(kept), len(kept)
        message = stderr.strip().splitlines()[-1]  # the cause, the fix, what was kept, how to resume
        assert code == 1 and message.startswith("nsfw-scan: error: the Flink job failed:"), stderr
        for said in ("is no longer reachable", "a worker was lost", "restart strategy", 'docs/runners.md, "Long runs"',
                     f"kept the {len(kept)} rows it had made durable", "the same command resumes"):
            assert said in message, (said, message)
        cluster.start_worker("taskmanager3")
        again = cluster.nsfw_scan("run", "--manifest", manifest, "--output", out, "--config", cluster.engine,
                                  *cluster.flags)
        assert again.returncode == 0, f"{again.stderr}\n{cluster.explain()}"
        summary = json.loads((out / "_SUMMARY.json").read_text())
        assert (summary["already_done"], summary["rows"]) == (len(kept), UPLOADS - len(kept)), summary
        one_row_each(out, uris)
    finally:
        cluster.stop()
