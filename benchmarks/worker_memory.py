"""Resident memory of one worker process, and what a worker machine pays for it.

Measures, each in a fresh Python process:
- "light": what every SDK process imports to read, decode and preprocess (Beam, Pillow,
  NumPy, pyarrow, this package) without the model;
- "model": the same plus TensorFlow and the open_nsfw model, after scoring one batch.
Then prints the memory of a Dataflow-style worker that runs one SDK process per vCPU, with one
model per process (the default) and with one model shared by all processes
(``model_sharing.large_model: true``, which keeps the model in one extra process).

    python benchmarks/worker_memory.py [--batch-size 64]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

PROBE = r"""
import resource, sys
import apache_beam, numpy, PIL.Image, pyarrow
import nsfw_scan.transforms.load_steps, nsfw_scan.transforms.scoring, nsfw_scan.transforms.write
if sys.argv[1] == "model":
    import numpy as np
    from nsfw_scan.model.engines import TensorFlowScorer
    scorer = TensorFlowScorer()
    scorer.score_pixels(np.zeros((int(sys.argv[2]), 224, 224, 3), np.uint8))  # as the job scores
with open("/proc/self/status") as f:
    rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
print(rss // 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def measure(kind: str, batch: int) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, kind, str(batch)], capture_output=True, text=True, check=True)
    rss, peak = map(int, out.stdout.split()[-2:])
    return rss, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    light, light_peak = measure("light", args.batch_size)
    model, model_peak = measure("model", args.batch_size)
    print("| process | RSS MiB | peak RSS MiB |\n|---|---|---|")
    print(f"| SDK process without model | {light} | {light_peak} |")
    print(f"| SDK process with model, after a batch of {args.batch_size} | {model} | {model_peak} |")
    print()
    print("| worker vCPUs (one SDK process each) | one model per process, MiB | one shared model, MiB |")
    print("|---|---|---|")
    for vcpus in (1, 2, 4, 16):
        print(f"| {vcpus} | {vcpus * model_peak} | {vcpus * light_peak + model_peak} |")


if __name__ == "__main__":
    main()
