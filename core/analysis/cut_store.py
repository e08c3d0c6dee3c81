"""The label-blind part of the error slices' cut, kept per vectors so a re-analysis reuses it.

The reduction and the k-means clusterings of the cut (:func:`core.slices.clustering.label_blind_cut`)
depend on the vectors and the seed alone, like the kNN graph and the map. Users re-analyse after
every batch of decisions; at 10,000 x 1,280 these steps were 1.5-2 s of the structured-regions
detector's 2-2.6 s in a re-analysis (bench/README.md, "Re-analysis keeps the cut's geometry").
They are kept in one LanceDB table per vectors content and seed (``cut__<key>``, beside the
project's other tables, so on object storage too), written by the first analysis that makes them
and read by every later one. A table that cannot be read, or does not cover the samples analysed,
is made again rather than failing the analysis.
"""

from __future__ import annotations

import json
import logging
from typing import Optional

import numpy as np

from core.slices.clustering import LabelBlindCut

logger = logging.getLogger(__name__)

__all__ = ["blind_cut_key", "load_blind_cut", "save_blind_cut"]

#: Schema metadata key of a cut table: what the cut was made from and with.
METADATA_KEY = b"amend.label_blind_cut"


def blind_cut_key(content_key: str, seed: int) -> str:
    """What the label-blind cut depends on: the vectors (``content_key``), the seed and every
    setting of the reduction and the clusterings. Equal keys mean the same cut."""
    import hashlib

    from core.slices import clustering, projection

    parts = ("label-blind cut", clustering.CUT_VERSION, projection.REDUCED_DIM, projection.PCA_FIT_MAX,
             clustering.K_GRID, clustering.MIN_MEAN_SLICE, clustering.SELECT_FIT_MAX, clustering.SILHOUETTE_MAX,
             int(seed), content_key)
    return hashlib.sha256("\0".join(map(str, parts)).encode("utf-8")).hexdigest()


def _table_name(key: str) -> str:
    return f"cut__{key[:32]}"


def load_blind_cut(project, key: str, ids: list[str]) -> Optional[LabelBlindCut]:
    """The cut kept under ``key``, in the order of ``ids``, or None when there is none (or it is
    unreadable, or lacks some of ``ids``)."""
    import pandas as pd

    name = _table_name(key)
    try:
        table = project.db.open_table(name).to_arrow()
    except Exception:  # not made yet (the usual case on a first analysis)
        return None
    try:
        meta = json.loads((table.schema.metadata or {})[METADATA_KEY])
        if meta.get("cut_key") != key:
            raise ValueError("the table was made for other vectors")
        position = pd.Index(table.column("id").to_pylist()).get_indexer(ids)
        if (position < 0).any():
            raise ValueError(f"{int((position < 0).sum())} of the samples analysed are not in it")
        reduced_column = table.column("reduced").combine_chunks()
        width = reduced_column.type.list_size
        reduced = np.asarray(reduced_column.values, dtype=np.float32).reshape(-1, width)[position]
        slice_ids = np.asarray(table.column("slice"), dtype=np.int64)[position]
        grid = {int(k): np.asarray(table.column(f"grid_{int(k)}"), dtype=np.int64)[position] for k in meta["grid"]}
        info = dict(meta["info"])
        if isinstance(info.get("silhouette"), dict):  # JSON made its int keys strings
            info["silhouette"] = {int(k): v for k, v in info["silhouette"].items()}
        return LabelBlindCut(reduced=np.ascontiguousarray(reduced), slice_ids=slice_ids, grid=grid,
                             seed=int(meta["seed"]), info=info)
    except Exception as exc:  # damaged or foreign: make the cut again rather than fail the analysis
        logger.info("label-blind cut %s not reusable: %s", name, exc)
        return None


def save_blind_cut(project, key: str, ids: list[str], cut: LabelBlindCut, representation: str) -> Optional[str]:
    """Keep ``cut`` (made for ``ids`` from ``representation``) under ``key``; returns the table's
    name, or None when it could not be written (the analysis goes on; the next one makes the cut
    again). The cut kept before for the same representation and seed (its vectors have changed
    since: new samples were embedded) is dropped, so a project keeps one per representation."""
    import pyarrow as pa

    name = _table_name(key)
    reduced = np.ascontiguousarray(cut.reduced, dtype=np.float32)
    columns = {
        "id": pa.array(list(ids), type=pa.string()),
        "reduced": pa.FixedSizeListArray.from_arrays(pa.array(reduced.ravel()), reduced.shape[1]),
        "slice": pa.array(np.asarray(cut.slice_ids, dtype=np.int32)),
    }
    for k, partition in sorted(cut.grid.items()):
        columns[f"grid_{int(k)}"] = pa.array(np.asarray(partition, dtype=np.int32))
    meta = {"cut_key": key, "seed": int(cut.seed), "grid": sorted(int(k) for k in cut.grid),
            "representation": representation, "info": json.loads(json.dumps(cut.info, default=float))}
    table = pa.table(columns).replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode("utf-8")})
    try:
        project.db.create_table(name, data=table)
    except Exception as exc:
        if load_blind_cut(project, key, ids) is not None:
            return name  # made meanwhile from the same vectors
        try:  # a damaged table under this name: analyses hold the project's writer lock, so replace it
            project.db.create_table(name, data=table, mode="overwrite")
        except Exception as again:  # unwritable: the next analysis makes the cut again
            logger.info("label-blind cut %s not kept: %s; %s", name, exc, again)
            return None
    _drop_superseded(project, name, representation, int(cut.seed))
    return name


def _drop_superseded(project, kept: str, representation: str, seed: int) -> None:
    """Drop the other cut tables of ``representation`` and ``seed`` (made from its earlier vectors)."""
    from core.store.project import table_names

    try:
        names = [n for n in table_names(project.db) if n.startswith("cut__") and n != kept]
    except Exception as exc:  # listing failed: leave them; they are only disk space
        logger.info("cut tables not listed: %s", exc)
        return
    for name in names:
        try:
            meta = json.loads((project.db.open_table(name).schema.metadata or {})[METADATA_KEY])
            if meta.get("representation") == representation and int(meta.get("seed", -1)) == seed:
                project.db.drop_table(name)
        except Exception as exc:  # a table that is not a readable cut: not ours to drop
            logger.info("cut table %s left as it is: %s", name, exc)
