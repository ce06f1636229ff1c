"""Batch scoring in the local runtime: land a batch to score, launch with the approved model, run, publish.

``flywheel run --team T --template batch-scoring`` goes through :func:`run_scoring`, which does what the
deployed schedule does, with the same code (:mod:`lambdas.batch_scoring.launch`):

1. the batch (a file, or generated example rows) is uploaded to ``s3://<raw>/<team>/scoring/incoming/<batch>/``;
2. :func:`lambdas.batch_scoring.launch.launch` finds the team's newest Approved package in the embedded
   registry (none: :class:`NoApprovedModelError`, whose message says how to get one), creates the
   scoring Model (network-isolated, in the VPC, tagged) and starts the pipeline once for the batch;
3. the local executor runs the definition — ``Prepare`` → ``Score`` (the Transform step, through the
   model's own inference code) → ``Summarize``;
4. the run's summary (row counts) is read and published as CloudWatch metrics to the embedded AWS, as
   the deployed function does when the execution ends.

A template takes this path when its preprocessing role reads the team's ``scoring/incoming`` prefix
(:func:`is_scoring_template`), so no template name is spelled here.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

import naming
from flywheel.embedded import LOCAL_SECURITY_GROUPS, LOCAL_SUBNETS, put_object
from flywheel.errors import DataError, FlywheelError
from flywheel.executor import ExecutionRecord
from lambdas import lifecycle
from lambdas.batch_scoring import launch as scoring
from lambdas.common.env import DEFAULT_BATCH_MARKER as BATCH_MARKER
from lambdas.lifecycle import DATA_SUFFIXES

if TYPE_CHECKING:
    from flywheel.runtime import LocalRuntime
    from pipelines.template import PipelineTemplate

SCORING_INPUT = f"{naming.SCORING}/{naming.INCOMING}"


class NoApprovedModelError(FlywheelError):
    """The team has no Approved model to score with."""


@dataclass
class ScoringOutcome:
    """One local scoring run: the batch, the launch (model, execution), the record and the run's summary."""

    team: str
    batch_uri: str
    launch: scoring.LaunchResult
    execution: ExecutionRecord
    summary: dict[str, Any] | None
    predictions_uri: str | None
    metrics: list[dict[str, Any]]


def is_scoring_template(template: PipelineTemplate) -> bool:
    """Whether ``template`` scores batches of the team's ``scoring/incoming`` prefix (the launcher starts it)."""
    return any(role.reads_team_raw and role.raw_input == SCORING_INPUT for role in template.access.roles)


def land_scoring_batch(rt: LocalRuntime, team: str, source: Path, batch: str | None = None) -> str:
    """Upload ``source`` and the ``_SUCCESS`` marker to ``<team>/scoring/incoming/<batch>/`` (SSE-KMS, the raw
    zone's key); the batch URI."""
    if not source.is_file():
        raise DataError(f"data file {source} does not exist: pass an existing CSV or parquet file")
    if not source.name.lower().endswith(DATA_SUFFIXES):
        raise DataError(f"data file {source.name}: use one of {', '.join(DATA_SUFFIXES)}")
    res = rt.resources(team)
    batch = batch or f"batch-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    prefix = f"{naming.scoring_incoming_prefix(team)}{batch}/"
    put_object(rt.aws, res.raw_bucket, prefix + source.name, source.read_bytes(), res.platform.keys["raw"])
    # The completion marker the deployed launcher waits for (Prepare skips it).
    put_object(rt.aws, res.raw_bucket, prefix + BATCH_MARKER, b"", res.platform.keys["raw"])
    return naming.s3_uri(res.raw_bucket, prefix)


def scoring_target(rt: LocalRuntime, team: str, template: str) -> scoring.ScoringTarget:
    """The launcher's view of the team's scoring pipeline (locally every step kind runs as the team's role)."""
    res = rt.resources(team)
    return scoring.ScoringTarget(
        team=team,
        pipeline_name=res.pipeline(template).pipeline_name,
        group_name=res.group_name,
        raw_bucket=res.raw_bucket,
        model_role_arn=res.role_arn,
        subnet_ids=LOCAL_SUBNETS,
        security_group_ids=LOCAL_SECURITY_GROUPS,
    )


def run_scoring(
    rt: LocalRuntime, team: str, template: str, *, data: Path | None, rows: int | None, seed: int = 0
) -> ScoringOutcome:
    """Land a batch to score, launch it with the newest Approved model, run it, publish its row counts."""
    if (data is None) == (rows is None):
        raise DataError("give either a data file (--data) or a number of rows to generate (--rows)")
    target = scoring_target(rt, team, template)
    sagemaker = rt.aws.client("sagemaker")
    try:  # before anything lands: without a model nothing is scored
        scoring.require_approved(sagemaker, target)
    except scoring.NoApprovedModel as exc:
        raise NoApprovedModelError(str(exc)) from None
    folder = rt.state.root / "data" / f"{team}-p{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        source = Path(data) if data is not None else rt.generate(team, int(rows or 0), seed, folder)
        batch_uri = land_scoring_batch(rt, team, source)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    lifecycle_target = lifecycle.TeamTarget(team, target.raw_bucket, target.pipeline_name, target.group_name)
    try:
        launched = scoring.launch(
            sagemaker,
            rt.state,
            target,
            [batch_uri],
            lambda parameters, token: rt.actions.start_pipeline(lifecycle_target, parameters, token),
        )
    except scoring.NoApprovedModel as exc:  # rejected between the check and the launch
        raise NoApprovedModelError(str(exc)) from None
    arn = launched.started.get(batch_uri)
    if arn is None:
        raise FlywheelError(f"the batch {batch_uri} was not started: {launched.skipped.get(batch_uri)}")
    record = rt.execute(arn)
    summary, predictions = read_summary(rt, record)
    metrics = scoring.publish_summary(rt.aws.client("cloudwatch"), team, target.pipeline_name, record.status, summary)
    return ScoringOutcome(team, batch_uri, launched, record, summary, predictions, metrics)


def read_summary(rt: LocalRuntime, record: ExecutionRecord) -> tuple[dict[str, Any] | None, str | None]:
    """``(summary.json, predictions prefix)`` of a finished scoring run (None where a step did not get there)."""
    predictions = summary = None
    for step in record.steps:
        outputs = (step.metadata or {}).get("Outputs") or {}
        if step.type == "Transform":
            predictions = outputs.get("predictions")
        if "summary" in outputs:
            bucket, key = naming.split_s3_uri(f"{str(outputs['summary']).rstrip('/')}/summary.json")
            try:
                body = rt.aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
            except ClientError:
                continue
            import json

            summary = json.loads(body)
    return summary, predictions


def describe_outcome(outcome: ScoringOutcome) -> tuple[list[str], str | None]:
    """``(lines to print, problem)`` of a scoring run (``problem``: why the command fails, or None)."""
    record = outcome.execution
    lines = [
        f"Scored batch {outcome.batch_uri} with {outcome.launch.model_name} ({outcome.launch.package_arn})",
        f"Execution {record.execution_id}: {record.status}",
    ]
    summary = outcome.summary
    if summary is not None:
        lines.append(
            f"Rows: {summary.get('rows_in')} in, {summary.get('rows_scored')} scored, "
            f"{summary.get('rows_rejected')} rejected — {summary.get('summary')}"
        )
    if outcome.predictions_uri:
        lines.append(f"Predictions (id token + model output, no raw id): {outcome.predictions_uri}")
    problem = None if record.succeeded else f"the scoring run failed: {record.failure_reason}"
    return lines, problem
