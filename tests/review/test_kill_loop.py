"""Crash safety: writers killed with SIGKILL at random moments lose no acknowledged event and
leave no half-written one; the chain still verifies."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.review import audit

REPO = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("_writer.py")
ROUNDS = 20  # rounds of two writers killed at random moments


def _spawn(folder: Path, tag: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen([sys.executable, str(WRITER), str(folder), tag], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=REPO, env=env, text=True)
    assert child.stdout.readline() == "ready\n", child.stderr.read()
    return child


@pytest.mark.slow
def test_sigkilled_writers_lose_no_acknowledged_event(project):
    rng = random.Random(20240501)
    acknowledged: dict[int, tuple[str, str, str]] = {}  # event id -> (actor, sample, token)
    for iterations in range(1, ROUNDS + 1):
        # Two writers at once, so kills also land while one waits for the other's lock.
        children = {f"w{iterations}a": _spawn(project.path, f"w{iterations}a"),
                    f"w{iterations}b": _spawn(project.path, f"w{iterations}b")}
        for tag, child in children.items():
            time.sleep(rng.uniform(0.0, 0.35))  # let it write a while
            child.send_signal(signal.SIGKILL)
        for tag, child in children.items():
            out, _ = child.communicate(timeout=20)
            assert child.returncode == -signal.SIGKILL
            # Only complete lines: a line cut by the kill is not a claim.
            for line in out.splitlines(keepends=True):
                if not line.endswith("\n"):
                    continue
                event_id, sample, token = line.split()
                assert int(event_id) not in acknowledged, f"event id {event_id} acknowledged twice"
                acknowledged[int(event_id)] = (tag, sample, token)
        result = audit.verify(project)
        assert result.ok, (iterations, result)
    assert len(acknowledged) > 100, "the writers hardly wrote; the test proved nothing"
    assert len({tag for tag, _, _ in acknowledged.values()}) >= ROUNDS, "most writers were killed before writing"
    stored = {e.event_id: e for e in audit.read_events(project)}
    assert sorted(stored) == list(range(1, len(stored) + 1))
    for event_id, (tag, sample, token) in acknowledged.items():
        event = stored.get(event_id)
        assert event is not None, f"acknowledged event {event_id} is missing"
        assert (event.actor, event.sample_id, event.payload["token"]) == (tag, sample, token)
    # Whatever is stored but was not acknowledged was committed just before a kill; at most one
    # transaction (two events) per killed child.
    decided = [e for e in stored.values() if e.kind == "decision"]  # each writer's role grant comes first
    assert len(decided) - len(acknowledged) <= 2 * 2 * ROUNDS
