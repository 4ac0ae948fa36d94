"""How long ``nsfw-scan review`` takes on a large results folder: choosing the items from every
row, the thumbnails, and a second page that reuses them.

Writes a results folder of ``--rows`` rows (default 100,000, in 10 result files as a run writes
them; scores drawn as a nightly scan's are, 0.2/0.8 decisions, 1 % error rows), whose URIs are
distinct symbolic links to the committed photos (so every chosen item's thumbnail is a real
decode), then makes the page twice and prints a table. Each line also at a tenth of the rows,
side by side, to show how the cost grows with the folder.

    python benchmarks/review_page.py [--rows 100000] [--work DIR]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from nsfw_scan.pipeline.config import Config
from nsfw_scan.pipeline.review import Choice, write_review
from nsfw_scan.storage.schema import Column, output_schema

REAL = Path(__file__).resolve().parents[1] / "tests" / "corpus" / "real"
FILES = 10


def results_folder(folder: Path, rows: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    uploads, out = folder / "uploads", folder / "out" / "run-20261207T000000000000Z"
    uploads.mkdir(parents=True)
    out.mkdir(parents=True)
    photos = sorted(REAL.iterdir())
    uris = []
    for i in range(rows):
        link = uploads / f"upload-{i:07d}{photos[i % len(photos)].suffix}"
        os.symlink(photos[i % len(photos)], link)
        uris.append(str(link))
    scores = rng.beta(0.3, 6.0, rows).astype(np.float32)  # most near 0, a long tail
    error = rng.random(rows) < 0.01
    decision = np.where(error, "error", np.where(scores < 0.2, "safe", np.where(scores >= 0.8, "nsfw", "review")))
    schema = output_schema({})
    now = datetime.datetime.now(datetime.timezone.utc)
    columns = {
        Column.URI: uris,
        Column.SCORE: np.where(error, np.nan, scores),
        Column.DECISION: decision,
        Column.SAFE_BELOW: np.where(error, np.nan, 0.2),
        Column.NSFW_FROM: np.where(error, np.nan, 0.8),
        Column.ERROR_KIND: np.where(error, "undecodable", None),
        Column.ERROR: np.where(error, "not an image format Pillow can read", None),
        Column.VIEW: np.where(error, None, "yahoo"),
        Column.YAHOO_SCORE: np.where(error, np.nan, scores),
        Column.SOURCE_MANIFEST: ["uploads.txt"] * rows,
        Column.SOURCE_LINE: np.arange(1, rows + 1),
        Column.SCORED_AT: [now] * rows,
    }
    arrays = []
    for field in schema:
        values = columns.get(field.name)
        if values is None:
            arrays.append(pa.nulls(rows, field.type))
        else:
            array = pa.array(values, from_pandas=True)
            arrays.append(array.cast(field.type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    step = -(-rows // FILES)
    for k in range(FILES):
        pq.write_table(table.slice(k * step, step), out / f"part-{k:05d}-of-{FILES:05d}.parquet")
    return folder / "out"


def measure(work: Path, rows: int) -> dict:
    folder = work / f"rows-{rows}"
    shutil.rmtree(folder, ignore_errors=True)
    started = time.monotonic()
    out = results_folder(folder, rows)
    made_s = time.monotonic() - started
    first = write_review(str(out), Config(), Choice())
    second = write_review(str(out), Config(), Choice())
    page = out / "_review" / "index.html"
    return {"rows": rows, "folder_s": made_s, "items": first["items"], "choose_s": first["choose_s"],
            "first_s": first["seconds"], "made": first["thumbnails_made"], "second_s": second["seconds"],
            "reused": second["thumbnails_reused"], "page_kb": page.stat().st_size / 1024}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--work", type=Path, help="folder for the generated results (default: a temporary one)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="review-bench-"))
    results = [measure(work, max(1, args.rows // 10)), measure(work, args.rows)]
    print(f"{os.cpu_count()} CPUs; the default choice: the review band (1000 at most), 1% audit samples (1000 at most), "
          f"errors (1000 at most)")
    print("| rows | items | choose rows (s) | first page, thumbnails made (s) | made | second page, reused (s) "
          "| page (KiB) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['rows']:,} | {r['items']} | {r['choose_s']:.2f} | {r['first_s']:.1f} | {r['made']} "
              f"| {r['second_s']:.2f} | {r['page_kb']:.0f} |")
    small, large = results
    print(f"ratio, {large['rows']:,} rows to {small['rows']:,}: choose {large['choose_s'] / small['choose_s']:.1f}x, "
          f"second page {large['second_s'] / small['second_s']:.1f}x")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
