"""``nsfw-scan report DIR``: what all runs in an output folder found, for the people who act on it.

Prints counts per decision, errors by kind and the score distribution; writes
``DIR/_report/report.png`` (score histogram with the thresholds marked, errors by kind) and
``DIR/_report/review_queue.csv`` (every ``review`` and ``nsfw`` row, highest score first, with
the manifests' own columns so rows join back to uploads), or into ``--report-dir``. The leading
underscore keeps the folder out of ``pyarrow.parquet.read_table(DIR)``. ``DIR`` may be local or
any Beam filesystem (gs://, s3://, ...): results are read, and the report written, through
Beam's FileSystems, one result file at a time.
"""

from __future__ import annotations

import collections
import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from PIL import Image, ImageDraw

from ..model.decision import DECISIONS, Thresholds
from .config import ConfigError
from .output_dir import result_files

BINS = 20
REPORT_DIR = "_report"
REPORT_PNG = "report.png"
REVIEW_CSV = "review_queue.csv"


def _tables(directory: str):
    """Each result file of every run in ``directory``, as a table."""
    files = result_files(directory)
    if not files:
        raise ConfigError(f"{directory}: no results found (expected run-*/part-*.parquet from nsfw-scan run)")
    for path in files:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            yield pq.read_table(f)


def collect(directory: str) -> dict:
    decisions = collections.Counter()
    errors = collections.Counter()
    histogram = np.zeros(BINS, np.int64)
    queues = []
    for batch in _tables(directory):
        decisions.update(batch.column("decision").to_pylist())
        errors.update(e.split(":", 1)[0] for e in batch.column("error").drop_null().to_pylist())
        scores = batch.column("score").drop_null().to_numpy(zero_copy_only=False)
        histogram += np.histogram(scores, bins=BINS, range=(0.0, 1.0))[0]
        queues.append(batch.filter(pc.field("decision").isin(["review", "nsfw"])))
    # runs over manifests with different columns: missing columns are null
    queue = pa.concat_tables(queues, promote_options="default").sort_by([("score", "descending")])
    return {"decisions": {d: decisions.get(d, 0) for d in DECISIONS}, "errors": dict(errors.most_common()),
            "histogram": histogram.tolist(), "queue": queue, "rows": sum(decisions.values())}


def draw(report: dict, thresholds: Thresholds) -> Image.Image:
    """Score histogram (log-scaled counts) with the thresholds marked; errors by kind beside it."""
    width, height, margin = 900, 360, 40
    image = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(image)
    plot_w, plot_h = 520, height - 2 * margin
    scored = int(sum(report["histogram"]))
    pen.text((margin, 10), f"NSFW scores of {scored} scored images (log count per bin)", fill="black")
    counts = np.asarray(report["histogram"], float)
    top = np.log1p(counts.max()) or 1.0
    bar = plot_w / BINS
    for i, n in enumerate(counts):
        h = plot_h * np.log1p(n) / top
        x = margin + i * bar
        colour = (70, 150, 70) if (i + 1) / BINS <= thresholds.safe_below else \
            (200, 60, 60) if i / BINS >= thresholds.nsfw_from else (230, 160, 40)
        pen.rectangle([x + 1, margin + plot_h - h, x + bar - 1, margin + plot_h], fill=colour)
    pen.line([margin, margin + plot_h, margin + plot_w, margin + plot_h], fill="black")
    for t in (thresholds.safe_below, thresholds.nsfw_from):
        x = margin + t * plot_w
        pen.line([x, margin, x, margin + plot_h], fill="black", width=2)
        pen.text((x + 3, margin), f"{t:g}", fill="black")
    for t in (0.0, 0.5, 1.0):
        pen.text((margin + t * plot_w - 6, margin + plot_h + 6), f"{t:g}", fill="black")

    left = margin + plot_w + 50
    pen.text((left, 10), "errors by kind", fill="black")
    errors = list(report["errors"].items())[:10]
    most = max([n for _, n in errors], default=1)
    for row, (kind, n) in enumerate(errors):
        y = margin + row * 26
        pen.text((left, y), f"{kind} ({n})", fill="black")
        pen.rectangle([left, y + 13, left + 200 * n / most, y + 21], fill=(120, 120, 200))
    if not errors:
        pen.text((left, margin), "none", fill="black")
    return image


def _write(path: str, data: bytes) -> None:
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)


def write_report(directory: str, thresholds: Thresholds, report_dir: str | None = None) -> tuple[dict, str, str]:
    """Reads every run in ``directory``; writes the chart and the review queue into
    ``report_dir`` (default ``directory/_report``), on any Beam filesystem."""
    report = collect(directory)
    folder = report_dir or FileSystems.join(directory, REPORT_DIR)
    png, csv = FileSystems.join(folder, REPORT_PNG), FileSystems.join(folder, REVIEW_CSV)
    buffer = io.BytesIO()
    draw(report, thresholds).save(buffer, format="PNG")
    _write(png, buffer.getvalue())
    queue = report["queue"]
    queue = queue.set_column(queue.schema.get_field_index("scored_at"), "scored_at",
                             pc.cast(queue["scored_at"], pa.string()))
    buffer = io.BytesIO()
    pacsv.write_csv(queue, buffer)
    _write(csv, buffer.getvalue())
    return report, png, csv


def format_report(report: dict, png: str, csv: str) -> str:
    d = report["decisions"]
    lines = [f"rows {report['rows']}: safe {d['safe']}, review {d['review']}, nsfw {d['nsfw']}, error {d['error']}"]
    if report["errors"]:
        lines.append("errors: " + ", ".join(f"{k} {n}" for k, n in report["errors"].items()))
    lines.append("scores  count")
    for i, n in enumerate(report["histogram"]):
        lines.append(f"{i / BINS:.2f}-{(i + 1) / BINS:.2f} {n:>8}")
    lines += [f"chart: {png}", f"review queue ({report['queue'].num_rows} rows, highest score first): {csv}"]
    return "\n".join(lines)
