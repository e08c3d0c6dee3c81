"""`amend analyse`, `amend flags`, `amend slices`, `amend groups`: evidence from the shell."""

from __future__ import annotations

import argparse

from core.cli.output import output, tell
from core.cli.arguments import fold_count, positive_int, share


def cmd_analyse(args: argparse.Namespace, progress) -> int:
    from core.analysis.run import analyse
    from core.detect import DetectConfig
    from core.store.project import Project
    from core.views.words import expected_wrong

    project = Project.open(args.project)
    config = DetectConfig(k=args.k, folds=args.folds, device=args.device, seed=args.seed)
    result = analyse(project, representation=args.representation, predictions=args.predictions, config=config,
                     with_slices=not args.no_slices, progress=progress, captures=args.capture)
    output(args, result.to_json(), lambda r: (
        f"run {r['run_id']}: {r['flagged']} of {r['samples']} samples flagged{expected_wrong(r)} by "
        f"{', '.join(r['detectors'])} ({r['seconds']:.1f} s)\n"
        f"see them with `amend flags {args.project} --top 20`" + _groups_hint(r, args.project)
        + _habits_lines(r, args.project)
    ))
    return 0


def _habits_lines(run: dict, project: str) -> str:
    """One line per annotator habit: the confusion one annotator makes far more than the others."""
    habits = run.get("annotator_habits") or []
    return "".join(f"\nannotator habit: {h['sentence']}; {h['samples']} samples (their ids: `amend groups "
                   f"{project} --annotators`; the overview sends them to triage as one group)" for h in habits)


def _groups_hint(run: dict, project: str) -> str:
    """A line pointing at `amend groups` when some metadata value holds more wrong labels than chance."""
    passing = run.get("metadata_groups_passing") or 0
    if not passing:
        return ""
    values = "value holds" if passing == 1 else "values hold"
    return f"\n{passing} metadata {values} more wrong labels than chance: see `amend groups {project}`"


def _flags_csv(records: list[dict]) -> str:
    """The ranked list as CSV, with formula-like cells (a crafted id or label) made inert for
    spreadsheets; a note on stderr says how many, so stdout stays the CSV."""
    import pandas as pd

    from core.csvsafe import neutralise_frame

    rows = [
        {**{k: v for k, v in r.items() if k not in ("detectors", "support")},
         **{f"detector_{k}": v for k, v in r["detectors"].items()}, "support": " ".join(r["support"])}
        for r in records
    ]
    frame, neutralised = neutralise_frame(pd.DataFrame(rows))
    if neutralised:
        tell(f"amend: note: {neutralised} CSV cell(s) starting with =, +, -, @, a tab or a carriage return got a "
             "leading ' so spreadsheets show them as text; --format json keeps them verbatim.")
    return frame.to_csv(index=False)


def cmd_flags(args: argparse.Namespace, progress) -> int:
    from core.analysis.runs import flags, flags_as_records
    from core.store.project import Project

    project = Project.open(args.project)
    run, frame = flags(project, args.run, top=args.top, min_precision=args.min_precision)
    if args.flagged_only:
        frame = frame[frame["flagged"]]
    records = flags_as_records(frame)
    if args.format == "csv":
        output(args, records, _flags_csv)
        return 0
    lines = [f"run {run.run_id} (representation {run.representation})"]
    for r in records:
        mark = "FLAG" if r["flagged"] else "    "
        wrong = "" if r["error_probability"] is None else f"  P(wrong) {r['error_probability']:.2f}"
        lines.append(f"{r['rank']:>6} {mark} {r['score']:.3f}  {r['id']}  {r['current_label']} -> "
                     f"{r['suggested_label'] or '-'}{wrong}")
    output(args, records, "\n".join(lines))
    return 0


def _slice_records(frame) -> list[dict]:
    return [
        {
            "slice_id": int(row.slice_id), "name": row.name, "size": int(row.size),
            "error_rate": round(float(row.error_rate), 6), "error_rate_whole": round(float(row.error_rate_whole), 6),
            "flag_rate": _number(row.flag_rate),
            "p_value": float(row.p_value), "error_rank": int(row.error_rank),
            "error_score": round(float(row.error_score), 6),
            # more unexpected errors than the model explains (stored runs of any version have the score)
            "error_slice": bool(float(row.error_score) > 0),
            # the structured-error detector found a labelling error many of its samples share (such
            # slices lead the ranking); absent in runs of an earlier Amend
            "structured_error": bool(getattr(row, "structured_error", False)),
            # absent in runs of an earlier Amend
            "confusion_share": _number(getattr(row, "confusion_share", None)),
            "members": list(row.members),
            "finding": _finding(getattr(row, "finding", None)),
        }
        for row in frame.itertuples(index=False)
    ]


def _number(value) -> float | None:
    import pandas as pd

    return None if value is None or pd.isna(value) else round(float(value), 6)


def _finding(value) -> dict | None:
    """The slice's structured finding (stored as JSON text; absent in runs of an earlier Amend)."""
    import json

    if not isinstance(value, str):
        return None
    return json.loads(value)


def cmd_slices(args: argparse.Namespace, progress) -> int:
    from core.store.project import Project
    from core.analysis.runs import slices

    project = Project.open(args.project)
    run, frame = slices(project, args.run)
    records = _slice_records(frame)
    lines = [f"run {run.run_id}: {len(records)} slices, worst first"]
    for r in records:
        lines.append(f"{r['error_rank']:>3}. slice {r['slice_id']:>3} ({r['size']} samples) error {r['error_rate']:.1%} "
                     f"vs {r['error_rate_whole']:.1%} overall, flagged {r['flag_rate'] or 0:.1%}: {r['name']}"
                     + (f"\n       {'structured error' if r['structured_error'] else 'finding'}: "
                        f"{r['finding']['sentence']}" if r["finding"] else ""))
    output(args, records, "\n".join(lines))
    return 0


def _group_line(g: dict) -> str:
    mark = "*" if g["significant"] else " "
    line = (f"{mark} {g['column']} = {g['value']}: {g['size']} labels, about {g['expected_wrong']:.1f} wrong "
            f"({g['wrong_rate']:.1%} vs {g['wrong_rate_rest']:.1%} elsewhere, z {g['z']:.1f})")
    confusion = g.get("confusion")
    if confusion:
        line += (f"; {confusion['count']} '{confusion['label']}' look like '{confusion['looks_like']}' "
                 f"(p {confusion['p_value']:.2g})")
    line += f"; p adjusted {g['p_adjusted']:.2g}"
    return line + (f"\n    finding: {g['finding']['sentence']}" if g.get("finding") else "")


def cmd_groups(args: argparse.Namespace, progress) -> int:
    from core.store.project import Project
    from core.analysis.runs import annotator_habits, metadata_groups

    project = Project.open(args.project)
    if args.annotators:
        run, habits = annotator_habits(project, args.run)
        text = "\n".join([f"run {run.run_id}: {len(habits)} annotator habit(s)"] + [
            f"{h['sentence']}; {len(h['members'])} samples: {', '.join(h['members'][:5])}"
            + (", ..." if len(h["members"]) > 5 else "") for h in habits])
        output(args, habits, text)
        return 0
    run, groups = metadata_groups(project, args.run)
    if not groups:
        text = f"run {run.run_id}: no metadata values to compare (no metadata, no probabilities, or an earlier run)"
    else:
        passing = sum(g["significant"] for g in groups)
        text = "\n".join([f"run {run.run_id}: {len(groups)} metadata values, {passing} with more wrong labels "
                          "than chance (*), worst first"] + [_group_line(g) for g in groups])
    output(args, groups, text)
    return 0


def register(commands) -> None:
    """Add `analyse`, `flags`, `slices` and `groups` to the `amend` parser."""
    p = commands.add("analyse", cmd_analyse, "run the detectors and slice discovery; record a run", aliases=["analyze"])
    p.add_argument("--representation", metavar="REP", help="vectors to use (default: the most recent)")
    p.add_argument("--predictions", metavar="NAME", help="imported model probabilities to use")
    p.add_argument("--capture", action="append", default=[], metavar="RUN",
                   help="a training run captured with core.capture: its training dynamics and held-out "
                        "predictions join the evidence (repeat for several runs, aggregated)")
    p.add_argument("--k", type=positive_int, default=10, help="neighbours per sample (default 10)")
    p.add_argument("--folds", type=fold_count, default=5, help="cross-validation folds of the probe (default 5)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-slices", action="store_true", help="skip the map and slice discovery")

    p = commands.add("flags", cmd_flags, "the ranked list of samples, most likely wrong first")
    p.add_argument("--run", metavar="RUN", help="default: the latest run")
    p.add_argument("--top", type=positive_int, metavar="N")
    p.add_argument("--flagged-only", action="store_true", help="only the flagged samples")
    p.add_argument("--min-precision", type=share, metavar="P",
                   help="only the best flagged samples whose expected precision (mean estimated "
                        "probability of being wrong) is at least P, e.g. 0.8")
    p.add_argument("--format", choices=["csv", "json", "text"], default="text", help="--json is --format json")

    p = commands.add("slices", cmd_slices, "slices of the data ranked by error")
    p.add_argument("--run", metavar="RUN")
    p.add_argument("--format", choices=["json", "text"], default="text", help="--json is --format json")

    p = commands.add("groups", cmd_groups, "wrong labels by metadata value (annotator, site, batch...), worst first")
    p.add_argument("--run", metavar="RUN")
    p.add_argument("--annotators", action="store_true",
                   help="instead: each annotator's habit (a confusion they make far more often than the others), "
                        "with the ids of its samples")
    p.add_argument("--format", choices=["json", "text"], default="text", help="--json is --format json")
