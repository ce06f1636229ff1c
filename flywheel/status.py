"""What the runtime reports: ``flywheel status``, the metric gates and objectives, a run's report.

Functions over a :class:`flywheel.runtime.LocalRuntime` (its config, readings, state, registry and
embedded AWS); they read, and only :func:`write_report` writes (the report file and its upload).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

import naming
from flywheel.embedded import NAMES
from flywheel.errors import EmbeddedAwsError
from flywheel.outcome import RunOutcome, download_evaluation
from flywheel.state import pid_alive

if TYPE_CHECKING:
    from flywheel.runtime import LocalRuntime


def gate(
    runtime: LocalRuntime, team: str, parameters: Mapping[str, Any] | None = None, template: str | None = None
) -> dict[str, Any] | None:
    """The metric gate of a run with ``parameters`` (its own threshold), else the team's configured one;
    None for a template without a gate."""
    config = runtime.team_config(team)
    reading = runtime.reading(team, template)
    if not reading.has_gate or config.metric_gate is None:
        return None
    threshold = reading.gate_threshold(parameters or {})
    return {
        "metric": config.metric_gate.metric,
        "operator": ">=" if config.higher_is_better else "<=",
        "threshold": config.metric_gate.threshold if threshold is None else threshold,
    }


def objective(runtime: LocalRuntime, team: str, template: str | None = None) -> str | None:
    """The objective of the team's data contract for ``template``, None if the template reads no contract."""
    config = runtime.team_config(team)
    settings = config.template_settings(template or config.pipelines[0])
    value = getattr(getattr(settings, "contract", None), "objective", None)
    return str(value) if value is not None else None


def status(runtime: LocalRuntime) -> dict[str, Any]:
    """Teams' pipelines, executions with their steps and gates, registry contents, deployments and servers."""
    state = runtime.state
    teams = []
    for team in runtime.config.teams:
        for template in team.pipelines:
            found_gate = gate(runtime, team.name, template=template)
            teams.append(
                {
                    "team": team.name,
                    "template": template,
                    "objective": objective(runtime, team.name, template) or "",
                    "gate": (
                        f"{found_gate['metric']} {found_gate['operator']} {found_gate['threshold']}"
                        if found_gate
                        else ""
                    ),
                    "pipeline": NAMES.pipeline(team.name, template),
                    "group": NAMES.model_package_group(team.name),
                }
            )
    executions = []
    for record in state.executions():
        found = runtime.pipeline_template(str(record.get("PipelineName") or ""))
        if found is not None:
            run_gate = gate(runtime, found[0], record.get("Parameters") or {}, template=found[1])
            if run_gate is not None:
                record = {**record, "Gate": run_gate}
        executions.append(record)
    registry = {}
    for team_name in runtime.team_names:
        if runtime.aws.started:  # a lazy in-process one not started yet would be empty: not started for this
            with contextlib.suppress(ClientError, EmbeddedAwsError):
                registry[team_name] = runtime.packages(team_name)
        if not registry.get(team_name):
            # A fresh embedded AWS: show the registry as the state dir keeps it (no provisioning needed).
            registry[team_name] = runtime.registry.summaries(NAMES.model_package_group(team_name))
    servers = {name: {**record, "alive": pid_alive(record.get("pid"))} for name, record in state.servers().items()}
    return {
        "embedded_aws": {"mode": runtime.aws.mode, "endpoint_url": runtime.aws.endpoint_url},
        "teams": teams,
        "executions": executions,
        "registry": registry,
        "deployments": state.deployments(),
        "servers": servers,
        # Corrupt state files skipped above: each names the file and what to do.
        "problems": [str(problem) for problem in state.problems],
    }


def report(
    runtime: LocalRuntime, outcome: RunOutcome, serving: dict[str, Any] | None, folder: Path | None = None
) -> Any:
    """The report dict of a run (:func:`flywheel.report.run_report`); downloads its evaluation to ``folder``."""
    from flywheel.report import run_report

    team = runtime.team_config(outcome.team)
    found = runtime.pipeline_template(outcome.execution.pipeline_name)
    template = found[1] if found else None
    reading = runtime.reading(outcome.team, template)
    evaluation_dir = (
        download_evaluation(runtime.aws, reading, outcome.execution, folder) if folder is not None else None
    )
    from flywheel.model_card import card_inputs

    run = run_report(
        outcome,
        reading,
        **card_inputs(runtime, outcome.team, outcome.package),
        objective=objective(runtime, outcome.team, template),
        default_gate_threshold=team.metric_gate.threshold if reading.has_gate and team.metric_gate else None,
        deployment=runtime.state.deployment(outcome.team),
        serving=serving,
        endpoint_name=NAMES.endpoint(outcome.team),
        evaluation_dir=evaluation_dir,
    )
    from flywheel.pii import pii_sections  # verified pseudonymization (docs/privacy.md)

    run["extra_sections"] = [*run.get("extra_sections", []), *pii_sections(runtime, outcome)]
    return run


def write_report(
    runtime: LocalRuntime,
    outcome: RunOutcome,
    serving: dict[str, Any] | None,
    extra_sections: list[dict[str, Any]] | None = None,
) -> tuple[Path, str | None]:
    """Write the run's HTML report under the state dir (and upload it to the reports bucket);
    ``extra_sections`` (e.g. the drift monitor's) are appended to the report's own."""
    from flywheel.report import write_report as write_html

    record = outcome.execution
    folder = runtime.state.root / "reports" / record.execution_id
    run = runtime.report(outcome, serving, folder / "evaluation")
    if extra_sections:
        run["extra_sections"] = [*(run.get("extra_sections") or []), *extra_sections]
    path = write_html(folder / "report.html", run=run)
    platform = runtime.resources(outcome.team).platform
    bucket, key_arn = platform.buckets["reports"], platform.keys["reports"]
    key = f"{naming.pipeline_prefix(record.pipeline_name)}{record.execution_id}/report.html"
    try:
        runtime.aws.client("s3").put_object(
            Bucket=bucket,
            Key=key,
            Body=path.read_bytes(),
            ContentType="text/html",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=key_arn,
        )
    except ClientError:
        return path, None
    from flywheel.model_card import store_with_package

    store_with_package(runtime, outcome, path)
    return path, naming.s3_uri(bucket, key)
