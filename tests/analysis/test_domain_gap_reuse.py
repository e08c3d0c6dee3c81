"""Re-analysis after decisions reuses the domain-gap tables (they depend on the vectors, the
source column and the seed, never on the labels) and they equal a table made from scratch; a
changed source column is measured again."""

from __future__ import annotations

import json

import pandas as pd

from builders import relabel_one
from core.analysis.run import _domain_gap_keys, analyse
from core.analysis.runs import list_runs
from core.detect import DetectConfig
from core.slices.compare import domain_gap


def test_reanalysis_reuses_the_domain_gap_and_it_equals_a_fresh_one(project_copy):
    project = project_copy("cifar10n-sample")
    first = list_runs(project)[-1]
    assert first.record["slices"]["domain_gaps_reused"] == []
    assert set(first.record["slices"]["domain_gap_keys"]) == {"split"}
    relabel_one(project)

    second = analyse(project, config=DetectConfig())
    assert second.run.record["slices"]["domain_gaps_reused"] == ["split"]
    assert second.run.record["slices"]["domain_gaps"] == first.record["slices"]["domain_gaps"]

    vector_ids, vectors = project.vectors(first.representation)
    row = {sample: i for i, sample in enumerate(vector_ids)}
    aligned = vectors[[row[sample] for sample in second.ids]]
    samples = project.samples().set_index("id").loc[second.ids]
    fresh = domain_gap(aligned, samples["split"].to_numpy(), seed=0)
    pd.testing.assert_frame_equal(fresh, second.slices.domain_gaps["split"], check_dtype=False)


def test_the_key_follows_the_source_values():
    metadata = pd.DataFrame({"split": ["train", "test", "train", None], "colour": ["red"] * 4})
    keys = _domain_gap_keys("vectors", metadata, seed=0)
    assert set(keys) == {"split"}  # only source-like columns are measured
    moved = metadata.assign(split=["train", "test", "test", None])
    assert _domain_gap_keys("vectors", moved, seed=0)["split"] != keys["split"]
    assert _domain_gap_keys("other vectors", metadata, seed=0)["split"] != keys["split"]
    assert _domain_gap_keys("vectors", metadata, seed=1)["split"] != keys["split"]
    assert _domain_gap_keys("vectors", metadata, seed=0) == keys
    json.dumps(keys)
