"""core.views.triage: the queue, the evidence in words, labels in force from decisions, sample views
and prefetch, on synthetic frames and on a real copy of the sample projects."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from core.analysis.runs import flags as run_flags
from core.review import decisions, labels
from core.views import triage, words


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["a", "b", "c", "d", "e"],
        "rank": [3, 1, 5, 2, 4],
        "score": [0.7, 0.9, 0.1, 0.8, 0.3],
        "flagged": [True, True, False, True, True],
        "given_label": ["cat", "dog", "cat", "cat", "fox"],
        "current_label": ["cat", "dog", "cat", "dog", "fox"],
        "suggested_label": ["dog", "cat", None, "dog", None],
        "status": ["unreviewed", "unreviewed", "unreviewed", "relabelled", "unreviewed"],
        "slice_id": [0, 1, 0, 1, 2],
        "det_confident": [0.9, 0.2, 0.1, 0.7, 0.4],
        "det_outliers": [0.1, 0.8, 0.0, 0.2, 0.6],
    })


def test_queue_is_flagged_best_first_and_every_filter_narrows_it():
    frame = _frame()
    assert triage.build_queue(frame)["id"].tolist() == ["b", "d", "a", "e"]
    assert triage.build_queue(frame, triage.QueueFilter(flagged_only=False))["id"].tolist() == ["b", "d", "a", "e", "c"]
    assert triage.build_queue(frame, triage.QueueFilter(classes=("fox",)))["id"].tolist() == ["e"]
    # given, current or suggested label counts: "d" was relabelled to dog, "a" is suggested dog
    assert triage.build_queue(frame, triage.QueueFilter(classes=("dog",)))["id"].tolist() == ["b", "d", "a"]
    assert triage.build_queue(frame, triage.QueueFilter(slices=(1,)))["id"].tolist() == ["b", "d"]
    assert triage.build_queue(frame, triage.QueueFilter(detectors=("outliers",)))["id"].tolist() == ["b", "e"]
    assert triage.build_queue(frame, triage.QueueFilter(reviewed=True))["id"].tolist() == ["d"]
    assert triage.build_queue(frame, triage.QueueFilter(reviewed=False))["id"].tolist() == ["b", "a", "e"]
    assert triage.build_queue(frame, triage.QueueFilter(ids=("e", "a", "c")))["id"].tolist() == ["a", "e"]
    with pytest.raises(Exception, match="did not run"):
        triage.build_queue(frame, triage.QueueFilter(detectors=("duplicates",)))
    progress = triage.queue_progress(frame, triage.build_queue(frame, triage.QueueFilter(slices=(1,))))
    assert (progress.flagged, progress.flagged_reviewed, progress.queue, progress.queue_reviewed) == (4, 1, 2, 1)
    assert progress.sentence() == "1 of 4 flagged samples reviewed; 1 of 2 in this queue."


def test_stepping_through_the_queue_clamps_and_prefetches_ahead():
    ids = ["a", "b", "c", "d"]
    assert triage.step(ids, "b", 1) == "c"
    assert triage.step(ids, "d", 1) == "d"
    assert triage.step(ids, "a", -1) == "a"
    assert triage.step(ids, "gone", 1) == "a"
    assert triage.step([], None, 1) is None
    assert triage.following(ids, "b", 2) == ["c", "d", "a"]
    assert triage.following(ids, None, 2) == ["a", "b"]


def test_evidence_in_words_says_what_each_detector_saw():
    row = {"label_analysed": "cat", "current_label": "cat", "suggested_label": "dog",
           "neighbour_labels": ["dog"] * 7 + ["cat"] * 2 + ["fox"], "neighbour_votes_suggested": 7,
           "neighbour_votes_own": 2, "neighbour_similarities": [0.99] + [0.5] * 9,
           "neighbour_ids": [f"n{i}" for i in range(10)], "p_label": 0.12, "p_suggested": 0.81,
           "det_neighbours_vote": 0.7, "det_confident": 0.88, "det_duplicates": 0.95}
    said = {name: sentence for name, _, sentence in
            triage.evidence_in_words(row, ["neighbours_vote", "confident", "duplicates"])}
    assert said["neighbours_vote"] == "7 of its 10 nearest neighbours are labelled dog; 2 share its label cat."
    assert said["confident"] == "A cross-validated model gives its label cat only 12% and dog 81%."
    assert said["duplicates"] == "A near-duplicate (n0, cosine 0.990) is labelled dog."
    ordered = [name for name, _, _ in triage.evidence_in_words(row, ["neighbours_vote", "confident", "duplicates"])]
    assert ordered == ["duplicates", "confident", "neighbours_vote"]  # strongest first
    assert "gives its label 'cat' 12%; 'dog' gets 81%" in triage.confidence_in_words(row)


def test_annotators_are_said_with_their_votes_and_what_weighing_them_gives():
    row = {"label_analysed": "cat", "current_label": "cat", "det_annotators": 0.83}
    votes = {"cat": 2, "dog": 1}
    weighed = {"annotators": {"posterior": "Dawid-Skene, the model's probabilities as prior"}}
    said = dict((name, sentence) for name, _, sentence in
                triage.evidence_in_words(row, ["annotators"], weighed, annotator_votes=votes))
    assert said["annotators"] == ("Of 3 annotators, 2 said cat, 1 said dog; weighing each annotator's record and "
                                  "the model, its label cat is wrong with probability 83%.")
    plain = dict((name, sentence) for name, _, sentence in
                 triage.evidence_in_words(row, ["annotators"], {"annotators": {"posterior": None}},
                                          annotator_votes=votes))
    assert plain["annotators"] == "Of 3 annotators, 2 said cat, 1 said dog."


def test_where_p_wrong_comes_from_follows_who_decided_the_sample():
    weighed = {"annotators": {"posterior": "Dawid-Skene, the model's probabilities as prior"}}
    assert "annotators' labels" in triage.error_probability_source({"cat": 2, "dog": 1}, weighed)
    assert "confident learning" in triage.error_probability_source({"cat": 1}, weighed)  # one annotator
    assert "confident learning" in triage.error_probability_source({"cat": 3}, {"annotators": {"posterior": None}})
    assert "confident learning" in triage.error_probability_source(None, weighed)


def test_labels_in_force_from_decisions_match_core_labels(project_copy):
    project = project_copy("news20-sample")
    run, base = run_flags(project)
    first, second = base["id"].iloc[0], base["id"].iloc[1]
    other = next(label for label in project.labels() if label != base["given_label"].iloc[0])
    decisions.decide(project, first, "relabel", "alice", label=other, expected_event=0)
    decisions.decide(project, first, "keep", "bob")
    decisions.decide(project, second, "exclude", "alice")
    from core.review import audit

    mine = triage.apply_decisions(base, audit.read_events(project, kinds=["decision"])).set_index("id")
    truth = labels.current_labels(project).set_index("id")
    for sid in (first, second, base["id"].iloc[2]):
        assert mine.loc[sid, "current_label"] == truth.loc[sid, "current_label"]
        assert mine.loc[sid, "status"] == truth.loc[sid, "status"]
    assert [mine.loc[s, "last_event_id"] for s in (first, second)] == [truth.loc[s, "last_event_id"]
                                                                       for s in (first, second)]
    assert pd.isna(mine.loc[base["id"].iloc[2], "last_event_id"])
    assert mine.loc[first, "current_label"] == other and mine.loc[first, "status"] == "kept"
    assert base.set_index("id").loc[first, "status"] == "unreviewed"  # the input is untouched


def test_image_view_is_verified_and_a_moved_file_is_reported(project_copy):
    project = project_copy("cifar10n-sample")
    run, flags = run_flags(project)
    context = triage.ViewContext.build(project, run, flags)
    row = flags.iloc[0].to_dict()
    view = triage.prepare_view(project, row, context)
    assert view.image is not None and view.problem is None and view.modality == "image"
    assert len(view.neighbours) == min(8, len(row["neighbour_ids"]))
    assert all(n.thumbnail is not None and max(n.thumbnail.size) <= triage.THUMBNAIL_PX for n in view.neighbours)
    assert {name for name, _, _ in view.evidence} == set(triage.detector_names(flags))
    sample = project.samples(where=f"id = '{row['id']}'").iloc[0]
    source = f"{sample['root']}/{sample['path']}"
    shutil.move(source, source + ".moved")
    try:
        broken = triage.prepare_view(project, row, context)
    finally:
        shutil.move(source + ".moved", source)
    assert broken.image is None and "moved or changed since ingest" in broken.problem


def test_prefetched_views_are_ready_and_still_show_the_newest_event(project_copy):
    project = project_copy("news20-sample")
    run, flags = run_flags(project)
    context = triage.ViewContext.build(project, run, flags)
    prefetcher = triage.Prefetcher(project, context, flags)
    ids = flags["id"].head(4).tolist()
    future = prefetcher.prefetch(ids[1:])
    future.result(timeout=60)
    assert all(prefetcher.cached(sid) for sid in ids[1:]) and not prefetcher.cached(ids[0])
    assert prefetcher.prefetch(ids[1:]) is None  # nothing left to do
    before = prefetcher.view(ids[1])
    assert before.latest_event_id == 0 and before.text
    event = decisions.decide(project, ids[1], "ambiguous", "bob", expected_event=0)
    after = prefetcher.view(ids[1])
    assert after.latest_event_id == event.event_id  # re-read, not the prefetched state
    prefetcher.close()


def test_a_small_image_is_enlarged_by_whole_pixels_and_a_large_one_is_left_alone():
    from PIL import Image

    small = Image.new("RGB", (32, 24))
    small.putpixel((0, 0), (255, 0, 0))
    big = triage.pixel_exact(small, 512)
    assert big.size == (32 * 16, 24 * 16)  # the smallest whole factor that reaches 512
    block = {big.getpixel((x, y)) for x in range(16) for y in range(16)}
    assert block == {(255, 0, 0)} and big.getpixel((16, 0)) == (0, 0, 0)  # sharp edges, no blur
    large = Image.new("L", (600, 300))
    assert triage.pixel_exact(large, 512) is large


def test_brightness_and_contrast_change_the_pixels_not_the_file():
    from PIL import Image

    grey = Image.new("L", (4, 4), 100)
    assert triage.adjusted(grey, 1.0, 1.0) is grey
    assert triage.adjusted(grey, 2.0).getpixel((0, 0)) == 200
    assert grey.getpixel((0, 0)) == 100


def test_text_as_html_is_verbatim_escaped_and_marks_what_is_searched():
    text = "From: a@b.org\n    indented <b>Psalm 34\\:5</b> [x](http://h/x.png)"
    assert triage.text_as_html(text) == (
        "From: a@b.org\n    indented &lt;b&gt;Psalm 34\\:5&lt;/b&gt; [x](http://h/x.png)")
    marked = triage.text_as_html("Cat, cat and CAT <cat>", "cat")
    assert marked == "<mark>Cat</mark>, <mark>cat</mark> and <mark>CAT</mark> &lt;<mark>cat</mark>&gt;"
    assert triage.count_matches("Cat, cat and CAT", "cat") == 3 and triage.count_matches("x", " ") == 0


def test_times_runs_and_pace_in_plain_words():
    assert words.plain_time("2026-12-04T22:36:58.123456+00:00") == "4 Dec 2026, 22:36 UTC"
    assert words.plain_time(None) == ""
    assert words.expected_wrong({"flagged": 124, "expected_wrong": 92.2}) == " (about 92 labels expected wrong)"
    assert words.expected_wrong({"flagged": 124, "expected_wrong": None}) == ""
    assert words.expected_wrong({"flagged": 124}) == ""  # a run recorded before the estimate was
    assert triage.pace_sentence(0, 100) == "You have not decided anything in this session yet."
    assert triage.pace_sentence(12, 540) == "You: 12 decisions in 9 min (45 s each)."
    assert triage.pace_sentence(1, 30) == "You: 1 decision in 30 s (30 s each)."


def test_an_estimated_probability_never_reads_as_a_certainty():
    # what rounds to 0 % or 100 % but is not exactly that is said as "<1%" / ">99%"
    assert [words.probability(p) for p in (0.996, 0.9949, 0.5, 0.004, 0.0051)] == [">99%", "99%", "50%", "<1%", "1%"]
    assert (words.probability(0.0), words.probability(1.0)) == ("0%", "100%")
    row = {"label_analysed": "cat", "current_label": "cat", "p_label": 0.003, "p_suggested": 0.997,
           "suggested_label": "dog"}
    assert "gives its label 'cat' <1%; 'dog' gets >99%" in triage.confidence_in_words(row)


def test_slices_have_the_overviews_names_in_error_rank_order(imported_samples):
    from core.analysis import runs
    from core.store.project import Project
    from core.views.overview import slice_labels

    project = Project.open(imported_samples[0])
    run = runs.get_run(project)
    titles = triage.slice_titles(project, run.run_id)
    _, table = runs.slices(project, run.run_id)
    assert titles == slice_labels(table) and len(titles) == len(table)
    ranks = [int(t.split(" ", 1)[0][1:]) for t in titles.values()]
    assert ranks == sorted(ranks) and ranks[0] == 1
