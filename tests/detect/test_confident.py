import numpy as np
import pytest

from core.detect.confident import best_other_label, check_probabilities, score


def probs_for(labels, n_classes, wrong, p_true=0.85, seed=0):
    """Probabilities of a good model that knows the true labels (before ``wrong`` was planted)."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(n_classes), size=labels.size) * (1 - p_true)
    p[np.arange(labels.size), labels] += p_true
    # the planted errors are clear examples of their true class: the model is sure of them
    p[wrong] = 0.01
    p[wrong, labels[wrong]] = 0.98
    return p / p.sum(axis=1, keepdims=True)


def test_planted_errors_score_highest_and_are_flagged(planted):
    _, noisy, truth, wrong = planted
    p = probs_for(truth, 3, wrong)
    r = score(noisy, p)
    assert set(np.argsort(-r.scores)[:2]) == set(wrong.tolist())
    assert r.flagged[wrong].all()
    assert r.suggested[wrong].tolist() == truth[wrong].tolist()
    assert r.flagged.sum() <= 4


def test_clean_labels_flag_little(clean_data):
    _, labels = clean_data
    r = score(labels, probs_for(labels, 3, []))
    assert r.flagged.sum() == 0
    assert r.scores.max() < 0.2


def test_best_other_label_never_returns_the_given_label():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    assert best_other_label(p, np.array([0, 1])).tolist() == [1, 2]


def test_probabilities_are_checked():
    with pytest.raises(ValueError):
        check_probabilities(np.ones((2, 3)), 2, 3)
    with pytest.raises(ValueError):
        check_probabilities(np.full((2, 2), 0.5), 3, 2)
    with pytest.raises(ValueError):
        score(np.array([0, 1]), np.array([[np.nan, 1.0], [0.5, 0.5]]))
