"""Committed EventBridge events, in the shapes AWS documents, and a loader for tests.

Each ``<name>.json`` here is one event as EventBridge delivers it (every field the AWS docs list for
it), with this project's names (raw bucket ``flywheel-local-raw``, team ``churn``, account
``123456789012``, region ``eu-west-1``):

* ``s3_object_created`` — S3 ``Object Created`` of ``churn/incoming/batch-1/churn.csv`` (PutObject,
  versioned bucket);
* ``s3_object_created_multipart`` — a multipart upload (CompleteMultipartUpload, no ``version-id``, a
  multipart ETag, requester an assumed role);
* ``sagemaker_model_package_state_change`` — ``Approved`` package version 1 of ``flywheel-local-churn``;
  ``..._rejected`` and ``..._pending`` (``PendingManualApproval``, as registered) of the same package;
* ``s3_object_created_marker`` — the ``_SUCCESS`` marker that completes ``churn/incoming/batch-1/``
  (size 0, the empty-object ETag), which starts the deployed data-arrival Lambda;
* ``sagemaker_endpoint_deployment_state_change`` — endpoint ``flywheel-local-churn`` back ``IN_SERVICE``
  (``detail.EndpointConfigName``: the config serving now; ``EndpointStatus`` upper snake case as the
  events spell it; ``ProductionVariants`` current/desired weights and counts; no pending deployment);
  ``..._baking`` — the same endpoint ``UPDATING`` during a canary rollout:
  ``PendingDeploymentSummary.EndpointConfigName`` is the config being rolled out and its variant's
  ``VariantStatus`` is ``Baking`` (the shape of the AWS documentation's blue/green canary example).
* ``flywheel_model_promotion_approved`` — the promotion event a person puts on production's default bus
  (``docs/runbooks/approve-and-promote.md``): ``detail.ModelPackageGroupName`` (this environment's team
  group, the rule's routing key), ``ModelPackageArn`` (a package of the source — dev — account
  ``111111111111``), ``ApprovedBy``, ``Reason``.

Parsers are tested against these files, not against the module's own event builders.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any, Final

EVENTS_DIR: Final = Path(__file__).resolve().parent


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


#: Override value that removes the field: ``load_event(name, **{"detail.object.etag": DELETE})``.
DELETE: Final = _Delete()


def event_names() -> list[str]:
    """The names of every committed event."""
    return sorted(path.stem for path in EVENTS_DIR.glob("*.json"))


@functools.cache
def _read(name: str) -> Any:
    path = EVENTS_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no event fixture {name!r}; fixtures: {', '.join(event_names())}")
    return json.loads(path.read_text(encoding="utf-8"))


def load_event(name: str, **overrides: Any) -> Any:
    """A fresh copy of the committed event ``name``, with ``overrides`` applied.

    Override keys are dotted paths into the event (``"detail.object.key"``, ``"detail-type"``; pass
    them as ``**{...}`` since they are not identifiers); the value replaces the field, or removes it
    when it is :data:`DELETE`. Every parent on a path must exist (a typo fails instead of silently
    testing nothing), and a removed field must exist.
    """
    event = copy.deepcopy(_read(name))
    for path, value in overrides.items():
        *parents, leaf = path.split(".")
        node = event
        for part in parents:
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"{name}: no field {part!r} on the path {path!r}")
            node = node[part]
        if not isinstance(node, dict):
            raise KeyError(f"{name}: {path!r} does not name a field of an object")
        if value is DELETE:
            if leaf not in node:
                raise KeyError(f"{name}: cannot delete missing field {path!r}")
            del node[leaf]
        else:
            node[leaf] = copy.deepcopy(value)
    return event
