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


def test_suspects_drawn_at_random_sit_no_nearer_the_boundary_than_the_regions_own():
    from core.detect.regions import nearer_the_boundary

    rng = np.random.default_rng(0)
    n = 400
    margin = rng.uniform(0.5, 4.0, n)  # log-odds of class 1 against class 0; all called 1
    p = np.column_stack([1 / (1 + np.exp(margin)), 1 / (1 + np.exp(-margin))])
    inside = np.ones(n, dtype=bool)
    order = np.argsort(margin)
    # labelled 0 at random: one population, so the p-value is uniform over draws
    draws = []
    for draw in range(40):
        random_labels = np.ones(n, dtype=np.int64)
        random_labels[np.random.default_rng(draw).choice(n, 60, replace=False)] = 0
        draws.append(nearer_the_boundary(random_labels, p, inside, 0, 1))
    assert {(d.suspects, d.own) for d in draws} == {(60, 340)}
    assert sum(d.p_value < 0.05 for d in draws) <= 6 and 0.45 < np.median([d.auc for d in draws]) < 0.55
    # labelled 0 where the models are least sure: a boundary, AUC near 1
    hard_labels = np.ones(n, dtype=np.int64)
    hard_labels[order[:60]] = 0
    hard = nearer_the_boundary(hard_labels, p, inside, 0, 1)
    assert hard.p_value < 1e-6 and hard.auc > 0.95
    # labelled 0 where the models are surest: no nearer the boundary (the test is one-sided)
    far_labels = np.ones(n, dtype=np.int64)
    far_labels[order[-60:]] = 0
    assert nearer_the_boundary(far_labels, p, inside, 0, 1).p_value > 0.5
    # samples the models do not call 1 are not compared
    outside = inside.copy()
    outside[order[:60]] = False
    assert nearer_the_boundary(hard_labels, p, outside, 0, 1).suspects == 0


def test_a_region_is_told_from_the_hard_ones_only_with_enough_suspects():
    from core.detect.regions import BoundaryTest, as_near_as

    # 50 suspects at AUC 0.52 against hard regions at 0.9: clearly not one of them
    assert as_near_as(BoundaryTest(0.52, 0.4, 50, 150), 0.9) < 1e-6
    # 8 suspects at AUC 0.7: could be a hard region that looks milder by chance
    assert as_near_as(BoundaryTest(0.7, 0.02, 8, 140), 0.87) > 0.01
    # as hard as the reference: p about one half
    assert abs(as_near_as(BoundaryTest(0.9, 1e-9, 40, 150), 0.9) - 0.5) < 1e-9


def _hard_region_data(seed: int = 0):
    """:func:`_regions_data` plus one more region where classes 2 and 3 overlap and every label
    is true: a confusion that concentrates there because the vectors are hard, not because a
    label is wrong. The two blobs lie 2.4 apart along one direction (noise 0.9 per dimension), so
    the models see where one class gives way to the other."""
    x, truth, noisy, flipped, region = _regions_data(seed)
    rng = np.random.default_rng(seed + 100)
    dim, half = x.shape[1], 120
    centre = rng.normal(size=dim) * 3.0
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    # two overlapping blobs along one direction: the labels follow the side each sample came from
    offset = np.r_[-np.ones(half), np.ones(half)][:, None] * 1.2 * direction
    hard_x = centre + offset + rng.normal(size=(2 * half, dim)) * 0.9
    hard_truth = np.r_[np.full(half, 2), np.full(half, 3)]
    x = np.vstack([x, normalise(hard_x.astype(np.float32))])
    truth = np.r_[truth, hard_truth]
    noisy = np.r_[noisy, hard_truth]
    return x, truth, noisy, flipped, np.r_[region, np.zeros(2 * half, dtype=bool)], np.r_[
        np.zeros(region.size, dtype=bool), np.ones(2 * half, dtype=bool)]


def test_a_hard_region_is_left_alone_while_the_planted_one_is_found():
    x, truth, noisy, flipped, planted, hard = _hard_region_data()
    d = detect(x, noisy, 4, config=DetectConfig(device="cpu"))
    structured = d.results["regions"]
    found = structured.evidence["regions"]
    assert [(f["label"], f["looks_like"]) for f in found] == [(1, 0)]
    assert (d.flagged[flipped] & (d.suggested[flipped] == 0)).mean() >= 0.9
    # the hard region confuses 2 and 3 more than anywhere else, and none of it is called structured
    from core.detect.regions import confusion_excess

    given, looks, count, p_value, _ = confusion_excess(noisy, d.probabilities.argmax(axis=1), hard, 4)
    assert {given, looks} == {2, 3} and count >= 10 and p_value < 1e-6
    assert not structured.flagged[hard].any() and not structured.evidence["covered"][hard].any()


def test_the_analysis_marks_the_slice_of_a_structured_finding_and_ranks_it_first(tmp_path, capsys):
    """End to end through `analyse` and `amend slices`: the slice of the region the detector found
    carries ``structured_error`` and rank 1; the run's other slices do not carry it."""
    import json

    import core.cli as cli
    from builders import import_vectors, text_project
    from core.analysis.run import analyse
    from core.analysis.runs import slices

    x, truth, noisy, flipped, region = _regions_data()
    ids = [f"s{i:04d}" for i in range(noisy.size)]
    names = ["north", "south", "east", "west"]
    project = text_project(tmp_path / "p", {sid: (f"sample {sid}", names[label]) for sid, label in zip(ids, noisy)})
    import_vectors(project, "given", ids, x)
    done = analyse(project, config=DetectConfig(device="cpu"))
    found = {r["region"] for r in done.detection.results["regions"].evidence["regions"]}
    assert len(found) == 1
    _, table = slices(project, done.run.run_id)
    marked = table[table["structured_error"]]
    assert set(marked["slice_id"]) == found and marked["error_rank"].tolist() == [1]
    members = set(marked["members"].iloc[0])
    assert len(members & {ids[i] for i in flipped}) >= 0.9 * flipped.size
    capsys.readouterr()
    assert cli.main(["slices", str(project.path), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["slice_id"] for r in records if r["structured_error"]] == sorted(found)
    assert records[0]["structured_error"] and records[0]["error_rank"] == 1
    assert cli.main(["slices", str(project.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].strip().startswith("structured error: ")  # under the first slice's line
    assert sum(line.strip().startswith("structured error") for line in lines) == 1


def test_a_finding_is_shown_as_the_part_of_its_slice_where_its_picks_sit(monkeypatch):
    """A cut that puts the planted mode in one slice with a clean mode of the same class: the
    finding is tested on that slice and shown as the part that holds its picks."""
    import core.slices.clustering as clustering

    x, truth, noisy, flipped, region = _regions_data()
    mode = np.repeat(np.arange(12), 80)
    merged = np.where(np.isin(mode, [0, 4]), 0, mode)  # modes 0 and 4 are both class 0
    monkeypatch.setattr(clustering, "error_aware_slices", lambda *args, **kwargs: merged.copy())
    d = detect(x, noisy, 4, config=DetectConfig(device="cpu"))
    result = d.results["regions"]
    (finding,) = result.evidence["regions"]
    shown = result.evidence["region"] == finding["region"]
    assert finding["cut_from"] == 160 and finding["members"] == shown.sum() < 160
    assert shown[region].mean() > 0.9 and region[shown].mean() > 0.9  # the planted mode, nearly alone
    assert result.evidence["covered"][mode == 4].all()  # bulk decisions stay those of the tested slice
    assert (result.flagged[flipped] & (result.suggested[flipped] == 0)).mean() >= 0.8
