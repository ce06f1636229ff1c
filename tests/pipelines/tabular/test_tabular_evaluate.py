"""evaluate.py: metrics per objective, gate, champion, plots, merged baseline, the full chain."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import evaluate
import numpy as np
import pytest
from tabular_helpers import PipelineRun, tree_hashes

SECTIONS = {
    "churn": ("binary_classification_metrics", {"auc", "accuracy", "f1", "log_loss", "precision", "recall", "pr_auc"}),
    "diagnostics": (
        "binary_classification_metrics",
        {"auc", "accuracy", "f1", "log_loss", "precision", "recall", "pr_auc"},
    ),
    "diabetes": ("regression_metrics", {"rmse", "mae", "r2"}),
    "wine": ("multiclass_classification_metrics", {"accuracy", "macro_f1", "log_loss"}),
}
PLOTS = {
    "churn": {"roc.png", "pr.png", "calibration.png", "confusion_matrix.png", "feature_importance.png"},
    "diagnostics": {"roc.png", "pr.png", "calibration.png", "confusion_matrix.png", "feature_importance.png"},
    "diabetes": {"residuals.png", "feature_importance.png"},
    "wine": {"calibration.png", "confusion_matrix.png", "feature_importance.png"},
}
#: Quality floors: the chain learns the signal (not just runs). Observed values are well above.
FLOORS = {"churn": ("auc", 0.75), "diagnostics": ("auc", 0.95), "diabetes": ("r2", 0.2), "wine": ("accuracy", 0.85)}


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_evaluation_report_shape_and_quality(chains: dict[str, PipelineRun], name: str) -> None:
    run = chains[name]
    report = run.report
    section, names = SECTIONS[name]
    assert set(report[section]) == names
    intervals = report["intervals"]["metrics"]
    for metric, entry in report[section].items():
        # the standard deviation is the bootstrap one (was always "NaN" before the bootstrap)
        assert isinstance(entry["value"], float) and entry["standard_deviation"] == intervals[metric]["std"] > 0
        assert intervals[metric]["low"] <= entry["value"] <= intervals[metric]["high"]
    metric, floor = FLOORS[name]
    assert report[section][metric]["value"] > floor
    gate = report["gate"]
    assert gate["value"] == report[section][gate["metric"]]["value"]
    assert gate["higher_is_better"] is (gate["metric"] != "rmse")
    assert report["champion"] == {
        "metric_value": None, "challenger_not_worse": 1, "verdict": "none", "difference": None, "display": "none"
    }  # fmt: skip
    assert gate["passed"] == 1 and gate["summary"] == "every check passed"  # a good model passes every check
    assert {c["check"] for c in gate["checks"]} == {"beats_trivial", "second_metric", "champion"}
    assert {p.name for p in (run.evaluation / "plots").iterdir()} == PLOTS[name]
    for png in (run.evaluation / "plots").iterdir():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert tree_hashes(run.raw) == run.raw_hashes  # no step touches the raw input
    _check_threshold_classes_calibration(report, name)


def _check_threshold_classes_calibration(report: dict, name: str) -> None:
    objective = {"churn": "binary", "diagnostics": "binary", "diabetes": "regression", "wine": "multiclass"}[name]
    if objective == "binary":
        chosen = report["decision_threshold"]
        # chosen on the validation split, by the contract's rule, and said so
        assert 0 < chosen["value"] < 1 and chosen["rule"] == "max_f1" and "validation split" in chosen["method"]
        assert chosen["validation"]["validation_score"] >= chosen["validation"]["validation_score_at_0_5"]
        assert chosen["positive_label"] == 1
    else:
        assert "decision_threshold" not in report
    if objective == "regression":
        assert report["calibration"] is None and "per_class" not in report
        return
    per_class = report["per_class"]
    assert [c["label"] for c in per_class] == report["training"]["class_labels"]
    counts = report["test_summary"]["class_counts"]
    assert [c["support"] for c in per_class] == [counts[str(c["label"])] for c in per_class]
    assert sum(c["predicted"] for c in per_class) == report["test_rows"]
    matrix = report["confusion_matrix"]["rows_actual_columns_predicted"]
    assert [sum(row) for row in matrix] == [c["support"] for c in per_class]
    cal = report["calibration"]
    assert sum(b["rows"] for b in cal["bins"]) == report["test_rows"]
    assert 0 <= cal["ece"] < 0.25 and 0 <= cal["brier"] < 0.5


@pytest.mark.parametrize("name", ["churn", "diabetes"])
def test_gate_below_and_above_threshold(chains: dict[str, PipelineRun], name: str) -> None:
    gate = chains[name].report["gate"]
    value, higher = gate["value"], gate["higher_is_better"]
    easier, harder = (value - 0.01, value + 0.01) if higher else (value + 0.01, value - 0.01)
    assert evaluate.passes_gate(value, easier, higher) is True
    assert evaluate.passes_gate(value, harder, higher) is False
    assert evaluate.passes_gate(value, value, higher) is True  # the threshold itself passes
    assert evaluate.passes_gate(None, easier, higher) is False


def _rerun(run: PipelineRun, out: Path, gate_metric: str, champion: str, model_dir: Path | None = None) -> int:
    return evaluate.main(
        [
            "--model-dir", str(model_dir or run.model), "--test-dir", str(run.processed / "test"),
            "--baseline-dir", str(run.processed / "baseline"), "--contract", str(run.contract_path),
            "--output-dir", str(out), "--gate-metric", gate_metric, "--champion-metric", champion,
        ]
    )  # fmt: skip


@pytest.mark.parametrize(("name", "metric"), [("churn", "auc"), ("diabetes", "rmse")])
def test_champion_comparison(chains: dict[str, PipelineRun], tmp_path: Path, name: str, metric: str) -> None:
    run = chains[name]
    value = run.report["gate"]["value"]
    better, worse = (value + 0.05, value - 0.05) if metric == "auc" else (value - 5.0, value + 5.0)
    outcomes = {}
    for label, champion in (("better", better), ("worse", worse), ("equal", value)):
        out = tmp_path / label
        assert _rerun(run, out, metric, repr(champion)) == 0
        report = json.loads((out / "evaluation.json").read_text())
        assert report["champion"]["metric_value"] == champion
        outcomes[label] = report["champion"]["challenger_not_worse"]
    assert outcomes == {"better": 0, "worse": 1, "equal": 1}


def test_model_tar_gz_as_sagemaker_writes_it(chains: dict[str, PipelineRun], tmp_path: Path) -> None:
    run = chains["wine"]
    packed = tmp_path / "model"
    packed.mkdir()
    with tarfile.open(packed / "model.tar.gz", "w:gz") as tar:
        for path in sorted(run.model.rglob("*")):
            tar.add(path, arcname=path.relative_to(run.model).as_posix(), recursive=False)
    assert _rerun(run, tmp_path / "out", "accuracy", "none", model_dir=packed) == 0
    report = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert report["multiclass_classification_metrics"] == run.report["multiclass_classification_metrics"]
    assert report["gate"]["metric"] == "accuracy"


def test_unknown_gate_metric_is_a_clear_error(chains: dict[str, PipelineRun], tmp_path: Path, capsys) -> None:
    assert _rerun(chains["diabetes"], tmp_path / "out", "auc", "") == 2
    err = capsys.readouterr().err
    assert "'auc'" in err and "regression" in err and "rmse" in err
    assert not (tmp_path / "out" / "evaluation.json").exists()
    with pytest.raises(ValueError, match="macro_f1"):
        evaluate.check_gate_metric("multiclass", "f1")


@pytest.mark.parametrize(("text", "value"), [("", None), ("none", None), ("None", None), (" 0.81 ", 0.81)])
def test_parse_champion(text: str, value: float | None) -> None:
    assert evaluate.parse_champion(text) == value


@pytest.mark.parametrize("text", ["abc", "nan"])
def test_parse_champion_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="champion"):
        evaluate.parse_champion(text)


def test_compute_metrics_match_hand_computed_values() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    m = evaluate.compute_metrics("binary", y, p, 2)
    assert m["auc"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    one_class = evaluate.compute_metrics("binary", np.array([1, 1]), np.array([0.7, 0.8]), 2)
    assert one_class["auc"] is None  # undefined, reported as null, never NaN in JSON
    reg = evaluate.compute_metrics("regression", np.array([1.0, 3.0]), np.array([2.0, 3.0]), 0)
    assert reg["rmse"] == pytest.approx(np.sqrt(0.5)) and reg["mae"] == pytest.approx(0.5)
    assert evaluate.not_worse(None, 0.5, True) == 0
    assert evaluate.not_worse(0.4, None, True) == 1


def test_merged_baseline_files(chains: dict[str, PipelineRun]) -> None:
    base = chains["churn"].evaluation / "baseline"
    stats = json.loads((base / "statistics.json").read_text())
    cons = json.loads((base / "constraints.json").read_text())
    meta = json.loads((chains["churn"].model / "metadata.json").read_text())
    names = [f["name"] for f in stats["features"]]
    assert names == [*meta["feature_names"], "churned"]
    assert stats["dataset"]["item_count"] == meta["train_rows"]
    by_name = {f["name"]: f for f in stats["features"]}
    tenure = by_name["tenure_months"]["numerical_statistics"]
    assert tenure["common"]["num_present"] == meta["train_rows"]
    assert 0 <= tenure["min"] <= tenure["mean"] <= tenure["max"] <= 120
    assert sum(b["count"] for b in tenure["distribution"]["kll"]["buckets"]) == pytest.approx(meta["train_rows"])
    contract = by_name["contract_type"]["string_statistics"]
    assert {b["value"] for b in contract["distribution"]["categorical"]["buckets"]} == {
        "month_to_month", "one_year", "two_year"
    }  # fmt: skip
    cons_by_name = {c["name"]: c for c in cons["features"]}
    assert cons_by_name["contract_type"]["string_constraints"]["closed_domain"] is True
    assert cons_by_name["monthly_charges"]["num_constraints"]["max"] == 500.0  # from the contract
    assert cons_by_name["satisfaction_score"]["completeness"] < 1.0  # nullable: observed share
    assert cons_by_name["tenure_months"]["completeness"] == 1.0


def test_an_empty_test_split_is_refused_with_its_reason() -> None:
    for problem, scores in (("binary", np.array([])), ("multiclass", np.empty((0, 3))), ("regression", np.array([]))):
        with pytest.raises(ValueError, match="the test split has no rows"):
            evaluate.compute_metrics(problem, np.array([]), scores, 3)
    assert evaluate.second_metric("binary", np.array([]), np.array([]), 2) is None


def test_undefined_gate_metric_fails_the_gate_instead_of_breaking_it() -> None:
    """AUC is undefined on a one-class test split: gate.value must still be a number that fails."""
    values = evaluate.compute_metrics("binary", np.array([1, 1, 1]), np.array([0.9, 0.8, 0.7]), 2)
    assert values["auc"] is None
    report = evaluate.evaluation_report("binary", values, "auc", champion=None, test_rows=3)
    gate = report["gate"]
    assert gate["defined"] is False and isinstance(gate["value"], float)
    assert evaluate.passes_gate(gate["value"], 0.0, True) is False  # fails even the loosest threshold
    json.dumps(report, allow_nan=False)  # valid JSON for SageMaker's JsonGet
