"""Data lake: every zone bucket carries the baseline, with its own key (DESIGN §7)."""

from __future__ import annotations

import json

import pytest

from stacks.components.data_lake import ZONES
from tests.security.iam_eval import Decision, Request, Templates, evaluate

ZONE_IDS = [z.construct_id for z in ZONES]


def _zone_bucket(template, construct_id):
    buckets = {
        k: v for k, v in template.find_resources("AWS::S3::Bucket").items() if k.startswith(f"Lake{construct_id}Bucket")
    }
    assert len(buckets) == 1, f"expected one {construct_id} bucket, got {list(buckets)}"
    return next(iter(buckets.items()))


def _zone_key_id(template, construct_id):
    keys = [k for k in template.find_resources("AWS::KMS::Key") if k.startswith(f"Lake{construct_id}Key")]
    assert len(keys) == 1
    return keys[0]


@pytest.mark.parametrize("zone", ZONE_IDS)
def test_zone_blocks_all_public_access(dev, zone):
    _, b = _zone_bucket(dev.data_lake, zone)
    assert b["Properties"]["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
    }  # fmt: skip


@pytest.mark.parametrize("zone", ZONE_IDS)
def test_zone_uses_its_own_kms_key_with_bucket_key_but_raw(dev, zone):
    """Raw uses no S3 Bucket Key: S3 then passes the object ARN as KMS encryption context, which the
    preprocessing roles' key grants are limited by (per team); other zones keep the cheaper Bucket Key."""
    _, b = _zone_bucket(dev.data_lake, zone)
    (rule,) = b["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["BucketKeyEnabled"] is (zone != "Raw")
    default = rule["ServerSideEncryptionByDefault"]
    assert default["SSEAlgorithm"] == "aws:kms"
    assert default["KMSMasterKeyID"] == {"Fn::GetAtt": [_zone_key_id(dev.data_lake, zone), "Arn"]}


@pytest.mark.parametrize("zone", ZONE_IDS)
def test_zone_is_versioned_logged_and_acl_free(dev, zone):
    _, b = _zone_bucket(dev.data_lake, zone)
    props = b["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert props["LoggingConfiguration"]["LogFilePrefix"] == f"{zone.lower()}/"
    assert props["LoggingConfiguration"]["DestinationBucketName"]["Ref"].startswith("LakeAccessLogsBucket")


@pytest.mark.parametrize("zone", ZONE_IDS)
def test_zone_policy_denies_insecure_transport(dev, zone):
    logical_id, _ = _zone_bucket(dev.data_lake, zone)
    policies = [
        p
        for p in dev.data_lake.find_resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": logical_id}
    ]
    (policy,) = policies
    denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false" for s in denies)
    assert any("s3:TlsVersion" in s.get("Condition", {}).get("NumericLessThan", {}) for s in denies)


@pytest.mark.parametrize("zone", ZONE_IDS)
def test_zone_lifecycle_aborts_uploads_and_expires_noncurrent(dev, zone):
    _, b = _zone_bucket(dev.data_lake, zone)
    rules = {r["Id"]: r for r in b["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["AbortIncompleteUploads"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7
    name = next(z.name for z in ZONES if z.construct_id == zone)
    expected = dev.environment.retention.noncurrent_days[name]
    assert rules["ExpireNoncurrent"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == expected
    assert rules["ExpireNoncurrent"]["Status"] == "Enabled"


def test_retention_comes_from_config_per_zone(stages):
    """docs/privacy.md's data-retention table: raw batches, quarantine and noncurrent versions expire as
    configured; PII zones keep noncurrent versions for at most 30 days by default; the PII key never expires."""
    from config.models import DEFAULT_NONCURRENT_DAYS

    assert max(DEFAULT_NONCURRENT_DAYS[z] for z in ("raw", "curated", "features")) <= 30
    for stage in stages.values():
        retention = stage.environment.retention
        _, raw = _zone_bucket(stage.data_lake, "Raw")
        rules = {r["Id"]: r for r in raw["Properties"]["LifecycleConfiguration"]["Rules"]}
        for team in stage.teams:
            incoming, quarantine = rules[f"ExpireIncoming-{team}"], rules[f"ExpireQuarantine-{team}"]
            assert incoming["Prefix"] == f"{team}/incoming/"
            assert incoming["ExpirationInDays"] == retention.raw_days
            assert quarantine["Prefix"] == f"{team}/quarantine/"
            assert quarantine["ExpirationInDays"] == retention.quarantine_days
        # No rule may match the teams' PII key folders (<team>/_keys/): expiring the key breaks the tokens.
        for rule in rules.values():
            prefix = rule.get("Prefix", rule.get("Filter", {}).get("Prefix"))
            if rule.get("ExpirationInDays") is not None:
                assert prefix and "_keys" not in prefix, rule
        for zone in ZONES:
            _, b = _zone_bucket(stage.data_lake, zone.construct_id)
            zone_rules = {r["Id"]: r for r in b["Properties"]["LifecycleConfiguration"]["Rules"]}
            days = zone_rules["ExpireNoncurrent"]["NoncurrentVersionExpiration"]["NoncurrentDays"]
            assert days == retention.noncurrent_days[zone.name]


def test_retention_config_is_validated():
    from pydantic import ValidationError

    from config.models import RetentionConfig

    assert RetentionConfig(noncurrent_days={"raw": 7}).noncurrent_days["raw"] == 7
    assert RetentionConfig(noncurrent_days={"raw": 7}).noncurrent_days["artifacts"] == 365
    with pytest.raises(ValidationError, match="unknown zone"):
        RetentionConfig(noncurrent_days={"bronze": 7})
    with pytest.raises(ValidationError, match="1-3650"):
        RetentionConfig(noncurrent_days={"raw": 0})
    with pytest.raises(ValidationError):
        RetentionConfig(raw_days=0)


def test_pii_zones_are_never_in_compliance_mode_object_lock(stages):
    """Erasure must be able to delete every version in raw/curated/features: no compliance-mode lock."""
    for stage in stages.values():
        for zone in ("Raw", "Curated", "Features"):
            _, b = _zone_bucket(stage.data_lake, zone)
            lock = b["Properties"].get("ObjectLockConfiguration", {})
            assert lock.get("Rule", {}).get("DefaultRetention", {}).get("Mode") != "COMPLIANCE"
            assert b["Properties"].get("ObjectLockEnabled") in (None, False)


def test_each_zone_has_a_distinct_key(dev):
    keys = {_zone_key_id(dev.data_lake, z) for z in ZONE_IDS}
    assert len(keys) == len(ZONE_IDS)


def test_artifacts_zone_has_object_lock(stages):
    for stage in stages.values():
        _, b = _zone_bucket(stage.data_lake, "Artifacts")
        lock = b["Properties"]["ObjectLockConfiguration"]
        assert b["Properties"]["ObjectLockEnabled"] is True
        assert lock["Rule"]["DefaultRetention"] == {
            "Mode": "GOVERNANCE",
            "Days": stage.environment.object_lock_days,
        }


def test_other_zones_have_no_object_lock(dev):
    for zone in ZONE_IDS:
        if zone != "Artifacts":
            _, b = _zone_bucket(dev.data_lake, zone)
            assert b["Properties"].get("ObjectLockEnabled", False) is False


def test_access_log_bucket_is_sse_s3_private_and_accepts_log_delivery(dev):
    ((logical_id, b),) = [
        (k, v)
        for k, v in dev.data_lake.find_resources("AWS::S3::Bucket").items()
        if k.startswith("LakeAccessLogsBucket")
    ]
    (rule,) = b["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert b["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    (policy,) = [
        p
        for p in dev.data_lake.find_resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": logical_id}
    ]
    principals = [
        s.get("Principal") for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"
    ]
    assert {"Service": "logging.s3.amazonaws.com"} in principals


def test_glue_database_per_zone(dev):
    dbs = dev.data_lake.find_resources("AWS::Glue::Database")
    names = sorted(d["Properties"]["DatabaseInput"]["Name"] for d in dbs.values())
    assert names == sorted(f"flywheel_dev_{z.name}" for z in ZONES)


def test_stateful_resources_retained_outside_dev(stages):
    assert all(
        b["DeletionPolicy"] == "Retain" for b in stages["prod"].data_lake.find_resources("AWS::S3::Bucket").values()
    )
    assert all(
        b["DeletionPolicy"] == "Delete" for b in stages["dev"].data_lake.find_resources("AWS::S3::Bucket").values()
    )


def test_lake_exposes_typed_attributes(dev):
    lake = dev.stage.data_lake.lake
    assert set(lake.buckets) == {z.name for z in ZONES} == set(lake.keys)
    assert lake.raw_bucket is lake.buckets["raw"] and lake.artifacts_bucket is lake.buckets["artifacts"]


# -- the raw zone: only preprocessing, ingest and break-glass read data ----------------------------------------

ACCOUNT = "111111111111"
ROLE = "arn:aws:iam::111111111111:role"
READERS = (
    f"{ROLE}/flywheel/dev/preprocessing/Flywheel-dev-Team-churn-PreprocessingRole-abc",
    f"{ROLE}/flywheel/dev/ingest/lander",
    f"{ROLE}/flywheel/dev/break-glass/pii-investigation",
)
OTHERS = (
    f"{ROLE}/flywheel/dev/training/Flywheel-dev-Team-churn-TrainingRole-abc",
    f"{ROLE}/flywheel/dev/evaluation/x",
    f"{ROLE}/flywheel/dev/pipeline/x",
    f"{ROLE}/flywheel/staging/preprocessing/x",  # another environment's preprocessing role
    f"{ROLE}/Admin",
    f"{ROLE}/flywheel/dev/x/preprocessing/y",
    "arn:aws:iam::222222222222:role/flywheel/dev/preprocessing/x",
    "arn:aws:iam::111111111111:root",
)


def _lake(dev):
    stack = dev.stage.data_lake.stack_name
    return stack, Templates({stack: dev.data_lake.to_json()}, account=ACCOUNT, region="eu-west-1")


def _raw_documents(dev):
    stack, lake = _lake(dev)
    bucket_id, _ = _zone_bucket(dev.data_lake, "Raw")
    (policy,) = [
        p for p in dev.data_lake.find_resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]  # fmt: skip
    key_id = _zone_key_id(dev.data_lake, "Raw")
    key = dev.data_lake.to_json()["Resources"][key_id]
    return (
        lake.get_att(stack, bucket_id, "Arn"),
        lake.resolve(stack, policy["Properties"]["PolicyDocument"]),
        lake.resolve(stack, key["Properties"]["KeyPolicy"]),
    )


def _request(action, resource, principal_arn):
    return Request(
        action,
        resource,
        context={"aws:PrincipalArn": principal_arn, "aws:SecureTransport": True, "s3:TlsVersion": 1.3},
        principal={"AWS": principal_arn},
    )


def test_raw_bucket_denies_data_reads_to_all_but_the_raw_readers(dev):
    bucket_arn, policy, _ = _raw_documents(dev)
    for action in ("s3:GetObject", "s3:GetObjectVersion"):
        for key in ("churn/incoming/b/part.csv", "churn/_keys/pii-hmac.key", "churn/quarantine/p/e/x.csv"):
            for principal in READERS:
                assert (
                    evaluate([policy], _request(action, f"{bucket_arn}/{key}", principal)) is not Decision.EXPLICIT_DENY
                )
            for principal in OTHERS:
                decision = evaluate([policy], _request(action, f"{bucket_arn}/{key}", principal))
                assert decision is Decision.EXPLICIT_DENY, (action, key, principal)


def test_raw_bucket_deny_leaves_bucket_management_to_cdk_custom_resources(dev):
    """Auto-delete and notification handlers list, delete and configure: never data reads."""
    bucket_arn, policy, _ = _raw_documents(dev)
    handler = f"{ROLE}/flywheel/dev/Flywheel-dev-DataLake-CustomS3AutoDeleteObjects-abc"
    for action, resource in (
        ("s3:ListBucket", bucket_arn),
        ("s3:DeleteObject", f"{bucket_arn}/churn/incoming/b/part.csv"),
        ("s3:PutBucketNotification", bucket_arn),
        ("s3:GetBucketTagging", bucket_arn),
        ("s3:PutObject", f"{bucket_arn}/churn/incoming/b/part.csv"),
    ):
        assert evaluate([policy], _request(action, resource, handler)) is not Decision.EXPLICIT_DENY, action


def _key_request(action, principal_arn):
    """A call by an identity of this account (the key policy names the account principal)."""
    return Request(action, "*", {"aws:PrincipalArn": principal_arn}, principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"})


def test_raw_key_denies_decrypt_to_every_identity_but_the_raw_readers(dev):
    _, _, key_policy = _raw_documents(dev)
    for action in ("kms:Decrypt", "kms:ReEncryptFrom"):
        for principal in READERS:
            request = Request(
                action, "*", {"aws:PrincipalArn": principal}, principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
            )
            assert evaluate([key_policy], request) is not Decision.EXPLICIT_DENY, principal
        for principal in OTHERS[:-2]:
            request = Request(
                action, "*", {"aws:PrincipalArn": principal}, principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
            )
            assert evaluate([key_policy], request) is Decision.EXPLICIT_DENY, (action, principal)
    # Key administration and encryption (ingest writes) stay with the account's IAM policies.
    for action in ("kms:PutKeyPolicy", "kms:GenerateDataKey", "kms:DescribeKey"):
        request = Request(
            action, "*", {"aws:PrincipalArn": OTHERS[4]}, principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
        )
        assert evaluate([key_policy], request).allowed, action


def test_only_the_raw_zone_restricts_reads_by_principal(dev):
    """The other zones hold no PII: no principal-based read deny there (they keep TLS-only; the artifacts
    zone's principal-conditioned *allow* for promotion is tested in test_lifecycle_wiring)."""
    for zone in ZONE_IDS:
        if zone == "Raw":
            continue
        logical_id, _ = _zone_bucket(dev.data_lake, zone)
        for p in dev.data_lake.find_resources("AWS::S3::BucketPolicy").values():
            if p["Properties"]["Bucket"] == {"Ref": logical_id}:
                for stmt in p["Properties"]["PolicyDocument"]["Statement"]:
                    if stmt["Effect"] != "Deny":
                        continue
                    assert "aws:PrincipalArn" not in json.dumps(stmt.get("Condition", {})), zone
