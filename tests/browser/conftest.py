"""Start the real app (`amend app`) on the sample projects and drive Debian's chromium at it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("AMEND_SCREENSHOTS", REPO / "test-screenshots"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(projects):
    """Start the app exactly as a user does (`amend app PROJECT...`); yield its URL; stop it.

    The server's output goes to a file, never to an unread pipe: a pipe holds 64 KB, after which
    every log line the server writes blocks, and with it the server."""
    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="amend-app-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "app", *map(str, projects), "--port", str(port)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"

    def tail() -> str:
        return Path(log.name).read_text(errors="replace")[-4000:]

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"the app exited: {tail()}")
            time.sleep(0.5)
    else:
        process.kill()
        raise RuntimeError(f"the app did not answer within 90 s: {tail()}")
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)  # the launcher dumps every thread's stack to the log
            time.sleep(2)
            process.kill()
            process.wait(timeout=20)
            raise RuntimeError(f"the app did not stop within 20 s of SIGTERM; its log ends:\n{tail()}")
        else:
            if process.returncode == 1:  # pages/shutdown.py's watchdog ended it: say what held it
                text = Path(log.name).read_text(errors="replace")
                warnings.warn("the app needed its forced stop; from the stop request on, its log reads:\n"
                              + text[text.find("Amend: the server ends within"):][:12000])
        finally:
            Path(log.name).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def app_server():
    """`with app_server(projects) as url:` — the app started on other projects than the samples."""
    return serve


@pytest.fixture(scope="session")
def running_app(sample_projects):
    """The app on the two sample projects; yields its URL."""
    with serve(sample_projects) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/bootstrap.sh --test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture()
def screenshot():
    """Save a full-page PNG under test-screenshots/ (or $AMEND_SCREENSHOTS) to look at."""

    def take(tab, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        target = SCREENSHOTS / f"{name}.png"
        tab.screenshot(path=str(target), full_page=True)
        return target

    return take


@pytest.fixture()
def whole_page(screenshot):
    """Screenshot of the whole page: Streamlit scrolls inside its own container, so the window is
    first made as tall as the page."""

    def take(tab, name: str) -> Path:
        height = tab.evaluate(
            "() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], section.main, body')]"
            ".map(e => e.scrollHeight))")
        tab.set_viewport_size({"width": 1400, "height": min(max(int(height) + 100, 1000), 6000)})
        tab.wait_for_timeout(1500)  # let the charts re-lay out at the new size
        return screenshot(tab, name)

    return take
