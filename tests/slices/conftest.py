"""Constructed data with known slices for the slices tests."""

from __future__ import annotations

import warnings

import numpy as np
import pytest


def mixture(n_per: int = 300, clusters: int = 6, d: int = 32, classes: int = 3, seed: int = 0):
    """Well-separated Gaussian clusters; cluster k holds class k % classes, with 3 % of its
    samples given another class (a little natural noise everywhere).

    Returns vectors (N, d), true labels (N,), cluster id (N,).
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, d)) * 4.0
    x, y, c = [], [], []
    for k in range(clusters):
        pts = centers[k] + rng.normal(size=(n_per, d))
        lab = np.full(n_per, k % classes)
        other = rng.random(n_per) < 0.03
        lab[other] = rng.integers(0, classes, other.sum())
        x.append(pts)
        y.append(lab)
        c.append(np.full(n_per, k))
    return np.concatenate(x).astype(np.float32), np.concatenate(y), np.concatenate(c)


def cv_probabilities(x: np.ndarray, labels: np.ndarray, n_classes: int, seed: int = 0) -> np.ndarray:
    """Out-of-sample probabilities from a 5-fold logistic probe (the real thing, small)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    out = np.zeros((x.shape[0], n_classes))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, labels):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = LogisticRegression(C=1.0, max_iter=300).fit(x[tr], labels[tr])
        out[np.ix_(te, m.classes_)] = m.predict_proba(x[te])
    return out


def flip_in_cluster(labels, clusters, cluster, rate=0.2, seed=0):
    """Flip ``rate`` of the cluster's majority class A to B = A + 1, in that cluster only."""
    rng = np.random.default_rng(seed)
    inside = clusters == cluster
    counts = np.bincount(labels[inside])
    a = int(np.argmax(counts))
    b = (a + 1) % (labels.max() + 1)
    members = np.flatnonzero(inside & (labels == a))
    flip = rng.choice(members, int(rate * members.size), replace=False)
    noisy = labels.copy()
    noisy[flip] = b
    return noisy, flip


@pytest.fixture(scope="module")
def planted():
    x, y, c = mixture()
    noisy, flip = flip_in_cluster(y, c, cluster=2)
    probs = cv_probabilities(x, noisy, 3)
    return {"x": x, "y": y, "clusters": c, "noisy": noisy, "flip": flip, "probs": probs}
