"""Finding slices, measuring them, ranking error slices, end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.slices import discover_slices, drawing_sample, error_slices, find_slices, project_2d, reduce, slice_table
from core.slices.projection import REDUCED_DIM


@pytest.fixture(params=["faiss", "numpy"])
def faiss_or_numpy(request, monkeypatch):
    """The map's neighbour searches through faiss, then with faiss hidden (its numpy fallback)."""
    import sys

    if request.param == "faiss":
        pytest.importorskip("faiss")
    else:
        monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` then raises ImportError
    return request.param


def _cluster_of(ids, clusters, slice_id):
    members = clusters[ids == slice_id]
    return np.bincount(members).argmax(), np.bincount(members).max() / members.size


@pytest.mark.parametrize("method", ["kmeans", "hdbscan"])
def test_planted_cluster_is_the_top_error_slice(planted, method):
    info = {}
    ids = find_slices(planted["x"], seed=0, method=method, info=info)
    table = slice_table(ids, planted["noisy"], planted["probs"], n_classes=3, class_names=["a", "b", "c"])
    top = error_slices(table).iloc[0]
    cluster, purity = _cluster_of(ids, planted["clusters"], top["slice_id"])
    assert cluster == 2 and purity > 0.9
    assert np.isin(planted["flip"], np.flatnonzero(ids == top["slice_id"])).mean() > 0.9
    assert top["p_value"] < 1e-6 and top["relative_error"] > 2
    assert top["error_rank"] == 1


def test_kmeans_chooses_the_planted_number_of_clusters(planted):
    info = {}
    find_slices(planted["x"], seed=0, method="kmeans", info=info)
    assert info["n_slices"] == 6  # six well-separated clusters, silhouette peaks there
    assert max(info["silhouette"], key=info["silhouette"].get) == 6


def test_slice_table_figures_are_right_on_a_hand_case():
    ids = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    labels = np.array([0, 0, 1, 1, 0, 0, 0, 0, 0, 1])
    pred = np.array([0, 1, 0, 1, 0, 0, 0, 0, 0, 1])  # slice 0: 2 of 4 wrong; slice 1: none
    probs = np.eye(2)[pred] * 0.9 + 0.05
    flagged = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], dtype=bool)
    t = slice_table(ids, labels, probs, flagged, 2, ["cat", "dog"]).set_index("slice_id")
    assert t.loc[0, "size"] == 4 and t.loc[0, "accuracy"] == 0.5 and t.loc[0, "flag_rate"] == 0.5
    assert t.loc[0, "error_rate_whole"] == pytest.approx(0.2)
    assert t.loc[0, "relative_error"] == pytest.approx(2.5)
    assert t.loc[0, "class_mix"] == [{"class": "cat", "share": 0.5}, {"class": "dog", "share": 0.5}]
    assert t.loc[1, "error_rate"] == 0 and t.loc[1, "error_score"] == 0 and not t.loc[1, "is_error_slice"]
    # Rest of slice 0 has rate 0: any error is "impossible" under the rest's rate.
    assert t.loc[0, "p_value"] == 0 and t.loc[0, "excess_errors"] == 2


def test_unlabelled_rows_are_left_out_of_accuracy():
    ids = np.array([0, 0, 1, 1])
    labels = np.array([0, -1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.2, 0.8], [0.6, 0.4]])
    t = slice_table(ids, labels, probs).set_index("slice_id")
    assert t.loc[0, "accuracy"] == 1.0 and t.loc[1, "accuracy"] == 0.5


def test_slice_table_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="share N"):
        slice_table(np.zeros(3, int), np.zeros(4, int), np.ones((3, 2)) / 2)


def test_same_seed_same_slices_and_map(planted):
    x = planted["x"][::3]
    assert np.array_equal(find_slices(x, seed=1), find_slices(x, seed=1))
    a = project_2d(x, seed=1)
    assert a.shape == (x.shape[0], 2) and np.all(np.isfinite(a))
    assert np.array_equal(a, project_2d(x, seed=1))


def _mixture(seed: int, n: int, dim: int, centres: int, spread: float) -> np.ndarray:
    """float32 (n, dim): Gaussian noise around ``centres`` random centres scaled by ``spread``."""
    rng = np.random.default_rng(seed)
    picked = rng.normal(size=(centres, dim))[rng.integers(0, centres, n)]
    return (spread * picked + rng.normal(size=(n, dim))).astype(np.float32)


def _with_one_and_two_threads(compute):
    """[compute() under a one-thread BLAS/OpenMP limit, compute() under a two-thread one]."""
    from threadpoolctl import threadpool_limits

    results = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            results.append(compute())
    return results


def test_the_reduction_does_not_depend_on_the_blas_threads():
    # fitted in float32 the axes of one and two threads lay 1e-5..1e-4 apart, and the cut's
    # k-means turned that into other slices on the same data (bench/README.md)
    from core.slices import projection

    x = _mixture(0, 2_000, 256, 10, 0.2)
    # _reduce, not reduce: fitted each time, not the kept result
    one, two = _with_one_and_two_threads(lambda: projection._reduce(x, REDUCED_DIM, 0))
    assert np.abs(one - two).max() < 1e-7


def test_the_cuts_kmeans_does_not_depend_on_the_openmp_threads():
    # in float32 scikit-learn's per-thread sums of the centres differ with the thread count: on
    # this mixture one and two threads labelled 24 rows apart
    import sklearn.cluster  # noqa: F401  its OpenMP runtime loaded, so that the limits reach it

    from core.slices.clustering import _kmeans

    x = _mixture(4, 20_000, 32, 30, 0.6)
    one, two = _with_one_and_two_threads(lambda: _kmeans(x, 12, 0, n_init=2).labels_)
    np.testing.assert_array_equal(one, two)


def test_the_reduction_projected_in_blocks_is_the_one_projected_at_once(planted, monkeypatch):
    from core.slices import projection

    x = planted["x"][::3]
    at_once = projection._reduce(x, 16, 0)
    monkeypatch.setattr(projection, "PROJECT_BLOCK_ROWS", 7)
    np.testing.assert_allclose(projection._reduce(x, 16, 0), at_once, atol=1e-6)


def test_reduction_is_reused_for_the_same_contents_and_made_again_when_they_change(planted, monkeypatch):
    from core.slices import projection

    x = planted["x"][::3].copy()
    fits = []
    real = projection._reduce
    monkeypatch.setattr(projection, "_reduce", lambda *a: fits.append(a[1:]) or real(*a))
    first = reduce(x, 32, 0)
    again = reduce(x.copy(), 32, 0)  # same contents, another array
    assert fits == [(32, 0)] and np.array_equal(first, again)
    again[0, 0] += 1.0  # the caller's copy is its own
    assert np.array_equal(reduce(x, 32, 0), first) and len(fits) == 1
    reduce(x, 16, 0)
    reduce(x, 16, 1)
    assert fits == [(32, 0), (16, 0), (16, 1)]
    assert np.array_equal(reduce(x, 32, 0), first) and len(fits) == 3  # still kept beside the others
    x[5, 3] += 0.5  # changed in place: a new reduction, not the kept one
    changed = reduce(x, 16, 1)
    assert len(fits) == 4 and not np.array_equal(changed, reduce(planted["x"][::3], 16, 1))


def test_map_is_laid_out_from_the_cuts_reduction_so_an_analysis_fits_one_pca(planted, monkeypatch):
    from core.slices import projection

    x = planted["x"][::3].copy()
    reduce(x, REDUCED_DIM, 0)  # the slice cut's
    fits = []
    real = projection._reduce
    monkeypatch.setattr(projection, "_reduce", lambda *a: fits.append(a[1:]) or real(*a))
    project_2d(x, seed=0, device="cpu")
    assert fits == []
    project_2d(x, seed=0, device="cpu", input_dim=20)
    assert fits == [(20, 0)]


def test_large_map_fits_on_a_sample_and_places_the_rest(planted):
    x, clusters = planted["x"], planted["clusters"]
    coords = project_2d(x, seed=0, max_points_fit=400)
    assert coords.shape == (x.shape[0], 2) and np.all(np.isfinite(coords))
    # Placed points land with their own cluster: nearest cluster mean in 2-D is their own.
    means = np.stack([coords[clusters == k].mean(0) for k in range(6)])
    nearest = np.argmin(((coords[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == clusters).mean() > 0.95


def test_drawing_sample_keeps_small_slices_visible():
    ids = np.r_[np.zeros(100_000, int), np.ones(30, int)]
    keep = drawing_sample(ids, max_points=1000)
    assert keep.size <= 1100 and np.sum(ids[keep] == 1) == 30


def test_discover_slices_end_to_end(planted):
    x, clusters = planted["x"], planted["clusters"]
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({"site": np.where(clusters == 4, "north", rng.choice(["south", "east"], clusters.size))})
    res = discover_slices(
        x, planted["noisy"], planted["probs"], class_names=["a", "b", "c"], metadata=meta, with_map=False, seed=0
    )
    assert res.slice_ids.shape == (x.shape[0],) and res.coords_2d.shape == (x.shape[0], 2)
    assert set(res.timings) == {"map", "slices", "table", "names", "domain_gap"}
    assert "site" in res.domain_gaps and res.domain_gaps["site"]["auroc"].max() > 0.9
    top = error_slices(res.table).iloc[0]
    assert _cluster_of(res.slice_ids, clusters, top["slice_id"])[0] == 2
    assert all(isinstance(v, str) and v for v in res.names.values())


def test_confident_errors_outrank_a_naturally_hard_slice():
    """A hard slice whose errors the probe expects (low confidence) ranks below a slice with
    fewer, confident errors (the signature of mislabelled samples)."""
    rng = np.random.default_rng(0)
    n = 300
    ids = np.repeat([0, 1, 2], n)
    labels = np.zeros(3 * n, dtype=np.int64)
    probs = np.tile([0.97, 0.03], (3 * n, 1))
    hard = rng.random(n) < 0.45  # slice 0: 45 % wrong, probe unsure everywhere (0.55 / 0.45)
    probs[:n] = [0.55, 0.45]
    labels[:n][hard] = 1
    flips = rng.choice(np.arange(n, 2 * n), 30, replace=False)  # slice 1: 10 % confidently wrong
    labels[flips] = 1
    t = slice_table(ids, labels, probs).set_index("slice_id")
    assert t.loc[0, "excess_errors"] > t.loc[1, "excess_errors"]  # worse vs the rest ...
    assert t.loc[1, "error_rank"] == 1  # ... but the confident errors rank first
    assert t.loc[1, "unexpected_z"] > 4 and t.loc[0, "error_score"] < t.loc[1, "error_score"]
    assert not t.loc[2, "is_error_slice"] and t.loc[2, "error_rank"] == 3  # ranked, but not an error slice


def test_split_error_slices_cuts_a_slice_down_to_where_its_errors_sit():
    from core.slices import split_error_slices

    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [40.0, 40.0]])
    x = np.concatenate([c + rng.normal(size=(200, 2)) for c in centers]).astype(np.float32)
    ids = np.repeat([0, 0, 1], 200)  # slice 0 holds two blobs
    errors = np.zeros(600, dtype=bool)
    errors[rng.choice(200, 40, replace=False)] = True  # errors only in the first blob
    info = {}
    out = split_error_slices(ids, x, errors, info=info)
    assert info["splits"] >= 1
    err_slice = out[np.flatnonzero(errors)]
    assert np.unique(err_slice).size == 1 and (out == err_slice[0]).sum() == 200
    # errors spread evenly: no cut
    even = np.zeros(600, dtype=bool)
    even[rng.choice(400, 80, replace=False)] = True
    assert np.unique(split_error_slices(ids, x, even)).size == 2


def test_split_error_slices_finds_an_error_region_that_is_a_third_of_its_slice():
    from core.slices import split_error_slices

    rng = np.random.default_rng(1)
    # One slice of three equal blobs in a row; the errors sit in the middle one, which no cut in
    # two halves isolates (2-means puts it with one of its neighbours): one cut must find it.
    centers = np.array([[0.0, 0.0], [8.0, 0.0], [16.0, 0.0], [60.0, 60.0]])
    x = np.concatenate([c + rng.normal(size=(150, 2)) for c in centers]).astype(np.float32)
    ids = np.repeat([0, 0, 0, 1], 150)
    errors = np.zeros(600, dtype=bool)
    errors[150 + rng.choice(150, 45, replace=False)] = True
    errors[rng.choice(np.r_[0:150, 300:450], 6, replace=False)] = True  # a few elsewhere
    out = split_error_slices(ids, x, errors, max_depth=1)
    middle = out[150:300]
    values, counts = np.unique(middle, return_counts=True)
    slice_of_middle = values[counts.argmax()]
    members = out == slice_of_middle
    assert counts.max() >= 140 and members.sum() <= 170  # the middle blob, and little else


def test_errors_that_share_one_confusion_outrank_as_many_spread_over_many():
    """Two slices with the same confident errors: in slice 1 they all say "labelled 1, looks like
    0" (a shared labelling error), in slice 0 they spread over many confusions (a hard region).
    Slice 0 comes first on a tie, so only the confusion share can put slice 1 ahead."""
    n = 200
    ids = np.repeat([0, 1], n)
    probs = np.full((2 * n, 5), 0.01)
    truth = np.concatenate([np.arange(n) % 5, np.zeros(n, dtype=np.int64)])
    probs[np.arange(2 * n), truth] = 0.96
    labels = truth.copy()
    spread = np.arange(40)
    labels[spread] = (truth[spread] + 1 + np.arange(40) % 4) % 5  # slice 0: 40 errors, many directions
    labels[n:n + 40] = 1  # slice 1: 40 samples of class 0 labelled 1
    t = slice_table(ids, labels, probs).set_index("slice_id")
    assert t.loc[0, "unexpected_errors"] == pytest.approx(t.loc[1, "unexpected_errors"])
    assert t.loc[1, "confusion_share"] == 1.0 and t.loc[0, "confusion_share"] <= 0.25
    assert t.loc[1, "error_rank"] == 1 and t.loc[0, "error_rank"] == 2


def _blobs_with_split_region(seed: int = 0):
    """Eight separated blobs of 120; blob 0 carries a structured error (30 % of its class-0 rows
    labelled 1, which the probabilities call 0), and the given partition splits blob 0 in two,
    each half merged with a clean neighbour blob."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(8, 32)) * 12.0
    blob = np.repeat(np.arange(8), 120)
    x = (centers[blob] + rng.normal(size=(blob.size, 32))).astype(np.float32)
    truth = blob % 3
    labels = truth.copy()
    members = np.flatnonzero(blob == 0)
    flips = rng.choice(members, 36, replace=False)
    labels[flips] = 1
    probs = np.full((blob.size, 3), 0.05)
    probs[np.arange(blob.size), truth] = 0.9
    given = blob.copy()
    half = members[: members.size // 2]
    given[half] = 1
    given[members[members.size // 2:]] = 2
    return x, labels, probs, given, members, flips


def test_carving_takes_out_a_region_the_partition_split_in_two():
    from core.slices import carve_error_regions

    x, labels, probs, given, members, flips = _blobs_with_split_region()
    before = slice_table(given, labels, probs, n_classes=3)
    top_before = error_slices(before).iloc[0]
    assert np.isin(flips, np.flatnonzero(given == top_before["slice_id"])).mean() < 0.75  # the split halves it
    info = {}
    carved = carve_error_regions(given, x, labels, probs, seed=0, info=info)
    assert info["carved"] >= 1
    top = error_slices(slice_table(carved, labels, probs, n_classes=3)).iloc[0]
    inside = np.flatnonzero(carved == top["slice_id"])
    assert np.isin(flips, inside).all()
    assert np.isin(inside, members).mean() > 0.95  # the region, not its neighbours
    assert top["confusion_share"] == 1.0


def test_carving_leaves_a_partition_without_unexpected_errors_alone():
    from core.slices import carve_error_regions

    x, _, probs, given, _, _ = _blobs_with_split_region()
    labels = probs.argmax(axis=1)  # every label what the model expects
    info = {}
    carved = carve_error_regions(given, x, labels, probs, seed=0, info=info)
    assert info["carved"] == 0
    # same partition up to the renumbering by size
    assert pd.crosstab(carved, given).astype(bool).sum(axis=1).max() == 1


def test_the_cut_fits_the_grid_once_and_cuts_as_the_passes_do_alone():
    """error_aware_slices shares the grid's k-means between select_k and the carve; the cut must
    be the one the three passes make when each fits its own."""
    from core.slices.clustering import (carve_error_regions, error_aware_slices, find_slices,
                                        split_error_slices)
    from core.slices.projection import reduce

    x, labels, probs, _, _, _ = _blobs_with_split_region()
    reduced = reduce(x, 32, 0)
    shared_info: dict = {}
    shared = error_aware_slices(x, labels, probs, seed=0, reduced=reduced, info=shared_info)
    alone = find_slices(x, seed=0, reduced=reduced)
    alone = split_error_slices(alone, reduced, probs.argmax(axis=1) != labels, seed=0)
    alone = carve_error_regions(alone, reduced, labels, probs, seed=0)
    assert np.array_equal(shared, alone)
    assert shared_info["carved"] >= 1  # the carve ran on the shared models and found the region


def test_the_maps_neighbour_lists_are_the_exact_euclidean_ones_with_each_row_first(faiss_or_numpy):
    from sklearn.neighbors import NearestNeighbors

    from core.slices.projection import _euclidean_knn

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 12)).astype(np.float32)
    x[10] = x[11]  # an exact duplicate must not displace the row itself from the first place
    x[40:50] = x[40]  # nor ten of them, more than the k found
    indices, distances = _euclidean_knn(x, 6)
    assert np.array_equal(indices[:, 0], np.arange(300))
    assert np.all(distances[:, 0] == 0.0)
    for row in range(40, 50):  # the others found are its duplicates, at distance ~0 (float32 rounding), itself not again
        assert set(indices[row, 1:]) <= set(range(40, 50)) - {row} and np.all(distances[row] < 1e-2)
    x[40:50] = rng.normal(size=(10, 12))  # for the comparison below: no ties beyond the pair
    indices, distances = _euclidean_knn(x, 6)
    want_d, want_i = NearestNeighbors(n_neighbors=6).fit(x).kneighbors(x)
    assert np.allclose(distances[:, 1:], want_d[:, 1:], atol=1e-4)
    assert indices[10, 1] == 11 and indices[11, 1] == 10
    assert np.mean(indices[:, 1:] == want_i[:, 1:]) > 0.99  # ties aside, the same neighbours


def test_rows_not_fitted_are_placed_beside_their_nearest_fitted_rows():
    from core.slices.clustering import _nearest
    from core.slices.projection import _knn_place

    rng = np.random.default_rng(5)
    fitted = rng.normal(size=(200, 8)).astype(np.float32)
    points = rng.normal(size=(200, 2)).astype(np.float32)
    copies = fitted[[3, 50, 199]] + 1e-4  # a row next to a fitted one lands on its point
    placed = _knn_place(fitted, points, copies)
    assert np.allclose(placed, points[[3, 50, 199]], atol=1e-2)
    others = rng.normal(size=(40, 8)).astype(np.float32)
    brute = ((others[:, None, :] - fitted[None, :, :]) ** 2).sum(-1).argmin(1)
    assert np.array_equal(_nearest(fitted, others), brute)
    spread = _knn_place(fitted, points, others)
    # between the points of its ten nearest fitted rows, not beyond them
    near = np.argsort(((others[:, None, :] - fitted[None, :, :]) ** 2).sum(-1), axis=1)[:, :10]
    assert np.all(spread >= points[near].min(1) - 1e-5) and np.all(spread <= points[near].max(1) + 1e-5)


def test_nearest_fitted_rows_are_the_brute_force_ones_with_and_without_faiss(faiss_or_numpy, monkeypatch):
    from core.slices import projection

    rng = np.random.default_rng(9)
    fitted = rng.normal(size=(700, 12)).astype(np.float32)
    rows = rng.normal(size=(500, 12)).astype(np.float32)
    monkeypatch.setattr(projection, "DISTANCE_BLOCK", 700 * 37)  # several blocks on the numpy path
    idx, d2 = projection._nearest_fitted(fitted, rows, 6)
    full = ((rows[:, None, :] - fitted[None, :, :]) ** 2).sum(-1)
    want = np.argsort(full, axis=1, kind="stable")[:, :6]
    assert idx.shape == (500, 6) and np.array_equal(idx, want)
    assert np.allclose(d2, np.take_along_axis(full, want, 1), rtol=1e-4, atol=1e-4)


def test_mean_silhouette_is_sklearns_silhouette_score():
    from sklearn.metrics import pairwise_distances, silhouette_score

    from core.slices.clustering import mean_silhouette

    rng = np.random.default_rng(8)
    centres = rng.normal(scale=4.0, size=(5, 6))
    x = (centres[rng.integers(0, 5, 600)] + rng.normal(size=(600, 6))).astype(np.float32)
    distances = pairwise_distances(x)
    for labels in (rng.integers(0, 5, 600), np.r_[np.zeros(599, int), 1], rng.integers(3, 40, 600) * 7):
        assert mean_silhouette(distances, labels) == pytest.approx(
            silhouette_score(distances, labels, metric="precomputed"), abs=1e-6)
    with pytest.raises(ValueError):
        mean_silhouette(distances, np.zeros(600, int))


def test_the_carves_chance_level_is_the_quantile_of_the_best_z_over_random_deals():
    from core.slices.clustering import _error_terms, _excess_z, _max_z_by_chance

    rng = np.random.default_rng(11)
    n = 3000
    labels = rng.integers(0, 4, n)
    probs = rng.dirichlet(np.ones(4) * 0.7, n)
    partitions = [rng.integers(0, k, n) for k in (3, 8, 25)]
    partitions.append(np.r_[np.zeros(n - 40, int), np.ones(40, int)])  # one cluster below min_rows
    terms = _error_terms(labels, probs)
    # the definition, one deal and one partition at a time, with the same generator
    reference = np.random.default_rng(5)
    best = []
    for _ in range(60):
        deal = reference.permutation(n)
        dealt = [t[deal] for t in terms]
        best.append(max(float(_excess_z(p, *dealt)[np.bincount(p) >= 50].max()) for p in partitions))
    want = float(np.quantile(best, 0.95))
    got = _max_z_by_chance(partitions, terms, 50, 0.05, np.random.default_rng(5), rounds=60)
    assert got == pytest.approx(want, rel=1e-9)
    assert 1.0 < got < 5.0  # the best of ~36 unit-variance sums: above 1, far below 5


def test_a_slice_with_a_structured_finding_leads_the_ranking_whatever_its_score():
    """The structured-error detector's finding outranks a higher score: the score counts
    unexpected errors of every kind, and a hard region has many."""
    rng = np.random.default_rng(0)
    n = 300
    ids = np.repeat([0, 1, 2], n)
    labels = np.zeros(3 * n, dtype=np.int64)
    probs = np.tile([0.97, 0.03], (3 * n, 1))
    labels[rng.choice(np.arange(n), 60, replace=False)] = 1  # slice 0: 60 confident errors
    labels[rng.choice(np.arange(n, 2 * n), 30, replace=False)] = 1  # slice 1: 30
    plain = slice_table(ids, labels, probs).set_index("slice_id")
    assert plain.loc[0, "error_rank"] == 1 and plain.loc[1, "error_rank"] == 2
    assert not plain["structured_error"].any()
    found = slice_table(ids, labels, probs, structured={1}).set_index("slice_id")
    assert found.loc[1, "error_rank"] == 1 and found.loc[0, "error_rank"] == 2 and found.loc[2, "error_rank"] == 3
    assert found["structured_error"].tolist() == [False, True, False]
    assert found["error_score"].tolist() == plain["error_score"].tolist()  # the scores are unchanged


def test_cut_to_where_cuts_a_slice_down_to_its_marked_rows_and_renames_every_slice():
    """A finding's slice is cut down to the part where its marked rows sit; a slice whose marked
    rows spread over it stays whole; every old id maps to its new one."""
    from core.slices import cut_to_where

    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0], [8.0, 8.0]])
    part = np.repeat(np.arange(4), 100)
    x = (centres[part] + rng.normal(size=(400, 2))).astype(np.float32)
    ids = np.where(part < 3, 0, 1)  # slice 0: three blobs; slice 1: one
    marked = np.zeros(400, dtype=bool)
    marked[rng.choice(np.arange(100, 200), 40, replace=False)] = True  # in blob 1 of slice 0 only
    marked[rng.choice(np.arange(300, 400), 10, replace=False)] = True  # spread over slice 1
    new, renamed = cut_to_where(ids, x, marked, [0, 1])
    assert set(renamed) == {0, 1}
    core = new == renamed[0]
    assert core[100:200].all() and not core[:100].any() and not core[200:300].any()
    assert (new[300:] == renamed[1]).all() and np.unique(new).size == 3
    sizes = np.bincount(new)
    assert list(sizes) == sorted(sizes, reverse=True)  # 0.. by decreasing size
    # nothing marked beyond chance: no cut
    same, names = cut_to_where(ids, x, np.zeros(400, dtype=bool), [0, 1])
    assert np.unique(same).size == 2 and names == {0: 0, 1: 1}
