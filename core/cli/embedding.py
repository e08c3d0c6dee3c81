"""`amend embed`, `amend vectors import` / `export`, `amend predictions import`: vectors and probabilities."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.output import output, tell
from core.cli.arguments import positive_int


def _embed_text(report: dict) -> str:
    text = (f"representation {report['representation']}: embedded {report['embedded']}, skipped {report['skipped']} "
            f"({report['dim']}-d, {report['model']} on {report['device']}, {report['seconds']:.1f} s)")
    if report.get("failed"):
        text += f"\nfailed {len(report['failed'])}: " + "; ".join(f"{f['id']}: {f['reason']}" for f in report["failed"][:20])
    return text


def cmd_embed(args: argparse.Namespace, progress) -> int:
    from core.embed.engines import embed
    from core.embed.pipeline import EmbedOptions
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
        engine=args.engine,
        address=args.address,
    )
    report = embed(project, options, progress=progress)
    if report.fallback_message:
        # Said plainly, whatever the output format: the vectors are not from the model asked for.
        tell(f"amend: note: {report.fallback_message}")
    output(args, report.to_json(), _embed_text)
    return 0


def cmd_vectors_import(args: argparse.Namespace, progress) -> int:
    from core.imports import import_vectors
    from core.store.project import Project

    project = Project.open(args.project)
    result = import_vectors(project, Path(args.file), name=args.name, ids_file=Path(args.ids) if args.ids else None)
    output(args, result, lambda r: f"imported {r['imported']} vectors ({r['dim']}-d) as representation {r['representation']}")
    return 0


def cmd_vectors_export(args: argparse.Namespace, progress) -> int:
    from core.store.project import Project
    from core.store.vectors_export import export_vectors

    project = Project.open(args.project)
    result = export_vectors(project, Path(args.out), name=args.name, progress=progress)
    output(args, result, lambda r: f"exported {r['exported']} vectors ({r['dim']}-d) of representation "
                                   f"{r['representation']} to {args.out}")
    return 0


def cmd_predictions_import(args: argparse.Namespace, progress) -> int:
    from core.imports import import_predictions
    from core.store.project import Project

    project = Project.open(args.project)
    result = import_predictions(
        project, Path(args.file), ids_file=Path(args.ids) if args.ids else None, name=args.name
    )
    output(args, result,
           lambda r: f"imported predictions {r.get('name', '')} for {r['imported']} samples over {len(r['classes'])} classes")
    return 0


def register(commands) -> None:
    """Add `embed`, `vectors import` / `vectors export` and `predictions import` to the `amend` parser."""
    p = commands.add("embed", cmd_embed, "embed every sample not yet embedded into a representation")
    p.add_argument("--model", help="OpenCLIP model name (default ViT-B-32)")
    p.add_argument("--pretrained", metavar="TAG", help="OpenCLIP pretrained tag (default laion2b_s34b_b79k)")
    p.add_argument("--checkpoint", metavar="PATH", help="local OpenCLIP weights for --model")
    p.add_argument("--embedder", choices=["openclip", "offline"], help="'offline': the bundled EfficientNet-Lite0 / MiniLM models")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=positive_int, metavar="N")
    p.add_argument("--workers", type=int, metavar="N",
                   help="image decoding workers (default: by device; with --engine ray: concurrent decoding tasks)")
    p.add_argument("--name", metavar="REP", help="representation name (default: from the model)")
    p.add_argument("--engine", default="inprocess", choices=["inprocess", "ray"],
                   help="inprocess (default): this process; ray: Ray Data, on a local Ray or the cluster at --address "
                        "(needs pip install -e \".[scale]\")")
    p.add_argument("--address", metavar="HEAD:6379",
                   help="with --engine ray: a running Ray cluster (`ray start --head`); default: start a local Ray")

    vectors = commands.group("vectors", "bring your own vectors, or take a representation's out")
    q = vectors.add("import", cmd_vectors_import, "import vectors (.npy with --ids, or Parquet id + vector)")
    q.add_argument("file", metavar="FILE")
    q.add_argument("--name", required=True, metavar="REP")
    q.add_argument("--ids", metavar="FILE", help="one sample id a line, in the .npy's row order")
    q = vectors.add("export", cmd_vectors_export,
                    "write a representation's vectors to Parquet (id + vector; replaces OUT), as import reads them")
    q.add_argument("out", metavar="OUT.parquet")
    q.add_argument("--name", required=True, metavar="REP")

    q = commands.group("predictions", "bring your own model's probabilities").add(
        "import", cmd_predictions_import,
        "import probabilities (.npy N x classes with --ids, or Parquet id + one column per label)")
    q.add_argument("file", metavar="FILE")
    q.add_argument("--ids", metavar="FILE")
    q.add_argument("--name", default="default", metavar="NAME")
