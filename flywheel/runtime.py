"""The local runtime: provision → land → trigger → execute → register → approve → deploy → serve.

:class:`LocalRuntime` orchestrates one embedded AWS (:mod:`flywheel.embedded`) and one state directory
(:mod:`flywheel.state`); the pieces live in their own modules:

* landing (:mod:`flywheel.landing`): a batch uploaded to ``s3://<raw>/<team>/incoming/<batch>/``, its
  S3 event handed to :func:`lambdas.lifecycle.on_data_arrival` — the data-arrival Lambda's code — whose
  start action (:mod:`flywheel.actions`) starts the pipeline in moto and records the run as pending;
* :meth:`~LocalRuntime.execute` runs a pending run (of this process or any other on the state dir) with
  the local executor; its packages are mirrored in the state dir (:mod:`flywheel.registry_mirror`), its
  results collected by :mod:`flywheel.outcome`;
* :meth:`~LocalRuntime.set_approval` sends the package's state-change event to
  :func:`lambdas.lifecycle.on_model_package_state_change`, whose deploy action copies the artifact next
  to the state; :mod:`flywheel.endpoint` serves it; :mod:`flywheel.status` reports (status, run reports).

Expected problems raise :class:`flywheel.errors.FlywheelError` subclasses whose message names the
problem and the fix.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from flywheel import endpoint, landing, status
from flywheel.actions import LocalActions, now
from flywheel.embedded import (
    ACCOUNT,
    NAMES,
    EmbeddedAws,
    PipelineResources,
    TeamResources,
    new_pii_key,
    provision_platform,
    provision_team,
)
from flywheel.errors import (
    DataError,
    EmbeddedAwsError,
    ExecutorError,
    FlywheelError,
    NotDeployedError,
    RunNotPendingError,
    StateCorruptError,
    UnknownPackageError,
    UnknownTeamError,
    UnknownTemplateError,
)
from flywheel.executor import ExecutionRecord, PipelineExecutor
from flywheel.outcome import RunOutcome, collect_outcome
from flywheel.registry_mirror import RegistryMirror, is_placeholder, list_packages, resolve_package
from flywheel.state import StateStore, pid_alive, sweep_leftovers
from flywheel.templates import RunReading
from lambdas import lifecycle

AWS_SERVER: Final = "aws"

__all__ = [
    "AWS_SERVER",
    "DataError",
    "FlywheelError",
    "LocalRuntime",
    "NotDeployedError",
    "RunOutcome",
    "UnknownPackageError",
    "UnknownTeamError",
    "open_aws",
]


def open_aws(state: StateStore, endpoint_url: str | None = None, *, lazy: bool = False) -> EmbeddedAws:
    """The embedded AWS to use: ``endpoint_url``, else a live ``flywheel up`` server, else in-process
    (``lazy``: started by its first client, see :meth:`EmbeddedAws.in_process`)."""
    if endpoint_url:
        return EmbeddedAws.connect(endpoint_url)
    record = state.server(AWS_SERVER)
    if record and pid_alive(record.get("pid")):
        with contextlib.suppress(EmbeddedAwsError):
            return EmbeddedAws.connect(str(record["url"]))
    return EmbeddedAws.in_process(lazy=lazy)


class LocalRuntime:
    """One team-aware runtime over an embedded AWS and a state directory."""

    def __init__(
        self,
        aws: EmbeddedAws,
        state: StateStore,
        config: Any = None,
        *,
        on_update: Callable[[ExecutionRecord], None] | None = None,
        keep_job_data: bool = False,
        template_dirs: Iterable[Path] = (),
    ) -> None:
        """``config``: the loaded config (default: ``config/``, templates searched in ``pipelines/`` and
        ``template_dirs``, e.g. a team's own templates outside the repository)."""
        if config is None:
            from config.loader import load_config

            config = load_config(template_dirs=tuple(Path(d) for d in template_dirs))
        self.aws = aws
        self.state = state
        self.config = config
        self.swept = sweep_leftovers(state)  # private permissions, dead processes' leftovers swept
        self.on_update = on_update
        self.keep_job_data = keep_job_data
        self.registry = RegistryMirror(aws, state)
        self.actions = LocalActions(aws, state, self.registry, self.reading_of_pipeline, self._rollout_settings)
        self._resources: dict[str, TeamResources] = {}
        self._readings: dict[tuple[str, str], RunReading] = {}
        #: Deploy-Lambda variables overriding the local rollout defaults (e.g. ``{"BAKE_SECONDS": "1"}``).
        self.rollout_overrides: dict[str, str] = {}

    # Teams and resources ------------------------------------------------------------------------------
    @property
    def team_names(self) -> list[str]:
        """The configured teams."""
        return [t.name for t in self.config.teams]

    def team_config(self, team: str) -> Any:
        """The team's config; UnknownTeamError listing the known teams otherwise."""
        try:
            return self.config.team(team)
        except KeyError:
            raise UnknownTeamError(
                f"unknown team {team!r}: known teams are {', '.join(self.team_names)} (config/teams.yaml)"
            ) from None

    def provision(self, teams: list[str] | None = None, *, pipelines: bool = True) -> dict[str, TeamResources]:
        """Provision the platform and the teams (all by default); idempotent.

        ``pipelines=False``: the teams' pipelines are created on first use (:attr:`TeamResources.pipelines`).
        """
        names = teams if teams is not None else self.team_names
        configs = [self.team_config(name) for name in names]
        platform = provision_platform(self.aws)
        for team in configs:
            # The key lives in the state dir so that tokens stay stable across embedded-AWS lifetimes.
            key = self.state.secret(f"{team.name}-pii-hmac.key", new_pii_key)
            self._resources[team.name] = provision_team(self.aws, team, platform, pii_key=key, pipelines=pipelines)
            self.registry.restore(NAMES.model_package_group(team.name))
        return {name: self._resources[name] for name in names}

    def resources(self, team: str, *, pipelines: bool = True) -> TeamResources:
        """The team's resources (provisioned on first use; ``pipelines=False``, the registry path of approve
        and reject: the pipelines too only when first used)."""
        if team not in self._resources:
            self.provision([team], pipelines=pipelines)
        return self._resources[team]

    def templates(self, team: str) -> list[str]:
        """The team's pipeline templates, in ``pipelines:`` order (the first is the one a batch starts)."""
        return list(self.team_config(team).pipelines)

    def reading(self, team: str, template: str | None = None) -> RunReading:
        """How runs of ``team``'s pipeline of ``template`` (default: its first) are read (its contract)."""
        config = self.team_config(team)
        name = template or config.pipelines[0]
        if (team, name) not in self._readings:
            try:
                contract = config.template(name)
            except KeyError as exc:
                raise UnknownTemplateError(str(exc.args[0])) from None
            self._readings[(team, name)] = RunReading.of(contract)
        return self._readings[(team, name)]

    def pipeline_template(self, pipeline_name: str) -> tuple[str, str] | None:
        """``(team, template)`` of a pipeline name of this environment, or None."""
        for team in self.config.teams:
            for template in team.pipelines:
                if NAMES.pipeline(team.name, template) == pipeline_name:
                    return team.name, template
        return None

    def reading_of_pipeline(self, pipeline_name: str) -> RunReading | None:
        """How runs of the pipeline ``pipeline_name`` are read; None if no configured team has it."""
        found = self.pipeline_template(pipeline_name)
        return self.reading(*found) if found else None

    def target(self, team: str, template: str | None = None) -> lifecycle.TeamTarget:
        """The lifecycle's view of a team (its pipeline of ``template``, default: its first)."""
        res = self.resources(team)
        try:
            pipeline = res.pipeline(template)
        except KeyError as exc:
            raise UnknownTemplateError(str(exc.args[0])) from None
        return lifecycle.TeamTarget(team, res.raw_bucket, pipeline.pipeline_name, res.group_name)

    def lifecycle_context(self, pipelines: Mapping[str, str] | None = None) -> lifecycle.LifecycleContext:
        """The context for lifecycle events: provisioned teams, clients, the local actions.

        ``pipelines``: team -> the template whose pipeline a landed batch starts (default: the team's first).
        """
        pipelines = pipelines or {}
        return self._context({name: self.target(name, pipelines.get(name)) for name in self._resources})

    def deploy_context(self) -> lifecycle.LifecycleContext:
        """The context for model-package state changes: the deploy path reads each provisioned team's registry
        and buckets, never its pipelines (the deploy Lambda's target has no pipeline name either), so none
        are created for it."""
        return self._context(
            {
                name: lifecycle.TeamTarget(name, res.raw_bucket, "", res.group_name)
                for name, res in self._resources.items()
            }
        )

    def _context(self, teams: Mapping[str, lifecycle.TeamTarget]) -> lifecycle.LifecycleContext:
        return lifecycle.LifecycleContext(
            teams=teams,
            sagemaker=self.aws.client("sagemaker"),
            s3=self.aws.client("s3"),
            actions=self.actions,
            store=self.state,
            account=ACCOUNT,
        )

    # Landing data (flywheel.landing) ------------------------------------------------------------------
    def generate(self, team: str, rows: int, seed: int, folder: Path) -> Path:
        """Write ``rows`` rows of the team's example dataset as CSV under ``folder``."""
        self.team_config(team)
        return landing.generate(team, rows, seed, folder)

    def land(self, team: str, source: Path, *, batch: str | None = None, complete: bool = True) -> dict[str, Any]:
        """Upload ``source`` to the team's incoming prefix, then (``complete``) the batch's ``_SUCCESS``
        marker; returns the data file's S3 ``Object Created`` event (see :meth:`trigger`)."""
        return landing.land(self.aws, self.resources(team), source, batch=batch, complete=complete)

    def trigger(self, event: dict[str, Any], *, pipelines: Mapping[str, str] | None = None) -> lifecycle.ArrivalResult:
        """Deliver an S3 event to the data-arrival handler as EventBridge would (:func:`flywheel.landing.trigger`).

        ``pipelines``: team -> the template whose pipeline the batch starts (default: the team's first).
        """
        if not self._resources:
            self.provision()
        return landing.trigger(self.aws, event, self.lifecycle_context(pipelines))

    # Executions ---------------------------------------------------------------------------------------
    def execute(self, execution_arn: str) -> ExecutionRecord:
        """Run a started execution to its end with the local executor (any process on the state dir).

        The pending run is taken from the state store first, so of several processes given one run,
        exactly one executes it; the others get :class:`RunNotPendingError`.
        """
        execution_id = execution_arn.rsplit("/", 1)[-1]
        try:
            run = self.state.take_pending_run(execution_id)
        except ValueError:
            run = None  # not a name the state dir could hold: no run of ours
        if run is None:
            raise RunNotPendingError(self._not_pending(execution_arn, execution_id))
        team, parameters = str(run["team"]), dict(run["parameters"])
        pipeline = self._pipeline_of_run(team, str(run.get("pipeline_name") or ""))

        def update(record: ExecutionRecord) -> None:
            self.state.save_execution(record.to_dict())
            if self.on_update is not None:
                self.on_update(record)

        executor = PipelineExecutor(
            self.aws,
            self.state.root / "jobs",
            on_update=update,
            keep_job_data=self.keep_job_data,
            region=self.aws.region,
            account=ACCOUNT,
            register=lambda arguments: self.registry.register(arguments, execution_arn=execution_arn),
        )
        try:
            record = executor.execute(
                pipeline.definition,
                parameters,
                pipeline_name=pipeline.pipeline_name,
                pipeline_arn=pipeline.pipeline_arn,
                execution_arn=execution_arn,
                tags={"team": team, "template": pipeline.template.name},
            )
        except ExecutorError as exc:
            stored = self.state.execution(execution_id) or {}
            stored.update(PipelineExecutionStatus="Failed", FailureReason=str(exc), EndTime=now())
            self.state.save_execution(stored)
            raise FlywheelError(f"the pipeline of team {team} cannot run: {exc}") from exc
        # Registered packages were snapshotted when they were created (RegistryMirror.register).
        return record

    def _pipeline_of_run(self, team: str, pipeline_name: str) -> PipelineResources:
        """The team's provisioned pipeline a pending run was started on (its first for an unnamed one)."""
        res = self.resources(team)
        for pipeline in res.pipelines.values():
            if pipeline.pipeline_name == pipeline_name:
                return pipeline
        if not pipeline_name:
            return res.primary
        raise FlywheelError(
            f"the run was started on pipeline {pipeline_name}, which team {team} no longer has "
            f"(its pipelines: {', '.join(p.pipeline_name for p in res.pipelines.values())})"
        )

    def execution(self, execution_arn: str) -> ExecutionRecord | None:
        """A run's record as the state store keeps it (whichever process executed it), or None."""
        try:
            stored = self.state.execution(execution_arn.rsplit("/", 1)[-1])
        except ValueError:
            return None
        return ExecutionRecord.from_dict(stored) if stored else None

    def _not_pending(self, execution_arn: str, execution_id: str) -> str:
        try:
            stored = self.state.execution(execution_id)
        except ValueError:
            stored = None
        if stored is None:
            return (
                f"execution {execution_arn} was not started from state dir {self.state.root}: "
                "start a run with `flywheel run` (or land a batch), then execute the ARN it prints"
            )
        return (
            f"execution {execution_arn} is not pending: a process already took it "
            f"(status {stored.get('PipelineExecutionStatus')}); see `flywheel status`"
        )

    def run(
        self,
        team: str,
        *,
        data: Path | None = None,
        rows: int | None = None,
        seed: int = 0,
        parameters: Mapping[str, str] | None = None,
        template: str | None = None,
    ) -> RunOutcome:
        """Land a batch (a file or ``rows`` generated rows), trigger and run the team's pipeline of
        ``template`` (default: its first)."""
        self.team_config(team)
        if template is not None:
            self.reading(team, template)  # an unknown template is an error before anything lands
            if self.is_scoring(team, template):
                raise FlywheelError(
                    f"{template} scores batches with the team's approved model: use score() "
                    f"(`flywheel run --team {team} --template {template}`)"
                )
        if (data is None) == (rows is None):
            raise DataError("give either a data file (--data) or a number of rows to generate (--rows)")
        if not self._resources:
            self.provision([team])
        self.resources(team)
        self.actions.parameter_overrides[team] = {k: str(v) for k, v in (parameters or {}).items()}
        try:
            # Named after this process, so a sweep can remove it if the process dies before cleaning up.
            folder = self.state.root / "data" / f"{team}-p{os.getpid()}-{uuid.uuid4().hex[:8]}"
            source = Path(data) if data is not None else self.generate(team, int(rows or 0), seed, folder)
            try:
                event = self.land(team, source)
            finally:
                shutil.rmtree(folder, ignore_errors=True)  # generated data is seeded: the raw zone has the copy
            arrival = self.trigger(event, pipelines={team: template} if template else None)
            if arrival.execution_arn is None:
                raise FlywheelError(f"the landed object did not start the pipeline: {arrival.skipped}")
            record = self.execute(arrival.execution_arn)
        finally:
            self.actions.parameter_overrides.pop(team, None)
        return self.outcome(team, event, arrival, record)

    def is_scoring(self, team: str, template: str | None) -> bool:
        """Whether ``team``'s pipeline of ``template`` is a batch-scoring one (launched with the approved model)."""
        from flywheel.batch_scoring import is_scoring_template

        if template is None:
            return False
        self.reading(team, template)  # UnknownTemplateError naming the team's templates
        return is_scoring_template(self.team_config(team).template(template))

    def score(
        self, team: str, template: str, *, data: Path | None = None, rows: int | None = None, seed: int = 0
    ) -> Any:
        """Land a batch to score and run the team's scoring pipeline of ``template`` with its newest Approved
        model (:func:`flywheel.batch_scoring.run_scoring`; NoApprovedModelError if it has none)."""
        from flywheel.batch_scoring import run_scoring

        if not self.is_scoring(team, template):
            raise UnknownTemplateError(f"team {team}'s pipeline {template} does not score batches")
        if not self._resources:
            self.provision([team])
        return run_scoring(self, team, template, data=data, rows=rows, seed=seed)

    def outcome(
        self, team: str, event: dict[str, Any], arrival: lifecycle.ArrivalResult, record: ExecutionRecord
    ) -> RunOutcome:
        """Collect a run's results from the embedded AWS (what its template declares: validation,
        quarantine, evaluation, package)."""
        return collect_outcome(self.aws, self._reading_of(team, record), team, event, arrival, record)

    def _reading_of(self, team: str, record: ExecutionRecord) -> RunReading:
        return self.reading_of_pipeline(record.pipeline_name) or self.reading(team)

    # Registry -----------------------------------------------------------------------------------------
    def resolve_package(self, ref: str) -> tuple[str, dict[str, Any]]:
        """``(team, DescribeModelPackage)`` for an ARN or ``<team>:<version>``; UnknownPackageError otherwise."""
        registry_only = functools.partial(self.resources, pipelines=False)  # approve/reject need no pipeline
        return resolve_package(self.aws, ref, self.team_names, self.team_config, registry_only)

    def packages(self, team: str) -> list[dict[str, Any]]:
        """The team's model packages (all statuses), oldest first."""
        return list_packages(self.aws.client("sagemaker"), NAMES.model_package_group(team))

    def set_approval(self, ref: str, status: str, description: str = "") -> lifecycle.DeploymentResult:
        """Approve or reject a package, then deliver the state-change event to the lifecycle."""
        if status not in ("Approved", "Rejected"):
            raise FlywheelError(f"approval status must be Approved or Rejected, got {status!r}")
        _, package = self.resolve_package(ref)
        if is_placeholder(package):
            group, version = package["ModelPackageGroupName"], package["ModelPackageVersion"]
            raise StateCorruptError(
                self.state.package_path(group, int(version)),
                "cannot be read, so this version is a placeholder",
                "restore the file from a backup to approve or reject it; the group's other versions are usable",
            )
        sm = self.aws.client("sagemaker")
        arguments: dict[str, Any] = {"ModelPackageArn": package["ModelPackageArn"], "ModelApprovalStatus": status}
        if description:
            arguments["ApprovalDescription"] = description[:1024]
        sm.update_model_package(**arguments)
        self.registry.snapshot(package["ModelPackageArn"])
        # moto's registry emits no EventBridge event: send the one SageMaker would.
        updated = sm.describe_model_package(ModelPackageName=package["ModelPackageArn"])
        event = lifecycle.model_package_state_change_event(updated, region=self.aws.region, account=ACCOUNT)
        return lifecycle.on_model_package_state_change(event, self.deploy_context())

    # Serving (flywheel.endpoint) ----------------------------------------------------------------------
    def deployment(self, team: str) -> dict[str, Any]:
        """The team's deployment record; NotDeployedError with the fix otherwise."""
        self.team_config(team)
        return endpoint.deployment(self.state, team)

    def _rollout_settings(self, team: str) -> Any:
        """The team's canary settings (:func:`flywheel.endpoint.rollout_settings`), for the deploy action."""
        config, res = self.team_config(team), self.resources(team)
        return endpoint.rollout_settings(team, config, res, self.rollout_overrides)

    def start_endpoint(
        self,
        team: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        capture_to_s3: bool = True,
        allow_remote: bool = False,
        on_rollout: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> tuple[Any, dict[str, Any], str]:
        """Serve the team's deployed package; returns ``(server, deployment record, capture location)``.

        The endpoint follows the team's deployment record (:class:`flywheel.rollout.EndpointDriver`):
        a rollout in progress, now or approved later, is baked with a canary and then promoted or rolled
        back, the outcome recorded in the state store; ``on_rollout(kind, data)`` is told each step
        (``rollout-started``, ``promoted``, ``rolled-back``, ``cancelled``, ``replaced``).
        A non-loopback ``host`` is refused (:class:`~flywheel.errors.RemoteBindError`) unless ``allow_remote``."""
        return endpoint.start_endpoint(
            self.state,
            self.aws,
            team,
            record_of=lambda: self.deployment(team),
            resources_of=lambda: self.resources(team),
            host=host,
            port=port,
            capture_to_s3=capture_to_s3,
            allow_remote=allow_remote,
            on_rollout=on_rollout,
        )

    # Status and reports (flywheel.status) -------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Teams' pipelines, executions with their steps and gates, registry contents, deployments and servers."""
        return status.status(self)

    def report(self, outcome: RunOutcome, serving: dict[str, Any] | None, folder: Path | None = None) -> Any:
        """The report dict of a run (:func:`flywheel.report.run_report`); downloads its evaluation to ``folder``."""
        return status.report(self, outcome, serving, folder)

    def write_report(
        self, outcome: RunOutcome, serving: dict[str, Any] | None, extra_sections: list[dict[str, Any]] | None = None
    ) -> tuple[Path, str | None]:
        """Write the run's HTML report under the state dir (and upload it to the reports bucket)."""
        return status.write_report(self, outcome, serving, extra_sections)
