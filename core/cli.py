"""The ``amend`` command. The contract (names, exit codes, --json outputs) is ../shared/CLI.md.

Exit codes: 0 success, 1 user error (one line on stderr), 3 conflict. ``--json`` prints exactly one
JSON object on stdout; progress bars go to stderr and only appear for steps longer than a second.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from core.cli_output import emit
from core.errors import AmendError

logger = logging.getLogger("amend")


# ---------------------------------------------------------------- progress on stderr
class _StderrProgress:
    """A tqdm bar per step on stderr, drawn only once a step has run for a second."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bars: dict[str, Any] = {}

    def __call__(self, step: str, done: int, total: Optional[int]) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self.bars.get(step)
        if bar is None:
            # disable=None: no bar when stderr is not a terminal (logs, CI), so it never floods them.
            bar = tqdm(total=total, desc=step, file=sys.stderr, delay=1.0, leave=False, unit="it",
                       disable=None, position=len(self.bars))
            self.bars[step] = bar
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()




# ---------------------------------------------------------------- ingest / init
def _ingest_options(args: argparse.Namespace):
    from core.ingest import IngestOptions

    def split_list(value: Optional[str]) -> Optional[list[str]]:
        return [v.strip() for v in value.split(",") if v.strip()] if value else None

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
        labels=split_list(args.labels),
        encoding=args.encoding,
        annotator_columns=split_list(args.annotator_columns),
    )


def _ingest_human(report: dict) -> str:
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


def cmd_init(args: argparse.Namespace, progress: _StderrProgress) -> int:
    from core.ingest import ingest
    from core.store.project import Project

    options = _ingest_options(args)  # validate the source before creating anything
    if not (options.images or options.manifest or options.texts):
        raise AmendError("say what to ingest: --images DIR, --manifest FILE or --texts FILE.")
    target = Path(args.project)
    source = options.images or options.manifest or options.texts
    if not Path(source).exists():
        raise AmendError(f"{source} does not exist; check the path of the data to ingest.")
    project = Project.create(target)
    report = ingest(project, options, progress=progress)
    emit(args, report.to_json(), _ingest_human)
    return 0


def cmd_ingest(args: argparse.Namespace, progress: _StderrProgress) -> int:
    from core.ingest import ingest
    from core.store.project import Project

    project = Project.open(args.project)
    report = ingest(project, _ingest_options(args), progress=progress)
    emit(args, report.to_json(), _ingest_human)
    return 0


# ---------------------------------------------------------------- embed / imports
def cmd_embed(args: argparse.Namespace, progress: _StderrProgress) -> int:
    from core.embed.pipeline import EmbedOptions, embed
    from core.store.project import Project

    project = Project.open(args.project)
    options = EmbedOptions(
        name=args.name,
        model=args.model,
        pretrained=args.pretrained,
        checkpoint=args.checkpoint,
        embedder=args.embedder,
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.workers,
    )
    report = embed(project, options, progress=progress)
    if report.fallback_message:
        # Said plainly, whatever the output format: the vectors are not from the model asked for.
        print(f"amend: note: {report.fallback_message}", file=sys.stderr)
    emit(
        args,
        report.to_json(),
        lambda r: (
            f"representation {r['representation']}: embedded {r['embedded']}, skipped {r['skipped']} "
            f"({r['dim']}-d, {r['model']} on {r['device']}, {r['seconds']:.1f} s)"
            + (f"\nfailed {len(r['failed'])}: " + "; ".join(f"{f['id']}: {f['reason']}" for f in r["failed"][:20]) if r.get("failed") else "")
        ),
    )
    return 0


def cmd_vectors_import(args: argparse.Namespace, progress: _StderrProgress) -> int:
    from core.imports import import_vectors
    from core.store.project import Project

    project = Project.open(args.project)
    result = import_vectors(project, Path(args.file), name=args.name, ids_file=Path(args.ids) if args.ids else None)
    emit(args, result, lambda r: f"imported {r['imported']} vectors ({r['dim']}-d) as representation {r['representation']}")
    return 0


def cmd_predictions_import(args: argparse.Namespace, progress: _StderrProgress) -> int:
    from core.imports import import_predictions
    from core.store.project import Project

    project = Project.open(args.project)
    result = import_predictions(
        project, Path(args.file), ids_file=Path(args.ids) if args.ids else None, name=args.name
    )
    emit(args, result, lambda r: f"imported predictions {r.get('name', '')} for {r['imported']} samples over {len(r['classes'])} classes")
    return 0


# ---------------------------------------------------------------- upgrade
def _upgrade_human(report: dict) -> str:
    if not report["upgraded"]:
        return f"{report['project']} is at schema {report['to_version']} already; nothing to do."
    log = report["log"]
    lines = [f"upgraded {report['project']} from schema {report['from_version']} to {report['to_version']}:"]
    lines += [f"  - {change}" for change in report["changes"]]
    lines.append(f"review log: {log['events']} events, chain {'intact' if log['ok'] else 'NOT intact'} "
                 f"(head {log['chain_head']})")
    return "\n".join(lines)


def cmd_upgrade(args: argparse.Namespace, progress: _StderrProgress) -> int:
    from core.api import upgrade

    emit(args, upgrade(Path(args.project)), _upgrade_human)
    return 0


# ---------------------------------------------------------------- app / demo
def _app_script() -> Path:
    script = Path(__file__).resolve().parents[1] / "app.py"
    if not script.is_file():
        raise AmendError(
            f"the app's entry point {script} is missing; install Amend from its source folder with `pip install -e .`."
        )
    return script


# Streamlit routes a session that arrives on a deep link (/triage) before any session has run
# app.py through its legacy pages/ folder mode, running pages/triage.py without app.py's
# navigation and sidebar. app.py always uses st.navigation, so the launcher switches that legacy
# mode off before the server starts (Streamlit does the same itself once st.navigation has run).
_STREAMLIT_LAUNCHER = (
    "import sys\n"
    "try:\n"
    "    from streamlit.runtime.pages_manager import PagesManager\n"
    "    PagesManager.uses_pages_directory = False\n"
    "except (ImportError, AttributeError):\n"
    "    pass\n"
    "from streamlit.web.cli import main\n"
    "sys.argv = ['streamlit', *sys.argv[1:]]\n"
    "sys.exit(main())\n"
)


def start_app(projects: Sequence[Path], host: str, port: int) -> int:
    """Run Streamlit on app.py with the given projects (blocking)."""
    for project in projects:
        from core.store.project import Project

        Project.open(project)  # fail here, clearly, rather than inside the browser
    env = dict(os.environ, AMEND_PROJECTS=os.pathsep.join(str(Path(p).resolve()) for p in projects))
    command = [
        sys.executable, "-c", _STREAMLIT_LAUNCHER, "run", str(_app_script()),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]
    print(f"Amend is starting at http://{host}:{port}  (Ctrl+C stops it)", file=sys.stderr)
    sys.stderr.flush()
    # Become the server (no child process): stopping `amend app` stops Streamlit with it.
    os.execve(sys.executable, command, env)
    return 0  # not reached


def cmd_app(args: argparse.Namespace, progress: _StderrProgress) -> int:
    return start_app([Path(p) for p in args.project], args.host, args.port)


def cmd_demo(args: argparse.Namespace, progress: _StderrProgress) -> int:
    from core.demo import prepare_sample_projects

    projects = prepare_sample_projects(Path(args.dir), progress=progress, log=lambda m: print(m, file=sys.stderr))
    progress.close()
    if args.no_app:
        emit(args, {"projects": [str(p) for p in projects]}, lambda r: "\n".join(r["projects"]))
        return 0
    return start_app(projects, args.host, args.port)


# ---------------------------------------------------------------- parser
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
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def build_parser() -> argparse.ArgumentParser:
    from core import __version__

    parser = argparse.ArgumentParser(prog="amend", description="Find and fix wrong labels, with an audit trail.")
    parser.add_argument("--version", action="version", version=f"amend {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="create a project and ingest a dataset into it")
    p.add_argument("project", metavar="PROJECT")
    _add_source_arguments(p)
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("ingest", help="add more samples to an existing project")
    p.add_argument("project", metavar="PROJECT")
    _add_source_arguments(p)
    p.set_defaults(handler=cmd_ingest)

    p = sub.add_parser("embed", help="embed every sample not yet embedded into a representation")
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--model", help="OpenCLIP model name (default ViT-B-32)")
    p.add_argument("--pretrained", metavar="TAG", help="OpenCLIP pretrained tag (default laion2b_s34b_b79k)")
    p.add_argument("--checkpoint", metavar="PATH", help="local OpenCLIP weights for --model")
    p.add_argument("--embedder", choices=["openclip", "offline"], help="'offline': the bundled EfficientNet-Lite0 / MiniLM models")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=int, metavar="N")
    p.add_argument("--workers", type=int, metavar="N", help="image decoding workers (default: by device)")
    p.add_argument("--name", metavar="REP", help="representation name (default: from the model)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_embed)

    p = sub.add_parser("vectors", help="bring your own vectors")
    vsub = p.add_subparsers(dest="vectors_command", required=True, metavar="ACTION")
    q = vsub.add_parser("import", help="import vectors (.npy with --ids, or Parquet id + vector)")
    q.add_argument("project", metavar="PROJECT")
    q.add_argument("file", metavar="FILE")
    q.add_argument("--name", required=True, metavar="REP")
    q.add_argument("--ids", metavar="FILE", help="one sample id a line, in the .npy's row order")
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=cmd_vectors_import)

    p = sub.add_parser("predictions", help="bring your own model's probabilities")
    psub = p.add_subparsers(dest="predictions_command", required=True, metavar="ACTION")
    q = psub.add_parser("import", help="import probabilities (.npy N x classes with --ids, or Parquet id + one column per label)")
    q.add_argument("project", metavar="PROJECT")
    q.add_argument("file", metavar="FILE")
    q.add_argument("--ids", metavar="FILE")
    q.add_argument("--name", default="default", metavar="NAME")
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=cmd_predictions_import)

    p = sub.add_parser("upgrade", help="migrate a project written by an earlier Amend (log and chain intact)")
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=cmd_upgrade)

    p = sub.add_parser("app", help="start the Streamlit app on one or more projects")
    p.add_argument("project", metavar="PROJECT", nargs="+")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(handler=cmd_app)

    p = sub.add_parser("demo", help="build the sample projects from sample_data/ and start the app on them")
    p.add_argument("--dir", default=".amend", help="where the sample projects live (default .amend)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--no-app", action="store_true", help="only prepare the projects")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_demo)

    _register_later_commands(sub)
    return parser


def _register_later_commands(sub: argparse._SubParsersAction) -> None:
    """The analysis and review commands live in their own modules (imported lazily by handlers)."""
    from core import cli_analysis, cli_compare, cli_review

    cli_analysis.register(sub)
    cli_review.register(sub)
    cli_compare.register(sub)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="amend: %(levelname)s: %(message)s")
    progress = _StderrProgress(enabled=True)
    try:
        return int(args.handler(args, progress) or 0)
    except AmendError as exc:
        progress.close()
        print(f"amend: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        progress.close()
        print("amend: interrupted; finished batches are kept and the next run resumes.", file=sys.stderr)
        return 130
    finally:
        progress.close()


if __name__ == "__main__":
    sys.exit(main())
