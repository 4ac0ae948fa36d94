"""What known-content matching costs: PDQ hashing on every row, and matching against lists of
10k, 100k and 1M hashes, side by side in one run on the upload-like mix of ``end_to_end.py``.

1. CPU per image, one thread, of each preprocessing stage of the exact (``yahoo``) and the
   first-pass (``fast``) loader, the PDQ hash among them, and the hash's share of the image's
   whole CPU (preprocessing and the float32 model); the hash's fixed cost for an image size not
   seen before in the process (its least-squares estimator, kept for the last 256 lengths).
2. Matching: building each list's index, its memory, and the time to match one view's hash.
3. ``nsfw-scan run`` on the mix without a list and with a 100k list, alternated, ``--rounds``
   times: images/s after the model load and the ratio.

    python benchmarks/matching.py [--scale 2] [--rounds 2] [--no-job]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from end_to_end import MIX, make_corpus, model_cpu_per_image
from measure import run_cli

from nsfw_scan.model.hash_list import HashList
from nsfw_scan.model.pictures import pdq
from nsfw_scan.model.pictures.preprocess import _decode_rgb, open_image
from nsfw_scan.model.pictures.yahoo_steps import finish, hash_as_displayed, resize


def stage_cpu(paths: list[str], loader: str) -> dict[str, float]:
    """CPU ms per image of decode, resize, JPEG + crop, and the PDQ hash (sizes already seen:
    a first pass over the files fills the hash's estimators)."""
    for path in paths:
        data = Path(path).read_bytes()
        image = open_image(data, 10**9)
        size = image.size
        decoded = _decode_rgb(image, draft=loader == "fast")
        hash_as_displayed(resize(decoded), decoded.size, size)
    stages = dict.fromkeys(("decode", "resize", "jpeg+crop", "pdq"), 0.0)
    for path in paths:
        data = Path(path).read_bytes()
        image = open_image(data, 10**9)
        size = image.size
        t0 = time.process_time()
        decoded = _decode_rgb(image, draft=loader == "fast")
        t1 = time.process_time()
        resized = resize(decoded)
        t2 = time.process_time()
        finish(resized)
        t3 = time.process_time()
        hash_as_displayed(resized, decoded.size, size)
        t4 = time.process_time()
        for stage, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            stages[stage] += seconds * 1000 / len(paths)
    return stages


def new_size_ms(count: int = 20) -> float:
    """Median ms of the hash's estimator for image sizes not seen before (phone to web sizes)."""
    rng = np.random.default_rng(1)
    times = []
    for width in rng.integers(300, 4500, count):
        started = time.process_time()
        pdq._estimator(int(width), int(width), 256)
        times.append((time.process_time() - started) * 1000)
    return statistics.median(times)


def random_list(count: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 32), dtype=np.uint8), [f"known-{i % 50}" for i in range(count)]


def write_list(path: Path, hashes: np.ndarray, labels: list[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["pdq", "label"])
        writer.writerows((row.tobytes().hex(), label) for row, label in zip(hashes, labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=2, help="copies of the mix (45 files each)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-job", action="store_true", help="skip the end-to-end runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = make_corpus(work / "corpus", args.scale, MIX)
        model_ms = model_cpu_per_image() * 1000
        print(f"1. CPU per image, one thread ({len(paths)} files; model float32 {model_ms:.1f} ms)")
        print(f"{'loader':8} {'decode':>8} {'resize':>8} {'jpeg+crop':>10} {'pdq':>7} {'pdq/preprocess':>15} {'pdq/(all+model)':>16}")
        for loader in ("yahoo", "fast"):
            s = stage_cpu(paths, loader)
            pre = sum(s.values())
            print(f"{loader:8} {s['decode']:8.2f} {s['resize']:8.2f} {s['jpeg+crop']:10.2f} {s['pdq']:7.3f} "
                  f"{s['pdq'] / pre:15.3f} {s['pdq'] / (pre + model_ms):16.3f}")
        print(f"pdq's estimator for a size not seen before: {new_size_ms():.1f} ms (once per size and process)")

        queries = [hash_as_displayed(resize(_decode_rgb(open_image(Path(p).read_bytes(), 10**9))), (1, 1), (1, 1)).hex
                   for p in paths[:200]]
        print("\n2. Matching one view's hash")
        print(f"{'list':>9} {'build s':>8} {'MiB':>6} {'µs/hash':>8}")
        for count in (10_000, 100_000, 1_000_000):
            hashes, labels = random_list(count, count)
            started = time.perf_counter()
            index = HashList(hashes, labels)
            build = time.perf_counter() - started
            memory = index.nbytes / 2**20
            started = time.perf_counter()
            for query in queries:
                index.nearest(query)
            each = (time.perf_counter() - started) / len(queries) * 1e6
            print(f"{count:9d} {build:8.2f} {memory:6.0f} {each:8.0f}")

        if args.no_job:
            return
        listed = work / "known.csv"
        write_list(listed, *random_list(100_000, 3))
        manifest = work / "manifest.txt"
        manifest.write_text("".join(f"{p}\n" for p in paths))
        rates = {"no list": [], "100k list": []}
        for r in range(args.rounds):
            for name, extra in (("no list", []), ("100k list", ["--match-list", str(listed)])):
                out = work / f"out-{r}-{name.replace(' ', '')}"
                run_cli("run", "--manifest", manifest, "--output", out, *extra)
                summary = json.loads((out / "_SUMMARY.json").read_text())
                rates[name].append(summary["images_per_s_after_load"])
        print(f"\n3. nsfw-scan run, {len(paths)} files, images/s after the model load ({args.rounds} rounds, alternated)")
        for name, values in rates.items():
            print(f"{name:10} {statistics.median(values):7.1f}  ({', '.join(f'{v:.1f}' for v in values)})")
        ratio = statistics.median(rates["100k list"]) / statistics.median(rates["no list"])
        print(f"ratio 100k list / no list: {ratio:.3f}")


if __name__ == "__main__":
    main()
