"""What a person sees: three samples triaged with the keyboard only, then the three events
found on the audit page."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real browser on the embedded sample projects


def _shown_sample(page) -> str:
    return page.locator(".stMain h3").first.inner_text().strip()  # the sample id heading


def _wait_for_another_sample(page, before: str) -> str:
    page.wait_for_function(
        "(before) => { const h = document.querySelector('.stMain h3'); return h && h.innerText.trim() !== before; }",
        arg=before, timeout=60_000)
    return _shown_sample(page)


def test_three_samples_triaged_by_keyboard_show_up_in_the_audit_log(running_app, page, screenshot, whole_page):
    page.goto(running_app)
    page.get_by_role("heading", name="cifar10n-sample").wait_for(timeout=60_000)
    name = page.get_by_role("textbox", name="Your name")
    name.fill("kim")
    name.press("Enter")  # submits the name form; the form then gives way to the name
    page.get_by_text("Change name").wait_for(timeout=30_000)
    page.get_by_role("link", name="Triage").click()
    page.get_by_role("button", name="Keep label").wait_for(timeout=90_000)
    page.locator(".stMain h3").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    page.get_by_role("heading", name="Triage").first.click()  # focus on the page, not in an input
    decided = []
    for key in ("k", "m", "x"):  # keep, ambiguous, exclude
        before = _shown_sample(page)
        page.keyboard.press(key)
        _wait_for_another_sample(page, before)
        page.get_by_text(re.compile(rf"on {re.escape(before)}\.")).wait_for(timeout=30_000)
        decided.append(before)
        if key == "k":
            page.wait_for_timeout(2500)  # let the queue grid redraw
            screenshot(page, "triage-cifar10n-keyboard")
            whole_page(page, "triage-cifar10n-evidence")  # the evidence and neighbours below the fold
            page.set_viewport_size({"width": 1400, "height": 1000})
    assert len(set(decided)) == 3
    body = page.inner_text("body")
    assert "3 of" in body and "flagged samples reviewed" in body
    page.get_by_role("link", name="Audit log").click()
    page.get_by_text("Chain verified").wait_for(timeout=60_000)
    page.get_by_role("heading", name="One sample's history").wait_for(timeout=30_000)
    page.wait_for_timeout(1500)
    body = page.inner_text("body")
    assert "Chain verified: 4 events" in body  # kim's automatic reviewer grant + three decisions
    page.get_by_role("combobox", name="Reviewer").click()
    page.get_by_role("option", name="kim").click()
    page.get_by_text("4 events", exact=True).wait_for(timeout=30_000)
    shot = screenshot(page, "audit-cifar10n-after-keyboard")
    for sample_id, kind in zip(decided, ("keep", "ambiguous", "exclude")):
        page.get_by_role("combobox", name="Sample", exact=True).click()
        page.get_by_role("option", name=sample_id, exact=True).click()
        line = page.get_by_text(re.compile(rf"· kim · {kind}, label"))
        line.wait_for(timeout=30_000)
        assert line.count() == 1
    assert shot.stat().st_size > 20_000


def test_triage_opened_before_choosing_a_name_offers_the_name_form(running_app, page, screenshot):
    """Sidebar and page both show the name form (no widget-key clash); naming oneself there works."""
    page.goto(running_app)
    page.get_by_role("heading", name="cifar10n-sample").wait_for(timeout=60_000)
    page.get_by_role("link", name="Triage").click()
    page.get_by_text("Choose who you are before deciding.").wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    assert "DuplicateElementKey" not in page.inner_text("body")
    assert page.get_by_role("textbox", name="Your name").count() == 2
    screenshot(page, "triage-before-name")
    box = page.locator("[data-testid=stMain]").get_by_role("textbox", name="Your name")
    box.fill("dana")
    box.press("Enter")
    page.get_by_role("button", name="Keep label").wait_for(timeout=90_000)
    assert "dana" in page.inner_text("[data-testid=stSidebar]")
