"""AppTest of the home page: it shows the project's samples, labels, representations and rejects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from builders import add_rows
from core.store.project import Project

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def small_project(tmp_path) -> Path:
    project = add_rows(Project.create(tmp_path / "demo-project"), [
        {"id": f"s{row}", "text": text, "label": label, "content_hash": text, "metadata": {"site": row}}
        for row, (label, text) in enumerate([("cat", "a cat"), ("cat", "another cat"), ("dog", "a dog")], start=1)
    ], source="texts.csv", rejects=[(4, "s4", "empty text", "the text cell is empty")])
    rep = project.start_representation("minilm", "offline:all-MiniLM-L6-v2", 4,
                                       {"fallback_message": "OpenCLIP weights could not be loaded (test)"})
    project.add_vectors(rep, ["s1", "s2"], np.eye(4)[:2])
    return project.path


def _run(page: str, projects: str, monkeypatch) -> AppTest:
    monkeypatch.setenv("AMEND_PROJECTS", projects)
    app = AppTest.from_file(str(REPO / page), default_timeout=60)
    app.run()
    return app


def test_home_page_shows_the_project(small_project, monkeypatch):
    app = _run("pages/home.py", str(small_project), monkeypatch)
    assert not app.exception
    assert app.title[0].value == "demo-project"
    metrics = {m.label: m.value for m in app.metric}
    assert metrics == {"Samples": "3", "Labels": "2", "Representations": "1", "Rows not taken": "1"}
    frames = [f.value for f in app.dataframe]
    labels = next(f for f in frames if "label" in f.columns and "samples" in f.columns)
    assert dict(zip(labels["label"], labels["samples"])) == {"cat": 2, "dog": 1}
    reps = next(f for f in frames if "model" in f.columns)
    assert reps.iloc[0]["model"] == "offline:all-MiniLM-L6-v2" and reps.iloc[0]["vectors"] == 2
    rejects = next(f for f in frames if "reason" in f.columns)
    assert rejects.iloc[0]["reason"] == "empty text" and rejects.iloc[0]["row"] == 4
    notices = " ".join(i.value for i in app.info)
    assert "OpenCLIP weights could not be loaded" in notices
    assert "covers 2 of 3 samples" in notices
    assert "`site` (integer)" in " ".join(m.value for m in app.markdown)


def test_home_page_says_when_no_project_is_given(monkeypatch):
    app = _run("pages/home.py", "", monkeypatch)
    assert not app.exception
    assert "No project is open" in app.warning[0].value


@pytest.mark.parametrize("version, says", [(99, "newer Amend"), (1, "amend upgrade")])
def test_home_page_reports_a_project_from_a_newer_or_older_amend(small_project, monkeypatch, version, says):
    info = small_project / "amend.json"
    info.write_text(json.dumps(dict(json.loads(info.read_text()), schema_version=version)))
    app = _run("pages/home.py", str(small_project), monkeypatch)
    assert not app.exception
    assert says in app.error[0].value


def test_app_entry_runs_with_the_project_picker(small_project, monkeypatch):
    app = _run("app.py", str(small_project), monkeypatch)
    assert not app.exception
    assert app.sidebar.selectbox[0].label == "Project"
    assert app.title[0].value == "demo-project"


def test_home_page_says_offline_vectors_are_not_openclip(small_project, monkeypatch):
    project = Project.open(small_project)
    rep = project.start_representation("efficientnet-lite0", "offline:efficientnet-lite0-imagenet", 4, {})
    project.add_vectors(rep, ["s1", "s2", "s3"], np.eye(4)[:3])
    app = _run("pages/home.py", str(small_project), monkeypatch)
    notices = " ".join(i.value for i in app.info)
    assert "'efficientnet-lite0' comes from the offline embedder" in notices and "not OpenCLIP" in notices


def test_home_page_lists_captured_training_runs(small_project, monkeypatch):
    import torch
    from torch import nn

    from core import capture

    model = capture.watch(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), layers={"hidden": "1"})
    with capture.session(small_project, run="mlp-seed0", epoch=0):
        model(torch.eye(4)[:3], labels=torch.tensor([0, 0, 1]), sample_ids=["s1", "s2", "s3"])
    app = _run("pages/home.py", str(small_project), monkeypatch)
    assert not app.exception
    runs = next(f.value for f in app.dataframe if "run" in f.value.columns)
    assert runs.iloc[0]["run"] == "mlp-seed0" and runs.iloc[0]["layers"] == "hidden (1)"
    assert runs.iloc[0]["splits"] == "train: 1 epoch, 3 samples"
    assert any("--capture RUN" in c.value for c in app.caption)


def test_home_page_says_how_many_are_flagged_and_links_to_triage(project_copy, monkeypatch):
    from core.analysis.runs import flags
    from core.review import decisions

    project = project_copy("news20-sample")
    _, frame = flags(project)
    flagged = frame[frame["flagged"]]["id"].tolist()
    decisions.decide(project, flagged[0], "keep", "ann")
    app = _run("app.py", str(project.path), monkeypatch)  # the entry point: the page link needs its navigation
    assert not app.exception, app.exception
    links = {link.proto.label: link.proto.page for link in app.get("page_link")}
    sentence = f"{len(flagged):,} flagged (1 reviewed, {len(flagged) - 1:,} to go) — start reviewing"
    assert sentence in links and links[sentence].endswith("triage")


def test_home_page_without_an_analysis_says_what_to_run(small_project, monkeypatch):
    app = _run("pages/home.py", str(small_project), monkeypatch)
    assert not app.exception
    assert any("No analysis yet" in i.value and "amend analyse" in i.value for i in app.info)
