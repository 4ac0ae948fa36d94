"""The output row: how rows are made, from a manifest entry to a score or an error.

The columns and their Parquet schema are defined once, in ``storage/schema.py``.

A file is scored on one or more views (``model.pictures.yahoo_steps.View``): ``score``, ``decision`` and
the hash ``pdq`` are those of the one whose score counts highest (``model.decision``: a region or
a later frame of a video is decided at thresholds of its own), ``view`` names it and
``view_score`` is its own score; ``yahoo_score`` and ``yahoo_pdq`` are Yahoo's own view's.
``exact`` says whether the row's scores are Yahoo's exact ones (Yahoo's loader and the float32
model): false for rows the cascade's first pass scored far from any threshold, and for opt-in
faster settings; ``loader`` and ``model`` name the steps that ran.

Each fact is written by the step that knows it: ``loader`` by the step that ran the loader,
``model`` by the model that produced the score (Beam's ``PredictionResult.model_id``),
``source_*`` by the manifest reader, ``error_kind`` wherever the failure happened.
"""

from __future__ import annotations

import dataclasses
import datetime

from ..model.decision import AS_PICTURE, NOT_SCORED, Thresholds
from ..model.errors import BAD_MANIFEST_LINE, Unscorable
from ..model.pictures.views import REGION_PREFIX, YAHOO_VIEW, ViewPolicy
from ..storage.schema import HASH_COLUMNS, RESULT_FIELDS, Column
from .elements import Entry, Failure, Image, Scored


def base_row(entry: Entry) -> dict:
    """A row for a manifest ``Entry`` with every result column empty; steps fill in what they learn."""
    row = {Column.URI: entry.uri, **entry.columns}
    row.update({f.name: None for f in RESULT_FIELDS})
    row[Column.SOURCE_MANIFEST], row[Column.SOURCE_LINE] = entry.manifest, entry.line
    row[Column.DUPLICATES] = entry.duplicates
    return row


def image_row(image: Image) -> dict:
    """A row for a decoded file, its facts filled in, not yet scored."""
    row = base_row(image.read.entry)
    row.update({Column.BYTES: image.read.size, Column.SHA256: image.read.sha256, Column.LOADER: image.loader,
                Column.WIDTH: image.width, Column.HEIGHT: image.height, Column.FRAMES: image.frames,
                Column.VIEWS: image.views})
    row[Column.MATCH_CHECKED] = image.match_checked
    if image.match is not None:
        row[Column.MATCH], row[Column.MATCH_DISTANCE] = image.match.label, image.match.distance
    return row


def _stamped(row: dict, values: dict) -> dict:
    return {**row, **values, Column.SCORED_AT: datetime.datetime.now(datetime.timezone.utc)}


def finish(row: dict, *, score: float, model: str, thresholds: Thresholds, view: str = YAHOO_VIEW,
           yahoo_score: float | None = None, view_score: float | None = None, exact: bool = True) -> dict:
    """The row of a scored image, with its decision (made here and nowhere else) and the
    thresholds it was made at; ``model``:
    the id of the model that computed ``score``; ``view``: the view that scored it (Yahoo's by
    default, whose score is then ``yahoo_score`` too); ``view_score``: that view's own score where
    it counted as another (``model.decision.counted``); ``exact``: whether the loader and the
    model that ran are Yahoo's exact ones."""
    return _stamped(row, {
        Column.SCORE: score, Column.DECISION: thresholds.decide(score), Column.SAFE_BELOW: thresholds.safe_below,
        Column.NSFW_FROM: thresholds.nsfw_from, Column.MODEL: model,
        Column.ERROR_KIND: None, Column.ERROR: None, Column.VIEW: view,
        Column.YAHOO_SCORE: score if yahoo_score is None else yahoo_score,
        Column.VIEW_SCORE: score if view_score is None else view_score, Column.EXACT: exact})


def redecide(row: dict, thresholds: Thresholds) -> dict:
    """A scored row decided again from its score, at ``thresholds`` (for a score that gives the
    exact decision at them: an exact one, or a first pass's far from both)."""
    return {**row, Column.DECISION: thresholds.decide(row[Column.SCORE]), Column.SAFE_BELOW: thresholds.safe_below,
            Column.NSFW_FROM: thresholds.nsfw_from}


@dataclasses.dataclass(frozen=True)
class FirstPassRule:
    """The one rule for scores that are not Yahoo's exact ones (the cascade's first pass): its
    decision stands where its views' scores, each possibly off by up to ``margin``, decide the
    file one way at ``thresholds`` (``Thresholds.settled``); any other file goes to the exact
    steps. The cascade applies it to a file's views as they are scored (:meth:`keeps`), content
    reuse and ``nsfw-scan redecide`` to stored rows (:meth:`keeps_row`); ``policy``: the views the
    rows' run scored, and how they counted."""

    thresholds: Thresholds
    margin: float
    policy: ViewPolicy = ViewPolicy()

    def keeps(self, scored: Scored) -> bool:
        """Whether a first-pass file's decision stands, from each of its views' scores."""
        return self.thresholds.settled(((view.score, view.view.counts) for view in scored.views), self.margin)

    def keeps_row(self, row: dict) -> bool:
        """Whether a stored first-pass row's decision stands, from its row alone
        (``Thresholds.settled_row``: its other views counted no higher than its best)."""
        own, policy = row.get(Column.VIEW_SCORE), self.policy
        counts = AS_PICTURE
        if own is not None and own != row[Column.SCORE]:  # its best view counted as another score
            region = (row[Column.VIEW] or "").startswith(REGION_PREFIX)
            counts = policy.region_thresholds if region else policy.clip_thresholds
        return self.thresholds.settled_row(row[Column.SCORE], counts, self.margin,
                                           (policy.region_thresholds, policy.clip_thresholds))


def scored_row(scored: Scored, thresholds: Thresholds, exact: bool = True) -> dict:
    """The row of a scored file: its score and its hash (``pdq``) are its best view's
    (``Scored.best``; a region map has no hash of its own: the picture's, Yahoo's view's),
    ``yahoo_score`` and ``yahoo_pdq`` Yahoo's own view's; ``exact``: whether the loader and the
    model that ran are Yahoo's exact ones."""
    best, yahoo = scored.best, scored.views[0]
    row = image_row(scored.image)
    for (value, quality), hashed in zip(HASH_COLUMNS, (best.view.pdq or yahoo.view.pdq, yahoo.view.pdq)):
        if hashed is not None:
            row[value], row[quality] = hashed.hex, hashed.quality
    return finish(row, score=best.counted, model=best.model, thresholds=thresholds,
                  view=best.name, yahoo_score=yahoo.score, view_score=best.score, exact=exact)


def fail(row: dict, kind: str, message: str) -> dict:
    """The row of an image that got no score: ``kind`` from ``model.errors.ERROR_KINDS``."""
    return _stamped(row, {
        Column.SCORE: None, Column.DECISION: NOT_SCORED, Column.SAFE_BELOW: None, Column.NSFW_FROM: None,
        Column.MODEL: None, Column.ERROR_KIND: kind,
        Column.ERROR: f"{kind}: {message}", Column.EXACT: None})


def failed_row(failure: Failure) -> dict:
    """The row of a manifest line or file that got no score (with its size and hash once read)."""
    row = base_row(failure.entry)
    row[Column.BYTES], row[Column.SHA256] = failure.size, failure.sha256
    return fail(row, failure.kind, failure.message)


def bad_line_error(entry: Entry) -> Unscorable:
    """Why a malformed manifest line gets no score; the message names the manifest and the line."""
    return Unscorable(BAD_MANIFEST_LINE, f"{entry.manifest} line {entry.line}: {entry.error}")
