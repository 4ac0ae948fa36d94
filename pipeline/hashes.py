"""``nsfw-scan hashes DIR``: the PDQ hashes of the rows a team confirmed, as a hash list.

Writes ``pdq,label,uri`` CSV, the format ``--match-list`` reads (``model.hash_list``): the rows
of every run in ``DIR`` with the chosen decision and a hash of quality ``matching.min_quality``
or more (poorer hashes match unrelated pictures; Meta's tools drop them too), one line per
distinct hash, so that the next night's run matches re-uploads of them, or for sharing.
"""

from __future__ import annotations

import csv
import io

import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystem import BeamIOError, CompressionTypes

from ..model.hash_list import LABEL_COLUMN, PDQ_COLUMN, Matching
from ..storage.files import read_table
from ..storage.filesystems import FileSystems
from ..storage.paths import shown
from ..storage.schema import Column
from .config import ConfigError
from .report import finished_result_files, spreadsheet_safe

COLUMNS = (PDQ_COLUMN, LABEL_COLUMN, Column.URI)


def hash_lines(directory: str, decision: str, label: str | None = None,
               min_quality: int = Matching.min_quality) -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    """``(pdq, label, uri)`` of every row in ``directory`` decided ``decision`` whose hash has
    ``min_quality`` or more, one per distinct hash (its first row's URI), ``label`` (default: the
    decision) on each; and how many rows were left out and why."""
    lines, seen = [], set()
    left_out = {"no_hash": 0, "poor_hash": 0, "same_hash": 0}
    for path in finished_result_files(directory):
        table = read_table(path, [Column.URI, Column.DECISION, Column.PDQ, Column.PDQ_QUALITY], present_only=True)
        table = table.filter(pc.field(Column.DECISION) == decision)
        if Column.PDQ not in table.column_names:  # written before rows had hashes
            left_out["no_hash"] += table.num_rows
            continue
        for uri, value, quality in zip(*(table.column(c).to_pylist() for c in (Column.URI, Column.PDQ, Column.PDQ_QUALITY))):
            if value is None:
                left_out["no_hash"] += 1
            elif quality is None or quality < min_quality:
                left_out["poor_hash"] += 1
            elif value in seen:
                left_out["same_hash"] += 1
            else:
                seen.add(value)
                lines.append((value, label or decision, uri))
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


def write_hashes(directory: str, out: str | None, decision: str, label: str | None, min_quality: int) -> str:
    """Writes the list to ``out`` (local or any Beam filesystem), or returns it when ``out`` is
    None; the returned text is then the list, else a one-line account of it."""
    lines, left_out = hash_lines(directory, decision, label, min_quality)
    text = csv_text(lines)
    if out is None:
        return text
    try:
        with FileSystems.create(out, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.write(text.encode())
    except (OSError, BeamIOError) as exc:
        raise ConfigError(f"{shown(out)}: cannot write the hash list there ({exc}); choose another --out") from exc
    skipped = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in left_out.items() if n)
    return (f"{len(lines)} hashes of {decision} rows written to {shown(out)}"
            + (f" (left out: {skipped})" if skipped else "") + f"; match them with --match-list {shown(out)}")
