"""`amend decide`, `amend guideline`, `amend audit`, `amend role`: the decision trail from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli_output import emit
from core.errors import AmendError




def _read_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise AmendError(f"{path} does not exist; --ids takes a file with one sample id a line.")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def cmd_decide(args: argparse.Namespace, progress) -> int:
    from core import review
    from core.store.project import Project

    project = Project.open(args.project)
    if args.accept_suggested:
        from core.runs import accept_suggested

        if args.id or args.label or args.keep or args.ambiguous or args.exclude:
            raise AmendError("--accept-suggested decides many samples; do not combine it with --id or a decision.")
        ids = _read_ids(Path(args.ids)) if args.ids else None
        result = accept_suggested(
            project, reviewer=args.reviewer, top=args.top, ids=ids, reason=args.reason or "accepted suggestion",
            guideline_version=args.guideline, run_id=args.run,
        )
        payload = result.to_dict()
        payload["skipped_samples"] = [{"id": sid, "reason": why} for sid, why in result.skipped]
        emit(args, payload, f"decided {payload['decided']}, skipped {payload['skipped']}")
        return 0
    if not args.id:
        raise AmendError("say which sample: --id ID (or --accept-suggested for the flagged ones).")
    kinds = [k for k, on in (("relabel", args.label is not None), ("keep", args.keep), ("ambiguous", args.ambiguous), ("exclude", args.exclude)) if on]
    if len(kinds) != 1:
        raise AmendError("give exactly one decision: --label L, --keep, --ambiguous or --exclude.")
    event = review.decide(
        project, args.id, kinds[0], reviewer=args.reviewer, label=args.label, reason=args.reason or "",
        guideline_version=args.guideline, run_id=args.run, expected_event=args.expected_event,
        identity_source="cli",
    )
    payload = {
        "event_id": event.event_id, "sample_id": event.sample_id, "decision": kinds[0],
        "old_label": event.payload.get("old_label"), "new_label": event.payload.get("new_label"),
        "guideline_version": event.payload.get("guideline_version"), "created_at": event.created_at,
    }
    emit(args, payload, f"event {event.event_id}: {event.sample_id} {kinds[0]} "
          f"{payload['old_label']} -> {payload['new_label']}")
    return 0


def cmd_guideline(args: argparse.Namespace, progress) -> int:
    from core import guidelines
    from core.store.project import Project

    project = Project.open(args.project)
    if args.action == "publish":
        if not args.file or not args.version or not args.author:
            raise AmendError("publish needs FILE, --version V and --author NAME.")
        source = Path(args.file)
        if not source.is_file():
            raise AmendError(f"{source} does not exist; give the guideline as a markdown file.")
        classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
        record = guidelines.publish(project, source.read_text(encoding="utf-8"), args.version, args.author,
                                    classes=classes, identity_source="cli")
        emit(args, record.to_dict(), f"published {record.version} (sha256 {record.sha256[:12]}…), "
              f"touching {', '.join(record.classes) or 'no class'}")
        return 0
    if args.action == "list":
        versions = [v.to_dict() for v in guidelines.list_versions(project)]
        emit(args, {"versions": versions},
              "\n".join(f"{v['version']}  {v['published_at']}  {v['author']}  sha256 {v['sha256'][:12]}" for v in versions) or "no guideline published yet")
        return 0
    if args.action == "show":
        record = guidelines.get(project, args.version or guidelines.latest(project).version)
        emit(args, record.to_dict(with_text=True), record.text)
        return 0
    if args.action == "diff":
        if not args.version or not args.against:
            raise AmendError("diff needs --version V and --against OLD.")
        text = guidelines.diff(project, args.against, args.version)
        emit(args, {"from": args.against, "to": args.version, "diff": text}, text or "no difference")
        return 0
    raise AmendError(f"unknown guideline action {args.action!r}")


def cmd_audit_verify(args: argparse.Namespace, progress) -> int:
    from core import audit
    from core.store.project import Project

    result = audit.verify(Project.open(args.project), known_head=args.known_head)
    payload = result.to_dict()
    if result.ok:
        emit(args, payload, f"ok: {result.events} events, chain head {result.chain_head}")
        return 0
    emit(args, payload, f"BROKEN at event {result.first_bad_event}: {result.problem}")
    print(f"amend: error: the audit log is broken at event {result.first_bad_event}: {result.problem}", file=sys.stderr)
    return 1


def cmd_role(args: argparse.Namespace, progress) -> int:
    from core import roles
    from core.store.project import Project

    project = Project.open(args.project)
    if args.action != "show" and not args.by:
        raise AmendError(f"{args.action} needs --by NAME (a lead, once the project has one).")
    if args.action in ("grant", "revoke"):
        if not args.user or not args.role:
            raise AmendError(f"{args.action} needs USER and --role reviewer|lead.")
        event = getattr(roles, args.action)(project, args.user, args.role, by=args.by, identity_source="cli")
        emit(args, {"event_id": event.event_id, **roles.access(project).to_dict()}, f"event {event.event_id}: {args.action} {args.role} {args.user}")
    elif args.action in ("close", "reopen"):
        event = getattr(roles, args.action)(project, by=args.by, identity_source="cli")
        emit(args, {"event_id": event.event_id, **roles.access(project).to_dict()}, f"event {event.event_id}: project {args.action}d")
    else:
        state = roles.access(project).to_dict()
        emit(args, state, json.dumps(state, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decide", help="record a decision on a sample (or accept suggestions in bulk)")
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--id", metavar="ID")
    p.add_argument("--label", metavar="L", help="relabel to L")
    p.add_argument("--keep", action="store_true", help="the given label is correct")
    p.add_argument("--ambiguous", action="store_true", help="needs an expert or a guideline change")
    p.add_argument("--exclude", action="store_true", help="leave the sample out of training")
    p.add_argument("--accept-suggested", action="store_true", help="bulk: accept the suggested labels of flagged samples")
    p.add_argument("--top", type=int, metavar="N", help="with --accept-suggested: the N best-ranked flagged samples")
    p.add_argument("--ids", metavar="FILE", help="with --accept-suggested: only these ids (one a line)")
    p.add_argument("--run", metavar="RUN", help="the analysis run whose evidence was seen (default: the latest)")
    p.add_argument("--reviewer", required=True, metavar="NAME")
    p.add_argument("--reason", metavar="TEXT")
    p.add_argument("--guideline", metavar="VERSION", help="the guideline version followed (default: the latest)")
    p.add_argument("--expected-event", type=int, metavar="N",
                   help="the latest event on this sample you saw (0: none); a newer one makes this a conflict (exit 3)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_decide)

    p = sub.add_parser("guideline", help="versioned labelling guidelines: publish, list, show, diff")
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("action", choices=["publish", "list", "show", "diff"])
    p.add_argument("file", nargs="?", metavar="FILE", help="markdown file (publish)")
    p.add_argument("--version", metavar="V")
    p.add_argument("--against", metavar="OLD", help="diff: the older version")
    p.add_argument("--author", metavar="NAME")
    p.add_argument("--classes", metavar="a,b", help="publish: the classes this version touches (default: read from headings)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_guideline)

    p = sub.add_parser("audit", help="the audit log")
    asub = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    q = asub.add_parser("verify", help="recompute the hash chain and name the first bad event")
    q.add_argument("project", metavar="PROJECT")
    q.add_argument("--known-head", metavar="HASH", help="a chain head recorded earlier (e.g. in an export manifest)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=cmd_audit_verify)

    p = sub.add_parser("role", help="who may review and who leads (grant, revoke, close, reopen, show)")
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("action", choices=["grant", "revoke", "close", "reopen", "show"])
    p.add_argument("user", nargs="?", metavar="USER")
    p.add_argument("--role", choices=["reviewer", "lead"])
    p.add_argument("--by", metavar="LEAD", help="who does it (a lead, once the project has one)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_role)
