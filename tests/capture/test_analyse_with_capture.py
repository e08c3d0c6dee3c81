"""`amend analyse --capture`: captured runs as evidence, representations and predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import builders
from core import capture
from core.analysis.run import analyse
from core.capture import store
from core.detect import DetectConfig

from .conftest import small_net, train


def _own_vectors(planted):
    """The project's own representation: noisy vectors of the true classes (an embedder's view)."""
    rng = np.random.default_rng(5)
    vectors = planted.inputs + rng.normal(scale=1.2, size=planted.inputs.shape).astype(np.float32)
    builders.import_vectors(planted.project, "own", planted.ids, vectors)


def _top_hits(result, wrong: np.ndarray) -> int:
    return _hits(result.detection.score, wrong)


def _hits(score: np.ndarray, wrong: np.ndarray) -> int:
    """Planted wrong labels among the top len(wrong) of a score (ties by index)."""
    order = np.lexsort((np.arange(score.size), -score))[: wrong.sum()]
    return int(wrong[order].sum())


def test_dynamics_join_the_ranking_and_the_record(planted):
    _own_vectors(planted)
    model = capture.watch(small_net(), layers={"hidden": "encoder"})
    train(model, planted, "seed0", epochs=8)
    config = DetectConfig(seed=0)
    without = analyse(planted.project, config=config, with_slices=False)
    with_capture = analyse(planted.project, config=config, with_slices=False, captures=["seed0"])
    record = with_capture.run.record
    assert {"aum", "datamap", "forgetting"} <= set(record["detectors"])
    assert not {"aum", "datamap", "forgetting"} & set(without.run.record["detectors"])
    assert record["representation"]["name"] == "own"  # the project's own view stays the default
    assert record["captures"]["dynamics"]["runs"] == 1
    assert record["captures"]["runs"]["seed0"]["train_epochs"] == 8
    assert "det_aum" in with_capture.evidence.columns
    # the planted wrong labels are where the model's margin stays low; the project's own vectors
    # are noisier than what the model learns from, so the capture adds what they miss
    assert _hits(with_capture.detection.detector_scores["aum"], planted.wrong) >= 0.8 * planted.wrong.sum()
    assert _top_hits(with_capture, planted.wrong) > _top_hits(without, planted.wrong)


def test_captured_layer_becomes_a_representation(planted):
    model = capture.watch(small_net(), layers={"hidden": "encoder"})
    train(model, planted, "only", epochs=3)
    x = torch.tensor(planted.inputs)
    with torch.no_grad(), capture.session(planted.project, run="only", epoch=3):  # a last pass, no step
        model(x, labels=torch.tensor(planted.labels), sample_ids=planted.ids)
    result = analyse(planted.project, with_slices=False, captures=["only"])
    rep = planted.project.representation("capture.only.hidden.e3")
    assert rep.source == "capture" and rep.dim == 24 and rep.settings["path"] == "encoder"
    # no representation of its own: the captured layer is the one analysed
    assert result.run.record["representation"]["name"] == "capture.only.hidden.e3"
    ids, vectors = planted.project.vectors("capture.only.hidden.e3")
    expected = model.encoder(x).detach().numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, rtol=1e-4, atol=1e-5)


def _fold_runs(planted, folds: int = 2, epochs: int = 5) -> list[str]:
    """k-fold training: each run trains on the other folds and records its fold as 'eval'."""
    fold = np.arange(len(planted.ids)) % folds
    x = torch.tensor(planted.inputs)
    y = torch.tensor(planted.labels)
    runs = []
    for k in range(folds):
        model = capture.watch(small_net())
        optimiser = torch.optim.SGD(model.parameters(), lr=0.3)
        train_rows = torch.tensor(np.flatnonzero(fold != k))
        held = torch.tensor(np.flatnonzero(fold == k))
        for epoch in range(epochs):
            with capture.session(planted.project, run=f"fold{k}", epoch=epoch, split="train"):
                logits = model(x[train_rows], labels=y[train_rows], sample_ids=train_rows)
                loss = nn.functional.cross_entropy(logits, y[train_rows])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            with torch.no_grad(), capture.session(planted.project, run=f"fold{k}", epoch=epoch, split="eval"):
                model(x[held], labels=y[held], sample_ids=held)
        runs.append(f"fold{k}")
    return runs


def test_held_out_predictions_of_k_fold_runs_join_the_pool(planted):
    _own_vectors(planted)
    runs = _fold_runs(planted)
    result = analyse(planted.project, with_slices=False, captures=runs)
    record = result.run.record
    assert "capture" in record["probability_pool"]["sources"]
    assert record["captures"]["held_out_coverage"] == len(planted.ids)
    assert record["captures"]["dynamics"]["runs"] == 2
    # one run alone holds out half the samples: not enough to rank with, and the record says so
    one = analyse(planted.project, with_slices=False, captures=runs[:1])
    assert "capture" not in one.run.record["probability_pool"]["sources"]
    assert "cover 75 of 150" in one.run.record["captures"]["held_out_use"]


def test_cli_lists_runs_and_analyses_with_capture(planted, capsys):
    from core.cli import main

    _own_vectors(planted)
    model = capture.watch(small_net(), layers={"hidden": "encoder"})
    train(model, planted, "cli-run", epochs=3)
    assert main(["capture", "list", str(planted.project.path), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["run"] == "cli-run" and listed["splits"]["train"]["epochs"] == [0, 1, 2]
    assert listed["layers"] == {"hidden": "encoder"}
    assert main(["analyse", str(planted.project.path), "--capture", "cli-run", "--no-slices", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "aum" in out["detectors"] and out["representation"] == "own"
    assert main(["analyse", str(planted.project.path), "--capture", "nope", "--json"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no captured run 'nope'" in err[0]


def test_linear_cka_by_construction():
    from core.analysis.captured import linear_cka

    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    rotation = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    assert abs(linear_cka(a, 3.0 * a @ rotation) - 1.0) < 1e-9  # rotation and scale do not matter
    assert linear_cka(a, rng.normal(size=(200, 5))) < 0.2  # unrelated features


def test_cross_run_record_compares_the_runs_layers(planted):
    _own_vectors(planted)
    for seed in (0, 1):
        model = capture.watch(small_net(), layers={"hidden": "encoder"})
        torch.manual_seed(seed)
        train(model, planted, f"seed{seed}", epochs=4)
    result = analyse(planted.project, with_slices=False, captures=["seed0", "seed1"])
    (pair,) = result.run.record["captures"]["representation_agreement"]
    assert pair["runs"] == ["seed0", "seed1"] and pair["samples"] == len(planted.ids)
    assert 0.0 < pair["linear_cka"] <= 1.0
    dynamics = result.run.record["captures"]["dynamics"]
    assert dynamics["runs"] == 2


def test_threshold_samples_calibrate_the_aum_cut(planted):
    from torch import nn as _nn

    labels = planted.project.labels()
    chosen = capture.threshold_samples(planted.project.path, seed=1)
    assert len(chosen) == round(len(planted.ids) / (len(labels) + 1))
    fake = len(labels)  # the extra output the threshold samples are trained on
    y = planted.labels.copy()
    y[[planted.ids.index(sid) for sid in chosen]] = fake
    model = capture.watch(small_net(classes=len(labels) + 1))
    x, target = torch.tensor(planted.inputs), torch.tensor(y)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.3)
    for epoch in range(8):
        with capture.session(planted.project, run="thr", epoch=epoch, classes=[*labels, capture.THRESHOLD_CLASS]):
            for start in range(0, len(planted.ids), 30):
                part = slice(start, start + 30)
                loss = _nn.functional.cross_entropy(
                    model(x[part], labels=target[part], sample_ids=planted.ids[part]), target[part])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    margins = store.threshold_margins(planted.project, "thr")
    assert margins.size == len(chosen)
    result = analyse(planted.project, with_slices=False, captures=["thr"])
    cut = result.run.record["captures"]["aum_threshold"]
    assert cut["threshold_samples"] == len(chosen)
    assert cut["value"] == pytest.approx(np.percentile(margins, 99.0), abs=1e-6)
    assert result.run.record["detector_params"]["aum"]["threshold"] == pytest.approx(cut["value"])
    aum = result.detection.results["aum"]
    judged = np.ones(len(planted.ids), dtype=bool)
    judged[[planted.ids.index(sid) for sid in chosen]] = False
    assert not aum.flagged[~judged].any()  # trained on the fake class: not judged as themselves
    np.testing.assert_array_equal(aum.flagged[judged], aum.evidence["aum"][judged] < cut["value"])


def test_dynamics_alone_flag_by_the_aum_cut(planted):
    model = capture.watch(small_net())  # logits only: no layer, no vectors, no predictions
    train(model, planted, "bare", epochs=8)
    result = analyse(planted.project, with_slices=False, captures=["bare"])
    assert result.run.record["representation"] is None
    aum = result.detection.results["aum"]
    np.testing.assert_array_equal(result.detection.flagged, aum.flagged)
    assert result.detection.params["ranking"]["flag_rule"].startswith(
        "issues found by aum (area under the margin below its cut)")
    assert _hits(result.detection.score, planted.wrong) >= 0.8 * planted.wrong.sum()


def test_a_later_plain_analysis_keeps_the_projects_own_representation(planted):
    _own_vectors(planted)
    model = capture.watch(small_net(), layers={"hidden": "encoder"})
    train(model, planted, "later", epochs=2)
    analyse(planted.project, with_slices=False, captures=["later"])
    assert planted.project.representations()[-1].name == "capture.later.hidden.e1"  # registered last
    plain = analyse(planted.project, with_slices=False)
    assert plain.run.record["representation"]["name"] == "own"


def test_a_run_stopped_while_underfitting_stays_evidence_and_leaves_the_ranking_alone(planted):
    # a good representation of its own: confident learning estimates the 10 % noise well
    builders.import_vectors(planted.project, "own", planted.ids, planted.inputs)
    model = capture.watch(small_net())
    train(model, planted, "brief", epochs=2, lr=1e-4)  # learns next to nothing
    without = analyse(planted.project, with_slices=False)
    brief = analyse(planted.project, with_slices=False, captures=["brief"])
    window = brief.detection.results["aum"].params["window"]
    assert window["runs_that_fitted_the_clean_share"] == 0
    assert brief.detection.results["aum"].params["joins_ranking"] is False
    assert brief.detection.params["ranking"]["fused_by_rank"] == {}
    np.testing.assert_array_equal(brief.detection.order, without.detection.order)
    assert "aum_margin" in brief.evidence.columns  # still evidence for the reviewer
