"""The decision threshold (chosen on validation), per-class metrics, calibration, positive class and hints."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from contract import contract_from_dict, contract_problems
from features import class_labels
from inference import BINARY_THRESHOLD, decision_threshold
from tabular_helpers import CONTRACTS
from thresholds import calibration, choose_threshold, per_class


def test_max_f1_and_youden_pick_the_known_best_threshold() -> None:
    # positives score 0.30-0.39, negatives 0.05-0.14 and a few at 0.35: any cut in (0.14, 0.30] separates
    # all positives from 90% of the negatives.
    y = np.array([1] * 10 + [0] * 20)
    scores = np.r_[np.linspace(0.30, 0.39, 10), np.linspace(0.05, 0.14, 18), [0.35, 0.36]]
    f1 = choose_threshold("max_f1", y, scores)
    assert 0.14 < f1["value"] <= 0.30 and f1["rule"] == "max_f1"
    assert f1["validation_score"] == pytest.approx(2 * 10 / (2 * 10 + 2))  # 2 false positives, no false negative
    assert f1["validation_score_at_0_5"] == 0.0  # at 0.5 nothing is predicted positive
    assert "validation split (30 rows)" in f1["method"]
    youden = choose_threshold("youden", y, scores)
    assert 0.14 < youden["value"] <= 0.30 and youden["validation_score"] == pytest.approx(1 - 2 / 20)
    # ties go to the grid point closest to 0.5: here 0.30 among (0.15 ... 0.30)
    assert f1["value"] == youden["value"] == 0.30


def test_fixed_one_class_and_bad_rules() -> None:
    y, s = np.array([0, 1, 1]), np.array([0.2, 0.6, 0.9])
    assert choose_threshold(0.7, y, s) == {
        "value": 0.7, "rule": "fixed", "method": "fixed by the contract at 0.7", "validation_rows": 3
    }  # fmt: skip
    one = choose_threshold("max_f1", np.ones(5), np.full(5, 0.9))
    assert one["value"] == 0.5 and "one class" in one["method"]
    with pytest.raises(ValueError, match="decision_threshold"):
        choose_threshold("accuracy", y, s)


def test_serving_uses_the_recorded_threshold() -> None:
    assert decision_threshold(SimpleNamespace(metadata={"decision_threshold": {"value": 0.26}})) == 0.26
    assert decision_threshold(SimpleNamespace(metadata={})) == BINARY_THRESHOLD  # older models: 0.5
    assert decision_threshold(SimpleNamespace(metadata={"decision_threshold": {"value": 7}})) == BINARY_THRESHOLD


def test_per_class_metrics_on_a_known_confusion() -> None:
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    pred = np.array([0, 0, 1, 1, 2, 2, 2, 2, 0])
    rows = per_class(y, pred, ["a", "b", "c"])
    assert [r["support"] for r in rows] == [3, 2, 4] and [r["predicted"] for r in rows] == [3, 2, 4]
    assert rows[0]["precision"] == pytest.approx(2 / 3) and rows[0]["recall"] == pytest.approx(2 / 3)
    assert rows[1]["precision"] == pytest.approx(1 / 2) and rows[1]["recall"] == pytest.approx(1 / 2)
    assert rows[2]["f1"] == pytest.approx(2 * 3 / (4 + 4))
    absent = per_class(np.array([0, 0]), np.array([0, 1]), ["x", "y"])
    assert absent[1]["recall"] is None and absent[1]["precision"] == 0.0  # no true 'y': recall undefined


def test_calibration_of_known_cases() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200_000)
    y = (rng.uniform(size=p.size) < p).astype(int)  # calibrated by construction
    good = calibration(y, p, "binary")
    assert good is not None and good["ece"] < 0.01 and sum(b["rows"] for b in good["bins"]) == p.size
    assert good["brier"] == pytest.approx(1 / 6, abs=0.005)  # E[p(1-p)] for p ~ U(0, 1)
    # a constant 0.9 on data with a 30% positive rate: one bin, ECE = |0.3 - 0.9|
    const = calibration(np.array([1] * 3 + [0] * 7), np.full(10, 0.9), "binary")
    assert const is not None and len(const["bins"]) == 1 and const["ece"] == pytest.approx(0.6)
    multi = calibration(np.array([0, 1, 2, 2]), np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8],
                                                          [0.6, 0.2, 0.2]]), "multiclass")  # fmt: skip
    assert multi is not None and "top-class confidence" in multi["what"]
    assert calibration(np.array([1.0, 2.0]), np.array([1.0, 2.0]), "regression") is None


def _binary(**changes: object) -> dict:
    data = json.loads((CONTRACTS / "churn.json").read_text())
    data.update(changes)
    return data


def test_positive_class_is_said_in_the_contract_not_by_position() -> None:
    data = _binary(positive_class="0")  # the first allowed value
    contract = contract_from_dict(data)
    assert class_labels(contract) == [1, 0]  # the positive class last: the model reports P(0)
    assert class_labels(contract_from_dict(_binary(positive_class="1"))) == [0, 1]
    with pytest.raises(ValueError, match=r"positive_class '2' is not one of the target's allowed values \['0', '1'\]"):
        contract_from_dict(_binary(positive_class="2"))
    wine = json.loads((CONTRACTS / "wine.json").read_text())
    with pytest.raises(ValueError, match="positive_class applies only to a binary objective"):
        contract_from_dict({**wine, "positive_class": "class_0"})


@pytest.mark.parametrize("rule", ["max_f1", "youden", 0.3])
def test_decision_threshold_rules_accepted(rule: object) -> None:
    assert contract_from_dict(_binary(decision_threshold=rule)).decision_threshold == rule


@pytest.mark.parametrize("rule", ["0.3", "accuracy", 1.0, 0, True])
def test_decision_threshold_rules_refused(rule: object) -> None:
    contract = dataclasses.replace(contract_from_dict(_binary()), decision_threshold=rule)  # type: ignore[arg-type]
    assert any("decision_threshold must be one of" in p for p in contract_problems(contract))


def test_contract_failures_carry_a_hint_and_feature_values_only(tmp_path: Path) -> None:
    from validation import validate_files

    contract = contract_from_dict(_binary())
    frame = pd.read_csv(Path(__file__).parents[2] / "fixtures" / "data" / "churn.csv", dtype=str, keep_default_na=False)
    frame.loc[:2, "contract_type"] = "lifetime"
    frame.loc[:2, "email"] = ""  # a direct identifier that is not nullable: its values are never shown
    path = tmp_path / "batch.csv"
    frame.to_csv(path, index=False)
    result = validate_files([path], contract)
    failures = {f.column: f.to_dict() for f in result.failures}
    allowed = failures["contract_type"]
    assert allowed["example_values"] == ["lifetime"] * 3
    assert "add them to the column's allowed list" in allowed["hint"]
    email = failures["email"]
    assert "example_values" not in email and '"nullable": true' in email["hint"]
    summary = result.summary()
    assert "Hint:" in summary and "@" not in summary  # no identifier value in the one-line summary
