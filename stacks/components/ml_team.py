"""The unit a team gets in an environment: its job key, model registry, one pipeline per template and,
when ``lifecycle`` is given, its deployed lifecycle (:class:`stacks.components.lifecycle.TeamLifecycle`:
the data-arrival and deploy Lambdas, their table, queues, rules and alarms, the models' role).

With ``monitoring`` given, its monitoring (:class:`stacks.components.monitoring.TeamMonitoring`: dashboard,
alarms on the team's topic, budget, drift-monitor schedule). Props are keyword-only
and narrower than the config objects (names, the templates with their validated settings, the keys,
subnets and security group the team's jobs use); everything built is exposed as a typed attribute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from naming import Names
from pipelines.template import PipelineTemplate
from stacks.components.keys import purpose_key
from stacks.components.lifecycle import DEPLOY_ROLE_KIND, LifecycleProps, TeamLifecycle
from stacks.components.ml_pipeline import MlPipeline
from stacks.components.model_registry import ModelRegistry
from stacks.components.monitoring import MonitoringProps, TeamMonitoring, sklearn_image_of


@dataclass(frozen=True)
class TeamPipeline:
    """One of the team's templates and the team's settings for it (validated by its ``settings_model``)."""

    template: PipelineTemplate
    settings: Any


class MlTeam(Construct):
    """``job_key`` (kms.Key), ``registry`` (ModelRegistry), ``pipelines`` (template name → MlPipeline),
    ``lifecycle`` (TeamLifecycle, or None without ``lifecycle`` props)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        team_name: str,
        description: str,
        pipelines: Sequence[TeamPipeline],
        zone_keys: Mapping[str, kms.IKey],
        subnets: Sequence[ec2.ISubnet],
        security_group: ec2.ISecurityGroup,
        removal_policy: RemovalPolicy,
        buckets: Mapping[str, str] | None = None,
        lifecycle: LifecycleProps | None = None,
        monitoring: MonitoringProps | None = None,
    ) -> None:
        """``buckets``: zone → bucket name (default: the environment's exported zone buckets)."""
        super().__init__(scope, construct_id)
        names = Names(env_name)
        self.team_name = team_name
        consumers = lifecycle.promotion_consumers if lifecycle is not None else ()
        self.registry = ModelRegistry(
            self,
            "Registry",
            group_name=names.model_package_group(team_name),
            description=description or f"Models of team {team_name}",
            readers=[(c.account, c.role_pattern(DEPLOY_ROLE_KIND)) for c in consumers],
        )
        # One key per team for its jobs' volumes and outputs (quarantined raw data included): teams never
        # share the key that protects what their jobs write.
        self.job_key: kms.Key = purpose_key(
            self,
            "JobKey",
            purpose=f"{team_name} SageMaker job volumes and outputs",
            removal_policy=removal_policy,
        )
        self.pipelines: dict[str, MlPipeline] = {}
        for item in pipelines:
            name = item.template.name
            if name in self.pipelines:
                raise ValueError(f"team {team_name!r}: pipeline template {name!r} listed twice")
            pipeline = MlPipeline(
                self,
                f"{name.title().replace('-', '').replace('_', '')}Pipeline",
                env_name=env_name,
                team_name=team_name,
                template=item.template,
                settings=item.settings,
                zone_keys=dict(zone_keys),
                job_key=self.job_key,
                subnets=list(subnets),
                security_group=security_group,
                model_package_group_name=self.registry.group_name,
                buckets=buckets,
            )
            pipeline.pipeline.node.add_dependency(self.registry.model_package_group)
            self.pipelines[name] = pipeline
        self.lifecycle: TeamLifecycle | None = None
        if lifecycle is not None:
            self.lifecycle = TeamLifecycle(
                self,
                "Lifecycle",
                props=lifecycle,
                team_name=team_name,
                group_name=self.registry.group_name,
                pipeline_names=[p.pipeline_name for p in self.pipelines.values()],
                job_key=self.job_key,
                subnets=subnets,
                security_group=security_group,
                removal_policy=removal_policy,
            )
        self.monitoring: TeamMonitoring | None = None
        if monitoring is not None and self.pipelines:
            first = next(iter(self.pipelines.values()))
            self.monitoring = TeamMonitoring(
                self,
                "Monitoring",
                props=monitoring,
                team_name=team_name,
                pipeline_names=[p.pipeline_name for p in self.pipelines.values()],
                lifecycle=self.lifecycle,
                job_key=self.job_key,
                subnets=subnets,
                security_group=security_group,
                removal_policy=removal_policy,
                sklearn_image=sklearn_image_of(first.definition_body),
                input_parameter=first.template.steps.input_data_parameter,
            )
