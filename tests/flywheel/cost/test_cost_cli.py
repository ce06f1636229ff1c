"""``flywheel cost`` end to end on the session's synthesized environments (tests/cdk_fixtures.py): read from a
cloud assembly on disk, the dev report prints per-team and baseline rows; docs/cost.md is current."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.access_report import stage_templates
from flywheel.cli import app
from flywheel.cost.model import NOT_PRICED
from flywheel.cost.render import render_markdown
from flywheel.cost.report import CostReport, EnvTemplates, estimate
from tests.cdk_fixtures import stages, synthesized, toolchain  # noqa: F401

DOCS = Path(__file__).resolve().parents[3] / "docs" / "cost.md"


@pytest.fixture(scope="module")
def environments(stages) -> list[EnvTemplates]:  # noqa: F811
    out = []
    for name, synthesized_stage in stages.items():
        t = stage_templates(synthesized_stage.stage)
        out.append(EnvTemplates(name, t.region, t.templates))
    return out


@pytest.fixture(scope="module")
def toolchain_templates(toolchain) -> EnvTemplates:  # noqa: F811
    stack = toolchain.stack
    return EnvTemplates("toolchain", stack.region, {stack.stack_name: toolchain.template.to_json()})


@pytest.fixture(scope="module")
def report(environments, toolchain_templates) -> CostReport:
    return estimate(environments, toolchain=toolchain_templates)


def _write_assembly(root: Path, environments: list[EnvTemplates]) -> Path:
    """A cloud assembly as `cdk synth` writes it: a top manifest naming one nested assembly per stage."""
    top: dict = {"version": "48.0.0", "artifacts": {}}
    for env in environments:
        directory = f"assembly-Flywheel-{env.env}"
        (root / directory).mkdir(parents=True)
        artifacts = {}
        for stack, template in env.templates.items():
            (root / directory / f"{stack}.template.json").write_text(json.dumps(template))
            artifacts[stack] = {
                "type": "aws:cloudformation:stack",
                "environment": f"aws://111111111111/{env.region}",
                "properties": {"templateFile": f"{stack}.template.json", "stackName": stack},
            }
        (root / directory / "manifest.json").write_text(json.dumps({"version": "48.0.0", "artifacts": artifacts}))
        top["artifacts"][directory] = {"type": "cdk:cloud-assembly", "properties": {"directoryName": directory}}
    (root / "manifest.json").write_text(json.dumps(top))
    return root


@pytest.fixture
def wide_console():
    """The CLI's console 240 columns wide, so each row of the table stays on one line."""
    from flywheel.cli import console

    saved = console._width
    console.width = 240
    yield
    console._width = saved


def test_cli_dev_prints_per_team_and_baseline_rows(environments, tmp_path, wide_console):
    cdk_out = _write_assembly(tmp_path / "cdk.out", environments)
    result = CliRunner().invoke(app, ["cost", "-c", "env=dev", "--cdk-out", str(cdk_out)])
    assert result.exit_code == 0, result.output
    expected = estimate([e for e in environments if e.env == "dev"])
    (dev,) = expected.environments
    rows = {m.group(1): m.group(2) for m in re.finditer(r"│ dev\s+│ ([a-z ]+?)\s+│\s+(\$[\d,.]+) │", result.output)}
    assert rows == {
        "platform baseline": f"${dev.baseline.idle:,.2f}",
        "churn": f"${dev.teams['churn'].idle:,.2f}",
        "diagnostics": f"${dev.teams['diagnostics'].idle:,.2f}",
        "environment total": f"${dev.idle:,.2f}",
    }
    assert "│ staging" not in result.output and "Cost per 1,000 pipeline runs" in result.output
    # the dev baseline is dominated by its interface endpoints: 7 services x 1 AZ
    assert re.search(r"7 interface endpoint \$\d+\.\d\d", result.output)


def test_every_synthesized_type_is_priced_or_known_free(report):
    assert [line for line in report.not_priced() if line.status == NOT_PRICED] == []


def test_bad_input_names_the_problem_and_the_fix(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["cost", "-c", "stage=dev"])
    assert result.exit_code == 2 and "only -c env=NAME is understood" in result.output
    result = runner.invoke(app, ["cost", "--cdk-out", str(tmp_path)])
    assert result.exit_code == 2 and "no manifest.json" in result.output and "make synth" in result.output
    result = runner.invoke(app, ["cost", "--assume", "minutes=3", "--cdk-out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown assumption 'minutes'" in result.output
    assert "Traceback" not in result.output


def test_docs_cost_md_is_current(report):
    assert DOCS.read_text(encoding="utf-8") == render_markdown(report), (
        "docs/cost.md is stale: run `make cost-docs` (flywheel cost --markdown docs/cost.md)"
    )
