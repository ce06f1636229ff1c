"""What the local runtime adds to the model card: its inputs from the team's config and the registry, and
storing it with the registered package.

The card's sections and renderer are :mod:`pipelines.tabular.model_card` (re-exported here): the same code
the ``Evaluate`` step runs in the deployed pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.tabular.model_card import (
    CARD_FILE,
    baseline_section,
    card_section,
    champion_figures,
    contract_spec,
    threshold_classes_calibration,
    verdict_section,
)

__all__ = [
    "CARD_FILE",
    "baseline_section",
    "card_inputs",
    "card_section",
    "card_uri",
    "champion_figures",
    "contract_spec",
    "store_with_package",
    "threshold_classes_calibration",
    "verdict_section",
]


# --- what the local runtime knows for the card ---------------------------------------------------------


def card_inputs(runtime: Any, team: str, package: Mapping[str, Any] | None) -> dict[str, Any]:
    """The :func:`flywheel.report.run_report` keyword arguments of the model card for a run of ``team``
    whose registered package is ``package`` (None when nothing was registered): the team's card fields and
    contract, every version of its group, and the deployed champion's own evaluation."""
    from botocore.exceptions import ClientError

    from flywheel.errors import FlywheelError
    from lambdas import lifecycle

    config = runtime.team_config(team)
    out: dict[str, Any] = {
        "card": {"description": config.description, "owner": config.owner, "intended_use": config.intended_use},
    }
    to_json = getattr(config.contract, "to_json", None)
    if callable(to_json):
        out["contract_spec"] = json.loads(to_json())
    deployment = runtime.state.deployment(team) or {}
    deployed = deployment.get("ModelPackageArn")
    try:
        packages = runtime.packages(team)
    except (ClientError, FlywheelError):
        packages = []
    out["group_versions"] = [
        {
            "version": int(p.get("ModelPackageVersion", 0)),
            "approval": p.get("ModelApprovalStatus", ""),
            "deployed": p.get("ModelPackageArn") == deployed,
        }
        for p in packages
    ]
    if deployed and (package is None or deployed != package.get("ModelPackageArn")):
        try:
            champion = runtime.aws.client("sagemaker").describe_model_package(ModelPackageName=deployed)
            uri = lifecycle.evaluation_uri(champion)
            evaluation = lifecycle.read_s3_json(runtime.aws.client("s3"), uri) if uri else None
        except (ClientError, ValueError, KeyError):
            evaluation = None
        if evaluation:
            out["champion"] = {
                "version": champion.get("ModelPackageVersion"),
                "approval": champion.get("ModelApprovalStatus"),
                "evaluation": evaluation,
            }
    return out


def card_uri(package: Mapping[str, Any]) -> str | None:
    """Where the model card of ``package`` is stored: next to its registered ``evaluation.json``."""
    from lambdas import lifecycle

    uri = lifecycle.evaluation_uri(package)
    return uri.rsplit("/", 1)[0] + "/" + CARD_FILE if uri else None


def store_with_package(runtime: Any, outcome: Any, path: Path) -> str | None:
    """Upload the card next to the registered package's ``evaluation.json`` (same bucket, key and KMS key
    as the evaluation); returns its URI, None when the run registered nothing or the upload failed."""
    from botocore.exceptions import ClientError

    import naming

    uri = card_uri(outcome.package) if outcome.package else None
    if uri is None:
        return None
    bucket, key = naming.split_s3_uri(uri)
    platform = runtime.resources(outcome.team).platform
    try:
        runtime.aws.client("s3").put_object(
            Bucket=bucket,
            Key=key,
            Body=path.read_bytes(),
            ContentType="text/html",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=platform.keys["reports"],
        )
    except ClientError:
        return None
    return uri
