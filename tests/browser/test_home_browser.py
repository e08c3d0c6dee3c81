"""What a person sees: the started app opens on the sample project's home page."""

from __future__ import annotations

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real browser on the embedded sample projects


def test_the_started_app_shows_the_sample_project(running_app, page, whole_page):
    page.goto(running_app)
    page.get_by_role("heading", name="cifar10n-sample").wait_for(timeout=60_000)
    page.get_by_text("Ingest report").wait_for(timeout=30_000)
    # The header's metrics too: on a loaded CI machine the body was once read while they were
    # not in it yet although the later "Ingest report" was.
    page.get_by_text("Samples", exact=True).first.wait_for(timeout=30_000)
    body = page.inner_text("body")
    assert "Samples" in body and "400" in body
    assert "offline:efficientnet-lite0" in body  # the model that really made the vectors
    shot = whole_page(page, "home-cifar10n-sample")
    assert shot.stat().st_size > 20_000


def test_the_project_picker_switches_to_the_text_project(running_app, page, whole_page):
    page.goto(running_app)
    page.get_by_role("heading", name="cifar10n-sample").wait_for(timeout=60_000)
    picker = page.get_by_role("combobox", name="Project")
    for _ in range(5):  # a rerun of the page can close the list: retry
        picker.click()
        try:
            page.get_by_role("option", name="news20-sample").click(timeout=5_000)
            page.get_by_role("heading", name="news20-sample").wait_for(timeout=15_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    else:
        raise AssertionError("could not pick news20-sample in the project picker")
    body = page.inner_text("body")
    assert "Text dataset" in body and "300" in body
    whole_page(page, "home-news20-sample")
