"""Text ingest: CSV, JSONL and Parquet tables; encodings; generated ids; re-ingest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from core.errors import AmendError
from core.ingest import IngestOptions, ingest
from core.store.project import Project

from ingest_helpers import reasons_by_row, write_jsonl


def text_id(text: str) -> str:
    return "t" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def test_csv_latin1_byte_is_rejected_with_its_byte_offset(project: Project, tmp_path: Path) -> None:
    head = "text,label,n\n".encode()
    row1 = 'good one,pos,1\n'.encode()
    row2 = '"a caf'.encode() + b"\xe9" + ' latin-1 byte",neg,2\n'.encode()
    row3 = '"multi\nline, quoted",neg,3\n'.encode()
    row4 = "naïve but valid UTF-8,pos,4\n".encode()
    row5 = "\n".encode()  # blank line: not a record
    row6 = "too,many,fields,here\n".encode()
    row7 = "  ,pos,7\n".encode()
    row8 = "fine again,,8\n".encode()
    path = tmp_path / "texts.csv"
    path.write_bytes(head + row1 + row2 + row3 + row4 + row5 + row6 + row7 + row8)

    report = ingest(project, IngestOptions(texts=path))

    assert reasons_by_row(report) == {2: "bad encoding", 5: "bad row", 6: "empty text", 7: "missing label"}
    bad = report.rejects[0]
    offset = len(head + row1) + len('"a caf')
    assert f"byte offset {offset}" in bad["detail"] and "0xE9" in bad["detail"] and "'text'" in bad["detail"]
    assert report.taken == 3
    samples = project.samples().set_index("source_row")
    assert samples.loc[3, "text"] == "multi\nline, quoted"
    assert samples.loc[4, "text"] == "naïve but valid UTF-8"
    assert samples.loc[1, "id"] == text_id("good one")
    assert samples.loc[1, "content_hash"] == hashlib.sha256(b"good one").hexdigest()
    assert json.loads(samples.loc[4, "metadata"]) == {"n": 4}
    assert not any("\ufffd" in t for t in samples["text"])  # nothing silently replaced


def test_whole_file_in_another_encoding_is_rejected_per_row(project: Project, tmp_path: Path) -> None:
    lines = ["text,label", "plain ascii,a", "über,b", "crème brûlée,a", "also ascii,b"]
    path = tmp_path / "latin.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))

    report = ingest(project, IngestOptions(texts=path))
    assert reasons_by_row(report) == {2: "bad encoding", 3: "bad encoding"}
    assert report.taken == 2

    other = Project.create(tmp_path / "other")
    declared = ingest(other, IngestOptions(texts=path, encoding="latin-1"))
    assert declared.rejected == 0 and declared.taken == 4
    assert other.samples()["text"].tolist() == ["plain ascii", "über", "crème brûlée", "also ascii"]


def test_jsonl_rows_are_line_numbers_and_each_problem_is_named(project: Project, tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a", "text": "first", "label": "x", "split": "train", "n": 1, "f": 0.5, "ok": True}),
        b'{"id": "b", "text": "caf\xe9", "label": "x"}',  # 2: latin-1 byte
        "",  # 3: blank line, skipped but counted
        '{"id": "c", "text": "no closing brace", "label": "x"',  # 4: bad row
        '["a", "list"]',  # 5: bad row (not an object)
        json.dumps({"id": "d", "text": "   ", "label": "x"}),  # 6: empty text
        json.dumps({"id": "e", "text": "no label", "label": None}),  # 7: missing label
        json.dumps({"id": "a", "text": "again a", "label": "y"}),  # 8: duplicate id
        json.dumps({"id": "", "text": "no id", "label": "y"}),  # 9: missing id
        '{"id": "g", "text": "lone \\udc80 surrogate", "label": "y"}',  # 10: escaped lone surrogate
        json.dumps({"id": 7, "text": "numeric id", "label": "y", "split": "test", "n": 2, "f": None, "ok": False}),
        json.dumps({"id": "h", "text": "ünïcödé", "label": "z"}),  # 12: fine
    ]
    path = tmp_path / "texts.jsonl"
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines) + b"\n")

    report = ingest(project, IngestOptions(texts=path))

    assert reasons_by_row(report) == {
        2: "bad encoding", 4: "bad row", 5: "bad row", 6: "empty text", 7: "missing label", 8: "duplicate id",
        9: "missing id", 10: "bad encoding",
    }
    offset = len(lines[0]) + 1 + len('{"id": "b", "text": "caf')
    assert f"byte offset {offset}" in report.rejects[0]["detail"] and report.rejects[0]["row"] == 2
    assert "row 1" in next(r for r in report.rejects if r["reason"] == "duplicate id")["detail"]
    samples = project.samples().set_index("id")
    assert list(samples.index) == ["a", "7", "h"]
    assert samples.loc["a", "split"] == "train" and samples.loc["7", "split"] == "test"
    assert json.loads(samples.loc["a", "metadata"]) == {"n": 1, "f": 0.5, "ok": True}
    assert json.loads(samples.loc["7", "metadata"]) == {"n": 2, "f": None, "ok": False}
    assert json.loads(samples.loc["h", "metadata"]) == {"n": None, "f": None, "ok": None}
    assert samples.loc["h", "text"] == "ünïcödé"
    assert report.labels == ["x", "y", "z"]


def test_identical_texts_are_kept_apart_and_reingest_adds_nothing(project: Project, tmp_path: Path) -> None:
    records = [
        {"text": "same words", "label": "a"},
        {"text": "other words", "label": "a"},
        {"text": "same words", "label": "b"},  # conflicting duplicate: kept, own id
        {"text": "same words", "label": "a"},
    ]
    path = write_jsonl(tmp_path / "t.jsonl", records)
    first = ingest(project, IngestOptions(texts=path))
    assert first.taken == 4 and first.rejected == 0
    base = text_id("same words")
    assert project.sample_ids() == [base, text_id("other words"), base + "-2", base + "-3"]
    assert project.samples()["label"].tolist() == ["a", "a", "b", "a"]

    again = ingest(project, IngestOptions(texts=path))
    assert (again.taken, again.unchanged, again.rejected) == (0, 4, 0)
    assert project.sample_count() == 4

    # The same ids with another label: not silently dropped as unchanged, not added.
    relabelled = write_jsonl(tmp_path / "t2.jsonl", [{"text": "same words", "label": "b"}, {"text": "new", "label": "a"}])
    third = ingest(project, IngestOptions(texts=relabelled))
    assert third.taken == 1
    assert [(r["id"], r["reason"]) for r in third.rejects] == [(base, "id already in project with different content")]
    assert project.sample_count() == 5


def test_explicit_id_with_other_text_is_rejected(project: Project, tmp_path: Path) -> None:
    ingest(project, IngestOptions(texts=write_jsonl(tmp_path / "a.jsonl", [{"id": "x1", "text": "one", "label": "a"}])))
    report = ingest(project, IngestOptions(texts=write_jsonl(tmp_path / "b.jsonl", [{"id": "x1", "text": "two", "label": "a"}])))
    assert [r["reason"] for r in report.rejects] == ["id already in project with different content"]
    assert project.samples()["text"].tolist() == ["one"]


def test_parquet_texts_keep_types_split_and_declared_labels(project: Project, tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "doc": ["alpha", "beta", "gamma", "", "delta"],
        "topic": ["sport", "news", "weather", "news", None],
        "part": ["train", "train", "test", "test", "test"],
        "length": pd.array([5, 4, 5, 0, 5], dtype="int64"),
        "source": ["web", "web", "print", "web", "print"],
    })
    path = tmp_path / "texts.parquet"
    frame.to_parquet(path)
    report = ingest(project, IngestOptions(
        texts=path, text_column="doc", label_column="topic", split_column="part", labels=["news", "sport"],
    ))
    assert reasons_by_row(report) == {3: "unknown label", 4: "empty text", 5: "missing label"}
    samples = project.samples()
    assert samples["text"].tolist() == ["alpha", "beta"]
    assert samples["split"].tolist() == ["train", "train"]
    meta = json.loads(samples["metadata"].iloc[0])
    assert meta == {"length": 5, "source": "web"} and type(meta["length"]) is int
    assert project.labels() == ["news", "sport"]
    options = json.loads(project.ingests()["options"].iloc[0])
    assert options["labels"] == ["news", "sport"] and options["text_column"] == "doc"


def test_missing_text_column_names_existing_columns(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("body,label\nhello,a\n")
    with pytest.raises(AmendError) as error:
        ingest(project, IngestOptions(texts=path))
    message = str(error.value)
    assert "'text'" in message and "body, label" in message and "--text-column" in message
    assert ingest(project, IngestOptions(texts=path, text_column="body")).taken == 1


def test_text_csv_with_id_column_and_duplicates(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,text,label,zip\n001,one,a,00123\n002,two,b,00200\n001,three,a,1\n")
    report = ingest(project, IngestOptions(texts=path))
    assert [(r["row"], r["id"], r["reason"]) for r in report.rejects] == [(3, "001", "duplicate id")]
    assert "row 1" in report.rejects[0]["detail"]
    assert project.sample_ids() == ["001", "002"]  # ids are strings: leading zeros kept
    assert [json.loads(m)["zip"] for m in project.samples()["metadata"]] == ["00123", "00200"]
