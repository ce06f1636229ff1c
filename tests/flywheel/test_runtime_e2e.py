"""The whole local loop end to end on 2,000 generated rows (in-process moto, the real step code)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from flywheel import embedded as emb
from flywheel.demo import measure
from flywheel.errors import UnknownPackageError
from flywheel.runtime import LocalRuntime
from flywheel.state import StateStore

ROWS = 2000
STEPS = ["Preprocess", "DataContractCheck", "PiiScanCheck", "Train", "Evaluate", "QualityGate", "RegisterModel"]


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_land_trigger_run_register_approve_serve_report_and_retrain(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state")
    with emb.in_process() as aws:
        runtime = LocalRuntime(aws, state)

        # GIVEN a batch landed in the raw zone, WHEN the data-arrival handler gets S3's event, THEN the
        # pipeline runs every step and registers a package waiting for approval.
        outcome = runtime.run("churn", rows=ROWS, seed=3)
        record = outcome.execution
        assert record.status == "Succeeded", record.failure_reason
        assert [s.name for s in record.steps] == STEPS
        assert all(s.status == "Succeeded" for s in record.steps)
        assert outcome.arrival.parameters["ChampionMetric"] == "none"
        assert outcome.arrival.input_data_uri.startswith("s3://flywheel-local-raw/churn/incoming/batch-")
        assert outcome.validation and outcome.validation["passed"]
        package = outcome.package
        assert package is not None and package["ModelApprovalStatus"] == "PendingManualApproval"
        assert package["ModelPackageVersion"] == 1
        gate = outcome.evaluation["gate"] if outcome.evaluation else {}
        assert gate["metric"] == "auc" and gate["value"] > 0.7
        stored = state.execution(record.execution_id)
        assert stored and stored["PipelineExecutionStatus"] == "Succeeded" and len(stored["Steps"]) == len(STEPS)
        assert state.packages("flywheel-local-churn")[0]["package"]["ModelPackageVersion"] == 1

        # A redelivered event starts nothing.
        assert runtime.trigger(outcome.event).duplicate
        assert len(state.executions()) == 1

        # WHEN the package is approved THEN the lifecycle deploys it.
        with pytest.raises(UnknownPackageError, match="known versions: 1"):
            runtime.set_approval("churn:7", "Approved")
        approval = runtime.set_approval("churn:1", "Approved", "looks good")
        assert approval.action == "deployed"
        deployment = state.deployment("churn")
        assert deployment and deployment["ModelPackageVersion"] == 1 and Path(deployment["LocalModel"]).is_file()
        assert deployment["GateMetricValue"] == pytest.approx(gate["value"])

        # The served model answers the sample rows of its own test split.
        server, _, capture = runtime.start_endpoint("churn")
        try:
            figures = measure(server.url, Path(deployment["Samples"]), requests=5, batch_rows=4)
        finally:
            server.stop()
        assert figures["errors"] == 0 and figures["requests"] == 5
        assert capture.startswith("s3://flywheel-local-capture/")

        # The report names the metrics.
        report, report_uri = runtime.write_report(outcome, serving={**figures, "endpoint_url": server.url})
        html = report.read_text(encoding="utf-8")
        assert "auc" in html and "RegisterModel" in html and record.execution_id in html
        assert report_uri and report_uri.endswith(f"{record.execution_id}/report.html")

        # A second batch trains a challenger against the approved champion.
        second = runtime.run("churn", rows=ROWS, seed=3)
        assert second.arrival.parameters["ChampionMetric"] == repr(float(gate["value"]))
        assert second.execution.succeeded, second.execution.failure_reason
        assert second.package and second.package["ModelPackageVersion"] == 2
        assert second.evaluation and second.evaluation["champion"]["metric_value"] == pytest.approx(gate["value"])
        # The comparison is paired, as deployed: the lifecycle passed the champion's artifact (ChampionModelUri)
        # and Evaluate scored it on the challenger's test rows (same batch and seed here: identical predictions).
        champion_model = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
        assert second.arrival.parameters["ChampionModelUri"] == champion_model
        paired = second.evaluation["champion"]
        assert paired["noise_method"] == "paired bootstrap on the same test rows" and paired["verdict"] == "tie"
        assert paired["paired"]["identical_predictions"] is True and "auc" in paired["metrics"]

    # A fresh embedded AWS (a new process) gets the registry back from the state dir.
    with emb.in_process() as aws:
        again = LocalRuntime(aws, state)
        team, restored = again.resolve_package("churn:2")
        assert team == "churn" and restored["ModelApprovalStatus"] == "PendingManualApproval"
        assert again.resolve_package("churn:1")[1]["ModelApprovalStatus"] == "Approved"
        assert again.set_approval("churn:2", "Approved").action == "deployed"
        assert again.set_approval("churn:2", "Rejected").action == "rolled-back"
        assert (state.deployment("churn") or {})["ModelPackageVersion"] == 1


def test_a_batch_that_breaks_the_contract_is_quarantined_and_stops_the_run(tmp_path: Path) -> None:
    from flywheel.datasets import write_churn_csv

    source = write_churn_csv(tmp_path / "data" / "churn.csv", 400, seed=5)
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    frame.loc[:9, "tenure_months"] = "999"  # the contract allows 0..120
    frame.to_csv(source, index=False)
    original = source.read_bytes()
    with emb.in_process() as aws:
        runtime = LocalRuntime(aws, StateStore(tmp_path / "state"))
        outcome = runtime.run("churn", data=source)
        record = outcome.execution
        assert record.status == "Failed" and record.failed_step == "DataContractFailed"
        assert [s.name for s in record.steps] == ["Preprocess", "DataContractCheck", "DataContractFailed"]
        assert (record.failure_reason or "").startswith("Data contract failed: ")
        assert "quarantined at s3://flywheel-local-raw/churn/quarantine/flywheel-local-churn-tabular/" in (
            record.failure_reason or ""
        )
        assert outcome.contract_failed and outcome.package is None
        assert outcome.quarantine_report and outcome.quarantine_report["quarantined_files"] == ["churn.csv"]
        assert any(f.get("column") == "tenure_months" for f in outcome.quarantine_report["failures"])
        detail = outcome.event["detail"]
        raw = aws.client("s3").get_object(Bucket=detail["bucket"]["name"], Key=detail["object"]["key"])
        assert raw["Body"].read() == original  # the raw batch is intact
        assert (
            aws.client("sagemaker").list_model_packages(ModelPackageGroupName="flywheel-local-churn")[
                "ModelPackageSummaryList"
            ]
            == []
        )
        assert json.dumps(outcome.validation)  # the status is plain JSON for the report
