"""`amend init`, `amend ingest` and `amend upgrade`: a project, its samples and its schema."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from core.cli.output import output
from core.errors import AmendError


def _split_list(value: Optional[str]) -> Optional[list[str]]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _ingest_options(args: argparse.Namespace):
    from core.ingest import IngestOptions

    return IngestOptions(
        images=Path(args.images) if args.images else None,
        manifest=Path(args.manifest) if args.manifest else None,
        texts=Path(args.texts) if args.texts else None,
        root=Path(args.root) if args.root else None,
        label_column=args.label_column,
        text_column=args.text_column,
        path_column=args.path_column,
        id_column=args.id_column,
        split_column=args.split_column,
        labels=_split_list(args.labels),
        encoding=args.encoding,
        annotator_columns=_split_list(args.annotator_columns),
    )


def _ingest_text(report: dict) -> str:
    lines = [
        f"taken {report['taken']}, unchanged {report.get('unchanged', 0)}, rejected {report['rejected']}",
        f"labels: {', '.join(report['labels'])}",
    ]
    if report["rejects"]:
        lines.append("rejected rows (row, id, reason):")
        for reject in report["rejects"][:50]:
            detail = f" — {reject['detail']}" if reject.get("detail") else ""
            lines.append(f"  row {reject['row']}, id {reject['id']}: {reject['reason']}{detail}")
        if len(report["rejects"]) > 50:
            lines.append(f"  ... and {len(report['rejects']) - 50} more (use --json for all)")
    return "\n".join(lines)


def cmd_init(args: argparse.Namespace, progress) -> int:
    from core.ingest import ingest
    from core.store.project import Project

    options = _ingest_options(args)  # validate the source before creating anything
    if not (options.images or options.manifest or options.texts):
        raise AmendError("say what to ingest: --images DIR, --manifest FILE or --texts FILE.")
    source = options.images or options.manifest or options.texts
    if not Path(source).exists():
        raise AmendError(f"{source} does not exist; check the path of the data to ingest.")
    data = _data_location(args)
    # All or nothing: a source refused, or one that gives no sample, leaves no project folder (and
    # no tables at --data), so the same command can be run again once the input is fixed.
    with Project.creating(Path(args.project), data) as project:
        report = ingest(project, options, progress=progress)
        if report.taken == 0:
            raise AmendError(_nothing_taken(source, report))
    output(args, report.to_json(), _ingest_text)
    return 0


def _data_location(args: argparse.Namespace):
    """Where init puts the LanceDB tables: None for the project folder, else the --data location."""
    from core.store.location import DataLocation

    if args.data is None:
        if args.storage_option:
            raise AmendError("--storage-option applies to tables on object storage: give --data URI with it.")
        return None
    return DataLocation.parse(args.data, args.storage_option or ())


def _nothing_taken(source, report) -> str:
    """The one line for an init that would make an empty project: why the rows were refused."""
    if not report.rejects:
        return f"{source} gave no samples; no project was created."
    reasons: dict[str, int] = {}
    for reject in report.rejects:
        reasons[reject["reason"]] = reasons.get(reject["reason"], 0) + 1
    first = report.rejects[0]
    counted = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items(), key=lambda item: -item[1]))
    return (f"no sample of {source} could be taken ({report.rejected} rejected: {counted}; first: row {first['row']}: "
            f"{first.get('detail') or first['reason']}); no project was created. Fix the source and run init again.")


def cmd_ingest(args: argparse.Namespace, progress) -> int:
    from core.ingest import ingest
    from core.store.project import Project

    project = Project.open(args.project)
    report = ingest(project, _ingest_options(args), progress=progress)
    output(args, report.to_json(), _ingest_text)
    return 0


def _upgrade_text(report: dict) -> str:
    if not report["upgraded"]:
        return f"{report['project']} is at schema {report['to_version']} already; nothing to do."
    log = report["log"]
    lines = [f"upgraded {report['project']} from schema {report['from_version']} to {report['to_version']}:"]
    lines += [f"  - {change}" for change in report["changes"]]
    lines.append(f"review log: {log['events']} events, chain {'intact' if log['ok'] else 'NOT intact'} "
                 f"(head {log['chain_head']})")
    return "\n".join(lines)


def cmd_upgrade(args: argparse.Namespace, progress) -> int:
    from core.api import upgrade

    output(args, upgrade(Path(args.project)), _upgrade_text)
    return 0


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--images", metavar="DIR", help="image class folders: DIR/<label>/<file>")
    source.add_argument("--manifest", metavar="FILE", help="CSV or Parquet with path,label (+ id, split, metadata)")
    source.add_argument("--texts", metavar="FILE", help="CSV, JSONL or Parquet with text,label (+ id, split, metadata)")
    parser.add_argument("--root", metavar="DIR", help="folder the manifest's paths are relative to (default: the manifest's folder)")
    parser.add_argument("--label-column", default="label", metavar="C")
    parser.add_argument("--text-column", default="text", metavar="C")
    parser.add_argument("--path-column", default="path", metavar="C")
    parser.add_argument("--id-column", default="id", metavar="C", help="used when present; otherwise ids are generated")
    parser.add_argument("--split-column", default="split", metavar="C")
    parser.add_argument("--labels", metavar="a,b,c", help="declared label set: rows with other labels are rejected")
    parser.add_argument("--encoding", default="utf-8", help="declared text encoding of CSV/JSONL sources (default utf-8)")
    parser.add_argument(
        "--annotator-columns", metavar="C1,C2", help="further label columns, one per annotator (multi-annotator data)"
    )


def register(commands) -> None:
    """Add `init` and `ingest` to the `amend` parser."""
    init = commands.add("init", cmd_init, "create a project and ingest a dataset into it")
    _add_source_arguments(init)
    init.add_argument(
        "--data", metavar="URI",
        help="keep the LanceDB tables at this object-storage URI (s3://bucket/prefix; gs:// and az:// also work) "
             "instead of the project folder; credentials come from the environment (AWS_ACCESS_KEY_ID, "
             "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION; AWS_ALLOW_HTTP=true for a plain-HTTP endpoint)",
    )
    init.add_argument(
        "--storage-option", action="append", metavar="KEY=VALUE",
        help="a Lance storage option for --data, kept with the project (repeatable; e.g. aws_region=eu-west-1); "
             "credentials are refused here: they are read from the environment at every open",
    )
    _add_source_arguments(commands.add("ingest", cmd_ingest, "add more samples to an existing project"))
    commands.add("upgrade", cmd_upgrade, "migrate a project written by an earlier Amend (log and chain intact)")
