"""Fixtures shared across the suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AMEND_SHARED_DATA", REPO.parent / "shared" / "data"))

# Property tests stay fast (a modest number of examples, no per-example deadline on a loaded
# machine) and write no example database into the checkout; a failure prints its reproduction blob.
# HYPOTHESIS_PROFILE=thorough runs ten times the examples.
settings.register_profile("amend", max_examples=60, deadline=None, database=None, print_blob=True)
settings.register_profile("thorough", max_examples=600, deadline=None, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "amend"))


@pytest.fixture(scope="session")
def sample_projects(tmp_path_factory) -> list[Path]:
    """The two sample projects, built from sample_data/ exactly as the README's first command does
    (the offline embedders on 700 samples: minutes on two cores; only ``slow`` tests use it)."""
    from core.demo import prepare_sample_projects

    return prepare_sample_projects(tmp_path_factory.mktemp("sample-projects"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared data pack is not at {SHARED_DATA} (set AMEND_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def imported_samples(tmp_path_factory) -> list[Path]:
    """The two sample projects with imported vectors instead of embedded ones, analysed (seconds;
    see builders.imported_sample_project). Read only: tests change a ``project_copy``."""
    from builders import SAMPLE_NAMES, imported_sample_project

    folder = tmp_path_factory.mktemp("imported-samples")
    return [imported_sample_project(folder, name) for name in SAMPLE_NAMES]


@pytest.fixture()
def project_copy(imported_samples, tmp_path):
    """A writable copy of an analysed sample project with imported vectors:
    project_copy("news20-sample") or project_copy("cifar10n-sample")."""
    import shutil

    from core.store.project import Project

    def make(name: str = "news20-sample") -> Project:
        source = next(p for p in imported_samples if p.name == name)
        target = tmp_path / name
        shutil.copytree(source, target)
        return Project.open(target)

    return make


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A random-weight amend-tiny-test model saved as a state dict: (path, the model itself)."""
    import open_clip
    import torch

    import core.embed.openclip  # noqa: F401  (registers the tiny config)

    torch.manual_seed(0)
    model = open_clip.create_model("amend-tiny-test", pretrained=None)
    model.eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save(model.state_dict(), path)
    return path, model


@pytest.fixture(autouse=True, scope="session")
def _signing_keys_outside_home(tmp_path_factory):
    """Checkpoints (every export signs one) use a key folder of the test session, never the user's
    ~/.config/amend; tests that look at the key set AMEND_KEY_DIR themselves."""
    folder = tmp_path_factory.mktemp("amend-keys")
    saved = {k: os.environ.get(k) for k in ("AMEND_KEY_DIR", "AMEND_CHECKPOINT_DIR")}
    os.environ["AMEND_KEY_DIR"] = str(folder / "keys")
    os.environ["AMEND_CHECKPOINT_DIR"] = str(folder / "checkpoints")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
