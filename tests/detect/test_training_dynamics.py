"""The training-dynamics detectors (aum, datamap, forgetting): planted dynamics, hand-worked scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.capture.dynamics import EpochStats, combine_runs, run_dynamics
from core.detect import REGISTRY, DetectConfig, DetectInputs, available, defaults, detect
from core.detect.training_dynamics import (
    explain_aum, explain_datamap, explain_forgetting, score_aum, score_datamap, score_forgetting,
)
from core.views import triage

from .conftest import clusters

NAMES = ("aum", "datamap", "forgetting")
EPOCHS = 6
FORGOTTEN = 20  # a correct label the model kept forgetting


def planted_labels():
    _, truth = clusters()
    noisy = truth.copy()
    noisy[5], noisy[70] = 2, 0
    return noisy, truth, np.array([5, 70])


def planted_dynamics(trained, truth, wrong, shift=0.0):
    """EPOCHS epochs over every sample: wrong labels keep a margin of -1.5 - 0.2 e (mean -2.0), the
    model's runner-up on them is the true class; right ones climb from +1; sample FORGOTTEN flips
    between right and wrong (margin +0.5 / -0.3, mean +0.1)."""
    n = trained.size
    bad = np.zeros(n, dtype=bool)
    bad[wrong] = True
    epochs = []
    for e in range(EPOCHS):
        margin = np.where(bad, -1.5 - 0.2 * e + shift, 1.0 + 0.2 * e)
        correct = np.where(bad, 0.0, 1.0)
        p = np.where(bad, 0.1, 0.8)
        if e % 2:
            margin[FORGOTTEN], correct[FORGOTTEN], p[FORGOTTEN] = -0.3, 0.0, 0.4
        else:
            margin[FORGOTTEN], correct[FORGOTTEN], p[FORGOTTEN] = 0.5, 1.0, 0.6
        top = np.where(bad, truth, (trained + 1) % 3)
        epochs.append(EpochStats(e, np.arange(n), trained, margin, p, correct, top))
    return run_dynamics(epochs, n)


def flat_probabilities(labels):
    """Probabilities that single nothing out: 0.4 for every given label, 0.3 for the others."""
    p = np.full((labels.size, 3), 0.3)
    p[np.arange(labels.size), labels] = 0.4
    return p


def test_planted_wrong_labels_rank_first_and_are_flagged_by_aum():
    noisy, truth, wrong = planted_labels()
    dyn = planted_dynamics(noisy, truth, wrong)
    d = detect(None, noisy, 3, probabilities=flat_probabilities(noisy), dynamics=dyn)
    assert set(NAMES) <= set(d.results)
    # the probabilities rank every sample alike, so the ranking's top is the AUM's
    assert set(d.order[:2].tolist()) == set(wrong.tolist())
    aum = d.results["aum"]
    assert np.flatnonzero(aum.flagged).tolist() == wrong.tolist()
    assert aum.suggested[wrong].tolist() == truth[wrong].tolist()
    assert (np.delete(aum.suggested, wrong) == -1).all()
    assert np.allclose(aum.evidence["aum"][wrong], -2.0)
    assert d.params["dynamics"] == {"n_epochs": EPOCHS, "runs": 1}
    assert d.params["detectors"]["aum"] == {"threshold": 0.0, "threshold_from": None, "window": {"epochs": "all"},
                                          "joins_ranking": True}
    json.dumps(d.params)  # the run record stays serialisable
    # the wrong labels were never learned: the forgetting detector flags them, and the sample
    # forgotten three times; the data map puts the wrong ones (confidence 0.1, steady) in its corner
    assert np.flatnonzero(d.results["forgetting"].flagged).tolist() == sorted([*wrong.tolist(), FORGOTTEN])
    assert np.flatnonzero(d.results["datamap"].flagged).tolist() == wrong.tolist()


def test_without_dynamics_the_detectors_do_not_run():
    noisy, _, _ = planted_labels()
    d = detect(None, noisy, 3, probabilities=flat_probabilities(noisy))
    assert not set(NAMES) & set(d.results)
    assert set(NAMES) <= set(d.params["skipped_detectors"])
    assert d.params["dynamics"] is None
    with pytest.raises(ValueError, match="need inputs"):
        detect(None, noisy, 3, probabilities=flat_probabilities(noisy), config=DetectConfig(detectors=("aum",)))


def test_dynamics_over_another_number_of_samples_are_refused():
    noisy, truth, wrong = planted_labels()
    dyn = planted_dynamics(noisy[:-1], truth[:-1], wrong)
    with pytest.raises(ValueError, match="dynamics cover 179 samples"):
        detect(None, noisy, 3, probabilities=flat_probabilities(noisy), dynamics=dyn)


def test_dynamics_about_another_label_say_nothing_about_the_label_in_force():
    noisy, truth, wrong = planted_labels()
    dyn = planted_dynamics(noisy, truth, wrong)  # trained on the wrong label 2 of sample 5
    in_force = noisy.copy()
    in_force[5] = truth[5]  # relabelled by a reviewer since
    r = score_aum(dyn, in_force, 3)
    assert not r.flagged[5] and r.suggested[5] == -1 and np.isnan(r.evidence["aum"][5])
    assert r.flagged[70]
    others = np.delete(np.arange(in_force.size), 5)
    assert r.scores[5] == np.median(r.scores[others])  # neither pushed up nor down
    row = {"label_analysed": "cat", "dyn_epochs": r.evidence["epochs_seen"][5], "aum_margin": r.evidence["aum"][5]}
    assert explain_aum(row, {}) == "no captured training epoch saw it with its label cat"


def evidence_row(result, i, label):
    """One sample's evidence columns, as the run's evidence frame holds them."""
    spec = REGISTRY[result.name]
    row = {column: pick(result)[i] for column, pick in spec.evidence_columns.items()}
    row["label_analysed"] = label
    return row


def test_evidence_columns_and_sentences_give_the_numbers():
    noisy, truth, wrong = planted_labels()
    dyn = planted_dynamics(noisy, truth, wrong)
    aum, datamap, forgetting = (f(dyn, noisy, 3) for f in (score_aum, score_datamap, score_forgetting))
    assert explain_aum(evidence_row(aum, 5, "bird"), {}) == (
        "its label bird was never the model's top choice in 6 epochs; margin -2.0 (area under the margin)")
    assert explain_aum(evidence_row(aum, FORGOTTEN, "ant"), {}) == (
        "its label ant was the model's top choice in 3 of 6 epochs; margin 0.10 (area under the margin)")
    assert explain_datamap(evidence_row(datamap, 5, "bird"), {}) == (
        "the model's confidence in its label bird averaged 10% over 6 epochs "
        "(variability 0.00, correct in 0% of them): hard to learn")
    assert explain_forgetting(evidence_row(forgetting, 5, "bird"), {}) == "its label bird was never learned in 6 epochs"
    assert explain_forgetting(evidence_row(forgetting, FORGOTTEN, "ant"), {}) == (
        "its label ant was learned and forgotten 3 times in 6 epochs")
    # a cut calibrated on threshold samples is named
    cut = score_aum(dyn, noisy, 3, threshold=-2.5, threshold_from="99th percentile of 40 threshold samples")
    assert not cut.flagged.any()
    context = {"params": {"aum": cut.params}}
    assert explain_aum(evidence_row(cut, 5, "bird"), context).endswith(
        "; the cut is -2.5 (99th percentile of 40 threshold samples)")


def test_several_runs_are_counted_in_words():
    noisy, truth, wrong = planted_labels()
    # the second run ends with sample 5's margin at -2.0 + 3.0 = +1.0: one of two runs flags it
    both = combine_runs([planted_dynamics(noisy, truth, wrong), planted_dynamics(noisy, truth, wrong, shift=3.0)])
    r = score_aum(both, noisy, 3)
    assert r.flagged[5]  # mean of -2.0 and +1.0 is -0.5
    assert explain_aum(evidence_row(r, 5, "bird"), {}) == (
        "in 1 of 2 training runs the margin of its label bird averaged below 0 "
        "(mean -0.50 over 12 epochs, area under the margin)")
    f = score_forgetting(both, noisy, 3)
    assert explain_forgetting(evidence_row(f, FORGOTTEN, "ant"), {}) == (
        "its label ant was learned and forgotten 6 times in 12 epochs over 2 training runs")
    # 6 events over 2 runs = 3 per run, against 6 / 2 epochs: saturated, like each run alone
    assert f.scores[FORGOTTEN] == 1.0


def test_the_triage_wording_reads_the_registry():
    noisy, truth, wrong = planted_labels()
    dyn = planted_dynamics(noisy, truth, wrong)
    row = {"label_analysed": "bird"}
    for f in (score_aum, score_datamap, score_forgetting):
        r = f(dyn, noisy, 3)
        row.update(evidence_row(r, 5, "bird"))
        row[f"det_{r.name}"] = r.scores[5]
    sentences = {name: text for name, _, text in triage.evidence_in_words(row, list(NAMES))}
    assert sentences["aum"].startswith("Its label bird was never the model's top choice in 6 epochs")
    assert sentences["forgetting"] == "Its label bird was never learned in 6 epochs."


def small_dynamics():
    """Five samples, four epochs; sample 3 never seen.

    0: always right (p 0.9)              -> datamap 0.10, forgetting 0
    1: right, wrong, right, right         -> one event: 1 / (4 / 2) = 0.5; confidence 0.55
    2: always wrong (p 0.2, 0.1, ...)     -> never learned: 1; confidence 0.15, in the corner
    4: right, wrong, right, wrong (p 0.5) -> two events: 1.0, flagged; confidence 0.5, not in the corner
    """
    correct = {0: [1, 1, 1, 1], 1: [1, 0, 1, 1], 2: [0, 0, 0, 0], 4: [1, 0, 1, 0]}
    p = {0: [0.9] * 4, 1: [0.6, 0.3, 0.6, 0.7], 2: [0.2, 0.1, 0.2, 0.1], 4: [0.5] * 4}
    margin = {0: [2.0] * 4, 1: [1.0, -1.0, 1.0, 1.0], 2: [-1.0] * 4, 4: [0.5, -0.5, 0.5, -0.5]}
    labels = np.array([0, 1, 2, 0, 1])
    seen = [0, 1, 2, 4]
    epochs = [EpochStats(e, np.array(seen), labels[seen], np.array([margin[i][e] for i in seen]),
                         np.array([p[i][e] for i in seen]), np.array([correct[i][e] for i in seen], dtype=float),
                         np.array([1, 0, 0, 2])) for e in range(4)]
    return run_dynamics(epochs, 5), labels


def test_datamap_and_forgetting_by_hand():
    dyn, labels = small_dynamics()
    f = score_forgetting(dyn, labels, 3)
    # unseen sample 3: the median of the judged scores 0, 0.5, 1, 1
    np.testing.assert_allclose(f.scores, [0.0, 0.5, 1.0, 0.75, 1.0])
    assert f.flagged.tolist() == [False, False, True, False, True] and f.suggested is None
    m = score_datamap(dyn, labels, 3)
    # 1 - confidence: 0.1, 0.45, 0.85, (median of 0.1, 0.45, 0.5, 0.85 = 0.475), 0.5
    np.testing.assert_allclose(m.scores, [0.1, 0.45, 0.85, 0.475, 0.5])
    assert m.flagged.tolist() == [False, False, True, False, False]
    assert m.suggested.tolist() == [-1, -1, 0, -1, -1]
    a = score_aum(dyn, labels, 3)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    # AUMs 2.0, 0.5, -1.0, (unseen), 0.0
    np.testing.assert_allclose(a.scores[[0, 1, 2, 4]], [sig(-2.0), sig(-0.5), sig(1.0), 0.5])
    assert a.scores[3] == pytest.approx(np.median([sig(-2.0), sig(-0.5), sig(1.0), 0.5]))
    assert a.flagged.tolist() == [False, False, True, False, False]


def test_a_suggestion_outside_the_project_classes_is_dropped():
    # threshold samples' fake extra class (index 3 of 3 classes) is no label anyone can choose
    e = EpochStats(0, np.array([0, 1]), np.array([0, 1]), np.array([-1.0, -1.0]), np.array([0.1, 0.1]),
                   np.array([0.0, 0.0]), np.array([3, 2]))
    r = score_aum(run_dynamics([e], 2), np.array([0, 1]), 3)
    assert r.flagged.tolist() == [True, True] and r.suggested.tolist() == [-1, 2]


@pytest.mark.parametrize("n", [0, 1, 4])
def test_every_detector_survives_dynamics_that_saw_nothing(n):
    labels = np.zeros(n, dtype=np.int64)
    inputs = DetectInputs(labels, 2, dynamics=run_dynamics([], n))
    for name in NAMES:
        r = REGISTRY[name].run(inputs, **REGISTRY[name].params)
        assert len(r) == n and (r.scores == 0.5).all() and not r.flagged.any()
        for column, pick in REGISTRY[name].evidence_columns.items():
            assert pick(r).shape == (n,)


def test_every_detector_handles_one_sample_and_one_epoch():
    e = EpochStats(3, np.array([0]), np.array([1]), np.array([-0.4]), np.array([0.3]), np.array([0.0]), np.array([0]))
    inputs = DetectInputs(np.array([1]), 2, dynamics=run_dynamics([e], 1))
    flagged = {name: bool(REGISTRY[name].run(inputs, **REGISTRY[name].params).flagged[0]) for name in NAMES}
    assert flagged == {"aum": True, "datamap": True, "forgetting": True}


def test_the_registry_lists_them_with_their_roles():
    assert set(NAMES) <= set(available()) and set(NAMES) <= set(defaults())
    for name in NAMES:
        assert REGISTRY[name].needs == ("dynamics",) and REGISTRY[name].explain is not None
    assert (REGISTRY["aum"].weight, REGISTRY["datamap"].weight, REGISTRY["forgetting"].weight) == (0.0, 0.0, 0.0)
    assert [name for name in NAMES if REGISTRY[name].fuse_rank] == ["aum"]  # joins the ranking by rank
    assert (REGISTRY["aum"].suggestion_priority, REGISTRY["datamap"].suggestion_priority) == (35, 36)
    assert {"aum_margin", "aum_runs_flagging", "dyn_epochs", "dyn_correctness"} <= set(REGISTRY["aum"].evidence_columns)
