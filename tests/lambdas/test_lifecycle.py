"""Lifecycle events: parsing, validation (no side effect on bad events), idempotency, deploy and rollback.

GIVEN a committed EventBridge event (tests/events/*.json, the shapes AWS documents) or a variant of one,
WHEN a handler runs under moto, THEN it starts/deploys through the injected actions exactly as often as
it should. The module's own event builders are checked against those files, never used as the input.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from lambdas import lifecycle
from lambdas.lifecycle import LifecycleContext, LifecycleEventError, TeamTarget
from tests.events import DELETE, event_names, load_event

from .conftest import REGION, MemoryStore

ACCOUNT = "123456789012"
RAW = "flywheel-local-raw"
CHURN = TeamTarget("churn", RAW, "flywheel-local-churn-tabular", "flywheel-local-churn")
OTHER = TeamTarget("diagnostics", RAW, "flywheel-local-diagnostics-tabular", "flywheel-local-diagnostics")
KEY = "churn/incoming/batch-1/churn.csv"
S3_EVENT = "s3_object_created"
PACKAGE_EVENT = "sagemaker_model_package_state_change"
PACKAGE_EVENTS = {
    "Approved": PACKAGE_EVENT,
    "Rejected": f"{PACKAGE_EVENT}_rejected",
    "PendingManualApproval": f"{PACKAGE_EVENT}_pending",
}
PACKAGE_1 = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{CHURN.group_name}/1"


class FakeActions:
    """Records every side effect the handlers ask for."""

    def __init__(self, fail_start: bool = False) -> None:
        self.started: list[tuple[str, dict[str, str]]] = []
        self.tokens: list[str] = []
        self.deployed: dict[str, str] = {}
        self.calls: list[str] = []
        self.fail_start = fail_start

    def start_pipeline(self, target: TeamTarget, parameters: Mapping[str, str], client_token: str) -> str:
        self.calls.append("start")
        if self.fail_start:
            raise RuntimeError("throttled")
        self.started.append((target.team, dict(parameters)))
        self.tokens.append(client_token)
        return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{target.pipeline_name}/execution/e{len(self.started)}"

    def deployed_package(self, target: TeamTarget) -> str | None:
        return self.deployed.get(target.team)

    def deploy(self, target: TeamTarget, package_arn: str) -> None:
        self.calls.append(f"deploy {package_arn.rsplit('/', 1)[-1]}")
        self.deployed[target.team] = package_arn

    def undeploy(self, target: TeamTarget) -> None:
        self.calls.append("undeploy")
        self.deployed.pop(target.team, None)


@pytest.fixture
def context(sagemaker: Any, s3: Any, store: MemoryStore) -> LifecycleContext:
    for target in (CHURN, OTHER):
        sagemaker.create_model_package_group(ModelPackageGroupName=target.group_name)
    s3.create_bucket(Bucket="reports-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    return LifecycleContext(
        teams={"churn": CHURN, "diagnostics": OTHER},
        sagemaker=sagemaker,
        s3=s3,
        actions=FakeActions(),
        store=store,
        account=ACCOUNT,
    )


def _arrival(key: str = KEY, bucket: str = RAW, etag: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The committed ``Object Created`` event for ``s3://bucket/key`` (a redelivery gets a new event id)."""
    fields: dict[str, Any] = {"detail.object.key": key, "detail.bucket.name": bucket}
    if bucket != RAW:
        fields["resources"] = [f"arn:aws:s3:::{bucket}"]
    if etag is not None:
        fields["detail.object.etag"] = etag
    return load_event(S3_EVENT, **fields, **overrides)  # type: ignore[no-any-return]


def _register(
    context: LifecycleContext,
    gate_value: float,
    status: str = "PendingManualApproval",
    model_data_url: str = "s3://a/model.tar.gz",
) -> str:
    version = len(
        context.sagemaker.list_model_packages(ModelPackageGroupName=CHURN.group_name)["ModelPackageSummaryList"]
    )
    key = f"eval/{version + 1}/evaluation.json"
    context.s3.put_object(Bucket="reports-bucket", Key=key, Body=json.dumps({"gate": {"value": gate_value}}).encode())
    created = context.sagemaker.create_model_package(
        ModelPackageGroupName=CHURN.group_name,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [{"Image": "x", "ModelDataUrl": model_data_url}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelMetrics={
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"s3://reports-bucket/{key}"}}
        },
    )
    return str(created["ModelPackageArn"])


def _package_event(arn: str, status: str) -> dict[str, Any]:
    """The committed state-change event of ``status``, for the package ``arn``."""
    event: dict[str, Any] = load_event(
        PACKAGE_EVENTS[status],
        resources=[arn],
        **{
            "detail.ModelPackageArn": arn,
            "detail.ModelPackageVersion": int(arn.rsplit("/", 1)[-1]),
        },
    )
    return event


def _state_change(context: LifecycleContext, arn: str, status: str) -> dict[str, Any]:
    """Change the package's status in the registry, then the event SageMaker sends for that change."""
    context.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
    return _package_event(arn, status)


def _no_side_effects(context: LifecycleContext) -> None:
    store: MemoryStore = context.store  # type: ignore[assignment]
    assert context.actions.calls == []  # type: ignore[attr-defined]
    assert store.records == {} and store.operations == []


# The committed events -------------------------------------------------------------------------------------


def test_the_committed_events_carry_the_documented_envelope() -> None:
    envelope = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
    assert len(event_names()) >= 5
    for name in event_names():
        event = load_event(name)
        assert set(event) == envelope, name
        assert event["version"] == "0" and event["account"] == ACCOUNT and event["region"] == REGION
        assert isinstance(event["resources"], list) and event["resources"]


def test_the_object_created_fixture_parses_into_every_documented_field() -> None:
    raw = load_event(S3_EVENT)
    assert set(raw["detail"]) == {
        "version",
        "bucket",
        "object",
        "request-id",
        "requester",
        "source-ip-address",
        "reason",
    }
    assert set(raw["detail"]["object"]) == {"key", "size", "etag", "version-id", "sequencer"}

    parsed = lifecycle.parse_object_created_event(raw, account=ACCOUNT)

    assert parsed == lifecycle.ObjectCreated(
        bucket=RAW,
        key=KEY,
        etag="b1946ac92492d2347c6235b4d2611184",
        sequencer="617f08299329d189",
        size=48213,
        version_id="IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        reason="PutObject",
        account=ACCOUNT,
        region=REGION,
        event_id="17793124-05d4-b198-2fde-7ededc63b103",
    )


def test_a_multipart_upload_without_version_id_parses_and_starts_the_pipeline(context: LifecycleContext) -> None:
    raw = load_event("s3_object_created_multipart")
    parsed = lifecycle.parse_object_created_event(raw)
    assert (parsed.reason, parsed.version_id, parsed.etag) == (
        "CompleteMultipartUpload",
        None,
        "d41d8cd98f00b204e9800998ecf8427e-88",
    )

    result = lifecycle.dispatch(raw, context)

    assert isinstance(result, lifecycle.ArrivalResult) and result.execution_arn
    assert result.input_data_uri == f"s3://{RAW}/churn/incoming/batch-2/"


@pytest.mark.parametrize(("status", "name"), sorted(PACKAGE_EVENTS.items()))
def test_the_package_fixtures_parse_with_status_version_and_producing_run(status: str, name: str) -> None:
    raw = load_event(name)
    for field in ("ModelPackageName", "CreationTime", "InferenceSpecification", "ModelMetrics", "CreatedBy"):
        assert field in raw["detail"], field
    assert raw["detail"]["InferenceSpecification"]["Containers"][0]["ModelDataUrl"].startswith("s3://")

    parsed = lifecycle.parse_model_package_state_change_event(raw, account=ACCOUNT)

    assert parsed == lifecycle.ModelPackageStateChange(
        package_arn=PACKAGE_1,
        group=CHURN.group_name,
        version=1,
        status=status,
        account=ACCOUNT,
        region=REGION,
        generated_by=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/flywheel-local-churn-tabular/execution/k2x9q7c1v8rm",
        event_id=raw["id"],
    )


def test_the_local_runtime_builds_object_created_events_in_the_documented_shape() -> None:
    """The builder (moto sends no events) is held to the committed shape, not the other way round."""
    real = load_event(S3_EVENT)
    built = lifecycle.object_created_event(
        RAW,
        KEY,
        etag='"b1946ac92492d2347c6235b4d2611184"',
        size=48213,
        sequencer="617f08299329d189",
        version_id="IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        region=REGION,
        account=ACCOUNT,
    )
    assert set(built) == set(real)
    assert set(built["detail"]) == set(real["detail"]) - {"source-ip-address"}  # not known in-process
    assert set(built["detail"]["object"]) == set(real["detail"]["object"])
    assert (built["resources"], built["detail"]["bucket"]) == (real["resources"], real["detail"]["bucket"])
    as_built = lifecycle.parse_object_created_event(built)
    as_sent = lifecycle.parse_object_created_event(real)
    assert {**vars(as_built), "event_id": None} == {**vars(as_sent), "event_id": None}


def test_the_local_runtime_builds_package_events_in_the_documented_shape(context: LifecycleContext) -> None:
    arn = _register(context, 0.8)
    context.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    package = context.sagemaker.describe_model_package(ModelPackageName=arn)

    built = lifecycle.model_package_state_change_event(package, region=REGION, account=ACCOUNT)

    real = load_event(PACKAGE_EVENT)
    assert set(built) == set(real)
    assert set(built["detail"]) <= set(real["detail"])
    assert {"ModelPackageGroupName", "ModelPackageVersion", "ModelPackageArn", "ModelApprovalStatus"} <= set(
        built["detail"]
    )
    parsed = lifecycle.parse_model_package_state_change_event(built, account=ACCOUNT)
    assert (parsed.package_arn, parsed.group, parsed.version, parsed.status) == (arn, CHURN.group_name, 1, "Approved")
    assert (parsed.account, parsed.region, parsed.event_id) == (ACCOUNT, REGION, built["id"])


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
    token = context.actions.tokens[0]  # type: ignore[attr-defined]
    assert 32 <= len(token) <= 128  # StartPipelineExecution's ClientRequestToken bounds


def test_arrival_is_idempotent_per_batch_folder(context: LifecycleContext) -> None:
    """InputDataUri is the folder: one batch, one execution, however many files or redeliveries."""
    first = lifecycle.on_data_arrival(_arrival(), context)
    again = lifecycle.on_data_arrival(_arrival(id="8f5b3d1e-redelivered"), context)  # redelivery (new event id)
    assert again.duplicate and again.execution_arn == first.execution_arn
    assert again.parameters == first.parameters
    folder = KEY.rsplit("/", 1)[0]
    second_file = lifecycle.on_data_arrival(_arrival(f"{folder}/part-2.csv", etag="def456"), context)
    assert second_file.duplicate and second_file.execution_arn == first.execution_arn
    new_version = lifecycle.on_data_arrival(
        _arrival(**{"detail.object.version-id": "v2", "detail.object.etag": "e"}), context
    )
    assert new_version.duplicate
    assert len(context.actions.started) == 1  # type: ignore[attr-defined]
    other = lifecycle.on_data_arrival(_arrival(KEY.replace(folder, folder + "-fix"), etag="f00"), context)
    assert not other.duplicate and len(context.actions.started) == 2  # type: ignore[attr-defined]


def test_a_failed_start_releases_the_claim_so_a_retry_acts(context: LifecycleContext) -> None:
    context.actions = FakeActions(fail_start=True)
    with pytest.raises(RuntimeError, match="throttled"):
        lifecycle.on_data_arrival(_arrival(), context)
    assert context.store.records == {}  # type: ignore[attr-defined]
    context.actions = FakeActions()
    assert not lifecycle.on_data_arrival(_arrival(), context).duplicate
    assert len(context.actions.started) == 1  # type: ignore[attr-defined]


def test_markers_and_non_data_objects_are_skipped(context: LifecycleContext) -> None:
    for key in ("churn/incoming/batch-1/_SUCCESS", "churn/incoming/batch-1/notes.txt", "churn/incoming/b/.x.csv"):
        result = lifecycle.on_data_arrival(_arrival(key), context)
        assert result.execution_arn is None and result.skipped
    _no_side_effects(context)


def test_an_empty_data_file_is_no_batch(context: LifecycleContext) -> None:
    result = lifecycle.on_data_arrival(_arrival(**{"detail.object.size": 0}), context)
    assert result.execution_arn is None and result.skipped and "empty" in result.skipped
    _no_side_effects(context)


def test_champion_metric_comes_from_the_latest_approved_package(context: LifecycleContext) -> None:
    first = _register(context, 0.81)
    lifecycle.on_model_package_state_change(_state_change(context, first, "Approved"), context)
    _register(context, 0.95)  # pending: not a champion
    result = lifecycle.on_data_arrival(_arrival(), context)
    assert result.parameters["ChampionMetric"] == "0.81"


ARTIFACTS = "artifacts-bucket"
CHAMPION_MODEL = f"s3://{ARTIFACTS}/{CHURN.pipeline_name}/e1/model/flywheel-train-1/output/model.tar.gz"


def _approve_champion(context: LifecycleContext, model_data_url: str, *, upload: bool = True) -> None:
    context.s3.create_bucket(Bucket=ARTIFACTS, CreateBucketConfiguration={"LocationConstraint": REGION})
    if upload:
        bucket, key = model_data_url.removeprefix("s3://").split("/", 1)
        context.s3.put_object(Bucket=bucket, Key=key, Body=b"model")
    arn = _register(context, 0.8, model_data_url=model_data_url)
    lifecycle.on_model_package_state_change(_state_change(context, arn, "Approved"), context)


def test_the_champions_model_is_passed_for_a_paired_comparison(context: LifecycleContext) -> None:
    """GIVEN an approved champion whose artifact is the team pipeline's own, WHEN a batch lands, THEN the
    pipeline starts with ChampionModelUri = its ModelDataUrl (Evaluate scores it on the same test rows)."""
    before = lifecycle.on_data_arrival(_arrival(), context)
    assert "ChampionModelUri" not in before.parameters  # no champion: the pipeline's default (the marker)
    _approve_champion(context, CHAMPION_MODEL)
    _register(context, 0.99, model_data_url=CHAMPION_MODEL.replace("/e1/", "/e2/"))  # pending: not the champion
    result = lifecycle.on_data_arrival(_arrival(KEY.replace("batch-1", "batch-2")), context)
    assert result.parameters == {
        "InputDataUri": f"s3://{RAW}/churn/incoming/batch-2/",
        "ChampionMetric": "0.8",
        "ChampionModelUri": CHAMPION_MODEL,
    }
    assert context.actions.started[-1][1] == result.parameters  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("model_data_url", "upload"),
    [
        (CHAMPION_MODEL, False),  # the artifact is gone (expired, deleted): HeadObject 404
        (CHAMPION_MODEL.replace(CHURN.pipeline_name, OTHER.pipeline_name), True),  # another pipeline's model
        (f"s3://{ARTIFACTS}/{CHURN.pipeline_name}/e1/model/notes.txt", True),  # not a model archive
        ("https://example.com/model.tar.gz", False),  # not an S3 URI
    ],
)
def test_an_unusable_champion_model_falls_back_to_the_metric_alone(
    context: LifecycleContext, model_data_url: str, upload: bool
) -> None:
    _approve_champion(context, model_data_url, upload=upload)
    result = lifecycle.on_data_arrival(_arrival(), context)
    assert result.parameters["ChampionMetric"] == "0.8" and "ChampionModelUri" not in result.parameters


class _HeadFails:
    """An S3 client whose HeadObject raises ``code`` (the rest is the real moto client)."""

    def __init__(self, s3: Any, code: str) -> None:
        self._s3, self._code = s3, code

    def head_object(self, **_: Any) -> Any:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": self._code, "Message": "x"}}, "HeadObject")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)


def test_access_denied_on_the_champion_model_is_a_fallback_and_other_errors_propagate(
    context: LifecycleContext,
) -> None:
    _approve_champion(context, CHAMPION_MODEL)
    real = context.s3
    context.s3 = _HeadFails(real, "403")  # the role may not read it (e.g. a foreign bucket)
    assert "ChampionModelUri" not in lifecycle.on_data_arrival(_arrival(), context).parameters
    context.s3 = _HeadFails(real, "SlowDown")
    with pytest.raises(Exception, match="SlowDown"):
        lifecycle.on_data_arrival(_arrival(KEY.replace("batch-1", "batch-3")), context)
    assert "batch-3" not in json.dumps(context.store.records)  # type: ignore[attr-defined]


def _s3(**overrides: Any) -> Any:
    return load_event(S3_EVENT, **overrides)


BAD_ARRIVALS: list[tuple[str, Any, str]] = [
    ("empty", {}, "empty"),
    ("not an object", ["x"], "empty or not an object"),
    ("malformed JSON string", '{"source": "aws.s3"', "empty or not an object"),
    ("no detail", _s3(detail=DELETE), "event.detail is missing"),
    ("detail not an object", _s3(detail="x"), "event.detail must be an object, got str"),
    ("no bucket", _s3(**{"detail.bucket": DELETE}), "event.detail.bucket is missing"),
    ("bucket not an object", _s3(**{"detail.bucket": "raw"}), "event.detail.bucket must be an object"),
    ("no key", _s3(**{"detail.object.key": DELETE}), "event.detail.object.key is missing"),
    ("null key", _s3(**{"detail.object.key": None}), "event.detail.object.key is missing"),
    ("no etag", _s3(**{"detail.object.etag": DELETE}), "event.detail.object.etag is missing"),
    ("key not a string", _s3(**{"detail.object.key": 42}), "must be a non-empty string"),
    ("blank key", _s3(**{"detail.object.key": "  "}), "must be a non-empty string"),
    ("etag not a string", _s3(**{"detail.object.etag": ["a"]}), "event.detail.object.etag must be a non-empty string"),
    ("sequencer not a string", _s3(**{"detail.object.sequencer": 17}), "sequencer must be a string"),
    ("size not an int", _s3(**{"detail.object.size": "48213"}), "event.detail.object.size must be an integer"),
    ("size a bool", _s3(**{"detail.object.size": True}), "event.detail.object.size must be an integer"),
    ("negative size", _s3(**{"detail.object.size": -1}), "must not be negative"),
    ("version-id not a string", _s3(**{"detail.object.version-id": 3}), "version-id must be a string"),
    ("reason not a string", _s3(**{"detail.reason": {"x": 1}}), "event.detail.reason must be a string"),
    ("wrong source", _s3(source="aws.ec2"), "expected an event with source 'aws.s3'"),
    ("wrong detail-type", _s3(**{"detail-type": "Object Deleted"}), "detail-type 'Object Created'"),
    ("no source", _s3(source=DELETE), "expected an event with source 'aws.s3'"),
    ("foreign bucket", _arrival(bucket="someone-elses-bucket"), "foreign bucket"),
    ("foreign account", _s3(account="999999999999"), "not this platform's account"),
    ("unknown team", _arrival("marketing/incoming/b/x.csv"), "does not start with a known team"),
    ("outside incoming", _arrival("churn/_keys/b/pii-hmac.key.csv"), "is not under 'churn/incoming/'"),
    ("no batch folder", _arrival("churn/incoming/x.csv"), "land each batch in its own folder"),
    ("traversal", _arrival("churn/incoming/../_keys/x.csv"), "'..' path segment"),
    ("encoded traversal", _arrival("churn/incoming/%2e%2e/x.csv"), "'..' path segment"),
    ("upper-case encoded traversal", _arrival("churn/incoming/%2E%2E/x.csv"), "'..' path segment"),
    ("dot segment", _arrival("churn/incoming/./b/x.csv"), "'..' path segment"),
    ("double slash", _arrival("churn/incoming//x.csv"), "empty"),
    ("trailing slash", _arrival("churn/incoming/b/"), "empty"),
    ("absolute", _arrival("/churn/incoming/b/x.csv"), "absolute"),
    ("backslash", _arrival("churn/incoming/b\\..\\x.csv"), "backslash"),
    ("control character", _arrival("churn/incoming/b/x\n.csv"), "control characters"),
    ("delete character", _arrival("churn/incoming/b/x\x7f.csv"), "control characters"),
    ("oversize key", _arrival("churn/incoming/b/" + "x" * 1100 + ".csv"), "longer than 1024 bytes"),
    ("oversize multibyte key", _arrival("churn/incoming/b/" + "é" * 510 + ".csv"), "longer than 1024 bytes"),
]


@pytest.mark.parametrize(
    ("event", "message"), [(e, m) for _, e, m in BAD_ARRIVALS], ids=[n for n, _, _ in BAD_ARRIVALS]
)
def test_bad_arrival_events_are_refused_without_side_effects(
    context: LifecycleContext, event: Any, message: str
) -> None:
    with pytest.raises(LifecycleEventError) as excinfo:
        lifecycle.on_data_arrival(event, context)
    assert message in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)
    _no_side_effects(context)


def test_a_key_of_exactly_the_limit_is_accepted(context: LifecycleContext) -> None:
    prefix, suffix = "churn/incoming/b/", ".csv"
    key = prefix + "x" * (lifecycle.MAX_KEY_BYTES - len(prefix) - len(suffix)) + suffix
    assert len(key.encode()) == lifecycle.MAX_KEY_BYTES
    assert lifecycle.on_data_arrival(_arrival(key), context).execution_arn


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


def test_rejecting_a_package_that_is_not_deployed_changes_nothing(context: LifecycleContext) -> None:
    actions: FakeActions = context.actions  # type: ignore[assignment]
    v1, v2 = _register(context, 0.8), _register(context, 0.85)
    lifecycle.on_model_package_state_change(_state_change(context, v1, "Approved"), context)

    result = lifecycle.on_model_package_state_change(_state_change(context, v2, "Rejected"), context)

    assert (result.action, result.deployed_arn) == ("ignored", v1)
    assert actions.calls == ["deploy 1"]


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


def _pkg(**overrides: Any) -> Any:
    return load_event(PACKAGE_EVENT, **overrides)


BAD_PACKAGE_EVENTS: list[tuple[str, Any, str]] = [
    ("empty", {}, "empty"),
    ("not an object", None, "empty or not an object"),
    ("no detail", _pkg(detail=DELETE), "event.detail is missing"),
    ("detail not an object", _pkg(detail=[1]), "event.detail must be an object, got list"),
    ("no arn", _pkg(**{"detail.ModelPackageArn": DELETE}), "ModelPackageArn is missing"),
    ("arn not a string", _pkg(**{"detail.ModelPackageArn": 7}), "ModelPackageArn must be a non-empty string"),
    ("no status", _pkg(**{"detail.ModelApprovalStatus": DELETE}), "ModelApprovalStatus is missing"),
    ("unknown status", _pkg(**{"detail.ModelApprovalStatus": "Maybe"}), "'Maybe' is not one of"),
    ("lower-case status", _pkg(**{"detail.ModelApprovalStatus": "approved"}), "'approved' is not one of"),
    ("no group", _pkg(**{"detail.ModelPackageGroupName": DELETE}), "ModelPackageGroupName is missing"),
    ("bad arn", _pkg(**{"detail.ModelPackageArn": "arn:aws:s3:::bucket/x"}), "not a versioned model package ARN"),
    (
        "unversioned arn",
        _pkg(**{"detail.ModelPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{CHURN.group_name}"}),
        "not a versioned model package ARN",
    ),
    (
        "group mismatch",
        _pkg(**{"detail.ModelPackageGroupName": "flywheel-local-diagnostics"}),
        "is not in group 'flywheel-local-diagnostics'",
    ),
    (
        "unknown group",
        _pkg(
            **{
                "detail.ModelPackageGroupName": "intruder",
                "detail.ModelPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/intruder/1",
            }
        ),
        "belongs to no known team",
    ),
    (
        "foreign account",
        _pkg(
            **{"detail.ModelPackageArn": f"arn:aws:sagemaker:{REGION}:999999999999:model-package/{CHURN.group_name}/1"}
        ),
        "foreign account",
    ),
    ("foreign event account", _pkg(account="999999999999"), "not this platform's account"),
    ("version not an int", _pkg(**{"detail.ModelPackageVersion": "1"}), "ModelPackageVersion must be an integer"),
    ("version mismatch", _pkg(**{"detail.ModelPackageVersion": 2}), "ModelPackageVersion 2 is not the version"),
    ("metadata not an object", _pkg(**{"detail.MetadataProperties": "x"}), "MetadataProperties must be an object"),
    (
        "generated-by not a string",
        _pkg(**{"detail.MetadataProperties.GeneratedBy": 5}),
        "GeneratedBy must be a string",
    ),
    ("wrong source", _pkg(source="aws.s3"), "expected an event with source 'aws.sagemaker'"),
    ("wrong detail-type", _pkg(**{"detail-type": "SageMaker Model State Change"}), "detail-type 'SageMaker Model"),
]


@pytest.mark.parametrize(
    ("event", "message"), [(e, m) for _, e, m in BAD_PACKAGE_EVENTS], ids=[n for n, _, _ in BAD_PACKAGE_EVENTS]
)
def test_bad_package_events_are_refused_without_side_effects(
    context: LifecycleContext, event: Any, message: str
) -> None:
    with pytest.raises(LifecycleEventError) as excinfo:
        lifecycle.on_model_package_state_change(event, context)
    assert message in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)
    _no_side_effects(context)


def test_dispatch_refuses_events_nobody_handles(context: LifecycleContext) -> None:
    with pytest.raises(LifecycleEventError, match="no lifecycle handler"):
        lifecycle.dispatch({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification"}, context)
    with pytest.raises(LifecycleEventError, match="no lifecycle handler"):
        lifecycle.dispatch(_s3(**{"detail-type": "Object Deleted"}), context)
    with pytest.raises(LifecycleEventError, match="empty"):
        lifecycle.dispatch(None, context)
    _no_side_effects(context)


def test_dispatch_routes_each_committed_event_to_its_handler(context: LifecycleContext) -> None:
    arn = _register(context, 0.8)
    context.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    assert arn == PACKAGE_1

    deployment = lifecycle.dispatch(load_event(PACKAGE_EVENT), context)
    arrival = lifecycle.dispatch(load_event(S3_EVENT), context)

    assert isinstance(deployment, lifecycle.DeploymentResult) and deployment.action == "deployed"
    assert isinstance(arrival, lifecycle.ArrivalResult) and arrival.parameters["ChampionMetric"] == "0.8"


def test_the_public_api_is_importable_without_flywheel() -> None:
    import subprocess
    import sys

    code = (
        "import sys, lambdas.lifecycle as l; "
        "assert not [m for m in sys.modules if m == 'flywheel' or m.startswith('flywheel.')]; "
        "assert all(hasattr(l, n) for n in l.__all__)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=_repo_root())


def _repo_root() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parents[2])
