"""Versioned labelling guidelines (markdown); a decision cites the version it followed.

This module reads decisions (:mod:`core.review.decisions`) to say which cite a version and which
samples to review again after one; decisions never import it (they read published versions
straight from the log), so the two import in one direction only.

Each published version is a ``guideline_published`` event in the review log (payload: version,
text, sha256 of the UTF-8 text, classes it touches, previous version), so guidelines are in the
same hash chain as decisions and as tamper-evident. Versions are ordered by publication, not by
name; names are unique. Only a lead publishes (see core.review.roles for how the first lead comes about).

Classes a version touches (what :func:`review_queue_for_guideline` re-queues):
``classes`` given at publish wins; otherwise they are read from headings: a heading (any level)
whose text is a label name (case-insensitive, backticks / quotes / a trailing colon ignored)
opens that class's section, which runs to the next heading of the same or a higher level. A
class is touched when its section text differs from the previous version's (added, removed or
edited). Edits outside class sections touch no class; give ``classes`` to say otherwise.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import pandas as pd

from core.errors import AmendError
from core.review import audit, decisions, roles
from core.store.schema import check_name

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")


@dataclass(frozen=True)
class GuidelineVersion:
    version: str
    text: str
    sha256: str
    author: str
    published_at: str
    event_id: int
    classes: list[str]
    classes_source: str  # "given" | "headings"
    previous_version: Optional[str]

    def to_dict(self, with_text: bool = False) -> dict:
        out = {"version": self.version, "sha256": self.sha256, "author": self.author,
               "published_at": self.published_at, "event_id": self.event_id, "classes": self.classes,
               "classes_source": self.classes_source, "previous_version": self.previous_version}
        if with_text:
            out["text"] = self.text
        return out


def _from_event(event: audit.Event) -> GuidelineVersion:
    p = event.payload
    return GuidelineVersion(p["version"], p["text"], p["sha256"], event.actor, event.created_at, event.event_id,
                            list(p.get("classes", [])), p.get("classes_source", "given"), p.get("previous_version"))


def versions_from_events(events: Sequence[audit.Event]) -> list[GuidelineVersion]:
    return [_from_event(e) for e in events if e.kind == "guideline_published"]


def _norm_heading(text: str) -> str:
    return text.strip().strip("`*_\"'").rstrip(":").strip().strip("`*_\"'").casefold()


def class_sections(text: str, labels: Sequence[str]) -> dict[str, str]:
    """Label -> the text of the sections whose heading names it (joined, in document order)."""
    by_name = {label.casefold(): label for label in labels}
    sections: dict[str, list[str]] = {}
    open_: list[tuple[int, str]] = []  # (level, label) of the class section(s) we are inside
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match:
            level = len(match.group(1))
            open_ = [(lv, lab) for lv, lab in open_ if lv < level]
            label = by_name.get(_norm_heading(match.group(2)))
            if label is not None:
                open_.append((level, label))
        for _, label in open_:
            sections.setdefault(label, []).append(line)
    return {label: "\n".join(lines).strip() for label, lines in sections.items()}


# A markdown image whose source is a URL with a scheme or a protocol-relative one ("//host/x"):
# inline ![alt](url "title") and reference-style [name]: url definitions used by images.
_REMOTE_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?((?:[a-zA-Z][a-zA-Z0-9+.-]*:)?//[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_IMAGE_REFERENCE = re.compile(r"!\[([^\]]*)\]\[([^\]]*)\]")


def without_remote_images(text: str) -> str:
    """Guideline markdown for display, with every image that would load from another server
    replaced by a plain note naming it: a reviewer's browser must not fetch what a guideline
    author (or anyone who can publish) points it at, e.g. a tracking pixel. Links stay links (they
    load only when clicked); images inside the app are not affected (there are none: guidelines are
    text)."""
    def note(alt: str, url: str) -> str:
        return f"[remote image not loaded: {alt or 'image'} — {url}]"

    shown = _REMOTE_IMAGE.sub(lambda m: note(m.group(1), m.group(2)), text)
    # Reference-style images: ![alt][ref] with "[ref]: url" elsewhere; markdown would fetch url.
    return _IMAGE_REFERENCE.sub(lambda m: note(m.group(1), f"reference [{m.group(2) or m.group(1)}]"), shown)


def touched_classes(old_text: str, new_text: str, labels: Sequence[str]) -> list[str]:
    """Labels whose heading sections differ between two texts, in label order."""
    old, new = class_sections(old_text, labels), class_sections(new_text, labels)
    return [label for label in labels if old.get(label) != new.get(label)]


def publish(project: Any, text_markdown: str, version: str, author: str, classes: Optional[Sequence[str]] = None,
            identity_source: str = "local", os_user: Optional[str] = None) -> GuidelineVersion:
    """Publish a new guideline version (lead only; see core.review.roles) and return its record.

    ``classes``: the label classes this version changes (default: read from headings, see the
    module docstring). Refuses a version name already used and a text identical to the latest.
    """
    check_name("guideline version", version)
    author = audit.check_actor(author)
    audit.check_identity_source(identity_source)
    if not isinstance(text_markdown, str) or not text_markdown.strip():
        raise AmendError("the guideline text is empty; write the markdown document first.")
    labels = project.labels()
    if classes is not None:
        unknown = [c for c in classes if c not in labels]
        if unknown:
            raise AmendError(
                f"classes {', '.join(map(repr, unknown))} are not in the label set ({', '.join(labels)})."
            )
        classes = [label for label in labels if label in set(classes)]
    digest = hashlib.sha256(text_markdown.encode("utf-8")).hexdigest()
    with audit.writing(project) as log:
        roles.require_lead(log, author, identity_source, "publish guidelines", os_user)
        existing = versions_from_events(log.events(kinds=["guideline_published"]))
        if any(v.version == version for v in existing):
            raise AmendError(f"guideline version {version!r} already exists; choose a new version name.")
        previous = existing[-1] if existing else None
        if previous is not None and previous.sha256 == digest:
            raise AmendError(f"this text is identical to version {previous.version!r}; nothing to publish.")
        if classes is None:
            touched = touched_classes(previous.text if previous else "", text_markdown, labels)
            source = "headings"
        else:
            touched, source = list(classes), "given"
        event = log.append("guideline_published", author, {
            "version": version, "text": text_markdown, "sha256": digest, "classes": touched,
            "classes_source": source, "previous_version": previous.version if previous else None,
            **roles.claim(identity_source, os_user),
        })
    return _from_event(event)


def list_versions(project: Any) -> list[GuidelineVersion]:
    """Every published version, oldest first."""
    return versions_from_events(audit.read_events(project, kinds=["guideline_published"]))


def latest(project: Any) -> Optional[GuidelineVersion]:
    versions = list_versions(project)
    return versions[-1] if versions else None


def get(project: Any, version: str) -> GuidelineVersion:
    versions = list_versions(project)
    for item in versions:
        if item.version == version:
            return item
    raise AmendError(
        f"no guideline version {version!r}; published versions: {', '.join(v.version for v in versions) or 'none'}."
    )


def diff(project: Any, v1: str, v2: str, context: int = 3) -> str:
    """Unified diff (difflib) from version ``v1`` to ``v2``; empty when the texts are equal."""
    a, b = get(project, v1), get(project, v2)
    lines = difflib.unified_diff(a.text.splitlines(keepends=True), b.text.splitlines(keepends=True),
                                 fromfile=f"guideline {v1}", tofile=f"guideline {v2}", n=context)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def decisions_citing(project: Any, version: str) -> pd.DataFrame:
    """Every decision event citing ``version`` (including ones later corrected; see the
    ``superseded_by`` column), as :func:`core.review.decisions.events` returns them."""
    get(project, version)
    return decisions.events(project, guideline_version=version, kinds=["decision"])


def citation_counts(project: Any) -> dict[str, int]:
    """Published version -> how many decisions cite it, in publication order (0 when none does).

    Every decision event counts, corrected ones included (as :func:`decisions_citing` lists
    them); a decision citing no version (made before the first was published) counts for none,
    and a version's own ``guideline_published`` event is not a citation.
    """
    cited = decisions.events(project, kinds=["decision"])["guideline_version"].value_counts()
    return {v.version: int(cited.get(v.version, 0)) for v in list_versions(project)}


def review_queue_for_guideline(project: Any, version: str) -> pd.DataFrame:
    """Samples to review again after guideline ``version``: those whose latest decision cites an
    older version (or none) and whose old or new label is a class ``version`` touches.

    "Older" is by publication order; a decision citing ``version`` or a later one is not queued.
    Returns the latest decision's row per sample (columns of :func:`core.review.decisions.events`)
    plus ``classes``: the touched classes it involves.
    """
    published = list_versions(project)
    order = {v.version: i for i, v in enumerate(published)}
    if version not in order:
        raise AmendError(
            f"no guideline version {version!r}; published versions: {', '.join(order) or 'none'}."
        )
    target = published[order[version]]
    touched = set(target.classes)
    frame = decisions.events(project, kinds=["decision"])
    last_decisions = frame[frame["superseded_by"].isna()]
    keep_rows, classes = [], []
    for _, row in last_decisions.iterrows():
        cited = row["guideline_version"]
        if not pd.isna(cited) and order.get(cited, -1) >= order[version]:
            continue
        involved = sorted({row["old_label"], row["new_label"]} & touched)
        if involved:
            keep_rows.append(row)
            classes.append(involved)
    out = pd.DataFrame(keep_rows, columns=decisions.EVENT_COLUMNS).reset_index(drop=True)
    out["classes"] = pd.Series(classes, dtype=object)
    return out
