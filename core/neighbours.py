"""One kNN graph per representation, computed once and shared by every detector.

Cosine similarity on L2-normalised vectors. Exact search by blocked matrix products (torch on a
GPU, blocks sized to memory; numpy on CPU, where each block of the symmetric product serves
both its rows and its columns); approximate search with faiss-cpu (optional
dependency) beyond :data:`EXACT_MAX_CPU` rows on CPU.

Measured on a 2-core AMD EPYC, 512-d, k=10 (bench/README.md, "Analyse speed"):
exact torch 0.8 s at 10k and 69 s at 100k (the N^2 product dominates: about 120 GFLOP/s);
faiss ``IndexFlatIP`` is no faster (67 s at 100k); faiss HNSW (M=32, efSearch=64) took 62 s at
100k including the build, with recall@10 of 0.27 on weakly clustered data; faiss IVF-Flat
(nlist = 4 sqrt(N), nprobe=16) on a 100-cluster mixture: 0.30 s at 10k (recall 1.000) and 18.5 s
at 100k (recall 0.999) against 0.68 s / 77 s exact. IVF grows as N^1.5, exact as N^2, so exact
stays the default up to :data:`EXACT_MAX_CPU` (about 20 s exact) and IVF takes over beyond.
"""

from __future__ import annotations

import logging
import math
import weakref
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from core.util import resolve_device, unit_rows

logger = logging.getLogger(__name__)

__all__ = ["KnnGraph", "build_knn_graph", "largest_columns", "normalise", "shared_unit_rows", "exact_neighbours", "sampled_recall", "EXACT_MAX_CPU", "RECALL_QUERIES"]

#: Above this many rows on CPU, use faiss IVF (when installed) instead of the exact N^2 search.
EXACT_MAX_CPU = 50_000
#: Rows whose exact neighbours are searched to measure an approximate graph's recall.
RECALL_QUERIES = 500
#: Bytes of similarities held at once when those rows are searched exactly.
EXACT_QUERY_BYTES = 64 * 2**20
#: Rows (and columns) per block of the similarity matrix in the exact search on CPU.
CPU_SYMMETRIC_BLOCK = 1024
#: Rows of a similarity block transposed at a time (:func:`_transposed`).
TRANSPOSE_STRIP = 16


@dataclass(frozen=True)
class KnnGraph:
    """The k nearest neighbours of every row, self excluded.

    Attributes
    ----------
    indices : np.ndarray
        int64, shape (N, k); row i lists i's neighbours, most similar first.
    similarities : np.ndarray
        float32, shape (N, k); cosine similarity to each neighbour, non-increasing along a row.
    method : str
        ``"exact"`` or ``"faiss-ivf"``: how the graph was built (for the run record).
    """

    indices: np.ndarray
    similarities: np.ndarray
    method: str = "exact"

    def __post_init__(self) -> None:
        if self.indices.shape != self.similarities.shape or self.indices.ndim != 2:
            raise ValueError(
                f"indices {self.indices.shape} and similarities {self.similarities.shape} must be equal (N, k)"
            )

    @property
    def k(self) -> int:
        """Neighbours per row."""
        return int(self.indices.shape[1])

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def truncate(self, k: int) -> "KnnGraph":
        """The same graph keeping only the ``k`` nearest neighbours of each row."""
        if k > self.k:
            raise ValueError(f"graph has k={self.k}; cannot widen it to {k}, rebuild it")
        return KnnGraph(self.indices[:, :k], self.similarities[:, :k], self.method)


# Read-only results of shared_unit_rows still alive (weak references: they go with their arrays).
_shared_unit: list = []


def shared_unit_rows(vectors: np.ndarray) -> np.ndarray:
    """:func:`normalise`, read-only, and remembered: :func:`normalise` returns this array as it
    is, without checking or copying it again.

    An analysis hands the same vectors to the kNN graph, the probe, the outlier detector and
    the reduction, and each normalised them again: four checks and copies, 0.34 s of a 10,000 x
    1,280 detection and ten times that at 100,000 rows. The result is read-only so that it
    cannot stop being what it was checked to be.
    """
    out = normalise(vectors)
    out.flags.writeable = False
    _shared_unit[:] = [ref for ref in _shared_unit if ref() is not None] + [weakref.ref(out)]
    return out


def normalise(vectors: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit L2 norm; zero rows stay zero.

    Parameters
    ----------
    vectors : np.ndarray
        shape (N, D). A result of :func:`shared_unit_rows` comes back as it is.
    """
    if any(ref() is vectors for ref in _shared_unit):
        return vectors
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be a 2-D (N, D) array, got shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise ValueError("vectors contain NaN or infinite values")
    return unit_rows(vectors)


def _sort_rows(idx: np.ndarray, sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    # Deterministic ties: order by similarity descending, then by index ascending, whatever
    # order topk/faiss returned them in.
    order = np.lexsort((idx, -sim), axis=1)[:, :k]
    return np.take_along_axis(idx, order, 1), np.take_along_axis(sim, order, 1)


def _exact(
    x: np.ndarray, k: int, device: str, progress: Optional[Callable[[str, int, Optional[int]], None]]
) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[0]
    # One extra candidate so a boundary tie can still be ordered by index.
    kk = min(k + 1, n - 1)
    if not device.startswith("cuda"):
        return _exact_symmetric(x, k, kk, progress)
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    budget = free // 4  # leave room for topk workspace and other tenants
    block = int(max(1, min(n, budget // max(1, 4 * n))))
    xt = torch.from_numpy(x).to(device)
    indices = np.empty((n, kk), dtype=np.int64)
    sims = np.empty((n, kk), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, n, block):
            stop = min(n, start + block)
            sim = xt[start:stop] @ xt.T
            rows = torch.arange(stop - start, device=xt.device)
            sim[rows, rows + start] = -math.inf  # exclude self
            val, idx = torch.topk(sim, kk, dim=1)
            indices[start:stop] = idx.cpu().numpy()
            sims[start:stop] = val.cpu().numpy()
            if progress is not None:
                progress("neighbours", stop, n)
    return _sort_rows(indices, sims, k)


def largest_columns(sim: np.ndarray, kk: int) -> np.ndarray:
    """Column index of each row's ``kk`` largest similarities (in no particular order).

    The threshold comes from ``np.partition`` (values only) and the columns from one scan of
    the rows at or above it, which together take half the time of ``np.argpartition`` on the
    1,024 x 1,024 blocks of :func:`_exact_symmetric` (3.7 ms against 7.3 ms). A row with a tie
    at its threshold has more than ``kk`` such columns; then the block falls back to
    ``np.argpartition``, which keeps exactly ``kk``.
    """
    m = sim.shape[1]
    threshold = np.partition(sim, m - kk, axis=1)[:, m - kk]
    at_or_above = np.flatnonzero(sim >= threshold[:, None])
    if at_or_above.size != sim.shape[0] * kk:
        return np.argpartition(sim, m - kk, axis=1)[:, m - kk:]
    return (at_or_above % m).reshape(sim.shape[0], kk)


def _transposed(sim: np.ndarray) -> np.ndarray:
    """``sim.T`` as a C-contiguous copy, 16 rows of ``sim`` at a time.

    One ``np.ascontiguousarray(sim.T)`` of a 1,024 x 1,024 float32 block walks memory with a
    4 KB stride and took 9-10 ms; strips of 16 rows stay in cache and take 2.5 ms.
    """
    out = np.empty((sim.shape[1], sim.shape[0]), dtype=sim.dtype)
    for start in range(0, sim.shape[0], TRANSPOSE_STRIP):
        out[:, start:start + TRANSPOSE_STRIP] = sim[start:start + TRANSPOSE_STRIP].T
    return out


def _keep_best(best_sim: np.ndarray, best_idx: np.ndarray, r0: int, r1: int, sim: np.ndarray, c0: int) -> None:
    """Merge one block of similarities (rows r0:r1, columns from c0) into each row's best so far."""
    kk = best_sim.shape[1]
    m = sim.shape[1]
    if m > kk:
        cand = largest_columns(sim, kk)
    else:
        cand = np.broadcast_to(np.arange(m), sim.shape)
    val = np.concatenate([best_sim[r0:r1], np.take_along_axis(sim, cand, 1)], 1)
    idx = np.concatenate([best_idx[r0:r1], cand + c0], 1)
    keep = np.argpartition(val, val.shape[1] - kk, axis=1)[:, val.shape[1] - kk:]
    best_sim[r0:r1] = np.take_along_axis(val, keep, 1)
    best_idx[r0:r1] = np.take_along_axis(idx, keep, 1)


def _exact_symmetric(
    x: np.ndarray, k: int, kk: int, progress: Optional[Callable[[str, int, Optional[int]], None]]
) -> tuple[np.ndarray, np.ndarray]:
    """Exact search on CPU computing each block of the (symmetric) similarity matrix once.

    The block of rows a against columns b is also the block of rows b against columns a,
    transposed: each product serves both sides, which halves the N^2 D multiply-adds that are
    nearly all of the time (10,000 x 1,280 on two cores: 1.7 s -> 1.1 s, the same graph). Each
    row keeps its best ``kk`` so far, merged block by block. numpy, not torch: the same BLAS
    product and the same graph in the same time, without importing torch (1.6 s of a 10k
    analysis on a machine with no GPU).
    """
    n = x.shape[0]
    block = CPU_SYMMETRIC_BLOCK
    best_sim = np.full((n, kk), -np.inf, dtype=np.float32)
    best_idx = np.full((n, kk), -1, dtype=np.int64)
    for a in range(0, n, block):
        a1 = min(n, a + block)
        rows = x[a:a1]
        for b in range(a, n, block):
            b1 = min(n, b + block)
            sim = rows @ x[b:b1].T
            if a == b:
                np.fill_diagonal(sim, -np.inf)  # exclude self
            _keep_best(best_sim, best_idx, a, a1, sim, b)
            if b != a:
                _keep_best(best_sim, best_idx, b, b1, _transposed(sim), a)
        if progress is not None:
            progress("neighbours", a1, n)  # rows before a1 have now met every column
    return _sort_rows(best_idx, best_sim, k)


def _faiss_ivf(x: np.ndarray, k: int, seed: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    n, d = x.shape
    nlist = max(1, int(4 * math.sqrt(n)))
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed  # k-means seeding: same input, same graph
    index.train(x)
    index.add(x)
    index.nprobe = nprobe
    sim, idx = index.search(x, k + 2)
    self_hit = idx == np.arange(n)[:, None]
    # Drop self (and faiss's -1 padding) by pushing them to the end before sorting.
    sim = np.where(self_hit | (idx < 0), -np.inf, sim).astype(np.float32)
    idx = np.where(idx < 0, n, idx)
    return _sort_rows(idx, sim, k)


def build_knn_graph(
    vectors: np.ndarray,
    k: int = 10,
    method: str = "auto",
    device: str = "auto",
    seed: int = 0,
    nprobe: int = 16,
    progress: Optional[Callable[[str, int, Optional[int]], None]] = None,
) -> KnnGraph:
    """Cosine kNN graph of ``vectors``, self excluded.

    Parameters
    ----------
    vectors : np.ndarray
        shape (N, D); normalised here (zero rows stay zero).
    k : int, default 10
        Neighbours per row; capped at N - 1.
    method : str, default "auto"
        ``"exact"``, ``"faiss"`` (IVF, approximate) or ``"auto"``: exact on GPU and up to
        :data:`EXACT_MAX_CPU` rows on CPU, faiss beyond when it is installed.
    device : str, default "auto"
        Device for the exact search.
    seed : int, default 0
        Seed of the IVF k-means (the exact search has no randomness).
    nprobe : int, default 16
        IVF lists visited per query.
    progress : callable, optional
        ``progress(step, done, total)``.

    Returns
    -------
    KnnGraph
        Ties are ordered by neighbour index, so equal inputs give equal graphs.
    """
    x = normalise(vectors)
    n = x.shape[0]
    if n < 2:
        raise ValueError("a kNN graph needs at least 2 vectors")
    k = int(min(k, n - 1))
    if k < 1:
        raise ValueError("k must be at least 1")
    dev = resolve_device(device)
    if method == "auto":
        method = "exact"
        if dev == "cpu" and n > EXACT_MAX_CPU:
            try:
                import faiss  # noqa: F401

                method = "faiss"
            except ImportError:
                logger.warning("faiss-cpu is not installed; exact kNN on %d rows will be slow", n)
    if method == "exact":
        idx, sim = _exact(x, k, dev, progress)
        name = "exact"
    elif method == "faiss":
        idx, sim = _faiss_ivf(x, k, seed, nprobe)
        name = "faiss-ivf"
    else:
        raise ValueError(f"unknown kNN method {method!r}; use 'auto', 'exact' or 'faiss'")
    return KnnGraph(np.ascontiguousarray(idx), np.ascontiguousarray(sim, dtype=np.float32), name)


def exact_neighbours(vectors: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The exact k nearest rows (cosine, self excluded, in no particular order) of each of
    ``rows``: one product of those rows against all, for measuring an approximate graph."""
    x = normalise(vectors)
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((rows.size, k), dtype=np.int64)
    # A few rows at a time: all 500 rows against 1M columns were 2 GB of similarities, and as
    # much again for their negation and twice that for argpartition's indices.
    step = max(1, EXACT_QUERY_BYTES // max(1, 4 * x.shape[0]))
    for start in range(0, rows.size, step):
        part = rows[start:start + step]
        sims = x[part] @ x.T
        sims[np.arange(part.size), part] = -np.inf  # self excluded, as in the graph
        np.negative(sims, out=sims)
        out[start:start + step] = np.argpartition(sims, k - 1, axis=1)[:, :k]
    return out


def sampled_recall(vectors: np.ndarray, graph: KnnGraph, queries: int = RECALL_QUERIES, seed: int = 0) -> float:
    """Recall@k of ``graph`` against exact cosine search, on ``queries`` seeded random rows.

    An approximate graph (faiss IVF) is only as good as the data's clustering lets it be: on
    well-clustered embeddings it finds nearly every true neighbour, on diffuse ones far fewer
    (bench/README.md, "Analyse speed"). The exact neighbours of a few hundred rows cost one product
    of those rows against all, so every analysis that uses an approximate graph can say how good
    its graph was on the user's own data. Padding (-1) in the graph counts as a miss.
    """
    n = np.asarray(vectors).shape[0]
    if len(graph) != n:
        raise ValueError(f"graph has {len(graph)} rows but there are {n} vectors")
    rows = np.sort(np.random.default_rng(seed).choice(n, min(queries, n), replace=False))
    exact = exact_neighbours(vectors, rows, graph.k)
    found = graph.indices[rows]
    hits = sum(int(np.isin(exact[i], found[i][found[i] >= 0]).sum()) for i in range(rows.size))
    return hits / float(exact.size)
