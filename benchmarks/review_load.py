"""How many safe uploads land in review at the miss rate a team accepts, for each view setting:
the default job (`nsfw-scan run`) over a labelled sample (``labelled_sample.py``: NSFW content
alone and as insets of 25-60% in safe scenes, safe pictures, multi-scene safe clips and clips
with a 1.5-second NSFW insert), with ``--views yahoo``, ``whole`` and ``all`` (regions), side by
side in one run, and the ``--exact`` job with ``--views all`` to check the cascade's decisions.

For each setting, over the pictures:

- the thresholds ``calibrate`` fits for precision 0.95 with at most 5% of NSFW pictures missed
  (``model.calibration``), the share of safe pictures in review there and the share decided
  automatically;
- at the default thresholds: the share of safe pictures in review, of NSFW pictures decided
  safe, and of all pictures decided automatically;

and for the clips (a job of their own), how many multi-scene safe clips are decided safe and how
many clips with an insert are decided nsfw with ``view`` inside the insert; then the pictures'
job's images/s after the model load and its ratio to ``--views whole``. A last setting counts
regions and clips' frames as pictures (no thresholds of their own), to show what those do.

    python benchmarks/review_load.py [--nsfw 40] [--safe 120] [--clips 10] [--seed 0]
                                     [--cache ~/.cache/nsfw-scan-benchmarks]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from labelled_sample import make_sample, write_sample
from measure import run_cli

from nsfw_scan.model.calibration import calibrate
from nsfw_scan.model.decision import Thresholds

# (label, --views, configuration): the default job with each view setting, and with regions and
# clips counted as pictures (no thresholds of their own)
SETTINGS = (("yahoo", "yahoo", ""), ("whole", "whole", ""), ("all", "all", ""),
            ("all, counted as pictures", "all", "regions: {safe_below: 0.2, nsfw_from: 0.8}\n"
                                                "video: {safe_below: 0.2, nsfw_from: 0.8}\n"))
PRECISION, MISSED = 0.95, 0.05
_INSERT = re.compile(r"clip insert at ([\d.]+) s")
_FRAME = re.compile(r"frame at ([\d.]+) s")


def job(manifest: Path, output: Path, views: str, config: str = "", *flags: str) -> tuple[dict, dict]:
    """Rows by file name, and the summary, of the default job with ``views`` (and ``config``)."""
    if config:
        (output.parent / f"{output.name}.yaml").write_text(config)
        flags = ("--config", output.parent / f"{output.name}.yaml", *flags)
    run_cli("run", "--manifest", manifest, "--output", output, "--views", views, *flags)
    summary = json.loads((output / "_SUMMARY.json").read_text())
    rows = {Path(r["uri"]).name: r for r in pq.read_table(output).to_pylist()}
    return rows, summary


def picture_figures(rows: dict, items) -> dict:
    """Calibrated and default-threshold figures over the sample's pictures."""
    pictures = [item for item in items if not item.name.endswith(".mp4")]
    scores = np.array([rows[item.name]["score"] for item in pictures], dtype=np.float64)
    positive = np.array([item.nsfw for item in pictures])
    fitted = calibrate(scores, positive, PRECISION, MISSED)
    low = fitted.safe_threshold
    high = fitted.nsfw_threshold if fitted.nsfw_threshold is not None else np.inf
    review = (scores >= low) & (scores < high)
    default = Thresholds()
    decisions = np.array([default.decide(float(s)) for s in scores])
    return {
        "safe_below": low, "nsfw_from": fitted.nsfw_threshold,
        "safe_in_review": review[~positive].mean(), "automatic": (~review).mean(),
        "default_safe_in_review": (decisions[~positive] == "review").mean(),
        "default_nsfw_missed": (decisions[positive] == "safe").mean(),
        "default_automatic": (decisions != "review").mean(),
        "insets_missed": np.mean([rows[item.name]["decision"] == "safe" for item in pictures
                                  if item.kind.startswith("inset")]),
    }


def clip_figures(rows: dict, items, insert_s: float) -> dict:
    safe = [rows[item.name] for item in items if item.kind == "clip"]
    caught = 0
    inserts = [(rows[item.name], float(_INSERT.match(item.kind)[1])) for item in items if _INSERT.match(item.kind)]
    for row, start in inserts:
        shown = _FRAME.match(row["view"] or "")
        caught += row["decision"] == "nsfw" and shown is not None and start <= float(shown[1]) < start + insert_s
    return {"safe_clips_safe": sum(r["decision"] == "safe" for r in safe), "safe_clips": len(safe),
            "inserts_caught": caught, "inserts": len(inserts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nsfw", type=int, default=40, help="NSFW pictures, half of them insets")
    parser.add_argument("--safe", type=int, default=120, help="safe pictures")
    parser.add_argument("--clips", type=int, default=10, help="multi-scene safe clips, and as many with an insert")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "nsfw-scan-benchmarks",
                        help="where the generated NSFW content is kept between runs")
    args = parser.parse_args()
    insert_s = 1.5
    items = make_sample(args.nsfw, args.safe, args.clips, seed=args.seed, insert_s=insert_s, cache=args.cache)
    with tempfile.TemporaryDirectory() as tmp:
        stills = write_sample([item for item in items if not item.name.endswith(".mp4")], Path(tmp) / "pictures")
        clips = write_sample([item for item in items if item.name.endswith(".mp4")], Path(tmp) / "clips")
        results, rates = {}, {}
        for n, (label, views, config) in enumerate(SETTINGS):
            rows, summary = job(stills, Path(tmp) / f"pictures-{n}", views, config)
            clip_rows, _ = job(clips, Path(tmp) / f"clips-{n}", views, config)
            results[label] = (picture_figures(rows, items), clip_figures(clip_rows, items, insert_s))
            rates[label] = summary["images_per_s_after_load"]
            if label == "all":
                cascade_rows = {**rows, **clip_rows}
        exact_rows = {**job(stills, Path(tmp) / "pictures-exact", "all", "", "--exact")[0],
                      **job(clips, Path(tmp) / "clips-exact", "all", "", "--exact")[0]}
    differ = [name for name, row in cascade_rows.items() if row["decision"] != exact_rows[name]["decision"]]
    pictures = sum(not item.name.endswith(".mp4") for item in items)
    print(f"{pictures} pictures ({args.nsfw} nsfw, half insets; {args.safe} safe), {2 * args.clips} clips; "
          f"targets: precision {PRECISION}, at most {MISSED:.0%} of nsfw pictures missed")
    print(f"{'views':24} | {'fitted safe_below/nsfw_from':>27} | {'safe in review':>14} | {'automatic':>9} | "
          f"{'at 0.2/0.8: safe in review':>26} | {'nsfw decided safe':>17} | {'insets missed':>13} | "
          f"{'automatic':>9} | {'safe clips safe':>15} | {'inserts nsfw':>12} | {'pictures/s':>10} | {'vs whole':>8}")
    for label, _, _ in SETTINGS:
        p, c = results[label]
        fitted = f"{p['safe_below']:.4f}/" + (f"{p['nsfw_from']:.4f}" if p["nsfw_from"] is not None else "none")
        rate = rates[label]
        ratio = f"{rate / rates['whole']:.2f}x" if rate and rates["whole"] else "-"
        print(f"{label:24} | {fitted:>27} | {p['safe_in_review']:>14.1%} | {p['automatic']:>9.1%} | "
              f"{p['default_safe_in_review']:>26.1%} | {p['default_nsfw_missed']:>17.1%} | {p['insets_missed']:>13.1%} | "
              f"{p['default_automatic']:>9.1%} | {c['safe_clips_safe']:>7}/{c['safe_clips']:<7} | "
              f"{c['inserts_caught']:>5}/{c['inserts']:<6} | {rate or 0:>10.1f} | {ratio:>8}")
    print(f"cascade with regions against --exact: {len(differ)} of {len(cascade_rows)} decisions differ"
          + (f" ({', '.join(differ[:5])})" if differ else ""))


if __name__ == "__main__":
    main()
