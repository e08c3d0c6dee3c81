"""A project where only some samples carry annotator labels analyses (it used to stop with a
ValueError), and the annotators decide where several of them labelled a sample."""

import json
from pathlib import Path

import numpy as np

from core.analysis.run import analyse
from core.analysis.runs import evidence
from core.detect.annotators import ANNOTATIONS_TO_DECIDE
from core.ingest import IngestOptions, ingest
from core.store.project import Project
from tests.builders import clustered_vectors, import_vectors


def test_a_second_batch_without_annotators_analyses(tmp_path: Path) -> None:
    classes = ["ant", "bee", "fly"]
    truth = [classes[i % 3] for i in range(90)]
    rows = []
    for i, label in enumerate(truth):
        row = {"id": f"t{i:03d}", "text": f"text {i}", "label": label}
        if i < 60:  # the first batch had three annotators; the second none
            row.update(rater1=label, rater2=label, rater3=label)
        rows.append(row)
    rows[3].update(label="bee", rater1="bee", rater2="ant", rater3="ant")  # truth ant: two raters say so
    texts = tmp_path / "t.jsonl"
    texts.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    project = Project.create(tmp_path / "p")
    ingest(project, IngestOptions(texts=texts, annotator_columns=["rater1", "rater2", "rater3"]))
    import_vectors(project, "vectors", [r["id"] for r in rows], clustered_vectors(truth), folder=tmp_path / "v")
    result = analyse(project)
    _, frame = evidence(project, result.run.run_id)
    frame = frame.set_index("id")
    assert bool(frame.loc["t003", "flagged"]) and frame.loc["t003", "suggested_label"] == "ant"
    annotations = result.detection.results["annotators"].evidence["num_annotations"]
    assert (annotations[:60] == 3).all() and (annotations[60:] == 0).all()
    # the annotators decide the first batch; the second is left to the other detectors
    assert ANNOTATIONS_TO_DECIDE <= 3
    assert f"on the 60 samples {ANNOTATIONS_TO_DECIDE} or more annotators labelled" in \
        result.detection.params["ranking"]["flag_rule"]
