"""Model approval: a ``SageMaker Model Package State Change`` deploys, rolls back or changes nothing.

``Approved`` deploys the package (no-op if it is already deployed); ``Rejected`` of the deployed package
rolls back to the latest other approved package (or undeploys); ``PendingManualApproval`` changes
nothing. The registry's status at the time of handling decides, not the event's: EventBridge may
redeliver or reorder events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .events import LifecycleEventError, parse_model_package_state_change_event
from .ports import LifecycleContext, TeamTarget
from .registry import approved_packages


@dataclass(frozen=True)
class DeploymentResult:
    """Outcome of a model-package state change: ``deployed``, ``already-deployed``, ``rolled-back``,
    ``undeployed``, ``stale-event-ignored`` or ``ignored``."""

    team: str
    package_arn: str
    status: str
    action: str
    deployed_arn: str | None


def parse_model_package_state_change(event: Any, context: LifecycleContext) -> tuple[TeamTarget, str, str]:
    """``(team, package ARN, approval status)`` of a valid model-package state-change event."""
    parsed = parse_model_package_state_change_event(event, account=context.account)
    target = next((t for t in context.teams.values() if t.group_name == parsed.group), None)
    if target is None:
        raise LifecycleEventError(f"model package group {parsed.group!r} belongs to no known team")
    return target, parsed.package_arn, parsed.status


def on_model_package_state_change(event: Any, context: LifecycleContext) -> DeploymentResult:
    """Deploy an approved package; roll back when the deployed one is rejected."""
    target, arn, status = parse_model_package_state_change(event, context)
    current = context.actions.deployed_package(target)
    # EventBridge may redeliver or reorder events: act on the registry's status now, not the event's
    # (a stale "Approved" arriving after a rejection must not redeploy the rejected model).
    now = context.sagemaker.describe_model_package(ModelPackageName=arn).get("ModelApprovalStatus")
    if now != status:
        return DeploymentResult(target.team, arn, status, "stale-event-ignored", current)
    if status == "Approved":
        if current == arn:
            return DeploymentResult(target.team, arn, status, "already-deployed", current)
        context.actions.deploy(target, arn)
        return DeploymentResult(target.team, arn, status, "deployed", arn)
    if status == "Rejected" and current == arn:
        fallback = next((p["ModelPackageArn"] for p in approved_packages(context.sagemaker, target.group_name)), None)
        if fallback is not None and fallback != arn:
            context.actions.deploy(target, fallback)
            return DeploymentResult(target.team, arn, status, "rolled-back", fallback)
        context.actions.undeploy(target)
        return DeploymentResult(target.team, arn, status, "undeployed", None)
    return DeploymentResult(target.team, arn, status, "ignored", current)
