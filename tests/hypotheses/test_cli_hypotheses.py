"""`amend hypotheses` as scripts use it: the --json contract, --list, --actions, resuming, and one
clear line with exit 1 when the server cannot be reached or has no such model."""

from __future__ import annotations

import csv
import io
import json
import socket
from contextlib import redirect_stderr, redirect_stdout

from standin import Reply, answer

from core.cli import main
from core.cli.exits import USER_ERROR


def amend(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def one_json(out: str):
    lines = out.splitlines()
    assert len(lines) == 1, out
    return json.loads(lines[0])


def test_generate_list_review_actions_from_the_shell(image_project, server):
    replies = iter([answer("annotation_issue", "The wing shape is clearly a plane.", "Relabel per the guideline."),
                    Reply(content="not json"),
                    answer("low_quality", "Too dark to see.", "Add brightness augmentation.")])
    server.rule = lambda body: next(replies, answer("model_error", "Small object.", "Collect close-ups."))
    code, out, err = amend("hypotheses", image_project.path, "--server", server.url, "--model", "vlm",
                           "--api", "ollama", "--failures", "errors", "--limit", "5", "--concurrency", "1",
                           "--timeout", "5", "--json")
    assert code == 0, err
    result = one_json(out)
    assert (result["generated"], result["failed"], result["skipped"]) == (4, 1, 0)
    assert result["run_id"].startswith("hyp-")
    assert set(result["dimensions"]) == {"cause", "fix"}
    assert all(isinstance(d["clusters"], int) and d["clusters"] >= 1 for d in result["dimensions"].values())
    assert result["failures"][0]["reason"].startswith("the answer is not JSON")

    code, out, _ = amend("hypotheses", image_project.path, "--server", server.url, "--model", "vlm", "--limit", "5",
                         "--json")
    again = one_json(out)
    assert (again["generated"], again["skipped"]) == (1, 4)  # only the malformed one is asked again

    code, out, _ = amend("hypotheses", image_project.path, "--list", "--format", "json")
    listed = one_json(out)
    assert len(listed) == 5
    for row in listed:
        assert {"id", "data_quality", "cause", "fix", "clusters"} <= set(row)
        assert set(row["clusters"]) == {"cause", "fix"} and isinstance(row["clusters"]["cause"], int)

    issue = next(r for r in listed if r["data_quality"] == "annotation_issue")
    code, out, err = amend("hypotheses", image_project.path, "--review", issue["id"], "--verdict", "agree",
                           "--reviewer", "carol", "--json")
    assert code == 0 and one_json(out)["reviewer"] == "carol" and "recorded as carol" in err
    code, out, _ = amend("hypotheses", image_project.path, "--send-to-triage", "--reviewer", "carol", "--json")
    assert one_json(out)["ids"] == [issue["sample_id"]]

    code, out, _ = amend("hypotheses", image_project.path, "--actions", "--format", "json")
    actions = one_json(out)
    assert actions and actions[0]["rank"] == 1 and {"action", "kind", "example", "sample_ids"} <= set(actions[0])
    code, out, _ = amend("hypotheses", image_project.path, "--actions", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["action"] for r in rows] == [a["action"] for a in actions]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_one_line_and_exit_1(image_project):
    code, out, err = amend("hypotheses", image_project.path, "--server", f"http://127.0.0.1:{_free_port()}",
                           "--model", "vlm", "--json")
    assert code == USER_ERROR and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("amend: error: cannot reach the model server at http://127.0.0.1:")


def test_unknown_model_is_one_line_and_exit_1(image_project, server):
    for api, says in (("ollama", "model 'nope' not found"), ("openai", "The model `nope` does not exist.")):
        code, out, err = amend("hypotheses", image_project.path, "--server", server.url, "--model", "nope",
                               "--api", api, "--limit", "3", "--json")
        assert code == USER_ERROR and out == ""
        lines = err.splitlines()
        assert len(lines) == 1 and "has no model 'nope'" in lines[0] and says in lines[0], err


def test_a_prompt_version_is_published_and_listed(image_project, tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Label {given_label}; predictions {predictions}. {content} Pick from {vocabulary}.")
    code, out, err = amend("hypotheses", image_project.path, "--publish-prompt", prompt, "--version", "p1",
                           "--author", "lead", "--vocabulary", "wrong_label,fine", "--json")
    assert code == 0, err
    assert one_json(out)["vocabulary"] == ["wrong_label", "fine"]
    code, out, _ = amend("hypotheses", image_project.path, "--prompts", "--json")
    assert one_json(out)["current"]["version"] == "p1"
    code, _, err = amend("hypotheses", image_project.path, "--publish-prompt", prompt, "--version", "p1",
                         "--author", "lead")
    assert code == USER_ERROR and "exists already" in err
