"""flywheel.report: one self-contained HTML file per run, everything from data escaped.

The evaluation and the data-contract result are produced by the step code itself (evaluate.py's
``evaluation_report``, preprocess.py on a bad batch), so the report follows their real shapes.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from flywheel.report import RunReport, gate_decision, render_report, write_report
from tests.html_card import Card as _Card

REPO = Path(__file__).resolve().parents[2]
STEP_DIR = REPO / "pipelines" / "tabular"
if str(STEP_DIR) not in sys.path:
    sys.path.insert(0, str(STEP_DIR))

import evaluate  # noqa: E402 - step modules import their siblings by plain name
import preprocess  # noqa: E402

EVIL = '<script>alert("x")</script>'


def _png(width: int = 2, height: int = 2) -> bytes:
    """A valid, tiny grey PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.fixture
def evaluation_dir(tmp_path: Path) -> Path:
    values = {"auc": 0.8712, "accuracy": 0.81, "f1": 0.55, "log_loss": 0.41, "precision": 0.6, "recall": 0.5,
              "pr_auc": 0.62}  # fmt: skip
    # The real shape: with the trivial model's figures, the second metric and the bootstrap intervals.
    trivial = {"auc": 0.5, "accuracy": 0.7, "f1": 0.0, "log_loss": 0.61, "precision": 0.0, "recall": 0.0,
               "pr_auc": 0.3, "balanced_accuracy": 0.5}  # fmt: skip
    intervals = {k: {"low": v - 0.03, "high": v + 0.03, "std": 0.015, "resamples": 300} for k, v in values.items()}
    report = evaluate.evaluation_report(
        "binary", values, "auc", 0.85, test_rows=450, intervals=intervals, trivial=trivial,
        trivial_description="always 'no'", threshold=0.75, second_value=0.68,
    )  # fmt: skip
    report["plots"] = ["roc.png", "confusion_matrix.png"]
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "roc.png").write_bytes(_png())
    (tmp_path / "plots" / "confusion_matrix.png").write_bytes(_png(3, 3))
    (tmp_path / "evaluation.json").write_text(json.dumps(report))
    return tmp_path


def _run(**overrides: Any) -> RunReport:
    run: dict[str, Any] = {
        "team": "churn",
        "objective": "binary",
        "pipeline": "tabular",
        "execution_id": "arn:aws:sagemaker:eu-west-1:000000000000:pipeline/churn-tabular/execution/abc123",
        "status": "Succeeded",
        "started_at": "2026-01-01T10:00:00Z",
        "finished_at": "2026-01-01T10:01:10Z",
        "steps": [
            {"name": "Preprocess", "type": "Processing", "status": "Succeeded", "duration_s": 3.2},
            {"name": "Train", "type": "Training", "status": "Succeeded", "duration_s": 41.5},
            {"name": "Evaluate", "type": "Processing", "status": "Succeeded", "duration_s": 7.0},
            {"name": "CheckGate", "type": "Condition", "status": "Succeeded", "duration_s": 0.01, "message": "true"},
            {"name": "Register", "type": "RegisterModel", "status": "Succeeded", "duration_s": 0.3},
        ],
        "gate_threshold": 0.75,
        "lineage": {
            "data_uri": "s3://raw-bucket/churn/batch-0001.csv",
            "model_data_uri": "s3://models/churn/abc123/model.tar.gz",
            "model_package_arn": "arn:aws:sagemaker:eu-west-1:000000000000:model-package/churn/3",
            "model_package_version": 3,
            "approval_status": "Approved",
            "endpoint_name": "churn-staging",
            "endpoint_url": "http://127.0.0.1:8080",
        },
        "serving": {"p50_ms": 2.31, "p99_ms": 6.8, "rows_per_s": 51234.0, "requests": 2000},
        "contract": {"passed": True, "summary": "validated 3000 rows from 1 file(s)", "rows": 3000},
        "artifacts": {"evaluation": "s3://reports/churn/abc123/evaluation.json", "report": "/tmp/report.html"},
    }
    run.update(overrides)
    return run  # type: ignore[return-value]


def _text(document: str) -> str:
    """Visible text, roughly: tags removed (for phrase assertions that do not care about markup)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", document))


def test_report_has_metrics_gate_champion_plots_lineage_and_serving(evaluation_dir: Path, tmp_path: Path) -> None:
    path = write_report(tmp_path / "out" / "report.html", run=_run(evaluation_dir=evaluation_dir))
    document = path.read_text(encoding="utf-8")
    text = _text(document)
    # Metrics: every name and value from evaluation.json.
    for name, value in [("auc", "0.8712"), ("accuracy", "0.8100"), ("log_loss", "0.4100"), ("pr_auc", "0.6200")]:
        assert re.search(rf"{name}( gate)? {re.escape(value)}", text), name
    assert "450 held-out test rows" in text
    # Gate: metric, value, threshold, decision.
    assert re.search(r"Metric auc Value 0\.8712 Threshold ≥ 0\.75 required Decision passed", text)
    # Champion / challenger: 0.85 vs 0.8712, not worse.
    assert "champion (current production) 0.8500" in text and "challenger (this run) 0.8712" in text
    assert "Challenger not worse than champion: passed" in text
    # Both plots embedded as base64 PNG, decodable.
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', document)
    assert len(images) == 2
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "ROC curve" in text and "Confusion matrix" in text
    # Lineage, steps, serving, contract, artifacts.
    for needle in ["s3://raw-bucket/churn/batch-0001.csv", "model-package/churn/3", "Approved", "churn-staging",
                   "s3://models/churn/abc123/model.tar.gz", "execution/abc123"]:  # fmt: skip
        assert needle in text, needle
    assert "Train Training Succeeded 41.5 s" in text
    assert "latency p50 (ms per request) 2.31" in text and "latency p99 (ms per request) 6.80" in text
    assert "throughput (rows/s) 51,234" in text
    assert "validated 3000 rows" in text
    assert "s3://reports/churn/abc123/evaluation.json" in text


def test_report_is_self_contained(evaluation_dir: Path) -> None:
    document = render_report(_run(evaluation_dir=evaluation_dir))
    assert "<script" not in document.lower()
    assert not re.search(r'(src|href)="(?!data:)', document)  # nothing fetched from anywhere
    assert "@import" not in document and "url(" not in document
    assert document.startswith("<!DOCTYPE html>")


def test_everything_from_data_is_escaped(evaluation_dir: Path) -> None:
    evaluation = json.loads((evaluation_dir / "evaluation.json").read_text())
    evaluation["binary_classification_metrics"][EVIL] = {"value": 1.0, "standard_deviation": "NaN"}
    run = _run(
        team=EVIL,
        title=EVIL,
        evaluation=evaluation,
        plots=[],
        steps=[{"name": EVIL, "status": EVIL, "message": EVIL, "duration_s": 1.0}],
        lineage={"data_uri": EVIL, "approval_status": EVIL},
        artifacts={EVIL: EVIL},
        contract={
            "passed": False,
            "summary": EVIL,
            "failures": [{"check": EVIL, "column": EVIL, "message": EVIL}],
            "quarantined_files": [EVIL],
        },
        extra_sections=[{"title": EVIL, "rows": [(EVIL, EVIL)]}],
    )
    document = render_report(run)
    assert "<script" not in document.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in document


def test_failed_contract_variant_shows_the_quarantine_report(tmp_path: Path) -> None:
    # A real bad batch through preprocess.py: the status it writes is what the CLI passes on.
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    lines = (REPO / "tests" / "fixtures" / "data" / "churn.csv").read_text().splitlines()
    header = lines[0].split(",")
    col = header.index('"tenure_months"')
    bad = [lines[0]] + [",".join(c if j != col or i % 7 else "many" for j, c in enumerate(line.split(",")))
                        for i, line in enumerate(lines[1:])]  # fmt: skip
    (raw / "batch-0002.csv").write_text("\n".join(bad) + "\n")
    key = tmp_path / "pii.key"
    key.write_text("report-test-key-0123456789abcdef")
    args = ["--contract", str(REPO / "config" / "contracts" / "churn.json"), "--input-dir", str(raw)]
    args += ["--output-dir", str(out), "--pii-key-file", str(key), "--resource-config", str(tmp_path / "none")]
    assert preprocess.main(args) == 0
    status = json.loads((out / "status" / "validation.json").read_text())
    assert status["passed"] is False
    run = _run(
        status="Failed",
        contract={**status, "quarantine_uri": "s3://raw-bucket/churn/quarantine/batch-0002/"},
        steps=[
            {"name": "Preprocess", "type": "Processing", "status": "Succeeded", "duration_s": 1.1},
            {"name": "ContractFailed", "type": "Fail", "status": "Failed", "message": status["summary"]},
        ],
        serving={},
        lineage={"data_uri": "s3://raw-bucket/churn/batch-0002.csv"},
    )
    text = _text(render_report(run))
    assert "Data contract Result failed" in text
    assert "tenure_months" in text and "Quarantine report" in text
    assert "batch-0002.csv" in text and "s3://raw-bucket/churn/quarantine/batch-0002/" in text
    assert "Not evaluated in this run." in text
    assert "The model was not served in this run." in text
    assert "Nothing was deleted" in text


def test_gate_decision_rules() -> None:
    assert gate_decision(0.8, 0.75, True) is True
    assert gate_decision(0.7, 0.75, True) is False
    assert gate_decision(0.75, 0.75, True) is True  # at the threshold passes, as in the condition step
    assert gate_decision(30.0, 35.0, False) is True  # rmse: lower is better
    assert gate_decision(None, 0.75, True) is False  # undefined metric never passes
    assert gate_decision(0.9, None, True) is None
    assert gate_decision(0.9, 0.75, True, passed=False) is False  # the recorded outcome wins


def test_failed_gate_and_missing_plot(evaluation_dir: Path) -> None:
    (evaluation_dir / "plots" / "roc.png").unlink()
    text = _text(render_report(_run(evaluation_dir=evaluation_dir, gate_threshold=0.9, status="Failed")))
    assert re.search(r"Threshold ≥ 0\.9 required Decision failed the pipeline stops", text)
    assert "roc.png (not found)" in text


def test_required_keys() -> None:
    with pytest.raises(ValueError, match="execution_id"):
        render_report({"team": "t", "status": "Succeeded"})


def _card(evaluation: dict[str, Any], **overrides: Any) -> _Card:
    parser = _Card()
    parser.feed(render_report(_run(evaluation=evaluation, **overrides)))
    return parser


def _full_evaluation(evaluation_dir: Path, **changes: Any) -> dict[str, Any]:
    report = json.loads((evaluation_dir / "evaluation.json").read_text())
    report["training"] = {
        "hyperparameters": {"num_round": 200, "max_depth": 6, "eta": 0.2},
        "best_iteration": 41, "rounds_trained": 62, "early_stopping_rounds": 20,
        "validation_metric": {"name": "logloss", "value": 0.4123}, "train_rows": 2100, "validation_rows": 450,
        "training_seconds": 1.234567, "target_summary": {"class_counts": {"0": 1480, "1": 620}, "rows": 2100},
        "warnings": ["feature 'satisfaction_score' is entirely missing in the training split (2100 rows)"],
        "class_labels": [0, 1], "positive_label": 1,
    }  # fmt: skip
    report["test_summary"] = {"rows": 450, "class_counts": {"0": 317, "1": 133}}
    report.update(changes)
    return report


def test_the_model_card_answers_should_i_approve(evaluation_dir: Path) -> None:
    card = _card(_full_evaluation(evaluation_dir), started_at="2026-01-01T10:00:00.123456+00:00")
    assert {"summary", "evaluation", "decide", "lineage"} <= set(card.sections)
    assert card.rows("summary")["Started"] == ["2026-01-01 10:00:00 UTC"]  # no microseconds
    ev = card.rows("evaluation")
    assert ev["Rows per split"] == ["train 2,100, validation 450, test 450"]
    assert ev["Class balance (train)"] == ["0: 1,480 (70.5%), 1: 620 (29.5%)"]
    assert ev["Base rate"] == ["29.5% of training rows are 1"]
    assert ev["Hyperparameters"] == ["num_round=200, max_depth=6, eta=0.2"]
    assert ev["Best iteration"][0].startswith("41 of 62 rounds trained (early stopping after 20")
    assert ev["Training time"] == ["1.23 s"]
    assert "entirely missing" in ev["Warnings"][0]
    # metric, value, 95% interval, std. dev., trivial model, champion
    assert ev["auc gate"] == ["0.8712", "0.8412 to 0.9012", "0.0150", "0.5000", "0.8500"]
    assert ev["balanced_accuracy"][0] == "0.6800" and ev["balanced_accuracy"][3] == "0.5000"
    assert ev["beats_trivial"][0] == "passed" and "vs the trivial model's 0.5" in ev["beats_trivial"][1]
    assert ev["champion"][0] == "passed" and ev["champion"][1].endswith("better, within noise (by 0.0212)")
    assert ev["Decision"][0].startswith("passed")
    assert "Verdict: better" in card.text("evaluation") and "Trivial model: always 'no'." in card.text("evaluation")
    # already approved (the demo approves before writing the card): says so and how to undo it
    assert card.rows("decide") == {}
    assert "Version 3 is already Approved" in card.text("decide")
    assert 'flywheel reject churn:3 --note "<why>"' in card.text("decide")
    assert "The quality gate passed" in card.text("decide") and "entirely missing" in card.text("decide")
    pending = _card(
        _full_evaluation(evaluation_dir),
        lineage={"model_package_version": 3, "approval_status": "PendingManualApproval"},
    )
    assert pending.rows("decide") == {
        "Approve (deploys it)": ["flywheel approve churn:3"],
        "Reject": ['flywheel reject churn:3 --note "<why>"'],
    }


def test_the_model_card_names_each_failed_check(evaluation_dir: Path) -> None:
    values = {"auc": 0.8712, "accuracy": 0.70, "f1": 0.0, "log_loss": 0.45, "precision": 0.0, "recall": 0.0,
              "pr_auc": 0.62}  # fmt: skip
    trivial = {**values, "auc": 0.5, "balanced_accuracy": 0.5}
    degenerate = evaluate.evaluation_report(
        "binary", values, "auc", None, test_rows=450, trivial=trivial, threshold=0.6, second_value=0.5
    )
    card = _card(_full_evaluation(evaluation_dir, **degenerate), status="Failed", lineage={})
    ev = card.rows("evaluation")
    assert ev["Decision"][0].startswith("failed the pipeline stops")
    assert ev["second_metric"][0] == "failed"
    assert ev["second_metric"][1].startswith("balanced accuracy 0.5 vs the trivial model's 0.5: needs > 0.51")
    assert ev["threshold"][0] == ev["beats_trivial"][0] == "passed"
    # nothing registered: no command to copy, and the failed reason in words at the top
    assert "Approve (deploys it)" not in card.rows("decide")
    assert "nothing to approve" in card.text("decide")
    assert "The quality gate failed: balanced accuracy 0.5 vs the trivial model's 0.5" in card.text("decide")


def test_the_model_card_shows_per_group_metrics_and_gaps(evaluation_dir: Path) -> None:
    import numpy as np
    import pandas as pd
    from fairness import group_metrics

    y = np.array([1] * 50 + [0] * 50 + [1] * 50 + [0] * 50)
    scores = np.array([1] * 60 + [0] * 40 + [1] * 25 + [0] * 25 + [1] * 5 + [0] * 45) * 0.8 + 0.1
    result = group_metrics("binary", y, scores, pd.Series(["a"] * 100 + ["b"] * 100))
    fairness = {"columns": {"sex": result}, "used_as_features": False}
    card = _card(_full_evaluation(evaluation_dir, fairness=fairness))
    ev = card.rows("evaluation")
    assert ev["a"][:5] == ["100", "0.500", "0.600", "1.000", "0.200"]  # rows, base rate, selection, TPR, FPR
    assert ev["b"][:5] == ["100", "0.500", "0.300", "0.500", "0.100"]
    assert ev["selection rate ratio"] == ["0.500"] and ev["tpr difference"] == ["0.500"]
    assert "not model features" in card.text("evaluation")
    plain = _card(_full_evaluation(evaluation_dir))
    assert "No protected column in the data contract" in plain.text("evaluation")


def test_condition_steps_read_in_words_with_rounded_numbers() -> None:
    from flywheel.report import condition_words

    recorded = {
        "Outcome": "False",
        "Evaluations": [
            "0.8544583445825821 GreaterThanOrEqualTo 0.7 -> True",
            "0 Equals 1 -> False",
            "True Equals True -> True",
            "something else entirely",
        ],
    }
    assert condition_words(recorded) == "0.8545 ≥ 0.7: yes; 0 = 1: no; passed; something else entirely"
    assert condition_words(None) == ""


def _lineage_card(lineage: dict[str, Any]) -> _Card:
    return _Card.parse(render_report(_run(lineage=lineage)))


def test_lineage_is_right_for_every_case() -> None:
    package = {"model_package_arn": "arn:aws:sagemaker:eu-west-1:1:model-package/g/1", "model_package_version": 1}
    first = _lineage_card({**package, "group_versions": [{"version": 1, "approval": "Pending", "deployed": False}]})
    assert "the first version of its model package group" in first.text("lineage")
    assert first.headings["lineage"] == ["Data", "Pipeline execution", "Model package"]  # no empty endpoint box
    assert "Not served in this run" in first.text("lineage")
    # version 3 after two pending versions is not "the first model", and says what came before
    earlier = [{"version": v, "approval": "PendingManualApproval", "deployed": False} for v in (1, 2)]
    third = _lineage_card({**package, "model_package_version": 3, "group_versions": earlier})
    assert "2 earlier version(s): 2 PendingManualApproval" in third.text("lineage")
    assert "first version" not in third.text("lineage")
    served = _lineage_card({**package, "endpoint_name": "flywheel-local-churn", "endpoint_url": "http://x"})
    assert served.headings["lineage"][-1] == "Endpoint"
    nothing = _lineage_card({})
    assert nothing.headings["lineage"] == ["Data", "Pipeline execution"]
    assert "No model package registered by this run" in nothing.text("lineage")
    html = render_report(_run(lineage={}))
    lineage_html = html[html.index('id="lineage"') :]
    lineage_html = lineage_html[: lineage_html.index("</section>")]
    assert lineage_html.count('class="arrow"') == 1  # one arrow between the two boxes there are
