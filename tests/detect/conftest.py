"""Small constructed data sets whose label errors are known by construction."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("AMEND_SHARED_DATA", REPO / ".." / "shared" / "data"))


def clusters(n_per_class: int = 60, n_classes: int = 3, dim: int = 16, spread: float = 0.15, seed: int = 0):
    """Well separated classes on the unit sphere: (vectors, labels)."""
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.normal(size=(dim, dim)))[0][:n_classes] * 1.0  # orthonormal
    labels = np.repeat(np.arange(n_classes), n_per_class)
    vectors = centres[labels] + spread * rng.normal(size=(labels.size, dim))
    return vectors.astype(np.float32), labels


@pytest.fixture
def clean_data():
    """Three well separated classes, no wrong label."""
    return clusters()


@pytest.fixture
def planted():
    """The same classes with samples 5 and 70 relabelled (0 -> 2 and 1 -> 0)."""
    vectors, labels = clusters()
    noisy = labels.copy()
    noisy[5] = 2
    noisy[70] = 0
    return vectors, noisy, labels, np.array([5, 70])
