"""The job's settings that depend on the CPU, each against the defaults, side by side in one run.

The default job (the cascade, its first pass's precision chosen per worker process) on the upload
mix of ``benchmarks/end_to_end.py``, once per setting below and in rounds (every setting once per
round, in turn, each round starting one setting further, so that the machine's drift and a
setting's place in the round touch each alike): the decoding pool's size against
TensorFlow's threads, how a batch is split among the cores, and oneDNN's optimisations off. Per
setting: images/s after the model load (``images_per_s_after_load`` of the run's summary), the
median over the rounds, the median of its ratios to the default run of the same round, their
range, and the first pass's precision the workers chose.

    python benchmarks/cpu_knobs.py [--scale 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from end_to_end import make_corpus

from nsfw_scan.model.precision import cpu_description
from nsfw_scan.model.scorer import cpu_threads

CORES = cpu_threads()
# (label, configuration overlay, environment)
SETTINGS = [
    ("default", "", {}),
    ("decoding.threads 1", "decoding: {threads: 1}", {}),
    (f"decoding.threads {CORES + 1} (cores + 1)", f"decoding: {{threads: {CORES + 1}}}", {}),
    (f"decoding.threads {2 * CORES} (2 x cores)", f"decoding: {{threads: {2 * CORES}}}", {}),
    ("decoding.ahead 2 batches", "decoding: {ahead: 128}", {}),
    ("tensorflow.parallel_batches 1 (a batch on every core)", "tensorflow: {parallel_batches: 1}", {}),
    ("oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)", "", {"TF_ENABLE_ONEDNN_OPTS": "0"}),
]


def run_job(manifest: Path, output: Path, config: Path | None, env: dict) -> dict:
    flags = ["--config", str(config)] if config else []
    done = subprocess.run([sys.executable, "-m", "nsfw_scan.pipeline.cli", "run", "--manifest", str(manifest),
                           "--output", str(output), *flags], capture_output=True, text=True,
                          env={**os.environ, **env})
    if done.returncode:
        sys.exit(f"{output.name}: nsfw-scan run failed:\n{done.stderr[-3000:]}")
    return json.loads((output / "_SUMMARY.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--scale", type=int, default=4, help="the upload mix times this (45 images each)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nsfw-scan-knobs-") as folder:
        work = Path(folder)
        paths = make_corpus(work / "uploads", args.scale)
        manifest = work / "uploads.txt"
        manifest.write_text("\n".join(paths) + "\n")
        configs = {}
        for i, (label, overlay, _) in enumerate(SETTINGS):
            if overlay:
                configs[label] = work / f"setting-{i}.yaml"
                configs[label].write_text(overlay + "\n")
        rates: dict[str, list[float]] = {label: [] for label, _, _ in SETTINGS}
        chosen: dict[str, set] = {label: set() for label, _, _ in SETTINGS}
        for round_ in range(args.rounds):
            for i in range(len(SETTINGS)):  # each round starts one setting further (no setting always first)
                label, _, env = SETTINGS[(i + round_) % len(SETTINGS)]
                summary = run_job(manifest, work / f"out-{round_}-{i}", configs.get(label), env)
                rates[label].append(summary["images_per_s_after_load"])
                chosen[label] |= set(summary.get("first_pass_precisions") or {})
                print(f"round {round_ + 1}: {label}: {rates[label][-1]:.1f} images/s", file=sys.stderr, flush=True)
    print(f"{len(paths)} uploads, {args.rounds} rounds; {CORES} cores: {cpu_description()}\n")
    print("| setting | images/s after load (median) | vs default (median of the rounds' ratios) | range | "
          "first pass |")
    print("|---|---|---|---|---|")
    for label, _, _ in SETTINGS:
        ratios = [r / d for r, d in zip(rates[label], rates["default"])]
        print(f"| {label} | {statistics.median(rates[label]):.1f} | {statistics.median(ratios):.3f} | "
              f"{min(ratios):.3f}-{max(ratios):.3f} | {', '.join(sorted(chosen[label])) or '-'} |")


if __name__ == "__main__":
    main()
