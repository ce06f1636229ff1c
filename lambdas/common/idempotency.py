"""Powertools idempotency (layer 1 of both handlers) on the shared DynamoDB table.

``IdempotencyConfig.register_lambda_context`` is called on every invocation: without it an invocation
that times out leaves an INPROGRESS record that blocks every retry until it expires
(powertools-lambda-python#1038, #4759); with it the record's in-progress expiry is the invocation's
deadline, and a retry after that deadline runs again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from .store import KEY_ATTRIBUTE, TTL_ATTRIBUTE


def idempotent(
    function: Callable[..., dict[str, Any]],
    *,
    client: Any,
    table: str,
    key_jmespath: str,
    expires_after_seconds: int,
    key_prefix: str,
) -> tuple[Callable[..., dict[str, Any]], IdempotencyConfig]:
    """``function`` (called as ``function(event=...)``) made idempotent on ``key_jmespath`` of the event."""
    config = IdempotencyConfig(
        event_key_jmespath=key_jmespath,
        expires_after_seconds=expires_after_seconds,
        raise_on_no_idempotency_key=True,
    )
    persistence = DynamoDBPersistenceLayer(
        table_name=table, key_attr=KEY_ATTRIBUTE, expiry_attr=TTL_ATTRIBUTE, boto3_client=client
    )
    wrapped = idempotent_function(
        function, data_keyword_argument="event", persistence_store=persistence, config=config, key_prefix=key_prefix
    )
    return wrapped, config
