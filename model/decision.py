"""From score to decision: Yahoo's thresholds, and what each view's score counts for.

A file's score is the highest of its views' *counted* scores: a view whose score has more
chances than one picture's to cross a threshold by accident (a region of the picture, a later
frame of a video) counts as ``score ** power`` with a power above 1 (``model.preprocess.View``),
which is the same as deciding that view at thresholds of its own, ``threshold ** (1 / power)``
(:meth:`Thresholds.of_view`). Yahoo's view counts as it is."""

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

    def near(self, score: float, margin: float, power: float = 1.0) -> bool:
        """Whether a score that may be off by up to ``margin`` could fall on the other side of a
        threshold: within ``margin`` of either (the cascade re-scores these exactly). ``power``:
        a view's, whose own score is compared with its own thresholds (:meth:`of_view`)."""
        safe_below, nsfw_from = self.of_view(power)
        return abs(score - safe_below) <= margin or abs(score - nsfw_from) <= margin

    def settled(self, views, margin: float) -> bool:
        """Whether the views' scores (``(score, power)`` pairs), each of which may be off by up to
        ``margin``, decide their file one way: at each threshold, some view lies above its own
        by more than ``margin``, or every view below its own by more than that."""
        views = list(views)
        for side in (0, 1):
            own = [(score, self.of_view(power)[side]) for score, power in views]
            if not (any(score - t > margin for score, t in own) or all(t - score > margin for score, t in own)):
                return False
        return True

    def settled_row(self, score: float, power: float, margin: float, powers) -> bool:
        """:meth:`settled` for a file known by its row: ``score`` counted from its best view's own
        score by ``power``; its other views counted no higher, by any of ``powers``."""
        for side in (0, 1):
            if counted_back(score, power) - self.of_view(power)[side] > margin:
                continue  # the best view lies above
            # every view lies below: the best one and any other, whose own score counts no higher
            if any(self.of_view(p)[side] - counted_back(score, p) <= margin for p in {power, *powers}):
                return False
        return True

    def of_view(self, power: float) -> tuple[float, float]:
        """The thresholds a view's own score is decided at when it counts as ``score ** power``."""
        if power == 1.0:
            return self.safe_below, self.nsfw_from
        return self.safe_below ** (1 / power), self.nsfw_from ** (1 / power)


def counted(score: float, power: float) -> float:
    """What a view's score counts for in its file's score: ``score ** power``."""
    return score if power == 1.0 else score ** power


def counted_back(score: float, power: float) -> float:
    """The view's own score that counts as ``score``."""
    return score if power == 1.0 else score ** (1 / power)
