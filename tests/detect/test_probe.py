import numpy as np
import pytest

from core.detect.probe import cross_validated_probabilities, fold_assignment


def test_out_of_sample_probabilities_expose_planted_errors(planted):
    vectors, noisy, _, wrong = planted
    p = cross_validated_probabilities(vectors, noisy, 3, device="cpu")
    assert p.shape == (180, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    given = p[np.arange(180), noisy]
    # the planted errors get the lowest probabilities for their given label
    assert set(np.argsort(given)[:2]) == set(wrong.tolist())


def test_deterministic_given_seed(clean_data):
    vectors, labels = clean_data
    a = cross_validated_probabilities(vectors, labels, 3, seed=3, device="cpu")
    b = cross_validated_probabilities(vectors, labels, 3, seed=3, device="cpu")
    np.testing.assert_array_equal(a, b)


def test_folds_side_by_side_give_each_fold_the_model_it_gets_alone(clean_data, monkeypatch):
    from threadpoolctl import threadpool_info, threadpool_limits

    from core.detect import probe

    vectors, labels = clean_data
    seen = []
    monkeypatch.setattr(probe, "_cpu_folds_in_parallel", _recording(probe._cpu_folds_in_parallel, seen))
    before = {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()}
    side_by_side = cross_validated_probabilities(vectors, labels, 3, seed=1, device="cpu")
    after = {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()}
    assert {path: after[path] for path in before} == before  # the limits are given back
    monkeypatch.setattr(probe, "FOLD_COPIES_BYTES", 1)  # memory for one copy only: one fold at a time
    progress = []
    one_at_a_time = cross_validated_probabilities(vectors, labels, 3, seed=1, device="cpu",
                                                  progress=lambda *a: progress.append(a))
    assert progress == [("probe", f, 5) for f in range(1, 6)]
    assert len(seen) == 2
    np.testing.assert_array_equal(side_by_side, one_at_a_time)
    # and each fold by itself, sequentially, one BLAS thread: the same model
    fold = fold_assignment(labels, 5, seed=1)
    x = probe.normalise(vectors)
    with threadpool_limits(limits=probe.FIT_BLAS_THREADS):
        alone = np.zeros((labels.size, 3))
        for f in range(5):
            test = fold == f
            alone[test] = probe._fit_predict_sklearn(x[~test], labels[~test], x[test], 3, probe.DEFAULT_C, 100)
    mixed = (1.0 - 1e-3) * alone + 1e-3 / 3
    np.testing.assert_array_equal(side_by_side, mixed / mixed.sum(axis=1, keepdims=True))


def test_folds_side_by_side_leave_the_warning_filters_as_they_were(clean_data):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    vectors, labels = clean_data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        before = list(warnings.filters)
        # two iterations: every fold stops at max_iter, which sklearn warns about
        cross_validated_probabilities(vectors, labels, 3, seed=1, device="cpu", max_iter=2)
        assert warnings.filters == before  # no "ignore" left behind for the rest of the process
        warnings.warn("still heard", UserWarning)
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert [str(w.message) for w in caught] == ["still heard"]


def _noisy_blobs(n: int = 1_000, dim: int = 1_024, n_classes: int = 10, seed: int = 0):
    """Overlapping classes with a fifth of the labels redrawn: wide enough that OpenBLAS splits
    a product over threads (at 1,000 x 1,024; not at every shape), hard enough that L-BFGS stops
    at max_iter."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    truth = rng.integers(0, n_classes, n)
    vectors = (0.15 * centres[truth] + rng.normal(size=(n, dim))).astype(np.float32)
    labels = truth.copy()
    redrawn = rng.random(n) < 0.2
    labels[redrawn] = rng.integers(0, n_classes, int(redrawn.sum()))
    return vectors, labels


def test_a_fit_does_not_depend_on_the_threads_the_caller_allows():
    # float32 products split over two threads differ from one thread's in the last bits, and
    # L-BFGS carried that into probabilities up to 0.03 apart: other flags on a machine with
    # more cores. Every CPU fit now runs with FIT_BLAS_THREADS whatever the caller allows.
    from threadpoolctl import threadpool_limits

    from core.detect.probe import fit_predict

    vectors, labels = _noisy_blobs()
    half = labels.size // 2
    fits = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            fits.append(fit_predict(vectors[:half], labels[:half], vectors[half:], 10))
    np.testing.assert_array_equal(fits[0], fits[1])


def test_folds_fitted_one_at_a_time_equal_folds_side_by_side(monkeypatch):
    # one fold at a time (a project too large for two copies) used to get every core's BLAS
    # threads, two side by side one each: two answers for one project
    from threadpoolctl import threadpool_limits

    from core.detect import probe

    vectors, labels = _noisy_blobs()
    monkeypatch.setattr(probe, "usable_cores", lambda: 2)
    with threadpool_limits(limits=2):
        side_by_side = cross_validated_probabilities(vectors, labels, 10, device="cpu")
        monkeypatch.setattr(probe, "FOLD_COPIES_BYTES", 1)
        one_at_a_time = cross_validated_probabilities(vectors, labels, 10, device="cpu")
    np.testing.assert_array_equal(side_by_side, one_at_a_time)


def _recording(function, calls):
    def wrapper(*args, **kwargs):
        calls.append(args[1:3])
        return function(*args, **kwargs)

    return wrapper


def test_classes_smaller_than_folds_and_absent_classes(clean_data):
    vectors, labels = clean_data
    labels = labels.copy()
    labels[0] = 3  # a class with a single member; class 4 has none
    p = cross_validated_probabilities(vectors, labels, 5, folds=5, device="cpu")
    assert p.shape == (180, 5) and np.isfinite(p).all() and (p > 0).all()
    # the lone member's class was never seen in training: it must look doubtful
    assert p[0, 3] < 0.5


def test_folds_are_stratified():
    labels = np.repeat(np.arange(3), [10, 10, 3])
    fold = fold_assignment(labels, 5, seed=0)
    for c in range(2):
        assert np.bincount(fold[labels == c], minlength=5).tolist() == [2] * 5
    assert np.unique(fold[labels == 2]).size == 3


def test_refuses_mismatched_input():
    with pytest.raises(ValueError):
        cross_validated_probabilities(np.ones((3, 2)), np.array([0, 1]), 2)


def test_cuda_probe_agrees_with_cpu(planted):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    vectors, noisy, _, wrong = planted
    cpu = cross_validated_probabilities(vectors, noisy, 3, device="cpu")
    gpu = cross_validated_probabilities(vectors, noisy, 3, device="cuda")
    assert (cpu.argmax(axis=1) == gpu.argmax(axis=1)).mean() > 0.98
    given = gpu[np.arange(noisy.size), noisy]
    assert set(np.argsort(given)[:2]) == set(wrong.tolist())
    np.testing.assert_array_equal(gpu, cross_validated_probabilities(vectors, noisy, 3, device="cuda"))


def _overlapping(seed: int, noise: float):
    """Five overlapping classes; ``noise`` of the labels moved to another class at random."""
    from tests.detect.conftest import clusters

    vectors, truth = clusters(n_per_class=200, n_classes=5, dim=32, spread=0.35, seed=seed)
    rng = np.random.default_rng(seed)
    labels = truth.copy()
    flip = rng.random(truth.size) < noise
    labels[flip] = (truth[flip] + rng.integers(1, 5, int(flip.sum()))) % 5
    return vectors, labels, flip


def test_strength_chosen_on_the_labels_regularises_more_where_they_are_noisier():
    from sklearn.metrics import roc_auc_score

    from core.detect.probe import DEFAULT_C, choose_and_predict

    vectors, clean, _ = _overlapping(seed=0, noise=0.0)
    _, noisy, flipped = _overlapping(seed=0, noise=0.4)
    on_clean = choose_and_predict(vectors, clean, 5, device="cpu")
    on_noisy = choose_and_predict(vectors, noisy, 5, device="cpu")
    assert on_noisy.C < on_clean.C
    # The stronger penalty is what finds the wrong labels better than the fixed strength does.
    rows = np.arange(noisy.size)
    fixed = cross_validated_probabilities(vectors, noisy, 5, C=DEFAULT_C, device="cpu")
    assert on_noisy.C != DEFAULT_C
    assert roc_auc_score(flipped, -on_noisy.probabilities[rows, noisy]) > roc_auc_score(flipped, -fixed[rows, noisy]) + 0.01


def test_chosen_strength_is_a_peak_of_the_held_out_likelihood_and_its_probabilities_are_the_probe_s():
    from core.detect.probe import C_CANDIDATES, choose_and_predict

    vectors, noisy, _ = _overlapping(seed=1, noise=0.4)
    choice = choose_and_predict(vectors, noisy, 5, device="cpu", seed=3)
    tried = choice.log_likelihood
    assert choice.C in tried and tried[choice.C] == max(tried.values())
    at = C_CANDIDATES.index(choice.C)
    for neighbour in (at - 1, at + 1):
        if 0 <= neighbour < len(C_CANDIDATES):
            assert tried[C_CANDIDATES[neighbour]] < tried[choice.C]
    assert choice.rows_scored == noisy.size
    same = cross_validated_probabilities(vectors, noisy, 5, C=choice.C, device="cpu", seed=3)
    np.testing.assert_array_equal(choice.probabilities, same)
    rows = np.arange(noisy.size)
    assert np.log(same[rows, noisy]).mean() == pytest.approx(tried[choice.C], abs=1e-5)


def test_large_projects_score_the_candidates_on_one_held_out_fold(monkeypatch):
    from core.detect import probe

    vectors, noisy, _ = _overlapping(seed=2, noise=0.4)
    monkeypatch.setattr(probe, "SCORE_EVERY_FOLD_UP_TO", 100)
    choice = probe.choose_and_predict(vectors, noisy, 5, device="cpu")
    assert choice.rows_scored == int((probe.fold_assignment(noisy, 5, 0) == 0).sum())
    # then the winner is fitted on every fold, as the plain probe would be
    np.testing.assert_array_equal(choice.probabilities,
                                  cross_validated_probabilities(vectors, noisy, 5, C=choice.C, device="cpu"))
