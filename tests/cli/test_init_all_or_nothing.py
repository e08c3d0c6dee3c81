"""`amend init` is all or nothing (issue 13): a refused source, or one that gives no sample, leaves
no project folder and no staging folder, so the same command runs again once the input is fixed;
a folder that was there before (empty) is left as it was."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 6, 3), 80, np.uint8)).save(path, format="PNG")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_images_without_class_folders_are_refused_and_leave_nothing(amend, tmp_path):
    flat = tmp_path / "flat"
    _png(flat / "001.png")
    _png(flat / "002.png")
    before = _leftovers(tmp_path)
    result = amend.fails("init", tmp_path / "p", "--images", flat, says="has no class folders (2 file(s) directly in it)")
    assert "DIR/<label>/<file>" in result.err
    assert _leftovers(tmp_path) == before  # no project, no .p.creating-* staging folder

    _png(flat / "cat" / "003.png")  # fixed: a class folder; the same command now works
    (flat / "001.png").unlink()
    (flat / "002.png").unlink()
    report = amend.json("init", tmp_path / "p", "--images", flat)
    assert report["taken"] == 1 and report["labels"] == ["cat"]


def test_an_empty_images_folder_is_refused_and_the_rerun_is_not_already_exists(amend, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    amend.fails("init", tmp_path / "p", "--images", empty, says="holds no files; --images expects class folders")
    assert not (tmp_path / "p").exists()
    amend.fails("init", tmp_path / "p", "--images", empty, says="holds no files")  # not "already exists"


def test_a_source_that_gives_no_sample_makes_no_project(amend, tmp_path):
    source = tmp_path / "t.jsonl"
    source.write_text('{"id": "a", "text": "", "label": "x"}\n{"id": "b", "text": "no label"}\n')
    result = amend.fails("init", tmp_path / "new" / "p", "--texts", source, "--json",
                         says="no sample of")
    assert "2 rejected: 1 empty text, 1 missing label" in result.err and "no project was created" in result.err
    assert not (tmp_path / "new").exists()  # the parent it made is gone too
    source.write_text('{"id": "a", "text": "fixed", "label": "x"}\n')
    assert amend.json("init", tmp_path / "new" / "p", "--texts", source)["taken"] == 1


def test_a_rejected_source_leaves_a_pre_existing_empty_folder_as_it_was(amend, tmp_path):
    target = tmp_path / "p"
    target.mkdir()
    bad = tmp_path / "bad.csv"
    bad.write_text("words,category\nhello,a\n")
    amend.fails("init", target, "--texts", bad, says="no 'text' column")
    assert target.is_dir() and _leftovers(target) == []
    assert _leftovers(tmp_path) == ["bad.csv", "p"]
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"id": "a", "text": "t", "label": "x"}) + "\n")
    assert amend.json("init", target, "--texts", good)["taken"] == 1


def test_a_failed_init_never_touches_an_existing_project(amend, tmp_path, tiny_data):
    amend("init", tmp_path / "p", "--texts", tiny_data.texts)
    files = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "p").rglob("*"))
    empty = tmp_path / "empty"
    empty.mkdir()
    amend.fails("init", tmp_path / "p", "--images", empty, says="already exists and is not empty")
    assert sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "p").rglob("*")) == files


def test_a_staging_folder_left_by_a_killed_init_is_removed_by_the_next_one(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    from core.store.project import Project

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid now names no running process

    abandoned = tmp_path / ".demo.creating-abc123"
    abandoned.mkdir()
    (abandoned / ".creator").write_text(f"{socket.gethostname()} {dead.pid}\n")
    (abandoned / "project.sqlite").write_bytes(b"half")
    live = tmp_path / ".demo.creating-live01"
    live.mkdir()
    (live / ".creator").write_text(f"{socket.gethostname()} {os.getpid()}\n")  # this test is alive
    elsewhere = tmp_path / ".demo.creating-other1"
    elsewhere.mkdir()
    (elsewhere / ".creator").write_text(f"another-machine {dead.pid}\n")
    with Project.creating(tmp_path / "demo") as project:
        pass
    assert not abandoned.exists() and live.exists() and elsewhere.exists()
    assert (tmp_path / "demo" / "amend.json").exists() and not (project.path / ".creator").exists()
