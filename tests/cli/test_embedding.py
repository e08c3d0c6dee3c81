"""`amend embed`, `amend vectors import`, `amend predictions import` (core.cli.embedding)."""

from __future__ import annotations

import numpy as np

from core.store.project import Project

EMBED_KEYS = {"representation", "embedded", "skipped", "dim", "model", "device", "seconds"}


def test_embed_with_a_tiny_checkpoint_then_resume(amend, tiny_project, tiny_checkpoint):
    checkpoint, _ = tiny_checkpoint
    args = ("embed", tiny_project, "--model", "amend-tiny-test", "--checkpoint", checkpoint, "--name", "tiny",
            "--device", "cpu")
    first = amend.json(*args)
    assert EMBED_KEYS <= set(first)
    assert first["representation"] == "tiny" and first["embedded"] == 60 and first["skipped"] == 0
    assert first["dim"] == 32 and first["model"].startswith("open_clip:amend-tiny-test") and first["device"] == "cpu"
    resumed = amend(*args)
    assert resumed.out.startswith("representation tiny: embedded 0, skipped 60 (32-d")
    assert resumed.err == ""  # the model asked for was used: no fallback note


def test_embed_falls_back_with_a_note_on_stderr(amend, tiny_project, tmp_path):
    result = amend("embed", tiny_project, "--model", "amend-tiny-test", "--checkpoint", tmp_path / "gone.pt",
                   "--name", "fallback", "--json")
    report = result.json()
    assert report["model"].startswith("offline:") and report["embedded"] == 60
    notes = result.err.splitlines()
    assert len(notes) == 1 and notes[0].startswith("amend: note: ") and "gone.pt" in notes[0]


def test_embed_user_errors(amend, tmp_path):
    amend.fails("embed", tmp_path / "missing", "--json", says="not an Amend project")
    Project.create(tmp_path / "empty")  # `amend init` refuses to make an empty project; the Python face can
    amend.fails("embed", tmp_path / "empty", "--embedder", "offline", says="has no samples")


def test_vectors_import_contract(amend, tmp_path, tiny_data):
    amend("init", tmp_path / "p", "--texts", tiny_data.texts)
    imported = amend.json("vectors", "import", tmp_path / "p", tiny_data.vectors, "--ids", tiny_data.ids, "--name", "mine")
    assert imported["representation"] == "mine" and imported["imported"] == 60 and imported["dim"] == 16
    text = amend("vectors", "import", tmp_path / "p", tiny_data.vectors, "--ids", tiny_data.ids, "--name", "again").out
    assert text.strip() == "imported 60 vectors (16-d) as representation again"


def test_vectors_import_user_errors(amend, tmp_path, tiny_data):
    amend("init", tmp_path / "p", "--texts", tiny_data.texts)
    amend.fails("vectors", "import", tmp_path / "p", tiny_data.vectors, "--ids", tmp_path / "no-ids.txt", "--name", "m",
                says="no-ids.txt does not exist")
    np.save(tmp_path / "short.npy", np.load(tiny_data.vectors)[:10])
    amend.fails("vectors", "import", tmp_path / "p", tmp_path / "short.npy", "--ids", tiny_data.ids, "--name", "m",
                "--json", says="10 vector rows but 60 ids")
    amend.fails("vectors", "import", tmp_path / "nowhere", tiny_data.vectors, "--name", "m", says="not an Amend project")


def test_predictions_import_contract_and_errors(amend, tiny_project, tiny_data, tmp_path):
    result = amend.json("predictions", "import", tiny_project, tiny_data.probabilities, "--ids", tiny_data.ids,
                        "--name", "model")
    assert result["imported"] == 60 and result["classes"] == ["a", "b", "c"]
    probabilities = np.load(tiny_data.probabilities)
    probabilities[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", probabilities)
    amend.fails("predictions", "import", tiny_project, tmp_path / "nan.npy", "--ids", tiny_data.ids, "--json",
                says="NaN")
    np.save(tmp_path / "wide.npy", np.full((60, 4), 0.25))
    amend.fails("predictions", "import", tiny_project, tmp_path / "wide.npy", "--ids", tiny_data.ids,
                says="4 columns but the project has 3 labels")


def test_embed_with_decoding_workers_prints_no_lancedb_fork_warning(amend_process, tiny_checkpoint, tmp_path):
    # lancedb warns in every forked child (an at-fork hook) on the user's stderr; the decoding
    # workers never touch LanceDB, so `amend embed` must not pass that warning on.
    from PIL import Image

    for i in range(6):
        folder = tmp_path / "images" / ("cat" if i % 2 else "dog")
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16), (40 * i, 20, 200 - 30 * i)).save(folder / f"{i}.png")
    project = tmp_path / "project"
    amend_process("init", project, "--images", tmp_path / "images")
    checkpoint, _ = tiny_checkpoint
    # 6 images in batches of 2: more than two batches, so decoding runs in a worker process
    result = amend_process("embed", project, "--model", "amend-tiny-test", "--checkpoint", checkpoint,
                           "--device", "cpu", "--batch-size", "2")
    assert result.out.startswith("representation clip: embedded 6, skipped 0"), result.out
    assert "fork" not in result.err, result.err
