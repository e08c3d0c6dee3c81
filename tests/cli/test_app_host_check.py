"""The started app answers only the names it is served under (DNS rebinding: a web page that
points its own name at 127.0.0.1 must not reach a local app that has no login)."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.cli.launch import trusted_hosts

REPO = Path(__file__).resolve().parents[2]


def test_trusted_names_are_loopback_the_bound_address_and_what_the_user_adds():
    assert trusted_hosts("127.0.0.1") == ["localhost", "127.0.0.1", "::1"]
    assert trusted_hosts("10.0.0.5", ["Lab.Example"]) == ["localhost", "127.0.0.1", "::1", "10.0.0.5", "lab.example"]
    assert trusted_hosts("0.0.0.0") == ["*"]  # said on the console when the app starts
    assert trusted_hosts("0.0.0.0", ["lab.example"]) == ["localhost", "127.0.0.1", "::1", "lab.example"]


def _get(port: int, host_header: str, path: str = "/", origin: str | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": host_header}
    if origin:
        headers["Origin"] = origin
    connection.request("GET", path, headers=headers)
    status = connection.getresponse().status
    connection.close()
    return status


@pytest.mark.slow  # starts the real server
def test_the_app_refuses_a_foreign_host_name_and_serves_its_own(imported_samples, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (tmp_path / "app.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "core.cli", "app", str(imported_samples[0]), "--port", str(port),
                               "--allow-host", "review.lab.example"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if _get(port, f"127.0.0.1:{port}", "/_stcore/health") == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "app.log").read_text()[-2000:]
            time.sleep(0.5)
        assert _get(port, f"127.0.0.1:{port}") == 200
        assert _get(port, f"localhost:{port}") == 200
        assert _get(port, f"review.lab.example:{port}") == 200
        assert _get(port, f"rebind.evil.example:{port}") == 400
        assert _get(port, f"rebind.evil.example:{port}", "/_stcore/health") == 400
        # The websocket's upgrade request goes through the same check.
        assert _get(port, f"rebind.evil.example:{port}", "/_stcore/stream",
                    origin=f"http://rebind.evil.example:{port}") == 400
    finally:
        server.terminate()
        server.wait(timeout=30)
