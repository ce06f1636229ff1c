"""One ``cdk.Stage`` per environment, used for sandbox deploys and by the CI/CD toolchain alike."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Aspects, Environment, Stage, Tags
from aws_cdk import aws_iam as iam
from constructs import Construct

from config.models import EnvironmentConfig, TeamConfig
from naming import Names
from stacks.audit_stack import AuditStack
from stacks.components.guardrails import RolePath, boundary_from_name, role_path
from stacks.components.lifecycle import PromotionConsumer, PromotionSource, TeamLifecycle
from stacks.data_lake_stack import DataLakeStack
from stacks.security_stack import SecurityFoundationStack
from stacks.team_stack import TeamWorkloadStack


class FlywheelStage(Stage):
    """Security foundation → data lake → audit, then one workload section per team."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: EnvironmentConfig,
        teams: tuple[TeamConfig, ...],
        promotion_consumers: tuple[PromotionConsumer, ...] = (),
        promotion_source: PromotionSource | None = None,
    ) -> None:
        """``promotion_consumers``: environments in other accounts that deploy this one's approved models;
        ``promotion_source`` (production): the environment whose approved packages a person promotes here."""
        super().__init__(scope, construct_id, env=Environment(account=environment.account, region=environment.region))
        self.environment = environment
        lake_stack_name = f"{construct_id}-DataLake"
        self.security = SecurityFoundationStack(
            self,
            "Security",
            environment=environment,
            lake_stack_name=lake_stack_name,
            serverless_endpoints=[Names(environment.name).endpoint(t.name) for t in teams
                                  if t.deploy_target == "serverless"],
        )  # fmt: skip
        self.data_lake = DataLakeStack(
            self, "DataLake", environment=environment, teams=tuple(team.name for team in teams)
        )
        if self.data_lake.stack_name != lake_stack_name:
            raise RuntimeError(f"data-lake stack is named {self.data_lake.stack_name}, not {lake_stack_name}")
        self.audit = None
        if environment.trail:
            self.audit = AuditStack(
                self,
                "Audit",
                environment=environment,
                lake=self.data_lake.lake,
                logs_key=self.security.logs_key,
            )
        # The team section: one workload stack per team (registry, pipelines; later endpoints, monitoring).
        self.teams_config = teams
        self.teams: dict[str, TeamWorkloadStack] = {}
        for team in teams:
            self.teams[team.name] = TeamWorkloadStack(
                self,
                f"Team-{team.name}",
                environment=environment,
                team=team,
                security=self.security,
                lake=self.data_lake.lake,
                promotion_consumers=promotion_consumers,
            )
            self.teams[team.name].add_stack_dependency(self.data_lake)
            if promotion_source is not None:
                for lifecycle in self.teams[team.name].node.find_all():
                    if not isinstance(lifecycle, TeamLifecycle):
                        continue
                    if environment.is_production:
                        lifecycle.accept_promotions_from(promotion_source)
                    if promotion_source.account != environment.account:
                        lifecycle.read_promoted_artifacts(
                            promotion_source, bucket_pattern=artifacts_bucket_pattern(promotion_source.env_name)
                        )
        if promotion_source is not None and promotion_source.account != environment.account:
            self.security.network.admit_source_bucket(
                account=promotion_source.account, bucket_pattern=artifacts_bucket_pattern(promotion_source.env_name)
            )
        for stack in (self.security, self.data_lake, self.audit, *self.teams.values()):
            if stack is None:
                continue
            Tags.of(stack).add("flywheel:environment", environment.name)
            if stack is not self.security:
                stack.add_stack_dependency(self.security)
        # Every role of this stage lives under /flywheel/<env>/: the boundary lets roles pass only those.
        Aspects.of(self).add(RolePath(role_path(environment.name)))
        # Every role any stack of this stage creates carries the permissions boundary. Other stacks name
        # it by its fixed ARN (they deploy after Security) instead of importing a cross-stack export.
        iam.PermissionsBoundary.of(self.security).apply(self.security.guardrails.boundary)
        for stack in (self.data_lake, self.audit, *self.teams.values()):
            if stack is not None:
                iam.PermissionsBoundary.of(stack).apply(
                    boundary_from_name(stack, "PermissionsBoundary", env_name=environment.name)
                )


def artifacts_bucket_pattern(env_name: str) -> str:
    """Another environment's artifacts bucket name as a pattern: CloudFormation names it
    ``<lake stack name>-<logical id>-<suffix>`` in lower case (the lake's ``LakeArtifactsBucket...``)."""
    return f"{stage_id_of(env_name)}-DataLake-LakeArtifactsBucket*".lower()


def stage_id_of(env_name: str) -> str:
    """``Flywheel-<env>`` of an environment name."""
    return f"Flywheel-{env_name}"


def stage_id(environment: EnvironmentConfig) -> str:
    """``Flywheel-<env>``: the stage's construct id (and its stacks' name prefix)."""
    return stage_id_of(environment.name)


def add_stages(
    scope: Construct, environments: Iterable[EnvironmentConfig], teams: tuple[TeamConfig, ...]
) -> dict[str, FlywheelStage]:
    """One :class:`FlywheelStage` per environment (with every team) in ``scope``, by environment name.

    The one way a stage is built: ``app.py``, the security report and the test fixtures all call this.
    The first environment is the promotion source: its registries and artifacts are read by the later
    environments that live in other accounts (:func:`promotion_consumers`).
    """
    envs = tuple(environments)
    return {
        env.name: FlywheelStage(
            scope,
            stage_id(env),
            environment=env,
            teams=tuple(teams),
            promotion_consumers=promotion_consumers(envs) if env is envs[0] else (),
            promotion_source=PromotionSource(env_name=envs[0].name, account=envs[0].account)
            if env is not envs[0]
            else None,
        )
        for env in envs
    }


def promotion_consumers(environments: tuple[EnvironmentConfig, ...]) -> tuple[PromotionConsumer, ...]:
    """The environments after the first (dev → staging → prod) whose account differs from the first's."""
    if not environments:
        return ()
    source = environments[0]
    return tuple(
        PromotionConsumer(env_name=env.name, account=env.account)
        for env in environments[1:]
        if env.account != source.account
    )
