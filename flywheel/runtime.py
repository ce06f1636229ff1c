"""The local runtime: provision → land → trigger → execute → register → approve → deploy → serve.

:class:`LocalRuntime` orchestrates one embedded AWS (:mod:`flywheel.embedded`) and one state directory
(:mod:`flywheel.state`); the pieces live in their own modules:

* :meth:`~LocalRuntime.land` uploads a batch (a file, or generated rows) to
  ``s3://<raw>/<team>/incoming/<batch>/`` and returns the S3 ``Object Created`` event S3 would send;
* :meth:`~LocalRuntime.trigger` hands the event to :func:`lambdas.lifecycle.on_data_arrival` — the
  same code the data-arrival Lambda runs — whose start action (:mod:`flywheel.actions`) calls
  ``StartPipelineExecution`` in moto and records the run as pending in the state store;
* :meth:`~LocalRuntime.execute` takes a pending run (started by this process or any other on the same
  state dir) and runs its definition with the local executor, recording every step; the packages it
  registers are mirrored in the state dir with the run that registered them
  (:mod:`flywheel.registry_mirror`); :meth:`~LocalRuntime.outcome` collects its results
  (:mod:`flywheel.outcome`);
* :meth:`~LocalRuntime.set_approval` updates the package in the registry and sends the state-change
  event to :func:`lambdas.lifecycle.on_model_package_state_change`, whose deploy action copies the
  approved artifact next to the state (so ``flywheel serve`` works without the embedded AWS);
* :meth:`~LocalRuntime.write_report` writes a run's HTML report (:mod:`flywheel.report`);
  :func:`flywheel.demo.run_demo` runs the whole loop.

Expected problems raise :class:`flywheel.errors.FlywheelError` subclasses whose message names the
problem and the fix.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import ClientError

import naming
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
    PortInUseError,
    RemoteBindError,
    RunNotPendingError,
    StateCorruptError,
    UnknownPackageError,
    UnknownTeamError,
    UnknownTemplateError,
)
from flywheel.executor import ExecutionRecord, PipelineExecutor
from flywheel.executor.jobs import sweep_stale_jobs
from flywheel.executor.pipeline import jsonable
from flywheel.outcome import RunOutcome, collect_outcome, download_evaluation
from flywheel.registry_mirror import RegistryMirror, is_placeholder, list_packages
from flywheel.state import StateStore, pid_alive, private_umask
from flywheel.templates import RunReading
from lambdas import lifecycle
from lambdas.data_arrival.config import DEFAULT_MARKER
from lambdas.lifecycle import DATA_SUFFIXES

AWS_SERVER: Final = "aws"
#: The object that completes a batch: the data-arrival Lambda's default ``BATCH_COMPLETE_MARKER``.
BATCH_MARKER: Final = DEFAULT_MARKER

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


def open_aws(state: StateStore, endpoint_url: str | None = None) -> EmbeddedAws:
    """The embedded AWS to use: ``endpoint_url``, else a live ``flywheel up`` server, else in-process."""
    if endpoint_url:
        return EmbeddedAws.connect(endpoint_url)
    record = state.server(AWS_SERVER)
    if record and pid_alive(record.get("pid")):
        with contextlib.suppress(EmbeddedAwsError):
            return EmbeddedAws.connect(str(record["url"]))
    return EmbeddedAws.in_process()


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
        self.swept = self.start_clean()
        self.on_update = on_update
        self.keep_job_data = keep_job_data
        self.registry = RegistryMirror(aws, state)
        self.actions = LocalActions(aws, state, self.registry, self.reading_of_pipeline, self.rollout_settings)
        self._resources: dict[str, TeamResources] = {}
        self._readings: dict[tuple[str, str], RunReading] = {}
        #: Deploy-Lambda variables overriding the local rollout defaults (e.g. ``{"BAKE_SECONDS": "1"}``).
        self.rollout_overrides: dict[str, str] = {}

    def start_clean(self) -> list[Path]:
        """What every runtime does first: private permissions (umask 077; the state dir made 0700/0600),
        and the leftovers of processes that died mid-run swept — their job processes killed, the input
        copies of their job folders (raw data, PII key) and their generated data removed, their
        executions marked failed. Returns the execution folders swept."""
        private_umask()
        self.state.harden()
        with self.state.lock("sweep"):
            swept = sweep_stale_jobs(self.state.root / "jobs")
            for folder in sorted((self.state.root / "data").glob("*-p*-*")):
                owner = folder.name.rsplit("-", 2)[-2].removeprefix("p")
                if owner.isdigit() and not pid_alive(int(owner)):
                    shutil.rmtree(folder, ignore_errors=True)
            for execution_dir in swept:
                with contextlib.suppress(ValueError, FlywheelError):
                    stored = self.state.execution(execution_dir.name)
                    if stored and stored.get("PipelineExecutionStatus") == "Executing":
                        stored.update(
                            PipelineExecutionStatus="Failed",
                            FailureReason="the process running it died; its job folders were scrubbed",
                            EndTime=now(),
                        )
                        self.state.save_execution(stored)
        return swept

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

    def provision(self, teams: list[str] | None = None) -> dict[str, TeamResources]:
        """Provision the platform and the teams (all by default); idempotent."""
        names = teams if teams is not None else self.team_names
        configs = [self.team_config(name) for name in names]
        platform = provision_platform(self.aws)
        for team in configs:
            # The key lives in the state dir so that tokens stay stable across embedded-AWS lifetimes.
            key = self.state.secret(f"{team.name}-pii-hmac.key", new_pii_key)
            self._resources[team.name] = provision_team(self.aws, team, platform, pii_key=key)
            self.registry.restore(NAMES.model_package_group(team.name))
        return {name: self._resources[name] for name in names}

    def resources(self, team: str) -> TeamResources:
        """The team's resources (provisioned on first use)."""
        if team not in self._resources:
            self.provision([team])
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
        teams = {name: self.target(name, pipelines.get(name)) for name in self._resources}
        return lifecycle.LifecycleContext(
            teams=teams,
            sagemaker=self.aws.client("sagemaker"),
            s3=self.aws.client("s3"),
            actions=self.actions,
            store=self.state,
            account=ACCOUNT,
        )

    # Landing data -----------------------------------------------------------------------------------
    def generate(self, team: str, rows: int, seed: int, folder: Path) -> Path:
        """Write ``rows`` rows of the team's example dataset as CSV under ``folder``."""
        from flywheel import datasets

        self.team_config(team)
        if rows < 1:
            raise DataError(f"--rows must be at least 1, got {rows}")
        if team == "churn":
            return datasets.write_churn_csv(folder / "churn.csv", rows, seed=seed)
        loaders = datasets.samples.LOADERS
        if team in loaders:
            frame = datasets.samples.sample(loaders[team](), rows, seed=seed)
            return datasets.write_csv(frame, folder / f"{team}.csv")
        raise DataError(f"there is no example data generator for team {team!r}: pass a file with --data instead")

    def land(self, team: str, source: Path, *, batch: str | None = None, complete: bool = True) -> dict[str, Any]:
        """Upload ``source`` to the team's incoming prefix, then (``complete``) the batch's ``_SUCCESS``
        marker; returns the data file's S3 ``Object Created`` event (see :meth:`trigger`)."""
        res = self.resources(team)
        source = Path(source)
        if not source.is_file():
            raise DataError(f"data file {source} does not exist: pass an existing CSV or parquet file")
        if not source.name.lower().endswith(DATA_SUFFIXES):
            raise DataError(f"data file {source.name}: use one of {', '.join(DATA_SUFFIXES)}")
        batch = batch or f"batch-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        key = f"{res.incoming_prefix}{batch}/{source.name}"
        s3 = self.aws.client("s3")
        from boto3.s3.transfer import TransferConfig

        s3.upload_file(
            str(source),
            res.raw_bucket,
            key,
            ExtraArgs={"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": res.platform.keys["raw"]},
            Config=TransferConfig(multipart_threshold=256 * 1024 * 1024),
        )
        event = self._object_event(res.raw_bucket, key)
        if complete:
            # The batch is complete when its marker lands after its files (the data-arrival Lambda's rule).
            s3.put_object(
                Bucket=res.raw_bucket,
                Key=f"{res.incoming_prefix}{batch}/{BATCH_MARKER}",
                Body=b"",
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=res.platform.keys["raw"],
            )
        return event

    def _object_event(self, bucket: str, key: str) -> dict[str, Any]:
        """The S3 ``Object Created`` event of an object as it is now."""
        head = self.aws.client("s3").head_object(Bucket=bucket, Key=key)
        return lifecycle.object_created_event(
            bucket,
            key,
            etag=str(head["ETag"]),
            size=int(head["ContentLength"]),
            sequencer=f"{time.time_ns():016X}",
            version_id=head.get("VersionId"),
            region=self.aws.region,
            account=ACCOUNT,
        )

    def trigger(self, event: dict[str, Any], *, pipelines: Mapping[str, str] | None = None) -> lifecycle.ArrivalResult:
        """Deliver an S3 event to the data-arrival handler (as EventBridge would), then the event of its
        batch's marker if the event's object is not the marker and the marker has landed (S3 sent both).

        Each event goes to :func:`lambdas.lifecycle.on_data_arrival` with the deployed Lambda's own
        parameters: ``complete_marker`` = ``_SUCCESS`` (only the marker of a folder holding a data file
        starts the batch) and ``client_token`` = the Lambda's token of the object version
        (:func:`lambdas.data_arrival.logic.client_request_token`). So a data file alone starts nothing,
        and any event of a started batch (a redelivery, its marker again) is a duplicate.

        ``pipelines``: team -> the template whose pipeline the batch starts (default: the team's first).
        """
        if not self._resources:
            self.provision()
        context = self.lifecycle_context(pipelines)
        result = self._deliver(event, context)
        key = result.key
        if result.skipped and key.rpartition("/")[2] != BATCH_MARKER:
            marker = f"{key.rpartition('/')[0]}/{BATCH_MARKER}"
            try:
                marker_event = self._object_event(result.bucket, marker)
            except ClientError:
                return result  # the batch is not complete yet
            return self._deliver(marker_event, context)
        return result

    @staticmethod
    def _deliver(event: dict[str, Any], context: lifecycle.LifecycleContext) -> lifecycle.ArrivalResult:
        """One event through the data-arrival logic, with the data-arrival Lambda's parameters."""
        from lambdas.data_arrival.logic import client_request_token

        parsed = lifecycle.parse_object_created_event(event, account=context.account)
        token = client_request_token(parsed.bucket, parsed.key, parsed.version_id)
        return lifecycle.on_data_arrival(event, context, complete_marker=BATCH_MARKER, client_token=token)

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
        ref = ref.strip()
        if ref.startswith("arn:"):
            match = lifecycle._PACKAGE_ARN.match(ref)
            if match is None:
                raise UnknownPackageError(f"{ref!r} is not a model package ARN (…:model-package/<group>/<version>)")
            team = next((t for t in self.team_names if NAMES.model_package_group(t) == match["group"]), None)
            if team is None:
                raise UnknownPackageError(f"model package group {match['group']!r} belongs to no configured team")
            arn = ref
        else:
            team, sep, version = ref.partition(":")
            if not sep or not version.isdigit():
                raise UnknownPackageError(f"{ref!r} is neither a model package ARN nor <team>:<version> (e.g. churn:1)")
            self.team_config(team)
            group = NAMES.model_package_group(team)
            arn = f"arn:aws:sagemaker:{self.aws.region}:{ACCOUNT}:model-package/{group}/{int(version)}"
        self.resources(team)
        try:
            package = self.aws.client("sagemaker").describe_model_package(ModelPackageName=arn)
        except ClientError:
            versions = [str(p["ModelPackageVersion"]) for p in self.packages(team)]
            hint = (
                f"known versions: {', '.join(versions)}"
                if versions
                else "the registry is empty (packages live as long as the embedded AWS: run `flywheel up` "
                "and register with `flywheel run` while it runs, or use `flywheel demo`)"
            )
            raise UnknownPackageError(
                f"no model package {ref!r} in group {NAMES.model_package_group(team)}; {hint}"
            ) from None
        return team, jsonable(package)

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
        return lifecycle.on_model_package_state_change(event, self.lifecycle_context())

    def deploy_config(self, team: str) -> Any:
        """The team's :class:`lambdas.deploy.config.DeployConfig` — the settings type the deploy handler
        validates — filled from its config (``deploy_target``, ``instances.endpoint``) and the local
        rollout defaults (:data:`flywheel.rollout.LOCAL_ROLLOUT`: canary 20 %, bake 5 s)."""
        from flywheel.rollout import deploy_config

        config, res = self.team_config(team), self.resources(team)
        return deploy_config(
            team=team,
            group=res.group_name,
            endpoint=NAMES.endpoint(team),
            account=ACCOUNT,
            deploy_target=config.deploy_target,
            instance_type=config.instances.endpoint,
            min_instances=1,
            volume_key=res.platform.keys["artifacts"],
            capture_bucket=res.platform.buckets["capture"],
            capture_key=res.platform.keys["capture"],
            overrides=self.rollout_overrides,
        )

    def rollout_settings(self, team: str) -> Any:
        """The team's canary settings (:class:`flywheel.rollout.RolloutSettings`), from the
        ``DeploymentConfig`` the deploy Lambda would send; None for serverless and batch teams."""
        from flywheel.rollout import RolloutSettings

        return RolloutSettings.from_deploy_config(self.deploy_config(team))

    # Serving ------------------------------------------------------------------------------------------
    def deployment(self, team: str) -> dict[str, Any]:
        """The team's deployment record; NotDeployedError with the fix otherwise."""
        self.team_config(team)
        record = self.state.deployment(team)
        if not record or not Path(str(record.get("LocalModel"))).is_file():
            raise NotDeployedError(
                f"team {team} has no deployed model: approve a package first (`flywheel approve {team}:<version>`)"
            )
        return record

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
        from flywheel.serving import _is_loopback

        if not _is_loopback(host) and not allow_remote:
            raise RemoteBindError(
                f"refusing to serve team {team} on {host}: it is reachable from other machines and the endpoint "
                "has no authentication; keep --host 127.0.0.1, or pass --allow-remote if you mean it"
            )
        from flywheel import serving
        from flywheel.actions import end_rollout
        from flywheel.capture import LocalCaptureSink, S3CaptureSink
        from flywheel.rollout import EndpointDriver

        record = self.deployment(team)

        def load(fields: Mapping[str, Any]) -> Any:
            model = serving.load_model(Path(str(fields["LocalModel"])))
            return serving.Target(model, fields.get("ModelPackageVersion"), str(fields["ModelPackageArn"]))

        def record_outcome(decision: dict[str, Any]) -> None:
            outcome, reason, rollout_id = decision["outcome"], decision["reason"], decision["rollout_id"]
            self.state.update_deployment(
                team, lambda current: end_rollout(current, outcome, reason, decision, rollout_id=rollout_id)
            )

        driver = EndpointDriver(lambda: self.state.deployment(team), load, record_outcome, on_rollout)
        router = driver.start_router(record)
        endpoint = NAMES.endpoint(team)
        if capture_to_s3:
            res = self.resources(team)
            bucket = res.platform.buckets["capture"]
            capture: Any = S3CaptureSink(
                self.aws.client("s3"), bucket, naming.CAPTURE, kms_key_id=res.platform.keys["capture"], max_seconds=2.0
            )
            # SageMaker's layout under the capture destination: <destination>/<endpoint>/<variant>/yyyy/...
            where = naming.s3_uri(bucket, naming.capture_prefix(endpoint))
        else:
            folder = self.state.root / "capture"
            capture = LocalCaptureSink(folder)
            where = str(folder / endpoint)
        try:
            server = serving.serve(
                router, host, port, capture=capture, endpoint_name=endpoint, allow_remote=allow_remote
            )
        except BaseException as exc:
            driver.close()
            capture.close()
            if isinstance(exc, PortInUseError):
                raise PortInUseError(port, f"the {team} endpoint", host) from exc
            raise
        driver.attach(server)
        self.state.save_server(
            f"endpoint-{team}",
            {
                "url": server.url,
                "pid": os.getpid(),
                "team": team,
                "ModelPackageArn": record["ModelPackageArn"],
                "ModelPackageVersion": record["ModelPackageVersion"],
                "capture": where,
                "started": now(),
            },
        )
        return server, record, where

    # Status and reports ---------------------------------------------------------------------------------
    def gate(
        self, team: str, parameters: Mapping[str, Any] | None = None, template: str | None = None
    ) -> dict[str, Any] | None:
        """The metric gate of a run with ``parameters`` (its own threshold), else the team's configured one;
        None for a template without a gate."""
        config = self.team_config(team)
        reading = self.reading(team, template)
        if not reading.has_gate or config.metric_gate is None:
            return None
        threshold = reading.gate_threshold(parameters or {})
        return {
            "metric": config.metric_gate.metric,
            "operator": ">=" if config.higher_is_better else "<=",
            "threshold": config.metric_gate.threshold if threshold is None else threshold,
        }

    def objective(self, team: str, template: str | None = None) -> str | None:
        """The objective of the team's data contract for ``template``, None if the template reads no contract."""
        config = self.team_config(team)
        settings = config.template_settings(template or config.pipelines[0])
        objective = getattr(getattr(settings, "contract", None), "objective", None)
        return str(objective) if objective is not None else None

    def status(self) -> dict[str, Any]:
        """Teams' pipelines, executions with their steps and gates, registry contents, deployments and servers."""
        teams = []
        for team in self.config.teams:
            for template in team.pipelines:
                gate = self.gate(team.name, template=template)
                teams.append(
                    {
                        "team": team.name,
                        "template": template,
                        "objective": self.objective(team.name, template) or "",
                        "gate": f"{gate['metric']} {gate['operator']} {gate['threshold']}" if gate else "",
                        "pipeline": NAMES.pipeline(team.name, template),
                        "group": NAMES.model_package_group(team.name),
                    }
                )
        executions = []
        for record in self.state.executions():
            found = self.pipeline_template(str(record.get("PipelineName") or ""))
            if found is not None:
                gate = self.gate(found[0], record.get("Parameters") or {}, template=found[1])
                if gate is not None:
                    record = {**record, "Gate": gate}
            executions.append(record)
        registry = {}
        for team_name in self.team_names:
            with contextlib.suppress(ClientError, EmbeddedAwsError):
                registry[team_name] = self.packages(team_name)
            if not registry.get(team_name):
                # A fresh embedded AWS: show the registry as the state dir keeps it (no provisioning needed).
                registry[team_name] = self.registry.summaries(NAMES.model_package_group(team_name))
        servers = {
            name: {**record, "alive": pid_alive(record.get("pid"))} for name, record in self.state.servers().items()
        }
        return {
            "embedded_aws": {"mode": self.aws.mode, "endpoint_url": self.aws.endpoint_url},
            "teams": teams,
            "executions": executions,
            "registry": registry,
            "deployments": self.state.deployments(),
            "servers": servers,
            # Corrupt state files skipped above: each names the file and what to do.
            "problems": [str(problem) for problem in self.state.problems],
        }

    def report(self, outcome: RunOutcome, serving: dict[str, Any] | None, folder: Path | None = None) -> Any:
        """The report dict of a run (:func:`flywheel.report.run_report`); downloads its evaluation to ``folder``."""
        from flywheel.report import run_report

        team = self.team_config(outcome.team)
        found = self.pipeline_template(outcome.execution.pipeline_name)
        template = found[1] if found else None
        reading = self.reading(outcome.team, template)
        evaluation_dir = (
            download_evaluation(self.aws, reading, outcome.execution, folder) if folder is not None else None
        )
        return run_report(
            outcome,
            reading,
            objective=self.objective(outcome.team, template),
            default_gate_threshold=team.metric_gate.threshold if reading.has_gate and team.metric_gate else None,
            deployment=self.state.deployment(outcome.team),
            serving=serving,
            endpoint_name=NAMES.endpoint(outcome.team),
            evaluation_dir=evaluation_dir,
        )

    def write_report(self, outcome: RunOutcome, serving: dict[str, Any] | None) -> tuple[Path, str | None]:
        """Write the run's HTML report under the state dir (and upload it to the reports bucket)."""
        from flywheel.report import write_report

        record = outcome.execution
        folder = self.state.root / "reports" / record.execution_id
        path = write_report(folder / "report.html", run=self.report(outcome, serving, folder / "evaluation"))
        platform = self.resources(outcome.team).platform
        bucket, key_arn = platform.buckets["reports"], platform.keys["reports"]
        key = f"{naming.pipeline_prefix(record.pipeline_name)}{record.execution_id}/report.html"
        try:
            self.aws.client("s3").put_object(
                Bucket=bucket,
                Key=key,
                Body=path.read_bytes(),
                ContentType="text/html",
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=key_arn,
            )
        except ClientError:
            return path, None
        return path, naming.s3_uri(bucket, key)
