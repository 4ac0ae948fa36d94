"""From score to decision: Yahoo's thresholds."""

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
        threshold: within ``margin`` of either (the cascade re-scores these exactly)."""
        return abs(score - self.safe_below) <= margin or abs(score - self.nsfw_from) <= margin
