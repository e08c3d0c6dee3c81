"""Library errors reach the user as one line and exit 1, never a traceback, and leave the project as
it was (issue 13): undecodable names and files, deeply nested JSONL, damaged Parquet and SQLite,
out-of-range values, impossible analysis settings; and the last guard in `amend` itself."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from core.cli.exits import run

# Files SQLite makes and removes around every connection, and the lock file a writer creates: not content.
_VOLATILE = ("-wal", "-shm", ".lock")


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (the project's content, to compare before / after)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*")) if path.is_file() and not path.name.endswith(_VOLATILE)
    }


def _png(path: Path) -> None:
    Image.fromarray(np.full((6, 6, 3), 120, np.uint8)).save(path, format="PNG")


# ----------------------------------------------------------------------------- ingest sources
def test_undecodable_file_and_label_folder_names_are_rejected_per_row(amend, tmp_path):
    root = tmp_path / "images"
    (root / "cat").mkdir(parents=True)
    _png(root / "cat" / "ok.png")
    with open(os.fsencode(root / "cat") + b"/bad\xff.png", "wb") as handle:  # not UTF-8: \xff
        Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(handle, format="PNG")
    bad_folder = os.fsencode(root) + b"/d\xe9g"  # latin-1 "dég"
    os.mkdir(bad_folder)
    with open(bad_folder + b"/x.png", "wb") as handle:
        Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(handle, format="PNG")

    report = amend.json("init", tmp_path / "p", "--images", root)
    assert report["taken"] == 1 and report["labels"] == ["cat"]
    rejects = {r["id"]: r for r in report["rejects"]}
    assert set(rejects) == {"cat/bad\\xff.png", "d\\xe9g/x.png"}  # the bytes shown, storable as text
    assert all(r["reason"] == "bad encoding" for r in rejects.values())
    assert "file name" in rejects["cat/bad\\xff.png"]["detail"]
    assert "label folder name" in rejects["d\\xe9g/x.png"]["detail"]


def test_deeply_nested_jsonl_is_a_bad_row(amend, tmp_path):
    source = tmp_path / "t.jsonl"
    deep = "[" * 100_000 + "]" * 100_000        # past the JSON parser's recursion limit
    stored = "[" * 500 + "]" * 500              # parses, but would exhaust the stack when stored as metadata
    source.write_text('{"id": "a", "text": "fine", "label": "x"}\n'
                      f'{{"id": "b", "text": "deep", "label": "x", "m": {deep}}}\n'
                      f'{{"id": "c", "text": "deep too", "label": "x", "m": {stored}}}\n')
    report = amend.json("init", tmp_path / "p", "--texts", source)
    assert report["taken"] == 1
    assert [(r["row"], r["reason"]) for r in report["rejects"]] == [(2, "bad row"), (3, "bad row")]
    assert "levels deep" in report["rejects"][0]["detail"]


def test_a_damaged_parquet_page_is_one_line_and_no_project(amend, tmp_path):
    table = pa.table({"id": [f"s{i}" for i in range(50)], "text": [f"text number {i} " * 5 for i in range(50)],
                      "label": ["a", "b"] * 25})
    pq.write_table(table, tmp_path / "good.parquet", compression="none")
    data = bytearray((tmp_path / "good.parquet").read_bytes())
    data[200:900] = b"\xab" * 700  # the data pages; the footer (schema, row count) stays readable
    (tmp_path / "bad.parquet").write_bytes(bytes(data))
    amend.fails("init", tmp_path / "p", "--texts", tmp_path / "bad.parquet", says="the Parquet file is damaged")
    assert not (tmp_path / "p").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder either


def test_a_parquet_date_out_of_range_rejects_its_row(amend, tmp_path):
    table = pa.table({"id": ["x", "y", "z"], "text": ["t1", "t2", "t3"], "label": ["a", "a", "b"],
                      "when": pa.array([0, 3_000_000, 5], pa.date32())})  # day 3,000,000: year 10183
    pq.write_table(table, tmp_path / "dates.parquet")
    report = amend.json("init", tmp_path / "p", "--texts", tmp_path / "dates.parquet")
    assert report["taken"] == 2
    [reject] = report["rejects"]
    assert reject["row"] == 2 and reject["reason"] == "bad row" and "'when'" in reject["detail"]


# ----------------------------------------------------------------------------- user files
def test_non_utf8_ids_and_guideline_files_are_one_line(amend, tiny_project, tiny_data, tmp_path):
    before = snapshot(tiny_project)
    ids = tmp_path / "ids.txt"
    ids.write_bytes(tiny_data.ids.read_bytes().replace(b"s7\n", b"s\xff7\n"))
    result = amend.fails("vectors", "import", tiny_project, tiny_data.vectors, "--ids", ids, "--name", "again",
                         says="is not UTF-8 text: byte 0xFF")
    assert "(line 8)" in result.err
    amend.fails("decide", tiny_project, "--accept-suggested", "--ids", ids, "--reviewer", "ann",
                says="is not UTF-8 text")
    guideline = tmp_path / "guide.md"
    guideline.write_bytes("# Labels\n\nCaf\u00e9 posts are ".encode("latin-1") + b"b.\n")
    amend.fails("guideline", tiny_project, "publish", guideline, "--version", "v1", "--author", "lead",
                says="guideline")
    assert snapshot(tiny_project) == before


def test_an_unreadable_reference_file_is_one_line(amend, tiny_project, tmp_path):
    (tmp_path / "ref.parquet").write_bytes(b"\xff\xfe not parquet at all")
    amend.fails("compare", tiny_project, "--reference", tmp_path / "ref.parquet", says="cannot be read as parquet")


# ----------------------------------------------------------------------------- damaged project files
def test_a_damaged_review_log_stops_verify_and_export(amend, tiny_project, tmp_path):
    amend("decide", tiny_project, "--id", "s5", "--label", "c", "--reviewer", "ann")
    log = tiny_project / "review.sqlite"
    log.write_bytes(np.random.default_rng(0).bytes(8192))  # overwritten with garbage
    before = snapshot(tiny_project)
    amend.fails("audit", "verify", tiny_project, says="review.sqlite is damaged")
    amend.fails("audit", "verify", tiny_project, "--json", says="restore the file from a backup")
    amend.fails("export", tiny_project, tmp_path / "out" / "labels.csv", says="review.sqlite is damaged")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert snapshot(tiny_project) == before


def test_a_damaged_project_database_is_one_line(amend, tiny_project):
    (tiny_project / "project.sqlite").write_bytes(b"\x00garbage" * 1000)
    before = snapshot(tiny_project)
    amend.fails("analyse", tiny_project, "--no-slices", says="project.sqlite is damaged")
    amend.fails("flags", tiny_project, says="project.sqlite is damaged")
    assert snapshot(tiny_project) == before


# ----------------------------------------------------------------------------- analysis settings
@pytest.mark.parametrize("args, says", [
    (("--k", "0"), "argument --k: must be at least 1"),
    (("--folds", "1"), "argument --folds: must be at least 2"),
    (("--folds", "0"), "argument --folds: must be at least 2"),
])
def test_impossible_analysis_settings_are_refused_up_front(amend, tiny_project, args, says):
    before = snapshot(tiny_project)
    amend.fails("analyse", tiny_project, *args, says=says)
    assert snapshot(tiny_project) == before


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a GPU")
def test_analyse_on_cuda_without_a_gpu_is_one_line(amend, tiny_project):
    before = snapshot(tiny_project)
    amend.fails("analyse", tiny_project, "--device", "cuda", says="no CUDA GPU is visible")
    assert snapshot(tiny_project) == before


# ----------------------------------------------------------------------------- the last guard
def _failing_handler(args, progress) -> int:
    """A command whose library raised something no check anticipated."""
    return {"n": 1}["missing"]  # KeyError('missing')


def test_an_unexpected_error_is_one_line_and_exit_1(capsys, monkeypatch):
    monkeypatch.delenv("AMEND_DEBUG", raising=False)
    assert run(argparse.Namespace(handler=_failing_handler)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("amend: error: unexpected KeyError: 'missing'; rerun with AMEND_DEBUG=1")


def test_amend_debug_shows_the_traceback(capsys, monkeypatch):
    monkeypatch.setenv("AMEND_DEBUG", "1")
    assert run(argparse.Namespace(handler=_failing_handler)) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "_failing_handler" in err
    assert err.splitlines()[-1].startswith("amend: error: unexpected KeyError")


def test_amend_debug_shows_the_traceback_of_a_user_error_too(amend, tmp_path, monkeypatch):
    source = tmp_path / "t.jsonl"
    source.write_text('{"id": "a", "text": "", "label": "x"}\n')
    monkeypatch.delenv("AMEND_DEBUG", raising=False)
    plain = amend("init", tmp_path / "p", "--texts", source, expect=1)
    assert "Traceback" not in plain.err and len(plain.err.splitlines()) == 1
    monkeypatch.setenv("AMEND_DEBUG", "1")
    debug = amend("init", tmp_path / "p", "--texts", source, expect=1)
    assert "Traceback (most recent call last)" in debug.err
    assert debug.err.splitlines()[-1].startswith("amend: error: no sample of")
