"""Image files: where they are (inside the root, or not), and whether they decode.

Internal to :mod:`core.ingest`. :func:`check_files` runs :func:`check_file` over many files in a
thread pool sized to the machine's cores: sha256 and Pillow's decoders release the GIL, so threads
can overlap the work on large images, without the start-up and pickling costs of processes. On
tiny images the per-file Python work dominates; measured on 5,000 32x32 JPEGs (2-core dev machine,
other jobs running): serial 0.40 s, 2 threads 0.39-0.40 s, 2 processes 0.46 s.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Optional

from PIL import Image, UnidentifiedImageError

CHUNK = 32  # files per pool task: small enough to balance, large enough to amortise the hand-off


@dataclass(frozen=True)
class FileCheck:
    """What reading one image file found: a reject reason + detail, or hash and size."""

    reason: Optional[str] = None
    detail: Optional[str] = None
    content_hash: Optional[str] = None
    width: Optional[int] = None
    height: Optional[int] = None


def worker_count() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_path(root_real: str, raw: str) -> tuple[Optional[str], Optional[str]]:
    """(POSIX path relative to the root, None) for a path that stays inside the root, else
    (None, detail) for "path escapes root".

    ``root_real`` is the root's realpath. A relative path is taken from the root; ``..`` that leaves
    it, an absolute path outside it, or a symlink whose target resolves outside it escapes.
    """
    if os.path.isabs(raw):
        norm = os.path.normpath(raw)
        rel = os.path.relpath(norm, root_real)
        if rel == ".." or rel.startswith(".." + os.sep):
            real = os.path.realpath(norm)
            rel = os.path.relpath(real, root_real)
            if rel == ".." or rel.startswith(".." + os.sep):
                return None, f"The absolute path {raw!r} is outside the root {root_real}; give paths inside it or pass --root."
    else:
        rel = os.path.normpath(raw)
        if rel == ".." or rel.startswith(".." + os.sep):
            return None, f"The path {raw!r} leads outside the root {root_real} through '..'."
    if rel == ".":
        return None, f"The path {raw!r} names the root folder itself, not a file in it."
    full = os.path.join(root_real, rel)
    real = os.path.realpath(full)
    if os.path.commonpath([real, root_real]) != root_real:
        return None, f"{rel!r} is a link to {real}, which is outside the root {root_real}."
    return PurePosixPath(Path(rel)).as_posix(), None


def check_file(full: str) -> FileCheck:
    """Stat, read, hash and fully decode one image file (``img.load()`` catches truncation)."""
    name = os.path.basename(full)
    try:
        info = os.stat(full)
    except FileNotFoundError:
        return FileCheck("missing file", f"{full} does not exist.")
    except OSError as exc:
        return FileCheck("unreadable file", f"{full} cannot be read ({exc.strerror or exc}).")
    if stat.S_ISDIR(info.st_mode):
        return FileCheck("not a file", f"{full} is a folder; an image file is expected here.")
    if not stat.S_ISREG(info.st_mode):
        return FileCheck("not a file", f"{full} is not a regular file (a device, pipe or socket).")
    if info.st_size == 0:
        return FileCheck("empty file", f"{name} has zero bytes.")
    try:
        with open(full, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return FileCheck("unreadable file", f"{full} cannot be read ({exc.strerror or exc}).")
    if not data:
        return FileCheck("empty file", f"{name} has zero bytes.")
    digest = hashlib.sha256(data).hexdigest()
    kind = None
    try:
        with Image.open(io.BytesIO(data)) as img:
            kind = img.format
            img.verify()  # checks chunk checksums where the format has them (PNG)
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # full decode: truncated and corrupt data fail here
            width, height = img.size
    except UnidentifiedImageError:
        return FileCheck("not an image", f"{name} ({len(data)} bytes) is not an image format Pillow can read.")
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, zlib.error, ...
        text = str(exc) or type(exc).__name__
        if isinstance(exc, EOFError) or "truncat" in text.lower():
            return FileCheck("truncated image", f"{name} ends before its image data does ({text}).")
        return FileCheck("corrupt image", f"{name} does not decode as {kind or 'an image'} ({text}).")
    if width <= 0 or height <= 0:
        return FileCheck("corrupt image", f"{name} decodes to an empty {width}x{height} image.")
    return FileCheck(content_hash=digest, width=int(width), height=int(height))


def _check_chunk(paths: list[str]) -> list[FileCheck]:
    return [check_file(p) for p in paths]


def check_files(paths: Iterable[str], workers: Optional[int] = None, window: int = 1024) -> Iterator[FileCheck]:
    """:func:`check_file` for each path, in order, ``workers`` threads at a time (default: cores).

    Submits ``window`` files at a time so memory stays bounded on large folders.
    """
    workers = workers or worker_count()
    paths = iter(paths)
    if workers == 1:
        for path in paths:
            yield check_file(path)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="amend-ingest") as pool:
        while True:
            block = [p for _, p in zip(range(window), paths)]
            if not block:
                return
            chunks = [block[i : i + CHUNK] for i in range(0, len(block), CHUNK)]
            for results in pool.map(_check_chunk, chunks):
                yield from results


def list_class_folders(root: Path) -> list[tuple[str, Optional[str]]]:
    """The sorted listing of an image folder: (relative POSIX path, label folder or None).

    Direct, non-hidden entries of each non-hidden label folder, in (label, name) order; files at
    the top level (no label folder) sort first, with label None.
    """
    entries: list[tuple[tuple[str, str], str, Optional[str]]] = []
    for child in os.scandir(root):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            for item in os.scandir(child.path):
                if not item.name.startswith("."):
                    entries.append(((child.name, item.name), f"{child.name}/{item.name}", child.name))
        else:
            entries.append((("", child.name), child.name, None))
    entries.sort(key=lambda e: e[0])
    return [(rel, label) for _, rel, label in entries]
