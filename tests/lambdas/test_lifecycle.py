"""Lifecycle events: validation (no side effect on bad events), idempotency, deploy and rollback.

GIVEN an event (built like the real EventBridge ones), WHEN a handler runs, THEN it starts/deploys
through the injected actions exactly as often as it should.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import pytest

from lambdas import lifecycle
from flywheel.embedded import EmbeddedAws
from lambdas.lifecycle import LifecycleContext, LifecycleEventError, TeamTarget
from flywheel.state import StateStore

ACCOUNT = "123456789012"
RAW = "flywheel-local-raw"
CHURN = TeamTarget("churn", RAW, "flywheel-local-churn-tabular", "flywheel-local-churn")
OTHER = TeamTarget("diagnostics", RAW, "flywheel-local-diagnostics-tabular", "flywheel-local-diagnostics")
KEY = "churn/incoming/batch-1/churn.csv"


class FakeActions:
    """Records every side effect the handlers ask for."""

    def __init__(self, fail_start: bool = False) -> None:
        self.started: list[tuple[str, dict[str, str]]] = []
        self.deployed: dict[str, str] = {}
        self.calls: list[str] = []
        self.fail_start = fail_start

    def start_pipeline(self, target: TeamTarget, parameters: Mapping[str, str], client_token: str) -> str:
        self.calls.append("start")
        if self.fail_start:
            raise RuntimeError("throttled")
        self.started.append((target.team, dict(parameters)))
        return f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:pipeline/{target.pipeline_name}/execution/e{len(self.started)}"

    def deployed_package(self, target: TeamTarget) -> str | None:
        return self.deployed.get(target.team)

    def deploy(self, target: TeamTarget, package_arn: str) -> None:
        self.calls.append(f"deploy {package_arn.rsplit('/', 1)[-1]}")
        self.deployed[target.team] = package_arn

    def undeploy(self, target: TeamTarget) -> None:
        self.calls.append("undeploy")
        self.deployed.pop(target.team, None)


@pytest.fixture
def context(embedded: EmbeddedAws, state: StateStore) -> LifecycleContext:
    sm = embedded.client("sagemaker")
    for target in (CHURN, OTHER):
        sm.create_model_package_group(ModelPackageGroupName=target.group_name)
    s3 = embedded.client("s3")
    s3.create_bucket(Bucket="reports-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return LifecycleContext(
        teams={"churn": CHURN, "diagnostics": OTHER},
        sagemaker=sm,
        s3=s3,
        actions=FakeActions(),
        store=state,
        account=ACCOUNT,
    )


def _arrival(key: str = KEY, bucket: str = RAW, etag: str = "abc123", sequencer: str | None = "0001") -> dict[str, Any]:
    return lifecycle.object_created_event(
        bucket, key, etag=etag, size=10, sequencer=sequencer, region="eu-west-1", account=ACCOUNT
    )


def _register(context: LifecycleContext, gate_value: float, status: str = "PendingManualApproval") -> str:
    version = len(
        context.sagemaker.list_model_packages(ModelPackageGroupName=CHURN.group_name)["ModelPackageSummaryList"]
    )
    key = f"eval/{version + 1}/evaluation.json"
    context.s3.put_object(Bucket="reports-bucket", Key=key, Body=json.dumps({"gate": {"value": gate_value}}).encode())
    created = context.sagemaker.create_model_package(
        ModelPackageGroupName=CHURN.group_name,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [{"Image": "x", "ModelDataUrl": "s3://a/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelMetrics={
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"s3://reports-bucket/{key}"}}
        },
    )
    return str(created["ModelPackageArn"])


def _state_change(context: LifecycleContext, arn: str, status: str) -> dict[str, Any]:
    context.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
    package = context.sagemaker.describe_model_package(ModelPackageName=arn)
    return lifecycle.model_package_state_change_event(package, region="eu-west-1", account=ACCOUNT)


# Data arrival -------------------------------------------------------------------------------------------


def test_arrival_starts_the_team_pipeline_on_the_batch_folder(context: LifecycleContext) -> None:
    result = lifecycle.dispatch(_arrival(), context)

    assert isinstance(result, lifecycle.ArrivalResult)
    assert result.team == "churn" and not result.duplicate
    assert result.input_data_uri == f"s3://{RAW}/churn/incoming/batch-1/"
    assert context.actions.started == [  # type: ignore[attr-defined]
        ("churn", {"InputDataUri": f"s3://{RAW}/churn/incoming/batch-1/", "ChampionMetric": "none"})
    ]
    assert result.execution_arn and result.execution_arn.endswith("/execution/e1")


def test_arrival_is_idempotent_per_batch_folder(context: LifecycleContext) -> None:
    """InputDataUri is the folder: one batch, one execution, however many files or redeliveries."""
    first = lifecycle.on_data_arrival(_arrival(), context)
    again = lifecycle.on_data_arrival(copy.deepcopy(_arrival()), context)  # redelivery (new event id)
    assert again.duplicate and again.execution_arn == first.execution_arn
    folder = KEY.rsplit("/", 1)[0]
    second_file = lifecycle.on_data_arrival(_arrival(f"{folder}/part-2.csv", etag="def456"), context)
    assert second_file.duplicate and second_file.execution_arn == first.execution_arn
    assert len(context.actions.started) == 1  # type: ignore[attr-defined]
    other = lifecycle.on_data_arrival(_arrival(KEY.replace(folder, folder + "-fix"), etag="f00"), context)
    assert not other.duplicate and len(context.actions.started) == 2  # type: ignore[attr-defined]


def test_a_failed_start_releases_the_claim_so_a_retry_acts(context: LifecycleContext) -> None:
    context.actions = FakeActions(fail_start=True)
    with pytest.raises(RuntimeError, match="throttled"):
        lifecycle.on_data_arrival(_arrival(), context)
    context.actions = FakeActions()
    assert not lifecycle.on_data_arrival(_arrival(), context).duplicate
    assert len(context.actions.started) == 1  # type: ignore[attr-defined]


def test_markers_and_non_data_objects_are_skipped(context: LifecycleContext) -> None:
    for key in ("churn/incoming/batch-1/_SUCCESS", "churn/incoming/batch-1/notes.txt"):
        result = lifecycle.on_data_arrival(_arrival(key), context)
        assert result.execution_arn is None and result.skipped
    assert context.actions.calls == []  # type: ignore[attr-defined]


def test_champion_metric_comes_from_the_latest_approved_package(context: LifecycleContext) -> None:
    first = _register(context, 0.81)
    lifecycle.on_model_package_state_change(_state_change(context, first, "Approved"), context)
    _register(context, 0.95)  # pending: not a champion
    result = lifecycle.on_data_arrival(_arrival(), context)
    assert result.parameters["ChampionMetric"] == "0.81"


def _without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    event = copy.deepcopy(event)
    node = event
    for name in path[:-1]:
        node = node[name]
    del node[path[-1]]
    return event


def _with(event: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    event = copy.deepcopy(event)
    node = event
    for name in path[:-1]:
        node = node[name]
    node[path[-1]] = value
    return event


BAD_ARRIVALS: list[tuple[str, Any, str]] = [
    ("empty", {}, "empty"),
    ("not an object", ["x"], "empty or not an object"),
    ("no detail", _without(_arrival(), "detail"), "event.detail is missing"),
    ("no bucket", _without(_arrival(), "detail", "bucket"), "event.detail.bucket is missing"),
    ("no key", _without(_arrival(), "detail", "object", "key"), "event.detail.object.key is missing"),
    ("no etag", _without(_arrival(), "detail", "object", "etag"), "event.detail.object.etag is missing"),
    ("key not a string", _with(_arrival(), 42, "detail", "object", "key"), "must be a non-empty string"),
    ("wrong source", _with(_arrival(), "aws.ec2", "source"), "expected an event with source 'aws.s3'"),
    ("wrong detail-type", _with(_arrival(), "Object Deleted", "detail-type"), "detail-type 'Object Created'"),
    ("foreign bucket", _arrival(bucket="someone-elses-bucket"), "foreign bucket"),
    ("foreign account", _with(_arrival(), "999999999999", "account"), "not this platform's account"),
    ("unknown team", _arrival("marketing/incoming/b/x.csv"), "does not start with a known team"),
    ("outside incoming", _arrival("churn/_keys/b/pii-hmac.key.csv"), "is not under 'churn/incoming/'"),
    ("no batch folder", _arrival("churn/incoming/x.csv"), "land each batch in its own folder"),
    ("traversal", _arrival("churn/incoming/../_keys/x.csv"), "'..' path segment"),
    ("encoded traversal", _arrival("churn/incoming/%2e%2e/x.csv"), "'..' path segment"),
    ("dot segment", _arrival("churn/incoming/./b/x.csv"), "'..' path segment"),
    ("double slash", _arrival("churn/incoming//x.csv"), "empty"),
    ("absolute", _arrival("/churn/incoming/b/x.csv"), "absolute"),
    ("backslash", _arrival("churn/incoming/b\\..\\x.csv"), "backslash"),
    ("control character", _arrival("churn/incoming/b/x\n.csv"), "control characters"),
    ("oversize key", _arrival("churn/incoming/b/" + "x" * 1100 + ".csv"), "longer than 1024 bytes"),
]


@pytest.mark.parametrize(
    ("event", "message"), [(e, m) for _, e, m in BAD_ARRIVALS], ids=[n for n, _, _ in BAD_ARRIVALS]
)
def test_bad_arrival_events_are_refused_without_side_effects(
    context: LifecycleContext, state: StateStore, event: Any, message: str
) -> None:
    with pytest.raises(LifecycleEventError) as excinfo:
        lifecycle.on_data_arrival(event, context)
    assert message in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)
    assert context.actions.calls == []  # type: ignore[attr-defined]
    assert list(state.iter_files()) == []


# Model package state changes -------------------------------------------------------------------------------


def test_approval_deploys_once_and_rejection_rolls_back(context: LifecycleContext) -> None:
    actions: FakeActions = context.actions  # type: ignore[assignment]
    v1, v2 = _register(context, 0.8), _register(context, 0.85)

    first = lifecycle.dispatch(_state_change(context, v1, "Approved"), context)
    assert isinstance(first, lifecycle.DeploymentResult) and first.action == "deployed"
    assert lifecycle.on_model_package_state_change(_state_change(context, v1, "Approved"), context).action == (
        "already-deployed"
    )
    assert lifecycle.on_model_package_state_change(_state_change(context, v2, "Approved"), context).deployed_arn == v2
    pending = _register(context, 0.9)
    assert (
        lifecycle.on_model_package_state_change(
            _state_change(context, pending, "PendingManualApproval"), context
        ).action
        == "ignored"
    )

    rolled = lifecycle.on_model_package_state_change(_state_change(context, v2, "Rejected"), context)
    assert (rolled.action, rolled.deployed_arn) == ("rolled-back", v1)
    gone = lifecycle.on_model_package_state_change(_state_change(context, v1, "Rejected"), context)
    assert gone.action == "undeployed" and actions.deployed == {}
    assert actions.calls == ["deploy 1", "deploy 2", "deploy 1", "undeploy"]


def test_a_stale_approval_event_does_not_redeploy_a_rejected_model(context: LifecycleContext) -> None:
    actions: FakeActions = context.actions  # type: ignore[assignment]
    v1 = _register(context, 0.8)
    approved_event = _state_change(context, v1, "Approved")
    assert lifecycle.on_model_package_state_change(approved_event, context).action == "deployed"
    assert lifecycle.on_model_package_state_change(_state_change(context, v1, "Rejected"), context).action == (
        "undeployed"
    )
    replay = lifecycle.on_model_package_state_change(approved_event, context)  # redelivered late
    assert replay.action == "stale-event-ignored" and actions.deployed == {}


def _package_event(**detail: Any) -> dict[str, Any]:
    base = {
        "ModelPackageGroupName": CHURN.group_name,
        "ModelPackageVersion": 1,
        "ModelPackageArn": f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:model-package/{CHURN.group_name}/1",
        "ModelApprovalStatus": "Approved",
    }
    event = lifecycle.model_package_state_change_event(base, region="eu-west-1", account=ACCOUNT)
    for key, value in detail.items():
        if value is None:
            event["detail"].pop(key, None)
        else:
            event["detail"][key] = value
    return event


BAD_PACKAGE_EVENTS: list[tuple[str, Any, str]] = [
    ("empty", {}, "empty"),
    ("no arn", _package_event(ModelPackageArn=None), "ModelPackageArn is missing"),
    ("no status", _package_event(ModelApprovalStatus=None), "ModelApprovalStatus is missing"),
    ("unknown status", _package_event(ModelApprovalStatus="Maybe"), "'Maybe' is not one of"),
    ("bad arn", _package_event(ModelPackageArn="arn:aws:s3:::bucket/x"), "not a versioned model package ARN"),
    (
        "group mismatch",
        _package_event(ModelPackageGroupName="flywheel-local-diagnostics"),
        "is not in group 'flywheel-local-diagnostics'",
    ),
    (
        "unknown group",
        _package_event(
            ModelPackageGroupName="intruder",
            ModelPackageArn=f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:model-package/intruder/1",
        ),
        "belongs to no known team",
    ),
    (
        "foreign account",
        _package_event(ModelPackageArn=f"arn:aws:sagemaker:eu-west-1:999999999999:model-package/{CHURN.group_name}/1"),
        "foreign account",
    ),
    ("wrong source", _with(_package_event(), "aws.s3", "source"), "expected an event with source 'aws.sagemaker'"),
]


@pytest.mark.parametrize(
    ("event", "message"), [(e, m) for _, e, m in BAD_PACKAGE_EVENTS], ids=[n for n, _, _ in BAD_PACKAGE_EVENTS]
)
def test_bad_package_events_are_refused_without_side_effects(
    context: LifecycleContext, state: StateStore, event: Any, message: str
) -> None:
    with pytest.raises(LifecycleEventError) as excinfo:
        lifecycle.on_model_package_state_change(event, context)
    assert message in str(excinfo.value)
    assert context.actions.calls == []  # type: ignore[attr-defined]
    assert list(state.iter_files()) == []


def test_dispatch_refuses_events_nobody_handles(context: LifecycleContext) -> None:
    with pytest.raises(LifecycleEventError, match="no lifecycle handler"):
        lifecycle.dispatch({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification"}, context)
    with pytest.raises(LifecycleEventError, match="empty"):
        lifecycle.dispatch(None, context)
