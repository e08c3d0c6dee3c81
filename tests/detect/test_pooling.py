"""Pooled probabilities: the weights follow which source predicts the project's own labels."""

from __future__ import annotations

import numpy as np

from core.detect.pooling import neighbour_probabilities, pool, pool_weights
from core.neighbours import build_knn_graph, normalise

from .conftest import clusters


def _noisy_source(labels: np.ndarray, n_classes: int, accuracy: float, seed: int) -> np.ndarray:
    """Probabilities that put 0.8 on the true class for ``accuracy`` of the rows, else on a random one."""
    rng = np.random.default_rng(seed)
    right = rng.random(labels.size) < accuracy
    top = np.where(right, labels, rng.integers(0, n_classes, labels.size))
    p = np.full((labels.size, n_classes), 0.2 / (n_classes - 1))
    p[np.arange(labels.size), top] = 0.8
    return p


def test_an_informative_source_outweighs_a_useless_one():
    labels = np.repeat(np.arange(4), 100)
    good = _noisy_source(labels, 4, 0.95, seed=1)
    # probabilities unrelated to the labels (a uniform source would be ignored by any exponent)
    useless = np.random.default_rng(9).dirichlet(np.ones(4), labels.size)
    pooled = pool({"good": good, "useless": useless}, labels)
    assert pooled.weights["good"] > 0.5 and pooled.weights["useless"] < 0.05 * pooled.weights["good"]
    assert np.allclose(pooled.probabilities.sum(axis=1), 1.0)
    assert (pooled.probabilities.argmax(axis=1) == good.argmax(axis=1)).all()


def test_two_independent_sources_beat_either_alone():
    labels = np.repeat(np.arange(5), 200)
    a = _noisy_source(labels, 5, 0.7, seed=2)
    b = _noisy_source(labels, 5, 0.7, seed=3)
    pooled = pool({"a": a, "b": b}, labels)
    rows = np.arange(labels.size)
    assert min(pooled.weights.values()) > 0.2
    assert np.log(pooled.probabilities[rows, labels]).mean() > max(np.log(a[rows, labels]).mean(), np.log(b[rows, labels]).mean())


def test_one_source_is_returned_unchanged():
    labels = np.repeat(np.arange(3), 10)
    p = _noisy_source(labels, 3, 0.9, seed=4)
    pooled = pool({"given": p}, labels)
    assert pooled.weights == {"given": 1.0} and np.array_equal(pooled.probabilities, p)


def test_pool_weights_recover_a_known_exponent():
    # labels drawn from softmax(2 * log p): the maximum-likelihood exponent is near 2
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(4000, 3))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    sharp = p ** 2 / (p ** 2).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(3, p=row) for row in sharp])
    a = pool_weights([np.log(p)], labels)
    assert abs(a[0] - 2.0) < 0.2


def test_neighbour_probabilities_leave_the_sample_out_and_follow_its_neighbours():
    vectors, labels = clusters(n_per_class=30, n_classes=3, spread=0.05)
    noisy = labels.copy()
    noisy[4] = 2
    graph = build_knn_graph(normalise(vectors), k=5, method="exact", device="cpu")
    p = neighbour_probabilities(graph, noisy, 3)
    assert np.allclose(p.sum(axis=1), 1.0)
    assert p[4].argmax() == 0 and p[4, 2] < 0.2  # its own (wrong) label is not among its neighbours'
