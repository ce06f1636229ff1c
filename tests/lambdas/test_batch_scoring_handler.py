"""The batch-scoring launcher Lambda in-process under moto: schedule → runs, finished run → metrics.

GIVEN a moto raw bucket with batches under ``churn/scoring/incoming/``, the team's registry, pipeline and
lifecycle table, WHEN ``lambda_handler`` gets the schedule's event, THEN it scores each complete batch once
with the newest Approved model — and without one it answers ``no-approved-model`` and starts nothing; a
finished execution's summary becomes CloudWatch metrics; anything else is rejected with no side effect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from lambdas.batch_scoring import handler
from lambdas.batch_scoring.launch import METRICS_NAMESPACE, model_name

from .conftest import REGION
from .support import ACCOUNT, TABLE, FakeLambdaContext, assert_clean_error, create_table, table_items

RAW = "flywheel-local-raw"
REPORTS = "flywheel-local-reports"
PIPELINE = "flywheel-local-churn-batch-scoring"
GROUP = "flywheel-local-churn"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/flywheel/local/scoring/r"
ENV = {
    "TEAM": "churn",
    "ACCOUNT_ID": ACCOUNT,
    "MODEL_PACKAGE_GROUP": GROUP,
    "PIPELINE_NAME": PIPELINE,
    "RAW_BUCKET": RAW,
    "REPORTS_BUCKET": REPORTS,
    "MODEL_ROLE_ARN": ROLE,
    "SUBNET_IDS": "subnet-0f1a0c0a1000000a1",
    "SECURITY_GROUP_IDS": "sg-0f1a0c0a1000000a1",
    "IDEMPOTENCY_TABLE": TABLE,
}
TICK = {"source": "flywheel.scoring-schedule", "team": "churn"}


@pytest.fixture
def scoring(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in (RAW, REPORTS):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    for batch, complete in (("b1", True), ("b2", True), ("b3", False)):
        s3.put_object(Bucket=RAW, Key=f"churn/scoring/incoming/{batch}/part.csv", Body=b"customer_id\nC1\n")
        if complete:
            s3.put_object(Bucket=RAW, Key=f"churn/scoring/incoming/{batch}/_SUCCESS", Body=b"")
    s3.put_object(Bucket=RAW, Key="churn/incoming/t1/_SUCCESS", Body=b"")  # a training batch: not scored
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    sagemaker.create_pipeline(
        PipelineName=PIPELINE,
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/flywheel/local/pipeline/p",
    )
    create_table(boto3.client("dynamodb", region_name=REGION))
    handler.configure(ENV)
    yield handler
    handler.configure({})


def _register(status: str) -> str:
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": "1.dkr.ecr.eu-west-1.amazonaws.com/x:1", "ModelDataUrl": "s3://a/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]
    if status != "PendingManualApproval":
        sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
    return str(arn)


def _executions() -> list[dict[str, Any]]:
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    return list(sagemaker.list_pipeline_executions(PipelineName=PIPELINE)["PipelineExecutionSummaries"])


def _invoke(event: Any) -> Any:
    return handler.lambda_handler(event, FakeLambdaContext(function_name="flywheel-local-churn-scoring"))


def test_without_an_approved_model_the_tick_starts_nothing_and_says_why(scoring: Any) -> None:
    _register("PendingManualApproval")
    _register("Rejected")
    response = _invoke(TICK)
    assert response["status"] == "no-approved-model" and response["batches"] == 2
    assert "team churn has no Approved model in its registry (flywheel-local-churn)" in response["message"]
    assert _executions() == [] and table_items(boto3.client("dynamodb", region_name=REGION)) == []


def test_a_tick_scores_each_complete_batch_once_with_the_newest_approved_model(scoring: Any) -> None:
    _register("Approved")
    newest = _register("Approved")
    _register("PendingManualApproval")  # newer, but not approved
    response = _invoke(TICK)
    assert response["status"] == "launched" and response["package_arn"] == newest
    assert response["model"] == model_name(PIPELINE, 2) == "flywheel-local-churn-batch-scoring-v2"
    assert sorted(response["started"]) == [
        f"s3://{RAW}/churn/scoring/incoming/b1/",
        f"s3://{RAW}/churn/scoring/incoming/b2/",
    ]
    model = boto3.client("sagemaker", region_name=REGION).describe_model(ModelName=response["model"])
    assert model["PrimaryContainer"]["ModelPackageName"] == newest and model["ExecutionRoleArn"] == ROLE
    assert len(_executions()) == 2
    # a second tick (or a retry) starts nothing twice
    again = _invoke(TICK)
    assert again["status"] == "launched" and again["started"] == {} and len(again["skipped"]) == 2
    assert len(_executions()) == 2


def test_a_finished_run_publishes_its_row_counts(scoring: Any) -> None:
    execution = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}/execution/abc123"
    summary = {"rows_in": 10, "rows_scored": 9, "rows_rejected": 1, "passed": True}
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=REPORTS, Key=f"{PIPELINE}/abc123/summary/summary.json", Body=json.dumps(summary).encode()
    )
    event = {
        "version": "0",
        "id": "e1",
        "detail-type": "SageMaker Model Building Pipeline Execution Status Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "region": REGION,
        "detail": {
            "pipelineArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}",
            "pipelineExecutionArn": execution,
            "currentPipelineExecutionStatus": "Succeeded",
        },
    }
    response = _invoke(event)
    assert response["status"] == "published"
    assert response["metrics"] == ["ScoringRunsSucceeded", "ScoringRowsIn", "ScoringRowsScored", "ScoringRowsRejected"]
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    names = {m["MetricName"] for m in cloudwatch.list_metrics(Namespace=METRICS_NAMESPACE)["Metrics"]}
    assert {"ScoringRowsScored", "ScoringRunsSucceeded"} <= names
    # a run that failed before writing its summary is counted as failed
    failed = {**event, "detail": {**event["detail"], "pipelineExecutionArn": execution.replace("abc123", "def456"),
                                   "currentPipelineExecutionStatus": "Failed"}}  # fmt: skip
    assert _invoke(failed)["metrics"] == ["ScoringRunsFailed"]


STATUS_CHANGE = "SageMaker Model Building Pipeline Execution Status Change"
FOREIGN: list[Any] = [
    {"source": "flywheel.scoring-schedule", "team": "diagnostics"},
    {"detail-type": STATUS_CHANGE, "account": "999999999999", "detail": {}},
    {"detail-type": STATUS_CHANGE, "account": ACCOUNT,
     "detail": {"pipelineArn": "arn:aws:sagemaker:eu-west-1:1:pipeline/other", "pipelineExecutionArn": "x"}},
    {"detail-type": "Object Created", "source": "aws.s3"},
    "not json",
    [],
]  # fmt: skip


def test_anything_else_is_rejected_cleanly_with_no_side_effect(scoring: Any) -> None:
    _register("Approved")
    for event in FOREIGN:
        assert_clean_error(_invoke(event))
    assert _executions() == []
    assert not boto3.client("cloudwatch", region_name=REGION).list_metrics(Namespace=METRICS_NAMESPACE)["Metrics"]
