"""Projects whose LanceDB tables live on S3-compatible object storage (`amend init --data
s3://bucket/prefix`), against a real S3 server on 127.0.0.1 (moto's server mode, see conftest):
the tables land in the bucket under the prefix and nowhere in the folder; every command after init
finds them again from the folder alone; a new process opens the project; no credential is written
into the folder; and every bad setting is one error line that leaves no folder and no tables.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.store.location import DataLocation, is_secret_option
from core.store.project import Project

from .conftest import ACCESS_KEY, SECRET_KEY, S3Server, amend, amend_fails, aws_environment, closed_port

REPO = Path(__file__).resolve().parents[2]
LABELS = ("a", "b", "c")
PLANTED = {"s5": "a", "s10": "c"}  # given a wrong label (true: "c" and "b")
PREFIX = "teams/tiny"


def _write_data(folder: Path) -> dict[str, Path]:
    """Sixty texts in three clusters of 16-d vectors (two planted errors), split into two source
    files (init takes the first, ingest the second), with vectors, ids and probabilities."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows, vectors, truth = [], [], []
    for i in range(60):
        sid, cls = f"s{i}", i % 3
        truth.append(cls)
        vectors.append(np.eye(16, dtype=np.float32)[cls] * 4 + rng.normal(size=16).astype(np.float32) * 0.3)
        rows.append({"id": sid, "text": f"sample number {i}", "label": PLANTED.get(sid, LABELS[cls]),
                     "split": "test" if i % 4 == 0 else "train"})
    files = {"first": folder / "first.jsonl", "second": folder / "second.jsonl", "vectors": folder / "vectors.npy",
             "ids": folder / "ids.txt", "probabilities": folder / "probs.npy"}
    files["first"].write_text("".join(json.dumps(r) + "\n" for r in rows[:40]), encoding="utf-8")
    files["second"].write_text("".join(json.dumps(r) + "\n" for r in rows[40:]), encoding="utf-8")
    np.save(files["vectors"], np.stack(vectors))
    files["ids"].write_text("\n".join(r["id"] for r in rows) + "\n", encoding="utf-8")
    np.save(files["probabilities"], 0.8 * np.eye(3)[truth] + 0.2 / 3)
    return files


def _lance_leftovers(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.name == "lance" or p.suffix == ".lance"]


@pytest.fixture(scope="module")
def team(s3_server: S3Server, tmp_path_factory):
    """A project made through `amend` with its tables at s3://BUCKET/teams/tiny: init, ingest,
    vectors import, predictions import, analyse (slices included). The AWS environment stays set
    for the whole module; tests that change it do so with their own monkeypatch."""
    folder = tmp_path_factory.mktemp("team")
    with pytest.MonkeyPatch.context() as patch:
        aws_environment(patch, s3_server.endpoint, folder)
        bucket = s3_server.new_bucket()
        files = _write_data(folder / "data")
        project = folder / "projects" / "tiny"
        uri = f"s3://{bucket}/{PREFIX}"
        reports = {
            "init": amend("init", project, "--texts", files["first"], "--data", uri, "--json").json(),
            "ingest": amend("ingest", project, "--texts", files["second"], "--json").json(),
            "vectors": amend("vectors", "import", project, files["vectors"], "--ids", files["ids"], "--name", "mine",
                             "--json").json(),
            "predictions": amend("predictions", "import", project, files["probabilities"], "--ids", files["ids"],
                                 "--name", "model", "--json").json(),
            "analyse": amend("analyse", project, "--representation", "mine", "--json").json(),
        }
        yield {"project": project, "bucket": bucket, "uri": uri, "server": s3_server, "reports": reports,
               "folder": folder}


# ----------------------------------------------------------------------------- where things are
def test_the_tables_are_in_the_bucket_under_the_prefix_and_not_in_the_folder(team):
    assert team["reports"]["init"]["taken"] == 40 and team["reports"]["ingest"]["taken"] == 20
    keys = team["server"].keys(team["bucket"])
    assert keys and all(key.startswith(PREFIX + "/") for key in keys)
    tables = {key[len(PREFIX) + 1:].split("/", 1)[0] for key in keys}
    assert "samples.lance" in tables
    for kind in ("vectors__mine", "predictions__model", "evidence__", "slices__"):
        assert any(table.startswith(kind) for table in tables), (kind, tables)

    project: Path = team["project"]
    assert _lance_leftovers(project) == []
    assert {"amend.json", "project.sqlite"} <= {p.name for p in project.iterdir()}  # review.sqlite: at the first decision
    info = json.loads((project / "amend.json").read_text())
    assert info["data"] == {"uri": team["uri"], "storage_options": {}}
    assert info["schema_version"] == 4  # absence of "data" means lance/: no new schema


def test_no_credential_is_written_anywhere_in_the_project_folder(team):
    amend("decide", team["project"], "--id", "s1", "--keep", "--reviewer", "ann", "--json")  # the log has an event
    for path in team["project"].rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert SECRET_KEY.encode() not in content and ACCESS_KEY.encode() not in content, path


# ----------------------------------------------------------------------------- every command
def test_every_command_after_init_reads_the_remote_tables(team, tmp_path):
    project = team["project"]
    analysed = team["reports"]["analyse"]
    assert analysed["samples"] == 60 and analysed["slices"] >= 1

    flags = amend("flags", project, "--format", "json").json()
    assert len(flags) == 60
    by_id = {row["id"]: row for row in flags}
    assert by_id["s5"]["flagged"] and by_id["s5"]["suggested_label"] == "c"
    assert by_id["s10"]["flagged"] and by_id["s10"]["suggested_label"] == "b"
    slices = amend("slices", project, "--format", "json").json()
    assert sum(s["size"] for s in slices) == 60

    decided = amend("decide", project, "--id", "s5", "--label", "c", "--reviewer", "ann", "--expected-event", "0",
                    "--json").json()
    assert decided["old_label"] == "a" and decided["new_label"] == "c"
    exported = amend("export", project, tmp_path / "labels.parquet", "--json").json()
    assert exported["rows"] == 60 and exported["changed"] >= 1
    assert amend("audit", "verify", project, "--json").json()["ok"] is True
    assert amend("upgrade", project, "--json").json()["upgraded"] is False
    compared = amend("compare", project, "--json").json()
    assert compared["after"]["accuracy"] >= compared["before"]["accuracy"]

    reopened = Project.open(project)  # a new object finds the tables from amend.json alone
    assert reopened.location.uri == team["uri"]
    assert len(reopened.sample_ids()) == 60
    assert [rep.name for rep in reopened.representations()] == ["mine"]


def test_a_new_process_opens_the_project_with_credentials_from_its_environment(team):
    completed = subprocess.run(
        [sys.executable, "-m", "core.cli", "flags", str(team["project"]), "--top", "3", "--format", "json"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert completed.returncode == 0, completed.stderr
    in_process = amend("flags", team["project"], "--top", "3", "--format", "json").json()
    assert json.loads(completed.stdout) == in_process


def test_the_triage_page_works_on_a_remote_project(team, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("AMEND_PROJECTS", str(team["project"]))
    app = AppTest.from_file(str(REPO / "pages" / "triage.py"), default_timeout=120)
    app.session_state["identity.name"] = "ann"
    app.run()
    assert not app.exception, app.exception
    assert app.subheader[0].value in {"s5", "s10"}  # the best flagged sample, read from the bucket


# ----------------------------------------------------------------------------- an open that fails
# slow: LanceDB retries a connection that is refused three times (about 5 s) before it gives up
@pytest.mark.slow
def test_an_existing_project_that_cannot_reach_its_tables_says_so_in_one_line(team, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    line = amend_fails("flags", team["project"], "--format", "json", says="cannot reach the object store")
    assert team["uri"] in line and "AWS_ENDPOINT_URL" in line

    monkeypatch.setenv("AWS_ENDPOINT_URL", team["server"].endpoint)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    line = amend_fails("flags", team["project"], says="no credentials for " + team["uri"])
    assert "AWS_ACCESS_KEY_ID" in line
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)  # half a key pair
    amend_fails("flags", team["project"], says="AWS_SECRET_ACCESS_KEY is not set")


# ----------------------------------------------------------------------------- init that fails
def _nothing_made(tmp_path: Path, server: S3Server, bucket: str) -> None:
    assert not (tmp_path / "p").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".p.creating-")] == []
    assert server.keys(bucket) == []


@pytest.fixture()
def source(tmp_path) -> Path:
    return _write_data(tmp_path / "data")["first"]


def test_data_uris_that_are_not_object_storage_are_refused(s3_env, tmp_path, source):
    for uri, says in (("ftp://host/tables", "Amend keeps tables on object storage at s3://, gs://, az:// URIs"),
                      (str(tmp_path / "elsewhere"), "leave --data out"),
                      ("s3://", "give the bucket and a prefix"),
                      ("s3:///prefix", "give the bucket and a prefix")):
        amend_fails("init", tmp_path / "p", "--texts", source, "--data", uri, says=says)
        assert not (tmp_path / "p").exists()


def test_credentials_are_refused_as_storage_options(s3_env, tmp_path, source):
    bucket = s3_env.new_bucket()
    uri = f"s3://{bucket}/p"
    line = amend_fails("init", tmp_path / "p", "--texts", source, "--data", uri,
                       "--storage-option", f"aws_secret_access_key={SECRET_KEY}", says="is a credential")
    assert "AWS_SECRET_ACCESS_KEY in the environment" in line and SECRET_KEY not in line
    amend_fails("init", tmp_path / "p", "--texts", source, "--data", uri, "--storage-option", "aws_session_token=x",
                says="is a credential")
    amend_fails("init", tmp_path / "p", "--texts", source, "--data", uri, "--storage-option", "no-equals-sign",
                says="write it as KEY=VALUE")
    amend_fails("init", tmp_path / "p", "--texts", source, "--storage-option", "aws_region=eu-west-1",
                says="give --data URI with it")
    _nothing_made(tmp_path, s3_env, bucket)


# slow: LanceDB retries a connection that is refused three times (about 5 s) before it gives up
@pytest.mark.slow
def test_an_unreachable_endpoint_is_one_line_and_leaves_nothing(s3_server, monkeypatch, tmp_path, source):
    aws_environment(monkeypatch, f"http://127.0.0.1:{closed_port()}", tmp_path)
    bucket = s3_server.new_bucket()
    line = amend_fails("init", tmp_path / "p", "--texts", source, "--data", f"s3://{bucket}/p",
                       says="cannot reach the object store for s3://")
    assert "check AWS_ENDPOINT_URL" in line
    _nothing_made(tmp_path, s3_server, bucket)


def test_a_missing_bucket_is_one_line_and_leaves_nothing(s3_env, tmp_path, source):
    amend_fails("init", tmp_path / "p", "--texts", source, "--data", "s3://no-such-amend-bucket/p",
                says="the bucket 'no-such-amend-bucket' of s3://no-such-amend-bucket/p does not exist")
    assert not (tmp_path / "p").exists()


def test_missing_credentials_are_one_line_and_leave_nothing(s3_server, monkeypatch, tmp_path, source):
    aws_environment(monkeypatch, s3_server.endpoint, tmp_path, AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
    bucket = s3_server.new_bucket()
    line = amend_fails("init", tmp_path / "p", "--texts", source, "--data", f"s3://{bucket}/p",
                       says=f"no credentials for s3://{bucket}/p")
    assert "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in line
    _nothing_made(tmp_path, s3_server, bucket)


def test_a_plain_http_endpoint_needs_aws_allow_http(s3_server, monkeypatch, tmp_path, source):
    aws_environment(monkeypatch, s3_server.endpoint, tmp_path, AWS_ALLOW_HTTP=None)
    bucket = s3_server.new_bucket()
    amend_fails("init", tmp_path / "p", "--texts", source, "--data", f"s3://{bucket}/p",
                says="set AWS_ALLOW_HTTP=true")
    _nothing_made(tmp_path, s3_server, bucket)


def test_a_prefix_that_already_holds_tables_is_refused_and_left_alone(s3_env, tmp_path, source):
    bucket = s3_env.new_bucket()
    uri = f"s3://{bucket}/shared"
    amend("init", tmp_path / "first", "--texts", source, "--data", uri)
    before = s3_env.keys(bucket)
    amend_fails("init", tmp_path / "p", "--texts", source, "--data", uri, says=f"{uri} already holds LanceDB tables")
    assert s3_env.keys(bucket) == before and not (tmp_path / "p").exists()
    amend("init", tmp_path / "p", "--texts", source, "--data", f"{uri}-2")  # a prefix of its own works


def test_an_init_that_fails_after_making_tables_removes_them_from_the_bucket(s3_env, tmp_path, source):
    bucket = s3_env.new_bucket()
    uri = f"s3://{bucket}/p"
    # Every row is refused (no label is in the declared set): the samples table was made, then init fails.
    amend_fails("init", tmp_path / "p", "--texts", source, "--labels", "x,y", "--data", uri,
                says="no project was created")
    _nothing_made(tmp_path, s3_env, bucket)
    assert amend("init", tmp_path / "p", "--texts", source, "--data", uri, "--json").json()["taken"] == 40  # rerun


# ----------------------------------------------------------------------------- variants
def test_the_other_variable_names_and_stored_options(s3_server, monkeypatch, tmp_path, source):
    aws_environment(monkeypatch, None, tmp_path, AWS_ENDPOINT_URL=None, AWS_REGION=None,
                    AWS_ENDPOINT=s3_server.endpoint, AWS_DEFAULT_REGION="us-east-1")
    bucket = s3_server.new_bucket()
    amend("init", tmp_path / "p", "--texts", source, "--data", f"s3://{bucket}/p/",
          "--storage-option", "aws_virtual_hosted_style_request=false")
    info = json.loads((tmp_path / "p" / "amend.json").read_text())
    assert info["data"] == {"uri": f"s3://{bucket}/p",
                            "storage_options": {"aws_virtual_hosted_style_request": "false"}}
    assert any(key.startswith("p/samples.lance/") for key in s3_server.keys(bucket))


def test_the_python_api_creates_a_remote_project(s3_env, tmp_path):
    from core import api
    from builders import add_rows

    bucket = s3_env.new_bucket()
    project = api.create_project(tmp_path / "p", data=f"s3://{bucket}/api")
    add_rows(project, [{"id": "x1", "text": "hello", "label": "a"}, {"id": "x2", "text": "bye", "label": "b"}])
    assert api.open_project(tmp_path / "p").sample_ids() == ["x1", "x2"]
    assert any(key.startswith("api/samples.lance/") for key in s3_env.keys(bucket))
    with pytest.raises(Exception, match="is a credential"):
        api.create_project(tmp_path / "q", data=f"s3://{bucket}/q", storage_options={"aws_access_key_id": "x"})


def test_storage_options_come_from_the_environment_and_the_project_wins():
    location = DataLocation.parse("s3://bucket/prefix", ["aws_region=eu-west-1"])
    environ = {"AWS_ENDPOINT": "http://old", "AWS_ENDPOINT_URL": "http://new", "AWS_DEFAULT_REGION": "us-east-2",
               "AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_ALLOW_HTTP": "true"}
    assert location.storage_options(environ) == {
        "aws_endpoint": "http://new", "aws_region": "eu-west-1", "aws_access_key_id": "id",
        "aws_secret_access_key": "secret", "allow_http": "true"}
    assert location.to_info() == {"uri": "s3://bucket/prefix", "storage_options": {"aws_region": "eu-west-1"}}
    assert DataLocation.parse("gs://bucket/x").storage_options(environ) == {}  # Lance reads GOOGLE_* itself
    assert DataLocation.from_info({}).remote is False  # a project from before: tables in lance/
    for key in ("aws_secret_access_key", "aws_access_key_id", "aws_session_token", "google_service_account_key",
                "azure_storage_account_key", "azure_client_secret", "azure_storage_sas_key"):
        assert is_secret_option(key), key
    for key in ("aws_region", "aws_endpoint", "allow_http", "aws_sse_kms_key_id", "timeout"):
        assert not is_secret_option(key), key


# ----------------------------------------------------------------------------- slow: the real embedder, capture
@pytest.mark.slow
def test_embed_and_captured_runs_on_a_remote_project(s3_env, tmp_path):
    """`amend embed` (the offline text embedder, in-process) writes its vector table to the bucket and
    resumes from it; a run captured with core.capture stays in the folder (capture/), and the
    analysis that uses it writes the captured layer's vectors and the evidence to the bucket."""
    import torch

    from core import capture

    files = _write_data(tmp_path / "data")
    bucket = s3_env.new_bucket()
    project = tmp_path / "p"
    amend("init", project, "--texts", files["first"], "--data", f"s3://{bucket}/p")
    embedded = amend("embed", project, "--embedder", "offline", "--json").json()
    assert embedded["embedded"] == 40
    assert amend("embed", project, "--embedder", "offline", "--json").json()["skipped"] == 40  # resumed from the bucket

    ids = [f"s{i}" for i in range(40)]
    inputs = torch.tensor(np.load(files["vectors"])[:40])
    targets = torch.tensor([i % 3 for i in range(40)])
    model = capture.watch(torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)),
                          layers={"hidden": "0"})
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(3):
        with capture.session(project, run="mlp", epoch=epoch, split="train"):
            loss = torch.nn.functional.cross_entropy(model(inputs, labels=targets, sample_ids=ids), targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert amend("analyse", project, "--capture", "mlp", "--no-slices", "--json").json()["samples"] == 40

    tables = {key.split("/")[1] for key in s3_env.keys(bucket, "p/")}
    assert any(t.startswith("vectors__minilm") for t in tables)
    assert any(t.startswith("vectors__capture.mlp.hidden") for t in tables)
    assert any(t.startswith("evidence__") for t in tables)
    assert (project / "capture" / "mlp").is_dir() and not (project / "lance").exists()
