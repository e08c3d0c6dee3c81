"""Caps on what one ingest reads, so a hostile or mistaken source cannot exhaust memory.

Each limit is read from an environment variable when it is used (so a test or a shell can change
it without a restart); an unset or empty variable gives the default, a value that is not a whole
number of at least 1 is refused with an AmendError naming the variable.

- ``AMEND_MAX_PIXELS`` (default 100,000,000: 100 megapixels): an image whose header says
  width x height above this is rejected "image too large" before it is decoded, at ingest and at embed.
- ``AMEND_MAX_TEXT_CHARS`` (default 1,000,000): a text cell longer than this is rejected "text too long".
- ``AMEND_MAX_SOURCE_BYTES`` (default 2,000,000,000: 2 GB): a CSV / TSV / JSONL / Parquet source file
  larger than this is refused as a whole.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from core.errors import AmendError

DEFAULTS: dict[str, int] = {
    "AMEND_MAX_PIXELS": 100_000_000,
    "AMEND_MAX_TEXT_CHARS": 1_000_000,
    "AMEND_MAX_SOURCE_BYTES": 2_000_000_000,
}


def _limit(name: str) -> int:
    raw = os.environ.get(name, "").strip().replace("_", "")
    if not raw:
        return DEFAULTS[name]
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise AmendError(f"{name}={os.environ[name]!r} is not a whole number of at least 1; "
                         f"set it to a positive whole number or unset it (default {DEFAULTS[name]:,}).")
    return value


def max_pixels() -> int:
    """The most pixels (width x height) an image may have: ``AMEND_MAX_PIXELS``."""
    return _limit("AMEND_MAX_PIXELS")


def max_text_chars() -> int:
    """The most characters one text cell may have: ``AMEND_MAX_TEXT_CHARS``."""
    return _limit("AMEND_MAX_TEXT_CHARS")


def max_source_bytes() -> int:
    """The most bytes a table source file may have: ``AMEND_MAX_SOURCE_BYTES``."""
    return _limit("AMEND_MAX_SOURCE_BYTES")


def too_many_pixels(width: int, height: int, limit: int) -> str | None:
    """The detail of an "image too large" reject, or None when ``width x height`` is within ``limit``."""
    if width * height <= limit:
        return None
    return (f"image too large: {width} x {height} pixels, the limit is {limit:,} "
            "(set AMEND_MAX_PIXELS to allow more).")


def check_source_file(path: Path) -> os.stat_result:
    """Refuse (AmendError) a table source that is not a regular file after following links (a pipe,
    a device such as /dev/zero, a socket) or that is larger than ``AMEND_MAX_SOURCE_BYTES``; it is
    checked before a byte is read, so neither can hang or exhaust memory."""
    real = os.path.realpath(path)
    try:
        info = os.stat(real)
    except OSError as exc:
        raise AmendError(f"{path} cannot be read ({exc.strerror or exc}); check the path.") from exc
    if not stat.S_ISREG(info.st_mode):
        shown = f"{path} (a link to {real})" if os.path.abspath(path) != real else str(path)
        raise AmendError(f"{shown} is not a regular file (a pipe, device or socket); "
                         "give the path of a CSV, JSONL or Parquet file on disk.")
    limit = max_source_bytes()
    if info.st_size > limit:
        raise AmendError(f"{path} is {info.st_size:,} bytes, over the limit of {limit:,} for a source file; "
                         "split it, or set AMEND_MAX_SOURCE_BYTES to allow more.")
    return info


def read_source(path: Path) -> bytes:
    """The bytes of a CSV / JSONL source, after :func:`check_source_file`. Opened without blocking
    and checked again on the open descriptor, so a file swapped for a pipe after the first check
    cannot hang the read; never reads more than the limit (a file growing meanwhile is refused)."""
    check_source_file(path)
    limit = max_source_bytes()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise AmendError(f"{path} cannot be read ({exc.strerror or exc}); check its permissions.") from exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise AmendError(f"{path} is not a regular file (a pipe, device or socket); "
                             "give the path of a CSV, JSONL or Parquet file on disk.")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise AmendError(f"{path} is over the limit of {limit:,} bytes for a source file; "
                         "split it, or set AMEND_MAX_SOURCE_BYTES to allow more.")
    return data
