"""core.views.overview: the overview page's data — the map's drawn subset and colouring, hover
text, selections on the map, the slices table, class imbalance, domain gaps, representation
comparison.

Runs are stored in the real run format (builders.save_overview_run: core.analysis.runs.save_run
with core.slices.slice_table and the analysis' own slices frame) over a small synthetic project, so
these tests take seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from builders import OVERVIEW_CLASSES, overview_project, save_overview_run
from core.review import decisions
from core.store.project import Project
from core.views import overview as ov


@pytest.fixture()
def project(tmp_path) -> Project:
    return overview_project(tmp_path / "overview-project")


def test_every_sample_is_loaded_with_labels_in_force_and_metadata(project):
    decisions.decide(project, "s001", "relabel", reviewer="ann", label="cat")
    data = ov.load_overview(project)
    points = data.points
    assert len(points) == 60 and points["id"].is_unique
    row = points.set_index("id").loc["s001"]
    assert (row["given_label"], row["current_label"], row["status"]) == ("dog", "cat", "relabelled")
    assert {"meta.site", "meta.age", "split", "text", "slice", "x", "y", "drawn", "hover"} <= set(points.columns)
    assert "neighbour_ids" not in points.columns  # the map never reads the per-sample lists
    assert data.modality == "text" and data.has_map and data.detectors == ["det_confident", "det_outliers"]
    assert points["drawn"].all()  # 60 samples: all drawn
    assert list(data.class_table["class"]) == OVERVIEW_CLASSES
    assert data.domain_gaps["site"].iloc[0]["auroc"] == pytest.approx(0.93)


def test_colour_choices_cover_slices_labels_score_detectors_and_metadata(project):
    options = ov.colour_options(ov.load_overview(project).points)
    assert options["Slice"] == "slice" and options["Given label"] == "given_label"
    assert options["Current label"] == "current_label" and options["Flag score"] == "score"
    assert options["Split"] == "split" and options["Detector: outliers"] == "det_outliers"
    assert options["Metadata: site"] == "meta.site" and options["Metadata: age"] == "meta.age"


def test_map_colours_slices_by_error_rank_and_scores_on_a_scale(project):
    data = ov.load_overview(project)
    by_slice = ov.map_data(data, "slice")
    assert not by_slice.continuous and by_slice.drawn == by_slice.total == 60
    assert by_slice.order[0].startswith("#1 mostly cat (0)")  # slice 0 carries the errors: ranked first
    assert ov.map_data(data, "score").continuous
    assert ov.map_data(data, "meta.age").continuous and not ov.map_data(data, "meta.site").continuous


def test_hover_text_escapes_the_data_and_shows_the_evidence(project):
    data = ov.load_overview(project)
    hover = data.points.set_index("id").loc["s000", "hover"]
    assert "<b>s000</b>" in hover and "&lt;b&gt;cat&lt;/b&gt;" in hover and "<b>cat</b>" not in hover
    assert "rank 1" in hover and "flagged" in hover and "suggests dog" in hover and "slice #1" in hover
    assert hover.count("<br>") <= 8  # the snippet is cut, not the whole text


def test_drawing_is_thinned_per_slice_but_never_the_analysis():
    slice_ids = np.repeat([0, 1, 2], [500, 60, 40])
    points = pd.DataFrame({"slice_id": slice_ids, "drawn": np.arange(600) != 7})
    drawn = ov.drawn_rows(points, max_points=150)
    assert not drawn[7]  # only rows the run marked drawn
    kept = pd.Series(slice_ids[drawn]).value_counts()
    assert kept[0] == 125 and kept[1] == 50 and kept[2] == 40  # in proportion; small slices stay visible
    assert ov.drawn_rows(points, max_points=1_000).sum() == 599


def test_a_sampled_map_carries_the_density_of_every_sample(project):
    data = ov.load_overview(project)
    assert ov.map_data(data, "slice").density is None  # all 60 drawn: nothing to shade
    points = data.points.copy()
    points["drawn"] = np.arange(len(points)) < 10  # ten drawn, fifty not
    sampled = ov.map_data(ov.Overview(run=data.run, modality=data.modality, points=points, slices=data.slices,
                                      class_table=data.class_table), "slice")
    assert sampled.drawn == 10 and sampled.total == 60
    density = sampled.density
    assert density is not None and density.total == 60 and np.nansum(density.counts) == 60


def test_density_counts_each_sample_in_its_cell():
    x = np.r_[np.zeros(30), np.ones(5), [np.nan]]
    y = np.r_[np.zeros(30), np.ones(5), [0.0]]
    density = ov.map_density(x, y, bins=2)
    assert density.total == 35  # the sample without a place is left out
    assert density.counts[0, 0] == 30 and density.counts[1, 1] == 5  # rows follow y, columns x
    assert np.isnan(density.counts[0, 1]) and np.isnan(density.counts[1, 0])  # empty cells stay clear
    assert density.shade[0, 0] == pytest.approx(np.log10(30))
    assert list(density.x) == [0.25, 0.75] and list(density.y) == [0.25, 0.75]


def test_a_box_or_lasso_selects_every_sample_inside_drawn_or_not(project):
    points = ov.load_overview(project).points.copy()
    points["drawn"] = False  # nothing drawn: a region still selects the samples in it
    in_slice_1 = set(points.loc[points["slice_id"] == 1, "id"])
    box = ov.selected_ids(points, {"box": [{"x": [5, 15], "y": [-10, 10]}], "lasso": [], "points": []})
    assert set(box) == in_slice_1
    lasso = ov.selected_ids(points, {"lasso": [{"x": [5, 15, 15, 5], "y": [-10, -10, 10, 10]}]})
    assert set(lasso) == in_slice_1
    triangle = ov.selected_ids(points, {"lasso": [{"x": [5, 15, 5], "y": [-10, -10, 10]}]})
    assert 0 < len(triangle) < len(in_slice_1)
    ranks = points.set_index("id").loc[box, "rank"].tolist()
    assert ranks == sorted(ranks)  # most suspicious first
    clicked = ov.selected_ids(points, {"points": [{"customdata": ["s007"]}, {"customdata": ["s002"]}]})
    assert set(clicked) == {"s007", "s002"}
    assert ov.selected_ids(points, None) == [] and ov.selected_ids(points, {"box": [], "lasso": [], "points": []}) == []


def test_slices_table_is_ranked_by_error_and_readable(project):
    data = ov.load_overview(project)
    table = ov.slices_table(data.slices)
    assert list(table["rank"]) == sorted(table["rank"]) and table.iloc[0]["slice"] == 0
    assert table.iloc[0]["error rate"] == pytest.approx(1.0)
    assert sorted(ov.slice_members(data.points, 0)) == [f"s{i:03d}" for i in range(0, 60, 3)]
    bars = ov.slice_bars(data.slices)
    assert set(bars["measure"]) == {"error rate", "flag rate"} and bars.iloc[0]["slice"].startswith("#1 ")
    assert ov.class_mix(data.slices.iloc[0]["class_mix"]).iloc[0]["class"] == "cat"
    overrep = json.dumps([{"column": "site", "value": "north", "share_in_slice": 0.8, "share_overall": 0.5}])
    assert ov.describe_overrepresentation(overrep) == "site=north (80% vs 50%)"
    assert not table["finding"].str.startswith("structured error").any()
    assert list(table.columns[:4]) == ["rank", "slice", "name", "finding"]  # the finding beside the name
    marked = data.slices.assign(structured_error=data.slices["slice_id"] == 1)
    findings = ov.slices_table(marked).set_index("slice")["finding"]
    assert findings[1].startswith("structured error") and not findings.drop(1).str.startswith("structured").any()


def test_slice_names_are_shortened_for_legends():
    assert ov.short_slice_name("frog 31% / bird 20%; 35% annotator3=frog") == "frog 31% / bird 20%"
    assert len(ov.short_slice_name("x" * 200)) == ov.SHORT_NAME


def test_class_imbalance_and_domain_gap_in_words():
    table = pd.DataFrame({"class": ["a", "b", "c"], "count": [90, 30, 10], "flag_rate": [0.1, 0.1, 0.5],
                          "flag_rate_ratio": [0.7, 0.7, 2.0]})
    summary = ov.imbalance_summary(table)
    assert (summary["largest"], summary["smallest"], summary["ratio"]) == ("a", "c", 9.0)
    assert summary["often_flagged"] == ["c"]
    assert [ov.gap_verdict(a) for a in (0.5, 0.7, 0.8, 0.95)] == [
        "indistinguishable", "some shift", "clear shift", "separate domains"]


def test_representations_are_compared_only_when_more_than_one_has_a_run(project):
    data = ov.load_overview(project)
    assert ov.compare_representations(project, data) is None
    n = len(data.points)
    first = project.db.open_table(data.run.evidence_table).to_pandas().set_index("id")["det_outliers"]
    # A second representation that finds the opposite outliers: the typical become outlying.
    save_overview_run(project, 3, "clip", outliers=(1.0 - first.reindex(project.sample_ids())).to_numpy(), seed=1)
    shown = ov.load_overview(project, data.run.run_id)
    comparison = ov.compare_representations(project, shown)
    assert comparison is not None and comparison.representations == ["minilm", "clip"]
    assert comparison.per_sample["disagrees"].sum() >= 2 * int(0.05 * n)
    top = comparison.per_sample.iloc[0]
    assert top["disagrees"] and top["rank_spread"] > 0.4
    assert set(comparison.per_slice["slice_id"]) == {0, 1, 2} and comparison.per_slice["name"].notna().all()


def test_gallery_rows_carry_a_snippet_for_texts(project):
    data = ov.load_overview(project)
    rows = ov.gallery(data, ["s003", "s000", "nope"], limit=2)
    assert list(rows["id"]) == ["s003", "s000"]
    assert rows.iloc[0]["snippet"].startswith("sample 3 about a <b>cat</b> word")
    assert len(rows.iloc[0]["snippet"]) <= ov.GALLERY_SNIPPET
