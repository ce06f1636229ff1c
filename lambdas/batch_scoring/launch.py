"""Scheduled batch scoring: the team's latest *Approved* model → one pipeline execution per new batch.

What the batch-scoring schedule's function does (and what the local runtime calls, so both run this code):

1. :func:`latest_approved` — the team's newest ``Approved`` package in its registry (the registry is the
   truth: whatever the deploy target). None → :class:`NoApprovedModel`, whose message names the group
   and the fix; nothing is started.
2. :func:`ensure_model` — the SageMaker Model the transform runs: ``PrimaryContainer.ModelPackageName``
   (the package's own image and artifact), the pipeline's ``scoring`` role, **network isolation and the
   VPC**, the team tag and the package ARN as tags. Its name is derived from the pipeline and the
   package version (:func:`model_name`), so a retry finds what the first attempt created.
3. :func:`new_batches` — the batch folders under ``<team>/scoring/incoming/`` of the raw zone (a folder
   counts once its files are there; with ``marker``, only once its completion marker is).
4. :func:`launch` — per batch, a claim (:func:`claim_key` of pipeline and batch: a batch is scored once;
   retries, overlapping schedules and later model versions start nothing twice) and
   ``StartPipelineExecution`` with ``InputDataUri``, ``ModelName`` and ``ModelPackageArn`` and a
   ``ClientRequestToken`` derived from the claim.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import ClientError

import naming
from lambdas.lifecycle.ports import IdempotencyStore

MODEL_NAME_LIMIT: Final = 63
TEAM_TAG: Final = "flywheel:team"
PACKAGE_TAG: Final = "flywheel:model-package-arn"
#: Pipeline parameters (``pipelines/batch_scoring/definition.py``).
PARAM_INPUT_DATA_URI: Final = "InputDataUri"
PARAM_MODEL_NAME: Final = "ModelName"
PARAM_MODEL_PACKAGE_ARN: Final = "ModelPackageArn"


class NoApprovedModel(Exception):
    """The team's registry holds no Approved package: nothing can be scored (the message names the fix)."""


@dataclass(frozen=True)
class ScoringTarget:
    """One team's batch-scoring pipeline and what its models run with."""

    team: str
    pipeline_name: str
    group_name: str
    raw_bucket: str
    model_role_arn: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]

    @property
    def incoming_prefix(self) -> str:
        """``<team>/scoring/incoming/``."""
        return naming.scoring_incoming_prefix(self.team)


@dataclass
class LaunchResult:
    """What one launch did: the model used, the executions started and the batches skipped."""

    package_arn: str
    model_name: str
    started: dict[str, str] = field(default_factory=dict)  # batch URI → execution ARN
    skipped: dict[str, str] = field(default_factory=dict)  # batch URI → why


def latest_approved(sagemaker: Any, group: str) -> dict[str, Any] | None:
    """``DescribeModelPackage`` of the group's newest Approved package, or None."""
    try:
        listed = sagemaker.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=10,
        ).get("ModelPackageSummaryList", [])
    except ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", "")).lower()
        if "does not exist" in message or "not found" in message:
            return None
        raise
    if not listed:
        return None
    # Newest by version as well: CreationTime ties (or a registry that ignores SortOrder) must not pick
    # an older version.
    newest = max(listed, key=lambda p: (p.get("ModelPackageVersion") or 0, str(p.get("CreationTime") or "")))
    described: dict[str, Any] = sagemaker.describe_model_package(ModelPackageName=newest["ModelPackageArn"])
    return described


def require_approved(sagemaker: Any, target: ScoringTarget) -> dict[str, Any]:
    """The newest Approved package; :class:`NoApprovedModel` naming the group and the fix otherwise."""
    package = latest_approved(sagemaker, target.group_name)
    if package is None:
        raise NoApprovedModel(
            f"team {target.team} has no Approved model in its registry ({target.group_name}), so there is "
            "nothing to score with: train one with the team's tabular pipeline and approve it "
            f"(locally: `flywheel run --team {target.team} --rows 2000`, then "
            f"`flywheel approve {target.team}:<version>`)"
        )
    return package


def model_name(pipeline_name: str, version: int) -> str:
    """``<pipeline>-v<version>`` (≤ 63 characters: the pipeline part is shortened and a digest added)."""
    suffix = f"-v{version}"
    if len(pipeline_name) + len(suffix) <= MODEL_NAME_LIMIT:
        return pipeline_name + suffix
    digest = hashlib.sha256(pipeline_name.encode()).hexdigest()[:8]
    keep = MODEL_NAME_LIMIT - len(suffix) - len(digest) - 1
    return f"{pipeline_name[:keep].rstrip('-')}-{digest}{suffix}"


def model_request(target: ScoringTarget, package: Mapping[str, Any]) -> dict[str, Any]:
    """CreateModel for ``package``: its own container, the scoring role, network-isolated, in the VPC."""
    arn = str(package["ModelPackageArn"])
    return {
        "ModelName": model_name(target.pipeline_name, int(package["ModelPackageVersion"])),
        "PrimaryContainer": {"ModelPackageName": arn},
        "ExecutionRoleArn": target.model_role_arn,
        "EnableNetworkIsolation": True,
        "VpcConfig": {"Subnets": list(target.subnet_ids), "SecurityGroupIds": list(target.security_group_ids)},
        "Tags": [{"Key": TEAM_TAG, "Value": target.team}, {"Key": PACKAGE_TAG, "Value": arn}],
    }


def ensure_model(sagemaker: Any, target: ScoringTarget, package: Mapping[str, Any]) -> str:
    """Create the scoring model of ``package`` unless it exists; returns its name."""
    request = model_request(target, package)
    try:
        sagemaker.describe_model(ModelName=request["ModelName"])
        return str(request["ModelName"])
    except ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", "")).lower()
        if "could not find" not in message and "does not exist" not in message:
            raise
    try:
        sagemaker.create_model(**request)
    except ClientError as exc:  # a concurrent launch created it first
        if "already exist" not in str(exc.response.get("Error", {}).get("Message", "")).lower():
            raise
    return str(request["ModelName"])


def new_batches(s3: Any, target: ScoringTarget, *, marker: str | None = None) -> list[str]:
    """``s3://`` URIs of the batch folders under the team's scoring prefix (with ``marker``: complete ones)."""
    prefix = target.incoming_prefix
    batches: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=target.raw_bucket, Prefix=prefix, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            folder = str(common["Prefix"])
            if marker is not None:
                listed = s3.list_objects_v2(Bucket=target.raw_bucket, Prefix=folder + marker, MaxKeys=1)
                if not listed.get("KeyCount"):
                    continue
            batches.append(naming.s3_uri(target.raw_bucket, folder))
    return sorted(batches)


def claim_key(target: ScoringTarget, batch_uri: str) -> str:
    """The claim of scoring one batch (``score-<digest>``: a safe name everywhere). A batch is new until it
    is claimed: approving another model version does not re-score the batches already scored."""
    digest = hashlib.sha256(f"{target.pipeline_name}\n{batch_uri}".encode()).hexdigest()
    return f"score-{digest[:48]}"


def launch(
    sagemaker: Any,
    store: IdempotencyStore,
    target: ScoringTarget,
    batch_uris: Sequence[str],
    start: Callable[[Mapping[str, str], str], str],
) -> LaunchResult:
    """Score ``batch_uris`` with the newest Approved model: model ensured, one execution per unclaimed batch.

    ``start(parameters, client_token)`` starts the pipeline and returns the execution ARN (boto3's
    ``StartPipelineExecution`` in the Lambda, the local runtime's start action locally). Raises
    :class:`NoApprovedModel` before any side effect; ValueError for a batch outside the team's prefix.
    """
    allowed = naming.s3_uri(target.raw_bucket, target.incoming_prefix)
    for uri in batch_uris:
        rest = uri[len(allowed) :] if uri.startswith(allowed) else ""
        if not rest or any(part in (".", "..") for part in rest.split("/")):
            raise ValueError(f"batch {uri!r} is not under the team's scoring prefix {allowed}")
    package = require_approved(sagemaker, target)
    name = ensure_model(sagemaker, target, package)
    result = LaunchResult(package_arn=str(package["ModelPackageArn"]), model_name=name)
    for uri in batch_uris:
        key = claim_key(target, uri)
        if not store.claim(key, {"batch": uri, "model": name}):
            previous = store.claimed(key) or {}
            result.skipped[uri] = (
                f"already scored with {previous.get('model', 'an earlier model')} "
                f"({previous.get('execution_arn', 'still starting')})"
            )
            continue
        parameters = {
            PARAM_INPUT_DATA_URI: uri,
            PARAM_MODEL_NAME: name,
            PARAM_MODEL_PACKAGE_ARN: result.package_arn,
        }
        try:
            arn = start(parameters, hashlib.sha256(key.encode()).hexdigest()[:64])
        except BaseException:
            store.release(key)  # a retry may start it
            raise
        store.update_claim(key, {"batch": uri, "model": name, "execution_arn": arn})
        result.started[uri] = arn
    return result


#: The metrics a finished scoring run publishes (namespace ``Flywheel/BatchScoring``; dimensions ``team``,
#: ``pipeline``).
METRICS_NAMESPACE: Final = "Flywheel/BatchScoring"
ROW_METRICS: Final = {
    "rows_in": "ScoringRowsIn",
    "rows_scored": "ScoringRowsScored",
    "rows_rejected": "ScoringRowsRejected",
}
FAILED_METRIC: Final = "ScoringRunsFailed"
SUCCEEDED_METRIC: Final = "ScoringRunsSucceeded"


def summary_metrics(
    team: str, pipeline_name: str, status: str, summary: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """``PutMetricData`` entries of one finished run: its row counts (when it wrote a summary) and a
    succeeded/failed count — a run that failed before its summary is counted as failed."""
    dimensions = [{"Name": naming.TEAM_DIMENSION, "Value": team}, {"Name": "pipeline", "Value": pipeline_name}]
    data = [
        {
            "MetricName": SUCCEEDED_METRIC if status == "Succeeded" else FAILED_METRIC,
            "Dimensions": dimensions,
            "Value": 1.0,
            "Unit": "Count",
        }
    ]
    for field_name, metric in ROW_METRICS.items():
        if summary is not None and isinstance(summary.get(field_name), int):
            data.append(
                {"MetricName": metric, "Dimensions": dimensions, "Value": float(summary[field_name]), "Unit": "Count"}
            )
    return data


def publish_summary(
    cloudwatch: Any, team: str, pipeline_name: str, status: str, summary: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Publish :func:`summary_metrics` to CloudWatch; returns what was sent."""
    data = summary_metrics(team, pipeline_name, status, summary)
    cloudwatch.put_metric_data(Namespace=METRICS_NAMESPACE, MetricData=data)
    return data
