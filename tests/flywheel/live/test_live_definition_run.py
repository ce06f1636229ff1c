"""``flywheel run --definition``: any pipeline definition JSON, run on the embedded AWS with progress and a report."""

from __future__ import annotations

import json
from pathlib import Path

from runtime_helpers import definition, processing_step
from test_live_executions import _gated_definition
from typer.testing import CliRunner

from flywheel.cli import app
from tests.html_card import Card


def _out(result: object) -> str:
    return " ".join(str(getattr(result, "output", "")).split())


def test_a_definition_runs_with_progress_and_a_report_that_says_what_it_lacks(stub_bucket: str, tmp_path: Path) -> None:
    path = tmp_path / "my_pipeline.json"
    path.write_text(_gated_definition())
    state = tmp_path / "state"
    result = CliRunner().invoke(app, ["run", "--definition", str(path), "--state-dir", str(state)])
    output = _out(result)
    assert result.exit_code == 0, output
    assert "✓ Inspect (Processing," in output and "✓ ScoreHighEnough (Condition," in output and "→ True" in output
    assert "Inspect output result: s3://" in output
    (record_file,) = (state / "executions").glob("*.json")
    record = json.loads(record_file.read_text())
    assert record["PipelineName"] == "my-pipeline" and record["PipelineExecutionStatus"] == "Succeeded"
    report = state / "reports" / record["PipelineExecutionId"] / "report.html"
    assert f"Report: {report.resolve()}" in output
    card = Card.parse(report.read_text())
    steps = {row[0]: row[1:] for row in card.sections["steps"]["tables"][0][1:]}
    assert steps["Inspect"][:2] == ["Processing", "Succeeded"]
    assert "0.91 ≥ 0.5: yes" in steps["ScoreHighEnough"][-1]
    assert "not a team's pipeline" in card.text("card")
    assert "a team's contract" in " ".join(" ".join(card.sections[s]["text"]) for s in card.sections)


def test_parameters_are_passed_and_checked(stub_bucket: str, tmp_path: Path) -> None:
    path = tmp_path / "gated.json"
    path.write_text(_gated_definition())
    state = ["--state-dir", str(tmp_path / "state")]
    failed = CliRunner().invoke(app, ["run", "--definition", str(path), "--param", "MinScore=0.99", *state])
    assert failed.exit_code == 1 and "Traceback" not in _out(failed)
    assert "failed: score too low" in _out(failed) and "✗ TooLow (Fail," in _out(failed)
    needs = tmp_path / "needs.json"
    needs.write_text(definition([processing_step("Inspect", "inspect.py")], [{"Name": "InputUri", "Type": "String"}]))
    refused = CliRunner().invoke(app, ["run", "--definition", str(needs), *state])
    assert refused.exit_code == 1
    assert "Error: Parameter 'InputUri' is undefined. (pass parameters as --param NAME=VALUE)" in _out(refused)
    unknown = CliRunner().invoke(app, ["run", "--definition", str(path), "--param", "Nope=1", *state])
    assert unknown.exit_code == 1 and "Unknown parameter 'Nope'" in _out(unknown)


def test_a_file_that_is_no_definition_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text('{"Steps": []}')
    result = CliRunner().invoke(app, ["run", "--definition", str(bad), "--state-dir", str(tmp_path / "s")])
    assert result.exit_code == 1 and "Traceback" not in _out(result)
    assert f"{bad} is not a SageMaker pipeline definition" in _out(result)
    both = CliRunner().invoke(app, ["run", "--definition", str(bad), "--team", "churn", "--rows", "5"])
    assert both.exit_code == 1 and "drop --team" in _out(both)
    neither = CliRunner().invoke(app, ["run", "--rows", "5"])
    assert neither.exit_code == 1 and "--definition pipeline.json" in _out(neither)
