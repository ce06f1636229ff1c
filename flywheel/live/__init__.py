"""A live local SageMaker: ``flywheel up`` answering real clients with real executions.

moto accepts ``StartPipelineExecution`` and reports success without running anything. The live layer
(:class:`LiveSageMaker`, installed in front of moto by ``flywheel up``) makes the embedded AWS behave
like SageMaker for the ML lifecycle, for any client pointed at it (``AWS_ENDPOINT_URL``): the AWS CLI,
boto3, the SageMaker Python SDK. One component per module:

* :mod:`.routing` — the WSGI middleware: which request goes to the live layer, which to moto;
* :mod:`.executions` — executions in the background with Flywheel's executor, their true status, steps,
  jobs; stopping;
* :mod:`.events` — S3 ``incoming/`` objects to the data-arrival handler, approvals to the deploy handler;
* :mod:`.protocol` — SageMaker's JSON protocol (output shapes from botocore's model, error shapes);
* :mod:`.definition_run` — ``flywheel run --definition``: any definition JSON, run and reported.

Pipelines themselves (``CreatePipeline``/``UpdatePipeline``/``DescribePipeline``/``DeletePipeline``) stay
moto's: it keeps the definition, which an execution reads when it starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from flywheel.embedded import ACCOUNT
from flywheel.live.events import Delivery, EventBridge
from flywheel.live.executions import ExecutionManager, runtime_register
from flywheel.live.protocol import VALIDATION, ApiError, shape
from flywheel.live.routing import LiveRouter

__all__ = ["Delivery", "ExecutionManager", "LiveRouter", "LiveSageMaker"]


def _client_error(exc: ClientError) -> ApiError:
    """moto's refusal as the client would get it from SageMaker (code and message kept)."""
    err = exc.response.get("Error", {})
    code = str(err.get("Code") or VALIDATION)
    return ApiError(code, str(err.get("Message") or code))


def _pipeline_name(value: Any) -> str:
    """A pipeline name or ARN (``...:pipeline/<name>``) as the name."""
    text = str(value or "")
    return text.split(":pipeline/", 1)[1].split("/", 1)[0] if ":pipeline/" in text else text


class LiveSageMaker:
    """The live layer over one runtime (its embedded AWS, state dir and provisioned teams)."""

    def __init__(
        self, runtime: Any, *, on_event: Callable[[Delivery], None] | None = None, max_parallel: int = 4
    ) -> None:
        self.runtime = runtime
        self.aws = runtime.aws
        self.manager = ExecutionManager(
            self.aws,
            runtime.state,
            region=self.aws.region,
            account=ACCOUNT,
            register=runtime_register(runtime),
            max_parallel=max_parallel,
        )
        # Team runs started by the data-arrival handler report their updates here (stop requests).
        runtime.on_update = self.manager.check_stop
        self.events = EventBridge(runtime, self.manager, on_event)
        self.operations: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {
            "StartPipelineExecution": self.start_pipeline_execution,
            "DescribePipelineExecution": self.describe_pipeline_execution,
            "ListPipelineExecutions": self.list_pipeline_executions,
            "ListPipelineExecutionSteps": self.list_pipeline_execution_steps,
            "ListPipelineParametersForExecution": self.list_pipeline_parameters_for_execution,
            "StopPipelineExecution": self.stop_pipeline_execution,
            "DescribeProcessingJob": self.describe_processing_job,
            "DescribeTrainingJob": self.describe_training_job,
            "DescribeTransformJob": self.describe_transform_job,
        }

    def install(self, router: LiveRouter) -> LiveSageMaker:
        """Start answering through ``router`` (the middleware in front of the server's moto)."""
        router.live = self
        return self

    def close(self) -> None:
        """Stop the running executions and the event worker."""
        self.manager.close()
        self.events.close()

    # Operations --------------------------------------------------------------------------------------
    def start_pipeline_execution(self, request: dict[str, Any]) -> dict[str, Any]:
        name = _pipeline_name(request.get("PipelineName"))
        token = request.get("ClientRequestToken")
        known = self.manager.token_arn(token)
        if known:
            return {"PipelineExecutionArn": known}  # the same token starts nothing new
        sm = self.aws.client("sagemaker")
        try:
            pipeline = sm.describe_pipeline(PipelineName=name)
        except ClientError as exc:
            raise _client_error(exc) from None
        parameters = {str(p["Name"]): str(p["Value"]) for p in request.get("PipelineParameters") or []}
        doc = self.manager.prepare(str(pipeline.get("PipelineDefinition") or ""), parameters)
        arguments: dict[str, Any] = {"PipelineName": name}
        for key in ("ClientRequestToken", "PipelineExecutionDisplayName", "PipelineExecutionDescription"):
            if request.get(key):
                arguments[key] = request[key]
        try:
            arn = str(sm.start_pipeline_execution(**arguments)["PipelineExecutionArn"])
        except ClientError as exc:
            raise _client_error(exc) from None
        found = self.runtime.pipeline_template(name)
        self.manager.start(
            doc=doc,
            parameters=parameters,
            pipeline_name=name,
            pipeline_arn=str(pipeline["PipelineArn"]),
            execution_arn=arn,
            token=token,
            display_name=request.get("PipelineExecutionDisplayName"),
            description=request.get("PipelineExecutionDescription"),
            tags={"team": found[0], "template": found[1]} if found else None,
        )
        return {"PipelineExecutionArn": arn}

    def describe_pipeline_execution(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = self.manager.describe(str(request["PipelineExecutionArn"]))
        return shape("DescribePipelineExecution", answer)

    def list_pipeline_executions(self, request: dict[str, Any]) -> dict[str, Any]:
        name = _pipeline_name(request.get("PipelineName"))
        try:
            self.aws.client("sagemaker").describe_pipeline(PipelineName=name)
        except ClientError as exc:
            raise _client_error(exc) from None
        ascending = request.get("SortOrder") == "Ascending"
        summaries = self.manager.list_executions(name, ascending=ascending)
        return shape("ListPipelineExecutions", _page(summaries, request, "PipelineExecutionSummaries"))

    def list_pipeline_execution_steps(self, request: dict[str, Any]) -> dict[str, Any]:
        arn = str(request["PipelineExecutionArn"])
        steps = self.manager.list_steps(arn, ascending=request.get("SortOrder") == "Ascending")
        return shape("ListPipelineExecutionSteps", _page(steps, request, "PipelineExecutionSteps"))

    def list_pipeline_parameters_for_execution(self, request: dict[str, Any]) -> dict[str, Any]:
        arn = str(request["PipelineExecutionArn"])
        record = self.manager._stored(arn)
        params = [{"Name": k, "Value": str(v)} for k, v in (record.get("Parameters") or {}).items()]
        return shape("ListPipelineParametersForExecution", _page(params, request, "PipelineParameters"))

    def stop_pipeline_execution(self, request: dict[str, Any]) -> dict[str, Any]:
        arn = str(request["PipelineExecutionArn"])
        self.manager.stop(arn)
        return {"PipelineExecutionArn": arn}

    def describe_processing_job(self, request: dict[str, Any]) -> dict[str, Any] | None:
        found = self.manager.describe_job("ProcessingJob", str(request["ProcessingJobName"]))
        return shape("DescribeProcessingJob", found) if found is not None else None

    def describe_training_job(self, request: dict[str, Any]) -> dict[str, Any] | None:
        found = self.manager.describe_job("TrainingJob", str(request["TrainingJobName"]))
        return shape("DescribeTrainingJob", found) if found is not None else None

    def describe_transform_job(self, request: dict[str, Any]) -> dict[str, Any] | None:
        found = self.manager.describe_job("TransformJob", str(request["TransformJobName"]))
        return shape("DescribeTransformJob", found) if found is not None else None


def _page(items: list[dict[str, Any]], request: dict[str, Any], key: str) -> dict[str, Any]:
    """One page of ``items`` under ``key``: ``MaxResults`` of them from ``NextToken`` (an offset)."""
    try:
        start = int(request.get("NextToken") or 0)
    except ValueError:
        raise ApiError(VALIDATION, f"Invalid NextToken {request.get('NextToken')!r}") from None
    limit = int(request.get("MaxResults") or 0) or len(items) or 1
    page: dict[str, Any] = {key: items[start : start + limit]}
    if start + limit < len(items):
        page["NextToken"] = str(start + limit)
    return page
