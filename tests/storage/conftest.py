"""A real S3-compatible server for the object-storage tests: moto's server mode on 127.0.0.1 (a
port the OS picks), buckets made with boto3, and the ``AWS_*`` environment a user would set.

Nothing is mocked in the client: LanceDB's own object store talks HTTP to the server. The
environment is hermetic: every ``AWS_*`` variable of the machine is removed, the AWS config files
point nowhere, and the instance-metadata lookup of the AWS credential chain is switched off (and
pointed at a closed loopback port besides), so a test that leaves credentials out sends no
request off this machine.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Iterator

import pytest

from tests.cli.conftest import Result, run_amend

ACCESS_KEY = "AKIAAMENDTEST0000001"
SECRET_KEY = "amend-test-secret-5b8e1f0c9d"  # the tests grep the project folder for it
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)

    def new_bucket(self) -> str:
        name = f"amend-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in ``bucket`` under ``prefix``."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer  # moto[server] is in the test extra (scripts/bootstrap.sh --test)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


def aws_environment(patch: pytest.MonkeyPatch, endpoint: str, tmp: os.PathLike, **overrides: str | None) -> None:
    """What a user sets for an S3-compatible server on plain HTTP; ``overrides``: a variable's value,
    or None to leave it out."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            patch.delenv(name)
    values = {
        "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_ALLOW_HTTP": "true",
        # hermetic: no config files of this machine, no instance-metadata lookup
        "AWS_CONFIG_FILE": os.path.join(tmp, "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(tmp, "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
    }
    values.update(overrides)
    for name, value in values.items():
        if value is not None:
            patch.setenv(name, value)


@pytest.fixture()
def s3_env(s3_server, monkeypatch, tmp_path) -> S3Server:
    """The AWS_* environment for the test server, for one test."""
    aws_environment(monkeypatch, s3_server.endpoint, tmp_path)
    return s3_server


def amend(*args, expect: int = 0) -> Result:
    """`amend ARGS...` in this process, its exit status checked (the CLI tests' runner)."""
    return run_amend(*args, expect=expect)


def amend_fails(*args, says: str, code: int = 1) -> str:
    """A user error: exit ``code``, nothing on stdout, one `amend: error:` line that says ``says``; the line."""
    result = amend(*args, expect=code)
    lines = result.err.splitlines()
    assert result.out == "" and len(lines) == 1 and lines[0].startswith("amend: error: "), result
    assert says in lines[0], f"{says!r} not in {lines[0]!r}"
    return lines[0]
