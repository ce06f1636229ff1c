"""Team monitoring as synthesized in every environment: dashboards, alarms → the team topic, budget, drift job.

Uses the session's synthesized stages (tests/cdk_fixtures.py): no extra synth.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from config.loader import load_config
from lambdas.deploy.actions import PACKAGE_TAG
from naming import Names, drift_alarm_name
from pipelines.monitor import drift
from stacks.components import monitoring
from stacks.components.lifecycle import VARIANT_NAME
from tests.security.iam_eval import Request
from tests.security.stage_policies import stack_name, templates_of

CONFIG = load_config()
TEAMS = [t.name for t in CONFIG.teams]


def resources(stage: Any, team: str, kind: str) -> dict[str, Any]:
    return {k: v for k, v in stage.teams[team].to_json()["Resources"].items() if v["Type"] == kind}


def topic_id(stage: Any, team: str) -> str:
    (lid,) = resources(stage, team, "AWS::SNS::Topic")
    return lid


def state_machine(stage: Any, team: str) -> dict[str, Any]:
    """The drift monitor's definition with CloudFormation intrinsics flattened to placeholders."""
    ((_, sm),) = resources(stage, team, "AWS::StepFunctions::StateMachine").items()
    parts = sm["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else "TOKEN" for p in parts)
    return dict(json.loads(text))


def test_the_constants_the_stack_shares_with_the_job_and_handlers_agree() -> None:
    assert monitoring.DRIFT_NAMESPACE == drift.METRICS_NAMESPACE
    assert monitoring.PACKAGE_TAG == PACKAGE_TAG
    assert monitoring.VARIANT == VARIANT_NAME
    assert monitoring.MONITOR_CODE.is_file()


@pytest.mark.parametrize("team", TEAMS)
def test_every_team_has_a_dashboard_with_its_panels(stages: dict[str, Any], team: str) -> None:
    for name, stage in stages.items():
        ((_, dash),) = resources(stage, team, "AWS::CloudWatch::Dashboard").items()
        assert dash["Properties"]["DashboardName"] == f"flywheel-{name}-{team}"
        body = json.dumps(dash["Properties"]["DashboardBody"])
        for needle in ("ExecutionFailed", "ExecutionDuration", "Invocation5XXErrors", "Invocation4XXErrors",
                       "ModelLatency", "p99", "p50", "CPUUtilization", "MemoryUtilization", "Throttles",
                       "ApproximateNumberOfMessagesVisible", "Budget", "alarm"):  # fmt: skip
            assert needle in body, f"{name}/{team} dashboard has no {needle}"
        realtime = CONFIG.team(team).deploy_target == "realtime"
        assert ("DriftScore" in body) is realtime  # only realtime endpoints capture (drift per feature)


@pytest.mark.parametrize("team", TEAMS)
def test_every_alarm_of_the_team_stack_notifies_the_team_topic(stages: dict[str, Any], team: str) -> None:
    for stage in stages.values():
        topic = topic_id(stage, team)
        alarms = resources(stage, team, "AWS::CloudWatch::Alarm")
        assert alarms
        for lid, alarm in alarms.items():
            assert alarm["Properties"].get("AlarmActions") == [{"Ref": topic}], lid
        names = {a["Properties"].get("AlarmName") for a in alarms.values()}
        endpoint = Names(stage.environment.name).endpoint(team)
        expected = {f"{endpoint}-5xx-rate", f"{endpoint}-latency-p99"}
        expected |= {f"{Names(stage.environment.name).pipeline(team, 'tabular')}-failed-executions"}
        if CONFIG.team(team).deploy_target == "realtime":
            # The drift alarm, the monitor's own failures and the lifecycle's rollback alarms (same topic).
            expected |= {drift_alarm_name(endpoint), f"{endpoint}-drift-monitor-failed", f"{endpoint}-5xx",
                         f"{endpoint}-latency"}  # fmt: skip
        assert expected <= names
        descriptions = " ".join(str(a["Properties"].get("AlarmDescription")) for a in alarms.values())
        assert "dead-letter queue" in descriptions and "errors or throttles" in descriptions


def test_alarm_thresholds_come_from_config(dev: Any) -> None:
    alarms = {
        a["Properties"].get("AlarmName"): a["Properties"]
        for a in resources(dev, "churn", "AWS::CloudWatch::Alarm").values()
    }
    settings = CONFIG.team("churn").monitoring.alarms
    latency = alarms["flywheel-dev-churn-latency-p99"]
    assert latency["ExtendedStatistic"] == "p99" and latency["MetricName"] == "ModelLatency"
    assert latency["Threshold"] == settings.p99_latency_ms * 1000  # ModelLatency is in microseconds
    assert alarms["flywheel-dev-churn-5xx-rate"]["Threshold"] == settings.error_5xx_percent
    drifted = alarms["flywheel-dev-churn-drift"]
    assert (drifted["Namespace"], drifted["MetricName"]) == (drift.METRICS_NAMESPACE, "DriftedFeatures")
    assert drifted["Threshold"] == settings.drifted_features and drifted["Period"] == 86400  # drift.window: day
    assert drifted["Dimensions"] == [{"Name": "endpoint", "Value": "flywheel-dev-churn"},
                                     {"Name": "team", "Value": "churn"}]  # fmt: skip


@pytest.mark.parametrize("team", TEAMS)
def test_the_team_topic_is_kms_encrypted_tls_only_and_subscribed_from_config(stages: dict[str, Any], team: str) -> None:
    for stage in stages.values():
        ((lid, topic),) = resources(stage, team, "AWS::SNS::Topic").items()
        assert "Fn::GetAtt" in topic["Properties"]["KmsMasterKeyId"]
        policies = resources(stage, team, "AWS::SNS::TopicPolicy")
        statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in statements)  # fmt: skip
        budgets = [s for s in statements if s.get("Principal") == {"Service": "budgets.amazonaws.com"}]
        assert budgets and all("aws:SourceAccount" in s["Condition"]["StringEquals"] for s in budgets)
        subs = resources(stage, team, "AWS::SNS::Subscription")
        configured = {(s.protocol, s.endpoint) for s in CONFIG.team(team).monitoring.subscriptions}
        assert {(s["Properties"]["Protocol"], s["Properties"]["Endpoint"]) for s in subs.values()} == configured
        for sub in subs.values():
            assert sub["Properties"]["TopicArn"] == {"Ref": lid}
            assert "RedrivePolicy" in sub["Properties"]


@pytest.mark.parametrize("team", TEAMS)
def test_the_budget_follows_monthly_budget_usd_and_notifies_the_topic(stages: dict[str, Any], team: str) -> None:
    config = CONFIG.team(team)
    for name, stage in stages.items():
        ((_, budget),) = resources(stage, team, "AWS::Budgets::Budget").items()
        data = budget["Properties"]["Budget"]
        assert data["BudgetLimit"] == {"Amount": config.monthly_budget_usd, "Unit": "USD"}
        assert data["TimeUnit"] == "MONTHLY" and data["BudgetName"] == f"flywheel-{name}-{team}"
        assert data["CostFilters"] == {"TagKeyValue": [f"user:flywheel:team${team}"]}
        notes = budget["Properties"]["NotificationsWithSubscribers"]
        thresholds = {n["Notification"]["NotificationType"]: n["Notification"]["Threshold"] for n in notes}
        assert thresholds == {"ACTUAL": config.monitoring.alarms.budget_percent, "FORECASTED": 100}
        for note in notes:
            assert note["Subscribers"] == [{"SubscriptionType": "SNS", "Address": {"Ref": topic_id(stage, team)}}]


def test_the_drift_monitor_job_is_scheduled_encrypted_in_the_vpc_and_isolated(stages: dict[str, Any]) -> None:
    for name, stage in stages.items():
        # The drift monitor's schedule (the team's batch-scoring pipeline has its own, under its construct).
        ((_, schedule),) = [
            (lid, r) for lid, r in resources(stage, "churn", "AWS::Scheduler::Schedule").items() if "Monitoring" in lid
        ]
        assert schedule["Properties"]["ScheduleExpression"] == "cron(20 0 * * ? *)"
        assert schedule["Properties"]["ScheduleExpressionTimezone"] == "Etc/UTC"
        assert "KmsKeyArn" in schedule["Properties"]
        target = schedule["Properties"]["Target"]
        assert target["DeadLetterConfig"] and target["RetryPolicy"]["MaximumRetryAttempts"] == 2
        definition = state_machine(stage, "churn")
        job = definition["States"]["RunMonitorJob"]
        assert job["Resource"].endswith(":states:::sagemaker:createProcessingJob.sync")
        request = job["Arguments"]
        assert request["NetworkConfig"]["EnableNetworkIsolation"] is True
        assert request["NetworkConfig"]["EnableInterContainerTrafficEncryption"] is True
        vpc = request["NetworkConfig"]["VpcConfig"]
        assert vpc["Subnets"] and vpc["SecurityGroupIds"]
        assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == "TOKEN"
        assert request["ProcessingOutputConfig"]["KmsKeyId"] == "TOKEN"
        assert re.fullmatch(r"\d{12}\.dkr\.ecr\.eu-west-1\.amazonaws\.com/sagemaker-scikit-learn:1\.9-0-cpu-py3",
                            request["AppSpecification"]["ImageUri"])  # fmt: skip
        inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in request["ProcessingInputs"]}
        endpoint = Names(name).endpoint("churn")
        assert f"datacapture/{endpoint}/AllTraffic/" in json.dumps(definition["States"]["JobName"])
        assert inputs["capture"].startswith("{% 's3://")
        assert "$baseline" in inputs["baseline"]  # the deployed package's registered baseline
        assert request["ProcessingJobName"] == "{% $job %}"
        assert "--min-rows" in request["AppSpecification"]["ContainerArguments"]
        # The window's metrics reach CloudWatch after the job (the job itself has no network).
        assert definition["States"]["ReadMetrics"]["Next"] == "PublishMetrics"
        assert definition["States"]["PackageOfEndpoint"]["Assign"]["package"].count(PACKAGE_TAG) == 1
        # No registered baseline: the run fails as NoBaseline (the monitor-failed alarm), it never passes.
        (choice,) = definition["States"]["HasBaseline?"]["Choices"]
        assert choice["Condition"] == "{% $baseline != '' %}" and choice["Next"] == "JobName"
        assert definition["States"]["HasBaseline?"]["Default"] == "NoBaseline"
        assert definition["States"]["NoBaseline"]["Type"] == "Fail"
        assert (
            "DriftCheckBaselines.ModelDataQuality.Statistics.S3Uri"
            in definition["States"]["BaselineOfPackage"]["Assign"]["baseline"]
        )


def test_only_realtime_teams_get_a_drift_schedule(dev: Any) -> None:
    for team in TEAMS:
        realtime = CONFIG.team(team).deploy_target == "realtime"
        assert bool(resources(dev, team, "AWS::Scheduler::Schedule")) is realtime
        assert bool(resources(dev, team, "AWS::StepFunctions::StateMachine")) is realtime


def test_the_monitor_job_role_reads_the_window_and_baseline_and_writes_only_its_reports(dev: Any) -> None:
    templates = templates_of(dev)
    role = templates.role(stack_name(dev, "Team-churn"), "TeamMonitoringDriftMonitorJobRole")
    capture = templates.resolve(stack_name(dev, "Team-churn"), {"Fn::ImportValue": "flywheel-dev-capture-bucket"})
    reports = templates.resolve(stack_name(dev, "Team-churn"), {"Fn::ImportValue": "flywheel-dev-reports-bucket"})
    raw = templates.resolve(stack_name(dev, "Team-churn"), {"Fn::ImportValue": "flywheel-dev-raw-bucket"})
    window = f"arn:aws:s3:::{capture}/datacapture/flywheel-dev-churn/AllTraffic/2026/01/01/00/x.jsonl"
    assert role.can(Request("s3:GetObject", window)).allowed
    other = window.replace("flywheel-dev-churn/", "flywheel-dev-diagnostics/")
    assert not role.can(Request("s3:GetObject", other)).allowed
    baseline = f"arn:aws:s3:::{reports}/flywheel-dev-churn-tabular/exec/evaluation/baseline/statistics.json"
    assert role.can(Request("s3:GetObject", baseline)).allowed
    assert role.can(
        Request("s3:PutObject", f"arn:aws:s3:::{reports}/drift/flywheel-dev-churn/2026010100/r.json")
    ).allowed
    assert not role.can(Request("s3:PutObject", baseline)).allowed  # never rewrites a registered baseline
    assert not role.can(Request("s3:GetObject", f"arn:aws:s3:::{raw}/churn/incoming/b/x.csv")).allowed
    assert not role.can(Request("cloudwatch:PutMetricData", "*")).allowed  # isolated: the state machine publishes


def test_the_state_machine_publishes_only_the_monitor_namespace_and_passes_only_the_job_role(dev: Any) -> None:
    templates = templates_of(dev)
    role = templates.role(stack_name(dev, "Team-churn"), "TeamMonitoringDriftMonitorRole")
    ns = {"cloudwatch:namespace": drift.METRICS_NAMESPACE}
    assert role.can(Request("cloudwatch:PutMetricData", "*", ns)).allowed
    assert not role.can(Request("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "AWS/SageMaker"})).allowed
    job = "arn:aws:sagemaker:eu-west-1:111111111111:processing-job/dm-churn-2026010100-abcdef12"
    guarded = {
        "sagemaker:VolumeKmsKey": "k",
        "sagemaker:OutputKmsKey": "k",
        "sagemaker:VpcSubnets": ["subnet-1"],
        "sagemaker:NetworkIsolation": True,
        "sagemaker:InterContainerTrafficEncryption": True,
    }
    assert role.can(Request("sagemaker:CreateProcessingJob", job, guarded)).allowed
    assert not role.can(Request("sagemaker:CreateProcessingJob", job.replace("dm-churn", "other"), guarded)).allowed
    # The boundary's guardrails bind the monitor too: a job without isolation is refused.
    open_job = {**guarded, "sagemaker:NetworkIsolation": False}
    assert not role.can(Request("sagemaker:CreateProcessingJob", job, open_job)).allowed
    assert not role.can(Request("sagemaker:CreateTrainingJob", "*")).allowed


def test_the_monitor_job_name_fits_sagemaker_for_the_longest_team_name() -> None:
    longest = "a" * 21  # config.models.TEAM_NAME: at most 21 characters
    name = f"{monitoring.job_name_prefix(longest)}-2026010100-abcdef12"
    assert len(name) <= 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name)


def test_a_team_without_lifecycle_gets_its_own_topic_and_retraining_starts_on_persistent_drift() -> None:
    """``TeamMonitoring`` alone (no lifecycle, retraining switched on): its own KMS topic; N drifting windows
    in a row → an EventBridge rule starts the team's pipeline on the retrain batch, with a role that may do
    nothing else."""
    from aws_cdk import App, RemovalPolicy, Stack
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_logs as logs
    from aws_cdk.assertions import Match, Template

    from stacks import cdk_json_context

    stack = Stack(App(context=cdk_json_context()), "Solo", env={"account": "111111111111", "region": "eu-west-1"})
    keys = {z: kms.Key(stack, f"{z}Key") for z in ("capture", "reports")}
    props = monitoring.MonitoringProps(
        env_name="dev", monthly_budget_usd=100, alarms=monitoring.AlarmDefaults(), subscriptions=(),
        drift=monitoring.DriftProps(window="hour", retrain_after_windows=3, retrain_batch="current"),
        deploy_target="realtime", log_retention=logs.RetentionDays.ONE_MONTH,
        buckets={"capture": "cap", "reports": "rep", "raw": "raw"}, zone_keys=keys, logs_key=kms.Key(stack, "Logs"),
    )  # fmt: skip
    built = monitoring.TeamMonitoring(
        stack, "Monitoring", props=props, team_name="solo", pipeline_names=["flywheel-dev-solo-tabular"],
        lifecycle=None, job_key=kms.Key(stack, "Job"), subnets=[ec2.Subnet.from_subnet_id(stack, "S", "subnet-1")],
        security_group=ec2.SecurityGroup.from_security_group_id(stack, "G", "sg-1"),
        removal_policy=RemovalPolicy.DESTROY,
        sklearn_image="141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3",
    )  # fmt: skip
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    persistent = template.find_resources(
        "AWS::CloudWatch::Alarm", {"Properties": {"AlarmName": "flywheel-dev-solo-persistent-drift"}}
    )
    ((_, alarm),) = persistent.items()
    assert alarm["Properties"]["EvaluationPeriods"] == 3 and alarm["Properties"]["DatapointsToAlarm"] == 3
    assert alarm["Properties"]["Period"] == 3600  # drift.window: hour
    ((_, rule),) = template.find_resources("AWS::Events::Rule").items()
    assert rule["Properties"]["EventPattern"]["detail"] == {"state": {"value": ["ALARM"]}}
    (target,) = rule["Properties"]["Targets"]
    assert target["SageMakerPipelineParameters"]["PipelineParameterList"] == [
        {"Name": "InputDataUri", "Value": "s3://raw/solo/incoming/current/"}
    ]
    assert "pipeline/flywheel-dev-solo-tabular" in json.dumps(target["Arn"])
    policies = template.find_resources("AWS::IAM::ManagedPolicy")
    (retrain,) = [p for lid, p in policies.items() if lid.startswith("MonitoringDriftMonitorRetrainPolicy")]
    assert retrain["Properties"]["PolicyDocument"]["Statement"] == [
        {"Action": "sagemaker:StartPipelineExecution", "Effect": "Allow",
         "Resource": target["Arn"]}
    ]  # fmt: skip
    assert built.drift is not None and "persistent-drift" in built.alarms
    schedule = template.find_resources("AWS::Scheduler::Schedule")
    assert [s["Properties"]["ScheduleExpression"] for s in schedule.values()] == ["cron(10 * * * ? *)"]
