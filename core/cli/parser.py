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
    from core.cli import analysis, capture, embedding, evaluate, hypotheses, launch, project, review

    parser = Parser(prog="amend", description="Find and fix wrong labels, with an audit trail.")
    parser.add_argument("--version", action="version", version=f"amend {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens on stderr")
    commands = Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), _json_parent())
    for group in (project, embedding, launch, analysis, capture, review, evaluate, hypotheses):
        group.register(commands)
    return parser


def _walk(parser: argparse.ArgumentParser):
    """``parser`` and every subcommand parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                yield from _walk(sub)


def attach_dashed_values(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--opt VALUE`` written ``--opt=VALUE`` where VALUE starts with '-' (an id such
    as ``-2+3``, a reason such as ``- typo``) and is not itself an option Amend knows.

    argparse takes any word that starts with '-' (other than a plain negative number) for an option,
    so ``amend decide P --id -2+3`` would stop with "expected one argument"; an option that takes
    exactly one value always takes the next word, so it is attached. ``--id --keep`` still fails
    as before (``--keep`` is an option); ``--id=--keep`` names such an id. Nothing after ``--`` changes.
    """
    takes_one: set[str] = set()
    known: set[str] = set()
    for each in _walk(parser):
        for action in each._actions:
            known.update(action.option_strings)
            if action.option_strings and action.nargs is None and not isinstance(
                    action, (argparse._StoreConstAction, argparse._AppendConstAction, argparse._CountAction,
                             argparse._HelpAction, argparse._VersionAction)):
                takes_one.update(s for s in action.option_strings if s.startswith("--"))
    words = list(argv)
    out: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            out.extend(words[index:])
            break
        following = words[index + 1] if index + 1 < len(words) else None
        if (word in takes_one and following is not None and following.startswith("-") and following != "--"
                and following.split("=", 1)[0] not in known):
            out.append(f"{word}={following}")
            index += 2
            continue
        out.append(word)
        index += 1
    return out
