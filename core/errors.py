"""Exceptions a user can act on. The CLI maps them to exit codes (see ../shared/CLI.md)."""

from __future__ import annotations


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
