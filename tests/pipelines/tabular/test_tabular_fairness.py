"""Fairness: per-group metrics on constructed data with known gaps; protected columns are not features by default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import evaluate
import numpy as np
import pandas as pd
import pytest
import train
from contract import contract_from_dict
from fairness import group_metrics, worst_gap
from features import group_columns, serving_names
from tabular_helpers import CONTRACTS, FIXTURES, PipelineRun, run_preprocess


def _binary_case() -> tuple[np.ndarray, np.ndarray, pd.Series]:
    """Group a: 50 positives all selected + 10 of 50 negatives; group b: 25 of 50 positives + 5 of 50 negatives."""
    y = np.array([1] * 50 + [0] * 50 + [1] * 50 + [0] * 50)
    pred_a = [1] * 50 + [1] * 10 + [0] * 40
    pred_b = [1] * 25 + [0] * 25 + [1] * 5 + [0] * 45
    scores = np.array(pred_a + pred_b, dtype=float) * 0.8 + 0.1
    return y, scores, pd.Series(["a"] * 100 + ["b"] * 100)


def test_binary_gaps_have_the_known_values() -> None:
    y, scores, groups = _binary_case()
    result = group_metrics("binary", y, scores, groups)
    a, b = result["groups"]["a"], result["groups"]["b"]
    assert (a["selection_rate"], a["tpr"], a["fpr"]) == (0.6, 1.0, 0.2)
    assert (b["selection_rate"], b["tpr"], b["fpr"]) == (0.3, 0.5, 0.1)
    gaps = result["gaps"]
    assert gaps["selection_rate_ratio"] == pytest.approx(0.5)  # fails the four-fifths rule
    assert gaps["tpr_difference"] == pytest.approx(0.5) and gaps["fpr_difference"] == pytest.approx(0.1)
    assert worst_gap("binary", {"sex": result}) == ("sex.selection_rate_ratio", pytest.approx(0.5))


def test_equal_treatment_has_no_gap_and_small_groups_are_left_out() -> None:
    y = np.array([1, 0] * 50)
    scores = np.where(y == 1, 0.9, 0.1)
    groups = pd.Series(["a", "a", "b", "b"] * 22 + ["a", "a"] + ["c"] * 5 + [None] * 5)  # a, b: half positive
    result = group_metrics("binary", y, scores, groups)
    assert result["gaps"]["selection_rate_ratio"] == pytest.approx(1.0)
    assert result["gaps"]["tpr_difference"] == 0.0
    assert result["groups"]["c"]["rows"] == 5 and result["groups"]["(missing)"]["rows"] == 5  # shown, not counted


def test_regression_and_multiclass_group_errors() -> None:
    y = np.array([10.0, 10.0, 20.0, 20.0] * 5)
    pred = np.array([11.0, 9.0, 23.0, 17.0] * 5)  # |error| 1 in group x, 3 in group y
    groups = pd.Series(["x", "x", "y", "y"] * 5)
    result = group_metrics("regression", y, pred, groups)
    assert result["groups"]["x"]["mae"] == 1.0 and result["groups"]["y"]["mae"] == 3.0
    assert result["gaps"]["mae_difference"] == 2.0
    y3 = np.array([0, 1, 2] * 10)
    scores = np.eye(3)[np.array([0, 1, 2] * 5 + [0, 0, 0] * 5)]
    multi = group_metrics("multiclass", y3, scores, pd.Series(["p"] * 15 + ["q"] * 15))
    assert multi["gaps"]["accuracy_difference"] == pytest.approx(1.0 - 1 / 3)


def _protected_contract(opt_in: bool = False) -> dict:
    data = json.loads((CONTRACTS / "churn.json").read_text())
    data["columns"].insert(-1, {"name": "sex", "dtype": "str", "role": "protected", "allowed": ["f", "m"]})
    if opt_in:
        data["protected_as_features"] = True
    return data


def test_a_protected_column_is_not_a_feature_unless_opted_in(tmp_path: Path) -> None:
    default, opted = contract_from_dict(_protected_contract()), contract_from_dict(_protected_contract(True))
    assert "sex" not in serving_names(default) and "sex" in serving_names(opted)
    assert group_columns(default) == ["sex"] and group_columns(opted) == []
    # Preprocessing keeps it in the curated splits (for the per-group metrics), outside the features.
    raw = tmp_path / "raw"
    raw.mkdir()
    frame = pd.read_csv(FIXTURES / "churn.csv", dtype=str, keep_default_na=False)
    frame.insert(len(frame.columns) - 1, "sex", np.where(np.arange(len(frame)) % 2, "f", "m"))
    frame.to_csv(raw / "churn.csv", index=False)
    contract = tmp_path / "contract.json"
    contract.write_text(json.dumps(_protected_contract()))
    assert run_preprocess(contract, raw, tmp_path / "out", "--resource-config", str(tmp_path / "absent.json")) == 0
    curated = pd.concat([pd.read_parquet(p) for p in sorted((tmp_path / "out" / "train").rglob("*.parquet"))])
    assert set(curated["sex"]) == {"f", "m"}
    with pytest.raises(ValueError, match="protected column needs dtype"):
        bad = _protected_contract()
        bad["columns"][-2] = {**bad["columns"][-2], "dtype": "float", "allowed": None}
        contract_from_dict(bad)


def test_protected_columns_used_as_features_are_a_warning(chains: dict[str, PipelineRun]) -> None:
    frame = pd.concat([pd.read_parquet(p) for p in sorted((chains["churn"].processed / "train").rglob("*.parquet"))])
    warnings = train.sanity_checks(frame.assign(sex="f"), contract_from_dict(_protected_contract(True)))
    assert any("protected column 'sex' is used as a model feature" in w for w in warnings)
    assert train.sanity_checks(frame, contract_from_dict(_protected_contract())) == []


def test_evaluation_reports_groups_and_an_optional_fairness_gate(
    chains: dict[str, PipelineRun], tmp_path: Path
) -> None:
    run = chains["churn"]
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    test = pd.concat([pd.read_parquet(p) for p in sorted((run.processed / "test").rglob("*.parquet"))])
    # A group column that follows the label: the model's selection rate differs by group.
    test.assign(sex=np.where(test["churned"].astype(str) == "1", "f", "m")).to_parquet(test_dir / "part.parquet")
    contract = tmp_path / "contract.json"
    contract.write_text(json.dumps(_protected_contract()))
    out = tmp_path / "out"
    code = evaluate.main(
        [
            "--model-dir", str(run.model), "--test-dir", str(test_dir), "--baseline-dir",
            str(run.processed / "baseline"), "--contract", str(contract), "--output-dir", str(out),
            "--gate-metric", "auc", "--fairness-max-gap", "0.2",
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads((out / "evaluation.json").read_text())
    sex = report["fairness"]["columns"]["sex"]
    assert set(sex["groups"]) == {"f", "m"} and report["fairness"]["used_as_features"] is False
    assert sex["gaps"]["selection_rate_ratio"] < 0.5
    fairness = next(c for c in report["gate"]["checks"] if c["check"] == "fairness")
    assert fairness["passed"] is False and "'sex': selection-rate ratio" in fairness["reason"]
    assert report["gate"]["passed"] == 0
    shutil.rmtree(out)
