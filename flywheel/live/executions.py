"""The execution manager of the live SageMaker: pipeline executions run in the background, reported truly.

``StartPipelineExecution`` from a client becomes a background thread running the definition with
Flywheel's executor (:class:`flywheel.executor.PipelineExecutor`); a team's run started by its
data-arrival handler runs through :meth:`flywheel.runtime.LocalRuntime.execute` (its pending run). Either
way every update lands in the state store (``executions/<id>.json``), which is what ``Describe``/``List``
answer from — so an execution run by another process on the same state dir (``flywheel run`` while
``flywheel up`` runs) is reported too.

Parameters are checked when the execution starts, as SageMaker does (``ValidationException``:
``Parameter 'X' is undefined.``, ``Unknown parameter 'X'``, an empty string); a definition the executor
cannot run (an unsupported step type, a cycle) starts and then fails with the executor's reason.

Stopping (``StopPipelineExecution``) is real: the execution shows ``Stopping``, its running job processes
(found by the token each job carries, :mod:`flywheel.executor.jobs`) are killed, no further step starts,
and it ends ``Stopped`` with the interrupted step ``Stopped``. Executions run concurrently, each in its
own thread with its own job folders; at most ``max_parallel`` run at once, the others wait ``Executing``
(SageMaker queues beyond its concurrency limit as well).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import ClientError

from flywheel.embedded import NAMES
from flywheel.executor import ExecutionRecord, ExecutorError, ParameterError, PipelineExecutor
from flywheel.executor.jobs import OWNER_FILE, now
from flywheel.executor.jobs import processes_with_token as job_processes
from flywheel.executor.pipeline import job_name
from flywheel.live.protocol import CONFLICT, NOT_FOUND, VALIDATION, ApiError, epoch, fit_member
from flywheel.state import StateStore

LOG = logging.getLogger(__name__)
STOPPED_REASON: Final = "Execution stopped by StopPipelineExecution"
#: Job statuses of the Describe*Job APIs for a step's status.
#: Step type -> (metadata key, ARN resource type) of the job the step runs.
_JOB_KINDS: Final = {
    "Processing": ("ProcessingJob", "processing-job"),
    "Training": ("TrainingJob", "training-job"),
    "Transform": ("TransformJob", "transform-job"),
}
_JOB_STATUS: Final = {
    "Executing": "InProgress",
    "Succeeded": "Completed",
    "Failed": "Failed",
    "Stopped": "Stopped",
}


class _StopRequested(KeyboardInterrupt):
    """Raised from the executor's update callback: the executor records the execution ``Stopped``."""


@dataclass
class _Live:
    """An execution this manager runs."""

    execution_id: str
    execution_arn: str
    definition: dict[str, Any] | None = None
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    stop_at: str = ""
    interrupted: bool = False
    done: threading.Event = field(default_factory=threading.Event)


def execution_id_of(arn: str) -> str:
    """The execution id an execution ARN ends with."""
    return str(arn).rstrip("/").rsplit("/", 1)[-1]


def check_parameters(doc: Mapping[str, Any], given: Mapping[str, str]) -> None:
    """SageMaker's checks of ``PipelineParameters`` at start (ValidationException with its messages)."""
    declared = {str(p.get("Name")): p for p in doc.get("Parameters") or [] if isinstance(p, dict)}
    for name, value in given.items():
        if name not in declared:
            raise ApiError(VALIDATION, f"Unknown parameter '{name}'")
        if value == "":
            raise ApiError(VALIDATION, f'Parameter {name} value "" is too short (length: 0, required minimum: 1).')
    for name, spec in declared.items():
        if name not in given and "DefaultValue" not in spec:
            raise ApiError(VALIDATION, f"Parameter '{name}' is undefined.")


class ExecutionManager:
    """Runs and reports pipeline executions (see the module docstring)."""

    def __init__(
        self,
        aws: Any,
        state: StateStore,
        *,
        region: str,
        account: str,
        register: Callable[[dict[str, Any], str], str] | None = None,
        max_parallel: int = 4,
        on_update: Callable[[ExecutionRecord], None] | None = None,
    ) -> None:
        """``register(arguments, execution_arn)``: CreateModelPackage for a RegisterModel step (default: the
        executor's own); ``max_parallel``: executions running at once; ``on_update``: told every update of
        an execution started with :meth:`start`, after it was saved (progress output)."""
        self.on_update = on_update
        self.aws = aws
        self.state = state
        self.region = region
        self.account = account
        self.register = register
        self._slots = threading.BoundedSemaphore(max(1, max_parallel))
        self._live: dict[str, _Live] = {}
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    # Starting ----------------------------------------------------------------------------------------
    def token_arn(self, token: str | None) -> str | None:
        """The execution already started with ``ClientRequestToken`` ``token`` (SageMaker's idempotency)."""
        with self._lock:
            return self._tokens.get(token) if token else None

    def prepare(self, definition: str, parameters: Mapping[str, str]) -> dict[str, Any]:
        """The parsed definition, after SageMaker's parameter checks (ApiError ValidationException)."""
        try:
            doc = json.loads(definition)
        except ValueError as exc:
            raise ApiError(VALIDATION, f"The pipeline definition is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ApiError(VALIDATION, "The pipeline definition must be a JSON object")
        check_parameters(doc, parameters)
        try:
            PipelineExecutor(self.aws, self.state.root / "jobs").validate(doc, parameters)
        except ParameterError as exc:
            raise ApiError(VALIDATION, str(exc)) from None
        except ExecutorError:
            pass  # a definition the executor cannot run starts, then fails with the reason (run())
        return doc

    def start(
        self,
        *,
        doc: dict[str, Any],
        parameters: Mapping[str, str],
        pipeline_name: str,
        pipeline_arn: str,
        execution_arn: str,
        token: str | None = None,
        display_name: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Record the execution ``Executing`` and run ``doc`` in the background."""
        live = self._track(execution_arn, token, doc)
        record = {
            "PipelineExecutionId": live.execution_id,
            "PipelineExecutionArn": execution_arn,
            "PipelineName": pipeline_name,
            "PipelineArn": pipeline_arn,
            "PipelineExecutionStatus": "Executing",
            "StartTime": now().isoformat(),
            "Parameters": dict(parameters),
            "Tags": dict(tags or {}),
            "DisplayName": display_name or live.execution_id,
            "Description": description or "",
            "Steps": [],
        }
        self.state.save_execution(record, create=True)

        register = self.register

        def run() -> None:
            executor = PipelineExecutor(
                self.aws,
                self.state.root / "jobs",
                on_update=self._saver(record),
                region=self.region,
                account=self.account,
                register=(lambda args: register(args, execution_arn)) if register is not None else None,
            )
            try:
                executor.execute(
                    doc,
                    parameters,
                    pipeline_name=pipeline_name,
                    pipeline_arn=pipeline_arn,
                    execution_arn=execution_arn,
                    tags=tags,
                )
            except ExecutorError as exc:  # before any step: a definition the executor cannot run
                self._finish_unrun(live, str(exc))

        self._spawn(live, run)

    def start_team_run(self, execution_arn: str, execute: Callable[[str], Any]) -> None:
        """Run a team's pending run (started by its data-arrival handler) with ``execute(arn)`` — the
        runtime's :meth:`~flywheel.runtime.LocalRuntime.execute`, whose updates reach :meth:`check_stop`."""
        live = self._track(execution_arn, None, None)
        self._spawn(live, lambda: execute(execution_arn))

    def _track(self, execution_arn: str, token: str | None, doc: dict[str, Any] | None) -> _Live:
        live = _Live(execution_id=execution_id_of(execution_arn), execution_arn=execution_arn, definition=doc)
        with self._lock:
            self._live[live.execution_id] = live
            if token:
                self._tokens[token] = execution_arn
        return live

    def _spawn(self, live: _Live, body: Callable[[], None]) -> None:
        def main() -> None:
            try:
                with self._slots:
                    if live.stop.is_set():
                        self._finish_unrun(live, STOPPED_REASON, status="Stopped")
                        return
                    body()
            except KeyboardInterrupt:
                pass  # stopped: the executor recorded it
            except Exception:  # the executor recorded the failure; keep the server alive
                LOG.exception("execution %s ended with an executor error", live.execution_id)
            finally:
                live.done.set()

        live.thread = threading.Thread(target=main, name=f"flywheel-execution-{live.execution_id}", daemon=True)
        live.thread.start()

    def _finish_unrun(self, live: _Live, reason: str, status: str = "Failed") -> None:
        stored = self.state.execution(live.execution_id) or {}
        stored.update(PipelineExecutionStatus=status, FailureReason=reason, EndTime=now().isoformat())
        self.state.save_execution(stored)

    def _saver(self, initial: Mapping[str, Any]) -> Callable[[ExecutionRecord], None]:
        extra = {k: initial[k] for k in ("DisplayName", "Description") if initial.get(k)}

        def save(record: ExecutionRecord) -> None:
            self.state.save_execution({**record.to_dict(), **extra})
            if self.on_update is not None:
                self.on_update(record)
            self.check_stop(record)

        return save

    def check_stop(self, record: ExecutionRecord) -> None:
        """The executor's update callback: once a stop was requested, end the execution at this point."""
        live = self._live.get(record.execution_id)
        if live is None or not live.stop.is_set() or live.interrupted:
            return
        live.interrupted = True
        # A step that would start now never runs: SageMaker does not list it.
        record.steps[:] = [s for s in record.steps if not (s.status == "Executing" and s.start_time >= live.stop_at)]
        for step in record.steps:
            if step.status == "Executing" or (step.status == "Failed" and (step.end_time or "") >= live.stop_at):
                step.status, step.failure_reason = "Stopped", STOPPED_REASON
                step.end_time = step.end_time or now().isoformat()
        record.failed_step = None
        raise _StopRequested(STOPPED_REASON)

    # Stopping ----------------------------------------------------------------------------------------
    def stop(self, execution_arn: str) -> None:
        """StopPipelineExecution: ``Stopping`` now, its jobs killed, ``Stopped`` when the executor has ended."""
        record = self._stored(execution_arn)
        live = self._live.get(execution_id_of(execution_arn))
        if record.get("PipelineExecutionStatus") != "Executing":
            raise ApiError(
                VALIDATION,
                f"Pipeline execution {execution_arn} is in status {record.get('PipelineExecutionStatus')} "
                "and cannot be stopped",
            )
        if live is None or live.done.is_set():
            raise ApiError(
                CONFLICT,
                f"Pipeline execution {execution_arn} is run by another process on this state dir "
                "(`flywheel run`): stop it there with Ctrl-C",
            )
        if not live.stop.is_set():
            live.stop_at = now().isoformat()
            live.stop.set()
            threading.Thread(target=self._kill_jobs, args=(live,), daemon=True).start()

    def _kill_jobs(self, live: _Live) -> None:
        """Kill the execution's job processes until its executor thread has ended (a job may be starting)."""
        owner = self.state.root / "jobs" / live.execution_id / OWNER_FILE
        while not live.done.wait(0.1):
            try:
                token = str(json.loads(owner.read_text(encoding="utf-8"))["token"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            for pid in job_processes(token):
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)  # each job leads its own process group

    def close(self, timeout: float = 10.0) -> None:
        """Stop every running execution (server shutdown) and wait for them."""
        for live in list(self._live.values()):
            if not live.done.is_set():
                with contextlib.suppress(ApiError):
                    self.stop(live.execution_arn)
        deadline = time.monotonic() + timeout
        for live in list(self._live.values()):
            live.done.wait(max(0.0, deadline - time.monotonic()))

    def wait(self, execution_arn: str, timeout: float | None = None) -> bool:
        """Block until an execution this manager runs has ended; whether it did."""
        live = self._live.get(execution_id_of(execution_arn))
        return True if live is None else live.done.wait(timeout)

    # Reporting ---------------------------------------------------------------------------------------
    def knows(self, execution_arn: str) -> bool:
        """Whether the state store has the execution."""
        try:
            return self.state.execution(execution_id_of(execution_arn)) is not None
        except ValueError:
            return False

    def _stored(self, execution_arn: str) -> dict[str, Any]:
        try:
            record = self.state.execution(execution_id_of(execution_arn))
        except ValueError:
            record = None
        if record is None:
            raise ApiError(NOT_FOUND, f"Pipeline execution {execution_arn} does not exist.")
        return record

    def _status(self, record: Mapping[str, Any]) -> str:
        status = str(record.get("PipelineExecutionStatus") or "Executing")
        live = self._live.get(str(record.get("PipelineExecutionId")))
        if status == "Executing" and live is not None and live.stop.is_set():
            return "Stopping"
        return status

    def _pipeline_arn(self, record: Mapping[str, Any]) -> str:
        arn = str(record.get("PipelineExecutionArn") or "")
        return str(record.get("PipelineArn") or arn.split("/execution/")[0])

    def describe(self, execution_arn: str) -> dict[str, Any]:
        """DescribePipelineExecution."""
        record = self._stored(execution_arn)
        steps = record.get("Steps") or []
        times = [record.get("StartTime"), *(s.get("EndTime") or s.get("StartTime") for s in steps)]
        modified = record.get("EndTime") or max((str(t) for t in times if t), default=None)
        status = self._status(record)
        answer: dict[str, Any] = {
            "PipelineArn": self._pipeline_arn(record),
            "PipelineExecutionArn": record.get("PipelineExecutionArn"),
            "PipelineExecutionDisplayName": record.get("DisplayName") or record.get("PipelineExecutionId"),
            "PipelineExecutionStatus": status,
            "PipelineExecutionDescription": record.get("Description") or None,
            "CreationTime": record.get("StartTime"),
            "LastModifiedTime": modified,
            "CreatedBy": {},
            "LastModifiedBy": {},
        }
        if status in ("Failed", "Stopped") and record.get("FailureReason"):
            answer["FailureReason"] = record["FailureReason"]
        return answer

    def list_executions(self, pipeline_name: str, *, ascending: bool = False) -> list[dict[str, Any]]:
        """ListPipelineExecutions' summaries (newest first unless ``ascending``)."""
        summaries = [
            {
                "PipelineExecutionArn": r.get("PipelineExecutionArn"),
                "StartTime": r.get("StartTime"),
                "PipelineExecutionStatus": self._status(r),
                "PipelineExecutionDisplayName": r.get("DisplayName") or r.get("PipelineExecutionId"),
                "PipelineExecutionFailureReason": r.get("FailureReason") if r.get("FailureReason") else None,
            }
            for r in self.state.executions(pipeline_name)
        ]
        return summaries if ascending else list(reversed(summaries))

    def list_steps(self, execution_arn: str, *, ascending: bool = False) -> list[dict[str, Any]]:
        """ListPipelineExecutionSteps (most recent step first unless ``ascending``, as SageMaker)."""
        record = self._stored(execution_arn)
        stopping = self._status(record) == "Stopping"
        steps = []
        for step in record.get("Steps") or []:
            status = str(step.get("StepStatus") or "Executing")
            entry = {
                "StepName": step.get("StepName"),
                "StartTime": step.get("StartTime"),
                "EndTime": step.get("EndTime"),
                "StepStatus": "Stopping" if stopping and status == "Executing" else status,
                "FailureReason": step.get("FailureReason"),
                "Metadata": fit_member("PipelineExecutionStepMetadata", self._metadata(record, step)) or {},
                "AttemptCount": 1,
            }
            steps.append(entry)
        return steps if ascending else list(reversed(steps))

    def _metadata(self, record: Mapping[str, Any], step: Mapping[str, Any]) -> dict[str, Any]:
        """A step's metadata, with its job's name and ARN also when the job failed or was stopped (the
        executor records them on success only; SageMaker always names the job)."""
        meta = dict(step.get("Metadata") or {})
        kind = _JOB_KINDS.get(str(step.get("StepType")))
        if kind is not None and kind[0] not in meta:
            name = job_name(str(record.get("PipelineExecutionId")), str(step.get("StepName")))
            meta[kind[0]] = {
                "Name": name,
                "Arn": f"arn:aws:sagemaker:{self.region}:{self.account}:{kind[1]}/{name.lower()}",
            }
        return meta

    def describe_job(self, kind: str, name: str) -> dict[str, Any] | None:
        """DescribeProcessingJob / DescribeTrainingJob / DescribeTransformJob (``kind``: ``ProcessingJob``,
        ``TrainingJob`` or ``TransformJob``) for a
        job an execution on the state dir ran; None if none did."""
        wanted = name.lower()
        for record in reversed(self.state.executions()):
            for step in record.get("Steps") or []:
                job = self._metadata(record, step).get(kind) or {}
                arn = str(job.get("Arn") or "")
                if wanted not in (str(job.get("Name") or "").lower(), arn.rsplit("/", 1)[-1]):
                    continue
                return self._job_answer(kind, record, step, str(job.get("Name") or name), arn)
        return None

    def _step_arguments(self, record: Mapping[str, Any], step_name: str) -> dict[str, Any]:
        live = self._live.get(str(record.get("PipelineExecutionId")))
        doc = live.definition if live is not None else None
        if doc is None:
            with contextlib.suppress(Exception):
                pipeline = self.aws.client("sagemaker").describe_pipeline(PipelineName=record.get("PipelineName"))
                doc = json.loads(pipeline["PipelineDefinition"])
        found = _find_step((doc or {}).get("Steps") or [], step_name)
        return dict(found.get("Arguments") or {}) if found else {}

    def _job_answer(
        self, kind: str, record: Mapping[str, Any], step: Mapping[str, Any], name: str, arn: str
    ) -> dict[str, Any]:
        args = self._step_arguments(record, str(step.get("StepName")))
        status = _JOB_STATUS.get(str(step.get("StepStatus")), "InProgress")
        meta = step.get("Metadata") or {}
        common = {
            "CreationTime": step.get("StartTime"),
            "LastModifiedTime": step.get("EndTime") or step.get("StartTime"),
        }
        if step.get("FailureReason") and status in ("Failed", "Stopped"):
            common["FailureReason"] = step["FailureReason"]
        if kind == "ProcessingJob":
            outputs = meta.get("Outputs") or {}
            declared = {o.get("OutputName"): o for o in (args.get("ProcessingOutputConfig") or {}).get("Outputs", [])}
            config = dict(args.get("ProcessingOutputConfig") or {})
            if outputs:
                config["Outputs"] = [
                    {
                        "OutputName": out,
                        "S3Output": {
                            **((declared.get(out) or {}).get("S3Output") or {}),
                            "S3Uri": uri,
                        },
                    }
                    for out, uri in outputs.items()
                ]
            return {
                **args,
                **common,
                "ProcessingOutputConfig": config,
                "ProcessingJobName": name,
                "ProcessingJobArn": arn,
                "ProcessingJobStatus": status,
                "ProcessingStartTime": step.get("StartTime"),
                "ProcessingEndTime": step.get("EndTime"),
            }
        if kind == "TransformJob":
            return {
                **args,
                **common,
                "TransformJobName": name,
                "TransformJobArn": arn,
                "TransformJobStatus": status,
                "TransformStartTime": step.get("StartTime"),
                "TransformEndTime": step.get("EndTime"),
            }
        answer = {
            **args,
            **common,
            "TrainingJobName": name,
            "TrainingJobArn": arn,
            "TrainingJobStatus": status,
            "SecondaryStatus": {"InProgress": "Training"}.get(status, status),
            "TrainingStartTime": step.get("StartTime"),
            "TrainingEndTime": step.get("EndTime"),
        }
        if meta.get("ModelArtifacts"):
            answer["ModelArtifacts"] = {"S3ModelArtifacts": meta["ModelArtifacts"]}
        start, end = epoch(step.get("StartTime")), epoch(step.get("EndTime"))
        if start is not None and end is not None:
            answer["TrainingTimeInSeconds"] = int(end - start)
        return answer


def runtime_register(runtime: Any) -> Callable[[dict[str, Any], str], str]:
    """A RegisterModel step's CreateModelPackage on ``runtime``: into a team's group through its registry
    (mirrored in the state dir); another group is created first if it does not exist, as the step does."""
    team_groups = {NAMES.model_package_group(team) for team in runtime.team_names}

    def register(arguments: dict[str, Any], execution_arn: str) -> str:
        group = str(arguments["ModelPackageGroupName"])
        if group in team_groups:
            return str(runtime.registry.register(arguments, execution_arn=execution_arn))
        sm = runtime.aws.client("sagemaker")
        try:
            sm.describe_model_package_group(ModelPackageGroupName=group)
        except ClientError:
            sm.create_model_package_group(ModelPackageGroupName=group)
        return str(sm.create_model_package(**arguments)["ModelPackageArn"])

    return register


def _find_step(steps: list[Any], name: str) -> dict[str, Any] | None:
    for step in steps:
        if not isinstance(step, dict):
            continue
        if step.get("Name") == name:
            return step
        if step.get("Type") == "Condition":
            args = step.get("Arguments") or {}
            found = _find_step(list(args.get("IfSteps") or []) + list(args.get("ElseSteps") or []), name)
            if found:
                return found
    return None
