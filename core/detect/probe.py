"""Cross-validated linear probe: out-of-sample class probabilities from vectors.

Multinomial logistic regression on L2-normalised vectors, K stratified seeded folds; each row's
probabilities come from the fold model that did not see it.

The inverse L2 strength C is chosen per project unless one is given (:func:`choose_and_predict`):
the candidate whose held-out probabilities give the project's own labels the highest likelihood.
A constant fitted on one data set did not carry over: C = 10, chosen on 20 Newsgroups' nearly
clean labels, under-regularised CIFAR-10N's noisier ones, where C = 1-3 ranked the label errors
better (bench/README.md, "The probe's strength chosen per project").

Backend, by measurement (2-core AMD EPYC, 512-d, 10 classes, 10 % label noise, one fold with
80 % of the rows for training, same L2 penalty): sklearn ``LogisticRegression(lbfgs)`` 0.59 s at
10k and 1.64 s at 100k; a torch full-batch LBFGS on CPU 1.46 s and 4.73 s, same accuracy. So CPU
uses sklearn; CUDA uses the torch full-batch LBFGS, where the N x D product is cheap.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from core.detect.result import validate_labels
from core.neighbours import normalise
from core.util import resolve_device, usable_cores

logger = logging.getLogger(__name__)

__all__ = ["ProbeChoice", "choose_and_predict", "cross_validated_probabilities", "fit_predict", "fold_assignment"]

#: Inverse L2 strength of a probe fitted outside the per-project choice (before/after comparisons,
#: the regions detector's held-out probe) and where that choice starts; chosen on 20 Newsgroups /
#: MiniLM (bench/README.md).
DEFAULT_C = 10.0
#: Candidates of the per-project choice: half-decades from 0.01 to 1,000, the steps of the sweep
#: that showed the likelihood's peak where the errors ranked best (bench/README.md).
C_CANDIDATES = tuple(float(10.0 ** (k / 2)) for k in range(-4, 7))
#: Up to this many rows every fold scores each candidate C and the winner's probabilities are
#: kept as they are; above it one held-out fold scores them (a fifth of the cost per candidate)
#: and the winner is then fitted on every fold.
SCORE_EVERY_FOLD_UP_TO = 20_000
#: BLAS threads of every CPU fit, whatever the machine. In float32 a matrix product summed over
#: two threads differs from one summed over one in the last bits, and L-BFGS stopped at max_iter
#: carries that into probabilities up to 0.03 apart: the same project gave other flags and other
#: structured findings where the folds had two threads each (a large project, a machine with
#: more cores) than where they had one (bench/README.md, "The same findings on any machine").
#: One thread is also the faster on two cores (a fit of 4,800 x 1,280: 0.8 s against 3.4 s).
#: The limit is process-wide (threadpoolctl): fits started from two Python threads at once can
#: end with each other's; an analysis fits one probe at a time, or its folds inside one limit.
FIT_BLAS_THREADS = 1


def fold_assignment(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Stratified fold id per row, seeded.

    Within each class the rows are shuffled and dealt round-robin to the folds, starting at a
    class-dependent offset so small classes do not all land in fold 0. A class with fewer
    members than folds simply occupies fewer folds.

    Parameters
    ----------
    labels : np.ndarray
        int, shape (N,).
    folds : int
        Number of folds.
    seed : int
        Shuffle seed.
    """
    rng = np.random.default_rng(seed)
    fold = np.empty(labels.shape[0], dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(members.size)]
        fold[members] = (np.arange(members.size) + offset) % folds
        offset += members.size
    return fold


def _fit_predict_sklearn(x_tr, y_tr, x_te, n_classes, C, max_iter):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=max_iter, tol=1e-4)
    # Hitting max_iter still gives usable probabilities: the log says so instead of a warning,
    # which the callers silence. Not here: warnings.catch_warnings swaps the process-wide filter
    # list, and two fold threads leaving it in the wrong order left an "ignore" behind for the
    # rest of the process.
    model.fit(x_tr, y_tr)
    if np.any(model.n_iter_ >= max_iter):
        logger.info("probe fold stopped at max_iter=%d before converging", max_iter)
    out = np.zeros((x_te.shape[0], n_classes))
    out[:, model.classes_] = model.predict_proba(x_te)
    return out


#: Training rows the CPU folds may hold in copies at once (each worker copies its fold's rows).
FOLD_COPIES_BYTES = 4 * 2**30


def _cpu_folds_in_parallel(one_fold: Callable[[int], None], folds: int, data_bytes: int,
                           progress: Optional[Callable[[str, int, Optional[int]], None]]) -> None:
    """Fit the folds a few at a time, one BLAS thread each (:data:`FIT_BLAS_THREADS`), as many
    side by side as there are cores and memory for the folds' copies.

    sklearn's L-BFGS alternates narrow matrix products with serial work. With the products on
    both cores of a 2-core machine one fold of 10,000 x 1,280 took 5.3 s, with one BLAS thread
    2.1 s (OpenBLAS's idle thread competes with the serial steps), and two folds side by side
    with one thread each fit the five folds in 5.5 s against 29.8 s (bench/README.md "The probe's
    folds side by side").
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from threadpoolctl import threadpool_limits

    cores = usable_cores()
    by_memory = max(1, int(FOLD_COPIES_BYTES // max(data_bytes, 1)))
    workers = max(1, min(folds, cores, by_memory))
    with warnings.catch_warnings(), threadpool_limits(limits=FIT_BLAS_THREADS):
        warnings.simplefilter("ignore")  # a fold stopped at max_iter: see _fit_predict_sklearn
        if workers == 1:
            _folds_one_after_another(one_fold, folds, progress)
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe-fold") as pool:
            pending = [pool.submit(one_fold, f) for f in range(folds)]
            for done, future in enumerate(as_completed(pending), start=1):
                future.result()
                if progress is not None:
                    progress("probe", done, folds)


def _folds_one_after_another(one_fold: Callable[[int], None], folds: int,
                             progress: Optional[Callable[[str, int, Optional[int]], None]]) -> None:
    for f in range(folds):
        one_fold(f)
        if progress is not None:
            progress("probe", f + 1, folds)


def _fit_predict_torch(x_tr, y_tr, x_te, n_classes, C, max_iter, device):
    import torch

    present = np.unique(y_tr)
    remap = np.full(n_classes, -1, dtype=np.int64)
    remap[present] = np.arange(present.size)
    xt = torch.from_numpy(x_tr).to(device)
    yt = torch.from_numpy(remap[y_tr]).to(device)
    w = torch.zeros(x_tr.shape[1], present.size, device=device, dtype=torch.float32, requires_grad=True)
    b = torch.zeros(present.size, device=device, dtype=torch.float32, requires_grad=True)
    # Same objective as sklearn: sum of log-losses + ||W||^2 / (2C), scaled by 1/N.
    penalty = 1.0 / (2.0 * C * x_tr.shape[0])
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
        tolerance_grad=1e-6, tolerance_change=1e-10,
    )

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + penalty * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        p = torch.softmax(torch.from_numpy(x_te).to(device) @ w + b, dim=1).cpu().numpy()
    out = np.zeros((x_te.shape[0], n_classes))
    out[:, present] = p
    return out


def fit_predict(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, n_classes: int, C: float = DEFAULT_C,
    max_iter: int = 100, device: str = "cpu",
) -> np.ndarray:
    """Fit the probe on one training set and return class probabilities for ``x_test``.

    The same model and backends as :func:`cross_validated_probabilities` (sklearn on CPU with
    :data:`FIT_BLAS_THREADS`, torch LBFGS on CUDA), for callers that hold their own split
    (before/after comparisons, the regions detector's held-out probe, benches).
    Returns float64 (len(x_test), n_classes); classes absent from ``y_train`` get probability 0.
    """
    dev = resolve_device(device)
    if dev == "cpu":
        from threadpoolctl import threadpool_limits

        with warnings.catch_warnings(), threadpool_limits(limits=FIT_BLAS_THREADS):
            warnings.simplefilter("ignore")  # stopped at max_iter: see _fit_predict_sklearn
            return _fit_predict_sklearn(x_train, y_train, x_test, n_classes, C, max_iter)
    return _fit_predict_torch(x_train, y_train, x_test, n_classes, C, max_iter, dev)


def _prepared(vectors: np.ndarray, labels: np.ndarray, n_classes: int, folds: int) -> tuple[np.ndarray, np.ndarray, int]:
    labels = validate_labels(labels, n_classes)
    x = normalise(vectors)
    n = x.shape[0]
    if labels.shape[0] != n:
        raise ValueError(f"{n} vectors but {labels.shape[0]} labels")
    if n < 2:
        raise ValueError("the probe needs at least 2 samples")
    folds = int(min(folds, n))
    if folds < 2:
        raise ValueError("folds must be at least 2")
    counts = np.bincount(labels, minlength=n_classes)
    small = np.flatnonzero((counts > 0) & (counts < folds))
    if small.size:
        logger.info("classes %s have fewer than %d members; see cross_validated_probabilities Notes", small.tolist(), folds)
    return x, labels, folds


def _held_out(x: np.ndarray, labels: np.ndarray, n_classes: int, fold: np.ndarray, which: list[int], C: float,
              max_iter: int, dev: str,
              progress: Optional[Callable[[str, int, Optional[int]], None]]) -> np.ndarray:
    """Probabilities of the rows in folds ``which``, each from the model fitted without its fold
    (rows of other folds stay 0), mixed with the uniform distribution as the Notes of
    :func:`cross_validated_probabilities` say."""
    out = np.zeros((x.shape[0], n_classes))

    def one_fold(i: int) -> None:
        test = fold == which[i]
        train = ~test
        if not test.any():
            return
        y_tr = labels[train]
        if np.unique(y_tr).size < 2:
            # A one-class training set carries no information: the prior is the honest answer.
            out[test] = np.bincount(y_tr, minlength=n_classes) / y_tr.size
        elif dev == "cpu":
            out[test] = _fit_predict_sklearn(x[train], y_tr, x[test], n_classes, C, max_iter)
        else:
            out[test] = _fit_predict_torch(x[train], y_tr, x[test], n_classes, C, max_iter, dev)

    if dev == "cpu":
        _cpu_folds_in_parallel(one_fold, len(which), x.nbytes, progress)
    else:
        _folds_one_after_another(one_fold, len(which), progress)
    scored = np.isin(fold, which)
    out[scored] = (1.0 - 1e-3) * out[scored] + 1e-3 / n_classes
    out[scored] /= out[scored].sum(axis=1, keepdims=True)
    return out


def cross_validated_probabilities(
    vectors: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    folds: int = 5,
    seed: int = 0,
    device: str = "auto",
    C: float = DEFAULT_C,
    max_iter: int = 100,
    progress: Optional[Callable[[str, int, Optional[int]], None]] = None,
) -> np.ndarray:
    """Out-of-sample class probabilities from a K-fold linear probe.

    Parameters
    ----------
    vectors : np.ndarray
        float, shape (N, D); L2-normalised here.
    labels : np.ndarray
        int, shape (N,), in 0..n_classes-1.
    n_classes : int
        Number of classes C (columns of the result, also for classes absent from ``labels``).
    folds : int, default 5
        Number of folds; lowered to N when N is smaller.
    seed : int, default 0
        Fold shuffle seed. Same inputs and seed give the same probabilities.
    device : str, default "auto"
        ``"auto"`` (CUDA when visible), ``"cpu"`` (sklearn) or ``"cuda"`` (torch).
    C : float, default 10.0
        Inverse L2 regularisation strength (sklearn's convention).
    max_iter : int, default 100
        LBFGS iterations per fold.
    progress : callable, optional
        ``progress("probe", folds_done, folds)``.

    Returns
    -------
    np.ndarray
        float64, shape (N, C); rows sum to 1.

    Notes
    -----
    Classes with fewer members than ``folds``: stratification deals their few members to
    fewer folds, so in a fold where a member is held out the model may not have seen its class
    at all and gives it probability 0. After the folds, every row is mixed with a uniform
    distribution (weight 1e-3) so that no class has probability exactly 0; the sample then
    scores as a likely issue, which is the honest answer when the class has no other example.
    """
    x, labels, folds = _prepared(vectors, labels, n_classes, folds)
    fold = fold_assignment(labels, folds, seed)
    return _held_out(x, labels, n_classes, fold, list(range(folds)), C, max_iter, resolve_device(device), progress)


@dataclass(frozen=True)
class ProbeChoice:
    """Out-of-sample probabilities from the probe whose strength suits the project's data.

    Attributes
    ----------
    probabilities : np.ndarray
        float64 (N, C), every row from a fold model that did not see it, at the chosen ``C``.
    C : float
        The chosen inverse L2 strength.
    log_likelihood : dict
        candidate C -> mean held-out log-probability of the given labels (the candidates tried).
    rows_scored : int
        Rows the candidates were scored on (every row, or one held-out fold's).
    """

    probabilities: np.ndarray
    C: float
    log_likelihood: dict = field(default_factory=dict)
    rows_scored: int = 0


def choose_and_predict(
    vectors: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    folds: int = 5,
    seed: int = 0,
    device: str = "auto",
    max_iter: int = 100,
    progress: Optional[Callable[[str, int, Optional[int]], None]] = None,
) -> ProbeChoice:
    """The probe's strength chosen on the project's own labels, and its probabilities.

    Model selection by held-out likelihood: among :data:`C_CANDIDATES` the one whose held-out
    probabilities give the given labels the highest mean log-probability. The search climbs
    from :data:`DEFAULT_C` towards the better neighbour and stops at the first candidate that
    scores below the best so far (the held-out likelihood rose to one peak and fell on every
    set measured), so it usually fits three or four candidates. Scored on every fold up to
    :data:`SCORE_EVERY_FOLD_UP_TO` rows, on one held-out fold above.

    The labels are the noisy ones, and a probe that fits their noise scores them better, but
    only where the noise is predictable from the vectors; random label noise is what the
    held-out likelihood penalises, which is why the choice strengthens the penalty as the
    labels get noisier (CIFAR-10N worst labels: C 1, random1: 3.16, aggregate: 3.16-10).
    """
    x, labels, folds = _prepared(vectors, labels, n_classes, folds)
    dev = resolve_device(device)
    fold = fold_assignment(labels, folds, seed)
    scored_folds = list(range(folds)) if x.shape[0] <= SCORE_EVERY_FOLD_UP_TO else [0]
    rows = np.isin(fold, scored_folds)
    at = np.arange(x.shape[0])[rows]
    tried: dict[float, float] = {}
    # only the best candidate's probabilities are kept (N x classes floats each)
    kept: dict[float, np.ndarray] = {}

    def score(i: int) -> float:
        C = C_CANDIDATES[i]
        if C not in tried:
            held = _held_out(x, labels, n_classes, fold, scored_folds, C, max_iter, dev, None)
            tried[C] = float(np.log(held[at, labels[at]]).mean())
            if len(scored_folds) == folds and tried[C] >= max(tried.values()):
                kept.clear()
                kept[C] = held
            if progress is not None:
                progress("probe strength", len(tried), None)
        return tried[C]

    best = C_CANDIDATES.index(DEFAULT_C)
    step = -1 if best > 0 and score(best - 1) > score(best) else 1
    while 0 <= best + step < len(C_CANDIDATES) and score(best + step) > score(best):
        best += step
    C = C_CANDIDATES[best]
    if C in kept:
        probabilities = kept[C]
    else:
        probabilities = _held_out(x, labels, n_classes, fold, list(range(folds)), C, max_iter, dev, progress)
    logger.info("probe strength C=%g chosen by held-out likelihood %s", C,
                {f"{c:g}": round(ll, 4) for c, ll in sorted(tried.items())})
    return ProbeChoice(probabilities, C, {float(c): round(ll, 6) for c, ll in sorted(tried.items())}, int(rows.sum()))
