"""The local executor of SageMaker pipeline definitions (see :mod:`flywheel.executor.pipeline`).

``PipelineExecutor(clients, work_dir).execute(definition_json, {"InputDataUri": ...})`` runs the same
definition JSON that the CDK deploys: Processing and Training jobs as local processes under SageMaker's
container contract, Transform through the model's own inference code (:mod:`.transform`), Condition and
Fail steps, RegisterModel into the embedded registry.
"""

from flywheel.errors import (
    DefinitionError,
    ExecutorError,
    ParameterError,
    ResolutionError,
    StepFailed,
    UnsupportedStepError,
)
from flywheel.executor.pipeline import (
    FAILED,
    RUNNING,
    STOPPED,
    SUCCEEDED,
    SUPPORTED_STEP_TYPES,
    ExecutionRecord,
    PipelineExecutor,
    StepRecord,
)

__all__ = [
    "FAILED",
    "RUNNING",
    "STOPPED",
    "SUCCEEDED",
    "SUPPORTED_STEP_TYPES",
    "DefinitionError",
    "ExecutionRecord",
    "ExecutorError",
    "ParameterError",
    "PipelineExecutor",
    "ResolutionError",
    "StepFailed",
    "StepRecord",
    "UnsupportedStepError",
]
