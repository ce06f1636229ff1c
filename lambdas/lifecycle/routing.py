"""Route an EventBridge event to its lifecycle handler (what a Lambda handler calls)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from .approval import DeploymentResult, on_model_package_state_change
from .arrival import ArrivalResult, on_data_arrival
from .events import MODEL_PACKAGE_STATE_CHANGE, OBJECT_CREATED, S3_SOURCE, SAGEMAKER_SOURCE, LifecycleEventError
from .ports import LifecycleContext

HANDLERS: Final[dict[tuple[str, str], Callable[[Any, LifecycleContext], ArrivalResult | DeploymentResult]]] = {
    (S3_SOURCE, OBJECT_CREATED): on_data_arrival,
    (SAGEMAKER_SOURCE, MODEL_PACKAGE_STATE_CHANGE): on_model_package_state_change,
}


def dispatch(event: Any, context: LifecycleContext) -> ArrivalResult | DeploymentResult:
    """Route an EventBridge event to its handler; LifecycleEventError for an event nobody handles."""
    if not isinstance(event, Mapping) or not event:
        raise LifecycleEventError("the event is empty or not an object")
    handler = HANDLERS.get((str(event.get("source")), str(event.get("detail-type"))))
    if handler is None:
        raise LifecycleEventError(
            f"no lifecycle handler for source {event.get('source')!r} / detail-type {event.get('detail-type')!r}"
        )
    return handler(event, context)
