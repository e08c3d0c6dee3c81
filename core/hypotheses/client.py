"""The two API dialects a local model server speaks, over real HTTP (httpx).

- ``ollama``: ``POST {server}/api/chat`` with ``stream: false``, the answer's JSON schema in
  ``format``, images as plain base64 strings in the user message's ``images`` list, sampling in
  ``options``. The answer is ``message.content``. An unknown model is a 404 with
  ``{"error": "model '...' not found"}``.
- ``openai``: ``POST {server}/v1/chat/completions`` (vLLM, llama.cpp's ``llama-server``, LM Studio,
  ...), the user message's content a list of parts: the text, and the image as an ``image_url``
  part holding a ``data:<type>;base64,...`` URI. The answer is ``choices[0].message.content``.
  An unknown model is a 404 (vLLM: "The model `x` does not exist.") or a 400.

Where the schema goes on OpenAI-compatible servers (``schema_style``):

- ``json_schema`` (default): ``response_format: {"type": "json_schema", "json_schema": {"name",
  "schema", "strict": true}}``, OpenAI's own form. vLLM takes it (its structured-output backends
  enforce it), and so does llama-server since it converts ``response_format`` schemas to a grammar.
  We never also send llama.cpp's top-level ``json_schema`` field: a llama-server that sees both
  refuses the request ("Either json_schema or grammar can be specified, but not both",
  ggml-org/llama.cpp#11847).
- ``json_object``: ``response_format: {"type": "json_object", "schema": ...}``, llama.cpp's own
  extension, for llama-server builds older than its ``json_schema`` support.

Whatever the server does with the schema, every answer is checked here again
(:func:`parse_answer`): a server that ignores it cannot slip a word outside the vocabulary in.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import httpx

from core.errors import AmendError
from core.hypotheses import prompts
from core.hypotheses.failures import Failure

logger = logging.getLogger(__name__)

from core.hypotheses import APIS, SCHEMA_STYLES  # noqa: F401 (the CLI's choices)
SCHEMA_NAME = "amend_hypothesis"
#: The environment variable holding a server's API key, when it wants one.
API_KEY_VARIABLE = "AMEND_MODEL_API_KEY"
#: The longest cause / fix kept (a model that ignores "one sentence" must not fill the page).
MAX_SENTENCE = 600
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


class ServerUnreachable(AmendError):
    """Nothing answers at the server's address: the run stops (nothing could be explained)."""


class ModelNotFound(AmendError):
    """The server answers but does not have the model: the run stops."""


class WrongApi(AmendError):
    """The server has no such endpoint (404 without a word about the model): another dialect."""


class AnswerProblem(Exception):
    """One failure could not be explained (a malformed answer, a timeout, a server error); the run
    records it as failed with this reason and goes on."""


@dataclass(frozen=True)
class Answer:
    data_quality: str
    cause: str
    fix: str
    raw: str
    seconds: float


def parse_answer(content: Any, vocabulary: Sequence[str]) -> dict:
    """The three dimensions of an answer, or :class:`AnswerProblem` naming what is wrong."""
    if not isinstance(content, str) or not content.strip():
        raise AnswerProblem("the answer is empty")
    text = content.strip()
    fenced = _FENCE.match(text)  # a model that wraps its JSON in a markdown fence despite the schema
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise AnswerProblem(f"the answer is not JSON ({exc.msg} at character {exc.pos}): {content[:120]!r}") from None
    if not isinstance(data, dict):
        raise AnswerProblem(f"the answer is JSON but not an object: {content[:120]!r}")
    quality = data.get("data_quality")
    if quality not in vocabulary:
        raise AnswerProblem(f"data_quality {quality!r} is not one of {', '.join(vocabulary)}")
    out = {"data_quality": quality}
    for field in prompts.FREE_TEXT:
        value = data.get(field)
        if not isinstance(value, str) or not value.strip():
            raise AnswerProblem(f"{field} is missing or empty")
        out[field] = " ".join(value.split())[:MAX_SENTENCE]
    return out


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        error = body.get("error", body.get("message", body.get("detail")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            return str(error)[:300]
    return json.dumps(body)[:300]


class ModelClient:
    """One model on one server, in one dialect. Thread-safe (httpx.Client is): the run shares one
    across its worker threads, so connections are reused."""

    def __init__(self, server: str, model: str, api: str = "ollama", timeout: float = 120.0,
                 temperature: float = 0.0, schema_style: str = "json_schema", max_tokens: int = 400) -> None:
        if api not in APIS:
            raise AmendError(f"--api takes one of {', '.join(APIS)} (got {api!r}).")
        if schema_style not in SCHEMA_STYLES:
            raise AmendError(f"--schema-style takes one of {', '.join(SCHEMA_STYLES)} (got {schema_style!r}).")
        if not server or not re.match(r"^https?://", server):
            raise AmendError(f"--server takes the server's URL, such as http://127.0.0.1:11434 (got {server!r}).")
        if not model or not model.strip():
            raise AmendError("--model names the model on the server (e.g. qwen2.5vl:7b).")
        if timeout <= 0:
            raise AmendError("--timeout takes seconds above 0.")
        self.server = server.rstrip("/")
        if api == "openai" and self.server.endswith("/v1"):
            self.server = self.server[: -len("/v1")]  # both http://h:8000 and http://h:8000/v1 work
        self.model = model.strip()
        self.api = api
        self.timeout = float(timeout)
        self.temperature = float(temperature)
        self.schema_style = schema_style
        self.max_tokens = int(max_tokens)
        # A server started with an API key (vLLM --api-key, llama-server --api-key) wants it as a bearer
        # token; it comes from the environment so it never lands in a run record or a shell history.
        key = os.environ.get(API_KEY_VARIABLE, "").strip()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # connect: a dead address is known fast; read: the model's own time to answer.
        self._http = httpx.Client(timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0)), headers=headers)

    # ----------------------------------------------------------------- lifecycle
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ModelClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def chat_url(self) -> str:
        return f"{self.server}/api/chat" if self.api == "ollama" else f"{self.server}/v1/chat/completions"

    def describe(self) -> dict:
        return {"server": self.server, "api": self.api, "model": self.model, "temperature": self.temperature,
                "timeout_s": self.timeout, "schema_style": self.schema_style if self.api == "openai" else "format"}

    def check(self) -> None:
        """Refuse (:class:`ServerUnreachable`) when nothing answers at the server's address; any
        HTTP answer counts as reachable (whether the model exists shows in the first answer)."""
        url = f"{self.server}/api/version" if self.api == "ollama" else f"{self.server}/v1/models"
        try:
            self._http.get(url, timeout=min(self.timeout, 10.0))
        except httpx.HTTPError as exc:
            raise ServerUnreachable(self._unreachable(exc)) from None

    def _unreachable(self, exc: Exception) -> str:
        start = ("`ollama serve`" if self.api == "ollama"
                 else "`llama-server -m MODEL.gguf --mmproj MMPROJ.gguf --port 8080` or `vllm serve MODEL`")
        return (f"cannot reach the model server at {self.server} ({type(exc).__name__}: {exc or 'no answer'}); "
                f"start it ({start}) or pass its URL with --server.")

    # ----------------------------------------------------------------- one request
    def request_body(self, failure: Failure, message: str, vocabulary: Sequence[str]) -> dict:
        """The JSON body sent for one failure (see the module docstring for where each part goes)."""
        schema = prompts.schema(vocabulary)
        if self.api == "ollama":
            user: dict = {"role": "user", "content": message}
            if failure.image is not None:
                user["images"] = [failure.image_base64()]
            return {"model": self.model, "stream": False, "format": schema,
                    "messages": [{"role": "system", "content": prompts.SYSTEM}, user],
                    "options": {"temperature": self.temperature, "num_predict": self.max_tokens}}
        parts: list[dict] = [{"type": "text", "text": message}]
        if failure.image is not None:
            parts.append({"type": "image_url",
                          "image_url": {"url": f"data:{failure.image_type};base64,{failure.image_base64()}"}})
        if self.schema_style == "json_schema":
            response_format = {"type": "json_schema",
                               "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": True}}
        else:
            response_format = {"type": "json_object", "schema": schema}
        return {"model": self.model, "stream": False, "temperature": self.temperature, "max_tokens": self.max_tokens,
                "response_format": response_format,
                "messages": [{"role": "system", "content": prompts.SYSTEM}, {"role": "user", "content": parts}]}

    def explain(self, failure: Failure, message: str, vocabulary: Sequence[str]) -> Answer:
        """One hypothesis. Raises AnswerProblem (record it, go on), or ServerUnreachable /
        ModelNotFound (stop the run)."""
        body = self.request_body(failure, message, vocabulary)
        started = time.perf_counter()
        try:
            response = self._http.post(self.chat_url, json=body)
        except httpx.TimeoutException:
            raise AnswerProblem(f"no answer within the timeout of {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise ServerUnreachable(self._unreachable(exc)) from None
        seconds = time.perf_counter() - started
        if response.status_code >= 400:
            error = _error_text(response)
            if response.status_code == 404 and "model" not in error.lower():
                other = "openai" if self.api == "ollama" else "ollama"
                raise WrongApi(f"the server at {self.server} has no {self.chat_url[len(self.server):]} (HTTP 404: "
                               f"{error}); is it an {other} server? Try --api {other}.")
            if self._model_missing(response.status_code, error):
                pull = f" (`ollama pull {self.model}`)" if self.api == "ollama" else ""
                raise ModelNotFound(f"the server at {self.server} has no model {self.model!r}{pull}: {error}; "
                                    "check the name with --model.")
            raise AnswerProblem(f"the server answered HTTP {response.status_code}: {error}")
        try:
            data = response.json()
        except ValueError:
            raise AnswerProblem(f"the server's reply is not JSON: {response.text[:120]!r}") from None
        content = self._content(data)
        parsed = parse_answer(content, vocabulary)
        return Answer(parsed["data_quality"], parsed["cause"], parsed["fix"], content, seconds)

    def _model_missing(self, status: int, error: str) -> bool:
        words = error.lower()
        if status == 404:  # Ollama and vLLM: 404 naming the model
            return True
        return status == 400 and "model" in words and any(
            w in words for w in ("not found", "does not exist", "unknown", "no such", "not loaded", "invalid model"))

    def _content(self, data: Any) -> Any:
        try:
            if self.api == "ollama":
                return data["message"]["content"]
            return data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise AnswerProblem(f"the reply has no message content: {json.dumps(data)[:160]}") from None
