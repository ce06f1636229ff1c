"""Fixtures of the lifecycle tests: AWS under moto's ``mock_aws`` and an in-memory idempotency store.

Nothing here imports ``flywheel``: the lifecycle logic is tested the way a Lambda runs it, with its
own clients and store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

REGION = "eu-west-1"

# The handlers' Powertools Tracer is created at import: no X-Ray daemon here.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


class MemoryStore:
    """An :class:`lambdas.lifecycle.IdempotencyStore` in a dict (the DynamoDB table of a Lambda)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.operations: list[tuple[str, str]] = []

    def claim(self, key: str, record: dict[str, Any]) -> bool:
        self.operations.append(("claim", key))
        if key in self.records:
            return False
        self.records[key] = dict(record)
        return True

    def claimed(self, key: str) -> dict[str, Any] | None:
        record = self.records.get(key)
        return dict(record) if record is not None else None

    def update_claim(self, key: str, record: dict[str, Any]) -> None:
        self.operations.append(("update", key))
        if key not in self.records:
            raise KeyError(f"update of an unclaimed key {key}")
        self.records[key] = dict(record)

    def release(self, key: str) -> None:
        self.operations.append(("release", key))
        self.records.pop(key, None)


@pytest.fixture
def aws() -> Iterator[None]:
    """moto's in-memory AWS for the test (fake credentials, no network)."""
    with mock_aws():
        yield


@pytest.fixture
def sagemaker(aws: None) -> Any:
    return boto3.client("sagemaker", region_name=REGION)


@pytest.fixture
def s3(aws: None) -> Any:
    return boto3.client("s3", region_name=REGION)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()
