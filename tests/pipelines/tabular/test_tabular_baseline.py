"""baseline.py: mergeable per-host statistics and the drift comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from baseline import column_statistics, drift_report, host_statistics, merge_column, merge_statistics, quantiles
from features import pseudonymize, serving_names
from tabular_helpers import FIXTURES, PII_KEY
from validation import validate_files

from flywheel.datasets import churn_frame


@pytest.fixture(scope="module")
def curated(churn_contract) -> pd.DataFrame:
    frame = validate_files([FIXTURES / "churn.csv"], churn_contract).files[0].frame
    return pseudonymize(frame, churn_contract, PII_KEY.encode())


def test_numeric_merge_is_exact() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(50, 10, 1000), [np.nan] * 7, rng.exponential(3, 500), [-4.0, 0.0]])
    whole = column_statistics(values, categorical=False)
    parts = [column_statistics(chunk, categorical=False) for chunk in np.array_split(values, 5)]
    merged = merge_column(parts)
    assert merged["count"] == whole["count"] == 1502
    assert merged["nulls"] == 7
    assert merged["mean"] == pytest.approx(whole["mean"], rel=1e-12)
    assert merged["m2"] == pytest.approx(whole["m2"], rel=1e-9)
    assert (merged["min"], merged["max"]) == (whole["min"], whole["max"])
    assert merged["sketch"] == whole["sketch"]  # bucket counts add up exactly


def test_sketch_quantiles_are_within_the_relative_accuracy() -> None:
    values = np.random.default_rng(1).lognormal(3, 1, 20_000)
    stats = column_statistics(values, categorical=False)
    for q, approx in zip((0.1, 0.5, 0.9), quantiles(stats, (0.1, 0.5, 0.9)), strict=True):
        assert approx == pytest.approx(np.quantile(values, q), rel=0.03)


def test_categorical_merge_is_exact() -> None:
    values = pd.Series(["a", "b", None, "a", "c", "a"], dtype=object)
    merged = merge_column([column_statistics(values[:3], True), column_statistics(values[3:], True)])
    assert merged == column_statistics(values, True)
    assert merged["categories"] == {"a": 3, "b": 1, "c": 1}


def test_statistics_from_parts_equal_statistics_from_whole(curated: pd.DataFrame, churn_contract) -> None:
    whole = merge_statistics([host_statistics(curated, churn_contract, "algo-1")], churn_contract)
    parts = [host_statistics(curated.iloc[i::3], churn_contract, f"algo-{i}") for i in range(3)]
    merged = merge_statistics(parts, churn_contract)
    assert merged["dataset"] == {"item_count": len(curated), "hosts": 3}
    for a, b in zip(whole["features"], merged["features"], strict=True):
        assert a["name"] == b["name"]
        if "numerical_statistics" in a:
            sa, sb = a["numerical_statistics"], b["numerical_statistics"]
            assert sa["mean"] == pytest.approx(sb["mean"]) and sa["std_dev"] == pytest.approx(sb["std_dev"])
            assert sa["distribution"] == sb["distribution"]
        else:
            assert a == b


def _statistics(contract, n: int = 4000, seed: int = 0) -> dict:
    frame = pseudonymize(churn_frame(n, seed=seed), contract, PII_KEY.encode())
    return merge_statistics([host_statistics(frame, contract, "algo-1")], contract)


def test_same_distribution_does_not_drift(churn_contract) -> None:
    stats = _statistics(churn_contract)
    batch = pseudonymize(churn_frame(3000, seed=99), churn_contract, PII_KEY.encode())[serving_names(churn_contract)]
    report = drift_report(batch, stats, churn_contract)
    assert report["drift"] is False, report["drifted_features"]
    assert set(report["features"]) == set(serving_names(churn_contract))
    assert max(f["psi"] for f in report["features"].values()) < 0.1


def test_shifted_and_unseen_values_drift(churn_contract) -> None:
    stats = _statistics(churn_contract)
    batch = pseudonymize(churn_frame(3000, seed=99), churn_contract, PII_KEY.encode())[serving_names(churn_contract)]
    batch = batch.assign(
        monthly_charges=batch["monthly_charges"] * 1.6,
        contract_type=np.where(np.arange(len(batch)) % 5 == 0, "weekly", batch["contract_type"]),
        total_charges=np.nan,
    )
    report = drift_report(batch, stats, churn_contract)
    features = report["features"]
    assert features["monthly_charges"]["drifted"] and features["monthly_charges"]["psi"] > 0.5
    assert features["contract_type"]["unseen_share"] == pytest.approx(0.2, abs=0.01)
    assert features["contract_type"]["drifted"]
    assert features["total_charges"]["batch_missing_share"] == 1.0
    assert features["total_charges"]["baseline_missing_share"] < 0.05
    assert not features["support_calls"]["drifted"]
    assert report["drifted_features"] == ["contract_type", "monthly_charges"]


def test_drift_works_on_request_shaped_text_rows(churn_contract) -> None:
    stats = _statistics(churn_contract)
    batch = pseudonymize(churn_frame(1000, seed=5), churn_contract, PII_KEY.encode())[serving_names(churn_contract)]
    as_text = batch.astype(object).map(lambda v: None if pd.isna(v) else str(v))
    typed = drift_report(batch, stats, churn_contract)
    text = drift_report(as_text, stats, churn_contract)
    for name in typed["features"]:
        assert typed["features"][name]["psi"] == pytest.approx(text["features"][name]["psi"]), name
