"""The deploy Lambda's settings, from its environment (validated once, at cold start)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from lambdas.common.env import (
    ACCOUNT_ID,
    BUCKET_NAME,
    ROLE_ARN,
    SAGEMAKER_NAME,
    SECURITY_GROUP,
    SUBNET,
    TABLE_NAME,
    TEAM_NAME,
    ConfigError,
    Env,
)

DEPLOY_TARGETS: Final = ("realtime", "serverless", "batch")
CANARY_SIZE_TYPES: Final = ("CAPACITY_PERCENT", "INSTANCE_COUNT")
KMS_KEY: Final = re.compile(r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[\w/-]+|[0-9a-f-]{36}|alias/[\w/-]+)$")
ALARM_NAME: Final = re.compile(r"^[^\x00-\x1f,]{1,255}$")
INSTANCE_TYPE: Final = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")


@dataclass(frozen=True)
class DeployConfig:
    """What the deploy Lambda needs to know (one function per team and environment)."""

    team: str
    group_name: str
    endpoint_name: str
    account_id: str
    deploy_target: str
    execution_role_arn: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    volume_kms_key_id: str
    capture_bucket: str
    capture_kms_key_id: str
    capture_sampling_percent: int
    instance_type: str
    min_instances: int
    canary_size_type: str
    canary_size: int
    bake_seconds: int
    termination_wait_seconds: int
    max_execution_seconds: int
    rollback_alarms: tuple[str, ...]
    serverless_memory_mb: int
    serverless_max_concurrency: int
    idempotency_table: str
    idempotency_ttl_seconds: int
    #: Promotion (``Model Promotion Approved``): the accounts and the group a package may come from; no
    #: account (the default) refuses every promotion event.
    source_accounts: tuple[str, ...] = ()
    source_group_name: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> DeployConfig:
        """The settings in ``environ``; ConfigError naming the first bad variable."""
        env = Env(environ)
        target = env.choice("DEPLOY_TARGET", DEPLOY_TARGETS, default="realtime")
        in_vpc = target != "serverless"  # serverless endpoints take no VPC config (AWS feature exclusions)
        realtime = target == "realtime"
        min_instances = env.integer("MIN_INSTANCES", default=1, low=1, high=10)
        canary_type = env.choice("CANARY_SIZE_TYPE", CANARY_SIZE_TYPES, default="CAPACITY_PERCENT")
        if canary_type == "CAPACITY_PERCENT":
            canary = env.integer("CANARY_SIZE", default=10, low=1, high=50)
        else:
            canary = env.integer("CANARY_SIZE", default=1, low=1, high=max(1, min_instances // 2))
        bake = env.integer("BAKE_SECONDS", default=600, low=0, high=3600)
        termination = env.integer("TERMINATION_WAIT_SECONDS", default=300, low=0, high=3600)
        maximum = env.integer("MAX_EXECUTION_SECONDS", default=3600, low=600, high=28_800)
        if bake + termination >= maximum:
            raise ConfigError(
                f"environment variable MAX_EXECUTION_SECONDS={maximum} must exceed BAKE_SECONDS + "
                f"TERMINATION_WAIT_SECONDS ({bake + termination}) or every rollout times out"
            )
        return cls(
            team=env.text("TEAM", pattern=TEAM_NAME),
            group_name=env.text("MODEL_PACKAGE_GROUP", pattern=SAGEMAKER_NAME),
            endpoint_name=env.text("ENDPOINT_NAME", pattern=SAGEMAKER_NAME),
            account_id=env.text("ACCOUNT_ID", pattern=ACCOUNT_ID),
            deploy_target=target,
            execution_role_arn=env.text("MODEL_EXECUTION_ROLE_ARN", pattern=ROLE_ARN),
            subnet_ids=env.names("SUBNET_IDS", pattern=SUBNET, required=in_vpc),
            security_group_ids=env.names("SECURITY_GROUP_IDS", pattern=SECURITY_GROUP, required=in_vpc),
            volume_kms_key_id=env.text("VOLUME_KMS_KEY_ID", pattern=KMS_KEY),
            capture_bucket=env.text("CAPTURE_BUCKET", pattern=BUCKET_NAME) if realtime else "",
            capture_kms_key_id=env.text("CAPTURE_KMS_KEY_ID", pattern=KMS_KEY) if realtime else "",
            capture_sampling_percent=env.integer("CAPTURE_SAMPLING_PERCENT", default=100, low=1, high=100),
            instance_type=env.text("INSTANCE_TYPE", default="ml.m5.large", pattern=INSTANCE_TYPE),
            min_instances=min_instances,
            canary_size_type=canary_type,
            canary_size=canary,
            bake_seconds=bake,
            termination_wait_seconds=termination,
            max_execution_seconds=maximum,
            rollback_alarms=env.names("ROLLBACK_ALARMS", pattern=ALARM_NAME, required=realtime, most=10),
            serverless_memory_mb=env.integer("SERVERLESS_MEMORY_MB", default=2048, low=1024, high=6144, step=1024),
            serverless_max_concurrency=env.integer("SERVERLESS_MAX_CONCURRENCY", default=5, low=1, high=200),
            idempotency_table=env.text("IDEMPOTENCY_TABLE", pattern=TABLE_NAME),
            idempotency_ttl_seconds=env.integer("IDEMPOTENCY_TTL_SECONDS", default=3600, low=300, high=2_592_000),
            source_accounts=env.names("SOURCE_ACCOUNTS", pattern=ACCOUNT_ID, required=False, most=5),
            source_group_name=env.text(
                "SOURCE_MODEL_PACKAGE_GROUP", default=env.text("MODEL_PACKAGE_GROUP"), pattern=SAGEMAKER_NAME
            ),
        )


def rollout_environ(
    *,
    canary_size_type: str,
    canary_size: int,
    bake_seconds: int,
    termination_wait_seconds: int,
    max_execution_seconds: int,
    serverless_memory_mb: int,
    serverless_max_concurrency: int,
) -> dict[str, str]:
    """The deploy Lambda's rollout variables for a team's deployment settings (``teams[].deployment``).

    One place for the variable names: the stacks set them on the function, the local runtime builds its
    :class:`DeployConfig` from them (so the local canary is the deployed one); :meth:`DeployConfig.from_environ`
    validates them.
    """
    return {
        "CANARY_SIZE_TYPE": canary_size_type,
        "CANARY_SIZE": str(canary_size),
        "BAKE_SECONDS": str(bake_seconds),
        "TERMINATION_WAIT_SECONDS": str(termination_wait_seconds),
        "MAX_EXECUTION_SECONDS": str(max_execution_seconds),
        "SERVERLESS_MEMORY_MB": str(serverless_memory_mb),
        "SERVERLESS_MAX_CONCURRENCY": str(serverless_max_concurrency),
    }
