"""People review hypotheses: agree / disagree / skip, in the review log; what follows from it.

A review is a ``hypothesis_reviewed`` event in the project's hash-chained log (who, when, from
where, and what was reviewed: hypothesis, sample, its ``data_quality`` tag, the model and prompt
that wrote it). It carries ``sample_id: null`` on purpose: it says nothing about the sample's
label, and a sample-scoped event would make a triage reviewer's decision on that sample look
stale (core.review.audit.LogWriter.check_fresh). A reviewer's latest verdict on a hypothesis counts;
earlier ones stay in the log.

From the verdicts: agreement rates per cluster and per ``data_quality`` tag (a vision-language
model over-calls annotation issues; the rate says how far to trust each tag), the samples whose
``annotation_issue`` hypothesis reviewers agreed with (sent to triage as a selection), and the
fix clusters as a ranked list of targeted actions. None of it changes the ranking of flags.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Optional, Sequence

import pandas as pd

from core.errors import AmendError
from core.hypotheses import store
from core.review import audit, roles

from core.hypotheses import VERDICTS  # noqa: F401 (the CLI's choices)
KIND = "hypothesis_reviewed"
SELECTION_NAME = "agreed annotation issues"
#: Words that say what kind of action a fix is (first match wins, in this order).
ACTION_KINDS = (
    ("labelling guideline", ("guideline", "definition", "define", "instruction", "annotat", "label", "relabel",
                             "taxonomy", "merge the class", "split the class")),
    ("augmentation", ("augment", "blur", "crop", "rotat", "flip", "jitter", "colour", "color", "contrast",
                      "brightness", "noise", "occlu", "scale", "resolution")),
    ("data collection", ("collect", "gather", "more example", "more sample", "more data", "add example",
                         "add sample", "add more", "acquire", "source", "include more")),
)


def review(project: Any, hypothesis_id: int, verdict: str, reviewer: str, identity_source: str = "local",
           os_user: Optional[str] = None, note: str = "") -> audit.Event:
    """Record one verdict on one hypothesis; returns the event once committed.

    The reviewer needs the reviewer role; on an open project a new name gets it (recorded), as
    with decisions (core.review.roles.require_reviewer).
    """
    if verdict not in VERDICTS:
        raise AmendError(f"a verdict is one of {', '.join(VERDICTS)} (got {verdict!r}).")
    reviewer = audit.check_actor(reviewer)
    audit.check_identity_source(identity_source)
    with project.sql() as con:
        row = con.execute("SELECT h.hypothesis_id, h.sample_id, h.data_quality, h.run_id, h.model, r.prompt_version, "
                          "h.status FROM hypotheses h JOIN hypothesis_runs r ON r.run_id = h.run_id "
                          "WHERE h.hypothesis_id = ?", (int(hypothesis_id),)).fetchone()
    if row is None or row[6] != "ok":
        raise AmendError(f"no explained hypothesis {hypothesis_id}; list them with `amend hypotheses PROJECT --list`.")
    payload = {"hypothesis_id": int(row[0]), "sample_id": row[1], "verdict": verdict, "data_quality": row[2],
               "run_id": row[3], "model": row[4], "prompt_version": row[5], "note": (note or "").strip(),
               **roles.claim(identity_source, os_user)}
    with audit.writing(project) as log:
        roles.require_reviewer(log, reviewer, identity_source, os_user)
        return log.append(KIND, reviewer, payload, sample_id=None)


def verdicts(project: Any) -> pd.DataFrame:
    """Each reviewer's latest verdict per hypothesis: hypothesis_id, reviewer, verdict, event_id, created_at."""
    rows = [{"hypothesis_id": int(e.payload["hypothesis_id"]), "reviewer": e.actor, "verdict": e.payload["verdict"],
             "event_id": e.event_id, "created_at": e.created_at} for e in audit.read_events(project, kinds=[KIND])]
    frame = pd.DataFrame(rows, columns=["hypothesis_id", "reviewer", "verdict", "event_id", "created_at"])
    return frame.drop_duplicates(["hypothesis_id", "reviewer"], keep="last").reset_index(drop=True)


def board(project: Any, reviewer: Optional[str] = None) -> pd.DataFrame:
    """Every explained hypothesis with its clusters (``cause_cluster``, ``fix_cluster`` and their
    names), its verdict counts (``agree``, ``disagree``, ``skip``), the consensus (``status``:
    agreed / disagreed / tied / skipped / unreviewed) and, with ``reviewer``, that person's own
    latest verdict (``mine``). Oldest first."""
    frame = store.hypotheses(project)
    for dimension in ("cause", "fix"):
        clustering = store.latest_clustering(project, dimension)
        if clustering is None:
            frame[f"{dimension}_cluster"] = pd.array([None] * len(frame), dtype="Int64")
            frame[f"{dimension}_cluster_name"] = None
            continue
        names = {c["cluster"]: c["name"] for c in clustering["clusters"]}
        members = clustering["members"].set_index("hypothesis_id")["cluster"]
        frame[f"{dimension}_cluster"] = pd.array([members.get(h) for h in frame["hypothesis_id"]], dtype="Int64")
        frame[f"{dimension}_cluster_name"] = [names.get(c) if not pd.isna(c) else None
                                              for c in frame[f"{dimension}_cluster"]]
    votes = verdicts(project)
    counts = Counter(zip(votes["hypothesis_id"], votes["verdict"]))
    for verdict in VERDICTS:
        frame[verdict] = [counts.get((int(h), verdict), 0) for h in frame["hypothesis_id"]]
    frame["status"] = [_status(a, d, s) for a, d, s in zip(frame["agree"], frame["disagree"], frame["skip"])]
    if reviewer is not None:
        mine = votes[votes["reviewer"] == reviewer].set_index("hypothesis_id")["verdict"]
        frame["mine"] = [mine.get(h) for h in frame["hypothesis_id"]]
    return frame


def _status(agree: int, disagree: int, skip: int) -> str:
    if agree or disagree:
        return "agreed" if agree > disagree else "disagreed" if disagree > agree else "tied"
    return "skipped" if skip else "unreviewed"


def agreement(project: Any, by: str = "data_quality", frame: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Agreement per group: ``by`` is "data_quality" (per tag), "cause" or "fix" (per cluster).

    Columns: the group (``data_quality``, or ``cluster`` and ``name``), ``hypotheses``, ``agree``,
    ``disagree``, ``skip`` (reviewers' latest verdicts), ``reviewed`` (agree + disagree) and
    ``rate`` (agree / reviewed; empty until someone agreed or disagreed). Skips do not count
    against a hypothesis: the reviewer could not tell.
    """
    if by not in ("data_quality", "cause", "fix"):
        raise AmendError(f"agreement is per data_quality, cause or fix (got {by!r}).")
    frame = board(project) if frame is None else frame
    keys = ["data_quality"] if by == "data_quality" else [f"{by}_cluster", f"{by}_cluster_name"]
    if frame.empty:
        return pd.DataFrame(columns=[*(["data_quality"] if by == "data_quality" else ["cluster", "name"]),
                                     "hypotheses", "agree", "disagree", "skip", "reviewed", "rate"])
    grouped = frame.groupby(keys, dropna=False, sort=False).agg(
        hypotheses=("hypothesis_id", "count"), agree=("agree", "sum"), disagree=("disagree", "sum"),
        skip=("skip", "sum")).reset_index()
    if by != "data_quality":
        grouped = grouped.rename(columns={f"{by}_cluster": "cluster", f"{by}_cluster_name": "name"})
    grouped["reviewed"] = grouped["agree"] + grouped["disagree"]
    grouped["rate"] = [a / r if r else None for a, r in zip(grouped["agree"], grouped["reviewed"])]
    order = "cluster" if by != "data_quality" else "hypotheses"
    ascending = by != "data_quality"
    return grouped.sort_values(order, ascending=ascending, kind="stable").reset_index(drop=True)


def agreed_annotation_issues(project: Any, tag: str = "annotation_issue") -> list[str]:
    """Samples with a ``tag`` hypothesis that reviewers agreed with (more agree than disagree)."""
    frame = board(project)
    chosen = frame[(frame["data_quality"] == tag) & (frame["status"] == "agreed")]
    return list(dict.fromkeys(chosen["sample_id"].astype(str)))


def send_to_triage(project: Any, created_by: Optional[str] = None, tag: str = "annotation_issue"):
    """Store the agreed ``tag`` samples as a selection for the triage queue; returns it
    (core.store.selections.Selection). Refuses when there are none."""
    from core.store.selections import save_selection

    ids = agreed_annotation_issues(project, tag)
    if not ids:
        raise AmendError(f"no {tag} hypothesis has reviewers' agreement yet; review some first.")
    return save_selection(project, ids, name=SELECTION_NAME if tag == "annotation_issue" else f"agreed {tag}",
                          source=f"hypotheses: {tag} agreed by reviewers", created_by=created_by)


def action_kind(text: str) -> str:
    """What kind of action a fix is: labelling guideline / augmentation / data collection / other."""
    words = (text or "").lower()
    for kind, cues in ACTION_KINDS:
        if any(cue in words for cue in cues):
            return kind
    return "other"


def actions(project: Any, top: Optional[int] = None) -> list[dict]:
    """The fix clusters as targeted actions, most supported first.

    Each: ``rank``, ``cluster``, ``action`` (the cluster's name), ``example`` (its most typical
    fix), ``kind`` (of the example), ``hypotheses``, ``agree``, ``disagree``, ``agreement_rate``,
    ``class_pairs`` (the three commonest "given → predicted"), ``sample_ids``. Support is the
    hypotheses minus those reviewers disagreed with, so a fix people rejected sinks.
    """
    clustering = store.latest_clustering(project, "fix")
    if clustering is None:
        return []
    frame = board(project)
    out = []
    for cluster in clustering["clusters"]:
        members = frame[frame["fix_cluster"] == cluster["cluster"]]
        agree, disagree = int(members["agree"].sum()), int(members["disagree"].sum())
        rejected = int((members["status"] == "disagreed").sum())
        pairs = list(cluster.get("class_pairs", {}).items())[:3]
        out.append({
            "cluster": int(cluster["cluster"]), "action": cluster["name"], "example": cluster["typical"],
            "kind": action_kind(cluster["typical"]), "hypotheses": int(len(members)), "support": len(members) - rejected,
            "agree": agree, "disagree": disagree,
            "agreement_rate": round(agree / (agree + disagree), 4) if agree + disagree else None,
            "class_pairs": "; ".join(f"{p} ({n})" for p, n in pairs),
            "sample_ids": members["sample_id"].astype(str).tolist(),
        })
    out.sort(key=lambda a: (-a["support"], -(a["agreement_rate"] or 0), a["cluster"]))
    for rank, action in enumerate(out, 1):
        action["rank"] = rank
    out = [{"rank": a.pop("rank"), **a} for a in out]
    return out[:top] if top is not None else out


def actions_csv(rows: Sequence[dict]) -> str:
    """The actions as CSV (sample ids space-separated; formula-like cells made inert)."""
    from core.csvsafe import neutralise_frame

    columns = ["rank", "cluster", "action", "example", "kind", "hypotheses", "support", "agree", "disagree",
               "agreement_rate", "class_pairs", "sample_ids"]
    frame = pd.DataFrame([{**r, "sample_ids": " ".join(r["sample_ids"])} for r in rows], columns=columns)
    frame, _ = neutralise_frame(frame)
    return frame.to_csv(index=False)


def listing(project: Any) -> list[dict]:
    """The CLI's ``--list``: every explained hypothesis as {id, sample_id, given_label, predictions,
    data_quality, cause, fix, clusters: {cause, fix}, status, agree, disagree, model, prompt_version, run_id}."""
    frame = board(project)
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({
            "id": int(row["hypothesis_id"]), "sample_id": row["sample_id"], "given_label": row["given_label"],
            "predictions": row["predictions"], "data_quality": row["data_quality"], "cause": row["cause"],
            "fix": row["fix"],
            "clusters": {d: (None if pd.isna(row[f"{d}_cluster"]) else int(row[f"{d}_cluster"])) for d in ("cause", "fix")},
            "status": row["status"], "agree": int(row["agree"]), "disagree": int(row["disagree"]),
            "model": row["model"], "prompt_version": row["prompt_version"], "run_id": row["run_id"],
        })
    return out
