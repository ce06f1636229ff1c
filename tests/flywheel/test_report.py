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
    report = evaluate.evaluation_report("binary", values, "auc", 0.85, test_rows=450)
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
    assert re.search(r"Metric auc Value 0\.8712 Threshold 0\.7500 \(≥ required\) Decision passed", text)
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
    assert re.search(r"Threshold 0\.9000 \(≥ required\) Decision failed the pipeline stops", text)
    assert "roc.png (not found)" in text


def test_required_keys() -> None:
    with pytest.raises(ValueError, match="execution_id"):
        render_report({"team": "t", "status": "Succeeded"})
