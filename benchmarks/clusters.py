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
  Python workers they start), so idle cluster memory counts too; and the largest one process
  of each kind reached (a JVM, a Python process: the launcher, a local worker or an engine's
  SDK worker), what each machine of a cluster must have room for per process.

Then the same run on each cluster with a worker lost midway (``--no-faults``: not): once half the
uploads have durable rows, a Flink TaskManager is SIGKILLed with its Python workers and a
replacement started (the cluster has the restart strategy docs/runners.md recommends), or
Spark's executors are SIGKILLed (Spark starts new ones). "fault cost s" is that run's wall time
less the same engine's undisturbed run; the rows are checked to be one per URI.

    python benchmarks/clusters.py [--scale 45] [--engines flink,spark] [--no-faults] [--repeat 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
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
from support.jobs import durable_rows  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def _sessions() -> dict[int, int]:
    """pid -> session of every process (a cluster process's Python workers, started by Beam's
    boot program, stay in its session, not always in its process group)."""
    sessions = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                sessions[int(entry)] = int(stat.rsplit(")", 1)[1].split()[3])
            except (OSError, IndexError, ValueError):
                pass
    return sessions


def _rss_mib(pids) -> float:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total / 2**20


def _kind(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "other"
    return "jvm" if b"java" in command.split(b"\0", 1)[0] else "python" if b"python" in command else "other"


@dataclasses.dataclass
class Measured:
    wall: float  # s
    peak: float  # MiB, every watched process together
    largest: dict[str, float]  # kind -> MiB of the largest one process of that kind


def run_measured(python: str, argv: list[str], sessions, fault=None) -> Measured:
    """Run ``nsfw-scan`` of ``python``'s environment in a session of its own; returns its
    wall time and the memory of it and of the sessions ``sessions()`` gives. ``fault``:
    called once from the sampler, when it returns True (it injects the fault then)."""
    peak, largest, done = [0.0], {}, threading.Event()
    started = time.time()
    proc = subprocess.Popen([python, "-m", "nsfw_scan.pipeline.cli", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def sample():
        pending = fault
        while not done.is_set():
            watched = sessions() | {proc.pid}
            pids = [p for p, g in _sessions().items() if g in watched]
            peak[0] = max(peak[0], _rss_mib(pids))
            for pid in pids:
                kind = _kind(pid)
                largest[kind] = max(largest.get(kind, 0.0), _rss_mib([pid]))
            if pending and pending():
                pending = None
            done.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    summary = json.loads((Path(argv[argv.index("--output") + 1]) / "_SUMMARY.json").read_text()) \
        if proc.returncode == 1 else {}
    if proc.returncode and "accounting_problem" not in summary:  # retried work counted twice: rows kept, said
        sys.exit(f"nsfw-scan {' '.join(map(str, argv))} failed:\n{err[-3000:]}")
    print(out, file=sys.stderr)  # the run's summary, as printed
    return Measured(time.time() - started, peak[0], largest)


def timings(output: Path, started: float, uris: list[str]) -> tuple[float, float, int]:
    """(start-up s, images/s after start-up, rows) from the rows' ``scored_at``; the rows must
    be one per URI."""
    table = pq.read_table(output, columns=["uri", "scored_at"])
    if sorted(table["uri"].to_pylist()) != sorted(uris):
        sys.exit(f"{output}: not one row per URI ({table.num_rows} rows for {len(uris)} uploads)")
    stamps = sorted(t.timestamp() for t in table["scored_at"].to_pylist())
    span = stamps[-1] - stamps[0]
    return stamps[0] - started, (len(stamps) - 1) / span if span > 0 else float("nan"), len(stamps)


def lose_a_worker(cluster, output: Path, uploads: int):
    """The fault: once half the uploads have durable rows, a Flink TaskManager killed (with its
    Python workers) and a replacement started, or Spark's executors killed."""
    def inject() -> bool:
        if durable_rows(output) < uploads // 2:
            return False
        if cluster.engine == "flink":
            cluster.kill("taskmanager1")
            cluster.start_worker("taskmanager3")
        else:
            for pid in cluster.executor_pids():
                os.kill(pid, signal.SIGKILL)
        print(f"{cluster.engine}: worker killed at {time.strftime('%X')}", file=sys.stderr)
        return True
    return inject


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--scale", type=int, default=45, help="the upload mix times this (45 images each)")
    parser.add_argument("--engines", default="flink,spark", help="the clusters to start (flink, spark)")
    parser.add_argument("--no-faults", action="store_true", help="no runs with a lost worker")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nsfw-scan-engines-"))
    paths = make_corpus(work / "uploads", args.scale)
    manifest = work / "uploads.txt"
    manifest.write_text("\n".join(paths) + "\n")
    print(f"{len(paths)} generated uploads; cluster logs in {work} (removed if the run ends well)", file=sys.stderr)

    # per runner: the Python whose nsfw-scan submits (a cluster's is the engines' environment,
    # with the Beam release of its job server), its flags, and its cluster (None: the local runner)
    runners: dict[str, tuple[str, list[str], object]] = {"local": (sys.executable, [], None)}
    started_clusters = []
    try:
        starts = {"flink": clusters.start_flink, "spark": clusters.start_spark}
        for engine in args.engines.split(","):
            start = starts[engine]
            (work / engine).mkdir()
            try:
                cluster = start(work / engine)
            except BaseException as exc:  # pieces missing: engine_pieces skips under pytest
                sys.exit(f"{engine}: {exc}")
            started_clusters.append(cluster)
            runners[engine] = (cluster.python, ["--config", engine, *cluster.flags], cluster)

        print("| runner | images | wall s | start-up s | images/s after start-up | vs local | fault cost s | "
              "peak MiB (all processes) | largest JVM MiB | largest Python MiB |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        local_rate, walls = None, {}
        for round_ in range(args.repeat):
            for name, (python, flags, cluster) in runners.items():
                for faulty in (False, True) if cluster and not args.no_faults else (False,):
                    label = f"{name}, a worker lost midway" if faulty else name
                    output = work / f"out-{name}-{round_}{'-fault' if faulty else ''}"
                    sessions = (lambda c=cluster: {p.pid for p in c.procs.values()}) if cluster else set
                    fault = lose_a_worker(cluster, output, len(paths)) if faulty else None
                    started = time.time()
                    measured = run_measured(python, ["run", "--manifest", manifest, "--output", output, *flags],
                                            sessions, fault)
                    startup, rate, rows = timings(output, started, paths)
                    local_rate = rate if name == "local" else local_rate
                    cost = f"{measured.wall - walls[name]:.1f}" if faulty else ""
                    walls.setdefault(name, measured.wall)
                    print(f"| {label} | {rows} | {measured.wall:.1f} | {startup:.1f} | {rate:.1f} | "
                          f"{rate / local_rate:.2f} | {cost} | {measured.peak:,.0f} | "
                          f"{measured.largest.get('jvm', 0):,.0f} | {measured.largest.get('python', 0):,.0f} |",
                          flush=True)
    finally:
        for cluster in started_clusters:
            cluster.stop()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
