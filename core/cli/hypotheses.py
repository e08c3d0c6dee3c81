"""`amend hypotheses`: why did it fail? One hypothesis per failure from the user's model server,
clustered per dimension; the list, the reviews, the prompt versions and the targeted actions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.arguments import positive_int
from core.cli.output import output, tell
from core.errors import AmendError


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0 (got {value})")
    return value


def _generated_text(r: dict) -> str:
    dims = ", ".join(f"{d}: {v['clusters']} cluster{'' if v['clusters'] == 1 else 's'}"
                     for d, v in r["dimensions"].items())
    lines = [f"run {r['run_id']}: {r['generated']} explained, {r['failed']} failed, {r['skipped']} already done "
             f"({r['model']} on {r['server']}, prompt {r['prompt_version']}; {r['seconds']:.1f} s)"]
    if dims:
        lines.append(dims)
    for failure in r["failures"][:10]:
        lines.append(f"  failed {failure['id']}: {failure['reason']}")
    if len(r["failures"]) > 10:
        lines.append(f"  ... and {len(r['failures']) - 10} more (see --json)")
    return "\n".join(lines)


def _list_text(rows: list[dict]) -> str:
    if not rows:
        return "no hypotheses yet; make some with `amend hypotheses PROJECT --server URL --model NAME`"
    return "\n".join(f"{r['id']:>5}  {r['sample_id']}  {r['data_quality']:<20} cause[{r['clusters']['cause']}] "
                     f"fix[{r['clusters']['fix']}]  {r['cause']}" for r in rows)


def cmd_hypotheses(args: argparse.Namespace, progress) -> int:
    from core.hypotheses import prompts, review
    from core.store.project import Project

    project = Project.open(args.project)
    if args.publish_prompt:
        return _publish(args, project)
    if args.prompts:
        versions = [v.to_dict() for v in prompts.list_versions(project)]
        current = prompts.current(project).to_dict()
        output(args, {"versions": versions, "current": current},
               "\n".join(f"{v['version']}  {v['created_at']}  {v['author']}  sha256 {v['sha256'][:12]}  "
                         f"{', '.join(v['vocabulary'])}" for v in versions) or
               f"no prompt published; runs use the built-in {current['version']} (sha256 {current['sha256'][:12]})")
        return 0
    if args.review is not None:
        return _review(args, project)
    if args.send_to_triage:
        from core.review import identity

        selection = review.send_to_triage(project, created_by=args.reviewer or identity.os_user())
        output(args, {"selection_id": selection.selection_id, "name": selection.name, "samples": len(selection.ids),
                      "ids": selection.ids},
               f"selection {selection.selection_id} ({selection.name!r}): {len(selection.ids)} samples; "
               "pick it in the triage page's Selection filter")
        return 0
    if args.actions:
        rows = review.actions(project, top=args.top)
        if args.format == "csv" and not args.json:
            sys.stdout.write(review.actions_csv(rows))
            return 0
        output(args, rows, "\n".join(f"{a['rank']:>3}. [{a['kind']}] {a['action']}: {a['example']} "
                                     f"({a['hypotheses']} failures; {a['class_pairs']})" for a in rows)
               or "no fix clusters yet")
        return 0
    if args.list:
        output(args, review.listing(project), _list_text)
        return 0
    if args.recluster:
        from core.hypotheses.clusters import cluster_all

        dims = cluster_all(project, progress=progress)
        output(args, {"dimensions": dims}, ", ".join(f"{d}: {v['clusters']} clusters" for d, v in dims.items()))
        return 0
    if not args.server or not args.model:
        raise AmendError("say which model server to ask: --server URL --model NAME (or --list, --actions).")
    from core.hypotheses.generate import generate

    result = generate(project, args.server, args.model, api=args.api, failures=args.failures,
                      selection=args.selection, slice_id=args.slice, analysis_run=args.run, limit=args.limit,
                      concurrency=args.concurrency, timeout=args.timeout, temperature=args.temperature,
                      schema_style=args.schema_style, prompt_version=args.prompt_version,
                      cluster=not args.no_cluster, progress=progress)
    progress.close()
    output(args, result, _generated_text)
    return 0


def _publish(args: argparse.Namespace, project) -> int:
    from core.hypotheses import prompts
    from core.util import read_utf8

    source = Path(args.publish_prompt)
    if not source.is_file():
        raise AmendError(f"{source} does not exist; give the prompt as a text file.")
    if not args.version or not args.author:
        raise AmendError("--publish-prompt needs --version V and --author NAME.")
    vocabulary = [w.strip() for w in args.vocabulary.split(",")] if args.vocabulary else None
    record = prompts.publish(project, read_utf8(source, "prompt"), args.version, args.author, vocabulary=vocabulary)
    output(args, record.to_dict(), f"published prompt {record.version} (sha256 {record.sha256[:12]}…), "
                                   f"data_quality: {', '.join(record.vocabulary)}")
    return 0


def _review(args: argparse.Namespace, project) -> int:
    from core.hypotheses import review
    from core.review import identity

    if not args.verdict or not args.reviewer:
        raise AmendError("--review ID needs --verdict agree|disagree|skip and --reviewer NAME.")
    who = identity.os_user()
    event = review.review(project, args.review, args.verdict, args.reviewer, identity_source="cli", os_user=who,
                          note=args.note or "")
    output(args, {"event_id": event.event_id, "hypothesis_id": args.review, "verdict": args.verdict,
                  "reviewer": event.actor, "created_at": event.created_at},
           f"event {event.event_id}: {event.actor} {args.verdict}s with hypothesis {args.review}")
    tell(f"recorded as {event.actor} (claimed) by OS user {who}")
    return 0


def register(commands) -> None:
    from core.hypotheses import APIS, SCHEMA_STYLES, SOURCES, VERDICTS

    p = commands.add("hypotheses", cmd_hypotheses,
                     "why did it fail? hypotheses per failure from a local model server (Ollama / OpenAI-compatible), "
                     "clustered; list, review, actions")
    run = p.add_argument_group("asking a model server")
    run.add_argument("--server", help="the server's URL, e.g. http://127.0.0.1:11434 (Ollama), "
                                      "http://127.0.0.1:8080 (llama-server), http://127.0.0.1:8000 (vLLM)")
    run.add_argument("--model", help="the model's name on the server, e.g. qwen2.5vl:7b")
    run.add_argument("--api", choices=APIS, default="ollama", help="the server's dialect (default ollama)")
    run.add_argument("--failures", choices=SOURCES, default=None,
                     help="errors (default: the analysis' top class is not the given label) or flagged (the queue)")
    run.add_argument("--selection", help="only samples of this stored selection (name or number)")
    run.add_argument("--slice", type=int, help="only samples of this slice of the analysis")
    run.add_argument("--run", help="the analysis run (default the latest)")
    run.add_argument("--limit", type=positive_int, help="explain at most the first N failures (best-ranked first)")
    run.add_argument("--concurrency", type=positive_int, default=4, help="requests in flight at once (default 4)")
    run.add_argument("--timeout", type=_positive_seconds, default=120.0, help="seconds per answer (default 120)")
    run.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0)")
    run.add_argument("--schema-style", choices=SCHEMA_STYLES, default="json_schema",
                     help="OpenAI-compatible servers: json_schema (OpenAI, vLLM, current llama-server; default) or "
                          "json_object (llama.cpp's {type: json_object, schema} for older llama-server builds)")
    run.add_argument("--prompt-version", help="a published prompt version (default the latest, else the built-in)")
    run.add_argument("--no-cluster", action="store_true", help="do not cluster afterwards")
    read = p.add_argument_group("reading and reviewing")
    read.add_argument("--list", action="store_true", help="the hypotheses with their clusters")
    read.add_argument("--actions", action="store_true", help="the fix clusters as a ranked list of targeted actions")
    read.add_argument("--top", type=positive_int, help="with --actions: the first N")
    read.add_argument("--format", choices=("json", "csv", "text"), default="text",
                      help="json, csv (with --actions) or text (default)")
    read.add_argument("--recluster", action="store_true", help="cluster the free-text dimensions again")
    read.add_argument("--review", type=int, metavar="ID", help="record a verdict on hypothesis ID")
    read.add_argument("--verdict", choices=VERDICTS)
    read.add_argument("--reviewer", help="who reviews (recorded in the audit log)")
    read.add_argument("--note", help="with --review: a note recorded with the verdict")
    read.add_argument("--send-to-triage", action="store_true",
                      help="store the agreed annotation_issue samples as a selection for triage")
    prompt = p.add_argument_group("prompt versions")
    prompt.add_argument("--prompts", action="store_true", help="list the published prompt versions")
    prompt.add_argument("--publish-prompt", metavar="FILE", help="publish FILE as a new prompt version")
    prompt.add_argument("--version", dest="version", help="with --publish-prompt: the version's name")
    prompt.add_argument("--author", help="with --publish-prompt: who wrote it")
    prompt.add_argument("--vocabulary", help="with --publish-prompt: data_quality words, comma-separated")
