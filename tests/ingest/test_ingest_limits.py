"""Issue 13, item 9: sources that are not regular files, and caps on pixels, text and source size.

Real files, pipes and links in tmp_path; no mocks. A read that would block on a pipe runs in a
thread that the test unblocks itself when it does block, so a regression fails instead of hanging.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from pathlib import Path

import pytest

from core.errors import AmendError
from core.ingest import IngestOptions, ingest, limits
from core.ingest.images import check_file
from core.store.project import Project

from ingest_helpers import png_bytes, reasons_by_row, write, write_jsonl


def _bounded(call, fifo: Path | None = None, seconds: float = 10.0):
    """``call()`` in a thread; when it is still running after ``seconds`` (blocked on ``fifo``), the
    pipe is opened for writing and closed so the reader sees its end, and the test fails."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail(f"the call was still reading after {seconds} s (blocked on a pipe)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` greyscale pixels, with almost no image data:
    what a decompression bomb, or a huge scan, looks like before it is decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


# ------------------------------------------------------------------------ not regular files
@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_a_pipe_given_as_texts_is_refused_at_once(project: Project, tmp_path: Path, suffix: str) -> None:
    fifo = tmp_path / f"posts{suffix}"
    os.mkfifo(fifo)
    with pytest.raises(AmendError, match="not a regular file"):
        _bounded(lambda: ingest(project, IngestOptions(texts=fifo)), fifo)
    assert project.samples().empty


def test_a_jsonl_link_to_dev_zero_is_refused_without_reading_it(project: Project, tmp_path: Path) -> None:
    link = tmp_path / "endless.jsonl"
    link.symlink_to("/dev/zero")
    with pytest.raises(AmendError, match=r"endless\.jsonl \(a link to /dev/zero\) is not a regular file"):
        _bounded(lambda: ingest(project, IngestOptions(texts=link)))


def test_a_pipe_inside_an_image_folder_is_rejected_on_its_row(project: Project, tmp_path: Path) -> None:
    write(tmp_path / "data" / "cat" / "a.png", png_bytes(1))
    os.mkfifo(tmp_path / "data" / "cat" / "b.png")
    write(tmp_path / "data" / "dog" / "c.png", png_bytes(2))
    fifo = tmp_path / "data" / "cat" / "b.png"
    report = _bounded(lambda: ingest(project, IngestOptions(images=tmp_path / "data")), fifo)
    assert report.taken == 2
    assert reasons_by_row(report) == {2: "not a file"}
    assert "not a regular file" in report.rejects[0]["detail"]


def test_a_pipe_named_by_a_manifest_is_rejected_on_its_row(project: Project, tmp_path: Path) -> None:
    write(tmp_path / "a.png", png_bytes(1))
    os.mkfifo(tmp_path / "b.png")
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"path": "a.png", "label": "x"}, {"path": "b.png", "label": "y"}])
    report = _bounded(lambda: ingest(project, IngestOptions(manifest=manifest)), tmp_path / "b.png")
    assert (report.taken, reasons_by_row(report)) == (1, {2: "not a file"})


def test_checking_a_pipe_as_an_image_does_not_block(tmp_path: Path) -> None:
    # (check_file also opens without blocking and checks the open descriptor, for a file swapped for a pipe.)
    fifo = tmp_path / "late.png"
    os.mkfifo(fifo)
    found = _bounded(lambda: check_file(str(fifo)), fifo)
    assert found.reason == "not a file"


# ------------------------------------------------------------------------ pixels
def test_an_image_over_the_pixel_limit_is_rejected_before_decoding(project: Project, tmp_path: Path,
                                                                   monkeypatch) -> None:
    monkeypatch.setenv("AMEND_MAX_PIXELS", "300")
    write(tmp_path / "data" / "cat" / "small.png", png_bytes(1, (20, 15)))  # 300 pixels: at the limit, taken
    write(tmp_path / "data" / "cat" / "wide.png", png_bytes(2, (20, 16)))  # 320 pixels
    report = ingest(project, IngestOptions(images=tmp_path / "data"))
    assert report.taken == 1
    assert reasons_by_row(report) == {2: "image too large"}
    assert report.rejects[0]["detail"] == (
        "wide.png: image too large: 20 x 16 pixels, the limit is 300 (set AMEND_MAX_PIXELS to allow more).")


def test_the_default_pixel_limit_is_100_megapixels_read_from_the_header(project: Project, tmp_path: Path) -> None:
    # 12,000 x 9,000 = 108 M pixels: past Amend's 100 M default but under twice Pillow's own limit,
    # so before this check Pillow only warned and the decode was tried. Header only: nothing decoded.
    write(tmp_path / "data" / "scan" / "huge.png", png_header_only(12_000, 9_000))
    write(tmp_path / "data" / "scan" / "bomb.png", png_header_only(100_000, 100_000))  # past Pillow's own bomb guard
    write(tmp_path / "data" / "scan" / "ok.png", png_bytes(3))
    report = ingest(project, IngestOptions(images=tmp_path / "data"))
    assert report.taken == 1
    assert reasons_by_row(report) == {1: "image too large", 2: "image too large"}
    assert "the limit is 100,000,000" in report.rejects[0]["detail"]
    assert "12000 x 9000 pixels, the limit is 100,000,000" in report.rejects[1]["detail"]
    assert limits.DEFAULTS["AMEND_MAX_PIXELS"] == 100_000_000


def test_embedding_skips_an_image_over_the_pixel_limit_with_a_reason(tmp_path: Path, monkeypatch) -> None:
    # An image ingested under a higher limit (or before the limit existed) is not decoded by embed.
    import hashlib

    from core.embed.pipeline import ImageItems

    small = write(tmp_path / "small.png", png_bytes(1, (10, 10)))
    large = write(tmp_path / "large.png", png_bytes(2, (40, 40)))
    hashes = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (small, large)]
    monkeypatch.setenv("AMEND_MAX_PIXELS", "1000")
    items = ImageItems([str(small), str(large)], hashes, preprocess=lambda image: image.size)
    assert items[0] == (0, (10, 10), None)
    position, tensor, reason = items[1]
    assert (position, tensor) == (1, None)
    assert reason.startswith("image too large: 40 x 40 pixels, the limit is 1,000") and str(large) in reason


def test_embedding_skips_a_pipe_put_where_an_image_was(tmp_path: Path) -> None:
    from core.embed.pipeline import ImageItems

    fifo = tmp_path / "was_an_image.png"
    os.mkfifo(fifo)
    items = ImageItems([str(fifo)], ["0" * 64], preprocess=lambda image: image)
    assert _bounded(lambda: items[0], fifo) == (0, None, f"not a regular file (a pipe, device or socket): {fifo}")


# ------------------------------------------------------------------------ text length, source size
def test_a_text_or_label_over_the_character_limit_is_rejected_on_its_row(project: Project, tmp_path: Path,
                                                                          monkeypatch) -> None:
    monkeypatch.setenv("AMEND_MAX_TEXT_CHARS", "50")
    path = write_jsonl(tmp_path / "t.jsonl", [
        {"text": "x" * 50, "label": "a"},
        {"text": "y" * 51, "label": "a"},
        {"text": "fine", "label": "b" * 51},
    ])
    report = ingest(project, IngestOptions(texts=path))
    assert report.taken == 1
    assert reasons_by_row(report) == {2: "text too long", 3: "text too long"}
    assert report.rejects[0]["detail"] == (
        "The text has 51 characters, over the limit of 50 (set AMEND_MAX_TEXT_CHARS to allow more).")
    assert report.rejects[1]["detail"].startswith("The label has 51 characters")


def test_the_default_text_limit_is_a_million_characters(project: Project, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "z" * 1_000_001, "label": "a"}, {"text": "short", "label": "a"}])
    report = ingest(project, IngestOptions(texts=path))
    assert (report.taken, reasons_by_row(report)) == (1, {1: "text too long"})
    assert "over the limit of 1,000,000" in report.rejects[0]["detail"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_source_over_the_size_limit_is_refused_whole(project: Project, tmp_path: Path, monkeypatch,
                                                       suffix: str) -> None:
    import pandas as pd

    frame = pd.DataFrame({"text": [f"post number {i}" for i in range(40)], "label": ["a", "b"] * 20})
    path = tmp_path / f"t{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    size = path.stat().st_size
    monkeypatch.setenv("AMEND_MAX_SOURCE_BYTES", str(size - 1))
    with pytest.raises(AmendError, match=f"{size:,} bytes, over the limit of {size - 1:,}.*AMEND_MAX_SOURCE_BYTES"):
        ingest(project, IngestOptions(texts=path))
    monkeypatch.setenv("AMEND_MAX_SOURCE_BYTES", str(size))
    assert ingest(project, IngestOptions(texts=path)).taken == 40


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5"])
def test_a_limit_that_is_not_a_positive_whole_number_is_refused(project: Project, tmp_path: Path, monkeypatch,
                                                                value: str) -> None:
    monkeypatch.setenv("AMEND_MAX_TEXT_CHARS", value)
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "hello", "label": "a"}])
    with pytest.raises(AmendError, match="AMEND_MAX_TEXT_CHARS=.* is not a whole number of at least 1"):
        ingest(project, IngestOptions(texts=path))


def test_limits_have_documented_defaults(monkeypatch) -> None:
    for name in limits.DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    assert (limits.max_pixels(), limits.max_text_chars(), limits.max_source_bytes()) == (
        100_000_000, 1_000_000, 2_000_000_000)
    monkeypatch.setenv("AMEND_MAX_PIXELS", "1_000")
    assert limits.max_pixels() == 1000
