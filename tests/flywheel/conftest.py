"""Fixtures of the local-runtime tests: an in-process embedded AWS, a state dir, stub step scripts."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_helpers import STUB_BUCKET, STUB_SCRIPTS

from flywheel.embedded import EmbeddedAws
from flywheel.state import StateStore


@pytest.fixture
def embedded() -> Iterator[EmbeddedAws]:
    """A fresh in-process embedded AWS (moto), closed after the test."""
    aws = EmbeddedAws.in_process()
    try:
        yield aws
    finally:
        aws.close()


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    """A state store under the test's tmp dir."""
    return StateStore(tmp_path / "state")


@pytest.fixture
def stub_bucket(embedded: EmbeddedAws, tmp_path: Path) -> str:
    """A bucket holding the stub scripts under ``code/`` and three input objects under ``in/``."""
    s3 = embedded.client("s3")
    s3.create_bucket(Bucket=STUB_BUCKET, CreateBucketConfiguration={"LocationConstraint": embedded.region})
    for name, text in STUB_SCRIPTS.items():
        s3.put_object(Bucket=STUB_BUCKET, Key=f"code/{name}", Body=text.encode())
    archive = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        script = tmp_path / "train_stub.py"
        script.write_text(STUB_SCRIPTS["train_stub.py"])
        tar.add(script, arcname="train_stub.py")
    s3.upload_file(str(archive), STUB_BUCKET, "code/sourcedir.tar.gz")
    for i in range(5):
        s3.put_object(Bucket=STUB_BUCKET, Key=f"in/part-{i}.csv", Body=f"a,b\n{i},{i}\n".encode())
    return STUB_BUCKET
