"""Local rollout: canary routing, the rollback alarms on the endpoint's own figures, promotion and rollback.

Models are tiny artifacts with their own ``code/inference.py`` (healthy, raising at serving time, slow);
the runtime-level tests register them in the embedded registry (no training) and approve them, so the
deploy path, the endpoint and the state store are the real ones.
"""

from __future__ import annotations

import io
import math
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flywheel.actions import RolloutRefusedError, end_rollout
from flywheel.embedded import EmbeddedAws
from flywheel.rollout import (
    LATENCY_DATAPOINTS,
    LOCAL_MAX_BAKE_SECONDS,
    AlarmRule,
    CanaryRouter,
    RolloutSettings,
    VariantFigures,
    deploy_config,
)
from flywheel.runtime import LocalRuntime
from flywheel.serving import Router, Target, invoke, load_model, serve
from flywheel.state import StateStore
from lambdas.common.env import ConfigError

REPO = Path(__file__).resolve().parents[2]
ENDPOINT = "flywheel-local-churn"

HEALTHY = """
import json
def model_fn(model_dir):
    return {"answer": 1.0}
def input_fn(body, content_type):
    return body.decode("utf-8").strip().splitlines()
def predict_fn(rows, model):
    return [model["answer"] for _ in rows]
def output_fn(prediction, accept):
    return json.dumps({"predictions": prediction})
"""
BROKEN = (
    HEALTHY
    + """
def predict_fn(rows, model):
    raise RuntimeError("this challenger is broken")
"""
)
SLOW = (
    HEALTHY
    + """
import time
def predict_fn(rows, model):
    time.sleep(0.05)
    return [2.0 for _ in rows]
"""
)


def _model_dir(root: Path, code: str) -> Path:
    (root / "code").mkdir(parents=True)
    (root / "code" / "inference.py").write_text(code, encoding="utf-8")
    return root


def _tar(root: Path, code: str) -> Path:
    path = root / "model.tar.gz"
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        data = code.encode()
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def _settings(percent: float = 20, bake: float = 30, latency_ms: float = 1000) -> RolloutSettings:
    config = deploy_config(
        team="churn",
        group="flywheel-local-churn",
        endpoint=ENDPOINT,
        account="123456789012",
        deploy_target="realtime",
        instance_type="ml.m5.large",
        min_instances=1,
        volume_key="alias/flywheel-local-artifacts",
        capture_bucket="flywheel-local-capture",
        capture_key="alias/flywheel-local-capture",
        overrides={"CANARY_SIZE": str(int(percent)), "BAKE_SECONDS": str(int(bake))},
    )
    settings = RolloutSettings.from_deploy_config(config, latency_threshold_ms=latency_ms)
    assert settings is not None
    return settings


# Settings: the deploy handler's type and DeploymentConfig ------------------------------------------------


def test_settings_come_from_the_deploy_handlers_config_and_deployment_config() -> None:
    settings = _settings(20, 5)
    assert settings.canary_percent == 20 and settings.bake_seconds == 5
    assert [rule.name for rule in settings.alarms] == [f"{ENDPOINT}-5xx", f"{ENDPOINT}-latency"]
    assert [rule.metric for rule in settings.alarms] == ["Invocation5XXErrors", "ModelLatency"]
    assert RolloutSettings.from_dict(settings.to_dict()) == settings
    # The handler's validation applies: a canary over 50 % is refused as the Lambda refuses it.
    with pytest.raises(ConfigError, match="CANARY_SIZE"):
        _settings(80, 5)


def _team_config(deploy_target: str, deployment: Any) -> Any:
    return deploy_config(
        team="churn", group="flywheel-local-churn", endpoint=ENDPOINT, account="123456789012",
        deploy_target=deploy_target, instance_type="ml.m5.large", min_instances=1,
        volume_key="alias/flywheel-local-artifacts", capture_bucket="flywheel-local-capture",
        capture_key="alias/flywheel-local-capture", deployment=deployment,
    )  # fmt: skip


def test_the_local_rollout_uses_the_teams_deployment_settings() -> None:
    from config.loader import load_config
    from config.models import DeploymentSettings

    # the shipped churn team: its 20 % canary (not the Lambda's default 10 %), the bake capped locally
    churn = load_config().team("churn")
    settings = RolloutSettings.from_deploy_config(_team_config("realtime", churn.deployment))
    assert settings is not None and settings.canary_percent == churn.deployment.canary_percent == 20
    assert settings.bake_seconds == LOCAL_MAX_BAKE_SECONDS < churn.deployment.bake_seconds
    custom = RolloutSettings.from_deploy_config(_team_config("realtime", DeploymentSettings(canary_percent=35)))
    assert custom is not None and custom.canary_percent == 35
    short = RolloutSettings.from_deploy_config(_team_config("realtime", DeploymentSettings(bake_seconds=2)))
    assert short is not None and short.bake_seconds == 2
    # an instance-count canary: on the smallest fleet it fits (twice its size), SageMaker's largest share
    counted = RolloutSettings.from_deploy_config(_team_config("realtime", DeploymentSettings(canary_instances=2)))
    assert counted is not None and counted.canary_percent == 50
    # serverless: the team's memory and concurrency, no canary
    memory = DeploymentSettings(serverless_memory_mb=4096, serverless_max_concurrency=50)
    serverless = _team_config("serverless", memory)
    assert (serverless.serverless_memory_mb, serverless.serverless_max_concurrency) == (4096, 50)
    assert RolloutSettings.from_deploy_config(serverless) is None


def test_serverless_and_batch_teams_are_updated_all_at_once() -> None:
    for target in ("serverless", "batch"):
        config = deploy_config(
            team="diagnostics",
            group="flywheel-local-diagnostics",
            endpoint="flywheel-local-diagnostics",
            account="123456789012",
            deploy_target=target,
            instance_type="ml.m5.large",
            min_instances=1,
            volume_key="alias/k",
            capture_bucket="flywheel-local-capture",
            capture_key="alias/k",
        )
        assert RolloutSettings.from_deploy_config(config) is None


def test_alarm_rules_on_the_canary_figures() -> None:
    errors = AlarmRule.for_alarm(f"{ENDPOINT}-5xx")
    latency = AlarmRule.for_alarm(f"{ENDPOINT}-latency", 100)
    assert errors.breach(VariantFigures(requests=3)) is None
    assert "Invocation5XXErrors 1 > 0" in (errors.breach(VariantFigures(requests=3, errors_5xx=1)) or "")
    slow = VariantFigures(requests=LATENCY_DATAPOINTS, latencies_ms=[500.0] * LATENCY_DATAPOINTS)
    assert "ModelLatency p99 500.0 ms > 100 ms" in (latency.breach(slow) or "")
    few = VariantFigures(requests=1, latencies_ms=[500.0])
    assert latency.breach(few) is None  # one slow first call is not enough data
    with pytest.raises(ValueError, match="knows <endpoint>-5xx"):
        AlarmRule.for_alarm("some-other-alarm")


# The router, in process -----------------------------------------------------------------------------------


@pytest.fixture
def models(tmp_path: Path) -> Iterator[dict[str, Any]]:
    loaded = {
        name: load_model(_model_dir(tmp_path / name, code))
        for name, code in [("healthy", HEALTHY), ("broken", BROKEN), ("slow", SLOW)]
    }
    yield loaded
    for model in loaded.values():
        model.close()


def test_canary_share_is_exact_and_deterministic(models: dict[str, Any]) -> None:
    champion, canary = Target(models["healthy"], 1), Target(models["healthy"], 2)
    router = CanaryRouter(champion, canary, _settings(20, 30))
    try:
        picks = [router.pick() for _ in range(100)]
        assert sum(p is canary for p in picks) == 20
        assert [p is canary for p in picks[:10]] == [False, False, False, False, True] * 2
    finally:
        router.close()


def test_a_healthy_canary_is_promoted_when_the_bake_ends_without_alarm(models: dict[str, Any]) -> None:
    champion, canary = Target(models["healthy"], 1), Target(models["slow"], 2)
    decisions: list[dict[str, Any]] = []
    router = CanaryRouter(champion, canary, _settings(20, 1), on_decision=decisions.append)
    for _ in range(20):
        target = router.pick()
        router.observe(target, 200, 50.0 if target is canary else 1.0)
    decision = router.wait(30)
    assert decision is not None and decision["outcome"] == "promoted"
    assert "no alarm during the 1 s bake" in decision["reason"]
    assert decision["figures"]["canary"]["requests"] == 4 and decision["figures"]["champion"]["requests"] == 16
    assert router.pick() is canary and router.champion is canary and decisions == [decision]
    router.close()


def test_a_latency_alarm_rolls_back(models: dict[str, Any]) -> None:
    champion, canary = Target(models["healthy"], 1), Target(models["slow"], 2)
    router = CanaryRouter(champion, canary, _settings(50, 30, latency_ms=10))
    try:
        while router.decision is None:
            target = router.pick()
            router.observe(target, 200, 50.0 if target is canary else 1.0)
        assert router.decision["outcome"] == "rolled-back"
        assert f"{ENDPOINT}-latency: ModelLatency p99 50.0 ms > 10 ms" in router.decision["reason"]
        assert router.decision["figures"]["canary"]["requests"] == LATENCY_DATAPOINTS
        assert all(router.pick() is champion for _ in range(10))
    finally:
        router.close()


# The endpoint over HTTP -------------------------------------------------------------------------------------


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_a_failing_canary_is_rolled_back_and_no_request_fails_beyond_the_canary_share(
    models: dict[str, Any],
) -> None:
    champion, canary = Target(models["healthy"], 1), Target(models["broken"], 2)
    settings = _settings(20, 30)
    router = CanaryRouter(champion, canary, settings)
    server = serve(router)
    try:
        statuses: list[tuple[int, str | None]] = []
        while router.decision is None:
            response = invoke(server.url, "1,2,3\n")
            statuses.append((response.status, response.headers.get("X-Flywheel-Model-Version")))
        failed = [s for s, _ in statuses if s != 200]
        assert failed == [500]  # the canary's first 5xx raised the alarm: rolled back at once
        assert len(failed) <= math.ceil(len(statuses) * settings.canary_percent / 100)
        assert all(version == "1" for status, version in statuses if status == 200)
        decision = router.decision
        assert decision["outcome"] == "rolled-back" and decision["serving_version"] == 1
        assert f"{ENDPOINT}-5xx: Invocation5XXErrors 1 > 0" in decision["reason"]
        assert decision["figures"]["canary"] == {**decision["figures"]["canary"], "requests": 1, "errors_5xx": 1}
        # After the rollback the champion answers every request.
        after = [invoke(server.url, "1,2,3\n") for _ in range(30)]
        assert all(r.status == 200 and r.headers.get("X-Flywheel-Model-Version") == "1" for r in after)
    finally:
        server.stop()


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_a_plain_model_is_served_as_before(models: dict[str, Any]) -> None:
    with serve(models["healthy"]) as server:
        response = invoke(server.url, "1\n2\n")
        assert response.status == 200 and response.json() == {"predictions": [1.0, 1.0]}
        assert "X-Flywheel-Model-Version" not in response.headers
        assert isinstance(server.router, Router) and not isinstance(server.router, CanaryRouter)
    assert not models["healthy"].closed  # a model passed in is the caller's to close


# The runtime: approve → rollout → endpoint → outcome in the state store -------------------------------------


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[LocalRuntime]:
    aws = EmbeddedAws.in_process()
    try:
        rt = LocalRuntime(aws, StateStore(tmp_path / "state"))
        rt.provision(["churn"])
        rt.rollout_overrides = {"BAKE_SECONDS": "1"}
        yield rt
    finally:
        aws.close()


def _register(rt: LocalRuntime, tmp_path: Path, code: str, name: str) -> str:
    res = rt.resources("churn")
    artifact = _tar(tmp_path / "artifacts" / name, code)
    bucket = res.platform.buckets["artifacts"]
    key = f"churn/test/{name}/model.tar.gz"
    rt.aws.client("s3").upload_file(
        str(artifact),
        bucket,
        key,
        ExtraArgs={"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": res.platform.keys["artifacts"]},
    )
    return rt.registry.register(
        {
            "ModelPackageGroupName": res.group_name,
            "ModelPackageDescription": f"test model {name}",
            "InferenceSpecification": {
                "Containers": [
                    {
                        "Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/x:1",
                        "ModelDataUrl": f"s3://{bucket}/{key}",
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            "ModelApprovalStatus": "PendingManualApproval",
        }
    )


def _serve_through_rollout(rt: LocalRuntime, events: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, str | None]]:
    server, _, _ = rt.start_endpoint("churn", capture_to_s3=False, on_rollout=lambda k, d: events.append((k, d)))
    try:
        router = server.router
        assert isinstance(router, CanaryRouter)
        statuses = []
        while router.decision is None:
            response = invoke(server.url, "1,2\n")
            statuses.append((response.status, response.headers.get("X-Flywheel-Model-Version")))
        for _ in range(10):
            response = invoke(server.url, "1,2\n")
            statuses.append((response.status, response.headers.get("X-Flywheel-Model-Version")))
        return statuses
    finally:
        server.stop()


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_runtime_rolls_back_a_broken_challenger_records_it_and_refuses_it_again(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    champion = _register(runtime, tmp_path, HEALTHY, "v1")
    assert runtime.set_approval(champion, "Approved").action == "deployed"
    assert runtime.actions.last_action["action"] == "deployed"  # the first deployment: all at once
    broken = _register(runtime, tmp_path, BROKEN, "v2")
    approval = runtime.set_approval(broken, "Approved")
    assert approval.action == "deployed" and runtime.actions.last_action["action"] == "rollout-started"
    record = runtime.state.deployment("churn") or {}
    assert record["ModelPackageVersion"] == 1 and record["Rollout"]["ModelPackageVersion"] == 2
    assert record["Rollout"]["Settings"]["canary_percent"] == 20 and record["Rollout"]["Settings"]["bake_seconds"] == 1

    events: list[tuple[str, dict[str, Any]]] = []
    statuses = _serve_through_rollout(runtime, events)
    assert [kind for kind, _ in events] == ["rollout-started", "rolled-back"]
    assert [s for s, _ in statuses].count(500) == 1
    assert all(version == "1" for status, version in statuses if status == 200)
    assert statuses[-10:] == [(200, "1")] * 10

    record = runtime.state.deployment("churn") or {}
    assert record["ModelPackageVersion"] == 1 and "Rollout" not in record
    (last,) = record["Rollouts"]
    assert last["outcome"] == "rolled-back" and last["version"] == 2 and last["champion_version"] == 1
    assert "Invocation5XXErrors" in last["reason"] and last["figures"]["canary"]["errors_5xx"] == 1

    # The deploy Lambda does not push a rolled-back config again; neither does the local deploy path.
    with pytest.raises(RolloutRefusedError, match="version 2 was rolled back by its alarms"):
        runtime.set_approval(broken, "Approved")


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_runtime_promotes_a_healthy_challenger_after_the_bake(runtime: LocalRuntime, tmp_path: Path) -> None:
    runtime.set_approval(_register(runtime, tmp_path, HEALTHY, "v1"), "Approved")
    challenger = _register(runtime, tmp_path, SLOW, "v2")
    runtime.set_approval(challenger, "Approved")
    events: list[tuple[str, dict[str, Any]]] = []
    statuses = _serve_through_rollout(runtime, events)
    assert [kind for kind, _ in events] == ["rollout-started", "promoted"]
    assert all(status == 200 for status, _ in statuses)
    assert {version for _, version in statuses[:-10]} == {"1", "2"} and statuses[-10:] == [(200, "2")] * 10
    record = runtime.state.deployment("churn") or {}
    assert record["ModelPackageArn"] == challenger and record["ModelPackageVersion"] == 2 and "Rollout" not in record
    assert record["Rollouts"][-1]["outcome"] == "promoted"
    assert runtime.actions.deployed_package(runtime.target("churn")) == challenger


def test_rejecting_the_version_being_rolled_out_cancels_its_rollout(runtime: LocalRuntime, tmp_path: Path) -> None:
    runtime.set_approval(_register(runtime, tmp_path, HEALTHY, "v1"), "Approved")
    challenger = _register(runtime, tmp_path, HEALTHY, "v2")
    runtime.set_approval(challenger, "Approved")
    assert runtime.actions.deployed_package(runtime.target("churn")) == challenger  # the endpoint's target
    assert runtime.set_approval(challenger, "Approved").action == "already-deployed"
    assert runtime.set_approval(challenger, "Rejected").action == "rolled-back"
    record = runtime.state.deployment("churn") or {}
    assert record["ModelPackageVersion"] == 1 and "Rollout" not in record
    assert record["Rollouts"][-1]["outcome"] == "cancelled" and record["Rollouts"][-1]["version"] == 2


def test_end_rollout_ignores_an_outcome_of_another_rollout() -> None:
    record = {"ModelPackageArn": "a1", "ModelPackageVersion": 1, "LocalModel": "x", "Rollout": {"RolloutId": "new"}}
    assert end_rollout(record, "promoted", "old", rollout_id="old") == record
    ended = end_rollout(record, "rolled-back", "alarm", {"figures": {}}, rollout_id="new") or {}
    assert "Rollout" not in ended and ended["Rollouts"][-1]["outcome"] == "rolled-back"


# The CLI ------------------------------------------------------------------------------------------------------


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_demo_break_challenger_trains_a_champion_then_rolls_the_broken_challenger_back(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flywheel.cli import app

    state = ["--state-dir", str(tmp_path / "state")]
    result = CliRunner().invoke(app, ["demo", "--rows", "2000", "--requests", "10", "--break-challenger", *state])
    output = result.output.replace("\n", " ")
    assert result.exit_code == 0, output
    assert "No churn model is deployed yet: first the whole loop trains and approves a champion" in output
    assert "APPROVED model package version 1" in output
    assert "Registered a BROKEN challenger, version 2" in output
    assert "Canary rollout of version 2: 20 % of requests to it" in output
    assert "ROLLED BACK version 2" in output and "flywheel-local-churn-5xx: Invocation5XXErrors" in output
    assert "all traffic now on version 1" in output
    assert "then 10 of 10 answered by version 1 (0 errors)" in output
    assert "to version 1, 0 errors" in output  # the measurement after the rollback: the champion answers all
    assert "Traceback" not in output

    record = StateStore(tmp_path / "state").deployment("churn") or {}
    assert record["ModelPackageVersion"] == 1 and record["Rollouts"][-1]["outcome"] == "rolled-back"
    status = CliRunner().invoke(app, ["status", *state])
    assert "churn: last rollout: version 2 rolled-back" in status.output.replace("\n", " ")


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_a_running_endpoint_picks_up_a_rollout_approved_after_it_started(runtime: LocalRuntime, tmp_path: Path) -> None:
    runtime.set_approval(_register(runtime, tmp_path, HEALTHY, "v1"), "Approved")
    events: list[tuple[str, dict[str, Any]]] = []
    server, _, _ = runtime.start_endpoint("churn", capture_to_s3=False, on_rollout=lambda k, d: events.append((k, d)))
    try:
        assert not isinstance(server.router, CanaryRouter)
        runtime.set_approval(_register(runtime, tmp_path, BROKEN, "v2"), "Approved")  # as `flywheel approve` would
        statuses = []
        for _ in range(2000):  # the endpoint polls the deployment record, starts the canary, rolls back
            response = invoke(server.url, "1\n")
            statuses.append(response.status)
            if any(kind == "rolled-back" for kind, _ in events):
                break
        assert [kind for kind, _ in events] == ["rollout-started", "rolled-back"]
        assert statuses.count(500) == 1 and invoke(server.url, "1\n").headers.get("X-Flywheel-Model-Version") == "1"
    finally:
        server.stop()
    assert (runtime.state.deployment("churn") or {})["Rollouts"][-1]["outcome"] == "rolled-back"
