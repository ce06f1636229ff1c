"""The batch-scoring Lambda's settings, from its environment (validated once, at cold start)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lambdas.common.env import (
    ACCOUNT_ID,
    BUCKET_NAME,
    ROLE_ARN,
    SAGEMAKER_NAME,
    SECURITY_GROUP,
    SUBNET,
    TABLE_NAME,
    TEAM_NAME,
    Env,
)


@dataclass(frozen=True)
class ScoringConfig:
    """What the batch-scoring Lambda needs to know (one function per team and scoring pipeline)."""

    team: str
    account_id: str
    group_name: str
    pipeline_name: str
    raw_bucket: str
    reports_bucket: str
    model_role_arn: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    idempotency_table: str
    claim_ttl_days: int
    #: A batch folder is scored once this object is in it (empty: once it holds anything).
    complete_marker: str | None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ScoringConfig:
        """The settings in ``environ``; ConfigError naming the first bad variable."""
        env = Env(environ)
        return cls(
            team=env.text("TEAM", pattern=TEAM_NAME),
            account_id=env.text("ACCOUNT_ID", pattern=ACCOUNT_ID),
            group_name=env.text("MODEL_PACKAGE_GROUP", pattern=SAGEMAKER_NAME),
            pipeline_name=env.text("PIPELINE_NAME", pattern=SAGEMAKER_NAME),
            raw_bucket=env.text("RAW_BUCKET", pattern=BUCKET_NAME),
            reports_bucket=env.text("REPORTS_BUCKET", pattern=BUCKET_NAME),
            model_role_arn=env.text("MODEL_ROLE_ARN", pattern=ROLE_ARN),
            subnet_ids=env.names("SUBNET_IDS", pattern=SUBNET, required=True),
            security_group_ids=env.names("SECURITY_GROUP_IDS", pattern=SECURITY_GROUP, required=True),
            idempotency_table=env.text("IDEMPOTENCY_TABLE", pattern=TABLE_NAME),
            claim_ttl_days=env.integer("CLAIM_TTL_DAYS", default=365, low=1, high=3650),
            complete_marker=env.batch_marker(),
        )
