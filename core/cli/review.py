"""`amend decide`, `amend guideline`, `amend audit verify` / `checkpoint`, `amend role`: the decision trail from the shell."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.cli.output import output, tell
from core.cli.arguments import positive_int, share
from core.errors import AmendError


def _read_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise AmendError(f"{path} does not exist; --ids takes a file with one sample id a line.")
    from core.util import read_utf8

    return [line.strip() for line in read_utf8(path, "ids file").splitlines() if line.strip()]


def _claimed(name: str, os_user: str) -> None:
    """Say once, on stderr, that the name is a claim and who ran the command (both are in the log)."""
    tell(f"recorded as {name} (claimed) by OS user {os_user}")


def _accept_suggested(args: argparse.Namespace, project) -> int:
    from core.analysis.runs import accept_suggested
    from core.review import audit, identity

    if args.id or args.label or args.keep or args.ambiguous or args.exclude:
        raise AmendError("--accept-suggested decides many samples; do not combine it with --id or a decision.")
    ids = _read_ids(Path(args.ids)) if args.ids else None
    result = accept_suggested(
        project, reviewer=args.reviewer, top=args.top, ids=ids, reason=args.reason or "accepted suggestion",
        guideline_version=args.guideline, run_id=args.run, min_precision=args.min_precision, identity_source="cli",
        all_flagged=args.all_flagged, os_user=(who := identity.os_user()),
    )
    payload = result.to_dict()
    payload["skipped_samples"] = [{"id": sid, "reason": why} for sid, why in result.skipped]
    output(args, payload, f"decided {payload['decided']}, skipped {payload['skipped']}")
    if result.decided:
        _claimed(audit.check_actor(args.reviewer), who)
        if ids is None:  # samples the user listed are ones they chose
            _note_when_only_amends_probe(project, args.run)
    return 0


def _note_when_only_amends_probe(project, run_id: str | None) -> None:
    """Say so when the run's probabilities came from Amend's probe on the vectors alone: measured
    on real human labels, its bulk relabels were right far less often than estimated (47-75 %
    against 0.90 on CIFAR-10N; 90-93 % with a strong model's probabilities), README "Bulk
    acceptance takes only the sure suggestions"."""
    from core.analysis.runs import get_run

    run = get_run(project, run_id)
    sources = run.record.get("probability_sources") or []
    if sources and not any(str(source).startswith("predictions:") for source in sources):
        tell(f"note: run {run.run_id} has no predictions of your own, so these relabels rest on Amend's probe of "
             "your vectors, whose estimates run optimistic (README, 'Bulk acceptance'); review a sample of them "
             "(amend flags, the triage page) or import your model's probabilities (amend predictions import)")


def cmd_decide(args: argparse.Namespace, progress) -> int:
    from core.review import decisions, identity
    from core.store.project import Project

    project = Project.open(args.project)
    if args.accept_suggested:
        return _accept_suggested(args, project)
    if not args.id:
        raise AmendError("say which sample: --id ID (or --accept-suggested for the flagged ones).")
    kinds = [k for k, on in (("relabel", args.label is not None), ("keep", args.keep), ("ambiguous", args.ambiguous),
                             ("exclude", args.exclude)) if on]
    if len(kinds) != 1:
        raise AmendError("give exactly one decision: --label L, --keep, --ambiguous or --exclude.")
    event = decisions.decide(
        project, args.id, kinds[0], reviewer=args.reviewer, label=args.label, reason=args.reason or "",
        guideline_version=args.guideline, run_id=args.run, expected_event=args.expected_event,
        identity_source="cli", os_user=identity.os_user(),
    )
    payload = {
        "event_id": event.event_id, "sample_id": event.sample_id, "decision": kinds[0],
        "old_label": event.payload.get("old_label"), "new_label": event.payload.get("new_label"),
        "guideline_version": event.payload.get("guideline_version"), "created_at": event.created_at,
    }
    output(args, payload, f"event {event.event_id}: {event.sample_id} {kinds[0]} "
                          f"{payload['old_label']} -> {payload['new_label']}")
    _claimed(event.actor, event.payload["os_user"])
    return 0


def cmd_guideline(args: argparse.Namespace, progress) -> int:
    from core.review import guidelines, identity
    from core.store.project import Project
    from core.util import read_utf8

    project = Project.open(args.project)
    if args.action == "publish":
        if not args.file or not args.version or not args.author:
            raise AmendError("publish needs FILE, --version V and --author NAME.")
        source = Path(args.file)
        if not source.is_file():
            raise AmendError(f"{source} does not exist; give the guideline as a markdown file.")
        classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
        who = identity.os_user()
        record = guidelines.publish(project, read_utf8(source, "guideline"), args.version, args.author,
                                    classes=classes, identity_source="cli", os_user=who)
        output(args, record.to_dict(), f"published {record.version} (sha256 {record.sha256[:12]}…), "
                                       f"touching {', '.join(record.classes) or 'no class'}")
        _claimed(record.author, who)
    elif args.action == "list":
        versions = [v.to_dict() for v in guidelines.list_versions(project)]
        output(args, {"versions": versions},
               "\n".join(f"{v['version']}  {v['published_at']}  {v['author']}  sha256 {v['sha256'][:12]}"
                         for v in versions) or "no guideline published yet")
    elif args.action == "show":
        version = args.version or getattr(guidelines.latest(project), "version", None)
        if version is None:
            raise AmendError("no guideline published yet; publish one with `amend guideline PROJECT publish FILE`.")
        record = guidelines.get(project, version)
        output(args, record.to_dict(with_text=True), record.text)
    else:  # diff (argparse allows no other action)
        if not args.version or not args.against:
            raise AmendError("diff needs --version V and --against OLD.")
        text = guidelines.diff(project, args.against, args.version)
        output(args, {"from": args.against, "to": args.version, "diff": text}, text or "no difference")
    return 0


def cmd_audit_verify(args: argparse.Namespace, progress) -> int:
    from core.review import checkpoints
    from core.store.project import Project

    given = args.checkpoint or []
    result = checkpoints.verify(Project.open(args.project), checkpoints=given, known_head=args.known_head)
    payload = {**result.to_dict(), "checkpoints_checked": result.details.get("checkpoints_checked", 0)}
    if result.ok:
        output(args, payload, result.summary())
        return 0
    # The result (which names the bad event or anchor) is still the output; the exit status says it is broken.
    output(args, payload, result.summary())
    where = f" at event {result.first_bad_event}" if result.first_bad_event is not None else ""
    raise AmendError(f"the audit log is broken{where}: {result.problem}")


def cmd_audit_checkpoint(args: argparse.Namespace, progress) -> int:
    from core.review import checkpoints
    from core.store.project import Project

    made = checkpoints.checkpoint(Project.open(args.project), to=args.to)
    output(args, made, f"checkpoint of {made['size']} events, chain head {made['chain_head']}, signed "
                       f"{made['public_key'][:24]}… -> {made['file']}\n"
                       "keep a copy where whoever can change this project cannot (a witness); "
                       f"check it later with `amend audit verify {args.project} --checkpoint FILE`")
    return 0


def cmd_role(args: argparse.Namespace, progress) -> int:
    from core.review import identity, roles
    from core.store.project import Project

    project = Project.open(args.project)
    if args.action != "show" and not args.by:
        raise AmendError(f"{args.action} needs --by NAME (a lead, once the project has one).")
    if args.action in ("grant", "revoke"):
        if not args.user or not args.role:
            raise AmendError(f"{args.action} needs USER and --role reviewer|lead.")
        event = getattr(roles, args.action)(project, args.user, args.role, by=args.by, identity_source="cli",
                                            os_user=identity.os_user())
        output(args, {"event_id": event.event_id, **roles.access(project).to_dict()},
               f"event {event.event_id}: {args.action} {args.role} {args.user}")
        _claimed(event.actor, event.payload["os_user"])
    elif args.action in ("close", "reopen"):
        event = getattr(roles, args.action)(project, by=args.by, identity_source="cli", os_user=identity.os_user())
        output(args, {"event_id": event.event_id, **roles.access(project).to_dict()},
               f"event {event.event_id}: project {'closed' if args.action == 'close' else 'reopened'}")
        _claimed(event.actor, event.payload["os_user"])
    else:
        state = roles.access(project).to_dict()
        output(args, state, json.dumps(state, indent=2))
    return 0


def register(commands) -> None:
    """Add `decide`, `guideline`, `audit verify` and `role` to the `amend` parser."""
    p = commands.add("decide", cmd_decide, "record a decision on a sample (or accept suggestions in bulk)")
    p.add_argument("--id", metavar="ID")
    p.add_argument("--label", metavar="L", help="relabel to L")
    p.add_argument("--keep", action="store_true", help="the given label is correct")
    p.add_argument("--ambiguous", action="store_true", help="needs an expert or a guideline change")
    p.add_argument("--exclude", action="store_true", help="leave the sample out of training")
    p.add_argument("--accept-suggested", action="store_true", help="bulk: accept the suggested labels of flagged samples")
    p.add_argument("--top", type=positive_int, metavar="N", help="with --accept-suggested: the N best-ranked flagged samples")
    p.add_argument("--ids", metavar="FILE", help="with --accept-suggested: only these ids (one a line)")
    p.add_argument("--min-precision", type=share, metavar="P",
                   help="with --accept-suggested: only the best flagged samples whose expected precision is at least P")
    p.add_argument("--all-flagged", action="store_true",
                   help="with --accept-suggested: also relabel flags whose suggestion is not their most probable "
                        "label (by default those are skipped and left for a person)")
    p.add_argument("--run", metavar="RUN", help="the analysis run whose evidence was seen (default: the latest)")
    p.add_argument("--reviewer", required=True, metavar="NAME")
    p.add_argument("--reason", metavar="TEXT")
    p.add_argument("--guideline", metavar="VERSION", help="the guideline version followed (default: the latest)")
    p.add_argument("--expected-event", type=int, metavar="N",
                   help="the latest event on this sample you saw (0: none); a newer one makes this a conflict (exit 3)")

    p = commands.add("guideline", cmd_guideline, "versioned labelling guidelines: publish, list, show, diff")
    p.add_argument("action", choices=["publish", "list", "show", "diff"])
    p.add_argument("file", nargs="?", metavar="FILE", help="markdown file (publish)")
    p.add_argument("--version", metavar="V")
    p.add_argument("--against", metavar="OLD", help="diff: the older version")
    p.add_argument("--author", metavar="NAME")
    p.add_argument("--classes", metavar="a,b", help="publish: the classes this version touches (default: read from headings)")

    audit_commands = commands.group("audit", "the audit log")
    q = audit_commands.add("verify", cmd_audit_verify,
                           "recompute the hash chain, name the first bad event, check every recorded state of the log")
    q.add_argument("--known-head", metavar="HASH", help="a chain head recorded earlier (e.g. in an export manifest)")
    q.add_argument("--checkpoint", action="append", metavar="PATH",
                   help="a signed checkpoint file, or a folder of them (an export folder); repeatable")
    q = audit_commands.add("checkpoint", cmd_audit_checkpoint,
                           "sign the log's size and chain head and write it outside the project (a witness keeps it)")
    q.add_argument("--to", metavar="PATH", help="a .json file or a folder outside the project (default: $AMEND_CHECKPOINT_DIR, "
                                                "else ~/.config/amend/checkpoints/PROJECT-ID/)")

    p = commands.add("role", cmd_role, "who may review and who leads (grant, revoke, close, reopen, show)")
    p.add_argument("action", choices=["grant", "revoke", "close", "reopen", "show"])
    p.add_argument("user", nargs="?", metavar="USER")
    p.add_argument("--role", choices=["reviewer", "lead"])
    p.add_argument("--by", metavar="LEAD", help="who does it (a lead, once the project has one)")
