"""Every expected error of the local runtime, in one hierarchy.

:class:`FlywheelError` is the base: an expected problem whose message says what is wrong and how to
fix it. The CLI (:func:`flywheel.cli._expected_errors`) shows any of them as ``Error: <message>`` with
exit code 1 and no stack trace; anything else is a bug and keeps its trace.

::

    FlywheelError
    ├── UnknownTeamError          the team is not in config/teams.yaml
    ├── UnknownTemplateError      the team has no pipeline of that template
    ├── UnknownPackageError       a model package reference names nothing in the registry
    ├── DataError                 the data to land cannot be used
    ├── NotDeployedError          the team has no approved, deployed package
    ├── RunNotPendingError        ``execute`` of a run that was never started or already ran
    ├── PortInUseError            a port the embedded AWS or an endpoint should listen on is taken
    ├── EmbeddedAwsError          the embedded AWS cannot be started or reached
    │   └── OfflineViolationError a client or request that could reach real AWS (refused)
    ├── StateCorruptError         a state-dir file cannot be read: names the file and the fix
    ├── StateLockError            a state-dir lock could not be taken in time
    ├── RemoteBindError           serving on a non-loopback address without --allow-remote
    ├── ModelLoadError            a model artifact cannot be loaded for serving
    └── ExecutorError             the local pipeline executor (flywheel.executor)
        ├── DefinitionError       the definition cannot run locally (before any step runs)
        │   ├── UnsupportedStepError
        │   └── ParameterError
        ├── ResolutionError       a reference could not be resolved while a step ran
        └── StepFailed            a step failed (reason, log tail)

Standard library only: the executor, the server and the CLI all import it.
"""

from __future__ import annotations

from typing import Final

LOCALHOST: Final = "127.0.0.1"


class FlywheelError(Exception):
    """An expected problem; the message says what is wrong and how to fix it (shown without a trace)."""


class UnknownTeamError(FlywheelError):
    """The team is not in ``config/teams.yaml``."""


class UnknownTemplateError(FlywheelError):
    """A pipeline template the team does not have."""


class UnknownPackageError(FlywheelError):
    """The model package reference names nothing in the registry."""


class DataError(FlywheelError):
    """The data to land cannot be used (missing file, unsupported format, no generator)."""


class NotDeployedError(FlywheelError):
    """The team has no approved, deployed model package."""


class RunNotPendingError(FlywheelError):
    """``execute`` was given a run that no process started, or that a process already took."""


class PortInUseError(FlywheelError):
    """The requested port is taken; ``port`` names it."""

    def __init__(self, port: int, what: str = "the embedded AWS", host: str = LOCALHOST) -> None:
        super().__init__(
            f"port {port} on {host} is already in use, so {what} cannot listen on it: stop the process "
            f"using it or choose another port (e.g. --port 0 for a free one)"
        )
        self.port = port


class EmbeddedAwsError(FlywheelError):
    """The embedded AWS could not be started or reached; the message names the fix."""


class OfflineViolationError(EmbeddedAwsError):
    """A boto3 client or request of the local runtime that could reach real AWS: refused before it is sent."""


class StateCorruptError(FlywheelError):
    """A file of the state dir cannot be used; ``path`` names it, the message says what to do."""

    def __init__(self, path: object, problem: str, fix: str) -> None:
        super().__init__(f"state file {path} {problem}: {fix}")
        self.path = str(path)
        self.problem = problem
        self.fix = fix


class StateLockError(FlywheelError):
    """A lock of the state dir stayed taken longer than the wait allows; the message names the lock file."""


class RemoteBindError(FlywheelError):
    """A local server asked to listen on a non-loopback address without the explicit opt-in."""


class ModelLoadError(FlywheelError):
    """A model artifact cannot be loaded for serving; the message names the reason."""


class ExecutorError(FlywheelError):
    """Base class of the local executor's errors; each message names the step, the value and the problem."""


class DefinitionError(ExecutorError):
    """The pipeline definition cannot run locally (malformed, or a step type the executor lacks).

    Raised before any step runs, like SageMaker's ``ValidationException`` on StartPipelineExecution.
    """


class UnsupportedStepError(DefinitionError):
    """A step type the local executor does not run; never skipped silently."""


class ParameterError(DefinitionError):
    """A missing, unknown or mistyped pipeline parameter value."""


class ResolutionError(ExecutorError):
    """A reference (``Get``, ``Std:JsonGet``, ``Std:Join``) could not be resolved while a step ran."""


class StepFailed(ExecutorError):
    """A step failed; ``reason`` is the failure reason and ``log_tail`` the end of its log."""

    def __init__(self, reason: str, *, log_tail: str = "", log_path: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail
        self.log_path = log_path
