"""Checkpoints: the review log's (size, chain head), recorded in the project and signed for outside.

A checkpoint says "on <time> the log of project <id> held <size> events and the last one's hash
was <head>". :func:`core.review.audit.verify` checks that the log still *extends* every one of them
(the event with id ``size`` has exactly hash ``head``), so a log that is missing, emptied, cut short,
replaced by an older copy, or rewritten and re-hashed up to a checkpoint fails, naming it.

Where they live:

- every checkpoint (each export, each ``amend audit checkpoint``) is a row of the append-only
  ``checkpoints`` table in ``project.sqlite``, beside the head every analysis run records. These
  catch accidents and careless tampering; someone holding the project folder can rewrite them too.
- a *signed statement* (JSON: format, project id and name, size, chain head, time, public key,
  signature) is written outside the project: ``amend audit checkpoint PROJECT --to PATH``, and into
  every export's folder. Given back with ``amend audit verify PROJECT --checkpoint PATH``, each is
  checked: signature, project, and that the log extends it. A statement kept by someone else (a
  witness: the customer receiving the export, a CI artefact store, an e-mail) is what catches a
  rewrite by a person who holds every file of the project.

The signature is Ed25519 (``cryptography``). The signing key is one file per user,
``signing-key.pem`` in ``$AMEND_KEY_DIR`` (default ``$XDG_CONFIG_HOME/amend`` or
``~/.config/amend``), made on first use with mode 0600 in a 0700 folder, never inside a project.
A signature proves that whoever held that key signed that (size, head) at that time, and that the
statement was not altered since; it does not prove the log is honest (the key holder can sign a
rewritten log) and it proves nothing against someone who holds the key and every copy of every
statement. See README, "What the audit trail protects against".
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import stat
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from core.errors import AmendError
from core.review import audit
from core.store.schema import PROJECT_DB

FORMAT = "amend-checkpoint"
VERSION = 1
KEY_FILE = "signing-key.pem"
_SIGNED_FIELDS = ("format", "version", "project_id", "project_name", "size", "chain_head", "time", "public_key")


# --------------------------------------------------------------------------- the key
def key_dir() -> Path:
    """Where the signing key lives: ``$AMEND_KEY_DIR``, else ``$XDG_CONFIG_HOME/amend``, else
    ``~/.config/amend``."""
    if os.environ.get("AMEND_KEY_DIR"):
        return Path(os.environ["AMEND_KEY_DIR"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "amend"


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def signing_key(project_path: Optional[Path] = None):
    """The user's Ed25519 private key, made on first use (mode 0600). Refuses a key folder inside
    ``project_path`` (whoever copies the project would copy the key) and a key file others can read."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    folder = key_dir()
    if project_path is not None and _inside(folder, Path(project_path)):
        raise AmendError(f"the signing key folder {folder} is inside the project; set AMEND_KEY_DIR to a folder "
                         "outside it (the key must not travel with the project).")
    path = folder / KEY_FILE
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it meanwhile: use theirs
            pass
        else:
            with os.fdopen(handle, "wb") as out:
                out.write(pem)
                out.flush()
                os.fsync(out.fileno())
            return key
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise AmendError(f"the signing key {path} can be read by others (mode {mode:o}); run `chmod 600 {path}`.")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise AmendError(f"the signing key {path} is unreadable ({exc}); move it away to make a new one.") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AmendError(f"the signing key {path} is not an Ed25519 key; move it away to make a new one.")
    return key


def public_key_text(key) -> str:
    """``ed25519:<hex of the 32 raw bytes>``."""
    from cryptography.hazmat.primitives import serialization

    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + raw.hex()


# --------------------------------------------------------------------------- statements
def _message(statement: dict) -> bytes:
    return audit.canonical_json({k: statement.get(k) for k in _SIGNED_FIELDS}).encode("utf-8")


def project_id(project: Any) -> Optional[str]:
    """The project's id (``meta.project_id``, schema 3 on), or None."""
    import sqlite3

    path = audit.log_path(project).with_name(PROJECT_DB)
    if not path.exists():
        return None
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'project_id'").fetchone()
    except sqlite3.DatabaseError:
        return None
    finally:
        con.close()
    return row[0] if row else None


def _folder(project: Any) -> Path:
    return Path(os.fspath(getattr(project, "path", project))).resolve()


def sign(project: Any, size: int, chain_head: str, time: Optional[str] = None) -> dict:
    """A signed statement that the log of ``project`` held ``size`` events ending in ``chain_head``."""
    folder = _folder(project)
    key = signing_key(folder)
    statement = {
        "format": FORMAT, "version": VERSION, "project_id": project_id(project), "project_name": folder.name,
        "size": int(size), "chain_head": chain_head, "time": time or audit.utc_now(), "public_key": public_key_text(key),
    }
    statement["signature"] = key.sign(_message(statement)).hex()
    return statement


def signature_problem(statement: dict) -> Optional[str]:
    """None when ``statement`` is a well-formed checkpoint whose signature matches its content
    under its own public key; else what is wrong, in words."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(statement, dict) or statement.get("format") != FORMAT:
        return "it is not an Amend checkpoint"
    size, head = statement.get("size"), statement.get("chain_head")
    if not isinstance(size, int) or size < 0 or not isinstance(head, str) or len(head) != 64:
        return "its size or chain head is malformed"
    key_text, signature = statement.get("public_key"), statement.get("signature")
    if not isinstance(key_text, str) or not key_text.startswith("ed25519:") or not isinstance(signature, str):
        return "it has no Ed25519 public key or signature"
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_text[len("ed25519:"):]))
        public.verify(bytes.fromhex(signature), _message(statement))
    except (ValueError, InvalidSignature):
        return "its signature does not match its content (the statement was altered after signing)"
    return None


def to_anchor(statement: dict, where: str) -> audit.Anchor:
    return audit.Anchor(f"signed checkpoint {where} ({statement.get('time')})", statement["chain_head"],
                        int(statement["size"]))


# --------------------------------------------------------------------------- recording
def record(project: Any, size: int, chain_head: str, source: str, location: Optional[str] = None,
           statement: Optional[dict] = None) -> int:
    """Add a row to the project's ``checkpoints`` table; returns its id."""
    import sqlite3

    path = audit.log_path(project).with_name(PROJECT_DB)
    if not path.exists():
        raise AmendError(f"{path.parent} has no {PROJECT_DB}; it is not an Amend project.")
    con = sqlite3.connect(path, timeout=audit.BUSY_TIMEOUT_S, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            cursor = con.execute(
                "INSERT INTO checkpoints (created_at, size, chain_head, source, location, statement) VALUES (?,?,?,?,?,?)",
                (audit.utc_now(), int(size), chain_head, source, location,
                 None if statement is None else json.dumps(statement, sort_keys=True)),
            )
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        return int(cursor.lastrowid)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            raise AmendError(f"{path.parent} has no checkpoints table (an earlier Amend's schema); run "
                             f"`amend upgrade {path.parent}`.") from exc
        raise
    finally:
        con.close()


def list_checkpoints(project: Any) -> list[dict]:
    """The project's checkpoint rows, oldest first."""
    import sqlite3

    path = audit.log_path(project).with_name(PROJECT_DB)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT checkpoint_id, created_at, size, chain_head, source, location, statement "
                           "FROM checkpoints ORDER BY checkpoint_id").fetchall()
    finally:
        con.close()
    return [{"checkpoint_id": r[0], "created_at": r[1], "size": r[2], "chain_head": r[3], "source": r[4],
             "location": r[5], "statement": json.loads(r[6]) if r[6] else None} for r in rows]


def default_folder(project: Any) -> Path:
    """Where ``amend audit checkpoint`` writes without ``--to``: ``$AMEND_CHECKPOINT_DIR``, else
    ``<key folder>/checkpoints/<project name>-<id>`` (outside the project, in the user's config)."""
    if os.environ.get("AMEND_CHECKPOINT_DIR"):
        return Path(os.environ["AMEND_CHECKPOINT_DIR"]).expanduser()
    folder = _folder(project)
    return key_dir() / "checkpoints" / f"{folder.name}-{(project_id(project) or 'noid')[:12]}"


def _target(project: Any, to: Optional[str | os.PathLike], size: int) -> Path:
    folder = _folder(project)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"{folder.name}.checkpoint-{size}-{stamp}.json"
    if to is None:
        target = default_folder(project) / name
    else:
        given = Path(to).expanduser()
        is_file = given.suffix.lower() == ".json" and not given.is_dir()
        target = given if is_file else given / name  # a .json path is the file; anything else a folder
    if _inside(target, folder):
        raise AmendError(f"{target} is inside the project; write checkpoints outside it (--to PATH), where whoever "
                         "can rewrite the project cannot rewrite them too.")
    if target.exists():
        raise AmendError(f"{target} exists; give a new file name or a folder.")
    return target


def _write_json(target: Path, statement: dict) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.partial")
    temporary.write_text(json.dumps(statement, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, target)


def checkpoint(project: Any, to: Optional[str | os.PathLike] = None) -> dict:
    """Sign the log's current (size, head), write the statement outside the project (``to``: a
    ``.json`` file, or a folder, made when missing; default :func:`default_folder`) and record it in
    the project.

    Refuses (AmendError, nothing written) when the log fails verification: a checkpoint vouches
    for the log as it is. Returns the statement plus ``file`` and ``checkpoint_id``.
    """
    check = audit.verify(project)
    if not check.ok:
        raise AmendError(f"the review log fails verification ({check.problem}); no checkpoint was written. "
                         "Run `amend audit verify` and restore the log first.")
    target = _target(project, to, check.events)
    statement = sign(project, check.events, check.chain_head)
    _write_json(target, statement)
    number = record(project, check.events, check.chain_head, "checkpoint", str(target), statement)
    return {**statement, "file": str(target), "checkpoint_id": number}


#: How often the app checkpoints a log that grew (minutes; AMEND_CHECKPOINT_MINUTES, 0 = never).
DEFAULT_SCHEDULE_MINUTES = 15.0


def schedule_minutes() -> float:
    """The app's checkpoint interval from AMEND_CHECKPOINT_MINUTES (default 15; 0 turns it off)."""
    raw = os.environ.get("AMEND_CHECKPOINT_MINUTES", "").strip()
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_SCHEDULE_MINUTES
    except ValueError:
        return DEFAULT_SCHEDULE_MINUTES


def checkpoint_if_grown(project: Any, min_age_seconds: float) -> Optional[dict]:
    """A checkpoint (:func:`checkpoint`, default folder) when the log holds events that no
    checkpoint covers yet and the newest checkpoint is at least ``min_age_seconds`` old; None
    otherwise. What the app calls on its schedule: a witness copy of the head every so often while
    people review, not one per decision."""
    size = audit.chain_tip(project)[0]
    existing = list_checkpoints(project)
    if size == 0 or (existing and existing[-1]["size"] >= size):
        return None
    if existing:
        last = _dt.datetime.fromisoformat(existing[-1]["created_at"])
        if last.tzinfo is None:
            last = last.replace(tzinfo=_dt.timezone.utc)
        if (_dt.datetime.now(_dt.timezone.utc) - last).total_seconds() < min_age_seconds:
            return None
    return checkpoint(project)


# --------------------------------------------------------------------------- verifying
def load(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, Any]]:
    """(file, parsed JSON) of each checkpoint file given, or of each ``*.json`` checkpoint in a
    folder given (other JSON files there, such as an export's manifest, are passed over)."""
    found: list[tuple[Path, Any]] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            inside = []
            for file in sorted(path.glob("*.json")):
                try:
                    data = json.loads(file.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                if isinstance(data, dict) and data.get("format") == FORMAT:
                    inside.append((file, data))
            if not inside:
                raise AmendError(f"{path} holds no Amend checkpoint (*.json with format {FORMAT!r}).")
            found += inside
        elif path.is_file():
            try:
                found.append((path, json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError) as exc:
                raise AmendError(f"{path} is not a readable JSON checkpoint ({exc}).") from exc
        else:
            raise AmendError(f"{path} does not exist; --checkpoint takes a checkpoint file or a folder of them.")
    return found


def verify(project: Any, checkpoints: Optional[Sequence[str | os.PathLike]] = None,
           known_head: Optional[str] = None) -> audit.VerifyResult:
    """:func:`core.review.audit.verify`, plus the signed checkpoints in ``checkpoints`` (files or
    folders): each must be a checkpoint of this project with a valid signature, and the log must
    extend it. A checkpoint whose signature fails makes the result BROKEN, naming the file; one of
    another project is a user error."""
    statements = load(checkpoints or [])
    own_id = project_id(project)
    anchors = []
    for file, statement in statements:
        problem = signature_problem(statement)
        if problem == "it is not an Amend checkpoint":
            raise AmendError(f"{file} is not an Amend checkpoint (no format {FORMAT!r}).")
        if problem is not None:
            result = audit.verify(project, known_head=known_head)
            return audit.VerifyResult(False, result.events, result.chain_head, None,
                                      f"checkpoint {file}: {problem}.", anchors=result.anchors,
                                      failed_anchor=audit.Anchor(f"signed checkpoint {file}",
                                                                 str(statement.get("chain_head")),
                                                                 statement.get("size")))
        if own_id is not None and statement.get("project_id") not in (None, own_id):
            raise AmendError(f"{file} is a checkpoint of another project ({statement.get('project_name')!r}, id "
                             f"{statement.get('project_id')}); give this project's checkpoints.")
        anchors.append(to_anchor(statement, str(file)))
    result = audit.verify(project, known_head=known_head, anchors=anchors)
    return dataclasses.replace(result, details={**result.details, "checkpoints_checked": len(statements)})
