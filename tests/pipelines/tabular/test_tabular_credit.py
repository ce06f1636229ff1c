"""The fairness example end to end: synthetic credit data with protected columns, its team config, the
gate's configured margin and worst-gap check, and the model card built from the real evaluation (parsed
from the HTML, every section)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from tabular_helpers import FAIRNESS_CONFIG, PipelineRun, run_chain

from config.loader import load_config
from flywheel.datasets.credit import credit_frame, write_credit_csv
from flywheel.report import render_report
from pipelines.tabular.template import TabularSettings
from tests.html_card import Card

CONTRACT = FAIRNESS_CONFIG / "contracts" / "credit.json"


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    team = load_config(FAIRNESS_CONFIG).team("credit")
    gate = team.template_settings("tabular").metric_gate  # type: ignore[attr-defined]
    return run_chain(
        tmp_path_factory.mktemp("credit"),
        "credit",
        lambda raw: write_credit_csv(raw / "credit.csv", 3000, seed=5),
        CONTRACT,
        "--trivial-margin", str(gate.trivial_margin), "--fairness-max-gap", str(gate.fairness_max_gap),
        "--bootstrap-resamples", "100",
    )  # fmt: skip


def test_the_generating_process_is_seeded_and_biased_as_documented() -> None:
    a, b = credit_frame(3000, seed=1), credit_frame(3000, seed=1)
    assert a.equals(b) and not a.equals(credit_frame(3000, seed=2))
    assert set(a["sex"]) == {"female", "male"} and set(a["ethnicity"]) == {"group_a", "group_b", "group_c"}
    income = a.groupby("sex")["annual_income"].median()
    assert income["female"] < 0.9 * income["male"]  # the documented 0.85 factor
    west = a[a["ethnicity"] == "group_c"]["region"].eq("west").mean()
    assert west > 0.5  # region is a proxy of ethnicity
    assert 0.1 < a["savings"].isna().mean() < 0.2


def test_the_example_team_config_is_valid_and_its_gate_settings_are_checked() -> None:
    team = load_config(FAIRNESS_CONFIG).team("credit")
    assert team.owner and "Not for automatic rejection" in team.intended_use
    settings = team.template_settings("tabular")
    assert settings.metric_gate.trivial_margin == 0.02 and settings.metric_gate.fairness_max_gap == 0.25  # type: ignore[attr-defined]
    raw = {"contract": json.loads(CONTRACT.read_text()), "metric_gate": {"metric": "auc", "threshold": 0.65}}
    assert TabularSettings.model_validate(raw).metric_gate.trivial_margin == 0.01  # the default
    churn = json.loads((FAIRNESS_CONFIG.parents[1] / "contracts" / "churn.json").read_text())
    for gate, message in (
        ({"trivial_margin": 0.9}, "less than or equal to 0.5"),
        ({"trivial_margin": -0.1}, "greater than or equal to 0"),
        ({"fairness_max_gap": 1.5}, "is above 1"),
        ({"fairness_max_gap": 0}, "greater than 0"),
    ):
        with pytest.raises(ValidationError, match=message):
            TabularSettings.model_validate({**raw, "metric_gate": {**raw["metric_gate"], **gate}})
    with pytest.raises(ValidationError, match="no column with role 'protected'"):
        TabularSettings.model_validate(
            {"contract": churn, "metric_gate": {"metric": "auc", "threshold": 0.7, "fairness_max_gap": 0.2}}
        )


def test_protected_columns_are_measured_not_used(credit: PipelineRun) -> None:
    metadata = json.loads((credit.model / "metadata.json").read_text())
    assert "sex" not in metadata["feature_names"] and "ethnicity" not in metadata["feature_names"]
    assert "note" not in metadata["feature_names"]  # role ignore: dropped
    assert metadata["class_labels"] == ["no", "yes"] and metadata["positive_label"] == "yes"  # said in the contract
    assert metadata["decision_threshold"]["rule"] == "youden"
    report = credit.report
    fairness = report["fairness"]
    assert set(fairness["columns"]) == {"sex", "ethnicity"} and fairness["used_as_features"] is False
    assert set(fairness["columns"]["ethnicity"]["groups"]) == {"group_a", "group_b", "group_c"}
    for result in fairness["columns"].values():  # the gaps are those of the groups shown
        groups = result["groups"].values()
        assert sum(g["rows"] for g in groups) == report["test_rows"]
        rates = [g["selection_rate"] for g in groups if g["rows"] >= result["min_group_rows"]]
        assert result["gaps"]["selection_rate_ratio"] == pytest.approx(min(rates) / max(rates))
    check = next(c for c in report["gate"]["checks"] if c["check"] == "fairness")
    assert "allowed gap of 0.25" in check["reason"]
    margin = next(c for c in report["gate"]["checks"] if c["check"] == "beats_trivial")
    assert margin["passed"] and "needs >= 0.52" in margin["reason"]  # the configured margin 0.02 over 0.5


def test_the_model_card_answers_should_i_approve_from_the_real_evaluation(credit: PipelineRun) -> None:
    team = load_config(FAIRNESS_CONFIG).team("credit")
    run = {
        "team": "credit",
        "objective": "binary",
        "execution_id": "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/p/execution/abc123",
        "status": "Succeeded",
        "started_at": "2026-01-01T10:00:00.654321+00:00",
        "steps": [
            {"name": "DataContractCheck", "status": "Succeeded", "type": "Condition", "message": "passed"},
            {"name": "QualityGate", "status": "Succeeded", "type": "Condition", "message": "every check passed"},
        ],
        "evaluation_dir": credit.evaluation,
        "gate_threshold": 0.65,
        "contract": {"passed": True, "summary": "all 1 host(s) passed", "rows": 4000},
        "card": {"description": team.description, "owner": team.owner, "intended_use": team.intended_use},
        "contract_spec": json.loads(CONTRACT.read_text()),
        "lineage": {
            "data_uri": "s3://raw/credit/incoming/b1/credit.csv",
            "model_package_arn": "arn:aws:sagemaker:eu-west-1:123456789012:model-package/g/3",
            "model_package_version": 3,
            "approval_status": "PendingManualApproval",
            "group_versions": [
                {"version": 1, "approval": "Approved", "deployed": True},
                {"version": 2, "approval": "PendingManualApproval", "deployed": False},
                {"version": 3, "approval": "PendingManualApproval", "deployed": False},
            ],
        },
        "champion": {"version": 1, "approval": "Approved", "evaluation": credit.report},
    }
    card = Card.parse(render_report(run))
    expected = {"summary", "card", "decide", "steps", "contract", "evaluation", "baseline", "plots", "lineage"}
    assert expected <= set(card.sections)
    # model card: owner and intended use from config, positive class and threshold with how it was chosen
    info = card.rows("card")
    assert info["Owner"] == ["credit-risk-ml@example.com"] and info["Intended use"][0].startswith("Rank applications")
    assert info["Positive class"] == ["'yes' (set in the contract: positive_class)"]
    assert "Youden" in info["Decision threshold"][0] and "validation split" in info["Decision threshold"][0]
    # should I approve: every gate reason in words, the commands to copy
    decide = card.text("decide")
    passed = bool(credit.report["gate"]["passed"])
    assert ("The quality gate passed" if passed else "The quality gate failed: ") in decide
    assert "fairness: worst group gap on" in decide  # the configured worst-gap check, in words
    assert "beats the trivial model: auc" in decide
    assert card.rows("decide")["Approve (deploys it)"] == ["flywheel approve credit:3"]
    for reason in (c["reason"] for c in credit.report["gate"]["checks"]):
        assert reason in decide
    # data: the contract with roles incl. protected and ignore
    columns = {r[0]: r[1:] for r in card.table("contract", "contract-columns")[1:]}
    assert columns["sex"][1] == "protected" and columns["note"][1] == "ignore" and columns["repaid"][1] == "target"
    assert card.rows("contract")["Quarantined rows"] == ["none: the batch passed"]
    # training, metrics with intervals and the trivial model's figures, per class, calibration
    ev = card.rows("evaluation")
    assert ev["Rows per split"][0].startswith("train ") and "Class balance (train)" in ev
    assert "Hyperparameters" in ev and ev["Best iteration"][0].split()[1] == "of"
    auc = ev["auc gate"]
    low, high = (float(x) for x in auc[1].split(" to "))
    assert low <= float(auc[0]) <= high and auc[3] == "0.5000"  # value in its interval; the trivial model's AUC
    per_class = card.table("evaluation", "per-class")
    assert [r[0] for r in per_class[1:]] == ["'no'", "'yes'"]
    assert sum(int(r[1]) for r in per_class[1:]) == credit.report["test_rows"]
    calibration = card.table("evaluation", "calibration")
    assert sum(int(r[1]) for r in calibration[1:]) == credit.report["test_rows"]
    assert "Decision threshold" in card.headings["evaluation"] and "Calibration" in card.headings["evaluation"]
    assert "expected calibration error" in card.text("evaluation")
    # the champion's figures for every metric, fairness per group with its gaps
    champion = {r[0]: r[1] for r in card.table("evaluation", "champion-metrics")[1:]}
    assert {"auc", "accuracy", "f1", "balanced_accuracy"} <= set(champion)
    assert {"sex", "ethnicity"} <= set(card.headings["evaluation"])
    assert ev["female"][0].isdigit() and "selection rate ratio" in ev
    # drift baseline, plots (calibration among them), lineage with the group's history and no dangling arrow
    baseline = {r[0]: r for r in card.table("baseline", "baseline")[1:]}
    assert "savings" in baseline and baseline["savings"][3].endswith("%") and baseline["savings"][3] != "0.0%"
    assert "Calibration (reliability) curve" in card.images["plots"]
    lineage = card.text("lineage")
    assert "2 earlier version(s): 1 Approved, 1 PendingManualApproval; version 1 is deployed" in lineage
    assert "first version" not in lineage and "Not served in this run" in lineage
    assert card.rows("summary")["Started"] == ["2026-01-01 10:00:00 UTC"]


def test_the_evaluate_step_writes_the_card_stored_with_the_package(credit: PipelineRun, tmp_path: Path) -> None:
    """The deployed pipeline's card: Evaluate renders model-card.html beside evaluation.json with the same
    renderer, from the team files the stack provisions (card.json, the no-champion marker) and its arguments."""
    import evaluate

    from pipelines.tabular.template import TEMPLATE

    team = load_config(FAIRNESS_CONFIG).team("credit")
    files = {f.key: f for f in TEMPLATE.team_files(team.template_settings("tabular"))}
    (tmp_path / "card.json").write_bytes(files["card"].content)
    marker = tmp_path / "champion"
    marker.mkdir()
    (marker / "0f1e2d.json").write_bytes(files["no_champion"].content)  # a CDK asset's content-hashed name
    out = tmp_path / "evaluation"
    code = evaluate.main(
        [
            "--model-dir", str(credit.model), "--test-dir", str(credit.processed / "test"),
            "--baseline-dir", str(credit.processed / "baseline"), "--contract", str(CONTRACT),
            "--output-dir", str(out), "--gate-metric", "auc", "--gate-threshold", "0.65",
            "--champion-model-dir", str(marker), "--bootstrap-resamples", "100", "--team", "credit",
            "--execution-id", "exec-42", "--input-data-uri", "s3://raw/credit/incoming/b1/",
            "--card-file", str(tmp_path / "card.json"),
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert report["champion"]["verdict"] == "none"  # the marker reads as "no champion"
    card = Card.parse((out / "model-card.html").read_text(encoding="utf-8"))
    assert {"summary", "card", "decide", "contract", "evaluation", "baseline", "plots", "lineage"} <= set(card.sections)
    assert not {"steps", "serving", "artifacts"} & set(card.sections)  # only the local runtime knows those
    info = card.rows("card")
    assert info["Owner"] == [team.owner] and info["Intended use"] == [team.intended_use]
    decide = card.text("decide")
    if report["gate"]["passed"]:
        assert "flywheel approve credit:<version>" in decide and "aws sagemaker update-model-package" in decide
    else:
        assert "nothing to approve" in decide
    for check in report["gate"]["checks"]:
        assert check["reason"] in decide
    assert "exec-42" in card.text("lineage") and "s3://raw/credit/incoming/b1/" in card.text("lineage")


def test_a_failed_fairness_gate_names_the_gap(credit: PipelineRun, tmp_path: Path) -> None:
    import evaluate

    out = tmp_path / "strict"
    code = evaluate.main(
        [
            "--model-dir", str(credit.model), "--test-dir", str(credit.processed / "test"),
            "--baseline-dir", str(credit.processed / "baseline"), "--contract", str(CONTRACT),
            "--output-dir", str(out), "--gate-metric", "auc", "--fairness-max-gap", "0.001",
            "--bootstrap-resamples", "100",
        ]
    )  # fmt: skip
    assert code == 0
    gate = json.loads((out / "evaluation.json").read_text())["gate"]
    assert gate["passed"] == 0 and "above the allowed gap of 0.001" in gate["summary"]


@pytest.mark.slow
def test_the_card_renders_in_a_headless_browser(credit: PipelineRun, tmp_path: Path) -> None:
    """The card as a browser draws it (make test-slow; the fast tests above parse the same HTML): Chromium
    headless must load the self-contained file and paint a tall page. Look at ``card.png`` after a change."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    assert browser, "install Chromium (apt-get install -y chromium) to run the browser check"
    page = tmp_path / "card.html"
    page.write_text(render_report({"team": "credit", "execution_id": "x1", "status": "Succeeded",
                                   "evaluation_dir": credit.evaluation}), encoding="utf-8")  # fmt: skip
    shot = tmp_path / "card.png"
    subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}", "--window-size=1280,4000", page.as_uri(),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 100_000  # a page with tables and plots, not blank
