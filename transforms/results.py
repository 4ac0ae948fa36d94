"""The output row: how rows are made, from a manifest entry to a score or an error.

The columns and their Parquet schema are defined once, in ``storage/schema.py``.

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

from ..model.decision import NOT_SCORED, Thresholds
from ..model.errors import BAD_MANIFEST_LINE, ERROR_KINDS
from ..model.preprocess import YAHOO_VIEW
from ..storage.schema import RESULT_FIELDS, Column


def base_row(entry) -> dict:
    """A row for a manifest ``Entry`` with every result column empty; steps fill in what they learn."""
    row = {Column.URI: entry.uri, **entry.columns}
    row.update({f.name: None for f in RESULT_FIELDS})
    row[Column.SOURCE_MANIFEST], row[Column.SOURCE_LINE] = entry.manifest, entry.line
    row[Column.DUPLICATES] = entry.duplicates
    return row


def _stamped(row: dict, values: dict) -> dict:
    return {**row, **values, Column.SCORED_AT: datetime.datetime.now(datetime.timezone.utc)}


def finish(row: dict, *, score: float, model: str, thresholds: Thresholds, view: str = YAHOO_VIEW,
           yahoo_score: float | None = None, exact: bool = True) -> dict:
    """The row of a scored image, with its decision (made here and nowhere else) and the
    thresholds it was made at; ``model``:
    the id of the model that computed ``score``; ``view``: the view that scored it (Yahoo's by
    default, whose score is then ``yahoo_score`` too); ``exact``: whether the loader and the
    model that ran are Yahoo's exact ones."""
    return _stamped(row, {
        Column.SCORE: score, Column.DECISION: thresholds.decide(score), Column.SAFE_BELOW: thresholds.safe_below,
        Column.NSFW_FROM: thresholds.nsfw_from, Column.MODEL: model,
        Column.ERROR_KIND: None, Column.ERROR: None, Column.VIEW: view,
        Column.YAHOO_SCORE: score if yahoo_score is None else yahoo_score, Column.EXACT: exact})


def redecide(row: dict, thresholds: Thresholds) -> dict:
    """A scored row decided again from its score, at ``thresholds`` (for a score that gives the
    exact decision at them: an exact one, or a first pass's far from both)."""
    return {**row, Column.DECISION: thresholds.decide(row[Column.SCORE]), Column.SAFE_BELOW: thresholds.safe_below,
            Column.NSFW_FROM: thresholds.nsfw_from}


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
    return _stamped(row, {
        Column.SCORE: None, Column.DECISION: NOT_SCORED, Column.SAFE_BELOW: None, Column.NSFW_FROM: None,
        Column.MODEL: None, Column.ERROR_KIND: kind,
        Column.ERROR: f"{kind}: {message}", Column.EXACT: None})


def bad_line(row: dict, message: str) -> dict:
    """The row of a malformed manifest line (its source columns say which)."""
    return fail(row, BAD_MANIFEST_LINE, f"{row[Column.SOURCE_MANIFEST]} line {row[Column.SOURCE_LINE]}: {message}")


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
    message = row.get(Column.ERROR) or ""
    if Column.ERROR_KIND in missing:
        kind = message.split(":", 1)[0]
        row[Column.ERROR_KIND] = kind if kind in ERROR_KINDS else None
    if Column.SOURCE_MANIFEST in missing and (match := _BAD_LINE.match(message)):
        row[Column.SOURCE_MANIFEST], row[Column.SOURCE_LINE] = match[1], int(match[2])
    return row
