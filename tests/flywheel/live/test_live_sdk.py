"""A pipeline written with the SageMaker Python SDK (v3), run unchanged on ``flywheel up``.

GIVEN a ``flywheel up``-style server on 127.0.0.1 and the issue's pipeline built in this test with the SDK —
``Prepare`` (ScriptProcessor: the SDK uploads the script into the embedded S3 while building the definition;
the script downloads one input with its own boto3 client and uses the literal ``/opt/ml`` paths) →
``Train`` (SageMaker's built-in XGBoost: the image URI from the SDK's ``image_uris``, CSV channels label
first, no entry point) → ``Evaluate`` (a property file) → ``AccuracyGate`` (Condition on ``JsonGet``) →
``Register`` (ModelStep ``register``), ``CreateModel`` (ModelStep ``build``) and ``Score`` (TransformStep) —
WHEN it is upserted, started and waited on through the SDK and boto3 pointed at the server with
``AWS_ENDPOINT_URL``, THEN every step ran with the status and metadata SageMaker reports (job ARNs, the
package ARN, the condition's outcome), the transform scored every batch row, and nothing was written under
the host's ``/opt/ml``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for

# ~12.5 s of CPU (measured with /usr/bin/time, job processes included, load 3-4: the SDK's import and
# build, six jobs). It stays in `make test`: it is issue 14's headline proof (a pipeline Flywheel did not
# write, run unchanged through the live server).
pytestmark = [
    pytest.mark.enable_socket,
    pytest.mark.network_local,
    pytest.mark.allow_hosts(["127.0.0.1"]),
]

HERE = Path(__file__).parent / "sdk_steps"
REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/sdk-pipeline"
DEFAULT_BUCKET = "sagemaker-eu-west-1-123456789012"
SKLEARN_IMAGE = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
#: Every step and the key of its metadata in ListPipelineExecutionSteps.
STEPS = {
    "Prepare": "ProcessingJob",
    "Train": "TrainingJob",
    "Evaluate": "ProcessingJob",
    "AccuracyGate": "Condition",
    "Register": "RegisterModel",
    "CreateModel": "Model",
    "Score": "TransformJob",
}


def build(session: Any, bucket: str) -> Any:
    """The pipeline, as a data scientist writes it with the SDK."""
    from sagemaker.core import image_uris
    from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.core.processing import Processor, ScriptProcessor
    from sagemaker.core.shapes import (
        Channel,
        DataSource,
        ProcessingInput,
        ProcessingOutput,
        ProcessingS3Input,
        ProcessingS3Output,
        S3DataSource,
    )
    from sagemaker.core.training.configs import Compute, OutputDataConfig
    from sagemaker.core.transformer import Transformer
    from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterString
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow import ConditionStep, ModelStep, Pipeline, ProcessingStep, TrainingStep, TransformStep
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.train.model_trainer import ModelTrainer

    input_uri = ParameterString(name="InputDataUri", default_value=f"s3://{bucket}/data/raw.csv")
    min_accuracy = ParameterFloat(name="MinAccuracy", default_value=0.5)
    xgboost_image = image_uris.retrieve("xgboost", region=REGION, version="1.7-1")

    def s3_in(name: str, uri: Any, local: str) -> Any:
        return ProcessingInput(
            input_name=name,
            s3_input=ProcessingS3Input(s3_uri=uri, local_path=local, s3_data_type="S3Prefix", s3_input_mode="File"),
        )

    def s3_out(name: str) -> Any:
        local = f"/opt/ml/processing/{'evaluation' if name == 'evaluation' else 'output/' + name}"
        return ProcessingOutput(
            output_name=name,
            s3_output=ProcessingS3Output(
                s3_uri=f"s3://{bucket}/out/{name}", local_path=local, s3_upload_mode="EndOfJob"
            ),
        )

    prepare = ProcessingStep(
        name="Prepare",
        step_args=ScriptProcessor(
            role=ROLE,
            image_uri=SKLEARN_IMAGE,
            command=["python3"],
            instance_count=1,
            instance_type="ml.m5.large",
            sagemaker_session=session,
        ).run(
            code=str(HERE / "prepare.py"),  # uploaded by the SDK into the embedded S3, at build time
            inputs=[s3_in("raw", input_uri, "/opt/ml/processing/input/raw")],
            outputs=[s3_out("train"), s3_out("test"), s3_out("batch")],
            arguments=["--own-download", f"s3://{bucket}/data/extra.csv"],
        ),
    )

    def output(name: str) -> Any:
        return prepare.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri

    trainer = ModelTrainer(
        training_image=xgboost_image,
        role=ROLE,
        sagemaker_session=session,
        compute=Compute(instance_type="ml.m5.large", instance_count=1),
        output_data_config=OutputDataConfig(s3_output_path=f"s3://{bucket}/model"),
        hyperparameters={"objective": "binary:logistic", "num_round": "3", "max_depth": "2", "eta": "0.5"},
    )
    train_channel = Channel(
        channel_name="train",
        data_source=DataSource(s3_data_source=S3DataSource(s3_data_type="S3Prefix", s3_uri=output("train"))),
        content_type="text/csv",
        input_mode="File",
    )
    train = TrainingStep(name="Train", step_args=trainer.train(input_data_config=[train_channel]))
    model_data = train.properties.ModelArtifacts.S3ModelArtifacts

    report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
    evaluate = ProcessingStep(
        name="Evaluate",
        step_args=Processor(
            role=ROLE,
            image_uri=xgboost_image,
            entrypoint=["python3", "/opt/ml/processing/code/evaluate.py"],
            instance_count=1,
            instance_type="ml.m5.large",
            sagemaker_session=session,
        ).run(
            inputs=[
                s3_in("code", f"s3://{bucket}/code/evaluate.py", "/opt/ml/processing/code"),
                s3_in("model", model_data, "/opt/ml/processing/model"),
                s3_in("test", output("test"), "/opt/ml/processing/test"),
            ],
            outputs=[s3_out("evaluation")],
        ),
        property_files=[report],
    )
    evaluation_uri = evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri
    builder = ModelBuilder(
        image_uri=xgboost_image,
        s3_model_data_url=model_data,
        role_arn=ROLE,
        sagemaker_session=session,
        instance_type="ml.m5.large",
        dependencies=None,
        log_level=None,
    )
    register = ModelStep(
        name="Register",
        step_args=builder.register(
            model_package_group_name="sdk-models",
            content_types=["text/csv"],
            response_types=["text/csv"],
            approval_status="PendingManualApproval",
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(
                    content_type="application/json", s3_uri=Join(on="/", values=[evaluation_uri, "evaluation.json"])
                )
            ),
        ),
    )
    model = ModelStep(name="CreateModel", step_args=builder.build())
    score = TransformStep(
        name="Score",
        step_args=Transformer(
            model_name=model.properties.ModelName,
            instance_count=1,
            instance_type="ml.m5.large",
            output_path=f"s3://{bucket}/scored",
            sagemaker_session=session,
        ).transform(data=output("batch"), content_type="text/csv", split_type="Line"),
    )
    gate = ConditionStep(
        name="AccuracyGate",
        conditions=[
            ConditionGreaterThanOrEqualTo(
                left=JsonGet(step_name="Evaluate", property_file=report, json_path="metrics.accuracy.value"),
                right=min_accuracy,
            )
        ],
        if_steps=[register, model, score],
        else_steps=[],
    )
    return Pipeline(
        name="sdk-pipeline",
        parameters=[input_uri, min_accuracy],
        steps=[prepare, train, evaluate, gate],
        sagemaker_session=session,
    )


def _host_opt_ml() -> set[str]:
    root = Path("/opt/ml")
    return {str(p) for p in root.rglob("*")} if root.exists() else set()


def _job_name(step: dict[str, Any], kind: str) -> str:
    return str(step["Metadata"][kind]["Arn"]).rsplit("/", 1)[1]


def test_an_sdk_pipeline_runs_unchanged_on_flywheel_up(live: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ENDPOINT_URL": str(live.aws.endpoint_url),
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "anything",
        "AWS_SECRET_ACCESS_KEY": "anything",
        "SAGEMAKER_VALIDATE_ROLE": "false",
    }.items():
        monkeypatch.setenv(name, value)
    before = _host_opt_ml()
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    # The default bucket named: without it the SDK asks STS for the account at STS's regional URL, which it
    # hard-codes (AWS_ENDPOINT_URL does not apply to that call). The SDK creates it in the embedded S3.
    session = PipelineSession(boto_session=boto3.Session(region_name=REGION), default_bucket=DEFAULT_BUCKET)
    bucket = session.default_bucket()
    assert bucket in [b["Name"] for b in client("s3").list_buckets()["Buckets"]]
    s3 = client("s3")
    rows = "label,x\n" + "".join(f"{int(i >= 12)},{i}\n" for i in range(24))  # learnable: label = x >= 12
    s3.put_object(Bucket=bucket, Key="data/raw.csv", Body=rows.encode())
    s3.put_object(Bucket=bucket, Key="data/extra.csv", Body=b"label,x\n1,100\n1,101\n")  # Prepare's own download
    s3.put_object(Bucket=bucket, Key="code/evaluate.py", Body=(HERE / "evaluate.py").read_bytes())

    pipeline = build(session, bucket)
    pipeline.upsert(role_arn=ROLE)
    execution = pipeline.start()

    sm = client("sagemaker")
    described = wait_for(sm, execution.arn, timeout=180)  # describe_pipeline_execution until it ends
    assert described["PipelineExecutionStatus"] == "Succeeded", sm.list_pipeline_execution_steps(
        PipelineExecutionArn=execution.arn
    )["PipelineExecutionSteps"]
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=execution.arn)["PipelineExecutionSteps"]
    by_name = {s["StepName"]: s for s in steps}
    assert {n: s["StepStatus"] for n, s in by_name.items()} == dict.fromkeys(STEPS, "Succeeded"), steps
    assert {n: next(iter(s["Metadata"])) for n, s in by_name.items()} == STEPS
    order = [s["StepName"] for s in reversed(steps)]  # newest first, as SageMaker lists them
    assert order[:4] == ["Prepare", "Train", "Evaluate", "AccuracyGate"] and order.index("Score") > order.index(
        "CreateModel"
    )
    assert by_name["AccuracyGate"]["Metadata"]["Condition"]["Outcome"] == "True"

    # Prepare: the SDK uploaded its script at build time; it read its own download (24 + 2 rows).
    prepare = sm.describe_processing_job(ProcessingJobName=_job_name(by_name["Prepare"], "ProcessingJob"))
    assert prepare["ProcessingJobStatus"] == "Completed"
    code = next(i for i in prepare["ProcessingInputs"] if i["InputName"] == "code")["S3Input"]["S3Uri"]
    assert code.startswith(f"s3://{bucket}/") and code.endswith("prepare.py")

    def lines(key: str) -> list[str]:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()

    assert len(lines("out/train/train.csv")) + len(lines("out/test/test.csv")) == 26

    # Train: the built-in algorithm (no entry point), its booster in model.tar.gz.
    training = sm.describe_training_job(TrainingJobName=_job_name(by_name["Train"], "TrainingJob"))
    assert training["TrainingJobStatus"] == "Completed"
    assert training["AlgorithmSpecification"]["TrainingImage"].endswith("/sagemaker-xgboost:1.7-1")
    assert "sagemaker_program" not in training.get("HyperParameters", {})
    model_uri = training["ModelArtifacts"]["S3ModelArtifacts"]

    evaluation = json.loads(s3.get_object(Bucket=bucket, Key="out/evaluation/evaluation.json")["Body"].read())
    assert evaluation["metrics"]["accuracy"]["value"] >= 0.9  # the booster learned x >= 12

    package = sm.describe_model_package(ModelPackageName=by_name["Register"]["Metadata"]["RegisterModel"]["Arn"])
    assert package["ModelPackageGroupName"] == "sdk-models"
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == model_uri

    model = sm.describe_model(ModelName=by_name["CreateModel"]["Metadata"]["Model"]["Arn"].rsplit("/", 1)[1])
    assert model["PrimaryContainer"]["ModelDataUrl"] == model_uri

    transform = sm.describe_transform_job(TransformJobName=_job_name(by_name["Score"], "TransformJob"))
    assert transform["TransformJobStatus"] == "Completed"
    assert transform["TransformOutput"]["S3OutputPath"].endswith("/scored")
    batch = [int(row.split(",")[0]) for row in lines("out/batch/batch.csv")]
    scores = [float(v) for v in lines("scored/batch.csv.out")]
    assert len(scores) == len(batch) == 13  # one prediction per batch row
    assert all((p >= 0.5) == (x >= 12) for p, x in zip(scores, batch, strict=True)), (scores, batch)

    assert _host_opt_ml() == before  # nothing written under the host's /opt/ml
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
