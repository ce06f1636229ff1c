"""S3 transfers of the local jobs: inputs down under the container paths, outputs up with SSE-KMS."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from botocore.exceptions import ClientError

from flywheel.errors import StepFailed
from naming import split_s3_uri


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``; StepFailed (as the job would fail) for anything else."""
    try:
        return split_s3_uri(uri)
    except ValueError:
        raise StepFailed(f"ClientError: {uri!r} is not an s3:// URI") from None


@dataclass(frozen=True)
class S3Object:
    """One object under an input prefix and its path relative to the channel folder."""

    bucket: str
    key: str
    relative: str
    size: int


class S3Transfers:
    """Listing, download and upload against one S3 client (the embedded AWS)."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3

    def list_prefix(self, uri: str) -> list[S3Object]:
        """Objects of an ``S3Prefix`` input, sorted by key, with SageMaker's relative paths.

        As SageMaker does, the prefix is a string prefix and an object's local path is its key minus
        the prefix (``s3://b/run/test`` puts ``run/test/part.parquet`` at ``part.parquet``); an object
        whose key is the prefix itself lands under its own name (``s3://b/code/x.tar.gz`` as
        ``x.tar.gz``).
        """
        bucket, prefix = split_uri(uri)
        found: list[S3Object] = []
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key.endswith("/"):
                        continue  # folder markers are not data
                    relative = key[len(prefix) :].lstrip("/") or key.rsplit("/", 1)[-1]
                    found.append(S3Object(bucket, key, relative, int(item.get("Size", 0))))
        except ClientError as exc:
            raise StepFailed(f"ClientError: cannot list {uri}: {exc}") from exc
        return sorted(found, key=lambda o: o.key)

    def download(self, obj: S3Object, dest_dir: Path) -> Path:
        """Download ``obj`` under ``dest_dir`` at its relative path (refusing paths that leave it)."""
        rel = PurePosixPath(obj.relative)
        if rel.is_absolute() or any(part in ("..", "") for part in rel.parts) or "\\" in obj.relative:
            raise StepFailed(f"ClientError: refusing S3 key s3://{obj.bucket}/{obj.key}: unsafe relative path")
        target = dest_dir.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            body = self.s3.get_object(Bucket=obj.bucket, Key=obj.key)["Body"]
            with target.open("wb") as sink:
                shutil.copyfileobj(body, sink, length=1 << 20)
        except ClientError as exc:
            raise StepFailed(f"ClientError: cannot download s3://{obj.bucket}/{obj.key}: {exc}") from exc
        return target

    def upload_dir(self, local_dir: Path, uri: str, kms_key: str | None) -> list[str]:
        """Upload every file under ``local_dir`` to ``uri/<relative path>``; returns the URIs."""
        bucket, prefix = split_uri(uri)
        prefix = prefix.rstrip("/")
        uploaded: list[str] = []
        if not local_dir.is_dir():
            return uploaded
        for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            key = "/".join(filter(None, [prefix, path.relative_to(local_dir).as_posix()]))
            self.upload_file(path, bucket, key, kms_key)
            uploaded.append(f"s3://{bucket}/{key}")
        return uploaded

    def upload_file(self, path: Path, bucket: str, key: str, kms_key: str | None) -> None:
        """Upload one file (SSE-KMS with ``kms_key`` when given, else the bucket default)."""
        extra: dict[str, Any] = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key} if kms_key else {}
        try:
            with path.open("rb") as body:
                self.s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        except ClientError as exc:
            raise StepFailed(f"ClientError: cannot upload to s3://{bucket}/{key}: {exc}") from exc

    def read_json(self, uri: str) -> Any:
        """A JSON object from S3 (StepFailed if missing or not JSON)."""
        bucket, key = split_uri(uri)
        try:
            data = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            raise StepFailed(f"cannot read {uri}: {exc}") from exc
        try:
            return json.loads(data)
        except ValueError as exc:
            raise StepFailed(f"{uri} is not valid JSON: {exc}") from exc


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (same file system) or copy it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
