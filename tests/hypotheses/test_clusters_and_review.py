"""Clustering separates answers that say different things (whatever classes they name); reviews
land in the audit log with who and when; agreement rates; the selection to triage; the actions."""

from __future__ import annotations

import json

import pytest
from standin import answer, user_text

from core.errors import AmendError
from core.hypotheses import clusters, generate, review, store
from core.review import audit, decisions
from core.store.selections import list_selections

BLUR = ["The photo is badly blurred by motion so the outline of the {c} is smeared.",
        "Heavy blur makes the {c} edges impossible to see.",
        "The {c} is out of focus and blurry, its shape is lost.",
        "Strong motion blur smears the whole {c} picture.",
        "Camera shake blurred this shot of the {c}.",
        "The {c} looks fuzzy and unsharp because of blur.",
        "Everything is smeared by blur, even the {c}.",
        "A blurry, defocused image where the {c} cannot be made out."]
BACKGROUND = ["A busy cluttered background full of other objects hides the {c}.",
              "The {c} is tiny against a crowded scene with many distracting things.",
              "Clutter in the scene around the {c} draws attention away from it.",
              "Lots of unrelated objects in the background surround the {c}.",
              "Other objects crowd the frame and cover most of the {c}.",
              "The {c} is partly hidden behind a cluttered pile of things.",
              "A crowded street scene with many objects distracts from the {c}.",
              "The {c} is surrounded by clutter and occluded by other items."]


def _given(body) -> str:
    return user_text(body).split("Given label (what the annotator wrote): ", 1)[1].split("\n", 1)[0]


def _two_patterns(counter: dict):
    """Answers alternate between two causes, each written eight ways and naming the sample's class."""
    def rule(body):
        i = counter["n"] = counter.get("n", 0) + 1
        given = _given(body)
        if i % 2:
            return answer("low_quality", BLUR[(i // 2) % 8].format(c=given), "Add motion-blur augmentation to training.")
        return answer("annotation_issue", BACKGROUND[(i // 2) % 8].format(c=given),
                      "Update the labelling guideline for cluttered scenes.")
    return rule


@pytest.fixture()
def explained(image_project, server):
    server.rule = _two_patterns({})
    result = generate.generate(image_project, server.url, "vlm", limit=16, concurrency=1)
    assert result["generated"] == 16
    return image_project, result


def test_compress_strips_class_names_and_boilerplate():
    out = clusters.compress("The model probably confused this image of a Cat with the dog class because it is "
                            "blurry. Second sentence.", ["cat", "dog"])
    assert "cat" not in out and "dog" not in out and "model" not in out and "second" not in out
    assert "blurry" in out


def test_clustering_separates_causes_not_classes(explained):
    project, result = explained
    assert result["dimensions"]["cause"]["clusters"] == 2
    frame = review.board(project)
    blurry = frame["cause"].str.contains("blur", case=False)
    # each cluster holds one cause, from several class pairs
    assert frame.groupby("cause_cluster")["cause"].apply(lambda s: s.str.contains("blur", case=False).nunique()).eq(1).all()
    assert frame.loc[blurry, "cause_cluster"].nunique() == 1 and frame.loc[~blurry, "cause_cluster"].nunique() == 1
    clustering = store.latest_clustering(project, "cause")
    assert all(len(c["class_pairs"]) >= 2 for c in clustering["clusters"])
    names = " ".join(c["name"].lower() for c in clustering["clusters"])
    assert "blur" in names
    assert clustering["settings"]["embedder"] == "offline:all-MiniLM-L6-v2" or "minilm" in clustering["settings"]["embedder"].lower()
    # the listing carries the clusters
    listed = review.listing(project)
    assert {row["clusters"]["cause"] for row in listed} == {0, 1}


def test_reviews_are_in_the_audit_log_with_who_and_rates_follow(explained):
    project, _ = explained
    frame = review.board(project)
    issues = frame[frame["data_quality"] == "annotation_issue"]["hypothesis_id"].tolist()
    quality = frame[frame["data_quality"] == "low_quality"]["hypothesis_id"].tolist()
    review.review(project, issues[0], "agree", "alice")
    review.review(project, issues[1], "disagree", "alice")
    review.review(project, issues[2], "agree", "bob")
    review.review(project, issues[2], "disagree", "alice")  # tied
    review.review(project, quality[0], "agree", "bob")
    review.review(project, quality[1], "skip", "bob")
    review.review(project, quality[1], "agree", "bob")  # bob changed his mind: his latest counts
    events = audit.read_events(project, kinds=[review.KIND])
    assert [(e.actor, e.payload["verdict"]) for e in events][:2] == [("alice", "agree"), ("alice", "disagree")]
    first = events[0]
    assert first.sample_id is None and first.payload["hypothesis_id"] == issues[0]
    assert first.payload["sample_id"] == frame.set_index("hypothesis_id").loc[issues[0], "sample_id"]
    assert first.payload["model"] == "vlm" and first.payload["identity_source"] == "local" and first.created_at
    assert audit.verify(project).ok
    # the audit page's table says what each review was
    shown = decisions.events(project, kinds=[review.KIND])["decision"].tolist()
    assert shown[0] == f"hypothesis {issues[0]} on {first.payload['sample_id']}: agree"
    assert shown[1].endswith(": disagree")
    tags = review.agreement(project, "data_quality").set_index("data_quality")
    assert (tags.loc["annotation_issue", "agree"], tags.loc["annotation_issue", "disagree"]) == (2, 2)
    assert tags.loc["annotation_issue", "rate"] == pytest.approx(0.5)
    assert tags.loc["low_quality", "rate"] == pytest.approx(1.0) and tags.loc["low_quality", "skip"] == 0
    per_cluster = review.agreement(project, "cause")
    assert per_cluster["hypotheses"].sum() == 16 and per_cluster["reviewed"].sum() == 6
    with pytest.raises(AmendError, match="verdict"):
        review.review(project, issues[0], "maybe", "alice")


def test_a_review_does_not_make_a_triage_decision_stale(explained):
    project, _ = explained
    row = review.board(project).iloc[0]
    seen = decisions.latest_event_id(project, row["sample_id"])
    review.review(project, int(row["hypothesis_id"]), "agree", "alice")
    event = decisions.decide(project, row["sample_id"], "keep", "bob", expected_event=seen)
    assert event.kind == "decision"


def test_agreed_annotation_issues_go_to_triage_and_fixes_become_actions(explained):
    project, _ = explained
    with pytest.raises(AmendError, match="no annotation_issue hypothesis has reviewers' agreement"):
        review.send_to_triage(project)
    frame = review.board(project)
    issues = frame[frame["data_quality"] == "annotation_issue"]
    review.review(project, int(issues.iloc[0]["hypothesis_id"]), "agree", "alice")
    review.review(project, int(issues.iloc[1]["hypothesis_id"]), "disagree", "alice")
    made = review.send_to_triage(project, created_by="alice")
    assert made.ids == [issues.iloc[0]["sample_id"]]
    assert list_selections(project)[0].name == review.SELECTION_NAME

    actions = review.actions(project)
    assert [a["rank"] for a in actions] == list(range(1, len(actions) + 1))
    kinds = {a["kind"] for a in actions}
    assert {"augmentation", "labelling guideline"} <= kinds
    guideline = next(a for a in actions if a["kind"] == "labelling guideline")
    assert guideline["disagree"] == 1 and guideline["agree"] == 1 and guideline["agreement_rate"] == 0.5
    csv = review.actions_csv(actions)
    header = csv.splitlines()[0]
    assert header.startswith("rank,cluster,action,example,kind")
    assert len(csv.strip().splitlines()) == len(actions) + 1
    json.dumps(actions)  # plain JSON


def test_hypotheses_and_their_reviews_never_change_the_ranking(image_project, server):
    from core.analysis.runs import flags

    _, before = flags(image_project)
    server.rule = _two_patterns({})
    generate.generate(image_project, server.url, "vlm", limit=6, cluster=False)
    for hid in review.board(image_project)["hypothesis_id"]:
        review.review(image_project, int(hid), "agree", "alice")
    _, after = flags(image_project)
    assert after[["id", "rank", "score", "flagged", "suggested_label"]].equals(
        before[["id", "rank", "score", "flagged", "suggested_label"]])
    assert after["current_label"].equals(before["current_label"])  # a review is not a decision
