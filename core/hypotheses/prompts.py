"""The prompt a model server is given, per project and versioned, and the schema its answer follows.

A prompt version is the instruction text plus the closed ``data_quality`` vocabulary; both are
hashed together (``sha256``) so a run records exactly what it asked, and a later edit is a new
version (rows of ``hypothesis_prompts`` are append-only, as guideline versions are events that
never change). Until a project publishes one, :data:`BUILTIN` is used; it is never stored, its
hash is stable, so resuming works the same either way.

The answer has three independent dimensions: ``data_quality`` (one word of the vocabulary,
enforced by the schema's ``enum``), ``cause`` and ``fix`` (one sentence each).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from core.errors import AmendError
from core.store.schema import check_name
from core.util import utc_now

#: The closed vocabulary of the ``data_quality`` dimension (editable per project by publishing a
#: prompt version with another list).
DEFAULT_VOCABULARY = ("ambiguous_sample", "model_error", "annotation_issue", "out_of_distribution", "low_quality")
#: The free-text dimensions, clustered one by one (core.hypotheses.clusters).
FREE_TEXT = ("cause", "fix")
_WORD = re.compile(r"^[a-z][a-z0-9_]{0,47}$")

DEFAULT_TEXT = """You review one sample that a classifier got wrong, to tell a data team WHY it failed.

Given label (what the annotator wrote): {given_label}
The model's top predictions: {predictions}
All classes of the data set: {classes}
{content}
Answer with a JSON object with exactly three fields:
- "data_quality": one of {vocabulary}:
  ambiguous_sample = the sample could fairly belong to more than one class;
  model_error = the given label is right and the model is wrong;
  annotation_issue = the given label is wrong;
  out_of_distribution = the sample belongs to none of the classes;
  low_quality = the sample is too damaged, blurred, cropped or short to tell.
- "cause": ONE sentence on what in the sample made the model fail (what you see or read, not the class names).
- "fix": ONE sentence with a concrete action: an augmentation, data to collect, or a change to the labelling guideline.
Be specific and brief. Do not repeat the question."""

SYSTEM = "You are a careful data-quality reviewer for machine-learning data sets. You answer only with JSON."


@dataclass(frozen=True)
class PromptVersion:
    """One version of a project's prompt: its text, vocabulary, and their joint SHA-256."""

    version: str
    text: str
    vocabulary: tuple[str, ...]
    sha256: str
    author: str
    created_at: str

    def to_dict(self, with_text: bool = False) -> dict:
        out = {"version": self.version, "sha256": self.sha256, "vocabulary": list(self.vocabulary),
               "author": self.author, "created_at": self.created_at}
        if with_text:
            out["text"] = self.text
        return out


def prompt_hash(text: str, vocabulary: Sequence[str]) -> str:
    """SHA-256 of the text and the vocabulary together: a change of either is another prompt."""
    body = json.dumps({"text": text, "vocabulary": list(vocabulary)}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


BUILTIN = PromptVersion("builtin-1", DEFAULT_TEXT, DEFAULT_VOCABULARY, prompt_hash(DEFAULT_TEXT, DEFAULT_VOCABULARY),
                        "amend", "")


def check_vocabulary(words: Sequence[str]) -> tuple[str, ...]:
    """The vocabulary as stored: lower-case words (letters, digits, '_'), at least two, no repeats."""
    cleaned = tuple(str(w).strip() for w in words if str(w).strip())
    bad = [w for w in cleaned if not _WORD.match(w)]
    if bad:
        raise AmendError(f"data_quality words must be lower-case letters, digits and '_' (got {bad[:3]}).")
    if len(cleaned) < 2 or len(set(cleaned)) != len(cleaned):
        raise AmendError("give at least two different data_quality words.")
    return cleaned


def check_text(text: str) -> str:
    """A prompt must place the sample's facts; unknown placeholders would fail at the first sample."""
    if not text or not text.strip():
        raise AmendError("the prompt is empty.")
    try:
        text.format(given_label="", predictions="", classes="", content="", vocabulary="")
    except (KeyError, IndexError, ValueError) as exc:
        raise AmendError(f"the prompt has a placeholder Amend does not fill ({exc}); use {{given_label}}, "
                         "{predictions}, {classes}, {content} and {vocabulary}, and write a brace as {{ or }}.") from exc
    if "{given_label}" not in text:
        raise AmendError("the prompt must show the given label: put {given_label} in it.")
    return text


def publish(project: Any, text: str, version: str, author: str,
            vocabulary: Optional[Sequence[str]] = None) -> PromptVersion:
    """Store a new prompt version (names are unique; a stored version never changes).

    ``vocabulary``: the closed ``data_quality`` words; default: the latest version's (or the built-in).
    """
    check_name("prompt version", version)
    if not author or not str(author).strip():
        raise AmendError("say who wrote the prompt (author).")
    words = check_vocabulary(vocabulary) if vocabulary is not None else current(project).vocabulary
    text = check_text(text)
    record = PromptVersion(version, text, words, prompt_hash(text, words), str(author).strip(), utc_now())
    with project.transaction() as con:
        if con.execute("SELECT 1 FROM hypothesis_prompts WHERE version = ?", (version,)).fetchone():
            raise AmendError(f"prompt version {version!r} exists already; versions never change, name a new one.")
        con.execute("INSERT INTO hypothesis_prompts (version, text, vocabulary, sha256, author, created_at) "
                    "VALUES (?,?,?,?,?,?)",
                    (version, text, json.dumps(list(words)), record.sha256, record.author, record.created_at))
    return record


def list_versions(project: Any) -> list[PromptVersion]:
    """Every published version, oldest first (the built-in one is not listed)."""
    with project.sql() as con:
        rows = con.execute("SELECT version, text, vocabulary, sha256, author, created_at FROM hypothesis_prompts "
                           "ORDER BY created_at, rowid").fetchall()
    return [PromptVersion(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4], r[5]) for r in rows]


def current(project: Any) -> PromptVersion:
    """The latest published version, else :data:`BUILTIN`."""
    versions = list_versions(project)
    return versions[-1] if versions else BUILTIN


def get(project: Any, version: Optional[str]) -> PromptVersion:
    """A version by name (None: :func:`current`)."""
    if version is None:
        return current(project)
    if version == BUILTIN.version:
        return BUILTIN
    for record in list_versions(project):
        if record.version == version:
            return record
    raise AmendError(f"no prompt version {version!r}; publish it with `amend hypotheses PROJECT --publish-prompt FILE`.")


def schema(vocabulary: Sequence[str]) -> dict:
    """The JSON schema of one answer: the closed vocabulary as an ``enum``, two one-sentence strings."""
    return {
        "type": "object",
        "properties": {
            "data_quality": {"type": "string", "enum": list(vocabulary)},
            "cause": {"type": "string", "description": "one sentence: what in the sample made the model fail"},
            "fix": {"type": "string", "description": "one sentence: augmentation, data collection or guideline change"},
        },
        "required": ["data_quality", "cause", "fix"],
        "additionalProperties": False,
    }


def render(prompt: PromptVersion, given_label: str, predictions: Sequence[tuple[str, float]],
           classes: Sequence[str], text: Optional[str] = None) -> str:
    """The user message for one failure (the image, when there is one, travels beside it)."""
    shown = ", ".join(f"{label} ({p:.0%})" for label, p in predictions) or "none recorded"
    if text is not None:
        content = f"The text of the sample:\n<<<\n{text}\n>>>\n"
    else:
        content = "The image of the sample is attached.\n"
    return prompt.text.format(given_label=given_label, predictions=shown, classes=", ".join(classes),
                              content=content, vocabulary=", ".join(prompt.vocabulary))
