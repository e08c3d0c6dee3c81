"""What the overview page shows, as plain data: the map of a run (colouring, the drawn subset,
hover text), the slices ranked by error, the class imbalance figures, the domain gaps between
sources, and the comparison of representations.

Pure functions over core's stored runs; no streamlit. The analysis is never sampled: only the
drawing is (a run marks the rows to draw in its ``drawn`` column), and a lasso or box on the
drawing selects every sample inside it, drawn or not.
"""

from __future__ import annotations

import html
import json
import logging
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from core.analysis import runs
from core.analysis.runs import RunInfo
from core.errors import AmendError
from core.review import audit
from core.store.project import Project

logger = logging.getLogger(__name__)

#: The most points the map draws (the run's own drawing sample is capped at 20 000 too).
MAX_DRAWN = 20_000
#: Characters of a text sample shown in the hover box and the gallery.
HOVER_SNIPPET = 90
GALLERY_SNIPPET = 400
#: A categorical colouring with more values than this lumps the rarest into "other".
MAX_CATEGORIES = 20
#: A numeric column with at most this many distinct values is coloured as categories.
CATEGORICAL_NUMBERS = 12
#: Above this many drawn points the hover box leaves out the snippet and detector scores (the
#: selection gallery still shows them): it keeps the page light enough to draw in about a second.
COMPACT_HOVER_ABOVE = 5_000
#: Cells per side of the density grid drawn under a sampled map (every sample counted).
DENSITY_BINS = 150
#: Slice names are cut to this many characters in legends and tables.
SHORT_NAME = 60

#: Colouring choices always offered (label -> column), when the column exists.
BASE_COLOURS = {
    "Slice": "slice",
    "Given label": "given_label",
    "Current label": "current_label",
    "Flag score": "score",
    "Flagged": "flagged",
    "Review status": "status",
    "Split": "split",
}


@dataclass(frozen=True)
class Overview:
    """One run of a project, ready for the overview page.

    Attributes
    ----------
    run : RunInfo
    modality : str or None
        ``"image"``, ``"text"`` or None.
    points : pandas.DataFrame
        One row per sample of the run (every sample, never sampled): ``id, rank, score, flagged,
        given_label, current_label, status, suggested_label, det_*, slice_id, slice, x, y,
        drawn`` plus ``split`` and ``meta.<key>`` columns, and ``root, path, content_hash`` or
        ``text`` for showing the sample. ``drawn`` marks at most :data:`MAX_DRAWN` rows.
    slices : pandas.DataFrame or None
        The run's slices ranked by error (None for a run without vectors).
    class_table : pandas.DataFrame
        Per class: ``class, count, frequency, flagged, flag_rate, flag_rate_ratio``.
    domain_gaps : dict[str, pandas.DataFrame]
        Source-like column -> one row per pair of its values (``source_a, source_b, n_a, n_b,
        auroc``), largest gap first.
    detectors : list[str]
        The run's detectors (``det_<name>`` columns of ``points``).
    """

    run: RunInfo
    modality: Optional[str]
    points: pd.DataFrame
    slices: Optional[pd.DataFrame]
    class_table: pd.DataFrame
    domain_gaps: dict = field(default_factory=dict)
    detectors: list = field(default_factory=list)

    @property
    def has_map(self) -> bool:
        return "x" in self.points.columns and self.slices is not None

    @cached_property
    def density(self) -> Optional["Density"]:
        """Every sample counted on the map's grid (:func:`map_density`) when not all are drawn,
        else None: once per run, whichever colouring is asked for."""
        if not self.has_map or self.points["drawn"].all():
            return None
        return map_density(self.points["x"].to_numpy(), self.points["y"].to_numpy())


def state_token(project: Project) -> str:
    """What the overview depends on besides the run: the audit chain head (current labels)."""
    return audit.chain_head(project)


def short_slice_name(name: Any, limit: int = SHORT_NAME) -> str:
    """The head of a slice name (the class mix, before the ';'), cut to ``limit`` characters."""
    text = str(name or "").split(";", 1)[0].strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def slice_title(error_rank: Any, name: Any) -> str:
    """A slice's one name on every page: ``#<error rank> <short name>`` (rank 1 = most errors)."""
    return f"#{int(error_rank)} {short_slice_name(name)}"


def slice_labels(slices: pd.DataFrame) -> dict[int, str]:
    """slice id -> its title (:func:`slice_title`), as the overview, triage and compare show it."""
    return {
        int(row.slice_id): slice_title(row.error_rank, row.name)
        for row in slices[["slice_id", "error_rank", "name"]].itertuples(index=False)
    }


def load_overview(project: Project, run_id: Optional[str] = None) -> Overview:
    """The overview of a run (default the latest): every sample with its evidence, labels in
    force now and metadata; the slices, class table and domain gaps from the run."""
    from core.review.labels import current_labels

    run = runs.get_run(project, run_id)
    frame = _evidence(project, run)
    labels = current_labels(project)[["id", "given_label", "current_label", "status"]]
    frame = runs.join_on_id(frame, labels)
    meta = _sample_columns(project)
    modality = None if meta.empty else str(meta["modality"].iloc[0])
    meta = meta.drop(columns=["modality"])
    points = runs.join_on_id(frame, meta)

    slices_frame: Optional[pd.DataFrame] = None
    if run.slices_table is not None and "x" in points.columns:
        _, slices_frame = runs.slices(project, run.run_id)
        labels = slice_labels(slices_frame)
        points["slice"] = points["slice_id"].map(labels).fillna("no slice")
        points["drawn"] = drawn_rows(points)
        drawn = points["drawn"].to_numpy()
        points["hover"] = None
        compact = int(drawn.sum()) > COMPACT_HOVER_ABOVE  # lighter page at large N: no snippet or detector line
        points.loc[drawn, "hover"] = hover_text(points[drawn], [] if compact else runs.detector_columns(points),
                                                snippets=not compact)

    record = run.record
    class_table = pd.DataFrame(record.get("class_table") or [])
    if "class_name" in class_table.columns:
        class_table = class_table.drop(columns=["class"]).rename(columns={"class_name": "class"})
    gaps = ((record.get("slices") or {}).get("domain_gaps") or {})
    domain_gaps = {column: pd.DataFrame(rows, columns=["source_a", "source_b", "n_a", "n_b", "auroc"])
                   for column, rows in gaps.items() if rows}
    return Overview(run=run, modality=modality, points=points, slices=slices_frame, class_table=class_table,
                    domain_gaps=domain_gaps, detectors=runs.detector_columns(points))


def _evidence(project: Project, run: RunInfo) -> pd.DataFrame:
    """A run's evidence without the per-sample lists (neighbours, support): the map needs none of
    them, and at 100k samples they are most of the reading time. Best first."""
    import pyarrow as pa

    table = project.db.open_table(run.evidence_table)
    wanted = [f.name for f in table.schema if not (pa.types.is_list(f.type) or pa.types.is_large_list(f.type))]
    frame = table.search().select(wanted).limit(None).to_arrow().to_pandas()
    return frame.sort_values("rank", kind="stable").reset_index(drop=True)


def _sample_columns(project: Project) -> pd.DataFrame:
    """Per sample: ``id, modality``, what shows it (``root, path, content_hash`` or ``text``), the
    split when any sample has one, and the metadata as ``meta.<key>`` columns (as
    :meth:`Project.metadata_frame`, with a fast path for flat metadata)."""
    frame = project.samples(columns=["id", "modality", "root", "path", "content_hash", "text", "split", "metadata"])
    # Each distinct metadata text parsed once: samples often share theirs (a site, a scanner), and
    # parsing 1M JSON texts was 6 s of opening the overview at 1M samples.
    codes, distinct = pd.factorize(frame["metadata"].fillna("{}"))
    parsed = [json.loads(m) for m in distinct]
    if any(isinstance(v, dict) for r in parsed for v in r.values()):
        meta = pd.json_normalize(parsed)
    else:
        meta = pd.DataFrame.from_records(parsed, index=range(len(parsed))) if parsed else pd.DataFrame()
    meta = meta.iloc[codes].reset_index(drop=True) if len(meta.columns) else pd.DataFrame(index=range(len(codes)))
    meta.columns = [f"meta.{c}" for c in meta.columns]
    frame = frame.drop(columns=["metadata"])
    if frame["split"].isna().all():
        frame = frame.drop(columns=["split"])
    if frame["modality"].eq("text").all():
        frame = frame.drop(columns=["root", "path", "content_hash"])
    else:
        frame = frame.drop(columns=["text"])
    return pd.concat([frame.reset_index(drop=True), meta.reset_index(drop=True)], axis=1)


def drawn_rows(points: pd.DataFrame, max_points: int = MAX_DRAWN, seed: int = 0) -> np.ndarray:
    """Which rows the map draws: the run's ``drawn`` rows, thinned to ``max_points`` per slice
    in proportion (every slice keeps at least ``min(size, 50)`` points) when there are more."""
    from core.slices import drawing_sample

    drawn = points["drawn"].to_numpy(dtype=bool) if "drawn" in points.columns else np.ones(len(points), bool)
    rows = np.flatnonzero(drawn)
    if rows.size > max_points:
        keep = drawing_sample(points["slice_id"].to_numpy()[rows], max_points=max_points, seed=seed)
        rows = rows[keep]
    out = np.zeros(len(points), dtype=bool)
    out[rows] = True
    return out


def colour_options(points: pd.DataFrame) -> dict[str, str]:
    """Colouring choices (label -> column): slice, labels, flag score, review status, split,
    every detector's score and every metadata column."""
    options = {label: column for label, column in BASE_COLOURS.items()
               if column in points.columns and points[column].notna().any()}
    for column in points.columns:
        if column.startswith("det_"):
            options[f"Detector: {column[4:].replace('_', ' ')}"] = column
    for column in points.columns:
        if column.startswith("meta.") and points[column].notna().any():
            options[f"Metadata: {column[5:]}"] = column
    return options


def is_continuous(values: pd.Series) -> bool:
    """Numbers with more than :data:`CATEGORICAL_NUMBERS` distinct values get a colour scale."""
    if values.dtype == bool or not pd.api.types.is_numeric_dtype(values):
        return False
    return values.nunique(dropna=True) > CATEGORICAL_NUMBERS


def categories(values: pd.Series, max_categories: int = MAX_CATEGORIES) -> pd.Series:
    """Values as strings for a categorical colouring: missing -> "(none)", and beyond
    ``max_categories`` the rarest lumped into "other"."""
    text = values.map(lambda v: "(none)" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    counts = text.value_counts()
    if len(counts) > max_categories:
        kept = set(counts.index[: max_categories - 1])
        text = text.where(text.isin(kept), "other")
    return text


def category_order(values: pd.Series, column: str) -> list[str]:
    """Legend order: slices by error rank, other values by frequency ("other"/"(none)" last)."""
    present = values.value_counts()
    if column == "slice":
        def rank(label: str) -> int:
            match = re.match(r"#(\d+) ", label)
            return int(match.group(1)) if match else 10**9
        return sorted(present.index, key=rank)
    order = [v for v in present.index if v not in ("other", "(none)")]
    return order + [v for v in ("other", "(none)") if v in present.index]


def snippet(text: Any, limit: int) -> str:
    """A text sample's start, whitespace collapsed, cut to ``limit`` characters (not escaped)."""
    if not isinstance(text, str):
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _wrap(text: str, width: int = 60) -> str:
    words, lines, line = text.split(" "), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return "<br>".join(html.escape(part) for part in lines)


def hover_text(points: pd.DataFrame, detectors: Sequence[str] = (), snippets: bool = True) -> list[str]:
    """One hover box per row (plotly's small HTML subset; every value from the data escaped):
    the id, labels, the suggestion, the flag score and rank, detector scores, the slice, and a
    text snippet or the image's file name."""
    esc = html.escape
    out = []
    cols = set(points.columns)
    for row in points.itertuples(index=False):
        data = row._asdict()
        given, current = data.get("given_label"), data.get("current_label")
        label = esc(str(given)) if given == current else f"{esc(str(given))} → {esc(str(current))}"
        lines = [f"<b>{esc(str(data['id']))}</b> · {label}"]
        flag = "flagged" if data.get("flagged") else "not flagged"
        evidence = f"score {data['score']:.2f} · rank {int(data['rank'])} · {flag}"
        suggested = data.get("suggested_label")
        if data.get("flagged") and isinstance(suggested, str) and suggested != current:
            evidence += f" · suggests {esc(suggested)}"
        lines.append(evidence)
        scores = [f"{esc(c[4:])} {data[c]:.2f}" for c in detectors if c in cols and pd.notna(data[c]) and data[c] > 0]
        if scores:
            lines.append(" · ".join(scores))
        if "slice" in cols:
            lines.append(f"slice {esc(str(data['slice']))}")
        if not snippets:
            pass
        elif isinstance(data.get("text"), str):
            lines.append(f"<i>{_wrap(snippet(data['text'], HOVER_SNIPPET))}</i>")
        elif isinstance(data.get("path"), str):
            lines.append(esc(data["path"]))
        out.append("<br>".join(lines))
    return out


@dataclass(frozen=True)
class Density:
    """How many samples lie in each cell of a grid over the map: ``counts[i, j]`` is the number
    in the cell centred on (``x[j]``, ``y[i]``), NaN where there are none (drawn clear)."""

    x: np.ndarray
    y: np.ndarray
    counts: np.ndarray
    total: int

    @property
    def shade(self) -> np.ndarray:
        """log10 of the counts, what the map shades by: a dense core would otherwise leave every
        other cell the lightest shade."""
        return np.log10(self.counts)


def map_density(x: np.ndarray, y: np.ndarray, bins: int = DENSITY_BINS) -> Density:
    """Every sample's place on the map as counts on a ``bins`` x ``bins`` grid (square cells
    would distort nothing either; the map's axes carry no units). Drawn under a sampled map, it
    shows where the samples that are not drawn lie: a per-slice sample keeps small slices
    visible, so on its own it over-weights them."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size == 0:
        return Density(np.zeros(0), np.zeros(0), np.zeros((0, 0)), 0)
    counts, x_edges, y_edges = np.histogram2d(x, y, bins=bins)
    counts = counts.T  # rows follow y, as a heatmap draws them
    return Density(x=(x_edges[:-1] + x_edges[1:]) / 2, y=(y_edges[:-1] + y_edges[1:]) / 2,
                   counts=np.where(counts > 0, counts, np.nan), total=int(x.size))


@dataclass(frozen=True)
class MapData:
    """The drawn points with their colouring: ``frame`` has ``id, x, y, colour, hover``;
    ``continuous`` says whether ``colour`` is a number (colour scale) or a category (one trace
    each, in ``order``). ``density`` counts every sample on a grid (:func:`map_density`) when
    not every sample is drawn, else None."""

    frame: pd.DataFrame
    column: str
    continuous: bool
    order: list
    total: int
    density: Optional[Density] = None

    @property
    def drawn(self) -> int:
        return len(self.frame)


def map_data(overview: Overview, column: str) -> MapData:
    """The drawn subset of the map coloured by ``column`` (a key of :func:`colour_options`' values)."""
    points = overview.points
    if not overview.has_map:
        raise AmendError(f"run {overview.run.run_id} has no map (it ran without vectors).")
    if column not in points.columns:
        raise AmendError(f"no column {column!r} to colour the map by.")
    drawn = points[points["drawn"].to_numpy(dtype=bool)]
    values = drawn[column]
    continuous = is_continuous(values)
    colour = values.astype(float) if continuous else categories(values)
    frame = pd.DataFrame({"id": drawn["id"].to_numpy(), "x": drawn["x"].to_numpy(), "y": drawn["y"].to_numpy(),
                          "colour": colour.to_numpy(), "hover": drawn["hover"].to_numpy()})
    order = [] if continuous else category_order(frame["colour"], column)
    return MapData(frame=frame, column=column, continuous=continuous, order=order, total=len(points),
                   density=overview.density)


def _inside_polygon(x: np.ndarray, y: np.ndarray, px: Sequence[float], py: Sequence[float]) -> np.ndarray:
    """Even-odd rule, vectorised over points."""
    vx, vy = np.asarray(px, dtype=float), np.asarray(py, dtype=float)
    inside = np.zeros(x.shape[0], dtype=bool)
    j = len(vx) - 1
    for i in range(len(vx)):
        crosses = (vy[i] > y) != (vy[j] > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = (vx[j] - vx[i]) * (y - vy[i]) / (vy[j] - vy[i]) + vx[i]
        inside ^= crosses & (x < at)
        j = i
    return inside


def selected_ids(points: pd.DataFrame, selection: Optional[dict]) -> list[str]:
    """Sample ids chosen on the map, best first (by rank).

    A box or lasso takes every sample inside it, drawn or not (the drawing is sampled, the
    selection is not); clicked points add their own ids (``customdata[0]``).
    """
    if not selection:
        return []
    x = points["x"].to_numpy(dtype=float)
    y = points["y"].to_numpy(dtype=float)
    chosen = np.zeros(len(points), dtype=bool)
    for box in selection.get("box") or []:
        xs, ys = box.get("x") or [], box.get("y") or []
        if len(xs) == 2 and len(ys) == 2:
            chosen |= (x >= min(xs)) & (x <= max(xs)) & (y >= min(ys)) & (y <= max(ys))
    for lasso in selection.get("lasso") or []:
        xs, ys = lasso.get("x") or [], lasso.get("y") or []
        if len(xs) >= 3 and len(xs) == len(ys):
            chosen |= _inside_polygon(x, y, xs, ys)
    clicked = set()
    for point in selection.get("points") or []:
        data = point.get("customdata")
        if isinstance(data, (list, tuple)) and data:
            clicked.add(str(data[0]))
        elif isinstance(data, str):
            clicked.add(data)
    if clicked:
        chosen |= points["id"].isin(clicked).to_numpy()
    picked = points[chosen]
    if "rank" in picked.columns:
        picked = picked.sort_values("rank", kind="stable")
    return picked["id"].astype(str).tolist()


def slice_members(points: pd.DataFrame, slice_id: int) -> list[str]:
    """Every sample of a slice, best first (by rank)."""
    members = points[points["slice_id"] == slice_id]
    return members.sort_values("rank", kind="stable")["id"].astype(str).tolist()


def slices_table(slices: pd.DataFrame) -> pd.DataFrame:
    """The slices ranked by error, with readable columns: rank, name, the confusion most of its
    flags share (marked "structured error" where the structured-error detector found one there),
    size, share, top class, error rate (probe disagreement with the label), the rest's rate, flag
    rate, excess errors, adjusted p-value and what metadata is over-represented."""
    table = pd.DataFrame({
        "rank": slices["error_rank"].astype(int),
        "slice": slices["slice_id"].astype(int),
        "name": slices["name"].astype(str),
        "size": slices["size"].astype(int),
        "share": slices["share"].astype(float),
        "top class": slices["top_class"].astype(str),
        "error rate": slices["error_rate"].astype(float),
        "error rate elsewhere": slices["error_rate_rest"].astype(float),
        "flag rate": slices["flag_rate"].astype(float),
        "excess errors": slices["excess_errors"].astype(float).round(1),
        "p (adjusted)": slices["p_adjusted"].astype(float),
        "over-represented": slices["metadata_overrepresentation"].map(describe_overrepresentation),
        "finding": slices["finding"].map(describe_finding) if "finding" in slices else "",
    })
    if "structured_error" in slices:  # absent in runs of an earlier Amend
        # say why such a slice leads the ranking even where another scores higher
        marked = slices["structured_error"].fillna(False).astype(bool).to_numpy()
        table.loc[marked, "finding"] = ["structured error" + (f": {text}" if text else "")
                                        for text in table.loc[marked, "finding"]]
    # the finding is what a reviewer acts on: beside the name, not past the figures off screen
    table = table[["rank", "slice", "name", "finding"] + [c for c in table.columns
                                                          if c not in ("rank", "slice", "name", "finding")]]
    return table.sort_values("rank", kind="stable").reset_index(drop=True)


def metadata_groups_table(groups: Optional[Sequence[dict]]) -> pd.DataFrame:
    """The run's wrong labels by metadata value (``record["metadata_groups"]``), worst first, with
    readable columns: field, value, labels, about wrong (the expected number), wrong rate, the
    rest's rate, z, adjusted p, whether it passes, and the confusion its flags share."""
    columns = ["field", "value", "labels", "about wrong", "wrong rate", "wrong rate elsewhere", "z", "p (adjusted)",
               "more than chance", "finding", "finding samples"]
    rows = [{
        "field": str(g["column"]), "value": str(g["value"]), "labels": int(g["size"]),
        "about wrong": float(g["expected_wrong"]), "wrong rate": float(g["wrong_rate"]),
        "wrong rate elsewhere": float(g["wrong_rate_rest"]), "z": float(g["z"]), "p (adjusted)": float(g["p_adjusted"]),
        "more than chance": bool(g["significant"]),
        "finding": (g.get("finding") or {}).get("sentence", ""), "finding samples": len(g.get("finding_members") or []),
    } for g in groups or []]
    return pd.DataFrame(rows, columns=columns)


def annotator_habits_table(habits: Optional[Sequence[dict]]) -> pd.DataFrame:
    """The run's annotator habits (``record["annotator_habits"]``), most surprising first, with
    readable columns: annotator, true class, what they call it, their share, the others' share,
    about how many labels, the samples it holds, p (Fisher's exact test, unadjusted: a habit is
    kept when p is below 0.01 over the pairs compared) and the sentence."""
    columns = ["annotator", "class", "called", "share", "other annotators", "such labels", "samples", "p", "finding"]
    rows = [{
        "annotator": str(h["annotator"]), "class": str(h["true"]), "called": str(h["said"]),
        "share": float(h["share"]), "other annotators": float(h["others_share"]), "such labels": float(h["about"]),
        "samples": len(h.get("members") or []), "p": float(h["p_value"]), "finding": str(h["sentence"]),
    } for h in habits or []]
    return pd.DataFrame(rows, columns=columns)


def _decoded(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return []
    return value if value is not None else []


def describe_finding(value: Any) -> str:
    """A slice's structured finding (JSON) in words, or "" when its flags share no confusion."""
    finding = _decoded(value)
    return finding.get("sentence", "") if isinstance(finding, dict) else ""


def describe_overrepresentation(value: Any, top: int = 2) -> str:
    """``metadata_overrepresentation`` (JSON) in words: "annotator3=frog (35% vs 10%)"."""
    entries = _decoded(value) or []
    parts = []
    for entry in entries[:top]:
        parts.append(f"{entry['column']}={entry['value']} ({entry['share_in_slice']:.0%} vs {entry['share_overall']:.0%})")
    return ", ".join(parts)


def class_mix(value: Any) -> pd.DataFrame:
    """A slice's ``class_mix`` (JSON) as a frame: ``class, share``."""
    return pd.DataFrame(_decoded(value) or [], columns=["class", "share"])


def slice_bars(slices: pd.DataFrame) -> pd.DataFrame:
    """Long frame for a grouped bar chart per slice: ``slice, measure, rate`` with the error and
    flag rates, slices in error-rank order."""
    ordered = slices.sort_values("error_rank", kind="stable")
    labels = slice_labels(ordered)
    rows = []
    for row in ordered.itertuples(index=False):
        label = labels[int(row.slice_id)]
        rows.append({"slice": label, "measure": "error rate", "rate": float(row.error_rate)})
        rows.append({"slice": label, "measure": "flag rate", "rate": float(row.flag_rate)})
    return pd.DataFrame(rows, columns=["slice", "measure", "rate"])


def imbalance_summary(class_table: pd.DataFrame) -> dict[str, Any]:
    """The largest and smallest class and their ratio; the classes flagged far more than average."""
    if class_table.empty:
        return {}
    biggest = class_table.loc[class_table["count"].idxmax()]
    smallest = class_table.loc[class_table["count"].idxmin()]
    ratio = float(biggest["count"]) / max(float(smallest["count"]), 1.0)
    hot = class_table[class_table["flag_rate_ratio"] >= 1.5]["class"].astype(str).tolist() if "flag_rate_ratio" in class_table else []
    return {"largest": str(biggest["class"]), "largest_count": int(biggest["count"]),
            "smallest": str(smallest["class"]), "smallest_count": int(smallest["count"]),
            "ratio": ratio, "often_flagged": hot}


def gap_verdict(auroc: float) -> str:
    """A domain gap AUROC in words (0.5 = indistinguishable sources)."""
    if auroc < 0.6:
        return "indistinguishable"
    if auroc < 0.75:
        return "some shift"
    if auroc < 0.9:
        return "clear shift"
    return "separate domains"


def runs_by_representation(project: Project) -> dict[str, RunInfo]:
    """The latest run of each representation (runs without vectors left out)."""
    latest: dict[str, RunInfo] = {}
    for run in runs.list_runs(project):
        if run.representation:
            latest[run.representation] = run
    return latest


@dataclass(frozen=True)
class Comparison:
    """:func:`core.slices.representation_disagreement` over the latest run of each representation:
    ``per_sample`` (with ``id``, best-disagreeing first) and ``per_slice``."""

    representations: list
    per_sample: pd.DataFrame
    per_slice: pd.DataFrame


def compare_representations(project: Project, overview: Overview) -> Optional[Comparison]:
    """Inlier in one representation, outlier in another — when more than one representation has
    a run with outlier scores; None otherwise. Slices are those of the shown run."""
    from core.slices import representation_disagreement

    if not overview.has_map:
        return None
    latest = runs_by_representation(project)
    if len(latest) < 2:
        return None
    ids = overview.points["id"]
    scores: dict[str, np.ndarray] = {}
    for rep, run in latest.items():
        _, frame = runs.evidence(project, run.run_id)
        if "det_outliers" not in frame.columns:
            continue
        aligned = frame.set_index("id")["det_outliers"].reindex(ids)
        if aligned.isna().any():
            logger.info("run %s does not cover every sample of %s; left out of the comparison", run.run_id,
                        overview.run.run_id)
            continue
        scores[rep] = aligned.to_numpy(dtype=float)
    if len(scores) < 2:
        return None
    per_sample, per_slice = representation_disagreement(scores, overview.points["slice_id"].to_numpy())
    per_sample.insert(0, "id", ids.to_numpy())
    per_sample = per_sample.sort_values(["disagrees", "rank_spread"], ascending=[False, False], kind="stable")
    labels = slice_labels(overview.slices) if overview.slices is not None else {}
    per_slice.insert(1, "name", per_slice["slice_id"].map(labels))
    return Comparison(representations=list(scores), per_sample=per_sample.reset_index(drop=True),
                      per_slice=per_slice.sort_values("disagree_rate", ascending=False).reset_index(drop=True))


def gallery(overview: Overview, ids: Sequence[str], limit: int = 12) -> pd.DataFrame:
    """The first ``limit`` of ``ids`` with what the gallery needs: labels, score, and the
    image's ``root, path, content_hash`` or a text snippet."""
    wanted = list(ids)[:limit]
    points = overview.points.set_index("id")
    rows = points.loc[[i for i in wanted if i in points.index]].reset_index()
    if "text" in rows.columns:
        rows["snippet"] = rows["text"].map(lambda t: snippet(t, GALLERY_SNIPPET))
    return rows
