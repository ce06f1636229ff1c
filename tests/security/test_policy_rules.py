"""Flywheel's own template rules: compliant on every environment; each trips on a weak fixture."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from stacks.policy_rules import RULES, check


def _templates(stage):
    return {name: t.to_json() for name, t in stage.templates().items()}


def test_every_environment_passes_every_rule(stages):
    for name, stage in stages.items():
        results = check(_templates(stage))
        assert results and all(v == [] for v in results.values()), (name, results)


@pytest.fixture(scope="module")
def weak():
    """A deliberately weak environment: each resource breaks one rule."""
    stack = Stack(App(), "Weak")
    iam.Role(
        stack,
        "NoBoundaryRole",
        assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
        managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSageMakerFullAccess")],
    ).add_to_policy(iam.PolicyStatement(actions=["iam:PassRole"], resources=["*"]))
    iam.ManagedPolicy(
        stack,
        "OrphanGuardrails",
        statements=[iam.PolicyStatement(effect=iam.Effect.DENY, actions=["sagemaker:*"], resources=["*"])],
    )
    shared = kms.Key(stack, "SharedKey", enable_key_rotation=False)
    raw = s3.Bucket(stack, "LakeRawBucket", encryption=s3.BucketEncryption.KMS, encryption_key=shared)
    curated = s3.Bucket(
        stack,
        "LakeCuratedBucket",
        encryption=s3.BucketEncryption.KMS,
        encryption_key=shared,
        bucket_key_enabled=True,
    )
    s3.Bucket(stack, "LakeReportsBucket", encryption=s3.BucketEncryption.S3_MANAGED)
    logs.LogGroup(stack, "PlainLogs", retention=logs.RetentionDays.INFINITE)
    trail_bucket = s3.Bucket(stack, "TrailBucket")
    trail = cloudtrail.Trail(stack, "Trail", bucket=trail_bucket, send_to_cloud_watch_logs=False)
    trail.add_s3_event_selector(
        [cloudtrail.S3EventSelector(bucket=s3.Bucket.from_bucket_name(stack, "Other", "other"))]
    )
    # the curated bucket is covered for writes only: reads of lake data would go unlogged
    trail.add_s3_event_selector(
        [cloudtrail.S3EventSelector(bucket=curated)], read_write_type=cloudtrail.ReadWriteType.WRITE_ONLY
    )
    for name, bucket in (("Raw", raw), ("Curated", curated)):
        glue.CfnDatabase(
            stack,
            f"{name}Database",
            catalog_id="111111111111",
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=name.lower(), location_uri=f"s3://{bucket.bucket_name}/"
            ),
        )
    # GitHub OIDC trust for any repository of the organisation (and any branch): a wildcard subject
    iam.Role(
        stack,
        "WildcardGitHubRole",
        assumed_by=iam.FederatedPrincipal(
            "arn:aws:iam::111111111111:oidc-provider/token.actions.githubusercontent.com",
            conditions={
                "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
                "StringLike": {"token.actions.githubusercontent.com:sub": "repo:org/*"},
            },
            assume_role_action="sts:AssumeRoleWithWebIdentity",
        ),
    )
    return {"Weak": Template.from_stack(stack).to_json()}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_trips_on_weak_fixture(weak, rule):
    problems = RULES[rule](weak)
    assert problems, f"{rule} found nothing in the weak fixture"


def test_weak_fixture_problems_name_the_resource(weak):
    results = check(weak)
    assert any("NoBoundaryRole" in p for p in results["every-role-has-boundary"])
    assert any("shares its KMS key" in p for p in results["buckets-use-distinct-customer-keys"])
    assert any("LakeReportsBucket" in p for p in results["buckets-use-distinct-customer-keys"])
    assert any("LakeRawBucket" in p for p in results["trail-covers-lake-buckets"])
    assert any("AmazonSageMakerFullAccess" in p for p in results["no-aws-managed-policies"])
    trail = results["trail-covers-lake-buckets"]
    assert any("LakeCuratedBucket" in p for p in trail), "a write-only selector must not count as coverage"
    assert any("OrphanGuardrails" in p for p in results["managed-policies-are-attached"])
    assert any("on any role" in p for p in results["passrole-scoped-to-service"])
    assert any("WildcardGitHubRole" in p and "StringLike" in p for p in results["oidc-trust-pins-one-repository"])


def _trail_templates(stage):
    return {name: t.to_json() for name, t in stage.templates().items()}


def test_trail_rule_finds_every_lake_bucket_of_the_environment(dev):
    from stacks.policy_rules import lake_buckets

    found = lake_buckets(_trail_templates(dev))
    assert sorted(lid for _, lid in found) == sorted(
        lid for lid in dev.data_lake.find_resources("AWS::S3::Bucket") if not lid.startswith("LakeAccessLogs")
    )
    assert len(found) == 6


@pytest.mark.parametrize("weaken", ["write-only", "read-only", "drop-one", "prefix-only", "not-logging"])
def test_trail_rule_trips_on_a_weakened_trail(dev, weaken):
    import copy

    templates = copy.deepcopy(_trail_templates(dev))
    (trail,) = [r for r in templates["Audit"]["Resources"].values() if r["Type"] == "AWS::CloudTrail::Trail"]
    selector = next(s for s in trail["Properties"]["EventSelectors"] if s.get("DataResources"))
    values = selector["DataResources"][0]["Values"]
    if weaken == "write-only":
        selector["ReadWriteType"] = "WriteOnly"
    elif weaken == "read-only":
        selector["ReadWriteType"] = "ReadOnly"
    elif weaken == "drop-one":
        values.pop()
    elif weaken == "prefix-only":
        values[0]["Fn::Join"][1][1] = "/churn/"
    else:
        trail["Properties"]["IsLogging"] = False
    assert RULES["trail-covers-lake-buckets"](templates)
