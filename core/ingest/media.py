"""Reading an ingested image back, refusing one that moved or changed since ingest.

Images are never copied into a project, so the file at ``root/path`` may have been moved,
deleted or rewritten since ingest. Every read checks the bytes against the sha256 taken at ingest,
so the app never shows the wrong picture next to a sample's label.
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import Optional

from PIL import Image

from core.errors import SampleFileChanged


def read_image_bytes(root: str, path: str, content_hash: Optional[str] = None) -> bytes:
    """The bytes of the sample file ``root/path``; with ``content_hash``, checked against it.

    Raises SampleFileChanged when the file is missing, unreadable, outside ``root``, or (with a
    hash) its bytes differ from those ingested.
    """
    full = os.path.join(root, path)
    real_root = os.path.realpath(root)
    if os.path.commonpath([os.path.realpath(full), real_root]) != real_root:
        raise SampleFileChanged(f"{full} now leads outside {root}: it was moved or changed since ingest; re-ingest it.")
    try:
        with open(full, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise SampleFileChanged(
            f"{full} was moved or changed since ingest ({exc.strerror or exc}); put it back or re-ingest it."
        ) from exc
    if content_hash is not None and hashlib.sha256(data).hexdigest() != content_hash:
        raise SampleFileChanged(
            f"{full} was moved or changed since ingest (its sha256 no longer matches); "
            "put the original back or re-ingest it under a new id."
        )
    return data


def open_image(root: str, path: str, content_hash: str) -> Image.Image:
    """The sample's image, fully loaded, after checking its bytes against ``content_hash``."""
    image = Image.open(io.BytesIO(read_image_bytes(root, path, content_hash)))
    image.load()
    return image
