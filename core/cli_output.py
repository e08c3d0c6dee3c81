"""How every `amend` command writes its result: one JSON object on stdout with --json, else text."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Union


def print_json(payload: Any) -> None:
    """Exactly one line of JSON on stdout (the --json contract)."""
    sys.stdout.write(json.dumps(payload, default=str) + "\n")


def emit(args: argparse.Namespace, payload: dict, human: Union[str, Callable[[dict], str]]) -> None:
    """The payload as JSON when --json was given, otherwise the human text (or text made from it)."""
    if getattr(args, "json", False):
        print_json(payload)
    else:
        text = human(payload) if callable(human) else human
        sys.stdout.write(text.rstrip("\n") + "\n")
