"""boto3 clients, built on first use (so moto's mocks start first) with bounded standard-mode retries.

Throttling and transient errors are retried by botocore (``standard`` mode: exponential backoff with
jitter, a retry quota), at most :data:`MAX_ATTEMPTS` attempts in all; what still fails is raised.
"""

from __future__ import annotations

from typing import Any, Final

import boto3
from botocore.config import Config

MAX_ATTEMPTS: Final = 5
RETRY_CONFIG: Final = Config(
    retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},  # total, including the first
    connect_timeout=5,
    read_timeout=30,
)


class Clients:
    """One client per service for the life of the execution environment."""

    def __init__(self, region: str | None = None) -> None:
        self._region = region
        self._clients: dict[str, Any] = {}
        self._session: Any = None

    def client(self, service: str) -> Any:
        """The (cached) client of ``service``."""
        if service not in self._clients:
            if self._session is None:  # one session: botocore loads each service model once
                self._session = boto3.session.Session(region_name=self._region)
            self._clients[service] = self._session.client(service, config=RETRY_CONFIG)
        return self._clients[service]
