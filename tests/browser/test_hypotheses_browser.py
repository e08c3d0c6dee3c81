"""The hypotheses page in a real browser: hypotheses from the stand-in model server, clustered with
the bundled text embedder, reviewed with the A key; the verdict is in the audit log and the rate moves."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hypotheses"))

from standin import StandIn, answer, user_text  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CAUSES = {
    "blur": ["The photo is blurred and low resolution, so the fine outline of the {c} is lost.",
             "Heavy blur at 32 pixels hides the {c}'s shape.",
             "The image is tiny and pixelated; the {c} is only a few pixels wide."],
    "clutter": ["A cluttered background with many objects distracts from the {c}.",
                "The {c} is small against a busy scene full of other things.",
                "Other objects cover most of the {c}."],
    "pose": ["The {c} is seen from an unusual angle, from above, unlike most training images.",
             "An odd viewpoint hides the features that usually identify a {c}."],
}
FIXES = {"blur": "Add blur and down-scaling augmentation so the model learns shapes at low resolution.",
         "clutter": "Collect more examples of the class in cluttered scenes.",
         "pose": "Clarify in the labelling guideline how to label objects seen from unusual viewpoints."}
TAGS = {"blur": "low_quality", "clutter": "model_error", "pose": "annotation_issue"}


def _rule():
    count = {"n": 0}

    def rule(body):
        count["n"] += 1
        i = count["n"]
        given = user_text(body).split("annotator wrote): ", 1)[1].split("\n", 1)[0]
        key = ["blur", "clutter", "pose", "blur", "clutter"][i % 5]
        variants = CAUSES[key]
        return answer(TAGS[key] if i % 7 else "ambiguous_sample", variants[i % len(variants)].format(c=given),
                      FIXES[key])
    return rule


def test_review_a_hypothesis_with_one_key(tmp_path, app_server, page, whole_page):
    import builders

    from core.hypotheses import generate, review
    from core.review import audit
    from core.store.project import Project

    project = Project.open(builders.failing_image_project(tmp_path))
    server = StandIn(_rule(), models=("qwen2.5vl:7b",)).start()
    try:
        result = generate.generate(project, server.url, "qwen2.5vl:7b", limit=30)
    finally:
        server.stop()
    assert result["generated"] == 30 and result["dimensions"]["cause"]["clusters"] >= 2
    for j, row in review.board(project).head(6).iterrows():
        review.review(project, int(row["hypothesis_id"]), "agree" if j % 3 else "disagree", "bob")

    with app_server([project.path]) as url:
        page.goto(url + "/hypotheses")
        name = page.get_by_role("textbox", name="Your name").first
        name.fill("alice")
        name.press("Enter")
        page.get_by_text("What to do about it").wait_for(timeout=90_000)
        page.wait_for_timeout(1500)
        shown = page.locator(".stMain h3").first.inner_text()
        whole_page(page, "hypotheses-page")
        page.get_by_role("heading", name="Why did it fail?").first.click()  # focus on the page, not a field
        page.keyboard.press("a")
        page.get_by_text("agree on hypothesis").wait_for(timeout=60_000)
        page.wait_for_function("before => document.querySelector('.stMain h3').innerText !== before",
                               arg=shown, timeout=60_000)
        whole_page(page, "hypotheses-after-agree")
    events = audit.read_events(project, kinds=[review.KIND])
    assert events[-1].actor == "alice" and events[-1].payload["verdict"] == "agree"
