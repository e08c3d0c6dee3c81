"""embed(project, options): resumable, verifies files, records the model that made the vectors."""

from __future__ import annotations

import numpy as np
import pytest

from core.embed.offline import IMAGE_MODEL, TEXT_MODEL
from core.embed.pipeline import EmbedOptions, embed
from core.errors import AmendError
from core.store.project import Project

OFFLINE = EmbedOptions(embedder="offline", device="cpu", batch_size=4)


def test_offline_images_then_resume_only_new_samples(make_image_project, offline_image):
    project = make_image_project(5)
    calls = []
    report = embed(project, OFFLINE, progress=lambda step, done, total: calls.append((step, done, total)))
    assert (report.representation, report.embedded, report.skipped, report.dim) == ("efficientnet-lite0", 5, 0, 1280)
    assert report.model == IMAGE_MODEL and report.device == "cpu" and report.failed == []
    assert calls[0] == ("embed", 0, 5) and calls[-1] == ("embed", 5, 5)
    data = report.to_json()
    for key in ("representation", "embedded", "skipped", "dim", "model", "device", "seconds"):
        assert key in data
    ids, vectors = project.vectors("efficientnet-lite0")
    assert ids == make_image_project.manifest["id"].head(5).tolist()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    rep = project.representation("efficientnet-lite0")
    assert rep.model == IMAGE_MODEL and rep.settings["model"] == "efficientnet-lite0"

    make_image_project(3, start=5)
    again = embed(Project.open(project.path), OFFLINE)
    assert (again.embedded, again.skipped) == (3, 5)
    ids2, vectors2 = project.vectors("efficientnet-lite0")
    assert ids2 == make_image_project.manifest["id"].head(8).tolist()
    np.testing.assert_allclose(vectors2[:5], vectors, atol=1e-6)  # old rows untouched, not duplicated
    assert (embed(project, OFFLINE).embedded, embed(project, OFFLINE).skipped) == (0, 8)


def test_interrupted_run_keeps_finished_batches(make_image_project, offline_image):
    project = make_image_project(10)

    def stop_after_first_batch(step, done, total):
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed(project, OFFLINE, progress=stop_after_first_batch)
    ids, _ = project.vectors("efficientnet-lite0")
    assert len(ids) == 4
    report = embed(project, OFFLINE)
    assert (report.embedded, report.skipped) == (6, 4)
    assert len(project.vectors("efficientnet-lite0")[0]) == 10


def test_changed_and_missing_files_are_reported_not_embedded(make_image_project, tiny_checkpoint):
    project = make_image_project(6)
    manifest, root = make_image_project.manifest, make_image_project.root
    changed_id, missing_id = manifest["id"].iloc[1], manifest["id"].iloc[3]
    # same picture re-encoded: a decodable image whose bytes are not those ingested
    from PIL import Image

    changed_path = root / manifest["path"].iloc[1]
    Image.open(changed_path).convert("RGB").save(changed_path, "JPEG", quality=50)
    (root / manifest["path"].iloc[3]).unlink()
    path, _ = tiny_checkpoint
    options = EmbedOptions(model="amend-tiny-test", checkpoint=str(path), device="cpu", batch_size=2, num_workers=1)
    report = embed(project, options)
    assert report.representation == "clip" and report.dim == 32
    assert report.embedded == 4
    reasons = {item["id"]: item["reason"] for item in report.failed}
    assert set(reasons) == {changed_id, missing_id}
    assert "changed since ingest" in reasons[changed_id]
    assert "missing" in reasons[missing_id]
    ids, _ = project.vectors("clip")
    assert changed_id not in ids and missing_id not in ids and len(ids) == 4
    assert report.to_json()["failed"] == report.failed


def test_tiny_openclip_pipeline_matches_the_embedder(make_image_project, tiny_checkpoint):
    from core.embed.openclip import OpenClipEmbedder

    project = make_image_project(5)
    path, _ = tiny_checkpoint
    report = embed(project, EmbedOptions(model="amend-tiny-test", checkpoint=str(path), device="cpu", name="tiny"))
    assert report.model == "open_clip:amend-tiny-test/checkpoint:tiny.pt" and report.fallback_message is None
    rep = project.representation("tiny")
    assert rep.model == report.model and rep.dim == 32 and rep.settings["family"] == "open_clip"
    ids, vectors = project.vectors("tiny")
    from PIL import Image

    direct = OpenClipEmbedder("amend-tiny-test", checkpoint=str(path), device="cpu").embed_images(
        [Image.open(make_image_project.root / p) for p in make_image_project.manifest["path"].head(5)]
    )
    np.testing.assert_allclose(vectors, direct, atol=1e-5)


def test_fallback_is_recorded_in_the_representation(make_image_project, tmp_path, offline_image):
    project = make_image_project(3)
    report = embed(project, EmbedOptions(model="amend-tiny-test", checkpoint=str(tmp_path / "gone.pt"), device="cpu"))
    assert report.fallback_message and "does not exist" in report.fallback_message
    assert report.representation == "efficientnet-lite0" and report.model == IMAGE_MODEL
    assert [r.model for r in project.representations()] == [IMAGE_MODEL]


def test_a_representation_never_mixes_models(make_image_project, tiny_checkpoint, offline_image):
    project = make_image_project(2)
    embed(project, EmbedOptions(embedder="offline", device="cpu", name="vecs"))
    path, _ = tiny_checkpoint
    with pytest.raises(AmendError, match="holds vectors from offline:efficientnet-lite0-imagenet"):
        embed(project, EmbedOptions(model="amend-tiny-test", checkpoint=str(path), device="cpu", name="vecs"))


def test_offline_texts(text_project, offline_text):
    report = embed(text_project, EmbedOptions(embedder="offline", device="cpu", batch_size=3))
    assert (report.representation, report.embedded, report.skipped, report.dim, report.model) == (
        "minilm", 8, 0, 384, TEXT_MODEL)
    ids, vectors = text_project.vectors("minilm")
    assert len(ids) == 8
    np.testing.assert_allclose(vectors, offline_text.embed_texts(text_project.samples()["text"].tolist()), atol=1e-5)


def test_tiny_openclip_texts(text_project, tiny_checkpoint):
    path, _ = tiny_checkpoint
    report = embed(text_project, EmbedOptions(model="amend-tiny-test", checkpoint=str(path), device="cpu"))
    assert (report.representation, report.embedded, report.dim) == ("clip", 8, 32)


def test_empty_project_is_refused(tmp_path):
    project = Project.create(tmp_path / "empty")
    with pytest.raises(AmendError, match="no samples"):
        embed(project, OFFLINE)
