"""The deploy Lambda in-process under moto: the approval gate, canary rollout, rollback detection, faults.

GIVEN a moto model registry with packages of team churn's group, the lifecycle table and the committed
``SageMaker Model Package State Change`` / ``Endpoint Deployment State Change`` events, WHEN
``lambda_handler`` runs, THEN exactly the approved package is served (network-isolated, in the VPC, KMS
on the config and the capture), the UpdateEndpoint request (moto has none: a recording seam) carries
the canary DeploymentConfig with the rollback alarms, and a silent rollback is detected and counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.sagemaker.models import sagemaker_backends

from lambdas.common.env import ConfigError
from lambdas.deploy import handler
from lambdas.deploy.config import DeployConfig
from tests.events import DELETE, load_event

from .conftest import REGION
from .support import ACCOUNT, TABLE, FakeLambdaContext, Faults, assert_clean_error, create_table, no_sleep, table_items

GROUP = ENDPOINT = "flywheel-local-churn"
OTHER_GROUP = "flywheel-local-diagnostics"
KMS = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CAPTURE_KMS = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/9876fedc-12ab-34cd-56ef-1234567890ab"
ALARMS = ("flywheel-local-churn-5xx", "flywheel-local-churn-model-latency")
ENV = {
    "TEAM": "churn",
    "MODEL_PACKAGE_GROUP": GROUP,
    "ENDPOINT_NAME": ENDPOINT,
    "ACCOUNT_ID": ACCOUNT,
    "DEPLOY_TARGET": "realtime",
    "MODEL_EXECUTION_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/flywheel-local-churn-execution",
    "SUBNET_IDS": "subnet-0a1b2c3d4e5f60718,subnet-0f1e2d3c4b5a69788",
    "SECURITY_GROUP_IDS": "sg-0123456789abcdef0",
    "VOLUME_KMS_KEY_ID": KMS,
    "CAPTURE_BUCKET": "flywheel-local-capture",
    "CAPTURE_KMS_KEY_ID": CAPTURE_KMS,
    "MIN_INSTANCES": "2",
    "CANARY_SIZE": "25",
    "BAKE_SECONDS": "600",
    "TERMINATION_WAIT_SECONDS": "300",
    "MAX_EXECUTION_SECONDS": "3600",
    "ROLLBACK_ALARMS": ",".join(ALARMS),
    "IDEMPOTENCY_TABLE": TABLE,
}
PACKAGE_EVENTS = {
    "Approved": "sagemaker_model_package_state_change",
    "Rejected": "sagemaker_model_package_state_change_rejected",
    "PendingManualApproval": "sagemaker_model_package_state_change_pending",
}
ROLLOUT_EVENT = "sagemaker_endpoint_deployment_state_change"


class UpdateSeam:
    """Records UpdateEndpoint requests; ``succeed`` makes moto's endpoint switch config (a healthy canary)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.succeed = False

    def __call__(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if self.succeed:
            endpoint = sagemaker_backends[ACCOUNT][REGION].endpoints[request["EndpointName"]]
            endpoint.endpoint_config_name = request["EndpointConfigName"]
        return {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{request['EndpointName']}"}


@pytest.fixture
def seam() -> UpdateSeam:
    return UpdateSeam()


@pytest.fixture
def deploy(aws: None, monkeypatch: pytest.MonkeyPatch, seam: UpdateSeam) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    boto3.client("sagemaker", region_name=REGION).create_model_package_group(ModelPackageGroupName=GROUP)
    create_table(boto3.client("dynamodb", region_name=REGION))
    handler.configure(ENV)
    handler.runtime().update_endpoint = seam
    yield handler
    handler.configure({})


def _configure(**overrides: str) -> None:
    seam = handler.runtime().update_endpoint
    handler.configure({**ENV, **overrides})
    handler.runtime().update_endpoint = seam


def _sm() -> Any:
    return boto3.client("sagemaker", region_name=REGION)


def _register(status: str = "PendingManualApproval") -> str:
    version = len(_sm().list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]) + 1
    created = _sm().create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [
                {
                    "Image": f"141502667606.dkr.ecr.{REGION}.amazonaws.com/sagemaker-xgboost:3.2-0",
                    "ModelDataUrl": f"s3://flywheel-local-artifacts/run-{version}/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )
    return str(created["ModelPackageArn"])


def _event(arn: str, status: str) -> dict[str, Any]:
    event: dict[str, Any] = load_event(
        PACKAGE_EVENTS[status],
        resources=[arn],
        **{"detail.ModelPackageArn": arn, "detail.ModelPackageVersion": int(arn.rsplit("/", 1)[-1])},
    )
    return event


def _change(arn: str, status: str) -> dict[str, Any]:
    _sm().update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
    return _event(arn, status)


def _invoke(event: Any) -> Any:
    return handler.lambda_handler(event, FakeLambdaContext())


def _counts() -> dict[str, int]:
    sm = _sm()
    return {
        "models": len(sm.list_models()["Models"]),
        "configs": len(sm.list_endpoint_configs()["EndpointConfigs"]),
        "endpoints": len(sm.list_endpoints()["Endpoints"]),
        "items": len(table_items(boto3.client("dynamodb", region_name=REGION))),
    }


def _serving() -> str:
    return str(_sm().describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"])


def _metrics(out: str) -> list[str]:
    names: list[str] = []
    for line in out.splitlines():
        if line.startswith('{"_aws"'):
            names += [m["Name"] for m in json.loads(line)["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    return names


# The gate ----------------------------------------------------------------------------------------


def test_pending_deploys_nothing(deploy: Any) -> None:
    arn = _register()
    response = _invoke(_event(arn, "PendingManualApproval"))
    assert response["status"] == "ignored"
    assert {k: v for k, v in _counts().items() if k != "items"} == {"models": 0, "configs": 0, "endpoints": 0}


def test_rejected_of_an_undeployed_package_deploys_nothing(deploy: Any) -> None:
    arn = _register()
    response = _invoke(_change(arn, "Rejected"))
    assert response["status"] == "ignored"
    assert _counts()["endpoints"] == 0 and _counts()["models"] == 0


def test_approved_deploys_exactly_that_package_isolated_in_the_vpc_with_kms(deploy: Any) -> None:
    _register("Approved")
    arn = _register()
    # moto drops EnableNetworkIsolation: the CreateModel request as sent is asserted too
    sent = Faults(handler.runtime().clients.client("sagemaker"), "CreateModel", "-", times=0).sends
    response = _invoke(_change(arn, "Approved"))
    assert response["status"] == "deployed" and response["version"] == 2
    assert [request["EnableNetworkIsolation"] for request in sent] == [True]
    assert _counts() | {"items": 0} == {"models": 1, "configs": 1, "endpoints": 1, "items": 0}
    config = _sm().describe_endpoint_config(EndpointConfigName=_serving())
    model = _sm().describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://flywheel-local-artifacts/run-2/model.tar.gz"
    assert model["VpcConfig"] == {"Subnets": ENV["SUBNET_IDS"].split(","), "SecurityGroupIds": ["sg-0123456789abcdef0"]}
    assert config["KmsKeyId"] == KMS
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] is True and capture["KmsKeyId"] == CAPTURE_KMS
    assert capture["DestinationS3Uri"] == "s3://flywheel-local-capture/datacapture"
    variant = config["ProductionVariants"][0]
    assert variant["InitialInstanceCount"] == 2 and variant["InstanceType"] == "ml.m5.large"


def test_a_redelivered_approval_deploys_once(deploy: Any, seam: UpdateSeam) -> None:
    arn = _register()
    event = _change(arn, "Approved")
    first = _invoke(event)
    assert _invoke(_event(arn, "Approved")) == first  # Powertools: the first answer
    # Powertools' record expired (deleted here): the lifecycle's gate sees the package served already
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for item in table_items(dynamodb):
        if "status" in item:
            dynamodb.delete_item(TableName=TABLE, Key={"id": item["id"]})
    assert _invoke(_event(arn, "Approved"))["status"] == "already-deployed"
    assert _counts()["models"] == 1 and _counts()["configs"] == 1 and seam.requests == []


def test_a_new_approval_updates_the_endpoint_through_the_canary_guardrails(deploy: Any, seam: UpdateSeam) -> None:
    first = _register()
    _invoke(_change(first, "Approved"))
    old_config = _serving()
    second = _register()
    response = _invoke(_change(second, "Approved"))
    assert response["status"] == "deployed" and response["outcomes"][0]["action"] == "canary-rollout-started"
    (request,) = seam.requests
    assert request["EndpointName"] == ENDPOINT and request["EndpointConfigName"] != old_config
    assert request["DeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                "WaitIntervalInSeconds": 600,
            },
            "TerminationWaitInSeconds": 300,
            "MaximumExecutionTimeoutInSeconds": 3600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in ALARMS]},
    }
    new_config = _sm().describe_endpoint_config(EndpointConfigName=request["EndpointConfigName"])
    assert new_config["ProductionVariants"][0]["VariantName"] == "AllTraffic"  # guardrails keep the variant


def test_a_silent_rollback_is_detected_logged_and_counted(
    deploy: Any, seam: UpdateSeam, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _register()
    _invoke(_change(first, "Approved"))
    old_config = _serving()
    _invoke(_change(_register(), "Approved"))
    # SageMaker's alarms fired: the endpoint is InService again, on the old config (the seam left it there)
    response = _invoke(load_event(ROLLOUT_EVENT, **{"detail.EndpointConfigName": old_config}))
    assert response["status"] == "rollout-rolled-back" and response["serving_config"] == old_config
    assert "RolloutRolledBack" in _metrics(capsys.readouterr().out)
    # the lifecycle now sees the old package served, and the same config is not pushed again
    assert handler.runtime().records.get(f"rollout#{ENDPOINT}")["outcome"] == "rolled-back"  # type: ignore[index]


def test_a_healthy_canary_is_recorded_as_succeeded(
    deploy: Any, seam: UpdateSeam, capsys: pytest.CaptureFixture[str]
) -> None:
    _invoke(_change(_register(), "Approved"))
    seam.succeed = True
    _invoke(_change(_register(), "Approved"))
    baking = _invoke(load_event(f"{ROLLOUT_EVENT}_baking"))
    assert baking["status"] == "rollout-succeeded"  # moto's endpoint switched at once
    assert "RolloutSucceeded" in _metrics(capsys.readouterr().out)


def test_a_rollout_still_running_is_in_progress(deploy: Any, seam: UpdateSeam) -> None:
    _invoke(_change(_register(), "Approved"))
    sagemaker_backends[ACCOUNT][REGION].endpoints[ENDPOINT].endpoint_status = "Updating"
    assert _invoke(load_event(f"{ROLLOUT_EVENT}_baking"))["status"] == "rollout-in-progress"


def test_rejecting_the_deployed_package_rolls_back_to_the_previous_approved(deploy: Any, seam: UpdateSeam) -> None:
    seam.succeed = True
    first = _register()
    _invoke(_change(first, "Approved"))
    first_config = _serving()
    second = _register()
    _invoke(_change(second, "Approved"))
    response = _invoke(_change(second, "Rejected"))
    assert response["status"] == "rolled-back" and response["deployed_version"] == 1
    assert seam.requests[-1]["EndpointConfigName"] == first_config


def test_serverless_is_updated_all_at_once_with_a_serverless_config(deploy: Any, seam: UpdateSeam) -> None:
    _configure(DEPLOY_TARGET="serverless", SERVERLESS_MEMORY_MB="3072", SERVERLESS_MAX_CONCURRENCY="20")
    _invoke(_change(_register(), "Approved"))
    _invoke(_change(_register(), "Approved"))
    (request,) = seam.requests
    assert "DeploymentConfig" not in request  # guardrails do not apply to serverless endpoints
    variant = _sm().describe_endpoint_config(EndpointConfigName=request["EndpointConfigName"])["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 20}


def test_batch_records_the_approved_model_without_an_endpoint(deploy: Any) -> None:
    _configure(DEPLOY_TARGET="batch")
    arn = _register()
    sent = Faults(handler.runtime().clients.client("sagemaker"), "CreateModel", "-", times=0).sends
    response = _invoke(_change(arn, "Approved"))
    assert response["outcomes"][0]["action"] == "batch-model-recorded"
    counts = _counts()
    assert counts["endpoints"] == 0 and counts["models"] == 1
    record = handler.runtime().records.get(f"batch-model#{GROUP}")
    assert record is not None and record["package_arn"] == arn
    assert [(r["ModelName"], r["EnableNetworkIsolation"], "VpcConfig" in r) for r in sent] == [
        (record["model_name"], True, True)
    ]


# Bad input ---------------------------------------------------------------------------------------

_APPROVED = PACKAGE_EVENTS["Approved"]
BAD_EVENTS: dict[str, Any] = {
    "empty": {},
    "malformed-json-text": '{"detail-type": "SageMaker Model Package State Change", ',
    "missing-arn": load_event(_APPROVED, **{"detail.ModelPackageArn": DELETE}),
    "missing-status": load_event(_APPROVED, **{"detail.ModelApprovalStatus": DELETE}),
    "version-wrong-type": load_event(_APPROVED, **{"detail.ModelPackageVersion": "1"}),
    "status-wrong-type": load_event(_APPROVED, **{"detail.ModelApprovalStatus": ["Approved"]}),
    "unknown-status": load_event(_APPROVED, **{"detail.ModelApprovalStatus": "Maybe"}),
    "unknown-detail-type": load_event(_APPROVED, **{"detail-type": "SageMaker Model State Change"}),
    "oversize": load_event(_APPROVED, **{"detail.ModelPackageDescription": "x" * 300_000}),
    "foreign-account": load_event(_APPROVED, account="999999999999"),
    "foreign-account-arn": load_event(
        _APPROVED, **{"detail.ModelPackageArn": f"arn:aws:sagemaker:{REGION}:999999999999:model-package/{GROUP}/1"}
    ),
    "foreign-group": load_event(
        _APPROVED,
        **{
            "detail.ModelPackageGroupName": OTHER_GROUP,
            "detail.ModelPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{OTHER_GROUP}/1",
        },
    ),
    "traversal-in-arn": load_event(
        _APPROVED, **{"detail.ModelPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/../1"}
    ),
    "odd-characters-in-group": load_event(_APPROVED, **{"detail.ModelPackageGroupName": "churn;\n<script>"}),
    "rollout-foreign-endpoint": load_event(
        ROLLOUT_EVENT,
        **{
            "detail.EndpointName": "flywheel-local-diagnostics",
            "detail.EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/flywheel-local-diagnostics",
        },
    ),
    "rollout-unknown-status": load_event(ROLLOUT_EVENT, **{"detail.EndpointStatus": "EXPLODING"}),
    "rollout-traversal-in-config": load_event(ROLLOUT_EVENT, **{"detail.EndpointConfigName": "../other"}),
    "rollout-foreign-account": load_event(ROLLOUT_EVENT, account="999999999999"),
    "rollout-pending-wrong-type": load_event(ROLLOUT_EVENT, **{"detail.PendingDeploymentSummary": "config-2"}),
}


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_a_bad_event_is_rejected_without_side_effects(deploy: Any, seam: UpdateSeam, case: str) -> None:
    _register("Approved")  # a package exists: a bug that ignored the validation would deploy it
    response = _invoke(BAD_EVENTS[case])
    assert_clean_error(response)
    assert _counts() == {"models": 0, "configs": 0, "endpoints": 0, "items": 0}
    assert seam.requests == []


def test_rejections_name_the_problem(deploy: Any) -> None:
    assert "Maybe" in _invoke(BAD_EVENTS["unknown-status"])["error"]["message"]
    assert _invoke(BAD_EVENTS["unknown-detail-type"])["error"]["code"] == "UnsupportedEvent"
    assert _invoke(BAD_EVENTS["rollout-foreign-endpoint"])["error"]["code"] == "ForeignEndpoint"
    assert "<account>" in _invoke(BAD_EVENTS["foreign-account-arn"])["error"]["message"]


# Dependency faults -------------------------------------------------------------------------------


def test_throttling_is_retried_by_botocore_then_deploys(deploy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    slept = no_sleep(monkeypatch)
    arn = _register()
    event = _change(arn, "Approved")
    faults = Faults(handler.runtime().clients.client("sagemaker"), "CreateModel", "ThrottlingException", times=3)
    assert _invoke(event)["status"] == "deployed"
    assert len(faults.sends) == 4 and len(slept) == 3
    assert _counts()["models"] == 1 and _counts()["endpoints"] == 1


def test_access_denied_is_a_structured_failure(deploy: Any) -> None:
    arn = _register()
    event = _change(arn, "Approved")
    Faults(handler.runtime().clients.client("sagemaker"), "CreateEndpointConfig", "AccessDeniedException", times=1)
    response = _invoke(event)
    assert_clean_error(response, status="failed")
    assert _counts()["endpoints"] == 0
    assert _counts()["items"] == 0  # Powertools' record is gone: a retry after the IAM fix deploys


def _emf(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def test_every_alarmed_metric_carries_the_team_and_the_service_dimensions_only(
    deploy: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # the per-team alarms (stacks/components/lifecycle.py) match exactly {service, team}
    arn = _register()
    event = _change(arn, "Approved")
    Faults(handler.runtime().clients.client("sagemaker"), "CreateEndpointConfig", "AccessDeniedException", times=1)
    _invoke(event)
    (emf,) = [e for e in _emf(capsys.readouterr().out) if "DependencyAccessDenied" in e]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Flywheel"
    assert sorted(map(sorted, directive["Dimensions"])) == [["service", "team"]]
    assert (emf["service"], emf["team"]) == ("flywheel-deploy", "churn")


def test_another_teams_function_emits_its_own_team(deploy: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _configure(TEAM="diagnostics")
    _invoke({})
    (emf,) = [e for e in _emf(capsys.readouterr().out) if "EventRejected" in e]
    assert emf["team"] == "diagnostics"


def test_an_unexpected_error_is_raised(deploy: Any) -> None:
    arn = _register()
    event = _change(arn, "Approved")
    Faults(handler.runtime().clients.client("sagemaker"), "CreateEndpoint", "ResourceLimitExceeded", times=1)
    with pytest.raises(Exception, match="ResourceLimitExceeded"):
        _invoke(event)
    assert _counts()["endpoints"] == 0


def test_a_busy_endpoint_is_raised_for_a_later_retry(deploy: Any, seam: UpdateSeam) -> None:
    _invoke(_change(_register(), "Approved"))
    sagemaker_backends[ACCOUNT][REGION].endpoints[ENDPOINT].endpoint_status = "Updating"
    with pytest.raises(RuntimeError, match="Updating"):
        _invoke(_change(_register(), "Approved"))
    assert seam.requests == []


# Configuration -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SERVERLESS_MEMORY_MB", "1500"),
        ("SERVERLESS_MAX_CONCURRENCY", "201"),
        ("CANARY_SIZE", "60"),
        ("MAX_EXECUTION_SECONDS", "700"),
        ("ROLLBACK_ALARMS", ""),
        ("DEPLOY_TARGET", "edge"),
        ("VOLUME_KMS_KEY_ID", "not-a-key"),
        ("SUBNET_IDS", "subnet-xyz"),
    ],
)
def test_a_bad_configuration_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        DeployConfig.from_environ({**ENV, variable: value})


# Promotion to prod (Model Promotion Approved) -------------------------------------------------------

PROMOTION = "flywheel_model_promotion_approved"
DEV_ACCOUNT = "111111111111"


def _promotion(arn: str | None = None, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"detail.ModelPackageArn": arn} if arn else {}
    event: dict[str, Any] = load_event(PROMOTION, **fields, **overrides)
    return event


def test_a_promotion_deploys_the_promoted_package_once(deploy: Any, seam: UpdateSeam) -> None:
    # moto resolves no cross-account package: the package lives in this account, allow-listed as the source
    _configure(SOURCE_ACCOUNTS=ACCOUNT)
    arn = _register("Approved")
    response = _invoke(_promotion(arn))
    assert response["status"] == "deployed" and response["approval_status"] == "Promoted"
    assert response["version"] == 1
    config = _sm().describe_endpoint_config(EndpointConfigName=_serving())
    model = _sm().describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://flywheel-local-artifacts/run-1/model.tar.gz"
    assert config["KmsKeyId"] == KMS and config["DataCaptureConfig"]["KmsKeyId"] == CAPTURE_KMS
    counts = _counts()
    # a person sends the event twice: answered from the record (package ARN + "Promoted"), nothing new
    assert _invoke(_promotion(arn)) == response
    assert _counts() == counts and counts["models"] == 1 and counts["endpoints"] == 1 and seam.requests == []


def test_a_promotion_of_a_package_not_approved_in_its_registry_is_refused(deploy: Any) -> None:
    _configure(SOURCE_ACCOUNTS=ACCOUNT)
    arn = _register("PendingManualApproval")
    response = _invoke(_promotion(arn))
    assert response["status"] == "refused" and response["error"]["code"] == "DeploymentRefused"
    assert {k: v for k, v in _counts().items() if k != "items"} == {"models": 0, "configs": 0, "endpoints": 0}


def test_the_promotion_source_account_is_the_allow_listed_dev_account(deploy: Any) -> None:
    # the committed event's package is in the dev account: accepted only when SOURCE_ACCOUNTS lists it
    _configure(SOURCE_ACCOUNTS=f"{DEV_ACCOUNT},444444444444")
    promotion = handler.runtime().parse_promotion(_promotion())
    assert (promotion.source_account, promotion.source_group, promotion.version) == (DEV_ACCOUNT, GROUP, 1)
    assert promotion.approved_by == "jane.doe@example.com"
    _configure(SOURCE_ACCOUNTS=ACCOUNT)
    with pytest.raises(ValueError, match="promotion source account"):
        handler.runtime().parse_promotion(_promotion())


def test_the_promotion_source_group_can_differ_from_this_environments_group(deploy: Any) -> None:
    # prod's function routes on its own group and accepts packages of the team's group in dev
    _configure(SOURCE_ACCOUNTS=DEV_ACCOUNT, SOURCE_MODEL_PACKAGE_GROUP="flywheel-dev-churn")
    dev_arn = f"arn:aws:sagemaker:{REGION}:{DEV_ACCOUNT}:model-package/flywheel-dev-churn/4"
    assert handler.runtime().parse_promotion(_promotion(dev_arn)).source_group == "flywheel-dev-churn"
    with pytest.raises(ValueError, match="source group"):
        handler.runtime().parse_promotion(_promotion())  # flywheel-local-churn is not the source group


_BAD_PROMOTIONS: dict[str, dict[str, Any]] = {
    "foreign-source-account": {
        "detail.ModelPackageArn": f"arn:aws:sagemaker:{REGION}:999999999999:model-package/{GROUP}/1"
    },
    "wrong-group": {"detail.ModelPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{OTHER_GROUP}/1"},
    "wrong-routed-group": {"detail.ModelPackageGroupName": OTHER_GROUP},
    "malformed-arn": {"detail.ModelPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}"},
    "traversal-in-arn": {"detail.ModelPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/../1"},
    "arn-not-a-string": {"detail.ModelPackageArn": ["arn"]},
    "missing-approved-by": {"detail.ApprovedBy": DELETE},
    "empty-approved-by": {"detail.ApprovedBy": " "},
    "approved-by-control-characters": {"detail.ApprovedBy": "jane\nroot"},
    "missing-reason": {"detail.Reason": DELETE},
    "oversize-reason": {"detail.Reason": "x" * 2000},
    "unknown-field": {"detail.ModelApprovalStatus": "Approved"},
    "unknown-detail-type": {"detail-type": "Model Promotion Requested"},
    "wrong-source": {"source": "aws.sagemaker"},
    "foreign-event-account": {"account": "999999999999"},
    "missing-event-account": {"account": DELETE},
    "detail-not-an-object": {"detail": "promote it"},
}


@pytest.mark.parametrize("case", sorted(_BAD_PROMOTIONS))
def test_a_bad_promotion_is_rejected_without_side_effects(deploy: Any, seam: UpdateSeam, case: str) -> None:
    _configure(SOURCE_ACCOUNTS=ACCOUNT)
    arn = _register("Approved")  # a package exists: a bug that ignored the validation would deploy it
    bad = _BAD_PROMOTIONS[case]
    overrides = bad if "detail" in bad else {"detail.ModelPackageArn": arn, **bad}
    response = _invoke(load_event(PROMOTION, **overrides))
    assert_clean_error(response)
    assert _counts() == {"models": 0, "configs": 0, "endpoints": 0, "items": 0}
    assert seam.requests == []


def test_without_source_accounts_every_promotion_is_rejected(deploy: Any) -> None:
    arn = _register("Approved")  # SOURCE_ACCOUNTS unset (dev, staging): fail closed
    response = _invoke(_promotion(arn))
    assert_clean_error(response)
    assert _counts() == {"models": 0, "configs": 0, "endpoints": 0, "items": 0}


# Settings from the team's deployment block (teams[].deployment → the function's environment) ----------------


def test_the_update_request_carries_the_configured_instance_count_canary_and_waits(
    deploy: Any, seam: UpdateSeam
) -> None:
    _configure(CANARY_SIZE_TYPE="INSTANCE_COUNT", CANARY_SIZE="1", BAKE_SECONDS="900", TERMINATION_WAIT_SECONDS="120",
               MAX_EXECUTION_SECONDS="7200")  # fmt: skip
    _invoke(_change(_register(), "Approved"))
    _invoke(_change(_register(), "Approved"))
    (request,) = seam.requests
    policy = request["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "CANARY",
        "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
        "WaitIntervalInSeconds": 900,
    }
    assert (policy["TerminationWaitInSeconds"], policy["MaximumExecutionTimeoutInSeconds"]) == (120, 7200)


def test_a_serverless_model_goes_without_vpc_isolation_and_capture_as_aws_requires(deploy: Any) -> None:
    _configure(DEPLOY_TARGET="serverless", SUBNET_IDS="", SECURITY_GROUP_IDS="", CAPTURE_BUCKET="",
               CAPTURE_KMS_KEY_ID="", SERVERLESS_MEMORY_MB="2048", SERVERLESS_MAX_CONCURRENCY="5")  # fmt: skip
    sagemaker = handler.runtime().clients.client("sagemaker")
    models = Faults(sagemaker, "CreateModel", "-", times=0).sends
    configs = Faults(sagemaker, "CreateEndpointConfig", "-", times=0).sends
    assert _invoke(_change(_register(), "Approved"))["status"] == "deployed"
    (model,) = models
    assert "VpcConfig" not in model and "EnableNetworkIsolation" not in model  # AWS's serverless exclusions
    (config,) = configs
    assert "DataCaptureConfig" not in config and config["KmsKeyId"] == KMS
    assert config["ProductionVariants"][0]["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}


def test_a_timed_out_first_deployment_can_be_retried_and_deploys_once(deploy: Any) -> None:
    from .support import Kill, kill_on

    arn = _register()
    event = _change(arn, "Approved")
    # GIVEN a first attempt killed at its deadline after the model and config, while creating the endpoint
    sent = kill_on(handler.runtime().clients.client("sagemaker"), "CreateEndpoint")
    with pytest.raises(Kill):
        handler.lambda_handler(event, FakeLambdaContext(remaining_ms=1))
    assert _counts()["endpoints"] == 0 and _counts()["models"] == 1
    # WHEN Lambda retries after the deadline THEN the same names are found, one endpoint serves the package
    response = _invoke(_event(arn, "Approved"))
    assert response["status"] == "deployed" and len(sent) == 2
    counts = _counts()
    assert (counts["models"], counts["configs"], counts["endpoints"]) == (1, 1, 1)
