"""Security foundation: one assertion per control (DESIGN §7)."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from stacks.components.network import ENDPOINT_IDS, VPC_CIDR


def test_every_key_rotates(dev):
    keys = dev.security.find_resources("AWS::KMS::Key")
    assert keys, "security stack should create purpose keys"
    assert all(k["Properties"]["EnableKeyRotation"] is True for k in keys.values())


def test_key_policies_have_no_star_principal(stages):
    for stage in stages.values():
        for template in stage.templates().values():
            for key in template.find_resources("AWS::KMS::Key").values():
                for stmt in key["Properties"]["KeyPolicy"]["Statement"]:
                    principal = stmt.get("Principal")
                    assert principal != "*" and principal != {"AWS": "*"}, stmt


def test_logs_key_admits_cloudwatch_logs_only_for_this_account(dev):
    keys = dev.security.find_resources("AWS::KMS::Key", {"Properties": {"Description": "Flywheel CloudWatch Logs key"}})
    (key,) = keys.values()
    (stmt,) = [
        s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "AllowCloudWatchLogsInThisAccount"
    ]
    assert stmt["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert "kms:EncryptionContext:aws:logs:arn" in stmt["Condition"]["ArnLike"]


def test_boundary_denies_escalation_and_tampering(dev):
    (policy,) = dev.security.find_resources(
        "AWS::IAM::ManagedPolicy", {"Properties": {"ManagedPolicyName": "flywheel-boundary-dev"}}
    ).values()
    sids = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    for sid in (
        "DenyIdentityEscalation",
        "DenyBoundaryTampering",
        "DenyRemovingBoundaryFromRoles",
        "DenyAuditAndKeyTampering",
    ):
        assert sids[sid]["Effect"] == "Deny"
    assert "cloudtrail:StopLogging" in sids["DenyAuditAndKeyTampering"]["Action"]
    assert "kms:ScheduleKeyDeletion" in sids["DenyAuditAndKeyTampering"]["Action"]
    # overwriting the TLS-only bucket policy is as bad as deleting it
    assert {"s3:PutBucketPolicy", "s3:DeleteBucketPolicy"} <= set(sids["DenyAuditAndKeyTampering"]["Action"])


def _guardrail_statements(template):
    (policy,) = template.find_resources(
        "AWS::IAM::ManagedPolicy",
        {"Properties": {"Description": Match.string_like_regexp("^Deny SageMaker compute")}},
    ).values()
    return {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


def test_guardrail_denies_jobs_without_volume_and_output_keys(dev):
    s = _guardrail_statements(dev.security)
    assert s["DenyJobsWithoutVolumeKmsKey"]["Condition"] == {"Null": {"sagemaker:VolumeKmsKey": "true"}}
    assert "sagemaker:CreateEndpointConfig" in s["DenyJobsWithoutVolumeKmsKey"]["Action"]
    assert s["DenyJobsWithoutOutputKmsKey"]["Condition"] == {"Null": {"sagemaker:OutputKmsKey": "true"}}
    for action in (
        "sagemaker:CreateProcessingJob",
        "sagemaker:CreateTrainingJob",
        "sagemaker:CreateTransformJob",
    ):
        assert action in s["DenyJobsWithoutOutputKmsKey"]["Action"]


def test_guardrail_denies_jobs_and_models_outside_vpc(dev):
    s = _guardrail_statements(dev.security)["DenyJobsAndModelsOutsideVpc"]
    assert s["Effect"] == "Deny" and s["Condition"] == {"Null": {"sagemaker:VpcSubnets": "true"}}
    assert "sagemaker:CreateModel" in s["Action"]


def _condition_matches(condition: dict, request: dict) -> bool:
    """IAM semantics for the operators the guardrails use (all keys must match)."""
    for operator, tests in condition.items():
        for key, expected in tests.items():
            present = key in request
            if operator == "Null":
                if (not present) != (expected == "true"):
                    return False
            elif operator == "Bool":
                if not present or str(request[key]).lower() != expected:
                    return False
            elif operator == "BoolIfExists":
                if present and str(request[key]).lower() != expected:
                    return False
            else:
                raise AssertionError(f"evaluator does not know {operator}")
    return True


def _denied(statements: dict, action: str, request: dict) -> list[str]:
    return [
        sid
        for sid, stmt in statements.items()
        if stmt["Effect"] == "Deny" and action in stmt["Action"] and _condition_matches(stmt["Condition"], request)
    ]


COMPLIANT_JOB = {
    "sagemaker:VolumeKmsKey": "arn:aws:kms:eu-west-1:111111111111:key/1",
    "sagemaker:OutputKmsKey": "arn:aws:kms:eu-west-1:111111111111:key/1",
    "sagemaker:VpcSubnets": ["subnet-1"],
    "sagemaker:NetworkIsolation": True,
    "sagemaker:InterContainerTrafficEncryption": True,
}


def test_guardrails_allow_a_compliant_job(dev):
    s = _guardrail_statements(dev.security)
    for action in ("sagemaker:CreateTrainingJob", "sagemaker:CreateProcessingJob"):
        assert _denied(s, action, COMPLIANT_JOB) == []


@pytest.mark.parametrize("missing", sorted(COMPLIANT_JOB))
def test_guardrails_deny_a_job_that_omits_any_control(dev, missing):
    """Omitting a setting must be denied, not only setting it off: the API defaults are insecure."""
    s = _guardrail_statements(dev.security)
    request = {k: v for k, v in COMPLIANT_JOB.items() if k != missing}
    assert _denied(s, "sagemaker:CreateTrainingJob", request), f"a training job without {missing} is allowed"


@pytest.mark.parametrize("key", ["sagemaker:NetworkIsolation", "sagemaker:InterContainerTrafficEncryption"])
def test_guardrails_deny_a_job_that_turns_a_control_off(dev, key):
    s = _guardrail_statements(dev.security)
    assert _denied(s, "sagemaker:CreateProcessingJob", {**COMPLIANT_JOB, key: False})


def test_guardrails_do_not_block_transform_jobs_for_a_key_they_lack(dev):
    s = _guardrail_statements(dev.security)
    transform = {k: COMPLIANT_JOB[k] for k in ("sagemaker:VolumeKmsKey", "sagemaker:OutputKmsKey")}
    assert _denied(s, "sagemaker:CreateTransformJob", transform) == []


def test_boundary_carries_the_sagemaker_guardrails(dev):
    (policy,) = dev.security.find_resources(
        "AWS::IAM::ManagedPolicy", {"Properties": {"ManagedPolicyName": "flywheel-boundary-dev"}}
    ).values()
    sids = {s.get("Sid") for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert set(_guardrail_statements(dev.security)) <= sids


def test_vpc_has_no_internet_path(stages):
    for stage in stages.values():
        t = stage.security
        t.resource_count_is("AWS::EC2::InternetGateway", 0)
        t.resource_count_is("AWS::EC2::NatGateway", 0)
        subnets = t.find_resources("AWS::EC2::Subnet")
        assert len(subnets) == stage.environment.max_azs
        assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets.values())


def test_interface_endpoints_follow_config(stages):
    for stage in stages.values():
        endpoints = stage.security.find_resources(
            "AWS::EC2::VPCEndpoint", {"Properties": {"VpcEndpointType": "Interface"}}
        )
        assert len(endpoints) == len(stage.environment.interface_endpoints)
        ids = "".join(endpoints)
        for name in stage.environment.interface_endpoints:
            assert ENDPOINT_IDS[name] in ids
        assert all(e["Properties"]["PrivateDnsEnabled"] is True for e in endpoints.values())


def test_s3_gateway_endpoint_exists(dev):
    dev.security.has_resource_properties("AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Gateway"})


def test_endpoint_security_group_admits_https_from_vpc_only(dev):
    dev.security.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": "HTTPS from inside the VPC to the interface endpoints",
            "SecurityGroupIngress": [Match.object_like({"CidrIp": VPC_CIDR, "FromPort": 443, "ToPort": 443})],
        },
    )


def test_flow_logs_go_to_encrypted_log_group(dev):
    dev.security.has_resource_properties(
        "AWS::EC2::FlowLog", {"TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"}
    )
    groups = dev.security.find_resources("AWS::Logs::LogGroup")
    assert groups and all(
        "KmsKeyId" in g["Properties"] and g["Properties"]["RetentionInDays"] == 30 for g in groups.values()
    )


def test_default_security_group_is_closed(dev):
    dev.security.resource_count_is("Custom::VpcRestrictDefaultSG", 1)


def test_endpoints_are_configurable_down_to_none():
    from aws_cdk import App
    from aws_cdk.assertions import Template

    from config.models import EnvironmentConfig
    from stacks import cdk_json_context
    from stacks.stage import FlywheelStage

    env = EnvironmentConfig(
        name="lean",
        account="444444444444",
        region="us-east-1",
        max_azs=1,
        interface_endpoints=(),
        trail=False,
    )
    stage = FlywheelStage(App(context=cdk_json_context()), "Lean", environment=env, teams=())
    t = Template.from_stack(stage.security)
    t.resource_count_is("AWS::EC2::VPCEndpoint", 1)  # the free S3 gateway only
    assert stage.audit is None


def test_prod_spans_three_azs_dev_one(stages):
    assert len(stages["prod"].security.find_resources("AWS::EC2::Subnet")) == 3
    assert len(stages["dev"].security.find_resources("AWS::EC2::Subnet")) == 1
