"""Typed configuration: deployment environments and ML teams.

Validated once, at the edge (``config.loader``); everything downstream (stacks, runtime) receives these
frozen models and never reads files or the process environment itself.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipelines.tabular.contract import METRICS, UNIT_INTERVAL_METRICS, DataContract, contract_problems

# Commercial regions where SageMaker pipelines, the model registry and the endpoints we use all exist.
KNOWN_REGIONS = frozenset(
    {
        "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
        "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-central-2", "eu-north-1",
        "eu-south-1", "eu-south-2", "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2",
        "ap-southeast-3", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-east-1",
        "me-south-1", "me-central-1", "af-south-1", "il-central-1",
    }
)  # fmt: skip

# Interface endpoints the SageMaker jobs, endpoints and Lambdas call from isolated subnets.
INTERFACE_ENDPOINT_SERVICES = frozenset(
    {"sagemaker.api", "sagemaker.runtime", "sts", "logs", "ecr.api", "ecr.dkr", "kms", "monitoring", "events"}
)
# Team names end up in bucket prefixes, IAM role names, SageMaker resource names and Glue databases:
# lowercase, digits and hyphens, starting with a letter — the intersection of what they all accept.
TEAM_NAME = re.compile(r"^[a-z][a-z0-9-]{1,19}[a-z0-9]$")
ENV_NAME = re.compile(r"^[a-z][a-z0-9]{1,15}$")
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557)
INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[0-9]*[a-z]+$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EnvironmentConfig(_Frozen):
    """One deployment environment (an AWS account + region) and its cost/safety settings."""

    name: str
    account: str
    region: str
    max_azs: int = Field(default=2, ge=1, le=3)
    # Empty list = no interface endpoints (only the free S3 gateway endpoint); jobs then cannot pull
    # images or write logs from the isolated subnets, so this is for synth-only/sandbox experiments.
    interface_endpoints: tuple[str, ...] = tuple(sorted(INTERFACE_ENDPOINT_SERVICES - {"monitoring", "events"}))
    trail: bool = True
    flow_logs: bool = True
    retain_data: bool = True
    log_retention_days: int = 90
    # Governance-mode object lock on model artifacts and audit logs (days a version cannot be deleted).
    object_lock_days: int = Field(default=30, ge=1, le=3650)
    endpoint_min_instances: int = Field(default=1, ge=1, le=10)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not ENV_NAME.match(v):
            raise ValueError(f"{v!r} is not a valid environment name (2-16 lowercase letters/digits)")
        return v

    @field_validator("account")
    @classmethod
    def _account(cls, v: str) -> str:
        if not re.fullmatch(r"\d{12}", v):
            raise ValueError(f"{v!r} is not an AWS account id (exactly 12 digits, quoted in YAML)")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if v not in KNOWN_REGIONS:
            raise ValueError(f"unknown region {v!r}")
        return v

    @field_validator("interface_endpoints")
    @classmethod
    def _endpoints(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(v) - INTERFACE_ENDPOINT_SERVICES)
        if unknown:
            raise ValueError(
                f"unknown interface endpoint(s) {unknown}; choose from {sorted(INTERFACE_ENDPOINT_SERVICES)}"
            )
        if len(set(v)) != len(v):
            raise ValueError("interface endpoints listed twice")
        return v

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if v not in LOG_RETENTION_DAYS:
            raise ValueError(f"{v} is not a CloudWatch Logs retention; use one of {LOG_RETENTION_DAYS}")
        return v

    @property
    def is_production(self) -> bool:
        """Production gets multi-instance endpoints and retained data no matter what."""
        return self.name == "prod"


class MetricGate(_Frozen):
    """The quality gate a trained model must pass before it is registered."""

    metric: str
    threshold: float


class InstanceSettings(_Frozen):
    """SageMaker instance types for the team's jobs and endpoint."""

    processing: str = "ml.m5.xlarge"
    processing_count: int = Field(default=1, ge=1, le=20)
    training: str = "ml.m5.xlarge"
    endpoint: str = "ml.m5.large"

    @field_validator("processing", "training", "endpoint")
    @classmethod
    def _type(cls, v: str) -> str:
        if not INSTANCE_TYPE.match(v):
            raise ValueError(f"{v!r} is not a SageMaker instance type (e.g. ml.m5.xlarge)")
        return v


class TeamConfig(_Frozen):
    """One ML team: its data contract, pipelines, gate, instances and deploy target."""

    name: str
    description: str = ""
    pipelines: tuple[str, ...] = ("tabular",)
    contract: DataContract
    metric_gate: MetricGate
    instances: InstanceSettings = InstanceSettings()
    deploy_target: Literal["serverless", "realtime", "batch"] = "realtime"
    monthly_budget_usd: float = Field(default=500, gt=0)
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not TEAM_NAME.match(v) or "--" in v:
            raise ValueError(
                f"{v!r} cannot be used in AWS resource names: use 3-21 lowercase letters, digits and "
                "single hyphens, starting with a letter and not ending with a hyphen"
            )
        return v

    @field_validator("pipelines")
    @classmethod
    def _pipelines(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from pipelines import TEMPLATES  # the registry of pipeline template folders

        unknown = sorted(set(v) - set(TEMPLATES))
        if unknown:
            raise ValueError(f"unknown pipeline template(s) {unknown}; available: {sorted(TEMPLATES)}")
        if not v:
            raise ValueError("a team needs at least one pipeline template")
        return v

    @field_validator("contract")
    @classmethod
    def _contract(cls, v: DataContract) -> DataContract:
        problems = contract_problems(v)
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @model_validator(mode="after")
    def _gate_fits_objective(self) -> TeamConfig:
        objective = self.contract.objective
        metric, threshold = self.metric_gate.metric, self.metric_gate.threshold
        if metric not in METRICS[objective]:
            raise ValueError(
                f"metric_gate.metric: {metric!r} is not reported for objective {objective!r}; "
                f"choose from {sorted(METRICS[objective])}"
            )
        if metric in UNIT_INTERVAL_METRICS and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"metric_gate.threshold: {threshold} is outside [0, 1] for {metric}")
        if metric == "r2" and threshold > 1.0:
            raise ValueError(f"metric_gate.threshold: {threshold} is above 1, the maximum of r2")
        if metric in ("rmse", "mae", "log_loss") and threshold <= 0:
            raise ValueError(f"metric_gate.threshold: {threshold} must be positive for {metric}")
        return self

    @property
    def higher_is_better(self) -> bool:
        """Direction of the gate metric."""
        return METRICS[self.contract.objective][self.metric_gate.metric]


class FlywheelConfig(_Frozen):
    """Everything the CDK app and the local runtime need: all environments and all teams."""

    environments: tuple[EnvironmentConfig, ...]
    teams: tuple[TeamConfig, ...]

    @model_validator(mode="after")
    def _unique(self) -> FlywheelConfig:
        for kind, names in (
            ("environment", [e.name for e in self.environments]),
            ("team", [t.name for t in self.teams]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"duplicate {kind} name(s): {', '.join(dupes)}")
        return self

    def environment(self, name: str) -> EnvironmentConfig:
        """The environment called ``name``; KeyError listing the known ones otherwise."""
        for env in self.environments:
            if env.name == name:
                return env
        raise KeyError(f"unknown environment {name!r}; known: {', '.join(e.name for e in self.environments)}")

    def team(self, name: str) -> TeamConfig:
        """The team called ``name``; KeyError listing the known ones otherwise."""
        for team in self.teams:
            if team.name == name:
                return team
        raise KeyError(f"unknown team {name!r}; known: {', '.join(t.name for t in self.teams)}")
