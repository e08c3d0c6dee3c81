"""`amend compare` and `amend export` (core.cli.evaluate), and `amend app`'s refusal (core.cli.launch)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from .conftest import PLANTED


@pytest.fixture()
def corrected(amend, analysed):
    """The analysed tiny project with the suggested labels of the two planted errors accepted."""
    assert amend.json("decide", analysed, "--accept-suggested", "--top", "2", "--reviewer", "ann")["decided"] == 2
    return analysed


def test_compare_contract(amend, corrected, tiny_data, tmp_path):
    result = amend.json("compare", corrected, "--eval-split", "cv")
    assert {"before", "after", "per_slice", "per_class"} <= set(result)
    assert 0 <= result["before"]["accuracy"] <= result["after"]["accuracy"] <= 1
    assert result["per_slice"] and all({"slice_id", "before", "after"} <= set(r) for r in result["per_slice"])
    slices = {s["slice_id"] for s in amend.json("slices", corrected)}
    assert {r["slice_id"] for r in result["per_slice"]} <= slices
    same = amend.json("compare", corrected, "--labels-a", "current", "--labels-b", "current")
    assert same["before"]["accuracy"] == same["after"]["accuracy"]

    reference = tmp_path / "truth.csv"
    pd.DataFrame({"id": list(tiny_data.truth), "clean_label": list(tiny_data.truth.values())}).to_csv(reference, index=False)
    with_truth = amend.json("compare", corrected, "--reference", reference)
    assert "clean" in with_truth and with_truth["clean"]["accuracy"] is not None
    text = amend("compare", corrected, "--eval-split", "cv").out
    assert text.startswith("before: ") and "\nafter:  " in text and "cross-validation" in text


def test_compare_user_errors(amend, analysed, tmp_path):
    amend.fails("compare", analysed, "--eval-split", "nope", "--json", says="no sample is in split 'nope'")
    amend.fails("compare", analysed, "--labels-a", "guideline:v9", says="no guideline version 'v9'")
    amend.fails("compare", analysed, "--reference-column", "truth", says="need --reference FILE")
    amend.fails("compare", analysed, "--representation", "nope", says="'nope'")
    amend.fails("compare", tmp_path / "missing", says="not an Amend project")


def test_export_contract(amend, corrected, tmp_path):
    out = tmp_path / "out" / "labels.csv"
    result = amend.json("export", corrected, out)
    assert {"rows", "changed", "chain_head"} <= set(result)
    assert result["rows"] == 60 and result["changed"] == len(PLANTED)
    assert result["chain_head"] == amend.json("audit", "verify", corrected)["chain_head"]
    labels = pd.read_csv(out, dtype=str).set_index("id")
    assert labels.loc["s5", "final_label"] == "c" and labels.loc["s10", "final_label"] == "b"
    manifest = json.loads((tmp_path / "out" / "labels.manifest.json").read_text())
    assert manifest["chain_head"] == result["chain_head"]
    text = amend("export", corrected, tmp_path / "labels.jsonl").out
    assert text.startswith("exported 60 samples (2 changed, 0 excluded)")
    assert (tmp_path / "labels.jsonl").is_file()


def test_export_user_errors(amend, corrected, tmp_path):
    amend.fails("export", corrected, tmp_path / "l.csv", "--guideline", "v7", "--json", says="no guideline version 'v7'")
    amend.fails("export", corrected, tmp_path / "labels.txt", says="cannot tell the format")
    (tmp_path / "a-file").write_text("")
    amend.fails("export", corrected, tmp_path / "a-file" / "labels.csv", says=f"cannot use {tmp_path / 'a-file'}")
    amend.fails("export", tmp_path / "missing", tmp_path / "l.csv", says="not an Amend project")


def test_app_refuses_a_missing_project_before_starting(amend, tmp_path, tiny_project):
    amend.fails("app", tiny_project, tmp_path / "missing", "--port", "1", says="not an Amend project")
