"""Translate validated environment config into CDK values (one place, so stacks stay declarative)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs

from config.models import LOG_RETENTION_DAYS, EnvironmentConfig

# RetentionDays members are declared in the same ascending order as CloudWatch's allowed values.
_RETENTION = dict(zip(LOG_RETENTION_DAYS, list(logs.RetentionDays)[: len(LOG_RETENTION_DAYS)], strict=True))


def removal_policy(env: EnvironmentConfig) -> RemovalPolicy:
    """Production and environments with ``retain_data`` keep stateful resources when a stack is deleted."""
    return RemovalPolicy.RETAIN if env.retain_data or env.is_production else RemovalPolicy.DESTROY


def log_retention(env: EnvironmentConfig) -> logs.RetentionDays:
    """The environment's CloudWatch Logs retention as the CDK enum."""
    return _RETENTION[env.log_retention_days]
