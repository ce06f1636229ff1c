"""The local executor of SageMaker pipeline definitions (see :mod:`flywheel.executor.pipeline`).

``PipelineExecutor(clients, work_dir).execute(definition_json, {"InputDataUri": ...})`` runs the same
definition JSON that the CDK deploys (or one the SageMaker SDK built elsewhere): Processing and Training
jobs as local processes under SageMaker's container contract — each with a private ``/opt/ml`` on Linux
(:mod:`.sandbox`), AWS access only when not network-isolated (:mod:`.jobs`) — training in script mode or
as SageMaker's built-in XGBoost (:mod:`.algorithms.xgboost_container`), Model (CreateModel), Transform
through the model's own inference code or the built-in XGBoost contract (:mod:`.transform`), Condition and
Fail steps, RegisterModel into the embedded registry, Lambda steps of Flywheel's handlers (:mod:`.lambdas`).
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
