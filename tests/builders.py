"""The one place the tests build projects (import it as ``builders``: tests/ is on sys.path).

- :func:`add_rows` / :func:`text_project`: samples written straight through the store's ingest
  transaction (no reader, no embedder): for tests of everything after ingest.
- :func:`import_vectors`: vectors brought in the way a user brings their own (``amend vectors
  import``: a .npy file and an ids file), so no embedder runs.
- :func:`imported_sample_project`: one of the sample datasets in ``sample_data/`` ingested for
  real, with imported vectors that cluster by each sample's *true* label (the known errors are
  planted by the data itself), then analysed. The page and triage tests use these; only the
  end-to-end and browser tests (marked ``slow``) pay for the real offline embedder.
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
