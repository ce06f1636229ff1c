"""Adding a template is one folder, locally too: the minimal fixture template, copied into a temporary
directory and named by a team of a config directory there, is provisioned through the template contract
on the embedded AWS and runs for real (its step code, from the copied folder, writes its output to S3).
Nothing outside ``tmp_path`` is edited."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from typer.testing import CliRunner

from config.loader import CONFIG_DIR, load_config
from flywheel.cli import app
from flywheel.embedded import EmbeddedAws
from flywheel.runtime import LocalRuntime
from flywheel.state import StateStore
from naming import split_s3_uri
from pipelines import discover_templates

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "templates" / "minimal"
PIPELINE = "flywheel-local-counter-minimal"


def _config_with_minimal_team(tmp_path: Path) -> tuple[Path, Path]:
    """``(config dir, templates dir)`` in ``tmp_path``: team ``counter`` runs only the copied ``minimal``."""
    templates = tmp_path / "templates"
    shutil.copytree(FIXTURE, templates / "minimal")
    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR / "contracts", config_dir / "contracts")
    shutil.copy(CONFIG_DIR / "environments.yaml", config_dir / "environments.yaml")
    team = {"name": "counter", "pipelines": ["minimal"], "contract": "contracts/churn.json",
            "metric_gate": {"metric": "auc", "threshold": 0.5}}  # fmt: skip
    (config_dir / "teams.yaml").write_text(yaml.safe_dump({"teams": [team]}), encoding="utf-8")
    return config_dir, templates


def _batch(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "batch.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(rows)), encoding="utf-8")
    return path


def _read(aws: EmbeddedAws, uri: str) -> bytes:
    bucket, key = split_s3_uri(uri)
    return bytes(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def test_a_template_folder_in_another_directory_runs_locally(embedded: EmbeddedAws, tmp_path: Path) -> None:
    config_dir, templates = _config_with_minimal_team(tmp_path)
    assert "minimal" not in discover_templates()  # only the copy in tmp_path knows it
    runtime = LocalRuntime(embedded, StateStore(tmp_path / "state"), load_config(config_dir, template_dirs=[templates]))

    # Provisioned through the contract: the copied folder's code, no team files, the stack's names.
    res = runtime.provision(["counter"])["counter"]
    assert list(res.pipelines) == ["minimal"]
    pipeline = res.pipeline("minimal")
    assert pipeline.pipeline_name == PIPELINE and pipeline.file_uris == {}
    assert pipeline.template.folder == (templates / "minimal").resolve()
    assert _read(embedded, pipeline.source_uri) == pipeline.template.sourcedir_bytes()
    described = embedded.client("sagemaker").describe_pipeline(PipelineName=PIPELINE)
    assert described["PipelineDefinition"] == pipeline.definition
    assert described["PipelineDescription"] == "counter: minimal pipeline"

    # Land → trigger (the data-arrival handler) → execute.
    event = runtime.land("counter", _batch(tmp_path, rows=3))
    arrival = runtime.trigger(event)
    assert arrival.execution_arn is not None and f"pipeline/{PIPELINE}/" in arrival.execution_arn
    record = runtime.execute(arrival.execution_arn)
    assert record.status == "Succeeded", record.failure_reason
    # The lifecycle's ChampionMetric is not a parameter of this pipeline: only what it declares was passed.
    assert record.parameters == {"InputDataUri": arrival.parameters["InputDataUri"]}

    # Fit ran for real: fit.py counted the batch's lines (header + 3 rows) into the declared output.
    (fit,) = record.steps
    assert (fit.name, fit.type, fit.status) == ("Fit", "Processing", "Succeeded")
    summary = fit.metadata["Outputs"]["summary"]
    assert summary == f"s3://flywheel-local-reports/{PIPELINE}/{record.execution_id}/summary"
    assert json.loads(_read(embedded, summary + "/summary.json")) == {"rows": 4}

    # No register step: no package; no status, evaluation or gate declared: none read, none shown.
    outcome = runtime.outcome("counter", event, arrival, record)
    assert outcome.package is None and outcome.validation is None and outcome.evaluation is None
    assert runtime.packages("counter") == []
    report = runtime.report(outcome, serving=None)
    assert report["status"] == "Succeeded" and report["pipeline"] == PIPELINE
    assert "gate_threshold" not in report and "objective" not in report and "contract" not in report
    assert report["artifacts"]["summary output"] == summary
    path, uri = runtime.write_report(outcome, serving=None)
    assert "Fit" in path.read_text(encoding="utf-8") and uri is not None
    status = runtime.status()
    assert status["teams"] == [
        {"team": "counter", "template": "minimal", "objective": "", "gate": "", "pipeline": PIPELINE,
         "group": "flywheel-local-counter"}
    ]  # fmt: skip
    (shown,) = status["executions"]
    assert shown["PipelineExecutionStatus"] == "Succeeded" and "Gate" not in shown


def test_the_cli_runs_a_template_of_another_directory(tmp_path: Path) -> None:
    config_dir, templates = _config_with_minimal_team(tmp_path)
    options = ["--config-dir", str(config_dir), "--templates-dir", str(templates)]
    command = ["run", "--team", "counter", "--data", str(_batch(tmp_path, rows=5))]
    result = CliRunner().invoke(app, [*options, *command, "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 0, result.output
    assert "✓ Fit" in result.output and "succeeded" in result.output
    assert f"Fit output summary: s3://flywheel-local-reports/{PIPELINE}/" in result.output

    # The same through the environment variables.
    env = {"FLYWHEEL_CONFIG_DIR": str(config_dir), "FLYWHEEL_TEMPLATES_DIR": str(templates)}
    status = CliRunner().invoke(app, ["status", "--json", "--state-dir", str(tmp_path / "state")], env=env)
    assert status.exit_code == 0, status.output
    assert [t["pipeline"] for t in json.loads(status.output)["teams"]] == [PIPELINE]

    # Without them, the repository's config has no such team.
    unknown = CliRunner().invoke(app, [*command, "--state-dir", str(tmp_path / "state")])
    assert unknown.exit_code == 1 and "unknown team 'counter'" in unknown.output
