"""Reading a run's evidence: best first whatever order it was stored in, its lists read as lists,
missing cells read as empty, and a frame read back can be stored as a run again."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.analysis import runs
from core.util import listed


def test_listed_reads_every_missing_marker_as_empty():
    assert listed(None) == [] and listed(float("nan")) == [] and listed(pd.NA) == []
    assert listed(["a", "b"]) == ["a", "b"] and listed(np.array([1, 2])) == [1, 2] and listed(()) == []


def test_evidence_lists_read_as_lists_best_first_and_store_again(project_copy):
    project = project_copy("news20-sample")
    run, frame = runs.evidence(project)
    assert frame["rank"].is_monotonic_increasing and frame["rank"].iloc[0] == 1
    first = frame.iloc[0]
    assert len(listed(first["neighbour_ids"])) > 0 and all(isinstance(x, str) for x in first["neighbour_ids"])
    records = runs.flags_as_records(runs.flags(project)[1].head(3))
    assert all(isinstance(r["support"], list) for r in records)
    other = frame.copy()
    other.loc[0, "neighbour_ids"] = None  # a missing cell
    saved = runs.save_run(project, runs.new_run_id(), other, None, run.record, run.representation)
    _, again = runs.evidence(project, saved.run_id)
    assert again["id"].tolist() == frame["id"].tolist()
    assert listed(again.iloc[0]["neighbour_ids"]) == []
    assert listed(again.iloc[1]["neighbour_ids"]) == listed(frame.iloc[1]["neighbour_ids"])


def test_evidence_stored_out_of_rank_order_comes_back_best_first(project_copy):
    import json

    import pyarrow as pa

    project = project_copy("news20-sample")
    run, frame = runs.evidence(project)
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    saved = runs.save_run(project, runs.new_run_id(), shuffled, None, run.record, run.representation)
    _, again = runs.evidence(project, saved.run_id)
    assert again["id"].tolist() == frame["id"].tolist()  # ranks are unique in a run: one order
    # A run an earlier Amend stored in sample order (no sorting on save): sorted when read.
    table = f"evidence__older{saved.run_id}"
    project.db.create_table(table, data=pa.Table.from_pandas(shuffled, preserve_index=False))
    with project.transaction() as con:
        con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?)",
                    ("older" + saved.run_id, "2020-01-01T00:00:00Z", run.representation, table, None,
                     json.dumps(run.record)))
    _, older = runs.evidence(project, "older" + saved.run_id)
    assert older["id"].tolist() == frame["id"].tolist()
