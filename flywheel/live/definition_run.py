"""``flywheel run --definition pipeline.json``: any SageMaker pipeline definition, run and reported.

The definition (a file the SDK's ``pipeline.definition()`` wrote, or any other) becomes a pipeline of
the embedded AWS (created, or updated if it exists), is started with the given parameters (SageMaker's
checks: ``Parameter 'X' is undefined.`` ...) and runs through the live layer's execution manager — the
same executor, state records, progress and job folders as every other execution; Ctrl-C stops it as
``StopPipelineExecution`` does. The report is the run report of a team's run with the sections a team's
config feeds (model card, data contract, gate, champion) saying that this run has none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import ClientError

from flywheel.embedded import ACCOUNT
from flywheel.errors import FlywheelError
from flywheel.executor import ExecutionRecord
from flywheel.live.executions import ExecutionManager, runtime_register
from flywheel.live.protocol import ApiError

#: The role a definition's pipeline is created with (the embedded AWS enforces no IAM).
LOCAL_ROLE: Final = f"arn:aws:iam::{ACCOUNT}:role/flywheel-local-definition"
NOT_A_TEAM: Final = "none: a pipeline definition (flywheel run --definition), not a team's pipeline"
_NAME: Final = re.compile(r"[^a-zA-Z0-9-]+")


def pipeline_name_for(path: Path) -> str:
    """A valid pipeline name from a definition file's name (``my_pipeline.json`` -> ``my-pipeline``)."""
    name = _NAME.sub("-", path.stem).strip("-")[:256]
    return name or "pipeline"


def read_definition(path: Path) -> str:
    """The definition JSON text of ``path``; FlywheelError naming the file and the fix otherwise."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FlywheelError(f"cannot read the pipeline definition {path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise FlywheelError(
            f"{path} is not JSON ({exc}): pass the file `pipeline.definition()` of the SageMaker SDK writes"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Steps"), list) or not doc["Steps"]:
        raise FlywheelError(f"{path} is not a SageMaker pipeline definition: it needs a non-empty Steps list")
    return text


def upsert(aws: Any, name: str, definition: str) -> str:
    """Create the pipeline ``name`` in the embedded AWS, or update its definition; its ARN."""
    sm = aws.client("sagemaker")
    try:
        found = sm.describe_pipeline(PipelineName=name)
    except ClientError:
        return str(
            sm.create_pipeline(PipelineName=name, PipelineDefinition=definition, RoleArn=LOCAL_ROLE)["PipelineArn"]
        )
    if found.get("PipelineDefinition") != definition:
        sm.update_pipeline(PipelineName=name, PipelineDefinition=definition, RoleArn=LOCAL_ROLE)
    return str(found["PipelineArn"])


def run_definition(
    runtime: Any,
    path: Path,
    parameters: Mapping[str, str],
    *,
    pipeline_name: str | None = None,
    on_update: Callable[[ExecutionRecord], None] | None = None,
) -> ExecutionRecord:
    """Run the definition in ``path`` to its end (see the module docstring); its execution record."""
    definition = read_definition(path)
    name = pipeline_name or pipeline_name_for(Path(path))
    manager = ExecutionManager(
        runtime.aws,
        runtime.state,
        region=runtime.aws.region,
        account=ACCOUNT,
        register=runtime_register(runtime),
        on_update=on_update,
    )
    try:
        doc = manager.prepare(definition, parameters)
    except ApiError as exc:
        raise FlywheelError(f"{exc.message} (pass parameters as --param NAME=VALUE)") from None
    pipeline_arn = upsert(runtime.aws, name, definition)
    sm = runtime.aws.client("sagemaker")
    arn = str(sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"])
    manager.start(doc=doc, parameters=parameters, pipeline_name=name, pipeline_arn=pipeline_arn, execution_arn=arn)
    try:
        while not manager.wait(arn, timeout=0.2):
            pass
    except KeyboardInterrupt:
        manager.stop(arn)  # as StopPipelineExecution: the jobs are killed, the execution ends Stopped
        manager.wait(arn, timeout=30)
    stored = runtime.state.execution(arn.rsplit("/", 1)[-1])
    if stored is None:
        raise FlywheelError(f"execution {arn} left no record in {runtime.state.root}")
    return ExecutionRecord.from_dict(stored)


def report_of(runtime: Any, record: ExecutionRecord) -> dict[str, Any]:
    """The run report of a definition's execution (:mod:`flywheel.report`'s schema)."""
    from flywheel.report import condition_words

    package: dict[str, Any] = {}
    for step in record.steps:
        registered = step.metadata.get("RegisterModel")
        if registered:
            try:
                package = runtime.aws.client("sagemaker").describe_model_package(ModelPackageName=registered["Arn"])
            except ClientError:
                package = {"ModelPackageArn": registered["Arn"]}
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
    lineage = {
        "execution_arn": record.execution_arn,
        "model_package_arn": package.get("ModelPackageArn", ""),
        "model_package_version": package.get("ModelPackageVersion"),
        "approval_status": package.get("ModelApprovalStatus", ""),
        "model_data_uri": containers[0].get("ModelDataUrl", ""),
    }
    run: dict[str, Any] = {
        "title": f"Pipeline run {record.execution_id}",
        "team": NOT_A_TEAM,
        "pipeline": record.pipeline_name,
        "execution_id": record.execution_arn,
        "status": record.status,
        "started_at": record.start_time,
        "finished_at": record.end_time or "",
        "steps": [
            {
                "name": s.name,
                "status": s.status,
                "type": s.type,
                "duration_s": s.duration_s,
                "message": s.failure_reason or condition_words(s.metadata.get("Condition")),
            }
            for s in record.steps
        ],
        "lineage": {k: v for k, v in lineage.items() if v not in (None, "")},
        "artifacts": {
            **{f"{s.name} {k}": v for s in record.steps for k, v in (s.metadata.get("Outputs") or {}).items()},
            **{
                f"{s.name} model": s.metadata["ModelArtifacts"]
                for s in record.steps
                if s.metadata.get("ModelArtifacts")
            },
            "job logs": str(Path(record.work_dir)),
        },
        "card": {
            "description": "A SageMaker pipeline definition run locally; the model-card sections come from a "
            "team's config (config/teams.yaml), which this run has none of.",
            "owner": NOT_A_TEAM,
            "intended_use": NOT_A_TEAM,
        },
        "extra_sections": [
            {
                "title": "Parameters",
                "rows": [(k, v) for k, v in record.parameters.items()] or [("(none)", "the definition declares none")],
            },
            {
                "title": "Not in this report",
                "rows": [
                    ("data contract", "a team's contract (config/contracts/); a definition has none"),
                    ("quality gate and champion", "read from a team template's evaluation file; not declared here"),
                    ("deployment", "a team's deploy handler; approve a team's package to deploy it"),
                ],
            },
        ],
    }
    if record.failure_reason:
        run["extra_sections"].insert(0, {"title": "Failure", "rows": [("reason", record.failure_reason)]})
    return run


def write_report(runtime: Any, record: ExecutionRecord) -> Path:
    """Write the run's HTML report under the state dir; its path."""
    from flywheel.report import write_report as write_html

    return write_html(
        runtime.state.root / "reports" / record.execution_id / "report.html", run=report_of(runtime, record)
    )
