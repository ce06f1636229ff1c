"""The DynamoDB claim store (the lifecycle's IdempotencyStore in a Lambda) under moto, with a fake clock.

GIVEN the lifecycle table, WHEN claims are taken, completed, released or abandoned, THEN a completed or
live claim blocks every other, and an abandoned one (never completed, lease over) can be taken again.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from lambdas.common.store import DynamoDbClaimStore, Records

from .conftest import REGION
from .support import TABLE, create_table, table_items


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dynamodb(aws: None) -> Any:
    client = boto3.client("dynamodb", region_name=REGION)
    create_table(client)
    return client


def test_a_claim_is_taken_once(dynamodb: Any) -> None:
    store = DynamoDbClaimStore(dynamodb, TABLE, lease_seconds=60, ttl_seconds=86_400, clock=Clock())
    assert store.claim("k", {"state": "starting"}) is True
    assert store.claim("k", {"state": "starting"}) is False
    assert store.claimed("k") == {"state": "starting"}


def test_an_abandoned_claim_can_be_taken_after_its_lease(dynamodb: Any) -> None:
    clock = Clock()
    store = DynamoDbClaimStore(dynamodb, TABLE, lease_seconds=60, ttl_seconds=86_400, clock=clock)
    store.claim("k", {"try": 1})
    clock.now += 30
    assert store.claim("k", {"try": 2}) is False  # the first invocation may still be running
    clock.now += 60
    assert store.claimed("k") is None  # it timed out: the claim is abandoned
    assert store.claim("k", {"try": 2}) is True
    assert store.claimed("k") == {"try": 2}


def test_a_completed_claim_never_expires_with_the_lease(dynamodb: Any) -> None:
    clock = Clock()
    store = DynamoDbClaimStore(dynamodb, TABLE, lease_seconds=60, ttl_seconds=86_400, clock=clock)
    store.claim("k", {"state": "starting"})
    store.update_claim("k", {"state": "started"})
    clock.now += 10_000
    assert store.claimed("k") == {"state": "started"}
    assert store.claim("k", {}) is False
    (item,) = table_items(dynamodb)
    assert int(item["expiration"]["N"]) == 1_000_000 + 86_400  # DynamoDB TTL removes it eventually


def test_a_released_claim_can_be_taken_again(dynamodb: Any) -> None:
    store = DynamoDbClaimStore(dynamodb, TABLE, lease_seconds=60, ttl_seconds=86_400, clock=Clock())
    store.claim("k", {})
    store.release("k")
    assert store.claimed("k") is None and store.claim("k", {}) is True


def test_updating_an_unclaimed_key_fails(dynamodb: Any) -> None:
    store = DynamoDbClaimStore(dynamodb, TABLE, lease_seconds=60, ttl_seconds=86_400, clock=Clock())
    with pytest.raises(Exception, match="ConditionalCheckFailed"):
        store.update_claim("never", {})


def test_records_round_trip(dynamodb: Any) -> None:
    records = Records(dynamodb, TABLE)
    assert records.get("rollout#e") is None
    records.put("rollout#e", {"config": "c-v1", "outcome": "in-progress"})
    assert records.get("rollout#e") == {"config": "c-v1", "outcome": "in-progress"}
    records.delete("rollout#e")
    assert records.get("rollout#e") is None
