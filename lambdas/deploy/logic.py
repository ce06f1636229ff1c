"""Approval → deployment in a Lambda: validation, idempotency, the lifecycle's gate, rollout outcomes.

* ``SageMaker Model Package State Change``: validated before any side effect (the lifecycle's parser:
  envelope, account, versioned ARN, status, this team's group), then — idempotent on package ARN +
  approval status (Powertools, same table as the arrival Lambda) — the lifecycle's gate
  (``on_model_package_state_change``: the registry's current status decides; Approved deploys,
  Rejected of the deployed package rolls back or undeploys, Pending changes nothing) with
  :class:`~.actions.SageMakerDeployActions` doing the work.
* ``SageMaker Endpoint Deployment State Change`` of the team's endpoint: the rollout's outcome from
  DescribeEndpoint (:func:`~.rollout.verify_rollout`): logged, counted (``RolloutSucceeded``,
  ``RolloutRolledBack``, ``RolloutFailed``) and recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

from lambdas.common.aws import Clients
from lambdas.common.errors import InvalidEvent, access_denied, decode_event, failed, rejected, scrub
from lambdas.common.idempotency import idempotent
from lambdas.common.store import Records, claims_context
from lambdas.lifecycle import (
    MODEL_PACKAGE_STATE_CHANGE,
    MODEL_PROMOTION_APPROVED,
    PROMOTION_SOURCE,
    LifecycleContext,
    LifecycleEventError,
    TeamTarget,
    on_model_package_state_change,
    parse_model_package_state_change,
    parse_model_promotion_event,
)

from .actions import DeploymentRefused, SageMakerDeployActions, package_version
from .config import DeployConfig
from .rollout import DEPLOYMENT_STATE_CHANGE, parse_deployment_state_change, verify_rollout

IDEMPOTENCY_KEY: Final = "[detail.ModelPackageArn, detail.ModelApprovalStatus]"
#: A promotion is idempotent on the package ARN + "Promoted" (a person's re-sent event deploys once).
PROMOTION_IDEMPOTENCY_KEY: Final = "[detail.ModelPackageArn, 'Promoted']"
_ROLLOUT_METRICS: Final = {
    "succeeded": "RolloutSucceeded",
    "rolled-back": "RolloutRolledBack",
    "failed": "RolloutFailed",
}


class DeployRuntime:
    """The execution environment's state: config, clients, the idempotent deployment function."""

    def __init__(
        self,
        config: DeployConfig,
        logger: Logger,
        metrics: Metrics,
        clients: Clients | None = None,
        *,
        update_endpoint: Callable[..., Any] | None = None,
    ) -> None:
        self.config = config
        self.logger = logger
        self.metrics = metrics
        self.clients = clients or Clients()
        #: The UpdateEndpoint seam (tests assert the request; moto has no update_endpoint).
        self.update_endpoint = update_endpoint
        self.target = TeamTarget(config.team, raw_bucket="", pipeline_name="", group_name=config.group_name)
        self._process: Any = None
        self._promote_process: Any = None
        self._idempotency: IdempotencyConfig | None = None
        self._promote_idempotency: IdempotencyConfig | None = None

    @property
    def records(self) -> Records:
        """The deploy records (rollouts, batch model) in the shared table."""
        return Records(self.clients.client("dynamodb"), self.config.idempotency_table)

    def _context(self, actions: Any) -> LifecycleContext:
        return claims_context(
            self.clients,
            table=self.config.idempotency_table,
            target=self.target,
            account=self.config.account_id,
            actions=actions,
            lease_seconds=900,
            ttl_seconds=self.config.idempotency_ttl_seconds,
        )

    def _idempotent(self) -> tuple[Any, IdempotencyConfig]:
        if self._process is None:
            self._process, self._idempotency = idempotent(
                self._deploy,
                client=self.clients.client("dynamodb"),
                table=self.config.idempotency_table,
                key_jmespath=IDEMPOTENCY_KEY,
                expires_after_seconds=self.config.idempotency_ttl_seconds,
                key_prefix=f"deploy-{self.config.team}",
            )
        assert self._idempotency is not None
        return self._process, self._idempotency

    def _idempotent_promotion(self) -> tuple[Any, IdempotencyConfig]:
        if self._promote_process is None:
            self._promote_process, self._promote_idempotency = idempotent(
                self._promote,
                client=self.clients.client("dynamodb"),
                table=self.config.idempotency_table,
                key_jmespath=PROMOTION_IDEMPOTENCY_KEY,
                expires_after_seconds=self.config.idempotency_ttl_seconds,
                key_prefix=f"deploy-{self.config.team}-promotion",
            )
        assert self._promote_idempotency is not None
        return self._promote_process, self._promote_idempotency

    def parse_promotion(self, event: Any) -> Any:
        """The :class:`~lambdas.lifecycle.ModelPromotion` of a valid promotion event (LifecycleEventError)."""
        return parse_model_promotion_event(
            event,
            account=self.config.account_id,
            group=self.config.group_name,
            source_group=self.config.source_group_name,
            source_accounts=self.config.source_accounts,
        )

    def validate(self, event: Any) -> tuple[str, dict[str, Any]]:
        """``(detail-type, event)`` of a valid event for this team; InvalidEvent otherwise."""
        decoded = decode_event(event)
        kind = decoded.get("detail-type")
        if kind == MODEL_PACKAGE_STATE_CHANGE:
            try:
                parse_model_package_state_change(decoded, self._context(actions=None))
            except LifecycleEventError as exc:
                raise InvalidEvent("InvalidEvent", str(exc)) from None
        elif kind == DEPLOYMENT_STATE_CHANGE:
            parse_deployment_state_change(decoded, account=self.config.account_id, endpoint=self.config.endpoint_name)
        elif kind == MODEL_PROMOTION_APPROVED and decoded.get("source") == PROMOTION_SOURCE:
            try:
                self.parse_promotion(decoded)
            except LifecycleEventError as exc:
                raise InvalidEvent("InvalidEvent", str(exc)) from None
        else:
            raise InvalidEvent("UnsupportedEvent", f"no handler for detail-type {str(kind)[:80]!r}")
        return str(kind), decoded

    def _actions(self) -> SageMakerDeployActions:
        sagemaker = self.clients.client("sagemaker")
        return SageMakerDeployActions(self.config, sagemaker, self.records, update_endpoint=self.update_endpoint)

    def _deploy(self, event: dict[str, Any]) -> dict[str, Any]:
        actions = self._actions()
        result = on_model_package_state_change(event, self._context(actions))
        self.logger.info("model package state change handled", extra={**asdict(result), "outcomes": actions.outcomes})
        self.metrics.add_metric(name=f"Package{result.action.title().replace('-', '')}", unit=MetricUnit.Count, value=1)
        return {
            "status": result.action,
            "approval_status": result.status,
            "version": package_version(result.package_arn),
            "deployed_version": package_version(result.deployed_arn) if result.deployed_arn else None,
            "deploy_target": self.config.deploy_target,
            "outcomes": actions.outcomes,
        }

    def _promote(self, event: dict[str, Any]) -> dict[str, Any]:
        """Deploy a promoted package exactly like an Approved state change (if its registry says Approved)."""
        promotion = self.parse_promotion(event)
        actions = self._actions()
        current = actions.deployed_package(self.target)
        # DescribeModelPackage on the source account's ARN (the group's resource policy admits this role)
        status = self.clients.client("sagemaker").describe_model_package(ModelPackageName=promotion.package_arn)
        if status.get("ModelApprovalStatus") != "Approved":
            raise DeploymentRefused("the promoted package is not Approved in its registry")
        if current == promotion.package_arn:
            action = "already-deployed"
        else:
            actions.deploy(self.target, promotion.package_arn)
            action = "deployed"
        self.logger.info(
            "model promotion handled",
            extra={"action": action, "package_arn": promotion.package_arn, "approved_by": promotion.approved_by,
                   "reason": promotion.reason, "outcomes": actions.outcomes},
        )  # fmt: skip
        self.metrics.add_metric(name=f"Promotion{action.title().replace('-', '')}", unit=MetricUnit.Count, value=1)
        return {
            "status": action,
            "approval_status": "Promoted",
            "version": promotion.version,
            "deployed_version": promotion.version,
            "deploy_target": self.config.deploy_target,
            "outcomes": actions.outcomes,
        }

    def _rollout(self, event: dict[str, Any]) -> dict[str, Any]:
        change = parse_deployment_state_change(
            event, account=self.config.account_id, endpoint=self.config.endpoint_name
        )
        outcome = verify_rollout(self.clients.client("sagemaker"), self.records, change.endpoint)
        metric = _ROLLOUT_METRICS.get(outcome["outcome"])
        if metric is not None:
            self.metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        if outcome["outcome"] == "rolled-back":
            self.logger.error("rollout rolled back by its alarms: endpoint serves the previous config", extra=outcome)
        else:
            self.logger.info("endpoint deployment state change", extra={**outcome, "event_status": change.status})
        return {"status": "rollout-" + outcome["outcome"], **outcome}

    def handle(self, event: Any, lambda_context: Any) -> dict[str, Any]:
        """One invocation: validate (no side effect on refusal), then deploy or record the rollout."""
        process, idempotency = self._idempotent()
        idempotency.register_lambda_context(lambda_context)
        try:
            kind, valid = self.validate(event)
        except InvalidEvent as exc:
            self.logger.warning("event rejected", extra={"code": exc.code, "detail": str(exc)})
            self.metrics.add_metric(name="EventRejected", unit=MetricUnit.Count, value=1)
            return rejected(exc.code, str(exc))
        try:
            if kind == DEPLOYMENT_STATE_CHANGE:
                return self._rollout(valid)
            if kind == MODEL_PROMOTION_APPROVED:
                promote, promote_idempotency = self._idempotent_promotion()
                promote_idempotency.register_lambda_context(lambda_context)
                promoted: dict[str, Any] = promote(event=valid)
                return promoted
            response: dict[str, Any] = process(event=valid)
        except DeploymentRefused as exc:
            self.logger.error("deployment refused", extra={"detail": str(exc)})
            self.metrics.add_metric(name="DeploymentRefused", unit=MetricUnit.Count, value=1)
            return {"status": "refused", "error": {"code": "DeploymentRefused", "message": scrub(str(exc))}}
        except Exception as exc:
            denied = access_denied(exc)
            if denied is None:
                raise  # throttling beyond the retries, bugs, outages: Lambda retries, then the DLQ
            self.logger.error("access denied", extra={"operation": denied.operation_name, "error": str(denied)})
            self.metrics.add_metric(name="DependencyAccessDenied", unit=MetricUnit.Count, value=1)
            return failed("AccessDenied", f"access denied calling {denied.operation_name}; see the function's log")
        return response
