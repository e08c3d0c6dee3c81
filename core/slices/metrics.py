"""Per-slice metrics, the error-slice ranking, and metadata over-representation.

Reported against the whole (kept for reading, not for ranking), per slice s with n_s labelled
rows and e_s errors (probe argmax != current label), rest rate r = errors / rows outside s:

    excess_errors_s = e_s - n_s * r                  (errors beyond what the rest's rate predicts)
    p_value_s       = P[Binomial(n_s, r) >= e_s]     (one-sided: is the slice worse than the rest?)
    p_adjusted_s    = min(1, p_s * S)                (Bonferroni over the S slices)

Error score (the RANKING of error slices): unexpected errors, weighted by their significance.
With m_i = 1 - max_c p_ic (the probe's own probability of being wrong on row i):

    expected_errors_s   = sum_i m_i                  (errors a confusable region explains)
    unexpected_errors_s = e_s - expected_errors_s
    unexpected_z_s      = unexpected_errors_s / sqrt(sum_i m_i (1 - m_i))   (Poisson-binomial z)
    confusion_share_s   = the share of the slice's errors in its most common (label -> predicted) pair
    error_score_s       = max(unexpected_errors_s, 0) * min(1, max(unexpected_z_s, 0) / 4) * confusion_share_s

A slice in which the structured-error detector found a shared labelling error
(:mod:`core.detect.regions`: one confusion far more common there than elsewhere, with suspects
that sit as surely on the other side of the boundary as the region's own samples of that class,
unlike those of a region that is only hard) leads the ranking, ahead of slices with a higher
score. The score counts unexpected errors of every kind; the finding is the stronger evidence that
the labels, not the region, are at fault. On the planted-region protocol (bench/README.md), a
region the vectors find hard (cats and dogs, CIFAR-10 images 12,000..17,999) outscored a planted
region (deer labelled bird) that the detector had found.

When no slice scores above 0 (the probe explains every slice's errors, e.g. it has learned the
noise of an isolated mode), the ranking falls back to the excess vs the rest:
``max(excess_errors, 0) * min(1, -log10(p_adjusted) / 2) * confusion_share``; column ``error_basis``
says which.

Why the confusion share: a shared labelling error (one region, one annotator, one guideline) puts
its wrong labels in one direction, "labelled B, looks like A"; a region that is merely hard for
the model spreads its errors over many pairs. Of two slices with as many unexpected errors, the
one whose errors share one confusion is the one a reviewer can fix as a group, so it ranks first.

Why: regions differ in natural difficulty far more than a planted 20 % flip of one class moves
them (20 Newsgroups: 4 % to 31 % probe error per region). In a naturally hard region the errors
are low-confidence ones the probe itself predicts (sum of 1 - max p tracks the error count);
mislabelled samples are errors the probe did not expect. On the planted-slice protocol
(bench/README.md, "Slices", 12 runs, core probe) this ranking put the planted region on top in
9/12 runs on 20 Newsgroups against 2/12 for the excess-vs-rest score; excess of the detectors'
flags, of cleanlab's issues, of confident errors, label surprise, per-class marginals and
directional confusion were measured too and did no better.
"""

from __future__ import annotations

import logging
import math
from typing import Collection, Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["slice_table", "error_slices", "metadata_overrepresentation", "error_score", "structured_findings"]

#: A metadata value is reported when its share in the slice is at least this ...
MIN_SHARE = 0.2
#: ... and at least this many times its share overall.
MIN_LIFT = 1.5
#: Numeric columns with more distinct values than this are binned into quartiles.
MAX_CATEGORIES = 50
#: z of the unexpected errors from which a slice's unexpected errors count in full.
Z_FULL = 4.0
#: Slices with unexpected-error z below this get no unexpected-error score.
Z_MIN = 0.0


def error_score(unexpected: np.ndarray, z: np.ndarray, confusion_share: np.ndarray | float = 1.0) -> np.ndarray:
    """``max(unexpected, 0) * min(1, max(z, 0) / 4) * confusion_share`` (see the module docstring)."""
    unexpected = np.asarray(unexpected, dtype=np.float64)
    weight = np.minimum(1.0, np.maximum(np.nan_to_num(np.asarray(z, dtype=np.float64)), 0.0) / Z_FULL)
    return np.maximum(unexpected, 0.0) * weight * np.clip(np.asarray(confusion_share, dtype=np.float64), 0.0, 1.0)


def _binom_sf_log10(k: int, n: int, p: float) -> float:
    """log10 P[Binomial(n, p) >= k], stable for tiny values."""
    from scipy.stats import binom

    if k <= 0:
        return 0.0
    if p <= 0.0:
        return -math.inf if k > 0 else 0.0
    if p >= 1.0:
        return 0.0
    return float(binom.logsf(k - 1, n, p) / math.log(10))


def categorical_columns(metadata: pd.DataFrame) -> dict[str, pd.Series]:
    """Metadata columns as categorical series; continuous numbers binned into quartiles."""
    out: dict[str, pd.Series] = {}
    n = len(metadata)
    for col in metadata.columns:
        s = metadata[col]
        nunique = s.nunique(dropna=True)
        if nunique == 0:
            continue
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) and nunique > MAX_CATEGORIES:
            try:
                binned = pd.qcut(s, 4, duplicates="drop")
            except ValueError:
                continue
            # the intervals named once each, not once per row (1.9 s of a 1M-row column)
            s = binned.cat.rename_categories([str(c) for c in binned.cat.categories])
        elif nunique > MAX_CATEGORIES and nunique > n // 20:
            continue  # an id-like column: every value rare, nothing to over-represent
        out[str(col)] = s.astype("object").where(s.notna(), None)
    return out


def metadata_overrepresentation(
    slice_ids: np.ndarray, metadata: pd.DataFrame | None, min_share: float = MIN_SHARE, min_lift: float = MIN_LIFT
) -> dict[int, list[dict]]:
    """Metadata values unusually common in each slice.

    Returns
    -------
    dict[int, list[dict]]
        slice id -> entries ``{column, value, count, share_in_slice, share_overall, lift}`` with
        ``share_in_slice >= min_share`` and ``lift >= min_lift``, largest share first. Missing
        values are not reported. Numeric columns with many values are binned into quartiles
        (the value is then an interval string).
    """
    slice_ids = np.asarray(slice_ids)
    out: dict[int, list[dict]] = {int(s): [] for s in np.unique(slice_ids)}
    if metadata is None or len(metadata.columns) == 0:
        return out
    if len(metadata) != slice_ids.shape[0]:
        raise ValueError(f"metadata has {len(metadata)} rows but there are {slice_ids.shape[0]} samples")
    sizes = pd.Series(slice_ids).value_counts()
    for col, s in categorical_columns(metadata.reset_index(drop=True)).items():
        valid = s.notna().to_numpy()
        if not valid.any():
            continue
        overall = s[valid].value_counts(normalize=True)
        counts = pd.crosstab(slice_ids[valid], s[valid].to_numpy())
        for sid, row in counts.iterrows():
            size = sizes[sid]
            for value, count in row[row > 0].items():
                share = count / size
                lift = share / overall[value]
                if share >= min_share and lift >= min_lift:
                    out[int(sid)].append(
                        {
                            "column": col,
                            "value": value.item() if hasattr(value, "item") else value,
                            "count": int(count),
                            "share_in_slice": float(share),
                            "share_overall": float(overall[value]),
                            "lift": float(lift),
                        }
                    )
    for entries in out.values():
        entries.sort(key=lambda e: (-e["share_in_slice"], -e["lift"]))
    return out


def slice_table(
    slice_ids: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    flagged: np.ndarray | None = None,
    n_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    metadata: pd.DataFrame | None = None,
    top_classes: int = 3,
    structured: Collection[int] = (),
) -> pd.DataFrame:
    """One row per slice: size, class mix, flag rate, probe accuracy, error significance, metadata.

    Parameters
    ----------
    slice_ids : np.ndarray
        int, shape (N,).
    labels : np.ndarray
        int, shape (N,), current labels; negative = unlabelled (left out of accuracy).
    probabilities : np.ndarray
        float, shape (N, C), out-of-sample probe probabilities (each row from a model that did
        not train on it).
    flagged : np.ndarray, optional
        bool, shape (N,), the detectors' per-sample flags; ``flag_rate`` is NaN without it.
    n_classes : int, optional
        C; defaults to ``probabilities.shape[1]``.
    class_names : sequence of str, optional
        Names for the class mix; defaults to ``"class <i>"``.
    metadata : pandas.DataFrame, optional
        N rows; over-represented values per slice (:func:`metadata_overrepresentation`).
    top_classes : int, default 3
        Classes listed in ``class_mix``.
    structured : collection of int, optional
        Slices in which the structured-error detector (:mod:`core.detect.regions`, same cut)
        found a labelling error that many samples share. They lead the ranking, worst score
        first, ahead of every other slice (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        Sorted by ``slice_id``; columns ``slice_id, size, share, class_mix`` (list of
        ``{class, share}``), ``top_class, top_class_share, flag_rate, accuracy, error_rate,
        error_rate_rest, error_rate_whole, relative_error`` (slice / whole), ``excess_errors,
        p_value`` (one-sided binomial vs the rest), ``p_adjusted`` (Bonferroni), ``error_score``
        (module docstring), ``error_rank`` (every slice, 1 = worst: the ``structured`` slices first, then
        by score; ties by size, then id), ``is_error_slice`` (``error_score > 0``), ``structured_error``
        (the slice is one of ``structured``),
        ``expected_errors`` (sum of 1 - max probability: the errors the probe itself expects) and
        ``unexpected_errors`` (observed minus expected: errors a confusable region does not
        explain) and ``unexpected_z`` (its z score): the inputs of ``error_score``;
        ``error_basis`` (``"unexpected"``, or ``"excess"`` for the fallback),
        ``metadata_overrepresentation`` (list of dicts).
    """
    slice_ids = np.asarray(slice_ids, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probabilities, dtype=np.float64)
    n = slice_ids.shape[0]
    if labels.shape != (n,) or probs.ndim != 2 or probs.shape[0] != n:
        raise ValueError(f"slice_ids {slice_ids.shape}, labels {labels.shape} and probabilities {probs.shape} must share N")
    n_classes = int(probs.shape[1] if n_classes is None else n_classes)
    if probs.shape[1] != n_classes:
        raise ValueError(f"probabilities have {probs.shape[1]} columns but n_classes is {n_classes}")
    if labels.max(initial=-1) >= n_classes:
        raise ValueError(f"a label is >= n_classes ({n_classes})")
    names = list(class_names) if class_names is not None else [f"class {i}" for i in range(n_classes)]
    if len(names) != n_classes:
        raise ValueError(f"{len(names)} class names for {n_classes} classes")
    if flagged is not None:
        flagged = np.asarray(flagged, dtype=bool)
        if flagged.shape != (n,):
            raise ValueError(f"flagged has shape {flagged.shape}, expected ({n},)")

    labelled = labels >= 0
    predicted = probs.argmax(axis=1)
    wrong = labelled & (predicted != labels)
    expected = np.where(labelled, 1.0 - probs.max(axis=1), 0.0)
    slices = np.unique(slice_ids)
    n_lab_total = int(labelled.sum())
    err_total = int(wrong.sum())
    err_whole = err_total / n_lab_total if n_lab_total else float("nan")
    meta = metadata_overrepresentation(slice_ids, metadata)

    rows = []
    for s in slices:
        m = slice_ids == s
        size = int(m.sum())
        lab_m = m & labelled
        n_lab = int(lab_m.sum())
        e = int(wrong[lab_m].sum())
        counts = np.bincount(labels[lab_m], minlength=n_classes)
        order = np.argsort(-counts, kind="stable")[:top_classes]
        mix = [{"class": names[c], "share": float(counts[c] / n_lab)} for c in order if counts[c] > 0] if n_lab else []
        n_rest = n_lab_total - n_lab
        rate_rest = (err_total - e) / n_rest if n_rest else float("nan")
        rate = e / n_lab if n_lab else float("nan")
        if n_lab and n_rest:
            log10p = _binom_sf_log10(e, n_lab, rate_rest)
            excess = e - n_lab * rate_rest
        else:
            log10p, excess = 0.0, 0.0
        pairs = np.bincount(labels[lab_m & wrong] * n_classes + predicted[lab_m & wrong], minlength=n_classes * n_classes)
        rows.append(
            {
                "slice_id": int(s),
                "size": size,
                "share": size / n,
                "class_mix": mix,
                "top_class": mix[0]["class"] if mix else None,
                "top_class_share": mix[0]["share"] if mix else float("nan"),
                "flag_rate": float(flagged[m].mean()) if flagged is not None else float("nan"),
                "accuracy": 1.0 - rate if n_lab else float("nan"),
                "error_rate": rate,
                "error_rate_rest": rate_rest,
                "error_rate_whole": err_whole,
                "relative_error": rate / err_whole if err_whole else float("nan"),
                "excess_errors": float(excess),
                "expected_errors": float(expected[lab_m].sum()),
                "unexpected_errors": float(e - expected[lab_m].sum()),
                "unexpected_z": float((e - expected[lab_m].sum()) / math.sqrt(max(float((expected[lab_m] * (1.0 - expected[lab_m])).sum()), 1e-9))) if n_lab else 0.0,
                "log10_p": log10p,
                "confusion_share": float(pairs.max() / e) if e else 0.0,
                "metadata_overrepresentation": meta.get(int(s), []),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    p = np.power(10.0, table["log10_p"].to_numpy())
    table["p_value"] = p
    table["p_adjusted"] = np.minimum(1.0, p * len(table))
    z_u = table["unexpected_z"].to_numpy()
    share = table["confusion_share"].to_numpy()
    score = np.where(z_u >= Z_MIN, error_score(table["unexpected_errors"].to_numpy(), z_u, share), 0.0)
    if (score > 0).any():
        table["error_basis"] = "unexpected"
    else:  # the probe explains every slice's errors (it may have learned the noise): excess vs the rest
        log10_adj = np.minimum(0.0, table["log10_p"].to_numpy() + math.log10(len(table)))
        score = np.maximum(table["excess_errors"].to_numpy(), 0.0) * np.minimum(1.0, -log10_adj / 2.0) * share
        table["error_basis"] = "excess"
    table["error_score"] = score
    table = table.drop(columns=["log10_p"])
    table["structured_error"] = table["slice_id"].isin([int(s) for s in structured])
    # One order of every slice, worst first (a structured finding first, ties: the larger slice,
    # then the lower id); whether a slice is an error slice at all is its own column, so the rank
    # has one meaning everywhere.
    ranked = table.sort_values(["structured_error", "error_score", "size", "slice_id"],
                               ascending=[False, False, False, True], kind="stable")
    table["error_rank"] = 0
    table.loc[ranked.index, "error_rank"] = np.arange(1, len(ranked) + 1)
    table["is_error_slice"] = table["error_score"] > 0
    cols = [c for c in table.columns if c != "metadata_overrepresentation"] + ["metadata_overrepresentation"]
    return table[cols]


def error_slices(table: pd.DataFrame) -> pd.DataFrame:
    """The error slices, worst first: rows of ``table`` with ``error_score > 0`` by ``error_rank``."""
    return table[table["error_score"] > 0].sort_values("error_rank")


def structured_findings(
    slice_ids: np.ndarray,
    labels: np.ndarray,
    suggested: np.ndarray,
    flagged: np.ndarray,
    class_names: Sequence[str],
    min_count: int = 3,
) -> dict[int, dict | None]:
    """Per slice, the one confusion that most of its flags share, as a finding a person can review.

    A structured error (one region, one annotator, one guideline period) shows up as many flags
    of one slice carrying the same (given label -> suggested label) pair. For each slice: the
    pair with the most flagged members, how many of the slice's members with that label it
    covers, and a sentence ("31 of its 104 'cat' (30 %) look like 'dog'"). None where fewer
    than ``min_count`` flags share a pair (no structure to review as a group).

    Returns
    -------
    dict
        slice id -> ``{"label", "looks_like", "count", "of", "share", "sentence"}`` or None.
    """
    slice_ids = np.asarray(slice_ids, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    suggested = np.asarray(suggested, dtype=np.int64)
    flagged = np.asarray(flagged, dtype=bool)
    n_classes = len(class_names)
    out: dict[int, dict | None] = {}
    for sid in np.unique(slice_ids):
        inside = slice_ids == sid
        pick = inside & flagged & (suggested >= 0) & (suggested != labels)
        if pick.sum() < min_count:
            out[int(sid)] = None
            continue
        pairs = np.bincount(labels[pick] * n_classes + suggested[pick], minlength=n_classes * n_classes)
        best = int(pairs.argmax())
        count = int(pairs[best])
        if count < min_count:
            out[int(sid)] = None
            continue
        given, looks = divmod(best, n_classes)
        of = int((inside & (labels == given)).sum())
        share = count / max(of, 1)
        out[int(sid)] = {
            "label": str(class_names[given]), "looks_like": str(class_names[looks]), "count": count, "of": of,
            "share": round(float(share), 4),
            "sentence": f"{count} of its {of} '{class_names[given]}' ({share:.0%}) look like '{class_names[looks]}'",
        }
    return out
