"""A project is one folder (its layout: :mod:`core.store.schema`). This module is the folder
itself: create and open it, its connections, the writer lock and crash recovery. What is kept in
it comes in from :mod:`core.store.samples` and :mod:`core.store.vectors`, one part each of
:class:`Project`. Its LanceDB tables may live on object storage instead of in ``lance/``
(:mod:`core.store.location`); the SQLite files always stay in the folder.

Commit points. LanceDB appends are atomic per call but a project write often touches several
tables, so SQLite is the store of record for "what is committed": an ingest's sample rows carry
its ``ingest_id`` and only count once the SQLite row of that ingest is committed. A process killed
mid-ingest leaves rows that no reader sees, and the next writer deletes them (``_recover``).
Imported vectors and predictions are written to a fresh table in one call and become visible
only when the registry row pointing at it commits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import tempfile
import uuid
from pathlib import Path
from typing import Iterator, Optional

from filelock import FileLock, Timeout

from core.errors import AmendError, ConflictError, SchemaVersionError, damage_named
from core.store.location import INFO_KEY, DataLocation
from core.store.samples import SampleTables
from core.store.schema import (
    FORMAT_NAME, INFO_FILE, PROJECT_DB, PROJECT_SQL, RUN_SCOPED_PREFIXES, SAMPLES_TABLE, SCHEMA_VERSION,
    WRITER_LOCK, record_version, sample_schema,
)
from core.store.vectors import VectorTables
from core.util import utc_now

logger = logging.getLogger(__name__)


def amend_version() -> str:
    """``amend <version>``, as ``amend.json`` and ``schema_history`` name the writer."""
    from core import __version__

    return f"amend {__version__}"


def read_info(path: str | os.PathLike) -> tuple[Path, dict]:
    """(resolved folder, parsed ``amend.json``) of a project folder, refusing what is not one."""
    root = Path(path).resolve()
    info_file = root / INFO_FILE
    if not info_file.is_file():
        raise AmendError(f"{root} is not an Amend project (no {INFO_FILE}); create one with `amend init`.")
    try:
        info = json.loads(info_file.read_text())
    except (OSError, ValueError) as exc:
        raise AmendError(f"{info_file} is unreadable ({exc}); the project folder is damaged.") from exc
    if info.get("format") != FORMAT_NAME:
        raise AmendError(f"{root} is not an Amend project ({INFO_FILE} format is {info.get('format')!r}).")
    return root, info


def write_info(root: Path, info: dict) -> None:
    """Replace ``amend.json`` atomically (a temporary file beside it, flushed, then renamed)."""
    handle, temporary = tempfile.mkstemp(prefix=f".{INFO_FILE}.", dir=root)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(json.dumps(info, indent=2) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, root / INFO_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


#: In a staging folder of :meth:`Project.creating`: "<host> <pid>" of the process building it.
_CREATOR_FILE = ".creator"


def _remove_abandoned_staging(target: Path) -> None:
    """Remove staging folders of ``target`` left by an ``amend init`` that was killed: those whose
    creator ran on this machine and is no longer running. A staging folder of a live process, of
    another machine (a shared disk) or without a creator note is left alone."""
    for folder in target.parent.glob(f".{target.name}.creating-*"):
        try:
            host, pid = (folder / _CREATOR_FILE).read_text(encoding="utf-8").split()
            if host != socket.gethostname() or _running(int(pid)):
                continue
        except (OSError, ValueError):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


class Project(SampleTables, VectorTables):
    """An Amend project folder. Open with :meth:`open`, make with :meth:`create`."""

    def __init__(self, path: Path, info: dict) -> None:
        self.path = path
        self.info = info
        self._db = None

    # ----------------------------------------------------------------- create / open
    @classmethod
    def create(cls, path: str | os.PathLike, data: Optional[DataLocation] = None) -> "Project":
        """Create an empty project at ``path`` (which must not exist or be an empty folder), its
        LanceDB tables in the folder or, with ``data``, at an object-storage URI.

        The folder is built under a temporary name beside it and renamed into place, so a killed
        ``init`` never leaves a half-made project behind.
        """
        with cls.creating(path, data) as project:
            pass
        return project

    @classmethod
    @contextlib.contextmanager
    def creating(cls, path: str | os.PathLike, data: Optional[DataLocation] = None) -> Iterator["Project"]:
        """Create a project at ``path`` and fill it inside the ``with`` block, all or nothing.

        The project is built in a hidden staging folder beside ``path`` (``.<name>.creating-*``);
        the block writes into it (``amend init`` ingests there) and only when the block ends without
        an error is it renamed to ``path``, and the yielded project's ``path`` updated. On an error
        the staging folder is removed and ``path`` is as it was (absent, or the empty folder it was),
        so the same command can run again once its input is fixed.

        ``data``: an object-storage location for the LanceDB tables (default: the folder's
        ``lance/``). It must hold no tables yet (two projects must never share tables, and the
        clean-up below may then remove everything there); on an error the tables made there are
        dropped again, and when that fails too the error says what is left at the URI.
        """
        target = Path(path).resolve()
        _check_free(target)
        location = data or DataLocation()
        remote_db = _connect_empty(location) if location.remote else None
        created_parent = _missing_parents(target.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_staging(target)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.creating-", dir=target.parent))
        try:
            (staging / _CREATOR_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n", encoding="utf-8")
            info = {
                "format": FORMAT_NAME,
                "schema_version": SCHEMA_VERSION,
                "created_by": amend_version(),
                "created_at": utc_now(),
            }
            if location.remote:
                info[INFO_KEY] = location.to_info()
            write_info(staging, info)
            project = cls(staging, info)
            project._db = remote_db  # the connection of the emptiness check (None: lance/ in the staging folder)
            with project.sql() as con:
                con.executescript(PROJECT_SQL)
            with project.transaction() as con:
                record_version(con, SCHEMA_VERSION, "created", [], info["created_by"], info["created_at"])
                con.execute("INSERT INTO meta (key, value) VALUES ('project_id', ?)", (uuid.uuid4().hex,))
            project.db.create_table(SAMPLES_TABLE, schema=sample_schema())
            yield project
            project._db = None  # its connection points into the staging folder
            _check_free(target)  # another process may have taken the name meanwhile
            (staging / _CREATOR_FILE).unlink(missing_ok=True)
            os.rename(staging, target)  # replaces an empty folder of that name in the same step
            project.path = target
        except BaseException as failure:
            shutil.rmtree(staging, ignore_errors=True)
            for folder in created_parent:  # parents this call made, innermost first, if still empty
                with contextlib.suppress(OSError):
                    folder.rmdir()
            if remote_db is not None:
                left = _drop_remote_tables(location, remote_db)
                if left and isinstance(failure, Exception):
                    raise AmendError(f"{' '.join(str(failure).split())}; and the tables this init made at "
                                     f"{location.uri} could not be removed ({left}): delete that prefix before "
                                     "running init again.") from failure
            raise

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Project":
        """Open an existing project, refusing one written with another on-disk schema (an older
        one with the line that says to run ``amend upgrade``)."""
        root, info = read_info(path)
        version = int(info.get("schema_version", 0))
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{root} was written by a newer Amend ({info.get('created_by')}, project schema {version}); "
                f"this Amend reads schema {SCHEMA_VERSION}. Upgrade Amend to open it."
            )
        if version < SCHEMA_VERSION:
            raise SchemaVersionError(old_schema_message(root, info))
        return cls(root, info)

    # ----------------------------------------------------------------- storage handles
    @property
    def location(self) -> DataLocation:
        """Where the project's LanceDB tables are (``lance/`` in the folder, or an object-storage URI)."""
        return DataLocation.from_info(self.info)

    @property
    def db(self):
        """The project's LanceDB connection (embedded: ``lance/``, or the URI of :attr:`location`,
        with credentials from the environment)."""
        if self._db is None:
            self._db = self.location.connect(self.path)
        return self._db

    @contextlib.contextmanager
    def sql(self) -> Iterator[sqlite3.Connection]:
        """A SQLite connection in WAL mode with synchronous=FULL, closed on exit.

        Autocommit mode: callers group writes with ``BEGIN IMMEDIATE`` / ``COMMIT`` (see
        :meth:`transaction`) so two writers serialise rather than interleave.
        """
        con = sqlite3.connect(self.path / PROJECT_DB, timeout=30, isolation_level=None)
        try:
            with damage_named(self.path / PROJECT_DB):
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=FULL")
                con.execute("PRAGMA foreign_keys=ON")
                yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any exception)."""
        with self.sql() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    @contextlib.contextmanager
    def writer(self, what: str, wait: float = 5.0) -> Iterator[None]:
        """Hold the project's writer lock (one ingest / embed / import at a time) and recover
        whatever a killed writer left before starting."""
        lock = writer_lock(self.path)
        try:
            lock.acquire(timeout=wait)
        except Timeout as exc:
            raise ConflictError(
                f"another Amend process is writing to {self.path} ({what} has to wait); try again when it ends."
            ) from exc
        try:
            self._recover()
            yield
        finally:
            lock.release()

    def _recover(self) -> None:
        """Remove what a killed writer left uncommitted: sample rows of uncommitted ingests and
        vector / prediction tables no registry row points at."""
        committed = self.committed_ingest_ids()
        table = self.db.open_table(SAMPLES_TABLE)
        stray = f"ingest_id NOT IN ({','.join(map(str, committed))})" if committed else "true"
        if table.count_rows(stray):
            logger.warning("removing sample rows of an interrupted ingest in %s", self.path)
            table.delete(stray)
        with self.sql() as con:
            known = {r[0] for r in con.execute("SELECT table_name FROM representations")}
            known |= {r[0] for r in con.execute("SELECT table_name FROM predictions")}
            for evidence, slices in con.execute("SELECT evidence_table, slices_table FROM runs"):
                known |= {evidence, slices}
        for name in self._table_names():
            if name.split("__", 1)[0] in RUN_SCOPED_PREFIXES and name not in known:
                logger.warning("dropping table %s left by an interrupted write", name)
                self.db.drop_table(name)

    def _table_names(self) -> list[str]:
        return table_names(self.db)

    def get_meta(self, key: str) -> Optional[str]:
        with self.sql() as con:
            row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None


def table_names(db) -> list[str]:
    """Every table of a LanceDB connection (all pages: an object store lists in pages)."""
    names: list[str] = []
    token = None
    while True:
        result = db.list_tables(page_token=token)
        names += list(getattr(result, "tables", result))
        token = getattr(result, "page_token", None)
        if not token:
            return names


def _connect_empty(location: DataLocation):
    """A connection to ``location`` for a new project, refusing a prefix that already holds tables
    (another project's, or what an init that could not clean up left)."""
    db = location.connect(Path.cwd())
    try:
        present = table_names(db)
    except (ValueError, OSError, RuntimeError) as exc:
        raise location.error(exc) from exc
    if present:
        shown = ", ".join(sorted(present)[:5]) + (" ..." if len(present) > 5 else "")
        raise AmendError(f"{location.uri} already holds LanceDB tables ({shown}): another project's, or what an "
                         f"init that was killed left. Give each project a prefix of its own (e.g. {location.uri}-2), "
                         "or delete that prefix if nothing uses it.")
    return db


def _drop_remote_tables(location: DataLocation, db) -> str:
    """Drop every table at ``location`` (an init that failed made them: the prefix was empty when it
    started). Returns "" when none is left, else what went wrong, for the error line."""
    try:
        for name in table_names(db):
            db.drop_table(name)
        return ""
    except Exception as exc:  # noqa: BLE001 - reported in the init's own error line, which is what matters
        logger.debug("could not drop the tables at %s", location.uri, exc_info=True)
        return " ".join(str(location.error(exc)).split())[:300]


def _check_free(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise AmendError(f"{target} already exists and is not empty; choose a new project folder.")


def _missing_parents(folder: Path) -> list[Path]:
    """The folders from ``folder`` up that do not exist yet, innermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def writer_lock(root: Path) -> FileLock:
    """The project's writer lock: one ingest / embed / import / upgrade at a time."""
    return FileLock(str(root / WRITER_LOCK))


def old_schema_message(root: Path, info: dict) -> str:
    """The one line that says a project is older than this Amend, and what to do."""
    version = int(info.get("schema_version", 0))
    if version < 1:
        return (f"{root} has no known project schema version ({version}); this Amend reads schema "
                f"{SCHEMA_VERSION} and cannot upgrade it. Export its labels and create a new project.")
    return (f"{root} was written by an older Amend ({info.get('created_by')}, project schema {version}; this Amend "
            f"uses schema {SCHEMA_VERSION}): run `amend upgrade {root}` to upgrade it.")
