"""Data arrival: an S3 ``Object Created`` event for a team's batch starts the team's pipeline, once per batch.

``s3://<raw bucket>/<team>/incoming/<batch>/<file>`` starts the team's pipeline with ``InputDataUri`` =
the batch folder, ``ChampionMetric`` = the gate value of the latest approved package (``none`` before
the first approval) and, when that package's model artifact is one of the team pipeline's own and readable,
``ChampionModelUri`` = its ``ModelDataUrl``: the evaluation scores the champion on the challenger's test rows
(a paired comparison). Without it the pipeline's default applies: the team's "no champion" marker.
Idempotent on the batch folder: later events for that folder (more files, redeliveries, new versions)
start nothing and return the first execution.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError

import naming

from .events import LifecycleEventError, parse_object_created_event
from .ports import LifecycleContext, TeamTarget
from .registry import Champion, champion

DATA_SUFFIXES: Final[tuple[str, ...]] = (".csv", ".csv.gz", ".csv.bz2", ".parquet", ".pq")
#: Start parameters (a contract with the pipeline definitions: pipelines/tabular/definition.py).
PARAM_INPUT_DATA_URI: Final = "InputDataUri"
PARAM_CHAMPION_METRIC: Final = "ChampionMetric"
PARAM_CHAMPION_MODEL_URI: Final = "ChampionModelUri"
#: Error codes of a champion artifact that is gone or not ours to read: compare on the metric alone.
_UNREADABLE = frozenset({"404", "403", "NoSuchKey", "NotFound", "AccessDenied", "Forbidden"})


@dataclass(frozen=True)
class ArrivalResult:
    """Outcome of a data-arrival event."""

    team: str
    bucket: str
    key: str
    input_data_uri: str
    parameters: dict[str, str]
    execution_arn: str | None
    duplicate: bool = False
    skipped: str | None = None


def parse_object_created(event: Any, context: LifecycleContext) -> tuple[TeamTarget, str, str, str, str]:
    """``(team, bucket, key, etag, sequencer)`` of a valid ``Object Created`` event for a team's batch."""
    parsed = parse_object_created_event(event, account=context.account)
    bucket, key = parsed.bucket, parsed.key
    team_name = key.split("/", 1)[0]
    target = context.teams.get(team_name)
    if target is None:
        raise LifecycleEventError(
            f"object key {key!r} does not start with a known team ({', '.join(sorted(context.teams)) or 'none'})"
        )
    if bucket != target.raw_bucket:
        raise LifecycleEventError(
            f"bucket {bucket!r} is not the raw bucket of team {team_name} ({target.raw_bucket!r}): foreign bucket"
        )
    if not key.startswith(target.incoming_prefix):
        raise LifecycleEventError(f"object key {key!r} is not under {target.incoming_prefix!r}")
    if key.count("/") < 3:
        raise LifecycleEventError(
            f"object key {key!r}: land each batch in its own folder, {target.incoming_prefix}<batch>/<file>, "
            "so that the pipeline reads exactly that batch"
        )
    return target, bucket, key, parsed.etag, parsed.sequencer


def on_data_arrival(
    event: Any,
    context: LifecycleContext,
    *,
    complete_marker: str | None = None,
    client_token: str | None = None,
) -> ArrivalResult:
    """Start the team's pipeline on a newly landed batch, once per batch folder.

    ``InputDataUri`` is the batch folder. Without ``complete_marker`` the first data file of a folder
    starts the run and later events for that folder (more files, redeliveries, new versions) are
    duplicates: one batch, one execution. With ``complete_marker`` (e.g. ``_SUCCESS``, what the deployed
    Lambda uses) only that object, landed after the batch's data files, starts the run, and only if the
    folder holds a data file; data files alone start nothing. A corrected batch is landed as a new folder.

    ``client_token``: the ``ClientRequestToken`` to start with (default: derived from the batch folder).
    """
    target, bucket, key, _etag, _sequencer = parse_object_created(event, context)  # validated, not keyed on
    folder, _, name = key.rpartition("/")
    input_uri = naming.s3_uri(bucket, f"{folder}/")
    if complete_marker is not None:
        if name != complete_marker:
            return ArrivalResult(
                target.team, bucket, key, input_uri, {}, None, skipped=f"waiting for the batch's {complete_marker}"
            )
        if not _holds_data(context.s3, bucket, f"{folder}/"):
            return ArrivalResult(
                target.team,
                bucket,
                key,
                input_uri,
                {},
                None,
                skipped=f"no data file next to {complete_marker} (empty files do not count)",
            )
    elif _is_marker_or_other(name):
        # Markers (_SUCCESS), hidden files and other objects are legitimate, just not batches.
        return ArrivalResult(target.team, bucket, key, input_uri, {}, None, skipped=f"{name} is not a data file")
    elif event["detail"]["object"].get("size") == 0:
        # An empty data file is no batch (a failed upload, a touch): nothing to train on.
        return ArrivalResult(target.team, bucket, key, input_uri, {}, None, skipped=f"{name} is empty")
    claim_key = _claim_key("batch", bucket, input_uri)
    previous = context.store.claimed(claim_key)
    if previous is not None:
        return _duplicate_arrival(target, bucket, key, input_uri, previous)
    champ = champion(context.sagemaker, context.s3, target.group_name)
    parameters = {PARAM_INPUT_DATA_URI: input_uri, PARAM_CHAMPION_METRIC: champ.metric}
    model_uri = champion_model_uri(context.s3, target, champ)
    if model_uri is not None:
        parameters[PARAM_CHAMPION_MODEL_URI] = model_uri
    if not context.store.claim(claim_key, {"bucket": bucket, "key": key, "state": "starting"}):
        return _duplicate_arrival(target, bucket, key, input_uri, context.store.claimed(claim_key) or {})
    try:
        arn = context.actions.start_pipeline(target, parameters, client_token or claim_key[:64])
    except BaseException:
        context.store.release(claim_key)  # the start failed: a retry of the event must be able to act
        raise
    context.store.update_claim(
        claim_key, {"bucket": bucket, "key": key, "state": "started", "execution_arn": arn, "parameters": parameters}
    )
    return ArrivalResult(target.team, bucket, key, input_uri, parameters, arn)


def champion_model_uri(s3: Any, target: TeamTarget, champ: Champion) -> str | None:
    """The champion's ``ModelDataUrl`` if the evaluation can score it, else None (the pipeline's default,
    the "no champion" marker, applies and the champion is compared on its recorded metric alone).

    Accepted: a ``.tar.gz`` object under the team pipeline's own prefix (``<pipeline>/``: what its training
    step writes) that exists. The existence check (HeadObject) is the Lambda's only read of artifacts; its
    role may read the team pipeline's ``model`` keys of the artifacts bucket and nothing else, so an artifact
    in another bucket is refused there (AccessDenied) as well as here.
    """
    uri = champ.model_data_url
    if uri is None:
        return None
    try:
        bucket, key = naming.split_s3_uri(uri)
    except ValueError:
        return None
    if not key.startswith(naming.pipeline_prefix(target.pipeline_name)) or not key.endswith(".tar.gz"):
        return None
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in _UNREADABLE:
            return None
        raise
    return uri


def _is_marker_or_other(name: str) -> bool:
    """True for markers (``_SUCCESS``), hidden files and anything without a data suffix."""
    return name.startswith((".", "_")) or not name.lower().endswith(DATA_SUFFIXES)


def _holds_data(s3: Any, bucket: str, folder: str) -> bool:
    """True if ``s3://bucket/folder`` holds at least one non-empty data file (directly in the folder)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder, Delimiter="/"):
        for obj in page.get("Contents", []):
            if not _is_marker_or_other(obj["Key"][len(folder) :]) and int(obj.get("Size", 0)) > 0:
                return True
    return False


def _duplicate_arrival(
    target: TeamTarget, bucket: str, key: str, input_uri: str, previous: Mapping[str, Any]
) -> ArrivalResult:
    return ArrivalResult(
        target.team,
        bucket,
        key,
        input_uri,
        dict(previous.get("parameters") or {}),
        previous.get("execution_arn"),
        duplicate=True,
    )


def _claim_key(*parts: str) -> str:
    """The idempotency key of an event's effect (sha256 hex: a valid file name and DynamoDB key)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
