"""Team workload (one per team per environment): composes the team's :class:`MlTeam`."""

from __future__ import annotations

from aws_cdk import Stack, Tags
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from config.models import EnvironmentConfig, TeamConfig
from stacks.components.data_lake import DataLake
from stacks.components.ml_team import MlTeam, TeamPipeline
from stacks.security_stack import SecurityFoundationStack
from stacks.settings import removal_policy


class TeamWorkloadStack(Stack):
    """Exposes ``team`` (MlTeam) and, from it, ``job_key``, ``registry`` and ``pipelines``."""

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
        self.team = MlTeam(
            self,
            "Team",
            env_name=environment.name,
            team_name=team.name,
            description=team.description,
            pipelines=[
                TeamPipeline(template, team.template_settings(name)) for name, template in team.templates().items()
            ],
            zone_keys=lake.keys,
            subnets=security.network.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnets,
            security_group=security.network.workload_security_group,
            removal_policy=removal_policy(environment),
        )
        self.registry = self.team.registry
        self.job_key = self.team.job_key
        self.pipelines = self.team.pipelines
