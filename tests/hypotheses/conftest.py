"""Projects and a stand-in model server for the hypotheses tests.

The image project is CIFAR-10N sample images ingested for real (their files are the bytes the
server must receive), with imported vectors and an analysis without slices (seconds; see
builders.failing_image_project); each test gets a copy. The stand-in server (standin.py) speaks
both dialects over real HTTP on 127.0.0.1."""

from __future__ import annotations

import shutil

import pytest
from standin import StandIn, answer


@pytest.fixture(scope="session")
def built_projects(tmp_path_factory) -> dict:
    import builders

    folder = tmp_path_factory.mktemp("hypotheses-projects")
    return {"images": builders.failing_image_project(folder), "texts": builders.failing_text_project(folder)}


def _copy(source, target):
    from core.store.project import Project

    shutil.copytree(source, target)
    return Project.open(target)


@pytest.fixture()
def image_project(built_projects, tmp_path):
    return _copy(built_projects["images"], tmp_path / "images")


@pytest.fixture()
def text_project(built_projects, tmp_path):
    return _copy(built_projects["texts"], tmp_path / "texts")


@pytest.fixture()
def server():
    """A stand-in server; set ``server.rule`` in the test (default: a fixed valid answer)."""
    running = StandIn(rule=lambda body: answer("model_error", "The object is small and far away.",
                                               "Collect more close-up examples.")).start()
    yield running
    running.stop()
