"""The output row: its Parquet schema (defined once, here) and how rows are made.

Columns, in order: ``uri``, the manifests' pass-through columns, then ``score``, ``decision``,
``error_kind``, ``error``, ``sha256``, ``bytes``, ``width``, ``height``, ``frames``, ``views``,
``view``, ``yahoo_score``, ``exact``, ``loader``, ``model``, ``source_manifest``, ``source_line``,
``duplicates``, ``scored_at``.

A file is scored on one or more views (``model.preprocess.View``): ``score`` and ``decision``
are those of the highest-scoring one, ``view`` names it, ``yahoo_score`` is Yahoo's own view's.
``exact`` says whether the row's scores are Yahoo's exact ones (Yahoo's loader and the float32
model): false for rows the cascade's first pass scored far from any threshold, and for opt-in
faster settings; ``loader`` and ``model`` name the steps that ran.

Each fact is written by the step that knows it: ``loader`` by the step that ran the loader,
``model`` by the model that produced the score (Beam's ``PredictionResult.model_id``),
``source_*`` by the manifest reader, ``error_kind`` wherever the failure happened.
"""

from __future__ import annotations

import datetime
import re

import pyarrow as pa

from ..model.decision import Thresholds
from ..model.errors import BAD_MANIFEST_LINE, ERROR_KINDS
from ..model.preprocess import YAHOO_VIEW

RESULT_FIELDS = [
    pa.field("score", pa.float32()),
    pa.field("decision", pa.string()),
    pa.field("error_kind", pa.string()),
    pa.field("error", pa.string()),
    pa.field("sha256", pa.string()),
    pa.field("bytes", pa.int64()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    # frames in the file, views of it scored, the view that gave the score, Yahoo's view's score
    pa.field("frames", pa.int32()),
    pa.field("views", pa.int32()),
    pa.field("view", pa.string()),
    pa.field("yahoo_score", pa.float32()),
    # the scores are Yahoo's exact ones (its loader, the float32 model), not a faster path's
    pa.field("exact", pa.bool_()),
    pa.field("loader", pa.string()),
    pa.field("model", pa.string()),
    pa.field("source_manifest", pa.string()),
    pa.field("source_line", pa.int64()),
    # other lines of this run's manifests that named the same URI (the row has the first's columns)
    pa.field("duplicates", pa.int32()),
    pa.field("scored_at", pa.timestamp("us", tz="UTC")),
]
RESERVED = {"uri", *(f.name for f in RESULT_FIELDS)}


def output_schema(passthrough: dict[str, pa.DataType]) -> pa.Schema:
    """``uri``, then the manifests' own columns (in manifest order), then the result columns."""
    return pa.schema([pa.field("uri", pa.string())]
                     + [pa.field(name, dtype) for name, dtype in passthrough.items()]
                     + RESULT_FIELDS)


def base_row(entry) -> dict:
    """A row for a manifest ``Entry`` with every result column empty; steps fill in what they learn."""
    row = {"uri": entry.uri, **entry.columns}
    row.update({f.name: None for f in RESULT_FIELDS})
    row["source_manifest"], row["source_line"], row["duplicates"] = entry.manifest, entry.line, entry.duplicates
    return row


def _stamped(row: dict, **values) -> dict:
    return dict(row, **values, scored_at=datetime.datetime.now(datetime.timezone.utc))


def finish(row: dict, *, score: float, model: str, thresholds: Thresholds, view: str = YAHOO_VIEW,
           yahoo_score: float | None = None, exact: bool = True) -> dict:
    """The row of a scored image, with its decision (made here and nowhere else); ``model``:
    the id of the model that computed ``score``; ``view``: the view that scored it (Yahoo's by
    default, whose score is then ``yahoo_score`` too); ``exact``: whether the loader and the
    model that ran are Yahoo's exact ones."""
    return _stamped(row, score=score, decision=thresholds.decide(score), model=model, error_kind=None, error=None,
                    view=view, yahoo_score=score if yahoo_score is None else yahoo_score, exact=exact)


def finish_views(row: dict, scored: list[tuple[str, float, str]], thresholds: Thresholds, exact: bool = True) -> dict:
    """The row of a file scored on several views: ``scored`` holds ``(view, score, model)`` in
    view order, Yahoo's first. The highest score is the row's (the earliest view's on a tie),
    so a row never scores below Yahoo's own view."""
    best = max(range(len(scored)), key=lambda i: (scored[i][1], -i))
    view, score, model = scored[best]
    return finish(row, score=score, model=model, thresholds=thresholds, view=view, yahoo_score=scored[0][1],
                  exact=exact)


def fail(row: dict, kind: str, message: str) -> dict:
    """The row of an image that got no score: ``kind`` from ``model.errors.ERROR_KINDS``."""
    return _stamped(row, score=None, decision="error", model=None, error_kind=kind, error=f"{kind}: {message}",
                    exact=None)


def bad_line(row: dict, message: str) -> dict:
    """The row of a malformed manifest line (its source columns say which)."""
    return fail(row, BAD_MANIFEST_LINE, f"{row['source_manifest']} line {row['source_line']}: {message}")


_BAD_LINE = re.compile(rf"^{BAD_MANIFEST_LINE}: (.*) line (\d+): ")  # as ``bad_line`` writes it


def with_result_columns(row: dict, columns) -> dict:
    """A row read from a result file, with those of ``columns`` it lacks because an older
    nsfw-scan wrote the file: ``error_kind`` from the start of ``error`` (``fail`` has always
    begun it so), the source of a malformed manifest line from its message (``bad_line``), the
    rest empty. Rows that have every column come back as they are."""
    missing = [name for name in columns if name not in row]
    if not missing:
        return row
    row = dict(row, **dict.fromkeys(missing))
    message = row.get("error") or ""
    if "error_kind" in missing:
        kind = message.split(":", 1)[0]
        row["error_kind"] = kind if kind in ERROR_KINDS else None
    if "source_manifest" in missing and (match := _BAD_LINE.match(message)):
        row["source_manifest"], row["source_line"] = match[1], int(match[2])
    return row
