"""``flywheel demo``: the whole loop on generated data, and the latency/throughput of the served model.

:func:`run_demo` drives a :class:`flywheel.runtime.LocalRuntime` through provision → generate → land →
trigger → execute → approve → serve → measure → report, timing each stage; :func:`measure` sends
single-row requests (latency) and batch requests (throughput) to a running endpoint.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.errors import FlywheelError
from flywheel.outcome import RunOutcome, event_object_uri
from lambdas import lifecycle

if TYPE_CHECKING:
    from flywheel.runtime import LocalRuntime


@dataclass
class DemoResult:
    """What ``flywheel demo`` did and where it left things."""

    outcome: RunOutcome
    approval: lifecycle.DeploymentResult | None
    serving: dict[str, Any]
    report_path: Path | None
    report_uri: str | None
    capture_uri: str | None
    timings: dict[str, float] = field(default_factory=dict)


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
) -> DemoResult:
    """The whole loop on generated data; see ``flywheel demo --help``."""
    timings: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        timings[name] = time.perf_counter() - started

    with timed("provision"):
        runtime.provision([team])
    res = runtime.resources(team)
    say(f"Provisioned team {team}: pipeline {res.primary.pipeline_name}, registry group {res.group_name}")
    with timed("generate"):
        folder = runtime.state.root / "data" / f"{team}-{uuid.uuid4().hex[:8]}"
        source = runtime.generate(team, rows, seed, folder)
    say(f"Generated {rows:,} rows of {team} data (seed {seed}, {source.stat().st_size / 1e6:.1f} MB)")
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
    result = DemoResult(outcome, None, {}, None, None, None, timings)
    if not record.succeeded or outcome.package is None:
        with timed("report"):
            result.report_path, result.report_uri = runtime.write_report(outcome, serving=None)
        return result
    package = outcome.package
    say(
        f"Registered model package version {package['ModelPackageVersion']} "
        f"({package['ModelApprovalStatus']}): {package['ModelPackageArn']}"
    )
    with timed("approve"):
        result.approval = runtime.set_approval(
            package["ModelPackageArn"], "Approved", "approved by `flywheel demo` (automatic, for the demo only)"
        )
    say(
        f"APPROVED model package version {package['ModelPackageVersion']} automatically, for the demo "
        f"(in a real environment an approver does this); deployment: {result.approval.action}"
    )
    with timed("serve"):
        server, deployment, capture = runtime.start_endpoint(team, port=serve_port)
        try:
            say(f"Serving version {deployment['ModelPackageVersion']} at {server.url} (capture: {capture})")
            result.serving = measure(server.url, Path(deployment["Samples"] or ""), requests, batch_rows)
        finally:
            server.stop()
            runtime.state.save_server(f"endpoint-{team}", None)
    result.capture_uri = capture
    result.serving["endpoint_url"] = server.url
    figures = result.serving
    say(
        f"Sent {requests} single-row requests (latency p50 {figures['p50_ms']:.1f} ms, p99 "
        f"{figures['p99_ms']:.1f} ms) and {requests} requests of {batch_rows} rows "
        f"({figures['rows_per_s']:,.0f} rows/s), {figures['errors']} errors"
    )
    with timed("report"):
        result.report_path, result.report_uri = runtime.write_report(outcome, serving=result.serving)
    return result


def measure(url: str, samples: Path, requests: int, batch_rows: int) -> dict[str, Any]:
    """Latency of ``requests`` single-row CSV requests; throughput of ``requests`` ``batch_rows``-row ones."""
    from flywheel import serving

    if not samples.is_file():
        raise FlywheelError("the deployment has no sample rows to send (samples.csv is missing)")
    lines = [line for line in samples.read_text(encoding="utf-8").splitlines() if line]
    if not lines:
        raise FlywheelError("the deployment's sample rows are empty")
    latencies: list[float] = []
    errors = 0
    for i in range(requests):
        t = time.perf_counter()
        response = serving.invoke(url, lines[i % len(lines)] + "\n", "text/csv", "application/json")
        latencies.append((time.perf_counter() - t) * 1000)
        errors += 0 if response.ok else 1
    started = time.perf_counter()
    for i in range(requests):
        batch = [lines[(i * batch_rows + j) % len(lines)] for j in range(batch_rows)]
        response = serving.invoke(url, "\n".join(batch) + "\n", "text/csv", "application/json")
        errors += 0 if response.ok else 1
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": requests,
        "batch_rows": batch_rows,
        "errors": errors,
        "p50_ms": serving.percentile(ordered, 0.5),
        "p99_ms": serving.percentile(ordered, 0.99),
        "rows_per_s": requests * batch_rows / elapsed if elapsed else 0.0,
    }
