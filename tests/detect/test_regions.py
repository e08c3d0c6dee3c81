"""Structured errors: a region whose labels share one planted confusion is found as such."""

from __future__ import annotations

import numpy as np

from core.detect import DetectConfig, detect
from core.detect.regions import score
from core.neighbours import normalise


def _regions_data(seed: int = 0):
    """4 classes, each made of 3 modes around the class centre (12 regions); in one mode of
    class 0, 35 % of the labels are flipped to class 1 (the structured error)."""
    rng = np.random.default_rng(seed)
    dim, per_mode = 32, 80
    mode = np.repeat(np.arange(12), per_mode)
    truth = mode % 4
    class_centres = rng.normal(size=(4, dim)) * 3.0
    centres = class_centres[np.arange(12) % 4] + rng.normal(size=(12, dim)) * 0.6
    x = centres[mode] + rng.normal(size=(mode.size, dim))
    noisy = truth.copy()
    in_region = np.flatnonzero(mode == 0)
    flipped = rng.choice(in_region, int(0.35 * in_region.size), replace=False)
    noisy[flipped] = 1
    return normalise(x.astype(np.float32)), truth, noisy, flipped, mode == 0


def test_the_planted_region_is_found_and_its_flips_flagged():
    x, truth, noisy, flipped, region = _regions_data()
    d = detect(x, noisy, 4, config=DetectConfig(device="cpu"))
    found = d.results["regions"].evidence["regions"]
    assert len(found) == 1 and (found[0]["label"], found[0]["looks_like"]) == (1, 0)
    caught = d.flagged[flipped] & (d.suggested[flipped] == 0)
    assert caught.mean() >= 0.9
    # nothing outside the region is called structured
    assert not d.results["regions"].flagged[~region].any()
    # a bulk acceptance relabels the structured picks, and inside the region nothing else
    structured = d.results["regions"]
    covered = structured.evidence["covered"]
    assert covered[flipped].mean() >= 0.9
    assert (d.accept_in_bulk[flipped] & (d.suggested[flipped] == 0)).mean() >= 0.9
    assert not (d.accept_in_bulk & covered & ~structured.flagged).any()


def test_clean_data_has_no_structured_region():
    x, truth, _, _, _ = _regions_data(seed=1)
    p = np.full((truth.size, 4), 0.1)
    p[np.arange(truth.size), truth] = 0.7
    result = score(x, truth, p, 4)
    assert result.evidence["regions"] == [] and not result.flagged.any()


def test_a_confusion_counts_as_structured_only_where_it_is_more_common_than_elsewhere():
    from core.detect.regions import structured_confusion

    rng = np.random.default_rng(0)
    n = 2000
    labels = rng.integers(0, 3, n)
    inside = np.zeros(n, dtype=bool)
    inside[:300] = True
    predicted = labels.copy()
    # everywhere: 10 % of label 1 predicted 2 (a confusable pair, not an error of one region)
    confusable = np.flatnonzero((labels == 1) & (rng.random(n) < 0.1))
    predicted[confusable] = 2
    assert structured_confusion(labels, predicted, inside, 3) is None
    # in the region only: 35 % of label 0 predicted 1 (a labelling error made there)
    planted = np.flatnonzero(inside & (labels == 0) & (rng.random(n) < 0.35))
    predicted[planted] = 1
    given, looks, count = structured_confusion(labels, predicted, inside, 3)
    assert (given, looks, count) == (0, 1, planted.size)


def test_the_analysis_slices_are_the_detector_regions_without_cutting_twice():
    from core.slices import discover_slices

    x, truth, noisy, flipped, region = _regions_data()
    d = detect(x, noisy, 4, config=DetectConfig(device="cpu"))
    evidence = d.results["regions"].evidence
    fresh = discover_slices(x, noisy, d.probabilities, d.flagged, with_map=False)
    reused = discover_slices(x, noisy, d.probabilities, d.flagged, with_map=False,
                             cut=(evidence["region"], evidence["slicing"]))
    assert np.array_equal(fresh.slice_ids, reused.slice_ids)
    assert fresh.params["carved"] == reused.params["carved"] >= 1
    assert fresh.table["error_score"].tolist() == reused.table["error_score"].tolist()
