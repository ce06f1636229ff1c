"""The local runtime: provision → land → trigger → execute → register → approve → deploy → serve.

:class:`LocalRuntime` ties the pieces together on one embedded AWS (:mod:`flywheel.embedded`) and one
state directory (:mod:`flywheel.state`):

* :meth:`~LocalRuntime.land` uploads a batch (a file, or generated rows) to
  ``s3://<raw>/<team>/incoming/<batch>/`` and returns the S3 ``Object Created`` event S3 would send;
* :meth:`~LocalRuntime.trigger` hands the event to :func:`lambdas.lifecycle.on_data_arrival` — the
  same code the data-arrival Lambda runs — which starts the pipeline through this runtime's
  :meth:`~LocalRuntime.start_pipeline` (``StartPipelineExecution`` in moto for the ARN);
* :meth:`~LocalRuntime.execute` runs that execution's definition with the local executor, recording
  every step in the state store;
* :meth:`~LocalRuntime.set_approval` updates the package in the registry and sends the state-change
  event to :func:`lambdas.lifecycle.on_model_package_state_change`, whose deploy action copies the
  approved artifact next to the state (so ``flywheel serve`` works without the embedded AWS);
* :meth:`~LocalRuntime.demo` runs the whole loop and writes the HTML report.

Expected problems raise :class:`FlywheelError` subclasses whose message names the problem and the fix.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import statistics
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import ClientError

from lambdas import lifecycle
from flywheel.embedded import (
    ACCOUNT,
    EmbeddedAws,
    EmbeddedAwsError,
    TeamResources,
    group_name,
    new_pii_key,
    provision_platform,
    provision_team,
    split_s3_uri,
)
from flywheel.executor import ExecutionRecord, ExecutorError, PipelineExecutor
from flywheel.executor.pipeline import jsonable
from lambdas.lifecycle import DATA_SUFFIXES
from flywheel.state import StateStore
from pipelines.tabular.contract import merge_status

SAMPLE_ROWS: Final = 200
AWS_SERVER: Final = "aws"


class FlywheelError(Exception):
    """An expected problem; the message says what is wrong and how to fix it (shown without a trace)."""


class UnknownTeamError(FlywheelError):
    """The team is not in ``config/teams.yaml``."""


class UnknownPackageError(FlywheelError):
    """The model package reference names nothing in the registry."""


class DataError(FlywheelError):
    """The data to land cannot be used (missing file, unsupported format, no generator)."""


class NotDeployedError(FlywheelError):
    """The team has no approved, deployed model package."""


@dataclass
class RunOutcome:
    """Everything one pipeline run produced."""

    team: str
    event: dict[str, Any]
    arrival: lifecycle.ArrivalResult
    execution: ExecutionRecord
    raw_uri: str
    validation: dict[str, Any] | None = None
    quarantine_report: dict[str, Any] | None = None
    quarantine_uri: str | None = None
    evaluation: dict[str, Any] | None = None
    package: dict[str, Any] | None = None

    @property
    def contract_failed(self) -> bool:
        """Whether the batch failed its data contract (and was quarantined)."""
        return self.validation is not None and not self.validation.get("passed", False)


@dataclass
class DemoResult:
    """What ``flywheel demo`` did and where it left things."""

    outcome: RunOutcome
    approval: lifecycle.DeploymentResult | None
    serving: dict[str, Any]
    report_path: Path | None
    report_uri: str | None
    capture_uri: str | None
    timings: dict[str, float] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def open_aws(state: StateStore, endpoint_url: str | None = None) -> EmbeddedAws:
    """The embedded AWS to use: ``endpoint_url``, else a live ``flywheel up`` server, else in-process."""
    if endpoint_url:
        return EmbeddedAws.connect(endpoint_url)
    record = state.server(AWS_SERVER)
    if record and _pid_alive(record.get("pid")):
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
    ) -> None:
        if config is None:
            from config.loader import load_config

            config = load_config()
        self.aws = aws
        self.state = state
        self.config = config
        self.on_update = on_update
        self.keep_job_data = keep_job_data
        self.parameter_overrides: dict[str, dict[str, str]] = {}
        self._resources: dict[str, TeamResources] = {}
        self._pending: dict[str, tuple[str, dict[str, str]]] = {}

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
            self._restore_registry(team.name)
        return {name: self._resources[name] for name in names}

    # Registry persistence -----------------------------------------------------------------------------
    # The embedded AWS lives as long as one process (or `flywheel up`); the registry is the approval
    # record and must outlive it, like the stack retains the real one. Every registered package is
    # snapshotted in the state dir with local copies of the S3 objects it references, and replayed
    # (same versions, same approval status) into a fresh embedded AWS.
    def _snapshot_package(self, package_arn: str) -> None:
        sm, s3 = self.aws.client("sagemaker"), self.aws.client("s3")
        package = jsonable(sm.describe_model_package(ModelPackageName=package_arn))
        group, version = str(package["ModelPackageGroupName"]), int(package["ModelPackageVersion"])
        folder = self.state.registry_dir(group) / f"{version:06d}"
        objects: dict[str, str] = {}
        for uri in sorted(_s3_uris(package)):
            bucket, key = split_s3_uri(uri)
            relative = Path("objects", bucket, *key.split("/"))
            if ".." in relative.parts or not key:
                continue
            local = folder / relative
            if not local.is_file():
                local.parent.mkdir(parents=True, exist_ok=True)
                try:
                    s3.download_file(bucket, key, str(local))
                except ClientError:
                    continue  # a prefix or a missing object: nothing to keep
            objects[uri] = relative.as_posix()
        self.state.save_package(group, version, {"package": package, "objects": objects})

    def _restore_registry(self, team: str) -> None:
        group = group_name(team)
        snapshots = self.state.packages(group)
        if not snapshots:
            return
        sm, s3 = self.aws.client("sagemaker"), self.aws.client("s3")
        existing = {int(p["ModelPackageVersion"]) for p in self.packages(team)}
        accepted = set(sm.meta.service_model.operation_model("CreateModelPackage").input_shape.members)
        folder = self.state.registry_dir(group)
        for snapshot in sorted(snapshots, key=lambda r: int(r["package"]["ModelPackageVersion"])):
            package = snapshot["package"]
            version = int(package["ModelPackageVersion"])
            if version in existing:
                continue
            if version != len(existing) + 1:
                break  # a registry with another history: do not invent versions
            for uri, relative in snapshot.get("objects", {}).items():
                bucket, key = split_s3_uri(uri)
                local = folder / f"{version:06d}" / relative
                if local.is_file():
                    s3.upload_file(str(local), bucket, key)
            arguments = {
                k: v
                for k, v in package.items()
                if k in accepted and k not in ("ModelPackageName", "ClientToken") and v not in (None, {}, [])
            }
            created = sm.create_model_package(**arguments)
            if created["ModelPackageArn"] != package["ModelPackageArn"]:
                break
            existing.add(version)

    def resources(self, team: str) -> TeamResources:
        """The team's resources (provisioned on first use)."""
        if team not in self._resources:
            self.provision([team])
        return self._resources[team]

    def target(self, team: str) -> lifecycle.TeamTarget:
        """The lifecycle's view of a team."""
        res = self.resources(team)
        return lifecycle.TeamTarget(team, res.raw_bucket, res.pipeline_name, res.group_name)

    def lifecycle_context(self) -> lifecycle.LifecycleContext:
        """The context for lifecycle events: provisioned teams, clients, this runtime as the actions."""
        teams = {name: self.target(name) for name in self._resources}
        return lifecycle.LifecycleContext(
            teams=teams,
            sagemaker=self.aws.client("sagemaker"),
            s3=self.aws.client("s3"),
            actions=self,
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

    def land(self, team: str, source: Path, *, batch: str | None = None) -> dict[str, Any]:
        """Upload ``source`` to the team's incoming prefix; returns the S3 ``Object Created`` event."""
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
        head = s3.head_object(Bucket=res.raw_bucket, Key=key)
        return lifecycle.object_created_event(
            res.raw_bucket,
            key,
            etag=str(head["ETag"]),
            size=int(head["ContentLength"]),
            sequencer=f"{time.time_ns():016X}",
            version_id=head.get("VersionId"),
            region=self.aws.region,
            account=ACCOUNT,
        )

    def trigger(self, event: dict[str, Any]) -> lifecycle.ArrivalResult:
        """Deliver an S3 event to the data-arrival handler (as EventBridge would)."""
        if not self._resources:
            self.provision()
        return lifecycle.on_data_arrival(event, self.lifecycle_context())

    # LifecycleActions -------------------------------------------------------------------------------
    def start_pipeline(self, target: lifecycle.TeamTarget, parameters: Mapping[str, str], client_token: str) -> str:
        """``StartPipelineExecution`` in the embedded AWS; the run itself happens in :meth:`execute`."""
        merged = {**parameters, **self.parameter_overrides.get(target.team, {})}
        response = self.aws.client("sagemaker").start_pipeline_execution(
            PipelineName=target.pipeline_name,
            PipelineParameters=[{"Name": k, "Value": str(v)} for k, v in merged.items()],
            ClientRequestToken=client_token[:64],
        )
        arn = str(response["PipelineExecutionArn"])
        self._pending[arn] = (target.team, merged)
        execution_id = arn.rsplit("/", 1)[-1]
        self.state.save_execution(
            {
                "PipelineExecutionId": execution_id,
                "PipelineExecutionArn": arn,
                "PipelineName": target.pipeline_name,
                "PipelineExecutionStatus": "Executing",
                "StartTime": _now(),
                "Parameters": merged,
                "Tags": {"team": target.team},
                "Steps": [],
            }
        )
        return arn

    def deployed_package(self, target: lifecycle.TeamTarget) -> str | None:
        """ARN of the package the team's local endpoint serves."""
        record = self.state.deployment(target.team)
        return str(record["ModelPackageArn"]) if record else None

    def deploy(self, target: lifecycle.TeamTarget, package_arn: str) -> None:
        """Local deployment: copy the package's model.tar.gz next to the state and record it."""
        sm, s3 = self.aws.client("sagemaker"), self.aws.client("s3")
        package = sm.describe_model_package(ModelPackageName=package_arn)
        version = int(package["ModelPackageVersion"])
        model_uri = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
        folder = self.state.deployment_dir(target.team, version)
        folder.mkdir(parents=True, exist_ok=True)
        bucket, key = split_s3_uri(model_uri)
        s3.download_file(bucket, key, str(folder / "model.tar.gz"))
        evaluation_uri = lifecycle.evaluation_uri(package)
        gate = None
        if evaluation_uri:
            with contextlib.suppress(ClientError, ValueError):
                gate = (lifecycle.read_s3_json(s3, evaluation_uri).get("gate") or {}).get("value")
        samples = self._write_samples(package_arn, folder)
        self.state.save_deployment(
            target.team,
            {
                "team": target.team,
                "ModelPackageArn": package_arn,
                "ModelPackageVersion": version,
                "ModelDataUrl": model_uri,
                "EvaluationUri": evaluation_uri,
                "GateMetricValue": gate,
                "LocalModel": str(folder / "model.tar.gz"),
                "Samples": str(samples) if samples else None,
                "DeployedAt": _now(),
            },
        )

    def undeploy(self, target: lifecycle.TeamTarget) -> None:
        """Remove the team's deployment record (no approved package left)."""
        self.state.save_deployment(target.team, None)

    def _execution_of_package(self, package_arn: str) -> dict[str, Any] | None:
        for record in self.state.executions():
            for step in record.get("Steps", []):
                if (step.get("Metadata") or {}).get("RegisterModel", {}).get("Arn") == package_arn:
                    return record
        return None

    def _write_samples(self, package_arn: str, folder: Path) -> Path | None:
        """Serving-ready sample rows (CSV, no header) from the test split of the run that made the package."""
        record = self._execution_of_package(package_arn)
        test_uri = None
        for step in (record or {}).get("Steps", []):
            test_uri = test_uri or (step.get("Metadata") or {}).get("Outputs", {}).get("test")
        if not test_uri:
            return None
        try:
            rows = self._test_rows(test_uri, folder / "model.tar.gz", SAMPLE_ROWS)
        except (ClientError, OSError, ValueError, KeyError):
            return None
        path = folder / "samples.csv"
        path.write_text(rows, encoding="utf-8")
        return path

    def _test_rows(self, test_uri: str, model_tar: Path, limit: int) -> str:
        """Up to ``limit`` rows of the curated test split as request CSV (the model's feature columns)."""
        import pyarrow.parquet as pq

        features = model_metadata(model_tar)["feature_names"]
        s3 = self.aws.client("s3")
        bucket, prefix = split_s3_uri(test_uri)
        keys = sorted(
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/")
            for o in page.get("Contents", [])
            if o["Key"].endswith(".parquet")
        )
        if not keys:
            raise ValueError(f"no test data under {test_uri}")
        body = s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
        frame = pq.read_table(io.BytesIO(body), columns=list(features)).to_pandas().head(limit)
        return str(frame.to_csv(header=False, index=False, lineterminator="\n"))

    # Executions ---------------------------------------------------------------------------------------
    def execute(self, execution_arn: str) -> ExecutionRecord:
        """Run a started execution to its end with the local executor."""
        if execution_arn not in self._pending:
            raise FlywheelError(f"execution {execution_arn} was not started by this runtime")
        team, parameters = self._pending.pop(execution_arn)
        res = self.resources(team)

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
        )
        try:
            record = executor.execute(
                res.definition,
                parameters,
                pipeline_name=res.pipeline_name,
                pipeline_arn=res.pipeline_arn,
                execution_arn=execution_arn,
                tags={"team": team},
            )
        except ExecutorError as exc:
            stored = self.state.execution(execution_arn.rsplit("/", 1)[-1]) or {}
            stored.update(PipelineExecutionStatus="Failed", FailureReason=str(exc), EndTime=_now())
            self.state.save_execution(stored)
            raise FlywheelError(f"the pipeline of team {team} cannot run: {exc}") from exc
        for step in record.steps:
            registered = (step.metadata or {}).get("RegisterModel")
            if registered and step.status == "Succeeded":
                self._snapshot_package(registered["Arn"])
        return record

    def run(
        self,
        team: str,
        *,
        data: Path | None = None,
        rows: int | None = None,
        seed: int = 0,
        parameters: Mapping[str, str] | None = None,
    ) -> RunOutcome:
        """Land a batch (a file or ``rows`` generated rows), trigger and run the pipeline."""
        self.team_config(team)
        if (data is None) == (rows is None):
            raise DataError("give either a data file (--data) or a number of rows to generate (--rows)")
        if not self._resources:
            self.provision([team])
        self.resources(team)
        self.parameter_overrides[team] = {k: str(v) for k, v in (parameters or {}).items()}
        try:
            folder = self.state.root / "data" / f"{team}-{uuid.uuid4().hex[:8]}"
            source = Path(data) if data is not None else self.generate(team, int(rows or 0), seed, folder)
            try:
                event = self.land(team, source)
            finally:
                shutil.rmtree(folder, ignore_errors=True)  # generated data is seeded: the raw zone has the copy
            arrival = self.trigger(event)
            if arrival.execution_arn is None:
                raise FlywheelError(f"the landed object did not start the pipeline: {arrival.skipped}")
            record = self.execute(arrival.execution_arn)
        finally:
            self.parameter_overrides.pop(team, None)
        return self.outcome(team, event, arrival, record)

    def outcome(
        self, team: str, event: dict[str, Any], arrival: lifecycle.ArrivalResult, record: ExecutionRecord
    ) -> RunOutcome:
        """Collect a run's results from the embedded AWS (validation, quarantine, evaluation, package)."""
        s3, sm = self.aws.client("s3"), self.aws.client("sagemaker")
        detail = event["detail"]
        outcome = RunOutcome(
            team, event, arrival, record, raw_uri=f"s3://{detail['bucket']['name']}/{detail['object']['key']}"
        )
        outputs: dict[str, str] = {}
        for step in record.steps:
            outputs.update((step.metadata or {}).get("Outputs", {}))
            registered = (step.metadata or {}).get("RegisterModel")
            if registered:
                outcome.package = jsonable(sm.describe_model_package(ModelPackageName=registered["Arn"]))
        with contextlib.suppress(ClientError, ValueError, KeyError):
            if "status" in outputs:
                outcome.validation = _merged_validation(s3, outputs["status"])
        if outcome.contract_failed and "quarantine" in outputs:
            outcome.quarantine_uri = outputs["quarantine"].rstrip("/") + "/"
            with contextlib.suppress(ClientError, ValueError):
                outcome.quarantine_report = lifecycle.read_s3_json(s3, outcome.quarantine_uri + "report.json")
        with contextlib.suppress(ClientError, ValueError, KeyError):
            if "evaluation" in outputs:
                outcome.evaluation = lifecycle.read_s3_json(s3, outputs["evaluation"].rstrip("/") + "/evaluation.json")
        return outcome

    # Registry -----------------------------------------------------------------------------------------
    def resolve_package(self, ref: str) -> tuple[str, dict[str, Any]]:
        """``(team, DescribeModelPackage)`` for an ARN or ``<team>:<version>``; UnknownPackageError otherwise."""
        ref = ref.strip()
        if ref.startswith("arn:"):
            match = lifecycle._PACKAGE_ARN.match(ref)
            if match is None:
                raise UnknownPackageError(f"{ref!r} is not a model package ARN (…:model-package/<group>/<version>)")
            team = next((t for t in self.team_names if group_name(t) == match["group"]), None)
            if team is None:
                raise UnknownPackageError(f"model package group {match['group']!r} belongs to no configured team")
            arn = ref
        else:
            team, sep, version = ref.partition(":")
            if not sep or not version.isdigit():
                raise UnknownPackageError(f"{ref!r} is neither a model package ARN nor <team>:<version> (e.g. churn:1)")
            self.team_config(team)
            arn = f"arn:aws:sagemaker:{self.aws.region}:{ACCOUNT}:model-package/{group_name(team)}/{int(version)}"
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
            raise UnknownPackageError(f"no model package {ref!r} in group {group_name(team)}; {hint}") from None
        return team, jsonable(package)

    def packages(self, team: str) -> list[dict[str, Any]]:
        """The team's model packages (all statuses), oldest first."""
        sm = self.aws.client("sagemaker")
        found: list[dict[str, Any]] = []
        try:
            for page in sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group_name(team)):
                found.extend(jsonable(page["ModelPackageSummaryList"]))
        except ClientError:
            return []
        return sorted(found, key=lambda p: int(p.get("ModelPackageVersion", 0)))

    def set_approval(self, ref: str, status: str, description: str = "") -> lifecycle.DeploymentResult:
        """Approve or reject a package, then deliver the state-change event to the lifecycle."""
        if status not in ("Approved", "Rejected"):
            raise FlywheelError(f"approval status must be Approved or Rejected, got {status!r}")
        _, package = self.resolve_package(ref)
        sm = self.aws.client("sagemaker")
        arguments: dict[str, Any] = {"ModelPackageArn": package["ModelPackageArn"], "ModelApprovalStatus": status}
        if description:
            arguments["ApprovalDescription"] = description[:1024]
        sm.update_model_package(**arguments)
        self._snapshot_package(package["ModelPackageArn"])
        # moto's registry emits no EventBridge event: send the one SageMaker would.
        updated = sm.describe_model_package(ModelPackageName=package["ModelPackageArn"])
        event = lifecycle.model_package_state_change_event(updated, region=self.aws.region, account=ACCOUNT)
        return lifecycle.on_model_package_state_change(event, self.lifecycle_context())

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
        self, team: str, host: str = "127.0.0.1", port: int = 0, *, capture_to_s3: bool = True
    ) -> tuple[Any, dict[str, Any], str]:
        """Serve the team's deployed package; returns ``(server, deployment record, capture location)``."""
        from flywheel import serving
        from flywheel.capture import LocalCaptureSink, S3CaptureSink

        record = self.deployment(team)
        model = serving.load_model(Path(record["LocalModel"]))
        endpoint = f"flywheel-local-{team}"
        if capture_to_s3:
            res = self.resources(team)
            bucket = res.platform.buckets["capture"]
            capture: Any = S3CaptureSink(
                self.aws.client("s3"), bucket, "datacapture", kms_key_id=res.platform.keys["capture"], max_seconds=2.0
            )
            where = f"s3://{bucket}/datacapture/{endpoint}/"
        else:
            folder = self.state.root / "capture"
            capture = LocalCaptureSink(folder)
            where = str(folder / endpoint)
        try:
            server = serving.serve(model, host, port, capture=capture, endpoint_name=endpoint)
        except serving.PortInUseError as exc:
            model.close()
            capture.close()
            from flywheel.embedded import PortInUseError

            raise FlywheelError(str(PortInUseError(port, f"the {team} endpoint"))) from exc
        self.state.save_server(
            f"endpoint-{team}",
            {
                "url": server.url,
                "pid": os.getpid(),
                "team": team,
                "ModelPackageArn": record["ModelPackageArn"],
                "ModelPackageVersion": record["ModelPackageVersion"],
                "capture": where,
                "started": _now(),
            },
        )
        return server, record, where

    # Status -------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Teams, executions with their steps, registry contents, deployments and running servers."""
        teams = []
        for team in self.config.teams:
            teams.append(
                {
                    "team": team.name,
                    "objective": team.contract.objective,
                    "gate": f"{team.metric_gate.metric} {'>=' if team.higher_is_better else '<='} "
                    f"{team.metric_gate.threshold}",
                    "pipeline": f"flywheel-local-{team.name}-tabular",
                    "group": group_name(team.name),
                }
            )
        registry = {}
        for team in self.team_names:
            with contextlib.suppress(ClientError, EmbeddedAwsError):
                registry[team] = self.packages(team)
            if not registry.get(team):
                # A fresh embedded AWS: show the registry as the state dir keeps it (no provisioning needed).
                registry[team] = [
                    {k: r["package"].get(k) for k in ("ModelPackageArn", "ModelPackageVersion", "ModelApprovalStatus")}
                    for r in self.state.packages(group_name(team))
                ]
        servers = {}
        for name, record in self.state.servers().items():
            servers[name] = {**record, "alive": _pid_alive(record.get("pid"))}
        return {
            "embedded_aws": {"mode": self.aws.mode, "endpoint_url": self.aws.endpoint_url},
            "teams": teams,
            "executions": self.state.executions(),
            "registry": registry,
            "deployments": self.state.deployments(),
            "servers": servers,
        }

    # Demo ---------------------------------------------------------------------------------------------
    def demo(
        self,
        *,
        team: str = "churn",
        rows: int = 100_000,
        seed: int = 0,
        requests: int = 50,
        batch_rows: int = 100,
        serve_port: int = 0,
        say: Callable[[str], None] = print,
    ) -> DemoResult:
        """The whole loop on generated data; see ``flywheel demo --help``."""
        timings: dict[str, float] = {}

        @contextlib.contextmanager
        def timed(name: str) -> Iterator[None]:
            started = time.perf_counter()
            yield
            timings[name] = time.perf_counter() - started

        with timed("provision"):
            self.provision([team])
        res = self.resources(team)
        say(f"Provisioned team {team}: pipeline {res.pipeline_name}, registry group {res.group_name}")
        with timed("generate"):
            folder = self.state.root / "data" / f"{team}-{uuid.uuid4().hex[:8]}"
            source = self.generate(team, rows, seed, folder)
        say(f"Generated {rows:,} rows of {team} data (seed {seed}, {source.stat().st_size / 1e6:.1f} MB)")
        with timed("land"):
            try:
                event = self.land(team, source)
            finally:
                shutil.rmtree(folder, ignore_errors=True)  # seeded: the raw zone holds the copy
        raw_uri = f"s3://{event['detail']['bucket']['name']}/{event['detail']['object']['key']}"
        say(f"Landed the batch in the raw zone: {raw_uri}")
        with timed("trigger"):
            arrival = self.trigger(event)
        say(
            f"Data-arrival handler started execution {arrival.execution_arn} "
            f"(ChampionMetric={arrival.parameters.get('ChampionMetric')})"
        )
        if arrival.execution_arn is None:
            raise FlywheelError(f"the landed object did not start the pipeline: {arrival.skipped}")
        with timed("pipeline"):
            record = self.execute(arrival.execution_arn)
        outcome = self.outcome(team, event, arrival, record)
        result = DemoResult(outcome, None, {}, None, None, None, timings)
        if not record.succeeded or outcome.package is None:
            with timed("report"):
                result.report_path, result.report_uri = self.write_report(outcome, serving=None)
            return result
        package = outcome.package
        say(
            f"Registered model package version {package['ModelPackageVersion']} "
            f"({package['ModelApprovalStatus']}): {package['ModelPackageArn']}"
        )
        with timed("approve"):
            result.approval = self.set_approval(
                package["ModelPackageArn"], "Approved", "approved by `flywheel demo` (automatic, for the demo only)"
            )
        say(
            f"APPROVED model package version {package['ModelPackageVersion']} automatically, for the demo "
            f"(in a real environment an approver does this); deployment: {result.approval.action}"
        )
        with timed("serve"):
            server, deployment, capture = self.start_endpoint(team, port=serve_port)
            try:
                say(f"Serving version {deployment['ModelPackageVersion']} at {server.url} (capture: {capture})")
                result.serving = self.measure(server.url, Path(deployment["Samples"] or ""), requests, batch_rows)
            finally:
                server.stop()
                self.state.save_server(f"endpoint-{team}", None)
        result.capture_uri = capture
        result.serving["endpoint_url"] = server.url
        figures = result.serving
        say(
            f"Sent {requests} single-row requests (latency p50 {figures['p50_ms']:.1f} ms, p99 "
            f"{figures['p99_ms']:.1f} ms) and {requests} requests of {batch_rows} rows "
            f"({figures['rows_per_s']:,.0f} rows/s), {figures['errors']} errors"
        )
        with timed("report"):
            result.report_path, result.report_uri = self.write_report(outcome, serving=result.serving)
        return result

    @staticmethod
    def measure(url: str, samples: Path, requests: int, batch_rows: int) -> dict[str, Any]:
        """Latency of ``requests`` single-row CSV requests; throughput of ``requests`` ``batch_rows``-row ones."""
        from flywheel import serving

        if not samples.is_file():
            raise FlywheelError("the deployment has no sample rows to send (samples.csv is missing)")
        lines = [line for line in samples.read_text(encoding="utf-8").splitlines() if line]
        if not lines:
            raise FlywheelError("the deployment's sample rows are empty")
        latencies: list[float] = []
        errors = 0
        for i in range(requests):
            t = time.perf_counter()
            response = serving.invoke(url, lines[i % len(lines)] + "\n", "text/csv", "application/json")
            latencies.append((time.perf_counter() - t) * 1000)
            errors += 0 if response.ok else 1
        started = time.perf_counter()
        for i in range(requests):
            batch = [lines[(i * batch_rows + j) % len(lines)] for j in range(batch_rows)]
            response = serving.invoke(url, "\n".join(batch) + "\n", "text/csv", "application/json")
            errors += 0 if response.ok else 1
        elapsed = time.perf_counter() - started
        ordered = sorted(latencies)
        return {
            "requests": requests,
            "batch_rows": batch_rows,
            "errors": errors,
            "p50_ms": statistics.median(ordered),
            "p99_ms": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
            "rows_per_s": requests * batch_rows / elapsed if elapsed else 0.0,
        }

    def write_report(self, outcome: RunOutcome, serving: dict[str, Any] | None) -> tuple[Path, str | None]:
        """Write the run's HTML report under the state dir (and upload it to the reports bucket)."""
        from flywheel.report import write_report

        record = outcome.execution
        team = self.team_config(outcome.team)
        res = self.resources(outcome.team)
        folder = self.state.root / "reports" / record.execution_id
        evaluation_dir = self._download_evaluation(record, folder / "evaluation")
        steps = [
            {
                "name": s.name,
                "status": s.status,
                "type": s.type,
                "duration_s": _duration(s.start_time, s.end_time),
                "message": s.failure_reason
                or "; ".join((s.metadata.get("Condition") or {}).get("Evaluations", []))
                or "",
            }
            for s in record.steps
        ]
        deployment = self.state.deployment(outcome.team) or {}
        package = outcome.package or {}
        lineage = {
            "data_uri": outcome.raw_uri,
            "execution_arn": record.execution_arn,
            "model_data_uri": ((package.get("InferenceSpecification") or {}).get("Containers") or [{}])[0].get(
                "ModelDataUrl", ""
            ),
            "model_package_arn": package.get("ModelPackageArn", ""),
            "model_package_version": package.get("ModelPackageVersion"),
            "approval_status": (
                "Approved"
                if deployment.get("ModelPackageArn") == package.get("ModelPackageArn") and package
                else package.get("ModelApprovalStatus", "")
            ),
            "endpoint_name": f"flywheel-local-{outcome.team}" if serving else "",
            "endpoint_url": (serving or {}).get("endpoint_url", ""),
        }
        run: dict[str, Any] = {
            "team": outcome.team,
            "objective": team.contract.objective,
            "pipeline": record.pipeline_name,
            "execution_id": record.execution_arn,
            "status": record.status,
            "started_at": record.start_time,
            "finished_at": record.end_time or "",
            "steps": steps,
            "gate_threshold": team.metric_gate.threshold,
            "lineage": {k: v for k, v in lineage.items() if v not in (None, "")},
            "artifacts": {
                "raw batch": outcome.raw_uri,
                **{f"{k} output": v for s in record.steps for k, v in (s.metadata.get("Outputs") or {}).items()},
                "job logs": str(Path(record.work_dir)),
            },
        }
        gate = record.step("QualityGate")
        if gate is not None and gate.metadata.get("Condition"):
            run["gate_passed"] = gate.metadata["Condition"]["Outcome"] == "True"
        if evaluation_dir is not None:
            run["evaluation_dir"] = evaluation_dir
        if outcome.validation is not None:
            run["contract"] = {
                "passed": bool(outcome.validation.get("passed")),
                "summary": str(outcome.validation.get("summary", "")),
                "rows": int(outcome.validation.get("rows", 0) or 0),
                "failures": list(outcome.validation.get("failures", [])),
                "quarantined_files": list(outcome.validation.get("quarantined_files", [])),
                **({"quarantine_uri": outcome.quarantine_uri} if outcome.quarantine_uri else {}),
            }
        if serving:
            run["serving"] = {k: serving[k] for k in ("p50_ms", "p99_ms", "rows_per_s", "requests", "batch_rows")}
        if record.failure_reason:
            run["extra_sections"] = [{"title": "Failure", "rows": [("reason", record.failure_reason)]}]
        path = write_report(folder / "report.html", run=run)
        bucket, key_arn = res.platform.buckets["reports"], res.platform.keys["reports"]
        key = f"{record.pipeline_name}/{record.execution_id}/report.html"
        uri: str | None = f"s3://{bucket}/{key}"
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
            uri = None
        return path, uri

    def _download_evaluation(self, record: ExecutionRecord, folder: Path) -> Path | None:
        step = record.step("Evaluate")
        uri = ((step.metadata if step else {}).get("Outputs") or {}).get("evaluation")
        if not uri:
            return None
        s3 = self.aws.client("s3")
        bucket, prefix = split_s3_uri(uri)
        prefix = prefix.rstrip("/") + "/"
        found = False
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = Path(item["Key"][len(prefix) :])
                target = (folder / relative).resolve()
                # Keys are data: never let one name a path outside the folder ("..", or absolute "/x").
                if relative.is_absolute() or not target.is_relative_to(folder.resolve()):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, item["Key"], str(target))
                found = True
        return folder if found else None


def _merged_validation(s3: Any, status_uri: str) -> dict[str, Any]:
    """Every preprocessing host's status merged (passes only if all passed), as the pipeline decides.

    ``validation.json`` alone is last-writer-wins when several hosts share the output prefix.
    """
    bucket, prefix = split_s3_uri(status_uri.rstrip("/") + "/")
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
        if Path(item["Key"]).name.startswith("validation-")
    ]
    if not keys:
        return lifecycle.read_s3_json(s3, f"s3://{bucket}/{prefix}validation.json")
    statuses = [lifecycle.read_s3_json(s3, f"s3://{bucket}/{key}") for key in sorted(keys)]
    return merge_status(statuses)


def _duration(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return None


def _s3_uris(value: Any) -> set[str]:
    """Every ``s3://`` string in a JSON value."""
    if isinstance(value, str):
        return {value} if value.startswith("s3://") else set()
    if isinstance(value, dict):
        return set().union(*(_s3_uris(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_s3_uris(v) for v in value)) if value else set()
    return set()


def model_metadata(model_tar: Path) -> dict[str, Any]:
    """``metadata.json`` from a ``model.tar.gz`` written by the tabular train step."""
    with tarfile.open(model_tar, "r:gz") as tar:
        member = tar.extractfile("metadata.json")
        if member is None:
            raise ValueError(f"{model_tar} has no metadata.json")
        data: dict[str, Any] = json.loads(member.read())
        return data
