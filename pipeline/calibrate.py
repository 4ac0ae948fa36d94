"""``nsfw-scan calibrate RESULTS --labels FILE``: thresholds from a team's labelled sample.

The labels file is read as a manifest is (CSV, TSV, JSON Lines or Parquet, local or in a bucket,
``.gz`` for text; relative URIs from its folder), with a ``uri`` and a ``label`` column. Labels
are ``nsfw``/``safe``, ``1``/``0`` or ``true``/``false`` (any case); anything else, a malformed
line, or one URI labelled both ways is an error naming the line. The labels are joined to the
result rows by URI, and every label is accounted for: scored, an error row, or no row at all.
The thresholds and what they give (``model/calibration.py``) are printed, and written into
``RESULTS/_calibration/``: ``thresholds.yaml`` (for ``--config`` as it is) and
``calibration.png`` (the precision-recall curve with the chosen point, score histograms per
label with both thresholds).
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
from apache_beam.io.filesystem import BeamIOError

from ..model.calibration import Calibration, calibrate, precision_recall_curve
from ..model.decision import Thresholds
from ..model.errors import printable
from ..storage.filesystems import FileSystems
from ..storage.layout import CALIBRATION_DIR
from ..storage.paths import shown
from ..storage.results_folder import ResultsFolder
from ..storage.schema import Column
from ..transforms.manifest_formats import DEFAULT_URI_COLUMN, ManifestError, read_entries
from ..transforms.manifest_plan import ManifestHelp, plan_manifests
from .config import ConfigError
from .report import COLOURS, write_bytes

LABEL_COLUMN = "label"
LABELS = {"nsfw": True, "1": True, "true": True, "safe": False, "0": False, "false": False}
SHOWN_CHARS = 200  # of a URI or a value in an error line (escaped: the file is untrusted)
# a labels file's faults told in calibrate's own flags (never run's --manifest or --uri-column)
LABELS_USAGE = ManifestHelp(
    no_uri_column=f"a labels file has a {DEFAULT_URI_COLUMN!r} and a {LABEL_COLUMN!r} column",
    not_text=f"not a labels file: give --labels a CSV, TSV, JSON Lines or Parquet file with a {DEFAULT_URI_COLUMN!r} "
             f"and a {LABEL_COLUMN!r} column")
THRESHOLDS_YAML = "thresholds.yaml"
CHART_PNG = "calibration.png"


def read_labels(path: str) -> dict[str, bool]:
    """URI -> labelled nsfw, from a labels file (a manifest with a ``label`` column, read as
    ``transforms.manifest_formats`` reads any: a byte-order mark dropped, lines ending in LF,
    CRLF or CR, an unusable line named). Any fault is one :class:`ConfigError` line naming the
    file and line, the file's text in it escaped and cut (:func:`model.errors.printable`)."""
    try:
        plan = plan_manifests([path], DEFAULT_URI_COLUMN, LABELS_USAGE, into_rows=False)
    except ManifestError as exc:
        raise ConfigError(f"labels: {printable(str(exc))}") from None
    if LABEL_COLUMN not in plan.columns:
        raise ConfigError(f"labels {shown(path)}: no {LABEL_COLUMN!r} column (found "
                          f"{printable(str(sorted(plan.columns)[:20]), SHOWN_CHARS)}); "
                          f"a labels file has a {DEFAULT_URI_COLUMN!r} and a {LABEL_COLUMN!r} column")
    labels: dict[str, bool] = {}
    for file in plan.files:
        for entry in read_entries(file, plan.columns, plan.uri_column):
            where = f"labels {shown(file)} line {entry.line}"
            if entry.error:
                raise ConfigError(f"{where}: {printable(entry.error, SHOWN_CHARS)}")
            value = entry.columns.get(LABEL_COLUMN)
            label = LABELS.get(str(value).strip().lower()) if value is not None else None
            if label is None:
                raise ConfigError(f"{where}: label {printable(repr(value), SHOWN_CHARS)} is none of nsfw/safe, 1/0, "
                                  f"true/false")
            if labels.setdefault(entry.uri, label) != label:
                raise ConfigError(f"{where}: {printable(entry.uri, SHOWN_CHARS)} is labelled both nsfw and safe")
    if not labels:
        raise ConfigError(f"labels {shown(path)}: no labelled URIs")
    return labels


@dataclasses.dataclass(frozen=True)
class Joined:
    """The labels joined to the result rows: the scored ones, and how every other label ended."""

    scores: np.ndarray
    positive: np.ndarray
    labels: int  # labelled URIs
    errors: int  # labelled URIs whose row is an error
    without_row: int  # labelled URIs with no row in the results
    first_pass: int  # scored labelled rows whose score is the cascade's first pass's (exact false)


def join(directory: str, labels: dict[str, bool]) -> Joined:
    """The labels joined to the rows of every run in ``directory``. A URI with rows in several
    runs (an error first, then scored again with ``--rescore-errors``) counts once, by its current
    row: a scored row before an error row, then the newest (``scored_at``)."""
    current: dict[str, tuple[tuple, float | None, bool]] = {}  # uri -> (rank, score, first pass)
    for table in ResultsFolder(directory).tables([Column.URI, Column.SCORE, Column.EXACT, Column.SCORED_AT]):
        exact, scored_at = (table[name].to_pylist() for name in (Column.EXACT, Column.SCORED_AT))
        for uri, score, is_exact, at in zip(table[Column.URI].to_pylist(), table[Column.SCORE].to_pylist(), exact,
                                            scored_at):
            if uri in labels:
                rank = (score is not None, at is not None, at)
                if uri not in current or rank > current[uri][0]:
                    current[uri] = (rank, score, is_exact is False)
    scored = {uri: (score, first) for uri, (_, score, first) in current.items() if score is not None}
    errors = len(current) - len(scored)
    uris = sorted(scored)
    return Joined(np.array([scored[u][0] for u in uris], dtype=np.float64), np.array([labels[u] for u in uris], bool),
                  len(labels), errors, len(labels) - len(current), sum(scored[u][1] for u in uris))


def thresholds_of(result: Calibration) -> Thresholds | None:
    """The thresholds to use, or ``None`` where the sample gives none (a safe threshold at the
    nsfw one becomes the score just below it: no review band)."""
    if result.nsfw_threshold is None or result.safe_threshold is None:
        return None
    safe = min(result.safe_threshold, float(np.nextafter(result.nsfw_threshold, 0.0)))
    try:
        return Thresholds(max(safe, 0.0), result.nsfw_threshold)
    except ValueError:
        return None


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _interval(interval) -> str:
    return "" if interval is None else f" (95% CI {100 * interval[0]:.1f}-{100 * interval[1]:.1f}%)"


def summary_of(joined: Joined, result: Calibration, base_rate: float | None) -> dict:
    """The ``--json`` object."""
    thresholds = thresholds_of(result)
    return {
        "labelled": result.labelled, "labels": joined.labels, "nsfw_labelled": result.positives,
        "error_rows": joined.errors, "without_row": joined.without_row, "first_pass_scores": joined.first_pass,
        "target_precision": result.target_precision, "target_missed": result.target_missed,
        "nsfw_threshold": result.nsfw_threshold, "precision": result.precision,
        "precision_interval": result.precision_interval, "recall": result.recall,
        "recall_interval": result.recall_interval, "false_positive_rate": result.false_positive_rate,
        "safe_threshold": result.safe_threshold, "missed": result.missed, "review_share": result.review_share,
        "base_rate": base_rate,
        "expected_precision": None if base_rate is None else result.expected_precision(base_rate),
        "thresholds": None if thresholds is None else dataclasses.asdict(thresholds),
        "warnings": list(result.warnings),
    }


def _value(value) -> str:
    return "none" if value is None else f"{value:.6g}"


def format_table(summary: dict, written: dict[str, str]) -> str:
    """The console table: the join, both thresholds with what they give, the review band."""
    s = summary
    safe_labelled = s["labelled"] - s["nsfw_labelled"]
    lines = [
        f"labels           {s['labels']}: {s['labelled']} scored ({s['nsfw_labelled']} nsfw, {safe_labelled} safe), "
        f"{s['error_rows']} error rows, {s['without_row']} without a row",
        f"nsfw threshold   {_value(s['nsfw_threshold'])}  (lowest with precision >= {s['target_precision']:g})",
        f"  precision      {_pct(s['precision'])}{_interval(s['precision_interval'])}",
        f"  recall         {_pct(s['recall'])}{_interval(s['recall_interval'])}",
        f"  false positives {_pct(s['false_positive_rate'])} of safe-labelled rows",
    ]
    if s["base_rate"] is not None:
        lines.append(f"  at base rate {s['base_rate']:g}: expected precision {_pct(s['expected_precision'])}")
    lines += [
        f"safe threshold   {_value(s['safe_threshold'])}  (highest with at most {s['target_missed']:g} of nsfw "
        f"rows below it)",
        f"  missed         {_pct(s['missed'])} of nsfw-labelled rows score below it",
        f"review band      {_pct(s['review_share'])} of labelled rows between the two",
    ]
    if s["first_pass_scores"]:
        lines.append(f"note             {s['first_pass_scores']} of the scores are the cascade's first pass's "
                     f"(exact false, within about 0.02 of the exact ones); run the sample with --exact for exact scores")
    lines += [f"warning          {w}" for w in s["warnings"]]
    if "thresholds" in written:
        lines.append(f"thresholds       {written['thresholds']}  (use: nsfw-scan run ... --config "
                     f"{written['thresholds']}, or nsfw-scan redecide RESULTS --config {written['thresholds']})")
    else:
        lines.append("thresholds       none written: the sample gives no pair of thresholds")
    lines.append(f"chart            {written['chart']}")
    return "\n".join(lines)


def figure(joined: Joined, result: Calibration, thresholds: Thresholds | None):
    """The precision-recall curve with the chosen nsfw threshold marked; score histograms per
    label (log count axis) with both thresholds. A matplotlib ``Figure``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    chart = Figure(figsize=(12, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(chart)
    curve_axis, scores_axis = chart.subplots(1, 2, width_ratios=(1, 1.4))
    _, precision, recall = precision_recall_curve(joined.scores, joined.positive)
    curve_axis.plot(recall, precision, "-o", color="black", linewidth=1, markersize=2.5,
                    label="each score as the nsfw threshold")
    if result.recall is not None and result.precision is not None:
        curve_axis.plot([result.recall], [result.precision], "o", color=COLOURS["nsfw"],
                        label=f"nsfw from {result.nsfw_threshold:.4g}: precision {result.precision:.1%}, "
                              f"recall {result.recall:.1%}")
    curve_axis.axhline(result.target_precision, color="grey", linestyle=":", linewidth=1,
                       label=f"precision asked: {result.target_precision:g}")
    curve_axis.legend(loc="lower left", fontsize="small")
    curve_axis.set_xlim(0, 1.02)
    curve_axis.set_ylim(0, 1.02)
    curve_axis.set_xlabel("recall (nsfw-labelled rows flagged)")
    curve_axis.set_ylabel("precision (flagged rows labelled nsfw)")
    curve_axis.set_title("precision and recall of score >= threshold")
    curve_axis.grid(alpha=0.3)

    edges = np.linspace(0.0, 1.0, 21)
    for offset, (name, mask) in enumerate((("safe", ~joined.positive), ("nsfw", joined.positive))):
        counts = np.histogram(joined.scores[mask], bins=edges)[0]
        scores_axis.bar(edges[:-1] + offset * 0.025, counts, width=0.025, align="edge", color=COLOURS[name],
                        label=f"labelled {name}: {int(mask.sum()):,}")
    if thresholds is not None:
        scores_axis.axvline(thresholds.safe_below, color="black", linestyle="--", linewidth=1.4,
                            label=f"safe below {thresholds.safe_below:.4g}")
        scores_axis.axvline(thresholds.nsfw_from, color="black", linestyle=":", linewidth=1.4,
                            label=f"nsfw from {thresholds.nsfw_from:.4g}")
    if len(joined.scores):
        scores_axis.set_yscale("log")
        scores_axis.set_ylim(0.7, None)
    scores_axis.set_xlim(0, 1)
    scores_axis.set_xlabel("NSFW score")
    scores_axis.set_ylabel("labelled rows per 0.05 of score (log scale)")
    scores_axis.legend(loc="upper center", fontsize="small")
    scores_axis.set_title(f"{result.labelled:,} labelled rows")
    return chart


def thresholds_yaml(thresholds: Thresholds, summary: dict) -> str:
    return (f"# nsfw-scan calibrate: precision >= {summary['target_precision']:g} above nsfw_from, at most "
            f"{summary['target_missed']:g} of nsfw rows below safe_below, on {summary['labelled']} labelled rows\n"
            f"thresholds:\n  safe_below: {thresholds.safe_below!r}\n  nsfw_from: {thresholds.nsfw_from!r}\n")


def run_calibration(directory: str, labels_path: str, precision: float, missed: float,
                    base_rate: float | None) -> tuple[dict, dict[str, str]]:
    """Join, calibrate, write ``thresholds.yaml`` (when the sample gives thresholds) and the
    chart into ``directory/_calibration``; returns the summary and what was written where."""
    joined = join(directory, read_labels(labels_path))
    result = calibrate(joined.scores, joined.positive, precision, missed)
    summary = summary_of(joined, result, base_rate)
    thresholds = thresholds_of(result)
    folder = FileSystems.join(directory, CALIBRATION_DIR)
    written = {"chart": FileSystems.join(folder, CHART_PNG)}
    buffer = io.BytesIO()
    figure(joined, result, thresholds).savefig(buffer, format="png")
    try:
        write_bytes(written["chart"], buffer.getvalue())
        if thresholds is not None:
            written["thresholds"] = FileSystems.join(folder, THRESHOLDS_YAML)
            write_bytes(written["thresholds"], thresholds_yaml(thresholds, summary).encode())
    except (OSError, BeamIOError) as exc:
        raise ConfigError(f"{shown(folder)}: cannot write the calibration there ({exc})") from exc
    return summary, {name: shown(path) for name, path in written.items()}
