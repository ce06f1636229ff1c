"""Environment configuration, validated once at cold start; every refusal names the variable.

Pydantic is not in the Lambda runtime, so a handler's settings are a frozen dataclass built with the
small readers here. :class:`ConfigError` is raised (and logged by the handler) on every invocation
while the configuration is invalid, so a misconfigured function fails loudly instead of half-working.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

ACCOUNT_ID: Final = re.compile(r"^\d{12}$")
#: SageMaker resource names (pipelines, groups, endpoints, models): ``[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``.
SAGEMAKER_NAME: Final = re.compile(r"^[A-Za-z0-9](?:-*[A-Za-z0-9]){0,62}$")
BUCKET_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
TEAM_NAME: Final = re.compile(r"^[a-z][a-z0-9-]{1,19}[a-z0-9]$")
TABLE_NAME: Final = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
ROLE_ARN: Final = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
SUBNET: Final = re.compile(r"^subnet-[0-9a-f]{8,17}$")
SECURITY_GROUP: Final = re.compile(r"^sg-[0-9a-f]{8,17}$")
#: The object that completes a batch folder (data arrival and batch scoring; lambdas/README.md).
DEFAULT_BATCH_MARKER: Final = "_SUCCESS"
_MARKER: Final = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class ConfigError(RuntimeError):
    """An environment variable is missing or invalid; the message names it and says what is expected."""


class Env:
    """Typed reads of an environment mapping (``os.environ`` in Lambda, a dict in tests)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str, *, default: str | None = None, pattern: re.Pattern[str] | None = None) -> str:
        """A non-empty string (``default`` if unset); ConfigError if missing or not matching ``pattern``."""
        value = self._environ.get(name, "").strip()
        if not value:
            if default is None:
                raise ConfigError(f"environment variable {name} is required")
            value = default
        if pattern is not None and not pattern.match(value):
            raise ConfigError(f"environment variable {name}={value!r} does not match {pattern.pattern}")
        return value

    def optional_text(self, name: str) -> str:
        """A string that may be empty."""
        return self._environ.get(name, "").strip()

    def integer(self, name: str, *, default: int, low: int, high: int, step: int = 1) -> int:
        """An integer in ``[low, high]`` (multiple of ``step`` when given), ``default`` if unset."""
        raw = self._environ.get(name, "").strip()
        if not raw:
            value = default
        else:
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"environment variable {name}={raw!r} is not an integer") from None
        if not low <= value <= high or value % step:
            steps = f" in steps of {step}" if step > 1 else ""
            raise ConfigError(f"environment variable {name}={value} must be between {low} and {high}{steps}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], *, default: str | None = None) -> str:
        """One of ``choices``."""
        value = self.text(name, default=default)
        if value not in choices:
            raise ConfigError(f"environment variable {name}={value!r} must be one of {', '.join(choices)}")
        return value

    def batch_marker(self, name: str = "BATCH_COMPLETE_MARKER") -> str | None:
        """The batch-complete marker's file name (default ``_SUCCESS``); None when set empty (any object)."""
        marker = self._environ.get(name, DEFAULT_BATCH_MARKER).strip()
        if marker and (not _MARKER.match(marker) or marker in (".", "..")):
            raise ConfigError(f"environment variable {name}={marker!r} must be a plain file name")
        return marker or None

    def names(self, name: str, *, pattern: re.Pattern[str], required: bool, most: int = 16) -> tuple[str, ...]:
        """A comma-separated list of names, each matching ``pattern`` (at least one if ``required``)."""
        items = tuple(part.strip() for part in self._environ.get(name, "").split(",") if part.strip())
        if required and not items:
            raise ConfigError(f"environment variable {name} is required (comma-separated)")
        if len(items) > most:
            raise ConfigError(f"environment variable {name} lists {len(items)} names; at most {most}")
        for item in items:
            if not pattern.match(item):
                raise ConfigError(f"environment variable {name}: {item!r} does not match {pattern.pattern}")
        return items
