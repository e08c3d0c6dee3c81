"""Issue 13, item 9, through `amend` itself: an id (or a reason) that starts with '-', and a
source that is not a regular file. Real projects in tmp_path, the entry point's main in-process."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest


@pytest.fixture()
def dashed_project(amend, tmp_path: Path) -> Path:
    texts = tmp_path / "posts.jsonl"
    rows = [{"id": "-2+3", "text": "minus two plus three", "label": "math"},
            {"id": "-x", "text": "a dashed id", "label": "math"},
            {"id": "plain", "text": "hello there", "label": "chat"}]
    texts.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    project = tmp_path / "p"
    assert amend.json("init", project, "--texts", texts)["taken"] == 3
    return project


def test_decide_takes_an_id_that_starts_with_a_dash(amend, dashed_project: Path) -> None:
    event = amend.json("decide", dashed_project, "--id", "-2+3", "--label", "chat", "--reviewer", "ann",
                       "--reason", "-not maths")
    assert (event["sample_id"], event["old_label"], event["new_label"]) == ("-2+3", "math", "chat")
    again = amend.json("decide", dashed_project, "--id=-x", "--keep", "--reviewer", "ann")
    assert (again["sample_id"], again["decision"]) == ("-x", "keep")
    trail = amend.json("audit", "verify", dashed_project)
    assert trail["ok"] and trail["events"] >= 2


def test_an_option_where_a_value_belongs_is_still_an_error(amend, dashed_project: Path) -> None:
    amend.fails("decide", dashed_project, "--id", "--keep", "--reviewer", "ann", says="--id")


def test_init_from_a_pipe_is_one_error_line_and_leaves_no_project(amend, tmp_path: Path) -> None:
    fifo = tmp_path / "posts.jsonl"
    os.mkfifo(fifo)
    project = tmp_path / "p"
    holder: dict = {}
    thread = threading.Thread(daemon=True, target=lambda: holder.update(
        result=amend.fails("init", project, "--texts", fifo, says="is not a regular file")))
    thread.start()
    thread.join(20)
    if thread.is_alive():  # blocked on the pipe: give it an end so the thread finishes, and fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail("amend init --texts PIPE was still reading after 20 s")
    assert "result" in holder, "amend init --texts PIPE did not end in one error line (see the thread's exception)"
    assert not project.exists()


def test_init_from_a_link_to_dev_zero_is_one_error_line(amend, tmp_path: Path) -> None:
    link = tmp_path / "zero.jsonl"
    link.symlink_to("/dev/zero")
    amend.fails("init", tmp_path / "p", "--texts", link, says="(a link to /dev/zero) is not a regular file")
    assert not (tmp_path / "p").exists()
