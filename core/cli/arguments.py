"""argparse value types shared by the command groups (counts, shares); kept apart from the parser
so command modules import them without importing the parser that imports them."""

from __future__ import annotations

import argparse


def _whole_at_least(text: str, minimum: int, why: str = "") -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}{why} (got {value})")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a count, a batch size)."""
    return _whole_at_least(text, 1)


def fold_count(text: str) -> int:
    """An argparse type: cross-validation folds, at least 2 (one fold leaves nothing to train on)."""
    return _whole_at_least(text, 2, ": fewer folds leave nothing to train on")


def share(text: str) -> float:
    """An argparse type: a share between 0 and 1 (a precision)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1 (got {value})")
    return value
