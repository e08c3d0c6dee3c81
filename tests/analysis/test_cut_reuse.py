"""Re-analysis after decisions reuses the label-blind part of the error slices' cut (the
reduction and the k-means clusterings depend on the vectors and the seed, never on the labels)
and cuts exactly the slices a fresh cut of the new labels gives; a kept cut that cannot be read
is made again instead of failing the analysis."""

from __future__ import annotations

import numpy as np

from builders import relabel_one
from core.analysis.cut_store import blind_cut_key, load_blind_cut
from core.analysis.run import _content_key, analyse
from core.analysis.runs import list_runs
from core.detect import DetectConfig
from core.neighbours import normalise
from core.slices.clustering import error_aware_slices


def test_reanalysis_reuses_the_cut_and_cuts_what_a_fresh_cut_gives(project_copy):
    project = project_copy("news20-sample")
    first = list_runs(project)[-1]  # the fixture's analysis, which made the cut
    assert first.record["label_blind_cut"]["reused"] is False
    assert first.record["label_blind_cut"]["kept"] is True
    relabel_one(project)

    second = analyse(project, config=DetectConfig())
    section = second.run.record["label_blind_cut"]
    assert section == {"cut_key": first.record["label_blind_cut"]["cut_key"], "reused": True, "kept": True}
    regions = second.detection.results["regions"]

    # the slices a cut made from scratch gives for the same vectors, labels and probabilities
    vector_ids, vectors = project.vectors(first.representation)
    row = {sample: i for i, sample in enumerate(vector_ids)}
    aligned = normalise(vectors[[row[sample] for sample in second.ids]])
    labels = np.array([project.labels().index(label) for label in second.evidence.set_index("id").loc[
        second.ids, "label_analysed"]])
    fresh_info: dict = {}
    fresh = error_aware_slices(aligned, labels, second.detection.probabilities, seed=0, info=fresh_info)
    assert np.array_equal(fresh, regions.evidence["region"])
    assert fresh_info == regions.evidence["slicing"]
    # and the kept cut is the one a fresh label-blind cut makes
    kept = load_blind_cut(project, section["cut_key"], second.ids)
    assert np.array_equal(kept.slice_ids, regions.evidence["blind_cut"].slice_ids)
    assert np.array_equal(kept.reduced, regions.evidence["blind_cut"].reduced)


def test_an_unreadable_kept_cut_is_made_again(project_copy):
    project = project_copy("news20-sample")
    first = list_runs(project)[-1]
    key = first.record["label_blind_cut"]["cut_key"]
    table = f"cut__{key[:32]}"
    project.db.drop_table(table)
    project.db.create_table(table, data=[{"id": "nobody", "value": 1.0}])  # not a cut at all

    second = analyse(project, config=DetectConfig(), with_slices=False)
    assert second.run.record["label_blind_cut"] == {"cut_key": key, "reused": False, "kept": True}
    assert second.detection.results["regions"].evidence["region"].shape == (len(second.ids),)
    third = analyse(project, config=DetectConfig(), with_slices=False)  # the damaged table was replaced
    assert third.run.record["label_blind_cut"]["reused"] is True
    assert np.array_equal(third.detection.results["regions"].evidence["region"],
                          second.detection.results["regions"].evidence["region"])


def test_the_key_follows_the_vectors_and_the_seed(project_copy):
    project = project_copy("news20-sample")
    run = list_runs(project)[-1]
    vector_ids, vectors = project.vectors(run.representation)
    content = _content_key(run.representation, list(vector_ids), vectors)
    moved = vectors.copy()
    moved[0, 0] += 1e-3
    assert blind_cut_key(content, 0) != blind_cut_key(content, 1)
    assert blind_cut_key(content, 0) != blind_cut_key(_content_key(run.representation, list(vector_ids), moved), 0)
    assert load_blind_cut(project, blind_cut_key(content, 1), list(vector_ids)) is None  # never made


def test_one_kept_cut_per_representation(project_copy):
    from core.analysis.cut_store import save_blind_cut
    from core.store.project import table_names

    project = project_copy("news20-sample")
    run = list_runs(project)[-1]
    key = run.record["label_blind_cut"]["cut_key"]
    cut = load_blind_cut(project, key, run_ids := list(project.vectors(run.representation)[0]))
    # the representation's vectors changed (say, new samples embedded): its new cut replaces the old
    newer = save_blind_cut(project, "0" * 64, run_ids, cut, run.representation)
    other = save_blind_cut(project, "1" * 64, run_ids, cut, "another representation")
    cuts = {name for name in table_names(project.db) if name.startswith("cut__")}
    assert cuts == {newer, other}
    assert load_blind_cut(project, key, run_ids) is None
    assert load_blind_cut(project, "0" * 64, run_ids) is not None
