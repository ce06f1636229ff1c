"""Landing data: generate a team's example batch, upload it as S3 would receive it, deliver its events.

A batch lands under ``s3://<raw>/<team>/incoming/<batch>/`` followed by its ``_SUCCESS`` marker; its
S3 ``Object Created`` events go to :func:`lambdas.lifecycle.on_data_arrival` with the data-arrival
Lambda's own parameters.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import ClientError

from flywheel.embedded import ACCOUNT, EmbeddedAws, TeamResources
from flywheel.errors import DataError
from lambdas import lifecycle
from lambdas.common.env import DEFAULT_BATCH_MARKER
from lambdas.lifecycle import DATA_SUFFIXES

#: The object that completes a batch: the data-arrival Lambda's default ``BATCH_COMPLETE_MARKER``.
BATCH_MARKER: Final = DEFAULT_BATCH_MARKER


def generate(team: str, rows: int, seed: int, folder: Path) -> Path:
    """Write ``rows`` rows of the team's example dataset as CSV under ``folder``."""
    from flywheel import datasets

    if rows < 1:
        raise DataError(f"--rows must be at least 1, got {rows}")
    if team == "churn":
        return datasets.write_churn_csv(folder / "churn.csv", rows, seed=seed)
    if team == "credit":  # the fairness example (config/examples/fairness)
        return datasets.write_credit_csv(folder / "credit.csv", rows, seed=seed)
    loaders = datasets.samples.LOADERS
    if team in loaders:
        frame = datasets.samples.sample(loaders[team](), rows, seed=seed)
        return datasets.write_csv(frame, folder / f"{team}.csv")
    raise DataError(f"there is no example data generator for team {team!r}: pass a file with --data instead")


def land(
    aws: EmbeddedAws, res: TeamResources, source: Path, *, batch: str | None = None, complete: bool = True
) -> dict[str, Any]:
    """Upload ``source`` to the team's incoming prefix, then (``complete``) the batch's ``_SUCCESS``
    marker; returns the data file's S3 ``Object Created`` event (see :func:`trigger`)."""
    source = Path(source)
    if not source.is_file():
        raise DataError(f"data file {source} does not exist: pass an existing CSV or parquet file")
    if not source.name.lower().endswith(DATA_SUFFIXES):
        raise DataError(f"data file {source.name}: use one of {', '.join(DATA_SUFFIXES)}")
    batch = batch or f"batch-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    key = f"{res.incoming_prefix}{batch}/{source.name}"
    s3 = aws.client("s3")
    from boto3.s3.transfer import TransferConfig

    s3.upload_file(
        str(source),
        res.raw_bucket,
        key,
        ExtraArgs={"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": res.platform.keys["raw"]},
        Config=TransferConfig(multipart_threshold=256 * 1024 * 1024),
    )
    event = object_event(aws, res.raw_bucket, key)
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


def object_event(aws: EmbeddedAws, bucket: str, key: str) -> dict[str, Any]:
    """The S3 ``Object Created`` event of an object as it is now."""
    head = aws.client("s3").head_object(Bucket=bucket, Key=key)
    return lifecycle.object_created_event(
        bucket,
        key,
        etag=str(head["ETag"]),
        size=int(head["ContentLength"]),
        sequencer=f"{time.time_ns():016X}",
        version_id=head.get("VersionId"),
        region=aws.region,
        account=ACCOUNT,
    )


def trigger(aws: EmbeddedAws, event: dict[str, Any], context: lifecycle.LifecycleContext) -> lifecycle.ArrivalResult:
    """Deliver an S3 event to the data-arrival handler (as EventBridge would), then the event of its
    batch's marker if the event's object is not the marker and the marker has landed (S3 sent both).

    Each event goes to :func:`lambdas.lifecycle.on_data_arrival` with the deployed Lambda's own
    parameters: ``complete_marker`` = ``_SUCCESS`` (only the marker of a folder holding a data file
    starts the batch) and ``client_token`` = the Lambda's token of the object version
    (:func:`lambdas.data_arrival.logic.client_request_token`). So a data file alone starts nothing,
    and any event of a started batch (a redelivery, its marker again) is a duplicate.
    """
    result = deliver(event, context)
    key = result.key
    if result.skipped and key.rpartition("/")[2] != BATCH_MARKER:
        marker = f"{key.rpartition('/')[0]}/{BATCH_MARKER}"
        try:
            marker_event = object_event(aws, result.bucket, marker)
        except ClientError:
            return result  # the batch is not complete yet
        return deliver(marker_event, context)
    return result


def deliver(event: dict[str, Any], context: lifecycle.LifecycleContext) -> lifecycle.ArrivalResult:
    """One event through the data-arrival logic, with the data-arrival Lambda's parameters."""
    from lambdas.data_arrival.logic import client_request_token

    parsed = lifecycle.parse_object_created_event(event, account=context.account)
    token = client_request_token(parsed.bucket, parsed.key, parsed.version_id)
    return lifecycle.on_data_arrival(event, context, complete_marker=BATCH_MARKER, client_token=token)
