"""Reviewer names that mean one person: normalised, without invisible characters, and no
look-alike of a name the project already knows; the OS user beside a claimed name; whether the
app's login (OIDC) is configured.

What this does and does not protect (see README, "What the audit trail protects against"): in
local mode (the CLI, the Python API, the app without a login) a name is a *claim*; nothing checks
that the person typing ``--reviewer ann`` is Ann. What Amend adds is that the claim cannot be a
near-copy of another reviewer's name (``аnn`` with a Cyrillic а, ``ann\\u200b`` with a zero-width
space), and that the CLI records the operating-system account that ran it (``os_user``) beside the
claimed name, so a later reader can tell "ann, claimed by OS user ci-runner" from "ann, claimed by
OS user ann". Only a login (``identity_source="oidc"``, refused unless one is configured) ties the
name to an account someone else vouches for.

Standard library only (the review log imports this and must start fast).
"""

from __future__ import annotations

import getpass
import os
import tomllib
import unicodedata
from pathlib import Path
from typing import Iterable, Optional

from core.errors import AmendError

MAX_NAME = 200

#: Characters that render as nothing (or reorder text) but make a different name: zero-width
#: space / joiners, word joiner, BOM, soft hyphen, the bidi controls, fillers. Every other
#: format (Cf), control, private-use and unassigned character is refused as well.
INVISIBLE = frozenset(
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e\u200f"
    "\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069"
    "\u3164\ufeff\uffa0"
)
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}

#: Common homoglyphs folded to the Latin letter they imitate (after NFKC + casefold), in the
#: spirit of Unicode TR39's confusable skeletons; enough for the names people type.
_CONFUSABLES = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "з": "3", "і": "i", "ї": "i", "ј": "j", "к": "k", "м": "m",
    "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "һ": "h", "ԁ": "d",
    "ԛ": "q", "ԝ": "w", "ӏ": "l", "ь": "b", "г": "r", "п": "n",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
    # Armenian
    "ո": "n", "ս": "u", "հ": "h", "օ": "o", "ց": "g", "զ": "q",
    # Latin look-alikes and digits
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɡ": "g", "ɩ": "i", "ɪ": "i", "ʟ": "l",
    "0": "o", "1": "l", "|": "l", "!": "l", "5": "s", "$": "s", "@": "a",
}
#: Letter pairs that read as one letter (folded after the single characters).
_SEQUENCES = (("rn", "m"), ("vv", "w"), ("cl", "d"))


def normalise_name(name: str, what: str = "user name") -> str:
    """The name as stored: Unicode NFKC, surrounding white space removed, inner runs of white
    space one space. Refuses (one line) an empty name, one longer than :data:`MAX_NAME`, and one
    holding an invisible, format, control or bidi character, naming it."""
    if not isinstance(name, str):
        raise AmendError(f"{what} must be text, got {type(name).__name__}.")
    for char in name:
        if char in INVISIBLE or unicodedata.category(char) in _REFUSED_CATEGORIES:
            label = unicodedata.name(char, "a control or unassigned character")
            raise AmendError(
                f"{what} {name.encode('unicode_escape').decode('ascii')!r} holds an invisible or control character "
                f"(U+{ord(char):04X} {label}); type the name with visible letters, digits and spaces only."
            )
    text = " ".join(unicodedata.normalize("NFKC", name).split())
    if not text:
        raise AmendError(f"no {what} given; pass --reviewer NAME (or log in) so the log can say who acted.")
    if len(text) > MAX_NAME:
        raise AmendError(f"{what} {text[:40]!r}... is too long: use at most {MAX_NAME} characters.")
    return text


def skeleton(name: str) -> str:
    """What a name looks like: NFKC, casefolded, common homoglyphs folded to Latin letters, white
    space, dots, dashes and underscores dropped. Two names with the same skeleton are look-alikes."""
    text = unicodedata.normalize("NFKC", name)
    # Capital I and small l look alike in most fonts; fold I before casefolding makes it i.
    text = text.replace("I", "l")
    text = unicodedata.normalize("NFKC", text.casefold())
    text = "".join(_CONFUSABLES.get(c, c) for c in text)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = "".join(c for c in text if c.isalnum())
    for pair, single in _SEQUENCES:
        text = text.replace(pair, single)
    return text


def lookalike(name: str, known: Iterable[str]) -> Optional[str]:
    """The known name that ``name`` imitates (same skeleton, different text), or None. A name
    equal to a known one is that person, not a look-alike."""
    names = set(known)
    if name in names:
        return None
    shape = skeleton(name)
    for other in sorted(names):
        if skeleton(other) == shape:
            return other
    return None


def refuse_lookalike(name: str, known: Iterable[str]) -> None:
    """Raise (one line naming the existing name) when ``name`` is a look-alike of a known one."""
    other = lookalike(name, known)
    if other is not None:
        raise AmendError(
            f"the name {name!r} looks like the existing reviewer {other!r} but is not the same text; use exactly "
            f"{other!r} if you are that person, or choose a clearly different name."
        )


def os_user() -> str:
    """The operating-system account running this process (``getpass.getuser()``), or ``uid N``
    when the system has no name for it."""
    try:
        return getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (some containers)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


# --------------------------------------------------------------------------- the app's login
#: Set by the app (True / False) when it knows whether ``st.login`` is configured; None: read
#: the secrets files (:func:`oidc_configured`).
OIDC_CONFIGURED: Optional[bool] = None


def _has_auth(text: str) -> bool:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    return isinstance(data.get("auth"), dict) and bool(data["auth"])


def secrets_files() -> list[Path]:
    """Where Streamlit reads its secrets: ``./.streamlit/secrets.toml`` and ``~/.streamlit/secrets.toml``."""
    return [Path.cwd() / ".streamlit" / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml"]


def oidc_configured() -> bool:
    """Whether the app's login (Streamlit ``st.login``, OIDC) is configured, so that a name with
    ``identity_source="oidc"`` really came from a login: :data:`OIDC_CONFIGURED` when the app set
    it; else an ``[auth]`` section in ``$AMEND_OIDC`` (the path of a secrets.toml, or its TOML
    text) or in one of :func:`secrets_files`."""
    if OIDC_CONFIGURED is not None:
        return bool(OIDC_CONFIGURED)
    env = os.environ.get("AMEND_OIDC")
    if env:
        path = Path(env).expanduser()
        try:
            if path.is_file():
                return _has_auth(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return _has_auth(env)
    for file in secrets_files():
        try:
            if file.is_file() and _has_auth(file.read_text(encoding="utf-8")):
                return True
        except (OSError, ValueError):
            continue
    return False


def check_oidc() -> None:
    """Refuse ``identity_source="oidc"`` when no login is configured (a claimed name would pass
    as a verified one)."""
    if not oidc_configured():
        raise AmendError(
            "identity source 'oidc' needs the app's login configured ([auth] in .streamlit/secrets.toml, or "
            "AMEND_OIDC); without it the name is only claimed: use identity source 'local' or 'cli'."
        )
