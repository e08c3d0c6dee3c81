"""Ingest options, modality, label sets, progress, the report shape, and the repo's sample data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import AmendError
from core.ingest import REJECT_REASONS, IngestOptions, ingest
from core.store.project import Project

from ingest_helpers import jpeg_bytes, write, write_jsonl

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "options, needle",
    [
        (IngestOptions(), "exactly one source"),
        (IngestOptions(images=Path("a"), texts=Path("b")), "images and texts"),
        (IngestOptions(texts=Path("b.jsonl"), root=Path(".")), "--root only applies"),
    ],
)
def test_wrong_sources_are_refused_with_what_to_do(project: Project, options: IngestOptions, needle: str) -> None:
    with pytest.raises(AmendError, match=needle):
        ingest(project, options)
    assert project.ingests().empty


def test_unreadable_sources_are_refused(project: Project, tmp_path: Path) -> None:
    with pytest.raises(AmendError, match="does not exist"):
        ingest(project, IngestOptions(texts=tmp_path / "nope.csv"))
    odd = tmp_path / "t.xlsx"
    odd.write_text("x")
    with pytest.raises(AmendError, match="unknown suffix"):
        ingest(project, IngestOptions(texts=odd))
    with pytest.raises(AmendError, match="holds no files"):
        (tmp_path / "empty_dir").mkdir()
        ingest(project, IngestOptions(images=tmp_path / "empty_dir"))
    with pytest.raises(AmendError, match="unknown text encoding"):
        ingest(project, IngestOptions(texts=write_jsonl(tmp_path / "t.jsonl", [{"text": "a", "label": "b"}]),
                                      encoding="no-such-codec"))
    assert project.ingests().empty


def test_a_project_holds_one_modality(tmp_path: Path) -> None:
    images = tmp_path / "images"
    write(images / "cat/1.jpg", jpeg_bytes(1))
    texts = write_jsonl(tmp_path / "t.jsonl", [{"text": "hello", "label": "cat"}])

    image_project = Project.create(tmp_path / "img_project")
    ingest(image_project, IngestOptions(images=images))
    with pytest.raises(AmendError, match="holds image samples"):
        ingest(image_project, IngestOptions(texts=texts))

    text_project = Project.create(tmp_path / "text_project")
    ingest(text_project, IngestOptions(texts=texts))
    with pytest.raises(AmendError, match="holds text samples"):
        ingest(text_project, IngestOptions(images=images))
    assert text_project.sample_count() == 1 and len(text_project.ingests()) == 1
    assert image_project.sample_count() == 1 and len(image_project.ingests()) == 1


def test_declared_label_sets_must_agree(project: Project, tmp_path: Path) -> None:
    texts = write_jsonl(tmp_path / "t.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}])
    with pytest.raises(AmendError, match="more than once"):
        ingest(project, IngestOptions(texts=texts, labels=["x", "x"]))
    ingest(project, IngestOptions(texts=texts))  # labels follow the data: x, y
    with pytest.raises(AmendError, match="outside --labels"):
        ingest(project, IngestOptions(texts=texts, labels=["x"]))

    declared = Project.create(tmp_path / "declared")
    ingest(declared, IngestOptions(texts=texts, labels=["y", "x", "z"]))
    assert declared.labels() == ["y", "x", "z"]
    with pytest.raises(AmendError, match="declared as y, x, z"):
        ingest(declared, IngestOptions(texts=texts, labels=["x", "y"]))


def test_progress_is_reported_and_the_report_serialises(project: Project, tmp_path: Path) -> None:
    records = [{"text": f"text number {i}", "label": "ab"[i % 2]} for i in range(700)]
    records.append({"text": "", "label": "a"})
    calls: list[tuple] = []
    report = ingest(project, IngestOptions(texts=write_jsonl(tmp_path / "t.jsonl", records)),
                    progress=lambda step, done, total: calls.append((step, done, total)))
    assert calls[0] == ("ingest", 256, 701) and calls[-1] == ("ingest", 701, 701)
    assert [c[1] for c in calls] == sorted(c[1] for c in calls)
    out = report.to_json()
    assert json.loads(json.dumps(out)) == out
    assert out["taken"] == 700 and out["rejected"] == 1 and out["unchanged"] == 0 and out["ingest_id"] == 1
    assert out["labels"] == ["a", "b"]
    assert out["rejects"] == [{"row": 701, "id": None, "reason": "empty text", "detail": out["rejects"][0]["detail"]}]
    assert set(r["reason"] for r in out["rejects"]) <= set(REJECT_REASONS)


@pytest.mark.skipif(not (REPO / "sample_data/cifar10n/manifest.csv").is_file(), reason="no sample_data in this checkout")
def test_repo_sample_data_ingests_whole(tmp_path: Path) -> None:
    images = Project.create(tmp_path / "cifar")
    report = ingest(images, IngestOptions(manifest=REPO / "sample_data/cifar10n/manifest.csv",
                                          annotator_columns=["annotator1", "annotator2", "annotator3"]))
    assert (report.taken, report.rejected) == (400, 0)
    assert len(report.labels) == 10

    texts = Project.create(tmp_path / "news")
    report = ingest(texts, IngestOptions(texts=REPO / "sample_data/news20/texts.jsonl"))
    assert (report.taken, report.rejected) == (300, 0)
    assert texts.modality() == "text"
