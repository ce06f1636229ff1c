"""Batch scoring in a Lambda: the schedule's tick launches; a finished execution publishes its counts.

* The schedule's event (``{"source": "flywheel.scoring-schedule", "team": <team>}``, EventBridge
  Scheduler's static input) → :func:`~.launch.launch` on every complete batch under the team's
  ``scoring/incoming/`` prefix: the newest Approved model, one execution per new batch (claims in the
  team's lifecycle table). No Approved model: ``{"status": "no-approved-model"}``, the
  ``ScoringSkippedNoModel`` metric and a warning naming the fix — not an error (a retry cannot help).
* ``SageMaker Model Building Pipeline Execution Status Change`` of the team's scoring pipeline, in a
  final state → the run's ``summary.json`` (reports zone) read and :func:`~.launch.publish_summary`
  (``ScoringRowsIn``/``ScoringRowsScored``/``ScoringRowsRejected``, ``ScoringRunsSucceeded``/``Failed``).

Anything else is rejected before any side effect.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from lambdas.common.aws import Clients
from lambdas.common.errors import InvalidEvent, access_denied, decode_event, failed, rejected
from lambdas.common.store import DynamoDbClaimStore

from . import launch
from .config import ScoringConfig

SCHEDULE_SOURCE: Final = "flywheel.scoring-schedule"
EXECUTION_STATUS_CHANGE: Final = "SageMaker Model Building Pipeline Execution Status Change"
FINAL_STATES: Final = ("Succeeded", "Failed", "Stopped")
LEASE_SECONDS: Final = 900.0


class ScoringRuntime:
    """The execution environment's state: config, clients."""

    def __init__(self, config: ScoringConfig, logger: Logger, metrics: Metrics, clients: Clients | None = None) -> None:
        self.config = config
        self.logger = logger
        self.metrics = metrics
        self.clients = clients or Clients()
        self.target = launch.ScoringTarget(
            team=config.team,
            pipeline_name=config.pipeline_name,
            group_name=config.group_name,
            raw_bucket=config.raw_bucket,
            model_role_arn=config.model_role_arn,
            subnet_ids=config.subnet_ids,
            security_group_ids=config.security_group_ids,
        )

    def classify(self, event: Any) -> tuple[str, dict[str, Any]]:
        """``("schedule" | "finished", event)``; InvalidEvent for anything this function does not handle."""
        decoded = decode_event(event)
        if decoded.get("source") == SCHEDULE_SOURCE:
            if decoded.get("team") != self.config.team:
                raise InvalidEvent("ForeignTeam", f"the schedule's team is not {self.config.team}")
            return "schedule", decoded
        if decoded.get("detail-type") == EXECUTION_STATUS_CHANGE:
            if str(decoded.get("account")) != self.config.account_id:
                raise InvalidEvent("ForeignAccount", "the event comes from another account")
            detail = decoded.get("detail")
            if not isinstance(detail, dict):
                raise InvalidEvent("InvalidEvent", "the event has no detail object")
            pipeline = str(detail.get("pipelineArn", "")).rsplit("/", 1)[-1]
            if pipeline.lower() != self.config.pipeline_name.lower():
                raise InvalidEvent("ForeignPipeline", f"the execution is not of pipeline {self.config.pipeline_name}")
            execution = str(detail.get("pipelineExecutionArn", ""))
            if "/execution/" not in execution or not execution.rsplit("/", 1)[-1].isalnum():
                raise InvalidEvent("InvalidEvent", "the event's pipelineExecutionArn is not an execution ARN")
            return "finished", decoded
        raise InvalidEvent("UnsupportedEvent", f"no handler for detail-type {str(decoded.get('detail-type'))[:80]!r}")

    def _launch(self) -> dict[str, Any]:
        sagemaker, s3 = self.clients.client("sagemaker"), self.clients.client("s3")
        store = DynamoDbClaimStore(
            self.clients.client("dynamodb"),
            self.config.idempotency_table,
            lease_seconds=LEASE_SECONDS,
            ttl_seconds=self.config.claim_ttl_days * 86_400,
        )
        batches = launch.new_batches(s3, self.target, marker=self.config.complete_marker)

        def start(parameters: Any, token: str) -> str:
            response = sagemaker.start_pipeline_execution(
                PipelineName=self.config.pipeline_name,
                PipelineParameters=[{"Name": k, "Value": str(v)} for k, v in parameters.items()],
                PipelineExecutionDescription=f"score {parameters[launch.PARAM_INPUT_DATA_URI]}"[:3072],
                ClientRequestToken=token,
            )
            return str(response["PipelineExecutionArn"])

        try:
            result = launch.launch(sagemaker, store, self.target, batches, start)
        except launch.NoApprovedModel as exc:
            self.logger.warning("nothing scored", extra={"reason": str(exc), "batches": len(batches)})
            self.metrics.add_metric(name="ScoringSkippedNoModel", unit=MetricUnit.Count, value=1)
            return {"status": "no-approved-model", "message": str(exc), "batches": len(batches)}
        self.logger.info("scoring launched", extra={"model": result.model_name, "started": result.started,
                                                    "skipped": result.skipped})  # fmt: skip
        self.metrics.add_metric(name="ScoringRunsStarted", unit=MetricUnit.Count, value=len(result.started))
        return {"status": "launched", "model": result.model_name, "package_arn": result.package_arn,
                "started": result.started, "skipped": result.skipped}  # fmt: skip

    def _finished(self, event: dict[str, Any]) -> dict[str, Any]:
        detail = event["detail"]
        status = str(detail.get("currentPipelineExecutionStatus", ""))
        if status not in FINAL_STATES:
            return {"status": "ignored", "execution_status": status}
        execution_id = str(detail["pipelineExecutionArn"]).rsplit("/", 1)[-1]
        key = f"{self.config.pipeline_name}/{execution_id}/summary/summary.json"
        summary: dict[str, Any] | None
        try:
            body = self.clients.client("s3").get_object(Bucket=self.config.reports_bucket, Key=key)["Body"].read()
            summary = json.loads(body)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
            summary = None  # failed before its summary: counted as a failed run
        except ValueError:
            summary = None
        data = launch.publish_summary(
            self.clients.client("cloudwatch"), self.config.team, self.config.pipeline_name, status, summary
        )
        log = self.logger.info if status == "Succeeded" else self.logger.error
        log("scoring run finished", extra={"execution": execution_id, "status": status, "summary": summary})
        return {"status": "published", "execution_status": status, "metrics": [d["MetricName"] for d in data]}

    def handle(self, event: Any, lambda_context: Any) -> dict[str, Any]:
        """One invocation: validate (no side effect on refusal), then launch or publish."""
        try:
            kind, valid = self.classify(event)
        except InvalidEvent as exc:
            self.logger.warning("event rejected", extra={"code": exc.code, "detail": str(exc)})
            self.metrics.add_metric(name="EventRejected", unit=MetricUnit.Count, value=1)
            return rejected(exc.code, str(exc))
        try:
            return self._launch() if kind == "schedule" else self._finished(valid)
        except Exception as exc:
            denied = access_denied(exc)
            if denied is None:
                raise  # throttling beyond the retries, bugs, outages: retried, then the DLQ
            self.logger.error("access denied", extra={"operation": denied.operation_name, "error": str(denied)})
            self.metrics.add_metric(name="DependencyAccessDenied", unit=MetricUnit.Count, value=1)
            return failed("AccessDenied", f"access denied calling {denied.operation_name}; see the function's log")
