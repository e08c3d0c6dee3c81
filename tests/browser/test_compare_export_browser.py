"""What a person sees on the compare and export pages: the started app (`amend app`) on a copy of
the CIFAR-10N sample project after a reviewer accepted the top suggestions and excluded one image."""

from __future__ import annotations

import shutil

import pytest

from core.review import decisions
from core.analysis.runs import accept_suggested
from core.store.project import Project

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real browser on the embedded sample projects


@pytest.fixture(scope="module")
def reviewed_app(sample_projects, tmp_path_factory, app_server):
    source = next(p for p in sample_projects if p.name == "cifar10n-sample")
    target = tmp_path_factory.mktemp("reviewed") / "cifar10n-reviewed"
    shutil.copytree(source, target)
    project = Project.open(target)
    # up to 60 changed rows, sure or not (as many as the analysis flagged with a suggestion)
    accepted = accept_suggested(project, reviewer="alice", top=60, all_flagged=True)
    assert accepted.decided
    untouched = project.samples(columns=["id"])["id"].iloc[-1]
    decisions.decide(project, untouched, "exclude", "bob", reason="not a CIFAR class")
    with app_server([target]) as url:
        yield url, len(accepted.decided)


def test_the_compare_page_shows_per_slice_bars_and_heatmaps(reviewed_app, page, screenshot):
    url, _ = reviewed_app
    page.set_viewport_size({"width": 1400, "height": 2600})  # the app scrolls inside; show the whole page
    page.goto(url + "/compare")
    page.get_by_role("heading", name="Per class").wait_for(timeout=180_000)
    page.locator(".js-plotly-plot").nth(2).wait_for(timeout=30_000)
    page.wait_for_timeout(1500)  # let plotly finish drawing
    body = page.inner_text("body")
    assert "What was compared" in body and "given labels (as ingested)" in body
    assert "split 'test' (100 samples)" in body and "linear probe" in body
    assert "Accuracy before" in body and "Accuracy after" in body
    assert page.locator(".js-plotly-plot").count() == 3
    # A deep link as the server's first session still goes through app.py: its menu and sidebar,
    # not Streamlit's legacy listing of every file in pages/.
    sidebar = page.inner_text("[data-testid=stSidebar]")
    assert "Audit log" in sidebar and "Who am I" in sidebar and "state" not in sidebar.split()
    shot = screenshot(page, "compare-cifar10n-reviewed")
    assert shot.stat().st_size > 40_000


def test_the_export_page_previews_changes_and_offers_the_download(reviewed_app, page, screenshot):
    url, changed = reviewed_app
    page.set_viewport_size({"width": 1400, "height": 1800})
    page.goto(url + "/export")
    page.get_by_role("heading", name="Download").wait_for(timeout=60_000)
    page.get_by_test_id("stCode").get_by_text("--label-column final_label").wait_for(timeout=30_000)
    body = page.inner_text("body")
    assert f"Changed rows ({changed}) and excluded rows (1)" in body
    assert "log verified, chain head" in body
    with page.expect_download(timeout=30_000) as download:
        page.get_by_role("button", name="Labels + trail + manifest (.zip)").click()
    assert download.value.suggested_filename.endswith(".zip")
    shot = screenshot(page, "export-cifar10n-reviewed")
    assert shot.stat().st_size > 20_000
