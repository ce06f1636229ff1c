"""Flywheel's own template rules: what cdk-nag does not check (DESIGN §7).

Each rule takes every synthesized template of one environment (``{stack name: template dict}``) and
returns the problems it finds; ``[]`` means compliant. ``tests/security`` runs them on every environment
and on a deliberately weak fixture that must trip each one; ``make demo`` reports them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from naming import BOUNDARY_PREFIX

Templates = Mapping[str, Mapping[str, Any]]
Rule = Callable[[Templates], list[str]]


def _resources(templates: Templates, kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (stack, logical_id, res)
        for stack, template in templates.items()
        for logical_id, res in template.get("Resources", {}).items()
        if res.get("Type") == kind
    ]


def every_role_has_boundary(templates: Templates) -> list[str]:
    """Every IAM role carries a permissions boundary."""
    return [
        f"{stack}/{lid}: role has no PermissionsBoundary"
        for stack, lid, res in _resources(templates, "AWS::IAM::Role")
        if not res.get("Properties", {}).get("PermissionsBoundary")
    ]


def roles_use_no_aws_managed_policies(templates: Templates) -> list[str]:
    """No role of ours attaches an AWS-managed policy (they change under us and are broad).

    CDK's own custom-resource provider roles are exempt: CDK attaches AWSLambdaBasicExecutionRole to them.
    """
    problems = []
    for stack, lid, res in _resources(templates, "AWS::IAM::Role"):
        if lid.startswith("Custom") and "CustomResourceProvider" in lid:
            continue
        for arn in res.get("Properties", {}).get("ManagedPolicyArns", []):
            if ":aws:policy/" in json.dumps(arn):
                problems.append(f"{stack}/{lid}: attaches AWS-managed policy {json.dumps(arn)}")
    return problems


def buckets_use_distinct_customer_keys(templates: Templates) -> list[str]:
    """Every bucket but the access-log bucket is SSE-KMS with a bucket key and a key no other bucket uses."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for stack, lid, res in _resources(templates, "AWS::S3::Bucket"):
        props = res.get("Properties", {})
        rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        default = rules[0].get("ServerSideEncryptionByDefault", {}) if rules else {}
        is_log_target = any(
            s.get("Principal") == {"Service": "logging.s3.amazonaws.com"}
            for _, _, pol in _resources(templates, "AWS::S3::BucketPolicy")
            if pol["Properties"]["Bucket"] == {"Ref": lid}
            for s in pol["Properties"]["PolicyDocument"]["Statement"]
        )
        if is_log_target:
            if default.get("SSEAlgorithm") != "AES256":
                problems.append(f"{stack}/{lid}: access-log bucket must use SSE-S3 (log delivery rejects KMS)")
            continue
        if default.get("SSEAlgorithm") != "aws:kms" or not default.get("KMSMasterKeyID"):
            problems.append(f"{stack}/{lid}: bucket is not SSE-KMS with a customer key")
            continue
        if not rules[0].get("BucketKeyEnabled"):
            problems.append(f"{stack}/{lid}: bucket key disabled (every object would call KMS)")
        key = json.dumps(default["KMSMasterKeyID"], sort_keys=True)
        if key in seen:
            problems.append(f"{stack}/{lid}: shares its KMS key with {seen[key]}; each zone needs its own key")
        seen[key] = f"{stack}/{lid}"
    return problems


def trail_covers_lake_buckets(templates: Templates) -> list[str]:
    """Data events of the trail cover every data-lake bucket (those with a Glue zone database)."""
    lake_buckets = [
        lid
        for _, lid, _ in _resources(templates, "AWS::S3::Bucket")
        if lid.startswith("Lake") and not lid.startswith("LakeAccessLogs")
    ]
    trails = _resources(templates, "AWS::CloudTrail::Trail")
    if not trails:
        return ["no CloudTrail trail in this environment"] if lake_buckets else []
    selectors = json.dumps([t[2]["Properties"].get("EventSelectors", []) for t in trails])
    return [f"{lid}: no trail data events cover this lake bucket" for lid in lake_buckets if lid not in selectors]


def log_groups_encrypted_and_retained(templates: Templates) -> list[str]:
    """Every log group has a KMS key and a finite retention."""
    problems = []
    for stack, lid, res in _resources(templates, "AWS::Logs::LogGroup"):
        props = res.get("Properties", {})
        if not props.get("KmsKeyId"):
            problems.append(f"{stack}/{lid}: log group not KMS-encrypted")
        if not props.get("RetentionInDays"):
            problems.append(f"{stack}/{lid}: log group keeps logs forever (no RetentionInDays)")
    return problems


def keys_rotate(templates: Templates) -> list[str]:
    """Every customer-managed key rotates."""
    return [
        f"{stack}/{lid}: key rotation is off"
        for stack, lid, res in _resources(templates, "AWS::KMS::Key")
        if res.get("Properties", {}).get("EnableKeyRotation") is not True
    ]


def passrole_scoped_to_service(templates: Templates) -> list[str]:
    """``iam:PassRole`` in our policies is always scoped with ``iam:PassedToService``."""
    problems = []
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for stack, lid, res in _resources(templates, kind):
            if str(res["Properties"].get("ManagedPolicyName", "")).startswith(BOUNDARY_PREFIX):
                continue  # the boundary is a ceiling, not a grant
            for stmt in res["Properties"]["PolicyDocument"]["Statement"]:
                actions = stmt.get("Action", [])
                actions = [actions] if isinstance(actions, str) else actions
                passes = stmt.get("Effect") == "Allow" and any(a in ("iam:PassRole", "iam:*", "*") for a in actions)
                if passes and "iam:PassedToService" not in json.dumps(stmt.get("Condition", {})):
                    problems.append(f"{stack}/{lid}: iam:PassRole without iam:PassedToService")
    return problems


RULES: dict[str, Rule] = {
    "every-role-has-boundary": every_role_has_boundary,
    "no-aws-managed-policies": roles_use_no_aws_managed_policies,
    "buckets-use-distinct-customer-keys": buckets_use_distinct_customer_keys,
    "trail-covers-lake-buckets": trail_covers_lake_buckets,
    "log-groups-encrypted-and-retained": log_groups_encrypted_and_retained,
    "keys-rotate": keys_rotate,
    "passrole-scoped-to-service": passrole_scoped_to_service,
}


def check(templates: Templates) -> dict[str, list[str]]:
    """Run every rule; ``{rule name: problems}``."""
    return {name: rule(templates) for name, rule in RULES.items()}
