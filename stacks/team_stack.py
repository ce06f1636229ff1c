"""Team workload (one per team per environment): the team's registry and one pipeline per template."""

from __future__ import annotations

from aws_cdk import Stack, Tags
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from config.models import EnvironmentConfig, TeamConfig
from stacks.components.data_lake import DataLake
from stacks.components.keys import purpose_key
from stacks.components.ml_pipeline import TabularPipeline
from stacks.components.model_registry import ModelRegistry
from stacks.security_stack import SecurityFoundationStack
from stacks.settings import removal_policy

# Template name -> construct class. A new template adds its construct here.
PIPELINE_CONSTRUCTS = {"tabular": TabularPipeline}


class TeamWorkloadStack(Stack):
    """Exposes ``job_key``, ``registry`` and ``pipelines`` (template name → pipeline construct)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: EnvironmentConfig,
        team: TeamConfig,
        security: SecurityFoundationStack,
        lake: DataLake,
    ) -> None:
        super().__init__(scope, construct_id)
        for key, value in {"flywheel:team": team.name, **team.tags}.items():
            Tags.of(self).add(key, value)
        self.registry = ModelRegistry(
            self,
            "Registry",
            group_name=f"flywheel-{environment.name}-{team.name}",
            description=team.description or f"Models of team {team.name}",
        )
        # One key per team for its jobs' volumes and outputs (quarantined raw data included): teams never
        # share the key that protects what their jobs write.
        self.job_key = purpose_key(
            self,
            "JobKey",
            purpose=f"{team.name} SageMaker job volumes and outputs",
            removal_policy=removal_policy(environment),
        )
        subnets = security.network.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnets
        self.pipelines = {}
        for template in team.pipelines:
            construct = PIPELINE_CONSTRUCTS[template](
                self,
                f"{template.title()}Pipeline",
                environment=environment,
                team=team,
                zone_keys=dict(lake.keys),
                job_key=self.job_key,
                subnets=subnets,
                security_group=security.network.workload_security_group,
                model_package_group_name=self.registry.group_name,
            )
            construct.pipeline.node.add_dependency(self.registry.model_package_group)
            self.pipelines[template] = construct
