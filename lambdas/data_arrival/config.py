"""The data-arrival Lambda's settings, from its environment (validated once, at cold start)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lambdas.common.env import (
    ACCOUNT_ID,
    BUCKET_NAME,
    SAGEMAKER_NAME,
    TABLE_NAME,
    TEAM_NAME,
    Env,
)


@dataclass(frozen=True)
class ArrivalConfig:
    """What the data-arrival Lambda needs to know (one function per team)."""

    team: str
    raw_bucket: str
    pipeline_name: str
    group_name: str
    account_id: str
    idempotency_table: str
    idempotency_ttl_seconds: int
    claim_ttl_days: int
    #: None: the first data file of a batch folder starts the run (the local runtime's rule).
    complete_marker: str | None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ArrivalConfig:
        """The settings in ``environ``; ConfigError naming the first bad variable."""
        env = Env(environ)
        return cls(
            team=env.text("TEAM", pattern=TEAM_NAME),
            raw_bucket=env.text("RAW_BUCKET", pattern=BUCKET_NAME),
            pipeline_name=env.text("PIPELINE_NAME", pattern=SAGEMAKER_NAME),
            group_name=env.text("MODEL_PACKAGE_GROUP", pattern=SAGEMAKER_NAME),
            account_id=env.text("ACCOUNT_ID", pattern=ACCOUNT_ID),
            idempotency_table=env.text("IDEMPOTENCY_TABLE", pattern=TABLE_NAME),
            idempotency_ttl_seconds=env.integer("IDEMPOTENCY_TTL_SECONDS", default=86_400, low=300, high=2_592_000),
            claim_ttl_days=env.integer("CLAIM_TTL_DAYS", default=365, low=1, high=3650),
            complete_marker=env.batch_marker(),
        )
