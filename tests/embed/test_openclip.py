"""OpenCLIP through the real open_clip code path, with the tiny config and a saved checkpoint."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from PIL import Image

import core.embed.openclip as openclip_module
from core.embed.fallback import resolve_embedder
from core.embed.offline import IMAGE_MODEL, TEXT_MODEL
from core.embed.openclip import OpenClipEmbedder, _hub_host, _reachable
from core.errors import AmendError

from .conftest import CIFAR


def _images(n=4):
    import pandas as pd

    manifest = pd.read_csv(CIFAR / "manifest.csv").head(n)
    return [Image.open(CIFAR / p).convert("RGB") for p in manifest["path"]]


def test_tiny_checkpoint_loads_the_saved_weights(tiny_checkpoint):
    path, original = tiny_checkpoint
    embedder = OpenClipEmbedder("amend-tiny-test", checkpoint=str(path), device="cpu")
    assert embedder.name == "open_clip:amend-tiny-test/checkpoint:tiny.pt"
    assert embedder.dim == 32
    images = _images(4)
    vectors = embedder.embed_images(images)
    assert vectors.shape == (4, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # the same numbers as the model whose state dict was saved: the checkpoint, not a fresh random init
    pixels = torch.stack([embedder.preprocess(im) for im in images])
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(original.encode_image(pixels), dim=-1).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    # a preprocessed tensor batch gives the same vectors as PIL images
    np.testing.assert_allclose(embedder.embed_images(pixels), vectors, atol=1e-6)


def test_tiny_checkpoint_texts_go_through_the_text_tower(tiny_checkpoint):
    path, original = tiny_checkpoint
    embedder, message = resolve_embedder("text", model="amend-tiny-test", checkpoint=str(path), device="cpu")
    assert message is None
    texts = ["a photo of a cat", "a photo of a cat", "quarterly earnings report"]
    vectors = embedder.embed_texts(texts)
    assert vectors.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    assert float(vectors[0] @ vectors[2]) < 0.999
    import open_clip

    tokens = open_clip.get_tokenizer("amend-tiny-test")(texts)
    assert tokens.shape[1] == 16  # the tiny config's context length
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(original.encode_text(tokens), dim=-1).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_model_without_weights_is_refused():
    with pytest.raises(AmendError, match="does not embed with random weights"):
        resolve_embedder("image", model="amend-tiny-test")


def test_checkpoint_needs_a_model_name(tmp_path):
    with pytest.raises(AmendError, match="--checkpoint needs --model"):
        resolve_embedder("image", checkpoint=str(tmp_path / "x.pt"))


def test_missing_checkpoint_falls_back_to_offline_with_one_message(tmp_path, offline_image):
    missing = tmp_path / "nowhere.pt"
    embedder, message = resolve_embedder("image", model="amend-tiny-test", checkpoint=str(missing), device="cpu")
    assert embedder.name == IMAGE_MODEL
    assert message.startswith("OpenCLIP weights amend-tiny-test from checkpoint")
    assert f"checkpoint file {missing} does not exist" in message
    assert "using the offline embedder offline:efficientnet-lite0-imagenet instead" in message
    assert message.endswith("pass --checkpoint PATH to use OpenCLIP.")
    assert "\n" not in message


@pytest.fixture
def network_calls(monkeypatch):
    """Counts what the weights lookup asks of the network: TCP probes (with their timeouts) and
    downloads (refused here: no test downloads weights)."""
    calls = {"probes": [], "downloads": 0}
    connect = socket.create_connection

    def probe(address, timeout=None, *args, **kwargs):
        calls["probes"].append((address, timeout))
        return connect(address, timeout, *args, **kwargs)

    def download(*args, **kwargs):
        calls["downloads"] += 1
        raise RuntimeError("a test tried to download weights")

    monkeypatch.setattr(openclip_module.socket, "create_connection", probe)
    monkeypatch.setattr(openclip_module.open_clip, "download_pretrained", download)
    return calls


def test_unknown_pretrained_tag_falls_back(offline_text, network_calls):
    embedder, message = resolve_embedder("text", model="ViT-B-32", pretrained="no_such_tag", device="cpu")
    assert network_calls == {"probes": [], "downloads": 0}  # refused before any network use
    assert embedder.name == TEXT_MODEL
    assert "OpenCLIP weights ViT-B-32/no_such_tag could not be loaded (unknown pretrained tag 'no_such_tag'" in message
    assert "laion2b_s34b_b79k" in message  # names known tags


def test_corrupt_checkpoint_falls_back(tmp_path, offline_image):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    embedder, message = resolve_embedder("image", model="amend-tiny-test", checkpoint=str(bad), device="cpu")
    assert embedder.name == IMAGE_MODEL
    assert "loading" in message and "failed" in message


def test_default_without_network_falls_back_fast(offline_image, network_calls):
    if _reachable(_hub_host()) is None:
        pytest.skip("the Hugging Face Hub is reachable here; the default would download real weights")
    network_calls["probes"].clear()
    embedder, message = resolve_embedder("image", device="cpu")
    assert embedder.name == IMAGE_MODEL
    assert message.startswith("OpenCLIP weights ViT-B-32/laion2b_s34b_b79k could not be loaded (no network")
    # Fast by construction: Amend probes the Hub once with its short timeout and then downloads
    # nothing; every connection attempted (huggingface_hub makes one of its own) has a timeout.
    probes = network_calls["probes"]
    assert probes.count(((_hub_host(), 443), openclip_module.NETWORK_PROBE_TIMEOUT)) == 1
    assert all(timeout is not None for _, timeout in probes) and network_calls["downloads"] == 0


def test_bad_device_and_embedder_names_are_refused():
    with pytest.raises(AmendError, match="unknown --device"):
        resolve_embedder("image", device="tpu")
    with pytest.raises(AmendError, match="unknown --embedder"):
        resolve_embedder("image", embedder="magic")
    if not torch.cuda.is_available():
        with pytest.raises(AmendError, match="no CUDA GPU"):
            resolve_embedder("image", embedder="offline", device="cuda")


def test_text_tower_for_a_representation_reloads_the_model_that_made_it(tiny_checkpoint, tmp_path):
    """A representation made with a weights file given as --pretrained records the file's path in
    its model name: slice naming loads that model's text tower again; one made with --checkpoint
    records only the file's name, and a missing file or another family gives None, not an error."""
    from core.embed.openclip import OpenClipEmbedder, text_tower_for

    path, original = tiny_checkpoint
    embedder = OpenClipEmbedder("amend-tiny-test", pretrained=str(path), device="cpu")
    tower = text_tower_for(embedder.name, device="cpu")
    assert tower is not None
    texts = ["a photo of a cat", "quarterly earnings report"]
    tokens = open_clip_tokens(texts)
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(original.encode_text(tokens), dim=-1).numpy()
    np.testing.assert_allclose(tower(texts), expected, atol=1e-5)

    by_checkpoint = OpenClipEmbedder("amend-tiny-test", checkpoint=str(path), device="cpu")
    assert by_checkpoint.name.startswith("open_clip:amend-tiny-test/checkpoint:")
    assert text_tower_for(by_checkpoint.name) is None
    assert text_tower_for(f"open_clip:amend-tiny-test/{tmp_path / 'gone.pt'}") is None
    assert text_tower_for("efficientnet-lite0/1") is None


def open_clip_tokens(texts):
    import open_clip

    return open_clip.get_tokenizer("amend-tiny-test")(texts)
