"""Thresholds from a labelled sample: where a team puts ``safe_below`` and ``nsfw_from`` so that
its own uploads get the precision and the misses it asks for.

Given the scores of labelled rows (``positive``: labelled nsfw):

- the **nsfw threshold** is the lowest score ``t`` at which the rows scoring ``>= t`` are
  nsfw-labelled at least ``precision`` of the time (every distinct score is a candidate: the
  decision ``score >= t`` changes only there);
- the **safe threshold** is the highest ``t`` such that at most ``missed`` of the nsfw-labelled
  rows score ``< t`` (the ``k+1``-th lowest nsfw-labelled score, ``k = floor(missed * n)``);
- the **review share** is the share of rows from the safe threshold up to, not including, the
  nsfw one.

Precision and recall come with 95 % Wilson score intervals; ``expected_precision`` gives the
precision at another prevalence (``base_rate``) from the sample's recall and false-positive rate.
The targets are compared exactly, as the decimals they were written as (``fractions``): 55 of
100 flagged rows reach a precision of 0.55. Pure numpy, no Beam.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion; ``None`` without trials."""
    if trials == 0:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def expected_precision(recall: float, false_positive_rate: float | None, base_rate: float) -> float | None:
    """Precision at a prevalence ``base_rate`` of nsfw content, from a true-positive rate (recall)
    and a false-positive rate measured on a sample drawn at any rate."""
    if false_positive_rate is None:
        return None
    flagged = base_rate * recall + (1 - base_rate) * false_positive_rate
    return base_rate * recall / flagged if flagged > 0 else None


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The thresholds for the targets asked, and what they give on the sample."""

    labelled: int  # scored rows with a label
    positives: int  # of them, nsfw-labelled
    target_precision: float
    target_missed: float
    nsfw_threshold: float | None  # None: no threshold reaches the precision asked
    precision: float | None  # of rows scoring >= nsfw_threshold
    precision_interval: tuple[float, float] | None
    recall: float | None  # of nsfw-labelled rows, those scoring >= nsfw_threshold
    recall_interval: tuple[float, float] | None
    false_positive_rate: float | None  # of safe-labelled rows, those scoring >= nsfw_threshold
    safe_threshold: float | None  # None: no nsfw-labelled rows
    missed: float | None  # of nsfw-labelled rows, those scoring < safe_threshold
    review_share: float | None  # of labelled rows, those in [safe_threshold, nsfw_threshold)
    warnings: tuple[str, ...] = ()

    def expected_precision(self, base_rate: float) -> float | None:
        if self.recall is None:
            return None
        return expected_precision(self.recall, self.false_positive_rate, base_rate)


def exact_share(share: float) -> Fraction:
    """A share as the decimal it was written as (``0.55`` is 55/100, not the binary float just
    above it), so that counts compare with it exactly."""
    return Fraction(repr(float(share)))


def calibrate(scores, positive, precision: float = 0.95, missed: float = 0.01) -> Calibration:
    """``scores`` (floats in [0, 1]) and ``positive`` (bools: labelled nsfw), one per labelled row."""
    if not 0 < precision <= 1 or not 0 <= missed < 1:
        raise ValueError(f"precision must be in (0, 1] and missed in [0, 1), got {precision} and {missed}")
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n, positives = len(scores), int(positive.sum())
    negatives = n - positives
    warnings = []
    target, allowed = exact_share(precision), exact_share(missed)  # compared in integers: 55 of 100 reach 0.55
    needed = math.ceil(1 / (1 - target)) if target < 1 else 1
    if positives < needed:
        warnings.append(f"{positives} nsfw-labelled rows: too few to tell a precision of {precision:g} "
                        f"(at least {needed} needed)")
    if allowed > 0 and positives < math.ceil(1 / allowed):
        warnings.append(f"{positives} nsfw-labelled rows: too few to tell a miss rate of {missed:g} "
                        f"(at least {math.ceil(1 / allowed)} needed)")
    if negatives == 0:
        warnings.append("no safe-labelled rows: precision and false positives are not measured")

    # nsfw threshold: scan the distinct scores from the lowest; rows >= t are those from its first position
    order = np.argsort(scores, kind="stable")
    ordered, hits = scores[order], positive[order]
    flagged_positive = np.cumsum(hits[::-1])[::-1]  # nsfw-labelled rows at or after each position
    flagged = np.arange(n, 0, -1)
    firsts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if n else np.array([], int)
    reaching = [i for i in firsts if flagged_positive[i] > 0
                and int(flagged_positive[i]) * target.denominator >= target.numerator * int(flagged[i])]
    nsfw_threshold = float(ordered[reaching[0]]) if reaching else None
    if nsfw_threshold is None:
        tp = fp = 0
        warnings.append(f"no threshold reaches a precision of {precision:g} on this sample")
    else:
        at = scores >= nsfw_threshold
        tp, fp = int((at & positive).sum()), int((at & ~positive).sum())

    # safe threshold: the (k+1)-th lowest nsfw-labelled score, k the misses allowed
    if positives:
        k = math.floor(allowed * positives)
        positive_scores = np.sort(scores[positive])
        safe_threshold = float(positive_scores[k]) if k < positives else 1.0
        missed_share = float((positive_scores < safe_threshold).sum() / positives)
    else:
        safe_threshold = missed_share = None
    if safe_threshold is not None and nsfw_threshold is not None and safe_threshold > nsfw_threshold:
        warnings.append(f"the safe threshold for {missed:g} missed ({safe_threshold:.6g}) lies above the nsfw "
                        f"threshold ({nsfw_threshold:.6g}): no review band; the safe threshold is lowered to it")
        safe_threshold = nsfw_threshold
        missed_share = float((scores[positive] < safe_threshold).sum() / positives)
    low = 0.0 if safe_threshold is None else safe_threshold
    high = 1.0 + 1e-9 if nsfw_threshold is None else nsfw_threshold
    review = float(((scores >= low) & (scores < high)).sum() / n) if n else None
    return Calibration(
        labelled=n, positives=positives, target_precision=precision, target_missed=missed,
        nsfw_threshold=nsfw_threshold,
        precision=tp / (tp + fp) if tp + fp else None, precision_interval=wilson(tp, tp + fp),
        recall=tp / positives if positives and nsfw_threshold is not None else None,
        recall_interval=wilson(tp, positives) if nsfw_threshold is not None else None,
        false_positive_rate=fp / negatives if negatives and nsfw_threshold is not None else None,
        safe_threshold=safe_threshold, missed=missed_share, review_share=review, warnings=tuple(warnings))


def precision_recall_curve(scores, positive) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, precision, recall) with the rule ``score >= threshold``, at every distinct
    score, ascending."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    order = np.argsort(scores, kind="stable")
    ordered, hits = scores[order], positive[order]
    firsts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(scores) else np.array([], int)
    at_or_after = np.cumsum(hits[::-1])[::-1]
    flagged = len(scores) - firsts
    caught = at_or_after[firsts] if len(scores) else np.array([], int)
    return ordered[firsts], caught / np.maximum(flagged, 1), caught / max(int(positive.sum()), 1)
