"""The data-arrival Lambda in-process under moto: validation, idempotency, dependency faults.

GIVEN the committed ``Object Created`` events (tests/events/), a moto raw bucket, pipeline and lifecycle
table, WHEN ``lambda_handler`` runs with a fake Lambda context, THEN it starts the team's pipeline once
per completed batch — and for anything else answers with a structured error and touches nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from lambdas.common.env import ConfigError
from lambdas.data_arrival import handler
from lambdas.data_arrival.config import ArrivalConfig
from lambdas.data_arrival.logic import client_request_token
from tests.events import DELETE, load_event

from .conftest import REGION
from .support import (
    ACCOUNT,
    TABLE,
    FakeLambdaContext,
    Faults,
    Kill,
    assert_clean_error,
    create_table,
    kill_on,
    no_sleep,
    table_items,
)

RAW = "flywheel-local-raw"
PIPELINE = "flywheel-local-churn-tabular"
MARKER_EVENT = "s3_object_created_marker"
BATCH = "churn/incoming/batch-1/"
ENV = {
    "TEAM": "churn",
    "RAW_BUCKET": RAW,
    "PIPELINE_NAME": PIPELINE,
    "MODEL_PACKAGE_GROUP": "flywheel-local-churn",
    "ACCOUNT_ID": ACCOUNT,
    "IDEMPOTENCY_TABLE": TABLE,
}


@pytest.fixture
def arrival(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The handler module configured for team churn, with its AWS resources in moto."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=RAW, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=RAW, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=RAW, Key=f"{BATCH}churn.csv", Body=b"a,b\n1,2\n")
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model_package_group(ModelPackageGroupName="flywheel-local-churn")
    sagemaker.create_pipeline(
        PipelineName=PIPELINE,
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/flywheel-local-churn-execution",
    )
    create_table(boto3.client("dynamodb", region_name=REGION))
    handler.configure(ENV)
    yield handler
    handler.configure({})


def _invoke(event: Any, context: FakeLambdaContext | None = None) -> Any:
    return handler.lambda_handler(event, context or FakeLambdaContext())


def _executions() -> list[dict[str, Any]]:
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    summaries: list[dict[str, Any]] = sagemaker.list_pipeline_executions(PipelineName=PIPELINE)[
        "PipelineExecutionSummaries"
    ]
    return summaries


def _items() -> list[dict[str, Any]]:
    return table_items(boto3.client("dynamodb", region_name=REGION))


def _client(service: str) -> Any:
    return handler.runtime().clients.client(service)


# The happy path and the batch rule ------------------------------------------------------------------


def test_the_batch_marker_starts_the_pipeline_on_the_batch_folder(arrival: Any) -> None:
    # GIVEN a landed data file and its _SUCCESS marker; WHEN the marker's event arrives
    response = _invoke(load_event(MARKER_EVENT))
    # THEN one execution of the team's pipeline reads exactly that batch folder
    assert response["status"] == "started"
    assert response["input_data_uri"] == f"s3://{RAW}/{BATCH}"
    assert response["parameters"] == {"InputDataUri": f"s3://{RAW}/{BATCH}", "ChampionMetric": "none"}
    assert len(_executions()) == 1


def test_data_files_alone_start_nothing(arrival: Any) -> None:
    # GIVEN the event of a data file (the batch's marker has not landed)
    response = _invoke(load_event("s3_object_created"))
    # THEN nothing starts and nothing is claimed
    assert response["status"] == "skipped" and "_SUCCESS" in response["reason"]
    assert _executions() == []
    assert not any(item["id"]["S"].startswith("claim#") for item in _items())


def test_a_marker_in_a_folder_without_data_starts_nothing(arrival: Any) -> None:
    event = load_event(MARKER_EVENT, **{"detail.object.key": "churn/incoming/empty/_SUCCESS"})
    response = _invoke(event)
    assert response["status"] == "skipped" and "no data file" in response["reason"]
    assert _executions() == []


def test_a_marker_next_to_an_empty_data_file_starts_nothing(arrival: Any) -> None:
    # GIVEN a folder whose only data file is empty (a failed upload), and its marker
    boto3.client("s3", region_name=REGION).put_object(Bucket=RAW, Key="churn/incoming/empty-file/churn.csv", Body=b"")
    event = load_event(MARKER_EVENT, **{"detail.object.key": "churn/incoming/empty-file/_SUCCESS"})
    response = _invoke(event)
    assert response["status"] == "skipped" and "empty files do not count" in response["reason"]
    assert _executions() == []


def test_the_start_carries_the_object_versions_client_request_token(arrival: Any) -> None:
    sends = Faults(_client("sagemaker"), "StartPipelineExecution", "ThrottlingException", times=0).sends
    event = load_event(MARKER_EVENT)
    _invoke(event)
    token = client_request_token(RAW, f"{BATCH}_SUCCESS", event["detail"]["object"]["version-id"])
    assert [s["ClientRequestToken"] for s in sends] == [token]
    assert 32 <= len(token) <= 128
    assert token != client_request_token(RAW, f"{BATCH}_SUCCESS", "another-version")


def test_without_a_marker_setting_the_first_data_file_starts_the_batch(arrival: Any) -> None:
    handler.configure({**ENV, "BATCH_COMPLETE_MARKER": ""})
    assert _invoke(load_event("s3_object_created"))["status"] == "started"
    assert len(_executions()) == 1


# Idempotency --------------------------------------------------------------------------------------


def test_a_redelivered_event_starts_one_execution(arrival: Any) -> None:
    event = load_event(MARKER_EVENT)
    first = _invoke(event)
    again = _invoke(load_event(MARKER_EVENT, id="a-redelivery"))
    assert again == first  # Powertools answers with the first response
    assert len(_executions()) == 1


def test_a_new_version_of_the_marker_is_a_duplicate_batch(arrival: Any) -> None:
    _invoke(load_event(MARKER_EVENT))
    again = _invoke(load_event(MARKER_EVENT, **{"detail.object.version-id": "v2-of-the-marker"}))
    assert again["status"] == "duplicate"  # layer 1 lets it through (new key); the batch claim holds
    assert len(_executions()) == 1


def test_a_timed_out_first_attempt_can_be_retried(arrival: Any) -> None:
    # GIVEN a first attempt killed at its deadline while calling StartPipelineExecution
    sent = kill_on(_client("sagemaker"), "StartPipelineExecution")
    with pytest.raises(Kill):
        _invoke(load_event(MARKER_EVENT), FakeLambdaContext(remaining_ms=1))
    statuses = [item["status"]["S"] for item in _items() if "status" in item]
    assert statuses == ["INPROGRESS"]  # Powertools' record of the killed attempt is left behind
    # WHEN Lambda retries after the deadline THEN it runs (register_lambda_context), once, same token
    response = _invoke(load_event(MARKER_EVENT))
    assert response["status"] == "started"
    assert len(_executions()) == 1
    assert len(sent) == 2 and sent[0]["ClientRequestToken"] == sent[1]["ClientRequestToken"]


def test_a_retry_before_the_first_attempts_deadline_is_refused_for_later(arrival: Any) -> None:
    kill_on(_client("sagemaker"), "StartPipelineExecution")
    with pytest.raises(Kill):
        _invoke(load_event(MARKER_EVENT), FakeLambdaContext(remaining_ms=600_000))
    with pytest.raises(IdempotencyAlreadyInProgressError):  # raised: Lambda retries it later
        _invoke(load_event(MARKER_EVENT))
    assert _executions() == []


# Bad input: structured error, no side effect -------------------------------------------------------

BAD_EVENTS: dict[str, Any] = {
    "empty": {},
    "not-an-object": [1, 2],
    "malformed-json-text": '{"source": "aws.s3", "detail": ',
    "missing-detail": load_event(MARKER_EVENT, detail=DELETE),
    "missing-key": load_event(MARKER_EVENT, **{"detail.object.key": DELETE}),
    "key-wrong-type": load_event(MARKER_EVENT, **{"detail.object.key": 42}),
    "size-wrong-type": load_event(MARKER_EVENT, **{"detail.object.size": "0"}),
    "detail-is-a-string": load_event(MARKER_EVENT, detail='{"bucket": {"name": "x"}}'),
    "unknown-detail-type": load_event(MARKER_EVENT, **{"detail-type": "Object Deleted"}),
    "oversize": load_event(MARKER_EVENT, **{"detail.padding": "x" * 300_000}),
    "oversize-text": json.dumps(load_event(MARKER_EVENT, **{"detail.padding": "x" * 300_000})),
    "other-team-prefix": load_event(MARKER_EVENT, **{"detail.object.key": "diagnostics/incoming/b/_SUCCESS"}),
    "outside-incoming": load_event(MARKER_EVENT, **{"detail.object.key": "churn/_keys/_SUCCESS"}),
    "foreign-bucket": load_event(MARKER_EVENT, **{"detail.bucket.name": "someone-elses-bucket"}),
    "foreign-account": load_event(MARKER_EVENT, account="999999999999"),
    "path-traversal": load_event(MARKER_EVENT, **{"detail.object.key": "churn/incoming/../../etc/_SUCCESS"}),
    "encoded-traversal": load_event(MARKER_EVENT, **{"detail.object.key": "churn/incoming/%2e%2e/b/_SUCCESS"}),
    "control-characters": load_event(MARKER_EVENT, **{"detail.object.key": "churn/incoming/b\n1/_SUCCESS"}),
    "oversize-key": load_event(MARKER_EVENT, **{"detail.object.key": "churn/incoming/" + "k" * 1100 + "/_SUCCESS"}),
}


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_a_bad_event_is_rejected_without_side_effects(arrival: Any, case: str) -> None:
    response = _invoke(BAD_EVENTS[case])
    assert_clean_error(response)
    assert _executions() == []
    assert _items() == []


def test_rejections_name_the_problem(arrival: Any) -> None:
    assert _invoke(BAD_EVENTS["malformed-json-text"])["error"]["code"] == "MalformedJson"
    assert _invoke(BAD_EVENTS["oversize"])["error"]["code"] == "EventTooLarge"
    assert "foreign bucket" in _invoke(BAD_EVENTS["foreign-bucket"])["error"]["message"]
    assert "'..'" in _invoke(BAD_EVENTS["path-traversal"])["error"]["message"]


# Dependency faults --------------------------------------------------------------------------------


def test_throttling_is_retried_by_botocore_then_succeeds(arrival: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    slept = no_sleep(monkeypatch)
    faults = Faults(_client("sagemaker"), "StartPipelineExecution", "ThrottlingException", times=2)
    response = _invoke(load_event(MARKER_EVENT))
    assert response["status"] == "started"
    assert len(faults.sends) == 3 and len(slept) == 2  # two retries, backed off, then success
    assert len(_executions()) == 1


def test_throttling_beyond_the_attempts_is_raised_and_releases_the_claim(
    arrival: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_sleep(monkeypatch)
    faults = Faults(_client("sagemaker"), "StartPipelineExecution", "ThrottlingException", times=99)
    with pytest.raises(Exception, match="ThrottlingException"):
        _invoke(load_event(MARKER_EVENT))
    assert len(faults.sends) == 5  # bounded: standard mode, 5 attempts
    assert _items() == []  # neither Powertools' record nor the batch claim blocks Lambda's retry


def test_access_denied_on_the_start_is_a_structured_failure(arrival: Any) -> None:
    faults = Faults(_client("sagemaker"), "StartPipelineExecution", "AccessDeniedException", times=1)
    response = _invoke(load_event(MARKER_EVENT))
    assert_clean_error(response, status="failed")
    assert response["error"]["code"] == "AccessDenied" and "StartPipelineExecution" in response["error"]["message"]
    assert len(faults.sends) == 1  # not retried
    assert _items() == []  # a retry after the IAM fix can act


def test_access_denied_on_the_idempotency_table_is_a_structured_failure(arrival: Any) -> None:
    Faults(_client("dynamodb"), "PutItem", "AccessDeniedException", times=1)
    response = _invoke(load_event(MARKER_EVENT))
    assert_clean_error(response, status="failed")
    assert _executions() == []


def test_access_denied_is_counted_with_the_team_and_service_dimensions_only(
    arrival: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # the team's DependencyAccessDenied alarm (stacks/components/lifecycle.py) matches exactly {service, team}
    Faults(_client("sagemaker"), "StartPipelineExecution", "AccessDeniedException", times=1)
    _invoke(load_event(MARKER_EVENT))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    (emf,) = [e for e in lines if "DependencyAccessDenied" in e]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Flywheel" and sorted(map(sorted, directive["Dimensions"])) == [
        ["service", "team"]
    ]
    assert (emf["service"], emf["team"]) == ("flywheel-data-arrival", "churn")


def test_an_unexpected_error_is_raised_for_lambdas_retry(arrival: Any) -> None:
    Faults(_client("sagemaker"), "StartPipelineExecution", "ResourceNotFound", times=1)
    with pytest.raises(Exception, match="ResourceNotFound"):
        _invoke(load_event(MARKER_EVENT))
    assert _items() == []


# Configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [("TEAM", ""), ("ACCOUNT_ID", "12345"), ("RAW_BUCKET", "Bad_Bucket"), ("IDEMPOTENCY_TTL_SECONDS", "x")],
)
def test_a_bad_configuration_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        ArrivalConfig.from_environ({**ENV, variable: value})


def test_an_invalid_configuration_fails_every_invocation(arrival: Any) -> None:
    handler.configure({**ENV, "BATCH_COMPLETE_MARKER": "../x"})
    with pytest.raises(ConfigError, match="BATCH_COMPLETE_MARKER"):
        _invoke(load_event(MARKER_EVENT))
