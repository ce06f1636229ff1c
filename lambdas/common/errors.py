"""Structured responses for refused events and denied dependencies, scrubbed of ARNs and account ids.

A handler answers a bad event with ``{"status": "rejected", "error": {"code", "message"}}`` and an access
failure with ``{"status": "failed", ...}``; the details (the full message, the exception) go to the log.
Everything else is raised, so that Lambda's retries and the on-failure destination apply.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from botocore.exceptions import ClientError

#: EventBridge's own limit on an event; anything larger did not come from EventBridge.
MAX_EVENT_BYTES: Final = 256 * 1024
MAX_MESSAGE_CHARS: Final = 300
ACCESS_DENIED_CODES: Final = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "KMSAccessDeniedException"}
)
_ARN: Final = re.compile(r"arn:aws[a-z-]*:[^\s'\"]*")
_ACCOUNT: Final = re.compile(r"(?<!\d)\d{12}(?!\d)")


class InvalidEvent(ValueError):
    """An event refused before any side effect; ``code`` is the response's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def scrub(message: str) -> str:
    """``message`` without ARNs or account ids, and short (the response is not the log)."""
    cleaned = _ACCOUNT.sub("<account>", _ARN.sub("<arn>", message))
    return cleaned if len(cleaned) <= MAX_MESSAGE_CHARS else cleaned[: MAX_MESSAGE_CHARS - 1] + "…"


def rejected(code: str, message: str) -> dict[str, Any]:
    """The response to an event that cannot be acted on."""
    return {"status": "rejected", "error": {"code": code, "message": scrub(message)}}


def failed(code: str, message: str) -> dict[str, Any]:
    """The response to an event a dependency refused (the log has the details)."""
    return {"status": "failed", "error": {"code": code, "message": scrub(message)}}


def decode_event(event: Any) -> dict[str, Any]:
    """The event as a dict: JSON text is parsed; oversize, non-JSON or non-object input is refused."""
    if isinstance(event, bytes | bytearray):
        try:
            event = event.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent("MalformedJson", "the event is not UTF-8 text") from None
    if isinstance(event, str):
        if len(event.encode("utf-8")) > MAX_EVENT_BYTES:
            raise InvalidEvent("EventTooLarge", f"the event is larger than {MAX_EVENT_BYTES} bytes")
        try:
            event = json.loads(event)
        except ValueError:
            raise InvalidEvent("MalformedJson", "the event is not valid JSON") from None
    if not isinstance(event, dict) or not event:
        raise InvalidEvent("InvalidEvent", "the event is empty or not a JSON object")
    try:
        size = len(json.dumps(event, default=str).encode("utf-8"))
    except (TypeError, ValueError):
        raise InvalidEvent("InvalidEvent", "the event cannot be serialized as JSON") from None
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent("EventTooLarge", f"the event is larger than {MAX_EVENT_BYTES} bytes")
    return event


def client_error(exc: BaseException) -> ClientError | None:
    """The botocore ClientError behind ``exc`` (Powertools wraps persistence errors), or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ClientError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def error_code(error: ClientError) -> str:
    """The AWS error code of a ClientError."""
    return str(error.response.get("Error", {}).get("Code", ""))


def access_denied(exc: BaseException) -> ClientError | None:
    """The AccessDenied-type ClientError behind ``exc``, or None."""
    error = client_error(exc)
    return error if error is not None and error_code(error) in ACCESS_DENIED_CODES else None
