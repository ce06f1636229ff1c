"""The lifecycle's :class:`~lambdas.lifecycle.IdempotencyStore` on DynamoDB, and the deploy Lambda's records.

One table per environment serves both handlers and Powertools idempotency: partition key ``id`` (string),
TTL attribute ``expiration`` (epoch seconds). Powertools' items are ``<function>.<name>#<hash>``; the
items here are ``claim#<key>`` (the lifecycle's claims), ``rollout#<endpoint>`` and ``batch-model#<group>``.

Claims are conditional writes: a claim succeeds only if the key was never claimed, or if an earlier
claim was never completed (no :meth:`update_claim`) and its lease has run out — the invocation that
took it timed out or crashed, so a retry must be able to act (and sends the same ClientRequestToken,
which SageMaker deduplicates if the first attempt did start the execution).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Final

from botocore.exceptions import ClientError

from lambdas.lifecycle.ports import LifecycleContext, TeamTarget

from .errors import error_code

KEY_ATTRIBUTE: Final = "id"
TTL_ATTRIBUTE: Final = "expiration"
CLAIMED: Final = "claimed"
DONE: Final = "done"


class DynamoDbClaimStore:
    """:class:`lambdas.lifecycle.IdempotencyStore` with conditional writes on a DynamoDB table.

    ``lease_seconds``: how long an uncompleted claim blocks others (the invocation's remaining time);
    ``ttl_seconds``: how long a completed claim is kept (DynamoDB TTL removes it after).
    """

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        lease_seconds: float,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table
        self._lease = lease_seconds
        self._ttl = ttl_seconds
        self._clock = clock

    @staticmethod
    def item_id(key: str) -> str:
        """The table key of a claim."""
        return f"claim#{key}"

    def claim(self, key: str, record: dict[str, Any]) -> bool:
        """Claim ``key``; False if a completed or live claim holds it."""
        now = self._clock()
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    KEY_ATTRIBUTE: {"S": self.item_id(key)},
                    "state": {"S": CLAIMED},
                    "record": {"S": json.dumps(record, sort_keys=True)},
                    "lease_until": {"N": str(int(now + self._lease) + 1)},
                    TTL_ATTRIBUTE: {"N": str(int(now) + self._ttl)},
                },
                ConditionExpression="attribute_not_exists(#id) OR (#state = :claimed AND lease_until < :now)",
                ExpressionAttributeNames={"#id": KEY_ATTRIBUTE, "#state": "state"},
                ExpressionAttributeValues={":claimed": {"S": CLAIMED}, ":now": {"N": str(int(now))}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claimed(self, key: str) -> dict[str, Any] | None:
        """The record of a completed or live claim; None if unclaimed or abandoned (lease over)."""
        item = self._client.get_item(
            TableName=self._table, Key={KEY_ATTRIBUTE: {"S": self.item_id(key)}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        if item["state"]["S"] == CLAIMED and float(item["lease_until"]["N"]) < self._clock():
            return None
        record: dict[str, Any] = json.loads(item["record"]["S"])
        return record

    def update_claim(self, key: str, record: dict[str, Any]) -> None:
        """Complete a claim with its final record (it no longer expires with the lease)."""
        self._client.update_item(
            TableName=self._table,
            Key={KEY_ATTRIBUTE: {"S": self.item_id(key)}},
            UpdateExpression="SET #state = :done, #record = :record REMOVE lease_until",
            ConditionExpression="attribute_exists(#id)",
            ExpressionAttributeNames={"#id": KEY_ATTRIBUTE, "#state": "state", "#record": "record"},
            ExpressionAttributeValues={":done": {"S": DONE}, ":record": {"S": json.dumps(record, sort_keys=True)}},
        )

    def release(self, key: str) -> None:
        """Drop a claim so that a retry can act."""
        self._client.delete_item(TableName=self._table, Key={KEY_ATTRIBUTE: {"S": self.item_id(key)}})


class Records:
    """Small JSON documents by name in the same table (``rollout#<endpoint>``, ``batch-model#<group>``)."""

    def __init__(self, client: Any, table: str, *, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._table = table
        self._clock = clock

    def get(self, name: str) -> dict[str, Any] | None:
        """The document ``name``, or None."""
        item = self._client.get_item(TableName=self._table, Key={KEY_ATTRIBUTE: {"S": name}}, ConsistentRead=True).get(
            "Item"
        )
        if item is None:
            return None
        document: dict[str, Any] = json.loads(item["document"]["S"])
        return document

    def put(self, name: str, document: dict[str, Any]) -> None:
        """Write the document ``name`` (kept: no TTL)."""
        self._client.put_item(
            TableName=self._table,
            Item={
                KEY_ATTRIBUTE: {"S": name},
                "document": {"S": json.dumps(document, sort_keys=True)},
                "updated": {"N": str(int(self._clock()))},
            },
        )

    def delete(self, name: str) -> None:
        """Remove the document ``name`` (no error if absent)."""
        self._client.delete_item(TableName=self._table, Key={KEY_ATTRIBUTE: {"S": name}})


def claims_context(
    clients: Any,
    *,
    table: str,
    target: TeamTarget,
    account: str,
    actions: Any,
    lease_seconds: float,
    ttl_seconds: int,
) -> LifecycleContext:
    """The lifecycle context of a handler serving one team: its clients and a claim store on ``table``."""
    store = DynamoDbClaimStore(clients.client("dynamodb"), table, lease_seconds=lease_seconds, ttl_seconds=ttl_seconds)
    return LifecycleContext(
        teams={target.team: target},
        sagemaker=clients.client("sagemaker"),
        s3=clients.client("s3"),
        actions=actions,
        store=store,
        account=account,
    )
