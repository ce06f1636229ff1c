"""The local pipeline executor: runs a SageMaker pipeline definition JSON step by step.

Before anything runs, :meth:`PipelineExecutor.validate` checks the whole definition (every step, in
every branch, has a type this executor runs — an unknown type is an error naming it, never skipped —
step names are unique, ``DependsOn`` names exist) and resolves the parameters (overrides typed by the
declaration, defaults, a required parameter without a value is an error naming it). Then steps run in
dependency order (``DependsOn`` plus the steps their arguments reference, then definition order); a
``Condition`` step runs its ``IfSteps`` or ``ElseSteps``. The first failing step stops the execution:
its record holds the failure reason and the tail of its log; a ``Fail`` step ends the execution as
``Failed`` with its resolved ``ErrorMessage``.

Supported step types: ``Processing`` and ``Training`` (local processes, see :mod:`.jobs`; training in
script mode or SageMaker's built-in XGBoost algorithm), ``Transform`` (the model's inference code, or the
built-in XGBoost inference contract, over the input, local processes, see :mod:`.transform`), ``Model``
(``CreateModel`` in the embedded AWS), ``Condition``, ``RegisterModel`` (``CreateModelPackage`` in the
embedded registry; a group that does not exist is created, as SageMaker Pipelines does), ``Lambda`` (when
the function is one of Flywheel's handlers, see :mod:`.lambdas`) and ``Fail``. Any other type is refused
before anything runs, naming it and what is supported.

Each job step's image is compared with the local libraries (:func:`.images.framework_notes`): a
framework version that differs is a warning in the job's log, the step's ``Metadata["Warnings"]`` and
the ``flywheel.executor`` logger, never a failure.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from flywheel.errors import DefinitionError, ExecutorError, ResolutionError, StepFailed, UnsupportedStepError
from flywheel.executor.expressions import (
    Scope,
    evaluate_condition,
    references,
    resolve,
    resolve_parameters,
)
from flywheel.executor.images import framework_notes
from flywheel.executor.jobs import (
    OWNER_FILE,
    JobAws,
    JobRunner,
    now,
    run_processing_job,
    run_training_job,
    write_owner,
)
from flywheel.executor.lambdas import call_handler, handler_for
from flywheel.executor.s3io import S3Transfers
from flywheel.executor.sandbox import Sandbox, probe
from flywheel.executor.transform import model_container, run_transform_job

LOG = logging.getLogger("flywheel.executor")

SUPPORTED_STEP_TYPES: Final[tuple[str, ...]] = (
    "Processing",
    "Training",
    "Transform",
    "Model",
    "Condition",
    "RegisterModel",
    "Lambda",
    "Fail",
)
#: Step types of the SageMaker definition language that this executor does not run (for messages).
OTHER_STEP_TYPES: Final[tuple[str, ...]] = (
    "Tuning",
    "Callback",
    "QualityCheck",
    "ClarifyCheck",
    "EMR",
    "AutoML",
    "NotebookJob",
)
RUNNING: Final = "Executing"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
STOPPED: Final = "Stopped"


class Clients(Protocol):
    """Anything that hands out boto3 clients by service name (e.g. :class:`flywheel.embedded.EmbeddedAws`)."""

    def client(self, service: str) -> Any:
        """A boto3 client for ``service``."""
        ...


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds between two ISO-8601 timestamps; None if either is missing or malformed."""
    if not start or not end:
        return None
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return None


@dataclass
class StepRecord:
    """One step of an execution, shaped like ``ListPipelineExecutionSteps``."""

    name: str
    type: str
    status: str = RUNNING
    start_time: str = ""
    end_time: str | None = None
    failure_reason: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    log_path: str | None = None
    log_tail: str | None = None

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end; None while it runs (or if a time is not ISO-8601)."""
        return seconds_between(self.start_time, self.end_time)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the state store."""
        return {
            "StepName": self.name,
            "StepType": self.type,
            "StepStatus": self.status,
            "StartTime": self.start_time,
            "EndTime": self.end_time,
            "FailureReason": self.failure_reason,
            "Metadata": self.metadata,
            "LogPath": self.log_path,
            "LogTail": self.log_tail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepRecord:
        """The record of :meth:`to_dict` (as the state store keeps it)."""
        return cls(
            name=str(data["StepName"]),
            type=str(data.get("StepType", "")),
            status=str(data.get("StepStatus", RUNNING)),
            start_time=str(data.get("StartTime") or ""),
            end_time=data.get("EndTime"),
            failure_reason=data.get("FailureReason"),
            metadata=dict(data.get("Metadata") or {}),
            log_path=data.get("LogPath"),
            log_tail=data.get("LogTail"),
        )


@dataclass
class ExecutionRecord:
    """One pipeline execution and its steps."""

    execution_id: str
    execution_arn: str
    pipeline_name: str
    pipeline_arn: str
    parameters: dict[str, Any]
    work_dir: str
    status: str = RUNNING
    start_time: str = ""
    end_time: str | None = None
    failure_reason: str | None = None
    failed_step: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        """Whether the execution ended ``Succeeded``."""
        return self.status == SUCCEEDED

    def step(self, name: str) -> StepRecord | None:
        """The record of step ``name`` if it ran."""
        return next((s for s in self.steps if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the state store (``DescribePipelineExecution``-like keys)."""
        return {
            "PipelineExecutionId": self.execution_id,
            "PipelineExecutionArn": self.execution_arn,
            "PipelineName": self.pipeline_name,
            "PipelineArn": self.pipeline_arn,
            "PipelineExecutionStatus": self.status,
            "StartTime": self.start_time,
            "EndTime": self.end_time,
            "FailureReason": self.failure_reason,
            "FailedStep": self.failed_step,
            "Parameters": self.parameters,
            "WorkDir": self.work_dir,
            "Tags": self.tags,
            "Steps": [s.to_dict() for s in self.steps],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionRecord:
        """The record of :meth:`to_dict` (as the state store keeps it, e.g. written by another process)."""
        return cls(
            execution_id=str(data["PipelineExecutionId"]),
            execution_arn=str(data.get("PipelineExecutionArn", "")),
            pipeline_name=str(data.get("PipelineName", "")),
            pipeline_arn=str(data.get("PipelineArn", "")),
            parameters=dict(data.get("Parameters") or {}),
            work_dir=str(data.get("WorkDir", "")),
            status=str(data.get("PipelineExecutionStatus", RUNNING)),
            start_time=str(data.get("StartTime") or ""),
            end_time=data.get("EndTime"),
            failure_reason=data.get("FailureReason"),
            failed_step=data.get("FailedStep"),
            steps=[StepRecord.from_dict(s) for s in data.get("Steps") or []],
            tags=dict(data.get("Tags") or {}),
        )


class _Stop(Exception):
    """Ends the execution (a failed step or a Fail step)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _walk(steps: list[Any], where: str = "Steps") -> list[dict[str, Any]]:
    """All step objects, branches included, checked for shape and type."""
    found: list[dict[str, Any]] = []
    if not isinstance(steps, list):
        raise DefinitionError(f"{where}: expected a list of steps")
    for index, step in enumerate(steps):
        if not isinstance(step, dict) or not isinstance(step.get("Name"), str) or not step["Name"]:
            raise DefinitionError(f"{where}[{index}]: a step needs a Name")
        kind = step.get("Type")
        if kind not in SUPPORTED_STEP_TYPES:
            known = "a SageMaker step type" if kind in OTHER_STEP_TYPES else "not a known step type"
            raise UnsupportedStepError(
                f"step {step['Name']!r} has type {kind!r} ({known}), which the local executor does not run; "
                f"supported: {', '.join(SUPPORTED_STEP_TYPES)}"
            )
        if not isinstance(step.get("Arguments", {}), dict):
            raise DefinitionError(f"step {step['Name']!r}: Arguments must be an object")
        if kind == "Lambda":
            handler_for(step.get("FunctionArn"), step["Name"])  # UnsupportedStepError for a foreign function
        found.append(step)
        if kind == "Condition":
            args = step.get("Arguments", {})
            if not isinstance(args.get("Conditions"), list) or not args["Conditions"]:
                raise DefinitionError(f"step {step['Name']!r}: a Condition step needs a non-empty Conditions list")
            found += _walk(args.get("IfSteps", []), f"{step['Name']}.IfSteps")
            found += _walk(args.get("ElseSteps", []), f"{step['Name']}.ElseSteps")
    return found


def _order(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Siblings in dependency order (``DependsOn`` and references), ties in definition order."""
    names = {s["Name"] for s in steps}
    needs = {
        s["Name"]: ((set(s.get("DependsOn") or []) | references(s.get("Arguments", {}))) & names) - {s["Name"]}
        for s in steps
    }
    done: set[str] = set()
    ordered: list[dict[str, Any]] = []
    remaining = list(steps)
    while remaining:
        ready = next((s for s in remaining if needs[s["Name"]] <= done), None)
        if ready is None:
            raise DefinitionError(f"circular dependencies among steps {', '.join(s['Name'] for s in remaining)}")
        ordered.append(ready)
        done.add(ready["Name"])
        remaining.remove(ready)
    return ordered


def _check_order(steps: list[dict[str, Any]]) -> None:
    """Raise DefinitionError if any list of sibling steps (branches included) has a cycle."""
    _order(steps)
    for step in steps:
        if step["Type"] == "Condition":
            _check_order(list(step["Arguments"].get("IfSteps") or []))
            _check_order(list(step["Arguments"].get("ElseSteps") or []))


def job_name(execution_id: str, step: str) -> str:
    """``pipelines-<execution>-<step>``: the names SageMaker Pipelines gives its jobs (max 63 chars)."""
    clean = re.sub(r"[^A-Za-z0-9-]", "-", step).strip("-") or "step"
    return f"pipelines-{execution_id}-{clean}"[:63].rstrip("-")


def jsonable(value: Any) -> Any:
    """An AWS API response as plain JSON data: datetimes as ISO strings, ``ResponseMetadata`` dropped."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


class PipelineExecutor:
    """Runs pipeline definitions against the embedded AWS, jobs as local processes under ``work_dir``."""

    def __init__(
        self,
        clients: Clients,
        work_dir: str | Path,
        *,
        interpreter: str = sys.executable,
        on_update: Callable[[ExecutionRecord], None] | None = None,
        keep_job_data: bool = False,
        region: str = "eu-west-1",
        account: str = "123456789012",
        register: Callable[[dict[str, Any]], str] | None = None,
        aws_endpoint: str | None = None,
        sandbox: bool | None = None,
    ) -> None:
        """``register``: creates a model package from CreateModelPackage arguments and returns its ARN
        (default: ``create_model_package`` on the clients); the runtime passes one that allocates the
        version under the state dir's lock and snapshots the package.

        ``aws_endpoint``: the embedded AWS's URL that jobs which are not network-isolated get as
        ``AWS_ENDPOINT_URL`` (with credentials); default: the clients' ``endpoint_url`` (a server's; None for
        the in-process mock, whose jobs then get no AWS access). ``sandbox``: whether job processes get a
        private ``/opt/ml`` (and isolated ones no network) through :mod:`.sandbox`: None (default) uses it
        where it works and falls back to rewriting paths; True requires it (ExecutorError where it does not
        work); False always rewrites paths."""
        self.clients = clients
        self.aws_endpoint = aws_endpoint if aws_endpoint is not None else getattr(clients, "endpoint_url", None)
        self.sandbox = self._sandbox(sandbox, interpreter)
        self.register = register
        self.work_dir = Path(work_dir)
        self.interpreter = interpreter
        self.on_update = on_update
        self.keep_job_data = keep_job_data
        self.region = region
        self.account = account

    @staticmethod
    def _sandbox(wanted: bool | None, interpreter: str) -> Sandbox:
        if wanted is False:
            return Sandbox(False, reason="disabled (sandbox=False)")
        found = probe(interpreter)
        if wanted and not found.available:
            raise ExecutorError(f"a private /opt/ml per job is not available here: {found.reason}")
        return found

    # Validation -------------------------------------------------------------------------------------
    @staticmethod
    def parse(definition: str | Mapping[str, Any]) -> dict[str, Any]:
        """The definition as a dict; DefinitionError if it is not a pipeline definition."""
        if isinstance(definition, str):
            import json

            try:
                doc = json.loads(definition)
            except ValueError as exc:
                raise DefinitionError(f"the pipeline definition is not valid JSON: {exc}") from exc
        else:
            doc = dict(definition)
        if not isinstance(doc, dict) or not isinstance(doc.get("Steps"), list) or not doc["Steps"]:
            raise DefinitionError("the pipeline definition needs a non-empty Steps list")
        return doc

    def validate(
        self, definition: str | Mapping[str, Any], parameters: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(definition, typed parameters)``, or DefinitionError/UnsupportedStepError/ParameterError."""
        doc = self.parse(definition)
        steps = _walk(doc["Steps"])
        names = [s["Name"] for s in steps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DefinitionError(f"duplicate step name(s): {', '.join(dupes)}")
        for step in steps:
            missing = sorted(set(step.get("DependsOn") or []) - set(names))
            if missing:
                raise DefinitionError(f"step {step['Name']!r} depends on unknown step(s) {', '.join(missing)}")
        _check_order(doc["Steps"])
        values = resolve_parameters(doc.get("Parameters") or [], parameters)
        return doc, values

    # Execution --------------------------------------------------------------------------------------
    def execute(
        self,
        definition: str | Mapping[str, Any],
        parameters: Mapping[str, Any] | None = None,
        *,
        pipeline_name: str = "local-pipeline",
        pipeline_arn: str | None = None,
        execution_id: str | None = None,
        execution_arn: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ExecutionRecord:
        """Run the definition to its end; returns the execution record (``Succeeded`` or ``Failed``).

        Definition and parameter problems raise before any step runs.
        """
        doc, values = self.validate(definition, parameters)
        pipeline_arn = pipeline_arn or f"arn:aws:sagemaker:{self.region}:{self.account}:pipeline/{pipeline_name}"
        if execution_id is None and execution_arn:
            execution_id = execution_arn.rsplit("/", 1)[-1]
        execution_id = execution_id or uuid.uuid4().hex[:12]
        execution_arn = execution_arn or f"{pipeline_arn}/execution/{execution_id}"
        started = now()
        record = ExecutionRecord(
            execution_id=execution_id,
            execution_arn=execution_arn,
            pipeline_name=pipeline_name,
            pipeline_arn=pipeline_arn,
            parameters=values,
            work_dir=str(self.work_dir / execution_id),
            start_time=started.isoformat(),
            tags=dict(tags or {}),
        )
        transfers = S3Transfers(self.clients.client("s3"))
        scope = Scope(
            parameters=values,
            execution={
                "PipelineExecutionId": execution_id,
                "PipelineExecutionArn": execution_arn,
                "PipelineName": pipeline_name,
                "PipelineArn": pipeline_arn,
                "StartDateTime": started.isoformat(),
                "CurrentDateTime": started.isoformat(),
            },
            read_s3_json=transfers.read_json,
            known_steps=frozenset(s["Name"] for s in _walk(doc["Steps"])),
        )
        token = write_owner(self.work_dir / execution_id)
        runner = JobRunner(
            transfers,
            self.work_dir / ".bin",
            self.interpreter,
            token,
            sandbox=self.sandbox,
            aws=JobAws(self.aws_endpoint, self.region),
        )
        self._notify(record)
        try:
            self._run_steps(doc["Steps"], scope, record, runner, transfers)
            record.status = SUCCEEDED
        except _Stop as stop:
            record.status, record.failure_reason = FAILED, stop.reason
        except KeyboardInterrupt:
            record.status, record.failure_reason = STOPPED, "stopped by the user"
            for step in record.steps:
                if step.status == RUNNING:
                    step.status, step.end_time, step.failure_reason = STOPPED, now().isoformat(), "stopped"
            raise
        except Exception as exc:
            # Never leave a stored execution "Executing" forever: record the failure, then re-raise.
            record.status, record.failure_reason = FAILED, f"executor error: {type(exc).__name__}: {exc}"
            for step in record.steps:
                if step.status == RUNNING:
                    step.status, step.end_time, step.failure_reason = FAILED, now().isoformat(), "executor error"
            raise
        finally:
            record.end_time = now().isoformat()
            with contextlib.suppress(FileNotFoundError):
                (self.work_dir / execution_id / OWNER_FILE).unlink()  # done: nothing left to sweep
            self._notify(record)
        return record

    def _notify(self, record: ExecutionRecord) -> None:
        if self.on_update is not None:
            self.on_update(record)

    def _run_steps(
        self,
        steps: list[dict[str, Any]],
        scope: Scope,
        record: ExecutionRecord,
        runner: JobRunner,
        transfers: S3Transfers,
    ) -> None:
        for step in _order(steps):
            branch = self._run_step(step, scope, record, runner, transfers)
            if branch is not None:
                self._run_steps(branch, scope, record, runner, transfers)

    def _run_step(
        self,
        step: dict[str, Any],
        scope: Scope,
        record: ExecutionRecord,
        runner: JobRunner,
        transfers: S3Transfers,
    ) -> list[dict[str, Any]] | None:
        """Run one step; returns the branch to run next for a Condition step."""
        name, kind = step["Name"], step["Type"]
        entry = StepRecord(name=name, type=kind, start_time=now().isoformat())
        record.steps.append(entry)
        self._notify(record)
        scope.execution["CurrentDateTime"] = entry.start_time
        branch: list[dict[str, Any]] | None = None
        try:
            if kind == "Fail":
                message = resolve(step.get("Arguments", {}).get("ErrorMessage", ""), scope)
                entry.metadata = {"Fail": {"ErrorMessage": message}}
                entry.status, entry.failure_reason = FAILED, str(message)
                entry.end_time = now().isoformat()
                record.failed_step = name
                raise _Stop(str(message) or f"Fail step {name} reached")
            if kind == "Condition":
                branch = self._condition(step, scope, entry)
            elif kind == "Processing":
                self._processing(step, scope, record, entry, runner, transfers)
            elif kind == "Training":
                self._training(step, scope, record, entry, runner)
            elif kind == "Transform":
                self._transform(step, scope, record, entry, runner)
            elif kind == "RegisterModel":
                self._register(step, scope, entry)
            elif kind == "Model":
                self._model(step, scope, record, entry)
            elif kind == "Lambda":
                self._lambda(step, scope, record, entry)
            entry.status = SUCCEEDED
        except _Stop:
            raise
        except StepFailed as exc:
            self._fail(entry, record, exc.reason, exc.log_tail, exc.log_path)
        except (ResolutionError, DefinitionError) as exc:
            self._fail(entry, record, f"{type(exc).__name__}: {exc}", None, None)
        except (ClientError, BotoCoreError) as exc:
            self._fail(entry, record, f"ClientError: {exc}", None, None)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            self._fail(entry, record, f"InternalError: {type(exc).__name__}: {exc}", None, None)
        finally:
            entry.end_time = entry.end_time or now().isoformat()
            self._notify(record)
        return branch

    @staticmethod
    def _fail(
        entry: StepRecord, record: ExecutionRecord, reason: str, log_tail: str | None, log_path: str | None
    ) -> None:
        entry.status, entry.failure_reason = FAILED, reason
        entry.log_tail, entry.log_path = log_tail or None, log_path
        entry.end_time = now().isoformat()
        record.failed_step = entry.name
        raise _Stop(f"Step {entry.name} failed: {reason}")

    # Step types -----------------------------------------------------------------------------------------
    def _condition(self, step: dict[str, Any], scope: Scope, entry: StepRecord) -> list[dict[str, Any]]:
        args = step.get("Arguments", {})
        outcomes = [evaluate_condition(c, scope) for c in args["Conditions"]]
        outcome = all(o for o, _ in outcomes)
        scope.steps[step["Name"]] = {"Outcome": outcome}
        entry.metadata = {
            "Condition": {"Outcome": str(outcome), "Evaluations": [text for _, text in outcomes]},
        }
        return list(args.get("IfSteps" if outcome else "ElseSteps") or [])

    def _processing(
        self,
        step: dict[str, Any],
        scope: Scope,
        record: ExecutionRecord,
        entry: StepRecord,
        runner: JobRunner,
        transfers: S3Transfers,
    ) -> None:
        request, job, root = self._job(step, scope, record, entry)
        notes = self._notes(step["Name"], str((request.get("AppSpecification") or {}).get("ImageUri") or ""))
        props = run_processing_job(runner, job, request, root, keep_data=self.keep_job_data, notes=notes)
        props["ProcessingJobArn"] = self._arn("processing-job", job)
        scope.steps[step["Name"]] = props
        outputs = {
            o["OutputName"]: o["S3Output"]["S3Uri"]
            for o in (props.get("ProcessingOutputConfig") or {}).get("Outputs", [])
            if "S3Output" in o
        }
        for spec in step.get("PropertyFiles") or []:
            self._register_property_file(step["Name"], spec, outputs, scope, transfers)
        entry.metadata = {
            "ProcessingJob": {"Arn": props["ProcessingJobArn"], "Name": job},
            "Outputs": outputs,
            "LocalTimings": props["LocalTimings"],
            **({"Warnings": props["LocalWarnings"]} if props["LocalWarnings"] else {}),
        }

    @staticmethod
    def _job(
        step: dict[str, Any], scope: Scope, record: ExecutionRecord, entry: StepRecord
    ) -> tuple[dict[str, Any], str, Path]:
        """What every job step starts with: its resolved request, job name and local root (log path set)."""
        request = resolve(step.get("Arguments", {}), scope)
        job = job_name(record.execution_id, step["Name"])
        root = Path(record.work_dir) / step["Name"]
        entry.log_path = str(root / "logs" / "algo-1.log")
        return request, job, root

    def _arn(self, kind: str, job: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:{kind}/{job.lower()}"

    @staticmethod
    def _register_property_file(
        step: str, spec: dict[str, Any], outputs: dict[str, str], scope: Scope, transfers: S3Transfers
    ) -> None:
        name, output, path = spec.get("PropertyFileName"), spec.get("OutputName"), spec.get("FilePath")
        if not name or not output or not path:
            raise DefinitionError(f"step {step}: malformed PropertyFiles entry {spec!r}")
        if output not in outputs:
            raise DefinitionError(f"step {step}: property file {name} names unknown output {output!r}")
        uri = f"{outputs[output].rstrip('/')}/{path}"
        cache: dict[str, Any] = {}

        def load() -> Any:
            # Read when first used, as SageMaker does: a missing file fails the step that reads it.
            if "value" not in cache:
                try:
                    cache["value"] = transfers.read_json(uri)
                except StepFailed as exc:
                    raise ResolutionError(f"property file {name} of step {step}: {exc.reason}") from exc
            return cache["value"]

        scope.property_files[(step, name)] = load

    def _training(
        self, step: dict[str, Any], scope: Scope, record: ExecutionRecord, entry: StepRecord, runner: JobRunner
    ) -> None:
        request, job, root = self._job(step, scope, record, entry)
        image = str((request.get("AlgorithmSpecification") or {}).get("TrainingImage") or "")
        notes = self._notes(step["Name"], image)
        props = run_training_job(runner, job, request, root, keep_data=self.keep_job_data, notes=notes)
        props["TrainingJobArn"] = self._arn("training-job", job)
        scope.steps[step["Name"]] = props
        for note in props["LocalWarnings"][len(notes) :]:
            LOG.warning("step %s: %s", step["Name"], note)
        entry.metadata = {
            "TrainingJob": {"Arn": props["TrainingJobArn"], "Name": job},
            "ModelArtifacts": props["ModelArtifacts"]["S3ModelArtifacts"],
            "LocalTimings": props["LocalTimings"],
            **({"Warnings": props["LocalWarnings"]} if props["LocalWarnings"] else {}),
        }

    def _transform(
        self, step: dict[str, Any], scope: Scope, record: ExecutionRecord, entry: StepRecord, runner: JobRunner
    ) -> None:
        request, job, root = self._job(step, scope, record, entry)
        model_name = request.get("ModelName")
        if not model_name:
            raise StepFailed("ValidationException: CreateTransformJob needs ModelName")
        container = model_container(self.clients.client("sagemaker"), str(model_name))
        for props in scope.steps.values():  # moto does not keep a model's EnableNetworkIsolation: ours does
            if props.get("ModelName") == model_name and "EnableNetworkIsolation" in props:
                container["EnableNetworkIsolation"] = bool(props["EnableNetworkIsolation"])
        notes = self._notes(step["Name"], str(container.get("Image") or ""))
        props = run_transform_job(runner, job, request, root, container, keep_data=self.keep_job_data, notes=notes)
        props["TransformJobArn"] = self._arn("transform-job", job)
        scope.steps[step["Name"]] = props
        entry.metadata = {
            "TransformJob": {"Arn": props["TransformJobArn"], "Name": job, "ModelName": str(model_name)},
            "Outputs": {"predictions": props["TransformOutput"]["S3OutputPath"]},
            "RecordCounts": props["LocalRecordCounts"],
            "LocalTimings": props["LocalTimings"],
            **({"Warnings": props["LocalWarnings"]} if props["LocalWarnings"] else {}),
        }

    @staticmethod
    def _notes(step: str, image: str) -> list[str]:
        """Warnings about running ``image`` locally (framework version mismatch), logged once here."""
        notes = framework_notes(image)
        for note in notes:
            LOG.warning("step %s: %s", step, note)
        return notes

    def _model(self, step: dict[str, Any], scope: Scope, record: ExecutionRecord, entry: StepRecord) -> None:
        """``CreateModel`` in the embedded AWS; the step's properties are ``DescribeModel``'s."""
        sm = self.clients.client("sagemaker")
        request = resolve(step.get("Arguments", {}), scope)
        if not request.get("PrimaryContainer") and not request.get("Containers"):
            raise StepFailed("ValidationException: CreateModel needs PrimaryContainer or Containers")
        accepted = set(sm.meta.service_model.operation_model("CreateModel").input_shape.members)
        name = str(request.get("ModelName") or job_name(record.execution_id, step["Name"]))
        arguments = {k: v for k, v in request.items() if k in accepted and v not in (None, {}, [])}
        arguments["ModelName"] = name
        sm.create_model(**arguments)
        described = jsonable(sm.describe_model(ModelName=name))
        described["EnableNetworkIsolation"] = bool(request.get("EnableNetworkIsolation"))
        scope.steps[step["Name"]] = described
        entry.metadata = {"Model": {"Arn": described.get("ModelArn"), "Name": name}}

    def _lambda(self, step: dict[str, Any], scope: Scope, record: ExecutionRecord, entry: StepRecord) -> None:
        """A Lambda step whose function is one of Flywheel's handlers, called in-process (see :mod:`.lambdas`)."""
        function_arn = str(resolve(step.get("FunctionArn"), scope))
        handler = handler_for(function_arn, step["Name"])
        event = resolve(step.get("Arguments", {}), scope)
        outputs = call_handler(
            handler,
            event,
            function_arn=function_arn,
            request_id=f"{record.execution_id}-{step['Name']}",
            declared=step.get("OutputParameters") or [],
            endpoint_url=self.aws_endpoint,
            region=self.region,
        )
        scope.steps[step["Name"]] = {"OutputParameters": outputs}
        entry.metadata = {"Lambda": {"Arn": function_arn, "Handler": handler, "OutputParameters": outputs}}

    def _register(self, step: dict[str, Any], scope: Scope, entry: StepRecord) -> None:
        sm = self.clients.client("sagemaker")
        request = resolve(step.get("Arguments", {}), scope)
        accepted = set(sm.meta.service_model.operation_model("CreateModelPackage").input_shape.members)
        # Keep what the API accepts (the SDK may add keys of its own); moto ignores a few of the rest.
        arguments = {k: v for k, v in request.items() if k in accepted and v not in (None, {}, [])}
        if "ModelPackageGroupName" not in arguments:
            raise StepFailed("ValidationException: RegisterModel needs ModelPackageGroupName")
        created_group = self._ensure_group(sm, str(arguments["ModelPackageGroupName"]))
        if self.register is not None:
            package_arn = self.register(arguments)
        else:
            package_arn = str(sm.create_model_package(**arguments)["ModelPackageArn"])
        described = jsonable(sm.describe_model_package(ModelPackageName=package_arn))
        scope.steps[step["Name"]] = described
        entry.metadata = {
            "RegisterModel": {
                "Arn": package_arn,
                "Version": described.get("ModelPackageVersion"),
                "ApprovalStatus": described.get("ModelApprovalStatus"),
                **({"CreatedModelPackageGroup": created_group} if created_group else {}),
            }
        }

    @staticmethod
    def _ensure_group(sm: Any, group: str) -> str | None:
        """Create the model package group if it does not exist, as SageMaker Pipelines' RegisterModel step
        does; returns its name when it was created. A group given by ARN must exist (it names an account)."""
        try:
            sm.describe_model_package_group(ModelPackageGroupName=group)
            return None
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("ValidationException", "ResourceNotFound"):
                raise
        if group.startswith("arn:"):
            raise StepFailed(f"ValidationException: Model Package Group {group} does not exist.")
        sm.create_model_package_group(ModelPackageGroupName=group)
        LOG.info("created model package group %s for a RegisterModel step", group)
        return group
