"""Lambda entry point of data arrival (thin: Powertools, config once per execution environment, logic).

Environment: see ``lambdas/README.md``. The configuration is read at import (cold start); if it is
invalid every invocation raises :class:`~lambdas.common.env.ConfigError` naming the variable. Clients
are created on the first invocation, so tests start moto before any client exists.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

from lambdas.common.entry import TRACED_MODULES, HandlerEntry

from .config import ArrivalConfig
from .logic import ArrivalRuntime

logger = Logger(service="flywheel-data-arrival")
tracer = Tracer(service="flywheel-data-arrival", patch_modules=TRACED_MODULES)
metrics = Metrics(namespace="Flywheel", service="flywheel-data-arrival")

_entry: HandlerEntry[ArrivalConfig, ArrivalRuntime] = HandlerEntry(
    parse=ArrivalConfig.from_environ, build=ArrivalRuntime, logger=logger, metrics=metrics
)
configure = _entry.configure
runtime = _entry.runtime

configure()


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """EventBridge ``Object Created`` → the team's pipeline (see :mod:`lambdas.data_arrival.logic`)."""
    return runtime().handle(event, context)
