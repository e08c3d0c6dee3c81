"""Domain gap between sources; disagreement between representations."""

from __future__ import annotations

import numpy as np
import pytest

from core.slices import domain_gap, representation_disagreement, source_like_columns


def test_domain_gap_identical_sources_near_half_shifted_near_one():
    rng = np.random.default_rng(0)
    same = rng.normal(size=(1200, 24))
    src = np.array(["a", "b", "c"] * 400)
    shifted = same.copy()
    shifted[src == "c", 0] += 3.0  # source c is shifted along one axis
    gap = domain_gap(shifted, src, seed=0).set_index(["source_a", "source_b"])["auroc"]
    assert gap[("a", "b")] == pytest.approx(0.5, abs=0.08)
    assert gap[("a", "c")] > 0.95 and gap[("b", "c")] > 0.95
    assert list(domain_gap(shifted, src).columns) == ["source_a", "source_b", "n_a", "n_b", "auroc"]


def test_domain_gap_needs_two_sources():
    assert domain_gap(np.zeros((20, 4)), ["a"] * 20).empty


def test_source_like_columns():
    import pandas as pd

    meta = pd.DataFrame({"hospital": ["h1", "h2"] * 5, "scanner_model": ["x"] * 10, "age": range(10), "split": ["train", "test"] * 5})
    assert source_like_columns(meta) == ["hospital", "split"]


def test_inlier_in_one_representation_outlier_in_another():
    rng = np.random.default_rng(0)
    clip = rng.random(1000)
    own = rng.random(1000)
    clip[7], own[7] = 100.0, 0.0  # an outlier for CLIP, perfectly typical for the user's model
    slices = np.repeat(np.arange(4), 250)
    per_sample, per_slice = representation_disagreement({"clip": clip, "own": own}, slices)
    assert per_sample.loc[7, "disagrees"] and per_sample.loc[7, "outlier_clip"] and not per_sample.loc[7, "outlier_own"]
    assert per_sample.loc[7, "rank_spread"] > 0.99
    assert set(per_slice.columns) >= {"slice_id", "size", "disagree_rate", "outlier_rate_clip", "mean_rank_own"}
    assert per_slice["size"].sum() == 1000
