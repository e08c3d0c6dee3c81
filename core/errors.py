"""Exceptions a user can act on. The CLI maps them to exit codes (see ../shared/CLI.md)."""

from __future__ import annotations

import contextlib
from typing import Iterator


class AmendError(Exception):
    """A user error: the message says what is wrong and what to do. CLI exit 1."""

    exit_code = 1


class ConflictError(AmendError):
    """Someone else changed the thing first (a stale decision, a busy project). CLI exit 3."""

    exit_code = 3


class SchemaVersionError(AmendError):
    """The project was written by an Amend with a different on-disk schema."""


class SampleFileChanged(AmendError):
    """A sample's file is missing or its bytes no longer match the hash taken at ingest."""


class DamagedStoreError(AmendError):
    """A project's SQLite file cannot be read as a database (overwritten, truncated, corrupted)."""


# SQLite's words for a file that is not (or no longer) a database; "locked" / "busy" are not damage.
_DAMAGE_WORDS = ("not a database", "malformed", "disk i/o error", "no such table", "file is encrypted")


def database_damage(path: object, error: Exception) -> "DamagedStoreError | None":
    """The user error for a sqlite3 error that says the file at ``path`` is damaged, else None
    (a lock, or a bug, stays what it is)."""
    import sqlite3

    if not isinstance(error, sqlite3.DatabaseError):
        return None
    text = str(error)
    if isinstance(error, sqlite3.OperationalError) and not any(word in text.lower() for word in _DAMAGE_WORDS):
        return None
    return DamagedStoreError(
        f"{path} is damaged ({text}): it cannot be read as an SQLite database. Nothing was changed; "
        "restore the file from a backup (an export's manifest holds the chain head to check it against)."
    )
@contextlib.contextmanager
def damage_named(path: object) -> Iterator[None]:
    """Inside, a sqlite3 error that says the file at ``path`` is damaged becomes the one-line
    user error (:func:`database_damage`); any other error passes unchanged."""
    import sqlite3

    try:
        yield
    except sqlite3.DatabaseError as exc:
        damage = database_damage(path, exc)
        if damage is None:
            raise
        raise damage from exc


