"""The synthesized batch-scoring pipeline of churn (dev): its roles evaluated statement by statement
(identity ∩ boundary, conditions), the schedule, and its launch path."""

from __future__ import annotations

import json

import pytest

from tests.security.iam_eval import Request, Templates

ACCOUNT = "111111111111"
REGION = "eu-west-1"
STACK = "Flywheel-dev-Team-churn"
PIPELINE = "flywheel-dev-churn-batch-scoring"
SM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
TEAM_TAG = "aws:RequestTag/flywheel:team"


@pytest.fixture(scope="module")
def lake(dev):
    stacks = {"Security": dev.stage.security, "DataLake": dev.stage.data_lake}
    stacks |= {f"Team-{name}": stack for name, stack in dev.stage.teams.items()}
    templates = dev.templates()
    return Templates({s.stack_name: templates[k].to_json() for k, s in stacks.items()}, account=ACCOUNT, region=REGION)


PREFIXES = {
    "pipeline": "TeamBatchScoringPipelinePipelineRole",
    "preprocessing": "TeamBatchScoringPipelinePreprocessingRole",
    "scoring": "TeamBatchScoringPipelineScoringRole",
    "reporting": "TeamBatchScoringPipelineReportingRole",
    "launcher": "TeamBatchScoringScheduleLauncherRole",
    "scheduler": "TeamBatchScoringScheduleSchedulerRole",
    "tabular-training": "TeamTabularPipelineTrainingRole",
}


def scoring_roles(lake):
    """kind → the role (churn's batch-scoring roles, its tabular training role, diagnostics' pipeline role).

    A function of ``lake``, not a fixture: the mutation suite calls these tests on weakened templates."""
    out = {kind: lake.role(STACK, prefix) for kind, prefix in PREFIXES.items()}
    out["diagnostics-pipeline"] = lake.role("Flywheel-dev-Team-diagnostics", "TeamTabularPipelinePipelineRole")
    return out


def _bucket(lake, zone):
    return lake.resolve("Flywheel-dev-DataLake", {"Fn::ImportValue": f"flywheel-dev-{zone}-bucket"})


def _obj(lake, zone, key):
    return f"arn:aws:s3:::{_bucket(lake, zone)}/{key}"


def _can(role, action, resource="*", **context):
    return role.can(Request(action, resource, context)).allowed


def test_every_role_carries_the_boundary_and_its_kind_path(lake):
    roles = scoring_roles(lake)
    paths = {
        "pipeline": "pipeline",
        "preprocessing": "preprocessing",
        "scoring": "scoring",
        "reporting": "reporting",
        "launcher": "scoring-launcher",
        "scheduler": "scheduler",
    }
    for kind, path in paths.items():
        role = roles[kind]
        assert role.boundary is not None, kind
        assert f":role/flywheel/dev/{path}/" in role.arn, (kind, role.arn)


def test_prepare_reads_only_the_scoring_prefix_and_the_pii_key(lake):
    roles = scoring_roles(lake)
    pre = roles["preprocessing"]
    assert _can(pre, "s3:GetObject", _obj(lake, "raw", "churn/scoring/incoming/b1/part.csv"))
    assert _can(pre, "s3:GetObject", _obj(lake, "raw", "churn/_keys/pii-hmac.key"))
    assert not _can(pre, "s3:GetObject", _obj(lake, "raw", "churn/incoming/b1/part.csv"))  # training batches
    assert not _can(pre, "s3:GetObject", _obj(lake, "raw", "diagnostics/scoring/incoming/b1/x.csv"))
    assert _can(pre, "s3:PutObject", _obj(lake, "features", f"{PIPELINE}/e1/scoring-input/p.csv"))
    assert not _can(pre, "s3:PutObject", _obj(lake, "features", "flywheel-dev-churn-tabular/e1/train/p"))
    for kind in ("scoring", "reporting", "pipeline", "launcher"):
        assert not _can(roles[kind], "s3:GetObject", _obj(lake, "raw", "churn/scoring/incoming/b1/part.csv")), kind


def test_the_models_role_reads_only_the_teams_models_and_its_own_prefix(lake):
    roles = scoring_roles(lake)
    scoring = roles["scoring"]
    model = "flywheel-dev-churn-tabular/e1/model/pipelines-e1-train/output/model.tar.gz"
    assert _can(scoring, "s3:GetObject", _obj(lake, "artifacts", model))
    assert _can(scoring, "s3:GetObject", _obj(lake, "features", f"{PIPELINE}/e1/scoring-input/p.csv"))
    assert _can(scoring, "s3:PutObject", _obj(lake, "features", f"{PIPELINE}/e1/predictions/p.csv.out"))
    assert not _can(scoring, "s3:GetObject", _obj(lake, "artifacts", "flywheel-dev-diagnostics-tabular/e1/m.tar.gz"))
    assert not _can(scoring, "s3:GetObject", _obj(lake, "features", "flywheel-dev-churn-tabular/e1/train/p"))
    assert not _can(scoring, "s3:PutObject", _obj(lake, "artifacts", model))
    trust = json.dumps(scoring.trust)
    assert "sagemaker.amazonaws.com" in trust and ACCOUNT in trust
    # the training role of the tabular pipeline gains nothing of the scoring pipeline
    assert not _can(roles["tabular-training"], "s3:GetObject", _obj(lake, "features", f"{PIPELINE}/e1/x"))


def test_the_pipeline_creates_tagged_transforms_and_never_passes_the_models_role(lake):
    roles = scoring_roles(lake)
    pipeline = roles["pipeline"]
    job = f"{SM}:transform-job/pipelines-abc-score-x"
    keys = {"sagemaker:VolumeKmsKey": "arn:aws:kms:k", "sagemaker:OutputKmsKey": "arn:aws:kms:k"}
    request = {TEAM_TAG: "churn", "aws:TagKeys": ["flywheel:team"], **keys}
    assert _can(pipeline, "sagemaker:CreateTransformJob", job, **request)
    assert not _can(pipeline, "sagemaker:CreateTransformJob", job, **{**request, TEAM_TAG: "diagnostics"})
    assert not _can(pipeline, "sagemaker:CreateTransformJob", job, **keys)  # untagged
    unencrypted = {k: v for k, v in request.items() if k != "sagemaker:OutputKmsKey"}
    assert not _can(pipeline, "sagemaker:CreateTransformJob", job, **unencrypted)  # the boundary's guardrail
    to_sagemaker = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    assert _can(pipeline, "iam:PassRole", roles["preprocessing"].arn, **to_sagemaker)
    assert _can(pipeline, "iam:PassRole", roles["reporting"].arn, **to_sagemaker)
    assert not _can(pipeline, "iam:PassRole", roles["scoring"].arn, **to_sagemaker)
    assert not _can(pipeline, "sagemaker:CreateModelPackage", f"{SM}:model-package/flywheel-dev-churn/3")
    assert not _can(roles["diagnostics-pipeline"], "sagemaker:CreateTransformJob", job, **request)


def test_the_launcher_creates_only_isolated_tagged_models_and_starts_only_its_pipeline(lake):
    roles = scoring_roles(lake)
    launcher = roles["launcher"]
    model = f"{SM}:model/{PIPELINE}-v3"
    good = {TEAM_TAG: "churn", "sagemaker:NetworkIsolation": True, "sagemaker:VpcSubnets": ["subnet-1"]}
    assert _can(launcher, "sagemaker:CreateModel", model, **good)
    assert not _can(launcher, "sagemaker:CreateModel", model, **{**good, "sagemaker:NetworkIsolation": False})
    no_vpc = {k: v for k, v in good.items() if k != "sagemaker:VpcSubnets"}
    assert not _can(launcher, "sagemaker:CreateModel", model, **no_vpc)
    assert not _can(launcher, "sagemaker:CreateModel", model, **{**good, TEAM_TAG: "diagnostics"})
    assert not _can(launcher, "sagemaker:CreateModel", f"{SM}:model/flywheel-dev-churn-v3", **good)
    to_sagemaker = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    assert _can(launcher, "iam:PassRole", roles["scoring"].arn, **to_sagemaker)
    assert not _can(launcher, "iam:PassRole", roles["preprocessing"].arn, **to_sagemaker)
    assert _can(launcher, "sagemaker:StartPipelineExecution", f"{SM}:pipeline/{PIPELINE}")
    assert not _can(launcher, "sagemaker:StartPipelineExecution", f"{SM}:pipeline/flywheel-dev-churn-tabular")
    assert _can(launcher, "sagemaker:ListModelPackages", f"{SM}:model-package-group/flywheel-dev-churn")
    assert not _can(launcher, "sagemaker:ListModelPackages", f"{SM}:model-package-group/flywheel-dev-diagnostics")
    assert not _can(launcher, "sagemaker:UpdateModelPackage", f"{SM}:model-package/flywheel-dev-churn/1")
    raw = f"arn:aws:s3:::{_bucket(lake, 'raw')}"
    assert _can(launcher, "s3:ListBucket", raw, **{"s3:prefix": "churn/scoring/incoming/"})
    assert not _can(launcher, "s3:ListBucket", raw, **{"s3:prefix": "churn/incoming/"})
    assert _can(launcher, "s3:GetObject", _obj(lake, "reports", f"{PIPELINE}/e1/summary/summary.json"))
    assert not _can(launcher, "s3:GetObject", _obj(lake, "reports", f"{PIPELINE}/e1/manifest/status.json"))
    assert _can(launcher, "cloudwatch:PutMetricData", "*", **{"cloudwatch:namespace": "Flywheel/BatchScoring"})
    assert not _can(launcher, "cloudwatch:PutMetricData", "*", **{"cloudwatch:namespace": "Flywheel"})


def test_the_schedule_uses_the_teams_cron_and_a_role_that_only_invokes_its_launcher(dev, lake):
    roles = scoring_roles(lake)
    template = dev.teams["churn"].to_json()["Resources"]
    # The scoring schedule (the drift monitor's schedule lives under the team's Monitoring construct).
    (schedule,) = [
        r["Properties"]
        for lid, r in template.items()
        if r["Type"] == "AWS::Scheduler::Schedule" and "Monitoring" not in lid
    ]
    assert schedule["ScheduleExpression"] == "cron(0 2 * * ? *)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC" and schedule["State"] == "ENABLED"
    target = schedule["Target"]
    assert json.loads(target["Input"]) == {"source": "flywheel.scoring-schedule", "team": "churn"}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 3 and "DeadLetterConfig" in target
    function = lake.get_att(STACK, target["Arn"]["Fn::GetAtt"][0], "Arn")
    scheduler = roles["scheduler"]
    assert _can(scheduler, "lambda:InvokeFunction", function)
    assert not _can(scheduler, "lambda:InvokeFunction", function.replace("Launcher", "Deploy"))
    assert not _can(scheduler, "sagemaker:StartPipelineExecution", f"{SM}:pipeline/{PIPELINE}")
    assert "scheduler.amazonaws.com" in json.dumps(scheduler.trust)
    # the diagnostics team lists no batch-scoring: no schedule, no launcher
    other = dev.teams["diagnostics"].to_json()["Resources"]
    assert not [r for r in other.values() if r["Type"] == "AWS::Scheduler::Schedule"]
