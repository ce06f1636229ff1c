"""A team's SageMaker pipeline of any template: step-code asset, step roles, ``AWS::SageMaker::Pipeline``.

One construct serves every template through its contract (:class:`pipelines.template.PipelineTemplate`):
the template's step code is packaged and uploaded as an asset, its per-team files (``team_files``) next
to it, each step kind of ``template.access`` gets its own role with exactly what it declares (path
``/flywheel/<env>/<kind>/``: only ``preprocessing`` roles can read raw batches and the PII key, which
the raw zone's bucket and key policies enforce by that path), the pipeline's own role (path
``/flywheel/<env>/pipeline/``) creates the jobs — only jobs tagged with its team — and passes exactly
those step roles, registers only ``PendingManualApproval`` packages and never changes an approval. The
pipeline body is the
JSON that ``template.definition`` builds — the same function the local runtime calls — with CDK tokens
(bucket names, key and role ARNs, subnets) substituted in, so the deployed definition and the local one
differ only in those account-specific values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aws_cdk import Stack, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

import naming
from naming import Names
from pipelines.packaging import SOURCEDIR_NAME, build_sourcedir, write_atomically
from pipelines.template import DeploymentValues, PipelineTemplate, StepRole
from stacks import PROJECT_ROOT
from stacks.components.data_lake import bucket_export_name, imported_bucket_name
from stacks.components.sagemaker_images import image_accounts
from stacks.nag import acknowledge

READ = ("s3:GetObject", "s3:GetObjectVersion")
WRITE = ("s3:PutObject", "s3:AbortMultipartUpload")
TEAM_TAG = "flywheel:team"
#: ``<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>`` in a definition.
_IMAGE = re.compile(r"(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([a-z0-9._/-]+)[:@]")

#: Where synth writes the per-team files it uploads as assets (content-addressed by CDK).
BUILD_DIR = PROJECT_ROOT / ".flywheel" / "build"


def stage_file(relative: str, content: bytes) -> Path:
    """Write ``content`` under the build dir (atomically, only if changed) and return its path."""
    path = BUILD_DIR / relative
    write_atomically(path, content)
    return path


def vpc_network_statement() -> iam.PolicyStatement:
    """What SageMaker needs on ``*`` to run a job or model in the VPC: its network interfaces, the VPC
    lookups and the ECR token (none of these actions supports resource-level permissions)."""
    return iam.PolicyStatement(
        actions=[
            "ecr:GetAuthorizationToken",
            "ec2:CreateNetworkInterface",
            "ec2:CreateNetworkInterfacePermission",
            "ec2:DeleteNetworkInterface",
            "ec2:DeleteNetworkInterfacePermission",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeVpcs",
            "ec2:DescribeDhcpOptions",
            "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups",
        ],
        resources=["*"],
    )


def sagemaker_metrics_statement() -> iam.PolicyStatement:
    """``cloudwatch:PutMetricData`` (no resource type) limited to SageMaker's own namespaces."""
    return iam.PolicyStatement(
        actions=["cloudwatch:PutMetricData"],
        resources=["*"],
        conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
    )


def sagemaker_principal(stack: Stack) -> iam.ServicePrincipal:
    """SageMaker, only on behalf of this account's resources in this region (confused-deputy guard)."""
    return iam.ServicePrincipal(
        "sagemaker.amazonaws.com",
        conditions={
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}:*"},
        },
    )


def image_repositories(definition: str) -> list[tuple[str, str, str]]:
    """``(account, region, repository)`` of every container image the definition names, sorted."""
    return sorted(set(_IMAGE.findall(definition)))


class _Policy:
    """Statements of one managed policy and the reason for each wildcard resource in them."""

    def __init__(self) -> None:
        self.statements: list[iam.PolicyStatement] = []
        self.reasons: dict[str, str] = {}

    def add(self, statement: iam.PolicyStatement, **wildcards: tuple[str, str]) -> None:
        self.statements.append(statement)
        for shown, reason in wildcards.values():
            self.reasons[shown] = reason


class MlPipeline(Construct):
    """One team's pipeline of one template.

    Attributes: ``template``, ``pipeline_name``, ``pipeline`` (``CfnPipeline``), ``role`` and ``policy``
    (the pipeline's own role: creates the jobs), ``step_roles`` / ``step_policies`` (step kind → the role
    its jobs run as, and its policy), ``code_asset``, ``code_sha256``, ``file_assets`` (``TeamFile.key``
    → asset), ``definition_inputs``, ``definition_body``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        team_name: str,
        template: PipelineTemplate,
        settings: Any,
        zone_keys: dict[str, kms.IKey],
        job_key: kms.IKey,
        subnets: list[ec2.ISubnet],
        security_group: ec2.ISecurityGroup,
        model_package_group_name: str,
        buckets: Mapping[str, str] | None = None,
        model_sources: Sequence[str] = (),
        model_images: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        """``buckets``: zone → bucket name for ``template.access.zones`` (default: the environment's
        exported zone buckets, imported by name). ``model_sources``: the team's pipelines that register
        models and ``model_images`` their images (``image_repositories``): what a role that
        ``reads_team_models`` may read and pull."""
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        names = Names(env_name)
        name = names.pipeline(team_name, template.name)
        self.template = template
        self.team_name = team_name
        self.env_name = env_name
        self.pipeline_name = name
        self.model_package_group_name = model_package_group_name
        self.model_sources = tuple(model_sources)
        self.model_images = tuple(model_images)
        sourcedir = BUILD_DIR / template.name / SOURCEDIR_NAME
        self.code_sha256 = build_sourcedir(template.folder, sourcedir)
        self.code_asset = s3_assets.Asset(self, "StepCode", path=str(sourcedir))
        self.file_assets: dict[str, s3_assets.Asset] = {}
        for team_file in template.team_files(settings):
            path = stage_file(f"{team_name}/{team_file.file_name}", team_file.content)
            self.file_assets[team_file.key] = s3_assets.Asset(self, team_file.construct_id, path=str(path))

        self.role = self._role("PipelineRole", names.role_path(naming.PIPELINE_ROLE), f"pipeline {name}")
        self.step_roles: dict[str, iam.Role] = {
            step.kind: self._role(
                f"{_pascal(step.kind)}Role", names.role_path(step.kind), f"{step.kind} jobs of pipeline {name}"
            )
            for step in template.access.roles
        }
        self.bucket_names = {
            zone: buckets[zone] if buckets is not None else imported_bucket_name(env_name, zone)
            for zone in template.access.zones
        }
        values = DeploymentValues(
            pipeline_name=name,
            region=stack.region,
            role_arn=self.role.role_arn,
            role_arns={kind: role.role_arn for kind, role in self.step_roles.items()},
            source_sha256=self.code_sha256,
            kms_key_arn=job_key.key_arn,
            subnet_ids=tuple(s.subnet_id for s in subnets),
            security_group_ids=(security_group.security_group_id,),
            buckets=self.bucket_names,
            source_uri=self.code_asset.s3_object_url,
            file_uris={key: asset.s3_object_url for key, asset in self.file_assets.items()},
            model_package_group_name=model_package_group_name,
        )
        self.definition_inputs, self.definition_body = template.definition(team_name, settings, values)
        if self.role.role_arn in self.definition_body:
            raise ValueError(
                f"{name}: a job of the definition runs as the pipeline's own role; every job must run as its "
                "step kind's role (DeploymentValues.role_arns)"
            )
        images = image_repositories(self.definition_body)
        if not Token.is_unresolved(stack.region):
            foreign = sorted({account for account, _, _ in images} - set(image_accounts(stack.region)))
            if foreign:
                raise ValueError(f"{name}: images from accounts {foreign} are not SageMaker's in {stack.region}")

        self.step_policies: dict[str, iam.ManagedPolicy] = {}
        for step in template.access.roles:
            document = self._step_statements(step, zone_keys, job_key, images)
            policy = iam.ManagedPolicy(
                self,
                f"{_pascal(step.kind)}Policy",
                description=f"Least privilege for the {step.kind} jobs of pipeline {name}",
                roles=[self.step_roles[step.kind]],
                statements=document.statements,
            )
            self._acknowledge(policy, document)
            self.step_policies[step.kind] = policy
        document = self._pipeline_statements(job_key)
        self.policy = iam.ManagedPolicy(
            self,
            "PipelinePolicy",
            description=f"Pipeline {name}: create its team's jobs as its step roles, register for approval",
            roles=[self.role],
            statements=document.statements,
        )
        self._acknowledge(self.policy, document)
        self.pipeline = sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=name,
            pipeline_display_name=name,
            pipeline_description=template.describe(team_name, settings),
            role_arn=self.role.role_arn,
            pipeline_definition={"PipelineDefinitionBody": self.definition_body},
        )
        self.pipeline.node.add_dependency(self.role, self.policy, *self.step_roles.values())

    def _role(self, construct_id: str, path: str, what: str) -> iam.Role:
        role = iam.Role(
            self,
            construct_id,
            assumed_by=sagemaker_principal(Stack.of(self)),
            path=path,
            description=f"SageMaker role of the {what}",
        )
        # The role's kind is its path (the raw zone's policies name preprocessing roles by it): keep it
        # even if an aspect sets the environment's path on every role (a path cannot change later).
        cfn = role.node.default_child
        assert isinstance(cfn, iam.CfnRole)
        cfn.add_property_override("Path", path)
        return role

    # -- names -------------------------------------------------------------------------------------------

    def _object(self, zone: str, key: str) -> tuple[str, str]:
        """``(ARN, how cdk-nag shows it)`` of objects ``key`` (may end in ``*``) in ``zone``'s bucket."""
        partition = Stack.of(self).partition
        return (
            f"arn:{partition}:s3:::{self.bucket_names[zone]}/{key}",
            f"arn:{partition}:s3:::{bucket_export_name(self.env_name, zone)}/{key}",
        )

    def _bucket(self, zone: str) -> str:
        return f"arn:{Stack.of(self).partition}:s3:::{self.bucket_names[zone]}"

    # -- the step roles ----------------------------------------------------------------------------------

    def _step_statements(
        self,
        step: StepRole,
        zone_keys: Mapping[str, kms.IKey],
        job_key: kms.IKey,
        images: list[tuple[str, str, str]],
    ) -> _Policy:
        """Least privilege for one step kind's jobs: its S3 prefixes, keys, images, logs and ENIs."""
        stack = Stack.of(self)
        region, account, partition = stack.region, stack.account, stack.partition
        team, name = self.team_name, self.pipeline_name
        own = naming.pipeline_prefix(name) + "*"
        incoming = naming.raw_input_prefix(team, step.raw_input) + "*"
        pii_key = naming.pii_key_object(team)
        quarantine = naming.quarantine_prefix(team, name) + "*"
        doc = _Policy()
        prefixes: dict[str, list[str]] = {}
        if step.reads_team_raw:
            batches, pii = self._object("raw", incoming), self._object("raw", pii_key)
            doc.add(
                iam.PolicyStatement(actions=list(READ), resources=[batches[0], pii[0]]),
                batches=(batches[1], "the team's landed batches only (new keys per batch); the PII key by exact name"),
            )
            prefixes.setdefault("raw", []).extend([incoming, pii_key])
        if step.writes_quarantine:
            target = self._object("raw", quarantine)
            doc.add(
                iam.PolicyStatement(actions=list(WRITE), resources=[target[0]]),
                quarantine=(
                    target[1],
                    "write-only quarantine of this pipeline under the team prefix; keys per execution",
                ),
            )
        for verbs, zones in ((READ, step.reads), (WRITE, step.writes)):
            if zones:
                targets = [self._object(zone, own) for zone in zones]
                doc.add(
                    iam.PolicyStatement(actions=list(verbs), resources=[t[0] for t in targets]),
                    **{
                        f"own{i}{len(verbs)}": (t[1], f"this pipeline's own prefix in the {z} zone; keys per execution")
                        for i, (t, z) in enumerate(zip(targets, zones, strict=True))
                    },
                )
        if step.reads_team_models:
            # The Transform role is the model's execution role: the artifacts the team's registering
            # pipelines wrote (each pipeline's own prefix, by exact name) and the model images.
            sources = [self._object("artifacts", naming.pipeline_prefix(p) + "*") for p in self.model_sources]
            if not sources:
                raise ValueError(
                    f"{name}: step role {step.kind!r} reads the team's models, but team {team} has no pipeline "
                    "that registers models (list one, e.g. tabular, in its pipelines:)"
                )
            doc.add(
                iam.PolicyStatement(actions=list(READ), resources=[src[0] for src in sources]),
                **{
                    f"model{i}": (src[1], "the team's registered model artifacts (keys per execution)")
                    for i, src in enumerate(sources)
                },
            )
        for zone in step.reads:
            prefixes.setdefault(zone, []).append(own)
        if prefixes:
            for zone, listed in prefixes.items():
                doc.add(
                    iam.PolicyStatement(
                        actions=["s3:ListBucket"],
                        resources=[self._bucket(zone)],
                        conditions={"StringLike": {"s3:prefix": listed}},
                    )
                )
        assets = [self.code_asset, *self.file_assets.values()]
        doc.add(
            iam.PolicyStatement(
                actions=list(READ),
                resources=[f"arn:{partition}:s3:::{a.s3_bucket_name}/{a.s3_object_key}" for a in assets],
            )
        )
        # SageMaker lists an S3Prefix input before downloading it, even when the prefix is one object.
        doc.add(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[f"arn:{partition}:s3:::{self.code_asset.s3_bucket_name}"],
                conditions={"StringEquals": {"s3:prefix": [a.s3_object_key for a in assets]}},
            )
        )
        # Everything the team's jobs write is encrypted with the team's own job key.
        doc.add(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[job_key.key_arn],
            )
        )
        doc.add(
            iam.PolicyStatement(
                actions=["kms:CreateGrant"],
                resources=[job_key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        if step.reads_team_raw:
            # The raw zone key is shared by every team: decrypt only through S3 and only objects under the
            # team's prefix (the raw bucket uses no S3 Bucket Key, so S3 passes the object ARN as context).
            raw_arn = f"arn:{partition}:s3:::{self.bucket_names['raw']}/"
            doc.add(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[zone_keys["raw"].key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                        "StringLike": {"kms:EncryptionContext:aws:s3:arn": [raw_arn + incoming, raw_arn + pii_key]},
                    },
                )
            )
        pulled = sorted({*images, *(self.model_images if step.reads_team_models else ())})
        doc.add(
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=[f"arn:{partition}:ecr:{r}:{a}:repository/{repo}" for a, r, repo in pulled],
            )
        )
        logs = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/*"
        doc.add(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[logs],
            ),
            logs=(logs, "SageMaker writes job logs to its fixed /aws/sagemaker/ log groups with per-job streams"),
        )
        doc.add(
            vpc_network_statement(),
            any=("*", _UNSCOPABLE),
        )
        doc.add(sagemaker_metrics_statement())
        doc.add(_deny_approval_changes())
        return doc

    # -- the pipeline's role -----------------------------------------------------------------------------

    def _pipeline_statements(self, job_key: kms.IKey) -> _Policy:
        """The pipeline's own role: create/describe/stop its team's jobs, pass its step roles, read the
        property files its conditions evaluate, register ``PendingManualApproval`` packages."""
        stack = Stack.of(self)
        region, account, partition = stack.region, stack.account, stack.partition
        sm = f"arn:{partition}:sagemaker:{region}:{account}"
        access = self.template.access
        team, name, group = self.team_name, self.pipeline_name, self.model_package_group_name
        kinds = access.all_job_kinds
        jobs = [f"{sm}:{kind.lower()}-job/pipelines-*" for kind in kinds]
        job_reason = (
            "SageMaker Pipelines names jobs pipelines-<execution>-<step> at run time; only jobs tagged with "
            "this team (aws:RequestTag on create, aws:ResourceTag afterwards)"
        )
        doc = _Policy()
        doc.add(
            iam.PolicyStatement(
                actions=[f"sagemaker:Create{kind}Job" for kind in access.all_job_kinds],
                resources=jobs,
                conditions={
                    "StringEquals": {f"aws:RequestTag/{TEAM_TAG}": team},
                    "ForAllValues:StringLike": {"aws:TagKeys": ["flywheel:*", "sagemaker:*"]},
                },
            ),
            **{f"job{i}": (job, job_reason) for i, job in enumerate(jobs)},
        )
        doc.add(
            iam.PolicyStatement(
                actions=["sagemaker:AddTags"],
                resources=jobs,
                conditions={"StringEquals": {f"aws:RequestTag/{TEAM_TAG}": team}},
            )
        )
        doc.add(
            iam.PolicyStatement(
                actions=[f"sagemaker:{verb}{kind}Job" for verb in ("Describe", "Stop") for kind in kinds],
                resources=jobs,
                conditions={"StringEquals": {f"aws:ResourceTag/{TEAM_TAG}": team}},
            )
        )
        # The pipeline passes the roles of the jobs it creates; a Transform role is its model's role, passed
        # by whoever creates the model (the scoring launcher), never by the pipeline.
        passed = [
            self.step_roles[step.kind].role_arn
            for step in access.roles
            if set(step.job_kinds) & {"Processing", "Training"}
        ]
        doc.add(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=passed,
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        # Condition steps read property files (validation status, evaluation report) from the reports
        # zone; registration references the model and the evaluation in artifacts and reports.
        readable = [
            self._object(zone, naming.pipeline_prefix(name) + "*")
            for zone in ("artifacts", "reports")
            if zone in self.bucket_names
        ]
        if readable:
            doc.add(
                iam.PolicyStatement(actions=list(READ), resources=[r[0] for r in readable]),
                **{f"read{i}": (r[1], _OWN_OUTPUTS) for i, r in enumerate(readable)},
            )
        doc.add(iam.PolicyStatement(actions=["kms:Decrypt", "kms:DescribeKey"], resources=[job_key.key_arn]))
        doc.add(
            iam.PolicyStatement(
                actions=["kms:CreateGrant"],
                resources=[job_key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        if access.registers_models:
            package = f"{sm}:model-package/{group}/*"
            doc.add(
                iam.PolicyStatement(
                    actions=["sagemaker:CreateModelPackage"],
                    resources=[f"{sm}:model-package-group/{group}", package],
                    conditions={"StringEquals": {"sagemaker:ModelApprovalStatus": REGISTRATION_STATUS}},
                ),
                package=(package, _NEW_VERSIONS),
            )
            doc.add(
                iam.PolicyStatement(
                    actions=["sagemaker:DescribeModelPackage", "sagemaker:AddTags"],
                    resources=[package],
                )
            )
            # Belt and braces: even a broader allow elsewhere never lets this role register anything but a
            # package waiting for a person's approval.
            doc.add(
                iam.PolicyStatement(
                    effect=iam.Effect.DENY,
                    actions=["sagemaker:CreateModelPackage"],
                    resources=["*"],
                    conditions={"StringNotEquals": {"sagemaker:ModelApprovalStatus": REGISTRATION_STATUS}},
                )
            )
        doc.add(_deny_approval_changes())
        return doc

    def _acknowledge(self, policy: iam.ManagedPolicy, document: _Policy) -> None:
        for resource, reason in document.reasons.items():
            acknowledge(policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)


_OWN_OUTPUTS = "this pipeline's own outputs (property files, model and evaluation) only; keys per execution"
_NEW_VERSIONS = "new versions of the team's own model package group only; version numbers are assigned at registration"
#: Why ``*`` is the resource of the unscopable job actions.
_UNSCOPABLE = (
    "ecr:GetAuthorizationToken, the ec2 network-interface actions SageMaker needs for VPC jobs and "
    "cloudwatch:PutMetricData (namespace-conditioned) do not support resource-level permissions"
)
#: The only status a Flywheel role may register a package with: a person approves it (a separate,
#: audited action of the approver persona, which no pipeline or job role has).
REGISTRATION_STATUS = "PendingManualApproval"


def _deny_approval_changes() -> iam.PolicyStatement:
    """No pipeline or job role changes a package's approval (or anything else of a registered package)."""
    return iam.PolicyStatement(effect=iam.Effect.DENY, actions=["sagemaker:UpdateModelPackage"], resources=["*"])


def _pascal(kind: str) -> str:
    return "".join(part.title() for part in kind.replace("_", "-").split("-"))
