"""A team's endpoint: its deploy settings, its deployment record, and serving it locally.

:func:`start_endpoint` serves the deployed package behind a :class:`flywheel.rollout.EndpointDriver`
that follows the deployment record (canary rollouts baked, then promoted or rolled back) and captures
requests to S3 or the state dir. Heavy modules (serving, rollout) are imported on use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import naming
from flywheel.actions import now
from flywheel.embedded import ACCOUNT, NAMES, EmbeddedAws, TeamResources
from flywheel.errors import NotDeployedError, PortInUseError, RemoteBindError
from flywheel.state import StateStore


def deploy_config(team: str, config: Any, res: TeamResources, overrides: Mapping[str, str]) -> Any:
    """The team's :class:`lambdas.deploy.config.DeployConfig` — the settings type the deploy handler
    validates — filled from its config (``deploy_target``, ``instances.endpoint``, ``deployment``: the
    deployed canary share, the bake capped at 5 s), its resources and ``overrides`` (deploy-Lambda
    variables)."""
    from flywheel.rollout import deploy_config as rollout_deploy_config

    return rollout_deploy_config(
        team=team,
        group=res.group_name,
        endpoint=NAMES.endpoint(team),
        account=ACCOUNT,
        deploy_target=config.deploy_target,
        instance_type=config.instances.endpoint,
        min_instances=1,
        volume_key=res.platform.keys["artifacts"],
        capture_bucket=res.platform.buckets["capture"],
        capture_key=res.platform.keys["capture"],
        overrides=overrides,
        deployment=getattr(config, "deployment", None),
    )


def rollout_settings(team: str, config: Any, res: TeamResources, overrides: Mapping[str, str]) -> Any:
    """The team's canary settings (:class:`flywheel.rollout.RolloutSettings`), from the
    ``DeploymentConfig`` the deploy Lambda would send; None for serverless and batch teams."""
    from flywheel.rollout import RolloutSettings

    return RolloutSettings.from_deploy_config(deploy_config(team, config, res, overrides))


def deployment(state: StateStore, team: str) -> dict[str, Any]:
    """The team's deployment record; NotDeployedError with the fix otherwise."""
    record = state.deployment(team)
    if not record or not Path(str(record.get("LocalModel"))).is_file():
        raise NotDeployedError(
            f"team {team} has no deployed model: approve a package first (`flywheel approve {team}:<version>`)"
        )
    return record


def start_endpoint(
    state: StateStore,
    aws: EmbeddedAws,
    team: str,
    *,
    record_of: Callable[[], dict[str, Any]],
    resources_of: Callable[[], TeamResources],
    host: str = "127.0.0.1",
    port: int = 0,
    capture_to_s3: bool = True,
    allow_remote: bool = False,
    on_rollout: Callable[[str, dict[str, Any]], None] | None = None,
) -> tuple[Any, dict[str, Any], str]:
    """Serve the team's deployed package; returns ``(server, deployment record, capture location)``.

    ``record_of`` gives the deployment record (checked after the host), ``resources_of`` the team's
    resources (needed for capture to S3 only). See :meth:`flywheel.runtime.LocalRuntime.start_endpoint`."""
    from flywheel.serving import _is_loopback

    if not _is_loopback(host) and not allow_remote:
        raise RemoteBindError(
            f"refusing to serve team {team} on {host}: it is reachable from other machines and the endpoint "
            "has no authentication; keep --host 127.0.0.1, or pass --allow-remote if you mean it"
        )
    from flywheel import serving
    from flywheel.actions import end_rollout
    from flywheel.capture import LocalCaptureSink, S3CaptureSink
    from flywheel.rollout import EndpointDriver

    record = record_of()

    def load(fields: Mapping[str, Any]) -> Any:
        model = serving.load_model(Path(str(fields["LocalModel"])))
        return serving.Target(model, fields.get("ModelPackageVersion"), str(fields["ModelPackageArn"]))

    def record_outcome(decision: dict[str, Any]) -> None:
        outcome, reason, rollout_id = decision["outcome"], decision["reason"], decision["rollout_id"]
        state.update_deployment(
            team, lambda current: end_rollout(current, outcome, reason, decision, rollout_id=rollout_id)
        )

    driver = EndpointDriver(lambda: state.deployment(team), load, record_outcome, on_rollout)
    router = driver.start_router(record)
    endpoint = NAMES.endpoint(team)
    if capture_to_s3:
        res = resources_of()
        bucket = res.platform.buckets["capture"]
        capture: Any = S3CaptureSink(
            aws.client("s3"), bucket, naming.CAPTURE, kms_key_id=res.platform.keys["capture"], max_seconds=2.0
        )
        # SageMaker's layout under the capture destination: <destination>/<endpoint>/<variant>/yyyy/...
        where = naming.s3_uri(bucket, naming.capture_prefix(endpoint))
    else:
        folder = state.root / "capture"
        capture = LocalCaptureSink(folder)
        where = str(folder / endpoint)
    try:
        server = serving.serve(router, host, port, capture=capture, endpoint_name=endpoint, allow_remote=allow_remote)
    except BaseException as exc:
        driver.close()
        capture.close()
        if isinstance(exc, PortInUseError):
            raise PortInUseError(port, f"the {team} endpoint", host) from exc
        raise
    driver.attach(server)
    state.save_server(
        f"endpoint-{team}",
        {
            "url": server.url,
            "pid": os.getpid(),
            "team": team,
            "ModelPackageArn": record["ModelPackageArn"],
            "ModelPackageVersion": record["ModelPackageVersion"],
            "capture": where,
            "started": now(),
        },
    )
    return server, record, where
