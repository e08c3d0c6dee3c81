"""The ``amend`` command. The contract (names, exit codes, --json outputs) is ../shared/CLI.md.

Exit codes: 0 success, 1 user error (one line on stderr), 3 conflict. ``--json`` prints exactly one
JSON object on stdout; progress bars go to stderr and only appear for steps longer than a second.

Where things are:

- ``parser``: the parser, with the shared ``--json`` option and one-line argument errors;
- ``output``: the one function every command prints its result through (``output``), and ``tell`` for stderr;
- ``exits``: the one mapping from errors to exit codes; ``progress``: the bar on stderr;
- one module per command group, each with a ``register(commands)``: ``project`` (init, ingest),
  ``embedding`` (embed, vectors import, predictions import), ``launch`` (app, demo), ``analysis``
  (analyse, flags, slices), ``review`` (decide, guideline, audit verify, role), ``evaluate`` (compare, export).

Handlers import their libraries when they run, so ``amend --help`` and the quick commands start
without torch, open_clip, umap or streamlit.
"""

from __future__ import annotations

import logging
import sys
from typing import Optional, Sequence

from core.cli.exits import run
from core.cli.parser import attach_dashed_values, build_parser

__all__ = ["build_parser", "main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run `amend` with ``argv`` (default: the command line); return the exit status."""
    parser = build_parser()
    words = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(attach_dashed_values(parser, words))
    except SystemExit as stop:  # --help and --version (0), or an argument error already said in one line (1)
        return stop.code if isinstance(stop.code, int) else 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="amend: %(levelname)s: %(message)s")
    return run(args)
