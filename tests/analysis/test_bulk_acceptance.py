"""Bulk acceptance relabels only where the suggestion is the most probable label; the rest waits for a person."""

from __future__ import annotations

from core.review.labels import current_labels
from core.analysis.runs import accept_suggested, flags


def test_bulk_acceptance_leaves_the_doubtful_suggestions_for_a_person(project_copy):
    project = project_copy("cifar10n-sample")
    _, frame = flags(project)
    chosen = frame[frame["flagged"] & frame["suggested_label"].notna()]
    sure, doubtful = chosen[chosen["accept_in_bulk"]], chosen[~chosen["accept_in_bulk"]]
    # Real CIFAR-10N labels: some flags are confident, others are close calls.
    assert len(sure) > 0 and len(doubtful) > 0

    result = accept_suggested(project, reviewer="ann")
    assert len(result.decided) == len(sure)
    held = {sid for sid, why in result.skipped if "left for a person" in why}
    assert held == set(doubtful["id"])
    labels = current_labels(project).set_index("id")["current_label"]
    assert (labels[sure["id"]].to_numpy() == sure["suggested_label"].to_numpy()).all()
    assert (labels[doubtful["id"]].to_numpy() == doubtful["given_label"].to_numpy()).all()

    # Asked for every flag, it takes the held ones; the decided ones are not touched again.
    rest = accept_suggested(project, reviewer="ann", all_flagged=True)
    assert {e.sample_id for e in rest.decided} == set(doubtful["id"])
    assert len(rest.skipped) == len(sure)
