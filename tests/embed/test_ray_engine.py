"""embed(..., engine="ray"): Ray Data gives the in-process path's vectors, report and resumability.

One local Ray (2 CPUs) serves the whole module: starting one takes 10-20 s on two cores. The tests
that need no Ray (the worker plan, Ray missing, bad addresses) run in the fast tier.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from core import api
from core.embed import EmbedOptions, embed
from core.embed.ray_engine import RAY_MISSING, plan_workers
from core.errors import AmendError
from core.store.project import Project


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray for the module, started the way `amend embed --engine ray` starts one; the engine
    finds it running and leaves it up between tests."""
    from core.embed.ray_engine import ray_session

    with ray_session(num_cpus=2) as ray:
        yield ray


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.slow
def test_ray_images_match_inprocess_report_failures_and_resume(local_ray, make_image_project, tiny_checkpoint):
    project = make_image_project(12)
    manifest, root = make_image_project.manifest, make_image_project.root
    missing_id = manifest["id"].iloc[7]
    (root / manifest["path"].iloc[7]).unlink()
    path, _ = tiny_checkpoint
    tiny = dict(model="amend-tiny-test", checkpoint=str(path), device="cpu", batch_size=4)

    local = embed(project, EmbedOptions(**tiny, name="inprocess"))

    def stop_after_first_batch(step, done, total):
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # a run killed after its first batch keeps that batch
        embed(project, EmbedOptions(**tiny, name="ray", engine="ray"), progress=stop_after_first_batch)
    kept = len(project.vectors("ray")[0])
    assert 1 <= kept <= 4

    resumed = api.embed(Project.open(project.path), EmbedOptions(**tiny, name="ray"), engine="ray")  # the Python face
    assert (resumed.embedded, resumed.skipped) == (11 - kept, kept)
    assert resumed.to_json().keys() == local.to_json().keys()
    assert (resumed.model, resumed.dim, resumed.device) == (local.model, local.dim, local.device)
    assert [f["id"] for f in resumed.failed] == [f["id"] for f in local.failed] == [missing_id]
    assert "file missing" in resumed.failed[0]["reason"]

    ids, vectors = project.vectors("ray")
    local_ids, local_vectors = project.vectors("inprocess")
    assert ids == local_ids and len(ids) == 11
    assert cosines(vectors, local_vectors).min() >= 0.999
    rep = project.representation("ray")
    assert rep.model == local.model and rep.settings["engine"] == "ray" and rep.settings["device"] == "cpu"

    again = embed(project, EmbedOptions(**tiny, name="ray", engine="ray"))
    assert (again.embedded, again.skipped) == (0, 11)
    assert [f["id"] for f in again.failed] == [missing_id]  # still tried, still reported


@pytest.mark.slow
def test_ray_texts_and_the_cli_contract(local_ray, text_project, tiny_checkpoint, capsys):
    import json

    from core.cli import main

    path, _ = tiny_checkpoint
    args = ["embed", str(text_project.path), "--model", "amend-tiny-test", "--checkpoint", str(path),
            "--device", "cpu", "--batch-size", "3"]
    assert main([*args, "--name", "inprocess", "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main([*args, "--name", "ray", "--engine", "ray", "--json"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1  # stdout is the one JSON object, whatever Ray does
    report = json.loads(lines[0])
    assert report.keys() == local.keys()
    assert (report["representation"], report["embedded"], report["skipped"], report["dim"]) == ("ray", 8, 0, 32)
    ids, vectors = text_project.vectors("ray")
    local_ids, local_vectors = text_project.vectors("inprocess")
    assert ids == local_ids and cosines(vectors, local_vectors).min() >= 0.999

    # an error raised on a Ray worker reaches the user as Amend's one line, not Ray's traceback
    with pytest.raises(AmendError, match="Amend does not embed with random weights"):
        embed(text_project, EmbedOptions(model="amend-tiny-test", device="cpu", engine="ray"))


# ---------------------------------------------------------------------------------- no Ray needed
def test_worker_plan_from_the_cluster_resources():
    two_cores = plan_workers(2, 0, [2], "auto")
    assert (two_cores.device, two_cores.actors, two_cores.cpus_per_actor, two_cores.decode_tasks) == ("cpu", 1, 1, 1)
    texts = plan_workers(2, 0, [2], "auto", modality="text")
    assert (texts.actors, texts.cpus_per_actor) == (1, 2)  # no decoding stage: the model gets every core
    big = plan_workers(16, 0, [16], "auto")
    assert (big.actors, big.cpus_per_actor, big.decode_tasks) == (3, 4, 4)
    small_nodes = plan_workers(16, 0, [2] * 8, "auto")
    assert small_nodes.cpus_per_actor == 2 and small_nodes.actors == 6  # an actor must fit on one node
    gpus = plan_workers(32, 4, [16, 16], "auto")
    assert (gpus.device, gpus.actors, gpus.gpus_per_actor, gpus.cpus_per_actor, gpus.decode_tasks) == (
        "cuda", 4, 1, 1, 28)
    assert plan_workers(32, 4, [16, 16], "cpu").device == "cpu"
    assert plan_workers(2, 0, [2], "auto", decode_tasks=3).decode_tasks == 3
    with pytest.raises(AmendError, match="has no GPU"):
        plan_workers(8, 0, [8], "cuda")


def test_ray_not_installed_is_one_clear_line(text_project, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(AmendError) as raised:
        embed(text_project, EmbedOptions(embedder="offline", engine="ray"))
    assert str(raised.value) == RAY_MISSING and 'pip install -e ".[scale]"' in RAY_MISSING


def test_bad_engine_and_addresses_are_refused_before_any_work(text_project):
    with pytest.raises(AmendError, match="unknown embed engine 'spark'"):
        api.embed(text_project, engine="spark")
    with pytest.raises(AmendError, match="needs --engine ray"):
        embed(text_project, EmbedOptions(address="127.0.0.1:6379"))
    with pytest.raises(AmendError, match="is not HOST:PORT"):
        embed(text_project, EmbedOptions(engine="ray", address="headnode"))
    closed_port = _closed_loopback_port()
    with pytest.raises(AmendError, match=f"no Ray cluster answers at 127.0.0.1:{closed_port}"):
        embed(text_project, EmbedOptions(engine="ray", address=f"127.0.0.1:{closed_port}"))
    assert text_project.representations() == []


def _closed_loopback_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
