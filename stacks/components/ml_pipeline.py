"""A team's SageMaker pipeline of any template: step-code asset, execution role, ``AWS::SageMaker::Pipeline``.

One construct serves every template through its contract (:class:`pipelines.template.PipelineTemplate`):
the template's step code is packaged and uploaded as an asset, its per-team files (``team_files``) next
to it, the execution role gets exactly what ``template.access`` declares, and the pipeline body is the
JSON that ``template.definition`` builds — the same function the local runtime calls — with CDK tokens
(bucket names, key and role ARNs, subnets) substituted in, so the deployed definition and the local one
differ only in those account-specific values.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

import naming
from naming import Names
from pipelines.packaging import SOURCEDIR_NAME, build_sourcedir, write_atomically
from pipelines.template import DeploymentValues, PipelineTemplate
from stacks import PROJECT_ROOT
from stacks.components.data_lake import bucket_export_name, imported_bucket_name
from stacks.nag import acknowledge

#: Where synth writes the per-team files it uploads as assets (content-addressed by CDK).
BUILD_DIR = PROJECT_ROOT / ".flywheel" / "build"


def stage_file(relative: str, content: bytes) -> Path:
    """Write ``content`` under the build dir (atomically, only if changed) and return its path."""
    path = BUILD_DIR / relative
    write_atomically(path, content)
    return path


class MlPipeline(Construct):
    """One team's pipeline of one template.

    Attributes: ``template``, ``pipeline_name``, ``pipeline`` (``CfnPipeline``), ``role``, ``policy``,
    ``code_asset``, ``file_assets`` (``TeamFile.key`` → asset), ``definition_inputs``, ``definition_body``.
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
    ) -> None:
        """``buckets``: zone → bucket name for ``template.access.zones`` (default: the environment's
        exported zone buckets, imported by name)."""
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        name = Names(env_name).pipeline(team_name, template.name)
        self.template = template
        self.pipeline_name = name
        self.model_package_group_name = model_package_group_name
        sourcedir = BUILD_DIR / template.name / SOURCEDIR_NAME
        build_sourcedir(template.folder, sourcedir)
        self.code_asset = s3_assets.Asset(self, "StepCode", path=str(sourcedir))
        self.file_assets: dict[str, s3_assets.Asset] = {}
        for team_file in template.team_files(settings):
            path = stage_file(f"{team_name}/{team_file.file_name}", team_file.content)
            self.file_assets[team_file.key] = s3_assets.Asset(self, team_file.construct_id, path=str(path))

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"SageMaker execution role of pipeline {name}",
        )
        bucket_names = {
            zone: buckets[zone] if buckets is not None else imported_bucket_name(env_name, zone)
            for zone in template.access.zones
        }
        self.policy = iam.ManagedPolicy(
            self,
            "ExecutionPolicy",
            description=f"Least privilege for the jobs of pipeline {name}",
            roles=[self.role],
            statements=self._statements(team_name, name, bucket_names, zone_keys, job_key, model_package_group_name),
        )
        self._acknowledge_wildcards(env_name, team_name, name)
        values = DeploymentValues(
            pipeline_name=name,
            region=stack.region,
            role_arn=self.role.role_arn,
            kms_key_arn=job_key.key_arn,
            subnet_ids=tuple(s.subnet_id for s in subnets),
            security_group_ids=(security_group.security_group_id,),
            buckets=bucket_names,
            source_uri=self.code_asset.s3_object_url,
            file_uris={key: asset.s3_object_url for key, asset in self.file_assets.items()},
            model_package_group_name=model_package_group_name,
        )
        self.definition_inputs, self.definition_body = template.definition(team_name, settings, values)
        self.pipeline = sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=name,
            pipeline_display_name=name,
            pipeline_description=template.describe(team_name, settings),
            role_arn=self.role.role_arn,
            pipeline_definition={"PipelineDefinitionBody": self.definition_body},
        )
        self.pipeline.node.add_dependency(self.role)

    def _statements(
        self,
        team_name: str,
        name: str,
        buckets: dict[str, str],
        zone_keys: dict[str, kms.IKey],
        job_key: kms.IKey,
        group_name: str,
    ) -> list[iam.PolicyStatement]:
        """Least privilege for the pipeline's jobs: its own S3 prefixes, keys, images, logs and ENIs."""
        stack = Stack.of(self)
        region, account, partition = stack.region, stack.account, stack.partition
        s3_arn = f"arn:{partition}:s3:::"
        sm = f"arn:{partition}:sagemaker:{region}:{account}"
        read = ["s3:GetObject", "s3:GetObjectVersion"]
        write = ["s3:PutObject", "s3:AbortMultipartUpload"]
        access = self.template.access
        zones = access.zones
        team_raw = naming.team_raw_prefix(team_name) + "*"
        quarantine = naming.quarantine_prefix(name) + "*"
        own_prefix = naming.pipeline_prefix(name) + "*"
        statements: list[iam.PolicyStatement] = []
        if access.reads_team_raw:
            statements.append(
                iam.PolicyStatement(
                    sid="ReadTeamRawBatchesAndPiiKey", actions=read, resources=[f"{s3_arn}{buckets['raw']}/{team_raw}"]
                )
            )
        if access.writes_quarantine:
            statements.append(
                iam.PolicyStatement(
                    sid="WriteQuarantine", actions=write, resources=[f"{s3_arn}{buckets['raw']}/{quarantine}"]
                )
            )
        if access.owned_zones:
            own = [f"{s3_arn}{buckets[z]}/{own_prefix}" for z in access.owned_zones]
            statements.append(iam.PolicyStatement(sid="ReadWriteOwnPrefixes", actions=[*read, *write], resources=own))
        prefixes = [own_prefix] if access.owned_zones else []
        prefixes += [team_raw] if access.reads_team_raw else []
        prefixes += [quarantine] if access.writes_quarantine else []
        if zones:
            statements.append(
                iam.PolicyStatement(
                    sid="ListOwnPrefixes",
                    actions=["s3:ListBucket"],
                    resources=[f"{s3_arn}{buckets[z]}" for z in zones],
                    conditions={"StringLike": {"s3:prefix": prefixes}},
                )
            )
        assets = [self.code_asset, *self.file_assets.values()]
        job_kinds = access.job_kinds
        statements += [
            iam.PolicyStatement(
                sid="ReadStepCodeAndContract",
                actions=read,
                resources=[f"{s3_arn}{asset.s3_bucket_name}/{asset.s3_object_key}" for asset in assets],
            ),
            # SageMaker lists an S3Prefix input before downloading it, even when the prefix is one object.
            iam.PolicyStatement(
                sid="ListStepCodeAndContract",
                actions=["s3:ListBucket"],
                resources=[f"{s3_arn}{self.code_asset.s3_bucket_name}"],
                conditions={"StringEquals": {"s3:prefix": [a.s3_object_key for a in assets]}},
            ),
            iam.PolicyStatement(
                sid="UseZoneAndJobKeys",
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[job_key.key_arn, *(zone_keys[z].key_arn for z in zones)],
            ),
            # Grants let SageMaker use the keys for the job's volumes; only for AWS resources, never people.
            iam.PolicyStatement(
                sid="GrantKeysToSageMakerResources",
                actions=["kms:CreateGrant"],
                resources=[job_key.key_arn, *(zone_keys[z].key_arn for z in zones)],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
            iam.PolicyStatement(
                sid="RunPipelineJobs",
                actions=[
                    *(f"sagemaker:{verb}{kind}Job" for verb in ("Create", "Describe", "Stop") for kind in job_kinds),
                    "sagemaker:AddTags",
                ],
                resources=[f"{sm}:{kind.lower()}-job/pipelines-*" for kind in job_kinds],
            ),
        ]
        if access.registers_models:
            statements.append(
                iam.PolicyStatement(
                    sid="RegisterInTeamGroup",
                    actions=["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage", "sagemaker:AddTags"],
                    resources=[f"{sm}:model-package-group/{group_name}", f"{sm}:model-package/{group_name}/*"],
                )
            )
        return [
            *statements,
            iam.PolicyStatement(
                sid="PassOwnRoleToSageMaker",
                actions=["iam:PassRole"],
                resources=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                sid="PullFrameworkImages",
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=[f"arn:{partition}:ecr:{region}:*:repository/sagemaker-*"],
            ),
            iam.PolicyStatement(
                sid="JobLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/*"],
            ),
            iam.PolicyStatement(
                sid="UnscopableActions",
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
            ),
            iam.PolicyStatement(
                sid="JobMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            ),
        ]

    def _acknowledge_wildcards(self, env_name: str, team_name: str, name: str) -> None:
        """Each wildcard of the execution policy, with why it is as narrow as AWS allows."""
        stack = Stack.of(self)
        region, account, partition = stack.region, stack.account, stack.partition
        s3_arn = f"arn:{partition}:s3:::"
        sm = f"arn:{partition}:sagemaker:{region}:{account}"

        def bucket(zone: str) -> str:
            return f"{s3_arn}{bucket_export_name(env_name, zone)}"

        access = self.template.access
        reasons: dict[str, str] = {}
        if access.reads_team_raw:
            reasons[f"{bucket('raw')}/{naming.team_raw_prefix(team_name)}*"] = (
                "objects under the team's own raw prefix only: batches land under new keys, so the object "
                "names cannot be known in advance"
            )
        if access.writes_quarantine:
            reasons[f"{bucket('raw')}/{naming.quarantine_prefix(name)}*"] = (
                "write-only to this pipeline's quarantine prefix; keys are per execution"
            )
        for z in access.owned_zones:
            reasons[f"{bucket(z)}/{naming.pipeline_prefix(name)}*"] = (
                f"this pipeline's own prefix in the {z} zone; keys are per execution"
            )
        for kind in access.job_kinds:
            reasons[f"{sm}:{kind.lower()}-job/pipelines-*"] = (
                "SageMaker Pipelines names jobs pipelines-<execution>-<step> at run time; scoped to "
                "pipeline-created jobs in this account and region"
            )
        if access.registers_models:
            reasons[f"{sm}:model-package/{self.model_package_group_name}/*"] = (
                "new versions of the team's own model package group only; version numbers are assigned at registration"
            )
        reasons |= {
            f"arn:{partition}:ecr:{region}:*:repository/sagemaker-*": "SageMaker framework images live in "
            "AWS-owned registry accounts that differ per region; read-only pulls of sagemaker-* repositories",
            f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/*": "SageMaker writes job logs "
            "to its fixed /aws/sagemaker/ log groups with per-job streams",
            "*": "ecr:GetAuthorizationToken, the ec2 network-interface actions SageMaker needs for VPC jobs and "
            "cloudwatch:PutMetricData (namespace-conditioned) do not support resource-level permissions",
        }
        for resource, reason in reasons.items():
            acknowledge(self.policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
