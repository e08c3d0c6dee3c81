"""`amend app` stops when told to, even while a client that stopped reading holds a response open
(the web server would otherwise wait for that response for ever)."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _start(project: Path, log_path: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with log_path.open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", "core.cli", "app", str(project), "--port", str(port)],
                                  cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/_stcore/health")
            if connection.getresponse().status == 200:
                return server, port
        except OSError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()[-2000:]
        time.sleep(0.5)


def _largest_static_file() -> str:
    """The biggest file the app serves (Streamlit's chart bundle, megabytes)."""
    import streamlit

    static = Path(streamlit.__file__).parent / "static"
    biggest = max((p for p in static.rglob("*.js") if p.is_file()), key=lambda p: p.stat().st_size)
    assert biggest.stat().st_size > 1_000_000, "no large file to ask for"
    return "/" + biggest.relative_to(static).as_posix()


@pytest.mark.slow  # starts the real server
def test_the_app_stops_within_its_grace_period_while_a_client_stalls(imported_samples, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))  # pages/ sits beside app.py, not in the installed package
    from pages.shutdown import STOP_GRACE_SECONDS

    log_path = tmp_path / "app.log"
    server, port = _start(imported_samples[0], log_path)
    stalled = socket.socket()
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # reads nothing, buffers little
        stalled.connect(("127.0.0.1", port))
        # Requests in a row on one connection, answered one after the other: together far more
        # than the kernel buffers between a reader that reads nothing and the server (4 MB here),
        # so a response is still unfinished when the stop comes.
        request = f"GET {_largest_static_file()} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        stalled.sendall(request * 8)
        time.sleep(2)  # the server has filled the socket and waits for the reader
        asked = time.monotonic()
        server.terminate()
        try:
            server.wait(timeout=STOP_GRACE_SECONDS + 15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the app still ran {STOP_GRACE_SECONDS + 15:g} s after SIGTERM: {log_path.read_text()[-1500:]}")
        assert time.monotonic() - asked >= STOP_GRACE_SECONDS - 1  # it did wait for the response first
        assert server.returncode == 1  # the forced stop says it was forced
        assert "ends within" in log_path.read_text()
    finally:
        stalled.close()
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.slow
def test_the_app_stops_at_once_and_cleanly_when_no_client_holds_it(imported_samples, tmp_path):
    server, port = _start(imported_samples[0], tmp_path / "app.log")
    server.terminate()
    server.wait(timeout=30)
    assert server.returncode == 0  # a stop the watchdog had to force exits 1
