"""Image ingest: class folders and manifests, every image reject reason next to good rows."""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path

import pandas as pd
import pytest

from core.errors import AmendError
from core.ingest import IngestOptions, ingest
from core.store.project import Project

from ingest_helpers import jpeg_bytes, png_bytes, reasons_by_row, write


def corrupt_png() -> bytes:
    """A PNG whose IDAT bytes are changed (CRC left stale): identified, but does not decode."""
    data = bytearray(png_bytes(seed=9))
    at = data.find(b"IDAT")
    data[at + 8] ^= 0xFF
    return bytes(data)


def test_class_folders_take_good_files_and_reject_each_bad_kind(project: Project, tmp_path: Path) -> None:
    images = tmp_path / "images"
    outside = write(tmp_path / "elsewhere" / "secret.jpg", jpeg_bytes(99))
    good = {
        "cat/a.jpg": jpeg_bytes(1),
        "cat/b.png": png_bytes(2),
        "dog/c.jpg": jpeg_bytes(3, size=(40, 24)),
    }
    for rel, data in good.items():
        write(images / rel, data)
    full_jpeg = jpeg_bytes(4, size=(64, 64))
    write(images / "cat/empty.jpg", b"")
    write(images / "cat/half.jpg", full_jpeg[: len(full_jpeg) // 2])
    write(images / "dog/garbage.png", os.urandom(300))
    write(images / "dog/notes.jpg", b"this is a text file, not a picture\n" * 5)
    write(images / "dog/broken.png", corrupt_png())
    write(images / "dog/.hidden.jpg", jpeg_bytes(5))  # hidden: skipped, not listed
    write(images / ".trash/x.jpg", jpeg_bytes(6))  # hidden label folder: skipped
    write(images / "loose.jpg", jpeg_bytes(7))  # no label folder
    (images / "dog/nested").mkdir()
    write(images / "dog/nested/deep.jpg", jpeg_bytes(8))  # only direct files are read
    (images / "cat/link.jpg").symlink_to(outside)

    report = ingest(project, IngestOptions(images=images))

    # Sorted listing, top-level files first: loose.jpg, cat/{a,b.png,empty,half,link}, dog/{broken,c,garbage,nested,notes}
    assert reasons_by_row(report) == {
        1: "missing label",
        4: "empty file",
        5: "truncated image",
        6: "path escapes root",
        7: "corrupt image",
        9: "not an image",
        10: "not a file",
        11: "not an image",
    }
    assert report.taken == 3 and report.rejected == 8 and report.unchanged == 0
    assert {r["id"] for r in report.rejects if r["row"] == 6} == {"cat/link.jpg"}
    assert report.labels == ["cat", "dog"]
    samples = project.samples().set_index("id")
    assert sorted(samples.index) == sorted(good)
    root = str(images.resolve())
    for rel, data in good.items():
        assert samples.loc[rel, "root"] == root
        assert samples.loc[rel, "path"] == rel
        assert samples.loc[rel, "content_hash"] == hashlib.sha256(data).hexdigest()
        assert samples.loc[rel, "modality"] == "image"
    assert (samples.loc["dog/c.jpg", "width"], samples.loc["dog/c.jpg", "height"]) == (40, 24)
    assert samples.loc["cat/b.png", "source_row"] == 3
    # The stored reject report matches the returned one.
    stored = project.rejects(report.ingest_id)
    assert sorted(zip(stored["row"], stored["reason"])) == sorted(reasons_by_row(report).items())
    assert all(r["detail"] for r in report.rejects)


def test_reingesting_a_folder_adds_nothing_and_a_changed_file_is_rejected(project: Project, tmp_path: Path) -> None:
    images = tmp_path / "images"
    for i in range(6):
        write(images / f"l{i % 2}/{i}.jpg", jpeg_bytes(i))
    first = ingest(project, IngestOptions(images=images))
    assert (first.taken, first.unchanged, first.rejected) == (6, 0, 0)

    again = ingest(project, IngestOptions(images=images))
    assert (again.taken, again.unchanged, again.rejected) == (0, 6, 0)
    assert project.sample_count() == 6

    write(images / "l0/0.jpg", jpeg_bytes(100))  # rewritten in place: same id, other bytes
    write(images / "l1/new.jpg", jpeg_bytes(101))
    third = ingest(project, IngestOptions(images=images))
    assert (third.taken, third.unchanged) == (1, 5)
    assert [(r["id"], r["reason"]) for r in third.rejects] == [
        ("l0/0.jpg", "id already in project with different content")
    ]
    assert project.sample_count() == 7
    assert len(project.ingests()) == 3


def test_declared_labels_reject_other_folders(project: Project, tmp_path: Path) -> None:
    images = tmp_path / "images"
    write(images / "cat/1.jpg", jpeg_bytes(1))
    write(images / "dog/2.jpg", jpeg_bytes(2))
    write(images / "cow/3.jpg", jpeg_bytes(3))
    report = ingest(project, IngestOptions(images=images, labels=["dog", "cat"]))
    assert report.taken == 2
    assert [(r["row"], r["reason"]) for r in report.rejects] == [(2, "unknown label")]
    assert "cow" in report.rejects[0]["detail"]
    assert report.labels == ["dog", "cat"]  # declared order
    assert project.declared_labels() == ["dog", "cat"]
    # A later ingest without --labels is still checked against the declared set.
    write(images / "cow/4.jpg", jpeg_bytes(4))
    later = ingest(project, IngestOptions(images=images))
    assert [r["reason"] for r in later.rejects] == ["unknown label", "unknown label"]
    assert project.labels() == ["dog", "cat"]


def manifest_tree(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    write(data / "img/a.jpg", jpeg_bytes(1))
    write(data / "img/b.jpg", jpeg_bytes(2))
    write(data / "img/c.jpg", jpeg_bytes(3))
    write(data / "img/d.jpg", jpeg_bytes(4))
    write(data / "img/zero.jpg", b"")
    (data / "img/folder.jpg").mkdir()
    write(tmp_path / "outside.jpg", jpeg_bytes(5))
    (data / "img/escape.jpg").symlink_to(tmp_path / "outside.jpg")
    return data, tmp_path / "outside.jpg"


def test_csv_manifest_rejects_and_keeps_types(project: Project, tmp_path: Path) -> None:
    data, outside = manifest_tree(tmp_path)
    inside_abs = (data / "img/d.jpg").resolve()
    rows = [
        "id,path,label,split,weight,score,verified,note",
        "a,img/a.jpg,cat,train,3,0.5,true,first",          # 1 taken
        "b,img/b.jpg,dog,test,4,1.5,false,",               # 2 taken (empty note -> null)
        "c,img/missing.jpg,cat,train,5,2,true,x",          # 3 missing file
        "e,../outside.jpg,cat,train,6,2,true,x",           # 4 path escapes root (..)
        f"f,{outside},cat,train,7,2,true,x",               # 5 path escapes root (absolute outside)
        "g,img/escape.jpg,cat,train,8,2,true,x",           # 6 path escapes root (symlink)
        "h,img/folder.jpg,cat,train,9,2,true,x",           # 7 not a file
        "i,img/zero.jpg,cat,train,10,2,true,x",            # 8 empty file
        "a,img/c.jpg,cat,train,11,2,true,x",               # 9 duplicate id (row 1 won)
        ",img/c.jpg,cat,train,12,2,true,x",                # 10 missing id
        "k,img/c.jpg,,train,13,2,true,x",                  # 11 missing label
        "l,img/c.jpg,cat,train,14,2,true",                 # 12 bad row (7 fields)
        f"m,{inside_abs},dog,,15,2,true,abs inside",       # 13 taken: absolute path inside the root
    ]
    manifest = data / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    report = ingest(project, IngestOptions(manifest=manifest))
    assert reasons_by_row(report) == {
        3: "missing file", 4: "path escapes root", 5: "path escapes root", 6: "path escapes root",
        7: "not a file", 8: "empty file", 9: "duplicate id", 10: "missing id", 11: "missing label", 12: "bad row",
    }
    duplicate = next(r for r in report.rejects if r["reason"] == "duplicate id")
    assert duplicate["id"] == "a" and "row 1" in duplicate["detail"]
    assert report.taken == 3
    samples = project.samples().set_index("id")
    assert samples.loc["m", "path"] == "img/d.jpg"
    assert pd.isna(samples.loc["m", "split"])
    assert samples.loc["a", "split"] == "train" and samples.loc["b", "split"] == "test"
    meta_a = json.loads(samples.loc["a", "metadata"])
    assert meta_a == {"weight": 3, "score": 0.5, "verified": True, "note": "first"}
    assert type(meta_a["weight"]) is int and type(meta_a["score"]) is float
    assert json.loads(samples.loc["b", "metadata"])["note"] is None
    assert samples.loc["a", "root"] == str(data.resolve())
    frame = project.metadata_frame()
    assert frame["meta.weight"].tolist() == [3, 4, 15]


def test_parquet_manifest_with_root_and_generated_ids(project: Project, tmp_path: Path) -> None:
    data, _ = manifest_tree(tmp_path)
    table = pd.DataFrame({
        "path": ["img/a.jpg", "img/../img/b.jpg", "img/nope.jpg", "img/a.jpg"],
        "label": ["x", "y", "x", "y"],
        "count": pd.array([1, 2, 3, 4], dtype="int64"),
        "ratio": [0.25, None, 1.0, 2.0],
    })
    manifest = tmp_path / "lists" / "manifest.parquet"
    manifest.parent.mkdir()
    table.to_parquet(manifest)
    report = ingest(project, IngestOptions(manifest=manifest, root=data))
    assert reasons_by_row(report) == {3: "missing file", 4: "duplicate id"}
    assert "row 1" in report.rejects[1]["detail"]
    samples = project.samples().set_index("id")
    assert list(samples.index) == ["img/a.jpg", "img/b.jpg"]  # ids: normalised paths under the root
    meta = json.loads(samples.loc["img/a.jpg", "metadata"])
    assert meta == {"count": 1, "ratio": 0.25} and type(meta["count"]) is int
    assert json.loads(samples.loc["img/b.jpg", "metadata"])["ratio"] is None


def test_manifest_with_wrong_columns_names_the_columns(project: Project, tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,class\na.jpg,cat\n")
    with pytest.raises(AmendError) as error:
        ingest(project, IngestOptions(manifest=manifest))
    assert "'path'" in str(error.value) and "file, class" in str(error.value)
    with pytest.raises(AmendError, match="file, class"):
        ingest(project, IngestOptions(manifest=manifest, path_column="file"))
    assert project.ingests().empty


def test_annotator_columns_kept_as_strings_and_recorded(project: Project, tmp_path: Path) -> None:
    data, _ = manifest_tree(tmp_path)
    manifest = data / "m.csv"
    manifest.write_text("path,label,ann1,ann2\nimg/a.jpg,1,1,2\nimg/b.jpg,2,,2\n")
    report = ingest(project, IngestOptions(manifest=manifest, annotator_columns=["ann1", "ann2"]))
    assert report.taken == 2
    metas = [json.loads(m) for m in project.samples()["metadata"]]
    assert metas == [{"ann1": "1", "ann2": "2"}, {"ann1": None, "ann2": "2"}]
    options = json.loads(project.ingests()["options"].iloc[0])
    assert options["annotator_columns"] == ["ann1", "ann2"]
    with pytest.raises(AmendError, match="ann3"):
        ingest(project, IngestOptions(manifest=manifest, annotator_columns=["ann3"]))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_rejected(project: Project, tmp_path: Path) -> None:
    images = tmp_path / "images"
    write(images / "cat/ok.jpg", jpeg_bytes(1))
    locked = write(images / "cat/locked.jpg", jpeg_bytes(2))
    locked.chmod(0)
    try:
        report = ingest(project, IngestOptions(images=images))
    finally:
        locked.chmod(0o644)
    assert reasons_by_row(report) == {1: "unreadable file"} and report.taken == 1


def test_pool_gives_the_serial_results_in_order(tmp_path: Path) -> None:
    from core.ingest.images import check_files

    paths = []
    for i in range(150):
        data = jpeg_bytes(i, size=(8 + i % 5, 8)) if i % 7 else b"not an image"
        paths.append(str(write(tmp_path / f"{i:03d}.jpg", data)))
    serial = list(check_files(paths, workers=1))
    pooled = list(check_files(paths, workers=3, window=64))
    assert pooled == serial
    assert [r.reason for r in serial].count("not an image") == 22
    assert serial[1].width == 9
