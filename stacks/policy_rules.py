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


def _reads_restricted_by_principal(templates: Templates, bucket_lid: str) -> bool:
    """Whether the bucket's policy denies object reads to principals outside an ``aws:PrincipalArn`` list."""
    for _, _, pol in _resources(templates, "AWS::S3::BucketPolicy"):
        if pol["Properties"]["Bucket"] != {"Ref": bucket_lid}:
            continue
        for stmt in pol["Properties"]["PolicyDocument"]["Statement"]:
            actions = stmt.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            if (
                stmt.get("Effect") == "Deny"
                and "s3:GetObject" in actions
                and "aws:PrincipalArn" in stmt.get("Condition", {}).get("ArnNotLike", {})
            ):
                return True
    return False


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
        if not rules[0].get("BucketKeyEnabled") and not _reads_restricted_by_principal(templates, lid):
            # Only a bucket whose data reads are restricted by principal (the raw zone) may do without:
            # without a Bucket Key, S3 passes each object's ARN as encryption context, so key grants can
            # be limited per prefix (per team); everywhere else the Bucket Key saves a KMS call per object.
            problems.append(f"{stack}/{lid}: bucket key disabled (every object would call KMS)")
        key = json.dumps(default["KMSMasterKeyID"], sort_keys=True)
        if key in seen:
            problems.append(f"{stack}/{lid}: shares its KMS key with {seen[key]}; each zone needs its own key")
        seen[key] = f"{stack}/{lid}"
    return problems


def _stack(templates: Templates, name: str) -> str | None:
    """The key of the template deployed as stack ``name`` (keys may be short ids: ``DataLake``)."""
    return next((k for k in templates if name == k or name.endswith(f"-{k}")), None)


def _referenced_bucket(templates: Templates, stack: str, value: Any) -> tuple[str, str] | None:
    """``(stack, bucket logical id)`` when ``value`` is a bucket's ARN or name: a ``Ref``/``GetAtt``, or
    one reached through ``Fn::ImportValue``/``Fn::GetStackOutput`` of another stack's output."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((fn, arg),) = value.items()
    resources = templates.get(stack, {}).get("Resources", {})
    if fn in ("Ref", "Fn::GetAtt"):
        lid = arg if fn == "Ref" else arg[0]
        if fn == "Fn::GetAtt" and arg[1] != "Arn":
            return None
        if resources.get(lid, {}).get("Type") == "AWS::S3::Bucket":
            return stack, lid
        return None
    if fn == "Fn::GetStackOutput":
        source = _stack(templates, arg.get("StackName", ""))
        output = templates.get(source or "", {}).get("Outputs", {}).get(arg.get("OutputName"))
        return _referenced_bucket(templates, source, output["Value"]) if source and output else None
    if fn == "Fn::ImportValue":
        for source, template in templates.items():
            for output in template.get("Outputs", {}).values():
                export = output.get("Export", {}).get("Name")
                if export == arg or (
                    isinstance(export, dict) and export.get("Fn::Join") and json.dumps(export) == json.dumps(arg)
                ):
                    return _referenced_bucket(templates, source, output["Value"])
    return None


def _whole_bucket_selector(templates: Templates, stack: str, value: Any) -> tuple[str, str] | None:
    """The bucket whose every object ``value`` (an S3 data-resource value) selects: ``<bucket ARN>/``."""
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        if sep == "" and len(parts) == 2 and parts[1] == "/":
            return _referenced_bucket(templates, stack, parts[0])
        if sep == "" and len(parts) == 5 and parts[2] == ":s3:::" and parts[4] == "/":
            return _referenced_bucket(templates, stack, parts[3])
    return None


def lake_buckets(templates: Templates) -> list[tuple[str, str]]:
    """The data-lake buckets: those a Glue zone database is located in (``s3://<bucket>/``)."""
    out = []
    for stack, _, res in _resources(templates, "AWS::Glue::Database"):
        location = res["Properties"].get("DatabaseInput", {}).get("LocationUri")
        if isinstance(location, dict) and "Fn::Join" in location:
            for part in location["Fn::Join"][1]:
                bucket = _referenced_bucket(templates, stack, part)
                if bucket:
                    out.append(bucket)
    return sorted(set(out))


def trail_covers_lake_buckets(templates: Templates) -> list[str]:
    """A trail logs read *and* write data events on every object of every data-lake bucket."""
    lake = lake_buckets(templates)
    trails = _resources(templates, "AWS::CloudTrail::Trail")
    if not trails:
        return ["no CloudTrail trail in this environment"] if lake else []
    covered: set[tuple[str, str]] = set()
    for stack, _, trail in trails:
        if trail["Properties"].get("IsLogging") is False:
            continue
        for selector in trail["Properties"].get("EventSelectors", []):
            if selector.get("ReadWriteType", "All") != "All":
                continue
            for data in selector.get("DataResources", []):
                if data.get("Type") == "AWS::S3::Object":
                    covered |= {b for v in data.get("Values", []) if (b := _whole_bucket_selector(templates, stack, v))}
    return [f"{stack}/{lid}: no trail logs all (read and write) data events of this lake bucket"
            for stack, lid in lake if (stack, lid) not in covered]  # fmt: skip


def managed_policies_are_attached(templates: Templates) -> list[str]:
    """Every customer-managed policy is a boundary or attached to a role, group or user: a policy that
    binds nobody reads like a control and is none."""
    problems = []
    for stack, lid, res in _resources(templates, "AWS::IAM::ManagedPolicy"):
        props = res.get("Properties", {})
        if str(props.get("ManagedPolicyName", "")).startswith(BOUNDARY_PREFIX):
            continue
        if not (props.get("Roles") or props.get("Groups") or props.get("Users")):
            problems.append(f"{stack}/{lid}: managed policy attached to nothing")
    return problems


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
    """``iam:PassRole`` in our policies names its roles (no ``*``) and pins ``iam:PassedToService`` to
    named services with ``StringEquals`` (a ``StringLike`` of ``*`` is no scope)."""
    problems = []
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for stack, lid, res in _resources(templates, kind):
            if str(res["Properties"].get("ManagedPolicyName", "")).startswith(BOUNDARY_PREFIX):
                continue  # the boundary is a ceiling, not a grant (tests/security/test_boundary.py)
            for stmt in res["Properties"]["PolicyDocument"]["Statement"]:
                actions = stmt.get("Action", [])
                actions = [actions] if isinstance(actions, str) else actions
                if stmt.get("Effect") != "Allow" or "NotAction" in stmt:
                    if stmt.get("Effect") == "Allow":
                        problems.append(f"{stack}/{lid}: Allow with NotAction may grant iam:PassRole")
                    continue
                if not any(a.lower() in ("iam:passrole", "iam:*", "*", "iam:pass*") for a in actions):
                    continue
                services = stmt.get("Condition", {}).get("StringEquals", {}).get("iam:PassedToService")
                services = [services] if isinstance(services, str) else services or []
                if not services or any("*" in str(s) for s in services):
                    problems.append(f"{stack}/{lid}: iam:PassRole without StringEquals iam:PassedToService")
                resources = stmt.get("Resource", [])
                resources = [resources] if not isinstance(resources, list) else resources
                if (
                    any(isinstance(r, str) and r.endswith("*") and ":role/" not in r for r in resources)
                    or "*" in resources
                ):
                    problems.append(f"{stack}/{lid}: iam:PassRole on any role")
    return problems


GITHUB_OIDC = "token.actions.githubusercontent.com"


def _is_github_provider(template: Mapping[str, Any], federated: Any) -> bool:
    """``federated`` names GitHub's OIDC provider: its ARN, or a Ref/GetAtt of an OIDC provider whose URL is it."""
    if isinstance(federated, str):
        return GITHUB_OIDC in federated
    if isinstance(federated, dict) and len(federated) == 1:
        ((fn, arg),) = federated.items()
        lid = arg if fn == "Ref" else arg[0] if fn == "Fn::GetAtt" and isinstance(arg, list) else None
        resource = template.get("Resources", {}).get(lid, {}) if isinstance(lid, str) else {}
        if resource.get("Type") in ("AWS::IAM::OIDCProvider", "Custom::AWSCDKOpenIdConnectProvider"):
            return GITHUB_OIDC in json.dumps(resource.get("Properties", {}).get("Url", ""))
    return GITHUB_OIDC in json.dumps(federated)


def github_trust_statements(templates: Templates) -> list[tuple[str, dict[str, Any]]]:
    """``(stack/role, statement)`` of every trust statement GitHub Actions could use (by its principal or by
    conditions on GitHub's claims)."""
    out = []
    for stack, lid, res in _resources(templates, "AWS::IAM::Role"):
        trust = res.get("Properties", {}).get("AssumeRolePolicyDocument", {})
        for stmt in trust.get("Statement", []):
            principal = stmt.get("Principal")
            federated = principal.get("Federated", []) if isinstance(principal, dict) else []
            federated = federated if isinstance(federated, list) else [federated]
            keys = [k for keys in stmt.get("Condition", {}).values() for k in keys]
            if stmt.get("Effect") == "Allow" and (
                any(_is_github_provider(templates[stack], f) for f in federated)
                or any(str(k).startswith(GITHUB_OIDC) for k in keys)
            ):
                out.append((f"{stack}/{lid}", stmt))
    return out


def oidc_trust_pins_one_repository(templates: Templates) -> list[str]:
    """A role GitHub Actions may assume (OIDC) requires ``aud`` = ``sts.amazonaws.com`` and a ``sub`` that
    *equals* one repository's branch or environment: no ``StringLike``, no wildcard, no second repository."""
    problems = []
    for where, stmt in github_trust_statements(templates):
        condition = stmt.get("Condition", {})
        equals = condition.get("StringEquals", {})
        if equals.get(f"{GITHUB_OIDC}:aud") != "sts.amazonaws.com":
            problems.append(f"{where}: OIDC trust without StringEquals {GITHUB_OIDC}:aud = sts.amazonaws.com")
        for operator, keys in condition.items():
            if operator != "StringEquals" and any(str(k).startswith(GITHUB_OIDC) for k in keys):
                problems.append(f"{where}: OIDC trust matches GitHub's claims with {operator}, not StringEquals")
        subject = equals.get(f"{GITHUB_OIDC}:sub")
        subjects = subject if isinstance(subject, list) else [subject] if subject else []
        if not subjects:
            problems.append(f"{where}: OIDC trust does not pin {GITHUB_OIDC}:sub (any repository could assume it)")
        for text in map(str, subjects):
            if any(c in text for c in "*?") or not text.startswith("repo:") or text.count(":") < 3:
                problems.append(f"{where}: OIDC subject {text!r} is not one exact repo:<owner>/<name>:<ref>")
        repos = {str(s).split(":")[1] for s in subjects if str(s).count(":") >= 2}
        if len(repos) > 1:
            problems.append(f"{where}: OIDC trust names several repositories {sorted(repos)}")
    return problems


RULES: dict[str, Rule] = {
    "every-role-has-boundary": every_role_has_boundary,
    "no-aws-managed-policies": roles_use_no_aws_managed_policies,
    "buckets-use-distinct-customer-keys": buckets_use_distinct_customer_keys,
    "trail-covers-lake-buckets": trail_covers_lake_buckets,
    "log-groups-encrypted-and-retained": log_groups_encrypted_and_retained,
    "keys-rotate": keys_rotate,
    "passrole-scoped-to-service": passrole_scoped_to_service,
    "managed-policies-are-attached": managed_policies_are_attached,
    "oidc-trust-pins-one-repository": oidc_trust_pins_one_repository,
}


def check(templates: Templates) -> dict[str, list[str]]:
    """Run every rule; ``{rule name: problems}``."""
    return {name: rule(templates) for name, rule in RULES.items()}
