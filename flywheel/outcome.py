"""A run's results: what one pipeline execution produced, collected from the embedded AWS.

:func:`collect_outcome` reads the step outputs the template declares (:mod:`flywheel.templates`): the
merged validation status, the quarantine report of a batch that failed its contract, the evaluation,
and the registered package. :func:`download_evaluation` fetches the evaluation folder for the report.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from flywheel.embedded import EmbeddedAws
from flywheel.executor import ExecutionRecord
from flywheel.executor.pipeline import jsonable
from flywheel.templates import RunReading
from lambdas import lifecycle
from naming import s3_uri, split_s3_uri


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


def event_object_uri(event: dict[str, Any]) -> str:
    """``s3://<bucket>/<key>`` of an S3 ``Object Created`` event."""
    detail = event["detail"]
    return s3_uri(detail["bucket"]["name"], detail["object"]["key"])


def step_outputs(record: ExecutionRecord) -> dict[str, str]:
    """Output name -> S3 URI over every step of a run."""
    outputs: dict[str, str] = {}
    for step in record.steps:
        outputs.update((step.metadata or {}).get("Outputs", {}))
    return outputs


def collect_outcome(
    aws: EmbeddedAws,
    reading: RunReading,
    team: str,
    event: dict[str, Any],
    arrival: lifecycle.ArrivalResult,
    record: ExecutionRecord,
) -> RunOutcome:
    """Collect a run's results from the embedded AWS (validation, quarantine, evaluation, package)."""
    s3, sm = aws.client("s3"), aws.client("sagemaker")
    outcome = RunOutcome(team, event, arrival, record, raw_uri=event_object_uri(event))
    for step in record.steps:
        registered = (step.metadata or {}).get("RegisterModel")
        if registered:
            outcome.package = jsonable(sm.describe_model_package(ModelPackageName=registered["Arn"]))
    outputs = step_outputs(record)
    with contextlib.suppress(ClientError, ValueError, KeyError):
        if reading.validation_output in outputs:
            outcome.validation = merged_validation(s3, reading, outputs[reading.validation_output])
    if outcome.contract_failed and reading.quarantine_output in outputs and reading.quarantine_report_file:
        outcome.quarantine_uri = outputs[reading.quarantine_output].rstrip("/") + "/"
        with contextlib.suppress(ClientError, ValueError):
            outcome.quarantine_report = lifecycle.read_s3_json(
                s3, outcome.quarantine_uri + reading.quarantine_report_file
            )
    with contextlib.suppress(ClientError, ValueError, KeyError):
        if reading.evaluation_output in outputs and reading.evaluation_file:
            outcome.evaluation = lifecycle.read_s3_json(
                s3, outputs[reading.evaluation_output].rstrip("/") + "/" + reading.evaluation_file
            )
    return outcome


def merged_validation(s3: Any, reading: RunReading, status_uri: str) -> dict[str, Any] | None:
    """Every preprocessing host's status merged (passes only if all passed), as the pipeline decides;
    None when the template declares no status file to read.

    The single validation file alone is last-writer-wins when several hosts share the output prefix.
    """
    bucket, prefix = split_s3_uri(status_uri.rstrip("/") + "/")
    per_host = reading.validation_file_prefix
    keys = (
        [
            item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
            if Path(item["Key"]).name.startswith(per_host)
        ]
        if per_host
        else []
    )
    if not keys:
        if not reading.validation_file:
            return None
        return dict(lifecycle.read_s3_json(s3, s3_uri(bucket, prefix + reading.validation_file)))
    statuses = [lifecycle.read_s3_json(s3, s3_uri(bucket, key)) for key in sorted(keys)]
    return reading.merge_status(statuses)


def download_evaluation(aws: EmbeddedAws, reading: RunReading, record: ExecutionRecord, folder: Path) -> Path | None:
    """Download a run's evaluation output (evaluation.json, plots) into ``folder``; None if it has none."""
    uri = step_outputs(record).get(reading.evaluation_output) if reading.evaluation_output else None
    if not uri:
        return None
    s3 = aws.client("s3")
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
