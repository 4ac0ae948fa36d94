"""Running again into the same output: only new URIs are scored, one row per URI across runs."""

import csv
import os
import re
import shutil
import signal
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from nsfw_scan.pipeline.run import run
from support.corpus import HOSTILE, REAL, corpus_files
from support.jobs import assert_same_outcomes, durable_rows
from support.stores import image_bytes

REAL_URIS = [str(REAL / f) for f in corpus_files(REAL)]


def job(manifest, output, *flags):
    return run(["--manifest", str(manifest), "--output", str(output), *flags])


def rows_by_uri(output):
    rows = pq.read_table(output).to_pylist()
    uris = [r["uri"] for r in rows]
    assert len(uris) == len(set(uris)), "one row per URI across runs"
    return {r["uri"]: r for r in rows}


def test_rerun_scores_nothing_and_new_uris_only(tmp_path):
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    manifest.write_text("\n".join(REAL_URIS[:4]) + "\n# a comment\nbroken\x00line\n")
    first = job(manifest, out)
    assert first["scored"] == 4

    again = job(manifest, out)
    assert again["scored"] == 0 and again["rows"] == 0
    assert again["already_done"] == 5  # four images and the unusable line
    assert len(rows_by_uri(out)) == 5

    manifest.write_text("\n".join(REAL_URIS) + "\n")  # tomorrow's manifest: two new uploads
    assert len(REAL_URIS) == 6
    grown = job(manifest, out)
    assert grown["scored"] == 2 and grown["already_done"] == 4
    assert set(rows_by_uri(out)) >= set(REAL_URIS)


def test_rescore_errors_replaces_error_rows(tmp_path):
    late = tmp_path / "late.png"
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    manifest.write_text(f"{REAL_URIS[0]}\n{late}\n")
    assert job(manifest, out)["errors"] == 1
    late.write_bytes((REAL / "coffee.png").read_bytes())  # the upload arrives later
    assert job(manifest, out)["rows"] == 0  # errors stay errors by default
    summary = job(manifest, out, "--rescore-errors")
    assert summary["scored"] == 1 and summary["already_done"] == 1
    rows = rows_by_uri(out)
    assert rows[str(late)]["error"] is None and rows[str(late)]["score"] is not None


def test_force_replaces_every_earlier_run(tmp_path):
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    manifest.write_text("\n".join(REAL_URIS[:3]) + "\n")
    job(manifest, out)
    job(manifest, out, "--force")
    assert len(list(out.glob("run-*"))) == 1
    assert len(rows_by_uri(out)) == 3


@pytest.mark.slow
def test_killed_run_leaves_no_results_and_resumes(tmp_path):
    uploads = tmp_path / "uploads"  # 300 distinct uploads: copies of the hostile files
    uploads.mkdir()
    hostile = corpus_files(HOSTILE)
    for i in range(300):
        shutil.copy(HOSTILE / hostile[i % len(hostile)], uploads / f"{i:03d}-{hostile[i % len(hostile)].replace('/', '_')}")
    uris = REAL_URIS + [str(p) for p in sorted(uploads.iterdir())]
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    manifest.write_text("\n".join(REAL_URIS[:4]) + "\n")
    job(manifest, out)  # an earlier, finished run
    manifest.write_text("\n".join(uris) + "\n")

    proc = subprocess.Popen(
        [sys.executable, "-m", "nsfw_scan.pipeline.cli", "run", "--manifest", str(manifest), "--output", str(out),
         "--batch-size", "4"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    for line in proc.stderr:  # wait until scoring has started, then kill the job
        if " loaded in " in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # only the finished run is visible
    assert set(rows_by_uri(out)) == set(REAL_URIS[:4])

    summary = job(manifest, out)
    assert summary["already_done"] == 4 and summary["rows"] == len(uris) - 4
    assert set(rows_by_uri(out)) == set(uris)
    assert not list(out.rglob("beam-temp-*"))


def _started_run(tmp_path, images: int, config_text: str, mode: list[str]):
    """``nsfw-scan run`` over ``images`` generated uploads, started in a session of its own
    (progress every 10 images, small batches, then ``config_text``): the URIs, the manifest,
    the output folder, the config and the process, its stderr a pipe."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for i in range(images):
        (uploads / f"{i:03d}.png").write_bytes(image_bytes(i))
    uris = [str(p) for p in sorted(uploads.iterdir())]
    manifest, out, config = tmp_path / "m.txt", tmp_path / "out", tmp_path / "c.yaml"
    manifest.write_text("\n".join(uris) + "\n")
    config.write_text("progress_every: 10\nbatch: {min_size: 4, max_size: 8}\n" + config_text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nsfw_scan.pipeline.cli", "run", "--manifest", str(manifest), "--output", str(out),
         "--config", str(config), *mode],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    return uris, manifest, out, config, proc


def _until_scored(proc, images: float, lines: list | None = None) -> dict[str, int]:
    """Reads the run's progress lines (kept in ``lines``) until ``images`` are scored: the
    images done, per process that counts them."""
    done: dict[str, int] = {}
    for line in proc.stderr:
        if lines is not None:
            lines.append(line)
        found = re.search(r"progress: (\d+) (?:of \d+ images|images done in worker process (\d+))", line)
        if found:
            done[found[2] or "launcher"] = int(found[1])
            if sum(done.values()) >= images:
                break
    return done


@pytest.mark.slow
@pytest.mark.parametrize("mode", [
    pytest.param([], id="in-process"),
    pytest.param(["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"], id="worker-processes"),
])
def test_run_killed_at_70_percent_keeps_what_it_scored(tmp_path, mode):
    """SIGKILL (as an OOM kill or a preempted machine would) once 70% of the images are scored:
    the rows made durable by then survive, the next run keeps them and scores only the rest."""
    uris, manifest, out, config, proc = _started_run(tmp_path, 240, "checkpoint: {rows: 10, seconds: 1}\n", mode)
    done = _until_scored(proc, 0.7 * len(uris))
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and every worker process
    proc.wait(timeout=60)
    assert sum(done.values()) >= 0.7 * len(uris), "the run ended before 70% of it was scored"
    kept = durable_rows(out)
    assert kept >= len(uris) // 2
    assert not list(out.glob("run-*/part-*.parquet"))  # the killed run finished nothing

    summary = job(manifest, out, "--config", str(config))
    assert len(uris) // 2 <= summary["salvaged_rows"] <= kept
    assert summary["already_done"] == summary["salvaged_rows"]
    assert summary["rows"] == len(uris) - summary["salvaged_rows"]
    rows = rows_by_uri(out)  # one row per URI across the salvaged and the new run
    assert set(rows) == set(uris) and all(r["decision"] != "error" for r in rows.values())
    assert not list(out.rglob("_rows")) and not list(out.rglob("beam-temp-*"))


def test_partitioned_run_gives_the_same_rows(tmp_path):
    uris = REAL_URIS + [str(HOSTILE / f) for f in corpus_files(HOSTILE)[:40]]
    manifest = tmp_path / "m.txt"
    manifest.write_text("\n".join(uris + uris[:5]) + "\n")  # with duplicates
    whole = job(manifest, tmp_path / "whole")
    parts = job(manifest, tmp_path / "parts", "--partitions", "3")
    assert len(list((tmp_path / "parts").glob("run-*-part*of003"))) == 3
    for key in ("manifest_rows", "duplicates", "rows", "scored", "errors", "errors_by_kind", "decisions"):
        assert parts[key] == whole[key], key
    a, b = rows_by_uri(tmp_path / "whole"), rows_by_uri(tmp_path / "parts")
    assert_same_outcomes(a, b)
    again = job(manifest, tmp_path / "parts", "--partitions", "2")  # resume works across part counts
    assert again["rows"] == 0 and again["already_done"] == len(uris)


def test_malformed_lines_are_known_by_their_full_source(tmp_path):
    """Two manifests of one name in two folders, each with a malformed line 3: two rows, which
    a rerun finds again from their source columns (not from the error text)."""
    gone = tmp_path / "gone.png"
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "m.csv").write_text(f"uri,id\n{gone},1\nno-comma-here\n")
    pattern, out = tmp_path / "*" / "m.csv", tmp_path / "out"
    first = job(pattern, out)
    assert first["rows"] == 3 and first["duplicates"] == 1
    bad = sorted((r["source_manifest"], r["source_line"], r["error_kind"])
                 for r in pq.read_table(out).to_pylist() if r["uri"] is None)
    assert bad == [(str(tmp_path / f / "m.csv"), 3, "bad_manifest_line") for f in ("a", "b")]
    again = job(pattern, out)
    assert again["rows"] == 0 and again["already_done"] == 3


def test_runs_over_results_of_an_older_version(tmp_path):
    """An output folder whose first run an older nsfw-scan wrote (no error_kind, source or
    duplicates columns): a rerun with --rescore-errors finds its error rows by their decision
    and replaces them, and the report takes the source of its malformed line from the message."""
    gone = tmp_path / "gone.png"
    manifest, out = tmp_path / "m.csv", tmp_path / "out"
    manifest.write_text(f"uri,id\n{REAL_URIS[0]},1\n{gone},2\nno-comma-here\n")
    assert job(manifest, out)["rows"] == 3
    (older,) = out.glob("run-*/part-*.parquet")
    pq.write_table(pq.read_table(older).drop_columns(["error_kind", "source_manifest", "source_line", "duplicates"]),
                   older)

    gone.write_bytes((REAL / "coffee.png").read_bytes())  # the upload arrives later
    manifest.write_text(f"uri,id\n{REAL_URIS[0]},1\n{gone},2\n")
    summary = job(manifest, out, "--rescore-errors")
    assert summary["scored"] == 1 and summary["already_done"] == 1
    rows = [r for f in out.glob("run-*/part-*.parquet") for r in pq.read_table(f).to_pylist()]  # both schemas
    assert sorted(str(r["uri"]) for r in rows) == sorted([REAL_URIS[0], str(gone), "None"])
    assert next(r for r in rows if r["uri"] == str(gone))["score"] is not None

    report = subprocess.run([sys.executable, "-m", "nsfw_scan.pipeline.cli", "report", str(out)],
                            capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    with open(out / "_report" / "errors.csv", newline="") as f:
        (failed,) = csv.DictReader(f)
    assert failed["error"].startswith(f"bad_manifest_line: {manifest} line 4: ")
    assert (failed["error_kind"], failed["source_manifest"], failed["source_line"]) == (
        "bad_manifest_line", str(manifest), "4")


@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("mode", [
    pytest.param([], id="in-process"),
    pytest.param(["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"], id="worker-processes"),
])
def test_a_stopped_run_keeps_every_row_it_had_scored(tmp_path, mode, signame):
    """Ctrl-C or SIGTERM (to the command alone) once 60% of 300 uploads are scored, long before a
    checkpoint is due (the defaults: 1000 rows or 30 s): the rows scored by then are made durable
    as the run stops, in every worker process, and the one-line message counts them."""
    uris, manifest, out, config, proc = _started_run(tmp_path, 300, "", mode)
    lines = []
    done = _until_scored(proc, 0.6 * len(uris), lines)
    proc.send_signal(getattr(signal, signame))  # to the command only, as `kill PID` sends it
    rest = proc.stderr.read()
    proc.wait(timeout=300)
    stderr = "".join(lines) + rest
    scored = sum(done.values())
    assert scored >= 0.6 * len(uris), stderr
    assert proc.returncode == 128 + getattr(signal, signame), stderr
    (message,) = [line for line in stderr.splitlines() if line.startswith("nsfw-scan: ")]
    kept = re.fullmatch(rf"nsfw-scan: interrupted by {signame}: kept the (\d+) rows it had made durable, in "
                        rf"{re.escape(str(out))}/run-\d+T\d+Z; the same command resumes \(rows already in "
                        rf"{re.escape(str(out))} are not scored again\)", message)
    assert kept, message
    assert int(kept[1]) == len(rows_by_uri(out)) >= scored
    assert not list(out.rglob("_rows")) and not (out / "_LOCK").exists()

    summary = job(manifest, out, "--config", str(config))
    assert summary["salvaged_rows"] == 0 and summary["already_done"] == int(kept[1])
    assert set(rows_by_uri(out)) == set(uris)
