"""The lifecycle Lambdas as synthesized in every team stack: rules, DLQs, functions, logs, env, IAM, promotion."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import os
import re
import zipfile

import pytest
from aws_cdk import App, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Template

from config.loader import load_config
from lambdas.data_arrival.config import ArrivalConfig
from lambdas.deploy.config import DeployConfig
from naming import ZONES, Names
from pipelines import load_template
from stacks import PROJECT_ROOT, cdk_json_context
from stacks.components.lambda_package import (
    POWERTOOLS_LAYER_VERSION,
    POWERTOOLS_RELEASE,
    package_bytes,
    package_files,
    powertools_layer_arn,
)
from stacks.components.lifecycle import LifecycleProps, PromotionConsumer, rollback_alarm_names
from stacks.components.ml_team import MlTeam, TeamPipeline
from tests.security.iam_eval import Request, evaluate
from tests.security.stage_policies import stack_name, templates_of

TEAMS = ("churn", "diagnostics")
#: The handler modules, imported at collection (the Tracer's X-Ray emitter opens its UDP socket at import,
#: before pytest-socket blocks sockets; tracing is disabled as in tests/lambdas).
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
HANDLERS = {
    "data_arrival": importlib.import_module("lambdas.data_arrival.handler"),
    "deploy": importlib.import_module("lambdas.deploy.handler"),
}


def _team(stage, team):
    return stage.teams[team].to_json()["Resources"]


def _of(resources, kind, prefix):
    return {k: v for k, v in resources.items() if v["Type"] == kind and k.startswith(prefix)}


def _one(resources, kind, prefix):
    ((lid, res),) = _of(resources, kind, prefix).items()
    return lid, res


def _function(stage, team, which):
    return _one(_team(stage, team), "AWS::Lambda::Function", f"TeamLifecycle{which}Function")


# -- rules ------------------------------------------------------------------------------------------------


def _rules(stage, team):
    t = templates_of(stage)
    stack = stack_name(stage, f"Team-{team}")
    return {
        lid: t.resolve(stack, res["Properties"])
        for lid, res in _of(_team(stage, team), "AWS::Events::Rule", "TeamLifecycle").items()
    }


@pytest.mark.parametrize("team", TEAMS)
def test_rules_match_exactly_the_teams_events(dev, team):
    names = Names("dev")
    raw = templates_of(dev).resolve(stack_name(dev, f"Team-{team}"), {"Fn::ImportValue": names.bucket_export("raw")})
    patterns = {
        lid.split("Rule")[0].removeprefix("TeamLifecycle"): r["EventPattern"] for lid, r in _rules(dev, team).items()
    }
    assert patterns["DataArrival"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [raw]}, "object": {"key": [{"prefix": f"{team}/incoming/"}]}},
    }
    assert patterns["Approval"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": [names.model_package_group(team)]},
    }
    assert patterns["Rollout"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Endpoint Deployment State Change"],
        "detail": {"EndpointName": [names.endpoint(team)]},
    }
    # every rule delivers with retries, then to a KMS-encrypted DLQ
    for rule in _rules(dev, team).values():
        (target,) = rule["Targets"]
        assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
        assert target["DeadLetterConfig"]["Arn"]


def test_production_deploys_only_promoted_packages(prod):
    rules = _rules(prod, "churn")
    patterns = [r["EventPattern"] for r in rules.values()]
    assert not any(p["detail-type"] == ["SageMaker Model Package State Change"] for p in patterns)
    (promotion,) = [p for p in patterns if p["source"] == ["flywheel.promotion"]]
    assert promotion == {
        "source": ["flywheel.promotion"],
        "detail-type": ["Model Promotion Approved"],
        "account": [prod.environment.account],
        "detail": {"ModelPackageGroupName": ["flywheel-prod-churn"]},
    }


def test_production_accepts_promotions_of_the_source_environments_packages_only(stages):
    config = load_config()
    source = config.environments[0]
    for stage in stages.values():
        for team in TEAMS:
            deploy = DeployConfig.from_environ(_environment(stage, team, "Deploy"))
            if not stage.environment.is_production:
                assert deploy.source_accounts == ()  # no promotion rule, and promotions would be refused
                continue
            assert deploy.source_accounts == (source.account,)
            assert deploy.source_group_name == Names(source.name).model_package_group(team)
            role = _role(stage, team, "TeamLifecycleDeployRole")
            region = stage.environment.region
            dev_package = f"arn:aws:sagemaker:{region}:{source.account}:model-package/{deploy.source_group_name}/7"
            assert role.can(Request("sagemaker:DescribeModelPackage", dev_package)).allowed
            other = "diagnostics" if team == "churn" else "churn"
            foreign = dev_package.replace(f"-{team}/", f"-{other}/")
            assert not role.can(Request("sagemaker:DescribeModelPackage", foreign)).allowed
            stranger = dev_package.replace(source.account, "999999999999")
            assert not role.can(Request("sagemaker:DescribeModelPackage", stranger)).allowed


def test_later_environments_model_roles_read_the_sources_artifacts_only(stages):
    from stacks.stage import artifacts_bucket_pattern

    source = load_config().environments[0]
    bucket = artifacts_bucket_pattern(source.name).replace("*", "a1b2c3d4")
    for stage in stages.values():
        env = stage.environment
        region = env.region
        for team in TEAMS:
            role = _role(stage, team, "TeamLifecycleModelRole")
            key = f"arn:aws:kms:{region}:{source.account}:key/0b1c2d3e-1234-4abc-9def-0123456789ab"
            obj = f"arn:aws:s3:::{bucket}/{Names(source.name).pipeline(team, 'tabular')}/run-1/model.tar.gz"
            in_source = {"aws:ResourceAccount": source.account}
            via_s3 = {"kms:ViaService": f"s3.{region}.amazonaws.com", "kms:EncryptionContext:aws:s3:arn": obj}
            if env.account == source.account:
                assert not role.can(Request("kms:Decrypt", key.replace(source.account, "999999999999"), via_s3)).allowed
                continue
            assert role.can(Request("s3:GetObject", obj, in_source)).allowed
            assert role.can(Request("kms:Decrypt", key, via_s3)).allowed
            # only the team's own pipelines, only the source account, only through S3 for that bucket
            other = "diagnostics" if team == "churn" else "churn"
            other_obj = obj.replace(f"-{team}-", f"-{other}-")
            assert not role.can(Request("s3:GetObject", other_obj, in_source)).allowed
            assert not role.can(Request("s3:GetObject", obj, {"aws:ResourceAccount": "999999999999"})).allowed
            assert not role.can(Request("kms:Decrypt", key, {**via_s3, "kms:ViaService": "sqs.x"})).allowed
            raw = f"arn:aws:s3:::flywheel-{source.name}-datalake-lakerawbucket1-x/{team}/incoming/a.csv"
            assert not role.can(
                Request("kms:Decrypt", key, {**via_s3, "kms:EncryptionContext:aws:s3:arn": raw})
            ).allowed
            assert not role.can(Request("kms:Decrypt", key.replace(source.account, "999999999999"), via_s3)).allowed


def test_raw_bucket_alone_sends_eventbridge_events_without_a_custom_resource(dev):
    buckets = dev.data_lake.find_resources("AWS::S3::Bucket")
    enabled = [lid for lid, b in buckets.items() if b["Properties"].get("NotificationConfiguration")]
    assert enabled == [lid for lid in buckets if lid.startswith("LakeRawBucket")]
    (raw,) = enabled
    assert buckets[raw]["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    assert not dev.data_lake.find_resources("Custom::S3BucketNotifications")


# -- functions, queues, logs ------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["DataArrival", "Deploy"])
def test_functions_follow_the_lambda_baseline(stages, which):
    for stage in stages.values():
        for team in TEAMS:
            resources = _team(stage, team)
            lid, fn = _function(stage, team, which)
            props = fn["Properties"]
            assert props["Runtime"] == "python3.14" and props["Architectures"] == ["arm64"]
            assert props["MemorySize"] >= 128 and 3 <= props["Timeout"] <= 900
            assert stage.environment.lambda_reserved_concurrency and props["ReservedConcurrentExecutions"] >= 1
            assert props["TracingConfig"] == {"Mode": "Active"}
            version = stage.environment.powertools_layer_version or POWERTOOLS_LAYER_VERSION
            assert props["Layers"] == [powertools_layer_arn(stage.environment.region, version=version)]
            assert (
                props["Handler"]
                == f"lambdas.{'data_arrival' if which == 'DataArrival' else 'deploy'}.handler.lambda_handler"
            )
            # async failures: the function's DLQ and on-failure destination, a KMS queue with a depth alarm
            queue_lid = props["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0]
            queue = resources[queue_lid]["Properties"]
            assert "KmsMasterKeyId" in queue
            (config,) = [r for r in resources.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"
                         and r["Properties"]["FunctionName"] == {"Ref": lid}]  # fmt: skip
            assert config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"] == {
                "Fn::GetAtt": [queue_lid, "Arn"]
            }
            depth = [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_lid, "QueueName"]}}]
            alarms = [a["Properties"] for a in resources.values() if a["Type"] == "AWS::CloudWatch::Alarm"
                      and a["Properties"].get("Dimensions") == depth]  # fmt: skip
            assert [(a["MetricName"], a["Threshold"], a["ComparisonOperator"]) for a in alarms] == [
                ("ApproximateNumberOfMessagesVisible", 0, "GreaterThanThreshold")
            ]
            assert alarms[0]["AlarmActions"]
            # logs: KMS and the environment's retention
            group_lid = props["LoggingConfig"]["LogGroup"]["Ref"]
            group = resources[group_lid]["Properties"]
            assert "KmsKeyId" in group and group["RetentionInDays"] == stage.environment.log_retention_days
            # no public invoke: no URL; only EventBridge, per rule
            assert not [r for r in resources.values() if r["Type"] == "AWS::Lambda::Url"]
            permissions = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"
                           and r["Properties"]["FunctionName"] == {"Fn::GetAtt": [lid, "Arn"]}]  # fmt: skip
            assert permissions
            for permission in permissions:
                assert permission["Principal"] == "events.amazonaws.com"
                assert permission["SourceArn"]["Fn::GetAtt"][1] == "Arn"


@pytest.mark.parametrize("team", TEAMS)
def test_lifecycle_table_is_encrypted_expiring_and_recoverable(dev, team):
    _, table = _one(_team(dev, team), "AWS::DynamoDB::Table", "TeamLifecycleStore")
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True and props["SSESpecification"]["SSEType"] == "KMS"


# -- environment: what the handlers' own parsers accept ---------------------------------------------------


def _environment(stage, team, which):
    t = templates_of(stage)
    _, fn = _function(stage, team, which)
    env = t.resolve(stack_name(stage, f"Team-{team}"), fn["Properties"]["Environment"]["Variables"])

    # the evaluator's placeholders for VPC ids are not hex; CloudFormation's are
    def hexed(match: re.Match[str]) -> str:
        return f"{match[1]}-{hashlib.sha1(match[0].encode()).hexdigest()[:17]}"

    out = {k: re.sub(r"\b(subnet|sg)-[a-z0-9]+", hexed, v) for k, v in env.items()}
    # CloudFormation keeps generated bucket names within S3's 63 characters; the placeholders do not
    return {k: v[:63] if k.endswith("_BUCKET") else v for k, v in out.items()}


@pytest.mark.parametrize("team", TEAMS)
def test_every_variable_the_handlers_read_is_set_and_valid(stages, team):
    for stage in stages.values():
        arrival = ArrivalConfig.from_environ(_environment(stage, team, "DataArrival"))
        assert arrival.pipeline_name == Names(stage.environment.name).pipeline(team, "tabular")
        assert arrival.complete_marker == "_SUCCESS" and arrival.account_id == stage.environment.account
        env = _environment(stage, team, "Deploy")
        deploy = DeployConfig.from_environ(env)
        config_team = load_config().team(team)
        assert deploy.deploy_target == config_team.deploy_target
        assert deploy.min_instances == stage.environment.endpoint_min_instances
        assert deploy.min_instances >= (2 if stage.environment.is_production else 1)
        if deploy.deploy_target == "realtime":
            assert deploy.rollback_alarms == rollback_alarm_names(deploy.endpoint_name)
        for name in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"):
            assert env[name]


def test_rollback_alarms_exist_under_the_names_the_deploy_function_gets(dev):
    resources = _team(dev, "churn")
    alarms = {a["Properties"].get("AlarmName"): a["Properties"] for a in resources.values()
              if a["Type"] == "AWS::CloudWatch::Alarm"}  # fmt: skip
    errors, latency = rollback_alarm_names("flywheel-dev-churn")
    assert alarms[errors]["MetricName"] == "Invocation5XXErrors" and alarms[errors]["Namespace"] == "AWS/SageMaker"
    assert alarms[latency]["MetricName"] == "ModelLatency" and alarms[latency]["Threshold"] >= 100_000  # µs
    every = [a["Properties"] for a in resources.values() if a["Type"] == "AWS::CloudWatch::Alarm"]
    counted = sorted(a["MetricName"] for a in every if a.get("Namespace") == "Flywheel")
    assert counted == ["DependencyAccessDenied", "DependencyAccessDenied", "DeploymentRefused", "RolloutRolledBack"]
    assert all(a.get("AlarmActions") for a in every)
    # a serverless team has no endpoint alarms to roll back on
    names = {a["Properties"].get("AlarmName") for a in _team(dev, "diagnostics").values()}
    assert not set(rollback_alarm_names("flywheel-dev-diagnostics")) & names


def _emitted_dimensions(which: str, environment: dict[str, str]) -> tuple[str, dict[str, str]]:
    """``(namespace, dimensions)`` of a metric the handler emits when configured with ``environment``."""
    module = HANDLERS[which]
    module.configure(environment)
    try:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            module.metrics.add_metric(name="Probe", unit="Count", value=1)
            module.metrics.flush_metrics()
    finally:
        module.configure({})
    (emf,) = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith('{"_aws"')]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    (names,) = directive["Dimensions"]
    return directive["Namespace"], {name: emf[name] for name in names}


@pytest.mark.parametrize("team", TEAMS)
def test_metric_alarms_match_exactly_the_dimensions_their_handler_emits(stages, team):
    # CloudWatch matches an alarm to a metric only on the exact dimension set: derive it from the handler
    functions = {"data_arrival": "DataArrival", "deploy": "Deploy"}
    for stage in stages.values():
        emitted = {which: _emitted_dimensions(which, _environment(stage, team, fn)) for which, fn in functions.items()}
        alarms = [
            a["Properties"]
            for a in _team(stage, team).values()
            if a["Type"] == "AWS::CloudWatch::Alarm" and a["Properties"].get("Namespace") == "Flywheel"
        ]
        assert len(alarms) == 4
        for alarm in alarms:
            # "<service> counted <metric> (<team>)": the handler whose count the alarm watches
            service = alarm["AlarmDescription"].split()[0]
            (which,) = [w for w, (_, dims) in emitted.items() if dims["service"] == service]
            namespace, dimensions = emitted[which]
            assert alarm["Namespace"] == namespace
            assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == dimensions
            assert dimensions["team"] == team


# -- IAM, evaluated through the boundary -------------------------------------------------------------------


def _role(stage, team, prefix):
    return templates_of(stage).role(stack_name(stage, f"Team-{team}"), prefix)


def test_deploy_role_acts_on_its_own_endpoint_and_passes_only_the_model_role(dev):
    sm = "arn:aws:sagemaker:eu-west-1:111111111111"
    deploy = _role(dev, "churn", "TeamLifecycleDeployRole")
    model = _role(dev, "churn", "TeamLifecycleModelRole")
    key = {"sagemaker:VolumeKmsKey": "k", "sagemaker:VpcSubnets": ["s"], "sagemaker:NetworkIsolation": True}
    assert deploy.can(Request("sagemaker:CreateEndpoint", f"{sm}:endpoint/flywheel-dev-churn")).allowed
    assert deploy.can(Request("sagemaker:UpdateEndpoint", f"{sm}:endpoint/flywheel-dev-churn")).allowed
    assert not deploy.can(Request("sagemaker:CreateEndpoint", f"{sm}:endpoint/flywheel-dev-diagnostics")).allowed
    assert deploy.can(Request("sagemaker:CreateModel", f"{sm}:model/flywheel-dev-churn-v3-0123abcd", key)).allowed
    assert not deploy.can(Request("sagemaker:CreateModel", f"{sm}:model/flywheel-dev-diagnostics-v3-x", key)).allowed
    assert deploy.can(
        Request("sagemaker:CreateEndpointConfig", f"{sm}:endpoint-config/flywheel-dev-churn-v3-x", key)
    ).allowed
    to_sm = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    assert deploy.can(Request("iam:PassRole", model.arn, to_sm)).allowed
    assert not deploy.can(Request("iam:PassRole", model.arn, {"iam:PassedToService": "lambda.amazonaws.com"})).allowed
    # and the role's own policy says so too (not only the boundary): to SageMaker, nowhere else
    to_lambda = {"iam:PassedToService": "lambda.amazonaws.com"}
    assert not evaluate(deploy.identity, Request("iam:PassRole", model.arn, to_lambda)).allowed
    others = [r for r in templates_of(dev).roles() if r.arn != model.arn]
    assert not [r.name for r in others if deploy.can(Request("iam:PassRole", r.arn, to_sm)).allowed]
    assert not deploy.can(Request("sagemaker:UpdateModelPackage", f"{sm}:model-package/flywheel-dev-churn/1")).allowed


def test_data_arrival_starts_only_its_own_pipeline_and_reads_no_raw_data(dev):
    sm = "arn:aws:sagemaker:eu-west-1:111111111111"
    arrival = _role(dev, "churn", "TeamLifecycleDataArrivalRole")
    assert arrival.can(Request("sagemaker:StartPipelineExecution", f"{sm}:pipeline/flywheel-dev-churn-tabular")).allowed
    assert not arrival.can(
        Request("sagemaker:StartPipelineExecution", f"{sm}:pipeline/flywheel-dev-diagnostics-tabular")
    ).allowed
    t = templates_of(dev)
    raw = t.resolve(stack_name(dev, "Team-churn"), {"Fn::ImportValue": Names("dev").bucket_export("raw")})
    assert not arrival.can(Request("s3:GetObject", f"arn:aws:s3:::{raw}/churn/incoming/b/x.csv")).allowed
    assert arrival.can(Request("s3:ListBucket", f"arn:aws:s3:::{raw}", {"s3:prefix": "churn/incoming/b/"})).allowed
    assert not arrival.can(
        Request("s3:ListBucket", f"arn:aws:s3:::{raw}", {"s3:prefix": "diagnostics/incoming/b/"})
    ).allowed


def test_data_arrival_reads_only_its_pipelines_model_artifacts(dev):
    """HeadObject of the champion's artifact before ChampionModelUri: the team pipeline's model keys only."""
    arrival = _role(dev, "churn", "TeamLifecycleDataArrivalRole")
    t = templates_of(dev)
    artifacts = t.resolve(stack_name(dev, "Team-churn"), {"Fn::ImportValue": Names("dev").bucket_export("artifacts")})
    own = "flywheel-dev-churn-tabular"
    model = f"arn:aws:s3:::{artifacts}/{own}/exec-1/model/flywheel-train-abc/output/model.tar.gz"
    assert arrival.can(Request("s3:GetObject", model)).allowed
    for other in (
        model.replace(own, "flywheel-dev-diagnostics-tabular"),  # another team's pipeline
        f"arn:aws:s3:::{artifacts}/{own}/exec-1/baseline/statistics.json",  # not a model key
        f"arn:aws:s3:::{artifacts}/code/churn/abc/contract.json",
        model.replace(artifacts, "someone-elses-bucket"),
    ):
        assert not arrival.can(Request("s3:GetObject", other)).allowed, other
    assert not arrival.can(Request("s3:PutObject", model)).allowed


def test_model_role_is_sagemakers_for_this_account_and_writes_only_its_capture_prefix(dev):
    model = _role(dev, "churn", "TeamLifecycleModelRole")
    t = templates_of(dev)
    capture = t.resolve(stack_name(dev, "Team-churn"), {"Fn::ImportValue": Names("dev").bucket_export("capture")})
    ok = f"arn:aws:s3:::{capture}/datacapture/flywheel-dev-churn/AllTraffic/2026/x.jsonl"
    assert model.can(Request("s3:PutObject", ok)).allowed
    assert not model.can(Request("s3:PutObject", ok.replace("dev-churn", "dev-diagnostics"))).allowed
    sm = {"Service": "sagemaker.amazonaws.com"}
    own = {"aws:SourceAccount": "111111111111", "aws:SourceArn": "arn:aws:sagemaker:eu-west-1:111111111111:model/m"}
    assert evaluate([model.trust], Request("sts:AssumeRole", model.arn, own, sm)).allowed
    assert not evaluate(
        [model.trust], Request("sts:AssumeRole", model.arn, {**own, "aws:SourceAccount": "9" * 12}, sm)
    ).allowed


# -- promotion across accounts -----------------------------------------------------------------------------


def test_promotion_readers_are_exactly_the_other_accounts_deploy_and_model_roles(dev, stages):
    t = templates_of(dev)
    _, group = _one(_team(dev, "churn"), "AWS::SageMaker::ModelPackageGroup", "TeamRegistry")
    policy = t.resolve(stack_name(dev, "Team-churn"), group["Properties"]["ModelPackageGroupPolicy"])
    package = "arn:aws:sagemaker:eu-west-1:111111111111:model-package/flywheel-dev-churn/4"

    def reads(role_arn, action="sagemaker:DescribeModelPackage", resource=package):
        account = role_arn.split(":")[4]
        who = {"AWS": f"arn:aws:iam::{account}:root"}
        return evaluate([policy], Request(action, resource, {"aws:PrincipalArn": role_arn}, who)).allowed

    assert reads("arn:aws:iam::222222222222:role/flywheel/staging/deploy/fn-role")
    assert reads("arn:aws:iam::333333333333:role/flywheel/prod/deploy/fn-role")
    assert not reads("arn:aws:iam::333333333333:role/flywheel/prod/model/r")  # not a deploy role
    assert not reads("arn:aws:iam::333333333333:role/Admin")
    assert not reads("arn:aws:iam::444444444444:role/flywheel/prod/deploy/r")
    assert not reads("arn:aws:iam::333333333333:role/flywheel/prod/deploy/r", "sagemaker:UpdateModelPackage")
    # artifacts: the bucket (lake stack) and the team's job key admit the consumers' model roles, read only
    lake = stack_name(dev, "DataLake")
    bucket_lid = t.exports[Names("dev").bucket_export("artifacts")][1]["Ref"]
    lake_resources = t.templates[lake]["Resources"].values()
    policies = [r["Properties"] for r in lake_resources if r["Type"] == "AWS::S3::BucketPolicy"]
    (bucket_policy,) = [t.resolve(lake, p["PolicyDocument"]) for p in policies if p["Bucket"] == {"Ref": bucket_lid}]
    artifacts = t.ref(lake, bucket_lid)
    model_key = f"arn:aws:s3:::{artifacts}/flywheel-dev-churn-tabular/exec/model.tar.gz"
    prod_model = "arn:aws:iam::333333333333:role/flywheel/prod/model/r"

    def bucket_allows(role_arn, action="s3:GetObject", resource=model_key):
        who = {"AWS": f"arn:aws:iam::{role_arn.split(':')[4]}:root"}
        context = {"aws:PrincipalArn": role_arn, "aws:SecureTransport": True}
        return evaluate([bucket_policy], Request(action, resource, context, who)).allowed

    assert bucket_allows(prod_model)
    assert not bucket_allows("arn:aws:iam::333333333333:role/flywheel/prod/deploy/r")
    assert not bucket_allows(prod_model, "s3:PutObject")
    assert not bucket_allows(prod_model, resource=f"arn:aws:s3:::{artifacts}/flywheel-dev-other-tabular/x")
    # later environments grant nothing across accounts
    for name in ("staging", "prod"):
        _, group = _one(_team(stages[name], "churn"), "AWS::SageMaker::ModelPackageGroup", "TeamRegistry")
        assert "ModelPackageGroupPolicy" not in group["Properties"]


# -- packaging and the bare construct -----------------------------------------------------------------------


def test_packages_are_reproducible_and_hold_only_lambdas_and_naming():
    for handler in ("data_arrival", "deploy"):
        assert package_bytes(handler) == package_bytes(handler)
        files = package_files(handler)
        assert "naming/__init__.py" in files and f"lambdas/{handler}/handler.py" in files
        assert all(f.startswith(("lambdas/", "naming/")) for f in files)
        other = "deploy" if handler == "data_arrival" else "data_arrival"
        assert not [f for f in files if f.startswith(f"lambdas/{other}/") or "__pycache__" in f]
        with zipfile.ZipFile(io.BytesIO(package_bytes(handler))) as archive:
            assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_ml_team_with_lifecycle_on_a_bare_app():
    stack = Stack(App(context=cdk_json_context()), "Team", env={"account": "111111111111", "region": "eu-west-1"})
    keys: dict[str, kms.IKey] = {z: kms.Key(stack, f"{z}Key") for z in ZONES}
    subnets = [ec2.Subnet.from_subnet_attributes(stack, "Subnet", subnet_id="subnet-0aaa", route_table_id="rtb-0aaa")]
    group = ec2.SecurityGroup.from_security_group_id(stack, "Sg", "sg-0ccc")
    buckets = {z: f"bucket-{z}" for z in ZONES}
    MlTeam(
        stack, "Team", env_name="dev", team_name="churn", description="", removal_policy=RemovalPolicy.DESTROY,
        pipelines=[TeamPipeline(load_template("tabular"), load_config().team("churn").template_settings("tabular"))],
        zone_keys=keys, subnets=subnets, security_group=group, buckets=buckets,
        lifecycle=LifecycleProps(
            env_name="dev", is_production=False, deploy_target="batch", instance_type="ml.m5.large", min_instances=1,
            log_retention=logs.RetentionDays.ONE_MONTH, logs_key=keys["raw"], buckets=buckets, zone_keys=keys,
            promotion_consumers=(PromotionConsumer("prod", "333333333333"),),
        ),
    )  # fmt: skip
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::Lambda::Function", 3)  # data arrival, deploy, erasure (churn has an id)
    # batch: arrival + approval + erasure requests, no endpoint rollout rule
    template.resource_count_is("AWS::Events::Rule", 3)
    template.has_resource_properties("AWS::SageMaker::ModelPackageGroup", {"ModelPackageGroupPolicy": {}})
    env = [
        f["Properties"]["Environment"]["Variables"] for f in template.find_resources("AWS::Lambda::Function").values()
    ]
    (deploy_env,) = [e for e in env if "DEPLOY_TARGET" in e]
    assert deploy_env["DEPLOY_TARGET"] == "batch" and "ROLLBACK_ALARMS" not in deploy_env


# -- the deploy function's real requests, evaluated through the boundary ------------------------------------


def _iam_context(request: dict, principal: str) -> dict:
    """The IAM condition keys SageMaker derives from a Create* request as the deploy function sends it."""
    context: dict = {"aws:PrincipalArn": principal, "aws:TagKeys": [t["Key"] for t in request.get("Tags", [])]}
    if "VpcConfig" in request:
        context["sagemaker:VpcSubnets"] = request["VpcConfig"]["Subnets"]
        context["sagemaker:VpcSecurityGroupIds"] = request["VpcConfig"]["SecurityGroupIds"]
    if "EnableNetworkIsolation" in request:
        context["sagemaker:NetworkIsolation"] = request["EnableNetworkIsolation"]
    if "KmsKeyId" in request:
        context["sagemaker:VolumeKmsKey"] = request["KmsKeyId"]
    return context


def _deploy_requests(stage, team):
    """``[(action, resource ARN, request)]`` of a first deployment, built by the deploy Lambda's own code."""
    from lambdas.deploy.actions import endpoint_config_request, model_request, resource_name

    config = DeployConfig.from_environ(_environment(stage, team, "Deploy"))
    env = stage.environment
    sm = f"arn:aws:sagemaker:{env.region}:{env.account}"
    package_arn = f"{sm}:model-package/{config.group_name}/3"
    package = {
        "ModelPackageArn": package_arn,
        "InferenceSpecification": {"Containers": [{"Image": "img", "ModelDataUrl": "s3://b/model.tar.gz"}]},
    }
    model = model_request(config, package, "")
    base = config.endpoint_name if config.deploy_target != "batch" else config.group_name
    model["ModelName"] = model_name = resource_name(base, 3, model)
    endpoint_config = endpoint_config_request(config, "", model_name, package_arn)
    endpoint_config["EndpointConfigName"] = config_name = resource_name(config.endpoint_name, 3, endpoint_config)
    out = [
        ("sagemaker:CreateModel", f"{sm}:model/{model_name}", model),
        ("iam:PassRole", model["ExecutionRoleArn"], {"iam:PassedToService": "sagemaker.amazonaws.com"}),
    ]
    if config.deploy_target != "batch":
        endpoint = {"EndpointName": config.endpoint_name, "EndpointConfigName": config_name, "Tags": model["Tags"]}
        out += [
            ("sagemaker:CreateEndpointConfig", f"{sm}:endpoint-config/{config_name}", endpoint_config),
            ("sagemaker:CreateEndpoint", f"{sm}:endpoint/{config.endpoint_name}", endpoint),
            ("sagemaker:CreateEndpoint", f"{sm}:endpoint-config/{config_name}", endpoint),
            ("sagemaker:UpdateEndpoint", f"{sm}:endpoint/{config.endpoint_name}", endpoint),
        ]
    return config, out


@pytest.mark.parametrize("team", TEAMS)
def test_the_deploy_functions_real_requests_pass_its_policy_and_the_boundary(stages, team):
    # the requests the deploy Lambda's code builds from its synthesized environment, as SageMaker authorizes
    # them: a serverless team's CreateModel has no VpcConfig and no isolation, and must still be allowed
    for stage in stages.values():
        role = _role(stage, team, "TeamLifecycleDeployRole")
        config, requests = _deploy_requests(stage, team)
        for action, resource, request in requests:
            context = request if action == "iam:PassRole" else _iam_context(request, role.arn)
            decision = role.can(Request(action, resource, context))
            assert decision.allowed, (stage.environment.name, team, action, resource, decision)
        if config.deploy_target == "serverless":
            (model,) = [r for a, _, r in requests if a == "sagemaker:CreateModel"]
            assert "VpcConfig" not in model and "EnableNetworkIsolation" not in model


def test_the_serverless_exception_is_exactly_the_serverless_teams_models_and_deploy_roles(dev):
    from tests.security.boundary_checks import admin_under_boundary

    config = load_config()
    serverless = [t.name for t in config.teams if t.deploy_target == "serverless"]
    assert serverless == ["diagnostics"]  # the example config exercises the exception
    sm = "arn:aws:sagemaker:eu-west-1:111111111111"
    deploy_role = "arn:aws:iam::111111111111:role/flywheel/dev/deploy/Flywheel-dev-Team-diagnostics-Role-x"
    outside = {"aws:PrincipalArn": deploy_role}  # no VpcSubnets, no NetworkIsolation
    isolated = {**outside, "sagemaker:VpcSubnets": ["subnet-1"], "sagemaker:NetworkIsolation": True}

    def can(model: str, context: dict) -> bool:
        return admin_under_boundary(dev, Request("sagemaker:CreateModel", f"{sm}:model/{model}", context)).allowed

    assert can("flywheel-dev-diagnostics-v3-0123abcd", outside)
    # every other model stays network-isolated in the VPC, whoever creates it
    others = ("flywheel-dev-churn-v3-0123abcd", "flywheel-dev-diagnosticsx-v3-a", "flywheel-staging-diagnostics-v3-a",
              "flywheel-dev-diagnostics", "m")  # fmt: skip
    for model in others:
        assert not can(model, outside), model
        assert can(model, isolated), model
    # and only this environment's deploy roles may create a serverless team's models at all
    for principal in (
        "arn:aws:iam::111111111111:role/flywheel/dev/diagnostics/pipeline-role",
        "arn:aws:iam::111111111111:role/flywheel/dev/model/r",
        "arn:aws:iam::111111111111:role/flywheel/staging/deploy/r",
        "arn:aws:iam::222222222222:role/flywheel/dev/deploy/r",
    ):
        assert not can("flywheel-dev-diagnostics-v3-0123abcd", {**isolated, "aws:PrincipalArn": principal}), principal
    # the realtime team's deploy role cannot use the exception, even for its own models
    churn = _role(dev, "churn", "TeamLifecycleDeployRole")
    churn_model = f"{sm}:model/flywheel-dev-churn-v3-0123abcd"
    assert not churn.can(Request("sagemaker:CreateModel", churn_model, {"aws:PrincipalArn": churn.arn})).allowed


def test_an_instance_count_canary_above_half_the_fleet_is_refused_at_synth():
    import stacks.components.lifecycle as lifecycle

    rollout = {**lifecycle.DEFAULT_ROLLOUT, "CANARY_SIZE_TYPE": "INSTANCE_COUNT", "CANARY_SIZE": "2"}
    lifecycle._check_canary("churn", rollout, 4)  # two of four: fine
    with pytest.raises(ValueError, match="canary_instances 2 is more than half of the environment's endpoint_min"):
        lifecycle._check_canary("churn", rollout, 3)


def test_the_teams_deployment_settings_reach_the_deploy_function(stages):
    config = load_config()
    for stage in stages.values():
        for team in TEAMS:
            settings = config.team(team).deployment
            deploy = DeployConfig.from_environ(_environment(stage, team, "Deploy"))
            if deploy.deploy_target == "realtime":
                assert (deploy.canary_size_type, deploy.canary_size) == settings.canary
                assert deploy.bake_seconds == settings.bake_seconds
                assert deploy.termination_wait_seconds == settings.termination_wait_seconds
                assert deploy.max_execution_seconds == settings.max_execution_seconds
            else:
                assert deploy.serverless_memory_mb == settings.serverless_memory_mb
                assert deploy.serverless_max_concurrency == settings.serverless_max_concurrency
    assert config.team("churn").deployment.canary == ("CAPACITY_PERCENT", 20)  # not the default 10: it flowed


def test_reserved_concurrency_and_the_layer_version_follow_the_environment():
    from config.models import LAMBDA_RESERVED_PER_TEAM
    from stacks.components.erasure import RESERVED_CONCURRENCY as ERASURE_RESERVED
    from stacks.components.lifecycle import SIZING

    # The config's per-team bound is what a team with every function reserves (lifecycle + erasure).
    assert sum(s.reserved_concurrency for s in SIZING.values()) + ERASURE_RESERVED == LAMBDA_RESERVED_PER_TEAM
    stack = Stack(App(context=cdk_json_context()), "Team", env={"account": "111111111111", "region": "eu-west-1"})
    keys: dict[str, kms.IKey] = {z: kms.Key(stack, f"{z}Key") for z in ZONES}
    subnets = [ec2.Subnet.from_subnet_attributes(stack, "Subnet", subnet_id="subnet-0aaa", route_table_id="rtb-0aaa")]
    buckets = {z: f"bucket-{z}" for z in ZONES}
    MlTeam(
        stack, "Team", env_name="dev", team_name="churn", description="", removal_policy=RemovalPolicy.DESTROY,
        pipelines=[TeamPipeline(load_template("tabular"), load_config().team("churn").template_settings("tabular"))],
        zone_keys=keys, subnets=subnets, security_group=ec2.SecurityGroup.from_security_group_id(stack, "Sg", "sg-0c"),
        buckets=buckets,
        lifecycle=LifecycleProps(
            env_name="dev", is_production=False, deploy_target="realtime", instance_type="ml.m5.large",
            min_instances=1, log_retention=logs.RetentionDays.ONE_MONTH, logs_key=keys["raw"], buckets=buckets,
            zone_keys=keys, reserved_concurrency=False, powertools_layer_version=41,
        ),
    )  # fmt: skip
    functions = Template.from_stack(stack).find_resources("AWS::Lambda::Function")
    assert len(functions) == 3  # data arrival, deploy, erasure (churn's contract has an id column)
    for lid, fn in functions.items():
        assert "ReservedConcurrentExecutions" not in fn["Properties"], lid
        assert fn["Properties"]["Layers"][0] == powertools_layer_arn("eu-west-1", version=41)
        assert fn["Properties"]["Layers"][0].endswith("AWSLambdaPowertoolsPythonV3-python314-arm64:41")


def test_the_handlers_pin_the_powertools_release_of_the_layer():
    for handler in ("data_arrival", "deploy"):
        text = (PROJECT_ROOT / "lambdas" / handler / "requirements.txt").read_text()
        assert f"aws-lambda-powertools[tracer]=={POWERTOOLS_RELEASE}" in text.splitlines()


def test_the_runtime_is_the_latest_python_this_cdk_offers_and_matches_the_layer():
    from aws_cdk import aws_lambda as lambda_

    from stacks.components.lambda_package import PYTHON_VERSION

    versions = [tuple(int(p) for p in n.split("_")[1:]) for n in dir(lambda_.Runtime) if n.startswith("PYTHON_3_")]
    latest = max(versions)
    assert f"python{latest[0]}{latest[1]}" == PYTHON_VERSION  # the layer's Python is the functions' runtime
