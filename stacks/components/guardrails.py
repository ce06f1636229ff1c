"""IAM guardrails: the permissions boundary every Flywheel role carries, and SageMaker job guardrails."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from naming import Names
from stacks.nag import acknowledge

# SageMaker actions that start compute reading or writing data; each needs its encryption/VPC keys.
_JOBS = ("CreateProcessingJob", "CreateTrainingJob", "CreateTransformJob", "CreateHyperParameterTuningJob")


def _sm(*actions: str) -> list[str]:
    return [f"sagemaker:{a}" for a in actions]


def sagemaker_guardrail_statements() -> list[iam.PolicyStatement]:
    """Deny SageMaker jobs/models/endpoint configs that lack encryption, VPC or network isolation.

    Condition keys from the SageMaker service authorization reference: a ``Null`` test denies the call
    when the request omits the key (no KMS key / no subnets). Isolation and traffic encryption default to
    *off* when a request leaves them out, so those use ``BoolIfExists``: deny when the key is false *or
    absent*. That is why each statement lists only actions that support its key (``CreateTransformJob``
    has no ``sagemaker:NetworkIsolation`` key — a transform job inherits isolation from its model).
    """
    return [
        iam.PolicyStatement(
            sid="DenyJobsWithoutVolumeKmsKey",
            effect=iam.Effect.DENY,
            actions=_sm(*_JOBS, "CreateEndpointConfig"),
            resources=["*"],
            conditions={"Null": {"sagemaker:VolumeKmsKey": "true"}},
        ),
        iam.PolicyStatement(
            sid="DenyJobsWithoutOutputKmsKey",
            effect=iam.Effect.DENY,
            actions=_sm(*_JOBS),
            resources=["*"],
            conditions={"Null": {"sagemaker:OutputKmsKey": "true"}},
        ),
        iam.PolicyStatement(
            sid="DenyJobsAndModelsOutsideVpc",
            effect=iam.Effect.DENY,
            actions=_sm("CreateProcessingJob", "CreateTrainingJob", "CreateHyperParameterTuningJob", "CreateModel"),
            resources=["*"],
            conditions={"Null": {"sagemaker:VpcSubnets": "true"}},
        ),
        iam.PolicyStatement(
            sid="DenyJobsAndModelsWithoutNetworkIsolation",
            effect=iam.Effect.DENY,
            actions=_sm("CreateProcessingJob", "CreateTrainingJob", "CreateHyperParameterTuningJob", "CreateModel"),
            resources=["*"],
            conditions={"BoolIfExists": {"sagemaker:NetworkIsolation": "false"}},
        ),
        iam.PolicyStatement(
            sid="DenyJobsWithoutInterContainerEncryption",
            effect=iam.Effect.DENY,
            actions=_sm("CreateProcessingJob", "CreateTrainingJob", "CreateHyperParameterTuningJob"),
            resources=["*"],
            conditions={"BoolIfExists": {"sagemaker:InterContainerTrafficEncryption": "false"}},
        ),
    ]


class Guardrails(Construct):
    """``boundary``: the permissions boundary; ``sagemaker_guardrails``: a policy for human roles too.

    The boundary caps what any Flywheel role can ever do: the services the platform uses, minus IAM
    escalation, audit tampering, key destruction and unencrypted/unisolated SageMaker compute.
    """

    def __init__(self, scope: Construct, construct_id: str, *, env_name: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.boundary_name = Names(env_name).boundary
        boundary_arn = f"arn:{stack.partition}:iam::{stack.account}:policy/{self.boundary_name}"
        self.boundary = iam.ManagedPolicy(
            self,
            "PermissionsBoundary",
            # A fixed name so stacks of every team can reference the boundary without a cross-stack export.
            managed_policy_name=self.boundary_name,
            description="Flywheel permissions boundary: the most any Flywheel role may do",
            statements=[
                iam.PolicyStatement(
                    sid="AllowPlatformServices",
                    actions=[
                        "s3:*",
                        "kms:Decrypt",
                        "kms:Encrypt",
                        "kms:GenerateDataKey*",
                        "kms:ReEncrypt*",
                        "kms:DescribeKey",
                        "kms:CreateGrant",
                        "sagemaker:*",
                        "logs:*",
                        "cloudwatch:*",
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                        "ecr:GetAuthorizationToken",
                        "ec2:CreateNetworkInterface",
                        "ec2:CreateNetworkInterfacePermission",
                        "ec2:DeleteNetworkInterface",
                        "ec2:DeleteNetworkInterfacePermission",
                        "ec2:Describe*",
                        "glue:*",
                        "events:*",
                        "sns:Publish",
                        "sqs:*",
                        "dynamodb:*",
                        "lambda:InvokeFunction",
                        "xray:PutTraceSegments",
                        "xray:PutTelemetryRecords",
                        "iam:PassRole",
                        "sts:AssumeRole",
                        "cloudformation:*",
                        "ssm:GetParameter*",
                        "codebuild:*",
                        "codepipeline:*",
                        "codeconnections:UseConnection",
                    ],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="DenyIdentityEscalation",
                    effect=iam.Effect.DENY,
                    actions=[
                        "iam:CreateUser",
                        "iam:CreateAccessKey",
                        "iam:CreateLoginProfile",
                        "iam:AttachUserPolicy",
                        "iam:PutUserPolicy",
                        "organizations:*",
                        "account:*",
                    ],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="DenyBoundaryTampering",
                    effect=iam.Effect.DENY,
                    actions=[
                        "iam:CreatePolicyVersion",
                        "iam:DeletePolicy",
                        "iam:DeletePolicyVersion",
                        "iam:SetDefaultPolicyVersion",
                    ],
                    resources=[boundary_arn],
                ),
                iam.PolicyStatement(
                    sid="DenyRemovingBoundaryFromRoles",
                    effect=iam.Effect.DENY,
                    actions=["iam:DeleteRolePermissionsBoundary"],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="DenyAuditAndKeyTampering",
                    effect=iam.Effect.DENY,
                    actions=[
                        "cloudtrail:StopLogging",
                        "cloudtrail:DeleteTrail",
                        "cloudtrail:UpdateTrail",
                        "kms:ScheduleKeyDeletion",
                        "kms:DisableKey",
                        "kms:DisableKeyRotation",
                        "kms:PutKeyPolicy",
                        "s3:PutBucketPublicAccessBlock",
                        "s3:PutBucketPolicy",
                        "s3:DeleteBucketPolicy",
                        "s3:PutBucketObjectLockConfiguration",
                        "s3:BypassGovernanceRetention",
                        "ec2:CreateInternetGateway",
                        "ec2:AttachInternetGateway",
                        "ec2:CreateNatGateway",
                    ],
                    resources=["*"],
                ),
                *sagemaker_guardrail_statements(),
            ],
        )
        self._acknowledge_boundary_wildcards()
        self.sagemaker_guardrails = iam.ManagedPolicy(
            self,
            "SageMakerGuardrails",
            description="Deny SageMaker compute without KMS keys, VPC, network isolation or traffic encryption",
            statements=sagemaker_guardrail_statements(),
        )

    def _acknowledge_boundary_wildcards(self) -> None:
        reason = (
            "A permissions boundary is a ceiling, not a grant: it never allows anything by itself, so "
            "service-wide actions here only bound what each role's own least-privilege policy may grant"
        )
        statements = self.boundary.document.to_json()["Statement"]
        allow = next(s for s in statements if s.get("Sid") == "AllowPlatformServices")
        for action in allow["Action"]:
            if "*" in action:
                acknowledge(self.boundary, f"AwsSolutions-IAM5[Action::{action}]", reason)
        acknowledge(self.boundary, "AwsSolutions-IAM5[Resource::*]", reason)
        for pack in ("HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321"):
            acknowledge(self.boundary, f"{pack}-IAMPolicyNoStatementsWithFullAccess", reason)


def boundary_from_name(scope: Construct, construct_id: str, *, env_name: str) -> iam.IManagedPolicy:
    """Reference the boundary from another stack by its fixed name (no export, no lookup)."""
    return iam.ManagedPolicy.from_managed_policy_name(scope, construct_id, Names(env_name).boundary)
