"""A run: malformed and late answers recorded as failed with the reason, bounded concurrency,
resumable, and the errors that stop a run (no server, no such model)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from standin import Reply, answer, user_text

from core.errors import AmendError
from core.hypotheses import generate, prompts, store
from core.hypotheses.client import ModelNotFound, ServerUnreachable, parse_answer


def _failed(project) -> dict[str, str]:
    frame = store.hypotheses(project, status="failed")
    return dict(zip(frame["sample_id"], frame["reason"]))


def test_malformed_answers_are_recorded_as_failed_with_the_reason(image_project, server):
    replies = iter([Reply(content="the picture is blurry"),  # not JSON
                    answer("blurry", "It is blurry.", "Augment with blur."),  # outside the vocabulary
                    Reply(content='{"data_quality": "low_quality", "cause": "Too dark."}'),  # no fix
                    Reply(content='```json\n{"data_quality": "low_quality", "cause": "Dark.", "fix": "Brighten."}\n```'),
                    Reply(status=500, body={"error": "out of memory"})])
    lock = threading.Lock()

    def rule(body):
        with lock:
            return next(replies)

    server.rule = rule
    result = generate.generate(image_project, server.url, "vlm", limit=5, concurrency=1, cluster=False)
    assert (result["generated"], result["failed"]) == (1, 4)
    reasons = sorted(_failed(image_project).values())
    assert any("not JSON" in r for r in reasons)
    assert any("data_quality 'blurry' is not one of" in r for r in reasons)
    assert any("fix is missing" in r for r in reasons)
    assert any("HTTP 500: out of memory" in r for r in reasons)
    assert sorted(f["reason"] for f in result["failures"]) == reasons
    assert store.hypotheses(image_project)["fix"].tolist() == ["Brighten."]


def test_a_slow_answer_hits_the_timeout_and_the_run_goes_on(image_project, server):
    first: list[str] = []

    def rule(body):
        if not first:
            first.append(user_text(body))
            return Reply(content=answer("model_error", "Late.", "Late.").content, delay=3.0)
        return answer("model_error", "On time.", "Collect more.")

    server.rule = rule
    started = time.perf_counter()
    result = generate.generate(image_project, server.url, "vlm", limit=3, concurrency=1, timeout=0.5, cluster=False)
    assert time.perf_counter() - started < 3.0
    assert (result["generated"], result["failed"]) == (2, 1)
    (reason,) = _failed(image_project).values()
    assert "no answer within the timeout of 0.5 s" in reason


def test_a_second_run_skips_what_is_explained_and_retries_what_failed(image_project, server):
    calls = {"n": 0}

    def rule(body):
        calls["n"] += 1
        return Reply(content="oops") if calls["n"] == 2 else answer("model_error", "Small object.", "Zoom in.")

    server.rule = rule
    first = generate.generate(image_project, server.url, "vlm", limit=4, concurrency=1, cluster=False)
    assert (first["generated"], first["failed"], first["skipped"]) == (3, 1, 0)
    second = generate.generate(image_project, server.url, "vlm", limit=4, cluster=False)
    assert (second["generated"], second["failed"], second["skipped"]) == (1, 0, 3)
    assert len(server.chats()) == 5
    third = generate.generate(image_project, server.url, "vlm", limit=4, cluster=False)
    assert (third["generated"], third["skipped"]) == (0, 4) and len(server.chats()) == 5
    # another model, or another prompt version, is another explanation
    server.models = ("vlm", "other")
    assert generate.generate(image_project, server.url, "other", limit=4, cluster=False)["generated"] == 4
    prompts.publish(image_project, prompts.DEFAULT_TEXT + "\nBe terse.", "terse", "lead")
    assert generate.generate(image_project, server.url, "vlm", limit=4, cluster=False)["generated"] == 4


def test_concurrency_is_bounded(image_project, server):
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def rule(body):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.15)
        with lock:
            state["now"] -= 1
        return answer("model_error", "Busy.", "Wait.")

    server.rule = rule
    result = generate.generate(image_project, server.url, "vlm", limit=9, concurrency=3, cluster=False)
    assert result["generated"] == 9
    assert state["most"] == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_server_stops_before_anything_is_written(image_project):
    with pytest.raises(ServerUnreachable, match="cannot reach the model server at http://127.0.0.1:"):
        generate.generate(image_project, f"http://127.0.0.1:{_free_port()}", "vlm", limit=2, cluster=False)
    assert store.runs(image_project).empty


@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_an_unknown_model_stops_the_run_naming_it(image_project, server, api):
    with pytest.raises(ModelNotFound, match="has no model 'llava-nope'"):
        generate.generate(image_project, server.url, "llava-nope", api=api, limit=6, concurrency=2, cluster=False)
    assert store.hypotheses(image_project, status=None).empty
    assert len(server.chats()) <= 2  # stopped at the first answers, not one request per failure


def test_flagged_and_selection_sources(image_project, server):
    from core.store.selections import save_selection

    flagged = generate.generate(image_project, server.url, "vlm", failures="flagged", limit=2, cluster=False)
    assert flagged["generated"] == 2
    some = image_project.sample_ids()[:3]
    save_selection(image_project, some, "three", "test")
    chosen = generate.generate(image_project, server.url, "vlm", failures=None, selection="three", cluster=False)
    assert chosen["candidates"] == 3
    assert set(store.hypotheses(image_project, run_id=chosen["run_id"])["sample_id"]) <= set(some)
    with pytest.raises(AmendError, match="no selection 'nope'"):
        generate.generate(image_project, server.url, "vlm", selection="nope", cluster=False)


def test_parse_answer_checks_every_field():
    vocabulary = prompts.DEFAULT_VOCABULARY
    assert parse_answer('{"data_quality": "low_quality", "cause": " Dark\\n image. ", "fix": "Brighten."}',
                        vocabulary)["cause"] == "Dark image."
    for content, says in [("", "empty"), ("[1]", "not an object"), ('{"data_quality": "x"}', "is not one of"),
                          ('{"data_quality": "model_error", "cause": "", "fix": "f"}', "cause is missing")]:
        with pytest.raises(Exception, match=says):
            parse_answer(content, vocabulary)


def test_a_server_without_the_endpoint_says_to_try_the_other_dialect(image_project, server):
    from core.hypotheses.client import WrongApi

    with pytest.raises(WrongApi, match="Try --api openai"):
        generate.generate(image_project, server.url + "/elsewhere", "vlm", api="ollama", limit=1, cluster=False)
