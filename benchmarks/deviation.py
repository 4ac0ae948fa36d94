"""How far the opt-in speed-ups move scores from the exact path: the ``fast`` loader, the
``bfloat16`` precision of the TensorFlow engine, and both together.

Corpora: the shared real and hostile corpora (files both loaders decode) and a generated set of
upload-like photos (see end_to_end.py). Prints max and p99 |Δ| against the exact scores
(``yahoo`` loader, float32), the share of decisions that change, and preprocessing CPU per image.

    python benchmarks/deviation.py [--scale 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from end_to_end import make_corpus
from nsfw_scan.model.decision import Thresholds
from nsfw_scan.model.preprocess import ImageError, load_image
from nsfw_scan.model.scorer import Scorer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def scores(scorer, files, loader):
    arrays, kept, cpu = [], [], 0.0
    for path in files:
        data = Path(path).read_bytes()
        started = time.process_time()
        try:
            arrays.append(load_image(data, loader).array)
            kept.append(path)
        except ImageError:
            pass
        cpu += time.process_time() - started
    out = np.concatenate([scorer.score(np.stack(arrays[i:i + 64])) for i in range(0, len(arrays), 64)])
    return dict(zip(kept, out.tolist())), cpu / max(len(files), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--scale", type=int, default=2)
    args = parser.parse_args()
    exact_scorer, bf16_scorer, thresholds = Scorer(), Scorer(precision="bfloat16"), Thresholds()
    corpora = {
        "shared real": sorted(str(p) for p in (SHARED / "real").rglob("*") if p.is_file()),
        "shared hostile": sorted(str(p) for p in (SHARED / "hostile").rglob("*") if p.is_file()),
        "generated uploads": make_corpus(Path(tempfile.mkdtemp(prefix="nsfw-scan-fast-")), args.scale),
    }
    variants = {"fast loader": (exact_scorer, "fast"), "bfloat16": (bf16_scorer, "yahoo"),
                "fast loader + bfloat16": (bf16_scorer, "fast")}
    print("| corpus | variant | images | max abs Δ | p99 abs Δ | decisions changed | preprocess CPU ms (exact → variant) |")
    print("|---|---|---|---|---|---|---|")
    for name, files in corpora.items():
        exact, exact_cpu = scores(exact_scorer, files, "yahoo")
        for variant, (scorer, loader) in variants.items():
            other, other_cpu = scores(scorer, files, loader)
            common = sorted(set(exact) & set(other))
            delta = np.array([abs(exact[k] - other[k]) for k in common])
            changed = sum(thresholds.decide(exact[k]) != thresholds.decide(other[k]) for k in common)
            print(f"| {name} | {variant} | {len(common)} | {delta.max():.2e} | {np.percentile(delta, 99):.2e} | "
                  f"{changed / len(common):.2%} | {exact_cpu * 1e3:.1f} → {other_cpu * 1e3:.1f} |", flush=True)


if __name__ == "__main__":
    main()
