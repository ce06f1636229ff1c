"""``Lambda`` steps whose function is one of Flywheel's handlers, called in-process.

A Lambda step's ``FunctionArn`` (an ARN, ``name:qualifier`` or a bare name) is matched to a handler folder
``lambdas/<name>/handler.py`` by its name: the function name, lowercased without separators, must contain
the folder's (``flywheel-dev-churn-data-arrival`` and ``...-DataArrivalFunction1A2B`` are ``data_arrival``).
The handler's ``lambda_handler(event, context)`` runs in this process with the step's resolved
``Arguments`` as the event and a Lambda-shaped context; the ``OutputParameters`` the step declares are read
from the returned dict (typed as declared), as SageMaker reads them from the function's response. The
handler reads its configuration from this process's environment, as it reads its function's (see
``lambdas/README.md``); a missing setting fails the step with the handler's ``ConfigError``. Its AWS calls go
to the embedded AWS: the in-process mock intercepts them, and with a server the call runs with
``AWS_ENDPOINT_URL`` (and local credentials) set to it, so a handler never reaches real AWS. Any other
function cannot run locally (there is no Lambda runtime): the definition is refused before anything runs.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import lambdas
from flywheel.errors import StepFailed, UnsupportedStepError

LAMBDAS_DIR: Final = Path(lambdas.__file__).resolve().parent
_LOCK = threading.Lock()


def handlers() -> list[str]:
    """The handler folders of ``lambdas/`` (``batch_scoring``, ``data_arrival``, ...)."""
    return sorted(p.parent.name for p in LAMBDAS_DIR.glob("*/handler.py"))


def function_name(function_arn: str) -> str:
    """The function name of an ARN, ``name:qualifier`` or name."""
    text = function_arn.strip()
    if text.startswith("arn:"):
        parts = text.split(":")
        return parts[6] if len(parts) > 6 else parts[-1]
    return text.split(":", 1)[0]


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def handler_for(function_arn: Any, step: str) -> str:
    """The handler folder a Lambda step's function names; UnsupportedStepError for any other function.

    A ``FunctionArn`` that is not a plain string (a parameter) is checked when the step runs: '' here."""
    if function_arn is None or function_arn == "":
        raise UnsupportedStepError(f"step {step!r}: a Lambda step needs a FunctionArn")
    if not isinstance(function_arn, str):
        return ""
    name = _key(function_name(function_arn))
    found = [h for h in handlers() if _key(h) in name]
    if len(found) > 1:  # the longest name is the most specific (none of ours contains another today)
        found = sorted(found, key=len, reverse=True)[:1]
    if not found:
        raise UnsupportedStepError(
            f"step {step!r} has type 'Lambda' with function {function_arn!r}, which the local executor cannot "
            f"run: it calls Flywheel's own handlers in-process ({', '.join(handlers())}: a function whose name "
            "contains one of them), and there is no Lambda runtime for any other function"
        )
    return found[0]


class LambdaContext:
    """What a handler (and Powertools) reads of the Lambda context."""

    def __init__(self, function_arn: str, request_id: str) -> None:
        self.function_name = function_name(function_arn)
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn
        self.memory_limit_in_mb = 128
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        """A Lambda's maximum timeout: the local call has no deadline of its own."""
        return 900_000


_TYPES: Final = {"String": str, "Integer": int, "Float": float, "Boolean": bool}


def _typed(name: str, kind: str, value: Any) -> Any:
    cast = _TYPES.get(kind, str)
    if cast is bool and isinstance(value, str):
        return value.strip().lower() == "true"
    try:
        return cast(value)
    except (TypeError, ValueError):
        raise StepFailed(f"ClientError: output parameter {name}: {value!r} is not a {kind}") from None


@contextlib.contextmanager
def _embedded_aws(endpoint_url: str | None, region: str) -> Iterator[None]:
    """The process environment aimed at the embedded AWS server while a handler runs (restored after)."""
    if not endpoint_url:
        yield
        return
    wanted = {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "flywheel-local",
        "AWS_SECRET_ACCESS_KEY": "flywheel-local",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }
    saved = {key: os.environ.get(key) for key in [*wanted, "AWS_SESSION_TOKEN", "AWS_PROFILE"]}
    for key in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(key, None)
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def call_handler(
    handler: str,
    event: Mapping[str, Any],
    *,
    function_arn: str,
    request_id: str,
    declared: Sequence[Mapping[str, Any]],
    endpoint_url: str | None = None,
    region: str = "eu-west-1",
) -> dict[str, Any]:
    """Call ``lambdas/<handler>/handler.py`` on ``event``; the declared output parameters of its answer.

    ``endpoint_url``: the embedded AWS server the handler's clients must use (None: the in-process mock)."""
    if not handler:
        handler = handler_for(function_arn, request_id)
    # Handlers keep per-process state (configuration, clients), and the environment is the process's: one
    # call at a time.
    with _LOCK, _embedded_aws(endpoint_url, region):
        try:
            module = importlib.import_module(f"lambdas.{handler}.handler")
            answer = module.lambda_handler(dict(event), LambdaContext(function_arn, request_id))
        except Exception as exc:
            raise StepFailed(
                f"ClientError: the Lambda function {function_name(function_arn)} (lambdas/{handler}/handler.py) "
                f"failed: {type(exc).__name__}: {exc}"
            ) from exc
    if not isinstance(answer, Mapping):
        answer = {}
    outputs: dict[str, Any] = {}
    for spec in declared:
        name = str(spec.get("OutputName", ""))
        if name not in answer:
            raise StepFailed(
                f"ClientError: the Lambda function {function_name(function_arn)} returned no output parameter "
                f"{name!r} (it returned: {', '.join(sorted(map(str, answer))) or 'nothing'})"
            )
        outputs[name] = _typed(name, str(spec.get("OutputType", "String")), answer[name])
    return outputs
