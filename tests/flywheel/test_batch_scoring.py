"""``batch-scoring`` in the local runtime: no approved model → a clear refusal; an approved model → a
scoring run through the local Transform step whose predictions count the input rows and hold no raw id."""

from __future__ import annotations

import csv
import io
import re
import sys
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel import cli
from flywheel import embedded as emb
from flywheel.batch_scoring import NoApprovedModelError
from flywheel.runtime import LocalRuntime
from flywheel.state import StateStore
from lambdas.batch_scoring import launch

REPO = Path(__file__).resolve().parents[2]
TABULAR = REPO / "pipelines" / "tabular"
CONTRACT = REPO / "config" / "contracts" / "churn.json"
TOKEN = re.compile(r"^[0-9a-f]{32}$")
ROWS = 120


def _train_model(tmp_path: Path) -> bytes:
    """A churn model as the tabular pipeline trains it (its step code, in-process, on generated rows)."""
    if str(TABULAR) not in sys.path:
        sys.path.insert(0, str(TABULAR))
    import preprocess
    import train

    from flywheel.datasets import write_churn_csv

    raw, processed, model = tmp_path / "raw", tmp_path / "processed", tmp_path / "model"
    raw.mkdir()
    write_churn_csv(raw / "batch.csv", 1200, seed=7)
    key = tmp_path / "key"
    key.write_text("a-test-key-for-the-churn-model-0123456789")
    prepared = preprocess.main(
        ["--contract", str(CONTRACT), "--input-dir", str(raw), "--output-dir", str(processed),
         "--pii-key-file", str(key), "--resource-config", str(tmp_path / "none.json")]
    )  # fmt: skip
    assert prepared == 0
    contract_dir = tmp_path / "contract"
    contract_dir.mkdir()
    (contract_dir / "contract.json").write_bytes(CONTRACT.read_bytes())
    trained = train.main(
        ["--train", str(processed / "train"), "--validation", str(processed / "validation"),
         "--contract", str(contract_dir), "--model-dir", str(model), "--num_round", "30"]
    )  # fmt: skip
    assert trained == 0
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(model.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                tar.add(path, arcname=str(path.relative_to(model)))
    return buffer.getvalue()


def _register_approved(aws: emb.EmbeddedAws, artifact: bytes) -> str:
    """Register ``artifact`` in churn's registry as the tabular pipeline does, and approve it."""
    s3, sm = aws.client("s3"), aws.client("sagemaker")
    key = "flywheel-local-churn-tabular/exec-1/model/pipelines-exec-1-train/output/model.tar.gz"
    s3.put_object(Bucket="flywheel-local-artifacts", Key=key, Body=artifact)
    package = sm.create_model_package(
        ModelPackageGroupName="flywheel-local-churn",
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.2-0",
                    "ModelDataUrl": f"s3://flywheel-local-artifacts/{key}",
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                    },
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )
    arn = str(package["ModelPackageArn"])
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    return arn


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_scoring_refuses_without_an_approved_model_then_scores_every_row_with_tokens_only(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state")
    with emb.in_process() as aws:
        rt = LocalRuntime(aws, state)
        rt.provision(["churn"])

        # GIVEN no Approved model, WHEN a batch is to be scored, THEN a clear refusal and nothing lands.
        with pytest.raises(
            NoApprovedModelError, match=r"team churn has no Approved model .*`flywheel approve churn:<version>`"
        ):
            rt.score("churn", "batch-scoring", rows=10)
        listed = aws.client("s3").list_objects_v2(Bucket="flywheel-local-raw", Prefix="churn/scoring/")
        assert listed.get("KeyCount", 0) == 0

        # GIVEN the team's model approved, WHEN a batch of generated rows (with raw ids) is scored ...
        package_arn = _register_approved(aws, _train_model(tmp_path))
        data = tmp_path / "batch.csv"
        from flywheel.datasets import write_churn_csv

        write_churn_csv(data, ROWS, seed=21)
        raw_ids = [row["customer_id"] for row in csv.DictReader(data.open())]
        outcome = rt.score("churn", "batch-scoring", data=data)

        # ... THEN every step ran, the Transform step through the model's own inference code,
        record = outcome.execution
        assert record.status == "Succeeded", record.failure_reason
        assert [s.name for s in record.steps] == ["Prepare", "InputCheck", "Score", "Summarize", "RowCountCheck"]
        score = record.step("Score")
        assert score is not None and score.type == "Transform"
        assert score.metadata["RecordCounts"] == {"files": 1, "input_records": ROWS, "output_records": ROWS}
        # the model it used is the newest Approved one, network-isolated in the VPC
        assert outcome.launch.package_arn == package_arn
        model = aws.client("sagemaker").describe_model(ModelName=outcome.launch.model_name)
        assert model["PrimaryContainer"]["ModelPackageName"] == package_arn
        request = launch.model_request(emb_target(rt), {"ModelPackageArn": package_arn, "ModelPackageVersion": 1})
        assert request["ModelName"] == outcome.launch.model_name  # moto does not echo the isolation flags
        assert request["EnableNetworkIsolation"] is True and request["VpcConfig"]["Subnets"] == list(emb.LOCAL_SUBNETS)
        assert {"Key": "flywheel:team", "Value": "churn"} in request["Tags"]
        # the predictions count the input rows and hold tokens, never a raw id
        assert outcome.predictions_uri and outcome.predictions_uri.startswith("s3://flywheel-local-features/")
        bucket, prefix = outcome.predictions_uri[len("s3://") :].split("/", 1)
        s3 = aws.client("s3")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
        text = "".join(s3.get_object(Bucket=bucket, Key=k)["Body"].read().decode() for k in keys)
        lines = text.splitlines()
        assert len(lines) == ROWS
        assert all(TOKEN.match(line.split(",")[0]) for line in lines)
        assert all(0.0 <= float(line.split(",")[1]) <= 1.0 for line in lines)  # P(churn), then the label
        assert not any(raw_id in text for raw_id in raw_ids)
        # row counts: the summary file and the CloudWatch metrics say the same
        assert outcome.summary is not None and outcome.summary["rows_in"] == outcome.summary["rows_scored"] == ROWS
        metrics = {m["MetricName"]: m["Value"] for m in outcome.metrics}
        assert metrics["ScoringRowsScored"] == ROWS and metrics["ScoringRunsSucceeded"] == 1

        # WHEN the same batch is launched again with the same model THEN nothing starts twice.
        target = emb_target(rt)
        again = launch.launch(aws.client("sagemaker"), state, target, [outcome.batch_uri], lambda p, t: "unused")
        assert not again.started
        assert "already scored with flywheel-local-churn-batch-scoring-v1" in again.skipped[outcome.batch_uri]


def emb_target(rt: LocalRuntime) -> launch.ScoringTarget:
    from flywheel.batch_scoring import scoring_target

    return scoring_target(rt, "churn", "batch-scoring")


def test_the_cli_refuses_params_for_a_scoring_run_before_anything_runs(tmp_path: Path) -> None:
    # The no-model refusal itself is asserted on the runtime above (the CLI prints FlywheelError messages).
    args = ["run", "--team", "churn", "--template", "batch-scoring", "--rows", "5", "--state-dir", str(tmp_path)]
    result = CliRunner().invoke(cli.app, [*args, "--param", "ModelName=x"])
    assert result.exit_code != 0 and "--param does not apply to a batch-scoring run" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
@pytest.mark.enable_socket
@pytest.mark.network_local
def test_the_demo_flow_scores_with_the_model_its_own_pipeline_trained(tmp_path: Path) -> None:
    """The guide's commands (docs/templates.md): train churn with its tabular pipeline, approve, score."""
    state = StateStore(tmp_path / "state")
    with emb.in_process() as aws:
        rt = LocalRuntime(aws, state)
        trained = rt.run("churn", rows=2000, seed=3)
        assert trained.package is not None
        rt.set_approval("churn:1", "Approved")
        outcome = rt.score("churn", "batch-scoring", rows=300, seed=5)
        assert outcome.execution.succeeded, outcome.execution.failure_reason
        assert outcome.summary is not None and outcome.summary["rows_scored"] == outcome.summary["rows_in"] == 300
        assert outcome.launch.package_arn == trained.package["ModelPackageArn"]
