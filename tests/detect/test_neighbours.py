import numpy as np
import pytest

from core import neighbours
from core.neighbours import KnnGraph, build_knn_graph, normalise, sampled_recall


def brute(x, k):
    x = normalise(x)
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    idx = np.array([sorted(range(len(x)), key=lambda j: (-s[i, j], j))[:k] for i in range(len(x))])
    return idx, np.take_along_axis(s, idx, 1)


def test_exact_graph_matches_brute_force_and_excludes_self():
    x = np.random.default_rng(1).normal(size=(120, 8))
    g = build_knn_graph(x, k=5, method="exact", device="cpu")
    idx, sim = brute(x, 5)
    assert (g.indices != np.arange(120)[:, None]).all()
    np.testing.assert_array_equal(g.indices, idx)
    np.testing.assert_allclose(g.similarities, sim, atol=1e-5)
    assert (np.diff(g.similarities, axis=1) <= 1e-7).all()


def test_exact_graph_across_many_blocks_matches_brute_force(monkeypatch):
    # Small blocks, so rows meet most of their columns as the transpose of an earlier block
    # (the symmetric search), and a last block shorter than the rest.
    monkeypatch.setattr(neighbours, "CPU_SYMMETRIC_BLOCK", 32)
    x = np.random.default_rng(2).normal(size=(203, 6))
    g = build_knn_graph(x, k=7, method="exact", device="cpu")
    xn = normalise(x)
    s = xn @ xn.T
    np.fill_diagonal(s, -np.inf)
    expected = np.argsort(-s, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(g.indices, expected)
    np.testing.assert_allclose(g.similarities, np.take_along_axis(s, expected, 1), atol=1e-5)


def test_best_columns_keep_each_rows_largest_values_with_and_without_ties():
    rng = np.random.default_rng(7)
    plain = rng.normal(size=(40, 50)).astype(np.float32)
    tied = np.round(plain, 0)  # many equal values, also at the rows' thresholds
    for sim in (plain, tied):
        cols = neighbours.largest_columns(sim, 6)
        assert cols.shape == (40, 6)
        assert all(len(set(r)) == 6 for r in cols.tolist())
        np.testing.assert_array_equal(np.sort(np.take_along_axis(sim, cols, 1), 1), np.sort(sim, 1)[:, -6:])


@pytest.mark.parametrize("shape", [(1, 5), (16, 16), (17, 3), (45, 33)])
def test_transposed_copy_equals_the_transpose(shape):
    sim = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    out = neighbours._transposed(sim)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, sim.T)


def test_exact_graph_with_duplicate_rows_across_blocks(monkeypatch):
    # Exact duplicates tie at a row's threshold inside blocks and across them.
    monkeypatch.setattr(neighbours, "CPU_SYMMETRIC_BLOCK", 16)
    base = np.random.default_rng(3).normal(size=(30, 5))
    x = np.vstack([base, base, base[:10]])
    g = build_knn_graph(x, k=4, method="exact", device="cpu")
    _, sim = brute(x, 4)
    # float32 products round a tie differently in different blocks, so which of two tied
    # columns comes first may differ from brute force; the neighbours' similarities may not.
    np.testing.assert_allclose(g.similarities, sim, atol=1e-5)
    xn = normalise(x)
    np.testing.assert_allclose(np.einsum("id,ikd->ik", xn, xn[g.indices]), sim, atol=1e-5)
    assert (g.indices != np.arange(len(x))[:, None]).all()
    assert all(len(set(r)) == 4 for r in g.indices.tolist())


def test_exact_neighbours_of_sampled_rows_in_several_parts(monkeypatch):
    monkeypatch.setattr(neighbours, "EXACT_QUERY_BYTES", 4 * 90 * 3)  # three rows per part
    x = np.random.default_rng(4).normal(size=(90, 6))
    rows = np.array([0, 5, 17, 44, 45, 46, 89])
    found = neighbours.exact_neighbours(x, rows, 4)
    idx, _ = brute(x, 4)
    assert [sorted(r) for r in found.tolist()] == [sorted(r) for r in idx[rows].tolist()]


def test_ties_are_broken_by_index():
    # four identical points: every neighbour ties at similarity 1; order must be by index
    x = np.vstack([np.ones((4, 3)), -np.ones((2, 3))])
    g = build_knn_graph(x, k=3, method="exact", device="cpu")
    assert g.indices[0].tolist() == [1, 2, 3]
    assert g.indices[3].tolist() == [0, 1, 2]


def test_faiss_graph_agrees_with_exact_on_clustered_data():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(10, 32))
    x = centres[rng.integers(0, 10, 3000)] + 0.3 * rng.normal(size=(3000, 32))
    exact = build_knn_graph(x, k=10, method="exact", device="cpu")
    approx = build_knn_graph(x, k=10, method="faiss", device="cpu")
    assert approx.method == "faiss-ivf"
    assert (approx.indices != np.arange(3000)[:, None]).all()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact.indices, approx.indices)])
    assert recall > 0.95
    again = build_knn_graph(x, k=10, method="faiss", device="cpu")
    np.testing.assert_array_equal(approx.indices, again.indices)


def test_sampled_recall_measures_a_graph_against_exact_search():
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(10, 16))
    x = centres[rng.integers(0, 10, 800)] + 0.3 * rng.normal(size=(800, 16))
    exact = build_knn_graph(x, k=8, method="exact", device="cpu")
    assert sampled_recall(x, exact, queries=200) == pytest.approx(1.0)
    # a graph that lost half of every row's neighbours (replaced by padding) recalls half
    half = exact.indices.copy()
    half[:, 4:] = -1
    assert sampled_recall(x, KnnGraph(half, exact.similarities, "faiss-ivf"), queries=200) == pytest.approx(0.5)
    # random neighbours recall almost nothing
    scrambled = KnnGraph(rng.integers(0, 800, size=exact.indices.shape), exact.similarities, "faiss-ivf")
    assert sampled_recall(x, scrambled, queries=200) < 0.1
    with pytest.raises(ValueError):
        sampled_recall(x[:10], exact)


def test_detect_records_the_recall_of_an_approximate_graph_only():
    pytest.importorskip("faiss")
    from core.detect import DetectConfig, detect

    rng = np.random.default_rng(5)
    centres = rng.normal(size=(4, 16))
    truth = rng.integers(0, 4, 600)
    x = centres[truth] + 0.3 * rng.normal(size=(600, 16))
    approx = detect(x, truth, 4, config=DetectConfig(knn_method="faiss"))
    assert 0.9 < approx.params["knn_recall_sampled"] <= 1.0
    assert "neighbours_recall" in approx.timings
    exact = detect(x, truth, 4, config=DetectConfig(knn_method="exact"))
    assert exact.params["knn_recall_sampled"] is None


def test_k_is_capped_and_bad_input_refused():
    g = build_knn_graph(np.eye(4), k=10, device="cpu")
    assert g.k == 3
    with pytest.raises(ValueError):
        build_knn_graph(np.ones((1, 3)))
    with pytest.raises(ValueError):
        build_knn_graph(np.array([[np.nan, 1.0], [1.0, 0.0]]))
    with pytest.raises(ValueError):
        KnnGraph(np.zeros((3, 2), int), np.zeros((3, 1), np.float32))
    assert g.truncate(2).k == 2


def test_cuda_graph_matches_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    x = np.random.default_rng(3).normal(size=(500, 16))
    cpu = build_knn_graph(x, k=8, method="exact", device="cpu")
    gpu = build_knn_graph(x, k=8, method="exact", device="cuda")
    np.testing.assert_array_equal(cpu.indices, gpu.indices)
    np.testing.assert_allclose(cpu.similarities, gpu.similarities, atol=1e-5)


def test_shared_unit_rows_are_checked_and_copied_once():
    from core.neighbours import normalise, shared_unit_rows

    raw = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32) * 3.0
    shared = shared_unit_rows(raw)
    np.testing.assert_allclose(np.linalg.norm(shared, axis=1), 1.0, rtol=1e-6)
    assert normalise(shared) is shared  # the detectors' own normalise: no second copy
    with pytest.raises(ValueError, match="read-only"):
        shared[0, 0] = 5.0
    again = normalise(raw)  # the raw input is not the shared array: normalised as usual
    assert again is not shared and again.flags.writeable
    np.testing.assert_array_equal(again, shared)
    bad = raw.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        shared_unit_rows(bad)
