"""The event bridge of the live SageMaker: what S3 and SageMaker would put on EventBridge, delivered.

Two events, as the deployed rules route them, to the same lifecycle code the Lambdas run:

* an object created under a team's ``incoming/`` prefix (``PutObject``, ``CopyObject``,
  ``CompleteMultipartUpload`` from a client: ``aws s3 cp``, boto3) → its S3 ``Object Created`` event →
  the data-arrival handler (:func:`flywheel.landing.trigger`, the data-arrival Lambda's parameters: only
  a batch's ``_SUCCESS`` marker starts it) → a started run executes in the background
  (:meth:`flywheel.live.executions.ExecutionManager.start_team_run`);
* ``UpdateModelPackage`` with ``ModelApprovalStatus`` ``Approved``/``Rejected`` on a team's package → the
  ``SageMaker Model Package State Change`` event → the deploy handler
  (:func:`lambdas.lifecycle.on_model_package_state_change`, as ``flywheel approve`` sends it).

Events are delivered in order on one worker thread, after the request that caused them was answered
(EventBridge is asynchronous too); a handler's error is reported (``on_event``), never fatal.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flywheel import landing
from flywheel.embedded import ACCOUNT, NAMES
from flywheel.live.executions import ExecutionManager, execution_id_of
from lambdas import lifecycle

LOG = logging.getLogger(__name__)


@dataclass
class Delivery:
    """One delivered event: its kind (``object-created``, ``package-state-change``), what and what happened."""

    kind: str
    subject: str
    outcome: str
    execution_arn: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class EventBridge:
    """Delivers S3 and SageMaker events to a runtime's lifecycle handlers (see the module docstring)."""

    def __init__(
        self, runtime: Any, manager: ExecutionManager, on_event: Callable[[Delivery], None] | None = None
    ) -> None:
        self.runtime = runtime
        self.manager = manager
        self.on_event = on_event
        self.delivered: list[Delivery] = []
        self._barriers: dict[str, threading.Event] = {}
        self._queue: queue.Queue[tuple[str, str, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="flywheel-event-bridge", daemon=True)
        self._thread.start()

    # What the router calls ---------------------------------------------------------------------------
    def incoming_team(self, bucket: str, key: str) -> str | None:
        """The team whose ``incoming/`` prefix ``s3://bucket/key`` is under, or None."""
        for team in self.runtime.team_names:
            if bucket == NAMES.bucket("raw") and key.startswith(f"{team}/incoming/"):
                return str(team)
        return None

    def object_created(self, bucket: str, key: str) -> None:
        """Queue the ``Object Created`` event of ``s3://bucket/key`` (a team's incoming object)."""
        self._queue.put(("object-created", bucket, key))

    def team_of_group(self, group: str) -> str | None:
        return next((t for t in self.runtime.team_names if NAMES.model_package_group(t) == group), None)

    def package_state_changed(self, package_arn: str) -> None:
        """Queue the state-change event of a model package whose approval status was updated."""
        self._queue.put(("package-state-change", package_arn, ""))

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued event is delivered (tests, shutdown); whether it was in time."""
        done = threading.Event()
        self._queue.put(("barrier", "", str(id(done))))
        self._barriers[str(id(done))] = done
        return done.wait(timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    # Delivery ----------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            kind, subject, extra = item
            if kind == "barrier":
                self._barriers.pop(extra).set()
                continue
            try:
                delivery = self._object(subject, extra) if kind == "object-created" else self._package(subject)
            except Exception as exc:  # a handler's refusal or error: reported, the server carries on
                LOG.debug("event %s %s failed", kind, subject, exc_info=True)
                delivery = Delivery(kind, subject, f"error: {exc}")
            if delivery is None:
                continue
            self.delivered.append(delivery)
            if self.on_event is not None:
                self.on_event(delivery)

    def _object(self, bucket: str, key: str) -> Delivery:
        aws = self.runtime.aws
        event = landing.object_event(aws, bucket, key)
        result = landing.trigger(aws, event, self.runtime.lifecycle_context())
        subject = f"s3://{bucket}/{key}"
        if result.execution_arn is None or result.duplicate:
            why = "duplicate of a started batch" if result.duplicate else (result.skipped or "nothing started")
            return Delivery("object-created", subject, why, result.execution_arn)
        if self.runtime.state.pending_run(execution_id_of(result.execution_arn)) is not None:
            self.manager.start_team_run(result.execution_arn, self.runtime.execute)
        return Delivery(
            "object-created", subject, f"started team {result.team}'s pipeline", result.execution_arn, result.parameters
        )

    def _package(self, package_arn: str) -> Delivery | None:
        sm = self.runtime.aws.client("sagemaker")
        package = sm.describe_model_package(ModelPackageName=package_arn)
        team = self.team_of_group(str(package.get("ModelPackageGroupName")))
        status = str(package.get("ModelApprovalStatus"))
        if team is None or status not in ("Approved", "Rejected"):
            return None  # no team's deploy rule matches
        self.runtime.registry.snapshot(package_arn)
        event = lifecycle.model_package_state_change_event(package, region=self.runtime.aws.region, account=ACCOUNT)
        result = lifecycle.on_model_package_state_change(event, self.runtime.deploy_context())
        action = dict(getattr(self.runtime.actions, "last_action", {}) or {})
        return Delivery("package-state-change", package_arn, f"{status}: {action.get('action', result)}", None, action)
