"""Clustering a representation into slices (on the PCA reduction, never on the 2-D map).

Two methods:

- ``"kmeans"``: k-means on the 32-d PCA reduction. The number of slices k, when not given, is
  the k in :data:`K_GRID` (capped so the average slice holds at least :data:`MIN_MEAN_SLICE`
  rows) with the highest silhouette score, each candidate fitted on a seeded subsample of
  :data:`SELECT_FIT_MAX` rows and scored on :data:`SILHOUETTE_MAX` of them. The final k-means
  runs on every row.
- ``"hdbscan"``: sklearn's HDBSCAN on a seeded subsample of :data:`HDBSCAN_FIT_MAX` rows of the
  reduction; every row (noise included) then joins the cluster of its nearest clustered
  subsample row, so each sample belongs to exactly one slice.

Second, error-aware pass (:func:`split_error_slices`, run by ``discover_slices``): a slice
whose errors sit in one part of it is cut down to that part (the best of its 2-, 3- and 4-means
parts, kept when the part's error rate differs significantly from the rest and it keeps >= 90 %
of the excess errors, up to three cuts deep), so an error region smaller than the geometric clusters still comes out as one slice.

Third, multi-resolution pass (:func:`carve_error_regions`): clusters at every k of the grid are
scored as error slices are ranked, and the best few are carved out whole, so a region that
the silhouette's k splits over two slices or merges into a larger one still comes out as one
slice (planted-region protocol, 20 Newsgroups: the planted region the top error slice in 11 of
12 runs, 9 of 12 without this pass; bench/README.md).

``"auto"`` is k-means: on the planted-slice protocol it found the planted slice more often
than HDBSCAN and in less time (bench/README.md, "Slices").

Everything the cut does before it looks at labels (the reduction, the k-means of the first pass
and of the grid) depends on the vectors and the seed alone: :func:`label_blind_cut` makes it
once, as a :class:`LabelBlindCut` that a re-analysis of the same vectors hands back to
:func:`error_aware_slices` instead of making it again.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np

from core.slices.projection import DISTANCE_BLOCK, REDUCED_DIM, reduce

logger = logging.getLogger(__name__)

__all__ = ["carve_error_regions", "cluster_error_scores", "cut_to_where", "error_aware_slices", "find_slices", "label_blind_cut",
           "LabelBlindCut", "mean_silhouette", "select_k", "split_error_slices", "K_GRID"]

#: Version of the label-blind cut (:func:`label_blind_cut`): raised whenever the same vectors and
#: seed would give another one, so a cut kept by an earlier Amend is made again.
CUT_VERSION = 1
#: Candidate numbers of slices for the silhouette criterion.
K_GRID = (6, 8, 10, 12, 15, 20, 25, 30)
#: k is capped at N // MIN_MEAN_SLICE so slices stay large enough to test.
MIN_MEAN_SLICE = 50
#: Rows used to fit each candidate k-means during k selection.
SELECT_FIT_MAX = 20_000
#: Rows on which each candidate's silhouette is computed.
SILHOUETTE_MAX = 4_000
#: Rows HDBSCAN is fitted on.
HDBSCAN_FIT_MAX = 10_000


def _kmeans(x: np.ndarray, k: int, seed: int, n_init: int = 3, init=None):
    """k-means in float64: scikit-learn sums each thread's share of the centres and adds them up,
    and in float32 that sum depends on the number of OpenMP threads; on 20,000 x 32 mixtures one
    and two threads then labelled 100-110 rows apart in two of six fits, in float64 none
    (bench/README.md, "The same findings on any machine"). The reduction is 32-d, so the copy is
    small; :meth:`predict` takes float64 rows too."""
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=k, n_init=1 if init is not None else n_init, init="k-means++" if init is None else init, random_state=seed, max_iter=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(np.asarray(x, dtype=np.float64))
    return model


def select_k(reduced: np.ndarray, seed: int = 0, grid: tuple[int, ...] = K_GRID,
             grid_models: dict | None = None) -> tuple[int, dict[int, float]]:
    """The number of slices with the best silhouette on a subsample.

    ``grid_models``, when given, receives the k-means model fitted at each k (on the same
    subsample the carve uses, :func:`_grid_fit`), so :func:`carve_error_regions` need not fit
    them again.

    Returns
    -------
    (k, scores) : tuple[int, dict[int, float]]
        Chosen k and the silhouette of every candidate tried (for the run record).
    """
    from sklearn.metrics import pairwise_distances

    n = reduced.shape[0]
    k_max = max(2, n // MIN_MEAN_SLICE)
    candidates = [k for k in grid if k <= k_max] or [min(k_max, max(2, n // 2))]
    if n < 4:
        return max(1, n), {}
    rng = np.random.default_rng(seed)
    fit = _grid_fit(reduced, rng)
    score_rows = rng.choice(fit.shape[0], min(SILHOUETTE_MAX, fit.shape[0]), replace=False)
    # Every candidate is scored on the same rows: their distances once, not once per k (at
    # 10,000 x 1,280 the repeated distances were a third of the structured-regions detector).
    distances = pairwise_distances(fit[score_rows])
    scores: dict[int, float] = {}
    for k in candidates:
        if k >= fit.shape[0]:
            continue
        model = _grid_model(fit, k, seed, grid_models)
        lab = model.labels_[score_rows]
        if np.unique(lab).size < 2:
            scores[k] = -1.0
            continue
        scores[k] = mean_silhouette(distances, lab)
    best = max(scores, key=lambda k: (scores[k], -k)) if scores else 1
    return int(best), scores


def mean_silhouette(distances: np.ndarray, labels: np.ndarray) -> float:
    """The mean silhouette of ``labels`` on a precomputed distance matrix, as sklearn's
    ``silhouette_score(distances, labels, metric="precomputed")`` defines it (a member alone in
    its cluster scores 0), with every point's summed distance to each cluster taken in one matrix
    product: sklearn's loop over chunks was a quarter of the grid's time at 10,000 rows (0.49 s
    for eight candidates against 0.03 s)."""
    present, member_of = np.unique(np.asarray(labels), return_inverse=True)
    if not 2 <= present.size <= len(member_of) - 1:
        raise ValueError(f"the silhouette needs 2 to n - 1 clusters, got {present.size}")
    one_hot = np.zeros((member_of.size, present.size), dtype=np.float32)
    one_hot[np.arange(member_of.size), member_of] = 1.0
    sizes = np.bincount(member_of, minlength=present.size).astype(np.float64)
    # float32 products (sums of at most a few thousand distances), the rest in float64
    summed = (np.asarray(distances, dtype=np.float32) @ one_hot).astype(np.float64)
    rows = np.arange(member_of.size)
    own_size = sizes[member_of]
    within = summed[rows, member_of] / np.maximum(own_size - 1, 1)
    means = summed / sizes
    means[rows, member_of] = np.inf
    nearest_other = means.min(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = (nearest_other - within) / np.maximum(within, nearest_other)
    score[(own_size <= 1) | ~np.isfinite(score)] = 0.0
    return float(score.mean())


def _grid_fit(reduced: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The rows the k-means of the grid are fitted on: all of them up to SELECT_FIT_MAX, else a
    subsample drawn first from ``rng`` (a generator seeded with the cut's seed, so select_k and
    the carve draw the same one)."""
    n = reduced.shape[0]
    return reduced if n <= SELECT_FIT_MAX else reduced[rng.choice(n, SELECT_FIT_MAX, replace=False)]


def _grid_model(fit: np.ndarray, k: int, seed: int, grid_models: dict | None):
    """The k-means at k of the grid, fitted once per cut: select_k and the carve fit the same
    model on the same rows (at 10,000 x 1,280 the refits were a third of the cut's time)."""
    if grid_models is not None and k in grid_models:
        return grid_models[k]
    model = _kmeans(fit, k, seed, n_init=2)
    if grid_models is not None:
        grid_models[k] = model
    return model


def _nearest(fit_x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Index into ``fit_x`` of each row's nearest (Euclidean) neighbour, blocked."""
    a = np.ascontiguousarray(fit_x, dtype=np.float32)
    a_sq = (a * a).sum(1)
    out = np.empty(rows.shape[0], dtype=np.int64)
    block = max(1, DISTANCE_BLOCK // max(fit_x.shape[0], 1))
    for s in range(0, rows.shape[0], block):
        b = np.ascontiguousarray(rows[s : s + block], dtype=np.float32)
        out[s : s + block] = np.argmin(a_sq[None, :] - 2.0 * (b @ a.T), axis=1)
    return out


def _hdbscan(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.cluster import HDBSCAN

    n = x.shape[0]
    rng = np.random.default_rng(seed)
    fit_idx = np.arange(n) if n <= HDBSCAN_FIT_MAX else np.sort(rng.choice(n, HDBSCAN_FIT_MAX, replace=False))
    fit = x[fit_idx]
    min_size = max(15, fit.shape[0] // 100)
    lab = HDBSCAN(min_cluster_size=min_size, min_samples=10, copy=True).fit_predict(fit)
    clustered = lab >= 0
    if not clustered.any():
        logger.info("HDBSCAN found no cluster; every sample forms one slice")
        return np.zeros(n, dtype=np.int64)
    return lab[clustered][_nearest(fit[clustered], x)]


def _by_size(ids: np.ndarray) -> np.ndarray:
    """Renumber slices 0.. by decreasing size (ties by old id), so ids are stable and readable."""
    uniq, counts = np.unique(ids, return_counts=True)
    order = np.lexsort((uniq, -counts))
    remap = np.empty(uniq.max() + 1 if uniq.size else 0, dtype=np.int64)
    remap[uniq[order]] = np.arange(uniq.size)
    return remap[ids]


def find_slices(
    vectors: np.ndarray,
    seed: int = 0,
    method: str = "auto",
    n_slices: int | None = None,
    reduced: np.ndarray | None = None,
    info: dict | None = None,
    grid_models: dict | None = None,
) -> np.ndarray:
    """A slice id per sample.

    Parameters
    ----------
    vectors : np.ndarray
        float, shape (N, D). L2-normalised and PCA-reduced to 32 d before clustering.
    seed : int, default 0
        Same vectors and seed give the same slices.
    method : str, default "auto"
        ``"kmeans"``, ``"hdbscan"`` or ``"auto"`` (k-means; see the module docstring).
    n_slices : int, optional
        k for k-means; chosen by silhouette on a subsample (:func:`select_k`) when None.
        Ignored by HDBSCAN, which finds its own number.
    reduced : np.ndarray, optional
        A precomputed :func:`core.slices.projection.reduce` of ``vectors`` (saves one PCA).
    info : dict, optional
        Filled with what was chosen: ``method``, ``n_slices``, ``silhouette`` per candidate k.
    grid_models : dict, optional
        Passed to :func:`select_k` (the grid's fitted k-means, shared with the carve).

    Returns
    -------
    np.ndarray
        int64, shape (N,), ids 0..S-1 numbered by decreasing slice size.
    """
    if method not in ("auto", "kmeans", "hdbscan"):
        raise ValueError(f"method must be 'auto', 'kmeans' or 'hdbscan', got {method!r}")
    x = reduce(vectors, REDUCED_DIM, seed) if reduced is None else np.asarray(reduced, dtype=np.float32)
    n = x.shape[0]
    info = {} if info is None else info
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    chosen = "kmeans" if method == "auto" else method
    info["method"] = chosen
    if chosen == "hdbscan":
        ids = _hdbscan(x, seed)
    else:
        if n_slices is None:
            k, scores = select_k(x, seed, grid_models=grid_models)
            info["silhouette"] = scores
        else:
            k = int(n_slices)
            if k < 1:
                raise ValueError(f"n_slices must be at least 1, got {k}")
        k = min(k, n)
        ids = _kmeans(x, k, seed).labels_.astype(np.int64) if k > 1 else np.zeros(n, dtype=np.int64)
    ids = _by_size(ids)
    info["n_slices"] = int(ids.max()) + 1
    return ids


#: A slice is split in two when its halves' error rates differ with a Bonferroni-adjusted
#: two-sided p below this ...
SPLIT_P = 1e-2
#: ... and each half keeps at least this many rows; halves are split again up to this depth.
SPLIT_MIN_ROWS = 30
SPLIT_MAX_DEPTH = 3
#: ... and the error-heavier half keeps at least this share of the slice's excess errors.
SPLIT_KEEP = 0.9
#: A slice is cut into this many parts by k-means, for each k, and the part whose errors stand
#: out most from the rest is the candidate: an error region need not be half of its slice (on
#: the planted-region protocol, CIFAR-10 EfficientNet vectors, 2-means alone left the region
#: inside a larger slice in 7 of 12 runs; 2-4 parts in 3, same on 20 Newsgroups).
SPLIT_PARTS = (2, 3, 4)


def _two_proportion_log10p(e1: int, n1: int, e2: int, n2: int) -> float:
    """log10 of the two-sided p value of a two-proportion z test (pooled), stable in the tail."""
    from scipy.stats import norm

    pooled = (e1 + e2) / (n1 + n2)
    var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if var <= 0.0:
        return 0.0
    z = abs(e1 / n1 - e2 / n2) / np.sqrt(var)
    return float((norm.logsf(z) + np.log(2.0)) / np.log(10.0))


def _error_heavy_part(x: np.ndarray, rows: np.ndarray, errors: np.ndarray, rate: float, seed: int,
                      min_rows: int, keep: float) -> tuple[float, np.ndarray] | None:
    """The part of ``rows`` (one of its 2-, 3- or 4-means clusters) whose errors differ most
    significantly from the rest of ``rows`` while holding ``keep`` of their excess errors, as
    (log10 p, part rows); None when no part qualifies."""
    best: tuple[float, np.ndarray] | None = None
    for k in SPLIT_PARTS:
        if rows.size < k * min_rows:
            break
        assignment = _kmeans(x[rows], k, seed, n_init=2).labels_
        for cluster in range(k):
            part, rest = rows[assignment == cluster], rows[assignment != cluster]
            if min(part.size, rest.size) < min_rows or errors[part].mean() <= errors[rest].mean():
                continue
            excess_part = float(errors[part].sum()) - part.size * rate
            excess_rest = float(errors[rest].sum()) - rest.size * rate
            if excess_part < keep * (excess_part + max(excess_rest, 0.0)):
                continue
            log10p = _two_proportion_log10p(int(errors[part].sum()), part.size, int(errors[rest].sum()), rest.size)
            if best is None or log10p < best[0]:
                best = (log10p, part)
    return best


def _significant_part(x: np.ndarray, rows: np.ndarray, errors: np.ndarray, rate: float, seed: int, min_rows: int,
                      keep: float, slices_tested: int, p_threshold: float) -> np.ndarray | None:
    """The rows of :func:`_error_heavy_part`'s part of ``rows`` where it passes the test: p times
    every candidate part tried in ``slices_tested`` slices (Bonferroni) below ``p_threshold``;
    None where ``rows`` is too small to cut, holds no error, or no part passes."""
    if rows.size < 2 * min_rows or not errors[rows].any():
        return None
    part = _error_heavy_part(x, rows, errors, rate, seed, min_rows, keep)
    if part is None or part[0] + np.log10(max(1, slices_tested) * sum(SPLIT_PARTS)) >= np.log10(p_threshold):
        return None
    return part[1]


def split_error_slices(
    slice_ids: np.ndarray,
    reduced: np.ndarray,
    errors: np.ndarray,
    seed: int = 0,
    p_threshold: float = SPLIT_P,
    min_rows: int = SPLIT_MIN_ROWS,
    max_depth: int = SPLIT_MAX_DEPTH,
    keep: float = SPLIT_KEEP,
    info: dict | None = None,
) -> np.ndarray:
    """Second, error-aware pass: split a slice where its errors sit in one part of it.

    Every slice is cut into 2, 3 and 4 parts by k-means on the reduction; the candidate is the
    part whose error rate differs most significantly from the rest of the slice (two-proportion
    z test; two-sided p times the number of candidates tried, below ``p_threshold``), among the
    parts that keep at least ``keep`` of the slice's excess errors (errors beyond the whole's
    rate: they concentrate there rather than spreading) and hold ``min_rows`` rows, as does the
    rest. The part becomes a slice of its own; both are tested again, up to ``max_depth`` cuts
    deep. So a slice chosen for its geometry (silhouette) shrinks
    to the region where the errors concentrate, whatever its size relative to the others.

    Parameters
    ----------
    slice_ids : np.ndarray
        int, (N,), the label-blind slices (:func:`find_slices`).
    reduced : np.ndarray
        float, (N, d), the reduction the slices were found on.
    errors : np.ndarray
        bool, (N,), rows that count as errors (probe argmax != label; unlabelled rows False).
    info : dict, optional
        Filled with ``splits`` (number of cuts kept).

    Returns
    -------
    np.ndarray
        int64, (N,), slice ids 0..S'-1 by decreasing size.
    """
    ids = np.asarray(slice_ids, dtype=np.int64).copy()
    errors = np.asarray(errors, dtype=bool)
    x = np.asarray(reduced, dtype=np.float32)
    n_tests = max(1, int(np.unique(ids).size))
    rate = float(errors.mean()) if errors.size else 0.0
    queue = [(int(s), 0) for s in np.unique(ids)]
    next_id = int(ids.max()) + 1 if ids.size else 0
    splits = 0
    while queue:
        s, depth = queue.pop(0)
        if depth >= max_depth:
            continue
        # Bonferroni over every candidate part tried in every slice tested so far.
        part = _significant_part(x, np.flatnonzero(ids == s), errors, rate, seed, min_rows, keep, n_tests,
                                 p_threshold)
        if part is None:
            continue
        ids[part] = next_id
        queue += [(s, depth + 1), (next_id, depth + 1)]
        n_tests += 2
        next_id += 1
        splits += 1
    if info is not None:
        info["splits"] = splits
    return _by_size(ids)


def cut_to_where(
    slice_ids: np.ndarray,
    reduced: np.ndarray,
    marked: np.ndarray,
    slices: list[int],
    seed: int = 0,
    p_threshold: float = SPLIT_P,
    min_rows: int = SPLIT_MIN_ROWS,
    keep: float = SPLIT_KEEP,
) -> tuple[np.ndarray, dict[int, int]]:
    """Cut each of ``slices`` down to the part of it where its ``marked`` rows sit.

    The second pass's test (:func:`split_error_slices`: the best of the slice's 2-, 3- and
    4-means parts, keeping ``keep`` of the marked rows' excess, two-proportion p times the parts
    tried in all ``slices`` below ``p_threshold``) on rows marked by a finding instead of on the
    probe's errors, one cut per slice. A slice with no such part stays whole.

    Returns
    -------
    (np.ndarray, dict)
        The slice ids, 0..S'-1 by decreasing size, and every old slice id -> its new id (for a
        slice that was cut, the id of the part that holds its marked rows).
    """
    ids = np.asarray(slice_ids, dtype=np.int64).copy()
    marked = np.asarray(marked, dtype=bool)
    x = np.asarray(reduced, dtype=np.float32)
    rate = float(marked.mean()) if marked.size else 0.0
    next_id = int(ids.max()) + 1 if ids.size else 0
    holder = {int(s): int(s) for s in np.unique(ids)}
    for s in slices:
        part = _significant_part(x, np.flatnonzero(ids == s), marked, rate, seed, min_rows, keep, len(slices),
                                 p_threshold)
        if part is None:
            continue
        ids[part] = next_id
        holder[int(s)] = next_id
        next_id += 1
    renumbered = _by_size(ids)
    present, first = np.unique(ids, return_index=True)
    new_id = dict(zip(present.tolist(), renumbered[first].tolist()))
    return renumbered, {old: int(new_id[held]) for old, held in holder.items()}


#: At most this many error regions are carved out of the slicing (:func:`carve_error_regions`).
CARVE_MAX_REGIONS = 5
#: Family-wise level of the test that a candidate's unexpected errors are more than chance.
CARVE_ALPHA = 0.05
#: A candidate is skipped when more than this share of it already lies in a carved region.
CARVE_MAX_OVERLAP = 0.5


def cluster_error_scores(ids: np.ndarray, labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """The error score of every cluster of ``ids`` (0..K-1), as the error-slice ranking computes it
    (:func:`core.slices.metrics.error_score`: unexpected errors, weighted by their z and by the
    share of the cluster's errors in its most common label -> predicted pair). Unlabelled rows
    (label < 0) are left out."""
    from core.slices.metrics import error_score

    ids = np.asarray(ids, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = np.asarray(probabilities).shape[1]
    k = int(ids.max()) + 1 if ids.size else 0
    wrong, expected, spread = _error_terms(labels, probabilities)
    errors = np.bincount(ids, weights=wrong, minlength=k)
    unexpected = errors - np.bincount(ids, weights=expected, minlength=k)
    z = unexpected / np.sqrt(np.maximum(np.bincount(ids, weights=spread, minlength=k), 1e-9))
    is_wrong = wrong > 0
    predicted = np.asarray(probabilities).argmax(axis=1)
    pair = (ids[is_wrong] * n_classes + labels[is_wrong]) * n_classes + predicted[is_wrong]
    pair_counts = np.bincount(pair, minlength=k * n_classes * n_classes).reshape(k, n_classes * n_classes)
    share = np.where(errors > 0, pair_counts.max(axis=1) / np.maximum(errors, 1), 0.0)
    return error_score(unexpected, z, share)


#: Random placements of the errors behind the carving's significance level ...
CARVE_PERMUTATIONS = 200
#: ... drawn on at most this many rows ...
CARVE_NULL_ROWS = 50_000
#: ... this many deals at a time (50,000 rows x 50 deals: 20 MB per array).
CARVE_DEALS_AT_ONCE = 50


def _excess_z(partition: np.ndarray, wrong: np.ndarray, expected: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Per cluster: unexpected errors beyond those of a random group of its size, as a z. A probe
    that is overconfident everywhere leaves unexpected errors in every cluster in proportion to
    its size; centring on that share keeps the test about where errors concentrate."""
    k = int(partition.max()) + 1
    sizes = np.bincount(partition, minlength=k)
    unexpected = np.bincount(partition, wrong, k) - np.bincount(partition, expected, k)
    share = (wrong.sum() - expected.sum()) / max(wrong.size, 1)
    return (unexpected - sizes * share) / np.sqrt(np.maximum(np.bincount(partition, spread, k), 1e-9))


def _error_terms(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: error (0/1), expected error 1 - max p, and its variance (unlabelled rows 0)."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probabilities, dtype=np.float64)
    labelled = labels >= 0
    wrong = (labelled & (probs.argmax(axis=1) != labels)).astype(np.float64)
    expected = np.where(labelled, 1.0 - probs.max(axis=1), 0.0)
    return wrong, expected, expected * (1.0 - expected)


def _max_z_by_chance(partitions: list[np.ndarray], terms: tuple[np.ndarray, np.ndarray, np.ndarray], min_rows: int,
                     alpha: float, rng: np.random.Generator, rounds: int = CARVE_PERMUTATIONS) -> float:
    """The excess-error z (:func:`_excess_z`) that the best candidate of all ``partitions``
    exceeds by chance with probability ``alpha``: each row's (error, expected error) pair is dealt
    to a random row, every candidate of at least ``min_rows`` rows is scored, and the
    (1 - alpha) quantile of the best z over ``rounds`` deals is returned. A max-statistic
    permutation test: it corrects for trying many candidates as Bonferroni does, without
    counting the same region found at five scales as five chances."""
    wrong, expected, spread = terms
    if wrong.size > CARVE_NULL_ROWS:
        # Centred, each candidate's z is a unit-variance sum under the null whatever its size,
        # so the null of the best z is drawn on a seeded subsample of the rows (cost, at 1M).
        min_rows = max(2, int(round(min_rows * CARVE_NULL_ROWS / wrong.size)))
        keep_rows = np.sort(rng.choice(wrong.size, CARVE_NULL_ROWS, replace=False))
        partitions = [p[keep_rows] for p in partitions]
        wrong, expected, spread = wrong[keep_rows], expected[keep_rows], spread[keep_rows]
    from scipy import sparse

    # Every candidate of every partition is a column of one membership matrix, so the sums of
    # all candidates in all deals are three sparse products (a Python loop over deals and
    # partitions was a tenth of the structured-regions detector at 10,000 rows).
    n = wrong.size
    columns, offset = [], 0
    for p in partitions:
        columns.append(p + offset)
        offset += int(p.max()) + 1
    member = sparse.csr_matrix((np.ones(n * len(partitions)), (np.tile(np.arange(n), len(partitions)),
                                                               np.concatenate(columns))), shape=(n, offset))
    sizes = np.asarray(member.sum(0)).ravel()
    eligible = sizes >= min_rows
    best = np.full(rounds, -np.inf)
    if not eligible.any():
        return float(np.quantile(best, 1.0 - alpha))
    share = (wrong.sum() - expected.sum()) / max(n, 1)
    at = member.T.tocsr()[eligible]
    for start in range(0, rounds, CARVE_DEALS_AT_ONCE):
        stop = min(rounds, start + CARVE_DEALS_AT_ONCE)
        deals = np.stack([rng.permutation(n) for _ in range(stop - start)], axis=1)  # (n, deals)
        unexpected = at @ (wrong[deals] - expected[deals])
        z = (unexpected - sizes[eligible, None] * share) / np.sqrt(np.maximum(at @ spread[deals], 1e-9))
        best[start:stop] = z.max(axis=0)
    return float(np.quantile(best, 1.0 - alpha))


def carve_error_regions(
    slice_ids: np.ndarray,
    reduced: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    seed: int = 0,
    grid: tuple[int, ...] = K_GRID,
    max_regions: int = CARVE_MAX_REGIONS,
    min_rows: int = SPLIT_MIN_ROWS,
    max_overlap: float = CARVE_MAX_OVERLAP,
    alpha: float = CARVE_ALPHA,
    info: dict | None = None,
    grid_models: dict | None = None,
    grid_partitions: dict | None = None,
) -> np.ndarray:
    """Third, multi-resolution pass: carve the worst error regions out whole, at their own scale.

    A region that shares one labelling error need not match the clusters that the silhouette
    chose: at that k it may be split over two slices or merged with a neighbour, diluting its
    errors. So clusters are also made at every k of ``grid`` (k-means on the same reduction,
    fitted on a subsample), and each candidate, the slices themselves included, gets the
    error-slice score (:func:`cluster_error_scores`). Candidates whose unexpected errors are not
    significant are dropped (their z below what the best of all candidates reaches by chance
    with probability ``alpha`` when the errors are placed at random, :func:`_max_z_by_chance`):
    the best of a hundred small clusters is otherwise the luckiest. Best first, a candidate becomes a slice of
    its own when at most ``max_overlap`` of it lies in a region carved already, up to
    ``max_regions`` regions; every other row keeps its slice. So the error slices are the
    regions at the scale where their errors stand out most, whatever scale the geometry
    preferred.

    ``grid_partitions`` (k -> cluster of every row), when given, are the grid's clusterings made
    before (:func:`label_blind_cut`); the k's it lacks are fitted here.

    Returns
    -------
    np.ndarray
        int64, (N,), slice ids 0..S'-1 by decreasing size.
    """
    ids = np.asarray(slice_ids, dtype=np.int64).copy()
    x = np.asarray(reduced, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    n = ids.size
    if n < 2 * min_rows or not (labels >= 0).any():
        return _by_size(ids) if n else ids
    rng = np.random.default_rng(seed)
    partitions = [ids, *_grid_partitions(x, seed, grid, grid_models, grid_partitions, rng).values()]
    terms = _error_terms(labels, probabilities)
    scored = [(partition, cluster_error_scores(partition, labels, probabilities), _excess_z(partition, *terms))
              for partition in partitions]
    # The best of many candidates is partly the luckiest: a candidate is carved only when its
    # errors concentrate beyond what the best of all candidates reaches when the errors are
    # placed at random (see _max_z_by_chance).
    z_needed = _max_z_by_chance(partitions, terms, min_rows, alpha, rng)
    if info is not None:
        info["carve_z_needed"] = round(z_needed, 3)
    candidates: list[tuple[float, np.ndarray]] = []
    for partition, scores, z in scored:
        sizes = np.bincount(partition, minlength=scores.size)
        for cluster in np.flatnonzero((scores > 0) & (sizes >= min_rows) & (z >= z_needed)):
            candidates.append((float(scores[cluster]), np.flatnonzero(partition == cluster)))
    candidates.sort(key=lambda c: (-c[0], c[1].size))
    carved = np.zeros(n, dtype=bool)
    next_id = int(ids.max()) + 1
    regions = 0
    for _, rows in candidates:
        if regions >= max_regions:
            break
        fresh = rows[~carved[rows]]
        if fresh.size < (1.0 - max_overlap) * rows.size or fresh.size < min_rows:
            continue
        ids[fresh] = next_id
        carved[fresh] = True
        next_id += 1
        regions += 1
    ids = _by_size(ids)
    if info is not None:
        info["carved"] = regions
        info["carved_slices"] = sorted(int(i) for i in np.unique(ids[carved]))
    return ids


def _grid_partitions(x: np.ndarray, seed: int, grid: tuple[int, ...], grid_models: dict | None,
                     known: dict | None, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """k -> the grid's k-means cluster of every row, for each k the carve tries (those that leave
    :data:`MIN_MEAN_SLICE` rows a cluster on average). Taken from ``known`` where it has them;
    the rest fitted on :func:`_grid_fit`'s rows, drawn from ``rng`` either way so that what the
    caller draws from it next does not depend on what was known."""
    n = x.shape[0]
    fit = _grid_fit(x, rng)
    rows = None  # float64, as the models were fitted (_kmeans); made once, where a model predicts
    out: dict[int, np.ndarray] = {}
    for k in grid:
        if k > n // MIN_MEAN_SLICE or k >= fit.shape[0]:
            continue
        if known is not None and k in known:
            out[k] = np.asarray(known[k], dtype=np.int64)
        else:
            rows = np.asarray(x, dtype=np.float64) if rows is None else rows
            out[k] = _grid_model(fit, k, seed, grid_models).predict(rows).astype(np.int64)
    return out


@dataclass(frozen=True)
class LabelBlindCut:
    """The part of the error slices' cut that depends on the vectors and the seed alone.

    Attributes
    ----------
    reduced : np.ndarray
        float32 (N, d), the PCA reduction every pass clusters.
    slice_ids : np.ndarray
        int64 (N,), the first pass's slices (:func:`find_slices`, k chosen by silhouette).
    grid : dict
        k -> int64 (N,), the grid's k-means clusters the carve scores.
    seed : int
    info : dict
        :func:`find_slices`'s choices (``method``, ``n_slices``, ``silhouette``).
    """

    reduced: np.ndarray
    slice_ids: np.ndarray
    grid: dict
    seed: int
    info: dict = field(default_factory=dict)

    def fits(self, n: int, seed: int) -> bool:
        """Whether this cut was made for ``n`` rows with ``seed``."""
        return (int(self.seed) == int(seed) and self.reduced.ndim == 2 and self.reduced.shape[0] == n
                and self.slice_ids.shape == (n,) and all(np.shape(p) == (n,) for p in self.grid.values()))


def label_blind_cut(vectors: np.ndarray, seed: int = 0, reduced: np.ndarray | None = None) -> LabelBlindCut:
    """The reduction, the first pass's k-means and the grid's k-means of :func:`error_aware_slices`
    (default method and k), made once: they depend on the vectors and the seed, never on the
    labels, so a re-analysis after decisions can hand them back (at 10,000 x 1,280 they were
    most of the structured-regions detector: bench/README.md)."""
    x = reduce(vectors, REDUCED_DIM, seed) if reduced is None else np.asarray(reduced, dtype=np.float32)
    info: dict = {}
    grid_models: dict = {}
    ids = find_slices(vectors, seed=seed, reduced=x, info=info, grid_models=grid_models)
    grid = _grid_partitions(x, seed, K_GRID, grid_models, None, np.random.default_rng(seed)) if x.shape[0] else {}
    return LabelBlindCut(reduced=x, slice_ids=ids, grid=grid, seed=int(seed), info=info)


def error_aware_slices(
    vectors: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    seed: int = 0,
    method: str = "auto",
    n_slices: int | None = None,
    reduced: np.ndarray | None = None,
    info: dict | None = None,
    blind: LabelBlindCut | None = None,
) -> np.ndarray:
    """The error slices' cut, all three passes: :func:`find_slices` (the geometry), then
    :func:`split_error_slices` (where the errors of ``probabilities`` sit inside a slice), then
    :func:`carve_error_regions` (regions whose errors concentrate beyond chance, at their own scale).

    The slices of the analysis and the regions of the structured-error detector
    (:mod:`core.detect.regions`) are cut by this one function, so a structured finding and the
    error slice it belongs to are the same rows. ``info`` gets every pass's choices, among them
    ``carved_slices``: the ids of the carved (significant) regions. ``blind``, a
    :func:`label_blind_cut` of the same vectors and seed, stands in for the label-blind steps
    (default method and k only); the slices are the same as without it.

    Returns
    -------
    np.ndarray
        int64, (N,), slice ids 0..S-1 by decreasing size.
    """
    labels = np.asarray(labels, dtype=np.int64)
    info = {} if info is None else info
    grid_models: dict = {}  # the grid's k-means, fitted once for select_k and the carve
    if blind is not None and method == "auto" and n_slices is None and blind.fits(labels.size, seed):
        x, ids, known = blind.reduced, blind.slice_ids.copy(), blind.grid
        info.update(blind.info)
    else:
        x = reduce(vectors, REDUCED_DIM, seed) if reduced is None else np.asarray(reduced, dtype=np.float32)
        ids = find_slices(vectors, seed=seed, method=method, n_slices=n_slices, reduced=x, info=info,
                          grid_models=grid_models)
        known = None
    wrong = (labels >= 0) & (np.asarray(probabilities).argmax(axis=1) != labels)
    ids = split_error_slices(ids, x, wrong, seed=seed, info=info)
    return carve_error_regions(ids, x, labels, probabilities, seed=seed, info=info, grid_models=grid_models,
                               grid_partitions=known)
