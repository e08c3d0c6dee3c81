"""How every `amend` command writes: its result through :func:`output` (one JSON object on stdout
with ``--json``, else text), and lines meant for the person at the terminal through :func:`tell`
(stderr, never part of the result)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Union

Text = Union[str, Callable[[Any], str]]


def wants_json(args: argparse.Namespace) -> bool:
    """``--json``, or ``--format json`` on the commands that have a format; ``--json`` wins over any other format."""
    return bool(getattr(args, "json", False)) or getattr(args, "format", None) == "json"


def output(args: argparse.Namespace, payload: Any, text: Text) -> None:
    """Write a command's result on stdout: ``payload`` as exactly one line of JSON when JSON was asked
    for, else ``text`` (a string, or a function making one from the payload) ending in one newline."""
    if wants_json(args):
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
        return
    rendered = text(payload) if callable(text) else text
    sys.stdout.write(rendered.rstrip("\n") + "\n")


def tell(line: str) -> None:
    """One line on stderr for the person running the command (a note, an error); stdout stays the result."""
    sys.stderr.write(line.rstrip("\n") + "\n")
    sys.stderr.flush()
