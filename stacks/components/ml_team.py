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
from stacks.components.data_lake import imported_bucket_name
from stacks.components.erasure import TeamErasure
from stacks.components.keys import purpose_key
from stacks.components.lifecycle import DEPLOY_ROLE_KIND, LifecycleProps, TeamLifecycle
from stacks.components.ml_pipeline import MlPipeline, image_repositories
from stacks.components.model_registry import ModelRegistry
from stacks.components.monitoring import MonitoringProps, TeamMonitoring, sklearn_image_of
from stacks.components.personas import PersonaTargets, TeamPersonas
from stacks.components.scoring_schedule import ScoringSchedule


@dataclass(frozen=True)
class TeamPipeline:
    """One of the team's templates and the team's settings for it (validated by its ``settings_model``)."""

    template: PipelineTemplate
    settings: Any


class MlTeam(Construct):
    """``job_key`` (kms.Key), ``registry`` (ModelRegistry), ``pipelines`` (template name → MlPipeline),
    ``lifecycle`` (TeamLifecycle, or None without ``lifecycle`` props), ``personas`` (TeamPersonas)."""

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
        principals: Mapping[str, Sequence[str]] | None = None,
        monitoring: MonitoringProps | None = None,
    ) -> None:
        """``buckets``: zone → bucket name (default: the environment's exported zone buckets);
        ``principals``: persona → who may assume it (config/personas.py; default: the own account)."""
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
        names_listed = [item.template.name for item in pipelines]
        twice = sorted({n for n in names_listed if names_listed.count(n) > 1})
        if twice:
            raise ValueError(f"team {team_name!r}: pipeline template {twice[0]!r} listed twice")
        # Pipelines that register models first: a scoring pipeline's model role reads their artifacts.
        ordered = sorted(pipelines, key=lambda item: not item.template.access.registers_models)
        for item in ordered:
            name = item.template.name
            sources = [p for p in self.pipelines.values() if p.template.access.registers_models]
            pipeline = MlPipeline(
                self,
                f"{_construct_name(name)}Pipeline",
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
                model_sources=[p.pipeline_name for p in sources],
                model_images=sorted({i for p in sources for i in image_repositories(p.definition_body)}),
            )
            pipeline.pipeline.node.add_dependency(self.registry.model_package_group)
            self.pipelines[name] = pipeline
        self.pipelines = {n: self.pipelines[n] for n in names_listed}
        self.lifecycle: TeamLifecycle | None = None
        #: The team's erasure (TeamErasure), with the lifecycle and an `id` column; else None.
        self.erasure: TeamErasure | None = None
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
            # The right to erasure (docs/privacy.md): for teams whose contracts have `id` columns.
            id_columns = sorted({c for item in pipelines for c in _id_columns(item.settings)})
            if id_columns:
                self.erasure = TeamErasure(
                    self,
                    "Erasure",
                    env_name=env_name,
                    team_name=team_name,
                    pipeline_names=[p.pipeline_name for p in self.pipelines.values()],
                    group_name=self.registry.group_name,
                    id_columns=id_columns,
                    buckets={
                        zone: (buckets or {}).get(zone) or imported_bucket_name(env_name, zone)
                        for zone in ("raw", "curated", "features", "reports")
                    },
                    zone_keys=zone_keys,
                    job_key=self.job_key,
                    queue_key=self.lifecycle.store.key,
                    logs_key=lifecycle.logs_key,
                    log_retention=lifecycle.log_retention,
                    topic=self.lifecycle.topic,
                    removal_policy=removal_policy,
                    reserved_concurrency=lifecycle.reserved_concurrency,
                    powertools_layer_version=lifecycle.powertools_layer_version,
                )

        # People's roles (stacks/components/personas.py): data scientist, approver, operator.
        life = self.lifecycle
        alarms = [] if life is None else [*life.metric_alarms.values(), life.arrival.dlq_alarm, life.deploy.dlq_alarm]
        if life is not None and life.endpoint_alarms is not None:
            alarms += life.endpoint_alarms.alarms
        self.personas = TeamPersonas(
            self,
            "Personas",
            env_name=env_name,
            team_name=team_name,
            principals=dict(principals or {}),
            targets=PersonaTargets(
                pipeline_names=[p.pipeline_name for p in self.pipelines.values()],
                group_name=self.registry.group_name,
                endpoint_name=names.endpoint(team_name),
                zone_keys=zone_keys,
                job_key=self.job_key,
                alarms=alarms,
                log_groups=[] if life is None else [life.arrival.log_group, life.deploy.log_group],
                buckets=buckets,
            ),
        )

        #: Template name → the launch path of a scheduled pipeline (``batch-scoring``); needs the lifecycle
        #: (its table, key and topic), so a team built without one gets none.
        self.schedules: dict[str, ScoringSchedule] = {}
        for item in pipelines:
            when = item.template.schedule(item.settings)
            if when is None or self.lifecycle is None or lifecycle is None:
                continue
            self.schedules[item.template.name] = ScoringSchedule(
                self,
                f"{_construct_name(item.template.name)}Schedule",
                env_name=env_name,
                team_name=team_name,
                pipeline=self.pipelines[item.template.name],
                schedule=when,
                group_name=self.registry.group_name,
                buckets=dict(lifecycle.buckets),
                zone_keys=dict(zone_keys),
                job_key=self.job_key,
                key=self.lifecycle.store.key,
                table_arn=self.lifecycle.store.table.table_arn,
                table_name=self.lifecycle.store.table.table_name,
                topic=self.lifecycle.topic,
                logs_key=lifecycle.logs_key,
                log_retention=lifecycle.log_retention,
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


def _id_columns(settings: Any) -> list[str]:
    """The ``id`` columns of a template's settings (its data contract), if it has one."""
    contract = getattr(settings, "contract", None)
    return list(contract.names("id")) if contract is not None else []


def _construct_name(template: str) -> str:
    return template.title().replace("-", "").replace("_", "")
