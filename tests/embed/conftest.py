"""Projects for the embed tests, built directly through Project (no dependency on core/ingest)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from builders import add_rows
from core.store.project import Project

REPO = Path(__file__).resolve().parents[2]
CIFAR = REPO / "sample_data" / "cifar10n"
NEWS = REPO / "sample_data" / "news20" / "texts.jsonl"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def image_rows(root: Path, manifest: pd.DataFrame) -> list[dict]:
    rows = []
    for rec in manifest.itertuples():
        data = (root / rec.path).read_bytes()
        with Image.open(root / rec.path) as im:
            width, height = im.size
        rows.append({"id": str(rec.id), "modality": "image", "root": str(root), "path": rec.path,
                     "label": rec.label, "content_hash": sha256_bytes(data), "width": width, "height": height})
    return rows


@pytest.fixture
def cifar_copy(tmp_path):
    """A private copy of the first 12 CIFAR sample images (tests may change the files)."""
    manifest = pd.read_csv(CIFAR / "manifest.csv", dtype={"id": str}).head(12)
    root = tmp_path / "images_root"
    (root / "images").mkdir(parents=True)
    for rel in manifest["path"]:
        shutil.copy(CIFAR / rel, root / rel)
    return root, manifest


@pytest.fixture
def make_image_project(tmp_path, cifar_copy):
    """make(n, start=0) -> Project with images [start, start+n) of the copy, one ingest per call."""
    root, manifest = cifar_copy
    project = Project.create(tmp_path / "proj_images")

    def make(n: int, start: int = 0) -> Project:
        add_rows(project, image_rows(root, manifest.iloc[start:start + n]))
        return project

    make.root = root
    make.manifest = manifest
    return make


def text_records(n: int) -> list[dict]:
    records = [json.loads(line) for line in NEWS.read_text().splitlines()[:n]]
    return [{"id": r["id"], "modality": "text", "text": r["text"], "label": r["label"],
             "content_hash": sha256_bytes(r["text"].encode("utf-8"))} for r in records]


@pytest.fixture
def text_project(tmp_path):
    project = Project.create(tmp_path / "proj_texts")
    add_rows(project, text_records(8))
    return project


@pytest.fixture(scope="session")
def offline_image():
    from core.embed.fallback import offline

    return offline("image", "cpu")


@pytest.fixture(scope="session")
def offline_text():
    from core.embed.fallback import offline

    return offline("text", "cpu")
