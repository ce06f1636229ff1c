"""Data lake: every zone bucket carries the baseline, with its own key (DESIGN §7)."""

from __future__ import annotations

import pytest

from stacks.components.data_lake import ZONES

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
def test_zone_uses_its_own_kms_key_with_bucket_key(dev, zone):
    _, b = _zone_bucket(dev.data_lake, zone)
    (rule,) = b["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["BucketKeyEnabled"] is True
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
    assert rules["ExpireNoncurrent"]["NoncurrentVersionExpiration"]["NoncurrentDays"] >= 90


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
