"""What scoring every view costs: ``nsfw-scan run`` with ``--views all`` (the default) against
``--views yahoo`` (Yahoo's first frame only), side by side in one run, on

- the upload-like mix of ``end_to_end.py`` (JPEG photos of 1-12 MP, PNG screenshots,
  thumbnails) with 1% and with 5% animations added, and
- an animations-only corpus: GIFs, APNGs and animated WebPs of 320x240 to 640x360, 24 to 120
  frames, and a few long ones (600 frames).

Prints images/s after the model load and with start-up (from the job's summary and the
wall time), peak RSS, the views scored per file (from the rows), and the ratio to
``--views yahoo`` on the same files. The two modes alternate, best of ``--rounds``.

    python benchmarks/views.py [--scale 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from end_to_end import MIX, make_corpus
from measure import run_cli
from PIL import Image

from nsfw_scan.pipeline.demo import _photo

ANIMATIONS = [  # (format, size, frames, ms per frame)
    ("GIF", (480, 270), 48, 80),
    ("PNG", (320, 240), 24, 100),
    ("WEBP", (640, 360), 60, 50),
    ("GIF", (320, 240), 120, 40),
    ("WEBP", (480, 270), 600, 40),
]


def animation(kind: int, seed: int) -> tuple[bytes, str]:
    """An animation panning over a photo-like picture (every frame differs from the last)."""
    fmt, (w, h), count, duration = ANIMATIONS[kind % len(ANIMATIONS)]
    base = np.asarray(_photo((w * 2, h), seed))
    frames = [Image.fromarray(np.ascontiguousarray(base[:, (i * w) // count:(i * w) // count + w]))
              for i in range(count)]
    buffer = io.BytesIO()
    options = {"save_all": True, "append_images": frames[1:], "duration": duration, "loop": 0}
    if fmt == "WEBP":
        options["quality"] = 80
    frames[0].save(buffer, format=fmt, **options)
    return buffer.getvalue(), {"GIF": "gif", "PNG": "png", "WEBP": "webp"}[fmt]


def add_animations(folder: Path, count: int, first: int = 0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(first, first + count):
        data, ext = animation(i, 1000 + i)
        path = folder / f"animation_{i:03d}.{ext}"
        path.write_bytes(data)
        paths.append(str(path))
    return paths


def measure(manifest: Path, output: Path, views: str) -> dict:
    _, wall, peak = run_cli("run", "--manifest", manifest, "--output", output, "--views", views)
    summary = json.loads((output / "_SUMMARY.json").read_text())
    table = pq.read_table(output, columns=["views", "score", "yahoo_score"])
    views_scored = [v for v in table["views"].to_pylist() if v]
    return {"after_load": summary["images_per_s_after_load"], "with_startup": summary["rows"] / wall,
            "wall": wall, "peak": peak, "views_per_file": sum(views_scored) / max(1, len(views_scored)),
            "rows": summary["rows"], "higher": sum(1 for s, y in zip(table["score"].to_pylist(),
                                                                     table["yahoo_score"].to_pylist())
                                                   if s is not None and s > y)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=2, help="multiply the upload-like mix")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each mode per corpus (best is kept)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nsfw-scan-views-"))
    try:
        mix = make_corpus(work / "mix", args.scale, MIX)
        corpora = {}
        for percent in (1, 5):
            extra = max(1, round(len(mix) * percent / (100 - percent)))
            corpora[f"upload mix + {percent}% animations"] = mix + add_animations(work / f"anim{percent}", extra)
        corpora["animations only"] = add_animations(work / "anim-only", 4 * len(ANIMATIONS), first=100)

        print("| corpus | files | views | images/s after load | images/s with start-up | wall s | peak RSS MiB "
              "| views per file | rows above Yahoo's view | after load vs yahoo |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, paths in corpora.items():
            manifest = work / f"{len(paths)}.txt"
            manifest.write_text("\n".join(paths) + "\n")
            best: dict[str, dict] = {}
            for round_ in range(args.rounds):
                for views in ("yahoo", "all"):
                    result = measure(manifest, work / f"out-{len(paths)}-{views}-{round_}", views)
                    if views not in best or result["after_load"] > best[views]["after_load"]:
                        best[views] = result
            for views in ("yahoo", "all"):
                r = best[views]
                print(f"| {name} | {len(paths)} | {views} | {r['after_load']:.1f} | {r['with_startup']:.1f} | "
                      f"{r['wall']:.1f} | {r['peak']} | {r['views_per_file']:.2f} | {r['higher']} | "
                      f"{r['after_load'] / best['yahoo']['after_load']:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
