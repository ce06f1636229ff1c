"""What the lifecycle logic needs from its runtime: the teams, the clients, the actions, an idempotency store.

The local runtime implements :class:`LifecycleActions` with its executor and state (and
:class:`IdempotencyStore` with ``flywheel.state.StateStore``); a Lambda handler implements them with
boto3 (``StartPipelineExecution``, endpoint updates) and DynamoDB. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import naming


@dataclass(frozen=True)
class TeamTarget:
    """What the lifecycle needs to know about one team."""

    team: str
    raw_bucket: str
    pipeline_name: str
    group_name: str

    @property
    def incoming_prefix(self) -> str:
        """``<team>/incoming/``: where the team's raw batches land."""
        return naming.incoming_prefix(self.team)


class IdempotencyStore(Protocol):
    """Claims of processed events (:class:`flywheel.state.StateStore`, or DynamoDB in a Lambda)."""

    def claim(self, key: str, record: dict[str, Any]) -> bool:
        """Claim ``key``; False if it was claimed before."""
        ...

    def claimed(self, key: str) -> dict[str, Any] | None:
        """The record of a claim, or None."""
        ...

    def update_claim(self, key: str, record: dict[str, Any]) -> None:
        """Replace the record of a claim."""
        ...

    def release(self, key: str) -> None:
        """Drop a claim so that a retry can act."""
        ...


class LifecycleActions(Protocol):
    """The side effects of lifecycle events, implemented per runtime."""

    def start_pipeline(self, target: TeamTarget, parameters: Mapping[str, str], client_token: str) -> str:
        """Start the team's pipeline; returns the execution ARN."""
        ...

    def deployed_package(self, target: TeamTarget) -> str | None:
        """ARN of the package the team's endpoint serves, or None."""
        ...

    def deploy(self, target: TeamTarget, package_arn: str) -> None:
        """Serve ``package_arn`` on the team's endpoint."""
        ...

    def undeploy(self, target: TeamTarget) -> None:
        """Take the team's endpoint out of service (no approved package left)."""
        ...


@dataclass
class LifecycleContext:
    """Everything the lifecycle functions use: teams, clients, actions, idempotency store.

    ``sagemaker`` and ``s3`` are boto3 clients (real, or moto's); ``account``, when set, is the only
    account whose events and packages are accepted.
    """

    teams: Mapping[str, TeamTarget]
    sagemaker: Any
    s3: Any
    actions: LifecycleActions
    store: IdempotencyStore
    account: str | None = None
