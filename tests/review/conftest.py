"""A small text project for the review tests (real LanceDB + SQLite, no mocks)."""

from __future__ import annotations

import pytest

from builders import text_project
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
    return text_project(path, TEXTS)


@pytest.fixture
def project(tmp_path) -> Project:
    return make_project(tmp_path / "p")
