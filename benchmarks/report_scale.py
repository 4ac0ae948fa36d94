"""Seconds and peak memory of the commands that read a whole results folder (``report``, ``export``,
``hashes``) on a folder of many rows, and the same against a second installation, side by side.

Writes a results folder of ``--rows`` rows (default 1,000,000) in ``--files`` result files of one
run: scores spread like a night's uploads (most safe, a few in review or nsfw), 2% error rows,
one row in 50 decided by another view (frames, regions), one in 500 matched by a hash list, and
one file an older nsfw-scan wrote (no ``error_kind``, ``yahoo_pdq``, ``view_score`` columns),
whose missing columns the readers fill in. Then times each command on it, alternating between
this installation and ``--vs PYTHON`` (an interpreter with another nsfw-scan installed, e.g. an
earlier commit's), round by round, and prints the medians and their ratios.

    python benchmarks/report_scale.py [--rows 1000000] [--files 8] [--rounds 3] [--vs PYTHON]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from measure import run_cli

from nsfw_scan.storage.schema import Column, output_schema

OLDER_COLUMNS = (Column.ERROR_KIND, Column.YAHOO_PDQ, Column.YAHOO_PDQ_QUALITY, Column.VIEW_SCORE)


def result_table(rows: int, seed: int) -> pa.Table:
    """``rows`` rows of the result schema (and a manifest column, ``upload_id``)."""
    rng = np.random.default_rng(seed)
    score = np.clip(rng.beta(0.4, 6.0, rows), 0, 1).astype(np.float32)
    error = rng.random(rows) < 0.02
    decision = np.where(score < 0.2, "safe", np.where(score >= 0.8, "nsfw", "review")).astype(object)
    decision[error] = "error"
    kinds = np.array(["not_found", "decode_error", "too_large", "timeout"], dtype=object)
    kind = np.where(error, kinds[rng.integers(0, 4, rows)], None)
    other = ~error & (rng.random(rows) < 0.02)
    views = np.array(["frame 3", "region 0,0,224,224", "rotated"], dtype=object)
    view = np.where(error, None, np.where(other, views[rng.integers(0, 3, rows)], "yahoo"))
    yahoo = np.where(other, score * rng.random(rows), score).astype(np.float32)
    matched = ~error & (rng.random(rows) < 0.002)
    pdq = np.array([f"{v:064x}" for v in rng.integers(0, 2**62, rows)], dtype=object)
    start = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
    scored_at = [start + datetime.timedelta(milliseconds=int(ms)) for ms in np.sort(rng.integers(0, 3.6e6, rows))]
    columns = {
        Column.URI: [f"s3://uploads/2026/12/01/{seed:02d}/{i:08d}.jpg" for i in range(rows)],
        "upload_id": [f"u{seed:02d}{i:08d}" for i in range(rows)],
        Column.SCORE: pa.array(np.where(error, np.nan, score), pa.float32(), mask=error),
        Column.DECISION: decision, Column.SAFE_BELOW: pa.array(np.full(rows, 0.2), mask=error),
        Column.NSFW_FROM: pa.array(np.full(rows, 0.8), mask=error), Column.ERROR_KIND: kind,
        Column.ERROR: [f"{k}: upload {i} could not be scored" if k else None for i, k in enumerate(kind)],
        Column.SHA256: [f"{v:064x}" for v in rng.integers(0, 2**62, rows)],
        Column.PDQ: pa.array(pdq, mask=error), Column.PDQ_QUALITY: pa.array(np.full(rows, 90), pa.int32(), mask=error),
        Column.YAHOO_PDQ: pa.array(pdq, mask=error),
        Column.YAHOO_PDQ_QUALITY: pa.array(np.full(rows, 90), pa.int32(), mask=error),
        Column.MATCH: np.where(matched, "known: takedown 2026-11", None),
        Column.MATCH_DISTANCE: pa.array(rng.integers(0, 31, rows), pa.int32(), mask=~matched),
        Column.MATCH_CHECKED: pa.array(~error, mask=error), Column.BYTES: rng.integers(2_000, 9_000_000, rows),
        Column.WIDTH: pa.array(np.full(rows, 1024), pa.int32()), Column.HEIGHT: pa.array(np.full(rows, 768), pa.int32()),
        Column.FRAMES: pa.array(np.ones(rows), pa.int32()), Column.VIEWS: pa.array(np.full(rows, 2), pa.int32()),
        Column.VIEW: view, Column.VIEW_SCORE: pa.array(score, mask=error), Column.YAHOO_SCORE: pa.array(yahoo, mask=error),
        Column.EXACT: pa.array(score > 0.15, mask=error), Column.LOADER: "fast", Column.MODEL: "open_nsfw:bf16",
        Column.SOURCE_MANIFEST: "s3://uploads/manifests/2026-12-01.txt", Column.SOURCE_LINE: np.arange(rows),
        Column.DUPLICATES: pa.array(np.zeros(rows), pa.int32()), Column.SCORED_AT: scored_at,
    }
    schema = output_schema({"upload_id": pa.string()})
    return pa.table([_array(columns[f.name], f.type, rows) for f in schema], schema=schema)


def _array(values, dtype: pa.DataType, rows: int) -> pa.Array:
    """``values`` (an Arrow array, a sequence, or one string for every row) as an array of ``dtype``."""
    if isinstance(values, pa.Array):
        return values.cast(dtype)
    return pa.array([values] * rows if isinstance(values, str) else values, dtype)


def write_folder(folder: Path, rows: int, files: int) -> None:
    run = folder / "run-20261201T000000000000Z"
    run.mkdir(parents=True)
    for i in range(files):
        table = result_table(rows // files + (i < rows % files), i)
        if i == files - 1:  # an older nsfw-scan's file
            table = table.drop_columns(list(OLDER_COLUMNS))
        pq.write_table(table, run / f"part-{i:05d}-of-{files:05d}.parquet")


def commands(folder: Path, out: Path) -> dict[str, list]:
    return {"report": ["report", folder, "--report-dir", out / "report"],
            "export": ["export", folder, "--csv", out / "rows.csv"],
            "hashes": ["hashes", folder, "--out", out / "hashes.csv"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--vs", help="another Python with nsfw-scan installed, timed in turn with this one")
    args = parser.parse_args()
    pythons = {"this": sys.executable, **({"vs": args.vs} if args.vs else {})}
    with tempfile.TemporaryDirectory(prefix="nsfw-report-scale-") as tmp:
        folder, out = Path(tmp) / "results", Path(tmp) / "out"
        write_folder(folder, args.rows, args.files)
        print(f"{args.rows:,} rows in {args.files} result files ({folder})", flush=True)
        times = {(name, who): [] for name in commands(folder, out) for who in pythons}
        peaks = {key: [] for key in times}
        for _ in range(args.rounds):
            for name, argv in commands(folder, out).items():
                for who, python in pythons.items():
                    _, seconds, peak = run_cli(*argv, python=python)
                    times[name, who].append(seconds)
                    peaks[name, who].append(peak)
        head = "| command | s | peak MiB |" + (" s (vs) | peak MiB (vs) | time vs/this | memory vs/this |" if args.vs else "")
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        for name in commands(folder, out):
            this = statistics.median(times[name, "this"]), max(peaks[name, "this"])
            line = f"| {name} | {this[0]:.1f} | {this[1]:,} |"
            if args.vs:
                vs = statistics.median(times[name, "vs"]), max(peaks[name, "vs"])
                line += f" {vs[0]:.1f} | {vs[1]:,} | {vs[0] / this[0]:.2f} | {vs[1] / this[1]:.2f} |"
            print(line, flush=True)


if __name__ == "__main__":
    main()
