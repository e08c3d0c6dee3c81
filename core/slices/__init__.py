"""Slice discovery: where in the data the labels go wrong.

Aggregate accuracy hides structured failure: a 20 % flip inside one cluster barely moves overall
accuracy and can take one region from 99 % to 65 %. This package maps a representation in 2-D,
clusters it into slices, measures each slice against the whole, ranks error slices, names every
slice in words, measures domain gaps between sources, and compares representations.

Arrays in, arrays / DataFrames / dataclasses out: no store, no streamlit.

- :func:`project_2d` — UMAP map for drawing (cuML on a GPU when importable).
- :func:`find_slices` — slice id per sample (k-means with silhouette-chosen k, or HDBSCAN).
- :func:`split_error_slices` — second pass: cut a slice down to where its errors sit.
- :func:`carve_error_regions` — third pass: carve the worst error regions out whole, at the
  clustering scale where their errors stand out most.
- :func:`error_aware_slices` — the three passes in one call (the slices and the structured-error
  detector's regions).
- :func:`cut_to_where` — cut a structured finding's slice down to where its picks sit.
- :func:`slice_table` / :func:`error_slices` — per-slice metrics and the error ranking.
- :func:`name_slices` — names in words.
- :func:`domain_gap` — cross-validated two-sample AUROC per pair of sources.
- :func:`representation_disagreement` — inlier in one representation, outlier in another.
- :func:`discover_slices` — all of it, with timings.
"""

from core.slices.clustering import (carve_error_regions, cut_to_where, error_aware_slices, find_slices, select_k,
                                   split_error_slices)
from core.slices.compare import domain_gap, representation_disagreement, source_like_columns
from core.slices.discover import SliceResult, discover_slices
from core.slices.metrics import error_slices, metadata_overrepresentation, slice_table, structured_findings
from core.slices.naming import clip_terms, distinctive_terms, load_vocabulary, name_slices
from core.slices.projection import drawing_sample, project_2d, reduce

__all__ = [
    "SliceResult",
    "carve_error_regions",
    "cut_to_where",
    "error_aware_slices",
    "clip_terms",
    "discover_slices",
    "distinctive_terms",
    "domain_gap",
    "drawing_sample",
    "error_slices",
    "find_slices",
    "load_vocabulary",
    "metadata_overrepresentation",
    "name_slices",
    "project_2d",
    "reduce",
    "representation_disagreement",
    "select_k",
    "slice_table",
    "split_error_slices",
    "structured_findings",
    "source_like_columns",
]
