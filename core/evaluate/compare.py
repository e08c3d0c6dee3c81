"""Compare two label sets (or two models) by what a model learns from them: overall, per class, per slice.

A *side* is either a label set read from the log — the given labels, the current labels, the
labels at a point in time, at a guideline version or up to an event — on which the linear probe
(:mod:`core.detect.probe`: multinomial logistic regression on L2-normalised vectors) is trained,
or a user's imported model predictions (``predictions:NAME``), used as they are.

Protocol (:func:`compare`):

- Evaluation rows: the dataset's ``test`` split when it has one (or the split named by
  ``eval_split``); otherwise every sample, by K-fold cross-validation whose folds are dealt once,
  stratified on the evaluation labels, and shared by every side (identical folds for A and B).
- Training rows: the other rows (the other folds), minus the samples the side's label set marks
  *excluded* (a decision ``exclude``). Excluded samples leave training, never evaluation.
- Evaluation labels: the best labels available, said in the result: a clean ``reference`` when
  one is given (a benchmark's true labels), else the current labels (given + every decision).
- With a reference, a third probe is trained on the reference labels ("clean"), and the share of
  the loss recovered is ``(after - before) / (clean - before)`` overall and per slice (None when
  the clean probe is not better than the before one there: there was no loss to recover).
- Per slice: the slices of an analysis run on the same representation (default its latest);
  accuracy of each side on the evaluation rows of the slice, and the difference after - before.

Macro-F1 averages over the classes present in the evaluation labels (the same classes for every
side). Everything is seeded: the same project, options and log give the same numbers.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd

from core.detect.probe import DEFAULT_C, fold_assignment
from core.errors import AmendError
from core.neighbours import normalise
from core.util import resolve_device
from core.review import audit
from core.store.project import Project

logger = logging.getLogger(__name__)

__all__ = ["LabelSource", "CompareResult", "compare", "label_source_choices"]

#: Written forms of a side, for the CLI's --labels-a / --labels-b and the page.
SOURCE_FORMS = ("given", "current", "as-of:TIME", "guideline:VERSION", "event:N", "predictions:NAME")


@dataclass(frozen=True)
class LabelSource:
    """One side of a comparison.

    Parameters
    ----------
    kind : str
        ``given`` (labels as ingested), ``current`` (given + every decision), ``as_of`` (the
        labels at an ISO time), ``guideline`` (the labels when guideline ``value`` was
        superseded), ``event`` (the labels after event ``value``), ``predictions`` (an imported
        prediction set named ``value``: used as the model's output, no probe is trained).
    value : str, optional
        The time, version, event id or prediction set name (default None for given / current).
    """

    kind: str
    value: Optional[str] = None

    @classmethod
    def parse(cls, text: str) -> "LabelSource":
        """``given``, ``current``, ``as-of:TIME``, ``guideline:VERSION``, ``event:N`` or
        ``predictions:NAME``; AmendError for anything else."""
        raw = (text or "").strip()
        head, _, rest = raw.partition(":")
        head = head.strip().lower().replace("_", "-")
        rest = rest.strip()
        if head in ("given", "current") and not rest:
            return cls(head)
        if head in ("as-of", "guideline", "event", "predictions") and rest:
            if head == "event" and not rest.isdigit():
                raise AmendError(f"label set {raw!r}: the event must be a number, e.g. event:12.")
            if head == "as-of":
                rest = audit.normalise_time(rest)
            return cls(head.replace("-", "_"), rest)
        raise AmendError(f"label set {raw!r} is not understood; use one of: {', '.join(SOURCE_FORMS)}.")

    def text(self) -> str:
        """The written form (what :meth:`parse` reads back)."""
        return self.kind if self.value is None else f"{self.kind.replace('_', '-')}:{self.value}"

    def describe(self) -> str:
        """What the side is, in words."""
        return {
            "given": "given labels (as ingested)",
            "current": "current labels (given + every decision in the log)",
            "as_of": f"labels as of {self.value}",
            "guideline": f"labels under guideline {self.value} (until the next version was published)",
            "event": f"labels after event {self.value}",
            "predictions": f"imported model predictions {self.value!r}",
        }[self.kind]


def label_source_choices(project: Project) -> list[LabelSource]:
    """The sides a person can pick without typing: given, current, each guideline version and
    each imported prediction set."""
    from core.review import guidelines

    choices = [LabelSource("given"), LabelSource("current")]
    choices += [LabelSource("guideline", v.version) for v in guidelines.list_versions(project)]
    choices += [LabelSource("predictions", p.name) for p in project.prediction_sets()]
    return choices


@dataclass
class _Side:
    source: LabelSource
    labels: Optional[np.ndarray]  # int per sample, None for predictions
    excluded: np.ndarray  # bool per sample
    predicted: Optional[np.ndarray] = None  # int per sample, filled by evaluation
    decisions: int = 0
    last_event: Optional[int] = None
    train_rows: int = 0


@dataclass
class CompareResult:
    """What :func:`compare` found. ``to_json()`` is the CLI's output; the page reads the frames."""

    what: dict
    overall: pd.DataFrame  # side, accuracy, macro_f1 (sides: before, after[, clean])
    per_class: pd.DataFrame  # label, support, {before,after}_{precision,recall,f1}
    per_slice: pd.DataFrame  # slice_id, error_rank (as in the overview), name, size, n_eval, before, after, difference[, clean, recovered_share]
    confusion: dict  # {"labels": [...], "before": CxC list, "after": CxC list}
    recovered_share: Optional[float] = None
    notes: list[str] = field(default_factory=list)
    #: after - before accuracy with its paired bootstrap interval (:func:`difference_interval`)
    accuracy_difference: Optional[dict] = None

    def side(self, name: str) -> dict:
        row = self.overall[self.overall["side"] == name]
        if row.empty:
            return {}
        return {"accuracy": _r(row["accuracy"].iloc[0]), "macro_f1": _r(row["macro_f1"].iloc[0])}

    def to_json(self) -> dict:
        """The CLI contract: before / after {accuracy, macro_f1}, per_class, per_slice, confusion, what."""
        out: dict[str, Any] = {"what": self.what, "before": self.side("before"), "after": self.side("after")}
        if "clean" in set(self.overall["side"]):
            out["clean"] = self.side("clean")
            out["recovered_share"] = _r(self.recovered_share)
        out["per_class"] = [
            {
                "label": row["label"], "support": int(row["support"]),
                "before": {k: _r(row[f"before_{k}"]) for k in ("precision", "recall", "f1")},
                "after": {k: _r(row[f"after_{k}"]) for k in ("precision", "recall", "f1")},
            }
            for _, row in self.per_class.iterrows()
        ]
        out["per_slice"] = [
            {k: (_r(v) if isinstance(v, (float, np.floating)) else (int(v) if isinstance(v, (np.integer,)) else v))
             for k, v in row.items()}
            for row in self.per_slice.to_dict(orient="records")
        ]
        out["confusion"] = self.confusion
        out["notes"] = self.notes
        if self.accuracy_difference is not None:
            out["accuracy_difference"] = self.accuracy_difference
        return out


#: Bootstrap rounds for the interval of the accuracy difference (the interval's ends move by
#: well under a point between seeds at this count).
BOOTSTRAP_ROUNDS = 2000


def interval_sentence(interval: Optional[dict]) -> str:
    """The accuracy difference and its interval in words, with what it means for "did it help?"."""
    if not interval or interval.get("difference") is None:
        return "No evaluation samples: the difference cannot be measured."
    points = lambda v: f"{v * 100:+.1f}"  # noqa: E731 - a local format
    span = (f"{points(interval['difference'])} points of accuracy ({interval['level']:.0%} interval "
            f"{points(interval['low'])} to {points(interval['high'])}, paired bootstrap over "
            f"{interval['rows']:,} evaluation samples)")
    if interval["verdict"] == "better":
        return f"After is better: {span}."
    if interval["verdict"] == "worse":
        return f"After is worse: {span}."
    if interval["verdict"] == "no change":
        return (f"No change: both probes are right on exactly the same {interval['rows']:,} evaluation samples "
                "(the decisions so far did not change what the probe learns here).")
    return (f"Cannot tell: {span}. The interval includes no change, so the evaluation set is too small, or "
            "the change too small, to tell it from chance.")


def difference_interval(correct_before: np.ndarray, correct_after: np.ndarray, level: float = 0.95,
                        rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> dict:
    """After - before accuracy on the same evaluation samples, with a paired bootstrap interval.

    Each round resamples the evaluation samples with replacement and takes the difference on the
    same resample for both sides (paired: the two probes are judged on the same samples, so what
    they share cancels). ``verdict`` is "better" / "worse" when the whole interval is above /
    below zero, "no change" when the probes are right on exactly the same samples, and "cannot
    tell" otherwise: the evaluation set is too small, or the change too small, to tell it from
    chance. The interval covers the choice of evaluation samples, not the
    probe's own training noise.
    """
    before = np.asarray(correct_before, dtype=np.float64)
    after = np.asarray(correct_after, dtype=np.float64)
    n = before.size
    if n == 0:
        return {"difference": None, "low": None, "high": None, "level": level, "rows": 0, "verdict": "cannot tell"}
    gain = after - before
    # A sample's gain is +1 (only after is right), -1 (only before) or 0, so resampling n samples
    # is drawing the three counts from a multinomial: the same bootstrap in O(rounds), not O(rounds * n).
    shares = np.array([np.mean(gain > 0), np.mean(gain < 0), np.mean(gain == 0)])
    counts = np.random.default_rng(seed).multinomial(n, shares / shares.sum(), size=rounds)
    means = (counts[:, 0] - counts[:, 1]) / n
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    if not gain.any():
        verdict = "no change"  # both probes right and wrong on exactly the same samples
    else:
        verdict = "better" if low > 0 else "worse" if high < 0 else "cannot tell"
    return {"difference": round(float(gain.mean()), 6), "low": round(float(low), 6), "high": round(float(high), 6),
            "level": level, "rows": int(n), "verdict": verdict}


def _r(value: Any) -> Optional[float]:
    if value is None or (isinstance(value, float) and np.isnan(value)) or pd.isna(value):
        return None
    return round(float(value), 6)


# --------------------------------------------------------------------------- sides
def _read_side(project: Project, source: LabelSource, ids: list[str], label_index: dict[str, int]) -> _Side:
    from core.review.labels import current_labels

    n = len(ids)
    if source.kind == "predictions":
        rows, classes = project.predictions_for(source.value, ids)
        unknown = [c for c in classes if c not in label_index]
        if unknown:
            raise AmendError(f"predictions {source.value!r} have classes outside the label set: {unknown[:5]}.")
        columns = np.array([label_index[c] for c in classes], dtype=np.int64)
        return _Side(source, None, np.zeros(n, dtype=bool), predicted=columns[np.argmax(rows, axis=1)])
    if source.kind == "given":
        frame = project.samples(columns=["id", "label"]).rename(columns={"label": "current_label"})
        frame["excluded"] = False
        frame["last_event_id"] = pd.array([None] * len(frame), dtype="Int64")
        frame["status"] = "unreviewed"
    else:
        if source.kind == "as_of":
            frame = current_labels(project, as_of=source.value)
        elif source.kind == "guideline":
            frame = current_labels(project, guideline_version=source.value)
        elif source.kind == "event":
            frame = current_labels(project, up_to_event=int(source.value))
        else:
            frame = current_labels(project)
    frame = frame.set_index("id").loc[ids]
    labels = np.array([label_index[label] for label in frame["current_label"]], dtype=np.int64)
    decided = frame["status"] != "unreviewed"
    last = frame["last_event_id"].dropna()
    return _Side(source, labels, frame["excluded"].to_numpy(dtype=bool), decisions=int(decided.sum()),
                 last_event=int(last.max()) if len(last) else None)


def _reference_labels(reference: Mapping[str, str], ids: list[str], given: np.ndarray,
                      label_index: dict[str, int]) -> tuple[np.ndarray, int]:
    """Reference labels per sample (a sample the reference does not list keeps its given label)."""
    bad = sorted({str(v) for v in reference.values() if str(v) not in label_index})
    if bad:
        raise AmendError(f"the reference has labels outside the project's label set: {', '.join(bad[:5])}.")
    out = given.copy()
    listed = 0
    for i, sid in enumerate(ids):
        label = reference.get(sid)
        if label is not None:
            out[i] = label_index[str(label)]
            listed += 1
    if listed == 0:
        raise AmendError("the reference names none of the project's sample ids; check its id column.")
    return out, listed


def read_reference(path: str, column: str = "clean_label", id_column: str = "id") -> dict[str, str]:
    """A clean reference from a CSV / Parquet / JSONL file: ``id`` -> label in ``column``
    (default ``clean_label``). Rows whose label is empty are left out."""
    from pathlib import Path as _Path

    file = _Path(path)
    if not file.is_file():
        raise AmendError(f"the reference file {file} does not exist.")
    suffix = file.suffix.lower()
    readers = {".csv": lambda: pd.read_csv(file, dtype=str, keep_default_na=False),
               ".parquet": lambda: pd.read_parquet(file).astype(str), ".pq": lambda: pd.read_parquet(file).astype(str),
               ".jsonl": lambda: pd.read_json(file, lines=True, dtype=False).astype(str),
               ".ndjson": lambda: pd.read_json(file, lines=True, dtype=False).astype(str)}
    if suffix not in readers:
        raise AmendError(f"the reference {file} must be .csv, .parquet or .jsonl.")
    try:
        frame = readers[suffix]()
    except Exception as exc:  # pandas / pyarrow raise many types for a damaged or mis-encoded file
        message = " ".join(str(exc).split())[:300]
        raise AmendError(f"the reference {file} cannot be read as {suffix[1:]} ({type(exc).__name__}: {message}); "
                         "check the file (UTF-8 text for CSV and JSONL).") from exc
    for needed in (id_column, column):
        if needed not in frame.columns:
            raise AmendError(f"the reference {file} has no column {needed!r}; its columns: {', '.join(frame.columns)}.")
    frame = frame[frame[column].str.strip() != ""]
    return dict(zip(frame[id_column].astype(str), frame[column].astype(str).str.strip()))


# --------------------------------------------------------------------------- the probe
def _fit_predict(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, n_classes: int, device: str,
                 C: float, max_iter: int) -> np.ndarray:
    """Predicted class per row of ``x_te`` from the probe trained on (x_tr, y_tr)."""
    from core.detect import probe

    present = np.unique(y_tr)
    if present.size == 0:
        raise AmendError("a training set is empty (every training sample is excluded); nothing to train on.")
    if present.size == 1:
        return np.full(x_te.shape[0], present[0], dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = probe.fit_predict(x_tr, y_tr, x_te, n_classes, C, max_iter, device)
    return np.argmax(p, axis=1).astype(np.int64)


def _scores(truth: np.ndarray, pred: np.ndarray, n_classes: int, classes: np.ndarray) -> dict:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    p, r, f, _ = precision_recall_fscore_support(truth, pred, labels=np.arange(n_classes), zero_division=0)
    return {
        "accuracy": float(np.mean(truth == pred)) if truth.size else float("nan"),
        "macro_f1": float(np.mean(f[classes])) if classes.size else float("nan"),
        "precision": p, "recall": r, "f1": f,
        "confusion": confusion_matrix(truth, pred, labels=np.arange(n_classes)),
    }


def _recovered(before: float, after: float, clean: float) -> Optional[float]:
    loss = clean - before
    if not np.isfinite(loss) or loss <= 1e-12:
        return None
    return (after - before) / loss


# --------------------------------------------------------------------------- compare
def compare(
    project: Project,
    labels_a: LabelSource | str = "given",
    labels_b: LabelSource | str = "current",
    representation: Optional[str] = None,
    eval_split: Optional[str] = None,
    run_id: Optional[str] = None,
    reference: Optional[Mapping[str, str]] = None,
    reference_name: str = "reference",
    folds: int = 5,
    seed: int = 0,
    device: str = "auto",
    C: float = DEFAULT_C,
    max_iter: int = 200,
) -> CompareResult:
    """Train the probe on labels A ("before") and on labels B ("after"); evaluate both the same way.

    Parameters
    ----------
    project : Project
    labels_a, labels_b : LabelSource or str, default "given" and "current"
        The two sides (written forms: see :class:`LabelSource`).
    representation : str, optional
        Vectors to train on (default: the most recent representation).
    eval_split : str, optional
        The split to evaluate on. Default: ``test`` when the dataset has it, else cross-validation;
        ``"cv"`` forces cross-validation. A split no sample has is an error.
    run_id : str, optional
        The analysis run whose slices are reported (default: the latest run on ``representation``;
        none: no per-slice view, said in ``notes``).
    reference : mapping id -> label, optional
        Clean labels (a benchmark). Used as evaluation labels and to train the "clean" probe;
        samples it does not list keep their given label.
    reference_name : str, default "reference"
        How the reference is named in the result.
    folds : int, default 5
        Cross-validation folds (lowered to the sample count).
    seed : int, default 0
        Fold seed.
    device : str, default "auto"
        Probe device (see :func:`core.detect.probe.cross_validated_probabilities`).
    C : float, default core.detect.probe.DEFAULT_C (10.0)
        Inverse L2 strength of the probe.
    max_iter : int, default 200
        LBFGS iterations per fit.
    """
    from core.review.labels import current_labels

    side_a = labels_a if isinstance(labels_a, LabelSource) else LabelSource.parse(labels_a)
    side_b = labels_b if isinstance(labels_b, LabelSource) else LabelSource.parse(labels_b)
    samples = project.samples(columns=["id", "label", "split"])
    if samples.empty:
        raise AmendError(f"{project.path} has no samples; ingest some first.")
    class_names = project.labels()
    label_index = {name: i for i, name in enumerate(class_names)}
    n_classes = len(class_names)
    if not project.representations():
        raise AmendError(f"{project.path} has no vectors to train a probe on; run `amend embed` first.")
    rep = project.representation(representation)
    vector_ids, vectors = project.vectors(rep.name)
    ids = samples["id"].astype(str).tolist()
    if vector_ids != ids:
        raise AmendError(
            f"representation {rep.name!r} covers {len(vector_ids)} of {len(ids)} samples; "
            f"run `amend embed {project.path} --name {rep.name}` to finish it first."
        )
    x = normalise(vectors)
    given = np.array([label_index[label] for label in samples["label"]], dtype=np.int64)
    sides = {"before": _read_side(project, side_a, ids, label_index),
             "after": _read_side(project, side_b, ids, label_index)}

    # The evaluation labels: the best available, said in `what`.
    now = current_labels(project)
    if reference is not None:
        truth, listed = _reference_labels(reference, ids, given, label_index)
        truth_text = (f"clean reference {reference_name!r} ({listed} samples listed; the others keep their given label)")
        sides["clean"] = _Side(LabelSource("given"), truth, np.zeros(len(ids), dtype=bool))
    else:
        truth = np.array([label_index[label] for label in now["current_label"]], dtype=np.int64)
        decided = int((now["status"] != "unreviewed").sum())
        truth_text = f"current labels (given + decisions on {decided} samples, log head {audit.chain_head(project)[:12]})"

    # The evaluation rows and the training folds.
    splits = samples["split"].astype(object).where(samples["split"].notna(), None)
    split_names = sorted({s for s in splits if s is not None})
    if eval_split is None:
        eval_split = "test" if "test" in split_names else "cv"
    dev = resolve_device(device)
    if eval_split == "cv":
        k = int(min(folds, len(ids)))
        if k < 2:
            raise AmendError("cross-validation needs at least 2 samples and 2 folds.")
        fold = fold_assignment(truth, k, seed)
        plan = [(fold != f, fold == f) for f in range(k)]
        evaluate = np.ones(len(ids), dtype=bool)
        split_text = (f"{k}-fold cross-validation over all {len(ids)} samples (seed {seed}, folds stratified on the "
                      "evaluation labels, the same folds for every side)")
    else:
        if eval_split not in split_names:
            raise AmendError(
                f"no sample is in split {eval_split!r}; splits here: {', '.join(split_names) or 'none'} "
                "(or use --eval-split cv for cross-validation)."
            )
        evaluate = (splits == eval_split).to_numpy()
        if evaluate.all():
            raise AmendError(f"every sample is in split {eval_split!r}; nothing is left to train on (use --eval-split cv).")
        plan = [(~evaluate, evaluate)]
        split_text = f"split {eval_split!r} ({int(evaluate.sum())} samples); trained on the other {int((~evaluate).sum())}"

    for side in sides.values():
        if side.labels is None:
            continue
        predicted = np.full(len(ids), -1, dtype=np.int64)
        trained = 0
        for train, test in plan:
            rows = train & ~side.excluded
            trained += int(rows.sum())
            predicted[test] = _fit_predict(x[rows], side.labels[rows], x[test], n_classes, dev, C, max_iter)
        side.predicted = predicted
        side.train_rows = trained // len(plan) if eval_split == "cv" else trained

    present = np.unique(truth[evaluate])
    scores = {name: _scores(truth[evaluate], side.predicted[evaluate], n_classes, present)
              for name, side in sides.items()}
    overall = pd.DataFrame(
        [{"side": name, "accuracy": s["accuracy"], "macro_f1": s["macro_f1"]} for name, s in scores.items()]
    )
    support = np.bincount(truth[evaluate], minlength=n_classes)
    per_class = pd.DataFrame({"label": class_names, "support": support})
    for name in ("before", "after"):
        for metric in ("precision", "recall", "f1"):
            per_class[f"{name}_{metric}"] = scores[name][metric]
    per_class = per_class[per_class["support"] > 0].reset_index(drop=True)
    confusion = {"labels": class_names, "before": scores["before"]["confusion"].tolist(),
                 "after": scores["after"]["confusion"].tolist()}

    notes: list[str] = []
    run = _slice_run(project, rep.name, run_id, notes)
    per_slice = _per_slice(project, run, ids, evaluate, truth, sides)
    recovered = None
    if "clean" in scores:
        recovered = _recovered(scores["before"]["accuracy"], scores["after"]["accuracy"], scores["clean"]["accuracy"])

    what = {
        "before": _describe_side(sides["before"]),
        "after": _describe_side(sides["after"]),
        "evaluation": {"rows": int(evaluate.sum()), "split": eval_split, "method": split_text, "labels": truth_text,
                       "classes": int(present.size)},
        "representation": {"name": rep.name, "model": rep.model, "dim": rep.dim},
        "run_id": None if run is None else run.run_id,
        "model": {"kind": "linear probe", "detail": "multinomial logistic regression on L2-normalised vectors "
                  "(core.detect.probe)", "C": C, "max_iter": max_iter, "device": dev},
        "chain_head": audit.chain_head(project),
        "samples": len(ids),
    }
    if "clean" in sides:
        what["clean"] = {"labels": truth_text, "train_rows": sides["clean"].train_rows}
    interval = difference_interval(sides["before"].predicted[evaluate] == truth[evaluate],
                                   sides["after"].predicted[evaluate] == truth[evaluate])
    return CompareResult(what=what, overall=overall, per_class=per_class, per_slice=per_slice, confusion=confusion,
                         recovered_share=recovered, notes=notes, accuracy_difference=interval)


def _describe_side(side: _Side) -> dict:
    out = {"labels": side.source.text(), "description": side.source.describe()}
    if side.labels is None:
        out.update(model="imported predictions (no probe trained)", train_rows=None, excluded=0)
    else:
        out.update(model="linear probe", train_rows=side.train_rows, excluded=int(side.excluded.sum()),
                   decisions=side.decisions, last_event=side.last_event)
    return out


def _slice_run(project: Project, representation: str, run_id: Optional[str], notes: list[str]):
    from core.analysis import runs as runs_mod

    if run_id is not None:
        run = runs_mod.get_run(project, run_id)
        if run.slices_table is None:
            raise AmendError(f"run {run_id} has no slices; analyse with slices to get the per-slice view.")
        return run
    candidates = [r for r in runs_mod.list_runs(project) if r.representation == representation and r.slices_table]
    if not candidates:
        notes.append(f"no analysis run with slices on {representation!r}: run `amend analyse` for the per-slice view.")
        return None
    return candidates[-1]


def _per_slice(project: Project, run, ids: list[str], evaluate: np.ndarray, truth: np.ndarray,
               sides: dict[str, _Side]) -> pd.DataFrame:
    from core.analysis import runs as runs_mod

    columns = ["slice_id", "error_rank", "name", "size", "n_eval", "before", "after", "difference"]
    if "clean" in sides:
        columns += ["clean", "recovered_share"]
    if run is None:
        return pd.DataFrame(columns=columns)
    _, table = runs_mod.slices(project, run.run_id)
    position = {sid: i for i, sid in enumerate(ids)}
    rows = []
    for slice_row in table.sort_values("slice_id").itertuples(index=False):
        members = np.array([position[m] for m in slice_row.members if m in position], dtype=np.int64)
        chosen = members[evaluate[members]] if members.size else members
        row: dict[str, Any] = {"slice_id": int(slice_row.slice_id), "error_rank": int(slice_row.error_rank),
                               "name": str(slice_row.name),
                               "size": int(members.size), "n_eval": int(chosen.size)}
        for name in sides:
            row[name] = float(np.mean(sides[name].predicted[chosen] == truth[chosen])) if chosen.size else float("nan")
        row["difference"] = row["after"] - row["before"]
        if "clean" in sides:
            share = _recovered(row["before"], row["after"], row["clean"])
            row["recovered_share"] = float("nan") if share is None else share
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)
