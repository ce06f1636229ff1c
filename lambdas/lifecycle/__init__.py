"""The one seam for lifecycle events: data arrival → pipeline, model approval → deployment.

The functions here take the real EventBridge event shapes and a :class:`LifecycleContext` (the teams,
boto3 clients and the :class:`LifecycleActions` that do the work), so the same code serves the local
runtime (called in-process, actions backed by the local executor and state) and the future Lambda
handlers (a thin ``handler.py`` builds the context with real clients and calls :func:`dispatch`).

* :func:`on_data_arrival` — an S3 ``Object Created`` event (``detail.bucket.name``,
  ``detail.object.key``/``etag``/``sequencer``) for ``s3://<raw bucket>/<team>/incoming/<batch>/<file>``
  starts the team's pipeline with ``InputDataUri`` = the batch folder and ``ChampionMetric`` = the gate
  value of the latest approved package (``none`` before the first approval). Idempotent on the object
  key + etag + sequencer: a redelivered event starts nothing and returns the first execution.
* :func:`on_model_package_state_change` — a ``SageMaker Model Package State Change`` event: ``Approved``
  deploys the package (no-op if it is already deployed); ``Rejected`` of the deployed package rolls back
  to the latest other approved package (or undeploys); ``PendingManualApproval`` changes nothing.

A malformed or foreign event raises :class:`LifecycleEventError` (a ValueError) naming the problem,
before any side effect.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

S3_SOURCE: Final = "aws.s3"
OBJECT_CREATED: Final = "Object Created"
SAGEMAKER_SOURCE: Final = "aws.sagemaker"
MODEL_PACKAGE_STATE_CHANGE: Final = "SageMaker Model Package State Change"
APPROVAL_STATUSES: Final[tuple[str, ...]] = ("Approved", "Rejected", "PendingManualApproval")
DATA_SUFFIXES: Final[tuple[str, ...]] = (".csv", ".csv.gz", ".csv.bz2", ".parquet", ".pq")
NO_CHAMPION: Final = "none"
MAX_KEY_BYTES: Final = 1024
_PACKAGE_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"model-package/(?P<group>[A-Za-z0-9](?:-*[A-Za-z0-9]){0,62})/(?P<version>[1-9]\d*)$"
)


class LifecycleEventError(ValueError):
    """A lifecycle event that cannot be acted on; the message names the field and the problem."""


@dataclass(frozen=True)
class TeamTarget:
    """What the lifecycle needs to know about one team."""

    team: str
    raw_bucket: str
    pipeline_name: str
    group_name: str

    @property
    def incoming_prefix(self) -> str:
        """``<team>/incoming/``: where the team's raw batches land."""
        return f"{self.team}/incoming/"


class IdempotencyStore(Protocol):
    """Claims of processed events (:class:`flywheel.state.StateStore`, or DynamoDB in a Lambda)."""

    def claim(self, key: str, record: dict[str, Any]) -> bool:
        """Claim ``key``; False if it was claimed before."""
        ...

    def claimed(self, key: str) -> dict[str, Any] | None:
        """The record of a claim, or None."""
        ...

    def update_claim(self, key: str, record: dict[str, Any]) -> None:
        """Replace the record of a claim."""
        ...

    def release(self, key: str) -> None:
        """Drop a claim so that a retry can act."""
        ...


class LifecycleActions(Protocol):
    """The side effects of lifecycle events, implemented per runtime."""

    def start_pipeline(self, target: TeamTarget, parameters: Mapping[str, str], client_token: str) -> str:
        """Start the team's pipeline; returns the execution ARN."""
        ...

    def deployed_package(self, target: TeamTarget) -> str | None:
        """ARN of the package the team's endpoint serves, or None."""
        ...

    def deploy(self, target: TeamTarget, package_arn: str) -> None:
        """Serve ``package_arn`` on the team's endpoint."""
        ...

    def undeploy(self, target: TeamTarget) -> None:
        """Take the team's endpoint out of service (no approved package left)."""
        ...


@dataclass
class LifecycleContext:
    """Everything the lifecycle functions use: teams, clients, actions, idempotency store."""

    teams: Mapping[str, TeamTarget]
    sagemaker: Any
    s3: Any
    actions: LifecycleActions
    store: IdempotencyStore
    account: str | None = None


@dataclass(frozen=True)
class ArrivalResult:
    """Outcome of a data-arrival event."""

    team: str
    bucket: str
    key: str
    input_data_uri: str
    parameters: dict[str, str]
    execution_arn: str | None
    duplicate: bool = False
    skipped: str | None = None


@dataclass(frozen=True)
class DeploymentResult:
    """Outcome of a model-package state change: ``deployed``, ``already-deployed``, ``rolled-back``,
    ``undeployed`` or ``ignored``."""

    team: str
    package_arn: str
    status: str
    action: str
    deployed_arn: str | None


# Event validation --------------------------------------------------------------------------------------


def _field(event: Any, *path: str) -> Any:
    """``event[path[0]][path[1]]...``; LifecycleEventError naming the missing field."""
    value = event
    walked = "event"
    for name in path:
        if not isinstance(value, Mapping):
            raise LifecycleEventError(f"{walked} must be an object, got {type(value).__name__}")
        walked += f".{name}"
        if name not in value or value[name] is None:
            raise LifecycleEventError(f"{walked} is missing")
        value = value[name]
    return value


def _text(event: Any, *path: str) -> str:
    value = _field(event, *path)
    if not isinstance(value, str) or not value.strip():
        raise LifecycleEventError(f"event.{'.'.join(path)} must be a non-empty string, got {value!r}")
    return value


def _check_envelope(event: Any, source: str, detail_type: str) -> None:
    if not isinstance(event, Mapping) or not event:
        raise LifecycleEventError("the event is empty or not an object")
    if event.get("source") != source or event.get("detail-type") != detail_type:
        raise LifecycleEventError(
            f"expected an event with source {source!r} and detail-type {detail_type!r}, got "
            f"{event.get('source')!r} / {event.get('detail-type')!r}"
        )


def _check_account(event: Mapping[str, Any], context: LifecycleContext) -> None:
    account = event.get("account")
    if context.account and account is not None and account != context.account:
        raise LifecycleEventError(f"event.account {account!r} is not this platform's account {context.account!r}")


def check_object_key(key: str) -> None:
    """Refuse keys that could escape their prefix or confuse the pipeline (absolute, '..', control chars)."""
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise LifecycleEventError(f"event.detail.object.key is longer than {MAX_KEY_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise LifecycleEventError("event.detail.object.key contains control characters")
    if key.startswith("/") or "\\" in key:
        raise LifecycleEventError(f"event.detail.object.key {key!r} is absolute or contains a backslash")
    segments = key.split("/")
    if any(s in ("", ".", "..") for s in segments) or any(
        s.lower().replace("%2e", ".") in (".", "..") for s in segments
    ):
        raise LifecycleEventError(f"event.detail.object.key {key!r} contains an empty, '.' or '..' path segment")


def parse_object_created(event: Any, context: LifecycleContext) -> tuple[TeamTarget, str, str, str, str]:
    """``(team, bucket, key, etag, sequencer)`` of a valid ``Object Created`` event for a team's batch."""
    _check_envelope(event, S3_SOURCE, OBJECT_CREATED)
    _check_account(event, context)
    bucket = _text(event, "detail", "bucket", "name")
    key = _text(event, "detail", "object", "key")
    etag = _text(event, "detail", "object", "etag")
    sequencer = event["detail"]["object"].get("sequencer") or ""
    if not isinstance(sequencer, str):
        raise LifecycleEventError(f"event.detail.object.sequencer must be a string, got {sequencer!r}")
    check_object_key(key)
    team_name = key.split("/", 1)[0]
    target = context.teams.get(team_name)
    if target is None:
        raise LifecycleEventError(
            f"object key {key!r} does not start with a known team ({', '.join(sorted(context.teams)) or 'none'})"
        )
    if bucket != target.raw_bucket:
        raise LifecycleEventError(
            f"bucket {bucket!r} is not the raw bucket of team {team_name} ({target.raw_bucket!r}): foreign bucket"
        )
    if not key.startswith(target.incoming_prefix):
        raise LifecycleEventError(f"object key {key!r} is not under {target.incoming_prefix!r}")
    if key.count("/") < 3:
        raise LifecycleEventError(
            f"object key {key!r}: land each batch in its own folder, {target.incoming_prefix}<batch>/<file>, "
            "so that the pipeline reads exactly that batch"
        )
    return target, bucket, key, etag, sequencer


def parse_model_package_state_change(event: Any, context: LifecycleContext) -> tuple[TeamTarget, str, str]:
    """``(team, package ARN, approval status)`` of a valid model-package state-change event."""
    _check_envelope(event, SAGEMAKER_SOURCE, MODEL_PACKAGE_STATE_CHANGE)
    _check_account(event, context)
    arn = _text(event, "detail", "ModelPackageArn")
    status = _text(event, "detail", "ModelApprovalStatus")
    group = _text(event, "detail", "ModelPackageGroupName")
    match = _PACKAGE_ARN.match(arn)
    if match is None:
        raise LifecycleEventError(f"event.detail.ModelPackageArn {arn!r} is not a versioned model package ARN")
    if status not in APPROVAL_STATUSES:
        raise LifecycleEventError(
            f"event.detail.ModelApprovalStatus {status!r} is not one of {', '.join(APPROVAL_STATUSES)}"
        )
    if match["group"] != group:
        raise LifecycleEventError(f"ModelPackageArn {arn!r} is not in group {group!r}")
    if context.account and match["account"] != context.account:
        raise LifecycleEventError(f"ModelPackageArn {arn!r} belongs to foreign account {match['account']}")
    target = next((t for t in context.teams.values() if t.group_name == group), None)
    if target is None:
        raise LifecycleEventError(f"model package group {group!r} belongs to no known team")
    return target, arn, status


# Registry helpers ----------------------------------------------------------------------------------------


def approved_packages(sagemaker: Any, group: str) -> list[dict[str, Any]]:
    """Summaries of the group's approved packages, newest version first."""
    found: list[dict[str, Any]] = []
    for page in sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group, ModelApprovalStatus="Approved"
    ):
        found.extend(p for p in page["ModelPackageSummaryList"] if p.get("ModelApprovalStatus") == "Approved")
    return sorted(found, key=lambda p: int(p.get("ModelPackageVersion", 0)), reverse=True)


def evaluation_uri(package: Mapping[str, Any]) -> str | None:
    """The ``evaluation.json`` URI registered with a package (ModelMetrics.ModelQuality.Statistics)."""
    uri = ((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics", {}).get("S3Uri")
    return str(uri) if uri else None


def read_s3_json(s3: Any, uri: str) -> Any:
    """A JSON document from S3."""
    import json

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def champion_metric(sagemaker: Any, s3: Any, group: str) -> str:
    """The gate value of the latest approved package (from its evaluation.json), or ``"none"``."""
    for summary in approved_packages(sagemaker, group):
        package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        uri = evaluation_uri(package)
        if uri is None:
            continue
        value = (read_s3_json(s3, uri).get("gate") or {}).get("value")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return repr(float(value))
    return NO_CHAMPION


# Handlers -------------------------------------------------------------------------------------------------


def on_data_arrival(event: Any, context: LifecycleContext) -> ArrivalResult:
    """Start the team's pipeline on a newly landed batch, once per batch folder.

    ``InputDataUri`` is the batch folder, so the first data file of a folder starts the run and later
    events for that folder (more files, redeliveries, new versions) are duplicates: one batch, one
    execution. Land a batch's files together; a corrected batch is landed as a new folder.
    """
    target, bucket, key, _etag, _sequencer = parse_object_created(event, context)  # validated, not keyed on
    input_uri = f"s3://{bucket}/{key.rsplit('/', 1)[0]}/"
    name = key.rsplit("/", 1)[-1]
    if name.startswith((".", "_")) or not name.lower().endswith(DATA_SUFFIXES):
        # Markers (_SUCCESS), hidden files and other objects are legitimate, just not batches.
        return ArrivalResult(target.team, bucket, key, input_uri, {}, None, skipped=f"{name} is not a data file")
    claim_key = _claim_key("batch", bucket, input_uri)
    previous = context.store.claimed(claim_key)
    if previous is not None:
        return _duplicate_arrival(target, bucket, key, input_uri, previous)
    parameters = {
        "InputDataUri": input_uri,
        "ChampionMetric": champion_metric(context.sagemaker, context.s3, target.group_name),
    }
    if not context.store.claim(claim_key, {"bucket": bucket, "key": key, "state": "starting"}):
        return _duplicate_arrival(target, bucket, key, input_uri, context.store.claimed(claim_key) or {})
    try:
        arn = context.actions.start_pipeline(target, parameters, claim_key[:64])
    except BaseException:
        context.store.release(claim_key)  # the start failed: a retry of the event must be able to act
        raise
    context.store.update_claim(
        claim_key, {"bucket": bucket, "key": key, "state": "started", "execution_arn": arn, "parameters": parameters}
    )
    return ArrivalResult(target.team, bucket, key, input_uri, parameters, arn)


def _duplicate_arrival(
    target: TeamTarget, bucket: str, key: str, input_uri: str, previous: Mapping[str, Any]
) -> ArrivalResult:
    return ArrivalResult(
        target.team,
        bucket,
        key,
        input_uri,
        dict(previous.get("parameters") or {}),
        previous.get("execution_arn"),
        duplicate=True,
    )


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


HANDLERS: Final[dict[tuple[str, str], Callable[[Any, LifecycleContext], Any]]] = {
    (S3_SOURCE, OBJECT_CREATED): on_data_arrival,
    (SAGEMAKER_SOURCE, MODEL_PACKAGE_STATE_CHANGE): on_model_package_state_change,
}


def dispatch(event: Any, context: LifecycleContext) -> ArrivalResult | DeploymentResult:
    """Route an EventBridge event to its handler; LifecycleEventError for an event nobody handles."""
    if not isinstance(event, Mapping) or not event:
        raise LifecycleEventError("the event is empty or not an object")
    handler = HANDLERS.get((str(event.get("source")), str(event.get("detail-type"))))
    if handler is None:
        raise LifecycleEventError(
            f"no lifecycle handler for source {event.get('source')!r} / detail-type {event.get('detail-type')!r}"
        )
    result: ArrivalResult | DeploymentResult = handler(event, context)
    return result


def _claim_key(*parts: str) -> str:
    import hashlib

    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


# Event builders (moto emits no events: the local runtime sends them itself) --------------------------------


def _envelope(source: str, detail_type: str, region: str, account: str, resources: list[str]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": resources,
    }


def object_created_event(
    bucket: str,
    key: str,
    *,
    etag: str,
    size: int,
    sequencer: str | None = None,
    version_id: str | None = None,
    region: str,
    account: str,
) -> dict[str, Any]:
    """An S3 ``Object Created`` EventBridge event, as S3 sends it."""
    obj: dict[str, Any] = {"key": key, "size": size, "etag": etag.strip('"')}
    if sequencer:
        obj["sequencer"] = sequencer
    if version_id:
        obj["version-id"] = version_id
    return {
        **_envelope(S3_SOURCE, OBJECT_CREATED, region, account, [f"arn:aws:s3:::{bucket}"]),
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": account,
            "reason": "PutObject",
        },
    }


def model_package_state_change_event(package: Mapping[str, Any], *, region: str, account: str) -> dict[str, Any]:
    """A ``SageMaker Model Package State Change`` event for a DescribeModelPackage response."""
    arn = str(package["ModelPackageArn"])
    detail = {
        key: package[key]
        for key in (
            "ModelPackageGroupName",
            "ModelPackageVersion",
            "ModelPackageArn",
            "ModelApprovalStatus",
            "ModelPackageStatus",
        )
        if key in package
    }
    if isinstance(package.get("CreationTime"), datetime):
        detail["CreationTime"] = int(package["CreationTime"].timestamp() * 1000)
    return {**_envelope(SAGEMAKER_SOURCE, MODEL_PACKAGE_STATE_CHANGE, region, account, [arn]), "detail": detail}
