"""All of slice discovery in one call, with timings."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from core.slices.clustering import REDUCED_DIM, error_aware_slices
from core.slices.compare import domain_gap, source_like_columns
from core.slices.metrics import slice_table
from core.slices.naming import name_slices
from core.slices.projection import drawing_sample, project_2d, reduce

logger = logging.getLogger(__name__)

__all__ = ["SliceResult", "discover_slices"]


@dataclass(frozen=True)
class SliceResult:
    """What slice discovery found for one representation.

    Attributes
    ----------
    coords_2d : np.ndarray
        float32, (N, 2), the map (every sample; draw ``coords_2d[draw_index]``).
    draw_index : np.ndarray
        int64, rows to draw when N is large (every slice kept visible).
    slice_ids : np.ndarray
        int64, (N,), 0..S-1 by decreasing size.
    table : pandas.DataFrame
        :func:`core.slices.metrics.slice_table` plus a ``name`` column.
    domain_gaps : dict[str, pandas.DataFrame]
        source column -> :func:`core.slices.compare.domain_gap` table.
    params : dict
        Settings and choices (method, k, silhouette per candidate k, seed) for the run record.
    timings : dict[str, float]
        Seconds per step: ``map``, ``reduce``, ``slices``, ``table``, ``names``, ``domain_gap``.
    """

    coords_2d: np.ndarray
    draw_index: np.ndarray
    slice_ids: np.ndarray
    table: pd.DataFrame
    domain_gaps: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def names(self) -> dict[int, str]:
        """slice id -> name."""
        return dict(zip(self.table["slice_id"].astype(int), self.table["name"]))


def discover_slices(
    vectors: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    flagged: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    metadata: pd.DataFrame | None = None,
    texts: Sequence[str] | None = None,
    text_tower: Callable[[list[str]], np.ndarray] | None = None,
    extra_terms: Sequence[str] = (),
    source_columns: Sequence[str] | None = None,
    seed: int = 0,
    method: str = "auto",
    n_slices: int | None = None,
    with_map: bool = True,
    device: str = "auto",
    progress: Callable[[str, int, int | None], None] | None = None,
    cut: tuple[np.ndarray, dict] | None = None,
    coords: np.ndarray | None = None,
    domain_gaps: Mapping[str, pd.DataFrame] | None = None,
    structured: Collection[int] = (),
) -> SliceResult:
    """Map, slice, measure, rank and name one representation.

    Parameters
    ----------
    vectors, labels, probabilities, flagged, class_names, metadata :
        As in :func:`core.slices.metrics.slice_table` (probabilities out-of-sample).
    texts, text_tower, extra_terms :
        As in :func:`core.slices.naming.name_slices`.
    source_columns : sequence of str, optional
        Metadata columns for the domain gap; None = :func:`source_like_columns` (names such as
        hospital, scanner, split with 2-20 values).
    seed : int, default 0
    method, n_slices :
        As in :func:`core.slices.clustering.find_slices`; the slices then get the error-aware
        second pass :func:`core.slices.clustering.split_error_slices` (probe errors) and the
        multi-resolution third, :func:`core.slices.clustering.carve_error_regions`.
    with_map : bool, default True
        Compute the 2-D map (the slowest step); False leaves ``coords_2d`` as zeros.
    device : str, default "auto"
        For the map (:func:`project_2d`).
    progress : callable, optional
        ``progress(step, done, total)`` after each step.
    cut : (np.ndarray, dict), optional
        Slice ids and choices that :func:`core.slices.clustering.error_aware_slices` made already
        with the same vectors, labels, probabilities, seed and method (the structured-error
        detector's regions, :mod:`core.detect.regions`): used as they are instead of cutting again.
    coords : np.ndarray, optional
        (N, 2) map made already for these same vectors and seed (an earlier analysis of an
        unchanged representation): drawn as it is instead of projecting again.
    structured : collection of int, optional
        Slice ids of ``cut`` where the structured-error detector found a shared labelling error:
        they lead the error-slice ranking (:func:`core.slices.metrics.slice_table`). Ignored
        without ``cut`` (other slices, other ids).
    domain_gaps : mapping, optional
        source column -> the :func:`core.slices.compare.domain_gap` table made already for these
        same vectors, that column's values and seed: used as it is (it never depends on labels).
    """
    steps = ["map", "slices", "table", "names", "domain_gap"]
    timings: dict[str, float] = {}

    def tick(step: str, t0: float) -> None:
        timings[step] = round(time.perf_counter() - t0, 3)
        if progress is not None:
            progress("slices", steps.index(step) + 1, len(steps))

    n = np.asarray(vectors).shape[0]
    t = time.perf_counter()
    coords_given = coords is not None
    if coords_given:
        coords = np.asarray(coords, dtype=np.float32)
        if coords.shape != (n, 2):
            raise ValueError(f"the given map has shape {coords.shape}, expected ({n}, 2)")
    elif with_map:
        coords = project_2d(vectors, seed=seed, device=device)
    else:
        coords = np.zeros((n, 2), dtype=np.float32)
    tick("map", t)
    t = time.perf_counter()
    if cut is not None:
        ids, info = np.asarray(cut[0], dtype=np.int64), dict(cut[1])
        if ids.shape != (n,):
            raise ValueError(f"the given cut has {ids.shape} slice ids for {n} vectors")
    else:
        info = {}
        ids = error_aware_slices(vectors, labels, probabilities, seed=seed, method=method, n_slices=n_slices,
                                 reduced=reduce(vectors, REDUCED_DIM, seed), info=info)
    tick("slices", t)
    t = time.perf_counter()
    table = slice_table(ids, labels, probabilities, flagged, np.asarray(probabilities).shape[1], class_names, metadata,
                        structured=structured if cut is not None else ())
    tick("table", t)
    t = time.perf_counter()
    names = name_slices(table, ids, vectors, class_names, texts=texts, metadata=metadata, text_tower=text_tower, extra_terms=extra_terms)
    table.insert(1, "name", table["slice_id"].map(names))
    tick("names", t)
    t = time.perf_counter()
    cols = source_like_columns(metadata) if source_columns is None else list(source_columns)
    known = domain_gaps or {}
    gaps = {c: known[c] if c in known else domain_gap(vectors, metadata[c].to_numpy(), seed=seed)
            for c in cols} if metadata is not None else {}
    tick("domain_gap", t)
    params = {"seed": seed, "method": info.get("method"), "n_slices": info.get("n_slices"), "silhouette": info.get("silhouette"),
              "splits": info.get("splits", 0), "carved": info.get("carved", 0), "slices_after_split": int(ids.max()) + 1 if ids.size else 0,
              "map": "given" if coords_given else with_map}
    return SliceResult(coords, drawing_sample(ids, seed=seed), ids, table, gaps, params, timings)
