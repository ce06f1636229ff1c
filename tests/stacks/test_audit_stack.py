"""Audit trail: KMS, validation, CloudWatch Logs, data events on every lake bucket, locked bucket."""

from __future__ import annotations

from tests.security.stage_policies import stack_name, templates_of


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


def test_trail_data_events_cover_every_lake_bucket(stages):
    """Read and write data events on every object of every zone bucket (resolved ARNs, not ids)."""
    for stage in stages.values():
        t = templates_of(stage)
        audit, lake = stack_name(stage, "Audit"), stack_name(stage, "DataLake")
        selected: set[str] = set()
        for selector in _trail(stage)["EventSelectors"]:
            for res in selector.get("DataResources", []):
                assert res["Type"] == "AWS::S3::Object"
                assert selector["ReadWriteType"] == "All", "reads of lake data must be logged too"
                selected |= {t.resolve(audit, v) for v in res["Values"]}
        zone_buckets = [
            k for k in stage.data_lake.find_resources("AWS::S3::Bucket") if not k.startswith("LakeAccessLogs")
        ]
        assert len(zone_buckets) == len(stage.stage.data_lake.lake.buckets) == 6
        assert selected == {f"arn:aws:s3:::{t.ref(lake, lid)}/" for lid in zone_buckets}


def test_trail_logs_management_events_read_and_write(dev):
    selectors = _trail(dev)["EventSelectors"]
    assert selectors and all(s["IncludeManagementEvents"] is True and s["ReadWriteType"] == "All" for s in selectors)


def test_trail_bucket_lock_is_compliance_in_prod_governance_elsewhere(stages):
    for name, stage in stages.items():
        (b,) = stage.audit.find_resources("AWS::S3::Bucket").values()
        retention = b["Properties"]["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
        assert retention["Mode"] == ("COMPLIANCE" if stage.environment.is_production else "GOVERNANCE"), name
        assert retention["Days"] == stage.environment.object_lock_days
    assert stages["prod"].environment.is_production and not stages["staging"].environment.is_production


def test_trail_log_group_is_named_under_the_protected_audit_prefix(stages):
    from stacks.components.guardrails import audit_log_group_name

    for stage in stages.values():
        (group,) = stage.audit.find_resources("AWS::Logs::LogGroup").values()
        assert group["Properties"]["LogGroupName"] == audit_log_group_name(stage.environment.name, "cloudtrail")


def test_trail_key_admits_cloudtrail_for_this_account_only(dev):
    (key,) = dev.audit.find_resources("AWS::KMS::Key").values()
    (stmt,) = [
        s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "AllowCloudTrailEncryptThisAccount"
    ]
    assert stmt["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    assert stmt["Condition"]["StringEquals"]["aws:SourceAccount"] == "111111111111"
