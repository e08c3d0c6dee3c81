import numpy as np
import pytest

from core.detect.rank import combine_scores, rank
from core.detect.result import DetectorResult


def res(name, scores, flagged, suggested=None):
    scores = np.asarray(scores, float)
    return DetectorResult(name, name, scores, np.asarray(flagged, bool), suggested)


def test_combination_methods():
    s = {"confident": np.array([0.9, 0.1, 0.5]), "neighbours_vote": np.array([0.1, 0.9, 0.5])}
    np.testing.assert_allclose(combine_scores(s, "max"), [0.9, 0.9, 0.5])
    np.testing.assert_allclose(combine_scores(s, "noisy_or"), [0.91, 0.91, 0.75])
    np.testing.assert_allclose(combine_scores(s, "weighted", {"confident": 3, "neighbours_vote": 1}), [0.7, 0.3, 0.5])
    # percentile ranks: confident (3, 1, 2) / 3, neighbours_vote (1, 3, 2) / 3
    np.testing.assert_allclose(combine_scores(s, "mean_rank"), [2 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(combine_scores({"confident": np.array([0.9, 0.1, 0.5, 0.5])}, "mean_rank"),
                               [1.0, 0.25, 0.625, 0.625])  # ties share their average rank
    with pytest.raises(ValueError):
        combine_scores(s, "median")
    with pytest.raises(ValueError):
        combine_scores({})


def test_ranking_order_flags_suggestions_and_support():
    from core.neighbours import KnnGraph

    labels = np.array([0, 0, 1, 1])
    conf = res("confident", [0.2, 0.95, 0.1, 0.4], [False, True, False, False], np.array([1, 1, 0, 0]))
    dup = res("duplicates", [0, 0, 0, 0.99], [False, False, False, True], np.array([-1, -1, -1, 0]))
    graph = KnnGraph(np.array([[1, 2], [2, 3], [3, 0], [0, 1]]), np.ones((4, 2), np.float32))
    r = rank({"confident": conf, "duplicates": dup}, labels, graph)
    assert r.order[0] == 1 and r.rank[1] == 0
    assert r.flagged.tolist() == [False, True, False, True]
    assert r.suggested[3] == 0 and r.suggested_by[3] == "duplicates"
    assert r.suggested[1] == 1 and r.suggested_by[1] == "confident"
    assert r.support[1].tolist() == [2, 3]  # both neighbours of sample 1 carry label 1
    assert set(r.detector_scores) == {"confident", "duplicates"}
    np.testing.assert_allclose(r.score, combine_scores(r.detector_scores))  # class_strength 0: the weighted mean
    np.testing.assert_allclose(r.score, (1.0 * conf.scores + 0.5 * dup.scores) / 1.5)


def test_ties_are_ranked_by_index_and_sizes_checked():
    a = res("confident", [0.5, 0.5, 0.5], [False] * 3)
    assert rank({"confident": a}, np.array([0, 1, 0])).order.tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        rank({"confident": a}, np.array([0, 1]))


def test_a_rank_fused_detector_joins_by_percentile_rank():
    from scipy.stats import rankdata

    from core.detect.rank import rank
    from core.detect.result import DetectorResult

    labels = np.zeros(5, dtype=np.int64)
    confident = DetectorResult("confident", "", np.array([0.9, 0.8, 0.1, 0.2, 0.3]), np.zeros(5, bool))
    # an AUM-like score on its own scale: nearly flat, but it orders the samples differently
    aum = DetectorResult("aum", "", np.array([0.50, 0.51, 0.52, 0.53, 0.54]), np.zeros(5, bool))
    fused = rank({"confident": confident, "aum": aum}, labels)
    expected = (rankdata(confident.scores) + rankdata(aum.scores)) / 2 / 5
    np.testing.assert_allclose(fused.score, expected)
    assert fused.params["fused_by_rank"] == {"aum": 1.0}  # no confident flags to weigh it by
    alone = rank({"aum": aum}, labels)  # nothing else to fuse with: the AUM ranks alone
    np.testing.assert_allclose(alone.score, aum.scores)
    assert alone.params["fused_by_rank"] == {}


def test_a_rank_fused_detector_that_disagrees_with_the_out_of_sample_flags_weighs_nothing():
    from core.detect.rank import rank
    from core.detect.result import DetectorResult

    labels = np.zeros(6, dtype=np.int64)
    flags = np.array([True, True, False, False, False, False])
    confident = DetectorResult("confident", "", np.array([0.9, 0.8, 0.3, 0.2, 0.1, 0.05]), flags)
    # ranks the two flagged samples last: worse than chance, so it gets weight 0
    contrary = DetectorResult("aum", "", np.array([0.1, 0.2, 0.6, 0.7, 0.8, 0.9]), np.zeros(6, bool))
    ranking = rank({"confident": confident, "aum": contrary}, labels)
    assert ranking.params["fused_by_rank"] == {"aum": 0.0}
    assert ranking.order[:2].tolist() == [0, 1]
    # one that puts the flags first (AUC 1) weighs fully
    agreeing = DetectorResult("aum", "", np.array([0.9, 0.95, 0.1, 0.2, 0.3, 0.4]), np.zeros(6, bool))
    assert rank({"confident": confident, "aum": agreeing}, labels).params["fused_by_rank"] == {"aum": 1.0}
