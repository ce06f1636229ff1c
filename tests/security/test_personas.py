"""People's roles per team (issue 12, item 1): data scientist, approver, operator.

Every decision here is an evaluation of the synthesized policies — identity ∩ the permissions boundary,
explicit denies in either winning, the lake's bucket and key policies — on concrete requests
(:class:`flywheel.access_report.Evaluator`), never a look at Sids or names. The last test replays the
synthesized persona policies in moto's IAM enforcement.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import naming
from flywheel.access_report import Evaluator, Principal, Probe, duty_problems, principals_of, report_of
from flywheel.iam_eval import Decision, Request, evaluate
from naming import Names
from tests.security.boundary_checks import admin_under_boundary
from tests.security.stage_policies import templates_of

ACCOUNT, REGION = "111111111111", "eu-west-1"
SM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
SSO = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1"


@pytest.fixture(scope="module")
def evaluator(dev) -> Evaluator:
    return Evaluator(templates_of(dev))


@pytest.fixture(scope="module")
def people(dev) -> dict[tuple[str, str], Principal]:
    return {(p.team, p.kind): p for p in principals_of(templates_of(dev), "dev") if p.kind in naming.PERSONAS}


def _bucket(dev, zone: str) -> str:
    t = templates_of(dev)
    _, value = t.exports[Names("dev").bucket_export(zone)]
    return t.ref("Flywheel-dev-DataLake", value["Ref"])


def _key(dev, zone: str) -> str:
    from flywheel.access_report import _lake

    return _lake(templates_of(dev), "dev")[zone][1]


def decide(evaluator, people, team: str, persona: str, action: str, resource: str, **context: Any) -> Decision:
    probe = Probe(team, "test", action, Request(action, resource, context))
    return evaluator.decide(people[(team, persona)], probe)


def test_every_team_has_its_three_personas(dev, people):
    for team in dev.teams:
        for persona in naming.PERSONAS:
            role = people[(team, persona)].role
            props = templates_of(dev).resource(role.stack, role.logical_id)["Properties"]
            assert props["RoleName"] == f"flywheel-dev-{team}-{persona}"
            assert props["Path"] == f"/flywheel/dev/{persona}/"
            assert role.boundary_ref == f"arn:aws:iam::{ACCOUNT}:policy/flywheel-boundary-dev"
            assert props["MaxSessionDuration"] == 3600
            tags = {t["Key"]: t["Value"] for t in props["Tags"]}
            assert tags["flywheel:team"] == team and tags["flywheel:persona"] == persona


def _assume(role, principal_arn: str, account: str = ACCOUNT, action: str = "sts:AssumeRole", **context: Any) -> bool:
    request = Request(
        action,
        principal={"AWS": f"arn:aws:iam::{account}:root"},
        context={"aws:PrincipalArn": principal_arn, **context},
    )
    return evaluate([role.trust], request).allowed


def test_trust_admits_the_configured_principals_only(people):
    churn_ds = people[("churn", naming.DATA_SCIENTIST)].role
    assert _assume(churn_ds, f"{SSO}/AWSReservedSSO_ChurnDataScientist_0123abcd")
    assert not _assume(churn_ds, f"{SSO}/AWSReservedSSO_ChurnMlLead_0123abcd"), "the approver's permission set"
    assert not _assume(churn_ds, f"arn:aws:iam::{ACCOUNT}:role/anything")
    assert not _assume(
        churn_ds, "arn:aws:iam::999999999999:role/aws-reserved/x/AWSReservedSSO_ChurnDataScientist_1", "999999999999"
    )
    assert _assume(people[("churn", naming.APPROVER)].role, f"{SSO}/AWSReservedSSO_ChurnMlLead_0123abcd")
    # No principals configured (diagnostics): the environment's own account, no other.
    diag = people[("diagnostics", naming.OPERATOR)].role
    assert _assume(diag, f"arn:aws:iam::{ACCOUNT}:role/someone")
    assert not _assume(diag, "arn:aws:iam::999999999999:role/someone", "999999999999")


def test_session_tags_only_with_the_teams_own_values(people):
    role = people[("churn", naming.DATA_SCIENTIST)].role
    who = f"{SSO}/AWSReservedSSO_ChurnDataScientist_0123abcd"
    own = {"aws:RequestTag/flywheel:team": "churn", "aws:RequestTag/flywheel:persona": "data-scientist"}
    keys = {"aws:TagKeys": ["flywheel:team", "flywheel:persona"]}
    assert _assume(role, who, action="sts:TagSession", **own, **keys)
    assert not _assume(
        role, who, action="sts:TagSession", **{**own, "aws:RequestTag/flywheel:team": "diagnostics"}, **keys
    )
    assert not _assume(
        role, who, action="sts:TagSession", **{**own, "aws:RequestTag/flywheel:persona": "approver"}, **keys
    )
    extra = {"aws:TagKeys": ["flywheel:team", "flywheel:persona", "cost-center"]}
    assert not _assume(role, who, action="sts:TagSession", **own, **extra)
    assert _assume(role, who, action="sts:SetSourceIdentity")


def test_data_scientist_reads_and_runs_but_never_approves_or_reads_raw(dev, evaluator, people):
    d = lambda *a, **c: decide(evaluator, people, "churn", naming.DATA_SCIENTIST, *a, **c)  # noqa: E731
    pipeline = "flywheel-dev-churn-tabular"
    assert d("sagemaker:StartPipelineExecution", f"{SM}:pipeline/{pipeline}").allowed
    assert d("sagemaker:ListPipelineExecutionSteps", f"{SM}:pipeline/{pipeline}/execution/abc").allowed
    for zone in ("curated", "features", "reports"):
        assert d("s3:GetObject", f"arn:aws:s3:::{_bucket(dev, zone)}/{pipeline}/e/x").allowed, zone
    via_s3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    assert d("kms:Decrypt", _key(dev, "curated"), **via_s3).allowed
    assert not d("kms:Decrypt", _key(dev, "curated")).allowed, "zone keys only through S3"
    assert d("sagemaker:DescribeModelPackage", f"{SM}:model-package/flywheel-dev-churn/3").allowed
    approve = d(
        "sagemaker:UpdateModelPackage",
        f"{SM}:model-package/flywheel-dev-churn/3",
        **{"sagemaker:ModelApprovalStatus": "Approved"},
    )
    assert approve is Decision.EXPLICIT_DENY
    raw = f"arn:aws:s3:::{_bucket(dev, 'raw')}"
    assert d("s3:GetObject", f"{raw}/churn/incoming/b/data.csv") is Decision.EXPLICIT_DENY
    assert d("s3:GetObject", f"{raw}/{naming.pii_key_object('churn')}") is Decision.EXPLICIT_DENY
    assert (
        d("kms:Decrypt", _key(dev, "raw"), **via_s3, **{"kms:EncryptionContext:aws:s3:arn": f"{raw}/churn/x"})
        is Decision.EXPLICIT_DENY
    )
    assert not d("s3:PutObject", f"arn:aws:s3:::{_bucket(dev, 'curated')}/{pipeline}/e/x").allowed
    assert not d("s3:GetObject", f"arn:aws:s3:::{_bucket(dev, 'curated')}/flywheel-dev-diagnostics-tabular/e/x").allowed


def test_approver_decides_but_never_starts_pipelines_or_writes_data(dev, evaluator, people):
    a = lambda *x, **c: decide(evaluator, people, "churn", naming.APPROVER, *x, **c)  # noqa: E731
    package = f"{SM}:model-package/flywheel-dev-churn/3"
    for status in ("Approved", "Rejected"):
        assert a("sagemaker:UpdateModelPackage", package, **{"sagemaker:ModelApprovalStatus": status}).allowed
    assert not a(
        "sagemaker:UpdateModelPackage", package, **{"sagemaker:ModelApprovalStatus": "PendingManualApproval"}
    ).allowed
    assert not a("sagemaker:UpdateModelPackage", package).allowed, "metadata edits without a decision"
    other = f"{SM}:model-package/flywheel-dev-diagnostics/3"
    assert not a("sagemaker:UpdateModelPackage", other, **{"sagemaker:ModelApprovalStatus": "Approved"}).allowed
    assert a(
        "s3:GetObject", f"arn:aws:s3:::{_bucket(dev, 'reports')}/flywheel-dev-churn-tabular/e/evaluation.json"
    ).allowed
    start = a("sagemaker:StartPipelineExecution", f"{SM}:pipeline/flywheel-dev-churn-tabular")
    assert start is Decision.EXPLICIT_DENY
    for zone in ("reports", "features", "curated", "artifacts"):
        put = a("s3:PutObject", f"arn:aws:s3:::{_bucket(dev, zone)}/flywheel-dev-churn-tabular/e/x")
        assert put is Decision.EXPLICIT_DENY, zone
    assert not a("s3:GetObject", f"arn:aws:s3:::{_bucket(dev, 'curated')}/flywheel-dev-churn-tabular/e/x").allowed


def test_operator_watches_and_rolls_back_but_reads_no_data(dev, evaluator, people):
    o = lambda *x, **c: decide(evaluator, people, "churn", naming.OPERATOR, *x, **c)  # noqa: E731
    endpoint = "flywheel-dev-churn"
    assert o("sagemaker:UpdateEndpoint", f"{SM}:endpoint/{endpoint}").allowed
    assert o("sagemaker:UpdateEndpoint", f"{SM}:endpoint-config/{endpoint}-v2-abcdef12").allowed
    assert o("sagemaker:DescribeEndpoint", f"{SM}:endpoint/{endpoint}").allowed
    assert o("cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{endpoint}-5xx").allowed
    group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{endpoint}"
    assert o("logs:GetLogEvents", f"{group}:log-stream:AllTraffic/i-1").allowed
    assert not o("sagemaker:UpdateEndpoint", f"{SM}:endpoint/flywheel-dev-diagnostics").allowed
    for zone in ("curated", "features", "reports", "capture", "artifacts"):
        read = o("s3:GetObject", f"arn:aws:s3:::{_bucket(dev, zone)}/flywheel-dev-churn-tabular/e/x")
        assert read is Decision.EXPLICIT_DENY, zone
    assert (
        o("kms:Decrypt", _key(dev, "capture"), **{"kms:ViaService": f"s3.{REGION}.amazonaws.com"})
        is Decision.EXPLICIT_DENY
    )
    approve = o(
        "sagemaker:UpdateModelPackage",
        f"{SM}:model-package/flywheel-dev-churn/3",
        **{"sagemaker:ModelApprovalStatus": "Approved"},
    )
    assert approve is Decision.EXPLICIT_DENY


def test_the_boundary_lets_only_approver_roles_change_a_model_package(dev):
    package = f"{SM}:model-package/flywheel-dev-churn/3"
    status = {"sagemaker:ModelApprovalStatus": "Approved"}
    expectations = {
        naming.APPROVER: Decision.ALLOW,
        "pipeline": Decision.EXPLICIT_DENY,
        naming.DATA_SCIENTIST: Decision.EXPLICIT_DENY,
        "deploy": Decision.EXPLICIT_DENY,
    }
    for kind, expected in expectations.items():
        arn = f"arn:aws:iam::{ACCOUNT}:role/flywheel/dev/{kind}/r"
        decision = admin_under_boundary(
            dev, Request("sagemaker:UpdateModelPackage", package, {**status, "aws:PrincipalArn": arn})
        )
        assert decision is expected, kind
    # A caller the evaluator cannot place is denied (the key is always present in AWS).
    assert admin_under_boundary(dev, Request("sagemaker:UpdateModelPackage", package, status)) is Decision.EXPLICIT_DENY


def test_no_role_of_the_stage_but_approvers_can_approve(dev, prod):
    for stage in (dev, prod):
        report = report_of(templates_of(stage), stage.environment.name, list(stage.teams))
        assert duty_problems(report) == []
        approvers = {p.label for p, probe in report.allowed if probe.label.startswith("sagemaker:UpdateModelPackage")}
        assert approvers == {f"{team}/approver" for team in stage.teams}


def test_a_template_step_cannot_take_a_persona_path():
    """A step kind named like a persona would run jobs at /flywheel/<env>/approver/ (the boundary's exception)."""
    from pipelines.template import StepRole

    for persona in naming.PERSONAS:
        with pytest.raises(ValueError, match=persona):
            StepRole(kind=persona)


def test_moto_enforces_the_synthesized_persona_policies_across_teams(dev):
    """The synthesized (resolved) data-scientist policies in moto's IAM enforcement: churn's data scientist
    reads churn's curated object and is refused diagnostics' (and the raw zone). moto evaluates identity
    policies of assumed roles but ignores permission boundaries and condition keys (measured, moto 5.2):
    the evaluator above, not moto, is the authority on those."""
    import boto3
    from moto import mock_aws
    from moto.core import set_initial_no_auth_action_count

    t = templates_of(dev)
    roles = {
        team: next(p for p in principals_of(t, "dev") if p.team == team and p.kind == naming.DATA_SCIENTIST)
        for team in dev.teams
    }
    curated, raw = _bucket(dev, "curated"), _bucket(dev, "raw")
    objects = [
        (curated, "flywheel-dev-churn-tabular/e/part-0.parquet"),
        (curated, "flywheel-dev-diagnostics-tabular/e/part-0.parquet"),
        (raw, "churn/incoming/b/data.csv"),
    ]
    setup_calls = 2 + len(objects) + 2 * len(roles) + 1

    @set_initial_no_auth_action_count(setup_calls)
    @mock_aws
    def run() -> dict[str, str]:
        s3, iam = boto3.client("s3", region_name=REGION), boto3.client("iam", region_name=REGION)
        for bucket in (curated, raw):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        for bucket, key in objects:
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        for team, p in roles.items():
            iam.create_role(
                RoleName=f"ds-{team}",
                Path=f"/flywheel/dev/{naming.DATA_SCIENTIST}/",
                AssumeRolePolicyDocument=json.dumps(p.role.trust),
            )
            document = {"Version": "2012-10-17", "Statement": [s for d in p.role.identity for s in d["Statement"]]}
            iam.put_role_policy(RoleName=f"ds-{team}", PolicyName="persona", PolicyDocument=json.dumps(document))
        creds = boto3.client("sts", region_name=REGION).assume_role(
            RoleArn=f"arn:aws:iam::123456789012:role/flywheel/dev/{naming.DATA_SCIENTIST}/ds-churn",
            RoleSessionName="alice",
        )["Credentials"]
        as_churn = boto3.client(
            "s3",
            region_name=REGION,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
        out = {}
        for bucket, key in objects:
            try:
                as_churn.get_object(Bucket=bucket, Key=key)
                out[key] = "allowed"
            except as_churn.exceptions.ClientError as error:
                out[key] = error.response["Error"]["Code"]
        return out

    result = run()
    assert result == {
        "flywheel-dev-churn-tabular/e/part-0.parquet": "allowed",
        "flywheel-dev-diagnostics-tabular/e/part-0.parquet": "AccessDenied",
        "churn/incoming/b/data.csv": "AccessDenied",
    }
