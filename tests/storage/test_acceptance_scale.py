"""Issue 16's acceptance check, end to end through `amend`: a project whose LanceDB tables live on
an S3-compatible server (moto on 127.0.0.1, see conftest), embedded twice with the same tiny
random-weight OpenCLIP model, once on a local Ray (`--engine ray`, no address) and once in process;
both representations exported to Parquet agree row by row (cosine >= 0.999 on the same ids); the
analysis and the flags run on the remote tables; and every table (samples, both vector tables, the
run's evidence) is an object under the bucket's prefix, none in the project folder.

Small on purpose (30 CIFAR-10N images in 3 classes, one Ray start): about half a minute on two cores.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.store.project import Project

from .conftest import amend

REPO = Path(__file__).resolve().parents[2]
CIFAR = REPO / "sample_data" / "cifar10n"
CLASSES = ("airplane", "frog", "deer")
PER_CLASS = 10
PREFIX = "acceptance/scale"
FLAG_KEYS = {"id", "rank", "score", "given_label", "current_label", "suggested_label", "flagged", "detectors"}


def _image_folder(folder: Path) -> Path:
    """``folder/<label>/<file>``: the first PER_CLASS sample images of each of CLASSES."""
    manifest = pd.read_csv(CIFAR / "manifest.csv", dtype={"id": str})
    for label in CLASSES:
        (folder / label).mkdir(parents=True)
        for rel in manifest.loc[manifest["label"] == label, "path"].head(PER_CLASS):
            shutil.copy(CIFAR / rel, folder / label / Path(rel).name)
    return folder


def _read_export(path: Path, name: str) -> tuple[list[str], np.ndarray]:
    table = pq.read_table(path)
    assert table.column_names == ["id", "vector"]
    assert table.schema.metadata[b"amend.representation"] == name.encode()
    return table.column("id").to_pylist(), np.asarray(table.column("vector").to_pylist(), dtype=np.float64)


def _lance_leftovers(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.name == "lance" or p.suffix == ".lance"]


@pytest.mark.slow
def test_issue16_acceptance_ray_and_local_embeddings_of_a_project_on_object_storage(s3_env, tiny_checkpoint,
                                                                                    tmp_path):
    # 1. the server (s3_env: moto on 127.0.0.1 and the AWS_* environment a user sets), a bucket
    bucket = s3_env.new_bucket()
    uri = f"s3://{bucket}/{PREFIX}"
    images = _image_folder(tmp_path / "images")
    project = tmp_path / "projects" / "scale"
    n = len(CLASSES) * PER_CLASS

    # 2. init with the tables on the bucket
    init = amend("init", project, "--images", images, "--data", uri, "--json").json()
    assert (init["taken"], init["rejected"]) == (n, 0)
    assert sorted(init["labels"]) == sorted(CLASSES)

    # 3. the same model options on both engines: a local Ray (no --address) and in process
    checkpoint, _ = tiny_checkpoint
    model = ["--model", "amend-tiny-test", "--checkpoint", checkpoint, "--device", "cpu", "--batch-size", "8"]
    ray_run = amend("embed", project, *model, "--engine", "ray", "--name", "ray-rep", "--json")
    assert len(ray_run.out.splitlines()) == 1  # stdout is the one JSON object, whatever Ray prints
    on_ray = ray_run.json()
    local = amend("embed", project, *model, "--name", "local-rep", "--json").json()
    assert on_ray.keys() == local.keys()
    assert (on_ray["representation"], on_ray["embedded"], on_ray["skipped"]) == ("ray-rep", n, 0)
    assert (local["representation"], local["embedded"], local["skipped"]) == ("local-rep", n, 0)
    assert (on_ray["model"], on_ray["dim"], on_ray["device"]) == (local["model"], local["dim"], local["device"])
    reps = {rep.name: rep for rep in Project.open(project).representations()}
    assert set(reps) == {"ray-rep", "local-rep"}
    assert reps["ray-rep"].settings["engine"] == "ray"  # the Ray path really ran (the cosines below mean something)
    assert reps["local-rep"].settings.get("engine", "local") != "ray"

    # 4. both representations out to Parquet: the same ids, the same vectors (cosine >= 0.999 per row)
    exported = {}
    for name in ("ray-rep", "local-rep"):
        out = tmp_path / "out" / f"{name}.parquet"
        report = amend("vectors", "export", project, out, "--name", name, "--json").json()
        assert report == {"representation": name, "exported": n, "dim": local["dim"]}
        exported[name] = _read_export(out, name)
    ray_ids, ray_vectors = exported["ray-rep"]
    local_ids, local_vectors = exported["local-rep"]
    assert len(ray_ids) == n and len(set(ray_ids)) == n
    assert ray_ids == local_ids
    assert ray_vectors.shape == local_vectors.shape == (n, local["dim"])
    cosines = np.sum(ray_vectors * local_vectors, axis=1) / (
        np.linalg.norm(ray_vectors, axis=1) * np.linalg.norm(local_vectors, axis=1))
    assert cosines.min() >= 0.999, cosines

    # 5. the analysis on the in-process representation, and the ranked list, all read from the bucket
    analysed = amend("analyse", project, "--representation", "local-rep", "--json").json()
    assert (analysed["representation"], analysed["samples"]) == ("local-rep", n)
    flags = amend("flags", project, "--format", "json").json()
    assert isinstance(flags, list) and len(flags) == n
    assert {row["id"] for row in flags} == set(local_ids)  # every sample scored, once
    for row in flags:
        assert FLAG_KEYS <= row.keys(), row
        assert isinstance(row["detectors"], dict) and row["detectors"], row
        assert row["given_label"] in CLASSES and row["current_label"] in CLASSES
    assert [row["rank"] for row in flags] == list(range(1, n + 1))  # best first
    flagged = [row["id"] for row in flags if row["flagged"]]
    assert len(flagged) == analysed["flagged"]
    only = amend("flags", project, "--flagged-only", "--format", "json").json()
    assert [row["id"] for row in only] == flagged and all(row["flagged"] for row in only)

    # 6. every table is objects under the prefix, and the folder holds none
    keys = s3_env.keys(bucket)
    assert keys and all(key.startswith(PREFIX + "/") for key in keys), keys
    tables = {key[len(PREFIX) + 1:].split("/", 1)[0] for key in keys}
    expected = {"samples.lance", f"{reps['ray-rep'].table_name}.lance", f"{reps['local-rep'].table_name}.lance",
                f"evidence__{analysed['run_id']}.lance"}
    assert expected <= tables, (expected - tables, tables)
    for table in expected:  # a table with data, not just a name: its manifest and data files
        assert any(key.startswith(f"{PREFIX}/{table}/_versions/") for key in keys), table
        assert any(key.startswith(f"{PREFIX}/{table}/data/") for key in keys), table
    assert _lance_leftovers(project) == []
    assert not (project / "lance").exists()
