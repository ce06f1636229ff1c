"""What every handler module does at cold start: read its configuration once, build its runtime lazily.

A handler module keeps its Powertools ``Logger``/``Tracer``/``Metrics`` at module level (the decorators
need them) and delegates the rest here, so both handlers behave alike: an invalid configuration is
kept and raised (naming the variable) on every invocation instead of failing the import, clients are
built on the first invocation (tests start moto first), and every metric carries the team dimension
that the team's CloudWatch alarms select on (``service`` + ``team``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from naming import TEAM_DIMENSION

from .env import ConfigError

#: What the handlers' Tracer patches: botocore, i.e. every AWS call (boto3 uses it). Without the list
#: Powertools patches every library the X-Ray SDK supports *that is importable*, importing each of them at
#: cold start (with SQLAlchemy on the path: ~190 ms); the handlers call AWS through botocore only.
TRACED_MODULES: tuple[str, ...] = ("botocore",)


class TeamConfig(Protocol):
    """A handler configuration: at least the team it serves."""

    @property
    def team(self) -> str: ...


C = TypeVar("C", bound=TeamConfig)
R = TypeVar("R")


class HandlerEntry(Generic[C, R]):
    """``configure()`` (at import; tests call it again) and ``runtime()`` of one handler module."""

    def __init__(
        self,
        *,
        parse: Callable[[Mapping[str, str]], C],
        build: Callable[[C, Any, Any], R],
        logger: Any,
        metrics: Any,
    ) -> None:
        self._parse = parse
        self._build = build
        self._logger = logger
        self._metrics = metrics
        self._config: C | ConfigError = ConfigError("not configured")
        self._runtime: R | None = None

    def configure(self, environ: Mapping[str, str] | None = None) -> None:
        """(Re)read the configuration from ``environ`` (default: the process environment)."""
        try:
            self._config = self._parse(os.environ if environ is None else environ)
        except ConfigError as exc:
            self._config = exc
        self._runtime = None
        # Powertools keeps default dimensions in shared state: reset them, so an invalid config emits
        # no stale team.
        self._metrics.clear_default_dimensions()
        self._metrics.clear_metrics()
        if not isinstance(self._config, ConfigError):
            self._metrics.set_default_dimensions(**{TEAM_DIMENSION: self._config.team})

    def runtime(self) -> R:
        """The execution environment's runtime (built on first use); ConfigError if misconfigured."""
        if isinstance(self._config, ConfigError):
            self._logger.error("invalid configuration", extra={"error": str(self._config)})
            raise ConfigError(str(self._config))
        if self._runtime is None:
            self._runtime = self._build(self._config, self._logger, self._metrics)
        return self._runtime
