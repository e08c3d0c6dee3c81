"""With a login configured, the reviewer is the login and nothing else: a real OpenID Connect
provider (oidc-provider-mock, from PyPI) on 127.0.0.1, the app started as a user starts it with an
`[auth]` section in `.streamlit/secrets.toml`, and Debian's chromium going through the provider's
login form. The decision made afterwards carries the login's name and ``identity_source: oidc``."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from core.review import audit
from core.store.project import Project

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real browser, provider and app server

EMAIL = "dr.okafor@hospital.example"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def provider():
    oidc = pytest.importorskip("oidc_provider_mock")
    with oidc.run_server_in_thread() as server:
        url = f"http://localhost:{server.server_port}"
        request = urllib.request.Request(f"{url}/users/{quote(EMAIL)}", method="PUT",
                                         data=json.dumps({"email": EMAIL, "name": "Dr Okafor"}).encode(),
                                         headers={"Content-Type": "application/json"})
        assert urllib.request.urlopen(request, timeout=10).status == 204
        yield url


def test_the_reviewer_is_the_oidc_login(provider, imported_samples, browser, tmp_path, screenshot):
    project = Path(shutil.copytree(imported_samples[0], tmp_path / "project"))
    port = _free_port()
    home = tmp_path / "server"
    (home / ".streamlit").mkdir(parents=True)
    (home / ".streamlit" / "secrets.toml").write_text(
        "[auth]\n"
        f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
        f'cookie_secret = "{os.urandom(16).hex()}"\n'
        'client_id = "amend"\nclient_secret = "amend-test-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n')
    log = (tmp_path / "app.log").open("w")
    # Started from the folder holding .streamlit/, as a deployment would be.
    server = subprocess.Popen([sys.executable, "-m", "core.cli", "app", str(project), "--port", str(port)],
                              cwd=home, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "app.log").read_text()[-3000:]
                time.sleep(0.5)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.goto(f"http://localhost:{port}")
        page.get_by_role("button", name="Log in").first.wait_for(timeout=60_000)
        assert page.get_by_role("textbox", name="Your name").count() == 0  # no typed names with a login
        page.get_by_role("button", name="Log in").first.click()
        page.locator("input[name=sub]").first.wait_for(timeout=30_000)  # the provider's own form
        page.locator("input[name=sub]").first.fill(EMAIL)
        page.get_by_role("button", name="Authorize").click()
        page.get_by_text("Signed in through the app's login (OIDC).").wait_for(timeout=60_000)
        assert EMAIL in page.inner_text("[data-testid=stSidebar]")
        page.get_by_role("link", name="Triage").click()
        page.get_by_role("button", name="Keep label").wait_for(timeout=90_000)
        page.wait_for_timeout(1500)
        assert f"deciding as {EMAIL} (login)" in page.inner_text(".stMain")
        page.get_by_role("heading", name="Triage").first.click()
        page.keyboard.press("k")
        page.get_by_text("Event ").first.wait_for(timeout=60_000)
        screenshot(page, "triage-after-oidc-login")
        decided = audit.read_events(Project.open(project), kinds=["decision"])
        assert [(e.actor, e.payload["identity_source"]) for e in decided] == [(EMAIL, "oidc")]
        context.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
