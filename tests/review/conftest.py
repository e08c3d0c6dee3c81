"""A small text project for the review tests (real LanceDB + SQLite, no mocks)."""

from __future__ import annotations

import pytest

from core.store.project import Project

TEXTS = {
    "s1": ("a cat on a mat", "cat"),
    "s2": ("a dog in a fog", "dog"),
    "s3": ("a bird on a wire", "bird"),
    "s4": ("another cat", "cat"),
    "s5": ("another dog", "dog"),
    "s6": ("a cat that barks", "dog"),
}


def make_project(path) -> Project:
    project = Project.create(path)
    with project.writer("test"):
        with project.ingest_transaction("test", "texts", None, {}) as writer:
            for row, (sid, (text, label)) in enumerate(TEXTS.items(), start=1):
                writer.add(dict(id=sid, modality="text", text=text, label=label, content_hash=sid,
                                metadata="{}", source_row=row))
            writer.flush()
    return project


@pytest.fixture
def project(tmp_path) -> Project:
    return make_project(tmp_path / "p")
