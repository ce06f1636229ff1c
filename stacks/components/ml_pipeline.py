"""A team's SageMaker pipeline from a template: step-code asset, execution role, ``AWS::SageMaker::Pipeline``.

The pipeline body is the JSON that ``pipelines/<template>/definition.py`` builds — the same function the
local runtime calls — with CDK tokens (bucket names, key and role ARNs, subnets) substituted in, so the
deployed definition and the local one differ only in those account-specific values.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from config.models import EnvironmentConfig, TeamConfig
from pipelines import TEMPLATES
from pipelines.packaging import SOURCEDIR_NAME, build_sourcedir, write_atomically
from stacks import PROJECT_ROOT
from stacks.components.data_lake import bucket_export_name, imported_bucket_name
from stacks.nag import acknowledge

#: The data-lake zones a pipeline reads or writes.
PIPELINE_ZONES = ("raw", "features", "artifacts", "reports")
#: Where synth writes the per-team files it uploads as assets (content-addressed by CDK).
BUILD_DIR = PROJECT_ROOT / ".flywheel" / "build"


def pipeline_name(env: EnvironmentConfig, team: TeamConfig, template: str) -> str:
    """``flywheel-<env>-<team>-<template>``: the pipeline's (and its S3 prefixes') name."""
    return f"flywheel-{env.name}-{team.name}-{template}"


def stage_file(relative: str, content: bytes) -> Path:
    """Write ``content`` under the build dir (atomically, only if changed) and return its path."""
    path = BUILD_DIR / relative
    write_atomically(path, content)
    return path


class TabularPipeline(Construct):
    """One team's ``tabular`` pipeline: ``pipeline``, ``role``, ``definition_inputs``, ``definition_body``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: EnvironmentConfig,
        team: TeamConfig,
        zone_keys: dict[str, kms.IKey],
        job_key: kms.IKey,
        subnets: list[ec2.ISubnet],
        security_group: ec2.ISecurityGroup,
        model_package_group_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        from pipelines.tabular.definition import build_pipeline_definition, inputs_for_team

        stack = Stack.of(self)
        name = pipeline_name(environment, team, "tabular")
        self.pipeline_name = name
        self.model_package_group_name = model_package_group_name
        sourcedir = BUILD_DIR / "tabular" / SOURCEDIR_NAME
        build_sourcedir(TEMPLATES["tabular"], sourcedir)
        self.code_asset = s3_assets.Asset(self, "StepCode", path=str(sourcedir))
        contract = stage_file(f"{team.name}/contract.json", team.contract.to_json().encode())
        self.contract_asset = s3_assets.Asset(self, "DataContract", path=str(contract))

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"SageMaker execution role of pipeline {name}",
        )
        bucket_names = {zone: imported_bucket_name(environment.name, zone) for zone in PIPELINE_ZONES}
        self.policy = iam.ManagedPolicy(
            self,
            "ExecutionPolicy",
            description=f"Least privilege for the jobs of pipeline {name}",
            roles=[self.role],
            statements=self._statements(team.name, name, bucket_names, zone_keys, job_key, model_package_group_name),
        )
        self._acknowledge_wildcards(environment.name, team.name, name)
        self.definition_inputs = inputs_for_team(
            team,
            pipeline_name=name,
            region=stack.region,
            role_arn=self.role.role_arn,
            kms_key_arn=job_key.key_arn,
            subnet_ids=[s.subnet_id for s in subnets],
            security_group_ids=[security_group.security_group_id],
            buckets=bucket_names,
            source_uri=self.code_asset.s3_object_url,
            contract_uri=self.contract_asset.s3_object_url,
            model_package_group_name=model_package_group_name,
        )
        self.definition_body = build_pipeline_definition(self.definition_inputs)
        self.pipeline = sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=name,
            pipeline_display_name=name,
            pipeline_description=f"{team.name}: tabular training pipeline ({team.contract.objective})",
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
        own = [f"{s3_arn}{buckets[z]}/{name}/*" for z in ("features", "artifacts", "reports")]
        return [
            iam.PolicyStatement(
                sid="ReadTeamRawBatchesAndPiiKey", actions=read, resources=[f"{s3_arn}{buckets['raw']}/{team_name}/*"]
            ),
            iam.PolicyStatement(
                sid="WriteQuarantine", actions=write, resources=[f"{s3_arn}{buckets['raw']}/quarantine/{name}/*"]
            ),
            iam.PolicyStatement(sid="ReadWriteOwnPrefixes", actions=[*read, *write], resources=own),
            iam.PolicyStatement(
                sid="ListOwnPrefixes",
                actions=["s3:ListBucket"],
                resources=[f"{s3_arn}{buckets[z]}" for z in PIPELINE_ZONES],
                conditions={"StringLike": {"s3:prefix": [f"{name}/*", f"{team_name}/*", f"quarantine/{name}/*"]}},
            ),
            iam.PolicyStatement(
                sid="ReadStepCodeAndContract",
                actions=read,
                resources=[
                    f"{s3_arn}{asset.s3_bucket_name}/{asset.s3_object_key}"
                    for asset in (self.code_asset, self.contract_asset)
                ],
            ),
            # SageMaker lists an S3Prefix input before downloading it, even when the prefix is one object.
            iam.PolicyStatement(
                sid="ListStepCodeAndContract",
                actions=["s3:ListBucket"],
                resources=[f"{s3_arn}{self.code_asset.s3_bucket_name}"],
                conditions={
                    "StringEquals": {"s3:prefix": [a.s3_object_key for a in (self.code_asset, self.contract_asset)]}
                },
            ),
            iam.PolicyStatement(
                sid="UseZoneAndJobKeys",
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[job_key.key_arn, *(zone_keys[z].key_arn for z in PIPELINE_ZONES)],
            ),
            # Grants let SageMaker use the keys for the job's volumes; only for AWS resources, never people.
            iam.PolicyStatement(
                sid="GrantKeysToSageMakerResources",
                actions=["kms:CreateGrant"],
                resources=[job_key.key_arn, *(zone_keys[z].key_arn for z in PIPELINE_ZONES)],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
            iam.PolicyStatement(
                sid="RunPipelineJobs",
                actions=[
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",
                ],
                resources=[f"{sm}:processing-job/pipelines-*", f"{sm}:training-job/pipelines-*"],
            ),
            iam.PolicyStatement(
                sid="RegisterInTeamGroup",
                actions=["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage", "sagemaker:AddTags"],
                resources=[f"{sm}:model-package-group/{group_name}", f"{sm}:model-package/{group_name}/*"],
            ),
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

        reasons = {
            f"{bucket('raw')}/{team_name}/*": "objects under the team's own raw prefix only: batches land "
            "under new keys, so the object names cannot be known in advance",
            f"{bucket('raw')}/quarantine/{name}/*": "write-only to this pipeline's quarantine prefix; keys "
            "are per execution",
            **{
                f"{bucket(z)}/{name}/*": f"this pipeline's own prefix in the {z} zone; keys are per execution"
                for z in ("features", "artifacts", "reports")
            },
            f"{sm}:processing-job/pipelines-*": "SageMaker Pipelines names jobs pipelines-<execution>-<step> "
            "at run time; scoped to pipeline-created jobs in this account and region",
            f"{sm}:training-job/pipelines-*": "SageMaker Pipelines names jobs pipelines-<execution>-<step> "
            "at run time; scoped to pipeline-created jobs in this account and region",
            f"{sm}:model-package/{self.model_package_group_name}/*": "new versions of the team's own model "
            "package group only; version numbers are assigned at registration",
            f"arn:{partition}:ecr:{region}:*:repository/sagemaker-*": "SageMaker framework images live in "
            "AWS-owned registry accounts that differ per region; read-only pulls of sagemaker-* repositories",
            f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/*": "SageMaker writes job logs "
            "to its fixed /aws/sagemaker/ log groups with per-job streams",
            "*": "ecr:GetAuthorizationToken, the ec2 network-interface actions SageMaker needs for VPC jobs and "
            "cloudwatch:PutMetricData (namespace-conditioned) do not support resource-level permissions",
        }
        for resource, reason in reasons.items():
            acknowledge(self.policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
