"""Lambda entry point of data arrival (thin: Powertools, config once per execution environment, logic).

Environment: see ``lambdas/README.md``. The configuration is read at import (cold start); if it is
invalid every invocation raises :class:`~lambdas.common.env.ConfigError` naming the variable. Clients
are created on the first invocation, so tests start moto before any client exists.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

from lambdas.common.env import ConfigError

from .config import ArrivalConfig
from .logic import ArrivalRuntime

logger = Logger(service="flywheel-data-arrival")
tracer = Tracer(service="flywheel-data-arrival")
metrics = Metrics(namespace="Flywheel", service="flywheel-data-arrival")

#: The dimension naming the team on every metric (with Powertools' ``service``).
TEAM_DIMENSION = "team"

_config: ArrivalConfig | ConfigError
_runtime: ArrivalRuntime | None = None


def configure(environ: Any = None) -> None:
    """(Re)read the configuration (at import; tests call it after setting the environment)."""
    global _config, _runtime
    try:
        _config = ArrivalConfig.from_environ(os.environ if environ is None else environ)
    except ConfigError as exc:
        _config = exc
    _runtime = None
    # Every metric carries the team (alarms are per team: dimensions `service` + `team`). Powertools keeps
    # default dimensions in shared state: reset them, so an invalid config emits no stale team.
    metrics.clear_default_dimensions()
    metrics.clear_metrics()
    if not isinstance(_config, ConfigError):
        metrics.set_default_dimensions(**{TEAM_DIMENSION: _config.team})


def runtime() -> ArrivalRuntime:
    """The execution environment's runtime (built on first use)."""
    global _runtime
    if isinstance(_config, ConfigError):
        logger.error("invalid configuration", extra={"error": str(_config)})
        raise ConfigError(str(_config))
    if _runtime is None:
        _runtime = ArrivalRuntime(_config, logger, metrics)
    return _runtime


configure()


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """EventBridge ``Object Created`` → the team's pipeline (see :mod:`lambdas.data_arrival.logic`)."""
    return runtime().handle(event, context)
