"""Reads of the model registry and the evaluation reports it points at (no writes)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import naming

NO_CHAMPION: Final = "none"


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
    """A JSON document from S3 (``uri``: ``s3://bucket/key``)."""
    bucket, key = naming.split_s3_uri(uri)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


@dataclass(frozen=True)
class Champion:
    """The approved champion a challenger is compared with: its gate value (text, ``"none"`` without a
    champion) and its model artifact (``ModelDataUrl``), None without a champion or a recorded artifact."""

    metric: str
    model_data_url: str | None = None
    version: int | None = None


def model_data_url(package: Mapping[str, Any]) -> str | None:
    """The model artifact of a package (its first inference container's ``ModelDataUrl``)."""
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or []
    uri = containers[0].get("ModelDataUrl") if containers else None
    return str(uri) if uri else None


def champion(sagemaker: Any, s3: Any, group: str) -> Champion:
    """The latest approved package with a numeric gate value in its evaluation.json, or no champion."""
    for summary in approved_packages(sagemaker, group):
        package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        uri = evaluation_uri(package)
        if uri is None:
            continue
        value = (read_s3_json(s3, uri).get("gate") or {}).get("value")
        if isinstance(value, int | float) and not isinstance(value, bool):
            version = package.get("ModelPackageVersion")
            return Champion(repr(float(value)), model_data_url(package), int(version) if version else None)
    return Champion(NO_CHAMPION)


def champion_metric(sagemaker: Any, s3: Any, group: str) -> str:
    """The gate value of the latest approved package (from its evaluation.json), or ``"none"``."""
    return champion(sagemaker, s3, group).metric
