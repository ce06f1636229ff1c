"""Audit (stateful): the CloudTrail trail with data events on every data-lake bucket."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from config.models import EnvironmentConfig
from stacks.components.audit_trail import AuditTrail
from stacks.components.data_lake import DataLake
from stacks.components.secure_bucket import ObjectLockMode
from stacks.settings import log_retention, removal_policy


class AuditStack(Stack):
    """Exposes ``audit`` (trail, its bucket and key). Separate so it can depend on both lake and keys."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: EnvironmentConfig,
        lake: DataLake,
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.audit = AuditTrail(
            self,
            "Audit",
            data_buckets=list(lake.buckets.values()),
            access_log_bucket=lake.access_logs,
            logs_key=logs_key,
            log_retention=log_retention(environment),
            removal_policy=removal_policy(environment),
            object_lock_days=environment.object_lock_days,
            # Production audit logs cannot be shortened or deleted by anyone, root included, until the
            # retention ends; elsewhere governance mode lets an administrator clean up test trails.
            object_lock_mode=ObjectLockMode.COMPLIANCE if environment.is_production else ObjectLockMode.GOVERNANCE,
            env_name=environment.name,
        )
