"""Helpers of the handler tests: a fake Lambda context, fault injection into boto3 clients, moto counts.

Faults are injected at botocore's ``before-send``, where moto answers too: botocore calls *every*
``before-send`` handler and uses the first answer, so :func:`_intercept` takes moto's handler off the
client and calls it only for the sends it does not fault. The client's retry handler sees the faults
exactly as it would see AWS's answers: a throttled request is retried by botocore, AccessDenied is not.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from botocore.awsrequest import AWSResponse
from moto.core.models import botocore_stubber

ACCOUNT = "123456789012"
TABLE = "flywheel-local-lifecycle"
_ARN_OR_ACCOUNT = re.compile(r"arn:aws|\d{12}")


class FakeLambdaContext:
    """The attributes of a Lambda context that Powertools reads; ``remaining_ms`` is the time left."""

    def __init__(self, remaining_ms: int = 60_000, function_name: str = "flywheel-local-churn-lifecycle") -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/11/12/[$LATEST]0123456789abcdef"
        self._remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining_ms


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


class Faults:
    """Answer the next ``times`` sends of ``operation`` with an AWS error; count every send."""

    def __init__(self, client: Any, operation: str, code: str, *, times: int, status: int = 400) -> None:
        self.code, self.status, self.remaining = code, status, times
        self.sends: list[dict[str, Any]] = []
        _intercept(client, operation, self._before_send)

    def _before_send(self, request: Any) -> AWSResponse | None:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        self.sends.append(json.loads(body) if body else {})
        if self.remaining <= 0:
            return None  # on to moto
        self.remaining -= 1
        error = json.dumps({"__type": self.code, "message": f"injected {self.code}"}).encode()
        return AWSResponse(request.url, self.status, {"x-amzn-ErrorType": self.code}, _Raw(error))


def _intercept(client: Any, operation: str, hook: Callable[[Any], AWSResponse | None]) -> None:
    """Route the client's sends of ``operation`` through ``hook`` first; moto answers what it passes."""
    service = client.meta.service_model.service_id.hyphenize()
    target = f"before-send.{service}.{operation}"
    previous = getattr(client, "_flywheel_hooks", None)
    if previous is None:
        client.meta.events.unregister("before-send", botocore_stubber)
        previous = client._flywheel_hooks = {}

        def dispatch(event_name: str, request: Any, **kwargs: Any) -> AWSResponse | None:
            for hooked in previous.get(event_name, []):
                answer = hooked(request)
                if answer is not None:
                    return answer
            return botocore_stubber(event_name=event_name, request=request, **kwargs)

        client.meta.events.register("before-send", dispatch)
    previous.setdefault(target, []).append(hook)


class Kill(BaseException):
    """What the Lambda runtime does to an invocation at its deadline: nothing after it runs."""


def kill_on(client: Any, operation: str) -> list[dict[str, Any]]:
    """Kill the invocation on its first send of ``operation``; later sends pass. Returns the requests sent."""
    sent: list[dict[str, Any]] = []

    def before_send(request: Any) -> None:
        sent.append(json.loads(request.body.decode()))
        if len(sent) == 1:
            raise Kill()

    _intercept(client, operation, before_send)
    return sent


def table_items(dynamodb: Any) -> list[dict[str, Any]]:
    """Every item in the lifecycle table."""
    items: list[dict[str, Any]] = dynamodb.scan(TableName=TABLE)["Items"]
    return items


def create_table(dynamodb: Any) -> None:
    """The lifecycle table as the CDK creates it: key ``id`` (S), TTL on ``expiration``."""
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )


def assert_clean_error(response: Any, status: str = "rejected") -> None:
    """A structured error without ARN, account id or traceback."""
    assert isinstance(response, dict) and response["status"] == status, response
    assert set(response["error"]) == {"code", "message"} and response["error"]["code"]
    text = json.dumps(response)
    assert not _ARN_OR_ACCOUNT.search(text), text
    assert "Traceback" not in text and 'File "' not in text


def no_sleep(monkeypatch: Any) -> list[float]:
    """botocore's retry backoff without waiting; returns the delays it asked for."""
    import time

    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


Hook = Callable[..., Any]
