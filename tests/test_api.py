"""The Python face: a notebook user's whole loop through core.api on plain data."""

from __future__ import annotations

import json

import numpy as np

from core import api


def test_the_documented_loop_runs_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 4
    rows, vectors = [], []
    for i in range(90):
        cls = i % 3
        vectors.append(centres[cls] + rng.normal(size=16))
        label = ["a", "b", "c"][cls]
        if i in (5, 10, 20):  # planted wrong labels
            label = ["a", "b", "c"][(cls + 1) % 3]
        rows.append({"id": f"s{i}", "text": f"sample {i}", "label": label})
    source = tmp_path / "texts.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows))
    project = api.create_project(tmp_path / "p")
    assert api.ingest(project, api.IngestOptions(texts=source)).taken == 90
    np.save(tmp_path / "v.npy", np.array(vectors, dtype=np.float32))
    (tmp_path / "ids.txt").write_text("\n".join(r["id"] for r in rows))
    api.import_vectors(project, tmp_path / "v.npy", "mine", ids_file=tmp_path / "ids.txt")

    result = api.analyse(project, with_slices=False)
    run, ranked = api.flags(project)
    assert run.run_id == result.run.run_id
    assert set(ranked["id"].head(3)) == {"s5", "s10", "s20"}
    top = ranked.iloc[0]
    event = api.decide(project, top["id"], "relabel", reviewer="ann", label=top["suggested_label"], expected_event=0)
    labels = api.current_labels(project).set_index("id")
    assert labels.loc[top["id"], "current_label"] == top["suggested_label"]
    assert api.verify(project).ok and api.verify(project).chain_head == event.hash
