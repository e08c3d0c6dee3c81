"""Domain gap between sources, and disagreement between representations."""

from __future__ import annotations

import itertools
import logging
import re
import warnings

import numpy as np
import pandas as pd

from core.slices.projection import reduce

logger = logging.getLogger(__name__)

__all__ = ["domain_gap", "representation_disagreement", "source_like_columns"]

#: Version of :func:`domain_gap`'s method: raised whenever the same vectors, sources and seed
#: would give another table, so a table kept by an earlier analysis is made again.
DOMAIN_GAP_VERSION = 1
#: The columns of a domain-gap table, one row per pair of sources.
DOMAIN_GAP_COLUMNS = ("source_a", "source_b", "n_a", "n_b", "auroc")
#: Metadata column names that usually mark where a sample came from.
SOURCE_WORDS = ("source", "site", "hospital", "scanner", "split", "domain", "device", "camera", "center", "centre", "dataset", "batch")


def source_like_columns(metadata: pd.DataFrame | None, max_values: int = 20) -> list[str]:
    """Metadata columns that look like source markers: a source-like name and 2..max_values values."""
    if metadata is None:
        return []
    out = []
    for col in metadata.columns:
        words = re.split(r"[^a-z]+", str(col).lower())
        if any(w in SOURCE_WORDS for w in words) and 2 <= metadata[col].nunique(dropna=True) <= max_values:
            out.append(str(col))
    return out


def domain_gap(
    vectors: np.ndarray,
    source_values,
    seed: int = 0,
    folds: int = 5,
    max_per_source: int = 5_000,
    min_per_source: int = 10,
    max_sources: int = 20,
) -> pd.DataFrame:
    """How separable each pair of sources is in representation space.

    For each pair (a, b), a logistic regression (on the 64-d PCA reduction of the L2-normalised
    vectors, C=1) is trained to tell a from b; its out-of-fold scores over ``folds`` stratified
    folds give an AUROC: 0.5 = the two sources are indistinguishable, 1.0 = fully separable.

    Parameters
    ----------
    vectors : np.ndarray
        float, shape (N, D).
    source_values : array-like
        N source markers (hospital, scanner, split ...); missing values are left out.
    seed : int, default 0
        Seeds the subsample, the PCA and the folds.
    max_per_source : int, default 5000
        Each source is subsampled to this many rows (the AUROC needs no more).
    min_per_source : int, default 10
        Sources with fewer rows are skipped.
    max_sources : int, default 20
        Only the most common sources are paired.

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``source_a, source_b, n_a, n_b, auroc``, largest gap first.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    src = pd.Series(np.asarray(source_values, dtype=object))
    if len(src) != np.asarray(vectors).shape[0]:
        raise ValueError(f"{len(src)} source values but {np.asarray(vectors).shape[0]} vectors")
    counts = src.dropna().value_counts()
    counts = counts[counts >= min_per_source].iloc[:max_sources]
    cols = list(DOMAIN_GAP_COLUMNS)
    if len(counts) < 2:
        return pd.DataFrame(columns=cols)
    rng = np.random.default_rng(seed)
    picked = {}
    for value in counts.index:
        rows = np.flatnonzero((src == value).to_numpy())
        picked[value] = np.sort(rng.choice(rows, min(rows.size, max_per_source), replace=False))
    used = np.sort(np.concatenate(list(picked.values())))
    x_used = reduce(np.asarray(vectors)[used], 64, seed)
    pos = {r: i for i, r in enumerate(used)}
    out = []
    for a, b in itertools.combinations(counts.index, 2):
        ia = np.array([pos[r] for r in picked[a]])
        ib = np.array([pos[r] for r in picked[b]])
        x = np.concatenate([x_used[ia], x_used[ib]])
        y = np.concatenate([np.zeros(ia.size), np.ones(ib.size)])
        k = int(min(folds, ia.size, ib.size))
        cv = StratifiedKFold(k, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = cross_val_predict(LogisticRegression(C=1.0, max_iter=500), x, y, cv=cv, method="decision_function")
        out.append({"source_a": a, "source_b": b, "n_a": int(ia.size), "n_b": int(ib.size), "auroc": float(roc_auc_score(y, score))})
    return pd.DataFrame(out, columns=cols).sort_values("auroc", ascending=False, kind="stable").reset_index(drop=True)


def representation_disagreement(
    outlier_scores_by_rep: dict[str, np.ndarray],
    slice_ids: np.ndarray,
    outlier_quantile: float = 0.95,
    inlier_quantile: float = 0.5,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Samples that are inliers in one representation and outliers in another.

    Scores of different representations live on different scales, so each is turned into a
    percentile rank within its representation (0 = most typical, 1 = most outlying; higher score
    = more outlying). A sample is an *outlier* in a representation at rank >= ``outlier_quantile``
    and an *inlier* at rank <= ``inlier_quantile``; it *disagrees* when it is an outlier in one
    and an inlier in another.

    Parameters
    ----------
    outlier_scores_by_rep : dict[str, np.ndarray]
        representation name -> float scores, shape (N,), higher = more outlying.
    slice_ids : np.ndarray
        int, shape (N,), slices of the representation the page shows.

    Returns
    -------
    (per_sample, per_slice) : tuple[pandas.DataFrame, pandas.DataFrame]
        ``per_sample``: N rows, ``rank_<rep>`` and ``outlier_<rep>`` per representation,
        ``n_outlier_reps``, ``rank_spread`` (max - min rank) and ``disagrees``.
        ``per_slice``: ``slice_id, size, outlier_rate_<rep>, mean_rank_<rep>, disagree_rate``.
    """
    from scipy.stats import rankdata

    slice_ids = np.asarray(slice_ids)
    n = slice_ids.shape[0]
    if not outlier_scores_by_rep:
        raise ValueError("give the outlier scores of at least one representation")
    per = {}
    for rep, scores in outlier_scores_by_rep.items():
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != (n,):
            raise ValueError(f"representation {rep!r}: scores have shape {s.shape}, expected ({n},)")
        per[f"rank_{rep}"] = (rankdata(s, method="average") - 1) / max(n - 1, 1)
    ranks = np.column_stack(list(per.values()))
    sample = pd.DataFrame({"slice_id": slice_ids})
    for rep in outlier_scores_by_rep:
        sample[f"rank_{rep}"] = per[f"rank_{rep}"]
        sample[f"outlier_{rep}"] = per[f"rank_{rep}"] >= outlier_quantile
    outlier = ranks >= outlier_quantile
    inlier = ranks <= inlier_quantile
    sample["n_outlier_reps"] = outlier.sum(axis=1)
    sample["rank_spread"] = ranks.max(axis=1) - ranks.min(axis=1)
    sample["disagrees"] = outlier.any(axis=1) & inlier.any(axis=1)
    agg = {"size": ("slice_id", "size"), "disagree_rate": ("disagrees", "mean")}
    for rep in outlier_scores_by_rep:
        agg[f"outlier_rate_{rep}"] = (f"outlier_{rep}", "mean")
        agg[f"mean_rank_{rep}"] = (f"rank_{rep}", "mean")
    per_slice = sample.groupby("slice_id").agg(**agg).reset_index()
    return sample, per_slice
