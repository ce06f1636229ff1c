"""Team workload (one per team per environment): composes the team's :class:`MlTeam`."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

import naming
from config.models import EnvironmentConfig, TeamConfig
from lambdas.deploy.config import rollout_environ
from stacks.components.data_lake import DataLake, imported_bucket_name
from stacks.components.lambda_package import POWERTOOLS_LAYER_VERSION
from stacks.components.lifecycle import MODEL_ROLE_KIND, LifecycleProps, PromotionConsumer
from stacks.components.ml_team import MlTeam, TeamPipeline
from stacks.components.monitoring import MonitoringProps
from stacks.security_stack import SecurityFoundationStack
from stacks.settings import log_retention, removal_policy


def team_rollout(team: TeamConfig) -> dict[str, str]:
    """The deploy Lambda's rollout variables of ``team.deployment`` (canary, bake, waits, serverless)."""
    settings = team.deployment
    size_type, size = settings.canary
    return rollout_environ(
        canary_size_type=size_type,
        canary_size=size,
        bake_seconds=settings.bake_seconds,
        termination_wait_seconds=settings.termination_wait_seconds,
        max_execution_seconds=settings.max_execution_seconds,
        serverless_memory_mb=settings.serverless_memory_mb,
        serverless_max_concurrency=settings.serverless_max_concurrency,
    )


#: The zones the lifecycle names buckets of.
LIFECYCLE_ZONES = ("raw", "artifacts", "capture", "reports")


class TeamWorkloadStack(Stack):
    """Exposes ``team`` (MlTeam) and, from it, ``job_key``, ``registry``, ``pipelines`` and ``lifecycle``.

    ``promotion_consumers``: the environments (in other accounts) that deploy this environment's
    approved packages; their deploy roles read the registry, their model roles the team's artifacts.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: EnvironmentConfig,
        team: TeamConfig,
        security: SecurityFoundationStack,
        lake: DataLake,
        promotion_consumers: Sequence[PromotionConsumer] = (),
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
            lifecycle=LifecycleProps(
                env_name=environment.name,
                is_production=environment.is_production,
                deploy_target=team.deploy_target,
                instance_type=team.instances.endpoint,
                min_instances=environment.endpoint_min_instances,
                log_retention=log_retention(environment),
                logs_key=security.logs_key,
                buckets={zone: imported_bucket_name(environment.name, zone) for zone in LIFECYCLE_ZONES},
                zone_keys=lake.keys,
                promotion_consumers=tuple(promotion_consumers),
                rollout=team_rollout(team),
                reserved_concurrency=environment.lambda_reserved_concurrency,
                powertools_layer_version=environment.powertools_layer_version or POWERTOOLS_LAYER_VERSION,
            ),
            principals={persona: team.principals.of(persona, environment.account) for persona in naming.PERSONAS},
            monitoring=MonitoringProps.from_config(
                environment,
                team,
                log_retention=log_retention(environment),
                buckets={zone: imported_bucket_name(environment.name, zone) for zone in LIFECYCLE_ZONES},
                zone_keys=lake.keys,
                logs_key=security.logs_key,
            ),
        )
        self.lifecycle = self.team.lifecycle
        self.monitoring = self.team.monitoring
        if promotion_consumers:
            # The consumers' model roles read the team's artifacts (the bucket policy lives in the lake
            # stack; the team's job key, which encrypts them, admits the same roles: TeamLifecycle).
            lake.artifacts_bucket.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"PromotionModelRolesRead{team.name.title().replace('-', '')}Artifacts",
                    principals=[iam.AccountPrincipal(c.account) for c in promotion_consumers],
                    actions=["s3:GetObject"],
                    resources=[
                        lake.artifacts_bucket.arn_for_objects(naming.pipeline_prefix(p.pipeline_name) + "*")
                        for p in self.team.pipelines.values()
                    ],
                    conditions={
                        "ArnLike": {"aws:PrincipalArn": [c.role_pattern(MODEL_ROLE_KIND) for c in promotion_consumers]}
                    },
                )
            )
        self.registry = self.team.registry
        self.job_key = self.team.job_key
        self.pipelines = self.team.pipelines
        self.personas = self.team.personas
