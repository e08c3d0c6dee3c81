import json

import numpy as np
import pytest

from core.detect import DetectConfig, detect

from .conftest import SHARED_DATA, clusters


def test_vectors_only_finds_planted_errors(planted):
    vectors, noisy, truth, wrong = planted
    d = detect(vectors, noisy, 3, config=DetectConfig(device="cpu"))
    assert set(d.order[:2].tolist()) == set(wrong.tolist())
    # The flagged set is as large as confident learning's noise estimate: on these near-perfectly
    # separated classes its per-class threshold (the class's mean self-confidence, 0.97 here)
    # admits one of the two; the other is still ranked second, with its error probability.
    assert 1 <= d.flagged.sum() <= 6 and d.flagged[wrong].any()
    assert (d.error_probability[wrong] > 0.2).all() and np.median(d.error_probability) < 0.01
    assert d.suggested[wrong].tolist() == truth[wrong].tolist()
    assert {"neighbours", "probe", "confident", "neighbours_vote", "outliers", "duplicates", "rank"} <= set(d.timings)
    assert "annotators" in d.params["skipped_detectors"]
    sup = d.support[5][d.support[5] >= 0]
    assert sup.size > 0 and (noisy[sup] == truth[5]).all()
    assert sum(row["flagged"] for row in d.class_table) == d.flagged.sum()


def test_probabilities_only_and_both(planted):
    vectors, noisy, truth, wrong = planted
    p = np.full((noisy.size, 3), 0.05)
    p[np.arange(noisy.size), truth] = 0.9
    only = detect(None, noisy, 3, probabilities=p)
    assert set(only.results) == {"confident"} and only.graph is None
    assert set(only.order[:2].tolist()) == set(wrong.tolist())
    both = detect(vectors, noisy, 3, probabilities=p, config=DetectConfig(device="cpu", pool="all"))
    assert "probe" in both.timings and set(both.order[:2].tolist()) == set(wrong.tolist())


def test_clean_data_flags_little(clean_data):
    vectors, labels = clean_data
    d = detect(vectors, labels, 3, config=DetectConfig(device="cpu"))
    assert d.flagged.sum() <= 3


def test_identical_inputs_give_identical_ranking():
    vectors, labels = clusters(n_per_class=80, n_classes=4, spread=0.5, seed=3)
    labels = labels.copy()
    labels[::17] = (labels[::17] + 1) % 4
    a = detect(vectors, labels, 4, config=DetectConfig(device="cpu", seed=1))
    b = detect(vectors.copy(), labels.copy(), 4, config=DetectConfig(device="cpu", seed=1))
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_array_equal(a.score, b.score)
    np.testing.assert_array_equal(a.suggested, b.suggested)
    json.dumps(a.params)  # the run record must be serialisable


def test_annotators_join_when_given(planted):
    vectors, noisy, truth, wrong = planted
    m = np.tile(truth[:, None], (1, 3))
    d = detect(vectors, noisy, 3, annotator_labels=m, config=DetectConfig(device="cpu"))
    assert "annotators" in d.results
    assert d.suggested_by[wrong].tolist() == ["annotators", "annotators"]


def test_bad_calls_are_refused(clean_data):
    vectors, labels = clean_data
    with pytest.raises(ValueError):
        detect(None, labels, 3)
    with pytest.raises(ValueError):
        detect(vectors[:10], labels, 3)
    with pytest.raises(ValueError):
        detect(vectors, labels, 3, config=DetectConfig(detectors=("nope",)))
    with pytest.raises(ValueError):
        detect(vectors, labels, 3, config=DetectConfig(detectors=("annotators",)))
    for bad_strength in (0, -1.0, "large", True):
        with pytest.raises(ValueError, match="probe_C"):
            detect(vectors, labels, 3, config=DetectConfig(probe_C=bad_strength))


def test_the_probe_strength_is_recorded_chosen_or_given(planted):
    from core.detect.probe import C_CANDIDATES

    vectors, noisy, _, _ = planted
    chosen = detect(vectors, noisy, 3, config=DetectConfig(device="cpu"))
    record = chosen.params["probe"]
    assert record["C"] in C_CANDIDATES and record["chosen_by"] == "held-out likelihood of the labels"
    assert f"{record['C']:g}" in record["log_likelihood_by_C"]
    given = detect(vectors, noisy, 3, config=DetectConfig(device="cpu", probe_C=0.5))
    assert given.params["probe"] == {"C": 0.5, "chosen_by": "given"}
    json.dumps(chosen.params)  # the run record stores it


@pytest.mark.skipif(not (SHARED_DATA / "news20" / "minilm.npy").exists(), reason="shared data pack not found")
def test_news20_confirmed_errors_rank_high():
    import pandas as pd

    from core.detect.confident import score

    rows = [json.loads(line) for line in open(SHARED_DATA / "news20" / "test.jsonl")]
    names = sorted({r["label"] for r in rows})
    labels = np.array([names.index(r["label"]) for r in rows])
    errors = pd.read_csv(SHARED_DATA / "news20" / "confirmed_errors.csv")
    errors = errors[errors.confirmed_error.astype(str).str.lower() == "true"]
    truth = np.zeros(labels.size, bool)
    truth[[int(i[1:]) for i in errors.id]] = True
    p = np.load(SHARED_DATA / "news20" / "pred_probs_cleanlab.npy")
    d = detect(np.load(SHARED_DATA / "news20" / "minilm.npy"), labels, 20, probabilities=p,
               config=DetectConfig(device="cpu"))
    from sklearn.metrics import average_precision_score

    ours = average_precision_score(truth, d.score)
    alone = average_precision_score(truth, score(labels, p).scores)
    assert ours >= alone - 1e-3
