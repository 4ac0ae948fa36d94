"""The default job (``nsfw-scan run``, the cascade) on the upload mix, with this installation and
with another one (``--vs PYTHON``: an interpreter with another nsfw-scan installed, e.g. an
earlier commit's), in turn, round by round: images/s after the model load (from the job's
summary), wall seconds and peak memory, their medians and the ratios.

    python benchmarks/job_vs.py --vs PYTHON [--scale 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from end_to_end import make_corpus
from measure import run_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vs", required=True, help="another Python with nsfw-scan installed")
    parser.add_argument("--scale", type=int, default=10, help="45 uploads of the mix per unit")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pythons = {"this": sys.executable, "vs": args.vs}
    with tempfile.TemporaryDirectory(prefix="nsfw-job-vs-") as tmp:
        uris = make_corpus(Path(tmp) / "uploads", args.scale)
        manifest = Path(tmp) / "manifest.txt"
        manifest.write_text("\n".join(uris) + "\n")
        print(f"{len(uris)} uploads; rounds of: " + ", ".join(pythons), flush=True)
        figures = {who: {"images/s": [], "wall s": [], "peak MiB": []} for who in pythons}
        for _ in range(args.rounds):
            for who, python in pythons.items():
                output = Path(tmp) / f"out-{who}"
                _, seconds, peak = run_cli("run", "--manifest", manifest, "--output", output, python=python)
                summary = json.loads((output / "_SUMMARY.json").read_text())
                figures[who]["images/s"].append(summary["images_per_s_after_load"])
                figures[who]["wall s"].append(seconds)
                figures[who]["peak MiB"].append(peak)
                shutil.rmtree(output)
        print("| figure (median) | this | vs | vs/this |\n|---|---|---|---|")
        for name in figures["this"]:
            this, vs = (statistics.median(figures[who][name]) for who in pythons)
            print(f"| {name} | {this:.1f} | {vs:.1f} | {vs / this:.2f} |")


if __name__ == "__main__":
    main()
