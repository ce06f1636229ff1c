"""Rollout outcomes: ``SageMaker Endpoint Deployment State Change`` events and silent-rollback detection.

SageMaker rolls a failed blue/green deployment back *silently*: the endpoint returns to InService on
the old EndpointConfigName (hashicorp/terraform-provider-aws#48997). So the outcome of a rollout is
decided by comparing ``DescribeEndpoint.EndpointConfigName`` with the config the deploy Lambda recorded
when it started the rollout — never by the endpoint's status alone.

Event shape (AWS docs; committed copy ``tests/events/sagemaker_endpoint_deployment_state_change.json``):
``detail.EndpointName``, ``EndpointArn``, ``EndpointConfigName`` (the config serving now),
``EndpointStatus`` (``CREATING``, ``UPDATING``, ``IN_SERVICE``, ...), ``ProductionVariants``, and while a
deployment runs ``PendingDeploymentSummary.EndpointConfigName`` (the config being rolled out).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from lambdas.common.env import SAGEMAKER_NAME
from lambdas.common.errors import InvalidEvent
from lambdas.common.store import Records

from .actions import rollout_record

DEPLOYMENT_STATE_CHANGE: Final = "SageMaker Endpoint Deployment State Change"
#: Endpoint statuses as the events spell them (upper snake case) and as DescribeEndpoint does.
EVENT_STATUSES: Final = {
    "OUT_OF_SERVICE": "OutOfService",
    "CREATING": "Creating",
    "UPDATING": "Updating",
    "SYSTEM_UPDATING": "SystemUpdating",
    "ROLLING_BACK": "RollingBack",
    "IN_SERVICE": "InService",
    "DELETING": "Deleting",
    "FAILED": "Failed",
    "UPDATE_ROLLBACK_FAILED": "UpdateRollbackFailed",
}
_STATUSES: Final = {**EVENT_STATUSES, **{v: v for v in EVENT_STATUSES.values()}}
_ENDPOINT_ARN: Final = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:(?P<account>\d{12}):endpoint/(?P<name>[A-Za-z0-9-]{1,63})$"
)
IN_PROGRESS: Final = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})


@dataclass(frozen=True)
class DeploymentStateChange:
    """A parsed endpoint deployment state change."""

    endpoint: str
    status: str
    serving_config: str
    pending_config: str | None


def parse_deployment_state_change(event: Mapping[str, Any], *, account: str, endpoint: str) -> DeploymentStateChange:
    """A valid deployment state change of ``endpoint`` in ``account``; InvalidEvent otherwise."""
    if event.get("source") != "aws.sagemaker" or event.get("detail-type") != DEPLOYMENT_STATE_CHANGE:
        raise InvalidEvent("InvalidEvent", "not a SageMaker Endpoint Deployment State Change event")
    if event.get("account") != account:
        raise InvalidEvent("ForeignAccount", "the event comes from another account")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise InvalidEvent("InvalidEvent", "event.detail must be an object")
    fields: dict[str, str] = {}
    for name in ("EndpointName", "EndpointArn", "EndpointConfigName", "EndpointStatus"):
        value = detail.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidEvent("InvalidEvent", f"event.detail.{name} must be a non-empty string")
        fields[name] = value
    for name in ("EndpointName", "EndpointConfigName"):
        if not SAGEMAKER_NAME.match(fields[name]):
            raise InvalidEvent("InvalidEvent", f"event.detail.{name} is not a SageMaker resource name")
    arn = _ENDPOINT_ARN.match(fields["EndpointArn"])
    if arn is None or arn["name"] != fields["EndpointName"]:
        raise InvalidEvent("InvalidEvent", "event.detail.EndpointArn is not the ARN of event.detail.EndpointName")
    if arn["account"] != account:
        raise InvalidEvent("ForeignAccount", "the endpoint belongs to another account")
    if fields["EndpointName"] != endpoint:
        raise InvalidEvent("ForeignEndpoint", f"endpoint {fields['EndpointName']!r} is not this team's endpoint")
    status = _STATUSES.get(fields["EndpointStatus"])
    if status is None:
        raise InvalidEvent("InvalidEvent", f"event.detail.EndpointStatus {fields['EndpointStatus']!r} is unknown")
    pending = detail.get("PendingDeploymentSummary")
    if pending is not None and not isinstance(pending, Mapping):
        raise InvalidEvent("InvalidEvent", "event.detail.PendingDeploymentSummary must be an object")
    pending_config = (pending or {}).get("EndpointConfigName")
    if pending_config is not None and (not isinstance(pending_config, str) or not SAGEMAKER_NAME.match(pending_config)):
        raise InvalidEvent("InvalidEvent", "event.detail.PendingDeploymentSummary.EndpointConfigName is invalid")
    return DeploymentStateChange(fields["EndpointName"], status, fields["EndpointConfigName"], pending_config)


def verify_rollout(sagemaker: Any, records: Records, endpoint: str) -> dict[str, Any]:
    """The outcome of the endpoint's latest rollout, from DescribeEndpoint; recorded once it is final.

    ``outcome``: ``succeeded`` (serving the new config), ``rolled-back`` (InService on another config:
    SageMaker's silent rollback), ``failed`` (Failed / UpdateRollbackFailed), ``in-progress``, or
    ``no-rollout`` (nothing recorded, or already final).
    """
    record = records.get(rollout_record(endpoint))
    if record is None or record.get("outcome") != "in-progress":
        return {"outcome": "no-rollout", "endpoint": endpoint}
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    status, serving = described.get("EndpointStatus"), described.get("EndpointConfigName")
    if status in IN_PROGRESS:
        outcome = "in-progress"
    elif status == "InService":
        outcome = "succeeded" if serving == record["config"] else "rolled-back"
    else:
        outcome = "failed"
    result = {
        "outcome": outcome,
        "endpoint": endpoint,
        "expected_config": record["config"],
        "serving_config": serving,
        "endpoint_status": status,
        "version": record.get("version"),
    }
    if outcome != "in-progress":
        records.put(rollout_record(endpoint), {**record, "outcome": outcome, "serving": serving})
    return result
