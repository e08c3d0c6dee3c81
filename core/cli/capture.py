"""`amend capture list`: the training runs captured into a project (:mod:`core.capture`)."""

from __future__ import annotations

import argparse

from core.cli.output import output


def cmd_capture_list(args: argparse.Namespace, progress) -> int:
    from core.capture.store import capture_runs
    from core.store.project import Project

    project = Project.open(args.project)
    records = [run.to_json(project.path) for run in capture_runs(project)]

    def text(rows: list[dict]) -> str:
        if not rows:
            return (f"no captured runs in {args.project}; capture one with core.capture.watch and "
                    "core.capture.session (README, 'Capture your own model')")
        lines = []
        for r in rows:
            splits = ", ".join(f"{split}: epochs {s['epochs'][0]}-{s['epochs'][-1]} ({s['samples_last_epoch']} samples)"
                               for split, s in r["splits"].items())
            layers = ", ".join(f"{name} ({path})" for name, path in r["layers"].items()) or "logits only"
            lines.append(f"{r['run']}  {r['model_class']}  layers: {layers}  {splits}")
        lines.append(f"analyse with `amend analyse {args.project} --capture RUN`")
        return "\n".join(lines)

    output(args, records, text)
    return 0


def register(commands) -> None:
    """Add `capture list` to the `amend` parser."""
    commands.group("capture", "training runs captured from your own model").add(
        "list", cmd_capture_list, "the captured runs: model, layers, splits and complete epochs")
