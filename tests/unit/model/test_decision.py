"""Deciding a file from its views' scores: thresholds of a view's own (regions, a video's later
frames) and the cascade's rule for keeping a first-pass row (``model/decision.py``)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nsfw_scan.model.decision import AS_PICTURE, OwnThresholds, Thresholds

REGIONS = OwnThresholds(0.3, 0.9)
scores = st.floats(0.0, 1.0)


def test_a_view_at_its_own_thresholds_decides_as_its_counted_score_at_yahoos():
    assert [REGIONS.counted(s) for s in (0.0, 0.3, 0.6, 0.9, 0.95, 1.0)] == pytest.approx([0.0, 0.2, 0.5, 0.8, 0.9, 1.0])
    yahoo = Thresholds()
    for own, expected in ((0.29, "safe"), (0.3, "review"), (0.89, "review"), (0.9, "nsfw")):
        assert yahoo.decide(REGIONS.counted(own)) == expected, own
    assert yahoo.of_view(REGIONS) == pytest.approx((0.3, 0.9)) and yahoo.of_view(AS_PICTURE) == (0.2, 0.8)
    # other thresholds fall on the same scale: 0.1 is half of 0.2, so half of 0.3
    assert Thresholds(0.1, 0.5).of_view(REGIONS) == pytest.approx((0.15, 0.6))


@given(scores)
def test_counting_is_monotone_and_inverted_exactly(score):
    assert AS_PICTURE.counted(score) == score and AS_PICTURE.own(score) == score
    assert REGIONS.own(REGIONS.counted(score)) == pytest.approx(score, abs=1e-12)
    assert REGIONS.counted(score) <= REGIONS.counted(min(1.0, score + 0.01))


def test_own_thresholds_are_checked():
    for bad in ((0.0, 0.5), (0.5, 0.5), (0.6, 0.4), (0.2, 1.0)):
        with pytest.raises(ValueError):
            OwnThresholds(*bad)


def test_a_first_pass_row_is_kept_only_where_no_view_could_move_its_decision():
    yahoo, margin = Thresholds(), 0.05
    assert yahoo.settled([(0.1, AS_PICTURE), (0.2, REGIONS)], margin)  # every view far below its own
    assert not yahoo.settled([(0.1, AS_PICTURE), (0.27, REGIONS)], margin)  # a region near its 0.3
    assert not yahoo.settled([(0.19, AS_PICTURE), (0.1, REGIONS)], margin)  # Yahoo's view near 0.2
    # Yahoo's view near 0.2 cannot move a row a region makes nsfw far from the region's own 0.9
    assert yahoo.settled([(0.19, AS_PICTURE), (0.97, REGIONS)], margin)
    assert yahoo.settled([(0.5, AS_PICTURE), (0.97, REGIONS)], margin)  # above 0.2 and above the region's 0.9
    assert not yahoo.settled([(0.5, AS_PICTURE), (0.93, REGIONS)], margin)  # the region near its 0.9


@given(st.lists(st.tuples(scores, st.sampled_from([AS_PICTURE, REGIONS])), min_size=1, max_size=6),
       st.lists(st.floats(-0.05, 0.05), min_size=6, max_size=6))
def test_a_kept_row_s_decision_is_the_one_any_scores_within_the_margin_give(views, moves):
    """The cascade's guarantee: if ``settled``, every view's score moved by up to the margin gives
    the same decision (the highest counted score at Yahoo's thresholds)."""
    yahoo, margin = Thresholds(), 0.05
    if not yahoo.settled(views, margin):
        return
    decide = lambda vs: yahoo.decide(max(counts.counted(s) for s, counts in vs))  # noqa: E731
    moved = [(min(1.0, max(0.0, s + d)), counts) for (s, counts), d in zip(views, moves)]
    assert decide(moved) == decide(views)


@given(scores, st.sampled_from([AS_PICTURE, REGIONS]), st.lists(st.tuples(scores, st.sampled_from([AS_PICTURE, REGIONS])),
                                                                 max_size=4))
def test_a_row_is_settled_only_if_its_views_are(best, counts, others):
    """``settled_row`` knows only the row: when it keeps it, so would ``settled`` with any other
    views that counted no higher."""
    yahoo, margin = Thresholds(), 0.05
    score = counts.counted(best)
    others = [(s, c) for s, c in others if c.counted(s) <= score]
    if yahoo.settled_row(score, counts, margin, [REGIONS]):
        assert yahoo.settled([(best, counts), *others], margin)
