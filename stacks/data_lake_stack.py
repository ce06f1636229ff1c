"""Data lake (stateful): zoned buckets with their own keys, access logs and Glue databases."""

from __future__ import annotations

from aws_cdk import Stack
from constructs import Construct

from config.models import EnvironmentConfig
from stacks.components.data_lake import DataLake
from stacks.settings import removal_policy


class DataLakeStack(Stack):
    """Exposes ``lake`` (buckets/keys per zone, access-log bucket, Glue databases)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, environment: EnvironmentConfig, teams: tuple[str, ...] = ()
    ) -> None:
        super().__init__(scope, construct_id)
        retention = environment.retention
        self.lake = DataLake(
            self,
            "Lake",
            env_name=environment.name,
            removal_policy=removal_policy(environment),
            object_lock_days=environment.object_lock_days,
            noncurrent_days=retention.noncurrent_days,
            raw_expiry_days=retention.raw_days,
            quarantine_expiry_days=retention.quarantine_days,
            teams=teams,
        )
