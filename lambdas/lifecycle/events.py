"""The two EventBridge events the lifecycle acts on: parsed into typed values, and built for the local runtime.

Parsing checks the envelope (``source``/``detail-type``, the account), the fields the lifecycle reads and
their types, and the object key's shape; it knows nothing of teams (that is :mod:`.arrival`'s and
:mod:`.approval`'s job). Every refusal is a :class:`LifecycleEventError` naming the field and the problem,
raised before any side effect.

Shapes (AWS documentation; committed copies in ``tests/events/``):

* S3 ``Object Created`` (source ``aws.s3``): ``detail.bucket.name``, ``detail.object.key``/``size``/
  ``etag``/``version-id``/``sequencer``, ``detail.request-id``, ``requester``, ``source-ip-address``,
  ``reason`` (``PutObject``, ``CompleteMultipartUpload``, ``CopyObject``, ...).
* ``SageMaker Model Package State Change`` (source ``aws.sagemaker``): the DescribeModelPackage view of
  the package: ``ModelPackageGroupName``, ``ModelPackageVersion``, ``ModelPackageArn``,
  ``ModelApprovalStatus``, ``ModelPackageStatus``, ``InferenceSpecification``, ``ModelMetrics``,
  ``MetadataProperties.GeneratedBy`` (the pipeline execution that registered it), ...

moto emits neither event, so the local runtime builds them with :func:`object_created_event` and
:func:`model_package_state_change_event` in the same shapes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

S3_SOURCE: Final = "aws.s3"
OBJECT_CREATED: Final = "Object Created"
SAGEMAKER_SOURCE: Final = "aws.sagemaker"
MODEL_PACKAGE_STATE_CHANGE: Final = "SageMaker Model Package State Change"
APPROVAL_STATUSES: Final[tuple[str, ...]] = ("Approved", "Rejected", "PendingManualApproval")
MAX_KEY_BYTES: Final = 1024
PACKAGE_ARN: Final = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"model-package/(?P<group>[A-Za-z0-9](?:-*[A-Za-z0-9]){0,62})/(?P<version>[1-9]\d*)$"
)


class LifecycleEventError(ValueError):
    """A lifecycle event that cannot be acted on; the message names the field and the problem."""


@dataclass(frozen=True)
class ObjectCreated:
    """A parsed S3 ``Object Created`` event (the fields the lifecycle reads or records)."""

    bucket: str
    key: str
    etag: str
    sequencer: str
    size: int | None
    version_id: str | None
    reason: str | None
    account: str | None
    region: str | None
    event_id: str | None


@dataclass(frozen=True)
class ModelPackageStateChange:
    """A parsed ``SageMaker Model Package State Change`` event."""

    package_arn: str
    group: str
    version: int
    status: str
    account: str
    region: str
    generated_by: str | None
    event_id: str | None


# Field access --------------------------------------------------------------------------------------------


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


_KIND_NAMES: Final[dict[type, str]] = {int: "an integer", str: "a string"}


def _optional(node: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    """``node[name]`` if present and of ``kind`` (bool is no int), None if absent; else LifecycleEventError."""
    value = node.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise LifecycleEventError(f"event.{where}.{name} must be {_KIND_NAMES[kind]}, got {value!r}")
    return value


def _check_envelope(event: Any, source: str, detail_type: str) -> Mapping[str, Any]:
    if not isinstance(event, Mapping) or not event:
        raise LifecycleEventError("the event is empty or not an object")
    if event.get("source") != source or event.get("detail-type") != detail_type:
        raise LifecycleEventError(
            f"expected an event with source {source!r} and detail-type {detail_type!r}, got "
            f"{event.get('source')!r} / {event.get('detail-type')!r}"
        )
    return event


def _check_account(event: Mapping[str, Any], account: str | None) -> None:
    sender = event.get("account")
    if account and sender is not None and sender != account:
        raise LifecycleEventError(f"event.account {sender!r} is not this platform's account {account!r}")


def _envelope_text(event: Mapping[str, Any], name: str) -> str | None:
    value = event.get(name)
    return value if isinstance(value, str) else None


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


# Parsing ---------------------------------------------------------------------------------------------------


def parse_object_created_event(event: Any, *, account: str | None = None) -> ObjectCreated:
    """A valid S3 ``Object Created`` event as :class:`ObjectCreated`; ``account``: the only accepted sender."""
    envelope = _check_envelope(event, S3_SOURCE, OBJECT_CREATED)
    _check_account(envelope, account)
    bucket = _text(event, "detail", "bucket", "name")
    key = _text(event, "detail", "object", "key")
    etag = _text(event, "detail", "object", "etag")
    obj: Mapping[str, Any] = event["detail"]["object"]
    sequencer = obj.get("sequencer") or ""
    if not isinstance(sequencer, str):
        raise LifecycleEventError(f"event.detail.object.sequencer must be a string, got {sequencer!r}")
    size = _optional(obj, "size", int, "detail.object")
    if size is not None and size < 0:
        raise LifecycleEventError(f"event.detail.object.size must not be negative, got {size!r}")
    version_id = _optional(obj, "version-id", str, "detail.object")
    reason = _optional(event["detail"], "reason", str, "detail")
    check_object_key(key)
    return ObjectCreated(
        bucket=bucket,
        key=key,
        etag=etag,
        sequencer=sequencer,
        size=size,
        version_id=version_id,
        reason=reason,
        account=_envelope_text(envelope, "account"),
        region=_envelope_text(envelope, "region"),
        event_id=_envelope_text(envelope, "id"),
    )


def parse_model_package_state_change_event(event: Any, *, account: str | None = None) -> ModelPackageStateChange:
    """A valid model-package state-change event as :class:`ModelPackageStateChange`.

    ``account``: the platform's account; events and packages of any other account are refused.
    """
    envelope = _check_envelope(event, SAGEMAKER_SOURCE, MODEL_PACKAGE_STATE_CHANGE)
    _check_account(envelope, account)
    arn = _text(event, "detail", "ModelPackageArn")
    status = _text(event, "detail", "ModelApprovalStatus")
    group = _text(event, "detail", "ModelPackageGroupName")
    match = PACKAGE_ARN.match(arn)
    if match is None:
        raise LifecycleEventError(f"event.detail.ModelPackageArn {arn!r} is not a versioned model package ARN")
    if status not in APPROVAL_STATUSES:
        raise LifecycleEventError(
            f"event.detail.ModelApprovalStatus {status!r} is not one of {', '.join(APPROVAL_STATUSES)}"
        )
    if match["group"] != group:
        raise LifecycleEventError(f"ModelPackageArn {arn!r} is not in group {group!r}")
    if account and match["account"] != account:
        raise LifecycleEventError(f"ModelPackageArn {arn!r} belongs to foreign account {match['account']}")
    detail: Mapping[str, Any] = event["detail"]
    version = _optional(detail, "ModelPackageVersion", int, "detail")
    if version is not None and version != int(match["version"]):
        raise LifecycleEventError(f"event.detail.ModelPackageVersion {version} is not the version of {arn!r}")
    metadata = detail.get("MetadataProperties")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise LifecycleEventError(f"event.detail.MetadataProperties must be an object, got {metadata!r}")
    generated_by = _optional(metadata or {}, "GeneratedBy", str, "detail.MetadataProperties")
    return ModelPackageStateChange(
        package_arn=arn,
        group=group,
        version=int(match["version"]),
        status=status,
        account=match["account"],
        region=match["region"],
        generated_by=generated_by,
        event_id=_envelope_text(envelope, "id"),
    )


PROMOTION_SOURCE: Final = "flywheel.promotion"
MODEL_PROMOTION_APPROVED: Final = "Model Promotion Approved"
PROMOTION_FIELDS: Final = frozenset({"ModelPackageGroupName", "ModelPackageArn", "ApprovedBy", "Reason"})
MAX_APPROVED_BY: Final = 256
MAX_REASON: Final = 1024


@dataclass(frozen=True)
class ModelPromotion:
    """A parsed ``Model Promotion Approved`` event: a person promoted a source registry's package."""

    package_arn: str
    group: str  # the group routed to (this environment's team group, ``detail.ModelPackageGroupName``)
    source_group: str  # the package's group in the source registry (from the ARN)
    version: int
    source_account: str
    region: str
    approved_by: str
    reason: str
    event_id: str | None


def _bounded_text(event: Any, name: str, most: int) -> str:
    value = _text(event, "detail", name)
    if len(value) > most or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise LifecycleEventError(f"event.detail.{name} must be at most {most} printable characters")
    return value


def parse_model_promotion_event(
    event: Any, *, account: str, group: str, source_group: str, source_accounts: frozenset[str] | tuple[str, ...]
) -> ModelPromotion:
    """A valid promotion event (``docs/runbooks/approve-and-promote.md``) as :class:`ModelPromotion`.

    ``account``: this environment's account — the event's ``account`` must be it (present, not merely
    absent); ``group``: the team's group here (``detail.ModelPackageGroupName``); ``source_group`` and
    ``source_accounts``: the registry a package may be promoted from. Unknown detail fields are refused.
    """
    envelope = _check_envelope(event, PROMOTION_SOURCE, MODEL_PROMOTION_APPROVED)
    if envelope.get("account") != account:
        raise LifecycleEventError(f"event.account {envelope.get('account')!r} is not this platform's account")
    detail = _field(event, "detail")
    if not isinstance(detail, Mapping):
        raise LifecycleEventError(f"event.detail must be an object, got {type(detail).__name__}")
    unknown = sorted(set(detail) - PROMOTION_FIELDS)
    if unknown:
        raise LifecycleEventError(f"event.detail has unknown fields {unknown[:5]!r}")
    routed = _text(event, "detail", "ModelPackageGroupName")
    if routed != group:
        raise LifecycleEventError(f"event.detail.ModelPackageGroupName {routed!r} is not this team's group")
    arn = _text(event, "detail", "ModelPackageArn")
    match = PACKAGE_ARN.match(arn)
    if match is None:
        raise LifecycleEventError(f"event.detail.ModelPackageArn {arn!r} is not a versioned model package ARN")
    if match["group"] != source_group:
        raise LifecycleEventError(f"ModelPackageArn {arn!r} is not in the team's source group")
    if match["account"] not in source_accounts:
        raise LifecycleEventError(f"ModelPackageArn {arn!r} is not in a promotion source account")
    approved_by = _bounded_text(event, "ApprovedBy", MAX_APPROVED_BY)
    reason = _bounded_text(event, "Reason", MAX_REASON)
    return ModelPromotion(
        package_arn=arn,
        group=routed,
        source_group=match["group"],
        version=int(match["version"]),
        source_account=match["account"],
        region=match["region"],
        approved_by=approved_by,
        reason=reason,
        event_id=_envelope_text(envelope, "id"),
    )


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
