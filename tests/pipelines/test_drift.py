"""The drift monitor's maths and findings (pipelines/monitor/drift.py) on constructed data.

GIVEN a reference frame profiled into baseline statistics (the format the tabular evaluation registers)
WHEN a window is compared with it THEN each case of the issue gives its verdict or finding, naming the
column: no drift stays under the thresholds, a shifted numeric and a shifted categorical column drift,
a new category, a dropped, a retyped and an all-null column are each a finding, and an empty or too-small
window is "not enough data" (never a pass).
"""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.monitor import drift

CATEGORICAL = ["plan", "active"]


def frame(
    n: int, seed: int, *, shift: float = 0.0, plan_p: tuple[float, float, float] = (0.5, 0.3, 0.2)
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40 + shift, 10, n).round(1),
            "spend": rng.gamma(2.0, 30.0, n).round(2),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=plan_p),
            "active": rng.choice(["true", "false"], n, p=[0.7, 0.3]),
        }
    )


def reference(n: int, seed: int = 1) -> dict[str, drift.ColumnReference]:
    return drift.load_reference(drift.profile_frame(frame(n, seed), categorical=CATEGORICAL))


@pytest.fixture(scope="module")
def large() -> dict[str, drift.ColumnReference]:
    return reference(5000)


@pytest.fixture(scope="module")
def small() -> dict[str, drift.ColumnReference]:
    return reference(800)


def kinds(report: dict[str, Any]) -> dict[str, list[str | None]]:
    out: dict[str, list[str | None]] = {}
    for f in report["findings"]:
        out.setdefault(f["kind"], []).append(f["column"])
    return out


@pytest.mark.parametrize(
    ("ref_name", "tests"), [("large", {"wasserstein_normed", "jensen_shannon"}), ("small", {"ks", "chi_square", "z"})]
)
def test_no_drift_stays_under_every_threshold(ref_name: str, tests: set[str], request: pytest.FixtureRequest) -> None:
    report = drift.compare(request.getfixturevalue(ref_name), frame(2000, seed=8))
    assert report["status"] == drift.NO_DRIFT, report["findings"]
    assert report["dataset_drift"] is False and report["drifted_features"] == []
    assert {e["test"] for e in report["features"].values()} == tests
    for entry in report["features"].values():
        assert not entry["drifted"]
        if entry["test"] in ("wasserstein_normed", "jensen_shannon"):
            assert entry["score"] < drift.DISTANCE_THRESHOLD
        else:
            assert entry["score"] > drift.P_VALUE_THRESHOLD
    assert "Finding" not in drift.summary(report) and drift.summary(report).startswith("no drift")


@pytest.mark.parametrize("ref_name", ["large", "small"])
def test_a_shifted_numeric_column_drifts_and_is_named(ref_name: str, request: pytest.FixtureRequest) -> None:
    report = drift.compare(request.getfixturevalue(ref_name), frame(2000, seed=8, shift=5.0))
    assert report["status"] == drift.DRIFT
    assert report["drifted_features"] == ["age"]
    assert report["dataset_drift"] is False  # one of four columns
    assert "age" in drift.summary(report)
    assert kinds(report)["drift"] == ["age"]


@pytest.mark.parametrize("ref_name", ["large", "small"])
def test_a_shifted_categorical_column_drifts_and_is_named(ref_name: str, request: pytest.FixtureRequest) -> None:
    report = drift.compare(request.getfixturevalue(ref_name), frame(2000, seed=8, plan_p=(0.2, 0.3, 0.5)))
    assert report["drifted_features"] == ["plan"]
    assert report["features"]["plan"]["test"] in ("jensen_shannon", "chi_square")


def test_half_the_columns_drifting_is_dataset_drift(large: dict[str, drift.ColumnReference]) -> None:
    report = drift.compare(large, frame(2000, seed=8, shift=5.0, plan_p=(0.2, 0.3, 0.5)))
    assert sorted(report["drifted_features"]) == ["age", "plan"]
    assert report["drift_share"] == 0.5 and report["dataset_drift"] is True
    assert drift.summary(report).startswith("DATASET DRIFT")


def test_a_new_category_is_a_finding_naming_column_and_value(large: dict[str, drift.ColumnReference]) -> None:
    window = frame(2000, seed=8)
    window.loc[:99, "plan"] = "enterprise"
    report = drift.compare(large, window)
    finding = next(f for f in report["findings"] if f["kind"] == "new_categories")
    assert finding["column"] == "plan" and "'enterprise'" in finding["message"] and "5.0%" in finding["message"]
    assert report["features"]["plan"]["new_categories"] == ["enterprise"]


def test_a_dropped_column_is_a_schema_finding_and_counts_as_drifted(large: dict[str, drift.ColumnReference]) -> None:
    report = drift.compare(large, frame(2000, seed=8).drop(columns=["spend"]))
    assert kinds(report)["missing_column"] == ["spend"]
    assert report["features"]["spend"]["drifted"] is True and "spend" in report["drifted_features"]


def test_an_extra_column_is_a_schema_finding(large: dict[str, drift.ColumnReference]) -> None:
    window = frame(2000, seed=8).assign(coupon="x")
    assert kinds(drift.compare(large, window))["extra_column"] == ["coupon"]


def test_a_retyped_column_is_a_finding(large: dict[str, drift.ColumnReference]) -> None:
    window = frame(2000, seed=8)
    window["age"] = [f"{v:.0f} years" for v in window["age"]]
    report = drift.compare(large, window)
    finding = next(f for f in report["findings"] if f["kind"] == "retyped_column")
    assert finding["column"] == "age" and "100% of its values are not numbers" in finding["message"]
    assert report["features"]["age"]["drifted"] is True and report["features"]["age"]["test"] is None


def test_an_all_null_column_is_a_finding(large: dict[str, drift.ColumnReference]) -> None:
    window = frame(2000, seed=8)
    window["spend"] = np.nan
    report = drift.compare(large, window)
    assert kinds(report)["all_missing"] == ["spend"]
    assert report["features"]["spend"]["drifted"] is True


def test_a_rising_missing_share_is_a_finding(large: dict[str, drift.ColumnReference]) -> None:
    window = frame(2000, seed=8)
    window.loc[:499, "spend"] = np.nan  # 25 % missing, baseline 0 %
    report = drift.compare(large, window)
    assert kinds(report)["missing_values"] == ["spend"]
    assert report["features"]["spend"]["missing_share"] == pytest.approx(0.25)


@pytest.mark.parametrize("rows", [0, 1, 99])
def test_an_empty_or_too_small_window_is_not_enough_data(large: dict[str, drift.ColumnReference], rows: int) -> None:
    report = drift.compare(large, frame(rows, seed=8) if rows else pd.DataFrame(columns=list(large)))
    assert report["status"] == drift.NOT_ENOUGH_DATA
    assert report["dataset_drift"] is None and report["drift_share"] is None  # neither drift nor a pass
    assert report["features"] == {}
    assert drift.summary(report).startswith("not enough data")
    metrics = {m["MetricName"]: m["Value"] for m in drift.metric_data(report, team="t", endpoint="e")}
    assert metrics == {"WindowRows": float(rows), "NotEnoughData": 1.0}  # no drift score, no "0 drifted"


def test_min_rows_is_a_setting_and_must_be_positive(large: dict[str, drift.ColumnReference]) -> None:
    assert (
        drift.compare(large, frame(50, seed=8), drift.MonitorSettings(min_rows=20))["status"] != drift.NOT_ENOUGH_DATA
    )
    with pytest.raises(drift.MonitorInputError, match="min_rows"):
        drift.MonitorSettings(min_rows=0)


def test_psi_is_opt_in(large: dict[str, drift.ColumnReference]) -> None:
    calm = drift.compare(large, frame(2000, seed=8), drift.MonitorSettings(psi=True))
    moved = drift.compare(large, frame(2000, seed=8, shift=5.0), drift.MonitorSettings(psi=True))
    assert {e["test"] for e in calm["features"].values()} == {"psi"} and calm["status"] == drift.NO_DRIFT
    assert moved["drifted_features"] == ["age"] and moved["features"]["age"]["score"] >= drift.PSI_THRESHOLD


def test_metric_data_scores_every_feature(large: dict[str, drift.ColumnReference]) -> None:
    report = drift.compare(large, frame(2000, seed=8, shift=5.0))
    data = drift.metric_data(report, team="churn", endpoint="flywheel-dev-churn")
    scores = {
        next(d["Value"] for d in m["Dimensions"] if d["Name"] == "feature"): m["Value"]
        for m in data
        if m["MetricName"] == "DriftScore"
    }
    assert set(scores) == {"age", "spend", "plan", "active"}
    assert scores["age"] > 1 > scores["spend"]  # 1 = at the threshold
    assert {m["MetricName"]: m["Value"] for m in data}["DriftedFeatures"] == 1.0


def test_open_vocabularies_are_tested_on_their_top_categories(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    codes = [f"p{i:03d}" for i in range(300)]
    ref = drift.load_reference(drift.profile_frame(pd.DataFrame({"code": rng.choice(codes, 5000)}), ["code"]))
    window = pd.DataFrame({"code": rng.choice(codes, 2000)})
    report = drift.compare(ref, window)
    assert report["features"]["code"]["lumped_categories"] == 300 - drift.MAX_CATEGORIES
    assert report["status"] == drift.NO_DRIFT
    # Every one of 300 sparse categories compared one by one measures sampling noise: a false alarm.
    monkeypatch.setattr(drift, "MAX_CATEGORIES", 10**6)
    assert drift.compare(ref, window)["features"]["code"]["drifted"] is True


# --- the capture window --------------------------------------------------------------------------------


def record(
    body: str, content_type: str = "text/csv", at: str = "2026-01-01T12:00:00Z", b64: bool = False
) -> dict[str, Any]:
    data = base64.b64encode(body.encode()).decode() if b64 else body
    encoding = "BASE64" if b64 else ("CSV" if "csv" in content_type else "JSON")
    return {
        "captureData": {
            "endpointInput": {"observedContentType": content_type, "mode": "INPUT", "data": data, "encoding": encoding}
        },
        "eventMetadata": {"eventId": "x", "inferenceTime": at},
        "eventVersion": "0",
    }


def test_read_window_parses_csv_json_and_base64_and_counts_what_it_cannot_read() -> None:
    cols = ["age", "spend", "plan", "active"]
    records = [
        record("41.0,10.5,basic,true\n39.5,12.0,pro,false\n"),
        record(
            json.dumps({"instances": [{"age": 30, "spend": 5, "plan": "plus", "active": "true"}]}), "application/json"
        ),
        record("50,1,basic,false\n", b64=True),
        record("not json at all {", "application/json"),
        record("x", "image/png", b64=True),
        record("22,2,plus,true,EXTRA\n"),
    ]
    window = drift.read_window(records, cols, categorical=["plan", "active"])
    assert len(window.rows) == 5 and window.records == 6
    assert window.unreadable == 2 and window.first_error
    assert window.extra_columns == ["extra_1"]
    assert sorted(window.rows["plan"].dropna()) == ["basic", "basic", "plus", "plus", "pro"]


def test_read_window_keeps_the_time_range() -> None:
    cols = ["age"]
    records = [
        record("1\n", at="2026-01-01T10:59:59Z"),
        record("2\n", at="2026-01-01T11:00:00Z"),
        record("3\n", at="2026-01-01T12:00:00Z"),
    ]
    since, until = datetime(2026, 1, 1, 11, tzinfo=UTC), datetime(2026, 1, 1, 12, tzinfo=UTC)
    window = drift.read_window(records, cols, since=since, until=until)
    assert window.rows["age"].tolist() == [2] and window.records == 1


def test_a_capture_line_that_is_not_json_is_an_error_naming_the_line() -> None:
    with pytest.raises(drift.MonitorInputError, match="capture line 2 is not JSON"):
        list(drift.iter_records(['{"a": 1}', "garbage"]))


def test_a_baseline_without_features_is_an_error_naming_the_fix() -> None:
    with pytest.raises(drift.MonitorInputError, match="no 'features' list"):
        drift.load_reference({"version": 0})
    with pytest.raises(drift.MonitorInputError, match="only a target"):
        drift.load_reference({"features": [{"name": "y", "role": "target", "string_statistics": {}}]})


# --- main(): the processing job --------------------------------------------------------------------------


def write_job_inputs(tmp_path: Path, window: pd.DataFrame) -> tuple[Path, Path]:
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    stats = drift.profile_frame(frame(5000, 1), categorical=CATEGORICAL)
    (baseline / "statistics.json").write_text(json.dumps(stats), encoding="utf-8")
    capture = tmp_path / "capture" / "2026" / "01" / "01"
    capture.mkdir(parents=True)
    lines = [
        json.dumps(record(window.iloc[i : i + 50].to_csv(header=False, index=False))) for i in range(0, len(window), 50)
    ]
    (capture / "part.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return baseline, tmp_path / "capture"


def test_main_writes_report_and_cloudwatch_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    baseline, capture = write_job_inputs(tmp_path, frame(1000, seed=9, shift=5.0))
    out = tmp_path / "out"
    args = [
        "--baseline-dir",
        str(baseline),
        "--capture-dir",
        str(capture),
        "--output-dir",
        str(out),
        "--team",
        "churn",
        "--endpoint",
        "flywheel-dev-churn",
        "--window",
        "2026/01/01",
    ]
    assert drift.main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["drifted_features"] == ["age"] and report["rows"] == 1000 and report["window_label"] == "2026/01/01"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["Namespace"] == drift.METRICS_NAMESPACE
    assert {"Name": "team", "Value": "churn"} in metrics["MetricData"][0]["Dimensions"]
    assert '"status": "drift"' in capsys.readouterr().out


def test_main_on_bad_input_exits_2_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "baseline").mkdir()
    (tmp_path / "baseline" / "statistics.json").write_text("{nope", encoding="utf-8")
    code = drift.main(
        [
            "--baseline-dir",
            str(tmp_path / "baseline"),
            "--capture-dir",
            str(tmp_path / "none"),
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2 and "is not JSON" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_main_with_an_empty_window_reports_not_enough_data(tmp_path: Path) -> None:
    baseline, _ = write_job_inputs(tmp_path, frame(10, seed=9))
    out = tmp_path / "out"
    assert (
        drift.main(
            ["--baseline-dir", str(baseline), "--capture-dir", str(tmp_path / "empty"), "--output-dir", str(out)]
        )
        == 0
    )
    assert json.loads((out / "report.json").read_text())["status"] == drift.NOT_ENOUGH_DATA


# --- the registered baseline -----------------------------------------------------------------------------


def test_profile_frame_matches_the_tabular_baseline_sketch() -> None:
    """The monitor reads what pipelines/tabular/baseline.py writes: same sketch buckets, same moments."""
    step_dir = str(Path(__file__).resolve().parents[2] / "pipelines" / "tabular")
    if step_dir not in sys.path:
        sys.path.insert(0, step_dir)
    import baseline as tabular_baseline  # type: ignore[import-not-found]

    values = frame(3000, 4)["spend"].to_numpy()
    theirs = tabular_baseline.column_statistics(values, categorical=False)
    ours = drift.profile_frame(pd.DataFrame({"spend": values}))["features"][0]["numerical_statistics"]
    assert ours["sketch"]["pos"] == theirs["sketch"]["pos"] and ours["sketch"]["zero"] == theirs["sketch"]["zero"]
    assert ours["sketch"]["m2"] == pytest.approx(theirs["m2"])
    merged = tabular_baseline.merge_column([theirs])
    ref = drift.load_reference(
        {
            "features": [
                {
                    "name": "spend",
                    "numerical_statistics": {
                        "common": {"num_present": merged["count"], "num_missing": 0},
                        "std_dev": float(np.std(values)),
                        "min": merged["min"],
                        "max": merged["max"],
                        "sketch": {"relative_accuracy": tabular_baseline.SKETCH_ACCURACY, **merged["sketch"]},
                    },
                }
            ]
        }
    )
    reps = tabular_baseline._sketch_buckets(merged["sketch"])[1]
    assert ref["spend"].values == pytest.approx(reps)  # the same representative values
