"""Properties of label derivation (core.review.labels.derive) over any log hypothesis finds.

Expected values come from the replay rule read per sample: the label in force is the given label
with the sample's last relabel applied; its status, reviewer and event are those of its last
decision; events of other samples, of unknown samples and of other kinds change nothing, in
whatever order they are interleaved.
"""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from core.review import audit, labels

LABELS = ["cat", "dog", "bird"]
KINDS = ["relabel", "keep", "ambiguous", "exclude"]


@st.composite
def logs(draw):
    """(samples frame, events in chain order). Events name known samples, an unknown one, or
    carry another kind than ``decision``."""
    n = draw(st.integers(1, 6))
    ids = [f"s{i}" for i in range(n)]
    given_labels = draw(st.lists(st.sampled_from(LABELS), min_size=n, max_size=n))
    samples = pd.DataFrame({"id": ids, "label": given_labels})
    events = []
    for event_id in range(1, draw(st.integers(0, 25)) + 1):
        sample = draw(st.sampled_from([*ids, "not-a-sample"]))
        kind = draw(st.sampled_from(["decision"] * 4 + ["role_granted"]))
        decision = draw(st.sampled_from(KINDS))
        payload = {"decision": decision, "reason": f"r{event_id}", "guideline_version": draw(st.sampled_from([None, "v1"]))}
        if decision == "relabel":
            payload["new_label"] = draw(st.sampled_from(LABELS))
        events.append(audit.Event(event_id, kind, sample, payload, f"2026-01-01T00:00:{event_id:02d}.000000+00:00",
                                  draw(st.sampled_from(["ann", "bob"])), "", ""))
    return samples, events


def _expected(samples: pd.DataFrame, events: list[audit.Event]) -> dict[str, dict]:
    out = {}
    for sid, given_label in zip(samples["id"], samples["label"]):
        mine = [e for e in events if e.kind == "decision" and e.sample_id == sid]
        relabels = [e for e in mine if e.payload["decision"] == "relabel"]
        last = mine[-1] if mine else None
        out[sid] = {
            "given_label": given_label,
            "current_label": relabels[-1].payload["new_label"] if relabels else given_label,
            "status": labels.STATUS[last.payload["decision"]] if last else "unreviewed",
            "excluded": bool(last and last.payload["decision"] == "exclude"),
            "last_event_id": last.event_id if last else None,
            "reviewer": last.actor if last else None,
            "reason": last.payload["reason"] if last else None,
            "guideline_version": last.payload["guideline_version"] if last else None,
        }
    return out


def _as_dicts(frame: pd.DataFrame) -> dict[str, dict]:
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return {row.pop("id"): {k: v for k, v in row.items() if k != "decided_at"} for row in rows}


@given(logs())
def test_current_labels_are_the_given_labels_with_each_samples_last_relabel(log):
    samples, events = log
    frame = labels.derive(samples, events)
    assert frame.columns.tolist() == labels.COLUMNS
    assert frame["id"].tolist() == samples["id"].tolist()  # every sample, in project order
    assert _as_dicts(frame) == _expected(samples, events)


@given(logs(), st.randoms(use_true_random=False))
def test_interleaving_other_samples_events_changes_nothing(log, rnd):
    samples, events = log
    queues: dict[str, list] = {}
    for event in events:
        queues.setdefault(event.sample_id, []).append(event)
    turns = [e.sample_id for e in events]
    rnd.shuffle(turns)
    interleaved = [queues[sid].pop(0) for sid in turns]  # each sample's own events keep their order
    pd.testing.assert_frame_equal(labels.derive(samples, interleaved), labels.derive(samples, events))


@given(logs())
def test_label_in_force_agrees_with_derive(log):
    samples, events = log
    frame = labels.derive(samples, events).set_index("id")
    for sid, given_label in zip(samples["id"], samples["label"]):
        mine = [e for e in events if e.sample_id == sid]
        assert labels.label_in_force(given_label, mine) == frame.loc[sid, "current_label"]
