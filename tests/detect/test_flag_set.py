"""The flagged set follows the data's noise estimate; the queue can be cut by expected precision."""

from __future__ import annotations

import numpy as np
import pytest

from core.detect import DetectConfig, detect
from core.detect.confident import error_probability
from core.detect.rank import cut_by_precision

from .conftest import clusters


def _flip(labels: np.ndarray, rate: float, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    wrong = rng.random(labels.size) < rate
    noisy = np.where(wrong, (labels + rng.integers(1, n_classes, labels.size)) % n_classes, labels)
    return noisy, wrong


def test_flag_count_follows_the_noise_rate():
    vectors, labels = clusters(n_per_class=150, n_classes=4, dim=24, spread=0.3, seed=7)
    counts = []
    for rate in (0.03, 0.10, 0.25):
        noisy, wrong = _flip(labels, rate, 4, seed=11)
        d = detect(vectors, noisy, 4, config=DetectConfig(device="cpu"))
        counts.append((int(d.flagged.sum()), int(wrong.sum())))
        # the size tracks the number of wrong labels, and so does the sum of error probabilities
        assert 0.6 * wrong.sum() <= d.flagged.sum() <= 1.4 * wrong.sum()
        assert abs(d.error_probability.sum() - wrong.sum()) <= 0.25 * wrong.sum()
    assert counts[0][0] < counts[1][0] < counts[2][0]


def test_error_probability_is_high_where_labels_are_wrong():
    rng = np.random.default_rng(3)
    truth = np.repeat(np.arange(3), 200)
    noisy, wrong = _flip(truth, 0.1, 3, seed=2)
    p = np.full((truth.size, 3), 0.05)
    p[np.arange(truth.size), truth] = 0.9
    p = p + rng.uniform(0, 0.05, p.shape)
    p /= p.sum(axis=1, keepdims=True)
    e = error_probability(noisy, p)
    assert e[wrong].mean() > 0.7 and e[~wrong].mean() < 0.1
    assert np.median(e[wrong]) > np.quantile(e[~wrong], 0.99)
    assert abs(e.sum() - wrong.sum()) < 0.25 * wrong.sum()


def test_cut_by_precision_keeps_the_longest_prefix_above_the_target():
    e = np.array([0.95, 0.9, 0.8, 0.3, 0.9, 0.1])
    assert cut_by_precision(e, 0.9) == 2                 # 0.95, 0.9 -> mean 0.925; adding 0.8 -> 0.883
    assert cut_by_precision(e, 0.8) == 3                 # 0.883; the first four fall to 0.7375
    assert cut_by_precision(e, 0.75) == 5                # a later strong flag lifts the mean back to 0.77
    assert cut_by_precision(e, 0.99) == 0
    assert cut_by_precision(e, 0.0) == e.size
    with pytest.raises(ValueError):
        cut_by_precision(e, 1.5)


def test_bulk_acceptance_takes_fewer_and_more_often_right_suggestions_than_the_flags():
    vectors, labels = clusters(n_per_class=150, n_classes=4, dim=24, spread=0.45, seed=5)
    noisy, wrong = _flip(labels, 0.12, 4, seed=13)
    d = detect(vectors, noisy, 4, config=DetectConfig(device="cpu"))
    every = d.flagged & (d.suggested >= 0)
    bulk = d.accept_in_bulk
    assert bulk is not None and not (bulk & ~every).any()  # a subset of the flagged suggestions
    assert 0 < bulk.sum() < every.sum()

    def right(take):  # share of the taken suggestions that restore the true label
        return float((d.suggested[take] == labels[take]).mean())

    assert right(bulk) > right(every)
    # What it leaves for a person is mostly where the suggestion would have been wrong or the
    # label was right.
    left = every & ~bulk
    assert right(left) < 0.5


def test_true_label_posterior_is_a_distribution_that_favours_the_truth():
    from core.detect.confident import true_label_posterior

    rng = np.random.default_rng(4)
    truth = np.repeat(np.arange(3), 200)
    noisy, wrong = _flip(truth, 0.15, 3, seed=6)
    p = np.full((truth.size, 3), 0.05) + rng.uniform(0, 0.05, (truth.size, 3))
    p[np.arange(truth.size), truth] = 0.85
    p /= p.sum(axis=1, keepdims=True)
    post = true_label_posterior(noisy, p)
    assert np.allclose(post.sum(axis=1), 1.0) and (post >= 0).all()
    assert (post.argmax(axis=1) == truth).mean() > 0.95
    # the given label keeps some weight where it is right; where it is wrong, little
    rows = np.arange(truth.size)
    assert post[rows[~wrong], noisy[~wrong]].mean() > 0.8 > 0.2 > post[rows[wrong], noisy[wrong]].mean()


def test_each_class_keeps_its_noise_count_and_the_ranking_chooses_which():
    from core.detect.rank import rank
    from core.detect.result import DetectorResult

    labels = np.repeat([0, 1], 100)
    wrong = np.zeros(200, bool)
    wrong[[0, 1, 2, 3, 4, 100, 101, 102]] = True
    rng = np.random.default_rng(0)
    # cleanlab counts five wrong labels in class 0 and three in class 1, but in class 0 its
    # margin names three right ones (50-52) instead of three wrong ones (2-4) ...
    confident_scores = rng.uniform(0.0, 0.3, 200)
    counted = np.zeros(200, bool)
    counted[[0, 1, 50, 51, 52, 100, 101, 102]] = True
    confident_scores[counted] = 0.6
    confident_scores[[2, 3, 4]] = 0.55
    # ... while a second detector sees all eight, so the combined ranking puts them first
    vote_scores = np.where(wrong, 0.9, 0.2)
    vote_scores[[50, 51, 52]] = 0.1
    results = {
        "confident": DetectorResult("confident", "test", confident_scores, counted, np.where(labels == 0, 1, 0)),
        "neighbours_vote": DetectorResult("neighbours_vote", "test", vote_scores, wrong.copy(), np.where(labels == 0, 1, 0)),
    }
    ranking = rank(results, labels, weights={"confident": 1.0, "neighbours_vote": 1.0})
    np.testing.assert_array_equal(ranking.flagged, wrong)
    assert "per class as many as the estimated noise" in ranking.params["flag_rule"]
    np.testing.assert_array_equal(results["confident"].flagged, counted)  # its own flags stay its evidence
    # a flag of cleanlab's that a bulk acceptance would take (its suggestion is its most probable
    # label) stays in the queue even where the ranking chose others
    suggested = np.where(labels == 0, 1, 0)
    most_likely = labels.copy()
    most_likely[50] = suggested[50]
    results["confident"] = DetectorResult("confident", "test", confident_scores, counted, suggested,
                                          evidence={"most_likely_label": most_likely})
    ranking = rank(results, labels, weights={"confident": 1.0, "neighbours_vote": 1.0})
    expected = wrong.copy()
    expected[50] = True
    np.testing.assert_array_equal(ranking.flagged, expected)
    assert ranking.accept_in_bulk[50] and ranking.accept_in_bulk.sum() == 1


def test_each_class_flags_as_many_as_its_expected_wrong_labels():
    from core.detect.rank import rank
    from core.detect.result import DetectorResult

    labels = np.repeat([0, 1], 50)
    # cleanlab's margins pass a threshold for ten samples of class 0 and none of class 1 ...
    counted = np.zeros(100, bool)
    counted[:10] = True
    # ... but the error probabilities expect 3.4 wrong labels in class 0 and 1.6 in class 1
    expected = np.zeros(100)
    expected[[0, 1, 2, 3]] = [0.9, 0.9, 0.9, 0.7]
    expected[[50, 51]] = [0.9, 0.7]
    scores = np.linspace(1.0, 0.0, 100)  # the ranking: index order within each class
    suggested = np.where(labels == 0, 1, 0)
    results = {"confident": DetectorResult("confident", "test", scores, counted, suggested,
                                           evidence={"error_probability": expected})}
    ranking = rank(results, labels, weights={"confident": 1.0})
    np.testing.assert_array_equal(np.flatnonzero(ranking.flagged), [0, 1, 2, 50, 51])
    # without error probabilities the detector's own count stays the quota
    results["confident"] = DetectorResult("confident", "test", scores, counted, suggested)
    np.testing.assert_array_equal(np.flatnonzero(rank(results, labels, weights={"confident": 1.0}).flagged),
                                  np.arange(10))


def test_the_users_probabilities_alone_keep_cleanlabs_own_choice():
    from core.detect.probe import cross_validated_probabilities
    from core.detect.result import REGISTRY

    vectors, labels = clusters(n_per_class=150, n_classes=4, dim=24, spread=0.45, seed=5)
    noisy, _ = _flip(labels, 0.12, 4, seed=13)
    users = cross_validated_probabilities(vectors, noisy, 4, seed=3, device="cpu")  # "the user's model"
    for config, chooses in ((DetectConfig(device="cpu"), False), (DetectConfig(device="cpu", pool="all"), True)):
        d = detect(vectors, noisy, 4, probabilities=users, config=config)
        own = d.results["confident"].flagged
        others = np.logical_or.reduce([r.flagged for name, r in d.results.items() if REGISTRY[name].speaks_when_flagged])
        rule = d.params["ranking"]["flag_rule"]
        if chooses:  # Amend's probe is pooled in: the ranking chooses within each class
            assert "first in the ranking" in rule
            sure = own & (d.results["confident"].evidence["most_likely_label"] == d.results["confident"].suggested)
            assert (sure <= d.flagged).all()
            expected = d.results["confident"].evidence["error_probability"]
            for c in range(4):
                quota = round(float(expected[noisy == c].sum()))
                chosen = (d.flagged & ~others)[noisy == c].sum()
                assert quota <= chosen + others[noisy == c].sum()
                assert chosen <= quota + sure[noisy == c].sum()
        else:
            assert "per class pair" in rule
            assert (own <= d.flagged).all() and not (d.flagged & ~own & ~others).any()


def _rare_label_overused(true_rare: int, overused: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four classes of 500 and a rare fifth one with ``true_rare`` members; 5 % of labels flipped
    among the four, and ``overused`` samples of class 1 given the rare label (an annotator's
    habit, or a label retired from the guideline but left on a few samples)."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(5), [500, 500, 500, 500, true_rare])
    centres = rng.normal(size=(5, 16)) * 2.0
    vectors = (centres[truth] + rng.normal(size=(truth.size, 16))).astype(np.float32)
    noisy = truth.copy()
    flip = rng.random(truth.size) < 0.05
    noisy[flip] = rng.choice(4, int(flip.sum()))
    noisy[rng.choice(np.flatnonzero(truth == 1), overused, replace=False)] = 4
    return vectors, noisy, noisy != truth


@pytest.mark.parametrize("true_rare, overused", [(0, 20), (5, 40)])
def test_a_label_given_mostly_by_mistake_does_not_make_another_class_look_wrong(true_rare, overused):
    # The rare label's confidence threshold collapses when most of its samples are wrong; counted
    # as cleanlab counts, class 1's right labels filled the rare class's column of the noise
    # matrix and the queue held 179-430 flags for about 100 wrong labels, most of them class 1's.
    vectors, noisy, wrong = _rare_label_overused(true_rare, overused, seed=0)
    d = detect(vectors, noisy, 5, config=DetectConfig(device="cpu"))
    assert d.flagged.sum() <= 1.5 * wrong.sum()
    assert d.error_probability.sum() <= 1.5 * wrong.sum()
    f1 = 2 * (d.flagged & wrong).sum() / (d.flagged.sum() + wrong.sum())
    assert f1 >= 0.85
    class_1 = noisy == 1
    assert d.flagged[class_1].sum() <= 1.5 * wrong[class_1].sum()


def test_the_confident_joint_is_cleanlabs_where_no_label_is_mostly_wrong():
    from cleanlab.count import estimate_joint

    from core.detect.confident import confident_joint

    rng = np.random.default_rng(8)
    truth = np.repeat(np.arange(3), 200)
    noisy, _ = _flip(truth, 0.1, 3, seed=9)
    p = np.full((truth.size, 3), 0.05) + rng.uniform(0, 0.05, (truth.size, 3))
    p[np.arange(truth.size), truth] = rng.uniform(0.75, 0.95, truth.size)
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(confident_joint(noisy, p), estimate_joint(noisy, p))


def test_a_label_whose_threshold_falls_below_chance_stops_collecting_other_classes():
    from cleanlab.count import estimate_joint

    from core.detect.confident import confident_joint

    rng = np.random.default_rng(2)
    # 300 samples of class 0, 300 of class 1; ten class-0 samples carry label 2, which has no
    # sample of its own, so its threshold (the mean probability of 2 over them) is a trace
    truth = np.repeat([0, 1], 300)
    noisy = truth.copy()
    noisy[:10] = 2
    p = np.empty((600, 3))
    p[:, 2] = rng.uniform(0.01, 0.06, 600)
    p[:, 0] = np.where(truth == 0, rng.uniform(0.80, 0.95, 600), 0.05)
    p[:, 1] = 1.0 - p[:, 0] - p[:, 2]
    # and twenty ambiguous samples labelled 0 that lean to class 1 but reach no threshold of
    # 0 or 1; only label 2's trace of a threshold (0.3 is below chance)
    p = np.vstack([p, np.tile([0.3, 0.4, 0.3], (20, 1))])
    noisy = np.concatenate([noisy, np.zeros(20, dtype=noisy.dtype)])
    counts = estimate_joint(noisy, p) * noisy.size
    assert counts[0, 2] > 50  # cleanlab's count: many samples labelled 0 read as true 2s
    ours = confident_joint(noisy, p) * noisy.size
    assert ours[0, 2] == 0 and ours[1, 2] == 0
    assert ours[2, 0] == pytest.approx(10, abs=0.5)  # the ten wrong labels are class 0's


def test_samples_whose_most_probable_class_is_their_label_stay_out_of_other_classes_columns():
    from cleanlab.count import estimate_joint

    from core.detect.confident import confident_joint

    # Class 2 is a hard class: its samples get 0.4 of it, so its threshold (0.4) is above chance.
    # Sixty class-0 samples are uncertain: 0.5 of their own class, below class 0's threshold, and
    # 0.4 of class 2, which reaches class 2's. Their label is still their most probable class.
    sure = np.tile([0.9, 0.05, 0.05], (240, 1))
    uncertain = np.tile([0.5, 0.1, 0.4], (60, 1))
    ones = np.tile([0.05, 0.9, 0.05], (300, 1))
    twos = np.tile([0.3, 0.3, 0.4], (100, 1))
    p = np.vstack([sure, uncertain, ones, twos])
    labels = np.repeat([0, 1, 2], [300, 300, 100])
    assert (p[240:300].argmax(axis=1) == 0).all()
    assert estimate_joint(labels, p)[0, 2] * labels.size > 50  # cleanlab counts them as true 2s
    ours = confident_joint(labels, p) * labels.size
    assert ours[0, 2] == 0
    np.testing.assert_allclose(ours.sum(axis=1), [300, 300, 100])  # still calibrated to the label counts
