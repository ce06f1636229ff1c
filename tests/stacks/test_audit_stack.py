"""Audit trail: KMS, validation, CloudWatch Logs, data events on every lake bucket, locked bucket."""

from __future__ import annotations

import json


def _trail(stage):
    (trail,) = stage.audit.find_resources("AWS::CloudTrail::Trail").values()
    return trail["Properties"]


def test_trail_is_encrypted_validated_and_multi_region(dev):
    props = _trail(dev)
    assert props["EnableLogFileValidation"] is True
    assert props["IsMultiRegionTrail"] is True and props["IncludeGlobalServiceEvents"] is True
    assert props["KMSKeyId"]["Fn::GetAtt"][0].startswith("AuditTrailKey")


def test_trail_sends_to_encrypted_cloudwatch_logs(dev):
    props = _trail(dev)
    assert props["CloudWatchLogsLogGroupArn"]["Fn::GetAtt"][0].startswith("AuditTrailLogs")
    (group,) = dev.audit.find_resources("AWS::Logs::LogGroup").values()
    assert "KmsKeyId" in group["Properties"]


def test_trail_data_events_cover_every_lake_bucket(dev):
    values = [
        json.dumps(value)
        for sel in _trail(dev)["EventSelectors"]
        for res in sel.get("DataResources", [])
        if res["Type"] == "AWS::S3::Object"
        for value in res["Values"]
    ]
    zone_buckets = [k for k in dev.data_lake.find_resources("AWS::S3::Bucket") if not k.startswith("LakeAccessLogs")]
    assert len(zone_buckets) == len(dev.stage.data_lake.lake.buckets) == 6
    for logical_id in zone_buckets:
        assert any(logical_id in v and v.endswith('"/"]]}') for v in values), f"no data events for {logical_id}"


def test_trail_bucket_has_object_lock_and_kms(dev):
    buckets = dev.audit.find_resources("AWS::S3::Bucket")
    (b,) = buckets.values()
    assert b["Properties"]["ObjectLockEnabled"] is True
    rule = b["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"


def test_trail_key_admits_cloudtrail_for_this_account_only(dev):
    (key,) = dev.audit.find_resources("AWS::KMS::Key").values()
    (stmt,) = [
        s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "AllowCloudTrailEncryptThisAccount"
    ]
    assert stmt["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    assert stmt["Condition"]["StringEquals"]["aws:SourceAccount"] == "111111111111"
