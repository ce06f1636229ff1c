"""StartPipelineExecution on the live SageMaker really runs the definition; Describe/List/Stop tell the truth.

Plain boto3 clients (a user's) against a ``flywheel up``-style server on 127.0.0.1; tiny stub step scripts.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import create_pipeline, wait_for
from runtime_helpers import STUB_BUCKET, definition, processing_step

from flywheel.executor.jobs import processes_with_token

pytestmark = [pytest.mark.enable_socket, pytest.mark.network_local]


def _gated_definition() -> str:
    """inspect (property file) -> condition on its score -> a Fail step on the else branch only."""
    check = {
        "Name": "ScoreHighEnough",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [
                {
                    "Type": "GreaterThanOrEqualTo",
                    "LeftValue": {
                        "Std:JsonGet": {
                            "PropertyFile": {"Get": "Steps.Inspect.PropertyFiles.Result"},
                            "Path": "score",
                        }
                    },
                    "RightValue": {"Get": "Parameters.MinScore"},
                }
            ],
            "IfSteps": [],
            "ElseSteps": [{"Name": "TooLow", "Type": "Fail", "Arguments": {"ErrorMessage": "score too low"}}],
        },
    }
    params = [{"Name": "MinScore", "Type": "Float", "DefaultValue": 0.5}]
    return definition([processing_step("Inspect", "inspect.py"), check], params)


def test_an_execution_runs_and_reports_its_steps_jobs_and_outputs(client: Any, stub_code: str) -> None:
    sm, s3 = client("sagemaker"), client("s3")
    create_pipeline(sm, "gated", _gated_definition())
    token = "same-token-" * 4
    arn = sm.start_pipeline_execution(PipelineName="gated", ClientRequestToken=token)["PipelineExecutionArn"]
    # The same ClientRequestToken again starts nothing new (SageMaker's idempotency).
    assert sm.start_pipeline_execution(PipelineName="gated", ClientRequestToken=token)["PipelineExecutionArn"] == arn
    described = wait_for(sm, arn)
    assert described["PipelineExecutionStatus"] == "Succeeded", described
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    # Most recent first, as SageMaker lists them; the else branch never ran.
    assert [(s["StepName"], s["StepStatus"]) for s in steps] == [
        ("ScoreHighEnough", "Succeeded"),
        ("Inspect", "Succeeded"),
    ]
    assert steps[0]["Metadata"] == {"Condition": {"Outcome": "True"}}
    job_arn = steps[1]["Metadata"]["ProcessingJob"]["Arn"]
    assert job_arn.startswith("arn:aws:sagemaker:eu-west-1:123456789012:processing-job/pipelines-")
    assert steps[1]["EndTime"] >= steps[1]["StartTime"]
    job = sm.describe_processing_job(ProcessingJobName=job_arn.rsplit("/", 1)[1])
    assert job["ProcessingJobStatus"] == "Completed" and job["ProcessingJobArn"] == job_arn
    assert job["AppSpecification"]["ContainerEntrypoint"][0] == "python3"
    output = job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    bucket, _, prefix = output.removeprefix("s3://").partition("/")
    assert bucket == STUB_BUCKET and arn.rsplit("/", 1)[1] in prefix
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    assert f"{prefix}/result.json" in keys  # the job really ran and its output was uploaded
    summaries = sm.list_pipeline_executions(PipelineName="gated")["PipelineExecutionSummaries"]
    assert [(s["PipelineExecutionArn"], s["PipelineExecutionStatus"]) for s in summaries] == [(arn, "Succeeded")]
    params = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    assert params == [{"Name": "MinScore", "Value": "0.5"}]


def test_a_failing_job_fails_the_execution_with_its_reason(client: Any, stub_code: str) -> None:
    sm = client("sagemaker")
    create_pipeline(
        sm, "breaks", definition([processing_step("Broken", "fail.py"), processing_step("Next", "inspect.py")])
    )
    arn = sm.start_pipeline_execution(PipelineName="breaks")["PipelineExecutionArn"]
    described = wait_for(sm, arn)
    assert described["PipelineExecutionStatus"] == "Failed"
    assert described["FailureReason"].startswith("Step Broken failed: AlgorithmError")
    (step,) = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert step["StepStatus"] == "Failed" and step["FailureReason"].startswith("AlgorithmError")
    job = sm.describe_processing_job(ProcessingJobName=step["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[1])
    assert job["ProcessingJobStatus"] == "Failed" and job["FailureReason"] == step["FailureReason"]


def test_stop_kills_the_running_job_and_ends_stopped(client: Any, stub_code: str, live: Any) -> None:
    sm = client("sagemaker")
    create_pipeline(
        sm, "slow", definition([processing_step("Sleep", "sleep.py"), processing_step("After", "inspect.py")])
    )
    arn = sm.start_pipeline_execution(PipelineName="slow")["PipelineExecutionArn"]
    execution_id = arn.rsplit("/", 1)[1]
    owner = live.runtime.state.root / "jobs" / execution_id / ".owner.json"
    deadline = time.monotonic() + 30
    token = None
    while not token and time.monotonic() < deadline:  # until the job process is running
        if owner.exists():
            import json

            candidate = json.loads(owner.read_text())["token"]
            token = candidate if processes_with_token(candidate) else None
        time.sleep(0.05)
    assert token, "the sleeping job never started"
    sm.stop_pipeline_execution(PipelineExecutionArn=arn)
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] in (
        "Stopping",
        "Stopped",
    )
    described = wait_for(sm, arn, timeout=20)
    assert described["PipelineExecutionStatus"] == "Stopped"
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert [(s["StepName"], s["StepStatus"]) for s in steps] == [("Sleep", "Stopped")]  # "After" never started
    assert processes_with_token(token) == []  # the job process is gone (it would sleep 30 s)
    with pytest.raises(ClientError) as refused:
        sm.stop_pipeline_execution(PipelineExecutionArn=arn)
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_parameters_are_checked_at_start_as_sagemaker_does(client: Any, stub_code: str) -> None:
    sm = client("sagemaker")
    params = [{"Name": "InputUri", "Type": "String"}, {"Name": "Rounds", "Type": "Integer", "DefaultValue": 3}]
    create_pipeline(sm, "needs-input", definition([processing_step("Inspect", "inspect.py")], params))
    cases = {
        "Parameter 'InputUri' is undefined.": [],
        "Unknown parameter 'Nope'": [{"Name": "InputUri", "Value": "s3://x/y"}, {"Name": "Nope", "Value": "1"}],
        'Parameter InputUri value "" is too short (length: 0, required minimum: 1).': [
            {"Name": "InputUri", "Value": ""}
        ],
    }
    for message, given in cases.items():
        with pytest.raises(ClientError) as refused:
            sm.start_pipeline_execution(PipelineName="needs-input", PipelineParameters=given)
        assert refused.value.response["Error"] == {"Code": "ValidationException", "Message": message}
    assert sm.list_pipeline_executions(PipelineName="needs-input")["PipelineExecutionSummaries"] == []
    for call, kwargs in (
        (
            sm.describe_pipeline_execution,
            {"PipelineExecutionArn": "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/x/execution/nope"},
        ),
        (sm.start_pipeline_execution, {"PipelineName": "no-such-pipeline"}),
    ):
        with pytest.raises(ClientError) as missing:
            call(**kwargs)
        assert missing.value.response["Error"]["Code"] in ("ResourceNotFound", "ValidationException")
        assert "arn:" in missing.value.response["Error"]["Message"] or "no-such" in str(missing.value)


@pytest.mark.parametrize("step_type", ["EMR", "Tuning", "Clarify"])
def test_a_step_type_the_executor_cannot_run_fails_the_execution_naming_it(client: Any, step_type: str) -> None:
    sm = client("sagemaker")
    name = f"unsupported-{step_type.lower()}"
    create_pipeline(sm, name, definition([{"Name": "Unsupported", "Type": step_type, "Arguments": {}}]))
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    described = wait_for(sm, arn)
    assert described["PipelineExecutionStatus"] == "Failed"
    assert "'Unsupported'" in described["FailureReason"] and f"'{step_type}'" in described["FailureReason"]


def test_two_clients_starting_at_once_both_run_with_their_own_parameters(client: Any, stub_code: str) -> None:
    create_pipeline(client("sagemaker"), "gated", _gated_definition())
    barrier = threading.Barrier(2)
    arns: dict[str, str] = {}

    clients = {t: client("sagemaker") for t in ("0.1", "0.95")}  # each its own client, as two users have

    def start(threshold: str) -> None:
        sm = clients[threshold]
        barrier.wait()
        arns[threshold] = sm.start_pipeline_execution(
            PipelineName="gated", PipelineParameters=[{"Name": "MinScore", "Value": threshold}]
        )["PipelineExecutionArn"]

    threads = [threading.Thread(target=start, args=(t,)) for t in ("0.1", "0.95")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sm = client("sagemaker")
    assert len(set(arns.values())) == 2
    assert wait_for(sm, arns["0.1"])["PipelineExecutionStatus"] == "Succeeded"
    failed = wait_for(sm, arns["0.95"])
    assert (failed["PipelineExecutionStatus"], failed["FailureReason"]) == ("Failed", "score too low")
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arns["0.95"])["PipelineExecutionSteps"]
    assert [s["StepName"] for s in steps] == ["TooLow", "ScoreHighEnough", "Inspect"]
    assert steps[0]["Metadata"] == {"Fail": {"ErrorMessage": "score too low"}}
    assert steps[1]["Metadata"] == {"Condition": {"Outcome": "False"}}
    for arn in arns.values():  # each ran its own Inspect job
        steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn, SortOrder="Ascending")[
            "PipelineExecutionSteps"
        ]
        assert steps[0]["StepName"] == "Inspect" and steps[0]["StepStatus"] == "Succeeded"
        assert arn.rsplit("/", 1)[1] in steps[0]["Metadata"]["ProcessingJob"]["Arn"]
