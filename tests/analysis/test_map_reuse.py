"""Re-analysis draws the earlier map again when the vectors did not change (the map is the slowest
step, and users re-analyse after every batch of decisions); new vectors get a new map."""

from __future__ import annotations

import numpy as np

from core import api
from core.analysis.run import analyse
from core.analysis.runs import evidence, list_runs
from tests.builders import import_vectors


def _map(project, run_id: str) -> np.ndarray:
    _, frame = evidence(project, run_id)
    return frame.set_index("id").sort_index()[["x", "y"]].to_numpy()


def test_a_second_analysis_of_the_same_vectors_reuses_the_map_and_new_vectors_do_not(project_copy, tmp_path):
    project = project_copy("news20-sample")
    first = list_runs(project)[-1]
    assert first.record["slices"]["map_reused_from"] is None and first.record["slices"]["map_key"]
    sample = project.samples()["id"].iloc[0]
    label = next(c for c in project.labels() if c != api.current_labels(project).set_index("id").loc[sample, "current_label"])
    api.decide(project, sample, "relabel", reviewer="ann", label=label, expected_event=0)

    second = analyse(project).run
    assert second.record["slices"]["map_reused_from"] == first.run_id
    assert second.record["slices"]["params"]["map"] == "given"
    assert np.array_equal(_map(project, second.run_id), _map(project, first.run_id))
    # the labels changed, so the analysis itself was redone
    assert second.record["labels_analysed"]["audit_chain_size"] > first.record["labels_analysed"]["audit_chain_size"]

    ids, vectors = project.vectors(first.representation)
    moved = vectors + np.random.default_rng(1).normal(0, 0.05, vectors.shape).astype(np.float32)
    import_vectors(project, "moved", list(ids), moved, folder=tmp_path / "moved")
    third = analyse(project, representation="moved").run
    assert third.record["slices"]["map_reused_from"] is None
    assert third.record["slices"]["params"]["map"] is True
    assert not np.allclose(_map(project, third.run_id), _map(project, first.run_id))
