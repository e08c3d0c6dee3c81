"""Where a project's LanceDB tables live: in the project folder (``lance/``, the default) or at an
object-storage URI given to ``amend init --data URI`` (``s3://bucket/prefix``; ``gs://`` and ``az://``
go through the same Lance storage options).

Only the LanceDB tables move. The folder keeps ``amend.json``, project.sqlite (the registry that
says which tables are committed) and review.sqlite (the append-only, hash-chained decision log):
those need a transactional store with a file lock, which an object store is not.

What the project remembers (``amend.json``'s ``data`` entry: the URI and the non-secret storage
options) is everything but the credentials. Credentials are read from the environment at every
open — for S3 the standard ``AWS_*`` variables (:data:`S3_ENVIRONMENT`) — so copying, backing up or
sharing the project folder never hands out a key. A project without a ``data`` entry (every
project written before object storage existed) keeps its tables in ``lance/``: no migration.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional
from urllib.parse import urlsplit

from core.errors import AmendError
from core.store.schema import LANCE_DIR

#: The ``amend.json`` key that holds a remote location (absent: the tables are in ``lance/``).
INFO_KEY = "data"

#: URI schemes LanceDB opens as object storage, with what each is (for messages).
SCHEMES = {"s3": "Amazon S3 or an S3-compatible server", "gs": "Google Cloud Storage", "az": "Azure Blob Storage"}

#: Lance storage options read from the standard AWS variables at every open of an ``s3://``
#: project, first variable set wins. Lance's object store reads most of them by itself too; naming
#: them here makes the contract Amend's (AWS_ENDPOINT_URL, the name the AWS tools use, and
#: AWS_ALLOW_HTTP) rather than whatever one Lance release happens to read.
S3_ENVIRONMENT: dict[str, tuple[str, ...]] = {
    "aws_endpoint": ("AWS_ENDPOINT_URL", "AWS_ENDPOINT"),
    "aws_region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "aws_access_key_id": ("AWS_ACCESS_KEY_ID",),
    "aws_secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "aws_session_token": ("AWS_SESSION_TOKEN",),
    "allow_http": ("AWS_ALLOW_HTTP",),
}

#: Words that make a storage option a credential (or a path to one): never written to the project.
_SECRET_WORDS = {"secret", "token", "password", "key", "sas", "credential", "credentials"}
#: Options that contain such a word but name no secret.
_NOT_SECRET = {"aws_sse_kms_key_id"}
_OPTION_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


def is_secret_option(key: str) -> bool:
    """Whether a Lance storage option ``key`` carries a credential (a key, a token, a password)."""
    key = key.lower()
    return key not in _NOT_SECRET and bool(_SECRET_WORDS & set(re.split(r"[_\-]", key)))


@dataclass(frozen=True)
class DataLocation:
    """Where the LanceDB tables of a project are: ``uri`` None means the folder's ``lance/``.

    ``options``: the non-secret Lance storage options remembered with the project; they win over
    the ones read from the environment.
    """

    uri: Optional[str] = None
    options: Mapping[str, str] = field(default_factory=dict)

    # ----------------------------------------------------------------- making one
    @classmethod
    def parse(cls, uri: str, storage_options: Iterable[str] = ()) -> "DataLocation":
        """The location named by ``amend init --data URI [--storage-option KEY=VALUE ...]``.

        Raises AmendError for a URI that is not object storage, an option that is not KEY=VALUE,
        and an option that is a credential (those come from the environment, never the project).
        """
        uri = uri.strip()
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            known = ", ".join(f"{name}://" for name in SCHEMES)
            raise AmendError(
                f"--data {uri!r}: Amend keeps tables on object storage at {known} URIs (e.g. s3://bucket/prefix); "
                "leave --data out to keep them in the project folder."
            )
        if not parts.netloc or parts.query or parts.fragment:
            raise AmendError(f"--data {uri!r}: give the bucket and a prefix, like {scheme}://bucket/amend/my-project.")
        prefix = parts.path.strip("/")
        options = {}
        for word in storage_options:
            key, equals, value = word.partition("=")
            key = key.strip().lower()
            if not equals or not _OPTION_KEY.match(key):
                raise AmendError(f"--storage-option {word!r}: write it as KEY=VALUE, e.g. aws_region=eu-west-1.")
            if is_secret_option(key):
                raise AmendError(
                    f"--storage-option {key} is a credential, and Amend never writes credentials into a project: "
                    f"set {key.upper()} in the environment of every process that opens it instead."
                )
            options[key] = value.strip()
        return cls(f"{scheme}://{parts.netloc}" + (f"/{prefix}" if prefix else ""), options)

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> "DataLocation":
        """The location an ``amend.json`` records (none recorded: the folder's ``lance/``)."""
        entry = info.get(INFO_KEY)
        if entry is None:
            return cls()
        if not isinstance(entry, dict) or not isinstance(entry.get("uri"), str) \
                or not isinstance(entry.get("storage_options", {}), dict):
            raise AmendError(f"the project's {INFO_KEY!r} entry in amend.json is damaged ({entry!r}); "
                             "restore amend.json from a backup.")
        return cls(entry["uri"], {str(k): str(v) for k, v in entry.get("storage_options", {}).items()})

    def to_info(self) -> Optional[dict]:
        """What ``amend.json`` keeps of this location (None for the folder's ``lance/``): the URI and
        the non-secret options, never a credential."""
        if self.uri is None:
            return None
        return {"uri": self.uri, "storage_options": {k: v for k, v in self.options.items() if not is_secret_option(k)}}

    # ----------------------------------------------------------------- using one
    @property
    def remote(self) -> bool:
        return self.uri is not None

    @property
    def scheme(self) -> Optional[str]:
        return urlsplit(self.uri).scheme if self.uri else None

    def storage_options(self, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
        """The Lance storage options for this open: the AWS variables of ``environ`` for ``s3://``
        (:data:`S3_ENVIRONMENT`), then the project's own options over them. GCS and Azure read their
        own variables (GOOGLE_*, AZURE_*) inside Lance."""
        options: dict[str, str] = {}
        if self.scheme == "s3":
            for option, variables in S3_ENVIRONMENT.items():
                value = next((environ[v] for v in variables if environ.get(v)), None)
                if value is not None:
                    options[option] = value
        options.update(self.options)
        return options

    def connect(self, root: Path):
        """A LanceDB connection to the tables of the project at ``root``.

        Raises AmendError, naming the URI and what to set, when the object store cannot be reached,
        the bucket does not exist or no credentials are found (LanceDB lists the prefix on connect,
        so those show here rather than at the first read).
        """
        import lancedb

        if self.uri is None:
            return lancedb.connect(str(root / LANCE_DIR))
        options = self.storage_options()
        if self.scheme == "s3" and bool(options.get("aws_access_key_id")) != bool(options.get("aws_secret_access_key")):
            missing = "AWS_SECRET_ACCESS_KEY" if options.get("aws_access_key_id") else "AWS_ACCESS_KEY_ID"
            raise AmendError(f"cannot open the tables at {self.uri}: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go "
                             f"together, and {missing} is not set.")
        endpoint = options.get("aws_endpoint", "")
        if endpoint.startswith("http://") and options.get("allow_http", "").lower() not in ("true", "1", "yes"):
            raise self._plain_http(endpoint)
        try:
            return lancedb.connect(self.uri, storage_options=options)
        except (ValueError, OSError, RuntimeError) as exc:
            raise self.error(exc) from exc

    def _plain_http(self, endpoint: Optional[str]) -> AmendError:
        return AmendError(f"{endpoint} is a plain-HTTP endpoint for {self.uri}: set AWS_ALLOW_HTTP=true to use it, "
                          "or give its https:// address.")

    def error(self, exc: BaseException) -> AmendError:
        """The one-line user error for a failure of the object store under this location."""
        options = self.storage_options()
        text = str(exc)
        for key, value in options.items():  # the message is printed and may be logged: never a credential in it
            if value and is_secret_option(key):
                text = text.replace(value, "***")
        endpoint = options.get("aws_endpoint") or options.get("endpoint")
        at = f" at {endpoint}" if endpoint else ""
        bucket = urlsplit(self.uri or "").netloc
        if self.scheme == "s3" and ("Failed to get AWS credentials" in text or "CredentialsNotLoaded" in text):
            return AmendError(f"no credentials for {self.uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
                              "AWS_SESSION_TOKEN for temporary ones) in the environment, or run where an instance or "
                              "container role provides them.")
        if "credential" in text.lower() and self.scheme in ("gs", "az"):
            variables = "GOOGLE_SERVICE_ACCOUNT or GOOGLE_APPLICATION_CREDENTIALS" if self.scheme == "gs" \
                else "AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY"
            return AmendError(f"no credentials for {self.uri}: set {variables} in the environment.")
        if "NoSuchBucket" in text:
            return AmendError(f"the bucket {bucket!r} of {self.uri} does not exist{at}: create it, or check the URI "
                              "and AWS_ENDPOINT_URL.")
        if "BadScheme" in text:
            return self._plain_http(endpoint)
        if any(word in text for word in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden",
                                         "status: 403")):
            return AmendError(f"the object store{at} refused the credentials for {self.uri}: check "
                              "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, and the bucket's policy.")
        if any(word in text for word in ("ConnectError", "tcp connect error", "dns error", "Connection refused",
                                         "timed out", "TimedOut")):
            where = endpoint or "the default endpoint of its region"
            return AmendError(f"cannot reach the object store for {self.uri} ({where}): check AWS_ENDPOINT_URL "
                              "(and AWS_REGION) and that the server is up.")
        detail = " ".join(text.split())
        if len(detail) > 300:  # LanceDB's messages carry a whole Rust error chain
            detail = detail[:300] + "..."
        return AmendError(f"cannot use the tables at {self.uri}: {detail}")
