"""Fixtures for ingest tests: real projects in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.store.project import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project.create(tmp_path / "project")
