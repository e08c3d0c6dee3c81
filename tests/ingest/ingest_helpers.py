"""Helpers for ingest tests: real files made in tmp_path (JPEGs and PNGs by Pillow)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_bytes(seed: int = 0, size: tuple[int, int] = (32, 32)) -> bytes:
    """A real JPEG of random pixels (noise keeps it large enough to cut in half meaningfully)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def png_bytes(seed: int = 0, size: tuple[int, int] = (16, 16)) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def reasons_by_row(report) -> dict[int, str]:
    return {r["row"]: r["reason"] for r in report.rejects}
