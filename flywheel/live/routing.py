"""Request routing of the live SageMaker: a WSGI middleware in front of moto's application.

* The local runtime's own clients (user agent :data:`flywheel.embedded.RUNTIME_USER_AGENT`) go straight
  to moto: they run their executions and deliver their events themselves (``flywheel run`` on a running
  ``flywheel up``).
* SageMaker JSON calls (``X-Amz-Target: SageMaker.<Operation>``) the live layer answers
  (:attr:`LiveSageMaker.operations`) are answered by it; ``UpdateModelPackage`` goes to moto and then, if
  it set an approval status, emits the state-change event; everything else goes to moto.
* S3 requests that create an object under a team's ``incoming/`` prefix go to moto and then, if moto
  stored the object, emit its ``Object Created`` event. S3 is addressed path-style (the only style an
  ``http://127.0.0.1:<port>`` endpoint allows).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from flywheel.embedded import RUNTIME_USER_AGENT
from flywheel.live.protocol import VALIDATION, ApiError, error, ok

if TYPE_CHECKING:
    from flywheel.live import LiveSageMaker

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_OBJECT_PUT_QUERY = {"x-id"}


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body; ``wsgi.input`` replaced so the next application can read it again."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    data = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(data)
    return data


def created_object(environ: dict[str, Any]) -> tuple[str, str] | None:
    """``(bucket, key)`` if the request is an S3 call that creates an object (path-style), else None."""
    method = environ.get("REQUEST_METHOD", "")
    parts = unquote(environ.get("PATH_INFO", "")).lstrip("/").split("/", 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if method == "PUT" and set(query) <= _OBJECT_PUT_QUERY:
        return parts[0], parts[1]  # PutObject, CopyObject
    if method == "POST" and "uploadId" in query:
        return parts[0], parts[1]  # CompleteMultipartUpload
    return None


class LiveRouter:
    """The middleware (see the module docstring); inactive (pure moto) until :attr:`live` is set."""

    def __init__(self, inner: WsgiApp) -> None:
        self.inner = inner
        self.live: LiveSageMaker | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        live = self.live
        if live is None or RUNTIME_USER_AGENT in environ.get("HTTP_USER_AGENT", ""):
            return self.inner(environ, start_response)
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if target.startswith("SageMaker."):
            return self._sagemaker(live, target.partition(".")[2], environ, start_response)
        found = created_object(environ)
        if found is not None and live.events.incoming_team(*found):
            return self._after_success(environ, start_response, lambda: live.events.object_created(*found))
        return self.inner(environ, start_response)

    def _sagemaker(
        self, live: LiveSageMaker, operation: str, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        raw = _read_body(environ)
        handler = live.operations.get(operation)
        if handler is None and operation != "UpdateModelPackage":
            return self.inner(environ, start_response)
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            return error(start_response, ApiError("SerializationException", "The request body is not valid JSON"))
        if not isinstance(request, dict):
            return error(start_response, ApiError("SerializationException", "The request body must be a JSON object"))
        if handler is None:  # UpdateModelPackage: moto updates, then the state-change event
            arn = str(request.get("ModelPackageArn") or "")
            if request.get("ModelApprovalStatus") in ("Approved", "Rejected") and arn:
                return self._after_success(environ, start_response, lambda: live.events.package_state_changed(arn))
            return self.inner(environ, start_response)
        try:
            answer = handler(request)
        except ApiError as exc:
            return error(start_response, exc)
        except (KeyError, TypeError, ValueError) as exc:
            return error(start_response, ApiError(VALIDATION, f"Invalid request for {operation}: {exc}"))
        if answer is None:
            return self.inner(environ, start_response)  # not ours to answer (e.g. a job moto ran)
        return ok(start_response, answer)

    def _after_success(
        self, environ: dict[str, Any], start_response: Callable[..., Any], then: Callable[[], None]
    ) -> Iterable[bytes]:
        """Forward to moto; call ``then`` once moto answered 2xx (the response is complete by then)."""
        status: list[str] = []

        def capture(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info) if exc_info else start_response(code, headers)

        chunks = list(self.inner(environ, capture))
        if status and status[0].startswith("2"):
            then()
        return chunks
