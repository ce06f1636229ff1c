"""IAM guardrails: the permissions boundary every Flywheel workload role carries (docs/security.md).

The boundary is the most any Flywheel role may ever do, whatever its own policy says. It

* allows the services the platform's workloads call, and nothing of the deploy toolchain
  (CloudFormation, CodeBuild, CodePipeline, connections: the toolchain gets its own boundary);
* lets roles pass only Flywheel roles of this environment (path ``/flywheel/<env>/``, set on every
  role of the stage by :class:`RolePath`) and only to SageMaker; assumes no role (no workload needs to);
* pins ECR pulls to this account and the region's SageMaker image accounts, Glue to this environment's
  catalog, security-group rule changes to the Flywheel VPC (CDK's RestrictDefaultSG handler);
* explicitly denies IAM writes, audit and key tampering, bucket-control changes (policies, public
  access, replication, lifecycle, versioning, ownership, object lock, access points, version deletes),
  deletion or retention changes of the audit log groups, every SageMaker surface Flywheel does not use
  (notebooks, Studio domains and presigned URLs, labeling, AutoML, model-monitor schedules, ...), and
  SageMaker compute or models without KMS keys, VPC, network isolation or traffic encryption.

The SageMaker guardrails used to be a second, standalone managed policy attached to nothing; they are
part of the boundary, so they bind every role that carries it (and human roles, when they come, carry
a boundary too) and there is no orphan policy that looks like a control but binds nobody.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jsii
from aws_cdk import IAspect, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct, IConstruct

from naming import APPROVER, ERASURE_ROLE, PREFIX, Names
from stacks.components.lifecycle import DEPLOY_ROLE_KIND
from stacks.components.sagemaker_images import image_accounts
from stacks.nag import acknowledge

# SageMaker actions that start compute reading or writing data; each needs its encryption/VPC keys.
_JOBS = ("CreateProcessingJob", "CreateTrainingJob", "CreateTransformJob", "CreateHyperParameterTuningJob")

#: SageMaker surfaces Flywheel does not use: interactive access (notebooks, Studio, presigned URLs),
#: human labeling, AutoML, model-monitor (Flywheel runs its own drift monitor), HyperPod clusters,
#: compilation/edge/recommendation jobs and MLflow servers. Denied outright rather than conditioned:
#: each would be a way around the job guardrails below (its own network, root access, keys).
UNUSED_SAGEMAKER_ACTIONS = (
    "CreateNotebookInstance",
    "UpdateNotebookInstance",
    "StartNotebookInstance",
    "CreateNotebookInstanceLifecycleConfig",
    "UpdateNotebookInstanceLifecycleConfig",
    "CreatePresignedNotebookInstanceUrl",
    "CreateDomain",
    "UpdateDomain",
    "CreateUserProfile",
    "CreateSpace",
    "CreateApp",
    "CreatePresignedDomainUrl",
    "CreateStudioLifecycleConfig",
    "CreateCodeRepository",
    "CreateLabelingJob",
    "CreateWorkforce",
    "CreateWorkteam",
    "CreateFlowDefinition",
    "CreateHumanTaskUi",
    "CreateAutoMLJob",
    "CreateAutoMLJobV2",
    "CreateMonitoringSchedule",
    "UpdateMonitoringSchedule",
    "CreateDataQualityJobDefinition",
    "CreateModelQualityJobDefinition",
    "CreateModelBiasJobDefinition",
    "CreateModelExplainabilityJobDefinition",
    "CreateCluster",
    "UpdateCluster",
    "CreateCompilationJob",
    "CreateEdgePackagingJob",
    "CreateInferenceRecommendationsJob",
    "CreateOptimizationJob",
    "CreateMlflowTrackingServer",
    "CreatePresignedMlflowTrackingServerUrl",
)

#: Bucket controls no workload role may change (the stacks set them; only CloudFormation changes them).
BUCKET_CONTROL_ACTIONS = (
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutAccountPublicAccessBlock",
    "s3:PutAccessPointPublicAccessBlock",
    "s3:PutBucketObjectLockConfiguration",
    "s3:BypassGovernanceRetention",
    "s3:PutReplicationConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketVersioning",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketAcl",
    "s3:PutObjectAcl",
    "s3:PutObjectVersionAcl",
    "s3:PutEncryptionConfiguration",
    "s3:PutBucketLogging",
    "s3:DeleteBucket",
    "s3:CreateAccessPoint",
    "s3:PutAccessPointPolicy",
    "s3:DeleteAccessPointPolicy",
    "s3:CreateAccessPointForObjectLambda",
    "s3:PutAccessPointPolicyForObjectLambda",
    "s3:CreateMultiRegionAccessPoint",
    "s3:PutMultiRegionAccessPointPolicy",
)

#: What must never happen to the audit log groups (trail, VPC flow logs).
AUDIT_LOG_ACTIONS = (
    "logs:DeleteLogGroup",
    "logs:DeleteLogStream",
    "logs:PutRetentionPolicy",
    "logs:DeleteRetentionPolicy",
    "logs:AssociateKmsKey",
    "logs:DisassociateKmsKey",
    "logs:PutSubscriptionFilter",
    "logs:DeleteSubscriptionFilter",
    "logs:PutDataProtectionPolicy",
    "logs:DeleteDataProtectionPolicy",
)

#: The services SageMaker roles are passed to: SageMaker runs the jobs of a pipeline as its role.
PASSED_TO_SERVICES = ("sagemaker.amazonaws.com",)


def role_path(env_name: str) -> str:
    """``/flywheel/<env>/``: the IAM path of every role of an environment's stage.

    A path, not a name prefix: CloudFormation truncates generated role names (stack name included) to
    64 characters, a path is exact, so ``iam:PassRole`` can name this environment's roles only.
    """
    return f"/{PREFIX}/{env_name}/"


def audit_log_group_name(env_name: str, purpose: str) -> str:
    """``/flywheel/<env>/audit/<purpose>``: audit log groups have fixed names the boundary protects."""
    return f"/{PREFIX}/{env_name}/audit/{purpose}"


def _sm(*actions: str) -> list[str]:
    return [f"sagemaker:{a}" for a in actions]


#: The models of a serverless team's endpoint: ``<endpoint>-v<version>-<digest>`` (lambdas/deploy/actions.py).
SERVERLESS_MODEL_SUFFIX = "-v*"


@dataclass(frozen=True)
class ServerlessException:
    """The one exception to "models run network-isolated in the VPC": serverless teams' models.

    SageMaker Serverless Inference supports no VPC config, network isolation or data capture (AWS feature
    exclusions). ``model_arns``: the serverless teams' model names (``model/<endpoint>-v*``), the only
    models that may be created outside the VPC and not isolated, and only by a principal whose ARN
    matches ``principal_pattern`` (this environment's deploy roles, ``/flywheel/<env>/deploy/``).
    """

    model_arns: tuple[str, ...]
    principal_pattern: str


def serverless_exception(
    env_name: str, endpoints: Sequence[str], *, partition: str, region: str, account: str
) -> ServerlessException | None:
    """The exception for the serverless teams' ``endpoints`` (None: no serverless team, no exception)."""
    if not endpoints:
        return None
    sm = f"arn:{partition}:sagemaker:{region}:{account}"
    return ServerlessException(
        model_arns=tuple(f"{sm}:model/{e}{SERVERLESS_MODEL_SUFFIX}" for e in sorted(set(endpoints))),
        principal_pattern=Names(env_name).role_arn_pattern(DEPLOY_ROLE_KIND, account=account, partition=partition),
    )


def sagemaker_guardrail_statements(
    approver_roles: str, serverless: ServerlessException | None = None
) -> list[iam.PolicyStatement]:
    """Deny SageMaker jobs/models/endpoint configs that lack encryption, VPC or network isolation.

    Condition keys from the SageMaker service authorization reference: a ``Null`` test denies the call
    when the request omits the key (no KMS key / no subnets). Isolation and traffic encryption default to
    *off* when a request leaves them out, so those use ``BoolIfExists``: deny when the key is false *or
    absent*. That is why each statement lists only actions that support its key (``CreateTransformJob``
    has no ``sagemaker:NetworkIsolation`` key — a transform job inherits isolation from its model).
    ``approver_roles``: the ARN pattern of the approver personas (path ``/flywheel/<env>/approver/``), the
    only roles the boundary lets change a model package.

    ``serverless``: the models of serverless teams are left out of the model VPC/isolation denies
    (``NotResource``), and every other principal is denied creating them at all.
    """
    jobs = ("CreateProcessingJob", "CreateTrainingJob", "CreateHyperParameterTuningJob")
    models = list(serverless.model_arns) if serverless else None  # NotResource: every model but these
    exception = (
        [
            # Only this environment's deploy roles may create a serverless team's models (outside the VPC).
            iam.PolicyStatement(
                sid="DenyServerlessModelsToOtherPrincipals",
                effect=iam.Effect.DENY,
                actions=_sm("CreateModel"),
                resources=list(serverless.model_arns),
                conditions={"ArnNotLike": {"aws:PrincipalArn": serverless.principal_pattern}},
            )
        ]
        if serverless
        else []
    )
    return [
        iam.PolicyStatement(
            sid="DenyJobsOutsideVpc",
            effect=iam.Effect.DENY,
            actions=_sm(*jobs),
            resources=["*"],
            conditions={"Null": {"sagemaker:VpcSubnets": "true"}},
        ),
        iam.PolicyStatement(
            sid="DenyJobsWithoutNetworkIsolation",
            effect=iam.Effect.DENY,
            actions=_sm(*jobs),
            resources=["*"],
            conditions={"BoolIfExists": {"sagemaker:NetworkIsolation": "false"}},
        ),
        iam.PolicyStatement(
            sid="DenyModelsOutsideVpc",
            effect=iam.Effect.DENY,
            actions=_sm("CreateModel"),
            conditions={"Null": {"sagemaker:VpcSubnets": "true"}},
            resources=None if models else ["*"],
            not_resources=models,
        ),
        iam.PolicyStatement(
            sid="DenyModelsWithoutNetworkIsolation",
            effect=iam.Effect.DENY,
            actions=_sm("CreateModel"),
            conditions={"BoolIfExists": {"sagemaker:NetworkIsolation": "false"}},
            resources=None if models else ["*"],
            not_resources=models,
        ),
        *exception,
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
            sid="DenyJobsWithoutInterContainerEncryption",
            effect=iam.Effect.DENY,
            actions=_sm("CreateProcessingJob", "CreateTrainingJob", "CreateHyperParameterTuningJob"),
            resources=["*"],
            conditions={"BoolIfExists": {"sagemaker:InterContainerTrafficEncryption": "false"}},
        ),
        iam.PolicyStatement(
            sid="DenyUnusedSageMakerSurfaces",
            effect=iam.Effect.DENY,
            actions=_sm(*UNUSED_SAGEMAKER_ACTIONS),
            resources=["*"],
        ),
        # Models are registered for review, never pre-approved; approval belongs to the approver persona
        # (stacks/components/personas.py): no other Flywheel role may change a package (approval or not).
        iam.PolicyStatement(
            sid="DenyRegisteringApprovedModels",
            effect=iam.Effect.DENY,
            actions=_sm("CreateModelPackage"),
            resources=["*"],
            conditions={"StringNotEquals": {"sagemaker:ModelApprovalStatus": "PendingManualApproval"}},
        ),
        iam.PolicyStatement(
            sid="DenyModelPackageUpdatesButApprovers",
            effect=iam.Effect.DENY,
            actions=_sm("UpdateModelPackage"),
            resources=["*"],
            conditions={"ArnNotLike": {"aws:PrincipalArn": approver_roles}},
        ),
    ]


class Guardrails(Construct):
    """``boundary``: the permissions boundary (a ``ManagedPolicy`` with a fixed name, ``boundary_name``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        vpc: ec2.IVpc,
        serverless_endpoints: Sequence[str] = (),
    ) -> None:
        """``serverless_endpoints``: the endpoints of the environment's serverless teams, whose models are
        the boundary's one exception to network isolation in the VPC (:class:`ServerlessException`)."""
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        partition, region, account = stack.partition, stack.region, stack.account
        self.serverless = serverless_exception(
            env_name, serverless_endpoints, partition=partition, region=region, account=account
        )
        self.boundary_name = Names(env_name).boundary
        self.role_path = role_path(env_name)
        glue = f"arn:{partition}:glue:{region}:{account}"
        database = f"{PREFIX}_{env_name}_*"
        images = [f"arn:{partition}:ecr:{region}:{a}:repository/sagemaker-*" for a in image_accounts(region)]
        audit_logs = f"arn:{partition}:logs:{region}:{account}:log-group:{audit_log_group_name(env_name, '*')}"
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
                        "sagemaker:*",
                        "logs:*",
                        "cloudwatch:*",
                        "ecr:GetAuthorizationToken",
                        "ec2:CreateNetworkInterface",
                        "ec2:CreateNetworkInterfacePermission",
                        "ec2:DeleteNetworkInterface",
                        "ec2:DeleteNetworkInterfacePermission",
                        "ec2:Describe*",
                        "events:*",
                        "sns:Publish",
                        "sqs:*",
                        "dynamodb:*",
                        "lambda:InvokeFunction",
                        "states:StartExecution",  # the drift-monitor schedule starts its state machine
                        "xray:PutTraceSegments",
                        "xray:PutTelemetryRecords",
                        "ssm:GetParameter*",
                    ],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="AllowKeyGrantsForAwsResourcesOnly",
                    actions=["kms:CreateGrant"],
                    resources=["*"],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                ),
                iam.PolicyStatement(
                    sid="AllowPassingFlywheelRolesToSageMaker",
                    actions=["iam:PassRole"],
                    resources=[f"arn:{partition}:iam::{account}:role{self.role_path}*"],
                    conditions={"StringEquals": {"iam:PassedToService": list(PASSED_TO_SERVICES)}},
                ),
                iam.PolicyStatement(
                    sid="AllowPullingOwnAndSageMakerImages",
                    actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                    resources=[f"arn:{partition}:ecr:{region}:{account}:repository/*", *images],
                ),
                iam.PolicyStatement(
                    sid="AllowGlueCatalogOfThisEnvironment",
                    actions=[
                        "glue:GetDatabase",
                        "glue:GetDatabases",
                        "glue:GetTable",
                        "glue:GetTables",
                        "glue:GetPartition",
                        "glue:GetPartitions",
                        "glue:BatchGetPartition",
                        "glue:CreatePartition",
                        "glue:BatchCreatePartition",
                        "glue:UpdatePartition",
                    ],
                    resources=[f"{glue}:catalog", f"{glue}:database/{database}", f"{glue}:table/{database}/*"],
                ),
                # CDK's RestrictDefaultSG handler revokes the default group's rules (and restores them on
                # delete): rule changes on security groups of the Flywheel VPC only.
                iam.PolicyStatement(
                    sid="AllowRuleChangesOnFlywheelSecurityGroups",
                    actions=[
                        "ec2:AuthorizeSecurityGroupIngress",
                        "ec2:AuthorizeSecurityGroupEgress",
                        "ec2:RevokeSecurityGroupIngress",
                        "ec2:RevokeSecurityGroupEgress",
                    ],
                    resources=[f"arn:{partition}:ec2:{region}:{account}:security-group/*"],
                    conditions={"ArnEquals": {"ec2:Vpc": f"arn:{partition}:ec2:{region}:{account}:vpc/{vpc.vpc_id}"}},
                ),
                iam.PolicyStatement(
                    sid="DenyIdentityChanges",
                    effect=iam.Effect.DENY,
                    # Every IAM write (users, keys, roles, policies, boundaries, trust, profiles): a workload
                    # role never changes identities; CloudFormation (not bounded by this) does.
                    actions=[
                        "iam:Add*",
                        "iam:Attach*",
                        "iam:Change*",
                        "iam:Create*",
                        "iam:Deactivate*",
                        "iam:Delete*",
                        "iam:Detach*",
                        "iam:Enable*",
                        "iam:Put*",
                        "iam:Remove*",
                        "iam:Reset*",
                        "iam:Resync*",
                        "iam:Set*",
                        "iam:Tag*",
                        "iam:Untag*",
                        "iam:Update*",
                        "iam:Upload*",
                        "organizations:*",
                        "account:*",
                    ],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="DenyAuditTampering",
                    effect=iam.Effect.DENY,
                    actions=[
                        "cloudtrail:StopLogging",
                        "cloudtrail:DeleteTrail",
                        "cloudtrail:UpdateTrail",
                        "cloudtrail:PutEventSelectors",
                        "cloudtrail:PutInsightSelectors",
                        "ec2:DeleteFlowLogs",
                    ],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="DenyAuditLogGroupTampering",
                    effect=iam.Effect.DENY,
                    actions=list(AUDIT_LOG_ACTIONS),
                    resources=[audit_logs, f"{audit_logs}:*"],
                ),
                iam.PolicyStatement(
                    sid="DenyKeyDestructionAndPolicyChanges",
                    effect=iam.Effect.DENY,
                    actions=[
                        "kms:ScheduleKeyDeletion",
                        "kms:DisableKey",
                        "kms:DisableKeyRotation",
                        "kms:PutKeyPolicy",
                        "kms:DeleteImportedKeyMaterial",
                        "kms:CreateAlias",
                        "kms:UpdateAlias",
                        "kms:DeleteAlias",
                        "kms:ReplicateKey",
                    ],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="DenyBucketControlChanges",
                    effect=iam.Effect.DENY,
                    actions=list(BUCKET_CONTROL_ACTIONS),
                    resources=["*"],
                ),
                # History is never destroyed, except by the erasure handler (right to erasure: a subject's
                # rows must leave every noncurrent version too; docs/privacy.md). Its own policy scopes it to
                # its team's PII-zone prefixes.
                iam.PolicyStatement(
                    sid="DenyVersionDeletionButErasure",
                    effect=iam.Effect.DENY,
                    actions=["s3:DeleteObjectVersion"],
                    resources=["*"],
                    conditions={
                        "ArnNotLike": {
                            "aws:PrincipalArn": Names(env_name).role_arn_pattern(
                                ERASURE_ROLE, account=account, partition=partition
                            )
                        }
                    },
                ),
                iam.PolicyStatement(
                    sid="DenyNetworkEscape",
                    effect=iam.Effect.DENY,
                    actions=[
                        "ec2:CreateInternetGateway",
                        "ec2:AttachInternetGateway",
                        "ec2:CreateEgressOnlyInternetGateway",
                        "ec2:CreateNatGateway",
                        "ec2:CreateVpcPeeringConnection",
                        "ec2:AcceptVpcPeeringConnection",
                        "ec2:CreateRoute",
                        "ec2:ReplaceRoute",
                        "ec2:ModifyVpcEndpoint",
                    ],
                    resources=["*"],
                ),
                *sagemaker_guardrail_statements(
                    Names(env_name).role_arn_pattern(APPROVER, account=account, partition=partition),
                    self.serverless,
                ),
            ],
        )
        self._acknowledge_boundary_wildcards()

    def _acknowledge_boundary_wildcards(self) -> None:
        reason = (
            "A permissions boundary is a ceiling, not a grant: it never allows anything by itself, so "
            "service-wide actions here only bound what each role's own least-privilege policy may grant"
        )
        statements = self.boundary.document.to_json()["Statement"]
        for stmt in statements:
            if stmt.get("Effect") != "Allow":
                continue
            actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
            for action in actions:
                if "*" in action:
                    acknowledge(self.boundary, f"AwsSolutions-IAM5[Action::{action}]", reason)
        for resource in sorted(_wildcard_resources(statements)):
            acknowledge(self.boundary, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
        for pack in ("HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321"):
            acknowledge(self.boundary, f"{pack}-IAMPolicyNoStatementsWithFullAccess", reason)


def _wildcard_resources(statements: list[dict]) -> set[str]:
    """Resources of the Allow statements that hold a wildcard, as cdk-nag names them (tokens resolved)."""
    out: set[str] = set()
    for stmt in statements:
        if stmt.get("Effect") != "Allow":
            continue
        resources = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
        out |= {r for r in resources if isinstance(r, str) and "*" in r}
    return out


def boundary_from_name(scope: Construct, construct_id: str, *, env_name: str) -> iam.IManagedPolicy:
    """Reference the boundary from another stack by its fixed name (no export, no lookup)."""
    return iam.ManagedPolicy.from_managed_policy_name(scope, construct_id, Names(env_name).boundary)


@jsii.implements(IAspect)
class RolePath:
    """Put every IAM role under ``path`` (CDK's own custom-resource provider roles included)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, iam.CfnRole):
            node.path = self.path
        elif getattr(node, "cfn_resource_type", None) == "AWS::IAM::Role":
            node.add_property_override("Path", self.path)  # type: ignore[attr-defined]
