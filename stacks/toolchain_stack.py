"""The CI/CD toolchain: Flywheel deploys itself with CDK Pipelines on a CodePipeline V2 (docs/toolchain.md).

Source (CodeConnections git repository, or an S3 archive for air-gapped setups; never CodeCommit) →
Synth (the project's own ``make install``, ``make test``, then ``cdk synth`` with the CLI pinned in
``package.json``) → UpdatePipeline (self-mutation) → Assets → one stage per configured environment, in
order, each the same :class:`stacks.stage.FlywheelStage` the sandbox deploys; a manual approval before
every production stage; the staging smoke test and retrain-on-code-change as post-deploy steps.

Security: the artifact bucket is ours (SSE-KMS with our rotating key, which also serves cross-account
deploys: target accounts' deploy roles are granted on it), every CodeBuild project is non-privileged,
encrypted with that key and logs to a KMS-encrypted log group with retention; no credentials anywhere:
deploys assume the target accounts' CDK bootstrap roles (``cdk bootstrap --trust <toolchain account>``),
GitHub Actions assumes its role through OIDC.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import jsii
from aws_cdk import Annotations, App, Aspects, Duration, Environment, IAspect, RemovalPolicy, Stack, Stage, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as cp_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

from config.models import EnvironmentConfig, S3Source, TeamConfig, ToolchainConfig
from stacks import PROJECT_ROOT
from stacks.components.github_oidc import GitHubDeployRole
from stacks.components.guardrails import boundary_from_name
from stacks.components.keys import allow_service_logs, purpose_key
from stacks.components.pipeline_acks import acknowledge_generated
from stacks.components.post_deploy import plan, step_role_name, toolchain_role_arn
from stacks.components.secure_bucket import SecureBucket
from stacks.components.toolchain_access import ToolchainAccess
from stacks.nag import acknowledge
from stacks.settings import _RETENTION
from stacks.stage import FlywheelStage, add_stages

TOOLCHAIN_STACK = "Flywheel-Toolchain"
#: The README's test command: the synth step runs exactly this before synthesizing.
TEST_COMMAND = "make test"
INSTALL_COMMAND = "make install"
BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0
SMOKE, RETRAIN = "smoke", "retrain"
POST_DEPLOY_COMMAND = "python -m toolchain.post_deploy"
#: Where the post-deploy plans land in the cloud assembly, and where a post step finds the checkout.
PLANS_DIR = "toolchain-plans"
SOURCE_DIR = "source"


def pinned_cdk_cli_version(package_json: Mapping[str, object] | None = None) -> str:
    """The ``aws-cdk`` version ``package.json`` pins (exact): the synth step and self-mutation use it."""
    data = package_json or json.loads((PROJECT_ROOT / "package.json").read_text(encoding="utf-8"))
    version = str((data.get("devDependencies") or {}).get("aws-cdk", ""))  # type: ignore[union-attr]
    if not version or not version[0].isdigit():
        raise ValueError(f"package.json must pin aws-cdk to an exact version (e.g. 2.1148.1), not {version!r}")
    return version


def synth_commands(cli_version: str) -> list[str]:
    """Install with the project's own command, run the README's test command, synthesize the toolchain."""
    return [
        TEST_COMMAND,
        # The pinned CLI from package-lock.json (npm ci in `make install`), checked before it synthesizes.
        f'test "$(./node_modules/.bin/cdk --version | cut -d" " -f1)" = "{cli_version}"',
        "./node_modules/.bin/cdk synth -c target=toolchain --quiet",
    ]


@jsii.implements(IAspect)
class EncryptCodeBuild:
    """Every CodeBuild project of the toolchain encrypts its artifacts with ``key`` (not the AWS-managed
    S3 key), and none runs privileged (Docker-in-Docker): a project that does is a synth error."""

    def __init__(self, key: kms.IKey) -> None:
        self.key = key

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, codebuild.CfnProject):
            node.encryption_key = self.key.key_arn
            env = node.environment
            privileged = getattr(env, "privileged_mode", None) if env is not None else None
            if privileged:
                Annotations.of(node).add_error("toolchain CodeBuild projects must not run privileged")


def toolchain_stages(
    scope: Construct,
    toolchain: ToolchainConfig,
    environments: tuple[EnvironmentConfig, ...],
    teams: tuple[TeamConfig, ...],
) -> dict[str, FlywheelStage]:
    """The stages the toolchain deploys, in its order (the first is the promotion source), built with
    :func:`stacks.stage.add_stages`: the same stages ``-c env=all`` synthesizes."""
    by_name = {e.name: e for e in environments}
    return add_stages(scope, [by_name[name] for name in toolchain.stages], teams)


class ToolchainAccessStack(Stack):
    """In each deployed stage: the roles the toolchain's post-deploy steps assume there."""

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
        super().__init__(scope, construct_id, description=f"Flywheel {environment.name}: toolchain post-deploy roles")
        self.access = ToolchainAccess(
            self, "Access", environment=environment, teams=teams, toolchain_account=toolchain_account, steps=steps
        )
        iam.PermissionsBoundary.of(self).apply(
            boundary_from_name(self, "PermissionsBoundary", env_name=environment.name)
        )


class ToolchainStack(Stack):
    """The pipeline and everything it needs in the toolchain account (see the module docstring).

    ``stages``: environment name → its :class:`FlywheelStage`, in deployment order; ``pipeline``: the
    CDK Pipelines L3 (built); ``code_pipeline``: the V2 pipeline underneath.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        toolchain: ToolchainConfig,
        environments: tuple[EnvironmentConfig, ...],
        teams: tuple[TeamConfig, ...],
        cli_version: str,
        stages: Mapping[str, FlywheelStage],
    ) -> None:
        """``stages``: the stages of :func:`toolchain_stages` (built in the App, so their stacks are named
        exactly like the sandbox's, ``Flywheel-<env>-<stack>``); every ``toolchain.stages`` entry must be
        there. Empty: the pipeline without stages (source, synth and self-mutation only), for the tests
        of the source variants."""
        super().__init__(
            scope,
            construct_id,
            env=Environment(account=toolchain.account, region=toolchain.region),
            description="Flywheel CI/CD toolchain: CodePipeline V2 deploying dev, staging and (approved) prod",
        )
        self.toolchain = toolchain
        by_name = {e.name: e for e in environments}
        ordered = tuple(by_name[name] for name in toolchain.stages)
        retain = RemovalPolicy.RETAIN

        # Keys and buckets -----------------------------------------------------------------------------------
        self.artifact_key = purpose_key(self, "ArtifactKey", purpose="toolchain artifacts", removal_policy=retain)
        kms.Alias(
            self, "ArtifactKeyAlias", alias_name="alias/flywheel-toolchain-artifacts", target_key=self.artifact_key
        )
        self.logs_key = purpose_key(self, "LogsKey", purpose="toolchain build logs", removal_policy=retain)
        allow_service_logs(self.logs_key)
        access_logs = SecureBucket(self, "AccessLogs", key=None, access_log_bucket=None, removal_policy=retain)
        acknowledge(
            access_logs.bucket,
            "AwsSolutions-S1",
            "This is the server-access-log target of the toolchain's buckets; logging it into itself would loop",
        )
        for pack in ("NIST.800.53.R5", "PCI.DSS.321", "HIPAA.Security"):
            acknowledge(
                access_logs.bucket,
                f"{pack}-S3BucketLoggingEnabled",
                "This is the server-access-log target of the toolchain's buckets; logging it into itself would loop",
            )
        self.artifact_bucket = SecureBucket(
            self,
            "Artifacts",
            key=self.artifact_key,
            access_log_bucket=access_logs.bucket,
            access_log_prefix="artifacts/",
            removal_policy=retain,
            noncurrent_days=30,
        ).bucket
        self.log_group = logs.LogGroup(
            self,
            "BuildLogs",
            encryption_key=self.logs_key,
            retention=_RETENTION[toolchain.log_retention_days],
            removal_policy=retain,
        )

        # Source ---------------------------------------------------------------------------------------------
        self.source_bucket = None
        if isinstance(toolchain.source, S3Source):
            self.source_key = purpose_key(self, "SourceKey", purpose="toolchain source", removal_policy=retain)
            self.source_bucket = SecureBucket(
                self,
                "Source",
                key=self.source_key,
                access_log_bucket=access_logs.bucket,
                access_log_prefix="source/",
                removal_policy=retain,
                event_bridge=True,
            ).bucket
            source = pipelines.CodePipelineSource.s3(
                self.source_bucket,
                toolchain.source.object_key,
                action_name="Source",
                trigger=cp_actions.S3Trigger.NONE,  # the EventBridge rule below starts the pipeline
            )
        else:
            git = toolchain.source
            assert git.connection_arn is not None  # validated by config
            source = pipelines.CodePipelineSource.connection(
                git.repository,
                git.branch,
                connection_arn=git.connection_arn,
                action_name="Source",
                trigger_on_push=git.trigger_on_push,
            )

        self.source = source

        # The pipeline ---------------------------------------------------------------------------------------
        self.code_pipeline = codepipeline.Pipeline(
            self,
            "Pipeline",
            pipeline_type=codepipeline.PipelineType.V2,
            artifact_bucket=self.artifact_bucket,
            restart_execution_on_update=True,
            execution_mode=codepipeline.ExecutionMode.QUEUED,
        )
        defaults = pipelines.CodeBuildOptions(
            build_environment=codebuild.BuildEnvironment(
                build_image=BUILD_IMAGE, compute_type=codebuild.ComputeType.SMALL, privileged=False
            ),
            logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=self.log_group)),
            timeout=Duration.minutes(30),
        )
        self.cli_version = cli_version
        self.synth_step = pipelines.CodeBuildStep(
            "Synth",
            input=source,
            install_commands=[INSTALL_COMMAND],
            commands=synth_commands(cli_version),
            primary_output_directory="cdk.out",
            build_environment=codebuild.BuildEnvironment(
                build_image=BUILD_IMAGE,
                compute_type=getattr(codebuild.ComputeType, toolchain.synth_compute.removeprefix("BUILD_GENERAL1_")),
                privileged=False,
            ),
            partial_build_spec=codebuild.BuildSpec.from_object(
                {
                    "phases": {"install": {"runtime-versions": {"python": "3.11", "nodejs": "20"}}},
                    "cache": {"paths": ["/root/.cache/uv/**/*", "/root/.npm/**/*"]},
                }
            ),
            cache=codebuild.Cache.local(codebuild.LocalCacheMode.CUSTOM),
            env={"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"},
            timeout=Duration.minutes(45),
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Toolchain",
            code_pipeline=self.code_pipeline,
            synth=self.synth_step,
            self_mutation=True,
            cli_version=cli_version,
            code_build_defaults=defaults,
            publish_assets_in_parallel=False,
            docker_enabled_for_synth=False,
            docker_enabled_for_self_mutation=False,
            use_change_sets=True,
        )

        # The stages -----------------------------------------------------------------------------------------
        retrain_envs = set(toolchain.retrain.environments or toolchain.stages) if toolchain.retrain.enabled else set()
        smoke_env = toolchain.smoke_test.environment if toolchain.smoke_test else None
        self.step_roles: dict[str, iam.Role] = {}
        #: (environment, step) → the plan written to the cloud assembly
        self.plans: dict[tuple[str, str], str] = {}
        missing = [name for name in toolchain.stages if stages and name not in stages]
        if missing:
            raise ValueError(f"the toolchain deploys {missing}, but no stage was built for them")
        self.stages: dict[str, FlywheelStage] = {name: stages[name] for name in toolchain.stages if name in stages}
        for env in ordered if stages else ():
            stage = self.stages[env.name]
            steps = tuple(s for s, on in ((SMOKE, env.name == smoke_env), (RETRAIN, env.name in retrain_envs)) if on)
            post: list[pipelines.Step] = []
            if steps:
                access = ToolchainAccessStack(
                    stage,
                    "ToolchainAccess",
                    environment=env,
                    teams=teams,
                    toolchain_account=toolchain.account,
                    steps=steps,
                )
                access.add_stack_dependency(stage.security)
                smoke_step = None
                if SMOKE in steps:
                    smoke_step = self._post_step(stage, env, teams, SMOKE)
                    post.append(smoke_step)
                if RETRAIN in steps:
                    retrain_step = self._post_step(stage, env, teams, RETRAIN)
                    if smoke_step is not None:
                        retrain_step.add_step_dependency(smoke_step)  # no retraining on a broken stage
                    post.append(retrain_step)
            pre: list[pipelines.Step] = []
            if env.is_production:
                pre.append(
                    pipelines.ManualApprovalStep(
                        f"Promote-{env.name}",
                        comment=f"Deploy to {env.name} ({env.account}): review the staging smoke test and the "
                        "change set summary first",
                    )
                )
            self.pipeline.add_stage(stage, pre=pre, post=post)
        self.pipeline.build_pipeline()
        if not isinstance(toolchain.source, S3Source):
            self._allow_connection_under_both_prefixes(toolchain.source.connection_arn or "")

        if self.source_bucket is not None:
            assert isinstance(toolchain.source, S3Source)
            uploaded = events.Rule(
                self,
                "SourceUploaded",
                description="Start the toolchain pipeline when a new source archive is uploaded",
                event_pattern=events.EventPattern(
                    source=["aws.s3"],
                    detail_type=["Object Created"],
                    detail={
                        "bucket": {"name": [self.source_bucket.bucket_name]},
                        "object": {"key": [toolchain.source.object_key]},
                    },
                ),
                targets=[targets.CodePipeline(self.code_pipeline)],
            )
            acknowledge(
                uploaded,
                "Serverless-EventBusDLQ",
                "The target starts the pipeline: an undelivered start shows as no execution for the upload, and "
                "the remedy is the same upload again (or Release change); a queue of start events nobody replays "
                "would add a resource without a reader",
            )

        self.github = None
        if toolchain.github is not None:
            self.github = GitHubDeployRole(
                self,
                "GitHubDeploy",
                github=toolchain.github,
                source_bucket=self.source_bucket,
                source_object_key=toolchain.source.object_key if isinstance(toolchain.source, S3Source) else None,
            )

        Aspects.of(self).add(EncryptCodeBuild(self.artifact_key))
        acknowledge_generated(self)

    def _allow_connection_under_both_prefixes(self, connection_arn: str) -> None:
        """CDK grants the source action ``codestar-connections:UseConnection`` only; since the service was
        renamed, a connection may be authorized under ``codeconnections:`` too: grant both, on it alone."""
        role = (
            self.code_pipeline.node.find_child("Source")
            .node.find_child("Source")
            .node.find_child("CodePipelineActionRole")
        )
        assert isinstance(role, iam.Role)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="UseTheConnection",
                actions=["codestar-connections:UseConnection", "codeconnections:UseConnection"],
                resources=[connection_arn],
            )
        )

    def _post_step(
        self, stage: Stage, env: EnvironmentConfig, teams: tuple[TeamConfig, ...], step: str
    ) -> pipelines.CodeBuildStep:
        """A post-deploy CodeBuild step running ``toolchain/post_deploy.py <step>`` against ``stage``."""
        role = self.step_roles.get(step)
        if role is None:
            role = iam.Role(
                self,
                f"{step.capitalize()}StepRole",
                role_name=step_role_name(step),
                assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
                description=f"The toolchain's {step} post-deploy step (assumes the stage's toolchain role)",
            )
            self.step_roles[step] = role
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sts:AssumeRole"],
                resources=[toolchain_role_arn(env, step, partition=self.partition)],
            )
        )
        smoke = self.toolchain.smoke_test
        text = plan(
            env,
            teams,
            step=step,
            opt_out=self.toolchain.retrain.opt_out_teams,
            require_endpoint=bool(smoke and smoke.require_endpoint),
        )
        name = plan_file_name(env.name, step)
        # The plan travels in the cloud assembly (the synth step's output), not in an environment variable:
        # it grows with the teams, variables are size-limited. Its digest is in the project, so a changed
        # plan changes the project and the step refuses a file that does not match.
        folder = Path(App.of(self).outdir) / PLANS_DIR  # type: ignore[union-attr]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
        self.plans[(env.name, step)] = text
        return pipelines.CodeBuildStep(
            "SmokeTest" if step == SMOKE else "Retrain",
            input=self.synth_step,  # the cloud assembly: toolchain-plans/<env>-<step>.json
            additional_inputs={SOURCE_DIR: self.source},  # the checkout: toolchain/post_deploy.py
            commands=[
                f"python -m pip install --quiet --disable-pip-version-check -r {SOURCE_DIR}/toolchain/requirements.txt",
                f"cd {SOURCE_DIR} && {POST_DEPLOY_COMMAND} {step} --plan ../{PLANS_DIR}/{name}",
            ],
            env={"FLYWHEEL_PLAN_SHA256": hashlib.sha256(text.encode()).hexdigest()},
            role=role,
            timeout=Duration.minutes(15),
        )


def plan_file_name(env_name: str, step: str) -> str:
    """``<env>-<step>.json`` in :data:`PLANS_DIR` of the cloud assembly."""
    return f"{env_name}-{step}.json"
