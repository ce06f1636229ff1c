"""The permissions boundary's checks, shared by ``test_boundary.py`` and the mutation suite.

Each ``*_problems`` function evaluates synthesized statements (actions, resources, conditions) with
:mod:`tests.security.iam_eval` — never Sid names — and returns what is wrong (``[]``: compliant). A role's
effective permission is its identity policies ∩ the boundary, explicit denies in either winning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from naming import Names
from stacks.components.sagemaker_images import SAGEMAKER_IMAGE_ACCOUNTS
from tests.security.iam_eval import (
    Decision,
    Request,
    Role,
    Templates,
    dump,
    evaluate,
    evaluate_with_boundary,
    statements,
)
from tests.security.stage_policies import stack_name, templates_of

FOREIGN = "999999999999"


def _t(stage) -> Templates:
    return templates_of(stage)


def _boundary(stage) -> list[dict[str, Any]]:
    t = _t(stage)
    arn = f"arn:aws:iam::{stage.environment.account}:policy/{Names(stage.environment.name).boundary}"
    return [t.managed_policy_by_arn(arn)]


def _lid(t: Templates, stack: str, kind: str, prefix: str) -> str:
    (lid,) = [k for k, r in t.templates[stack]["Resources"].items() if r["Type"] == kind and k.startswith(prefix)]
    return lid


def _vpc_arn(stage) -> str:
    t, sec = _t(stage), stack_name(stage, "Security")
    vpc = t.ref(sec, _lid(t, sec, "AWS::EC2::VPC", "NetworkVpc"))
    return f"arn:aws:ec2:{stage.environment.region}:{stage.environment.account}:vpc/{vpc}"


def compliant_job(stage, team: str = "churn") -> dict[str, Any]:
    """The request context of a SageMaker job as Flywheel's pipelines start it."""
    key = f"arn:aws:kms:{stage.environment.region}:{stage.environment.account}:key/job"
    return {
        "sagemaker:VolumeKmsKey": key,
        "sagemaker:OutputKmsKey": key,
        "sagemaker:VpcSubnets": ["subnet-1"],
        "sagemaker:VpcSecurityGroupIds": ["sg-1"],
        "sagemaker:NetworkIsolation": True,
        "sagemaker:InterContainerTrafficEncryption": True,
        "aws:RequestTag/flywheel:team": team,
        "aws:TagKeys": ["flywheel:team"],
    }


def baseline_context(stage) -> dict[str, Any]:
    """How Flywheel's callers make requests: compliant jobs, roles passed to SageMaker, grants for AWS
    resources, models registered for review, security-group changes inside the Flywheel VPC."""
    return {
        **compliant_job(stage),
        "iam:PassedToService": "sagemaker.amazonaws.com",
        "kms:GrantIsForAWSResource": True,
        "sagemaker:ModelApprovalStatus": "PendingManualApproval",
        "ec2:Vpc": _vpc_arn(stage),
        "aws:SourceAccount": stage.environment.account,
        "aws:PrincipalAccount": stage.environment.account,
    }


def admin_under_boundary(stage, request: Request) -> Decision:
    """A role whose own policy allows everything, carrying the boundary."""
    admin = [{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}]
    return evaluate_with_boundary(admin, _boundary(stage), request)


def _satisfying(condition: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """A context that meets an Allow statement's condition (first allowed value of each key)."""
    out: dict[str, Any] = {}
    for operator, tests in (condition or {}).items():
        base = operator.rpartition(":")[2].removesuffix("IfExists")
        for key, values in tests.items():
            first = values[0] if isinstance(values, list) else values
            if base == "Null":
                if str(first).lower() == "false":
                    out[key] = "present"
            elif base.startswith(("StringNot", "ArnNot", "NumericNot")):
                out[key] = "not-" + str(first)
            elif base in ("StringLike", "ArnLike"):
                out[key] = str(first).replace("*", "x").replace("?", "x")
            elif operator.startswith("ForAllValues") or operator.startswith("ForAnyValue"):
                out[key] = [first]
            else:
                out[key] = first
    return out


def _concrete(resource: str, account: str) -> str:
    """One instance of a (wildcard) resource: an account wildcard becomes this account."""
    if resource == "*":
        return "*"
    parts = resource.split(":", 5)
    if len(parts) == 6 and parts[4] == "*":
        parts[4] = account
    return ":".join(parts).replace("*", "x").replace("?", "x")


# What each kind of role needs ---------------------------------------------------------------------------

#: Custom-resource types of the templates → what their provider's role must be able to do, given the
#: custom resource's (resolved) properties and the stage. A new custom resource fails the test below
#: until its needs are written here.
Need = Callable[[Any, Mapping[str, Any]], list[Request]]


def _restrict_default_sg(stage, props: Mapping[str, Any]) -> list[Request]:
    env = stage.environment
    sg = f"arn:aws:ec2:{env.region}:{env.account}:security-group/{props['DefaultSecurityGroupId']}"
    context = {"ec2:Vpc": _vpc_arn(stage)}
    return [
        Request(f"ec2:{verb}SecurityGroup{direction}", sg, context)
        for verb in ("Authorize", "Revoke")
        for direction in ("Ingress", "Egress")
    ]


def _lambda_logs(stage, function: str) -> list[Request]:
    env = stage.environment
    group = f"arn:aws:logs:{env.region}:{env.account}:log-group:/aws/lambda/{function}"
    return [
        Request("logs:CreateLogGroup", group),
        Request("logs:CreateLogStream", f"{group}:log-stream:s"),
        Request("logs:PutLogEvents", f"{group}:log-stream:s"),
    ]


CUSTOM_RESOURCE_NEEDS: dict[str, Need] = {
    "Custom::VpcRestrictDefaultSG": _restrict_default_sg,
}


def _custom_resources(stage):
    t = _t(stage)
    for stack, template in t.templates.items():
        for lid, res in template["Resources"].items():
            if res["Type"].startswith("Custom::") or res["Type"] == "AWS::CloudFormation::CustomResource":
                yield t, stack, lid, res


def _service_roles(stage, service: str) -> list[Role]:
    return [
        r
        for r in _t(stage).roles()
        if any(s.get("Principal", {}).get("Service") == service for s in statements(r.trust) if s["Effect"] == "Allow")
    ]


def _lake(stage, zone: str) -> tuple[str, str]:
    """(bucket name, key ARN) of a zone as the evaluator resolves them."""
    t, lake = _t(stage), stack_name(stage, "DataLake")
    _, value = t.exports[Names(stage.environment.name).bucket_export(zone)]
    bucket_lid = value["Ref"]
    bucket = t.resource(lake, bucket_lid)
    rule = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    key = t.resolve(lake, rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"])
    return t.ref(lake, bucket_lid), key


def _team_needs(stage, team: str) -> list[Request]:
    env = stage.environment
    pipeline = Names(env.name).pipeline(team, "tabular")
    raw, raw_key = _lake(stage, "raw")
    artifacts, _ = _lake(stage, "artifacts")
    sm = f"arn:aws:sagemaker:{env.region}:{env.account}"
    job = compliant_job(stage, team)
    t, team_stack = _t(stage), stack_name(stage, f"Team-{team}")
    job_key = t.get_att(team_stack, _lid(t, team_stack, "AWS::KMS::Key", "TeamJobKey"), "Arn")
    batch = f"arn:aws:s3:::{raw}/{team}/incoming/batch-1/data.csv"
    # The shared raw key only through S3 and for the team's own objects (object ARN as context); what
    # jobs write is encrypted with the team's job key.
    raw_context = {"kms:ViaService": f"s3.{env.region}.amazonaws.com", "kms:EncryptionContext:aws:s3:arn": batch}
    return [
        Request("s3:GetObject", batch),
        Request("kms:Decrypt", raw_key, raw_context),
        Request("s3:PutObject", f"arn:aws:s3:::{artifacts}/{pipeline}/exec-1/model.tar.gz"),
        Request("kms:GenerateDataKey", job_key),
        Request("sagemaker:CreateProcessingJob", f"{sm}:processing-job/pipelines-exec1-preprocess", job),
        Request("sagemaker:CreateTrainingJob", f"{sm}:training-job/pipelines-exec1-train", job),
        Request(
            "sagemaker:CreateModelPackage",
            f"{sm}:model-package/{Names(env.name).model_package_group(team)}/1",
            {"sagemaker:ModelApprovalStatus": "PendingManualApproval"},
        ),
    ]


# What nobody can, whatever their own policy says --------------------------------------------------------


#: Denials that rest on the allow list's scoping (resources, conditions), not on an explicit Deny.
IMPLICIT_DENY_CASES = frozenset(
    {
        "pass own role to lambda",
        "pass own role, no service",
        "pass a non-Flywheel role",
        "pass another env's role",
        "pass a role of another account",
        "assume a role",
        "cloudformation",
        "codebuild",
        "codepipeline",
        "glue delete",
        "glue read other env",
        "grant for a person",
        "open another vpc's SG",
        "pull a look-alike repository",
        "pull image account's other repo",
    }
)


def _cases(stage) -> list[tuple[str, Request, bool]]:
    env = stage.environment
    acct, region = env.account, env.region
    t = _t(stage)
    own_role = next(r for r in t.roles() if r.stack == stack_name(stage, "Team-churn")).arn
    to_sm = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    raw, raw_key = _lake(stage, "raw")
    trail_logs = t.get_att(
        stack_name(stage, "Audit"), _lid(t, stack_name(stage, "Audit"), "AWS::Logs::LogGroup", "AuditTrailLogs"), "Arn"
    )
    sec = stack_name(stage, "Security")
    flow_logs = t.get_att(sec, _lid(t, sec, "AWS::Logs::LogGroup", "NetworkFlowLogs"), "Arn")
    job = compliant_job(stage)
    sm = f"arn:aws:sagemaker:{region}:{acct}"
    images = SAGEMAKER_IMAGE_ACCOUNTS[region]

    def without(*keys: str) -> dict[str, Any]:
        return {k: v for k, v in job.items() if k not in keys}

    return [
        # PassRole: Flywheel roles of this environment, to SageMaker only
        ("pass own role to sagemaker", Request("iam:PassRole", own_role, to_sm), True),
        (
            "pass own role to lambda",
            Request("iam:PassRole", own_role, {"iam:PassedToService": "lambda.amazonaws.com"}),
            False,
        ),
        ("pass own role, no service", Request("iam:PassRole", own_role), False),
        ("pass a non-Flywheel role", Request("iam:PassRole", f"arn:aws:iam::{acct}:role/Admin", to_sm), False),
        (
            "pass another env's role",
            Request("iam:PassRole", f"arn:aws:iam::{acct}:role/flywheel/other/r", to_sm),
            False,
        ),
        ("pass a role of another account", Request("iam:PassRole", own_role.replace(acct, FOREIGN), to_sm), False),
        ("assume a role", Request("sts:AssumeRole", f"arn:aws:iam::{acct}:role/flywheel/{env.name}/r"), False),
        # IAM writes and the boundary itself
        ("attach a policy to a role", Request("iam:AttachRolePolicy", own_role), False),
        ("put an inline role policy", Request("iam:PutRolePolicy", own_role), False),
        ("create a role", Request("iam:CreateRole", f"arn:aws:iam::{acct}:role/flywheel/{env.name}/new"), False),
        ("remove a role's boundary", Request("iam:DeleteRolePermissionsBoundary", own_role), False),
        ("change a trust policy", Request("iam:UpdateAssumeRolePolicy", own_role), False),
        (
            "new boundary version",
            Request("iam:CreatePolicyVersion", f"arn:aws:iam::{acct}:policy/{Names(env.name).boundary}"),
            False,
        ),
        ("create an access key", Request("iam:CreateAccessKey", f"arn:aws:iam::{acct}:user/u"), False),
        # toolchain services are not workload services
        (
            "cloudformation",
            Request("cloudformation:CreateStack", f"arn:aws:cloudformation:{region}:{acct}:stack/x/1"),
            False,
        ),
        ("codebuild", Request("codebuild:StartBuild", f"arn:aws:codebuild:{region}:{acct}:project/x"), False),
        (
            "codepipeline",
            Request("codepipeline:StartPipelineExecution", f"arn:aws:codepipeline:{region}:{acct}:x"),
            False,
        ),
        (
            "glue delete",
            Request("glue:DeleteDatabase", f"arn:aws:glue:{region}:{acct}:database/flywheel_{env.name}_raw"),
            False,
        ),
        (
            "glue read own env",
            Request("glue:GetTable", f"arn:aws:glue:{region}:{acct}:table/flywheel_{env.name}_raw/t"),
            True,
        ),
        (
            "glue read other env",
            Request("glue:GetTable", f"arn:aws:glue:{region}:{acct}:table/flywheel_other_raw/t"),
            False,
        ),
        # S3 controls
        ("read lake data", Request("s3:GetObject", f"arn:aws:s3:::{raw}/churn/incoming/b/x.csv"), True),
        ("replication", Request("s3:PutReplicationConfiguration", f"arn:aws:s3:::{raw}"), False),
        ("lifecycle", Request("s3:PutLifecycleConfiguration", f"arn:aws:s3:::{raw}"), False),
        ("delete a version", Request("s3:DeleteObjectVersion", f"arn:aws:s3:::{raw}/churn/incoming/b/x.csv"), False),
        ("suspend versioning", Request("s3:PutBucketVersioning", f"arn:aws:s3:::{raw}"), False),
        ("ownership controls", Request("s3:PutBucketOwnershipControls", f"arn:aws:s3:::{raw}"), False),
        (
            "access point policy",
            Request("s3:PutAccessPointPolicy", f"arn:aws:s3:{region}:{acct}:accesspoint/ap"),
            False,
        ),
        ("create access point", Request("s3:CreateAccessPoint", f"arn:aws:s3:{region}:{acct}:accesspoint/ap"), False),
        ("account public access block", Request("s3:PutAccountPublicAccessBlock"), False),
        ("bucket public access block", Request("s3:PutBucketPublicAccessBlock", f"arn:aws:s3:::{raw}"), False),
        ("bucket policy", Request("s3:PutBucketPolicy", f"arn:aws:s3:::{raw}"), False),
        ("delete bucket policy", Request("s3:DeleteBucketPolicy", f"arn:aws:s3:::{raw}"), False),
        ("object lock config", Request("s3:PutBucketObjectLockConfiguration", f"arn:aws:s3:::{raw}"), False),
        ("bypass governance", Request("s3:BypassGovernanceRetention", f"arn:aws:s3:::{raw}/x"), False),
        ("bucket encryption", Request("s3:PutEncryptionConfiguration", f"arn:aws:s3:::{raw}"), False),
        # audit
        ("delete trail log group", Request("logs:DeleteLogGroup", trail_logs), False),
        (
            "delete trail log stream",
            Request("logs:DeleteLogStream", trail_logs.removesuffix("*") + "log-stream:s"),
            False,
        ),
        ("shorten trail retention", Request("logs:PutRetentionPolicy", trail_logs), False),
        ("delete flow-log group", Request("logs:DeleteLogGroup", flow_logs), False),
        ("shorten flow-log retention", Request("logs:PutRetentionPolicy", flow_logs), False),
        (
            "job log retention",
            Request("logs:PutRetentionPolicy", f"arn:aws:logs:{region}:{acct}:log-group:/aws/sagemaker/x"),
            True,
        ),
        ("stop the trail", Request("cloudtrail:StopLogging", f"arn:aws:cloudtrail:{region}:{acct}:trail/t"), False),
        (
            "drop data events",
            Request("cloudtrail:PutEventSelectors", f"arn:aws:cloudtrail:{region}:{acct}:trail/t"),
            False,
        ),
        ("delete flow logs", Request("ec2:DeleteFlowLogs"), False),
        # keys
        ("decrypt", Request("kms:Decrypt", raw_key), True),
        ("schedule key deletion", Request("kms:ScheduleKeyDeletion", raw_key), False),
        ("disable key", Request("kms:DisableKey", raw_key), False),
        ("key policy", Request("kms:PutKeyPolicy", raw_key), False),
        ("disable rotation", Request("kms:DisableKeyRotation", raw_key), False),
        ("grant for a person", Request("kms:CreateGrant", raw_key, {"kms:GrantIsForAWSResource": False}), False),
        ("grant for AWS resource", Request("kms:CreateGrant", raw_key, {"kms:GrantIsForAWSResource": True}), True),
        # network
        ("internet gateway", Request("ec2:CreateInternetGateway"), False),
        ("nat gateway", Request("ec2:CreateNatGateway"), False),
        ("peering", Request("ec2:CreateVpcPeeringConnection"), False),
        (
            "open another vpc's SG",
            Request(
                "ec2:AuthorizeSecurityGroupIngress",
                f"arn:aws:ec2:{region}:{acct}:security-group/sg-x",
                {"ec2:Vpc": f"arn:aws:ec2:{region}:{acct}:vpc/vpc-x"},
            ),
            False,
        ),
        # images
        *[
            (
                f"pull from image account {a}",
                Request("ecr:BatchGetImage", f"arn:aws:ecr:{region}:{a}:repository/sagemaker-xgboost"),
                True,
            )
            for a in images
        ],
        (
            "pull a look-alike repository",
            Request("ecr:BatchGetImage", f"arn:aws:ecr:{region}:{FOREIGN}:repository/sagemaker-xgboost"),
            False,
        ),
        (
            "pull image account's other repo",
            Request("ecr:BatchGetImage", f"arn:aws:ecr:{region}:{images[0]}:repository/other"),
            False,
        ),
        # SageMaker
        ("compliant processing job", Request("sagemaker:CreateProcessingJob", f"{sm}:processing-job/p", job), True),
        ("compliant training job", Request("sagemaker:CreateTrainingJob", f"{sm}:training-job/p", job), True),
        (
            "compliant tuning job",
            Request("sagemaker:CreateHyperParameterTuningJob", f"{sm}:hyper-parameter-tuning-job/p", job),
            True,
        ),
        (
            "processing job, no volume key",
            Request("sagemaker:CreateProcessingJob", f"{sm}:processing-job/p", without("sagemaker:VolumeKmsKey")),
            False,
        ),
        (
            "processing job, no output key",
            Request("sagemaker:CreateProcessingJob", f"{sm}:processing-job/p", without("sagemaker:OutputKmsKey")),
            False,
        ),
        (
            "processing job, no vpc",
            Request("sagemaker:CreateProcessingJob", f"{sm}:processing-job/p", without("sagemaker:VpcSubnets")),
            False,
        ),
        (
            "processing job, no isolation",
            Request("sagemaker:CreateProcessingJob", f"{sm}:processing-job/p", without("sagemaker:NetworkIsolation")),
            False,
        ),
        (
            "processing job, isolation off",
            Request(
                "sagemaker:CreateProcessingJob", f"{sm}:processing-job/p", {**job, "sagemaker:NetworkIsolation": False}
            ),
            False,
        ),
        (
            "training job, no traffic encryption",
            Request(
                "sagemaker:CreateTrainingJob",
                f"{sm}:training-job/p",
                without("sagemaker:InterContainerTrafficEncryption"),
            ),
            False,
        ),
        (
            "training job, traffic encryption off",
            Request(
                "sagemaker:CreateTrainingJob",
                f"{sm}:training-job/p",
                {**job, "sagemaker:InterContainerTrafficEncryption": False},
            ),
            False,
        ),
        (
            "transform job with keys",
            Request(
                "sagemaker:CreateTransformJob",
                f"{sm}:transform-job/p",
                {"sagemaker:VolumeKmsKey": "k", "sagemaker:OutputKmsKey": "k"},
            ),
            True,
        ),
        (
            "transform job, no output key",
            Request("sagemaker:CreateTransformJob", f"{sm}:transform-job/p", {"sagemaker:VolumeKmsKey": "k"}),
            False,
        ),
        (
            "transform job, no volume key",
            Request("sagemaker:CreateTransformJob", f"{sm}:transform-job/p", {"sagemaker:OutputKmsKey": "k"}),
            False,
        ),
        (
            "endpoint config with key",
            Request("sagemaker:CreateEndpointConfig", f"{sm}:endpoint-config/e", {"sagemaker:VolumeKmsKey": "k"}),
            True,
        ),
        ("endpoint config, no key", Request("sagemaker:CreateEndpointConfig", f"{sm}:endpoint-config/e"), False),
        (
            "model in vpc, isolated",
            Request(
                "sagemaker:CreateModel",
                f"{sm}:model/m",
                {"sagemaker:VpcSubnets": ["s"], "sagemaker:NetworkIsolation": True},
            ),
            True,
        ),
        (
            "model outside vpc",
            Request("sagemaker:CreateModel", f"{sm}:model/m", {"sagemaker:NetworkIsolation": True}),
            False,
        ),
        (
            "model not isolated",
            Request("sagemaker:CreateModel", f"{sm}:model/m", {"sagemaker:VpcSubnets": ["s"]}),
            False,
        ),
        (
            "notebook, internet on",
            Request(
                "sagemaker:CreateNotebookInstance",
                f"{sm}:notebook-instance/n",
                {"sagemaker:DirectInternetAccess": "Enabled", "sagemaker:RootAccess": "Enabled"},
            ),
            False,
        ),
        (
            "notebook, locked down",
            Request(
                "sagemaker:CreateNotebookInstance",
                f"{sm}:notebook-instance/n",
                {**job, "sagemaker:DirectInternetAccess": "Disabled", "sagemaker:RootAccess": "Disabled"},
            ),
            False,
        ),
        ("presigned domain url", Request("sagemaker:CreatePresignedDomainUrl", f"{sm}:user-profile/d/u"), False),
        (
            "presigned domain url via vpce",
            Request("sagemaker:CreatePresignedDomainUrl", f"{sm}:user-profile/d/u", {"aws:SourceVpce": "vpce-1"}),
            False,
        ),
        (
            "presigned notebook url",
            Request("sagemaker:CreatePresignedNotebookInstanceUrl", f"{sm}:notebook-instance/n"),
            False,
        ),
        ("studio domain", Request("sagemaker:CreateDomain", f"{sm}:domain/d", job), False),
        ("labeling job", Request("sagemaker:CreateLabelingJob", f"{sm}:labeling-job/l", job), False),
        ("automl", Request("sagemaker:CreateAutoMLJob", f"{sm}:automl-job/a", job), False),
        ("automl v2", Request("sagemaker:CreateAutoMLJobV2", f"{sm}:automl-job/a", job), False),
        (
            "monitoring schedule",
            Request("sagemaker:CreateMonitoringSchedule", f"{sm}:monitoring-schedule/m", job),
            False,
        ),
        (
            "data quality job definition",
            Request("sagemaker:CreateDataQualityJobDefinition", f"{sm}:data-quality-job-definition/d", job),
            False,
        ),
        (
            "register for review",
            Request(
                "sagemaker:CreateModelPackage",
                f"{sm}:model-package/g/1",
                {"sagemaker:ModelApprovalStatus": "PendingManualApproval"},
            ),
            True,
        ),
        (
            "register pre-approved",
            Request(
                "sagemaker:CreateModelPackage", f"{sm}:model-package/g/1", {"sagemaker:ModelApprovalStatus": "Approved"}
            ),
            False,
        ),
        ("register without status", Request("sagemaker:CreateModelPackage", f"{sm}:model-package/g/1"), False),
        (
            "approve a package",
            Request(
                "sagemaker:UpdateModelPackage", f"{sm}:model-package/g/1", {"sagemaker:ModelApprovalStatus": "Approved"}
            ),
            False,
        ),
    ]


# Trust policies of the roles this stage's platform stacks own --------------------------------------------

TRUSTS = [
    # (stack, role logical-id prefix, service, source ARN or None)
    ("Security", "CustomVpcRestrictDefaultSG", "lambda.amazonaws.com", None),
    (
        "Security",
        "NetworkVpcFlowLogIAMRole",
        "vpc-flow-logs.amazonaws.com",
        "arn:aws:ec2:{region}:{account}:vpc-flow-log/fl-1",
    ),
    ("Audit", "AuditTrailLogsRole", "cloudtrail.amazonaws.com", "arn:aws:cloudtrail:{region}:{account}:trail/t"),
]


# The checks -------------------------------------------------------------------------------------------


def dead_grant_problems(stage) -> list[str]:
    """Every identity grant of every role that the boundary voids (finding 1: the RestrictDefaultSG
    handler could not revoke the default group's rules, so the stack never deployed)."""
    dead = []
    base = baseline_context(stage)
    for role in _t(stage).roles():
        for document in role.identity:
            for stmt in statements(document):
                if stmt["Effect"] != "Allow" or "Action" not in stmt or "Resource" not in stmt:
                    continue
                actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
                resources = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
                # The caller is the role itself (the boundary admits approval changes by role path).
                context = {**base, "aws:PrincipalArn": role.arn, **_satisfying(stmt.get("Condition"))}
                for action in actions:
                    for resource in resources:
                        request = Request(
                            action.replace("*", ""), _concrete(resource, stage.environment.account), context
                        )
                        decision = role.can(request)
                        if not decision.allowed:
                            dead.append(f"{role.name}: {request.action} on {request.resource}: {decision.value}")
    return dead


def custom_resource_problems(stage) -> list[str]:
    """What each custom resource's provider role cannot do of its job (``CUSTOM_RESOURCE_NEEDS``)."""
    problems, seen = [], 0
    for t, stack, lid, res in _custom_resources(stage):
        if res["Type"] not in CUSTOM_RESOURCE_NEEDS:
            problems.append(f"{stack}/{lid}: write the needs of {res['Type']} in CUSTOM_RESOURCE_NEEDS")
            continue
        function_lid = res["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
        function = t.resource(stack, function_lid)
        role = t.role(stack, function["Properties"]["Role"]["Fn::GetAtt"][0])
        props = t.resolve(stack, res["Properties"])
        needs = CUSTOM_RESOURCE_NEEDS[res["Type"]](stage, props) + _lambda_logs(stage, t.ref(stack, function_lid))
        for request in needs:
            if not role.can(request).allowed:
                problems.append(f"{role.name} cannot {request.action} on {request.resource}")
        seen += 1
    return problems if seen else [*problems, "no custom resource found"]


def log_delivery_problems(stage) -> list[str]:
    """The flow-log and trail delivery roles can write their log group, and cannot delete it."""
    t = _t(stage)
    sec, audit = stack_name(stage, "Security"), stack_name(stage, "Audit")
    flow_verbs = ["CreateLogStream", "PutLogEvents", "DescribeLogStreams"]
    cases = [
        ("vpc-flow-logs.amazonaws.com", sec, "NetworkFlowLogs", flow_verbs),
        ("cloudtrail.amazonaws.com", audit, "AuditTrailLogs", ["CreateLogStream", "PutLogEvents"]),
    ]
    problems = []
    for service, stack, group_prefix, verbs in cases:
        roles = _service_roles(stage, service)
        if len(roles) != 1:
            problems.append(f"{len(roles)} roles trust {service}, expected one")
            continue
        (role,) = roles
        group = t.get_att(stack, _lid(t, stack, "AWS::Logs::LogGroup", group_prefix), "Arn")
        stream = group.removesuffix("*") + "log-stream:s"
        problems += [f"{role.name} cannot logs:{v} on {stream}" for v in verbs
                     if not role.can(Request(f"logs:{v}", stream)).allowed]  # fmt: skip
        if role.can(Request("logs:DeleteLogGroup", group)).allowed:
            problems.append(f"{role.name} can logs:DeleteLogGroup its own log group {group}")
    return problems


def team_pipeline_problems(stage, team: str) -> list[str]:
    """What no role of the team's stack can do of its pipeline's steps."""
    stack = stack_name(stage, f"Team-{team}")
    roles = [r for r in _t(stage).roles() if r.stack == stack]
    if not roles:
        return [f"no role in {stack}"]
    problems = [
        f"no {team} role can {request.action} {request.resource} {dump(request.context)}"
        for request in _team_needs(stage, team)
        if not any(r.can(request).allowed for r in roles)
    ]
    # and a role passes a team role to SageMaker (jobs run as the pipeline's roles)
    passed = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    if not any(r.can(Request("iam:PassRole", other.arn, passed)).allowed for r in roles for other in roles):
        problems.append(f"no {team} role can pass a {team} role to SageMaker")
    return problems


def admin_cap_problems(stage) -> list[str]:
    """An identity allowing ``*`` on ``*`` under the boundary: each case of ``_cases`` whose decision is
    wrong. Controls on actions the allow list also leaves out are explicit denies all the same (defence in
    depth: a later, broader allow must not reopen them); only scoping of allowed services may rely on the
    implicit deny (``IMPLICIT_DENY_CASES``)."""
    wrong = []
    cases = _cases(stage)
    for name, request, expected in cases:
        decision = admin_under_boundary(stage, request)
        if not expected and name not in IMPLICIT_DENY_CASES and decision is not Decision.EXPLICIT_DENY:
            wrong.append(f"{name}: {request.action} {request.resource} is {decision.value}, not an explicit deny")
        elif decision.allowed is not expected:
            wrong.append(f"{name}: {request.action} {request.resource} {dump(request.context)} -> {decision.value}")
    if len(cases) <= 60:
        wrong.append(f"only {len(cases)} boundary cases")
    return wrong


def unused_surface_problems(stage, actions) -> list[str]:
    """Each unused SageMaker action that is not explicitly denied even with a compliant, VPC-endpoint request."""
    env = stage.environment
    context = {**compliant_job(stage), "aws:SourceVpce": "vpce-1", "sagemaker:DirectInternetAccess": "Disabled"}
    resource = f"arn:aws:sagemaker:{env.region}:{env.account}:x/y"
    return [
        f"sagemaker:{action} is {decision.value} under the boundary, not an explicit deny"
        for action in actions
        if (decision := admin_under_boundary(stage, Request(f"sagemaker:{action}", resource, context)))
        is not Decision.EXPLICIT_DENY
    ]


def service_trust_problems(stage, stack: str, prefix: str, service: str, source_arn: str | None) -> list[str]:
    """What is wrong with a platform service role's trust: it must admit ``service`` for this account
    (and this account's source ARN) only."""
    role = _t(stage).role(stack_name(stage, stack), prefix)
    e = stage.environment
    principal = {"Service": service}
    own = {"aws:SourceAccount": e.account}
    if source_arn:
        own["aws:SourceArn"] = source_arn.format(region=e.region, account=e.account)

    def assume(context, who=principal):
        return evaluate([role.trust], Request("sts:AssumeRole", role.arn, context, who)).allowed

    problems = []
    if not assume(own):
        problems.append(f"{role.name}: {service} cannot assume it from this account")
    if assume({**own, "aws:SourceAccount": FOREIGN}):
        problems.append(f"{role.name}: {service} on behalf of another account (aws:SourceAccount) can assume it")
    if assume({}):
        problems.append(f"{role.name}: {service} can assume it without aws:SourceAccount")
    if source_arn and assume({**own, "aws:SourceArn": own["aws:SourceArn"].replace(e.account, FOREIGN)}):
        problems.append(f"{role.name}: another account's resource (aws:SourceArn) can have it assumed")
    if assume(own, {"Service": "ec2.amazonaws.com"}):
        problems.append(f"{role.name}: another service can assume it")
    return problems


def service_trusts_problems(stage) -> list[str]:
    """``service_trust_problems`` for every platform service role of ``TRUSTS``."""
    return [p for case in TRUSTS for p in service_trust_problems(stage, *case)]
