"""One result shape for every detector, the inputs they read, and the registry.

Every detector fills :class:`DetectorResult`, so ranking and the pages can render any
detector generically; a new detector touches its own module and the registry only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "DetectorResult",
    "DetectInputs",
    "DetectorSpec",
    "Explain",
    "REGISTRY",
    "register",
    "validate_labels",
]


@dataclass(frozen=True)
class DetectorResult:
    """What one detector found, per sample.

    Attributes
    ----------
    name : str
        Registry name of the detector (e.g. ``"confident"``).
    description : str
        One sentence a reviewer can read.
    scores : np.ndarray
        float64, shape (N,), in [0, 1]; higher = more likely wrong.
    flagged : np.ndarray
        bool, shape (N,); the detector's own decision.
    suggested : np.ndarray or None
        int64, shape (N,), a label index or -1 where the detector suggests none.
    params : dict
        Parameters the detector ran with (for the run record).
    evidence : dict
        Extra per-sample arrays (e.g. neighbour vote counts) or groups.
    """

    name: str
    description: str
    scores: np.ndarray
    flagged: np.ndarray
    suggested: np.ndarray | None = None
    params: dict = field(default_factory=dict)
    evidence: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        scores = np.asarray(self.scores, dtype=np.float64)
        if scores.ndim != 1:
            raise ValueError(f"{self.name}: scores must be 1-D, got shape {scores.shape}")
        if np.isnan(scores).any():
            raise ValueError(f"{self.name}: scores contain NaN")
        if scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
            raise ValueError(
                f"{self.name}: scores must lie in [0, 1], got range "
                f"[{scores.min():.4g}, {scores.max():.4g}]"
            )
        flagged = np.asarray(self.flagged)
        if flagged.shape != scores.shape or flagged.dtype != bool:
            raise ValueError(f"{self.name}: flagged must be a bool array of shape {scores.shape}")
        object.__setattr__(self, "scores", scores)
        if self.suggested is not None:
            suggested = np.asarray(self.suggested)
            if suggested.shape != scores.shape or not np.issubdtype(suggested.dtype, np.integer):
                raise ValueError(f"{self.name}: suggested must be an int array of shape {scores.shape}")
            if suggested.size and suggested.min() < -1:
                raise ValueError(f"{self.name}: suggested holds label indices or -1 for none")
            object.__setattr__(self, "suggested", suggested.astype(np.int64))

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass
class DetectInputs:
    """Everything a detector may read; detectors state which parts they need.

    Attributes
    ----------
    labels : np.ndarray
        int, shape (N,), given labels 0..C-1.
    n_classes : int
        Number of classes C.
    vectors : np.ndarray or None
        float32, shape (N, D), L2-normalised, or None.
    probabilities : np.ndarray or None
        float, shape (N, C), out-of-sample class probabilities, or None.
    graph : KnnGraph or None
        The shared kNN graph over ``vectors`` (see :mod:`core.neighbours`), or None.
    annotator_labels : np.ndarray or None
        int, shape (N, M), one column per annotator, -1 = missing, or None.
    seed : int
        Seed for anything random. Default 0.
    dynamics : Dynamics or None
        Per-sample training dynamics of the user's own model (a
        :class:`core.capture.dynamics.Dynamics` over the same N samples), or None. Typed Any so
        this module does not import the capture side.
    blind_cut : LabelBlindCut or None
        The label-blind part of the error slices' cut (:func:`core.slices.clustering.label_blind_cut`)
        made by an earlier analysis of the same vectors and seed, or None (made when needed).
    consensus_probabilities : np.ndarray or None
        float, shape (N, C), out-of-sample probabilities of probes trained on the annotators'
        majority vote instead of ``labels``; None where the vote equals the labels (then
        ``probabilities`` serve) or there are no vectors.
    """

    labels: np.ndarray
    n_classes: int
    vectors: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    graph: Any = None
    annotator_labels: np.ndarray | None = None
    seed: int = 0
    dynamics: Any = None
    blind_cut: Any = None
    consensus_probabilities: np.ndarray | None = None

    def has(self, need: str) -> bool:
        """Whether the input named ``need`` is present."""
        return getattr(self, need) is not None


#: Explains one sample's evidence in words: ``explain(row, context) -> sentence or None``, where
#: ``row`` is one row of a run's evidence joined with the labels in force (a mapping of the
#: evidence columns) and ``context`` holds what the run knows beyond the row (its detector
#: parameters, the annotator votes of the sample). None = fall back to the description.
Explain = Callable[[Mapping[str, Any], Mapping[str, Any]], Optional[str]]
#: Extra per-sample evidence columns for the run's evidence table: ``column -> fn(result) -> (N,) array``.
EvidenceColumns = Mapping[str, Callable[["DetectorResult"], np.ndarray]]


@dataclass(frozen=True)
class DetectorSpec:
    """A registered detector and everything the rest of Amend needs to know about it.

    Ranking, the run record, the evidence table and the triage wording all iterate the registry;
    none of them names a detector.

    Attributes
    ----------
    name, description : str
        Registry name; one sentence a reviewer can read.
    run : callable
        ``run(inputs: DetectInputs, **params) -> DetectorResult``.
    needs : tuple of str
        Fields of :class:`DetectInputs` that must be present.
    default : bool
        Runs when the caller names no detectors.
    weight : float
        Weight of its score in the combined score (0 = evidence only).
    suggestion_priority : int
        When several detectors suggest a label, the lowest priority wins (most direct evidence first).
    speaks_when_flagged : bool
        Its suggestion and its flags count only where it flagged the sample (e.g. a conflicting
        near-duplicate); such flags that carry a suggestion join the flagged set directly.
    fuse_rank : bool
        Its score joins the ranking by rank: the combined score becomes the weighted mean
        percentile rank of the weighted combination (weight 1) and of each such detector (weight
        = its agreement with the out-of-sample flags, 2 AUC - 1), for scores on no common scale.
    params : dict
        Default parameters passed to ``run`` (overridable per analysis).
    explain : callable or None
        See :data:`Explain`.
    evidence_columns : mapping
        See :data:`EvidenceColumns`.
    decides_bulk_in : str or None
        Name of a bool (N,) evidence array: inside it, this detector's flags, not the per-sample
        rule, are what a bulk acceptance relabels (a structured finding reviewed as a group).
    decides_alone_in : str or None
        Name of a bool (N,) evidence array: inside it, this detector alone gives the score, the
        flag, the error probability (its ``error_probability`` evidence) and what a bulk acceptance
        relabels (its ``most_likely_label`` evidence), where its evidence already holds what the
        other detectors read (:func:`core.detect.rank.rank`).
    """

    name: str
    description: str
    run: Callable[..., DetectorResult]
    needs: tuple[str, ...]
    default: bool
    weight: float = 0.0
    suggestion_priority: int = 100
    speaks_when_flagged: bool = False
    params: dict = field(default_factory=dict)
    explain: Optional[Explain] = None
    evidence_columns: EvidenceColumns = field(default_factory=dict)
    fuse_rank: bool = False
    decides_bulk_in: Optional[str] = None
    decides_alone_in: Optional[str] = None


#: name -> spec; filled by :func:`register` when the detector modules are imported.
REGISTRY: dict[str, DetectorSpec] = {}


def register(
    name: str,
    description: str,
    needs: tuple[str, ...],
    default: bool = True,
    weight: float = 0.0,
    suggestion_priority: int = 100,
    speaks_when_flagged: bool = False,
    params: Optional[dict] = None,
    explain: Optional[Explain] = None,
    evidence_columns: Optional[EvidenceColumns] = None,
    fuse_rank: bool = False,
    decides_bulk_in: Optional[str] = None,
    decides_alone_in: Optional[str] = None,
) -> Callable[[Callable[..., DetectorResult]], Callable[..., DetectorResult]]:
    """Register a detector entry point ``run(inputs: DetectInputs, **params) -> DetectorResult``.

    Parameters
    ----------
    name : str
        Unique registry name.
    description : str
        One sentence for reviewers.
    needs : tuple of str
        Fields of :class:`DetectInputs` that must be present (e.g. ``("graph",)``).
    default : bool, default True
        Whether it runs when the caller names no detectors. A detector joins the default
        list only once it has been measured on the shared data (see bench/README.md).
    weight, suggestion_priority, speaks_when_flagged, params, explain, evidence_columns, fuse_rank, decides_bulk_in,
    decides_alone_in :
        See :class:`DetectorSpec`.
    """
    if not name:
        raise ValueError("a detector needs a name")

    def wrap(fn: Callable[..., DetectorResult]) -> Callable[..., DetectorResult]:
        if name in REGISTRY and REGISTRY[name].run is not fn:
            raise ValueError(f"detector {name!r} is already registered")
        REGISTRY[name] = DetectorSpec(
            name, description, fn, tuple(needs), default, float(weight), int(suggestion_priority),
            bool(speaks_when_flagged), dict(params or {}), explain, dict(evidence_columns or {}), bool(fuse_rank),
            decides_bulk_in, decides_alone_in,
        )
        return fn

    return wrap


def validate_labels(labels: np.ndarray, n_classes: int, allow_missing: bool = False) -> np.ndarray:
    """Return ``labels`` as int64 after checking they index ``n_classes`` classes.

    Parameters
    ----------
    labels : np.ndarray
        Label indices.
    n_classes : int
        Number of classes C.
    allow_missing : bool, default False
        Accept -1 as "no label".
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    low = -1 if allow_missing else 0
    if labels.size and (labels.min() < low or labels.max() >= n_classes):
        raise ValueError(
            f"labels must lie in [{low}, {n_classes - 1}], got [{labels.min()}, {labels.max()}]"
        )
    return labels.astype(np.int64)
