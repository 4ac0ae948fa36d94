"""``nsfw-scan hashes DIR``: the PDQ hashes of the rows a team confirmed, as a hash list.

Writes ``pdq,label,uri`` CSV, the format ``--match-list`` reads (``model.hash_list``): the rows
of every run in ``DIR`` with the chosen decision, or those a reviewer labelled nsfw in a labels
file (``--labels``, the format ``nsfw-scan calibrate`` reads), whose hash has quality
``matching.min_quality`` or more (poorer hashes match unrelated pictures; Meta's tools drop them
too), one line per distinct hash, so that the next night's run matches re-uploads of them, or
for sharing. The hash is the row's ``pdq``: that of the view that gave the score (an
animation's or a clip's flagged frame), not Yahoo's first frame.
"""

from __future__ import annotations

import csv
import io

import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystem import BeamIOError, CompressionTypes

from ..model.hash_list import LABEL_COLUMN, PDQ_COLUMN, Matching
from ..storage.filesystems import FileSystems
from ..storage.paths import shown
from ..storage.results_folder import ResultsFolder
from ..storage.schema import Column
from .calibrate import read_labels
from .config import ConfigError
from .report import spreadsheet_safe

COLUMNS = (PDQ_COLUMN, LABEL_COLUMN, Column.URI)
NSFW = "nsfw"  # the decision listed by default, and the label reviewers give
# what is read of each row (``view`` and ``yahoo_pdq`` tell an older file's Yahoo's-view hash apart)
_READ = [Column.URI, Column.DECISION, Column.VIEW, Column.PDQ, Column.PDQ_QUALITY, Column.YAHOO_PDQ]


def hash_lines(directory: str, decision: str, label: str | None = None, min_quality: int = Matching.min_quality,
               labelled: set[str] | None = None) -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    """``(pdq, label, uri)`` of every row in ``directory`` decided ``decision`` (with
    ``labelled``, URIs a reviewer labelled nsfw: of their rows instead, whatever the decision)
    whose hash has ``min_quality`` or more, one per distinct hash (its first row's URI),
    ``label`` (default: the decision) on each; and how many rows were left out and why."""
    lines, seen, found = [], set(), set()
    left_out = {"no_hash": 0, "poor_hash": 0, "same_hash": 0, "no_row": 0}
    chosen = (pc.field(Column.DECISION) == decision if labelled is None
              else pc.field(Column.URI).isin(pa.array(sorted(labelled), pa.string())))
    for table in ResultsFolder(directory).tables(_READ):  # an older file's pdq was Yahoo's view's: filled
        for row in table.filter(chosen).to_pylist():
            value, quality = row[Column.PDQ], row[Column.PDQ_QUALITY]
            found.add(row[Column.URI])
            if value is None:
                left_out["no_hash"] += 1
            elif quality is None or quality < min_quality:
                left_out["poor_hash"] += 1
            elif value in seen:
                left_out["same_hash"] += 1
            else:
                seen.add(value)
                lines.append((value, label or decision, row[Column.URI]))
    left_out["no_row"] = len(labelled - found) if labelled is not None else 0
    return lines, left_out


def csv_text(lines) -> str:
    """The list as plain CSV (quotes only where a cell needs them, as teams edit these lists by
    hand); a cell a spreadsheet would take for a formula gets a leading ``'``, as in the
    report's CSVs (:func:`report.spreadsheet_safe`)."""
    columns = list(zip(*lines)) or [()] * len(COLUMNS)
    table = spreadsheet_safe(pa.table([pa.array(c, pa.string()) for c in columns], names=list(COLUMNS)))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(zip(*(table.column(name).to_pylist() for name in COLUMNS)))
    return buffer.getvalue()


def write_hashes(directory: str, out: str | None, decision: str, label: str | None, min_quality: int,
                 labels: str | None = None) -> str:
    """Writes the list to ``out`` (local or any Beam filesystem), or returns it when ``out`` is
    None; the returned text is then the list (its header alone when no row has a usable hash),
    else a one-line account of it. ``labels``: a labels file, whose nsfw-labelled rows are
    listed instead of the rows decided ``decision``."""
    labelled = None if labels is None else {uri for uri, nsfw in read_labels(labels).items() if nsfw}
    lines, left_out = hash_lines(directory, NSFW if labelled is not None else decision, label, min_quality, labelled)
    text = csv_text(lines)
    if out is None:
        return text
    try:
        with FileSystems.create(out, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.write(text.encode())
    except (OSError, BeamIOError) as exc:
        raise ConfigError(f"{shown(out)}: cannot write the hash list there ({exc}); choose another --out") from exc
    skipped = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in left_out.items() if n)
    rows = f"{decision} rows" if labels is None else f"rows labelled nsfw in {shown(labels)}"
    return (f"{len(lines)} hashes of {rows} written to {shown(out)}"
            + (f" (left out: {skipped})" if skipped else "") + f"; match them with --match-list {shown(out)}")
