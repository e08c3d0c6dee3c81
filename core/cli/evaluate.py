"""`amend compare` and `amend export`: prove the fix, hand it over."""

from __future__ import annotations

import argparse

from core.cli.arguments import fold_count
from core.cli.output import output
from core.errors import AmendError


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _compare_text(payload: dict) -> str:
    from core.evaluate.compare import interval_sentence  # lazy: `amend --help` stays fast

    what = payload["what"]
    lines = [
        f"before: {what['before']['description']} -> accuracy {_pct(payload['before']['accuracy'])}, "
        f"macro-F1 {_pct(payload['before']['macro_f1'])}",
        f"after:  {what['after']['description']} -> accuracy {_pct(payload['after']['accuracy'])}, "
        f"macro-F1 {_pct(payload['after']['macro_f1'])}",
    ]
    if payload.get("accuracy_difference"):
        lines.append(interval_sentence(payload["accuracy_difference"]))
    if "clean" in payload:
        lines.append(f"clean:  {what['clean']['labels']} -> accuracy {_pct(payload['clean']['accuracy'])}; "
                     f"share of the loss recovered {_pct(payload['recovered_share'])}")
    lines.append(f"evaluated on {what['evaluation']['method']}; labels: {what['evaluation']['labels']}")
    lines.append(f"model: {what['model']['kind']} on {what['representation']['name']} ({what['representation']['model']})")
    if payload["per_slice"]:
        lines.append(f"per slice (run {what['run_id']}), most changed first:")
        ordered = sorted(payload["per_slice"], key=lambda r: -abs(r["difference"] or 0))
        for r in ordered:
            extra = f", clean {_pct(r.get('clean'))}" if "clean" in r else ""
            lines.append(f"  slice {r['slice_id']:>3} ({r['n_eval']} evaluated) {_pct(r['before'])} -> {_pct(r['after'])} "
                         f"({'+' if (r['difference'] or 0) >= 0 else ''}{(r['difference'] or 0) * 100:.1f} pts{extra}): {r['name']}")
    for note in payload["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def cmd_compare(args: argparse.Namespace, progress) -> int:
    from core.evaluate.compare import compare, read_reference
    from core.store.project import Project

    project = Project.open(args.project)
    reference = None
    if args.reference:
        reference = read_reference(args.reference, column=args.reference_column, id_column=args.reference_id_column)
    elif args.reference_column != "clean_label" or args.reference_id_column != "id":
        raise AmendError("--reference-column / --reference-id-column need --reference FILE.")
    result = compare(
        project, labels_a=args.labels_a, labels_b=args.labels_b, representation=args.representation,
        eval_split=args.eval_split, run_id=args.run, reference=reference,
        reference_name=args.reference or "reference", folds=args.folds, seed=args.seed, device=args.device,
    )
    output(args, result.to_json(), _compare_text)
    return 0


def _export_text(payload: dict) -> str:
    from core.csvsafe import EXPLANATION

    text = (f"exported {payload['rows']} samples ({payload['changed']} changed, {payload['excluded']} excluded) "
            f"and {payload['trail_events']} events: {', '.join(payload['files'])}\n"
            f"chain head {payload['chain_head']}\n"
            f"re-import with: {payload['reimport']}")
    if payload.get("csv_formula_cells_neutralised"):
        text += f"\n{payload['csv_formula_cells_neutralised']} CSV cell(s) neutralised: {EXPLANATION}"
    return text


def cmd_export(args: argparse.Namespace, progress) -> int:
    from core.export import export
    from core.store.project import Project

    project = Project.open(args.project)
    bundle = export(project, args.out, fmt=args.format, as_of=args.as_of, guideline_version=args.guideline,
                    up_to_event=args.up_to_event, progress=progress)
    output(args, bundle.to_json(), _export_text)
    return 0


def register(commands) -> None:
    """Add `compare` and `export` to the `amend` parser."""
    p = commands.add("compare", cmd_compare,
                     "train the probe on labels A and on labels B; compare overall, per class, per slice")
    p.add_argument("--representation", metavar="REP", help="vectors to train on (default: the most recent)")
    p.add_argument("--eval-split", metavar="S",
                   help="split to evaluate on (default: test when present, else cross-validation; 'cv' forces it)")
    p.add_argument("--labels-a", default="given", metavar="SET",
                   help="'before': given | current | as-of:TIME | guideline:V | event:N | predictions:NAME (default given)")
    p.add_argument("--labels-b", default="current", metavar="SET", help="'after', same forms (default current)")
    p.add_argument("--run", metavar="RUN", help="analysis run whose slices to report (default: latest on REP)")
    p.add_argument("--reference", metavar="FILE", help="clean labels (CSV/Parquet/JSONL: id + label column) of a benchmark")
    p.add_argument("--reference-column", default="clean_label", metavar="C", help="label column of --reference (default clean_label)")
    p.add_argument("--reference-id-column", default="id", metavar="C", help="id column of --reference (default id)")
    p.add_argument("--folds", type=fold_count, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])

    p = commands.add("export", cmd_export, "write the audited labels + their trail + a manifest")
    p.add_argument("out", metavar="OUT", help="labels file (.parquet, .csv, .jsonl) or an existing folder")
    p.add_argument("--format", choices=["parquet", "csv", "jsonl"], help="default: from OUT's suffix")
    p.add_argument("--as-of", metavar="TIME", help="labels as of this ISO time (default now)")
    p.add_argument("--guideline", metavar="VERSION", help="labels when this guideline version was superseded")
    p.add_argument("--up-to-event", type=int, metavar="N", help="labels after event N")
