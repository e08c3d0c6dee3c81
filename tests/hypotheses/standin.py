"""A stand-in model server for the tests: real HTTP on 127.0.0.1, both dialects (Ollama's
``/api/chat`` and the OpenAI-compatible ``/v1/chat/completions``), every request recorded, and
the answer decided per request by a rule the test sets."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional


@dataclass
class Reply:
    """What the server sends: the message content (wrapped in the dialect's envelope), or a raw
    status and body; ``delay`` seconds first."""

    content: Optional[str] = None
    status: int = 200
    body: Optional[dict] = None
    delay: float = 0.0


@dataclass
class Received:
    path: str
    body: dict
    headers: dict = field(default_factory=dict)


def answer(data_quality: str, cause: str, fix: str) -> Reply:
    return Reply(content=json.dumps({"data_quality": data_quality, "cause": cause, "fix": fix}))


def user_text(body: dict) -> str:
    """The user message's text in either dialect."""
    user = body["messages"][-1]
    content = user["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


@dataclass
class StandIn:
    """The running server: ``url``, the ``rule`` (request body -> Reply), ``models`` it has and
    what it ``received``."""

    rule: Callable[[dict], Reply]
    models: tuple[str, ...] = ("vlm",)
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _server: Optional[ThreadingHTTPServer] = None

    def start(self) -> "StandIn":
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
                    pass

            def do_GET(self) -> None:
                if self.path == "/api/version":
                    self._send(200, {"version": "0.0-standin"})
                elif self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in outer.models]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                outer.received.append(Received(self.path, body, dict(self.headers.items())))
                if self.path not in ("/api/chat", "/v1/chat/completions"):
                    self._send(404, {"error": f"404 page not found: {self.path}"})
                    return
                ollama = self.path == "/api/chat"
                if body.get("model") not in outer.models:
                    if ollama:
                        self._send(404, {"error": f"model '{body.get('model')}' not found"})
                    else:
                        self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist.",
                                                   "type": "NotFoundError", "code": 404}})
                    return
                reply = outer.rule(body)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.body is not None or reply.content is None:
                    self._send(reply.status, reply.body or {})
                elif ollama:
                    self._send(200, {"model": body["model"], "done": True,
                                     "message": {"role": "assistant", "content": reply.content}})
                else:
                    self._send(200, {"object": "chat.completion", "model": body["model"],
                                     "choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant", "content": reply.content}}]})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a handler still sleeping (a slow answer) must not hold up stop()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def chats(self) -> list[Received]:
        return [r for r in self.received if r.path in ("/api/chat", "/v1/chat/completions")]
