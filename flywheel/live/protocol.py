"""The AWS JSON 1.1 protocol as SageMaker speaks it: requests in, responses and errors out.

Responses are filtered through botocore's own model of the operation's output (:func:`shape`): only the
members SageMaker defines are sent, timestamps as epoch seconds, so strict clients (the AWS CLI, the
SDK's waiters) parse them as they parse SageMaker's. Errors are SageMaker's shape: HTTP 400 with
``{"__type": "<Code>", "message": "..."}``.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

CONTENT_TYPE: Final = "application/x-amz-json-1.1"
VALIDATION: Final = "ValidationException"
NOT_FOUND: Final = "ResourceNotFound"
CONFLICT: Final = "ConflictException"


class ApiError(Exception):
    """An error answered to the client in SageMaker's shape (400 unless told otherwise)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@functools.cache
def _service_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


def epoch(value: Any) -> float | None:
    """An ISO-8601 string or datetime as epoch seconds (the JSON protocol's timestamps); None if absent."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return float(value)
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _fit(value: Any, shape: Any) -> Any:
    """``value`` reduced to ``shape``: unknown members dropped, timestamps as epoch seconds."""
    kind = shape.type_name
    if value is None:
        return None
    if kind == "structure":
        if not isinstance(value, dict):
            return None
        out = {}
        for name, member in shape.members.items():
            if name in value:
                fitted = _fit(value[name], member)
                if fitted is not None:
                    out[name] = fitted
        return out
    if kind == "list":
        if not isinstance(value, list):
            return None
        return [v for v in (_fit(item, shape.member) for item in value) if v is not None]
    if kind == "map":
        if not isinstance(value, dict):
            return None
        return {str(k): v for k, v in ((k, _fit(v, shape.value)) for k, v in value.items()) if v is not None}
    if kind == "timestamp":
        try:
            return epoch(value)
        except (TypeError, ValueError):
            return None
    if isinstance(value, dict | list):
        return None  # an unresolved expression ({"Get": ...}) where the API has a scalar
    if kind == "string":
        return str(value)
    if kind in ("integer", "long"):
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    if kind in ("float", "double"):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    if kind == "boolean":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    return value


def shape(operation: str, value: dict[str, Any]) -> dict[str, Any]:
    """``value`` as ``operation``'s output shape (see the module docstring)."""
    output = _service_model().operation_model(operation).output_shape
    return dict(_fit(value, output) or {}) if output is not None else {}


def fit_member(shape_name: str, value: Any) -> Any:
    """``value`` as the named shape of the SageMaker model (e.g. ``PipelineExecutionStepMetadata``)."""
    return _fit(value, _service_model().shape_for(shape_name))


def body(value: dict[str, Any]) -> bytes:
    return json.dumps(value, default=str).encode("utf-8")


def headers(length: int) -> list[tuple[str, str]]:
    return [
        ("Content-Type", CONTENT_TYPE),
        ("Content-Length", str(length)),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    ]


def ok(start_response: Any, value: dict[str, Any]) -> Iterable[bytes]:
    """A 200 response with ``value`` as JSON."""
    data = body(value)
    start_response("200 OK", headers(len(data)))
    return [data]


def error(start_response: Any, exc: ApiError) -> Iterable[bytes]:
    """SageMaker's error response for ``exc``."""
    data = body({"__type": exc.code, "message": exc.message})
    start_response(f"{exc.status} {'Bad Request' if exc.status == 400 else 'Error'}", headers(len(data)))
    return [data]
