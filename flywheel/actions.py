"""The local runtime's lifecycle actions: what the lifecycle handlers (``lambdas.lifecycle``) make happen.

:class:`LocalActions` implements :class:`lambdas.lifecycle.LifecycleActions` on the embedded AWS and
the state dir:

* ``start_pipeline`` is ``StartPipelineExecution`` in the embedded AWS (for the ARN) plus a *pending
  run* in the state store: the run itself is :meth:`flywheel.runtime.LocalRuntime.execute`, in this
  process or any other on the same state dir. Of the lifecycle's parameters, only those the target
  pipeline's template declares are passed (``--param`` overrides are passed as given);
* ``deploy`` copies the approved package's ``model.tar.gz`` next to the state (so ``flywheel serve``
  works without the embedded AWS), with sample rows from the test split of the run that registered it
  (when its template declares the split and the model's metadata file, :mod:`flywheel.templates`).
  The first deployment (or any of a ``serverless``/``batch`` team) replaces the record at once; for a
  ``realtime`` team with a version already deployed it records a canary *rollout* (``Rollout``: the
  new version and the :class:`flywheel.rollout.RolloutSettings` taken from the deploy Lambda's
  ``DeploymentConfig``), which the local endpoint bakes and then promotes or rolls back
  (:mod:`flywheel.rollout`). Approving the champion again, or rejecting the version being rolled out,
  cancels the rollout; a version whose rollout was rolled back by its alarms is refused, as the deploy
  Lambda refuses to push a rolled-back config again;
* ``undeploy`` clears the team's deployment record.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import ClientError

from flywheel.embedded import EmbeddedAws
from flywheel.errors import FlywheelError
from flywheel.registry_mirror import RegistryMirror
from flywheel.rollout import RolloutSettings
from flywheel.state import StateStore
from flywheel.templates import RunReading
from lambdas import lifecycle
from lambdas.lifecycle.arrival import PARAM_CHAMPION_METRIC, PARAM_CHAMPION_MODEL_URI
from naming import split_s3_uri

#: Sample rows kept with a deployment (``flywheel invoke --sample``, the demo's measurements).
#: 2000, not fewer: the demo's traffic cycles over these rows and the drift monitor compares that window with
#: the baseline; with 200 distinct rows sampling noise alone reaches the normed-Wasserstein threshold (0.1).
SAMPLE_ROWS: Final = 2000


def now() -> str:
    """The current time, ISO-8601 in UTC (as the executor stamps its records)."""
    return datetime.now(UTC).isoformat()


#: Rollout outcomes kept in a deployment record (``Rollouts``), newest last.
ROLLOUT_HISTORY: Final = 20


class RolloutRefusedError(FlywheelError):
    """The version's earlier rollout was rolled back by its alarms: it is not rolled out again."""


class LocalActions:
    """:class:`lambdas.lifecycle.LifecycleActions` on the embedded AWS and the state dir."""

    def __init__(
        self,
        aws: EmbeddedAws,
        state: StateStore,
        registry: RegistryMirror,
        reading: Callable[[str], RunReading | None],
        rollout_settings: Callable[[str], RolloutSettings | None] = lambda team: None,
    ) -> None:
        """``reading``: pipeline name -> how its runs are read (its template's declared names), or None.
        ``rollout_settings``: team -> its canary settings, None for all-at-once updates."""
        self.aws = aws
        self.state = state
        self.registry = registry
        self.reading = reading
        self.rollout_settings = rollout_settings
        #: What the latest deploy did: ``deployed``, ``rollout-started``, ``rollout-cancelled``, ...
        self.last_action: dict[str, Any] = {}
        #: Team -> pipeline parameters that override the lifecycle's (``flywheel run --param``).
        self.parameter_overrides: dict[str, dict[str, str]] = {}

    def start_pipeline(self, target: lifecycle.TeamTarget, parameters: Mapping[str, str], client_token: str) -> str:
        """``StartPipelineExecution`` in the embedded AWS, and the run recorded as pending in the state store."""
        reading = self.reading(target.pipeline_name)
        accepted = reading.accepted(parameters) if reading is not None else dict(parameters)
        overrides = self.parameter_overrides.get(target.team, {})
        merged = {**accepted, **overrides}
        no_champion = overrides.get(PARAM_CHAMPION_METRIC, "").strip().lower() == lifecycle.NO_CHAMPION
        if no_champion and PARAM_CHAMPION_MODEL_URI not in overrides:
            # --param ChampionMetric=none: no champion at all, so not its model either (the marker default).
            merged.pop(PARAM_CHAMPION_MODEL_URI, None)
        response = self.aws.client("sagemaker").start_pipeline_execution(
            PipelineName=target.pipeline_name,
            PipelineParameters=[{"Name": k, "Value": str(v)} for k, v in merged.items()],
            ClientRequestToken=client_token[:64],
        )
        arn = str(response["PipelineExecutionArn"])
        execution_id = arn.rsplit("/", 1)[-1]
        started = now()
        self.state.save_execution(
            create=True,
            record={
                "PipelineExecutionId": execution_id,
                "PipelineExecutionArn": arn,
                "PipelineName": target.pipeline_name,
                "PipelineExecutionStatus": "Executing",
                "StartTime": started,
                "Parameters": merged,
                "Tags": {"team": target.team},
                "Steps": [],
            },
        )
        self.state.save_pending_run(
            execution_id,
            {
                "execution_arn": arn,
                "team": target.team,
                "pipeline_name": target.pipeline_name,
                "parameters": merged,
                "started": started,
            },
        )
        return arn

    def deployed_package(self, target: lifecycle.TeamTarget) -> str | None:
        """ARN of the package the team's local endpoint serves, or is being rolled out to (so that
        rejecting a version during its rollout rolls back, and approving it again changes nothing)."""
        record = self.state.deployment(target.team)
        if not record:
            return None
        rollout = record.get("Rollout") or {}
        return str(rollout.get("ModelPackageArn") or record["ModelPackageArn"])

    def deploy(self, target: lifecycle.TeamTarget, package_arn: str) -> None:
        """Local deployment: copy the package's model.tar.gz next to the state and record it (under the
        team's deployment lock, so two approvals never interleave their copies and records)."""
        with self.state.lock(f"deploy-{target.team}"):
            self._deploy(target, package_arn)

    def _deploy(self, target: lifecycle.TeamTarget, package_arn: str) -> None:
        current = self.state.deployment(target.team)
        settings = self.rollout_settings(target.team)
        if current is not None and current.get("ModelPackageArn") == package_arn:
            # The champion again (e.g. the fallback of a rejected challenger): end any rollout on it.
            self.last_action = {"action": "already-serving", "version": current.get("ModelPackageVersion")}
            if current.get("Rollout"):
                reason = f"version {current['Rollout'].get('ModelPackageVersion')} was withdrawn during its rollout"
                self.state.update_deployment(target.team, lambda record: end_rollout(record, "cancelled", reason))
                self.last_action = {"action": "rollout-cancelled", "reason": reason}
            return
        if current is not None and settings is not None:
            refused = next(
                (
                    r
                    for r in reversed(current.get("Rollouts") or [])
                    if r.get("ModelPackageArn") == package_arn and r.get("outcome") == "rolled-back"
                ),
                None,
            )
            if refused is not None:
                raise RolloutRefusedError(
                    f"version {refused.get('version')} was rolled back by its alarms ({refused.get('reason')}); "
                    "it is not rolled out again: fix it and register (then approve) a new version"
                )
        fields = self._fetch(target, package_arn)
        if current is None or settings is None:
            # First deployment, or a serverless/batch team: all at once (as the deploy Lambda does).
            history = (current or {}).get("Rollouts") or []
            self.state.save_deployment(target.team, {**fields, **({"Rollouts": history} if history else {})})
            self.last_action = {"action": "deployed", "version": fields["ModelPackageVersion"]}
            return
        rollout = {
            **fields,
            "RolloutId": uuid.uuid4().hex,
            "Settings": settings.to_dict(),
            "ChampionVersion": current.get("ModelPackageVersion"),
            "StartedAt": now(),
        }

        def start(record: dict[str, Any] | None) -> dict[str, Any] | None:
            if record is None:
                return {**fields}
            superseded = record.get("Rollout")
            if superseded:
                reason = f"superseded by version {fields['ModelPackageVersion']}"
                record = end_rollout(record, "cancelled", reason) or record
            return {**record, "Rollout": rollout}

        self.state.update_deployment(target.team, start)
        self.last_action = {
            "action": "rollout-started",
            "version": fields["ModelPackageVersion"],
            "champion_version": current.get("ModelPackageVersion"),
            "settings": settings.to_dict(),
        }

    def _fetch(self, target: lifecycle.TeamTarget, package_arn: str) -> dict[str, Any]:
        """Copy the package's artifact (and sample rows) next to the state; its deployment fields."""
        sm, s3 = self.aws.client("sagemaker"), self.aws.client("s3")
        package = sm.describe_model_package(ModelPackageName=package_arn)
        version = int(package["ModelPackageVersion"])
        model_uri = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
        folder = self.state.deployment_dir(target.team, version)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        bucket, key = split_s3_uri(model_uri)
        s3.download_file(bucket, key, str(folder / "model.tar.gz"))
        evaluation_uri = lifecycle.evaluation_uri(package)
        gate = None
        if evaluation_uri:
            with contextlib.suppress(ClientError, ValueError):
                gate = (lifecycle.read_s3_json(s3, evaluation_uri).get("gate") or {}).get("value")
        samples = self._write_samples(target.group_name, version, folder)
        return {
            "team": target.team,
            "ModelPackageArn": package_arn,
            "ModelPackageVersion": version,
            "ModelDataUrl": model_uri,
            "EvaluationUri": evaluation_uri,
            "GateMetricValue": gate,
            "LocalModel": str(folder / "model.tar.gz"),
            "Samples": str(samples) if samples else None,
            "DeployedAt": now(),
        }

    def undeploy(self, target: lifecycle.TeamTarget) -> None:
        """Remove the team's deployment record (no approved package left)."""
        self.state.save_deployment(target.team, None)

    def _write_samples(self, group: str, version: int, folder: Path) -> Path | None:
        """Serving-ready sample rows (CSV, no header) from the test split of the run that made the package."""
        record = self.registry.execution_of(group, version)
        reading = self.reading(str((record or {}).get("PipelineName") or ""))
        if reading is None or not (reading.test_split_output and reading.model_metadata_file):
            return None  # the template declares no test split or no model metadata: no sample rows
        test_uri = None
        for step in (record or {}).get("Steps", []):
            test_uri = test_uri or (step.get("Metadata") or {}).get("Outputs", {}).get(reading.test_split_output)
        if not test_uri:
            return None
        try:
            rows = self._test_rows(test_uri, folder / "model.tar.gz", reading, SAMPLE_ROWS)
        except (ClientError, OSError, ValueError, KeyError):
            return None
        path = folder / "samples.csv"
        path.write_text(rows, encoding="utf-8")
        return path

    def _test_rows(self, test_uri: str, model_tar: Path, reading: RunReading, limit: int) -> str:
        """Up to ``limit`` rows of the curated test split as request CSV (the model's feature columns)."""
        import pyarrow.parquet as pq

        metadata = model_metadata(model_tar, str(reading.model_metadata_file))
        features = metadata[reading.feature_names_field] if reading.feature_names_field else None
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
        columns = list(features) if features is not None else None
        frame = pq.read_table(io.BytesIO(body), columns=columns).to_pandas()
        # A seeded sample across the split, not its first rows: a test split is written in input order (streamed
        # record batches, per-row split), and an input ordered by anything (e.g. signup date) would make the
        # first rows a skewed window that the drift monitor rightly flags.
        if len(frame) > limit:
            frame = frame.sample(n=limit, random_state=0).sort_index()
        return str(frame.to_csv(header=False, index=False, lineterminator="\n"))


#: The deployment fields a promoted version brings (the rest of the record — history — stays).
DEPLOYMENT_FIELDS: Final = (
    "team",
    "ModelPackageArn",
    "ModelPackageVersion",
    "ModelDataUrl",
    "EvaluationUri",
    "GateMetricValue",
    "LocalModel",
    "Samples",
    "DeployedAt",
)


def end_rollout(
    record: dict[str, Any] | None,
    outcome: str,
    reason: str,
    decision: Mapping[str, Any] | None = None,
    *,
    rollout_id: str | None = None,
) -> dict[str, Any] | None:
    """The deployment record after its rollout ended: ``promoted`` (the new version serves),
    ``rolled-back`` or ``cancelled`` (the champion serves); the outcome appended to ``Rollouts``.

    With ``rollout_id``, a record whose rollout is another one (superseded, cancelled) is left as it is.
    """
    if record is None or not record.get("Rollout"):
        return record
    rollout = record["Rollout"]
    if rollout_id is not None and rollout.get("RolloutId") != rollout_id:
        return record
    entry = {
        **dict(decision or {}),
        "outcome": outcome,
        "reason": reason,
        "version": rollout.get("ModelPackageVersion"),
        "ModelPackageArn": rollout.get("ModelPackageArn"),
        "champion_version": record.get("ModelPackageVersion"),
        "RolloutId": rollout.get("RolloutId"),
        "settings": rollout.get("Settings"),
        "StartedAt": rollout.get("StartedAt"),
        "EndedAt": now(),
    }
    base = {k: v for k, v in record.items() if k != "Rollout"}
    if outcome == "promoted":
        base.update({k: rollout.get(k) for k in DEPLOYMENT_FIELDS if k in rollout})
        base["DeployedAt"] = now()
    base["Rollouts"] = [*(record.get("Rollouts") or []), entry][-ROLLOUT_HISTORY:]
    return base


def model_metadata(model_tar: Path, name: str) -> dict[str, Any]:
    """The JSON file ``name`` (a template's ``model_metadata_file``) from a ``model.tar.gz``."""
    with tarfile.open(model_tar, "r:gz") as tar:
        member = tar.extractfile(name)
        if member is None:
            raise ValueError(f"{model_tar} has no {name}")
        data: dict[str, Any] = json.loads(member.read())
        return data
