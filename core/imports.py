"""Bring your own vectors and predictions: ``amend vectors import`` / ``amend predictions import``.

Everything is validated before anything is written: shapes, ids (unknown, missing, duplicated),
finite numbers and, for predictions, probabilities (non-negative, rows summing to 1 within
``SUM_TOLERANCE``). All problems found are reported together in one :class:`AmendError` naming
counts and the first few offending ids or rows; on any problem nothing is written. Every project
sample must get a row: analysis compares samples, so partial vectors or predictions are refused
(import the rest, or ingest only the samples you have rows for).

The write itself is :meth:`Project.import_vectors` / :meth:`Project.import_predictions`: one
table write, then the registry row that makes it visible.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from core.errors import AmendError
from core.store.project import Project
from core.store.schema import check_name
from core.util import read_utf8, unit_rows

SUM_TOLERANCE = 0.01
SHOW = 5  # offending ids / rows named in a message


def _first(items: Sequence, n: int = SHOW) -> str:
    items = list(items)
    shown = ", ".join(str(x) for x in items[:n])
    return shown + (", ..." if len(items) > n else "")


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _existing_file(file: str | os.PathLike, what: str) -> Path:
    path = Path(file).expanduser()
    if not path.is_file():
        raise AmendError(f"{what} file {path} does not exist.")
    return path


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return "npy"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise AmendError(f"{path}: unsupported file type {suffix or '(none)'}; use .npy (with --ids) or .parquet.")


def _read_ids(ids_file: Optional[str | os.PathLike], data_file: Path) -> list[str]:
    if ids_file is None:
        raise AmendError(f"{data_file} is a .npy file: pass --ids FILE (one sample id a line, in the rows' order).")
    path = _existing_file(ids_file, "ids")
    lines = read_utf8(path, "ids file").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    ids = [line.strip() for line in lines]
    blank = [n + 1 for n, sid in enumerate(ids) if not sid]
    if blank:
        raise AmendError(f"ids file {path}: {len(blank)} empty line(s) (line {_first(blank)}); one id a line.")
    return ids


def _load_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise AmendError(f"{path} is not a readable numeric .npy array ({exc}).") from exc
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise AmendError(f"{path} holds {array.dtype} values; expected real numbers (float).")
    return array


def _read_parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise AmendError(f"{path} is not a readable Parquet file ({exc}).") from exc


def _check_ids(ids: list[str], project_ids: list[str], problems: list[str]) -> None:
    counts = Counter(ids)
    duplicated = [sid for sid, n in counts.items() if n > 1]
    if duplicated:
        problems.append(f"{len(duplicated)} id(s) appear more than once ({_first(duplicated)})")
    known = set(project_ids)
    unknown = [sid for sid in counts if sid not in known]
    if unknown:
        problems.append(f"{len(unknown)} id(s) are not samples of this project ({_first(unknown)})")
    given = set(counts)
    missing = [sid for sid in project_ids if sid not in given]
    if missing:
        problems.append(
            f"{len(missing)} of the project's {len(project_ids)} samples have no row ({_first(missing)}); "
            "every sample needs one"
        )


def _check_finite(matrix: np.ndarray, ids: list[str], problems: list[str]) -> None:
    if matrix.ndim != 2 or matrix.size == 0:
        return
    nan_rows = np.flatnonzero(np.isnan(matrix).any(axis=1))
    inf_rows = np.flatnonzero(np.isinf(matrix).any(axis=1))
    label = lambda rows: _first(f"row {r} (id {ids[r]})" if r < len(ids) else f"row {r}" for r in rows)  # noqa: E731
    if len(nan_rows):
        problems.append(f"{len(nan_rows)} row(s) contain NaN ({label(nan_rows)})")
    if len(inf_rows):
        problems.append(f"{len(inf_rows)} row(s) contain infinite values ({label(inf_rows)})")


def _storable_vectors(matrix: np.ndarray, ids: list[str], problems: list[str]) -> Optional[np.ndarray]:
    """The rows as they will be stored (float32, unit length), or None after adding a problem.

    Checked after the cast and after normalising, since that is what analysis reads: a finite
    float64 beyond float32's range (about 3.4e38) becomes inf, a row of values below float32's
    smallest (about 1.4e-45) becomes all zeros, and either would be stored as a zero or NaN vector.
    """
    named = lambda rows: _first(f"row {r} (id {ids[r]})" for r in rows)  # noqa: E731
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        cast = matrix.astype(np.float32)
        overflow = np.flatnonzero(~np.isfinite(cast).all(axis=1))
        if len(overflow):
            problems.append(f"{len(overflow)} row(s) hold values beyond float32's range (about 3.4e38), which would be "
                            f"stored as infinite ({named(overflow)}); rescale them")
            return None
        zero = np.flatnonzero(~cast.any(axis=1))
        if len(zero):
            vanished = [r for r in zero if matrix[r].any()]
            why = (" (values below about 1.4e-45 round to zero as float32)" if vanished else "")
            problems.append(f"{len(zero)} row(s) are all zeros once stored as float32{why} and cannot be normalised "
                            f"({named(zero)})")
            return None
        unit = unit_rows(cast)
        norms = np.linalg.norm(unit.astype(np.float64), axis=1)
    bad = np.flatnonzero(~np.isfinite(unit).all(axis=1) | (np.abs(norms - 1.0) > 1e-3))
    if len(bad):
        problems.append(f"{len(bad)} row(s) cannot be scaled to unit length ({named(bad)})")
        return None
    return unit


def _raise(path: Path, problems: list[str], what: str) -> None:
    if problems:
        raise AmendError(f"{what} file {path} was not imported, nothing was written: " + "; ".join(problems) + ".")


# ----------------------------------------------------------------------------------- vectors
def _parquet_vectors(path: Path, problems: list[str]) -> tuple[list[str], np.ndarray]:
    import pyarrow as pa
    import pyarrow.compute as pc

    table = _read_parquet(path)
    missing = [c for c in ("id", "vector") if c not in table.column_names]
    if missing:
        raise AmendError(f"{path} lacks column(s) {', '.join(missing)}; a vectors Parquet has `id` and `vector`.")
    ids_col = table.column("id")
    if ids_col.null_count:
        problems.append(f"{ids_col.null_count} row(s) have no id")
    ids = [str(x) for x in ids_col.to_pylist()]
    column = table.column("vector").combine_chunks()
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or pa.types.is_fixed_size_list(column.type)):
        raise AmendError(f"{path}: column `vector` is {column.type}; expected a list of numbers per row.")
    if column.null_count:
        rows = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))
        raise AmendError(f"{path}: {len(rows)} row(s) have no vector (row {_first(rows)}); nothing was written.")
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths != lengths[0]).any():
        common = Counter(lengths.tolist()).most_common(1)[0][0]
        odd = np.flatnonzero(lengths != common)
        raise AmendError(
            f"{path}: vectors have different lengths (most are {common}; {len(odd)} row(s) differ: "
            f"{_first(f'row {r} (id {ids[r]}, {lengths[r]})' for r in odd)}); nothing was written."
        )
    dim = int(lengths[0]) if len(lengths) else 0
    try:
        values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
    except (TypeError, ValueError, pa.ArrowInvalid) as exc:
        raise AmendError(f"{path}: column `vector` does not hold numbers ({exc}).") from exc
    return ids, values.reshape(len(ids), dim)


def import_vectors(project: Project, file: str | os.PathLike, name: str,
                   ids_file: Optional[str | os.PathLike] = None) -> dict:
    """Import a user's vectors as representation ``name``.

    Parameters
    ----------
    project : Project
    file : path
        ``.npy`` (N x dim, rows in the order of ``ids_file``) or Parquet (``id`` + ``vector``).
    name : str
        The new representation's name (must not exist yet).
    ids_file : path, optional
        One sample id a line; required with ``.npy``, refused with Parquet.

    Returns
    -------
    dict
        ``{"representation", "imported", "dim"}``.
    """
    check_name("representation", name)
    path = _existing_file(file, "vectors")
    kind = _kind(path)
    problems: list[str] = []
    if kind == "npy":
        ids = _read_ids(ids_file, path)
        matrix = _load_npy(path)
        if matrix.ndim != 2:
            raise AmendError(f"{path} has shape {matrix.shape}; vectors must be a 2-D array (rows x dim).")
        if matrix.shape[0] != len(ids):
            problems.append(f"{matrix.shape[0]} vector rows but {len(ids)} ids in {ids_file}")
    else:
        if ids_file is not None:
            raise AmendError("--ids is only for .npy files; a Parquet file carries its own `id` column.")
        ids, matrix = _parquet_vectors(path, problems)
    if matrix.ndim == 2 and matrix.shape[1] == 0:
        problems.append("vectors have 0 dimensions")
    project_ids = project.sample_ids()
    if not project_ids:
        raise AmendError(f"{project.path} has no samples; ingest them before importing vectors.")
    _check_ids(ids, project_ids, problems)
    _check_finite(matrix, ids, problems)
    stored = _storable_vectors(matrix, ids, problems) if matrix.ndim == 2 and matrix.size and not problems else None
    _raise(path, problems, "vectors")
    with project.writer("vectors import"):
        if any(rep.name == name for rep in project.representations()):
            raise AmendError(f"representation {name!r} already exists; choose another --name.")
        rep = project.import_vectors(
            name, ids, stored, model=f"import:{path.name}",
            settings={"source": "import", "file": str(path.resolve()), "format": kind, "sha256": _file_digest(path)},
        )
    return {"representation": rep.name, "imported": len(ids), "dim": rep.dim}


# ----------------------------------------------------------------------------------- predictions
def import_predictions(project: Project, file: str | os.PathLike, ids_file: Optional[str | os.PathLike] = None,
                       name: str = "default") -> dict:
    """Import a user's model probabilities per sample as prediction set ``name``.

    Parameters
    ----------
    project : Project
    file : path
        ``.npy`` (N x classes, columns in the project's label order, rows in the order of
        ``ids_file``) or Parquet (``id`` + one column per label name).
    ids_file : path, optional
        One sample id a line; required with ``.npy``, refused with Parquet.
    name : str
        Prediction set name (default ``"default"``); an existing set of that name is replaced.

    Returns
    -------
    dict
        ``{"imported", "classes", "name"}`` (``classes``: the label names in column order).
    """
    check_name("predictions", name)
    path = _existing_file(file, "predictions")
    kind = _kind(path)
    labels = project.labels()
    if not labels:
        raise AmendError(f"{project.path} has no labels yet; ingest samples before importing predictions.")
    problems: list[str] = []
    if kind == "npy":
        ids = _read_ids(ids_file, path)
        matrix = _load_npy(path)
        if matrix.ndim != 2:
            raise AmendError(f"{path} has shape {matrix.shape}; predictions must be a 2-D array (rows x classes).")
        if matrix.shape[1] != len(labels):
            problems.append(
                f"{matrix.shape[1]} columns but the project has {len(labels)} labels ({_first(labels, 10)}); "
                "columns must follow that order"
            )
        if matrix.shape[0] != len(ids):
            problems.append(f"{matrix.shape[0]} prediction rows but {len(ids)} ids in {ids_file}")
    else:
        if ids_file is not None:
            raise AmendError("--ids is only for .npy files; a Parquet file carries its own `id` column.")
        table = _read_parquet(path)
        if "id" not in table.column_names:
            raise AmendError(f"{path} lacks an `id` column; a predictions Parquet has `id` + one column per label.")
        columns = [c for c in table.column_names if c != "id"]
        absent = [label for label in labels if label not in columns]
        extra = [c for c in columns if c not in labels]
        if absent:
            problems.append(f"{len(absent)} label column(s) missing ({_first(absent)})")
        if extra:
            problems.append(f"{len(extra)} column(s) are not labels of this project ({_first(extra)})")
        if table.column("id").null_count:
            problems.append(f"{table.column('id').null_count} row(s) have no id")
        ids = [str(x) for x in table.column("id").to_pylist()]
        if absent or extra:
            _raise(path, problems, "predictions")
        try:
            matrix = np.column_stack(
                [table.column(label).to_numpy().astype(np.float64) for label in labels]
            ) if len(ids) else np.zeros((0, len(labels)))
        except (TypeError, ValueError) as exc:
            raise AmendError(f"{path}: label columns must hold numbers ({exc}).") from exc
    _check_ids(ids, project.sample_ids(), problems)
    _check_finite(matrix, ids, problems)
    if matrix.ndim == 2 and matrix.shape[1] == len(labels) and matrix.size:
        finite = np.isfinite(matrix).all(axis=1)
        negative = np.flatnonzero(finite & (matrix < 0).any(axis=1))
        if len(negative):
            problems.append(f"{len(negative)} row(s) have negative probabilities ({_first(f'row {r} (id {ids[r]})' for r in negative if r < len(ids))})")
        sums = matrix.sum(axis=1)
        off = np.flatnonzero(finite & (np.abs(sums - 1.0) > SUM_TOLERANCE))
        if len(off):
            problems.append(
                f"{len(off)} row(s) do not sum to 1 within {SUM_TOLERANCE} (they look like scores or logits, "
                f"not probabilities: {_first(f'row {r} sums to {sums[r]:.4g}' for r in off)})"
            )
    _raise(path, problems, "predictions")
    with project.writer("predictions import"):
        pset = project.import_predictions(name, ids, matrix.astype(np.float32), labels, source=f"import:{path.name}")
    return {"imported": len(ids), "classes": pset.classes, "name": pset.name}
