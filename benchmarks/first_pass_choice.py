"""The first pass's precision as a worker chooses it (``cascade.precision: auto``), against the
whole model's speed in each precision on the same CPU.

Each round starts a fresh process, as a worker is: it times the chooser's block in float32 and
bfloat16 (``model.precision.fastest_precision``, what it costs and what it picks), then the whole
network in both precisions at the job's batch size, alternately. The table says whether the
block's ratio picks what the whole network's ratio would, round by round.

    python benchmarks/first_pass_choice.py [--rounds 3] [--batch 32] [--seconds 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

ROUND = """
import json, sys, time
import tensorflow as tf  # imported first, as in a worker, where the model's load imports it
from nsfw_scan.model.bench import images_per_second
from nsfw_scan.model.precision import choose, cpu_description, fastest_precision
from nsfw_scan.model.engines import TensorFlowScorer, set_threads
from nsfw_scan.model.scorer import cpu_threads

batch, seconds = int(sys.argv[1]), float(sys.argv[2])
set_threads(0, 0, cpu_threads())  # as the scorer sizes TensorFlow's pools before the choice
choice = fastest_precision()
scorers = {p: TensorFlowScorer(precision=p) for p in ("float32", "bfloat16")}
rates = {p: 0.0 for p in scorers}
for _ in range(2):  # alternately, the best of two
    for p, scorer in scorers.items():
        rates[p] = max(rates[p], images_per_second(scorer.score, batch, seconds))
print(json.dumps({"choice": choice.precision, "block": choice.speeds["bfloat16"] / choice.speeds["float32"],
                  "cost": choice.seconds, "model": rates["bfloat16"] / rates["float32"], "rates": rates,
                  "right": choose(rates), "cpu": cpu_description()}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    rows = []
    for _ in range(args.rounds):
        out = subprocess.run([sys.executable, "-c", ROUND, str(args.batch), str(args.seconds)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.splitlines()[-1]))
    print(f"CPU: {rows[0]['cpu']}\n")
    print("| round | block bf16/f32 | chosen | choice's cost (s) | model f32 img/s | model bf16 img/s "
          "| model bf16/f32 | the model's ratio would choose |")
    print("|---|---|---|---|---|---|---|---|")
    for i, row in enumerate(rows, 1):
        print(f"| {i} | {row['block']:.2f} | {row['choice']} | {row['cost']:.2f} | {row['rates']['float32']:.1f} | "
              f"{row['rates']['bfloat16']:.1f} | {row['model']:.2f} | {row['right']} |")


if __name__ == "__main__":
    main()
