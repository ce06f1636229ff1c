"""Erasure end to end on the embedded AWS: two batches hold a subject, one trains and registers; erase it.

Small on purpose (a few hundred rows, one pipeline run): the erasure logic is the deployed Lambda's own
(``lambdas.erasure.logic``), so the handler tests cover the event path and this test the data path.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from flywheel import embedded as emb
from flywheel import lineage
from flywheel.datasets import write_churn_csv
from flywheel.erasure import erase_subject
from flywheel.errors import FlywheelError, UnknownTeamError
from flywheel.runtime import LocalRuntime
from flywheel.state import StateStore
from lambdas.erasure.logic import subject_token_v2

ZONES = ("raw", "curated", "features")


def _all_versions(s3: Any, bucket: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        out += page.get("Versions", [])
    return out


def _cells(key: str, body: bytes) -> set[str]:
    """Every cell of a CSV/parquet object as text (other objects: their decoded bytes as one cell)."""
    if key.endswith(".parquet"):
        frame = pq.read_table(io.BytesIO(body)).to_pandas()
    elif key.endswith(".csv"):
        frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
    else:
        return {body.decode("utf-8", errors="replace")}
    return {str(v) for v in frame.to_numpy().ravel()}


def test_erase_a_subject_from_two_batches_every_version_and_report_the_package(tmp_path: Path) -> None:
    data = pd.read_csv(write_churn_csv(tmp_path / "gen.csv", 560, seed=5), dtype=str, keep_default_na=False)
    subject = str(data.loc[3, "customer_id"])
    first, second = data.iloc[:400], pd.concat([data.iloc[400:], data.iloc[[3]]])
    first.to_csv(tmp_path / "first.csv", index=False)
    second.to_csv(tmp_path / "second.csv", index=False)
    with emb.in_process() as aws:
        runtime = LocalRuntime(aws, StateStore(tmp_path / "state"))
        # GIVEN batch 1 trained and registered, and batch 2 landed twice (its first upload is noncurrent)
        outcome = runtime.run("churn", data=tmp_path / "first.csv", parameters={"GateThreshold": "0.0"})
        assert outcome.execution.status == "Succeeded", outcome.execution.failure_reason
        package = outcome.package
        assert package is not None
        runtime.land("churn", tmp_path / "second.csv", batch="batch-second")
        second.iloc[::-1].to_csv(tmp_path / "second.csv", index=False)  # same rows, a new version
        runtime.land("churn", tmp_path / "second.csv", batch="batch-second")
        s3, res = aws.client("s3"), runtime.resources("churn")
        buckets = res.platform.buckets
        token = subject_token_v2(  # what preprocessing writes today (tokens v2)
            s3.get_object(Bucket=buckets["raw"], Key="churn/_keys/pii-hmac.key")["Body"].read().strip(), subject
        )

        # Lineage: the package names its raw batch and objects (with version ids); the token finds the rows.
        described = aws.client("sagemaker").describe_model_package(ModelPackageName=package["ModelPackageArn"])
        record = lineage.package_lineage(s3, described)
        batch_one = outcome.arrival.input_data_uri.split("/", 3)[3]
        assert record["input_data_uri"] == outcome.arrival.input_data_uri
        assert [o["key"] for o in record["raw_objects"]] == [f"{batch_one}first.csv"]
        assert record["raw_objects"][0]["version_id"]
        where = {(f["zone"], f["key"].split("/")[0]) for f in lineage.find_subject(runtime, "churn", subject)}
        assert ("raw", "churn") in where and ("features", res.primary.pipeline_name) in where

        before = {z: {(v["Key"], v["VersionId"]) for v in _all_versions(s3, buckets[z])} for z in ZONES}
        originals = {
            key: s3.get_object(Bucket=buckets["raw"], Key=key)["Body"].read()
            for key in (f"{batch_one}first.csv", "churn/incoming/batch-second/second.csv")
        }
        features_before = {
            v["Key"]: pq.read_table(io.BytesIO(s3.get_object(Bucket=buckets["features"], Key=v["Key"])["Body"].read()))
            for v in _all_versions(s3, buckets["features"])
            if v["Key"].endswith(".parquet")
        }

        # WHEN the subject is erased
        receipt = erase_subject(runtime, "churn", subject, request_id="req-1")

        # THEN no current or noncurrent version of any raw/curated/features object holds the id or the token
        assert receipt.status == "erased"
        for zone in ZONES:
            for version in _all_versions(s3, buckets[zone]):
                body = s3.get_object(Bucket=buckets[zone], Key=version["Key"], VersionId=version["VersionId"])[
                    "Body"
                ].read()
                cells = _cells(version["Key"], body)
                assert subject not in cells and token not in cells, (zone, version["Key"])
                if not version["Key"].endswith(".parquet"):
                    assert subject.encode() not in body and token.encode() not in body
        # ... the receipt lists both batches, the rewritten objects' removed versions and the package
        assert receipt.batches == [batch_one, "churn/incoming/batch-second/"]
        raw_second = next(o for o in receipt.objects if o.key.endswith("second.csv"))
        assert raw_second.versions_holding_subject == 2 and len(raw_second.removed_version_ids) == 2
        assert {o.zone for o in receipt.objects} == {"raw", "features"}
        (affected,) = receipt.packages
        assert affected.arn == package["ModelPackageArn"] and affected.status == "PendingManualApproval"
        assert "retrain" in affected.action
        removed = {v for o in receipt.objects for v in o.removed_version_ids}
        after = {z: {(v["Key"], v["VersionId"]) for v in _all_versions(s3, buckets[z])} for z in ZONES}
        assert all(vid not in {v for _, v in after[z]} for z in ZONES for vid in removed)
        # ... written to the reports zone, without the id or the token
        stored = s3.get_object(Bucket=buckets["reports"], Key="_erasure/churn/req-1.json")["Body"].read()
        assert subject.encode() not in stored and token.encode() not in stored
        assert json.loads(stored)["batches"] == receipt.batches

        # ... and every other row is unchanged: raw records byte for byte, feature rows value for value
        for key, original in originals.items():
            now = s3.get_object(Bucket=buckets["raw"], Key=key)["Body"].read()
            kept = [line for line in original.decode().splitlines(keepends=True) if subject not in line]
            assert now.decode() == "".join(kept)
        for key, table in features_before.items():
            now = pq.read_table(io.BytesIO(s3.get_object(Bucket=buckets["features"], Key=key)["Body"].read()))
            expected = table.to_pandas()
            expected = expected[expected["customer_id"] != token].reset_index(drop=True)
            pd.testing.assert_frame_equal(now.to_pandas(), expected)
        untouched = {z: before[z] - {(o.key, v) for o in receipt.objects for v in o.removed_version_ids} for z in ZONES}
        assert all(untouched[z] <= after[z] for z in ZONES)

        # WHEN erased again THEN nothing is found, nothing changes and no receipt is written
        again = erase_subject(runtime, "churn", subject, request_id="req-2")
        assert again.status == "nothing-found" and "nothing to erase" in again.message()
        assert {z: {(v["Key"], v["VersionId"]) for v in _all_versions(s3, buckets[z])} for z in ZONES} == after
        assert "Contents" not in s3.list_objects_v2(Bucket=buckets["reports"], Prefix="_erasure/churn/req-2")

        # Bad input: a clear message and no change
        with pytest.raises(UnknownTeamError, match="unknown team"):
            erase_subject(runtime, "nobody", subject)
        with pytest.raises(FlywheelError, match="empty"):
            erase_subject(runtime, "churn", "  ")
        with pytest.raises(FlywheelError, match="request id"):
            erase_subject(runtime, "churn", subject, request_id="../x")
        assert erase_subject(runtime, "churn", "C-no-such-customer").status == "nothing-found"
        assert {z: {(v["Key"], v["VersionId"]) for v in _all_versions(s3, buckets[z])} for z in ZONES} == after
