"""``nsfw-scan report DIR``: what all runs in an output folder found, for the people who act on it.

Prints counts per decision, errors by kind, how many rows a view other than Yahoo's decided
(animation frames, EXIF rotation, 8-bit depth) and how many of those it raised above Yahoo's
view's decision, and the score distribution; writes
``DIR/_report/report.png`` (drawn with matplotlib: score histogram per decision on a count
axis, the thresholds marked, totals per decision in the legend, errors by kind, the folder and
the time range of the rows in the title), ``DIR/_report/review_queue.csv`` (every ``review``
and ``nsfw`` row, highest score first, with the manifests' own columns so rows join back to
uploads), ``DIR/_report/errors.csv`` (every error row, by kind) and ``DIR/_report/matches.csv``
(every row a hash list of known content matched: uri, label, distance, score, decision, and the
view that gave the score with its hash, ``pdq``; nearest first), or into ``--report-dir``.
The leading underscore keeps the folder out of ``pyarrow.parquet.read_table(DIR)``. ``DIR``
may be local or any Beam filesystem (gs://, s3://, ...): results are read, and the report
written, through Beam's FileSystems, one result file at a time.
"""

from __future__ import annotations

import collections
import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from apache_beam.io.filesystem import BeamIOError, CompressionTypes

from ..model.decision import DECISIONS, NOT_SCORED, Thresholds
from ..model.errors import printable
from ..model.hash_list import LABEL_COLUMN
from ..model.pictures.views import REGION_PREFIX, YAHOO_VIEW
from ..storage.filesystems import FileSystems
from ..storage.layout import REPORT_DIR
from ..storage.paths import shown
from ..storage.results_folder import ResultsFolder
from ..storage.schema import MATCH_REPORT_COLUMNS, Column
from .config import ConfigError
from .summary import thresholds_text

BINS = 20
REPORT_PNG = "report.png"
REVIEW_CSV = "review_queue.csv"
ERRORS_CSV = "errors.csv"
MATCHES_CSV = "matches.csv"
LEGEND_PAIRS = 6  # pairs of thresholds the chart's legend names one by one; the others in one entry
RANK = {"safe": 0, "review": 1, "nsfw": 2}
COLOURS = {"safe": "#4e9a4e", "review": "#e0a030", "nsfw": "#c83c3c", NOT_SCORED: "#7878c8"}


def _view_kinds(views: pa.ChunkedArray) -> pa.ChunkedArray:
    """``frame 17`` -> ``frame``, ``region 64,64,512,512`` -> ``region``; other view
    names as they are."""
    region = pc.if_else(pc.starts_with(views, REGION_PREFIX), "region", views)
    return pc.if_else(pc.starts_with(views, "frame "), "frame", region)


def _ranks(scores: pa.ChunkedArray, safe_below: pa.ChunkedArray, nsfw_from: pa.ChunkedArray) -> np.ndarray:
    """Each score's decision as a rank (safe 0, review 1, nsfw 2) at its row's thresholds."""
    scores = pc.cast(scores, pa.float64())
    return (pc.greater_equal(scores, safe_below).to_numpy(zero_copy_only=False).astype(np.int8)
            + pc.greater_equal(scores, nsfw_from).to_numpy(zero_copy_only=False).astype(np.int8))


def _counts(values: pa.ChunkedArray) -> dict:
    """Each value's count, in the order values first appear."""
    counted = pc.value_counts(values).flatten()
    return dict(zip(counted[0].to_pylist(), counted[1].to_pylist()))


def collect(directory: str, thresholds: Thresholds = Thresholds()) -> dict:
    decisions = collections.Counter()
    errors = collections.Counter()
    other_views = collections.Counter()  # rows decided by a view other than Yahoo's, by kind
    raised = 0  # ... whose decision is above the one Yahoo's view alone gives (at the row's thresholds)
    decided_at = collections.Counter()  # scored rows per (safe_below, nsfw_from) they were decided at
    histograms = {d: np.zeros(BINS, np.int64) for d in ("safe", "review", "nsfw")}
    times, queues, failures, matches = [], [], [], []
    for table in ResultsFolder(directory).tables():
        decisions.update(_counts(table[Column.DECISION]))
        errors.update(_counts(table[Column.ERROR_KIND].drop_null()))
        scored = table.filter(pc.is_valid(table[Column.SCORE]))
        # rows of versions that did not record their thresholds: those given (--config), as before
        recorded = pc.is_valid(scored[Column.SAFE_BELOW])
        safe = pc.if_else(recorded, scored[Column.SAFE_BELOW], thresholds.safe_below)
        nsfw = pc.if_else(recorded, scored[Column.NSFW_FROM], thresholds.nsfw_from)
        pairs = pa.table({"safe": safe, "nsfw": nsfw}).group_by(["safe", "nsfw"], use_threads=False).aggregate(
            [([], "count_all")])
        for safe_below, nsfw_from, n in zip(*(pairs[c].to_pylist() for c in ("safe", "nsfw", "count_all"))):
            decided_at[(safe_below, nsfw_from)] += n
        other = pc.fill_null(pc.not_equal(scored[Column.VIEW], YAHOO_VIEW), False)
        other_views.update(_counts(_view_kinds(scored[Column.VIEW].filter(other))))
        with_yahoo = pc.and_(other, pc.is_valid(scored[Column.YAHOO_SCORE]))
        at = [column.filter(with_yahoo) for column in (safe, nsfw)]
        raised += int(np.sum(_ranks(scored[Column.SCORE].filter(with_yahoo), *at)
                             > _ranks(scored[Column.YAHOO_SCORE].filter(with_yahoo), *at)))
        scores = table.column(Column.SCORE).fill_null(np.nan).to_numpy(zero_copy_only=False)
        for decision, counts in histograms.items():
            decided = pc.equal(table[Column.DECISION], decision).to_numpy(zero_copy_only=False)
            counts += np.histogram(scores[decided], bins=BINS, range=(0.0, 1.0))[0]
        if table.num_rows:
            scored_at = table.column(Column.SCORED_AT)
            times += [pc.min(scored_at).as_py(), pc.max(scored_at).as_py()]
        queues.append(table.filter(pc.field(Column.DECISION).isin(["review", "nsfw"])))
        failures.append(table.filter(pc.field(Column.DECISION) == NOT_SCORED))
        matches.append(table.filter(pc.is_valid(table[Column.MATCH])).select(list(MATCH_REPORT_COLUMNS)))
    # runs over manifests with different columns: missing columns are null
    queue = pa.concat_tables(queues, promote_options="default").sort_by([(Column.SCORE, "descending")])
    failed = pa.concat_tables(failures, promote_options="default").sort_by(
        [(Column.ERROR_KIND, "ascending"), (Column.URI, "ascending")])
    matched = pa.concat_tables(matches).sort_by([(Column.MATCH_DISTANCE, "ascending"), (Column.URI, "ascending")])
    times = [t for t in times if t is not None]
    return {"decisions": {d: decisions.get(d, 0) for d in DECISIONS}, "errors": dict(errors.most_common()),
            "histogram": sum(histograms.values()).tolist(), "histograms": {d: h.tolist() for d, h in histograms.items()},
            "queue": queue, "failed": failed, "matches": matched, "rows": sum(decisions.values()), "directory": directory,
            "other_views": dict(sorted(other_views.items(), key=lambda kv: (-kv[1], kv[0]))), "raised": raised,
            "time_range": (min(times), max(times)) if times else None,
            "thresholds": [Thresholds(*pair) for pair, _ in decided_at.most_common()] or [thresholds],
            "decided_at": {thresholds_text(*pair): n for pair, n in decided_at.most_common()}}


def png_bytes(report: dict) -> bytes:
    """The chart of :func:`figure`, as PNG."""
    buffer = io.BytesIO()
    figure(report).savefig(buffer, format="png")
    return buffer.getvalue()


def figure(report: dict):
    """Score histogram per decision (log count axis; each decision's bars side by side in a bin,
    so a few review or nsfw rows are never hidden under many safe ones) with the thresholds
    marked and totals per decision in the legend below it (where no bar can be under it); errors
    by kind beside it; the folder and time range in the title. A matplotlib ``Figure``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    chart = Figure(figsize=(12, 5.4), dpi=100, layout="constrained")
    FigureCanvasAgg(chart)
    scores_axis, errors_axis = chart.subplots(1, 2, width_ratios=(2.2, 1))
    _draw_scores(scores_axis, report)
    _draw_errors(errors_axis, report)
    span = report.get("time_range")
    when = (f"scored {span[0]:%Y-%m-%d %H:%M} to {span[1]:%Y-%m-%d %H:%M} UTC" if span else "no rows")
    chart.suptitle(f"nsfw-scan results in {shown(report['directory'])}\n{report['rows']:,} rows, {when}", fontsize=13)
    return chart


def _draw_scores(scores_axis, report: dict) -> None:
    """The score histogram per decision, the thresholds and the legend."""
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    d = report["decisions"]
    edges = np.linspace(0.0, 1.0, BINS + 1)
    counts = np.asarray(list(report["histograms"].values()), float)  # decision x bin
    present = counts > 0
    shares = np.maximum(present.sum(axis=0), 1)  # the decisions with rows in each bin share its width
    width = 1 / BINS / shares
    before = np.cumsum(present, axis=0) - present  # decisions with rows left of each one in its bin
    handles = []
    for i, decision in enumerate(report["histograms"]):
        handles.append(scores_axis.bar(edges[:-1] + before[i] * width, counts[i], width=width, align="edge",
                                       color=COLOURS[decision], edgecolor="white", linewidth=0.5,
                                       label=f"{decision}: {d[decision]:,}"))
    tallest = counts.max(initial=0.0)
    handles.append(Patch(color=COLOURS[NOT_SCORED], label=f"error: {d['error']:,} (not scored, right)"))
    if len(report["thresholds"]) == 1:  # the thresholds every row was decided at
        (thresholds,) = report["thresholds"]
        for value, style, name in ((thresholds.safe_below, "--", "safe below"), (thresholds.nsfw_from, ":", "nsfw from")):
            handles.append(scores_axis.axvline(value, color="black", linestyle=style, linewidth=1.4,
                                               label=f"{name} {value:g}"))
    else:  # one pair of lines would be wrong for some rows: an entry per pair, the most used first
        pairs = sorted(report["decided_at"].items(), key=lambda pair: -pair[1])
        shown_pairs = pairs if len(pairs) <= LEGEND_PAIRS else pairs[:LEGEND_PAIRS - 1]
        labels = [f"decided at {pair}: {n:,}" for pair, n in shown_pairs]
        if len(shown_pairs) < len(pairs):
            rest = pairs[len(shown_pairs):]
            labels.append(f"at {len(rest)} other pairs: {sum(n for _, n in rest):,}")
        handles += [scores_axis.plot([], [], " ", label=label)[0] for label in labels]
    if tallest > 0:
        scores_axis.set_yscale("log")
        scores_axis.set_ylim(0.7, tallest * 3)
        scores_axis.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:,.0f}" if y >= 1 else ""))
    scores_axis.set_xlim(0, 1)
    scores_axis.set_xlabel("NSFW score")
    scores_axis.set_ylabel(f"images per {1 / BINS:g} of score (log scale)")
    scored = d["safe"] + d["review"] + d["nsfw"]
    scores_axis.set_title(f"{scored:,} scored images")
    scores_axis.legend(handles=handles, title="rows per decision; thresholds", loc="upper center",
                       bbox_to_anchor=(0.5, -0.16), ncol=4, fontsize="small", title_fontsize="small")
    scores_axis.grid(axis="y", alpha=0.3)


def _draw_errors(errors_axis, report: dict) -> None:
    """Errors by kind, the most frequent 12."""
    from matplotlib.ticker import MaxNLocator

    errors = list(report["errors"].items())[:12][::-1]
    if errors:
        kinds, counts = zip(*errors)
        bars = errors_axis.barh(kinds, counts, color=COLOURS[NOT_SCORED])
        errors_axis.bar_label(bars, labels=[f"{n:,}" for n in counts], padding=3)
        errors_axis.set_xlim(0, max(counts) * 1.25)
        errors_axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        errors_axis.set_xlabel("rows")
    else:
        errors_axis.text(0.5, 0.5, "no errors", ha="center", va="center", transform=errors_axis.transAxes)
        errors_axis.set_xticks([])
        errors_axis.set_yticks([])
    errors_axis.set_title(f"{report['decisions']['error']:,} errors by kind")


def write_bytes(path: str, data: bytes) -> None:
    """``data`` as the file ``path``, on any Beam filesystem."""
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)


def write_report(directory: str, thresholds: Thresholds, report_dir: str | None = None) -> tuple[dict, str, str]:
    """Reads every run in ``directory``; writes the chart and the review queue into
    ``report_dir`` (default ``directory/_report``), on any Beam filesystem. Each row counts at
    the thresholds it was decided at; ``thresholds`` stand in for rows that recorded none."""
    report = collect(directory, thresholds)
    folder = report_dir or FileSystems.join(directory, REPORT_DIR)
    png, csv = FileSystems.join(folder, REPORT_PNG), FileSystems.join(folder, REVIEW_CSV)
    try:
        write_bytes(png, png_bytes(report))
        write_bytes(csv, csv_bytes(report["queue"]))
        write_bytes(FileSystems.join(folder, ERRORS_CSV), csv_bytes(report["failed"]))
        write_bytes(FileSystems.join(folder, MATCHES_CSV), csv_bytes(report["matches"]))
    except (OSError, BeamIOError) as exc:
        cause = exc.exception_details if isinstance(exc, BeamIOError) and exc.exception_details else {}
        why = next(iter(cause.values()), exc)
        why = getattr(why, "strerror", None) or str(why).splitlines()[0]
        raise ConfigError(f"{shown(folder)}: cannot write the report there ({why}); "
                          f"make it writable or choose another folder with --report-dir") from exc
    return report, png, csv


# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets
# (CSV injection); OWASP's advice is a leading single quote, which they show as text.
FORMULA_START = r"^[=+\-@\t\r]"
# Columns of labels from a hash list (a row's match, a list's label): text of one line, whose
# control characters (escape sequences, line breaks, NULs) are written escaped (``\x1b``).
LABEL_COLUMNS = (Column.MATCH, LABEL_COLUMN)


def _printable(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Each cell with its control characters escaped (``model.errors.printable``)."""
    if pc.all(pc.fill_null(pc.utf8_is_printable(column), True)).as_py():
        return column
    return pa.chunked_array([pa.array([v if v is None else printable(v) for v in column.to_pylist()], column.type)])


def spreadsheet_safe(table: pa.Table) -> pa.Table:
    """Every text cell that a spreadsheet would take for a formula, with a ``'`` in front; the
    label columns' control characters escaped (:data:`LABEL_COLUMNS`)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            column = _printable(table.column(i)) if field.name in LABEL_COLUMNS else table.column(i)
            live = pc.fill_null(pc.match_substring_regex(column, FORMULA_START), False)
            table = table.set_column(i, field, pc.if_else(live, pc.binary_join_element_wise("'", column, ""), column))
    return table


def csv_bytes(table: pa.Table, header: bool = True) -> bytes:
    """``table`` as CSV, spreadsheet-safe (:func:`spreadsheet_safe`), times as text."""
    if Column.SCORED_AT in table.column_names:
        table = table.set_column(table.schema.get_field_index(Column.SCORED_AT), Column.SCORED_AT,
                                 pc.cast(table[Column.SCORED_AT], pa.string()))
    buffer = io.BytesIO()
    pacsv.write_csv(spreadsheet_safe(table), buffer, pacsv.WriteOptions(include_header=header))
    return buffer.getvalue()


def export_csv(directory: str, path: str) -> int:
    """Every row of every run in ``directory`` into one CSV file at ``path`` (local or any Beam
    filesystem), one result file at a time: the columns of all of them (a manifest column some
    runs lack is empty there), cells a spreadsheet would take for formulas made text. Returns
    the rows written."""
    folder = ResultsFolder(directory)
    names = folder.column_names()
    rows = 0
    try:
        with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as out:
            for i, table in enumerate(folder.tables()):
                for name in names:
                    if name not in table.column_names:
                        table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
                out.write(csv_bytes(table.select(names), header=i == 0))
                rows += table.num_rows
    except (OSError, BeamIOError) as exc:
        raise ConfigError(f"{shown(path)}: cannot write the CSV there ({exc}); choose another --csv") from exc
    return rows


def format_report(report: dict, png: str, csv: str) -> str:
    d = report["decisions"]
    lines = [f"rows {report['rows']}: safe {d['safe']}, review {d['review']}, nsfw {d['nsfw']}, error {d['error']}"]
    if len(report["thresholds"]) == 1:
        (t,) = report["thresholds"]
        lines.append(f"thresholds: safe below {t.safe_below:g}, nsfw from {t.nsfw_from:g}")
    else:
        lines.append("rows decided at different thresholds: "
                     + ", ".join(f"{pair}: {n} rows" for pair, n in report["decided_at"].items())
                     + f"; to decide them all at one pair: nsfw-scan redecide {shown(report['directory'])} --config FILE")
    if report["errors"]:
        lines.append("errors: " + ", ".join(f"{k} {n}" for k, n in report["errors"].items()))
    if report["other_views"]:
        lines.append(f"decided by a view other than Yahoo's: {sum(report['other_views'].values())} ("
                     + ", ".join(f"{k} {n}" for k, n in report["other_views"].items())
                     + f"); decision above Yahoo's view's: {report['raised']}")
    if report["matches"].num_rows:
        labels = collections.Counter(report["matches"].column(Column.MATCH).to_pylist())
        lines.append(f"known content: {report['matches'].num_rows} rows matched a hash list ("
                     + ", ".join(f"{printable(label, 60)} {n}" for label, n in labels.most_common(10))
                     + (", ..." if len(labels) > 10 else "") + ")")
    lines.append("scores  count")
    for i, n in enumerate(report["histogram"]):
        lines.append(f"{i / BINS:.2f}-{(i + 1) / BINS:.2f} {n:>8}")
    png, csv = shown(png), shown(csv)
    lines += [f"chart: {png}", f"review queue ({report['queue'].num_rows} rows, highest score first): {csv}",
              f"errors ({report['failed'].num_rows} rows, by kind): {csv.rsplit('/', 1)[0]}/{ERRORS_CSV}",
              f"matches ({report['matches'].num_rows} rows, nearest first): {csv.rsplit('/', 1)[0]}/{MATCHES_CSV}"]
    return "\n".join(lines)
