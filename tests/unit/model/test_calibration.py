"""Thresholds from labels (``model/calibration.py``) against a brute-force computation of the same
definitions on fixed samples: ties, a threshold exactly on a score, one-label samples."""

import math

import numpy as np
import pytest

from nsfw_scan.model.calibration import calibrate, expected_precision, precision_recall_curve, wilson


def brute(scores, positive, precision, missed):
    """The definitions, row by row: the lowest candidate whose flagged rows reach the precision,
    the highest candidate whose misses stay within the share, the review share between."""
    rows = list(zip(scores, positive))
    nsfw = None
    for t in sorted(set(scores)):
        flagged = [p for s, p in rows if s >= t]
        if any(flagged) and sum(flagged) >= precision * len(flagged):
            nsfw = t
            break
    positives = [s for s, p in rows if p]
    safe = None
    if positives:
        valid = [t for t in sorted(set(positives) | {1.0})
                 if sum(s < t for s in positives) <= missed * len(positives) + 1e-9]
        safe = max(valid)
        if nsfw is not None and safe > nsfw:
            safe = nsfw
    tp = sum(1 for s, p in rows if nsfw is not None and s >= nsfw and p)
    fp = sum(1 for s, p in rows if nsfw is not None and s >= nsfw and not p)
    low, high = (safe or 0.0), (nsfw if nsfw is not None else 1.0 + 1e-9)
    return {"nsfw": nsfw, "safe": safe, "tp": tp, "fp": fp,
            "missed": None if safe is None else sum(s < safe for s in positives) / len(positives),
            "review": sum(low <= s < high for s, _ in rows) / len(rows)}


SAMPLES = {
    "ties": ([0.1, 0.5, 0.5, 0.5, 0.9, 0.9, 0.2, 0.05], [0, 1, 0, 1, 1, 1, 0, 0]),
    "threshold-on-a-score": ([0.3, 0.6, 0.6, 0.8, 0.95, 0.01, 0.02], [0, 1, 1, 1, 1, 0, 0]),
    "all-nsfw": ([0.4, 0.7, 0.99, 0.99], [1, 1, 1, 1]),
    "all-safe": ([0.001, 0.3, 0.7, 0.85], [0, 0, 0, 0]),
    "interleaved": ([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5], [0, 1, 0, 0, 1, 0, 1, 1, 0, 1]),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("precision,missed", [(0.95, 0.01), (0.75, 0.25), (0.5, 0.5), (1.0, 0.0)])
def test_thresholds_and_shares_match_the_definitions(name, precision, missed):
    scores, labels = SAMPLES[name]
    positive = [bool(x) for x in labels]
    got = calibrate(scores, positive, precision, missed)
    want = brute(scores, positive, precision, missed)
    assert got.nsfw_threshold == want["nsfw"]
    assert got.safe_threshold == want["safe"]
    assert got.labelled == len(scores) and got.positives == sum(positive)
    if want["nsfw"] is None:
        assert got.precision is None and got.recall is None
    else:
        assert got.precision == pytest.approx(want["tp"] / (want["tp"] + want["fp"]))
        assert got.recall == pytest.approx(want["tp"] / sum(positive))
        assert got.precision_interval == wilson(want["tp"], want["tp"] + want["fp"])
    assert got.missed == (None if want["missed"] is None else pytest.approx(want["missed"]))
    assert got.review_share == pytest.approx(want["review"])


def test_a_score_on_the_threshold_counts_as_flagged_not_missed():
    got = calibrate([0.2, 0.6, 0.6, 0.9], [False, True, True, True], precision=1.0, missed=0.0)
    assert got.nsfw_threshold == 0.6 and got.precision == 1.0 and got.recall == 1.0
    assert got.safe_threshold == 0.6 and got.missed == 0.0  # 0.6 itself is not below 0.6


def test_one_label_samples_warn():
    assert any("no safe-labelled rows" in w for w in calibrate([0.5, 0.9], [True, True]).warnings)
    none = calibrate([0.1, 0.9], [False, False])
    assert none.nsfw_threshold is None and none.safe_threshold is None and none.missed is None
    assert any("too few" in w for w in none.warnings)


def test_wilson_intervals_match_published_values():
    # Wilson score intervals at 95 % (Newcombe 1998, table I; Brown, Cai and DasGupta 2001)
    assert wilson(8, 10) == pytest.approx((0.4902, 0.9433), abs=5e-5)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=5e-5)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=5e-5)
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson(0, 0) is None


def test_expected_precision_at_a_base_rate_is_bayes():
    recall, fpr, rate = 0.8, 0.02, 0.01
    assert expected_precision(recall, fpr, rate) == pytest.approx(0.008 / (0.008 + 0.99 * 0.02))
    got = calibrate([0.1, 0.2, 0.9, 0.95, 0.3, 0.92], [False, False, True, True, False, False], precision=0.6)
    assert got.nsfw_threshold == 0.9 and got.false_positive_rate == pytest.approx(1 / 4)
    assert got.expected_precision(0.5) == pytest.approx(0.5 * 1.0 / (0.5 * 1.0 + 0.5 * 0.25))


def test_the_curve_is_the_rule_at_every_distinct_score():
    rng = np.random.default_rng(7)
    scores = np.round(rng.random(300), 2)  # many ties
    positive = rng.random(300) < scores
    thresholds, precision, recall = precision_recall_curve(scores, positive)
    assert list(thresholds) == sorted(set(scores.tolist()))
    for t, p, r in zip(thresholds, precision, recall):
        flagged = scores >= t
        assert p == pytest.approx((flagged & positive).sum() / flagged.sum())
        assert r == pytest.approx((flagged & positive).sum() / positive.sum())
    big = calibrate(scores, positive, 0.9, 0.05)
    want = brute(scores.tolist(), positive.tolist(), 0.9, 0.05)
    assert (big.nsfw_threshold, big.safe_threshold) == (want["nsfw"], want["safe"])
    assert math.isclose(big.review_share, want["review"])


def test_targets_are_met_exactly_as_written():
    # 55 of 100 rows from the threshold up are nsfw-labelled: exactly a precision of 0.55, which
    # 0.55 as a binary float (0.55000000000000004...) times 100 would miss
    scores = [i / 1000 for i in range(100)]
    positive = [i >= 45 for i in range(100)]
    got = calibrate(scores, positive, precision=0.55, missed=0.0)
    assert got.nsfw_threshold == 0.0 and got.precision == 0.55
    assert not any("no threshold reaches" in w for w in got.warnings)
    assert calibrate(scores, positive, precision=0.56, missed=0.0).nsfw_threshold == 0.002  # 55 of 98
