import numpy as np
import pytest

from core.detect.annotators import krippendorff_alpha, score


def annotations(n=60, n_classes=3):
    truth = np.arange(n) % n_classes
    m = np.tile(truth[:, None], (1, 3))
    return truth, m


def test_planted_disagreement_is_found():
    truth, m = annotations()
    m[7] = [2, 2, 1]  # truth 1: two annotators say 2
    labels = truth.copy()
    r = score(m, 3, labels)
    assert np.flatnonzero(r.flagged).tolist() == [7]
    assert r.suggested[7] == 2 and (np.delete(r.suggested, 7) == -1).all()
    assert r.scores[7] == r.scores.max()
    assert r.evidence["agreement"][7] == pytest.approx(2 / 3)


def test_perfect_agreement_flags_nothing_and_alpha_is_one():
    truth, m = annotations()
    r = score(m, 3, truth)
    assert not r.flagged.any()
    assert r.evidence["krippendorff_alpha"] == pytest.approx(1.0)


def test_with_probabilities_uses_crowdlab_and_rates_annotators():
    truth, m = annotations(n=90)
    m = m.copy()
    rng = np.random.default_rng(1)
    m[:, 2] = rng.integers(0, 3, m.shape[0])  # annotator 2 guesses
    m[::4, 1] = -1  # annotator 1 skips some
    p = np.full((90, 3), 0.05)
    p[np.arange(90), truth] = 0.9
    r = score(m, 3, truth, probabilities=p)
    stats = {s["annotator"]: s for s in r.evidence["annotator_stats"]}
    assert stats["annotator_2"]["annotator_quality"] < stats["annotator_0"]["annotator_quality"]
    assert (r.evidence["consensus"] == truth).all()
    assert r.evidence["krippendorff_alpha"] < 0.9


def test_rows_without_any_label_are_refused():
    with pytest.raises(ValueError):
        score(np.array([[0, 1], [-1, -1]]), 2)
    assert np.isnan(krippendorff_alpha(np.zeros((4, 2), int)))
