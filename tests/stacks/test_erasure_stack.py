"""The deployed erasure: its role's statements evaluated (iam_eval), the raw bucket's request controls."""

from __future__ import annotations

import pytest

from tests.security.iam_eval import Decision, Request, Templates, evaluate

ACCOUNT = "111111111111"
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def lake(dev):
    stacks = {"Security": dev.stage.security, "DataLake": dev.stage.data_lake}
    stacks |= {f"Team-{name}": stack for name, stack in dev.stage.teams.items()}
    templates = dev.templates()
    return Templates({s.stack_name: templates[k].to_json() for k, s in stacks.items()}, account=ACCOUNT, region=REGION)


def _bucket(lake, zone):
    return lake.resolve("Flywheel-dev-DataLake", {"Fn::ImportValue": f"flywheel-dev-{zone}-bucket"})


def _obj(lake, zone, key):
    return f"arn:aws:s3:::{_bucket(lake, zone)}/{key}"


def _erasure_role(lake, team):
    (role,) = [r for r in lake.roles() if r.stack == f"Flywheel-dev-Team-{team}" and "/flywheel/dev/erasure/" in r.arn]
    return role


def test_erasure_role_rewrites_and_deletes_versions_of_its_own_team_only(lake):
    role = _erasure_role(lake, "churn")
    own = {
        "raw batch": _obj(lake, "raw", "churn/incoming/b1/churn.csv"),
        "raw quarantine": _obj(lake, "raw", "churn/quarantine/flywheel-dev-churn-tabular/e/x.csv"),
        "features": _obj(lake, "features", "flywheel-dev-churn-tabular/e1/train/part-algo-1.parquet"),
        "curated": _obj(lake, "curated", "flywheel-dev-churn-tabular/e1/x.parquet"),
    }
    context = {"aws:PrincipalArn": role.arn}
    for where, arn in own.items():
        for action in ("s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObjectVersion"):
            assert role.can(Request(action, arn, context)).allowed, (where, action)
    foreign = {
        "other team's batch": _obj(lake, "raw", "diagnostics/incoming/b1/x.csv"),
        "other team's features": _obj(lake, "features", "flywheel-dev-diagnostics-tabular/e1/x.parquet"),
        "artifacts (object lock)": _obj(lake, "artifacts", "flywheel-dev-churn-tabular/e1/model.tar.gz"),
        "own PII key": _obj(lake, "raw", "churn/_keys/pii-hmac.key"),
    }
    for where, arn in foreign.items():
        assert not role.can(Request("s3:DeleteObjectVersion", arn, context)).allowed, where
        assert not role.can(Request("s3:PutObject", arn, context)).allowed, where
    assert role.can(Request("s3:GetObject", _obj(lake, "raw", "churn/_keys/pii-hmac.key"), context)).allowed
    assert role.can(Request("s3:PutObject", _obj(lake, "reports", "_erasure/churn/r.json"), context)).allowed
    assert not role.can(Request("s3:PutObject", _obj(lake, "reports", "flywheel-dev-churn-tabular/x"), context)).allowed
    assert not role.can(
        Request("s3:BypassGovernanceRetention", _obj(lake, "raw", "churn/incoming/b/x"), context)
    ).allowed


def _raw_policy(lake):
    (policy,) = [
        r["Properties"]["PolicyDocument"]
        for r in lake.templates["Flywheel-dev-DataLake"]["Resources"].values()
        if r["Type"] == "AWS::S3::BucketPolicy" and "LakeRawBucket" in str(r["Properties"]["Bucket"])
    ]
    return lake.resolve("Flywheel-dev-DataLake", policy)


def test_only_break_glass_and_ingest_may_put_erasure_requests_and_erasure_may_read_them(lake):
    policy = _raw_policy(lake)
    request = _obj(lake, "raw", "churn/_erasure/requests/dsr-1.json")

    def as_role(kind, action):
        principal = f"arn:aws:iam::{ACCOUNT}:role/flywheel/dev/{kind}/r"
        return evaluate([policy], Request(action, request, {"aws:PrincipalArn": principal}))

    for kind in ("break-glass", "ingest"):
        assert as_role(kind, "s3:PutObject") is not Decision.EXPLICIT_DENY, kind
    for kind in ("preprocessing", "erasure", "data-arrival", "deploy"):
        assert as_role(kind, "s3:PutObject") is Decision.EXPLICIT_DENY, kind
    assert as_role("erasure", "s3:GetObject") is not Decision.EXPLICIT_DENY
    assert as_role("training", "s3:GetObject") is Decision.EXPLICIT_DENY


def test_erasure_function_guardrails(dev):
    template = dev.teams["churn"]
    functions = {
        k: f for k, f in template.find_resources("AWS::Lambda::Function").items() if k.startswith("TeamErasure")
    }
    ((_, fn),) = functions.items()
    props = fn["Properties"]
    assert props["ReservedConcurrentExecutions"] == 1
    assert props["Timeout"] == 900 and props["MemorySize"] == 3008
    assert props["TracingConfig"] == {"Mode": "Active"} and props["DeadLetterConfig"]["TargetArn"]
    assert props["Handler"] == "lambdas.erasure.handler.lambda_handler"
    env = props["Environment"]["Variables"]
    assert env["ID_COLUMNS"] == "customer_id" and env["PIPELINE_NAMES"] == ",".join(
        ["flywheel-dev-churn-tabular", "flywheel-dev-churn-batch-scoring"]
    )
    assert len(props["Layers"]) == 2  # Powertools + AWS SDK for pandas (resolved from AWS's SSM parameter)
    rules = [
        r["Properties"]["EventPattern"]
        for k, r in template.find_resources("AWS::Events::Rule").items()
        if k.startswith("TeamErasure")
    ]
    assert rules and rules[0]["detail"]["object"]["key"] == [{"prefix": "churn/_erasure/requests/"}]
    assert not template.find_resources("AWS::Lambda::Url")
