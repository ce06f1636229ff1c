"""``flywheel monitor``: the drift monitor on traffic the local endpoint's capture sink wrote, in embedded S3.

GIVEN a deployed package whose registered baseline lives in S3 and requests captured by
:class:`flywheel.capture.S3CaptureSink` (the writer the local endpoint uses), WHEN the monitor runs, THEN it
reads them in SageMaker's layout, compares them with the baseline, stores the report in the reports zone
and raises the local alarm only on drift; "not enough data" is neither a pass nor an alarm.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws

import naming
from config.models import MonitoringSettings
from flywheel import monitor
from flywheel.capture import S3CaptureSink, capture_record
from flywheel.embedded import NAMES
from pipelines.monitor import drift

TEAM = "churn"
BUCKETS = {"capture": "cap", "reports": "rep", "artifacts": "art"}


def table(n: int, seed: int, shift: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, n) + shift,
            "charges": rng.normal(70, 20, n).round(2),
            "plan": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
        }
    )


class FakeRuntime:
    """The slice of LocalRuntime the monitor uses, on moto's in-process S3 and registry."""

    def __init__(self, root: Path) -> None:
        self.aws = SimpleNamespace(client=lambda name: boto3.client(name, region_name="eu-west-1"))
        self.state = SimpleNamespace(root=root)
        s3, sm = self.aws.client("s3"), self.aws.client("sagemaker")
        for bucket in BUCKETS.values():
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        stats = drift.profile_frame(table(5000, 1), categorical=["plan"])
        for feat in stats["features"]:
            if feat["name"] == "tenure":
                feat["inferred_type"] = "Integral"
        s3.put_object(Bucket="rep", Key="p/e/baseline/statistics.json", Body=json.dumps(stats).encode())
        sm.create_model_package_group(ModelPackageGroupName="g")
        extra: dict[str, Any] = {
            "DriftCheckBaselines": {
                "ModelDataQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": "s3://rep/p/e/baseline/statistics.json"}
                }
            }
        }
        self.arn = sm.create_model_package(
            ModelPackageGroupName="g",
            InferenceSpecification={
                "Containers": [{"Image": "i", "ModelDataUrl": "s3://art/m.tar.gz"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            **extra,
        )["ModelPackageArn"]

    def team_config(self, team: str) -> Any:
        return SimpleNamespace(monitoring=MonitoringSettings())

    def deployment(self, team: str) -> dict[str, Any]:
        return {"ModelPackageArn": self.arn}

    def resources(self, team: str) -> Any:
        return SimpleNamespace(platform=SimpleNamespace(buckets=BUCKETS, keys={"reports": "alias/aws/s3"}))


def send(frame: pd.DataFrame, at: datetime, batch: int = 50) -> None:
    """Capture ``frame`` as requests of ``batch`` rows, as the local endpoint does."""
    sink = S3CaptureSink(boto3.client("s3", region_name="eu-west-1"), "cap", naming.CAPTURE, max_records=100)
    endpoint = NAMES.endpoint(TEAM)
    for i in range(0, len(frame), batch):
        body = frame.iloc[i : i + batch].to_csv(header=False, index=False).encode()
        sink.write(endpoint, "AllTraffic", capture_record(request_body=body, request_content_type="text/csv",
                   response_body=b"[]", response_content_type="application/json", event_id=str(i),
                   inference_time=at), at)  # fmt: skip
    sink.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One embedded AWS for the module (moto's start-up is most of each test's cost)."""
    with mock_aws():
        yield FakeRuntime(tmp_path_factory.mktemp("monitor"))


@pytest.fixture
def runtime(shared: Any, tmp_path: Path) -> Any:
    """The shared runtime with no capture yet and its own state folder."""
    s3 = boto3.client("s3", region_name="eu-west-1")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="cap"):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket="cap", Key=obj["Key"])
    shared.state = SimpleNamespace(root=tmp_path)
    return shared


NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_unchanged_traffic_gives_no_drift_and_no_alarm(runtime: Any) -> None:
    send(table(2000, 2), NOW)
    result = monitor.run_monitor(runtime, TEAM)
    assert result.report["status"] == drift.NO_DRIFT and result.alarm is None
    assert result.report["rows"] == 2000 and result.package_version == 1
    assert result.capture_uri == f"s3://cap/{naming.capture_prefix(NAMES.endpoint(TEAM))}"
    bucket, key = naming.split_s3_uri(result.report_uri)
    stored = json.loads(boto3.client("s3", region_name="eu-west-1").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert key.startswith(naming.drift_prefix(NAMES.endpoint(TEAM))) and stored["status"] == drift.NO_DRIFT
    assert result.report_path is not None and json.loads(result.report_path.read_text())["rows"] == 2000


def test_shifted_traffic_fires_the_local_alarm_naming_the_feature(runtime: Any) -> None:
    send(table(2000, 2, shift=30), NOW)
    result = monitor.run_monitor(runtime, TEAM)
    assert result.report["drifted_features"] == ["tenure"]
    assert result.alarm is not None
    assert (
        result.alarm.startswith(f"ALARM {naming.drift_alarm_name(NAMES.endpoint(TEAM))}") and "tenure" in result.alarm
    )
    lines = monitor.report_lines(result)
    assert lines[-1] == result.alarm and any("tenure" in line for line in lines[1:-1])
    section = monitor.drift_section(result, shifted="tenure moved")
    rows = dict(section["rows"])
    assert section["title"] == "Data drift" and rows["alarm"] == result.alarm and rows["demo traffic"] == "tenure moved"
    assert "DRIFT" in rows["feature tenure"] and "ok" in rows["feature plan"]


def test_the_window_keeps_only_traffic_since_the_given_time(runtime: Any) -> None:
    send(table(2000, 2, shift=30), NOW - timedelta(hours=3))  # an earlier, drifted run
    send(table(2000, 3), NOW)
    assert monitor.run_monitor(runtime, TEAM, since=NOW).report["status"] == drift.NO_DRIFT
    assert monitor.run_monitor(runtime, TEAM).report["status"] == drift.DRIFT


def test_too_little_traffic_is_not_enough_data_neither_pass_nor_alarm(runtime: Any) -> None:
    send(table(30, 2, shift=30), NOW)
    result = monitor.run_monitor(runtime, TEAM)
    assert result.report["status"] == drift.NOT_ENOUGH_DATA and result.alarm is None
    assert monitor.report_lines(result)[0].endswith("not enough data: 30 row(s) in the window, at least 500 needed")
    assert monitor.run_monitor(runtime, TEAM, min_rows=10).report["status"] == drift.DRIFT


def test_a_package_without_a_registered_baseline_is_a_clear_error(
    runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = boto3.client("sagemaker", region_name="eu-west-1").create_model_package(
        ModelPackageGroupName="g",
        InferenceSpecification={
            "Containers": [{"Image": "i", "ModelDataUrl": "s3://art/m.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]
    monkeypatch.setattr(runtime, "arn", bare)
    with pytest.raises(monitor.MonitorError, match="version 2 has no registered baseline statistics"):
        monitor.run_monitor(runtime, TEAM)


def test_shift_samples_moves_the_first_finely_resolved_numeric_feature(runtime: Any, tmp_path: Path) -> None:
    samples = tmp_path / "samples.csv"
    samples.write_text(table(5, 9).to_csv(header=False, index=False), encoding="utf-8")
    path, description = monitor.shift_samples(runtime, TEAM, samples)
    before = list(csv.reader(io.StringIO(samples.read_text())))
    after = list(csv.reader(io.StringIO(path.read_text())))
    std = float(np.std(table(5000, 1)["tenure"]))
    assert description.startswith("feature tenure shifted by +") and f"{monitor.SHIFT_STD:g} baseline" in description
    for a, b in zip(before, after, strict=True):
        assert int(b[0]) - int(a[0]) == round(monitor.SHIFT_STD * std)  # integral: stays an integer
        assert a[1:] == b[1:]


def test_capture_in_the_state_folder_is_read_too_and_no_capture_says_how_to_get_some(runtime: Any) -> None:
    from flywheel.capture import LocalCaptureSink

    empty = monitor.run_monitor(runtime, TEAM)
    assert empty.report["status"] == drift.NOT_ENOUGH_DATA
    assert any(f["kind"] == "no_capture" and "flywheel serve" in f["message"] for f in empty.report["findings"])
    frame = table(500, 2, shift=30)
    with LocalCaptureSink(Path(runtime.state.root) / "capture", max_records=100) as sink:  # `flywheel serve` in-process
        for i in range(0, len(frame), 50):
            body = frame.iloc[i : i + 50].to_csv(header=False, index=False).encode()
            record = capture_record(
                request_body=body,
                request_content_type="text/csv",
                response_body=b"[]",
                response_content_type="application/json",
                event_id=str(i),
                inference_time=NOW,
            )
            sink.write(NAMES.endpoint(TEAM), "AllTraffic", record, NOW)
    result = monitor.run_monitor(runtime, TEAM)
    assert result.report["rows"] == 500 and result.report["drifted_features"] == ["tenure"]
    assert str(Path(runtime.state.root) / "capture") in result.capture_uri
