"""The store room: a project folder on disk and everything kept in it.

- :mod:`core.store.schema`      every table (SQLite DDL, LanceDB schemas), table names, schema versions
- :mod:`core.store.project`     the folder: create / open, locks, connections, crash recovery, labels
- :mod:`core.store.samples`     sample rows and ingest commits (:class:`IngestWriter`)
- :mod:`core.store.vectors`     representations (vector tables) and imported prediction sets
- :mod:`core.store.selections`  named selections of samples sent between views
- :mod:`core.store.migrations`  upgrading a folder written by an earlier Amend (``amend upgrade``)

This ``__init__`` imports nothing, so that a light module (the review log writer) can take the
schema from :mod:`core.store.schema` without loading pandas, pyarrow or LanceDB.
"""
