"""``nsfw-scan run`` as people use it: manifests as they really make them, mistyped flags, a
quiet console, and output folders that keep each run's history."""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from support.cli import nsfw_scan
from support.corpus import HOSTILE, REAL, reference

BOM = "\ufeff"


def assert_one_line_error(result, *parts, status=2):
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nsfw-scan: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for part in parts:
        assert part in lines[0], lines[0]


def test_byte_order_marks_are_dropped(tmp_path):
    from nsfw_scan.transforms.manifest_formats import read_entries
    from nsfw_scan.transforms.manifest_plan import plan_manifests

    image = str(REAL / "coffee.png")
    texts = {
        "excel.csv": f"{BOM}uri,id\n{image},7\n",
        "excel-id-first.csv": f"{BOM}id,uri\n8,{image}\n",
        "notepad.tsv": f"{BOM}uri\tid\n{image}\t9\n",
        "export.jsonl": BOM + json.dumps({"uri": image, "id": "10"}) + "\n",
        "list.txt": f"{BOM}{image}\n",
    }
    for name, text in texts.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    with gzip.open(tmp_path / "list.txt.gz", "wt", encoding="utf-8") as f:
        f.write(f"{BOM}{image}\n")
    for name in [*texts, "list.txt.gz"]:
        path = str(tmp_path / name)
        plan = plan_manifests([path])
        assert BOM not in "".join(plan.columns)
        (entry,) = read_entries(path, plan.columns, plan.uri_column)
        assert entry.uri == image and entry.error is None, name
        if plan.columns:
            assert entry.columns["id"] in ("7", "8", "9", "10") and entry.columns["id"] is not None, name


def test_folders_and_unopenable_manifests_are_configuration_errors(tmp_path):
    folder = tmp_path / "manifest_dir.csv"
    folder.mkdir()
    (folder / "job.log").write_text("not a manifest\n")
    (tmp_path / "m.txt").write_text(f"{REAL / 'coffee.png'}\n")
    (tmp_path / "plain.txt.gz").write_text(f"{REAL / 'coffee.png'}\n")  # named .gz, not compressed
    damaged = gzip.compress(f"{REAL / 'coffee.png'}\n".encode())
    (tmp_path / "damaged.txt.gz").write_bytes(damaged[:10] + b"\xff" * 8 + damaged[18:])
    out = tmp_path / "out"
    cases = [
        (folder, ["manifest_dir.csv", "is a folder"]),
        (f"{tmp_path}/", ["is a folder"]),
        (tmp_path / "manifest_*", ["matches the folder", "manifest_dir.csv"]),
        (tmp_path / "plain.txt.gz", ["plain.txt.gz", "not gzip-compressed"]),
        (tmp_path / "damaged.txt.gz", ["damaged.txt.gz", "damaged"]),
    ]
    if os.geteuid() != 0:  # root reads any file
        locked = tmp_path / "locked.txt"
        locked.write_text(f"{REAL / 'coffee.png'}\n")
        locked.chmod(0)
        cases.append((locked, ["locked.txt", "permission denied"]))
    for manifest, parts in cases:
        result = nsfw_scan("run", "--manifest", manifest, "--output", out)
        assert_one_line_error(result, *parts)
        assert not out.exists()


def test_truncated_compressed_manifest_stops_the_job_in_one_line(tmp_path):
    lines = "".join(f"{tmp_path / f'upload-{i}.jpg'}\n" for i in range(50_000))
    data = gzip.compress(lines.encode())
    (tmp_path / "nightly.txt.gz").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    result = nsfw_scan("run", "--manifest", tmp_path / "nightly.txt.gz", "--output", out)
    assert result.returncode != 0
    assert_one_line_error(result, "nightly.txt.gz", "truncated", status=result.returncode)
    assert not out.exists()

    verbose = nsfw_scan("run", "--manifest", tmp_path / "nightly.txt.gz", "--output", out, "--verbose")
    assert verbose.returncode == result.returncode and "Traceback" in verbose.stderr
    assert not out.exists()


def test_malformed_lines_of_same_named_manifests_stay_apart(tmp_path):
    for folder in ("monday", "tuesday"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "uploads.csv").write_text(f"uri,id\n{tmp_path / folder / 'gone.jpg'}\n")
    out = tmp_path / "out"
    result = nsfw_scan("run", "--manifest", tmp_path / "*" / "uploads.csv", "--output", out)
    assert result.returncode == 1 and "nothing was scored" in result.stderr, result.stderr  # every row an error
    errors = sorted(r["error"] for r in pq.read_table(out).to_pylist())
    assert errors == [f"bad_manifest_line: {tmp_path / d / 'uploads.csv'} line 2: expected 2 fields, got 1"
                      for d in ("monday", "tuesday")]
    summary = json.loads((out / "_SUMMARY.json").read_text())
    assert summary["duplicates"] == 0 and summary["rows"] == 2
    again = nsfw_scan("run", "--manifest", tmp_path / "*" / "uploads.csv", "--output", out)
    assert json.loads((out / "_SUMMARY.json").read_text())["already_done"] == 2, again.stderr


@pytest.mark.parametrize("flags,parts", [
    (["--batchsize", "8"], ["unknown flag --batchsize", "did you mean --batch-size"]),
    (["--direct_num_worker=2"], ["unknown flag --direct_num_worker"]),
    (["--runner", "SparkyRunner"], ["--runner SparkyRunner", "cannot load this runner"]),
    (["--forc"], ["unknown flag --forc", "did you mean --force"]),  # never taken for --force
    (["--rescore"], ["unknown flag --rescore"]),
    (["--max_bundel_size", "3"], ["unknown flag --max_bundel_size", "did you mean --max_bundle_size"]),
    (["--max_bundle_size", "many"], ["argument --max_bundle_size: invalid int value: 'many'"]),  # an engine's option
])
def test_flags_nobody_knows_are_errors(tmp_path, flags, parts):
    (tmp_path / "m.txt").write_text(f"{REAL / 'coffee.png'}\n")
    result = nsfw_scan("run", "--manifest", tmp_path / "m.txt", "--output", tmp_path / "out", *flags)
    assert_one_line_error(result, *parts)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags,message", [
    (["--partitions", "0"], "argument --partitions: must be 1 or more, got 0"),
    (["--batch-size", "0"], "argument --batch-size: must be 1 or more, got 0"),
    (["--decode-threads", "-1"], "argument --decode-threads: must be 0 or more, got -1"),
    (["--batch-size", "many"], "argument --batch-size: expected a whole number, got 'many'"),
])
def test_numeric_flags_are_range_checked(tmp_path, flags, message):
    (tmp_path / "m.txt").write_text(f"{REAL / 'coffee.png'}\n")
    result = nsfw_scan("run", "--manifest", tmp_path / "m.txt", "--output", tmp_path / "out", *flags)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "out").exists()
    bench = nsfw_scan("bench", "--seconds", "0")
    assert bench.returncode == 2 and "argument --seconds: must be more than 0" in bench.stderr


def test_quiet_by_default_and_history_kept(tmp_path):
    """No TensorFlow start-up lines or libtiff chatter unless --verbose; each run keeps its
    summary in its folder; a run with nothing new leaves no folder; load figures agree."""
    tiffs = ["crash-86214e58da443d2b80820cff9677a38a33dcbbca.tif", "libtiff_segfault.tif"]
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    manifest.write_text("".join(f"{p}\n" for p in [REAL / "grace_hopper.jpg", *(HOSTILE / t for t in tiffs)]))
    first = nsfw_scan("run", "--manifest", manifest, "--output", out)
    assert first.returncode == 0, first.stderr
    noise = ("oneDNN", "absl", "cpu_feature_guard", "_tiffReadProc", "samples per pixel", "Traceback")
    assert not [line for line in first.stderr.splitlines() if any(n in line for n in noise)], first.stderr
    first_pass = json.loads((out / "_SUMMARY.json").read_text())["first_pass_precisions"]  # as measured on this CPU
    model = "open_nsfw:onnx:864bb37bf886" + ("" if first_pass == {"float32": 1} else ":bfloat16")
    assert sorted(line.split(" ", 1)[1].split(" loaded in ")[0].split(" (")[0] for line in first.stderr.splitlines()) == \
        ["3 rows to write", f"model {model}", "progress: 3 of 3 images"]  # our lines only (the cascade's first pass)
    (run_folder,) = out.glob("run-*")
    assert json.loads((run_folder / "_SUMMARY.json").read_text()) == json.loads((out / "_SUMMARY.json").read_text())

    again = nsfw_scan("run", "--manifest", manifest, "--output", out)
    assert again.returncode == 0, again.stderr
    assert list(out.glob("run-*")) == [run_folder]  # nothing new: no empty run folder
    summary = json.loads((out / "_SUMMARY.json").read_text())
    assert summary["rows"] == 0 and summary["results"] is None and summary["already_done"] == 3
    # no model scored: none is counted, timed or logged as loaded (the figures agree)
    assert summary["model_loads"] == 0 and summary["model_load_seconds"] == 0
    assert "model loads 0" in again.stdout and " loaded in " not in again.stderr
    assert json.loads((run_folder / "_SUMMARY.json").read_text())["rows"] == 3  # the first run's stays
    # ... and the folder's summary keeps it in view, through any number of runs with nothing new
    first_summary = json.loads((run_folder / "_SUMMARY.json").read_text())
    assert summary["latest_results"] == first_summary
    assert f"the latest results are {first_summary['results']}" in again.stdout
    assert nsfw_scan("run", "--manifest", manifest, "--output", out).returncode == 0
    assert json.loads((out / "_SUMMARY.json").read_text())["latest_results"] == first_summary

    shutil.rmtree(out)
    verbose = nsfw_scan("run", "--manifest", manifest, "--output", out, "--verbose")
    assert verbose.returncode == 0
    assert "_tiffReadProc" in verbose.stderr or "samples per pixel" in verbose.stderr
    rows = {r["uri"]: r for r in pq.read_table(out).to_pylist()}
    assert abs(rows[str(REAL / "grace_hopper.jpg")]["yahoo_score"] - reference("real")["grace_hopper.jpg"]) < 1e-3


def test_progress_lines_come_during_the_run(tmp_path):
    """Lines every progress_every images while the run goes on (not all at its end), each with
    the total, the percentage done and (before the end) the time left, and a rate close to the
    summary's."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    names = ["grace_hopper.jpg", "chelsea.png", "coins.png"]
    for i in range(150):
        shutil.copy(REAL / names[i % 3], uploads / f"{i:03d}-{names[i % 3]}")
    manifest, config, out = tmp_path / "m.txt", tmp_path / "c.yaml", tmp_path / "out"
    manifest.write_text("".join(f"{p}\n" for p in sorted(uploads.iterdir())) + "not a uri\n")
    config.write_text("progress_every: 25\nbatch: {min_size: 8, max_size: 16}\n")
    proc = subprocess.Popen([sys.executable, "-m", "nsfw_scan.pipeline.cli", "run", "--manifest", str(manifest),
                             "--output", str(out), "--config", str(config),
                             # Yahoo's steps for every file: the cascade scores these 150 in about
                             # 2 s, where the run's fixed start and end outweigh the rates compared
                             "--exact"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    arrivals = [(time.monotonic(), line) for line in proc.stderr]
    proc.wait(timeout=600)
    assert proc.returncode == 0, "".join(line for _, line in arrivals)
    assert any(" 151 rows to write " in line for _, line in arrivals)  # 150 uploads + 1 unusable line
    pattern = re.compile(r" progress: (\d+) of 151 images \((\d+)%\), (?:([\d.]+)/s over the last \d+ s, )?"
                         r"[\d.]+/s since the first(?:; (under 1 s|about \d+ s) left)?$")
    progress = [(t, pattern.search(line)) for t, line in arrivals if " progress: " in line]
    assert all(match for _, match in progress), [line for _, line in arrivals if " progress: " in line]
    done = [int(match[1]) for _, match in progress]
    assert done == [25, 50, 75, 100, 125, 150, 151][:len(done)] and done[-1] == 151
    assert [int(match[2]) for _, match in progress] == [round(100 * d / 151) for d in done]
    assert all(match[4] for _, match in progress[:-1]) and not progress[-1][1][4]  # time left, until the end
    assert progress[-1][0] - progress[0][0] > 1.0  # spread over the run, not all at its end
    summary = json.loads((out / "_SUMMARY.json").read_text())
    rate = summary["rows"] / (summary["seconds"] - summary["model_load_seconds"])
    current = float(progress[-1][1][3])
    assert rate / 2 < current < rate * 2, (current, rate)


def test_progress_of_worker_processes(tmp_path):
    """Workers in processes of their own (the local runner's multi_processing mode) each count
    their own share, without a percentage: their lines reach the console as plain lines, and
    the number of rows to write is said once per part."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for i in range(40):
        shutil.copy(REAL / "chelsea.png", uploads / f"{i:03d}.png")
    manifest, config, out = tmp_path / "m.txt", tmp_path / "c.yaml", tmp_path / "out"
    manifest.write_text("".join(f"{p}\n" for p in sorted(uploads.iterdir())))
    config.write_text("progress_every: 5\nbatch: {min_size: 4, max_size: 8}\n")
    done = nsfw_scan("run", "--manifest", manifest, "--output", out, "--config", config, "--partitions", "2",
                     "--direct_running_mode", "multi_processing", "--direct_num_workers", "2")
    assert done.returncode == 0, done.stderr
    lines = [line.split(" ", 1)[1] for line in done.stderr.splitlines()]
    assert "Worker: " not in done.stderr and "severity" not in done.stderr  # no relayed protobuf text
    announced = [line for line in lines if " rows to write " in line]
    assert len(announced) == 2 and {a.split(":")[0] for a in announced} == {"part 1 of 2", "part 2 of 2"}
    assert sum(int(a.split(": ")[1].split()[0]) for a in announced) == 40
    progress = [re.fullmatch(r"part ([12]) of 2: progress: (\d+) images done in worker process (\d+) \(.*/s.*\)", line)
                for line in lines if " progress: " in line]
    assert progress and all(progress), lines
    assert {m[1] for m in progress} == {"1", "2"}


def interrupted_run(tmp_path, signum, when):
    """``nsfw-scan run`` over 200 uploads, sent ``signum`` once its stderr shows ``when`` (a
    line part; None: as soon as it catches signals). Returns (process, stderr, manifest, out, uris)."""
    import signal

    uploads = tmp_path / "uploads"
    uploads.mkdir(exist_ok=True)
    names = ["grace_hopper.jpg", "chelsea.png", "coins.png"]
    uris = []
    for i in range(200):
        uris.append(uploads / f"{i:03d}-{names[i % 3]}")
        if not uris[-1].exists():
            os.symlink(REAL / names[i % 3], uris[-1])
    manifest, config, out = tmp_path / "m.txt", tmp_path / "c.yaml", tmp_path / "out"
    manifest.write_text("".join(f"{p}\n" for p in uris))
    config.write_text("progress_every: 10\nbatch: {min_size: 4, max_size: 8}\n")
    proc = subprocess.Popen([sys.executable, "-m", "nsfw_scan.pipeline.cli", "run", "--manifest", str(manifest),
                             "--output", str(out), "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    if when is None:  # as soon as the command has its handlers (SIGINT and SIGTERM together; Python
        # itself catches SIGINT from its start), while it still imports
        deadline = time.monotonic() + 60
        while not catches(proc.pid, signal.SIGTERM) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
    else:
        for line in proc.stderr:
            seen.append(line)
            if when in line:
                break
    proc.send_signal(signum)
    stdout, rest = proc.communicate(timeout=300)
    return proc, "".join(seen) + rest, stdout, manifest, out, [str(u) for u in uris]


def catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler of its own for ``signum`` (Linux: SigCgt)."""
    try:
        status = open(f"/proc/{pid}/status").read()
    except OSError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught >> (signum - 1) & 1)


@pytest.mark.parametrize("signame,status,when", [
    ("SIGINT", 130, " progress: 10 of 200 "),  # Ctrl-C while images are scored
    ("SIGTERM", 143, " progress: 10 of 200 "),
    ("SIGINT", 130, None),  # while the command starts (imports)
])
def test_an_interrupted_run_says_what_it_kept_and_the_same_command_resumes(tmp_path, signame, status, when):
    import signal

    proc, stderr, stdout, manifest, out, uris = interrupted_run(tmp_path, getattr(signal, signame), when)
    assert proc.returncode == status, stderr
    ours = [line for line in stderr.splitlines() if not re.match(r"\d\d:\d\d:\d\d ", line)]  # not log lines
    resume = f"the same command resumes (rows already in {out} are not scored again)"
    if when:  # the rows scored so far are made durable as the run stops (or none, if it stopped before)
        (line,) = ours
        kept = re.fullmatch(rf"nsfw-scan: interrupted by {signame}: (?:kept the (\d+) rows it had made durable, in "
                            rf"{re.escape(str(out))}/run-\d+T\d+Z|this run kept no rows \(it had finished none, nor "
                            rf"made any durable yet\)); {re.escape(resume)}", line)
        assert kept, stderr
        kept = int(kept[1] or 0)
    else:
        assert ours == [f"nsfw-scan: interrupted by {signame}: runs (and parts) that finished are kept, and the rows "
                        "an unfinished one had made durable; the same command resumes"], stderr
        kept = 0
    assert "Traceback" not in stderr and stdout == ""
    assert not (out / "_LOCK").exists()
    # nothing but the rows kept: no unfinished folder, and no folder at all if none was kept
    assert (len(pq.read_table(out)) if out.exists() else 0) == kept and (kept or not out.exists())
    again = nsfw_scan("run", "--manifest", manifest, "--output", out)
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "_SUMMARY.json").read_text())["already_done"] == kept
    rows = pq.read_table(out).to_pylist()
    assert sorted(r["uri"] for r in rows) == sorted(uris) and all(r["score"] is not None for r in rows)


def test_an_interrupted_partitioned_run_keeps_its_finished_parts(tmp_path):
    import signal

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for i in range(60):
        os.symlink(REAL / "chelsea.png", uploads / f"{i:03d}.png")
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    manifest.write_text("".join(f"{p}\n" for p in sorted(uploads.iterdir())))
    proc = subprocess.Popen([sys.executable, "-m", "nsfw_scan.pipeline.cli", "run", "--manifest", str(manifest),
                             "--output", str(out), "--partitions", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "part 1 of 3 finished" in line:  # the signal lands as part 2 starts, well before it can end
            break
    proc.send_signal(signal.SIGINT)
    stdout, rest = proc.communicate(timeout=300)
    stderr = "".join(seen) + rest
    assert proc.returncode == 130, stderr
    (finished,) = out.glob("run-*-part000of003")
    kept = pq.read_table(finished).num_rows
    (line,) = [line for line in stderr.splitlines() if line.startswith("nsfw-scan: ")]
    assert line == (f"nsfw-scan: interrupted by SIGINT: kept {kept} rows of 1 finished parts of 3 in "
                    f"{out}/{finished.name.split('-part')[0]}-part*; the same command resumes (rows already "
                    f"in {out} are not scored again)")
    assert [p.name for p in out.glob("run-*")] == [finished.name] and not (out / "_LOCK").exists()
    again = nsfw_scan("run", "--manifest", manifest, "--output", out, "--partitions", "3")
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "_SUMMARY.json").read_text())["already_done"] == kept
    assert sorted(r["uri"] for r in pq.read_table(out).to_pylist()) == sorted(str(p) for p in uploads.iterdir())


def test_many_parts_keep_the_console_quiet(tmp_path):
    """One model load per part: TensorFlow's retracing warning (from the fifth load on) says
    nothing about the job and stays off the console."""
    manifest, out, uploads = tmp_path / "m.txt", tmp_path / "out", tmp_path / "uploads"
    uploads.mkdir()
    for i in range(80):  # enough URIs that each of the 7 parts (by a hash of the URI) gets some
        os.symlink(REAL / "coins.png", uploads / f"{i:03d}.png")
    manifest.write_text("".join(f"{p}\n" for p in sorted(uploads.iterdir())))
    result = nsfw_scan("run", "--manifest", manifest, "--output", out, "--partitions", "7")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "_SUMMARY.json").read_text())["model_loads"] >= 5
    assert not [line for line in result.stderr.splitlines() if not re.match(r"\d\d:\d\d:\d\d ", line)], result.stderr


def test_images_given_as_manifests_are_refused_before_the_job_starts(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for source in sorted(REAL.glob("*.*"))[:4]:
        shutil.copy(source, photos / source.name)
    images = sorted(photos.iterdir())
    out = tmp_path / "out"
    glob = nsfw_scan("run", "--manifest", photos / "*", "--output", out)
    assert_one_line_error(glob, f"matches {len(images)} files", images[0].name, "not a manifest",
                          "find DIR -type f > uploads.txt", "nsfw-scan score")
    assert not out.exists()
    one = nsfw_scan("run", "--manifest", images[0], "--output", out)
    assert_one_line_error(one, f"manifest {images[0]}: is a", "image, not a manifest")
    (tmp_path / "utf16.csv").write_text(f"uri\n{images[0]}\n", encoding="utf-16")
    assert_one_line_error(nsfw_scan("run", "--manifest", tmp_path / "utf16.csv", "--output", out),
                          "utf16.csv: is UTF-16 text; save it as UTF-8")
    with gzip.open(tmp_path / "photo.txt.gz", "wb") as f:
        f.write(images[0].read_bytes())
    assert_one_line_error(nsfw_scan("run", "--manifest", tmp_path / "photo.txt.gz", "--output", out), "not a manifest")
    assert not out.exists()

    # a manifest in another 8-bit encoding is text: its lines that are not UTF-8 are bad lines
    (tmp_path / "latin1.txt").write_bytes(f"{images[0]}\n{tmp_path}/caf\xe9.jpg\n".encode("latin-1"))
    latin = nsfw_scan("run", "--manifest", tmp_path / "latin1.txt", "--output", out)
    assert latin.returncode == 0, latin.stderr
    rows = {r["source_line"]: r for r in pq.read_table(out).to_pylist()}
    assert rows[1]["error"] is None and rows[2]["error_kind"] == "bad_manifest_line"


def test_small_things_a_user_trips_on(tmp_path):
    from importlib.metadata import version

    # the help says which steps give the default rows' scores
    helped = nsfw_scan("run", "--help")
    assert "the cascade's first pass uses cascade.loader (fast)" in " ".join(helped.stdout.split()), helped.stdout
    assert "cascade.precision (auto: the faster on each worker's CPU, measured)" in " ".join(helped.stdout.split())
    commands = " ".join(nsfw_scan("--help").stdout.split())
    assert "by Yahoo's exact steps" in commands and "unless --exact" in commands, commands
    report_help = nsfw_scan("report", "--help").stdout
    assert "--config" in report_help and "--loader" not in report_help and "--batch-size" not in report_help

    shown = nsfw_scan("--version")
    assert shown.returncode == 0 and shown.stdout.startswith(f"nsfw-scan {version('nsfw-scan')} (Apache Beam "), shown
    (tmp_path / "m.txt").write_text(f"{REAL / 'coffee.png'}\n")
    taken = tmp_path / "results.parquet"
    taken.write_text("a file\n")
    assert_one_line_error(nsfw_scan("run", "--manifest", tmp_path / "m.txt", "--output", taken),
                          "--output names a file; give a folder")
    unknown = nsfw_scan("run", "--manifest", tmp_path / "m.txt", "--output", tmp_path / "out", "--frobnicate")
    assert_one_line_error(unknown, "unknown flag --frobnicate")
    assert "did you mean" not in unknown.stderr

    done = nsfw_scan("run", "--manifest", tmp_path / "m.txt", "--output", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    (time_line,) = [line for line in done.stdout.splitlines() if line.startswith("time ")]
    assert "too few images for a rate" in time_line or re.search(r", [\d.]+ images/s", time_line), time_line
    summary = json.loads((tmp_path / "out" / "_SUMMARY.json").read_text())
    assert summary["images_per_s"] is None or summary["seconds"] >= 1.0

    # the reader of the report goes away after its first line: no error, no traceback
    piped = subprocess.run(f"{sys.executable} -m nsfw_scan.pipeline.cli report {tmp_path / 'out'} | head -1",
                           shell=True, capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0 and piped.stdout.startswith("rows 1: ") and piped.stderr == "", piped.stderr
    status = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m nsfw_scan.pipeline.cli report "
                             f"{tmp_path / 'out'} | head -c 1 > /dev/null"], capture_output=True, text=True, timeout=300)
    assert status.returncode == 0 and status.stderr == "", status.stderr


def test_a_damaged_jpeg_is_named_as_one(tmp_path):
    from PIL import Image

    whole = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(whole, quality=90)
    (tmp_path / "damaged.jpg").write_bytes(whole.read_bytes()[:3] + b"\x00" * 40)
    (tmp_path / "m.txt").write_text(f"{tmp_path / 'damaged.jpg'}\n")
    assert nsfw_scan("run", "--manifest", tmp_path / "m.txt", "--output", tmp_path / "out").returncode == 1  # no row scored
    (row,) = pq.read_table(tmp_path / "out").to_pylist()
    assert row["error_kind"] == "undecodable"
    assert "starts like a JPEG image but Pillow cannot read it" in row["error"], row["error"]


def test_a_run_that_scored_nothing_says_so_and_exits_1(tmp_path):
    """Every row an error (a manifest of wrong paths): the rows are kept, one warning names the
    kinds and what to do, and the exit status tells a scheduler (it was 0, with no warning)."""
    manifest, out = tmp_path / "wrong-paths.txt", tmp_path / "out"
    manifest.write_text("".join(f"{tmp_path}/uploads/missing-{i}.jpg\n" for i in range(3)) + f"{tmp_path}\n")
    result = nsfw_scan("run", "--manifest", manifest, "--output", out)
    assert result.returncode == 1, result.stderr
    warning = [line for line in result.stderr.splitlines() if line.startswith("nsfw-scan: warning: ")]
    assert warning == [f"nsfw-scan: warning: every one of the 4 rows this run wrote is an error (not_found 3, "
                       f"not_a_file 1): nothing was scored; the errors are listed by nsfw-scan report {out} "
                       f"(errors.csv); once the inputs are fixed, the same command with --rescore-errors reads "
                       f"them again"], result.stderr
    assert len(pq.read_table(out)) == 4
    (tmp_path / "uploads").mkdir()
    shutil.copy(REAL / "coffee.png", tmp_path / "uploads" / "missing-0.jpg")
    fixed = nsfw_scan("run", "--manifest", manifest, "--output", out, "--rescore-errors")
    assert fixed.returncode == 0 and "warning" not in fixed.stderr, fixed.stderr
