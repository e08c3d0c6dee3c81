"""What reaches the model server, in each dialect: the image as base64 of the sample's own bytes,
the text, the schema with its closed vocabulary in the dialect's place, the run's settings."""

from __future__ import annotations

import base64
import hashlib

import pytest
from builders import SAMPLE_DATA
from standin import answer

from core.hypotheses import generate, prompts, store
from core.hypotheses.client import ModelClient
from core.hypotheses.failures import Failure


def _file_bytes(project, sample_id: str) -> bytes:
    row = project.samples(columns=["id", "path"], where=f"id = '{sample_id}'").iloc[0]
    return (SAMPLE_DATA / "cifar10n" / row["path"]).read_bytes()  # the file itself, not what Amend read of it


def test_ollama_gets_the_images_base64_and_the_schema_in_format(image_project, server):
    result = generate.generate(image_project, server.url, "vlm", api="ollama", limit=3, cluster=False, temperature=0.2)
    assert result["generated"] == 3 and result["failed"] == 0
    chats = server.chats()
    assert len(chats) == 3 and {c.path for c in chats} == {"/api/chat"}
    for chat in chats:
        body = chat.body
        assert body["model"] == "vlm" and body["stream"] is False
        assert body["options"]["temperature"] == 0.2
        schema = body["format"]
        assert schema["properties"]["data_quality"]["enum"] == list(prompts.DEFAULT_VOCABULARY)
        assert schema["required"] == ["data_quality", "cause", "fix"]
        user = body["messages"][-1]
        (image,) = user["images"]
        decoded = base64.b64decode(image, validate=True)
        # The image is one of the explained samples' files, byte for byte.
        digests = {hashlib.sha256(_file_bytes(image_project, s)).hexdigest(): s
                   for s in store.hypotheses(image_project)["sample_id"]}
        assert hashlib.sha256(decoded).hexdigest() in digests
        assert "Given label" in user["content"] and "%" in user["content"]  # the top-3 with confidences
    # and each explained sample's own bytes went to the server exactly once
    sent = sorted(base64.b64decode(c.body["messages"][-1]["images"][0]) for c in chats)
    expected = sorted(_file_bytes(image_project, s) for s in store.hypotheses(image_project)["sample_id"])
    assert sent == expected


def test_openai_gets_data_uris_and_response_format_json_schema(image_project, server):
    result = generate.generate(image_project, server.url + "/v1", "vlm", api="openai", limit=2, cluster=False)
    assert result["generated"] == 2
    for chat in server.chats():
        assert chat.path == "/v1/chat/completions"
        body = chat.body
        assert "json_schema" not in body  # never beside response_format (llama.cpp refuses the pair)
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
        assert fmt["json_schema"]["schema"]["properties"]["data_quality"]["enum"] == list(prompts.DEFAULT_VOCABULARY)
        text_part, image_part = body["messages"][-1]["content"]
        assert text_part["type"] == "text" and "Given label" in text_part["text"]
        url = image_part["image_url"]["url"]
        assert url.startswith("data:image/jpeg;base64,")
        decoded = base64.b64decode(url.split(",", 1)[1], validate=True)
        assert decoded in [_file_bytes(image_project, s) for s in store.hypotheses(image_project)["sample_id"]]


def test_llama_cpp_json_object_style_puts_the_schema_beside_the_type(image_project, server):
    generate.generate(image_project, server.url, "vlm", api="openai", limit=1, cluster=False,
                      schema_style="json_object")
    fmt = server.chats()[0].body["response_format"]
    assert fmt["type"] == "json_object"
    assert fmt["schema"]["properties"]["data_quality"]["enum"] == list(prompts.DEFAULT_VOCABULARY)


def test_texts_travel_as_text_and_a_published_vocabulary_is_the_enum(text_project, server):
    prompts.publish(text_project, prompts.DEFAULT_TEXT, "v2", "lead", vocabulary=["mislabelled", "fine", "unclear"])
    server.rule = lambda body: answer("mislabelled", "It talks about food.", "Relabel it.")
    result = generate.generate(text_project, server.url, "vlm", limit=2, cluster=False)
    assert result["generated"] == 2 and result["prompt_version"] == "v2"
    body = server.chats()[0].body
    assert body["format"]["properties"]["data_quality"]["enum"] == ["mislabelled", "fine", "unclear"]
    user = body["messages"][-1]
    assert "images" not in user and "a few words about" in user["content"]


def test_the_run_records_what_produced_it(image_project, server):
    result = generate.generate(image_project, server.url, "vlm", api="ollama", limit=1, cluster=False,
                               temperature=0.3, concurrency=2, timeout=7)
    run = store.runs(image_project).iloc[0]
    assert run["run_id"] == result["run_id"]
    assert (run["model"], run["api"], run["server"], run["temperature"]) == ("vlm", "ollama", server.url, 0.3)
    assert run["prompt_version"] == prompts.BUILTIN.version and run["prompt_sha256"] == prompts.BUILTIN.sha256
    assert '"timeout_s": 7.0' in run["settings"] and '"concurrency": 2' in run["settings"]


def test_a_request_body_is_what_the_client_sends():
    failure = Failure("x", "image", "cat", (("dog", 0.7), ("cat", 0.2), ("fox", 0.1)), "analysis",
                      image=b"\x89PNG-bytes", image_type="image/png")
    body = ModelClient("http://127.0.0.1:1", "m", api="openai").request_body(failure, "hi", ["a", "b"])
    assert body["messages"][-1]["content"][1]["image_url"]["url"] == "data:image/png;base64," + \
        base64.b64encode(b"\x89PNG-bytes").decode()
    with pytest.raises(Exception, match="--api"):
        ModelClient("http://127.0.0.1:1", "m", api="grpc")


def test_an_api_key_from_the_environment_is_sent_as_a_bearer_token(image_project, server, monkeypatch):
    monkeypatch.setenv("AMEND_MODEL_API_KEY", "sekrit")
    generate.generate(image_project, server.url, "vlm", api="openai", limit=1, cluster=False)
    assert server.chats()[0].headers.get("Authorization") == "Bearer sekrit"
    assert "sekrit" not in store.runs(image_project).iloc[0]["settings"]
