"""The ``flywheel`` CLI: every command's happy path and its expected errors (exit 1, no stack trace)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flywheel import embedded as emb
from flywheel.cli import app
from flywheel.runtime import LocalRuntime
from flywheel.state import StateStore
from tests.html_card import Card

COMMANDS = ["security-report", "up", "run", "approve", "reject", "serve", "invoke", "status", "demo"]


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def _text(result: object) -> str:
    """The output with rich's line wrapping undone (the test terminal may be 80 columns wide)."""
    return " ".join(str(getattr(result, "output", "")).split())


def _ok(result: object) -> str:
    output = _text(result)
    assert getattr(result, "exit_code", None) == 0, output
    return output


def _error(result: object, *needles: str) -> str:
    output = _text(result)
    assert getattr(result, "exit_code", None) == 1, output
    assert "Traceback" not in output and "Error:" in output
    for needle in needles:
        assert needle in output, output
    return output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(cli: CliRunner, command: str) -> None:
    output = _ok(cli.invoke(app, [command, "--help"]))
    assert "Usage" in output


def test_run_status_approve_reject(cli: CliRunner, tmp_path: Path) -> None:
    state = ["--state-dir", str(tmp_path / "state")]
    output = _ok(cli.invoke(app, ["run", "--team", "churn", "--rows", "1500", *state]))
    assert "Preprocess" in output and "RegisterModel" in output
    assert "Registered version 1 (PendingManualApproval)" in output
    assert "flywheel approve churn:1" in output
    flat = " ".join(output.split())
    assert re.search(r"auc = 0\.\d{1,4} \(95% 0\.\d{1,4} to 0\.\d{1,4}\); no champion; gate passed", flat)  # rounded
    reports = sorted((tmp_path / "state" / "reports").glob("*/report.html"))  # `run` writes the model card
    assert len(reports) == 1 and f"Report (model card): {reports[0].resolve()}" in flat
    card = Card.parse(reports[0].read_text(encoding="utf-8"))
    assert card.rows("decide")["Approve (deploys it)"] == ["flywheel approve churn:1"]
    assert "the first version of its model package group" in card.text("lineage")

    status = _ok(cli.invoke(app, ["status", *state]))  # tables: cells wrap at any width, so only titles here
    assert "Teams" in status and "Executions" in status and "Model registry" in status
    raw = cli.invoke(app, ["status", "--json", *state])
    assert raw.exit_code == 0
    data = json.loads(raw.output)
    assert data["executions"][0]["PipelineExecutionStatus"] == "Succeeded"
    assert [p["ModelPackageVersion"] for p in data["registry"]["churn"]] == [1]

    approved = _ok(cli.invoke(app, ["approve", "churn:1", *state]))
    assert "is now Approved" in approved and "deployed to the churn endpoint" in approved
    assert "No approved model is deployed" not in _ok(cli.invoke(app, ["status", *state]))

    _error(cli.invoke(app, ["approve", "churn:9", *state]), "no model package 'churn:9'", "known versions: 1")
    _error(cli.invoke(app, ["approve", "not-a-package", *state]), "neither a model package ARN nor <team>:<version>")
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/flywheel-local-churn/1"
    rejected = _ok(cli.invoke(app, ["reject", arn, *state]))
    assert "is now Rejected" in rejected and "the endpoint has no model now" in rejected


def test_unknown_team_is_named_with_the_known_ones(cli: CliRunner, tmp_path: Path) -> None:
    state = ["--state-dir", str(tmp_path / "state")]
    _error(cli.invoke(app, ["run", "--team", "marketing", "--rows", "10", *state]), "unknown team 'marketing'", "churn")
    _error(cli.invoke(app, ["approve", "marketing:1", *state]), "unknown team 'marketing'")
    _error(cli.invoke(app, ["serve", "--team", "marketing", *state]), "unknown team 'marketing'")
    _error(cli.invoke(app, ["serve", "--team", "churn", *state]), "no deployed model", "flywheel approve churn:")
    _error(cli.invoke(app, ["invoke", "--team", "churn", "--sample", "2", *state]), "no endpoint of team churn")
    _error(cli.invoke(app, ["invoke", "--team", "../etc", "--sample", "2", *state]), "unknown team '../etc'")
    _error(cli.invoke(app, ["run", "--team", "churn", *state]), "give either --data FILE or --rows N")
    _error(
        cli.invoke(app, ["run", "--team", "churn", "--data", str(tmp_path / "nope.csv"), *state]),
        "nope.csv does not exist",
    )


def test_contract_failing_data_exits_non_zero_with_the_quarantine_report(cli: CliRunner, tmp_path: Path) -> None:
    from flywheel.datasets import write_churn_csv

    source = write_churn_csv(tmp_path / "bad" / "churn.csv", 300, seed=9)
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    frame.loc[:4, "contract_type"] = "lifetime"  # not an allowed value
    frame.to_csv(source, index=False)
    output = _error(
        cli.invoke(app, ["run", "--team", "churn", "--data", str(source), "--state-dir", str(tmp_path / "s")]),
        "failed its data contract",
        "Quarantine report",
        "contract_type",
        "Raw data left intact",
        "unchanged",
    )
    assert "s3://flywheel-local-raw/churn/quarantine/flywheel-local-churn-tabular/" in output


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_serve_and_invoke(cli: CliRunner, tmp_path: Path, taken_port: int) -> None:
    state_dir = tmp_path / "state"
    state = ["--state-dir", str(state_dir)]
    with emb.in_process() as aws:
        runtime = LocalRuntime(aws, StateStore(state_dir))
        outcome = runtime.run("churn", rows=1000, seed=2)
        assert outcome.package is not None
        runtime.set_approval("churn:1", "Approved")

        served = _ok(cli.invoke(app, ["serve", "--team", "churn", "--port", "0", "--duration", "0", *state]))
        assert "Serving churn version 1 at http://127.0.0.1:" in served and "Endpoint stopped" in served
        _error(
            cli.invoke(app, ["serve", "--team", "churn", "--port", str(taken_port), *state]),
            f"port {taken_port} on 127.0.0.1 is already in use",
        )

        server, _, _ = runtime.start_endpoint("churn", capture_to_s3=False)
        try:
            answer = _ok(cli.invoke(app, ["invoke", "--team", "churn", "--sample", "3", *state]))
            assert answer.count('"probability"') == 3 and "200 in" in answer
            bad = tmp_path / "bad.csv"
            bad.write_text("not,enough,columns\n")
            _error(cli.invoke(app, ["invoke", "--url", server.url, "--data", str(bad)]), "answered 400")
        finally:
            server.stop()


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_up_provisions_every_team_and_names_a_taken_port(cli: CliRunner, tmp_path: Path, taken_port: int) -> None:
    state = ["--state-dir", str(tmp_path / "state")]
    output = _ok(cli.invoke(app, ["up", "--port", "0", "--duration", "0", *state]))
    assert "Embedded AWS running at http://127.0.0.1:" in output
    assert "--endpoint-url http://127.0.0.1:" in output and "s3 ls" in output
    assert "pipeline flywheel-local-churn-tabular" in output and "registry flywheel-local-diagnostics" in output
    assert StateStore(tmp_path / "state").server("aws") is None  # cleared on exit
    _error(cli.invoke(app, ["up", "--port", str(taken_port), *state]), f"port {taken_port} on 127.0.0.1")
    _error(cli.invoke(app, ["demo", "--port", str(taken_port), *state]), f"port {taken_port} on 127.0.0.1")


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_demo_twice_registers_a_challenger_against_the_champion(cli: CliRunner, tmp_path: Path) -> None:
    args = ["demo", "--rows", "1000", "--requests", "5", "--state-dir", str(tmp_path / "state")]
    first = _ok(cli.invoke(app, args))
    assert "Generated 1,000 rows" in first and "Landed the batch in the raw zone" in first
    assert "APPROVED model package version 1" in first and "ChampionMetric=none" in first
    assert "p50" in first and "report.html" in first
    reports = sorted((tmp_path / "state" / "reports").glob("*/report.html"))
    assert len(reports) == 1 and "auc" in reports[0].read_text(encoding="utf-8")

    from flywheel.datasets import write_churn_csv

    data = write_churn_csv(tmp_path / "mine" / "churn.csv", 1000, seed=0)  # the rows the demo generates
    second = _ok(cli.invoke(app, [*args, "--data", str(data)]))  # a file instead of generated rows
    assert "Landing " in second and "Generated" not in second
    assert "Registered model package version 2" in second
    assert "ChampionMetric=none" not in second and "ChampionMetric=0." in second
    assert len(sorted((tmp_path / "state" / "reports").glob("*/report.html"))) == 2


def test_approving_a_worse_model_asks_and_a_failed_gate_shows_both_figures(cli: CliRunner, tmp_path: Path) -> None:
    state = ["--state-dir", str(tmp_path / "state")]
    _ok(cli.invoke(app, ["run", "--team", "churn", "--rows", "3000", *state]))
    _ok(cli.invoke(app, ["approve", "churn:1", *state]))  # nothing deployed yet: no question

    # A smaller batch makes a weaker model; compared with the champion, the gate refuses it and says why.
    failed = _text(cli.invoke(app, ["run", "--team", "churn", "--rows", "600", "--seed", "3", *state]))
    assert "Quality gate failed on auc: challenger" in failed and "threshold >= 0.7" in failed
    assert "FAIL champion: challenger auc" in failed and "vs champion 0." in failed
    assert "Registered version" not in failed

    # Registered without the champion comparison (a developer's run): approving it asks first.
    _ok(
        cli.invoke(
            app,
            [
                "run",
                "--team",
                "churn",
                "--rows",
                "600",
                "--seed",
                "3",
                "--param",
                "ChampionMetric=none",
                "--param",
                "GateThreshold=0.6",
                *state,
            ],
        )
    )
    asked = _error(cli.invoke(app, ["approve", "churn:2", *state], input="n\n"), "not approved", "--yes")
    assert "version 2 is worse than the deployed version 1 on auc:" in asked and "worse by 0." in asked
    approved = _ok(cli.invoke(app, ["approve", "churn:2", "--yes", *state]))
    assert "is now Approved" in approved and "worse than the deployed" not in approved
