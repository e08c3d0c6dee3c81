"""Reading an image back refuses one that moved or changed since ingest."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import SampleFileChanged
from core.ingest import IngestOptions, ingest
from core.ingest.media import open_image, read_image_bytes
from core.store.project import Project

from ingest_helpers import jpeg_bytes, write


def test_open_image_checks_the_file_against_its_ingest_hash(project: Project, tmp_path: Path) -> None:
    images = tmp_path / "images"
    original = jpeg_bytes(1, size=(30, 20))
    write(images / "cat/a.jpg", original)
    write(images / "cat/b.jpg", jpeg_bytes(2))
    ingest(project, IngestOptions(images=images))
    rows = project.samples().set_index("id")
    root, path, digest = rows.loc["cat/a.jpg", ["root", "path", "content_hash"]]

    image = open_image(root, path, digest)
    assert image.size == (30, 20)
    assert read_image_bytes(root, path, digest) == original

    write(images / "cat/a.jpg", jpeg_bytes(3, size=(30, 20)))  # rewritten in place
    with pytest.raises(SampleFileChanged, match="moved or changed since ingest"):
        open_image(root, path, digest)

    (images / "cat/a.jpg").unlink()
    with pytest.raises(SampleFileChanged, match="moved or changed since ingest"):
        open_image(root, path, digest)

    (images / "cat/b.jpg").rename(images / "cat/a.jpg")  # another picture under the old name
    with pytest.raises(SampleFileChanged):
        read_image_bytes(root, path, digest)
