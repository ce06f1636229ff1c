"""A pipeline written with the SageMaker Python SDK (v3), run unchanged on ``flywheel up``.

GIVEN a ``flywheel up``-style server on 127.0.0.1 and a pipeline built in this test with the SDK —
``Prepare`` (ScriptProcessor: the SDK uploads the script into the embedded S3 while building the
definition) → ``Train`` (script mode, ``sagemaker_program``/``sagemaker_submit_directory``) →
``Evaluate`` (a property file) → ``AccuracyGate`` (Condition on ``JsonGet``) → ``Register`` (ModelStep
``register``) — WHEN it is upserted, started and waited on through the SDK and boto3 pointed at the server
with ``AWS_ENDPOINT_URL``, THEN every step ran with the status and metadata SageMaker reports, the
package is registered, nothing was written under the host's ``/opt/ml``.

Steps are listed in ``STEPS`` (name, type); a new step (built-in XGBoost, Model, Transform) adds its
builder to ``build`` and its expectation there.

With the job sandbox and job AWS access of issue 14 part 2 (``PipelineExecutor(aws_endpoint=...)``),
``Prepare`` also downloads an input with its own boto3 client and the scripts use their literal
``/opt/ml`` defaults; without them, the paths are passed as arguments (which the executor maps).
"""

from __future__ import annotations

import inspect
import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from flywheel.executor import PipelineExecutor

# ~11 s of CPU (the SDK's import and build, five jobs): in `make test-slow`.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.enable_socket,
    pytest.mark.network_local,
    pytest.mark.allow_hosts(["127.0.0.1"]),
]

HERE = Path(__file__).parent / "sdk_steps"
REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/sdk-pipeline"
DEFAULT_BUCKET = "sagemaker-eu-west-1-123456789012"
SKLEARN_IMAGE = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
#: Jobs get the embedded AWS and a private /opt/ml (issue 14 part 2) on this branch?
JOBS_SANDBOXED = "aws_endpoint" in inspect.signature(PipelineExecutor.__init__).parameters
STEPS = [
    ("Register", "RegisterModel"),
    ("AccuracyGate", "Condition"),
    ("Evaluate", "Processing"),
    ("Train", "Training"),
    ("Prepare", "Processing"),
]


def _sourcedir() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(HERE / "train.py", arcname="train.py")
    return buffer.getvalue()


def build(session: Any, bucket: str) -> Any:
    """The pipeline, as a data scientist writes it with the SDK."""
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
    from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterString
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow import ConditionStep, ModelStep, Pipeline, ProcessingStep, TrainingStep
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.train.model_trainer import ModelTrainer

    input_uri = ParameterString(name="InputDataUri", default_value=f"s3://{bucket}/data/raw.csv")
    min_accuracy = ParameterFloat(name="MinAccuracy", default_value=0.5)

    def s3_in(name: str, uri: Any, local: str) -> Any:
        return ProcessingInput(
            input_name=name,
            s3_input=ProcessingS3Input(s3_uri=uri, local_path=local, s3_data_type="S3Prefix", s3_input_mode="File"),
        )

    def s3_out(name: str, local: str) -> Any:
        return ProcessingOutput(
            output_name=name,
            s3_output=ProcessingS3Output(
                s3_uri=f"s3://{bucket}/out/{name}", local_path=local, s3_upload_mode="EndOfJob"
            ),
        )

    def paths(**named: str) -> list[str]:
        """Container paths as arguments (mapped by the executor) unless the jobs have a private /opt/ml."""
        return [] if JOBS_SANDBOXED else [x for k, v in named.items() for x in (f"--{k}", v)]

    prepare_args = paths(raw="/opt/ml/processing/input/raw", out="/opt/ml/processing/output")
    if JOBS_SANDBOXED:
        prepare_args += ["--own-download", f"s3://{bucket}/data/extra.csv"]
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
            outputs=[
                s3_out("train", "/opt/ml/processing/output/train"),
                s3_out("test", "/opt/ml/processing/output/test"),
            ],
            arguments=prepare_args,
        ),
    )

    def channel(name: str, uri: Any) -> Any:
        return Channel(
            channel_name=name,
            data_source=DataSource(s3_data_source=S3DataSource(s3_data_type="S3Prefix", s3_uri=uri)),
            input_mode="File",
        )

    trainer = ModelTrainer(
        training_image=SKLEARN_IMAGE,
        role=ROLE,
        sagemaker_session=session,
        compute=Compute(instance_type="ml.m5.large", instance_count=1),
        output_data_config=OutputDataConfig(s3_output_path=f"s3://{bucket}/model"),
        hyperparameters={
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": f"s3://{bucket}/code/sourcedir.tar.gz",
            "shift": "0.0",
        },
    )
    train_uri = prepare.properties.ProcessingOutputConfig.Outputs["train"].S3Output.S3Uri
    train = TrainingStep(name="Train", step_args=trainer.train(input_data_config=[channel("train", train_uri)]))
    model_data = train.properties.ModelArtifacts.S3ModelArtifacts

    report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
    evaluate = ProcessingStep(
        name="Evaluate",
        step_args=Processor(
            role=ROLE,
            image_uri=SKLEARN_IMAGE,
            entrypoint=["python3", "/opt/ml/processing/code/evaluate.py"],
            instance_count=1,
            instance_type="ml.m5.large",
            sagemaker_session=session,
        ).run(
            inputs=[
                s3_in("code", f"s3://{bucket}/code/evaluate.py", "/opt/ml/processing/code"),
                s3_in("model", model_data, "/opt/ml/processing/model"),
                s3_in(
                    "test",
                    prepare.properties.ProcessingOutputConfig.Outputs["test"].S3Output.S3Uri,
                    "/opt/ml/processing/test",
                ),
            ],
            outputs=[s3_out("evaluation", "/opt/ml/processing/evaluation")],
            arguments=paths(
                model="/opt/ml/processing/model", test="/opt/ml/processing/test", out="/opt/ml/processing/evaluation"
            ),
        ),
        property_files=[report],
    )
    evaluation_uri = evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri
    register = ModelStep(
        name="Register",
        step_args=ModelBuilder(
            image_uri=SKLEARN_IMAGE,
            s3_model_data_url=model_data,
            role_arn=ROLE,
            sagemaker_session=session,
            instance_type="ml.m5.large",
            dependencies=None,
            log_level=None,
        ).register(
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
    gate = ConditionStep(
        name="AccuracyGate",
        conditions=[
            ConditionGreaterThanOrEqualTo(
                left=JsonGet(step_name="Evaluate", property_file=report, json_path="metrics.accuracy.value"),
                right=min_accuracy,
            )
        ],
        if_steps=[register],
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
    rows = "label,x\n" + "".join(f"{int(i % 3 != 0)},{i}\n" for i in range(30))
    s3.put_object(Bucket=bucket, Key="data/raw.csv", Body=rows.encode())
    s3.put_object(Bucket=bucket, Key="data/extra.csv", Body=b"label,x\n1,100\n1,101\n")
    s3.put_object(Bucket=bucket, Key="code/sourcedir.tar.gz", Body=_sourcedir())
    s3.put_object(Bucket=bucket, Key="code/evaluate.py", Body=(HERE / "evaluate.py").read_bytes())

    pipeline = build(session, bucket)
    pipeline.upsert(role_arn=ROLE)
    execution = pipeline.start()
    execution.wait(delay=1, max_attempts=120)

    sm = client("sagemaker")
    described = sm.describe_pipeline_execution(PipelineExecutionArn=execution.arn)
    assert described["PipelineExecutionStatus"] == "Succeeded", described
    steps = execution.list_steps()
    assert [(s["StepName"], s["StepStatus"]) for s in steps] == [(n, "Succeeded") for n, _ in STEPS], steps
    by_name = {s["StepName"]: s for s in steps}
    assert by_name["AccuracyGate"]["Metadata"]["Condition"]["Outcome"] == "True"
    package_arn = by_name["Register"]["Metadata"]["RegisterModel"]["Arn"]
    package = sm.describe_model_package(ModelPackageName=package_arn)
    assert package["ModelPackageGroupName"] == "sdk-models"
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    training = sm.describe_training_job(
        TrainingJobName=by_name["Train"]["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[1]
    )
    model_uri = training["ModelArtifacts"]["S3ModelArtifacts"]
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == model_uri
    # The SDK uploaded Prepare's script into the embedded S3 while building the definition.
    prepare = sm.describe_processing_job(
        ProcessingJobName=by_name["Prepare"]["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[1]
    )
    code = next(i for i in prepare["ProcessingInputs"] if i["InputName"] == "code")["S3Input"]["S3Uri"]
    assert code.startswith(f"s3://{bucket}/") and code.endswith("prepare.py")
    evaluation = s3.get_object(Bucket=bucket, Key="out/evaluation/evaluation.json")["Body"].read()
    assert b'"accuracy"' in evaluation
    expected_rows = 32 if JOBS_SANDBOXED else 30  # + the two rows Prepare downloaded itself
    train_rows = s3.get_object(Bucket=bucket, Key="out/train/train.csv")["Body"].read().decode().splitlines()
    test_rows = s3.get_object(Bucket=bucket, Key="out/test/test.csv")["Body"].read().decode().splitlines()
    assert len(train_rows) + len(test_rows) == expected_rows
    assert _host_opt_ml() == before  # nothing written under the host's /opt/ml
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
