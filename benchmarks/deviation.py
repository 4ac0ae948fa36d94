"""How far the faster paths move scores from the exact one (Yahoo's loader, float32), view by
view: the ``fast`` loader, the ``bfloat16`` precision, and both together, which is the cascade's
first pass. The largest deviation of the first pass over every corpus is what the cascade's
margin (``cascade.margin``) must exceed, with a safety factor.

Corpora: the shared real and hostile corpora (where ``../shared`` exists), the committed corpus
(tests/corpus), generated upload-like files (see end_to_end.py) and fuzzed files (seeded
mutations of the small files of the corpora: bit flips, truncations, splices, overwritten
headers). Every view of every file both loaders decode is scored (``views: all``). Prints max,
p99 and p99.9 |Δ| against the exact scores, the share of decisions that change, and the share
of views the cascade would score again (first-pass score within the margin of a threshold), and
the files a variant's loader decodes that Yahoo's does not (the cascade would score those where
the exact job gives an error row; those Yahoo's alone decodes go the exact way anyway).

    python benchmarks/deviation.py [--scale 2] [--fuzzed 2000] [--margin 0.05]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from end_to_end import make_corpus

from nsfw_scan.model.decision import Thresholds
from nsfw_scan.model.engines import TensorFlowScorer
from nsfw_scan.model.errors import Unscorable
from nsfw_scan.model.pictures.preprocess import load_image
from nsfw_scan.model.pictures.views import ViewPolicy

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpus"
COMMITTED = ROOT / "tests" / "corpus"


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".md", ".txt", ".json"))


def fuzzed(seeds: list[bytes], count: int, seed: int = 7) -> list[bytes]:
    """``count`` seeded mutations of ``seeds``: the same files every time."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        data = bytearray(seeds[rng.integers(len(seeds))])
        for _ in range(int(rng.integers(1, 4))):
            if not data:
                break
            op = rng.integers(4)
            if op == 0:  # flip bits
                for i in rng.integers(0, len(data), int(rng.integers(1, 9))):
                    data[i] ^= 1 << int(rng.integers(8))
            elif op == 1:  # truncate
                del data[int(rng.integers(len(data))):]
            elif op == 2:  # splice another file's tail
                other = seeds[rng.integers(len(seeds))]
                data[int(rng.integers(len(data) + 1)):] = other[int(rng.integers(len(other) + 1)):]
            else:  # overwrite the header
                n = int(rng.integers(1, min(64, len(data)) + 1))
                data[:n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        out.append(bytes(data))
    return out


def view_pixels(blobs: list[bytes], loader: str) -> dict[tuple[int, int], np.ndarray]:
    """(file index, view index) -> the view's uint8 pixels, for the files ``loader`` decodes."""
    views = {}
    for i, data in enumerate(blobs):
        try:
            loaded = load_image(data, loader, policy=ViewPolicy())
        except Unscorable:
            continue
        for j, view in enumerate(loaded.views):
            views[i, j] = view.pixels
    return views


def scores(scorer: TensorFlowScorer, pixels: dict) -> dict:
    """Each view's score (a region map's: its highest window's)."""
    keys = list(pixels)
    out = {}
    for start in range(0, len(keys), 32):
        chunk = keys[start:start + 32]
        out.update(zip(chunk, [score for score, _ in scorer.score_views([pixels[k] for k in chunk])]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--scale", type=int, default=2, help="generated uploads: multiples of end_to_end.py's mix")
    parser.add_argument("--fuzzed", type=int, default=2000, help="fuzzed files")
    parser.add_argument("--margin", type=float, default=0.05, help="the cascade's margin, for the share re-scored")
    args = parser.parse_args()
    exact_scorer, bf16_scorer, thresholds = TensorFlowScorer(), TensorFlowScorer(precision="bfloat16"), Thresholds()
    corpora: dict[str, list[bytes]] = {}
    if SHARED.is_dir():
        corpora["shared real"] = [p.read_bytes() for p in files_in(SHARED / "real")]
        corpora["shared hostile"] = [p.read_bytes() for p in files_in(SHARED / "hostile")]
    corpora["committed"] = [p.read_bytes() for p in files_in(COMMITTED)]
    with tempfile.TemporaryDirectory(prefix="nsfw-scan-deviation-") as folder:  # read into memory, then removed
        corpora["generated uploads"] = [Path(p).read_bytes() for p in make_corpus(Path(folder), args.scale)]
    seeds = sorted((data for blobs in corpora.values() for data in blobs if 0 < len(data) <= 16_384), key=len)
    corpora["fuzzed"] = fuzzed(seeds, args.fuzzed)

    variants = {"fast loader": (exact_scorer, "fast"), "bfloat16": (bf16_scorer, "yahoo"),
                "fast loader + bfloat16 (first pass)": (bf16_scorer, "fast")}
    print(f"margin {args.margin}; thresholds {thresholds.safe_below}, {thresholds.nsfw_from}\n")
    print("| corpus | variant | files | views | max abs Δ | p99 abs Δ | p99.9 abs Δ | decisions changed | "
          "views within the margin | decoded by it only |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    largest = 0.0
    for name, blobs in corpora.items():
        exact = scores(exact_scorer, view_pixels(blobs, "yahoo"))
        for variant, (scorer, loader) in variants.items():
            other = scores(scorer, view_pixels(blobs, loader))
            common = sorted(set(exact) & set(other))
            delta = np.array([abs(exact[k] - other[k]) for k in common])
            changed = sum(thresholds.decide(exact[k]) != thresholds.decide(other[k]) for k in common)
            near = sum(thresholds.near(other[k], args.margin) for k in common)
            files = len({k[0] for k in common})
            only = len({k[0] for k in other} - {k[0] for k in exact})
            print(f"| {name} | {variant} | {files} | {len(common)} | {delta.max():.2e} | "
                  f"{np.percentile(delta, 99):.2e} | {np.percentile(delta, 99.9):.2e} | "
                  f"{changed / len(common):.2%} | {near / len(common):.2%} | {only} |", flush=True)
            if variant.endswith("(first pass)"):
                largest = max(largest, float(delta.max()))
    print(f"\nlargest first-pass deviation {largest:.4f}: margin {args.margin} is {args.margin / largest:.1f}x it")


if __name__ == "__main__":
    main()
