"""Small helpers more than one room needs, one copy each (standard library and numpy; torch
only inside :func:`resolve_device`).

- :func:`utc_now`: the time format of every stored record;
- :func:`read_utf8`: a user's text file (ids, a guideline), refused in one line when it is not UTF-8;
- :func:`listed`: a list-valued evidence cell as a list, whatever marks it missing;
- :func:`unit_rows`: vectors scaled to unit length (the arithmetic; core.neighbours.normalise
  adds the checks that analysis input needs);
- :func:`resolve_device`: ``auto`` / ``cpu`` / ``cuda`` to the device that will be used;
- :class:`Progress` / :data:`ProgressCallback` / :func:`no_progress`: progress reporting for long
  work: core calls a callback; the CLI draws a bar, the app st.progress.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

import numpy as np

from core.errors import AmendError


def utc_now() -> str:
    """Server time, ISO 8601 with microseconds, UTC (the time format of every stored record)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def read_utf8(path: str | os.PathLike, what: str) -> str:
    """The text of a file a user gave (``what`` names it in the message: "ids file", "guideline").

    Raises AmendError naming the first byte that is not UTF-8 and its offset, instead of the
    UnicodeDecodeError (a ValueError) that would otherwise escape as a traceback.
    """
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise AmendError(
            f"{what} {path} is not UTF-8 text: byte 0x{data[exc.start]:02X} at offset {exc.start} (line {line}); "
            "save it as UTF-8 and run the command again."
        ) from None


UNIT_NORM_TOLERANCE = 1e-6


def usable_cores() -> int:
    """Cores this process may use (respects CPU affinity and container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit L2 norm (zero rows stay zero).

    Each row is first divided by its largest absolute value: the squares of a float32 row with
    values near 1e20 overflow to inf (and of one near 1e-23 underflow to 0), which would turn a
    valid vector into zeros; after the scaling every value lies in [-1, 1] and the norm is exact.

    A row already of unit length (within :data:`UNIT_NORM_TOLERANCE`, about eight float32 steps;
    normalising leaves rows within one) is returned as it is: normalising twice changes no bit, so
    vectors exported from a table (``amend vectors export``) import back identical.
    """
    matrix = np.asarray(matrix, dtype=np.float32)
    out = matrix.copy()
    if matrix.ndim != 2 or matrix.size == 0:
        return out
    # Squares summed in float64 without a float64 copy of the matrix (embedders' vectors are
    # mostly unit already, and this is on every analysis's path: ~0.25 s -> ~0.03 s at 10k x 1280).
    with np.errstate(over="ignore", invalid="ignore"):  # inf or NaN rows are simply not unit
        already = np.abs(np.sqrt(np.einsum("ij,ij->i", matrix, matrix, dtype=np.float64)) - 1.0) <= UNIT_NORM_TOLERANCE
    todo = np.flatnonzero(~already)
    if todo.size:
        rows = matrix[todo]
        peak = np.abs(rows).max(axis=1, keepdims=True)
        scaled = rows / np.where(peak == 0, 1.0, peak).astype(np.float32)
        norms = np.linalg.norm(scaled, axis=1, keepdims=True)
        out[todo] = scaled / np.where(norms == 0, 1.0, norms)
    return out


def _nvidia_driver_may_be_present() -> bool:
    """False only where CUDA certainly cannot be used: on Linux without the NVIDIA driver's
    control device or ROCm's (torch's "cuda" on AMD GPUs), and on macOS. Asking torch costs
    importing it (1.6 s on two cores), which a CPU-only analysis otherwise never needs; anywhere
    else torch is asked."""
    if "torch" in sys.modules:
        return True  # already paid for: let torch answer
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/kfd"))
    return True


def listed(value: Any) -> list:
    """A list-valued evidence cell (a list, tuple or numpy array) as a list; [] when missing
    (None, NaN or pandas' NA)."""
    if value is None:
        return []
    try:
        return list(value)
    except TypeError:  # NaN, pd.NA: not iterable
        return []


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; refuse ``cuda`` without one
    and any other name (AmendError: the user typed it)."""
    device = (device or "auto").lower()
    if device == "cpu":
        return "cpu"
    if device == "auto" and not _nvidia_driver_may_be_present():
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AmendError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto.")
        return device
    raise AmendError(f"unknown --device {device!r}; use auto, cpu or cuda.")


class Progress(Protocol):
    def __call__(self, step: str, done: int, total: Optional[int]) -> None:
        """Report that `done` of `total` units of `step` are finished (total None: unknown)."""


def no_progress(step: str, done: int, total: Optional[int]) -> None:
    """The default callback: report nothing."""


ProgressCallback = Callable[[str, int, Optional[int]], None]
