"""Capture a user's own model while it trains: named layers, logits and per-sample training
dynamics, written into the project (no hosted service, nothing leaves the machine).

::

    from core import capture

    model = capture.watch(model, layers={"pooled": "global_pool"})
    for epoch in range(epochs):
        with capture.session("projects/camelyon", run="virchow2-seed0", epoch=epoch, split="train"):
            for images, labels, sample_ids in loader:
                logits = model(images, labels=labels, sample_ids=sample_ids)
                ...

then ``amend analyse projects/camelyon --capture virchow2-seed0``.

- :mod:`core.capture.hooks`: the hooks (``watch``);
- :mod:`core.capture.recording`: one epoch of one split, recorded in the background (``session``);
- :mod:`core.capture.store`: the layout in the project folder and reading runs back;
- :mod:`core.capture.dynamics`: per-sample training dynamics (AUM, data maps, forgetting) and
  their aggregation over runs.

``watch`` and ``session`` import torch; they load on first use so that reading captures (the CLI,
the app) does not.
"""

from __future__ import annotations

from typing import Any

__all__ = ["watch", "session", "threshold_samples", "THRESHOLD_CLASS"]

from core.capture.store import THRESHOLD_CLASS, threshold_samples  # noqa: E402  (no torch)


def __getattr__(name: str) -> Any:
    if name == "watch":
        from core.capture.hooks import watch

        return watch
    if name == "session":
        from core.capture.recording import session

        return session
    raise AttributeError(f"module 'core.capture' has no attribute {name!r}")
