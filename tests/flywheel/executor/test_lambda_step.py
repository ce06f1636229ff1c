"""Lambda steps whose function is one of Flywheel's handlers run in-process; others are refused up front.

GIVEN a Lambda step whose FunctionArn names the data-arrival function, WHEN the pipeline runs, THEN the
handler is called with the step's resolved inputs as the event, its declared outputs are read (typed) from
the answer and later steps reference them; an answer without a declared output, or a handler that fails
(here: its configuration is missing), fails the step with a reason naming the function.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import lambdas.data_arrival.handler as data_arrival
from flywheel.embedded import EmbeddedAws
from flywheel.executor import FAILED, SUCCEEDED, PipelineExecutor
from flywheel.executor.lambdas import call_handler, function_name, handler_for

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:flywheel-local-churn-data-arrival"


def _definition(outputs: list[dict[str, str]]) -> str:
    lambda_step = {
        "Name": "Arrive",
        "Type": "Lambda",
        "FunctionArn": ARN,
        "OutputParameters": outputs,
        "Arguments": {"batch": {"Get": "Parameters.Batch"}, "fixed": 1},
    }
    gate = {
        "Name": "Started",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [
                {"Type": "GreaterThan", "LeftValue": {"Get": "Steps.Arrive.OutputParameters['Count']"}, "RightValue": 2}
            ],
            "IfSteps": [{"Name": "Done", "Type": "Fail", "Arguments": {"ErrorMessage": "count above 2"}}],
        },
    }
    params = [{"Name": "Batch", "Type": "String", "DefaultValue": "b-1"}]
    return json.dumps({"Version": "2020-12-01", "Parameters": params, "Steps": [lambda_step, gate]})


@pytest.fixture
def executor(embedded: EmbeddedAws, tmp_path: Path) -> PipelineExecutor:
    return PipelineExecutor(embedded, tmp_path / "work")


def test_the_handler_gets_the_inputs_and_its_outputs_feed_later_steps(
    executor: PipelineExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[dict[str, Any], str, str]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append((event, context.function_name, context.invoked_function_arn))
        return {"Count": "3", "Status": "started", "extra": True}

    monkeypatch.setattr(data_arrival, "lambda_handler", handler)
    outputs = [{"OutputName": "Count", "OutputType": "Integer"}, {"OutputName": "Status", "OutputType": "String"}]
    record = executor.execute(_definition(outputs), {"Batch": "b-7"})

    assert calls == [({"batch": "b-7", "fixed": 1}, "flywheel-local-churn-data-arrival", ARN)]
    arrive = record.step("Arrive")
    assert arrive is not None and arrive.status == SUCCEEDED
    assert arrive.metadata["Lambda"] == {
        "Arn": ARN,
        "Handler": "data_arrival",
        "OutputParameters": {"Count": 3, "Status": "started"},
    }
    assert record.failure_reason == "count above 2"  # Count (typed Integer) > 2 took the if branch


def test_a_missing_output_or_a_failing_handler_fails_the_step(
    executor: PipelineExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = executor.execute(_definition([{"OutputName": "Count", "OutputType": "Integer"}]))
    # The real handler, with no configuration in this process's environment.
    assert record.status == FAILED and record.failed_step == "Arrive"
    assert "Lambda function flywheel-local-churn-data-arrival (lambdas/data_arrival/handler.py) failed" in (
        record.failure_reason or ""
    )
    monkeypatch.setattr(data_arrival, "lambda_handler", lambda event, context: {"Other": 1})
    record = executor.execute(_definition([{"OutputName": "Count", "OutputType": "Integer"}]))
    assert "returned no output parameter 'Count' (it returned: Other)" in (record.failure_reason or "")


def test_function_names_map_to_handlers() -> None:
    assert function_name(ARN + ":live") == "flywheel-local-churn-data-arrival"
    assert function_name("my-fn:3") == "my-fn"
    assert handler_for("Flywheel-Dev-Team-DataArrivalFunction1A2B3C", "s") == "data_arrival"
    assert handler_for("arn:aws:lambda:eu-west-1:1:function:flywheel-dev-churn-batch-scoring", "s") == "batch_scoring"
    assert handler_for({"Get": "Parameters.Fn"}, "s") == ""  # checked when the step runs


def test_with_a_server_the_handler_runs_aimed_at_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler's boto3 clients read AWS_ENDPOINT_URL: with a server it is set for the call, then restored."""
    seen: dict[str, str | None] = {}

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.update({k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_REGION")})
        return {}

    monkeypatch.setattr(data_arrival, "lambda_handler", handler)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    call_handler("data_arrival", {}, function_arn=ARN, request_id="r", declared=[], endpoint_url="http://127.0.0.1:1")
    assert seen == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_ACCESS_KEY_ID": "flywheel-local",
        "AWS_REGION": "eu-west-1",
    }
    assert "AWS_ENDPOINT_URL" not in os.environ
