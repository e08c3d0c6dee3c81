"""The `amend` argument parser: one subcommand table that the command-group modules fill in, a
shared ``--json`` option declared once, and argument errors that follow the exit-code contract
(one line on stderr, exit 1) instead of argparse's usage block and exit 2."""

from __future__ import annotations

import argparse
from typing import Callable, Optional, Sequence

from core.cli.exits import USER_ERROR

Handler = Callable[..., int]


class Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported as one line naming where the options are listed."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(USER_ERROR, f"amend: error: {message}; `{self.prog} --help` lists the options.\n")


def _json_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true",
                        help="print the result as one line of JSON on stdout (progress and notes stay on stderr)")
    return parent


class Commands:
    """The subcommands of `amend` (or of a command with actions, such as `amend vectors import`)."""

    def __init__(self, sub: argparse._SubParsersAction, json_parent: argparse.ArgumentParser) -> None:
        self._sub = sub
        self._json_parent = json_parent

    def add(self, name: str, handler: Handler, help: str, *, project: Optional[str] = "one", json: bool = True,
            aliases: Sequence[str] = ()) -> argparse.ArgumentParser:
        """A command run by ``handler(args, progress)``; it takes PROJECT first (``project="one"``, or
        ``"many"`` for PROJECT..., or None) and ``--json`` unless ``json=False``."""
        parser = self._sub.add_parser(name, help=help, aliases=list(aliases),
                                      parents=[self._json_parent] if json else [])
        if project == "one":
            parser.add_argument("project", metavar="PROJECT")
        elif project == "many":
            parser.add_argument("project", metavar="PROJECT", nargs="+")
        parser.set_defaults(handler=handler)
        return parser

    def group(self, name: str, help: str) -> "Commands":
        """A command whose first word is an action (`amend audit verify ...`): add the actions to the result."""
        parser = self._sub.add_parser(name, help=help)
        sub = parser.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")
        return Commands(sub, self._json_parent)


def build_parser() -> Parser:
    """The whole `amend` parser. Building it imports only the command modules, never their libraries."""
    from core import __version__
    from core.cli import analysis, capture, embedding, evaluate, launch, project, review

    parser = Parser(prog="amend", description="Find and fix wrong labels, with an audit trail.")
    parser.add_argument("--version", action="version", version=f"amend {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens on stderr")
    commands = Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), _json_parent())
    for group in (project, embedding, launch, analysis, capture, review, evaluate):
        group.register(commands)
    return parser
