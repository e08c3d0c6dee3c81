"""core.cli.parser / exits / output: the command table, the shared --json option, argument errors
as one line with exit 1, and the process-level contract (python -m core.cli, lazy imports)."""

from __future__ import annotations

import argparse
import json

import pytest

from core.cli import build_parser
from core.cli.exits import CONFLICT, USER_ERROR, exit_code, one_line
from core.cli.output import output
from core.errors import AmendError, ConflictError

from .conftest import assert_one_error_line

# Every command of ../shared/CLI.md this version has, with the fewest arguments that parse.
COMMANDS = {
    "init": ["init", "P", "--texts", "t.jsonl"],
    "ingest": ["ingest", "P", "--texts", "t.jsonl"],
    "embed": ["embed", "P"],
    "vectors import": ["vectors", "import", "P", "v.npy", "--name", "mine"],
    "predictions import": ["predictions", "import", "P", "p.npy"],
    "analyse": ["analyse", "P"],
    "flags": ["flags", "P"],
    "slices": ["slices", "P"],
    "decide": ["decide", "P", "--id", "s1", "--keep", "--reviewer", "ann"],
    "guideline": ["guideline", "P", "list"],
    "role": ["role", "P", "show"],
    "audit verify": ["audit", "verify", "P"],
    "compare": ["compare", "P"],
    "export": ["export", "P", "out.csv"],
    "demo": ["demo", "--no-app"],
}


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_takes_json_and_a_handler(name):
    parser = build_parser()
    plain = parser.parse_args(COMMANDS[name])
    with_json = parser.parse_args([*COMMANDS[name], "--json"])
    assert plain.json is False and with_json.json is True
    assert callable(with_json.handler)


def test_json_is_declared_once_for_all_commands():
    parser = build_parser()
    seen = set()

    def walk(p: argparse.ArgumentParser) -> None:
        for action in p._actions:
            if "--json" in action.option_strings:
                seen.add(id(action))
            if isinstance(action, argparse._SubParsersAction):
                for child in set(action.choices.values()):
                    walk(child)

    walk(parser)
    # argparse copies a parent's actions into each child by reference: one declaration, one action.
    assert len(seen) == 1


def test_app_takes_several_projects_and_no_json():
    args = build_parser().parse_args(["app", "p1", "p2", "--port", "9000"])
    assert args.project == ["p1", "p2"] and args.port == 9000 and args.host == "127.0.0.1"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["app", "p1", "--json"])


@pytest.mark.parametrize("argv, says", [
    ([], "required: COMMAND"),
    (["frobnicate", "P"], "invalid choice: 'frobnicate'"),
    (["decide", "P", "--id", "s1", "--keep"], "required: --reviewer"),
    (["flags", "P", "--top", "many"], "'many' is not a whole number"),
    (["flags", "P", "--top", "0"], "must be at least 1"),
    (["embed", "P", "--batch-size", "-4"], "must be at least 1"),
    (["flags", "P", "--format", "xml"], "invalid choice: 'xml'"),
    (["init", "P", "--texts", "a.jsonl", "--images", "dir"], "not allowed with argument"),
    (["role", "P", "promote"], "invalid choice: 'promote'"),
    (["vectors", "import", "P", "v.npy"], "required: --name"),
    (["audit", "P"], "invalid choice: 'P'"),
])
def test_argument_errors_are_one_line_and_exit_1(amend, argv, says):
    result = amend.fails(*argv, says=says)
    assert "--help` lists the options" in result.err


def test_help_and_version_exit_0(amend):
    assert "flags" in amend("--help").out and "decide" in amend("--help").out
    assert "--accept-suggested" in amend("decide", "--help").out
    assert amend("--version").out.startswith("amend ")


def test_output_writes_json_or_text():
    import contextlib
    import io

    def written(args: argparse.Namespace, payload, text) -> str:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            output(args, payload, text)
        return buffer.getvalue()

    payload = {"a": 1, "when": __import__("datetime").date(2024, 1, 2)}
    assert json.loads(written(argparse.Namespace(json=True), payload, "x")) == {"a": 1, "when": "2024-01-02"}
    assert written(argparse.Namespace(json=False, format="json"), [1, 2], "x") == "[1, 2]\n"
    assert written(argparse.Namespace(json=True, format="csv"), [1], "x") == "[1]\n"
    assert written(argparse.Namespace(json=False, format="csv"), payload, lambda p: f"a={p['a']}\n\n") == "a=1\n"
    assert written(argparse.Namespace(), payload, "plain") == "plain\n"


def test_exit_codes_map_errors():
    assert exit_code(AmendError("x")) == USER_ERROR == 1
    assert exit_code(ConflictError("x")) == CONFLICT == 3
    assert exit_code(FileNotFoundError(2, "No such file", "x.csv")) == USER_ERROR
    assert exit_code(KeyboardInterrupt()) == 130
    assert one_line(AmendError("two\nlines  here")) == "amend: error: two lines here"
    assert one_line(PermissionError(13, "Permission denied", "/x/l.csv")) == (
        "amend: error: cannot use /x/l.csv: Permission denied; check the path and its permissions.")


# ----------------------------------------------------------------------- as a real process
HEAVY = ("torch", "open_clip", "umap", "streamlit")


def test_a_user_error_as_a_process_is_one_line_and_exit_1(amend_process, tmp_path):
    result = amend_process("flags", tmp_path / "nowhere", "--json", expect=1)
    assert_one_error_line(result, "nowhere")
    assert "Traceback" not in result.err


def _imported(amend_process, *args, expect=0) -> set[str]:
    result = amend_process(*args, expect=expect, python_args=("-X", "importtime"))
    return {line.split("|")[-1].strip() for line in result.err.splitlines() if line.startswith("import time:")}


def test_help_imports_no_heavy_library(amend_process):
    modules = _imported(amend_process, "--help")
    assert "core.cli" in modules
    assert not {m for m in modules if m.split(".")[0] in (*HEAVY, "pandas", "lancedb")}


def test_flags_imports_no_model_library(amend_process, analysed_once):
    modules = _imported(amend_process, "flags", analysed_once[0], "--top", "3")
    assert "core.analysis.runs" in modules
    assert not {m for m in modules if m.split(".")[0] in HEAVY}
