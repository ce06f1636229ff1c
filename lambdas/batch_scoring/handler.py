"""Lambda entry point of batch scoring (thin: Powertools, config once per execution environment, logic).

Environment: see ``lambdas/README.md``. The configuration is read at import (cold start); if it is
invalid every invocation raises :class:`~lambdas.common.env.ConfigError` naming the variable. Clients
are created on the first invocation, so tests start moto before any client exists.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

from lambdas.common.entry import HandlerEntry

from .config import ScoringConfig
from .logic import ScoringRuntime

logger = Logger(service="flywheel-batch-scoring")
tracer = Tracer(service="flywheel-batch-scoring")
metrics = Metrics(namespace="Flywheel", service="flywheel-batch-scoring")

_entry: HandlerEntry[ScoringConfig, ScoringRuntime] = HandlerEntry(
    parse=ScoringConfig.from_environ, build=ScoringRuntime, logger=logger, metrics=metrics
)
configure = _entry.configure
runtime = _entry.runtime

configure()


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """The schedule → scoring runs; a finished run → its metrics (see :mod:`lambdas.batch_scoring.logic`)."""
    return runtime().handle(event, context)
