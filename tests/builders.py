"""The one place the tests build projects (import it as ``builders``: tests/ is on sys.path).

- :func:`add_rows` / :func:`text_project`: samples written straight through the store's ingest
  transaction (no reader, no embedder): for tests of everything after ingest.
- :func:`import_vectors`: vectors brought in the way a user brings their own (``amend vectors
  import``: a .npy file and an ids file), so no embedder runs.
- :func:`imported_sample_project`: one of the sample datasets in ``sample_data/`` ingested for
  real, with imported vectors that cluster by each sample's *true* label (the known errors are
  planted by the data itself), then analysed. The page and triage tests use these; only the
  end-to-end and browser tests (marked ``slow``) pay for the real offline embedder.
- :func:`overview_project` / :func:`save_overview_run`: a small synthetic text project with a run
  stored in the real run format (no detectors run), for the overview view-model and page tests.
- :func:`failing_image_project` / :func:`failing_text_project`: small analysed projects (no slices,
  seconds) whose probe gets a good share wrong, for the hypotheses tests; the images are the
  sample data's own files.
- :func:`relabel_one`: one decision on an analysed project, so the next analysis has new labels
  (the re-analysis tests).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import numpy as np
import pandas as pd

from core.store.project import Project

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "sample_data"
SAMPLE_NAMES = ("cifar10n-sample", "news20-sample")

#: What a text row gets unless the test says otherwise.
_TEXT_ROW = {"modality": "text", "text": None, "root": None, "path": None, "split": None, "width": None, "height": None,
             "metadata": "{}"}


def add_rows(project: Project, rows: Iterable[Mapping[str, Any]], source: str = "test", kind: str = "texts",
             rejects: Iterable[tuple] = ()) -> Project:
    """One committed ingest of ``rows`` (sample columns without ``ingest_id``).

    A row needs ``id`` and ``label``; ``content_hash`` defaults to the id, ``source_row`` to the row's
    1-based position, a dict ``metadata`` is stored as JSON, and text defaults fill the rest.
    ``rejects``: ``(row, sample_id, reason, detail)`` tuples recorded with the ingest.
    """
    with project.writer("test"):
        with project.ingest_transaction(source, kind, None, {}) as writer:
            for number, row in enumerate(rows, start=1):
                row = {**_TEXT_ROW, "content_hash": row["id"], "source_row": number, **row}
                if not isinstance(row["metadata"], str):
                    row["metadata"] = json.dumps(row["metadata"])
                writer.add(row)
            for reject in rejects:
                writer.reject(*reject)
            writer.flush()
    return project


def text_project(path: Path, texts: Mapping[str, tuple[str, str]] | Iterable[Mapping[str, Any]],
                 source: str = "test") -> Project:
    """A new project at ``path`` holding ``texts``: ``{id: (text, label)}`` or a list of row dicts."""
    if isinstance(texts, Mapping):
        texts = [{"id": sid, "text": text, "label": label} for sid, (text, label) in texts.items()]
    return add_rows(Project.create(path), texts, source=source)


def import_vectors(project: Project, name: str, ids: list[str], vectors: np.ndarray,
                   folder: Optional[Path] = None) -> dict:
    """Import ``vectors`` (rows in the order of ``ids``) as representation ``name``, through the
    same files and checks as ``amend vectors import`` (the files land in ``folder``, by default
    beside the project)."""
    from core.imports import import_vectors as run_import

    folder = Path(folder or project.path.parent)
    folder.mkdir(parents=True, exist_ok=True)
    file, ids_file = folder / f"{name}.npy", folder / f"{name}.ids.txt"
    np.save(file, np.asarray(vectors, dtype=np.float32))
    ids_file.write_text("\n".join(ids) + "\n", encoding="utf-8")
    return run_import(project, file, name, ids_file=ids_file)


def clustered_vectors(truth: list[str], dim: int = 32, spread: float = 0.35, seed: int = 0) -> np.ndarray:
    """One vector a sample: the orthonormal centre of its true class plus Gaussian noise."""
    classes = sorted(set(truth))
    if len(classes) > dim:
        raise ValueError(f"{len(classes)} classes need dim >= {len(classes)}")
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.normal(size=(dim, dim)))[0][: len(classes)]
    index = np.array([classes.index(label) for label in truth])
    return (centres[index] + spread * rng.normal(size=(len(truth), dim))).astype(np.float32)


def sample_truth(name: str) -> tuple[list[str], list[str]]:
    """(ids, true labels) of a sample dataset, from its file and its known_errors.csv."""
    if name == "cifar10n-sample":
        frame = pd.read_csv(SAMPLE_DATA / "cifar10n" / "manifest.csv", dtype=str)
        errors = pd.read_csv(SAMPLE_DATA / "cifar10n" / "known_errors.csv", dtype=str)
        fixes = dict(zip(errors["id"], errors["clean_label"]))
    elif name == "news20-sample":
        frame = pd.read_json(SAMPLE_DATA / "news20" / "texts.jsonl", lines=True, dtype={"id": str})
        errors = pd.read_csv(SAMPLE_DATA / "news20" / "known_errors.csv", dtype=str).dropna(subset=["suggested_label"])
        fixes = dict(zip(errors["id"], errors["suggested_label"]))
    else:
        raise ValueError(f"no sample dataset {name!r}; use one of {SAMPLE_NAMES}")
    ids = frame["id"].astype(str).tolist()
    return ids, [fixes.get(sid, label) for sid, label in zip(ids, frame["label"])]


def imported_sample_project(folder: Path, name: str, analyse: bool = True) -> Path:
    """The sample project ``name`` as the README's first command makes it, except that its
    vectors are imported (see :func:`clustered_vectors`) instead of embedded."""
    from core.ingest import IngestOptions, ingest

    if name == "cifar10n-sample":
        options = IngestOptions(manifest=SAMPLE_DATA / "cifar10n" / "manifest.csv",
                                annotator_columns=["annotator1", "annotator2", "annotator3"])
    else:
        options = IngestOptions(texts=SAMPLE_DATA / "news20" / "texts.jsonl")
    path = Path(folder) / name
    project = Project.create(path)
    ingest(project, options)
    ids, truth = sample_truth(name)
    import_vectors(project, "vectors", ids, clustered_vectors(truth), folder=Path(folder) / f"{name}-vectors")
    if analyse:
        from core.analysis.run import analyse as run_analysis

        run_analysis(project)
    return path.resolve()


#: The classes of :func:`overview_project` (in turn: sample i is OVERVIEW_CLASSES[i % 3]).
OVERVIEW_CLASSES = ["cat", "dog", "bird"]


def save_overview_run(project: Project, n_slices: int, rep: str, outliers: np.ndarray | None = None, seed: int = 0):
    """A run in the real run format (:func:`core.analysis.runs.save_run` with
    :func:`core.slices.slice_table` and the analysis' own slices frame) over ``project``: slice 0
    is where the probe disagrees with the labels, half of it flagged."""
    from core.analysis import runs
    from core.analysis.run import _slices_frame
    from core.slices import drawing_sample, slice_table
    from core.slices.discover import SliceResult

    frame = project.samples(columns=["id", "label"])
    ids = frame["id"].tolist()
    n = len(ids)
    rng = np.random.default_rng(seed)
    labels = np.array([OVERVIEW_CLASSES.index(label) for label in frame["label"]])
    slice_ids = np.arange(n) % n_slices
    xy = np.column_stack([slice_ids * 10.0 + rng.normal(0, 1, n), rng.normal(0, 1, n)]).astype(np.float32)
    probs = np.full((n, 3), 0.1)
    probs[np.arange(n), labels] = 0.8
    wrong = slice_ids == 0  # slice 0 is where the probe disagrees with the labels
    probs[wrong] = np.roll(probs[wrong], 1, axis=1)
    flagged = wrong & (np.arange(n) % 2 == 0)
    table = slice_table(slice_ids, labels, probs, flagged, 3, OVERVIEW_CLASSES, None)
    table.insert(1, "name", [f"mostly {OVERVIEW_CLASSES[s % 3]} ({s}); words: w{s}" for s in table["slice_id"]])
    result = SliceResult(xy, drawing_sample(slice_ids, seed=seed), slice_ids, table)
    score = np.where(flagged, 0.9, 0.1) + np.arange(n) * 1e-4
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-score, kind="stable")] = np.arange(1, n + 1)
    names = np.array(OVERVIEW_CLASSES, dtype=object)
    evidence = pd.DataFrame({
        "id": ids, "rank": rank, "score": score, "flagged": flagged, "label_analysed": names[labels],
        "suggested_label": names[(labels + 1) % 3], "suggested_by": "confident",
        "det_confident": score, "det_outliers": rng.random(n) if outliers is None else outliers,
        "neighbour_ids": [[ids[(i + 1) % n]] for i in range(n)], "support_ids": [[] for _ in range(n)],
        "slice_id": slice_ids.astype(np.int64), "x": xy[:, 0], "y": xy[:, 1],
        "drawn": np.isin(np.arange(n), result.draw_index),
    })
    record = {
        "class_table": [{"class": i, "class_name": c, "count": int((labels == i).sum()),
                         "frequency": float((labels == i).mean()), "flagged": int(flagged[labels == i].sum()),
                         "flag_rate": float(flagged[labels == i].mean()),
                         "flag_rate_ratio": float(flagged[labels == i].mean() / flagged.mean())}
                        for i, c in enumerate(OVERVIEW_CLASSES)],
        "counts": {"samples": n, "flagged": int(flagged.sum()), "slices": n_slices},
        "slices": {"domain_gaps": {"site": [{"source_a": "north", "source_b": "south", "n_a": 30, "n_b": 30, "auroc": 0.93}]}},
    }
    return runs.save_run(project, runs.new_run_id(), evidence, _slices_frame(result, ids), record, rep)


def overview_project(path, n: int = 60, n_slices: int = 3) -> Project:
    """A text project of ``n`` samples (labels cat/dog/bird in turn, a site per sample) with one run."""
    project = add_rows(Project.create(path), [
        {"id": f"s{i:03d}", "label": OVERVIEW_CLASSES[i % 3], "text": f"sample {i}   about a <b>{OVERVIEW_CLASSES[i % 3]}</b>\n" + "word " * 60,
         "split": "train" if i % 4 else "test", "content_hash": f"h{i}", "metadata": {"site": ["north", "south"][i % 2], "age": i}}
        for i in range(n)
    ], source="texts.csv")
    save_overview_run(project, n_slices, "minilm")
    return project


def failing_image_project(folder: Path, n: int = 60) -> Path:
    """The first ``n`` CIFAR-10N sample images of three classes, ingested for real, with imported
    vectors that follow the given label for two samples in three (the probe fails on many of the
    rest), analysed without slices."""
    from core.analysis.run import analyse
    from core.ingest import IngestOptions, ingest

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    classes = ["airplane", "cat", "frog"]
    manifest = pd.read_csv(SAMPLE_DATA / "cifar10n" / "manifest.csv", dtype=str)
    manifest = manifest[manifest["label"].isin(classes)].head(n)
    manifest.to_csv(folder / "manifest.csv", index=False)
    project = Project.create(folder / "images")
    ingest(project, IngestOptions(manifest=folder / "manifest.csv", root=SAMPLE_DATA / "cifar10n"))
    ids = project.sample_ids()
    given = dict(zip(manifest["id"], manifest["label"]))
    truth = [given[s] if i % 3 else classes[(i // 3) % 3] for i, s in enumerate(ids)]
    import_vectors(project, "vectors", ids, clustered_vectors(truth, dim=8, spread=0.5), folder=folder / "vectors")
    analyse(project, with_slices=False)
    return project.path


def failing_text_project(folder: Path, n: int = 30) -> Path:
    """``n`` short texts of three classes; the vectors put every fourth in the next class."""
    from core.analysis.run import analyse

    folder = Path(folder)
    labels = ["sport", "space", "cooking"]
    rows = [{"id": f"t{i:02d}", "text": f"Post {i}: a few words about {labels[i % 3]} and the week.",
             "label": labels[i % 3]} for i in range(n)]
    project = text_project(folder / "texts", rows)
    truth = [labels[(i + (i % 4 == 0)) % 3] for i in range(n)]
    import_vectors(project, "vectors", [r["id"] for r in rows], clustered_vectors(truth, dim=8),
                   folder=folder / "text-vectors")
    analyse(project, with_slices=False)
    return project.path


def one_hot_texts(texts) -> np.ndarray:
    """An embedder for tests where clustering is not under test: one axis per distinct text."""
    index = {t: i for i, t in enumerate(dict.fromkeys(texts))}
    out = np.zeros((len(texts), max(len(index), 2)), dtype=np.float32)
    for row, text in enumerate(texts):
        out[row, index[text]] = 1.0
    return out


def relabel_one(project) -> None:
    """Relabel the first sample to another class, as a reviewer would (one decision event)."""
    from core import api

    labels = api.current_labels(project).set_index("id")
    sample = labels.index[0]
    other = next(c for c in project.labels() if c != labels.loc[sample, "current_label"])
    api.decide(project, sample, "relabel", reviewer="ann", label=other, expected_event=0)
