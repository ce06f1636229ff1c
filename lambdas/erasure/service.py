"""Erasure in a Lambda: an erasure-request object lands → validate it → :func:`.logic.erase` → receipt.

The request is a JSON object put under ``<team>/_erasure/requests/<name>.json`` of the raw bucket (the raw
zone: a request names a subject in clear, so only raw readers can read it; who may *put* one is the
operators' break-glass role and the ingest path, ``docs/privacy.md``). Its S3 ``Object Created`` event
(EventBridge, the raw bucket's notifications) invokes this function::

    {"team": "churn", "subject": "C000063352", "request_id": "dsr-2026-0042", "requested_by": "dpo"}

``team`` must be this function's team, ``subject`` the id (at most 256 printable characters);
``request_id`` (default: the object's name without ``.json``) names the receipt; ``requested_by`` and
``reason`` (at most 256 / 1024 characters) are recorded in the log, never in the receipt. Any other field,
a malformed or oversize object, another team's or bucket's object: ``rejected`` with a code and message,
and nothing changes. Once erased (or found nowhere), every version of the request object is deleted: it
holds the subject's id in clear.

Idempotent: a redelivered event finds the request gone (``rejected``/``RequestGone``, no change); a new
request for an erased subject finds nothing (``nothing-found``, no change, no receipt).
"""

from __future__ import annotations

import json
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

import naming
from lambdas.common.aws import Clients
from lambdas.common.errors import InvalidEvent, access_denied, decode_event, error_code, failed, rejected
from lambdas.lifecycle import LifecycleEventError
from lambdas.lifecycle.events import parse_object_created_event

from .config import ErasureConfig
from .logic import ErasureError, ErasureScope, erase, validate_request_id, validate_subject

MAX_REQUEST_BYTES: Final = 16 * 1024
REQUEST_FIELDS: Final = frozenset({"team", "subject", "request_id", "requested_by", "reason"})
TEXT_LIMITS: Final = {"requested_by": 256, "reason": 1024}


class ErasureRuntime:
    """The execution environment's state: config, clients."""

    def __init__(self, config: ErasureConfig, logger: Logger, metrics: Metrics, clients: Clients | None = None) -> None:
        self.config = config
        self.logger = logger
        self.metrics = metrics
        self.clients = clients or Clients()

    @property
    def scope(self) -> ErasureScope:
        """The team's erasure scope."""
        c = self.config
        return ErasureScope(
            team=c.team,
            buckets={
                "raw": c.raw_bucket,
                "curated": c.curated_bucket,
                "features": c.features_bucket,
                "reports": c.reports_bucket,
            },
            pipelines=c.pipelines,
            group_name=c.group_name,
            id_columns=c.id_columns,
            reports_kms_key=c.reports_kms_key,
        )

    def handle(self, event: Any, context: Any) -> dict[str, Any]:
        """One event → the erasure's outcome (see the module docstring)."""
        try:
            bucket, key, version = self._request_object(event)
            request = self._read_request(bucket, key, version)
            receipt = erase(
                self.clients.client("s3"),
                self.clients.client("sagemaker"),
                self.scope,
                request["subject"],
                request_id=request["request_id"],
            )
        except InvalidEvent as exc:
            self.logger.warning("erasure request rejected", extra={"code": exc.code, "error": str(exc)})
            self.metrics.add_metric(name="ErasureRejected", unit=MetricUnit.Count, value=1)
            return rejected(exc.code, str(exc))
        except ErasureError as exc:
            self.logger.warning("erasure refused", extra={"code": exc.code, "error": str(exc)})
            self.metrics.add_metric(name="ErasureRejected", unit=MetricUnit.Count, value=1)
            return rejected(exc.code, str(exc))
        except Exception as exc:
            denied = access_denied(exc)
            if denied is None:
                raise
            self.logger.error("erasure denied by a dependency", extra={"error": str(denied)})
            self.metrics.add_metric(name="DependencyAccessDenied", unit=MetricUnit.Count, value=1)
            return failed("AccessDenied", f"{denied.operation_name} was denied")
        self._delete_request(bucket, key)
        erased = receipt.status == "erased"
        self.metrics.add_metric(
            name="SubjectErased" if erased else "ErasureNothingFound", unit=MetricUnit.Count, value=1
        )
        self.logger.info(
            "erasure done",
            extra={
                "request_id": receipt.request_id,
                "status": receipt.status,
                "requested_by": request.get("requested_by"),
                "objects": len(receipt.objects),
                "versions_removed": receipt.versions_removed,
            },
        )
        return {
            "status": receipt.status,
            "message": receipt.message(),
            "request_id": receipt.request_id,
            "receipt_uri": receipt.receipt_uri,
            "rows_removed": receipt.rows_removed,
            "versions_removed": receipt.versions_removed,
            "batches": receipt.batches,
            "packages": [{"version": p.version, "status": p.status, "action": p.action} for p in receipt.packages],
        }

    def _request_object(self, event: Any) -> tuple[str, str, str | None]:
        try:
            parsed = parse_object_created_event(decode_event(event), account=self.config.account_id)
        except LifecycleEventError as exc:
            raise InvalidEvent("InvalidEvent", str(exc)) from None
        prefix = naming.erasure_request_prefix(self.config.team)
        name = parsed.key[len(prefix) :] if parsed.key.startswith(prefix) else ""
        if parsed.bucket != self.config.raw_bucket or not name or "/" in name or not name.endswith(".json"):
            raise InvalidEvent(
                "ForeignObject",
                f"not an erasure request of team {self.config.team}: requests are "
                f"s3://<raw bucket>/{prefix}<name>.json",
            )
        return parsed.bucket, parsed.key, parsed.version_id

    def _read_request(self, bucket: str, key: str, version: str | None) -> dict[str, str]:
        s3 = self.clients.client("s3")
        args = {"Bucket": bucket, "Key": key, **({"VersionId": version} if version else {})}
        try:
            got = s3.get_object(**args)
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "NoSuchVersion", "404"):
                raise InvalidEvent(
                    "RequestGone", "the erasure request no longer exists: it was processed already"
                ) from None
            raise
        if int(got.get("ContentLength", 0)) > MAX_REQUEST_BYTES:
            raise InvalidEvent("RequestTooLarge", f"an erasure request is at most {MAX_REQUEST_BYTES} bytes")
        try:
            data = json.loads(got["Body"].read(MAX_REQUEST_BYTES + 1).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise InvalidEvent("MalformedRequest", "the erasure request is not a JSON object") from None
        if not isinstance(data, dict):
            raise InvalidEvent("MalformedRequest", "the erasure request is not a JSON object")
        unknown = sorted(set(data) - REQUEST_FIELDS)
        if unknown:
            raise InvalidEvent("MalformedRequest", f"unknown field(s) {unknown}; allowed: {sorted(REQUEST_FIELDS)}")
        if data.get("team") != self.config.team:
            raise InvalidEvent("UnknownTeam", f"the request's team must be {self.config.team!r} (this function's team)")
        for name, most in TEXT_LIMITS.items():
            value = data.get(name, "")
            if not isinstance(value, str) or len(value) > most:
                raise InvalidEvent("MalformedRequest", f"{name} must be text of at most {most} characters")
        try:
            subject = validate_subject(data.get("subject"))
            stem = key.rsplit("/", 1)[-1].removesuffix(".json")
            request_id = validate_request_id(data.get("request_id", stem))
        except ErasureError as exc:
            raise InvalidEvent(exc.code, str(exc)) from None
        return {"subject": subject, "request_id": request_id, "requested_by": str(data.get("requested_by", ""))}

    def _delete_request(self, bucket: str, key: str) -> None:
        """Delete every version of the request object (it names the subject in clear)."""
        s3 = self.clients.client("s3")
        listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
        doomed = [
            {"Key": key, "VersionId": v["VersionId"]}
            for v in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
            if v["Key"] == key
        ]
        if doomed:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
