"""Which label values a table may give (issue 13): empty, null, NaN and the texts "nan" / "NaN" /
"<NA>" (what pandas and numpy write for a missing value) are a "missing label"; a JSON object or
list is a "structured value", never stored as its Python repr; an image folder's name is taken as
it is, even "nan"."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from core.ingest import REJECT_REASONS, IngestOptions, ingest
from ingest_helpers import png_bytes, reasons_by_row, write


def test_missing_label_spellings_in_jsonl(project, tmp_path):
    labels = ["a", "NaN", "nan", "NAN", " <NA> ", "", "  ", None, "b"]
    lines = [json.dumps({"id": f"r{i}", "text": f"text {i}", "label": label}) for i, label in enumerate(labels)]
    lines.append('{"id": "rn", "text": "json NaN", "label": NaN}')
    lines.append('{"id": "rm", "text": "no label field"}')
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    report = ingest(project, IngestOptions(texts=tmp_path / "t.jsonl"))
    assert report.taken == 2 and project.labels() == ["a", "b"]
    assert reasons_by_row(report) == {row: "missing label" for row in (2, 3, 4, 5, 6, 7, 8, 10, 11)}
    assert "pandas and numpy write for a missing value" in report.rejects[0]["detail"]


def test_missing_label_spellings_in_csv(project, tmp_path):
    (tmp_path / "t.csv").write_text("id,text,label\nx1,one,cat\nx2,two,nan\nx3,three,NaN\nx4,four,\nx5,five,None\n")
    report = ingest(project, IngestOptions(texts=tmp_path / "t.csv"))
    assert reasons_by_row(report) == {2: "missing label", 3: "missing label", 4: "missing label"}
    assert project.labels() == ["None", "cat"]  # "None" can be a real class ("no finding"): kept


def test_structured_labels_are_rejected_not_stored_as_reprs(project, tmp_path):
    (tmp_path / "t.jsonl").write_text(
        '{"id": "a", "text": "fine", "label": "cat"}\n'
        '{"id": "b", "text": "object", "label": {"name": "cat"}}\n'
        '{"id": "c", "text": "list", "label": ["cat", "dog"]}\n'
        '{"id": "d", "text": "empty list", "label": []}\n'
        '{"id": {"x": 1}, "text": "object id", "label": "cat"}\n'
        '{"id": "f", "text": ["a", "list"], "label": "cat"}\n'
    )
    report = ingest(project, IngestOptions(texts=tmp_path / "t.jsonl"))
    assert report.taken == 1 and project.labels() == ["cat"]
    assert reasons_by_row(report) == {row: "structured value" for row in (2, 3, 4, 5, 6)}
    assert "structured value" in REJECT_REASONS
    details = {r["row"]: r["detail"] for r in report.rejects}
    assert details[2] == "The label is a JSON object, not a single value; give it as a string."
    assert details[3] == "The label is a JSON list, not a single value; give it as a string."


def test_structured_parquet_labels_are_rejected(project, tmp_path):
    table = pa.table({"id": ["a", "b"], "text": ["one", "two"],
                      "label": pa.array([["cat"], ["dog", "cat"]], pa.list_(pa.string()))})
    pq.write_table(table, tmp_path / "t.parquet")
    report = ingest(project, IngestOptions(texts=tmp_path / "t.parquet"))
    assert report.taken == 0 and reasons_by_row(report) == {1: "structured value", 2: "structured value"}


def test_an_image_folder_named_nan_is_a_label(project, tmp_path):
    write(tmp_path / "images" / "nan" / "1.png", png_bytes(1))
    write(tmp_path / "images" / "cat" / "2.png", png_bytes(2))
    report = ingest(project, IngestOptions(images=tmp_path / "images"))
    assert report.taken == 2 and project.labels() == ["cat", "nan"]
