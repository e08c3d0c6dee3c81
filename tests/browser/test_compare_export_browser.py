"""What a person sees on the compare and export pages: the started app (`amend app`) on a copy of
the CIFAR-10N sample project after a reviewer accepted the top suggestions and excluded one image."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core import review
from core.project import Project
from core.runs import accept_suggested

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def reviewed_app(sample_projects, tmp_path_factory):
    source = next(p for p in sample_projects if p.name == "cifar10n-sample")
    target = tmp_path_factory.mktemp("reviewed") / "cifar10n-reviewed"
    shutil.copytree(source, target)
    project = Project.open(target)
    accepted = accept_suggested(project, reviewer="alice", top=60)
    assert accepted.decided
    untouched = project.samples(columns=["id"])["id"].iloc[-1]
    review.decide(project, untouched, "exclude", "bob", reason="not a CIFAR class")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "app", str(target), "--port", str(port)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"the app exited: {process.stderr.read().decode()}")
            time.sleep(0.5)
    else:
        process.kill()
        raise RuntimeError("the app did not answer within 90 s")
    yield url
    process.terminate()
    process.wait(timeout=20)


def test_the_compare_page_shows_per_slice_bars_and_heatmaps(reviewed_app, page, screenshot):
    page.set_viewport_size({"width": 1400, "height": 2600})  # the app scrolls inside; show the whole page
    page.goto(reviewed_app + "/compare")
    page.get_by_role("heading", name="Per class").wait_for(timeout=180_000)
    page.locator(".js-plotly-plot").nth(2).wait_for(timeout=30_000)
    page.wait_for_timeout(1500)  # let plotly finish drawing
    body = page.inner_text("body")
    assert "What was compared" in body and "given labels (as ingested)" in body
    assert "split 'test' (100 samples)" in body and "linear probe" in body
    assert "Accuracy before" in body and "Accuracy after" in body
    assert page.locator(".js-plotly-plot").count() == 3
    shot = screenshot(page, "compare-cifar10n-reviewed")
    assert shot.stat().st_size > 40_000


def test_the_export_page_previews_changes_and_offers_the_download(reviewed_app, page, screenshot):
    page.set_viewport_size({"width": 1400, "height": 1800})
    page.goto(reviewed_app + "/export")
    page.get_by_role("heading", name="Download").wait_for(timeout=60_000)
    page.get_by_test_id("stCode").get_by_text("--label-column final_label").wait_for(timeout=30_000)
    body = page.inner_text("body")
    assert "Changed rows (60) and excluded rows (1)" in body
    assert "log verified, chain head" in body
    with page.expect_download(timeout=30_000) as download:
        page.get_by_role("button", name="Labels + trail + manifest (.zip)").click()
    assert download.value.suggested_filename.endswith(".zip")
    shot = screenshot(page, "export-cifar10n-reviewed")
    assert shot.stat().st_size > 20_000
