"""What a person sees: the started app opens on the sample project's home page."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_the_started_app_shows_the_sample_project(running_app, page, screenshot):
    page.goto(running_app)
    page.get_by_role("heading", name="cifar10n-sample").wait_for(timeout=60_000)
    page.get_by_text("Ingest report").wait_for(timeout=30_000)
    body = page.inner_text("body")
    assert "Samples" in body and "400" in body
    assert "offline:efficientnet-lite0" in body  # the model that really made the vectors
    shot = screenshot(page, "home-cifar10n-sample")
    assert shot.stat().st_size > 20_000


def test_the_project_picker_switches_to_the_text_project(running_app, page, screenshot):
    page.goto(running_app)
    page.get_by_role("heading", name="cifar10n-sample").wait_for(timeout=60_000)
    page.get_by_label("Project").click()  # a Streamlit selectbox opens a listbox of options
    page.get_by_role("option", name="news20-sample").click()
    page.get_by_role("heading", name="news20-sample").wait_for(timeout=30_000)
    body = page.inner_text("body")
    assert "Text dataset" in body and "300" in body
    screenshot(page, "home-news20-sample")
