"""What a person sees on the overview page of the sample projects: the map, the slices and
classes; a lasso on the map selects samples, shows them, and sends them to triage through core."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from core.store.project import Project
from core.store.selections import list_selections

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real browser on the embedded sample projects


def _open_overview(page, url: str, project: str = "cifar10n-sample") -> None:
    """Open the app as a user does (the project picker lives in app.py), then the Overview page."""
    page.goto(url)
    page.get_by_role("heading", name="cifar10n-sample").wait_for(timeout=60_000)
    if project != "cifar10n-sample":
        _pick_project(page, project)
    page.get_by_role("link", name="Overview").click()
    page.get_by_role("heading", name="Overview").wait_for(timeout=60_000)
    page.get_by_text(f"{project} · analysis of").wait_for(timeout=60_000)
    page.get_by_role("heading", name="Classes").wait_for(timeout=60_000)
    page.locator(".js-plotly-plot .nsewdrag").first.wait_for(timeout=30_000)


def _pick_project(page, project: str) -> None:
    """Choose a project in the sidebar picker (retried: a rerun of the page can close the list)."""
    picker = page.get_by_role("combobox", name="Project")
    for _ in range(5):
        picker.click()
        option = page.get_by_role("option", name=project)
        try:
            option.wait_for(timeout=5_000)
            option.click(timeout=5_000)
            page.get_by_role("heading", name=project).wait_for(timeout=15_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    raise AssertionError(f"could not pick {project} in the project picker")


def _lasso(page, fraction: tuple[float, float, float, float]) -> None:
    """Draw a lasso (the map's default drag mode) over a rectangle of the map, in plot fractions."""
    plot = page.locator(".js-plotly-plot .nsewdrag").first
    box = plot.bounding_box()
    left, top, right, bottom = fraction
    corners = [(left, top), (right, top), (right, bottom), (left, bottom), (left, top + 0.01)]
    xy = [(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy) for fx, fy in corners]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_overview_of_the_image_sample(running_app, page, whole_page):
    _open_overview(page, running_app)
    body = page.inner_text("body")
    assert "Slices ranked by error" in body and "Domain gap between sources" in body
    assert "Wrong labels by metadata value" in body and "More wrong labels than chance gives: 0 of them." in body
    assert "All 400 samples drawn" in body
    # the legend / bars name slices by their class mix: "#1 frog 31% / bird 20%" or "#1 mostly horse (52%)"
    assert re.search(r"#1 (\w+ \d+%|mostly \w+ \(\d+%\))", body)
    shot = whole_page(page, "overview-cifar10n-sample")
    assert shot.stat().st_size > 50_000


def test_a_lasso_on_the_map_sends_its_samples_to_triage(running_app, sample_projects, page, whole_page):
    project = Project.open(next(p for p in sample_projects if p.name == "cifar10n-sample"))
    before = {s.selection_id for s in list_selections(project)}
    _open_overview(page, running_app)
    selected = page.get_by_text(re.compile(r"^\d[\d,]* samples selected"))
    # The drag layer can be in the page before Plotly listens on it (seen once on a loaded
    # 2-core machine: the lasso was drawn and nothing was selected), so the lasso is drawn
    # again, over the same rectangle, when no selection shows up.
    for _ in range(3):
        _lasso(page, (0.05, 0.05, 0.95, 0.95))
        try:
            selected.wait_for(timeout=20_000)
            break
        except PlaywrightTimeout:
            continue
    else:
        raise AssertionError("three lassos over the whole map selected nothing")
    count = int(re.match(r"([\d,]+)", selected.inner_text()).group(1).replace(",", ""))
    assert 0 < count <= 400
    page.locator("[data-testid='stImage'] img").first.wait_for(timeout=30_000)  # the thumbnails of the selection
    whole_page(page, "overview-cifar10n-sample-selection")
    page.get_by_role("button", name=re.compile(rf"Send {count:,} samples to triage")).click()
    page.wait_for_function("() => !document.body.innerText.includes('samples selected')", timeout=30_000)
    added = [s for s in list_selections(project) if s.selection_id not in before]
    assert len(added) == 1 and len(added[0].ids) == count and added[0].source.startswith("overview map")


def test_overview_of_the_text_sample(running_app, page, whole_page):
    _open_overview(page, running_app, "news20-sample")
    body = page.inner_text("body")
    assert "Slices ranked by error" in body and "All 300 samples drawn" in body
    assert re.search(r"#1 ([a-z.]+ \d+%|mostly [a-z.]+ \(\d+%\))", body)  # slices named by their newsgroup mix
    whole_page(page, "overview-news20-sample")


def _send_first_row(page, url: str, heading: str, table: int, button: str, says: str, whole_page, shot: str) -> None:
    """On the overview: select the first row of the ``table``-th table (0-based) under ``heading``,
    check the page ``says`` it, take a screenshot and press ``button``, which opens triage."""
    page.goto(url)
    page.get_by_role("link", name="Overview").click()
    page.get_by_role("heading", name=heading).wait_for(timeout=90_000)
    grid = page.locator("[data-testid='stDataFrame']").nth(table)
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 18, box["y"] + 52)  # the first row's selection box, below the header
    send = page.get_by_role("button", name=button)
    send.wait_for(timeout=30_000)
    assert says in page.inner_text("body")
    whole_page(page, shot)
    send.click()
    page.get_by_role("heading", name="Triage").wait_for(timeout=60_000)


def _annotated_reports(folder) -> Project:
    """600 texts in three classes with imported vectors that cluster by the true class; five
    readers assigned at random, and reader E labelled 40 % of the 'benign' reports it read as
    'malignant' (a mistake spread over the whole of the class, so no slice holds it)."""
    import numpy as np

    import builders
    from core import api

    rng = np.random.default_rng(0)
    names = ["benign", "malignant", "normal"]
    truth = [names[i % 3] for i in range(600)]
    reader = rng.choice(list("ABCDE"), len(truth))
    labels = list(truth)
    read_by_e = [i for i, (t, r) in enumerate(zip(truth, reader)) if r == "E" and t == "benign"]
    for i in rng.choice(read_by_e, int(0.4 * len(read_by_e)), replace=False):
        labels[i] = "malignant"
    rows = [{"id": f"s{i:03d}", "text": f"report {i}", "label": labels[i], "metadata": {"annotator": f"reader {r}"}}
            for i, r in enumerate(reader)]
    project = builders.add_rows(Project.create(folder / "reports"), rows)
    builders.import_vectors(project, "mine", [r["id"] for r in rows], builders.clustered_vectors(truth, spread=0.5))
    api.analyse(project)
    return project


def test_a_readers_shared_mistake_goes_to_triage_as_one_selection(tmp_path, app_server, page, whole_page):
    from core.analysis import runs

    project = _annotated_reports(tmp_path)
    top = runs.metadata_groups(project)[1][0]
    assert (top["value"], top["significant"]) == ("reader E", True) and top["finding_members"]
    members = top["finding_members"]
    with app_server([project.path]) as url:
        # the slices' table comes first
        _send_first_row(page, url, "Wrong labels by metadata value", 1,
                        f"Send its {len(members)} flagged samples to triage", "annotator = reader E",
                        whole_page, "overview-metadata-group")
    saved = list_selections(project)
    assert len(saved) == 1 and sorted(saved[0].ids) == sorted(members)
    assert saved[0].source.startswith("overview metadata group annotator=reader E")


def _rated_reports(folder) -> Project:
    """600 texts in three classes with imported vectors that cluster by the true class, each rated
    by three pathologists; pathologist_b labels 45 % of the adenomas 'carcinoma', and the labels in
    use are pathologist_b's."""
    import json

    import numpy as np

    import builders
    from core import api
    from core.ingest import IngestOptions, ingest

    rng = np.random.default_rng(1)
    names = ["adenoma", "carcinoma", "normal"]
    truth = [names[i % 3] for i in range(600)]
    rows = []
    for i, label in enumerate(truth):
        said_b = "carcinoma" if label == "adenoma" and rng.random() < 0.45 else label
        rows.append({"id": f"r{i:03d}", "text": f"report {i}", "label": said_b, "pathologist_a": label,
                     "pathologist_b": said_b, "pathologist_c": label})
    texts = folder / "rated.jsonl"
    texts.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    project = Project.create(folder / "rated")
    ingest(project, IngestOptions(texts=texts, annotator_columns=["pathologist_a", "pathologist_b", "pathologist_c"]))
    builders.import_vectors(project, "mine", [r["id"] for r in rows], builders.clustered_vectors(truth, spread=0.5),
                            folder=folder / "v")
    api.analyse(project)
    return project


def test_an_annotators_habit_goes_to_triage_as_one_selection(tmp_path, app_server, page, whole_page):
    from core.analysis import runs

    project = _rated_reports(tmp_path)
    (habit,) = runs.get_run(project).record["annotator_habits"]
    assert (habit["annotator"], habit["true"], habit["said"]) == ("pathologist_b", "adenoma", "carcinoma")
    members = habit["members"]
    with app_server([project.path]) as url:
        # after the slices' and the metadata values' tables
        _send_first_row(page, url, "Annotators' habits", 2, f"Send its {len(members)} samples to triage",
                        "pathologist_b labels", whole_page, "overview-annotator-habit")
    saved = list_selections(project)
    assert len(saved) == 1 and sorted(saved[0].ids) == sorted(members)
    assert saved[0].source.startswith("overview annotator habit pathologist_b: adenoma -> carcinoma")
