"""CSV written by `amend` cannot carry spreadsheet formulas (issue 13): a label, id or reason
starting with =, +, -, @, a tab or a carriage return gets a leading ' in every CSV (export and
flags), the export manifest counts and explains it, and Parquet / JSONL keep the values verbatim."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.csvsafe import neutralise_cell, neutralise_frame

# id, label: a formula in each column a spreadsheet would run
HOSTILE = [
    ("=1+1", "=HYPERLINK(\"http://evil\",\"x\")"),
    ("+cmd", "+SUM(A1)"),
    ("-2", "-minus"),
    ("@A1", "@at"),
    ("\ttab", "plain"),
]


def test_neutralise_cell_follows_owasp():
    for value in ("=1", "+1", "-1", "@x", "\tx", "\rx"):
        assert neutralise_cell(value) == "'" + value
    for value in ("a=1", "1", "", " =x", "'=x", None, -1, 2.5, True):
        assert neutralise_cell(value) == value


def test_neutralise_frame_counts_string_cells_only_and_leaves_the_input():
    frame = pd.DataFrame({"id": ["=a", "b", "-c"], "score": [-1.0, 2.0, -3.0], "n": [-1, 2, 3], "=col": ["x", "y", None]})
    out, changed = neutralise_frame(frame)
    assert changed == 3  # two ids and the column name; negative numbers are numbers, not formulas
    assert list(out["id"]) == ["'=a", "b", "'-c"] and list(out["score"]) == [-1.0, 2.0, -3.0]
    assert "'=col" in out.columns and list(frame["id"]) == ["=a", "b", "-c"]


@pytest.fixture()
def hostile_project(amend, tmp_path):
    """A text project whose ids and labels are formulas, with vectors, analysed, and one decision
    whose reason is a formula."""
    rng = np.random.default_rng(0)
    records, vectors, ids = [], [], []
    for i in range(30):
        sid, label = HOSTILE[i % len(HOSTILE)]
        sid = f"{sid}{i}" if i >= len(HOSTILE) else sid
        label = label if i % 3 == 0 else ("a", "b", "c")[i % 3]
        records.append({"id": sid, "text": f"post {i}", "label": label})
        ids.append(sid)
        vectors.append(rng.normal(size=8))
    source = tmp_path / "posts.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    # Parquet, not .npy + an ids file: that file's lines are stripped, and one id starts with a tab.
    pq.write_table(pa.table({"id": ids, "vector": [v.tolist() for v in vectors]}), tmp_path / "v.parquet")
    project = tmp_path / "p"
    assert amend.json("init", project, "--texts", source)["taken"] == 30
    amend("vectors", "import", project, tmp_path / "v.parquet", "--name", "v")
    amend("decide", project, "--id", "=1+1", "--keep", "--reviewer", "ann",
          "--reason", "=WEBSERVICE(\"http://evil\")")
    return project, records


def _csv_cells(path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


def test_export_csv_neutralises_formulas_and_the_manifest_says_so(amend, hostile_project, tmp_path):
    project, records = hostile_project
    payload = amend.json("export", project, tmp_path / "out" / "labels.csv", "--format", "csv")
    cells = _csv_cells(tmp_path / "out" / "labels.csv") + _csv_cells(tmp_path / "out" / "labels.trail.csv")
    dangerous = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert dangerous == []  # nothing a spreadsheet would run
    assert "'=1+1" in cells and "'=HYPERLINK(\"http://evil\",\"x\")" in cells and "'\ttab" in cells
    assert "'=WEBSERVICE(\"http://evil\")" in cells  # the decision's reason, in both files
    manifest = json.loads((tmp_path / "out" / "labels.manifest.json").read_text())
    labels = pd.read_csv(tmp_path / "out" / "labels.csv", dtype=str, keep_default_na=False)
    in_labels = sum(v[:1] == "'" for column in labels.columns for v in labels[column])
    assert manifest["csv_formula_cells"]["labels"] == in_labels > 0
    assert manifest["csv_formula_cells_neutralised"] == in_labels + manifest["csv_formula_cells"]["trail"]
    assert "single quote" in manifest["csv_formula_cells"]["explanation"]
    assert payload["csv_formula_cells_neutralised"] == manifest["csv_formula_cells_neutralised"]
    text = amend("export", project, tmp_path / "again" / "labels.csv").out
    assert f"{manifest['csv_formula_cells_neutralised']} CSV cell(s) neutralised" in text


def test_parquet_and_jsonl_exports_stay_verbatim(amend, hostile_project, tmp_path):
    project, records = hostile_project
    amend("export", project, tmp_path / "labels.parquet")
    amend("export", project, tmp_path / "labels.jsonl")
    given = {r["id"]: r["label"] for r in records}
    parquet = pq.read_table(tmp_path / "labels.parquet").to_pandas()
    assert dict(zip(parquet["id"], parquet["given_label"])) == given
    lines = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["id"]: r["given_label"] for r in lines} == given
    manifest = json.loads((tmp_path / "labels.manifest.json").read_text())
    assert "csv_formula_cells_neutralised" not in manifest


def test_flags_csv_neutralises_formulas(amend, hostile_project):
    project, records = hostile_project
    amend("analyse", project, "--no-slices")
    result = amend("flags", project, "--format", "csv")
    frame = pd.read_csv(io.StringIO(result.out), dtype=str, keep_default_na=False)
    ids = set(frame["id"])
    assert "'=1+1" in ids and "'-2" in ids and "'@A1" in ids and "=1+1" not in ids
    string_cells = [v for column in ("id", "given_label", "current_label", "suggested_label") for v in frame[column]]
    assert not [v for v in string_cells if v[:1] in ("=", "+", "-", "@", "\t", "\r")]
    notes = result.err.splitlines()
    assert len(notes) == 1 and notes[0].startswith("amend: note: ") and "--format json keeps them verbatim" in notes[0]
    assert "=1+1" in {r["id"] for r in amend.json("flags", project)}  # JSON stays verbatim
