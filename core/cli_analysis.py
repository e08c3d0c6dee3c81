"""`amend analyse`, `amend flags`, `amend slices`: evidence from the shell."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from core.cli_output import print_json


def cmd_analyse(args: argparse.Namespace, progress) -> int:
    from core.analyse import analyse
    from core.detect import DetectConfig
    from core.store.project import Project

    project = Project.open(args.project)
    config = DetectConfig(k=args.k, folds=args.folds, device=args.device, seed=args.seed)
    result = analyse(project, representation=args.representation, predictions=args.predictions, config=config,
                     with_slices=not args.no_slices, progress=progress)
    payload = result.to_json()
    if args.json:
        print_json(payload)
    else:
        print(
            f"run {payload['run_id']}: {payload['flagged']} of {payload['samples']} samples flagged by "
            f"{', '.join(payload['detectors'])} ({payload['seconds']:.1f} s)\n"
            f"see them with `amend flags {args.project} --top 20`"
        )
    return 0


def cmd_flags(args: argparse.Namespace, progress) -> int:
    from core.runs import flags, flags_as_records
    from core.store.project import Project

    project = Project.open(args.project)
    run, frame = flags(project, args.run, top=args.top)
    if args.flagged_only:
        frame = frame[frame["flagged"]]
    records = flags_as_records(frame)
    fmt = "json" if args.json else args.format
    if fmt == "json":
        print_json(records)
    elif fmt == "csv":
        rows = [
            {**{k: v for k, v in r.items() if k not in ("detectors", "support")},
             **{f"detector_{k}": v for k, v in r["detectors"].items()}, "support": " ".join(r["support"])}
            for r in records
        ]
        pd.DataFrame(rows).to_csv(sys.stdout, index=False)
    else:
        print(f"run {run.run_id} (representation {run.representation})")
        for r in records:
            mark = "FLAG" if r["flagged"] else "    "
            print(f"{r['rank']:>6} {mark} {r['score']:.3f}  {r['id']}  {r['current_label']} -> {r['suggested_label'] or '-'}")
    return 0


def cmd_slices(args: argparse.Namespace, progress) -> int:
    from core.runs import slices
    from core.store.project import Project

    project = Project.open(args.project)
    run, frame = slices(project, args.run)
    records = [
        {
            "slice_id": int(row.slice_id), "name": row.name, "size": int(row.size),
            "error_rate": round(float(row.error_rate), 6), "error_rate_whole": round(float(row.error_rate_whole), 6),
            "flag_rate": None if pd.isna(row.flag_rate) else round(float(row.flag_rate), 6),
            "p_value": float(row.p_value), "error_rank": int(row.error_rank),
            "members": list(row.members),
        }
        for row in frame.itertuples(index=False)
    ]
    if args.json or args.format == "json":
        print_json(records)
    else:
        print(f"run {run.run_id}: {len(records)} slices, worst first")
        for r in records:
            print(f"{r['error_rank']:>3}. slice {r['slice_id']:>3} ({r['size']} samples) error {r['error_rate']:.1%} "
                  f"vs {r['error_rate_whole']:.1%} overall, flagged {r['flag_rate'] or 0:.1%}: {r['name']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyse", aliases=["analyze"], help="run the detectors and slice discovery; record a run")
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--representation", metavar="REP", help="vectors to use (default: the most recent)")
    p.add_argument("--predictions", metavar="NAME", help="imported model probabilities to use")
    p.add_argument("--k", type=int, default=10, help="neighbours per sample (default 10)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds of the probe (default 5)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-slices", action="store_true", help="skip the map and slice discovery")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_analyse)

    p = sub.add_parser("flags", help="the ranked list of samples, most likely wrong first")
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--run", metavar="RUN", help="default: the latest run")
    p.add_argument("--top", type=int, metavar="N")
    p.add_argument("--flagged-only", action="store_true", help="only the flagged samples")
    p.add_argument("--format", choices=["csv", "json", "text"], default="text")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.set_defaults(handler=cmd_flags)

    p = sub.add_parser("slices", help="slices of the data ranked by error")
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--run", metavar="RUN")
    p.add_argument("--format", choices=["json", "text"], default="text")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.set_defaults(handler=cmd_slices)
