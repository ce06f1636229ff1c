"""The erasure Lambda's settings, from its environment (validated once, at cold start)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from lambdas.common.env import ACCOUNT_ID, BUCKET_NAME, SAGEMAKER_NAME, TEAM_NAME, Env

COLUMN_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
KMS_KEY: Final = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")


@dataclass(frozen=True)
class ErasureConfig:
    """What the erasure Lambda needs to know (one function per team)."""

    team: str
    account_id: str
    raw_bucket: str
    curated_bucket: str
    features_bucket: str
    reports_bucket: str
    reports_kms_key: str
    pipelines: tuple[str, ...]
    group_name: str
    id_columns: tuple[str, ...]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ErasureConfig:
        """The settings in ``environ``; ConfigError naming the first bad variable."""
        env = Env(environ)
        return cls(
            team=env.text("TEAM", pattern=TEAM_NAME),
            account_id=env.text("ACCOUNT_ID", pattern=ACCOUNT_ID),
            raw_bucket=env.text("RAW_BUCKET", pattern=BUCKET_NAME),
            curated_bucket=env.text("CURATED_BUCKET", pattern=BUCKET_NAME),
            features_bucket=env.text("FEATURES_BUCKET", pattern=BUCKET_NAME),
            reports_bucket=env.text("REPORTS_BUCKET", pattern=BUCKET_NAME),
            reports_kms_key=env.text("REPORTS_KMS_KEY_ID", pattern=KMS_KEY),
            pipelines=env.names("PIPELINE_NAMES", pattern=SAGEMAKER_NAME, required=True),
            group_name=env.text("MODEL_PACKAGE_GROUP", pattern=SAGEMAKER_NAME),
            id_columns=env.names("ID_COLUMNS", pattern=COLUMN_NAME, required=True),
        )
