"""``flywheel erase``: the right to erasure on the local runtime, with the deployed handler's own logic.

:func:`erase_subject` builds the team's :class:`lambdas.erasure.logic.ErasureScope` from the config and the
embedded AWS and calls :func:`lambdas.erasure.logic.erase` — the function the erasure Lambda runs — so
what is tested offline is what is deployed. :func:`retrain` lands the erased raw batches again as one new
batch and runs the team's pipeline on it (the recommended action for a package trained on the subject).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flywheel.embedded import NAMES
from flywheel.errors import DataError, FlywheelError
from lambdas.erasure.logic import ErasureError, ErasureReceipt, ErasureScope, erase


def id_columns(team_config: Any) -> tuple[str, ...]:
    """The ``id`` columns of the team's data contracts (every template that has one)."""
    names: list[str] = []
    for template in team_config.pipelines:
        contract = getattr(team_config.template_settings(template), "contract", None)
        if contract is not None:
            names += [n for n in contract.names("id") if n not in names]
    return tuple(names)


def scope_of(runtime: Any, team: str) -> ErasureScope:
    """The team's erasure scope in the embedded AWS (UnknownTeamError for an unknown team)."""
    config = runtime.team_config(team)
    res = runtime.resources(team)
    buckets = res.platform.buckets
    return ErasureScope(
        team=team,
        buckets={zone: buckets[zone] for zone in ("raw", "curated", "features", "reports")},
        pipelines=tuple(p.pipeline_name for p in res.pipelines.values()),
        group_name=NAMES.model_package_group(team),
        id_columns=id_columns(config),
        reports_kms_key=res.platform.keys["reports"],
    )


def new_request_id() -> str:
    """``erase-<utc timestamp>-<random>``: a receipt name that says nothing about the subject."""
    return f"erase-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


def erase_subject(runtime: Any, team: str, subject: str, *, request_id: str | None = None) -> ErasureReceipt:
    """Erase ``subject`` from the team's data on the embedded AWS; FlywheelError for bad input."""
    scope = scope_of(runtime, team)
    try:
        return erase(
            runtime.aws.client("s3"),
            runtime.aws.client("sagemaker"),
            scope,
            subject,
            request_id=request_id or new_request_id(),
        )
    except ErasureError as exc:
        raise FlywheelError(str(exc)) from None


def retrain(runtime: Any, team: str, batches: Sequence[str], folder: Path) -> Any:
    """Land the erased batches' current data files again as one new batch and run the pipeline on it."""
    if not batches:
        raise DataError("no raw batch held the subject: there is nothing to retrain on")
    import pandas as pd

    s3 = runtime.aws.client("s3")
    raw = runtime.resources(team).raw_bucket
    frames: list[Any] = []
    folder.mkdir(parents=True, exist_ok=True)
    for batch in batches:
        listing = s3.list_objects_v2(Bucket=raw, Prefix=batch).get("Contents", [])
        for entry in listing:
            key = str(entry["Key"])
            if key.lower().endswith(".csv"):
                local = folder / f"part-{len(frames)}.csv"
                s3.download_file(raw, key, str(local))
                frames.append(pd.read_csv(local, dtype=str, keep_default_na=False))
    if not frames:
        raise FlywheelError(f"the erased batches {', '.join(batches)} hold no CSV file to retrain on")
    merged = folder / "retrain.csv"
    pd.concat(frames, ignore_index=True).to_csv(merged, index=False)
    return runtime.run(team, data=merged)
