"""One annotator's habit, end to end: `amend analyse` reports it by the annotator's column name,
and the overview lists it with the samples it holds, ready to send to triage as one group."""

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.analysis.run import analyse
from core.analysis.runs import get_run
from core.ingest import IngestOptions, ingest
from core.store.project import Project
from tests.builders import clustered_vectors, import_vectors
from tests.cli.conftest import run_amend

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["ant", "bee", "fly"]


@pytest.fixture(scope="module")
def habit_project(tmp_path_factory) -> tuple[Project, set[str]]:
    # 300 texts; three raters who agree with the truth except that rater2 calls 60 % of the ants
    # "bee". The labels in use are rater2's, habit included.
    folder = tmp_path_factory.mktemp("habit")
    rng = np.random.default_rng(3)
    truth = [CLASSES[i % 3] for i in range(300)]
    rows, habit = [], set()
    for i, label in enumerate(truth):
        row = {"id": f"t{i:03d}", "text": f"text {i}", "label": label, "rater1": label, "rater2": label, "rater3": label}
        if label == "ant" and rng.random() < 0.6:
            row["rater2"] = row["label"] = "bee"
            habit.add(row["id"])
        rows.append(row)
    texts = folder / "t.jsonl"
    texts.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    project = Project.create(folder / "p")
    ingest(project, IngestOptions(texts=texts, annotator_columns=["rater1", "rater2", "rater3"]))
    import_vectors(project, "vectors", [r["id"] for r in rows], clustered_vectors(truth), folder=folder / "v")
    analyse(project)
    return project, habit


def test_the_run_records_the_habit_by_annotator_name_with_its_samples(habit_project) -> None:
    project, habit = habit_project
    habits = get_run(project).record["annotator_habits"]
    assert [(h["annotator"], h["true"], h["said"]) for h in habits] == [("rater2", "ant", "bee")]
    assert set(habits[0]["members"]) == habit
    assert abs(habits[0]["share"] - len(habit) / 100) < 0.02  # 100 ants, rater2 called these bees
    assert habits[0]["sentence"] == f"rater2 labels {habits[0]['share']:.0%} of about 100 ant as bee (the other annotators 0%)"


def test_amend_analyse_says_which_annotator_has_which_habit(habit_project) -> None:
    project, habit = habit_project
    text = run_amend("analyse", project.path).out
    assert "annotator habit: rater2 labels" in text and "ant as bee" in text
    report = run_amend("analyse", project.path, "--json").json()
    (h,) = report["annotator_habits"]
    assert (h["annotator"], h["true"], h["said"], h["samples"]) == ("rater2", "ant", "bee", len(habit))
    assert "members" not in h
    assert f"`amend groups {project.path} --annotators`" in text


def test_amend_groups_lists_each_habit_with_the_ids_of_its_samples(habit_project) -> None:
    project, habit = habit_project
    (h,) = run_amend("groups", project.path, "--annotators", "--json").json()
    assert (h["annotator"], h["true"], h["said"]) == ("rater2", "ant", "bee") and set(h["members"]) == habit
    text = run_amend("groups", project.path, "--annotators").out
    assert text.splitlines()[0].endswith("1 annotator habit(s)") and h["sentence"] in text


def test_the_overview_lists_the_habit(habit_project, monkeypatch) -> None:
    project, habit = habit_project
    monkeypatch.setenv("AMEND_PROJECTS", str(project.path))
    app = AppTest.from_file(str(REPO / "pages/overview.py"), default_timeout=120)
    app.run()
    assert not app.exception
    assert "Annotators' habits" in [s.value for s in app.subheader]
    table = next(d.value for d in app.dataframe if "called" in d.value.columns)
    assert table[["annotator", "class", "called", "samples"]].values.tolist() == [["rater2", "ant", "bee", len(habit)]]


def test_a_habits_samples_are_relabelled_in_bulk_through_their_ids(habit_project, tmp_path) -> None:
    from core.review.labels import current_labels

    project, habit = habit_project
    (h,) = run_amend("groups", project.path, "--annotators", "--json").json()
    ids = tmp_path / "habit.txt"
    ids.write_text("\n".join(h["members"]) + "\n", encoding="utf-8")
    result = run_amend("decide", project.path, "--accept-suggested", "--ids", ids, "--reviewer", "lead", "--json").json()
    # a member the flag count left out is reported as skipped, not dropped without a word
    skipped = {s["id"] for s in result["skipped_samples"]}
    assert result["decided"] + result["skipped"] == len(habit) and result["decided"] >= 0.9 * len(habit)
    assert all("not flagged" in s["reason"] for s in result["skipped_samples"])
    labels = current_labels(project).set_index("id")["current_label"]
    assert set(labels[sorted(habit - skipped)]) == {"ant"}
