"""Upgrading a project folder written by an earlier Amend.

``tests/fixtures/schema1-project`` was written by Amend at commit 3b28647 (project schema 1; see
``tests/fixtures/make_schema1_project.py``): ten texts, 4-d imported vectors, one analysis run, a
guideline and three decisions in the review log.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core import api, cli
from core.errors import ConflictError, SchemaVersionError
from core.review import audit
from core.review.labels import current_labels
from core.analysis.runs import list_runs
from core.store import migrations
from core.store.migrations import MIGRATIONS, Migration, upgrade
from core.store.project import Project, writer_lock
from core.store.schema import SCHEMA_VERSION, recorded_version
from core.store.selections import list_selections, save_selection

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "schema1-project"


@pytest.fixture()
def old_project(tmp_path) -> Path:
    """A copy of the fixture (the committed folder itself is never opened: SQLite would write to it)."""
    target = tmp_path / "old"
    shutil.copytree(FIXTURE, target)
    return target


def _tables(root: Path) -> dict[str, list[tuple]]:
    """Every table of project.sqlite with its columns (name, type, not null, primary key), and its triggers."""
    with Project(root, {}).sql() as con:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        tables = {n: [(c[1], c[2], c[3], c[5]) for c in con.execute(f"PRAGMA table_info({n})")] for n in names}
        tables["(triggers)"] = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='trigger' ORDER BY name")]
        return tables


def test_the_fixture_is_an_old_project(old_project):
    assert json.loads((old_project / "amend.json").read_text())["schema_version"] == 1
    assert "schema_history" not in _tables(old_project)


def test_an_old_project_upgrades_and_then_opens_with_its_samples_log_and_decisions(old_project):
    head = audit.verify(old_project).chain_head
    report = api.upgrade(old_project)
    assert (report["from_version"], report["to_version"], report["upgraded"]) == (1, SCHEMA_VERSION, True)
    assert [(s["from_version"], s["to_version"]) for s in report["steps"]] == [(1, 2), (2, 3), (3, 4)]
    assert any("schema_history" in change for change in report["changes"])
    assert report["log"] == {"ok": True, "events": 7, "chain_head": head}

    project = api.open_project(old_project)
    assert project.sample_ids() == [f"t{i:02d}" for i in range(1, 11)]
    assert project.labels() == ["cat", "dog", "bird"]
    ids, vectors = project.vectors("tiny")
    assert len(ids) == 10 and vectors.shape == (10, 4)
    assert [run.run_id for run in list_runs(project)] == ["run-20261201T070512-2ad6bc"]
    result = api.verify(project)
    assert result.ok and result.chain_head == head
    labels = current_labels(project).set_index("id")
    assert labels.loc["t06", "current_label"] == "dog" and labels.loc["t10", "current_label"] == "bird"
    assert labels.loc["t01", "status"] == "kept"
    assert [v["version"] for v in migrations.history(project)] == [1, 2, 3, 4]

    # and it is a working project: a selection and a decision go in, the chain stays whole
    save_selection(project, ["t02"], "one", "test")
    assert [s.ids for s in list_selections(project)] == [["t02"]]
    api.decide(project, "t05", "keep", reviewer="ann", expected_event=0)
    assert api.verify(project).ok and api.verify(project, known_head=head).ok


def test_an_old_project_is_refused_with_one_line_that_names_amend_upgrade(old_project, capsys):
    with pytest.raises(SchemaVersionError) as caught:
        Project.open(old_project)
    message = str(caught.value)
    assert "\n" not in message and f"amend upgrade {old_project}" in message and "schema 1" in message
    assert cli.main(["flags", str(old_project)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "amend upgrade" in err


def test_a_second_upgrade_is_a_no_op(old_project, capsys):
    upgrade(old_project)
    info = (old_project / "amend.json").read_text()
    history = migrations.history(Project.open(old_project))
    assert cli.main(["upgrade", str(old_project), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["from_version"] == report["to_version"] == SCHEMA_VERSION
    assert not report["upgraded"] and report["steps"] == [] and report["changes"] == []
    assert (old_project / "amend.json").read_text() == info
    assert migrations.history(Project.open(old_project)) == history


def test_a_new_project_needs_no_upgrade(tmp_path):
    Project.create(tmp_path / "new")
    assert upgrade(tmp_path / "new")["upgraded"] is False


def test_an_upgraded_project_has_the_tables_of_a_new_one(old_project, tmp_path):
    upgrade(old_project)
    Project.create(tmp_path / "new")
    assert _tables(old_project) == _tables(tmp_path / "new")


def test_the_migrations_are_one_chain_to_the_current_version():
    assert [m.from_version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION))
    assert MIGRATIONS[-1].to_version == SCHEMA_VERSION


def test_a_step_that_fails_leaves_the_project_as_it_was(old_project, monkeypatch):
    def broken(con, root, info):
        MIGRATIONS[0].apply(con, root, info)
        raise RuntimeError("killed in the middle of a step")

    monkeypatch.setattr(migrations, "MIGRATIONS", [Migration(1, "broken", broken)])
    before = _tables(old_project)
    with pytest.raises(RuntimeError):
        upgrade(old_project)
    assert _tables(old_project) == before
    monkeypatch.undo()
    assert upgrade(old_project)["steps"][0]["from_version"] == 1
    assert Project.open(old_project).sample_count() == 10


def test_an_upgrade_killed_after_its_last_step_is_finished_by_the_next(old_project, monkeypatch):
    def killed(root, info):
        raise KeyboardInterrupt

    monkeypatch.setattr(migrations, "write_info", killed)
    with pytest.raises(KeyboardInterrupt):
        upgrade(old_project)
    with Project(old_project, {}).sql() as con:
        assert recorded_version(con) == SCHEMA_VERSION
    with pytest.raises(SchemaVersionError, match="amend upgrade"):
        Project.open(old_project)
    monkeypatch.undo()
    report = upgrade(old_project)
    assert report["steps"] == [] and report["upgraded"] and "interrupted" in report["changes"][0]
    assert Project.open(old_project).sample_count() == 10


def test_upgrade_refuses_a_newer_project_and_waits_for_no_writer(old_project):
    lock = writer_lock(old_project)
    lock.acquire()
    try:
        with pytest.raises(ConflictError, match="writing"):
            upgrade(old_project, wait=0.1)
    finally:
        lock.release()
    info = json.loads((old_project / "amend.json").read_text())
    (old_project / "amend.json").write_text(json.dumps(dict(info, schema_version=SCHEMA_VERSION + 1)))
    with pytest.raises(SchemaVersionError, match="newer"):
        upgrade(old_project)


def test_the_start_command_upgrades_its_own_sample_projects_built_by_an_older_amend(old_project):
    from core.demo import open_or_create

    said: list[str] = []
    project = open_or_create(old_project, said.append)
    with project.sql() as con:
        assert recorded_version(con) == SCHEMA_VERSION
    assert said == ["old: upgraded to this Amend's project schema"]
    assert audit.verify(project).ok
    again: list[str] = []
    open_or_create(old_project, again.append)
    assert again == []  # up to date: nothing to say


SCHEMA3_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "schema3-project"


def test_a_schema3_project_upgrades_to_the_hypotheses_schema_and_keeps_its_log_checkpoint_and_selection(tmp_path):
    """``tests/fixtures/schema3-project`` was written by Amend at commit 45c245c (schema 3, see
    ``tests/fixtures/make_schema3_project.py``), the day the hypotheses tables (schema 4) came."""
    from core.hypotheses import review as hypotheses_review
    from core.review.checkpoints import list_checkpoints

    target = tmp_path / "old3"
    shutil.copytree(SCHEMA3_FIXTURE, target)
    assert json.loads((target / "amend.json").read_text())["schema_version"] == 3
    with Project(target, {}).sql() as con:
        assert recorded_version(con) == 3
    before = [(e.event_id, e.hash) for e in audit.read_events(Project(target, {}))]
    report = api.upgrade(target)
    assert (report["from_version"], report["to_version"], report["upgraded"]) == (3, SCHEMA_VERSION, True)
    project = api.open_project(target)
    assert [(e.event_id, e.hash) for e in audit.read_events(project)] == before and len(before) == 7
    assert audit.verify(project).ok
    labels = current_labels(project)
    assert dict(zip(labels["id"], labels["current_label"]))["t06"] == "dog"
    assert [c["size"] for c in list_checkpoints(project)] == [7]
    assert [s.name for s in list_selections(project)] == ["dogs to check"]
    assert hypotheses_review.listing(project) == []  # the new tables exist and are empty
    Project.create(tmp_path / "new")
    assert _tables(target) == _tables(tmp_path / "new")
