"""Label-error detection: one module per detector, one result shape, one ranking.

``detect(...)`` is the public face: arrays in, a :class:`Detection` out; it never touches the
store. Detectors register themselves (:func:`core.detect.result.register`); :func:`available`
lists all of them and :func:`defaults` those that run when the caller names none.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, Optional, Sequence

import numpy as np

from core.detect.result import REGISTRY, DetectInputs, DetectorResult, DetectorSpec, register, validate_labels

# Importing the detector modules registers them.
from core.detect import annotators, confident, duplicates, neighbours_vote, outliers, regions  # noqa: E402,F401
from core.detect import training_dynamics  # noqa: F401
from core.detect import pooling
from core.detect import probe as _probe
from core.detect.imbalance import class_table
from core.detect.rank import Ranking, rank
from core.neighbours import KnnGraph, build_knn_graph, sampled_recall, shared_unit_rows

if TYPE_CHECKING:
    from core.slices.clustering import LabelBlindCut

logger = logging.getLogger(__name__)

__all__ = [
    "DetectConfig",
    "Detection",
    "DetectorResult",
    "DetectInputs",
    "DetectorSpec",
    "REGISTRY",
    "available",
    "defaults",
    "detect",
    "register",
]

Progress = Callable[[str, int, Optional[int]], None]
#: Values of :attr:`DetectConfig.pool`.
POOL_MODES = ("auto", "all", "off")


def available() -> list[str]:
    """Names of every registered detector."""
    return sorted(REGISTRY)


def defaults() -> list[str]:
    """Names of the detectors that run when the caller names none."""
    return sorted(name for name, spec in REGISTRY.items() if spec.default)


@dataclass(frozen=True)
class DetectConfig:
    """Settings of one analysis; recorded with the run.

    Attributes
    ----------
    detectors : tuple of str or None, default None
        Detectors to run; None = :func:`defaults` whose inputs are present.
    k : int, default 10
        Neighbours per sample in the kNN graph (and the neighbour vote).
    folds : int, default 5
        Probe folds.
    probe_C : float or "auto", default "auto"
        Probe inverse L2 strength; ``"auto"`` chooses it on the project's own labels by held-out
        likelihood (:func:`core.detect.probe.choose_and_predict`; the choice is in
        ``Detection.params["probe"]``).
    pool : str, default "auto"
        Which out-of-sample probability estimates are pooled (weights fitted on the project's
        own labels, :mod:`core.detect.pooling`) before confident learning: ``"auto"`` = the
        user's probabilities alone when given, else the probe and the neighbours' labels;
        ``"all"`` = every estimate there is (user's, probe, neighbours); ``"off"`` = the user's
        probabilities or the probe, nothing pooled.
    duplicate_threshold : float, default 0.98
        Cosine for near-duplicates.
    method : str, default "weighted"
        Combination (:func:`core.detect.rank.combine_scores`).
    weights : dict or None, default None
        Combination weights; None = each registered detector's own weight.
    class_strength : float, default 0.0
        Per-class normalisation of the combined score (imbalance guard).
    knn_method : str, default "auto"
        ``"auto"``, ``"exact"`` or ``"faiss"``.
    device : str, default "auto"
        ``"auto"``, ``"cpu"`` or ``"cuda"`` for the probe and the kNN graph.
    seed : int, default 0
        Seed for folds and the approximate index.
    detector_params : dict or None, default None
        detector name -> parameters that replace its registry defaults for this analysis (e.g.
        ``{"aum": {"threshold": -1.2}}``, the cut calibrated on threshold samples).
    """

    detectors: tuple[str, ...] | None = None
    k: int = 10
    folds: int = 5
    probe_C: float | str = "auto"
    pool: str = "auto"
    duplicate_threshold: float = duplicates.DEFAULT_THRESHOLD
    method: str = "weighted"
    weights: dict | None = None
    class_strength: float = 0.0
    knn_method: str = "auto"
    device: str = "auto"
    seed: int = 0
    detector_params: dict | None = None

    def as_dict(self) -> dict:
        """Plain dict for the run record."""
        d = dict(self.__dict__)
        d["detectors"] = list(self.detectors) if self.detectors is not None else None
        d["weights"] = dict(self.weights) if self.weights is not None else None
        d["detector_params"] = None if self.detector_params is None else {
            name: dict(params) for name, params in self.detector_params.items()}
        return d


@dataclass(frozen=True)
class Detection:
    """Everything one analysis found.

    Attributes
    ----------
    score, rank, order, flagged, suggested, suggested_by, support
        Per sample, see :class:`core.detect.rank.Ranking`.
    results : dict
        name -> :class:`DetectorResult` of every detector that ran.
    detector_scores : dict
        name -> (N,) score.
    duplicate_groups : list of dict
        Conflicting near-duplicate groups (``members``, ``labels``, ``min_similarity``).
    class_table : list of dict
        Per class: count, frequency, flagged, flag rate (:func:`core.detect.imbalance.class_table`).
    probabilities : np.ndarray or None
        (N, C) probabilities the confident detector used (the pool of the given ones, the
        probe's and the neighbours', see :attr:`DetectConfig.pool`).
    graph : KnnGraph or None
        The kNN graph (to store with the run).
    params : dict
        Config, sizes, the ranking's parameters and the kNN method.
    timings : dict
        step -> seconds.
    error_probability : np.ndarray or None
        (N,) estimated probability that each label is wrong
        (:func:`core.detect.confident.error_probability`).
    accept_in_bulk : np.ndarray or None
        (N,) bool, the flagged samples a bulk acceptance relabels (see
        :attr:`core.detect.rank.Ranking.accept_in_bulk`); None = every flagged suggestion.
    """

    score: np.ndarray
    rank: np.ndarray
    order: np.ndarray
    flagged: np.ndarray
    suggested: np.ndarray
    suggested_by: np.ndarray
    support: np.ndarray
    results: dict
    detector_scores: dict
    duplicate_groups: list
    class_table: list
    probabilities: np.ndarray | None
    graph: KnnGraph | None
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    error_probability: np.ndarray | None = None
    accept_in_bulk: np.ndarray | None = None


def _consensus_probabilities(
    x: np.ndarray, graph: KnnGraph | None, consensus: np.ndarray, n_classes: int, cfg: DetectConfig,
    C: float | None, progress: Progress | None,
) -> tuple[np.ndarray, dict]:
    """Out-of-sample probabilities of the annotators' majority vote: the probe (at the strength
    chosen for the labels, or chosen here) and the neighbours' vote, pooled against the vote.

    The annotators detector (CROWDLAB, the posterior) needs a model that does not already side
    with one annotator; a probe trained on the labels in use does exactly that when those labels
    are one annotator's."""
    if C is None:
        choice = _probe.choose_and_predict(x, consensus, n_classes, folds=cfg.folds, seed=cfg.seed,
                                           device=cfg.device, progress=progress)
        sources, C = {"probe": choice.probabilities}, choice.C
    else:
        sources = {"probe": _probe.cross_validated_probabilities(
            x, consensus, n_classes, folds=cfg.folds, seed=cfg.seed, device=cfg.device, C=C, progress=progress)}
    if graph is not None:
        sources["neighbours"] = pooling.neighbour_probabilities(graph, consensus, n_classes)
    pooled = pooling.pool(sources, consensus)
    return pooled.probabilities, {"C": C, "trained_on": "the annotators' majority vote",
                                  "pool_weights": pooled.weights}


def detect(
    vectors: np.ndarray | None,
    labels: np.ndarray,
    n_classes: int,
    probabilities: np.ndarray | None = None,
    annotator_labels: np.ndarray | None = None,
    config: DetectConfig | None = None,
    progress: Progress | None = None,
    class_names: Sequence[str] | None = None,
    dynamics=None,
    extra_probabilities: Mapping[str, np.ndarray] | None = None,
    graph: KnnGraph | None = None,
    blind_cut: "LabelBlindCut | None" = None,
) -> Detection:
    """Find likely label errors and rank every sample.

    Parameters
    ----------
    vectors : np.ndarray or None
        (N, D) representation of each sample (normalised here), or None.
    labels : np.ndarray
        int (N,), given labels 0..n_classes-1.
    n_classes : int
        Number of classes C.
    probabilities : np.ndarray or None, default None
        (N, C) out-of-sample probabilities from the user's model. Without them the probe makes
        them from ``vectors``. One of ``vectors``, ``probabilities``,
        ``dynamics`` and ``extra_probabilities`` is needed.
    annotator_labels : np.ndarray or None, default None
        (N, M) labels from M annotators, -1 = missing. With vectors, where their majority vote
        differs from ``labels`` a second probe is trained on the vote for the annotators
        detector, so that one annotator's habits learned from ``labels`` do not outvote the
        others; where two or more annotators labelled a sample, that detector decides its flag
        and error probability (:func:`core.detect.rank.rank`).
    config : DetectConfig or None, default None
        Settings; None = ``DetectConfig()``.
    progress : callable or None, default None
        ``progress(step, done, total)`` (:class:`core.util.Progress` protocol).
    class_names : sequence of str, optional
        For the class table.
    dynamics : Dynamics or None, default None
        Per-sample training dynamics of the user's model over the same N samples
        (:class:`core.capture.dynamics.Dynamics`); the detectors that need them (``aum``,
        ``datamap``, ``forgetting``) run only when they are given.
    extra_probabilities : mapping, optional
        name -> (N, C) further out-of-sample probability estimates (e.g. the held-out
        predictions of captured training runs); they always join the pool, whose weights are
        fitted on the labels (:mod:`core.detect.pooling`), beside the sources of ``config.pool``.
    graph : KnnGraph, optional
        The kNN graph of these same vectors, made earlier with the same ``k``, method and seed
        (a re-analysis of unchanged vectors, :mod:`core.analysis.run`): used instead of searching
        again. The graph depends on the vectors only, never on the labels.
    blind_cut : LabelBlindCut, optional
        The label-blind part of the error slices' cut made earlier from the same vectors and
        seed (the ``blind_cut`` evidence of the structured-regions detector): reused by it
        instead of reducing and clustering again. Like the graph, it never depends on labels.

    Returns
    -------
    Detection
        Deterministic: identical inputs and config give an identical ranking.
    """
    cfg = config or DetectConfig()
    labels = validate_labels(labels, n_classes)
    n = labels.shape[0]
    if vectors is None and probabilities is None and dynamics is None and not extra_probabilities:
        raise ValueError("detect needs vectors, probabilities or training dynamics")
    if dynamics is not None and len(dynamics.epochs_seen) != n:
        raise ValueError(f"dynamics cover {len(dynamics.epochs_seen)} samples but there are {n} labels")
    timings: dict[str, float] = {}
    report = progress or (lambda step, done, total: None)

    def timed(step: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        timings[step] = round(time.perf_counter() - t0, 4)
        logger.info("%s took %.2f s", step, timings[step])
        return out

    x = None
    knn_recall = None  # measured only for an approximate graph built here
    given_graph, graph = graph, None
    if vectors is not None:
        x = shared_unit_rows(vectors)  # checked and normalised once for every detector
        if x.shape[0] != n:
            raise ValueError(f"{x.shape[0]} vectors but {n} labels")
        if given_graph is not None:
            if len(given_graph) != n or given_graph.k < min(cfg.k, n - 1):
                raise ValueError(f"the given kNN graph is {len(given_graph)} x {given_graph.k}; "
                                 f"expected {n} rows and at least k={cfg.k} neighbours")
            graph = given_graph.truncate(min(cfg.k, given_graph.k))
            timings["neighbours"] = 0.0
        else:
            graph = timed(
                "neighbours", build_knn_graph, x, k=cfg.k, method=cfg.knn_method, device=cfg.device,
                seed=cfg.seed, progress=progress,
            )
            if graph.method != "exact":
                # an approximate graph says how good it was on these data (exact search on a sample)
                knn_recall = timed("neighbours_recall", sampled_recall, x, graph, seed=cfg.seed)
    elif given_graph is not None:
        raise ValueError("a kNN graph was given without the vectors it was made from")
    if cfg.pool not in POOL_MODES:
        raise ValueError(f"pool must be one of {POOL_MODES}, got {cfg.pool!r}")
    if cfg.probe_C != "auto" and not (isinstance(cfg.probe_C, (int, float)) and not isinstance(cfg.probe_C, bool)
                                      and cfg.probe_C > 0):
        raise ValueError(f"probe_C must be 'auto' or a positive number, got {cfg.probe_C!r}")
    sources: dict[str, np.ndarray] = {}
    if probabilities is not None:
        sources["given"] = confident.check_probabilities(probabilities, n, n_classes)
    probe_record = None
    if x is not None and ("given" not in sources or cfg.pool == "all"):
        if cfg.probe_C == "auto":
            choice = timed(
                "probe", _probe.choose_and_predict, x, labels, n_classes, folds=cfg.folds, seed=cfg.seed,
                device=cfg.device, progress=progress,
            )
            sources["probe"] = choice.probabilities
            probe_record = {"C": choice.C, "chosen_by": "held-out likelihood of the labels",
                            "log_likelihood_by_C": {f"{c:g}": ll for c, ll in choice.log_likelihood.items()},
                            "rows_scored": choice.rows_scored}
        else:
            sources["probe"] = timed(
                "probe", _probe.cross_validated_probabilities, x, labels, n_classes, folds=cfg.folds,
                seed=cfg.seed, device=cfg.device, C=float(cfg.probe_C), progress=progress,
            )
            probe_record = {"C": float(cfg.probe_C), "chosen_by": "given"}
    if graph is not None and (cfg.pool == "all" or (cfg.pool == "auto" and "given" not in sources)):
        sources["neighbours"] = pooling.neighbour_probabilities(graph, labels, n_classes)
    for name, extra in (extra_probabilities or {}).items():
        if name in sources:
            raise ValueError(f"probability source {name!r} is given twice")
        sources[name] = confident.check_probabilities(extra, n, n_classes)
    # training dynamics alone (a captured run, no vectors): nothing to pool, no probabilities
    pooled = timed("pool", pooling.pool, sources, labels) if sources else None
    probs = None if pooled is None else pooled.probabilities
    names = list(cfg.detectors) if cfg.detectors is not None else defaults()
    consensus_probs, consensus_record = None, None
    if annotator_labels is not None and x is not None and "annotators" in names:
        vote = annotators.majority_vote(annotator_labels, n_classes)
        consensus = np.where(vote >= 0, vote, labels)  # the label in use where no annotator spoke
        if (consensus != labels).any():
            consensus_probs, consensus_record = timed(
                "consensus_probe", _consensus_probabilities, x, graph, consensus, n_classes, cfg,
                None if probe_record is None else probe_record["C"], progress,
            )
            consensus_record["samples_where_vote_differs_from_labels"] = int((consensus != labels).sum())
    inputs = DetectInputs(labels, n_classes, x, probs, graph, annotator_labels, cfg.seed, dynamics, blind_cut,
                          consensus_probs)
    unknown = [name for name in names if name not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown detectors {unknown}; available: {available()}")
    results: dict[str, DetectorResult] = {}
    params: dict[str, dict] = {name: dict(spec.params) for name, spec in REGISTRY.items()}
    params["duplicates"]["threshold"] = cfg.duplicate_threshold
    for name, override in (cfg.detector_params or {}).items():
        if name not in REGISTRY:
            raise ValueError(f"detector_params name unknown detector {name!r}; available: {available()}")
        params[name] = {**params[name], **override}
    runnable = [name for name in names if all(inputs.has(need) for need in REGISTRY[name].needs)]
    skipped = sorted(set(names) - set(runnable))
    if cfg.detectors is not None and skipped:
        raise ValueError(f"detectors {skipped} need inputs that were not given")
    for i, name in enumerate(runnable):
        results[name] = timed(name, REGISTRY[name].run, inputs, **params.get(name, {}))
        report("detect", i + 1, len(runnable))
    weights = cfg.weights
    ranking: Ranking = timed(
        "rank", rank, results, labels, graph, method=cfg.method, weights=weights,
        class_strength=cfg.class_strength,
        # With Amend's own probabilities in the pool the combined ranking chooses each class's
        # flags; with the user's probabilities alone cleanlab's choice on them stands, as the
        # pool itself keeps them alone (bench/README.md, "Flags per class").
        choose_within_class=bool({"probe", "neighbours"} & set(sources)),
    )
    table = class_table(labels, ranking.flagged, n_classes, list(class_names) if class_names else None)
    groups = results["duplicates"].evidence["groups"] if "duplicates" in results else []
    return Detection(
        score=ranking.score,
        rank=ranking.rank,
        order=ranking.order,
        flagged=ranking.flagged,
        suggested=ranking.suggested,
        suggested_by=ranking.suggested_by,
        support=ranking.support,
        results=results,
        detector_scores=ranking.detector_scores,
        duplicate_groups=groups,
        class_table=table,
        probabilities=probs,
        graph=graph,
        params={
            "config": cfg.as_dict(),
            "n_samples": n,
            "n_classes": n_classes,
            "dim": None if x is None else int(x.shape[1]),
            "detectors": {name: r.params for name, r in results.items()},
            "skipped_detectors": skipped,
            "ranking": ranking.params,
            "knn_method": None if graph is None else graph.method,
            "knn_recall_sampled": None if knn_recall is None else round(float(knn_recall), 4),
            "probe": probe_record,
            "consensus_probe": consensus_record,
            "pool": {"sources": list(sources), "weights": None if pooled is None else pooled.weights,
                     "log_likelihood": None if pooled is None else pooled.log_likelihood,
                     "rows_fitted": None if pooled is None else pooled.rows_fitted},
            "dynamics": None if dynamics is None else {
                "n_epochs": int(dynamics.n_epochs),
                "runs": int(np.max(dynamics.runs)) if len(dynamics.runs) else 0,
            },
        },
        timings=timings,
        error_probability=ranking.error_probability,
        accept_in_bulk=ranking.accept_in_bulk,
    )
