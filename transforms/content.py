"""Content de-duplication: identical bytes are decoded and scored once.

Files are first read only to hash them. Rows are then grouped by sha256 together with the
scores earlier runs gave the same bytes: a hash scored before is reused as is; otherwise one
row per hash (the first URI) goes on to be read again, decoded and scored, and the other rows
take its result. Grouping and the join are Beam steps, so they scale with the runner. The cost
is a second read of each distinct file, which is why this is opt-in (``content_dedup``).
"""

from __future__ import annotations

import apache_beam as beam

from ..model.decision import Thresholds
from .filesystems import ReadParquetFiles
from .manifests import NAMESPACE
from .results import finish

FOLLOWERS = "followers"
REUSED = "reused"
_COPIED = ("score", "decision", "error", "width", "height")


class EarlierScores(beam.PTransform):
    """Result files of earlier runs -> ``(sha256, row)`` for every scored row."""

    def __init__(self, files: list[str], storage: dict | None = None):
        super().__init__()
        self._files = files
        self._storage = storage

    def expand(self, pbegin):
        return (
            pbegin
            | "ReadScores" >> ReadParquetFiles(self._files, ["sha256", "score", "width", "height"], self._storage)
            | "KeyScoredBySha" >> beam.FlatMap(lambda r: [(r["sha256"], r)] if r["sha256"] and r["score"] is not None else [])
        )


class _SplitByContent(beam.DoFn):
    """Per sha256: reuse an earlier score, or pass one row on to be scored and the rest aside."""

    def __init__(self, thresholds: Thresholds):
        self._thresholds = thresholds

    def process(self, element):
        sha, groups = element
        rows = sorted(groups["rows"], key=lambda r: r["uri"])
        if not rows:
            return
        earlier = next(iter(groups["earlier"]), None)
        if earlier is not None:
            beam.metrics.Metrics.counter(NAMESPACE, "content_reused").inc(len(rows))
            for row in rows:
                row = dict(row, width=earlier["width"], height=earlier["height"])
                yield beam.pvalue.TaggedOutput(
                    REUSED, finish(row, score=earlier["score"], decision=self._thresholds.decide(earlier["score"])))
            return
        yield rows[0]
        if len(rows) > 1:
            beam.metrics.Metrics.counter(NAMESPACE, "content_duplicates").inc(len(rows) - 1)
        for row in rows[1:]:
            yield beam.pvalue.TaggedOutput(FOLLOWERS, (sha, row))


class GroupByContent(beam.PTransform):
    """``(sha256, row)`` -> rows to score (main), ``followers`` (keyed by sha256) and ``reused``
    (finished rows carrying an earlier run's score)."""

    def __init__(self, thresholds: Thresholds, earlier=None):
        super().__init__()
        self._thresholds = thresholds
        self._earlier = earlier

    def expand(self, hashed):
        earlier = self._earlier
        if earlier is None:
            earlier = hashed.pipeline | "NoEarlierScores" >> beam.Create([])
        return (
            {"rows": hashed, "earlier": earlier}
            | "GroupBySha" >> beam.CoGroupByKey()
            | "SplitByContent" >> beam.ParDo(_SplitByContent(self._thresholds)).with_outputs(
                FOLLOWERS, REUSED, main="to_score")
        )


def _copy_result(element):
    _, groups = element
    scored = next(iter(groups["scored"]), None)
    if scored is None:  # every hash that has followers has its representative's row
        return
    for row in groups["followers"]:
        yield dict(row, **{k: scored[k] for k in _COPIED}, scored_at=scored["scored_at"])


class ShareResults(beam.PTransform):
    """Finished rows of the scored representatives + ``followers`` -> finished follower rows."""

    def __init__(self, followers):
        super().__init__()
        self._followers = followers

    def expand(self, finished):
        keyed = finished | "KeyFinishedBySha" >> beam.FlatMap(
            lambda r: [(r["sha256"], r)] if r["sha256"] else [])
        return (
            {"scored": keyed, "followers": self._followers}
            | "JoinFollowers" >> beam.CoGroupByKey()
            | "CopyResult" >> beam.FlatMap(_copy_result)
        )
