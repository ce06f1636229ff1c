"""The one seam for lifecycle events: data arrival → pipeline, model approval → deployment.

The functions here take the real EventBridge event shapes and a :class:`LifecycleContext` (the teams,
boto3 clients and the :class:`LifecycleActions` that do the work), so the same code serves the local
runtime (called in-process, actions backed by the local executor and state) and the future Lambda
handlers (a thin ``handler.py`` builds the context with real clients and calls :func:`dispatch`).
Nothing here imports ``flywheel``: a Lambda package ships ``lambdas/`` and ``naming/`` only.

Modules (everything public is re-exported here; import from ``lambdas.lifecycle``):

* :mod:`.events` — the event shapes: typed parsing (:func:`parse_object_created_event`,
  :func:`parse_model_package_state_change_event`), :class:`LifecycleEventError`, the builders the local
  runtime sends (moto emits no events).
* :mod:`.ports` — what the logic needs from its runtime: :class:`TeamTarget`, :class:`LifecycleContext`,
  the :class:`LifecycleActions` and :class:`IdempotencyStore` protocols.
* :mod:`.registry` — reads of the model registry and evaluation reports (champion metric).
* :mod:`.arrival` — :func:`on_data_arrival` (S3 ``Object Created`` → idempotent pipeline start).
* :mod:`.approval` — :func:`on_model_package_state_change` (``Approved`` deploys; ``Rejected`` of the
  deployed package rolls back or undeploys; ``PendingManualApproval`` changes nothing).
* :mod:`.routing` — :func:`dispatch` (source + detail-type → handler).

A malformed or foreign event raises :class:`LifecycleEventError` (a ValueError) naming the problem,
before any side effect.
"""

from __future__ import annotations

from .approval import DeploymentResult, on_model_package_state_change, parse_model_package_state_change
from .arrival import DATA_SUFFIXES, ArrivalResult, _claim_key, champion_model_uri, on_data_arrival, parse_object_created
from .events import (
    APPROVAL_STATUSES,
    MAX_KEY_BYTES,
    MODEL_PACKAGE_STATE_CHANGE,
    MODEL_PROMOTION_APPROVED,
    OBJECT_CREATED,
    PACKAGE_ARN,
    PROMOTION_SOURCE,
    S3_SOURCE,
    SAGEMAKER_SOURCE,
    LifecycleEventError,
    ModelPackageStateChange,
    ModelPromotion,
    ObjectCreated,
    check_object_key,
    model_package_state_change_event,
    object_created_event,
    parse_model_package_state_change_event,
    parse_model_promotion_event,
    parse_object_created_event,
)
from .ports import IdempotencyStore, LifecycleActions, LifecycleContext, TeamTarget
from .registry import (
    NO_CHAMPION,
    Champion,
    approved_packages,
    champion,
    champion_metric,
    evaluation_uri,
    model_data_url,
    read_s3_json,
)
from .routing import HANDLERS, dispatch

#: The versioned model-package ARN pattern (kept under its former private name for existing callers).
_PACKAGE_ARN = PACKAGE_ARN

__all__ = [
    "APPROVAL_STATUSES",
    "DATA_SUFFIXES",
    "HANDLERS",
    "MAX_KEY_BYTES",
    "MODEL_PACKAGE_STATE_CHANGE",
    "MODEL_PROMOTION_APPROVED",
    "NO_CHAMPION",
    "OBJECT_CREATED",
    "PACKAGE_ARN",
    "PROMOTION_SOURCE",
    "S3_SOURCE",
    "SAGEMAKER_SOURCE",
    "_PACKAGE_ARN",
    "ArrivalResult",
    "Champion",
    "DeploymentResult",
    "IdempotencyStore",
    "LifecycleActions",
    "LifecycleContext",
    "LifecycleEventError",
    "ModelPackageStateChange",
    "ModelPromotion",
    "ObjectCreated",
    "TeamTarget",
    "_claim_key",
    "approved_packages",
    "champion",
    "champion_metric",
    "champion_model_uri",
    "check_object_key",
    "dispatch",
    "evaluation_uri",
    "model_data_url",
    "model_package_state_change_event",
    "object_created_event",
    "on_data_arrival",
    "on_model_package_state_change",
    "parse_model_package_state_change",
    "parse_model_package_state_change_event",
    "parse_model_promotion_event",
    "parse_object_created",
    "parse_object_created_event",
    "read_s3_json",
]
