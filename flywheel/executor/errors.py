"""Errors of the local pipeline executor; each message names the step, the value and the problem."""

from __future__ import annotations


class ExecutorError(Exception):
    """Base class of the executor's errors."""


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
