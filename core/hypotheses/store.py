"""Hypotheses in project.sqlite (schema 4, :data:`core.store.schema.HYPOTHESES_SQL`).

One row per answer in ``hypotheses``, explained (``status`` "ok") or not ("failed", with the
``reason``), written as each answer arrives, so an interrupted run keeps what it got and the next
one resumes: a sample counts as done for a (model, prompt hash) once it has an "ok" row. Runs
record what produced them (server, API, model, prompt version and hash, temperature). Each
clustering of a free-text dimension is a new row; the newest per dimension is the one shown.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import pandas as pd

from core.util import utc_now

STATUSES = ("ok", "failed")
COLUMNS = ["hypothesis_id", "run_id", "sample_id", "model", "prompt_sha256", "status", "data_quality", "cause",
           "fix", "reason", "raw", "given_label", "predictions", "slice_id", "seconds", "created_at"]


def new_run_id() -> str:
    return f"hyp-{utc_now()[:19].replace('-', '').replace(':', '')}-{uuid.uuid4().hex[:6]}"


def start_run(project: Any, run_id: str, server: str, api: str, model: str, prompt_version: str,
              prompt_sha256: str, temperature: float, failures: str, analysis_run: Optional[str],
              settings: dict) -> None:
    with project.transaction() as con:
        con.execute(
            "INSERT INTO hypothesis_runs (run_id, created_at, server, api, model, prompt_version, prompt_sha256, "
            "temperature, failures, analysis_run, settings) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, utc_now(), server, api, model, prompt_version, prompt_sha256, float(temperature), failures,
             analysis_run, json.dumps(settings, sort_keys=True)),
        )


def finish_run(project: Any, run_id: str, counts: dict) -> None:
    with project.transaction() as con:
        con.execute("UPDATE hypothesis_runs SET finished_at = ?, counts = ? WHERE run_id = ?",
                    (utc_now(), json.dumps(counts, sort_keys=True), run_id))


def runs(project: Any) -> pd.DataFrame:
    """Every hypothesis run, newest first."""
    with project.sql() as con:
        frame = pd.read_sql_query("SELECT * FROM hypothesis_runs ORDER BY created_at DESC, rowid DESC", con)
    return frame


def explained_ids(project: Any, model: str, prompt_sha256: str) -> set[str]:
    """Samples that already have an explanation from this model with this prompt (what a run skips)."""
    with project.sql() as con:
        rows = con.execute("SELECT DISTINCT sample_id FROM hypotheses WHERE model = ? AND prompt_sha256 = ? "
                           "AND status = 'ok'", (model, prompt_sha256)).fetchall()
    return {r[0] for r in rows}


@dataclass(frozen=True)
class Row:
    """One answer to store."""

    sample_id: str
    status: str
    given_label: str
    predictions: list
    slice_id: Optional[int] = None
    data_quality: Optional[str] = None
    cause: Optional[str] = None
    fix: Optional[str] = None
    reason: Optional[str] = None
    raw: Optional[str] = None
    seconds: Optional[float] = None


def add(project: Any, run_id: str, model: str, prompt_sha256: str, row: Row) -> int:
    """Store one answer; returns its hypothesis id."""
    with project.transaction() as con:
        cursor = con.execute(
            "INSERT INTO hypotheses (run_id, sample_id, model, prompt_sha256, status, data_quality, cause, fix, "
            "reason, raw, given_label, predictions, slice_id, seconds, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, row.sample_id, model, prompt_sha256, row.status, row.data_quality, row.cause, row.fix,
             row.reason, row.raw, row.given_label, json.dumps(row.predictions), row.slice_id, row.seconds, utc_now()),
        )
        return int(cursor.lastrowid)


def hypotheses(project: Any, status: Optional[str] = "ok", run_id: Optional[str] = None) -> pd.DataFrame:
    """Stored answers (default: the explained ones), oldest first; ``predictions`` parsed to
    [[label, probability], ...]. When a sample was explained more than once (another model or
    prompt), every explanation is a row of its own."""
    clauses, params = [], []
    if status is not None:
        clauses.append("h.status = ?")
        params.append(status)
    if run_id is not None:
        clauses.append("h.run_id = ?")
        params.append(run_id)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    with project.sql() as con:
        frame = pd.read_sql_query(
            f"SELECT h.*, r.prompt_version, r.server, r.api FROM hypotheses h "
            f"JOIN hypothesis_runs r ON r.run_id = h.run_id{where} ORDER BY h.hypothesis_id", con, params=params)
    frame["predictions"] = [json.loads(p) for p in frame["predictions"]]
    frame["slice_id"] = pd.array([None if pd.isna(v) else int(v) for v in frame["slice_id"]], dtype="Int64")
    return frame


def save_clustering(project: Any, dimension: str, k: int, silhouette: Optional[float], settings: dict,
                    clusters: list[dict], members: Iterable[tuple[int, int, str]]) -> int:
    """Store one clustering of a dimension: its clusters (name, size, terms, ...) and its members
    (hypothesis id, cluster, compressed text). Returns the clustering id."""
    with project.transaction() as con:
        cursor = con.execute(
            "INSERT INTO hypothesis_clusterings (dimension, created_at, k, silhouette, settings, clusters) "
            "VALUES (?,?,?,?,?,?)",
            (dimension, utc_now(), int(k), None if silhouette is None else float(silhouette),
             json.dumps(settings, sort_keys=True), json.dumps(clusters)),
        )
        clustering_id = int(cursor.lastrowid)
        con.executemany("INSERT INTO hypothesis_cluster_members (clustering_id, hypothesis_id, cluster, compressed) "
                        "VALUES (?,?,?,?)", [(clustering_id, int(h), int(c), t) for h, c, t in members])
    return clustering_id


def latest_clustering(project: Any, dimension: str) -> Optional[dict]:
    """The newest clustering of ``dimension``: {clustering_id, dimension, created_at, k, silhouette,
    settings, clusters, members (DataFrame hypothesis_id, cluster, compressed)}; None before the first."""
    with project.sql() as con:
        row = con.execute("SELECT clustering_id, dimension, created_at, k, silhouette, settings, clusters FROM "
                          "hypothesis_clusterings WHERE dimension = ? ORDER BY clustering_id DESC LIMIT 1",
                          (dimension,)).fetchone()
        if row is None:
            return None
        members = pd.read_sql_query("SELECT hypothesis_id, cluster, compressed FROM hypothesis_cluster_members "
                                    "WHERE clustering_id = ? ORDER BY hypothesis_id", con, params=(row[0],))
    return {"clustering_id": row[0], "dimension": row[1], "created_at": row[2], "k": row[3], "silhouette": row[4],
            "settings": json.loads(row[5]), "clusters": json.loads(row[6]), "members": members}
