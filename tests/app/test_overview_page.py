"""AppTest of the overview page: the map, the slices ranked by error, the class figures, domain
gaps, the representation comparison, and the drawing's downsampling at large N.

Selecting on the map or in the slices table needs a browser (tests/browser/test_overview_browser.py).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from core.analysis import runs
from core.store.project import Project
from builders import overview_project

REPO = Path(__file__).resolve().parents[2]


def _run(projects: str, monkeypatch) -> AppTest:
    monkeypatch.setenv("AMEND_PROJECTS", projects)
    app = AppTest.from_file(str(REPO / "pages/overview.py"), default_timeout=120)
    app.run()
    return app


def _map_chart(app: AppTest) -> list[dict]:
    charts = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    return next(c["data"] for c in charts if any(t["type"] == "scattergl" for t in c["data"]))


def _array(value) -> np.ndarray:
    """A plotly figure's array, as JSON lists or as plotly's typed array ({dtype, bdata, shape})."""
    if isinstance(value, dict):
        shape = [int(n) for n in str(value.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).reshape(shape)
    return np.array(value, dtype=float)


def _map_traces(app: AppTest) -> list[dict]:
    return [t for t in _map_chart(app) if t["type"] == "scattergl"]


def test_overview_of_the_image_sample_shows_map_slices_classes_and_gaps(project_copy, monkeypatch):
    project = project_copy("cifar10n-sample")
    app = _run(str(project.path), monkeypatch)
    assert not app.exception
    assert app.title[0].value == "Overview"
    assert [s.value for s in app.subheader] == ["Map", "Slices ranked by error", "Wrong labels by metadata value",
                                                "Classes", "Domain gap between sources"]
    colour = app.selectbox(key="overview.colour_by")
    assert colour.value == "Slice"
    assert {"Given label", "Current label", "Flag score", "Metadata: annotator1", "Split"} <= set(colour.options)

    _, slices = runs.slices(project)
    traces = _map_traces(app)
    assert sum(len(t["hovertext"]) for t in traces) == 400  # small project: every sample drawn
    assert traces[0]["name"].startswith("#1 ") and len(traces) == len(slices)
    assert "score" in traces[0]["hovertext"][0] and "images/" in traces[0]["hovertext"][0]

    frames = [f.value for f in app.dataframe]
    table = next(f for f in frames if "error rate" in f.columns)
    assert list(table["rank"]) == list(range(1, len(slices) + 1))
    assert list(table["name"]) == list(slices["name"])
    classes = next(f for f in frames if "flag_rate_ratio" in f.columns)
    assert len(classes) == 10 and classes["count"].sum() == 400
    gaps = next(f for f in frames if "auroc" in f.columns)
    assert set(gaps[["source_a", "source_b"]].iloc[0]) == {"train", "test"}
    assert any("Balanced: every class has 40 samples" in m.value for m in app.markdown)
    # the header says how many labels the analysis expects to be wrong: the sum of the error probabilities
    _, frame = runs.evidence(project)
    expected = f"(about {frame['error_probability'].sum():,.0f} labels expected wrong)"
    assert any(expected in c.value for c in app.caption)


def test_the_metadata_values_are_listed_worst_first_with_their_findings(project_copy, monkeypatch):
    project = project_copy("cifar10n-sample")
    groups = runs.metadata_groups(project)[1]
    app = _run(str(project.path), monkeypatch)
    assert not app.exception
    table = next(f.value for f in app.dataframe if "about wrong" in f.value.columns)
    # every value of the sample's metadata (three annotators' labels, the split), as recorded, worst first
    assert list(zip(table["field"], table["value"])) == [(g["column"], str(g["value"])) for g in groups]
    assert {"annotator1", "annotator2", "annotator3", "split"} == set(table["field"])
    assert list(table["p (adjusted)"]) == sorted(table["p (adjusted)"])  # the surest first
    assert list(table["more than chance"]) == [g["significant"] for g in groups]
    passing = int(table["more than chance"].sum())
    assert any(f"More wrong labels than chance gives: {passing} of them." in c.value for c in app.caption)
    with_finding = table[table["finding"] != ""]
    assert (with_finding["more than chance"]).all()
    assert list(with_finding["finding samples"]) == [len(g["finding_members"]) for g in groups if g["finding"]]


def test_colouring_by_a_metadata_column_redraws_the_map(project_copy, monkeypatch):
    project = project_copy("cifar10n-sample")
    app = _run(str(project.path), monkeypatch)
    app.selectbox(key="overview.colour_by").select("Metadata: annotator1").run()
    assert not app.exception
    names = {t["name"] for t in _map_traces(app)}
    assert {"airplane", "cat", "truck"} <= names
    app.selectbox(key="overview.colour_by").select("Flag score").run()
    traces = _map_traces(app)
    assert len(traces) == 1 and traces[0]["marker"]["colorbar"]["title"]["text"] == "Flag score"


def test_a_second_representation_brings_the_comparison(project_copy, monkeypatch):
    project = project_copy("news20-sample")
    run, evidence = runs.evidence(project)
    _, slices = runs.slices(project)
    first = project.representation().name
    ids, vectors = project.vectors()
    rng = np.random.default_rng(0)
    project.import_vectors("minilm-noisy", ids, vectors + rng.normal(0, 0.5, vectors.shape), "test:noisy", {})
    other = evidence.copy()
    other["det_outliers"] = 1.0 - other["det_outliers"]  # what was typical is now outlying
    runs.save_run(project, runs.new_run_id(), other, slices, run.record, "minilm-noisy")
    app = _run(str(project.path), monkeypatch)
    assert not app.exception
    assert "Representations compared" in [s.value for s in app.subheader]
    run_picker = app.sidebar.selectbox(key="overview.run")
    assert len(run_picker.options) == 2
    frames = [f.value for f in app.dataframe]
    per_slice = next(f for f in frames if "disagree_rate" in f.columns)
    assert len(per_slice) == len(slices)
    per_sample = next(f for f in frames if "rank_spread" in f.columns)
    assert len(per_sample) > 0 and {f"rank_{first}", "rank_minilm-noisy"} <= set(per_sample.columns)


def test_a_large_project_draws_a_sample_but_counts_every_sample(tmp_path, monkeypatch):
    overview_project(tmp_path / "large", n=24_000, n_slices=4)
    app = _run(str(tmp_path / "large"), monkeypatch)
    assert not app.exception
    assert any("Drawing 20,000 of 24,000 samples" in c.value for c in app.caption)
    assert sum(len(t["hovertext"]) for t in _map_traces(app)) == 20_000
    shading = [t for t in _map_chart(app) if t["type"] == "heatmap"]
    assert len(shading) == 1 and shading[0]["hoverinfo"] == "skip"
    cells = _array(shading[0]["z"])  # log10 of the samples per cell
    assert round(float(np.nansum(10 ** cells))) == 24_000  # every sample, drawn or not
    table = next(f.value for f in app.dataframe if "error rate" in f.value.columns)
    assert table["size"].sum() == 24_000


def test_the_page_says_what_to_do_without_a_project_or_an_analysis(tmp_path, monkeypatch):
    app = _run("", monkeypatch)
    assert not app.exception and "No project is open" in app.warning[0].value
    project = Project.create(tmp_path / "fresh")
    app = _run(str(project.path), monkeypatch)
    assert not app.exception and "No analysis yet" in app.info[0].value
