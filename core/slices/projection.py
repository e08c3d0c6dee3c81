"""Linear reduction, the 2-D map (UMAP), and the drawing subsample.

The map is for looking only: slices are found on the higher-dimensional PCA reduction
(:func:`reduce`), never on the 2-D picture.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import warnings

import numpy as np

from core.neighbours import largest_columns, normalise

logger = logging.getLogger(__name__)

__all__ = ["reduce", "project_2d", "drawing_sample"]

#: Dimension of the PCA reduction the slices are cut on (core.slices.clustering).
REDUCED_DIM = 32
#: PCA is fitted on at most this many rows (then applied to all).
PCA_FIT_MAX = 20_000
#: Rows projected at once in float64 (64 MB of 1,024-d vectors): a million rows never need a
#: float64 copy of them all.
PROJECT_BLOCK_ROWS = 8_192
#: Distances held at once by the exact neighbour searches of the map (8 MB of float32): blocks
#: that stay in the processor's cache. 256 MB blocks took 1.32 s for the 10,000-row map's lists,
#: 8 MB ones 0.48 s (two cores; 1, 2 and 4 MB were no faster).
DISTANCE_BLOCK = 2**21
#: Changes when :func:`project_2d` would draw different maps from the same vectors and seed, so
#: that an analysis does not reuse a map an older projection made (core.analysis.run).
MAP_VERSION = "umap-3"
#: Dimension of the reduction the map is laid out from: the slice cut's own, so one analysis
#: computes one PCA for both. On 10,000-row maps of CIFAR-10N
#: (EfficientNet-Lite0), 20 Newsgroups (MiniLM) and a 1,280-d mixture the 32-d input kept the
#: 50-d one's trustworthiness (bench/README.md "The map from the cut's reduction").
MAP_INPUT_DIM = REDUCED_DIM
#: Layout epochs. UMAP itself takes 200 above 10,000 rows and 500 below; 100 halves the
#: single-threaded layout (the map's largest step) for a trustworthiness 0.000-0.013 lower on
#: the same three sets (bench/map_quality.py).
MAP_EPOCHS = 100

# The reductions of the last vectors reduced (their fingerprint -> {(n_components, seed): result}):
# an analysis reduces the same vectors for the structured-regions detector (32-d cut, 128-d
# probe), the slice cut and the map, and the PCA is the costliest part of each (1.2-3 s at
# 10,000 x 1,280 on two cores). At most REDUCTION_CACHE_BYTES of results are kept.
REDUCTION_CACHE_BYTES = 256 * 2**20
_kept_reductions: dict = {"fingerprint": None, "results": {}}
_kept_reductions_lock = threading.Lock()


def _fingerprint(x: np.ndarray) -> tuple:
    """Shape and a digest of the float32 contents: an array changed in place gets a new one."""
    c = np.ascontiguousarray(x, dtype=np.float32)
    digest = hashlib.sha1(memoryview(c).cast("B")).hexdigest() if c.size else ""
    return (c.shape, digest)


def reduce(vectors: np.ndarray, n_components: int = 32, seed: int = 0) -> np.ndarray:
    """L2-normalise, then PCA to ``n_components`` dimensions.

    Parameters
    ----------
    vectors : np.ndarray
        float, shape (N, D).
    n_components : int, default 32
        Target dimension; lowered to ``min(D, N - 1)`` when needed.
    seed : int, default 0
        Seeds the fitting subsample and the randomized SVD.

    Returns
    -------
    np.ndarray
        float32, shape (N, n_components'). PCA is fitted on at most :data:`PCA_FIT_MAX` rows
        (a seeded random subset) and applied to every row, so large N costs one projection.
        A second call with the same contents, ``n_components`` and ``seed`` returns a copy of the
        first one's result without fitting again (results are kept for the last vectors
        reduced, up to :data:`REDUCTION_CACHE_BYTES`).
    """
    fingerprint = _fingerprint(vectors)
    key = (int(n_components), int(seed))
    with _kept_reductions_lock:
        if _kept_reductions["fingerprint"] == fingerprint and key in _kept_reductions["results"]:
            return _kept_reductions["results"][key].copy()
    reduced = _reduce(vectors, n_components, seed)
    with _kept_reductions_lock:
        if _kept_reductions["fingerprint"] != fingerprint:
            _kept_reductions["fingerprint"], _kept_reductions["results"] = fingerprint, {}
        kept = sum(r.nbytes for r in _kept_reductions["results"].values())
        if kept + reduced.nbytes <= REDUCTION_CACHE_BYTES:
            _kept_reductions["results"][key] = reduced.copy()
    return reduced


def _reduce(vectors: np.ndarray, n_components: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    x = normalise(vectors)
    n, d = x.shape
    k = int(min(n_components, d, max(n - 1, 1)))
    if k >= d:
        return x - x.mean(axis=0, keepdims=True)
    rng = np.random.default_rng(seed)
    fit_rows = x if n <= PCA_FIT_MAX else x[np.sort(rng.choice(n, PCA_FIT_MAX, replace=False))]
    pca = PCA(n_components=k, svd_solver="randomized" if k < min(fit_rows.shape) // 2 else "full", random_state=seed)
    # Fitted and applied in float64. In float32 the fit's sums depend on how BLAS splits them
    # over threads: the axes of one and of two threads lay 1e-5 apart, and the cut's k-means
    # turned that into other slices and other findings on the same data (bench/README.md,
    # "The same findings on any machine"). In float64 they agree to 1e-9. The fit (at most
    # PCA_FIT_MAX rows) runs on one BLAS thread, which on two cores is the faster: 10,000 x 1,280
    # to 32 and 128 axes in 0.68 and 0.91 s against 1.01 and 1.35 s with two threads.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        pca.fit(fit_rows.astype(np.float64))
    mean, axes = pca.mean_, pca.components_.T
    out = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, PROJECT_BLOCK_ROWS):
        block = x[start : start + PROJECT_BLOCK_ROWS].astype(np.float64)
        out[start : start + PROJECT_BLOCK_ROWS] = (block - mean) @ axes
    return out


_umap_compilation_cached = False


def _import_umap_caching_compilation():
    """Import umap-learn with numba keeping its compiled functions on disk.

    umap-learn's numba functions are not declared ``cache=True``, so every fresh process compiled
    them again on its first map: about 7 s on two cores, even for 300 rows, most of a small
    project's ``amend analyse`` (bench/README.md "Analyse speed"). Turning numba's own on-disk
    cache on for them (before their first call) makes every later process load the compiled code
    instead. numba keeps the cache beside umap's sources, or in its user cache folder when those
    are read-only, and recompiles when umap's sources change. Best effort: where no cache folder
    can be written, numba compiles as before.
    """
    global _umap_compilation_cached
    import umap

    if _umap_compilation_cached:
        return umap
    _umap_compilation_cached = True
    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:  # a numba without this layout: compile as before
        return umap
    for name, module in list(sys.modules.items()):
        if not (name == "umap" or name.startswith("umap.")) or module is None:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, CPUDispatcher):
                try:
                    value.enable_caching()
                except Exception as exc:  # no writable cache folder: this function compiles each time
                    logger.debug("numba cannot cache %s.%s: %s", name, getattr(value, "__name__", "?"), exc)
    return umap


def _cuda_available() -> bool:
    from core.util import resolve_device

    try:
        return resolve_device("auto") == "cuda"
    except Exception:  # pragma: no cover - torch is a dependency; be safe anyway
        return False


def _umap_gpu(x: np.ndarray, seed: int, n_neighbors: int, min_dist: float) -> np.ndarray | None:
    try:
        from cuml.manifold import UMAP as CuUMAP  # type: ignore[import-not-found]
    except Exception:
        return None
    model = CuUMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed)
    out = model.fit_transform(x)
    return np.asarray(out.get() if hasattr(out, "get") else out, dtype=np.float32)


def _smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k smallest values, smallest first (ties by column)."""
    # the threshold scan of the kNN graph's search: half of np.argpartition's time on the map's
    # 200 x 10,000 blocks
    part = largest_columns(-values, k) if k < values.shape[1] else \
        np.broadcast_to(np.arange(values.shape[1]), values.shape)
    order = np.lexsort((part, np.take_along_axis(values, part, 1)), axis=1)
    return np.take_along_axis(part, order, 1)


def _knn_place(fit_x: np.ndarray, fit_2d: np.ndarray, rest_x: np.ndarray, k: int = 10) -> np.ndarray:
    """Place rows at the similarity-weighted mean of their k nearest fitted rows' 2-D points."""
    a = np.ascontiguousarray(fit_x, dtype=np.float32)
    b = np.ascontiguousarray(rest_x, dtype=np.float32)
    k = min(k, a.shape[0])
    idx, d2 = _nearest_fitted(a, b, k)
    w = 1.0 / (np.sqrt(np.clip(d2, 0, None)) + 1e-6)
    w = w / w.sum(1, keepdims=True)
    return np.einsum("nk,nkd->nd", w, fit_2d[idx]).astype(np.float32)


def _nearest_fitted(a: np.ndarray, b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``b``'s k nearest rows of ``a`` (indices, squared Euclidean distances), exact.

    faiss's exact flat index when installed (a dependency; placing 80,000 rows beside 20,000
    fitted ones at 32-d took 5.3 s against 13.3 s for the blocked numpy products and selection
    below, two cores), else the numpy search.
    """
    try:
        import faiss
    except ImportError:
        faiss = None
    if faiss is not None:
        index = faiss.IndexFlatL2(a.shape[1])
        index.add(a)
        d2, idx = index.search(b, k)
        return idx.astype(np.int64), d2
    idx = np.empty((b.shape[0], k), dtype=np.int64)
    d2 = np.empty((b.shape[0], k), dtype=np.float32)
    block = max(1, DISTANCE_BLOCK // max(a.shape[0], 1))
    a_sq = (a * a).sum(1)
    for start in range(0, b.shape[0], block):
        rows = b[start : start + block]
        dist = (rows * rows).sum(1, keepdims=True) - 2.0 * (rows @ a.T) + a_sq[None, :]
        idx[start : start + block] = _smallest(dist, k)
        d2[start : start + block] = np.take_along_axis(dist, idx[start : start + block], 1)
    return idx, d2


def _euclidean_knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows by Euclidean distance, each row itself first (distance 0): the
    neighbour lists UMAP would otherwise search with NN-descent (:func:`_nearest_fitted`, so
    faiss where installed: 0.46 s against 0.75 s for 10,000 x 32 on two cores)."""
    a = np.ascontiguousarray(x, dtype=np.float32)
    n = a.shape[0]
    idx, d2 = _nearest_fitted(a, a, k)
    rows = np.arange(n)
    # Itself first, even where exact duplicates tie with it or crowd it out of the k found: the
    # other neighbours keep their order behind it.
    others = np.argsort(idx == rows[:, None], axis=1, kind="stable")[:, : k - 1]
    indices = np.concatenate([rows[:, None], np.take_along_axis(idx, others, 1)], 1)
    distances = np.zeros((n, k), dtype=np.float32)
    distances[:, 1:] = np.sqrt(np.clip(np.take_along_axis(d2, others, 1), 0, None))
    return indices, distances


def project_2d(
    vectors: np.ndarray,
    seed: int = 0,
    max_points_fit: int = 20_000,
    device: str = "auto",
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    n_epochs: int = MAP_EPOCHS,
    input_dim: int = MAP_INPUT_DIM,
) -> np.ndarray:
    """A 2-D map of a representation, for drawing.

    Parameters
    ----------
    vectors : np.ndarray
        float, shape (N, D).
    seed : int, default 0
        Same vectors and seed give the same map (on CPU).
    max_points_fit : int, default 20000
        UMAP is fitted on at most this many rows (a seeded random subset); every other row is
        placed at the distance-weighted mean of its 10 nearest fitted rows (in the PCA
        space). Every row gets a point; only the fitting is sampled. The fitted rows' neighbour
        lists are found by exact search (:func:`_euclidean_knn`) and handed to UMAP.
    device : str, default "auto"
        ``"auto"`` uses cuML's UMAP when it is importable and CUDA is visible (on all rows,
        no sampling), umap-learn otherwise; ``"cpu"`` forces umap-learn; ``"cuda"`` requires cuML.
    n_neighbors, min_dist :
        UMAP parameters (defaults 15 and 0.1).
    n_epochs : int, default MAP_EPOCHS
        Layout epochs of umap-learn (cuML chooses its own).
    input_dim : int, default MAP_INPUT_DIM
        The map is laid out from the PCA reduction of ``vectors`` to this many dimensions
        (:func:`reduce`; the slice cut's own at the default, so an analysis fits one PCA).

    Returns
    -------
    np.ndarray
        float32, shape (N, 2).
    """
    x = reduce(vectors, n_components=input_dim, seed=seed)
    n = x.shape[0]
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device in ("auto", "cuda") and _cuda_available() and n > n_neighbors + 1:
        out = _umap_gpu(x, seed, n_neighbors, min_dist)
        if out is not None:
            return out
        if device == "cuda":
            raise RuntimeError("device='cuda' needs cuML (RAPIDS) installed; use device='auto' or 'cpu'")
    elif device == "cuda":
        raise RuntimeError("device='cuda' asked for but CUDA is not available")
    if n <= max(n_neighbors + 1, 3):
        # Too few rows for a neighbour graph: the first two principal axes are the honest map.
        out = np.zeros((n, 2), dtype=np.float32)
        out[:, : min(2, x.shape[1])] = x[:, :2]
        return out
    umap = _import_umap_caching_compilation()

    rng = np.random.default_rng(seed)
    fit_idx = np.arange(n) if n <= max_points_fit else np.sort(rng.choice(n, max_points_fit, replace=False))
    # The neighbour lists are searched here, exactly, rather than by UMAP's NN-descent: in a fresh
    # process NN-descent's compilation took most of the map's time (10,000 x 1,280 on two cores:
    # 42.6 s for the first map against 10.7 s with the lists given; bench/README.md "Analyse
    # speed").
    k = min(n_neighbors, fit_idx.size - 1)
    knn = _euclidean_knn(x[fit_idx], k)
    model = umap.UMAP(n_components=2, n_neighbors=k, min_dist=min_dist, random_state=seed, n_epochs=int(n_epochs),
                      precomputed_knn=(knn[0], knn[1], None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state" and numba chatter
        fit_2d = model.fit_transform(x[fit_idx]).astype(np.float32)
    if fit_idx.size == n:
        return fit_2d
    out = np.empty((n, 2), dtype=np.float32)
    out[fit_idx] = fit_2d
    rest = np.setdiff1d(np.arange(n), fit_idx, assume_unique=True)
    out[rest] = _knn_place(x[fit_idx], fit_2d, x[rest])
    return out


def drawing_sample(slice_ids: np.ndarray, max_points: int = 20_000, seed: int = 0) -> np.ndarray:
    """Row indices to draw when N is large: at most ``max_points``, every slice kept visible.

    Each slice gets a share proportional to its size but at least ``min(size, 50)`` points, so a
    small error slice does not vanish from the picture. Analysis always uses all rows; only the
    drawing is sampled.

    Returns
    -------
    np.ndarray
        int64, sorted row indices.
    """
    slice_ids = np.asarray(slice_ids)
    n = slice_ids.shape[0]
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    keep = []
    ids, counts = np.unique(slice_ids, return_counts=True)
    for s, c in zip(ids, counts):
        take = int(min(c, max(min(c, 50), round(max_points * c / n))))
        members = np.flatnonzero(slice_ids == s)
        keep.append(rng.choice(members, take, replace=False))
    return np.sort(np.concatenate(keep))
