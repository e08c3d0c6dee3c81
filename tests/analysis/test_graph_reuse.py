"""Re-analysis after decisions reuses the kNN graph of the unchanged vectors (the search is the
largest step of detection at 10k x 1,280) and gives exactly the graph a new search gives; new
vectors get a new key (the map's content key, tests/analysis/test_map_reuse.py) and another k
searches again."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from builders import relabel_one
from core.analysis.run import analyse
from core.analysis.runs import evidence, list_runs
from core.detect import DetectConfig
from core.neighbours import build_knn_graph, normalise


def _neighbours(project, run_id: str) -> tuple[list, np.ndarray]:
    _, frame = evidence(project, run_id)
    frame = frame.set_index("id").sort_index()
    return [list(n) for n in frame["neighbour_ids"]], np.array([list(s) for s in frame["neighbour_similarities"]])


def test_reanalysis_reuses_the_graph_and_it_equals_a_fresh_search(project_copy):
    project = project_copy("news20-sample")
    config = DetectConfig()
    first = list_runs(project)[-1]  # the fixture's analysis, which searched
    assert first.record["neighbours"]["reused_from"] is None
    assert first.record["neighbours"]["method"] == "exact"
    assert first.record["neighbours"]["recall_sampled"] is None  # only an approximate graph is measured
    assert first.record["timings"]["detect.neighbours"] > 0
    relabel_one(project)

    second = analyse(project, config=config, with_slices=False)
    assert second.run.record["neighbours"]["reused_from"] == first.run_id
    assert second.timings["detect.neighbours"] == 0.0
    assert second.run.record["neighbours"]["graph_key"] == first.record["neighbours"]["graph_key"]
    reused = second.detection.graph
    ids_a, sims_a = _neighbours(project, first.run_id)
    ids_b, sims_b = _neighbours(project, second.run.run_id)
    assert ids_a == ids_b and np.array_equal(sims_a, sims_b)
    # the reused graph is the one a new search of the same vectors makes
    vector_ids, vectors = project.vectors(first.representation)
    row = {sample: i for i, sample in enumerate(vector_ids)}
    aligned = vectors[[row[sample] for sample in second.ids]]
    searched = build_knn_graph(normalise(aligned), k=config.k, method=config.knn_method, seed=config.seed)
    assert np.array_equal(searched.indices, reused.indices)
    assert np.allclose(searched.similarities, reused.similarities, atol=1e-6)

    # another k is another graph
    third = analyse(project, config=replace(config, k=5), with_slices=False)
    assert third.run.record["neighbours"]["reused_from"] is None
    assert third.detection.graph.k == 5
