"""The job on real Flink and Spark clusters (``tests/support/clusters.py``), submitted as a user would with
``nsfw-scan run --config flink|spark ...``: Python workers started by the engine's task managers
and executors, the engine's own shuffle and scheduling, results checked like the local runner's."""

from __future__ import annotations

import importlib.resources
import json
import os
import subprocess

import pyarrow.parquet as pq
import pytest

from support.clusters import engine_pieces
from support.corpus import HOSTILE, REAL, corpus_files
from support.jobs import assert_same_outcomes, by_uri, run_job
from support.stores import counts, image_bytes, one_row_per_uri, s3_store

# one test process runs them all (pytest -n 2 --dist loadgroup): one cluster of each engine
pytestmark = [pytest.mark.slow, pytest.mark.engines, pytest.mark.xdist_group("engines")]

# real photos, hostile files with their error rows (truncated, bombs, undecodable), a missing file
SAMPLE = ([str(REAL / f) for f in corpus_files(REAL)]
          + [str(HOSTILE / f) for f in ("truncated_jpeg.jpg", "decompression_bomb.gif", "broken.png",
                                        "pil_sample_cmyk.jpg", "p_16.png", "hopper.webp", "apng/different_durations.png",
                                        "eps/reqd_showpage.eps")])


def summary_of(output) -> dict:
    return json.loads((output / "_SUMMARY.json").read_text())


def rows_of(output) -> dict[str, dict]:
    return by_uri(pq.read_table(output).to_pylist())


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory):
    """The local runner's rows for the sample and two more uploads: what every engine must give."""
    folder = tmp_path_factory.mktemp("local")
    extra = [folder / f"new{i}.png" for i in range(2)]
    for i, path in enumerate(extra):
        path.write_bytes(image_bytes(i))
    manifest = folder / "m.txt"
    manifest.write_text("\n".join(SAMPLE + [str(folder / "gone.jpg")] + [str(p) for p in extra]) + "\n")
    summary, rows = run_job(folder, manifest)
    return {os.path.basename(u): r for u, r in by_uri(rows).items()}


def by_name(rows: dict[str, dict]) -> dict[str, dict]:
    return {os.path.basename(u): r for u, r in rows.items()}


def test_local_files_first_run_rerun_new_uris_and_force(cluster, local_rows, tmp_path):
    extra = [tmp_path / f"new{i}.png" for i in range(2)]
    for i, path in enumerate(extra):
        path.write_bytes(image_bytes(i))
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    uris = SAMPLE + [str(tmp_path / "gone.jpg")]
    manifest.write_text("\n".join(uris + [SAMPLE[0]]) + "\n")  # one line twice
    # the packaged preset, as a user's own copy of it with a progress line every 3 images
    preset = importlib.resources.files("nsfw_scan.configs") / f"{cluster.engine}.yaml"
    config = tmp_path / f"{cluster.engine}.yaml"
    config.write_text(preset.read_text() + "progress_every: 3\n")
    flags = ["--config", config, *cluster.flags]
    logged = {path: len(text) for path, text in cluster.worker_logs().items()}
    loads_before = cluster.model_loads()

    first = cluster.nsfw_scan("run", "--manifest", manifest, "--output", out, *flags)
    assert first.returncode == 0, f"{first.stderr}\n{cluster.explain()}"
    summary = summary_of(out)
    assert counts(summary) == (len(uris) + 1, len(uris), len(SAMPLE) - 4) and summary["duplicates"] == 1
    assert summary["runner"] == ("FlinkRunner" if cluster.engine == "flink" else "SparkRunner")
    rows = rows_of(out)
    assert set(rows) == set(uris)
    expected = {name: r for name, r in local_rows.items() if not name.startswith("new")}
    assert_same_outcomes(by_name(rows), expected, tolerance=1e-5)
    assert summary["errors_by_kind"] == {"not_found": 1, "truncated": 1, "decompression_bomb": 1,
                                         "undecodable": 1, "unsupported_format": 1}
    assert f"rows written   {len(uris)}" in first.stdout

    # each model (the cascade's first pass, and the exact one where a row needed it) is loaded
    # once per Python worker process, by workers the engine started
    loads = {log: found[len(loads_before.get(log, [])):] for log, found in cluster.model_loads().items()}
    every = [load for found in loads.values() for load in found]
    assert len(every) == len(set(every)), every
    pids = {log: {pid for _, pid in found} for log, found in loads.items()}
    workers = set().union(*pids.values())
    assert summary["model_loads"] == len(every) >= len(workers) >= 1, cluster.explain()
    assert os.getpid() not in workers
    if cluster.engine == "flink":  # work done under both TaskManagers
        assert len([log for log, found in pids.items() if found]) == 2, pids
    progress = "".join(text[logged.get(path, 0):] for path, text in cluster.worker_logs().items())
    assert "rows to write" in progress and "images done in worker process" in progress, progress[-3000:]

    again = cluster.nsfw_scan("run", "--manifest", manifest, "--output", out, *flags)
    assert again.returncode == 0, f"{again.stderr}\n{cluster.explain()}"
    assert counts(summary_of(out)) == (len(uris) + 1, 0, 0) and summary_of(out)["already_done"] == len(uris)

    manifest.write_text("\n".join(uris + [str(p) for p in extra]) + "\n")
    more = cluster.nsfw_scan("run", "--manifest", manifest, "--output", out, *flags)
    assert more.returncode == 0, f"{more.stderr}\n{cluster.explain()}"
    assert counts(summary_of(out)) == (len(uris) + 2, 2, 2)
    assert_same_outcomes(by_name(rows_of(out)), local_rows, tolerance=1e-5)

    forced = cluster.nsfw_scan("run", "--manifest", manifest, "--output", out, "--force", *flags)
    assert forced.returncode == 0, f"{forced.stderr}\n{cluster.explain()}"
    assert counts(summary_of(out)) == (len(uris) + 2, len(uris) + 2, len(SAMPLE) - 4 + 2)
    assert len(list(out.glob("run-*"))) == 1
    assert_same_outcomes(by_name(rows_of(out)), local_rows, tolerance=1e-5)


def test_bucket_with_the_job_server_started_by_beam(cluster, moto_server, tmp_path):
    """Manifest, images and results in S3 (moto's server); Beam starts the job server from its jar."""
    store = s3_store(moto_server)
    images = [store.put(f"img/{i}.png", image_bytes(i)) for i in range(5)]
    manifest = store.put("m.txt", "\n".join(images + [store.uri("img/gone.png")]).encode())
    flags = ["--manifest", manifest, "--output", store.uri("out"), *store.flags, "--config", cluster.engine, *cluster.jar_flags]
    first = cluster.nsfw_scan("run", *flags)
    assert first.returncode == 0, f"{first.stderr}\n{cluster.explain()}"
    summary = json.loads(store.get("out/_SUMMARY.json"))
    assert counts(summary) == (6, 6, 5) and summary["errors_by_kind"] == {"not_found": 1}
    assert set(one_row_per_uri(store, "out")) == set(images + [store.uri("img/gone.png")])
    again = cluster.nsfw_scan("run", *flags)
    assert again.returncode == 0, f"{again.stderr}\n{cluster.explain()}"
    assert counts(json.loads(store.get("out/_SUMMARY.json"))) == (6, 0, 0)


def test_a_held_output_folder_is_refused_before_the_job_is_submitted(cluster, tmp_path):
    from nsfw_scan.storage.lock import OutputLock

    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    manifest.write_text(SAMPLE[0] + "\n")
    out.mkdir()
    with OutputLock(str(out)):
        refused = cluster.nsfw_scan("run", "--manifest", manifest, "--output", out, "--config", cluster.engine, *cluster.flags)
    assert refused.returncode == 2 and "another run is writing to this output folder" in refused.stderr, refused.stderr
    assert not list(out.glob("run-*"))


def test_the_engines_environment_has_the_job_servers_beam(cluster):
    """A job server of one Beam release runs that release's pipelines only: the jobs above are
    submitted, and their workers run, by the engines' environment, whose Beam is the job
    servers' release whatever Beam this environment has."""
    found = subprocess.run([cluster.python, "-c", "import apache_beam, nsfw_scan; print(apache_beam.__version__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert found == engine_pieces()["beam"]
