"""Content de-duplication: identical bytes are decoded and scored once.

Files are first read only to hash them. Uploads are then grouped by sha256 together with the
scores earlier runs gave the same bytes with the same model and loader as this run (a score
made with other weights, precision or preprocessing is never relabelled as this run's; with the
cascade, first-pass scores too where the cascade would keep them): a hash
scored before is reused as is, its row's ``model`` and ``loader`` with it; otherwise one
upload per hash (the first URI) goes on to be read again, decoded and scored, and the others
take its result. Grouping and the joins are Beam steps, so they scale with the runner. The
cost is a second read of each distinct file, which is why this is opt-in (``content_dedup``).
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam

from ..model.decision import Thresholds
from ..model.hash_list import Matching
from ..model.pictures.preprocess import SQUARE_MAP
from ..model.pictures.views import REGION_PREFIX, YAHOO_VIEW, ViewPolicy
from ..storage.schema import COPIED_TO_SAME_CONTENT, HASH_FACTS, REUSED_FROM_EARLIER, Column
from . import metrics
from .earlier import ReadEarlierResults
from .known_content import hash_list, match_row
from .load_steps import FAILED, HashFile
from .results import FirstPassRule, base_row, failed_row, finish
from .storage_step import ParDoWithStorage, WithStorage

FOLLOWERS = "followers"
REUSED = "reused"


@dataclasses.dataclass(frozen=True)
class FirstPassScores:
    """Which earlier rows of the cascade's first pass (one of ``models`` after ``loader``) a run
    may reuse: those its ``rule`` keeps, as the cascade itself would have kept them."""

    models: tuple[str, ...]  # every precision the first pass may run in (chosen per worker)
    loader: str
    rule: FirstPassRule


def _reusable(row: dict, model: str, loader: str, policy: ViewPolicy, first_pass: FirstPassScores | None = None):
    score, steps = row[Column.SCORE], (row[Column.MODEL], row[Column.LOADER])
    if not (row[Column.SHA256] and score is not None):
        return
    cheap = first_pass is not None and steps[1] == first_pass.loader and steps[0] in first_pass.models
    if not cheap and steps != (model, loader):
        return
    if policy.views == YAHOO_VIEW:  # Yahoo's view's score, whichever views the earlier run scored
        yahoo = row[Column.YAHOO_SCORE]
        row = {**row, Column.SCORE: score if yahoo is None else yahoo, Column.VIEWS: 1, Column.VIEW: YAHOO_VIEW,
               Column.VIEW_SCORE: None, Column.YAHOO_SCORE: None, Column.PDQ: row[Column.YAHOO_PDQ],
               Column.PDQ_QUALITY: row[Column.YAHOO_PDQ_QUALITY]}
    elif row[Column.VIEWS] is None:  # rows of a version before views scored Yahoo's view only
        return
    elif not _same_views(row, policy):
        return
    if cheap and not first_pass.rule.keeps_row(row):
        return
    yield row[Column.SHA256], row


def _same_views(row: dict, policy: ViewPolicy) -> bool:
    """Whether an earlier row's score is the one ``policy``'s views give: a still that gets
    regions scored its region map's windows too (at least a square map's, ``SQUARE_MAP``); a
    file that gets none, a whole view only."""
    if not policy.gets_regions(row[Column.WIDTH] or 0, row[Column.HEIGHT] or 0, row[Column.FRAMES]):
        return not (row[Column.VIEW] or "").startswith(REGION_PREFIX)
    return row[Column.VIEWS] > SQUARE_MAP.count


class EarlierScores(beam.PTransform):
    """Result files of earlier runs -> ``(sha256, row)`` for every row scored by ``model``
    (a ``model.weights.model_id``) after preprocessing with ``loader``, and, with
    ``first_pass``, the cascade's first-pass rows it would keep, and those the ``views`` scored
    (``_same_views``); with ``views`` ``yahoo``, their Yahoo's view's score."""

    def __init__(self, files: list[str], model: str, loader: str, views: ViewPolicy = ViewPolicy(),
                 first_pass: FirstPassScores | None = None):
        super().__init__()
        self._first_pass = first_pass
        self._files = files
        self._model = model
        self._loader = loader
        self._views = views

    def expand(self, pbegin):
        return (
            pbegin
            | "ReadScores" >> ReadEarlierResults(self._files, list(REUSED_FROM_EARLIER))
            | "KeyReusableBySha" >> beam.FlatMap(_reusable, self._model, self._loader, self._views, self._first_pass)
        )


class _SplitByContent(WithStorage):
    """Per sha256 (its ``Read`` uploads and earlier rows): reuse an earlier score (matched on
    its row's hashes, the flagged view's and Yahoo's, against this run's hash list,
    ``matching``), or pass one ``Entry`` on to be scored and the other uploads' rows aside."""

    def __init__(self, thresholds: Thresholds, matching: Matching = Matching()):
        self._thresholds = thresholds
        self._matching = matching

    def setup(self):
        super().setup()
        self._hashes = hash_list(self._matching) if self._matching.list else None

    def process(self, element):
        sha, groups = element
        uploads = sorted(groups["uploads"], key=lambda read: read.entry.uri)
        if not uploads:
            return
        rows = [{**base_row(read.entry), Column.SHA256: sha, Column.BYTES: read.size} for read in uploads]
        earlier = next(iter(groups["earlier"]), None)
        if earlier is not None:
            metrics.counter(metrics.CONTENT_REUSED).inc(len(rows))
            facts = (Column.WIDTH, Column.HEIGHT, Column.LOADER, Column.FRAMES, Column.VIEWS, *HASH_FACTS)
            for row in rows:
                row = {**row, **{name: earlier[name] for name in facts}}
                if self._hashes is not None:
                    row = match_row(row, self._hashes, self._matching)
                yield beam.pvalue.TaggedOutput(REUSED, finish(
                    row, score=earlier[Column.SCORE], model=earlier[Column.MODEL], thresholds=self._thresholds,
                    view=earlier[Column.VIEW], yahoo_score=earlier[Column.YAHOO_SCORE],
                    view_score=earlier[Column.VIEW_SCORE], exact=earlier[Column.EXACT]))
            return
        yield uploads[0].entry
        if len(rows) > 1:
            metrics.counter(metrics.CONTENT_DUPLICATES).inc(len(rows) - 1)
        for row in rows[1:]:
            yield beam.pvalue.TaggedOutput(FOLLOWERS, (sha, row))


def _copy_result(element):
    _, groups = element
    scored = next(iter(groups["scored"]), None)
    if scored is None:  # every hash that has followers has its representative's row
        return
    for row in groups["followers"]:
        yield dict(row, **{k: scored[k] for k in COPIED_TO_SAME_CONTENT})


class ContentDedup(beam.PTransform):
    """``{"entries": Entry, "earlier": (sha256, row) from EarlierScores}`` -> finished rows, one
    per entry: each distinct content is scored once by ``score`` (a ``ScoreImages``), the other
    entries with the same bytes share its row's result, and contents an earlier run scored with
    the same model and loader reuse that score, matched against ``matching``'s hash list on
    the hashes their row has (the flagged view's and Yahoo's view's)."""

    def __init__(self, hash_file: HashFile, score: beam.PTransform, finish: beam.PTransform, thresholds: Thresholds,
                 matching: Matching = Matching()):
        super().__init__()
        self._matching = matching
        self._hash_file = hash_file
        self._score = score
        self._finish = finish  # a FinishRows, for the rows made here (``score`` finishes its own)
        self._thresholds = thresholds

    def expand(self, inputs):
        hashed = inputs["entries"] | "HashFiles" >> ParDoWithStorage(self._hash_file).with_outputs(FAILED, main="hashed")
        failed = hashed[FAILED] | "FailedRows" >> beam.Map(failed_row)
        content = (
            {"uploads": hashed.hashed, "earlier": inputs["earlier"]}
            | "GroupBySha" >> beam.CoGroupByKey()
            | "SplitByContent" >> ParDoWithStorage(_SplitByContent(self._thresholds, self._matching)).with_outputs(
                FOLLOWERS, REUSED, main="to_score")
        )
        scored = content.to_score | "ScoreImages" >> self._score
        shared = (
            {"scored": scored | "KeyBySha" >> beam.FlatMap(lambda r: [(r[Column.SHA256], r)] if r[Column.SHA256] else []),
             "followers": content[FOLLOWERS]}
            | "JoinFollowers" >> beam.CoGroupByKey()
            | "CopyResult" >> beam.FlatMap(_copy_result)
        )
        made_here = (failed, shared, content[REUSED]) | "MadeHere" >> beam.Flatten()
        return (scored, made_here | "FinishMadeHere" >> self._finish) | "AllRows" >> beam.Flatten()
