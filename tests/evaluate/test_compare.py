"""core.evaluate.compare on constructed data where the answer is known, and `amend compare` on it.

The toy project: three well-separated classes in 8-d (ant, bee, cat), 40 training and 20 test
samples each. Every training "ant" was given the label "bee"; the test split is correct. So the
probe trained on the given labels never predicts "ant" (test accuracy exactly 2/3, slice "ant
region" 0 %), and once the ants are relabelled it is exact (100 %).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from builders import add_rows, import_vectors
from core.analysis.runs import save_run
from core.errors import AmendError
from core.evaluate.compare import LabelSource, compare, read_reference
from core.review import decisions
from core.store.project import Project

CLASSES = ["ant", "bee", "cat"]
TRAIN, TEST = 40, 20


def build_known_project(path: Path, outliers: int = 0) -> tuple[Project, dict]:
    """The toy project (see the module docstring), with a run whose two slices are "ant region"
    (every true ant) and "the rest". ``outliers``: extra training samples at the bee centre given
    the label "ant" (so many that the given-label probe calls bees ants)."""
    rng = np.random.default_rng(0)
    project = Project.create(path)
    rows, vectors, truth = [], [], {}
    for c, name in enumerate(CLASSES):
        for split, count in (("train", TRAIN), ("test", TEST)):
            for i in range(count):
                sid = f"{name}-{split}-{i:02d}"
                given = "bee" if (name == "ant" and split == "train") else name
                rows.append((sid, given, split))
                truth[sid] = name
                vectors.append(4.0 * np.eye(8)[c] + rng.normal(0, 0.3, 8))
    for i in range(outliers):
        sid = f"odd-train-{i:02d}"
        rows.append((sid, "ant", "train"))
        truth[sid] = "bee"
        vectors.append(4.0 * np.eye(8)[1] + rng.normal(0, 0.3, 8))
    add_rows(project, [{"id": sid, "text": f"text of {sid}", "label": label, "split": split, "content_hash": f"hash-{sid}"}
                       for sid, label, split in rows], source="toy.csv")
    ids = [r[0] for r in rows]
    import_vectors(project, "toy", ids, np.array(vectors))
    ant_region = [sid for sid in ids if truth[sid] == "ant"]
    rest = [sid for sid in ids if truth[sid] != "ant"]
    evidence = pd.DataFrame({"id": ids, "rank": np.arange(1, len(ids) + 1)})
    slices = pd.DataFrame({"slice_id": [0, 1], "name": ["ant region", "the rest"], "size": [len(ant_region), len(rest)],
                           "error_rank": [1, 2], "members": [ant_region, rest]})
    save_run(project, "run-test-0001", evidence, slices, {"note": "constructed"}, "toy")
    return project, {"truth": truth, "ids": ids, "flipped": [s for s in ids if s.startswith("ant-train")]}


def relabel(project: Project, ids, label: str, kind: str = "relabel") -> None:
    requests = [decisions.Decision(sample_id=s, kind=kind, label=label if kind == "relabel" else None) for s in ids]
    result = decisions.decide_many(project, requests, reviewer="tester", reason="test")
    assert not result.skipped, result.skipped


@pytest.fixture()
def known(tmp_path):
    return build_known_project(tmp_path / "toy")


def test_fixing_the_flipped_class_recovers_it_overall_per_class_and_per_slice(known):
    project, info = known
    relabel(project, info["flipped"], "ant")
    result = compare(project)  # given vs current, the dataset's test split
    out = result.to_json()
    assert out["before"]["accuracy"] == pytest.approx(2 / 3)
    assert out["after"]["accuracy"] == 1.0
    assert out["after"]["macro_f1"] == 1.0
    ant = next(c for c in out["per_class"] if c["label"] == "ant")
    assert ant["support"] == TEST and ant["before"]["recall"] == 0.0 and ant["after"]["recall"] == 1.0
    by_slice = {s["slice_id"]: s for s in out["per_slice"]}
    assert by_slice[0]["name"] == "ant region" and by_slice[0]["n_eval"] == TEST
    assert (by_slice[0]["before"], by_slice[0]["after"], by_slice[0]["difference"]) == (0.0, 1.0, 1.0)
    assert (by_slice[1]["before"], by_slice[1]["after"], by_slice[1]["difference"]) == (1.0, 1.0, 0.0)
    # Confusion: before, every test ant is predicted bee.
    labels = out["confusion"]["labels"]
    before = np.array(out["confusion"]["before"])
    assert before[labels.index("ant"), labels.index("bee")] == TEST
    assert np.trace(np.array(out["confusion"]["after"])) == 3 * TEST
    what = out["what"]
    assert what["evaluation"]["split"] == "test" and what["evaluation"]["rows"] == 3 * TEST
    assert what["evaluation"]["labels"].startswith("current labels (given + decisions on 40 samples")
    assert what["before"]["labels"] == "given" and what["after"]["labels"] == "current"
    assert what["before"]["train_rows"] == what["after"]["train_rows"] == 3 * TRAIN
    assert what["run_id"] == "run-test-0001" and what["representation"]["name"] == "toy"
    assert what["model"]["kind"] == "linear probe"


def test_excluded_samples_leave_training_but_stay_in_evaluation(tmp_path):
    project, info = build_known_project(tmp_path / "toy", outliers=60)
    relabel(project, info["flipped"], "ant")
    odd = [s for s in info["ids"] if s.startswith("odd-")]
    one_test_bee = "bee-test-00"
    relabel(project, odd + [one_test_bee], "", kind="exclude")
    result = compare(project, labels_a="given", labels_b="current").to_json()
    # Before: 60 "ants" at the bee centre outvote 40 bees, so no bee is right and no ant either.
    assert result["before"]["accuracy"] == pytest.approx(1 / 3)
    assert result["after"]["accuracy"] == 1.0
    assert result["what"]["after"]["excluded"] == 61
    assert result["what"]["after"]["train_rows"] == 3 * TRAIN  # the 60 outliers left; the test bee was never training
    assert result["what"]["before"]["train_rows"] == 3 * TRAIN + 60
    assert result["what"]["evaluation"]["rows"] == 3 * TEST  # the excluded test sample is still evaluated
    bee = next(c for c in result["per_class"] if c["label"] == "bee")
    assert bee["support"] == TEST


def test_cross_validation_uses_the_same_folds_for_both_sides(known):
    project, info = known
    relabel(project, info["flipped"], "ant")
    forward = compare(project, eval_split="cv", labels_a="given", labels_b="current").to_json()
    backward = compare(project, eval_split="cv", labels_a="current", labels_b="given").to_json()
    assert forward["before"] == backward["after"] and forward["after"] == backward["before"]
    assert forward["what"]["evaluation"]["rows"] == len(info["ids"])
    assert "5-fold cross-validation" in forward["what"]["evaluation"]["method"]
    # On the fixed labels every fold is exact; on the given labels (40 of the 60 ants called bee)
    # nearly every ant is predicted bee.
    assert forward["after"]["accuracy"] == 1.0
    assert forward["before"]["accuracy"] < 0.7
    same = compare(project, eval_split="cv", labels_a="current", labels_b="current").to_json()
    assert all(s["difference"] == 0.0 for s in same["per_slice"])


def test_a_clean_reference_gives_the_share_of_the_loss_recovered(known):
    project, info = known
    half = info["flipped"][: len(info["flipped"]) // 2]
    relabel(project, half, "ant")
    full = compare(project, reference=info["truth"], reference_name="truth").to_json()
    assert full["clean"]["accuracy"] == 1.0
    assert full["what"]["evaluation"]["labels"].startswith("clean reference 'truth'")
    share = full["recovered_share"]
    expected = (full["after"]["accuracy"] - full["before"]["accuracy"]) / (1.0 - full["before"]["accuracy"])
    assert share == pytest.approx(expected, abs=1e-6)
    by_slice = {s["slice_id"]: s for s in full["per_slice"]}
    assert by_slice[0]["clean"] == 1.0 and by_slice[1]["recovered_share"] is None  # no loss to recover there
    relabel(project, info["flipped"][len(half):], "ant")
    fixed = compare(project, reference=info["truth"]).to_json()
    assert fixed["recovered_share"] == 1.0 and {s["slice_id"]: s for s in fixed["per_slice"]}[0]["recovered_share"] == 1.0


def test_labels_at_an_event_and_imported_predictions_are_sides(known):
    project, info = known
    relabel(project, info["flipped"], "ant")
    at_start = compare(project, labels_a="event:0", labels_b="current").to_json()
    assert at_start["before"]["accuracy"] == pytest.approx(2 / 3)
    truth = info["truth"]
    probabilities = np.array([np.eye(3)[CLASSES.index(truth[s])] for s in info["ids"]])
    project.import_predictions("perfect", info["ids"], probabilities, CLASSES, source="test")
    result = compare(project, labels_a="given", labels_b="predictions:perfect").to_json()
    assert result["after"]["accuracy"] == 1.0
    assert result["what"]["after"]["train_rows"] is None
    assert "imported model predictions 'perfect'" in result["what"]["after"]["description"]


def test_label_sources_parse_and_refuse():
    assert LabelSource.parse("guideline:v2") == LabelSource("guideline", "v2")
    assert LabelSource.parse("as-of:2024-05-01").value == "2024-05-01T00:00:00.000000+00:00"
    assert LabelSource.parse("as-of:2024-05-01T12:30:00+02:00").value == "2024-05-01T10:30:00.000000+00:00"
    assert LabelSource.parse("event:7").text() == "event:7"
    for bad in ("yesterday", "event:x", "predictions:", "given:3"):
        with pytest.raises(AmendError):
            LabelSource.parse(bad)


def test_compare_refuses_an_unknown_split_and_a_foreign_reference(known, tmp_path):
    project, _ = known
    with pytest.raises(AmendError, match="no sample is in split 'validation'"):
        compare(project, eval_split="validation")
    with pytest.raises(AmendError, match="outside the project's label set"):
        compare(project, reference={"ant-test-00": "wasp"})
    file = tmp_path / "ref.csv"
    file.write_text("id,clean_label\nant-train-00,ant\nbee-test-01,\n")
    assert read_reference(str(file)) == {"ant-train-00": "ant"}


# ----------------------------------------------------------------------------- the CLI
@pytest.fixture()
def amend(monkeypatch, capsys):
    """Run `amend ...` in-process."""
    import core.cli as cli

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_amend_compare_prints_the_contract(known, amend, tmp_path):
    project, info = known
    relabel(project, info["flipped"], "ant")
    reference = tmp_path / "truth.csv"
    pd.DataFrame({"id": list(info["truth"]), "clean_label": list(info["truth"].values())}).to_csv(reference, index=False)
    code, out, err = amend("compare", str(project.path), "--json", "--reference", str(reference))
    assert code == 0, err
    payload = json.loads(out)
    assert payload["before"]["accuracy"] == pytest.approx(2 / 3, abs=1e-6) and payload["after"]["accuracy"] == 1.0
    assert {"slice_id", "before", "after"} <= set(payload["per_slice"][0])
    assert payload["per_class"] and payload["recovered_share"] == 1.0
    code, out, err = amend("compare", str(project.path), "--eval-split", "cv")
    assert code == 0 and "5-fold cross-validation" in out and "slice   0" in out


def test_amend_compare_user_errors_exit_1_with_one_line(known, amend):
    project, _ = known
    code, out, err = amend("compare", str(project.path), "--eval-split", "nope", "--json")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "no sample is in split 'nope'" in err
    code, _, err = amend("compare", str(project.path), "--labels-a", "guideline:v9")
    assert code == 1 and "no guideline version 'v9'" in err


def test_the_accuracy_difference_interval_tells_a_real_gain_from_chance():
    from core.evaluate.compare import difference_interval

    rng = np.random.default_rng(3)
    before = rng.random(2000) < 0.70
    after = before.copy()
    fixed = np.flatnonzero(~before)[:200]  # 200 of 2000 samples go from wrong to right: +10 points
    after[fixed] = True
    clear = difference_interval(before, after)
    assert clear["verdict"] == "better" and clear["difference"] == pytest.approx(0.10)
    assert 0 < clear["low"] < 0.10 < clear["high"] < 0.2
    worse = difference_interval(after, before)
    assert worse["verdict"] == "worse" and worse["high"] < 0
    # Three samples better and two worse out of forty: too few to tell.
    small_before = np.array([False] * 3 + [True] * 2 + [True] * 35)
    small_after = np.array([True] * 3 + [False] * 2 + [True] * 35)
    tiny = difference_interval(small_before, small_after)
    assert tiny["verdict"] == "cannot tell" and tiny["low"] < 0 < tiny["high"] and tiny["rows"] == 40
    nothing = difference_interval(before, before)
    assert nothing["verdict"] == "no change" and nothing["difference"] == 0.0
    # Gains and losses that cancel exactly are not "no change": the probes differ.
    swap = difference_interval(small_before, small_before[::-1])
    assert swap["verdict"] == "cannot tell" and swap["difference"] == 0.0
