"""Security foundation: one assertion per control (DESIGN §7)."""

from __future__ import annotations

from aws_cdk.assertions import Match

from stacks.components.network import ENDPOINT_IDS, VPC_CIDR
from tests.security.iam_eval import Request, evaluate
from tests.security.stage_policies import stack_name, templates_of


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


# The boundary (and the SageMaker guardrails it carries) is evaluated statement by statement in
# tests/security/test_boundary.py.


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
    """CDK's handler strips the default group's rules, and its role can do so through the boundary."""
    t = templates_of(dev)
    sec = stack_name(dev, "Security")
    (vpc_lid,) = dev.security.find_resources("AWS::EC2::VPC")
    (resource,) = dev.security.find_resources("Custom::VpcRestrictDefaultSG").values()
    assert resource["Properties"]["DefaultSecurityGroupId"] == {"Fn::GetAtt": [vpc_lid, "DefaultSecurityGroup"]}
    handler = t.resource(sec, resource["Properties"]["ServiceToken"]["Fn::GetAtt"][0])
    role = t.role(sec, handler["Properties"]["Role"]["Fn::GetAtt"][0])
    group = t.get_att(sec, vpc_lid, "DefaultSecurityGroup")
    arn = f"arn:aws:ec2:eu-west-1:111111111111:security-group/{group}"
    context = {"ec2:Vpc": f"arn:aws:ec2:eu-west-1:111111111111:vpc/{t.ref(sec, vpc_lid)}"}
    for action in (
        "ec2:RevokeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupEgress",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:AuthorizeSecurityGroupEgress",
    ):
        assert role.can(Request(action, arn, context)).allowed, f"the handler's role cannot {action}"


def _endpoint_policy(stage, endpoint_type):
    t = templates_of(stage)
    sec = stack_name(stage, "Security")
    return {
        lid: t.resolve(sec, res["Properties"]["PolicyDocument"])
        for lid, res in t.templates[sec]["Resources"].items()
        if res["Type"] == "AWS::EC2::VPCEndpoint" and res["Properties"]["VpcEndpointType"] == endpoint_type
    }


def _via(policy, action, resource, account):
    context = {"aws:PrincipalAccount": account, "aws:ResourceAccount": resource_account(resource, account)}
    principal = {"AWS": f"arn:aws:iam::{account}:role/flywheel/dev/job"}
    return evaluate([policy], Request(action, resource, context, principal)).allowed


def resource_account(resource, account):
    """Buckets named ``foreign-*`` belong to another account in these tests."""
    return "999999999999" if ":::foreign-" in resource else account


def test_s3_gateway_endpoint_reaches_only_lake_asset_and_image_buckets(stages):
    for stage in stages.values():
        env = stage.environment
        (policy,) = _endpoint_policy(stage, "Gateway").values()
        t = templates_of(stage)
        lake = stack_name(stage, "DataLake")
        buckets = [t.ref(lake, lid) for lid in stage.data_lake.find_resources("AWS::S3::Bucket")]
        assert len(buckets) == 7
        for bucket in buckets:
            assert _via(policy, "s3:GetObject", f"arn:aws:s3:::{bucket}/k", env.account), bucket
            assert _via(policy, "s3:ListBucket", f"arn:aws:s3:::{bucket}", env.account), bucket
        assets = f"cdk-hnb659fds-assets-{env.account}-{env.region}"
        assert _via(policy, "s3:GetObject", f"arn:aws:s3:::{assets}/code.tar.gz", env.account)
        assert _via(policy, "s3:GetObject", f"arn:aws:s3:::prod-{env.region}-starport-layer-bucket/l", env.account)
        assert not _via(policy, "s3:PutObject", f"arn:aws:s3:::prod-{env.region}-starport-layer-bucket/l", env.account)
        # exfiltration: another bucket, a look-alike bucket of another account, another account's principal
        assert not _via(policy, "s3:PutObject", "arn:aws:s3:::attacker-bucket/x", env.account)
        assert not _via(policy, "s3:PutObject", f"arn:aws:s3:::foreign-{buckets[0]}/x", env.account)
        assert not _via(policy, "s3:GetObject", f"arn:aws:s3:::{buckets[0]}/k", "999999999999")
        # the buckets really get generated names under the lake stack's name (the pattern relies on it)
        for lid in stage.data_lake.find_resources("AWS::S3::Bucket"):
            assert "BucketName" not in stage.data_lake.find_resources("AWS::S3::Bucket")[lid]["Properties"]
        assert len(lake) <= 30, "CloudFormation would truncate the stack-name part of generated bucket names"


def test_interface_endpoints_serve_this_accounts_principals_only(stages):
    for stage in stages.values():
        policies = _endpoint_policy(stage, "Interface")
        assert len(policies) == len(stage.environment.interface_endpoints)
        for lid, policy in policies.items():
            assert _via(policy, "sagemaker:CreateProcessingJob", "*", stage.environment.account), lid
            assert not _via(policy, "sagemaker:CreateProcessingJob", "*", "999999999999"), lid


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


def test_s3_gateway_endpoint_admits_the_promotion_sources_artifacts_for_later_environments(stages):
    from fnmatch import fnmatch

    from config.loader import load_config
    from stacks.stage import artifacts_bucket_pattern

    source = load_config().environments[0]
    pattern = artifacts_bucket_pattern(source.name)
    # the pattern matches the source's real (generated) artifacts bucket name: <lake stack>-<logical id>-<suffix>
    dev = stages[source.name]
    (artifacts,) = [lid for lid in dev.data_lake.find_resources("AWS::S3::Bucket") if lid.startswith("LakeArtifacts")]
    assert fnmatch(f"{stack_name(dev, 'DataLake')}-{artifacts}-a1b2c3d4e5f6".lower(), pattern)
    others = [lid for lid in dev.data_lake.find_resources("AWS::S3::Bucket") if lid != artifacts]
    assert not any(fnmatch(f"{stack_name(dev, 'DataLake')}-{lid}-a1b2".lower(), pattern) for lid in others)
    bucket = pattern.replace("*", "a1b2c3d4")
    for stage in stages.values():
        env = stage.environment
        (policy,) = _endpoint_policy(stage, "Gateway").values()

        def via(action, resource, principal_account, resource_account, policy=policy, env=env):
            context = {"aws:PrincipalAccount": principal_account, "aws:ResourceAccount": resource_account}
            principal = {"AWS": f"arn:aws:iam::{principal_account}:role/flywheel/{env.name}/model/m"}
            return evaluate([policy], Request(action, resource, context, principal)).allowed

        obj = f"arn:aws:s3:::{bucket}/flywheel-{source.name}-churn-tabular/run/model.tar.gz"
        if env.account == source.account:
            assert not via("s3:GetObject", obj, env.account, "999999999999")
            continue
        assert via("s3:GetObject", obj, env.account, source.account)
        assert not via("s3:PutObject", obj, env.account, source.account)  # read only
        assert not via("s3:GetObject", obj, env.account, "999999999999")  # a look-alike bucket elsewhere
        assert not via("s3:GetObject", obj, "999999999999", source.account)  # another account's principal
