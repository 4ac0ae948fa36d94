"""Rows/s and peak memory of ``nsfw-scan run`` as the manifest grows (10k, 100k, 1M rows).

Each manifest holds N distinct URIs: a fixed set of real images (hard links to the shared
corpus's photos, so every URI is a distinct file) plus URIs of uploads that no longer exist,
which take the cheap error path. The job reads, de-duplicates, loads, scores and writes every
row, so the rows/s column is the per-row overhead of the pipeline and the peak-RSS column
shows whether any step holds the manifest, the URI set or the results in memory.

    python benchmarks/scale.py [--rows 10000,100000,1000000] [--images 64] [-- BEAM FLAGS]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from measure import run_cli

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "real"


def make_manifest(directory: Path, rows: int, images: int) -> Path:
    links = directory / "images"
    links.mkdir(parents=True, exist_ok=True)
    sources = sorted(p for p in CORPUS.iterdir() if p.is_file())
    real = []
    for i in range(min(images, rows)):
        link = links / f"{i:06d}{sources[i % len(sources)].suffix}"
        if not link.exists():
            os.link(sources[i % len(sources)], link)
        real.append(str(link))
    manifest = directory / f"manifest-{rows}.csv"
    step = max(rows // max(len(real), 1), 1)
    with open(manifest, "w") as f:
        f.write("upload_id,uri\n")
        for row in range(rows):
            k = row // step
            uri = real[k] if row % step == 0 and k < len(real) else f"{directory}/gone/{row:08d}.jpg"
            f.write(f"u{row},{uri}\n")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--rows", default="10000,100000,1000000")
    parser.add_argument("--images", type=int, default=64, help="real images among the rows")
    parser.add_argument("beam", nargs="*", help="extra flags for nsfw-scan run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nsfw-scan-scale-"))
    print("| rows | scored | seconds | rows/s | peak RSS MiB |\n|---|---|---|---|---|", flush=True)
    try:
        for rows in map(int, args.rows.split(",")):
            manifest = make_manifest(work, rows, args.images)
            output = work / f"out-{rows}"
            stdout, seconds, peak = run_cli("run", "--manifest", manifest, "--output", output, *args.beam)
            scored = next(line for line in stdout.splitlines() if line.startswith("scored")).split()[1]
            print(f"| {rows} | {scored} | {seconds:.1f} | {rows / seconds:.0f} | {peak} |", flush=True)
            shutil.rmtree(output)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
