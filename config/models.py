"""Typed configuration: deployment environments and ML teams.

Validated once, at the edge (``config.loader``); everything downstream (stacks, runtime) receives these
frozen models and never reads files or the process environment itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

import naming
from pipelines import load_template
from pipelines.template import PipelineTemplate

#: Validation-context key: extra directories searched for pipeline templates (``load_config(template_dirs=)``).
TEMPLATE_DIRS = "template_dirs"

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


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class AlarmSubscription(_Frozen):
    """Who the team's alarm topic notifies: ``email`` (an address) or ``https`` (a URL) or ``sqs`` /
    ``lambda`` (an ARN in the environment's account)."""

    protocol: Literal["email", "https", "sqs", "lambda"]
    endpoint: str

    @model_validator(mode="after")
    def _endpoint(self) -> AlarmSubscription:
        ok = {
            "email": EMAIL.match(self.endpoint) is not None,
            "https": self.endpoint.startswith("https://") and len(self.endpoint) > len("https://"),
            "sqs": self.endpoint.startswith("arn:aws") and ":sqs:" in self.endpoint,
            "lambda": self.endpoint.startswith("arn:aws") and ":lambda:" in self.endpoint,
        }[self.protocol]
        if not ok:
            raise ValueError(f"{self.endpoint!r} is not a valid {self.protocol} subscription endpoint")
        return self


class AlarmThresholds(_Frozen):
    """Defaults of the team's alarms (stacks/components/monitoring.py; docs/monitoring.md). The lifecycle's
    own alarms (dead-letter queue not empty, rollback alarms) keep their fixed thresholds."""

    failed_executions: int = Field(default=1, ge=1)  # failed pipeline executions in an hour
    error_5xx_percent: float = Field(default=1.0, gt=0, le=100)  # of invocations, per 5 minutes
    p99_latency_ms: float = Field(default=1000, gt=0)  # ModelLatency p99 over 5 minutes
    drifted_features: int = Field(default=1, ge=1)  # features drifting in one monitor window
    lambda_errors: int = Field(default=1, ge=1)  # errors + throttles of a lifecycle function in 5 minutes
    budget_percent: float = Field(default=80, gt=0, le=1000)  # of monthly_budget_usd, actual spend


class DriftSettings(_Frozen):
    """The team's drift monitor (pipelines/monitor/drift.py) and its schedule."""

    enabled: bool = True
    window: Literal["hour", "day"] = "day"  # one UTC hour / day of capture per run, run after it closes
    # Fewer rows in a window: "not enough data". Below a few hundred rows the 0.1 distance thresholds are
    # within sampling noise (200 test-split rows: normed Wasserstein 0.10-0.18 against their own baseline).
    min_rows: int = Field(default=500, ge=1)
    psi: bool = False  # PSI instead of Evidently's default tests
    instance_type: str = "ml.m5.large"
    # Start the team's pipeline after this many consecutive drifting windows (0 = off), on the data
    # under <team>/incoming/<retrain_batch>/ of the raw zone.
    retrain_after_windows: int = Field(default=0, ge=0, le=24)
    retrain_batch: str = Field(default="retrain", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")

    @field_validator("instance_type")
    @classmethod
    def _type(cls, v: str) -> str:
        if not INSTANCE_TYPE.match(v):
            raise ValueError(f"{v!r} is not a SageMaker instance type (e.g. ml.m5.large)")
        return v


class MonitoringSettings(_Frozen):
    """The team's dashboard, alarms (thresholds and subscriptions of its topic) and drift monitor."""

    alarms: AlarmThresholds = AlarmThresholds()
    subscriptions: tuple[AlarmSubscription, ...] = ()
    drift: DriftSettings = DriftSettings()


def _template_dirs(info: ValidationInfo) -> tuple[Path, ...]:
    return tuple((info.context or {}).get(TEMPLATE_DIRS, ()))


class TeamConfig(_Frozen):
    """One ML team: its pipelines and their settings (data contract, gate, instances) and deploy target.

    Template-specific settings are validated by each of the team's templates
    (``PipelineTemplate.settings_model``); ``contract`` is then the template's typed data contract
    (``pipelines.tabular.contract.DataContract`` for ``tabular``). ``contract`` and ``metric_gate``
    are optional here: whether a team needs them is its templates' decision (a template whose settings
    model reads neither does not force them; ``tabular`` requires both).
    """

    name: str
    description: str = ""
    pipelines: tuple[str, ...] = ("tabular",)
    contract: Any = None
    metric_gate: MetricGate | None = None
    instances: InstanceSettings = InstanceSettings()
    deploy_target: Literal["serverless", "realtime", "batch"] = "realtime"
    monthly_budget_usd: float = Field(default=500, gt=0)
    monitoring: MonitoringSettings = MonitoringSettings()
    tags: dict[str, str] = Field(default_factory=dict)
    _templates: dict[str, PipelineTemplate] = PrivateAttr(default_factory=dict)
    _settings: dict[str, BaseModel] = PrivateAttr(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not TEAM_NAME.match(v) or "--" in v:
            raise ValueError(
                f"{v!r} cannot be used in AWS resource names: use 3-21 lowercase letters, digits and "
                "single hyphens, starting with a letter and not ending with a hyphen"
            )
        if v in naming.RESERVED:
            raise ValueError(
                f"{v!r} is reserved: Flywheel uses it as a prefix or role path next to team prefixes "
                f"(reserved: {', '.join(sorted(naming.RESERVED))})"
            )
        return v

    @field_validator("pipelines")
    @classmethod
    def _pipelines(cls, v: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        from pipelines import discover_templates

        available = discover_templates(*_known_template_roots(_template_dirs(info)))
        unknown = sorted(set(v) - set(available))
        if unknown:
            raise ValueError(f"unknown pipeline template(s) {unknown}; available: {sorted(available)}")
        if not v:
            raise ValueError("a team needs at least one pipeline template")
        return v

    @model_validator(mode="after")
    def _template_settings(self, info: ValidationInfo) -> TeamConfig:
        values: dict[str, Any] = {"instances": self.instances.model_dump()}
        if self.contract is not None:
            values["contract"] = self.contract
        if self.metric_gate is not None:
            values["metric_gate"] = self.metric_gate.model_dump()
        for name in self.pipelines:
            template = load_template(name, search_path=_template_dirs(info))
            settings = template.validate_settings(values)
            self._templates[name] = template
            self._settings[name] = settings
            if "contract" in type(settings).model_fields:
                # The template's typed contract replaces the raw mapping (validated, not re-parsed).
                object.__setattr__(self, "contract", settings.contract)  # type: ignore[attr-defined]
        return self

    def template(self, name: str) -> PipelineTemplate:
        """The contract of one of the team's templates (found where config validation found it)."""
        if name not in self._templates:
            raise KeyError(f"team {self.name!r} has no pipeline {name!r}; it has: {', '.join(self.pipelines)}")
        return self._templates[name]

    def templates(self) -> dict[str, PipelineTemplate]:
        """Template name → contract, in the order of ``pipelines``."""
        return {name: self.template(name) for name in self.pipelines}

    def template_settings(self, name: str) -> BaseModel:
        """The team's settings for template ``name``, as validated by its ``settings_model``."""
        self.template(name)
        return self._settings[name]

    @property
    def higher_is_better(self) -> bool:
        """Direction of the gate metric (decided by the first template whose settings know it)."""
        for name in self.pipelines:
            direction = getattr(self._settings.get(name), "higher_is_better", None)
            if isinstance(direction, bool):
                return direction
        return True


def _known_template_roots(extra: tuple[Path, ...]) -> tuple[Path, ...]:
    from pipelines import TEMPLATES_DIR

    return (TEMPLATES_DIR, *extra)


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
