"""`amend analyse`, `amend flags`, `amend slices` (core.cli.analysis) on the tiny project, whose
wrong labels (s5, s10) are known."""

from __future__ import annotations

import io
import os

import pandas as pd
import pytest

from .conftest import LABELS, PLANTED

FLAG_KEYS = {"id", "rank", "score", "given_label", "current_label", "suggested_label", "flagged", "detectors"}
SLICE_KEYS = {"slice_id", "name", "size", "error_rate", "flag_rate", "members"}


def test_analyse_records_a_run(analysed_once):
    _, run = analysed_once
    assert {"run_id", "representation", "flagged", "samples", "detectors", "seconds"} <= set(run)
    assert run["representation"] == "mine" and run["samples"] == 60 and run["seconds"] > 0
    assert {"confident", "neighbours_vote"} <= set(run["detectors"])
    assert run["flagged"] >= len(PLANTED) and run["slices"] >= 1


def test_analyse_reports_the_expected_number_of_wrong_labels(amend, analysed_once):
    project, run = analysed_once
    records = amend.json("flags", project)
    # the noise estimate the flagged set's size follows: the sum of every sample's error probability
    assert run["expected_wrong"] == pytest.approx(sum(r["error_probability"] for r in records), abs=0.1)
    assert len(PLANTED) / 2 <= run["expected_wrong"] <= len(records) / 2


def test_flags_rank_every_sample_planted_first(amend, analysed_once, tiny_data):
    project, run = analysed_once
    records = amend.json("flags", project)
    assert len(records) == 60 and all(FLAG_KEYS <= set(r) for r in records)
    assert [r["rank"] for r in records] == list(range(1, 61))
    scores = [r["score"] for r in records]
    assert scores == sorted(scores, reverse=True)
    top = {r["id"]: r for r in records[:2]}
    assert set(top) == set(PLANTED)
    for sid, record in top.items():
        assert record["flagged"] is True
        assert record["given_label"] == record["current_label"] == PLANTED[sid]
        assert record["suggested_label"] == tiny_data.truth[sid]
        assert set(record["detectors"]) == set(run["detectors"])
    assert amend.json("flags", project, "--top", "5", "--run", run["run_id"]) == records[:5]
    assert amend.json("flags", project, "--format", "json") == records  # --json is --format json


def test_flags_flagged_only(amend, analysed_once):
    project, run = analysed_once
    flagged = amend.json("flags", project, "--flagged-only")
    assert len(flagged) == run["flagged"] and all(r["flagged"] for r in flagged)
    assert {r["id"] for r in flagged} >= set(PLANTED)


def test_flags_as_csv_and_text(amend, analysed_once):
    project, run = analysed_once
    records = amend.json("flags", project, "--top", "10")
    frame = pd.read_csv(io.StringIO(amend("flags", project, "--top", "10", "--format", "csv").out))
    assert frame["id"].tolist() == [r["id"] for r in records]
    assert {f"detector_{name}" for name in run["detectors"]} <= set(frame.columns)
    assert frame["detector_confident"].tolist() == [r["detectors"]["confident"] for r in records]
    assert "detectors" not in frame.columns
    assert amend.json("flags", project, "--top", "10", "--format", "csv") == records  # --json wins over a format

    lines = amend("flags", project, "--top", "3").out.splitlines()
    assert lines[0] == f"run {run['run_id']} (representation mine)"
    first = records[0]
    assert lines[1].split() == ["1", "FLAG", f"{first['score']:.3f}", first["id"], first["current_label"], "->",
                                first["suggested_label"], "P(wrong)", f"{first['error_probability']:.2f}"]
    assert len(lines) == 4


def test_slices_as_json_and_text(amend, analysed_once):
    project, run = analysed_once
    slices = amend.json("slices", project)
    assert len(slices) == run["slices"]
    assert amend("slices", project, "--format", "json").json() == slices
    members = set()
    for record in slices:
        assert SLICE_KEYS <= set(record)
        assert record["size"] == len(record["members"]) and 0 <= record["error_rate"] <= 1
        assert 0 <= record["confusion_share"] <= 1 and record["error_score"] >= 0
        members |= set(record["members"])
    assert members <= {f"s{i}" for i in range(60)}
    ranks = [r["error_rank"] for r in slices]
    assert ranks == list(range(1, len(slices) + 1))  # every slice ranked, worst first
    assert all(r["error_slice"] == (r["error_score"] > 0) for r in slices)
    # a slice with a structured finding first, then by score
    order = [(not r["structured_error"], -r["error_score"]) for r in slices]
    assert order == sorted(order)
    text = amend("slices", project).out.splitlines()
    assert text[0] == f"run {run['run_id']}: {len(slices)} slices, worst first"
    assert slices[0]["name"] in text[1]


def test_groups_compare_every_metadata_value(amend, analysed_once):
    project, run = analysed_once
    groups = amend.json("groups", project)
    # the tiny project's metadata: source (web / scan) and the split (train / test)
    assert {(g["column"], g["value"]) for g in groups} == {("source", "web"), ("source", "scan"),
                                                           ("split", "train"), ("split", "test")}
    for column in ("source", "split"):
        pair = [g for g in groups if g["column"] == column]
        # the two values of a column split the data: their sizes and expected wrong labels add up
        assert sum(g["size"] for g in pair) == 60
        assert sum(g["expected_wrong"] for g in pair) == pytest.approx(run["expected_wrong"], abs=0.1)
        assert pair[0]["excess_wrong"] == pytest.approx(-pair[1]["excess_wrong"], abs=0.02)
    assert [g["p_value"] for g in groups] == sorted(g["p_value"] for g in groups)  # the surest first
    # two planted errors, one in each source: no value holds more than chance gives
    assert not any(g["significant"] or g["finding"] or g["finding_members"] for g in groups)
    assert run["metadata_groups_passing"] == 0  # `amend analyse --json` counts them
    text = amend("groups", project, "--run", run["run_id"]).out.splitlines()
    assert text[0] == f"run {run['run_id']}: 4 metadata values, 0 with more wrong labels than chance (*), worst first"
    assert len(text) == 5 and f"{groups[0]['column']} = {groups[0]['value']}: " in text[1]


def test_analyse_with_predictions_and_no_slices(amend, tiny_project, tiny_data):
    amend("predictions", "import", tiny_project, tiny_data.probabilities, "--ids", tiny_data.ids, "--name", "model")
    run = amend.json("analyse", tiny_project, "--predictions", "model", "--no-slices")
    assert run["predictions"] == ["predictions:model"] and run["slices"] is None
    text = amend("analyse", tiny_project, "--no-slices").out
    assert text.startswith("run run-") and f"see them with `amend flags {tiny_project} --top 20`" in text
    amend.fails("slices", tiny_project, "--json", says="has no slices")


def test_analyse_asks_openmp_to_wait_passively_unless_the_user_chose(amend, tiny_project, monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice stays
    amend("analyse", tiny_project, "--no-slices")
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    amend("analyse", tiny_project, "--no-slices")
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_analysis_user_errors(amend, tmp_path, tiny_project, tiny_data):
    amend.fails("analyse", tmp_path / "missing", says="not an Amend project")
    amend.fails("analyse", tiny_project, "--representation", "nope", "--json", says="no representation named 'nope'")
    amend.fails("analyse", tiny_project, "--predictions", "nope", says="no predictions named 'nope'")
    amend.fails("flags", tiny_project, "--json", says="has no analysis yet")
    amend.fails("slices", tiny_project, says="has no analysis yet")
    amend("init", tmp_path / "bare", "--texts", tiny_data.texts)
    amend.fails("analyse", tmp_path / "bare", "--json", says="amend embed")


def test_flags_of_an_unknown_run(amend, analysed_once):
    project, run = analysed_once
    amend.fails("flags", project, "--run", "run-nope", "--json", says=f"no run 'run-nope'; runs: {run['run_id']}")
    amend.fails("slices", project, "--run", "run-nope", says="no run 'run-nope'")
    assert set(LABELS) == {r["given_label"] for r in amend.json("flags", project)}


def test_analyse_points_at_groups_when_a_metadata_value_passes():
    from core.cli.analysis import _groups_hint

    assert _groups_hint({"metadata_groups_passing": 2}, "p") == (
        "\n2 metadata values hold more wrong labels than chance: see `amend groups p`")
    assert _groups_hint({"metadata_groups_passing": 1}, "p").startswith("\n1 metadata value holds ")
    assert _groups_hint({"metadata_groups_passing": 0}, "p") == _groups_hint({"metadata_groups_passing": None}, "p") == ""
