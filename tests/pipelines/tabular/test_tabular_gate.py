"""The quality gate refuses degenerate models and batches, each with its reason; bootstrap and champion verdicts.

Degenerate models are made by replacing the trained model's scores inside ``evaluate`` (the rest of the step
runs as in the pipeline); degenerate batches by editing the curated training split before ``train``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import evaluate
import numpy as np
import pandas as pd
import pytest
import train
from contract import load_contract
from tabular_helpers import CONTRACTS, GATE_METRIC, TRAIN_HPS, PipelineRun


def _evaluate(run: PipelineRun, out: Path, *extra: str) -> dict[str, Any]:
    objective = json.loads(run.contract_path.read_text())["objective"]
    code = evaluate.main(
        [
            "--model-dir", str(run.model), "--test-dir", str(run.processed / "test"),
            "--baseline-dir", str(run.processed / "baseline"), "--contract", str(run.contract_path),
            "--output-dir", str(out), "--gate-metric", GATE_METRIC[objective], *extra,
        ]
    )  # fmt: skip
    assert code == 0
    return json.loads((out / "evaluation.json").read_text())


def _with_scores(monkeypatch: pytest.MonkeyPatch, make: Any) -> None:
    real = evaluate.predict_scores
    monkeypatch.setattr(evaluate, "predict_scores", lambda frame, model: make(real(frame, model)))


def _failed(report: dict[str, Any]) -> dict[str, str]:
    return {c["check"]: c["reason"] for c in report["gate"]["checks"] if not c["passed"]}


def test_a_good_model_passes_every_check(chains: dict[str, PipelineRun]) -> None:
    for name in ("churn", "diagnostics", "diabetes", "wine"):
        gate = chains[name].report["gate"]
        assert gate["passed"] == 1, (name, gate["summary"])
        assert all(c["passed"] for c in gate["checks"])


def test_a_constant_predictor_is_refused(
    chains: dict[str, PipelineRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_scores(monkeypatch, lambda s: np.full_like(s, 0.3))
    report = _evaluate(chains["churn"], tmp_path / "out", "--gate-threshold", "0.4")
    assert report["gate"]["passed"] == 0
    failed = _failed(report)
    assert set(failed) == {"beats_trivial", "second_metric"}  # AUC 0.5 meets the (low) threshold, nothing else
    assert "does not beat" in failed["beats_trivial"] and "0.5" in failed["beats_trivial"]
    assert "balanced accuracy 0.5" in failed["second_metric"]
    assert report["trivial_baseline"]["metrics"]["auc"] == 0.5


def test_an_all_majority_model_with_a_good_auc_is_refused(
    chains: dict[str, PipelineRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: the ranking is good (AUC well above the gate) but every row is predicted 'no'."""
    # same order (same AUC), every score below the model's decision threshold (chosen on validation)
    cut = json.loads((chains["churn"].model / "metadata.json").read_text())["decision_threshold"]["value"]
    _with_scores(monkeypatch, lambda s: s * cut * 0.99)
    report = _evaluate(chains["churn"], tmp_path / "out", "--gate-threshold", "0.6")
    metrics = report["binary_classification_metrics"]
    assert metrics["auc"]["value"] > 0.75
    assert metrics["accuracy"]["value"] == pytest.approx(report["trivial_baseline"]["metrics"]["accuracy"])
    assert report["gate"]["passed"] == 0
    failed = _failed(report)
    assert set(failed) == {"second_metric"}
    assert "balanced accuracy 0.5 vs the trivial model's 0.5" in failed["second_metric"]
    assert "predict one value for all" in report["gate"]["summary"]


def test_a_constant_regression_is_refused(
    chains: dict[str, PipelineRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = chains["diabetes"]
    mean = json.loads((run.model / "metadata.json").read_text())["target_summary"]["mean"]
    _with_scores(monkeypatch, lambda s: np.full_like(s, mean))
    report = _evaluate(run, tmp_path / "out")
    assert report["gate"]["passed"] == 0
    failed = _failed(report)
    assert set(failed) == {"beats_trivial", "second_metric"}
    assert failed["second_metric"].startswith("r2 ")
    assert report["trivial_baseline"]["metrics"]["rmse"] == pytest.approx(report["regression_metrics"]["rmse"]["value"])


def test_a_constant_multiclass_model_is_refused(
    chains: dict[str, PipelineRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_scores(monkeypatch, lambda s: np.tile(np.array([0.2, 0.5, 0.3]), (len(s), 1)))
    report = _evaluate(chains["wine"], tmp_path / "out")
    assert report["gate"]["passed"] == 0
    assert {"beats_trivial", "second_metric"} <= set(_failed(report))


# --- sanity checks before training ------------------------------------------------------------------


def _train_on(run: PipelineRun, tmp_path: Path, edit: Any, contract: Path | None = None) -> int:
    split = tmp_path / "train"
    split.mkdir()
    frame = pd.concat([pd.read_parquet(p) for p in sorted((run.processed / "train").rglob("*.parquet"))])
    edit(frame).to_parquet(split / "part-0.parquet", index=False)
    contract_dir = tmp_path / "contract"
    contract_dir.mkdir()
    shutil.copyfile(contract or run.contract_path, contract_dir / "contract.json")
    args = ["--train", str(split), "--validation", str(run.processed / "validation"), "--contract", str(contract_dir)]
    return train.main([*args, "--model-dir", str(tmp_path / "model"), *TRAIN_HPS])


def test_a_one_class_training_split_fails_with_its_reason(
    chains: dict[str, PipelineRun], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train_on(chains["wine"], tmp_path, lambda f: f[f["cultivar"] == "class_0"]) == 2
    err = capsys.readouterr().err
    assert "training sanity checks failed" in err and "1 class(es) of target 'cultivar'" in err
    assert "class_0: " in err and "needs at least two" in err
    assert not (tmp_path / "model" / "xgboost-model.json").exists()


def test_a_class_below_the_minimum_count_fails(chains: dict[str, PipelineRun]) -> None:
    contract = load_contract(CONTRACTS / "wine.json")
    frame = pd.concat([pd.read_parquet(p) for p in sorted((chains["wine"].processed / "train").rglob("*.parquet"))])
    few = pd.concat([frame[frame["cultivar"] != "class_2"], frame[frame["cultivar"] == "class_2"].head(3)])
    with pytest.raises(train.SanityCheckError, match=r"class_2 \(3\).*min_class_count=5"):
        train.sanity_checks(few, contract)
    train.sanity_checks(few, dataclasses.replace(contract, min_class_count=3))  # the contract may allow it


def test_a_regression_target_without_variance_fails(
    chains: dict[str, PipelineRun], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train_on(chains["diabetes"], tmp_path, lambda f: f.assign(disease_progression=140.0)) == 2
    err = capsys.readouterr().err
    assert "'disease_progression' has no variance in the training split (every value is 140)" in err


def test_an_all_empty_nullable_feature_warns_or_fails_per_contract(
    chains: dict[str, PipelineRun], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = chains["churn"]

    def empty(f: pd.DataFrame) -> pd.DataFrame:
        return f.assign(satisfaction_score=np.nan)

    (tmp_path / "warn").mkdir()
    assert _train_on(run, tmp_path / "warn", empty) == 0
    (warning,) = json.loads((tmp_path / "warn" / "model" / "metadata.json").read_text())["warnings"]
    assert "feature 'satisfaction_score' is entirely missing in the training split" in warning
    strict = tmp_path / "contract.json"
    strict.write_text(json.dumps({**json.loads(run.contract_path.read_text()), "empty_feature": "fail"}))
    (tmp_path / "fail").mkdir()
    assert _train_on(run, tmp_path / "fail", empty, contract=strict) == 2
    assert "empty_feature: fail" in capsys.readouterr().err


# --- bootstrap intervals and champion verdicts -------------------------------------------------------


def test_bootstrap_intervals_are_reproducible_with_a_seed() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    scores = np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1)
    a = evaluate.bootstrap_intervals("binary", y, scores, 2, 200, seed=7)
    b = evaluate.bootstrap_intervals("binary", y, scores, 2, 200, seed=7)
    c = evaluate.bootstrap_intervals("binary", y, scores, 2, 200, seed=8)
    assert a == b and a != c
    assert set(a) == {*evaluate.METRICS["binary"], "balanced_accuracy"}
    assert all(i["low"] < i["high"] and i["resamples"] == 200 for i in a.values())


def test_bootstrap_intervals_cover_a_known_value() -> None:
    """Prediction error N(0, 1): the MAE is sqrt(2/pi); 95% intervals on 200 rows should cover it ~95%."""
    truth = float(np.sqrt(2 / np.pi))
    rng = np.random.default_rng(123)
    covered = 0
    trials = 40
    for t in range(trials):
        y = rng.normal(10, 3, 200)
        scores = y + rng.normal(0, 1, 200)
        interval = evaluate.bootstrap_intervals("regression", y, scores, 0, 150, seed=t)["mae"]
        covered += interval["low"] <= truth <= interval["high"]
    assert covered >= 0.85 * trials  # 95% nominal; binomial(40, .95) is below 34 with probability < 1%


def test_a_tie_is_reported_as_a_tie_and_noise_as_noise(chains: dict[str, PipelineRun], tmp_path: Path) -> None:
    run = chains["churn"]
    value = run.report["gate"]["value"]
    tie = _evaluate(run, tmp_path / "tie", "--champion-metric", repr(value))
    assert tie["champion"]["verdict"] == "tie" and tie["champion"]["challenger_not_worse"] == 1
    assert tie["gate"]["passed"] == 1
    interval = run.report["intervals"]["metrics"]["auc"]
    near = value + (interval["high"] - value) / 4  # a champion slightly better, well inside the interval
    noisy = _evaluate(run, tmp_path / "noise", "--champion-metric", repr(near))
    assert noisy["champion"]["verdict"] == "worse, within noise"
    assert noisy["champion"]["challenger_not_worse"] == 0 and noisy["gate"]["passed"] == 0
    assert f"by {near - value:.4g}" in _failed(noisy)["champion"]
    far = _evaluate(run, tmp_path / "far", "--champion-metric", repr(interval["high"] + 0.05))
    assert far["champion"]["verdict"] == "worse"


def test_the_champion_model_on_the_same_rows_gives_a_paired_verdict(
    chains: dict[str, PipelineRun], tmp_path: Path
) -> None:
    run = chains["churn"]
    same = _evaluate(run, tmp_path / "same", "--champion-model-dir", str(run.model))
    champion = same["champion"]
    assert champion["verdict"] == "tie" and champion["paired"]["identical_predictions"] is True
    assert champion["paired"]["low"] == champion["paired"]["high"] == 0.0
    assert set(champion["metrics"]) == {*evaluate.METRICS["binary"], "balanced_accuracy"}
    y = np.array([0, 1] * 100)
    good = np.where(y == 1, 0.8, 0.2) + np.linspace(-0.1, 0.1, 200)
    paired = evaluate.paired_bootstrap("binary", y, good, np.full(200, 0.5), 2, "auc", 200, seed=1)
    assert paired["difference"] == pytest.approx(0.5) and paired["low"] > 0 and paired["share_worse"] == 0.0


def _binary_report(value: float, margin: float) -> dict[str, Any]:
    values = {"auc": value, "accuracy": value, "f1": value, "log_loss": 0.6, "precision": value, "recall": value}
    trivial = {"auc": 0.5, "accuracy": 0.5, "balanced_accuracy": 0.5, "log_loss": 0.69}
    return evaluate.evaluation_report(
        "binary", values, "auc", None, 200, trivial=trivial, threshold=0.5, margin=margin, second_value=value
    )


def test_the_lead_over_the_trivial_model_must_reach_the_margin() -> None:
    """A model a hair better than the trivial one (0.53 vs 0.50) is refused under a 0.05 margin on both the
    gate metric and the second metric; 0.60 passes. The margin the report names is the one applied."""
    hair = _binary_report(0.53, margin=0.05)
    assert hair["gate"]["margin"] == 0.05 and hair["gate"]["passed"] == 0
    assert set(_failed(hair)) == {"beats_trivial", "second_metric"}
    assert "needs >= 0.55" in _failed(hair)["beats_trivial"]
    assert _binary_report(0.60, margin=0.05)["gate"]["passed"] == 1


def test_the_fairness_gate_fails_on_a_gap_above_the_allowed_one() -> None:
    """Constructed groups (selection rates 0.6 vs 0.3: ratio 0.5): a 0.2 allowed gap fails, 0.6 passes."""
    from contract import contract_from_dict
    from test_tabular_fairness import _binary_case, _protected_contract

    y, scores, groups = _binary_case()
    test = pd.DataFrame({"sex": groups.map({"a": "f", "b": "m"})})
    contract = contract_from_dict(_protected_contract())
    for allowed, passes in ((0.2, False), (0.6, True)):
        report = _binary_report(0.9, margin=0.01)
        evaluate.add_fairness(report, "binary", y, scores, test, contract, 0.5, allowed)
        check = next(c for c in report["gate"]["checks"] if c["check"] == "fairness")
        assert check["passed"] is passes and report["gate"]["passed"] == int(passes), check
        assert (
            "'sex'" in check["reason"] and report["fairness"]["columns"]["sex"]["gaps"]["selection_rate_ratio"] == 0.5
        )
