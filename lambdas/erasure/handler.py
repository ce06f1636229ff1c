"""Lambda entry point of erasure (thin: Powertools, config once per execution environment, logic).

Environment: see ``lambdas/README.md``. The configuration is read at import (cold start); if it is
invalid every invocation raises :class:`~lambdas.common.env.ConfigError` naming the variable. Clients
are created on the first invocation, so tests start moto before any client exists.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

from lambdas.common.entry import HandlerEntry

from .config import ErasureConfig
from .service import ErasureRuntime

logger = Logger(service="flywheel-erasure")
tracer = Tracer(service="flywheel-erasure")
metrics = Metrics(namespace="Flywheel", service="flywheel-erasure")

_entry: HandlerEntry[ErasureConfig, ErasureRuntime] = HandlerEntry(
    parse=ErasureConfig.from_environ, build=ErasureRuntime, logger=logger, metrics=metrics
)
configure = _entry.configure
runtime = _entry.runtime

configure()


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """EventBridge ``Object Created`` of an erasure request → erase the subject (see :mod:`.service`)."""
    return runtime().handle(event, context)
