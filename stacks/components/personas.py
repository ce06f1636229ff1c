"""People's roles per team: data scientist, approver, operator (issue 12; docs/teams.md, docs/access.md).

Each persona is one IAM role per team and environment with a fixed name people assume,
``flywheel-<env>-<team>-<persona>`` at path ``/flywheel/<env>/<persona>/`` (the path is its kind: the
boundary admits approval changes from the ``approver`` path only; the raw zone's policies admit none of
these paths). Every persona role carries the environment's permissions boundary (the stage applies it),
is assumable by the principals of ``principals:`` in ``teams.yaml`` (an account id, or an IAM role ARN
pattern such as an SSO permission set's role; none = the environment's own account), and admits session
tags only with the team's own values (``flywheel:team``, ``flywheel:persona``), so a session can never be
tagged as another team; ``sts:SetSourceIdentity`` is allowed so CloudTrail names the person.

What each may do (least privilege, every resource of the team's own, by exact name or the team's prefix):

* ``data-scientist``: read the team's curated and features outputs (its pipelines' prefixes) and reports;
  start, stop, retry and inspect the team's pipelines and their (team-tagged) jobs; read the team's
  registry. Explicitly denied: approval changes, the raw zone (objects and key).
* ``approver``: read the team's reports and registry; approve or reject the team's packages
  (``UpdateModelPackage`` with ``ModelApprovalStatus`` Approved/Rejected only). Explicitly denied:
  starting or changing pipelines and any S3 write or delete, the raw zone.
* ``operator``: read the team's alarms, the lifecycle functions' and endpoint's logs, the endpoint's
  status; roll the endpoint back to one of its earlier endpoint configs (``UpdateEndpoint``). Explicitly
  denied: every S3 object read/write, every decrypt, approval changes, pipeline starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Duration, Stack, Tags
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

import naming
from naming import Names
from stacks.components.data_lake import bucket_export_name, imported_bucket_name
from stacks.nag import acknowledge

#: The session (and role) tags of a persona: the team and the persona.
TEAM_TAG = "flywheel:team"
PERSONA_TAG = "flywheel:persona"
#: How long a person's session lasts (the console/CLI re-assumes after this).
SESSION_DURATION = Duration.hours(1)
#: Approval statuses the approver may set.
DECISIONS = ("Approved", "Rejected")
#: SageMaker job kinds a team's pipelines run (what a data scientist may describe, tagged with the team).
JOB_KINDS = ("processing", "training", "transform")
READ = ("s3:GetObject", "s3:GetObjectVersion")
S3_WRITES = (
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",
    "s3:PutObjectTagging",
    "s3:RestoreObject",
)
PIPELINE_CHANGES = (
    "sagemaker:StartPipelineExecution",
    "sagemaker:RetryPipelineExecution",
    "sagemaker:StopPipelineExecution",
    "sagemaker:CreatePipeline",
    "sagemaker:UpdatePipeline",
    "sagemaker:DeletePipeline",
    "sagemaker:UpdatePipelineExecution",
)
APPROVAL_CHANGES = (
    "sagemaker:UpdateModelPackage",
    "sagemaker:CreateModelPackage",
    "sagemaker:DeleteModelPackage",
    "sagemaker:DeleteModelPackageGroup",
)


@dataclass(frozen=True)
class PersonaTargets:
    """The team's resources the personas act on (names and constructs from ``MlTeam``)."""

    pipeline_names: Sequence[str]
    group_name: str
    endpoint_name: str
    zone_keys: Mapping[str, kms.IKey]
    job_key: kms.IKey
    #: The team's alarms (ARNs) and log groups the operator reads (the lifecycle's, when deployed).
    alarms: Sequence[cloudwatch.IAlarm] = ()
    log_groups: Sequence[logs.ILogGroup] = ()
    buckets: Mapping[str, str] | None = None


class TeamPersonas(Construct):
    """``roles`` / ``policies``: persona (``naming.PERSONAS``) → its role and managed policy."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        team_name: str,
        principals: Mapping[str, Sequence[str]],
        targets: PersonaTargets,
    ) -> None:
        """``principals``: persona → account ids / role ARN patterns (config/personas.py); empty = own account."""
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.env_name, self.team_name, self.targets = env_name, team_name, targets
        self.names = Names(env_name)
        p, r, a = stack.partition, stack.region, stack.account
        self._sm = f"arn:{p}:sagemaker:{r}:{a}"
        self._partition = p
        self._region = r
        self.roles: dict[str, iam.Role] = {}
        self.policies: dict[str, iam.ManagedPolicy] = {}
        statements = {
            naming.DATA_SCIENTIST: self._data_scientist(),
            naming.APPROVER: self._approver(),
            naming.OPERATOR: self._operator(),
        }
        for persona in naming.PERSONAS:
            role = self._role(persona, tuple(principals.get(persona, ())), stack.account)
            document, reasons = statements[persona]
            policy = iam.ManagedPolicy(
                self,
                f"{_pascal(persona)}Policy",
                description=f"The {persona} of team {team_name} ({env_name}): least privilege",
                roles=[role],
                statements=document,
            )
            for resource, reason in reasons.items():
                acknowledge(policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
            self.roles[persona], self.policies[persona] = role, policy

    # -- roles and trust -------------------------------------------------------------------------------

    def _role(self, persona: str, principals: tuple[str, ...], own_account: str) -> iam.Role:
        path = self.names.role_path(persona)
        accounts = sorted({x for x in principals if not x.startswith("arn:")})
        patterns = sorted(x for x in principals if x.startswith("arn:"))
        if not principals:
            accounts = [own_account]
        trusted: list[iam.IPrincipal] = [iam.AccountPrincipal(acct) for acct in accounts]
        if patterns:
            for acct in sorted({pat.split(":")[4] for pat in patterns}):
                trusted.append(
                    iam.AccountPrincipal(acct).with_conditions(
                        {"ArnLike": {"aws:PrincipalArn": [x for x in patterns if x.split(":")[4] == acct]}}
                    )
                )
        role = iam.Role(
            self,
            f"{_pascal(persona)}Role",
            role_name=self.names.persona_role(self.team_name, persona),
            path=path,
            assumed_by=trusted[0],
            max_session_duration=SESSION_DURATION,
            description=f"The {persona} of team {self.team_name} ({self.env_name}); see docs/teams.md",
        )
        cfn = role.node.default_child
        assert isinstance(cfn, iam.CfnRole)
        cfn.add_property_override("Path", path)  # the persona path wins over the stage's aspect
        tags = {TEAM_TAG: self.team_name, PERSONA_TAG: persona}
        for key, value in tags.items():
            Tags.of(role).add(key, value)
        # Session tags only with the team's own values: a session can never be tagged as another team or
        # persona (session tags override the role's tags of the same key). Source identity names the person.
        assert role.assume_role_policy is not None
        for principal in trusted[1:]:
            role.assume_role_policy.add_statements(
                iam.PolicyStatement(actions=["sts:AssumeRole"], principals=[principal])
            )
        for principal in trusted:
            role.assume_role_policy.add_statements(
                iam.PolicyStatement(
                    actions=["sts:TagSession"],
                    principals=[principal],
                    conditions={
                        "StringEquals": {f"aws:RequestTag/{k}": v for k, v in tags.items()},
                        "ForAllValues:StringEquals": {"aws:TagKeys": sorted(tags)},
                    },
                ),
                iam.PolicyStatement(actions=["sts:SetSourceIdentity"], principals=[principal]),
            )
        return role

    # -- names -----------------------------------------------------------------------------------------

    def _bucket_name(self, zone: str) -> str:
        buckets = self.targets.buckets
        return buckets[zone] if buckets is not None and zone in buckets else imported_bucket_name(self.env_name, zone)

    def _objects(self, zone: str, prefixes: Sequence[str]) -> list[tuple[str, str]]:
        """``(ARN, as cdk-nag shows it)`` of the objects under each of ``prefixes`` in ``zone``."""
        name, shown = self._bucket_name(zone), bucket_export_name(self.env_name, zone)
        return [
            (f"arn:{self._partition}:s3:::{name}/{x}*", f"arn:{self._partition}:s3:::{shown}/{x}*") for x in prefixes
        ]

    def _own_prefixes(self) -> list[str]:
        return [naming.pipeline_prefix(n) for n in self.targets.pipeline_names]

    def _reads(self, zones: Sequence[str], reasons: dict[str, str]) -> list[iam.PolicyStatement]:
        """Read the team pipelines' prefixes of ``zones``: objects, listing, decrypt through S3."""
        prefixes = self._own_prefixes()
        out: list[iam.PolicyStatement] = []
        objects = [o for zone in zones for o in self._objects(zone, prefixes)]
        for _, shown in objects:
            reasons[shown] = "the team's own pipeline prefix of the zone; object keys are per execution"
        out.append(iam.PolicyStatement(actions=list(READ), resources=[o[0] for o in objects]))
        out.append(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[f"arn:{self._partition}:s3:::{self._bucket_name(z)}" for z in zones],
                conditions={"StringLike": {"s3:prefix": [f"{x}*" for x in prefixes]}},
            )
        )
        # Zone keys are shared by every team: decrypt only through S3 (S3 decides which objects); what the
        # team's jobs write is encrypted with the team's own job key.
        out.append(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:DescribeKey"],
                resources=[*(self.targets.zone_keys[z].key_arn for z in zones), self.targets.job_key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{self._region}.amazonaws.com"}},
            )
        )
        return out

    def _registry_read(self, reasons: dict[str, str]) -> list[iam.PolicyStatement]:
        group = self.targets.group_name
        packages = f"{self._sm}:model-package/{group}/*"
        reasons[packages] = "versions of the team's own model package group; numbers are assigned at registration"
        return [
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackageGroup", "sagemaker:ListModelPackages"],
                resources=[f"{self._sm}:model-package-group/{group}"],
            ),
            iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"], resources=[packages]),
        ]

    def _deny_raw(self) -> iam.PolicyStatement:
        raw = self._bucket_name("raw")
        return iam.PolicyStatement(
            effect=iam.Effect.DENY,
            actions=[*READ, "s3:ListBucket", *S3_WRITES],
            resources=[f"arn:{self._partition}:s3:::{raw}", f"arn:{self._partition}:s3:::{raw}/*"],
        )

    def _deny_raw_key(self) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            effect=iam.Effect.DENY,
            actions=["kms:Decrypt", "kms:ReEncryptFrom", "kms:GenerateDataKey*", "kms:Encrypt"],
            resources=[self.targets.zone_keys["raw"].key_arn],
        )

    # -- the personas ----------------------------------------------------------------------------------

    def _data_scientist(self) -> tuple[list[iam.PolicyStatement], dict[str, str]]:
        reasons: dict[str, str] = {}
        sm = self._sm
        pipelines = [f"{sm}:pipeline/{n}" for n in self.targets.pipeline_names]
        executions = [f"{p}/execution/*" for p in pipelines]
        for e in executions:
            reasons[e] = "executions of the team's own pipeline; execution ids are assigned at start"
        jobs = [f"{sm}:{kind}-job/pipelines-*" for kind in JOB_KINDS]
        for j in jobs:
            reasons[j] = "SageMaker Pipelines names jobs pipelines-<execution>-<step>; only jobs tagged with the team"
        pipeline_statements = [
            iam.PolicyStatement(
                actions=[
                    "sagemaker:DescribePipeline",
                    "sagemaker:ListPipelineExecutions",
                    "sagemaker:StartPipelineExecution",
                    "sagemaker:DescribePipelineDefinitionForExecution",
                ],
                resources=pipelines,
            ),
            iam.PolicyStatement(
                actions=[
                    "sagemaker:DescribePipelineExecution",
                    "sagemaker:ListPipelineExecutionSteps",
                    "sagemaker:ListPipelineParametersForExecution",
                    "sagemaker:StopPipelineExecution",
                    "sagemaker:RetryPipelineExecution",
                    "sagemaker:DescribePipelineDefinitionForExecution",
                ],
                resources=executions,
            ),
        ]
        doc = [
            *(self._reads(("curated", "features", "reports"), reasons) + pipeline_statements if pipelines else []),
            iam.PolicyStatement(
                actions=[f"sagemaker:Describe{kind.title()}Job" for kind in JOB_KINDS],
                resources=jobs,
                conditions={"StringEquals": {f"aws:ResourceTag/{TEAM_TAG}": self.team_name}},
            ),
            *self._registry_read(reasons),
            iam.PolicyStatement(effect=iam.Effect.DENY, actions=list(APPROVAL_CHANGES), resources=["*"]),
            self._deny_raw(),
            self._deny_raw_key(),
        ]
        return doc, reasons

    def _approver(self) -> tuple[list[iam.PolicyStatement], dict[str, str]]:
        reasons: dict[str, str] = {}
        group = self.targets.group_name
        doc = [
            *(self._reads(("reports",), reasons) if self.targets.pipeline_names else []),
            *self._registry_read(reasons),
            iam.PolicyStatement(
                actions=["sagemaker:UpdateModelPackage"],
                resources=[f"{self._sm}:model-package/{group}/*"],
                conditions={"StringEquals": {"sagemaker:ModelApprovalStatus": list(DECISIONS)}},
            ),
            iam.PolicyStatement(effect=iam.Effect.DENY, actions=list(PIPELINE_CHANGES), resources=["*"]),
            iam.PolicyStatement(effect=iam.Effect.DENY, actions=list(S3_WRITES), resources=["*"]),
            self._deny_raw(),
            self._deny_raw_key(),
        ]
        return doc, reasons

    def _operator(self) -> tuple[list[iam.PolicyStatement], dict[str, str]]:
        reasons: dict[str, str] = {}
        sm, p, r = self._sm, self._partition, self._region
        endpoint = self.targets.endpoint_name
        account = Stack.of(self).account
        configs = f"{sm}:endpoint-config/{endpoint}-v*"
        reasons[configs] = "the team endpoint's configs, named <endpoint>-v<version>-<hash> at deployment"
        endpoint_logs = f"arn:{p}:logs:{r}:{account}:log-group:/aws/sagemaker/Endpoints/{endpoint}"
        groups = [g.log_group_arn for g in self.targets.log_groups]
        reasons[f"{endpoint_logs}:*"] = "the team endpoint's own log group (streams per variant and instance)"
        doc = [
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpoint"],
                resources=[f"{sm}:endpoint/{endpoint}", configs],
            ),
            iam.PolicyStatement(actions=["sagemaker:DescribeEndpointConfig"], resources=[configs]),
            iam.PolicyStatement(
                actions=["logs:DescribeLogStreams", "logs:GetLogEvents", "logs:FilterLogEvents"],
                resources=[endpoint_logs, f"{endpoint_logs}:*", *groups],
            ),
            iam.PolicyStatement(
                actions=["cloudwatch:GetMetricData", "cloudwatch:ListMetrics", "cloudwatch:GetMetricStatistics"],
                resources=["*"],
            ),
            iam.PolicyStatement(effect=iam.Effect.DENY, actions=[*READ, *S3_WRITES], resources=["*"]),
            iam.PolicyStatement(effect=iam.Effect.DENY, actions=["kms:Decrypt", "kms:ReEncryptFrom"], resources=["*"]),
            iam.PolicyStatement(
                effect=iam.Effect.DENY, actions=[*APPROVAL_CHANGES, *PIPELINE_CHANGES], resources=["*"]
            ),
        ]
        reasons["*"] = (
            "cloudwatch:GetMetricData/ListMetrics/GetMetricStatistics support no resource-level permissions "
            "(metrics, not data); every data read and decrypt is explicitly denied"
        )
        if self.targets.alarms:
            doc.insert(
                1,
                iam.PolicyStatement(
                    actions=["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"],
                    resources=[alarm.alarm_arn for alarm in self.targets.alarms],
                ),
            )
        return doc, reasons


def _pascal(kind: str) -> str:
    return "".join(part.title() for part in kind.split("-"))
