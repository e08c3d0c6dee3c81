"""Named selections of samples sent from one view to another (a lasso on the overview map, a
slice, a filter) so the triage queue can be narrowed to them. Kept in project.sqlite, not in a
page's session, so a selection survives a reload and can be seen from the CLI or a notebook.
The table is made with the project (:mod:`core.store.schema`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional, Sequence

from core.errors import AmendError
from core.store.project import Project
from core.util import utc_now


@dataclass(frozen=True)
class Selection:
    selection_id: int
    name: str
    source: str  # e.g. "overview lasso", "slice 3", "run run-... top 50"
    created_by: Optional[str]
    created_at: str
    ids: list[str]


def save_selection(project: Project, ids: Sequence[str], name: str, source: str,
                   created_by: Optional[str] = None) -> Selection:
    """Store a selection of sample ids (unknown ids are refused); returns it with its id."""
    wanted = list(dict.fromkeys(str(i) for i in ids))
    if not wanted:
        raise AmendError("the selection is empty; select some samples first.")
    unknown = set(wanted) - set(project.sample_ids())
    if unknown:
        raise AmendError(f"{len(unknown)} selected ids are not in the project, e.g. {sorted(unknown)[:3]}")
    created = utc_now()
    with project.transaction() as con:
        cursor = con.execute(
            "INSERT INTO selections (name, source, created_by, created_at, ids) VALUES (?,?,?,?,?)",
            (name, source, created_by, created, json.dumps(wanted)),
        )
        selection_id = int(cursor.lastrowid)
    return Selection(selection_id, name, source, created_by, created, wanted)


def list_selections(project: Project) -> list[Selection]:
    """Every stored selection, newest first."""
    with project.sql() as con:
        rows = con.execute(
            "SELECT selection_id, name, source, created_by, created_at, ids FROM selections ORDER BY selection_id DESC"
        ).fetchall()
    return [Selection(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]


def get_selection(project: Project, selection_id: int) -> Selection:
    for selection in list_selections(project):
        if selection.selection_id == selection_id:
            return selection
    raise AmendError(f"no selection {selection_id} in {project.path}")
