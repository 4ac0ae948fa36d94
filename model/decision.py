"""From score to decision: Yahoo's thresholds, and what each view's score counts for.

A file's score is the highest of its views' *counted* scores. A kind of view that has more
chances than one picture to cross a threshold by accident (a still's regions, a video's frames
after the first) is decided at thresholds of its own (:class:`OwnThresholds`): its score counts
as the score on Yahoo's scale that lies in the same place between the thresholds, so that one
pair of thresholds decides every row and rows stay comparable. Yahoo's view, and the other
views of the whole picture, count as they are.
"""

from __future__ import annotations

import dataclasses

NOT_SCORED = "error"  # the decision of a row without a score (its error_kind says why)
DECISIONS = ("safe", "review", "nsfw", NOT_SCORED)


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Yahoo's guidance: below 0.2 safe, from 0.8 NSFW, in between for human review."""

    safe_below: float = 0.2
    nsfw_from: float = 0.8

    def __post_init__(self):
        if not 0.0 <= self.safe_below < self.nsfw_from <= 1.0:
            raise ValueError(
                f"thresholds must satisfy 0 <= safe_below < nsfw_from <= 1, got "
                f"safe_below={self.safe_below}, nsfw_from={self.nsfw_from}"
            )

    def decide(self, score: float | None) -> str:
        if score is None:
            return NOT_SCORED
        if score < self.safe_below:
            return "safe"
        if score >= self.nsfw_from:
            return "nsfw"
        return "review"

    def near(self, score: float, margin: float) -> bool:
        """Whether a score that may be off by up to ``margin`` could fall on the other side of a
        threshold: within ``margin`` of either."""
        return abs(score - self.safe_below) <= margin or abs(score - self.nsfw_from) <= margin

    def settled(self, views, margin: float) -> bool:
        """Whether the views' scores (``(score, counts)`` pairs: ``counts`` an :class:`OwnThresholds`),
        each of which may be off by up to ``margin``, decide their file one way: at each threshold,
        some view lies above its own by more than ``margin``, or every view below its own by more."""
        views = list(views)
        for side in (0, 1):
            own = [(score, self.of_view(counts)[side]) for score, counts in views]
            if not (any(score - t > margin for score, t in own) or all(t - score > margin for score, t in own)):
                return False
        return True

    def settled_row(self, score: float, counts: "OwnThresholds", margin: float, others) -> bool:
        """:meth:`settled` for a file known by its row: ``score`` counted from its best view's own
        score by ``counts``; its other views counted no higher, by ``counts`` or any of ``others``."""
        for side in (0, 1):
            if counts.own(score) - self.of_view(counts)[side] > margin:
                continue  # the best view lies above
            # every view lies below: the best one and any other, whose own score counts no higher
            if any(self.of_view(c)[side] - c.own(score) <= margin for c in {counts, AS_PICTURE, *others}):
                return False
        return True

    def of_view(self, counts: "OwnThresholds") -> tuple[float, float]:
        """The thresholds a view that counts by ``counts`` is decided at, on its own scores."""
        return counts.own(self.safe_below), counts.own(self.nsfw_from)


YAHOO = Thresholds()


@dataclasses.dataclass(frozen=True)
class OwnThresholds:
    """The thresholds a kind of view is decided at, given as its own scores that count as Yahoo's
    0.2 and 0.8: a score counts as the one on Yahoo's scale in the same place between them
    (linearly from 0 to ``safe_below``, to ``nsfw_from``, to 1). With thresholds other than
    Yahoo's, the view is decided where those fall on the same scale."""

    safe_below: float = YAHOO.safe_below
    nsfw_from: float = YAHOO.nsfw_from

    def __post_init__(self):
        if not 0.0 < self.safe_below < self.nsfw_from < 1.0:
            raise ValueError(f"own thresholds must satisfy 0 < safe_below < nsfw_from < 1, got "
                             f"safe_below={self.safe_below}, nsfw_from={self.nsfw_from}")

    def counted(self, score: float) -> float:
        """What a view's score counts for in its file's score."""
        return score if self == AS_PICTURE else _through(score, (0.0, self.safe_below, self.nsfw_from, 1.0), _YAHOO)

    def own(self, counted: float) -> float:
        """The view's own score that counts as ``counted``."""
        return counted if self == AS_PICTURE else _through(counted, _YAHOO, (0.0, self.safe_below, self.nsfw_from, 1.0))


_YAHOO = (0.0, YAHOO.safe_below, YAHOO.nsfw_from, 1.0)
AS_PICTURE = OwnThresholds()  # a view that counts as it is


def _through(x: float, xs: tuple, ys: tuple) -> float:
    """The line through the points ``(xs[i], ys[i])`` at ``x`` (``xs`` increasing, from 0 to 1)."""
    for x0, y0, x1, y1 in zip(xs, ys, xs[1:], ys[1:]):
        if x <= x1:
            return y0 + (x - x0) * (y1 - y0) / (x1 - x0)
    return ys[-1]
