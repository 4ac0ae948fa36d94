"""Model-only throughput: the TensorFlow engine against onnxruntime on the same weights.

Both engines are measured alternately in one process, several rounds, so a slow moment of a
shared machine hits both; the table gives the best round of each and their ratio.

    python benchmarks/model_speed.py [--batches 1,8,32,64] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse

from nsfw_scan.model.bench import images_per_second
from nsfw_scan.model.engine_specs import OnnxRuntimeSpec, TensorFlowSpec
from nsfw_scan.model.scorer import cpu_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--batches", default="1,8,32,64")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    scorers = {"tensorflow": TensorFlowSpec().load(), "onnxruntime": OnnxRuntimeSpec().load(),
               "tensorflow bfloat16": TensorFlowSpec(precision="bfloat16").load()}
    print(f"{cpu_threads()} CPU threads; model ≈ 2.1 GFLOP per image\n")
    print("| batch | TensorFlow img/s | onnxruntime img/s | TF / ORT | TF GFLOP/s | TF bfloat16 img/s | bf16 / ORT |")
    print("|---|---|---|---|---|---|---|")
    for batch in map(int, args.batches.split(",")):
        best = {name: 0.0 for name in scorers}
        for _ in range(args.rounds):
            for name, scorer in scorers.items():
                best[name] = max(best[name], images_per_second(scorer.score, batch, args.seconds))
        tf_rate, ort_rate, bf16 = best["tensorflow"], best["onnxruntime"], best["tensorflow bfloat16"]
        print(f"| {batch} | {tf_rate:.1f} | {ort_rate:.1f} | {tf_rate / ort_rate:.2f} | {tf_rate * 2.1:.0f} | "
              f"{bf16:.1f} | {bf16 / ort_rate:.2f} |", flush=True)


if __name__ == "__main__":
    main()
