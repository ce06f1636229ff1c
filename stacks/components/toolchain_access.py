"""The stage-side roles the toolchain's post-deploy steps assume: least privilege, one per step.

``smoke``   reads the team pipelines, registries and endpoint configs and invokes the endpoints;
``retrain`` reads the team pipelines and their latest executions and starts them again.

Each trusts exactly one toolchain-side role (the CodeBuild step's, by ARN), lives under
``/flywheel/<env>/`` and carries the stage's permissions boundary (the stage applies both).
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

import naming
from config.models import EnvironmentConfig, TeamConfig
from stacks.components.post_deploy import step_role_name, toolchain_role_name
from stacks.nag import acknowledge


class ToolchainAccess(Construct):
    """``roles[step]``: the role the toolchain's ``step`` assumes in this stage's account."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: EnvironmentConfig,
        teams: tuple[TeamConfig, ...],
        toolchain_account: str,
        steps: tuple[str, ...],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        names = naming.Names(environment.name)
        arn = f"arn:{stack.partition}:sagemaker:{environment.region}:{environment.account}"
        pipelines = [names.pipeline(t.name, template).lower() for t in teams for template in t.pipelines]
        pipeline_arns = [f"{arn}:pipeline/{p}" for p in pipelines]
        execution_arns = [f"{arn}:pipeline/{p}/execution/*" for p in pipelines]
        groups = [f"{arn}:model-package-group/{names.model_package_group(t.name)}" for t in teams]
        endpoints = [names.endpoint(t.name) for t in teams if t.deploy_target != "batch"]
        read_pipelines = iam.PolicyStatement(
            sid="ReadTeamPipelines", actions=["sagemaker:DescribePipeline"], resources=pipeline_arns
        )
        statements: dict[str, list[iam.PolicyStatement]] = {
            "smoke": [
                read_pipelines,
                iam.PolicyStatement(
                    sid="ReadTeamRegistries", actions=["sagemaker:DescribeModelPackageGroup"], resources=groups
                ),
                # ListModelPackages has no resource type (IAM service reference): it takes "*" only.
                iam.PolicyStatement(sid="ListModelPackages", actions=["sagemaker:ListModelPackages"], resources=["*"]),
            ],
            "retrain": [
                read_pipelines,
                iam.PolicyStatement(
                    sid="ReadAndStartTeamPipelines",
                    actions=["sagemaker:ListPipelineExecutions", "sagemaker:StartPipelineExecution"],
                    resources=pipeline_arns,
                ),
                iam.PolicyStatement(
                    sid="ReadLatestExecutions",
                    actions=[
                        "sagemaker:DescribePipelineDefinitionForExecution",
                        "sagemaker:ListPipelineParametersForExecution",
                    ],
                    resources=execution_arns,
                ),
            ],
        }
        if endpoints:
            statements["smoke"] += [
                iam.PolicyStatement(
                    sid="ReadAndInvokeTeamEndpoints",
                    actions=["sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpoint"],
                    resources=[f"{arn}:endpoint/{e}" for e in endpoints],
                ),
                # Endpoint configs are named <endpoint>-v<version>-<digest> by the deploy Lambda.
                iam.PolicyStatement(
                    sid="ReadTeamEndpointConfigs",
                    actions=["sagemaker:DescribeEndpointConfig", "sagemaker:ListTags"],
                    resources=[f"{arn}:endpoint-config/{e}-v*" for e in endpoints],
                ),
            ]
        self.roles: dict[str, iam.Role] = {}
        for step in steps:
            trusted = f"arn:{stack.partition}:iam::{toolchain_account}:role/{step_role_name(step)}"
            role = iam.Role(
                self,
                f"{step.capitalize()}Role",
                role_name=toolchain_role_name(environment.name, step),
                description=f"Assumed by the toolchain's {step} step ({step_role_name(step)}) after a deploy",
                assumed_by=iam.ArnPrincipal(trusted),
                max_session_duration=Duration.hours(1),
            )
            policy = iam.ManagedPolicy(self, f"{step.capitalize()}Policy", statements=statements[step], roles=[role])
            self.roles[step] = role
            wildcards = {
                "smoke": 'ListModelPackages takes no resource ("*" only); execution and endpoint-config ARNs '
                "carry generated suffixes, so they are scoped to the team's own name prefix",
                "retrain": "pipeline executions have generated ids: the ARN is scoped to the team pipeline's own "
                "execution/* path",
            }[step]
            for finding in _wildcard_findings(step, pipelines, endpoints, environment):
                acknowledge(policy, f"AwsSolutions-IAM5[{finding}]", wildcards)


def _wildcard_findings(
    step: str, pipelines: list[str], endpoints: list[str], environment: EnvironmentConfig
) -> list[str]:
    """cdk-nag's granular IAM5 ids of the step's wildcard resources (the partition renders literally)."""
    prefix = f"Resource::arn:aws:sagemaker:{environment.region}:{environment.account}"
    if step == "smoke":
        return ["Resource::*", *(f"{prefix}:endpoint-config/{e}-v*" for e in endpoints)]
    return [f"{prefix}:pipeline/{p}/execution/*" for p in pipelines]
