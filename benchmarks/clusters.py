"""The same upload-like corpus on the local runner, a Flink cluster and a Spark cluster, one run.

Starts the clusters of the engine tests (``tests/support/clusters.py``: a Flink JobManager with two
TaskManagers and Beam's Flink job server; a Spark Master, a Worker and Beam's Spark job server,
all on 127.0.0.1, from the pieces ``engines/install.sh`` installs), generates the upload mix of
``benchmarks/end_to_end.py`` and runs ``nsfw-scan run`` over it on each, into a new folder each
time. Per runner:
- wall s: the command, submission to summary;
- start-up s: from the command's start to the first row's ``scored_at`` (job server, workers
  started by the engine, model loads);
- images/s after start-up: rows after the first over the time from the first ``scored_at`` to
  the last;
- peak MiB: the largest sum of resident memory over every process of the run sampled twice a
  second: the launcher and its children, and for a cluster all of its processes (JVMs and the
  Python workers they start), so idle cluster memory counts too.

    python benchmarks/clusters.py [--scale 5] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from end_to_end import make_corpus  # noqa: E402

from support import clusters  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def _process_groups() -> dict[int, int]:
    """pid -> process group of every process."""
    groups = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                groups[int(entry)] = int(stat.rsplit(")", 1)[1].split()[2])
            except (OSError, IndexError, ValueError):
                pass
    return groups


def _rss_mib(pids) -> float:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total / 2**20


def run_measured(python: str, argv: list[str], groups: set[int]) -> tuple[float, float]:
    """Run ``nsfw-scan`` of ``python``'s environment in a process group of its own; returns
    (wall s, peak MiB of it and of the process groups ``groups``)."""
    peak, done = [0.0], threading.Event()
    started = time.time()
    proc = subprocess.Popen([python, "-m", "nsfw_scan.pipeline.cli", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def sample():
        while not done.is_set():
            watched = groups | {proc.pid}
            peak[0] = max(peak[0], _rss_mib(p for p, g in _process_groups().items() if g in watched))
            done.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode:
        sys.exit(f"nsfw-scan {' '.join(map(str, argv))} failed:\n{err[-3000:]}")
    print(out, file=sys.stderr)  # the run's summary, as printed
    return time.time() - started, peak[0]


def timings(output: Path, started: float) -> tuple[float, float, int]:
    """(start-up s, images/s after start-up, rows) from the rows' ``scored_at``."""
    stamps = sorted(t.timestamp() for t in pq.read_table(output, columns=["scored_at"])["scored_at"].to_pylist())
    span = stamps[-1] - stamps[0]
    return stamps[0] - started, (len(stamps) - 1) / span if span > 0 else float("nan"), len(stamps)


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--scale", type=int, default=5, help="the upload mix times this (45 images each)")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nsfw-scan-engines-"))
    paths = make_corpus(work / "uploads", args.scale)
    manifest = work / "uploads.txt"
    manifest.write_text("\n".join(paths) + "\n")
    print(f"{len(paths)} generated uploads; cluster logs in {work} (removed if the run ends well)", file=sys.stderr)

    # per runner: the Python whose nsfw-scan submits (a cluster's is the engines' environment,
    # with the Beam release of its job server), its flags, the process groups it runs in
    runners: dict[str, tuple[str, list[str], set[int]]] = {"local": (sys.executable, [], set())}
    started_clusters = []
    try:
        for engine, start in (("flink", clusters.start_flink), ("spark", clusters.start_spark)):
            (work / engine).mkdir()
            try:
                cluster = start(work / engine)
            except BaseException as exc:  # pieces missing: engine_pieces skips under pytest
                sys.exit(f"{engine}: {exc}")
            started_clusters.append(cluster)
            runners[engine] = (cluster.python, ["--config", engine, *cluster.flags],
                               {p.pid for p in cluster.procs.values()})

        print("| runner | images | wall s | start-up s | images/s after start-up | vs local | peak MiB (all processes) |")
        print("|---|---|---|---|---|---|---|")
        local_rate = None
        for round_ in range(args.repeat):
            for name, (python, flags, groups) in runners.items():
                output = work / f"out-{name}-{round_}"
                started = time.time()
                wall, peak = run_measured(python, ["run", "--manifest", manifest, "--output", output, *flags], groups)
                startup, rate, rows = timings(output, started)
                local_rate = rate if name == "local" else local_rate
                print(f"| {name} | {rows} | {wall:.1f} | {startup:.1f} | {rate:.1f} | {rate / local_rate:.2f} | "
                      f"{peak:,.0f} |", flush=True)
    finally:
        for cluster in started_clusters:
            cluster.stop()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
