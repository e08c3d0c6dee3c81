"""`amend init` and `amend ingest` (core.cli.project): the report's contract and the user errors."""

from __future__ import annotations

import json


def test_init_reports_taken_rejected_and_labels(amend, tmp_path, tiny_data):
    source = tmp_path / "texts.jsonl"
    rows = [json.loads(line) for line in tiny_data.texts.read_text().splitlines()]
    rows[3]["label"] = "zebra"          # outside the declared label set
    rows[7]["text"] = ""                # empty text
    rows.append(dict(rows[0]))          # duplicate id
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))

    report = amend.json("init", tmp_path / "p", "--texts", source, "--labels", "a,b,c")
    assert report["taken"] == 58 and report["rejected"] == 3
    assert report["labels"] == ["a", "b", "c"]
    rejects = {r["row"]: r for r in report["rejects"]}
    assert set(rejects) == {4, 8, 61}
    assert rejects[4]["id"] == "s3" and "label" in rejects[4]["reason"]
    assert rejects[8]["id"] == "s7" and "empty" in rejects[8]["reason"]
    assert "duplicate id" in rejects[61]["reason"]


def test_ingest_adds_only_what_is_new(amend, tmp_path, tiny_data):
    amend("init", tmp_path / "p", "--texts", tiny_data.texts)
    again = amend.json("ingest", tmp_path / "p", "--texts", tiny_data.texts)
    assert again["taken"] == 0 and again["rejected"] == 0 and again["unchanged"] == 60
    text = amend("ingest", tmp_path / "p", "--texts", tiny_data.texts).out
    assert text.splitlines()[0] == "taken 0, unchanged 60, rejected 0"
    assert text.splitlines()[1] == "labels: a, b, c"


def test_init_text_lists_the_rejected_rows(amend, tmp_path):
    source = tmp_path / "t.jsonl"
    source.write_text('{"id": "x1", "text": "fine", "label": "a"}\n{"id": "x2", "text": "no label"}\n')
    text = amend("init", tmp_path / "p", "--texts", source).out
    assert "taken 1, unchanged 0, rejected 1" in text
    assert "  row 2, id x2:" in text


def test_init_user_errors(amend, tmp_path, tiny_data):
    amend.fails("init", tmp_path / "p", says="say what to ingest")
    amend.fails("init", tmp_path / "p", "--texts", tmp_path / "nope.jsonl", says="nope.jsonl does not exist")
    assert not (tmp_path / "p").exists()  # nothing created for a bad source
    amend("init", tmp_path / "p", "--texts", tiny_data.texts)
    amend.fails("init", tmp_path / "p", "--texts", tiny_data.texts, "--json", says="not empty")


def test_ingest_user_errors(amend, tmp_path, tiny_data):
    amend.fails("ingest", tmp_path / "missing", "--texts", tiny_data.texts, says="not an Amend project")
    amend("init", tmp_path / "p", "--texts", tiny_data.texts)
    bad = tmp_path / "bad.csv"
    bad.write_text("words,category\nhello,a\n")
    amend.fails("ingest", tmp_path / "p", "--texts", bad, "--json", says="no 'text' column")
    amend.fails("ingest", tmp_path / "p", "--texts", tiny_data.texts, "--label-column", "nope", says="no 'nope' column")
