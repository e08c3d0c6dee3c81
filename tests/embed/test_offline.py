"""The offline embedders with their real weights, on a handful of inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageEnhance

from .conftest import CIFAR


def _cifar(n):
    manifest = pd.read_csv(CIFAR / "manifest.csv").head(n)
    return [Image.open(CIFAR / p).convert("RGB") for p in manifest["path"]], manifest["label"].tolist()


def test_lite0_preprocess_is_224_uint8_scaled_to_minus_one_to_one(offline_image):
    image, _ = _cifar(1)
    tensor = offline_image.preprocess(image[0])
    assert tuple(tensor.shape) == (3, 224, 224) and tensor.dtype == torch.uint8
    scaled = tensor.float() / 127.5 - 1.0
    with torch.inference_mode():
        pooled = offline_image.model.extract_features(scaled[None]).mean(dim=(2, 3))
    expected = pooled.numpy() / np.linalg.norm(pooled.numpy())
    np.testing.assert_allclose(offline_image.embed_images(tensor[None]), expected, atol=1e-5)


def test_lite0_image_vectors(offline_image):
    images, labels = _cifar(6)
    brighter = ImageEnhance.Brightness(images[0]).enhance(1.03)
    vectors = offline_image.embed_images([images[0], brighter] + images[1:])
    assert offline_image.dim == 1280 and vectors.shape == (7, 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    same = float(vectors[0] @ vectors[1])
    assert same > 0.99
    others = vectors[2:] @ vectors[0]
    assert others.max() < 0.9, (labels, others)


def test_lite0_features_are_the_classifier_input(offline_image):
    """The vector is the pooled head feature the ImageNet classifier reads (so weights are real)."""
    images, _ = _cifar(2)
    pixels = torch.stack([offline_image.preprocess(im) for im in images]).float() / 127.5 - 1.0
    net = offline_image.model
    with torch.inference_mode():
        pooled = net.extract_features(pixels).mean(dim=(2, 3))
        logits = net(pixels)
        np.testing.assert_allclose(net._fc(pooled).numpy(), logits.numpy(), atol=1e-4)
    vectors = offline_image.embed_images(pixels)
    expected = pooled.numpy() / np.linalg.norm(pooled.numpy(), axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    # real ImageNet weights are confident on some class; random weights give ~1/1000
    assert float(torch.softmax(logits, 1).max()) > 0.05


def test_minilm_text_vectors(offline_text):
    texts = ["The cat sat on the mat.", "The cat sat on the mat", "Stock markets fell after the rate decision."]
    vectors = offline_text.embed_texts(texts)
    assert offline_text.dim == 384 and vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) > 0.99
    assert float(vectors[0] @ vectors[2]) < 0.5
