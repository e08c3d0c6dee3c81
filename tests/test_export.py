"""core.export: columns, trail, manifest (chain head = verify's), reproducibility, refusing a broken
log, cutoffs, and the round trip through `amend init` for texts and images."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from core.errors import AmendError
from core.export import build_export, export, read_labels
from core.ingest import IngestOptions, ingest
from core.review import audit, decisions, guidelines
from core.store.project import Project

TEXTS = [("t1", "a cat sat", "cat", "train"), ("t2", "a dog ran", "cat", "train"), ("t3", "a dog, again", "dog", "test"),
         ("t4", "noise, \"quoted\"\nover two lines", "dog", "train"), ("t5", "a bird sang", "cat", None),
         ("t6", "a cat slept", "cat", "test")]


@pytest.fixture()
def texts_project(tmp_path) -> Project:
    """Six texts with a relabel (t2), a keep (t1), an exclude (t4), an ambiguous (t5) then a relabel
    of t5 under guideline v2."""
    source = tmp_path / "texts.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": t, "label": l, **({"split": s} if s else {})}) + "\n"
                              for i, t, l, s in TEXTS))
    project = Project.create(tmp_path / "texts-project")
    ingest(project, IngestOptions(texts=source, labels=["bird", "cat", "dog"]))
    guidelines.publish(project, "# Labels\n\nv1", version="v1", author="lead")
    decisions.decide(project, "t2", "relabel", "ann", label="dog", reason="it is a dog")
    decisions.decide(project, "t1", "keep", "ann", reason="right")
    decisions.decide(project, "t4", "exclude", "bob", reason="noise")
    decisions.decide(project, "t5", "ambiguous", "bob", reason="bird?")
    guidelines.publish(project, "# Labels\n\nv2: birds are birds", version="v2", author="lead")
    decisions.decide(project, "t5", "relabel", "ann", label="bird", reason="per v2")
    return project


def test_columns_rows_and_decisions(texts_project, tmp_path):
    bundle = export(texts_project, tmp_path / "out" / "labels.csv")
    frame = bundle.labels.set_index("id")
    assert list(bundle.labels.columns) == ["id", "text", "split", "content_hash", "given_label", "final_label", "changed",
                                           "excluded", "status", "decision", "reviewer", "decided_at", "reason",
                                           "guideline_version", "last_event_id"]
    assert list(bundle.labels["id"]) == ["t1", "t2", "t3", "t4", "t5", "t6"]  # project order, nothing dropped
    assert frame.loc["t2", ["given_label", "final_label", "changed", "decision", "reviewer", "reason"]].tolist() == [
        "cat", "dog", True, "relabel", "ann", "it is a dog"]
    assert frame.loc["t1", ["final_label", "changed", "decision"]].tolist() == ["cat", False, "keep"]
    assert frame.loc["t4", ["final_label", "excluded", "decision", "status"]].tolist() == ["dog", True, "exclude", "excluded"]
    assert frame.loc["t5", ["final_label", "guideline_version", "decision"]].tolist() == ["bird", "v2", "relabel"]
    assert frame.loc["t3", "decision"] is None and pd.isna(frame.loc["t3", "last_event_id"])
    assert frame.loc["t4", "text"] == TEXTS[3][1]
    assert frame.loc["t5", "last_event_id"] == max(e.event_id for e in audit.read_events(texts_project, sample_id="t5"))
    # The CSV on disk says the same (the multi-line quoted text survives).
    back = read_labels(tmp_path / "out" / "labels.csv").set_index("id")
    assert back.loc["t4", "text"] == TEXTS[3][1] and back.loc["t4", "excluded"] == "true"
    assert back.loc["t2", "changed"] == "true" and back.loc["t1", "changed"] == "false"


def test_manifest_counts_chain_head_and_trail(texts_project, tmp_path):
    bundle = export(texts_project, tmp_path / "labels.parquet")
    manifest = json.loads((tmp_path / "labels.manifest.json").read_text())
    verified = audit.verify(texts_project)
    assert manifest["chain_head"] == verified.chain_head == audit.chain_head(texts_project)
    assert manifest["log_events"] == verified.events and manifest["chain_verified"] is True
    assert manifest["counts"]["rows"] == 6 and manifest["counts"]["changed"] == 2 and manifest["counts"]["excluded"] == 1
    assert manifest["counts"]["final_label"] == {"bird": 1, "cat": 2, "dog": 3}
    assert manifest["label_set"] == ["bird", "cat", "dog"]
    assert manifest["guideline_version_in_force"] == "v2"
    assert manifest["amend_version"] and manifest["runs"] == []
    assert manifest["reimport"].startswith("amend init NEW_PROJECT --texts labels.parquet --label-column final_label")
    import hashlib

    for key in ("labels", "trail"):
        entry = manifest["files"][key]
        assert hashlib.sha256((tmp_path / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    # The trail: every event on the exported samples, in chain order; each hash recomputes.
    trail = read_labels(tmp_path / "labels.trail.parquet")
    sample_events = [e for e in audit.read_events(texts_project) if e.sample_id is not None]
    assert trail["event_id"].tolist() == [e.event_id for e in sample_events] and len(trail) == 5
    for row in trail.itertuples(index=False):
        assert audit.event_hash(row.prev_hash, row.event_id, row.kind, row.sample_id, json.loads(row.payload),
                                row.created_at, row.actor) == row.hash
    assert bundle.to_json()["chain_head"] == verified.chain_head


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_the_same_log_gives_the_same_bytes(texts_project, tmp_path, fmt):
    first = build_export(texts_project, fmt=fmt)
    second = build_export(texts_project, fmt=fmt)
    for name in (first.labels_file, first.trail_file):
        assert first.files[name] == second.files[name]
    one, two = dict(first.manifest), dict(second.manifest)
    assert one.pop("exported_at") != "" and two.pop("exported_at") != ""
    assert one.pop("checkpoint")["chain_head"] == two.pop("checkpoint")["chain_head"]  # signed at its own time
    assert one == two
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(first.zip_bytes())) as archive:
        assert sorted(archive.namelist()) == sorted(first.files)
        assert archive.read(first.labels_file) == second.files[second.labels_file]
    decisions.decide(texts_project, "t6", "relabel", "ann", label="dog")
    third = build_export(texts_project, fmt=fmt)
    assert third.files[third.labels_file] != first.files[first.labels_file]
    assert third.manifest["chain_head"] != first.manifest["chain_head"]


def test_cutoffs_by_guideline_event_and_time(texts_project):
    under_v1 = build_export(texts_project, fmt="csv", guideline_version="v1")
    frame = under_v1.labels.set_index("id")
    assert frame.loc["t5", "final_label"] == "cat" and frame.loc["t5", "status"] == "ambiguous"
    assert under_v1.manifest["guideline_version_in_force"] == "v1"
    assert under_v1.manifest["counts"]["changed"] == 1
    assert len(under_v1.trail) == 4  # t5's relabel under v2 came later
    first_decision = min(e.event_id for e in audit.read_events(texts_project, kinds=["decision"]))
    early = build_export(texts_project, fmt="jsonl", up_to_event=first_decision)
    assert early.manifest["counts"]["changed"] == 1 and early.manifest["labels_as_of"]["last_event_id"] == first_decision
    before_all = build_export(texts_project, fmt="jsonl", as_of="2000-01-01")
    assert before_all.manifest["counts"]["changed"] == 0 and before_all.trail.empty
    assert before_all.manifest["labels_as_of"]["last_event_hash"] == audit.GENESIS
    # The chain head is always the whole log's, as verify computes it.
    assert before_all.manifest["chain_head"] == audit.verify(texts_project).chain_head


def test_an_export_refuses_a_log_that_fails_verification(texts_project, tmp_path):
    with sqlite3.connect(audit.log_path(texts_project)) as con:
        con.execute("DROP TRIGGER events_no_update")
        con.execute("UPDATE events SET actor = 'mallory' WHERE event_id = 3")
    with pytest.raises(AmendError, match="fails verification"):
        export(texts_project, tmp_path / "labels.csv")
    assert not (tmp_path / "labels.csv").exists()


def test_format_must_agree_with_the_file_name(texts_project, tmp_path):
    with pytest.raises(AmendError, match="--format is jsonl"):
        export(texts_project, tmp_path / "labels.csv", fmt="jsonl")
    with pytest.raises(AmendError, match="cannot tell the format"):
        export(texts_project, tmp_path / "labels.txt")
    bundle = export(texts_project, tmp_path, fmt="jsonl")  # a folder: labels.jsonl inside
    assert (tmp_path / "labels.jsonl").is_file() and bundle.labels_file == "labels.jsonl"


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_round_trip_texts_through_amend_init(texts_project, tmp_path, fmt):
    from core.cli import main

    out = tmp_path / f"export.{fmt}"
    bundle = export(texts_project, out)
    new = tmp_path / "again"
    assert main(["init", str(new), "--texts", str(out), "--label-column", "final_label", "--json"]) == 0
    again = Project.open(new).samples(columns=["id", "text", "label", "split", "content_hash", "metadata"])
    expected = bundle.labels
    assert again["id"].tolist() == expected["id"].tolist()
    assert again["label"].tolist() == expected["final_label"].tolist()
    assert again["text"].tolist() == expected["text"].tolist()
    assert again["content_hash"].tolist() == expected["content_hash"].tolist()
    assert again["split"].fillna("-").tolist() == expected["split"].fillna("-").tolist() == [
        "train", "train", "test", "train", "-", "test"]
    meta = {sid: json.loads(m) for sid, m in zip(again["id"], again["metadata"])}
    assert meta["t4"]["excluded"] is True and meta["t2"]["given_label"] == "cat"


def test_round_trip_images_through_amend_init(tmp_path, capsys):
    from PIL import Image

    from core.cli import main

    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    project = Project.create(tmp_path / "images-project")
    ingest(project, IngestOptions(images=root))
    decisions.decide(project, "cat/1.png", "relabel", "ann", label="dog")
    decisions.decide(project, "dog/2.png", "exclude", "ann")
    exports = tmp_path / "exports"
    exports.mkdir()
    bundle = export(project, exports / "labels.csv")
    assert bundle.manifest["image_root"] == str(root.resolve())
    assert bundle.labels.set_index("id").loc["cat/1.png", "path"] == "cat/1.png"
    command = bundle.manifest["reimport"].split()
    assert command[:4] == ["amend", "init", "NEW_PROJECT", "--manifest"]
    argv = ["init", str(tmp_path / "again"), "--manifest", str(exports / command[4]), *command[5:], "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["taken"] == 6 and report["rejected"] == 0
    again = Project.open(tmp_path / "again").samples(columns=["id", "label", "content_hash"])
    original = project.samples(columns=["id", "content_hash"])
    assert dict(zip(again["id"], again["label"]))["cat/1.png"] == "dog"
    assert dict(zip(again["id"], again["content_hash"])) == dict(zip(original["id"], original["content_hash"]))


def test_amend_export_prints_the_contract(texts_project, tmp_path, monkeypatch, capsys):
    import core.cli as cli

    assert cli.main(["export", str(texts_project.path), str(tmp_path / "l.jsonl"), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["rows"] == 6 and payload["changed"] == 2 and payload["chain_head"] == audit.verify(texts_project).chain_head
    assert cli.main(["export", str(texts_project.path), str(tmp_path / "l.csv"), "--guideline", "v7"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no guideline version 'v7'" in err
