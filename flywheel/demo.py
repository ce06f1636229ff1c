"""``flywheel demo``: the whole loop on generated data, and the latency/throughput of the served model.

:func:`run_demo` drives a :class:`flywheel.runtime.LocalRuntime` through provision → generate → land →
trigger → execute → approve → serve → measure → report, timing each stage; :func:`measure` sends
single-row requests (latency) and batch requests (throughput) to a running endpoint.

When a version is already deployed, the approval starts a canary rollout (:mod:`flywheel.rollout`):
the demo serves champion + canary, sends requests through the bake (:func:`drive_rollout`) and prints
the outcome. ``break_challenger`` (``flywheel demo --break-challenger``) registers a challenger whose
inference code raises at serving time (:func:`register_broken_challenger`: the champion's artifact with
a ``predict_fn`` that fails), approves it and shows the automatic rollback; with no champion deployed
yet it first runs the whole loop to train and approve one.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from flywheel.errors import FlywheelError
from flywheel.outcome import RunOutcome, event_object_uri
from lambdas import lifecycle

if TYPE_CHECKING:
    from flywheel.runtime import LocalRuntime


@dataclass
class DemoResult:
    """What ``flywheel demo`` did and where it left things (``outcome`` is None when no pipeline ran:
    ``--break-challenger`` on a deployed champion)."""

    outcome: RunOutcome | None
    approval: lifecycle.DeploymentResult | None
    serving: dict[str, Any]
    report_path: Path | None
    report_uri: str | None
    capture_uri: str | None
    timings: dict[str, float] = field(default_factory=dict)
    #: CPU seconds of the same phases (this process and the step processes it waited for).
    cpu_timings: dict[str, float] = field(default_factory=dict)
    #: The canary rollout's outcome (``promoted`` / ``rolled-back``, reason, figures) and the traffic sent.
    rollout: dict[str, Any] | None = None
    package_version: int | None = None


def cpu_seconds() -> float:
    """CPU seconds of this process and of the child processes it has waited for (the pipeline's steps)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def run_demo(
    runtime: LocalRuntime,
    *,
    team: str = "churn",
    rows: int = 100_000,
    seed: int = 0,
    requests: int = 50,
    batch_rows: int = 100,
    serve_port: int = 0,
    say: Callable[[str], None] = print,
    break_challenger: bool = False,
    data: Path | None = None,
    drift: bool = False,
) -> DemoResult:
    """The whole loop on generated data, or on ``data`` (a CSV/parquet file: any team, with or without an
    example generator); see ``flywheel demo --help`` (``drift``: shifted traffic)."""
    if data is not None and not Path(data).is_file():
        raise FlywheelError(f"--data {data}: no such file; pass an existing CSV or parquet file")
    if break_challenger:
        return _break_challenger_demo(
            runtime,
            team=team,
            rows=rows,
            seed=seed,
            requests=requests,
            batch_rows=batch_rows,
            serve_port=serve_port,
            say=say,
            data=data,
        )
    timings: dict[str, float] = {}
    cpu_timings: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(name: str) -> Iterator[None]:
        started, cpu = time.perf_counter(), cpu_seconds()
        yield
        timings[name] = time.perf_counter() - started
        cpu_timings[name] = cpu_seconds() - cpu

    with timed("provision"):
        runtime.provision([team])
    res = runtime.resources(team)
    say(f"Provisioned team {team}: pipeline {res.primary.pipeline_name}, registry group {res.group_name}")
    folder = runtime.state.root / "data" / f"{team}-{uuid.uuid4().hex[:8]}"
    if data is None:
        with timed("generate"):
            source = runtime.generate(team, rows, seed, folder)
        say(f"Generated {rows:,} rows of {team} data (seed {seed}, {source.stat().st_size / 1e6:.1f} MB)")
    else:
        source = Path(data)
        say(f"Landing {source} ({source.stat().st_size / 1e6:.1f} MB) as a {team} batch")
    with timed("land"):
        try:
            event = runtime.land(team, source)
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # seeded: the raw zone holds the copy
    say(f"Landed the batch in the raw zone: {event_object_uri(event)}")
    with timed("trigger"):
        arrival = runtime.trigger(event)
    say(
        f"Data-arrival handler started execution {arrival.execution_arn} "
        f"(ChampionMetric={arrival.parameters.get('ChampionMetric')})"
    )
    if arrival.execution_arn is None:
        raise FlywheelError(f"the landed object did not start the pipeline: {arrival.skipped}")
    with timed("pipeline"):
        record = runtime.execute(arrival.execution_arn)
    outcome = runtime.outcome(team, event, arrival, record)
    result = DemoResult(outcome, None, {}, None, None, None, timings, cpu_timings)
    if not record.succeeded or outcome.package is None:
        with timed("report"):
            result.report_path, result.report_uri = runtime.write_report(outcome, serving=None)
        return result
    package = outcome.package
    say(
        f"Registered model package version {package['ModelPackageVersion']} "
        f"({package['ModelApprovalStatus']}): {package['ModelPackageArn']}"
    )
    result.package_version = int(package["ModelPackageVersion"])
    with timed("approve"):
        result.approval = _approve(runtime, package["ModelPackageArn"], say)
    with timed("serve"):
        served_since = datetime.now(UTC)
        _serve_and_measure(runtime, team, result, requests, batch_rows, serve_port, say, drift=drift)
    from flywheel import monitor  # scipy and pandas: imported by the commands that need them only

    with timed("monitor"):  # the drift monitor on the traffic just captured (flywheel/monitor.py)
        section = monitor.demo_drift(runtime, team, served_since, result.serving.get("drift_shift"), say)
    with timed("report"):
        result.report_path, result.report_uri = runtime.write_report(
            outcome, serving=result.serving, extra_sections=[section] if section else None
        )
    return result


def _approve(runtime: LocalRuntime, arn: str, say: Callable[[str], None]) -> lifecycle.DeploymentResult:
    """Approve ``arn`` (automatically, for the demo) and say what the deploy path did."""
    approval = runtime.set_approval(arn, "Approved", "approved by `flywheel demo` (automatic, for the demo only)")
    version = arn.rsplit("/", 1)[-1]
    say(
        f"APPROVED model package version {version} automatically, for the demo "
        f"(in a real environment an approver does this); deployment: {approval.action}"
    )
    action = runtime.actions.last_action
    if action.get("action") == "rollout-started":
        say(rollout_plan(action["settings"], action["version"], action["champion_version"]))
    return approval


def rollout_plan(settings: dict[str, Any], version: Any, champion: Any) -> str:
    """One line: what the canary rollout of ``version`` will do."""
    alarms = ", ".join(
        f"{a['name']} ({a['metric']} {'p99 ' if a['metric'] == 'ModelLatency' else ''}> {a['threshold']:g}"
        f"{' ms' if a['metric'] == 'ModelLatency' else ''})"
        for a in settings["alarms"]
    )
    return (
        f"Canary rollout of version {version}: {settings['canary_percent']:g} % of requests to it, the rest to "
        f"version {champion} (champion); bake {settings['bake_seconds']:g} s; rollback alarms: {alarms or 'none'}"
    )


def _serve_and_measure(
    runtime: LocalRuntime,
    team: str,
    result: DemoResult,
    requests: int,
    batch_rows: int,
    serve_port: int,
    say: Callable[[str], None],
    *,
    drift: bool = False,
) -> None:
    from flywheel.rollout import CanaryRouter

    server, deployment, capture = runtime.start_endpoint(team, port=serve_port)
    try:
        say(f"Serving version {deployment['ModelPackageVersion']} at {server.url} (capture: {capture})")
        samples = Path(deployment["Samples"] or "")
        shift = None
        if drift and samples.is_file():  # --drift: the traffic moves one feature (flywheel/monitor.py)
            from flywheel import monitor

            samples, shift = monitor.shift_samples(runtime, team, samples)
            say(f"Drifted traffic: {shift}")
        router = server.router
        if isinstance(router, CanaryRouter):
            rollout = drive_rollout(server.url, samples, router, after=requests)
            result.rollout = rollout
            for line in rollout_lines(rollout):
                say(line)
        result.serving = measure(server.url, samples, requests, batch_rows)
        result.serving["served_version"] = server.router.champion.version
        if shift:
            result.serving["drift_shift"] = shift
    finally:
        server.stop()
        runtime.state.save_server(f"endpoint-{team}", None)
    result.capture_uri = capture
    result.serving["endpoint_url"] = server.url
    figures = result.serving
    say(
        f"Sent {requests} single-row requests (latency p50 {figures['p50_ms']:.1f} ms, p99 "
        f"{figures['p99_ms']:.1f} ms) and {requests} requests of {batch_rows} rows "
        f"({figures['rows_per_s']:,.0f} rows/s) to version {figures['served_version']}, {figures['errors']} errors"
    )


def _sample_lines(samples: Path) -> list[str]:
    if not samples.is_file():
        raise FlywheelError("the deployment has no sample rows to send (samples.csv is missing)")
    lines = [line for line in samples.read_text(encoding="utf-8").splitlines() if line]
    if not lines:
        raise FlywheelError("the deployment's sample rows are empty")
    return lines


def drive_rollout(url: str, samples: Path, router: Any, *, after: int = 50, pace_s: float = 0.01) -> dict[str, Any]:
    """Send single-row requests through a rollout's bake until the endpoint decides, then ``after`` more.

    Returns the router's decision with the client's own counts: ``during`` (the bake) and ``after``
    (once all traffic is on the winner), each ``{"requests", "failed", "by_version": {version: [ok, failed]}}``.
    """
    from flywheel import serving

    lines = _sample_lines(samples)
    deadline = time.monotonic() + router.settings.bake_seconds + 60
    phases: dict[str, dict[str, Any]] = {
        "during": {"requests": 0, "failed": 0, "by_version": {}},
        "after": {"requests": 0, "failed": 0, "by_version": {}},
    }

    def send(i: int, phase: dict[str, Any]) -> None:
        response = serving.invoke(url, lines[i % len(lines)] + "\n", "text/csv", "application/json")
        version = response.headers.get("X-Flywheel-Model-Version", "?")
        if not response.ok:  # an error answer does not say who answered: the canary is the only one failing
            version = "error"
        counts = phase["by_version"].setdefault(version, [0, 0])
        counts[0 if response.ok else 1] += 1
        phase["requests"] += 1
        phase["failed"] += 0 if response.ok else 1

    i = 0
    while router.decision is None and time.monotonic() < deadline:
        send(i, phases["during"])
        i += 1
        time.sleep(pace_s)
    decision = router.wait(max(0.0, deadline - time.monotonic()))
    if decision is None:
        raise FlywheelError("the rollout did not end within its bake time + 60 s")
    for j in range(after):
        send(i + j, phases["after"])
    return {**decision, "traffic": phases}


def rollout_lines(rollout: dict[str, Any]) -> list[str]:
    """What to print about a finished rollout (outcome, reason, the counts during and after the bake)."""
    canary, champion = rollout["figures"]["canary"], rollout["figures"]["champion"]
    during, after = rollout["traffic"]["during"], rollout["traffic"]["after"]
    verdict = {"promoted": "PROMOTED", "rolled-back": "ROLLED BACK", "cancelled": "CANCELLED"}[rollout["outcome"]]
    share = during["failed"] / during["requests"] if during["requests"] else 0.0
    p99 = "-" if canary["p99_ms"] is None else f"{canary['p99_ms']:.1f} ms"
    return [
        f"{verdict} version {rollout['version']} after {rollout['elapsed_s']:.1f} s: {rollout['reason']}; "
        f"all traffic now on version {rollout['serving_version']}",
        f"During the bake the endpoint counted: canary (version {rollout['version']}) {canary['requests']} requests, "
        f"{canary['errors_5xx']} 5xx ({canary['rate_5xx']:.0%}), ModelLatency p99 {p99}; champion (version "
        f"{rollout['champion_version']}) {champion['requests']} requests, {champion['errors_5xx']} 5xx",
        f"The client saw {during['failed']} of {during['requests']} requests fail during the bake "
        f"({share:.0%}; canary share {rollout['canary_percent']:g} %), then {after['requests'] - after['failed']} "
        f"of {after['requests']} answered by version {rollout['serving_version']} ({after['failed']} errors)",
    ]


def _break_challenger_demo(
    runtime: LocalRuntime,
    *,
    team: str,
    rows: int,
    seed: int,
    requests: int,
    batch_rows: int,
    serve_port: int,
    say: Callable[[str], None],
    data: Path | None = None,
) -> DemoResult:
    """A challenger that fails at serving time, approved while the champion serves: the rollback."""
    runtime.provision([team])
    first: DemoResult | None = None
    if not _has_champion(runtime, team):
        say(f"No {team} model is deployed yet: first the whole loop trains and approves a champion")
        first = run_demo(
            runtime, team=team, rows=rows, seed=seed, requests=requests, batch_rows=batch_rows,
            serve_port=serve_port, say=say, data=data,
        )  # fmt: skip
        if not _has_champion(runtime, team):
            return first
    started = time.perf_counter()
    champion = runtime.deployment(team)
    arn = register_broken_challenger(runtime, team)
    version = int(arn.rsplit("/", 1)[-1])
    say(
        f"Registered a BROKEN challenger, version {version}: version {champion['ModelPackageVersion']}'s "
        "artifact with a predict_fn that raises (it loads and answers /ping, and fails every invocation)"
    )
    result = DemoResult(first.outcome if first else None, None, {}, None, None, None, {})
    result.package_version = version
    result.approval = _approve(runtime, arn, say)
    # The challenger's tracebacks are expected here (the rollout lines say what failed): keep them off the
    # terminal; a real `flywheel serve` still logs them.
    quiet = logging.NullHandler()
    serving_log = logging.getLogger("flywheel.serving")
    serving_log.addHandler(quiet)
    propagate, serving_log.propagate = serving_log.propagate, False
    try:
        _serve_and_measure(runtime, team, result, requests, batch_rows, serve_port, say)
    finally:
        serving_log.removeHandler(quiet)
        serving_log.propagate = propagate
    result.timings["break_challenger"] = time.perf_counter() - started
    if first is not None:
        result.report_path, result.report_uri = first.report_path, first.report_uri
    return result


def _has_champion(runtime: LocalRuntime, team: str) -> bool:
    try:
        runtime.deployment(team)
    except FlywheelError:
        return False
    return True


BROKEN_PREDICT: Final = """

# --- flywheel demo --break-challenger: this challenger fails at serving time, on purpose. ---
def predict_fn(data, model):  # noqa: D103 - replaces the artifact's predict_fn
    raise RuntimeError("deliberately broken challenger (flywheel demo --break-challenger)")
"""


def break_artifact(source: Path, destination: Path, entry_point: str = "code/inference.py") -> Path:
    """A copy of ``model.tar.gz`` whose inference code's ``predict_fn`` raises (``model_fn`` still loads)."""
    found = False
    with tarfile.open(source, "r:gz") as src, tarfile.open(destination, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member) if member.isfile() else None
            if member.name.removeprefix("./") == entry_point and data is not None:
                body = data.read() + BROKEN_PREDICT.encode()
                member.size = len(body)
                dst.addfile(member, io.BytesIO(body))
                found = True
            else:
                dst.addfile(member, data)
    if not found:
        raise FlywheelError(f"{source} has no {entry_point} to break")
    return destination


def register_broken_challenger(runtime: LocalRuntime, team: str) -> str:
    """Register (PendingManualApproval) a package serving the champion's model with broken inference code."""
    from flywheel.executor.pipeline import jsonable

    record = runtime.deployment(team)
    res = runtime.resources(team)
    sm, s3 = runtime.aws.client("sagemaker"), runtime.aws.client("s3")
    champion = sm.describe_model_package(ModelPackageName=record["ModelPackageArn"])
    with tempfile.TemporaryDirectory(prefix="flywheel-broken-") as folder:
        broken = break_artifact(Path(record["LocalModel"]), Path(folder) / "model.tar.gz")
        key = f"{team}/demo-broken-challenger/{uuid.uuid4().hex[:12]}/model.tar.gz"
        bucket = res.platform.buckets["artifacts"]
        s3.upload_file(
            str(broken),
            bucket,
            key,
            ExtraArgs={"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": res.platform.keys["artifacts"]},
        )
    spec = champion["InferenceSpecification"]
    container = {k: v for k, v in spec["Containers"][0].items() if k in ("Image", "Environment", "Framework")}
    container["ModelDataUrl"] = f"s3://{bucket}/{key}"
    arguments: dict[str, Any] = {
        "ModelPackageGroupName": res.group_name,
        "ModelPackageDescription": "broken challenger (flywheel demo --break-challenger): predict_fn raises",
        "InferenceSpecification": {
            "Containers": [container],
            "SupportedContentTypes": spec.get("SupportedContentTypes") or ["text/csv"],
            "SupportedResponseMIMETypes": spec.get("SupportedResponseMIMETypes") or ["application/json"],
        },
        "ModelApprovalStatus": "PendingManualApproval",
    }
    if champion.get("ModelMetrics"):
        arguments["ModelMetrics"] = jsonable(champion["ModelMetrics"])
    return runtime.registry.register(arguments)


def measure(url: str, samples: Path, requests: int, batch_rows: int) -> dict[str, Any]:
    """Latency of ``requests`` single-row CSV requests; throughput of ``requests`` ``batch_rows``-row ones.

    :func:`flywheel.serving.measure_endpoint`: one keep-alive connection after a warm-up, the same
    measurement as ``bench/bench_serving.py`` reports.
    """
    from flywheel import serving

    lines = _sample_lines(samples)
    singles = [(line + "\n").encode("utf-8") for line in lines]
    # Consecutive slices of the samples, cycling: each batch request carries other rows (the capture is what
    # the drift monitor compares with the baseline; one batch repeated would be ~100 rows, i.e. noise).
    batches = [
        ("\n".join(lines[(i * batch_rows + j) % len(lines)] for j in range(batch_rows)) + "\n").encode("utf-8")
        for i in range(max(1, min(requests, -(-len(lines) // batch_rows))))
    ]
    return serving.measure_endpoint(url, singles, batches, batch_rows=batch_rows, requests=requests)
