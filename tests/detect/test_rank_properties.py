"""Properties of the combination and the ranking (core.detect.rank), for any scores hypothesis finds.

The expected values are derived from the documented rules, not from the code: the weighted
combination is the weighted mean, the order sorts by score with ties by index, raising one
sample's confident score never moves it down, and renumbering the samples renumbers the result.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from core.detect.rank import combine_scores, rank
from core.detect.result import DetectorResult

N_CLASSES = 3
# Scores drawn from a few round values as well as anywhere in [0, 1], so ties are common.
score = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.floats(0.0, 1.0, allow_nan=False))
weight = st.floats(0.05, 10.0, allow_nan=False)


@st.composite
def detections(draw, min_size: int = 1):
    """(confident scores, outlier scores, labels, confident flags, confident suggestions)."""
    n = draw(st.integers(min_size, 30))
    scores = st.lists(score, min_size=n, max_size=n).map(np.array)
    labels = np.array(draw(st.lists(st.integers(0, N_CLASSES - 1), min_size=n, max_size=n)))
    flagged = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    suggested = np.array(draw(st.lists(st.integers(-1, N_CLASSES - 1), min_size=n, max_size=n)))
    return draw(scores), draw(scores), labels, flagged, suggested


def _results(confident, outliers, flagged, suggested):
    return {
        "confident": DetectorResult("confident", "test", confident, flagged, suggested),
        "outliers": DetectorResult("outliers", "test", outliers, np.zeros(len(outliers), bool)),
    }


def _rank(data, weights, class_strength=0.0):
    confident, outliers, labels, flagged, suggested = data
    return rank(_results(confident, outliers, flagged, suggested), labels, weights=weights,
                class_strength=class_strength)


@given(detections(), weight, weight)
def test_weighted_combination_is_the_weighted_mean(data, w_confident, w_outliers):
    confident, outliers = data[0], data[1]
    expected = (w_confident * confident + w_outliers * outliers) / (w_confident + w_outliers)
    weights = {"confident": w_confident, "outliers": w_outliers}
    np.testing.assert_allclose(combine_scores({"confident": confident, "outliers": outliers}, "weighted", weights),
                               expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_rank(data, weights).score, expected, rtol=1e-12, atol=1e-12)


@given(detections())
def test_max_and_noisy_or_bound_every_detector(data):
    confident, outliers = data[0], data[1]
    scores = {"confident": confident, "outliers": outliers}
    largest = combine_scores(scores, "max")
    np.testing.assert_array_equal(largest, np.maximum(confident, outliers))
    assert (combine_scores(scores, "noisy_or") >= largest - 1e-12).all()


@given(detections(), weight, weight, st.sampled_from([0.0, 0.5, 1.0]))
def test_order_is_a_permutation_sorted_by_score_with_ties_by_index(data, w1, w2, class_strength):
    ranking = _rank(data, {"confident": w1, "outliers": w2}, class_strength)
    n = len(data[0])
    assert sorted(ranking.order.tolist()) == list(range(n))
    np.testing.assert_array_equal(ranking.rank[ranking.order], np.arange(n))
    keys = [(-ranking.score[i], i) for i in ranking.order]
    assert keys == sorted(keys)


@given(detections(), weight, weight, st.sampled_from([0.0, 0.5, 1.0]), st.data())
def test_a_higher_confident_score_never_moves_a_sample_down(data, w1, w2, class_strength, extra):
    confident, outliers, labels, flagged, suggested = data
    j = extra.draw(st.integers(0, len(confident) - 1), label="sample")
    higher = confident.copy()
    higher[j] = extra.draw(st.floats(float(confident[j]), 1.0), label="its new score")
    weights = {"confident": w1, "outliers": w2}
    before = _rank(data, weights, class_strength)
    after = _rank((higher, outliers, labels, flagged, suggested), weights, class_strength)
    assert after.score[j] >= before.score[j] - 1e-12
    assert after.rank[j] <= before.rank[j]


@given(detections(), st.randoms(use_true_random=False))
def test_renumbering_the_samples_renumbers_the_ranking(data, rnd):
    confident, outliers, labels, flagged, suggested = data
    perm = np.array(rnd.sample(range(len(confident)), len(confident)))
    before = _rank(data, None, 0.5)
    after = _rank((confident[perm], outliers[perm], labels[perm], flagged[perm], suggested[perm]), None, 0.5)
    np.testing.assert_allclose(after.score, before.score[perm], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(after.suggested, before.suggested[perm])
    if len(np.unique(before.score)) == len(confident):  # with ties the index decides who is in the top n
        np.testing.assert_array_equal(after.flagged, before.flagged[perm])


@given(detections())
def test_flags_are_the_confident_detectors_and_suggestions_differ_from_the_label(data):
    confident, outliers, labels, flagged, suggested = data
    ranking = _rank(data, None)
    # per given label, as many as the confident detector flags there (cleanlab's noise estimate),
    # and those the first of that label in the ranking (its results here carry no posterior, so
    # it has no sure flags to add); the outlier detector speaks only as evidence, so it adds nothing
    for c in np.unique(labels):
        members = labels == c
        assert ranking.flagged[members].sum() == flagged[members].sum()
        chosen, passed = ranking.rank[members & ranking.flagged], ranking.rank[members & ~ranking.flagged]
        if chosen.size and passed.size:
            assert chosen.max() < passed.min()
    taken = ranking.suggested >= 0
    np.testing.assert_array_equal(ranking.suggested[taken], suggested[taken])  # only confident suggests here
    assert (ranking.suggested[taken] != labels[taken]).all()
    assert set(ranking.suggested_by[taken]) <= {"confident"} and set(ranking.suggested_by[~taken]) <= {""}
    # every suggestion of the confident detector that differs from the label is taken
    np.testing.assert_array_equal(taken, (suggested >= 0) & (suggested != labels))
