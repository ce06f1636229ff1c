"""Data arrival in a Lambda: validation, the two idempotency layers, ``StartPipelineExecution``.

The lifecycle (``lambdas.lifecycle.on_data_arrival``) decides; this module supplies its runtime:

* validation before any side effect (the lifecycle's parser: envelope, account, team prefix, raw
  bucket, batch folder, key shape; plus the event's size and JSON shape);
* layer 1, Powertools idempotency on ``bucket + key + version-id``, so a redelivered event returns the
  first answer without touching SageMaker;
* the lifecycle's claim per batch folder (:class:`~lambdas.common.store.DynamoDbClaimStore`), so other
  objects of a started batch start nothing;
* layer 2, ``ClientRequestToken`` = sha256(bucket, key, version-id): a retry of a timed-out start
  (botocore's, or Lambda's after the claim's lease ran out) cannot start a second execution.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

from lambdas.common.aws import Clients
from lambdas.common.errors import InvalidEvent, access_denied, decode_event, failed, rejected
from lambdas.common.idempotency import idempotent
from lambdas.common.store import claims_context
from lambdas.lifecycle import LifecycleContext, LifecycleEventError, TeamTarget, on_data_arrival, parse_object_created
from lambdas.lifecycle.events import parse_object_created_event

from .config import ArrivalConfig

#: Layer 1's key: the object version that triggered the event.
IDEMPOTENCY_KEY: Final = '[detail.bucket.name, detail.object.key, detail.object."version-id"]'
#: A version-less object (unversioned bucket) is keyed as S3 names its null version.
NULL_VERSION: Final = "null"


def client_request_token(bucket: str, key: str, version_id: str | None) -> str:
    """The deterministic ``ClientRequestToken`` of an object version (64 hex characters; 32-128 allowed)."""
    return hashlib.sha256("\x1f".join((bucket, key, version_id or NULL_VERSION)).encode("utf-8")).hexdigest()


class PipelineStarter:
    """:class:`lambdas.lifecycle.LifecycleActions` of the arrival Lambda: it only starts pipelines."""

    def __init__(self, sagemaker: Any, client_token: str) -> None:
        self._sagemaker = sagemaker
        self._token = client_token

    def start_pipeline(self, target: TeamTarget, parameters: Mapping[str, str], client_token: str) -> str:
        """``StartPipelineExecution`` with the object version's token (the lifecycle passes it through)."""
        response = self._sagemaker.start_pipeline_execution(
            PipelineName=target.pipeline_name,
            PipelineParameters=[{"Name": name, "Value": str(value)} for name, value in parameters.items()],
            PipelineExecutionDescription=f"batch {parameters.get('InputDataUri', '')}"[:3072],
            ClientRequestToken=client_token,
        )
        return str(response["PipelineExecutionArn"])

    def deployed_package(self, target: TeamTarget) -> str | None:
        raise NotImplementedError("the data-arrival Lambda does not deploy")

    def deploy(self, target: TeamTarget, package_arn: str) -> None:
        raise NotImplementedError("the data-arrival Lambda does not deploy")

    def undeploy(self, target: TeamTarget) -> None:
        raise NotImplementedError("the data-arrival Lambda does not deploy")


class ArrivalRuntime:
    """The execution environment's state: config, clients, the idempotent processing function."""

    def __init__(self, config: ArrivalConfig, logger: Logger, metrics: Metrics, clients: Clients | None = None) -> None:
        self.config = config
        self.logger = logger
        self.metrics = metrics
        self.clients = clients or Clients()
        self.target = TeamTarget(config.team, config.raw_bucket, config.pipeline_name, config.group_name)
        self._process: Any = None
        self._idempotency: IdempotencyConfig | None = None
        self._lease_seconds = 900.0

    def _context(self, actions: Any) -> LifecycleContext:
        return claims_context(
            self.clients,
            table=self.config.idempotency_table,
            target=self.target,
            account=self.config.account_id,
            actions=actions,
            lease_seconds=self._lease_seconds,
            ttl_seconds=self.config.claim_ttl_days * 86_400,
        )

    def _idempotent(self) -> tuple[Any, IdempotencyConfig]:
        if self._process is None:
            self._process, self._idempotency = idempotent(
                self._start,
                client=self.clients.client("dynamodb"),
                table=self.config.idempotency_table,
                key_jmespath=IDEMPOTENCY_KEY,
                expires_after_seconds=self.config.idempotency_ttl_seconds,
                key_prefix=f"arrival-{self.config.team}",
            )
        assert self._idempotency is not None
        return self._process, self._idempotency

    def validate(self, event: Any) -> dict[str, Any]:
        """The event if it is a valid ``Object Created`` of this team's batch; InvalidEvent otherwise."""
        decoded = decode_event(event)
        try:
            parse_object_created(decoded, self._context(actions=None))
        except LifecycleEventError as exc:
            raise InvalidEvent("InvalidEvent", str(exc)) from None
        return decoded

    def _start(self, event: dict[str, Any]) -> dict[str, Any]:
        parsed = parse_object_created_event(event, account=self.config.account_id)
        token = client_request_token(parsed.bucket, parsed.key, parsed.version_id)
        context = self._context(PipelineStarter(self.clients.client("sagemaker"), token))
        result = on_data_arrival(event, context, complete_marker=self.config.complete_marker, client_token=token)
        if result.skipped:
            self.logger.info("object starts nothing", extra={"key": result.key, "reason": result.skipped})
            self.metrics.add_metric(name="ObjectSkipped", unit=MetricUnit.Count, value=1)
            return {"status": "skipped", "reason": result.skipped, "input_data_uri": result.input_data_uri}
        if result.duplicate:
            self.logger.info("batch already started", extra={"input_data_uri": result.input_data_uri})
            self.metrics.add_metric(name="DuplicateBatch", unit=MetricUnit.Count, value=1)
            return {
                "status": "duplicate",
                "input_data_uri": result.input_data_uri,
                "execution_arn": result.execution_arn,
            }
        self.logger.info("pipeline started", extra=asdict(result))
        self.metrics.add_metric(name="PipelineStarted", unit=MetricUnit.Count, value=1)
        return {
            "status": "started",
            "input_data_uri": result.input_data_uri,
            "execution_arn": result.execution_arn,
            "parameters": result.parameters,
        }

    def handle(self, event: Any, lambda_context: Any) -> dict[str, Any]:
        """One invocation: validate (no side effect on refusal), then the idempotent start."""
        process, idempotency = self._idempotent()
        idempotency.register_lambda_context(lambda_context)
        remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
        self._lease_seconds = remaining() / 1000 if callable(remaining) else 900.0
        try:
            valid = self.validate(event)
        except InvalidEvent as exc:
            self.logger.warning("event rejected", extra={"code": exc.code, "detail": str(exc)})
            self.metrics.add_metric(name="EventRejected", unit=MetricUnit.Count, value=1)
            return rejected(exc.code, str(exc))
        try:
            response: dict[str, Any] = process(event=valid)
        except Exception as exc:
            denied = access_denied(exc)
            if denied is None:
                raise  # throttling beyond the retries, bugs, outages: Lambda retries, then the DLQ
            self.logger.error("access denied", extra={"operation": denied.operation_name, "error": str(denied)})
            self.metrics.add_metric(name="DependencyAccessDenied", unit=MetricUnit.Count, value=1)
            return failed("AccessDenied", f"access denied calling {denied.operation_name}; see the function's log")
        return response
