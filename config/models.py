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
from config.personas import PersonaPrincipals
from config.team_limits import team_problems
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
#: Reserved concurrency of one team's lifecycle Lambdas (stacks/components/lifecycle.py ``SIZING``: data
#: arrival 2 + deploy 1), and what Lambda always keeps unreserved in an account (UnreservedConcurrentExecutions).
# Upper bound per team: data arrival 2 + deploy 1 + scoring launcher 1 + erasure 1 (stacks/components/lifecycle.py
# SIZING, erasure.py); a team without batch scoring or `id` columns reserves less.
LAMBDA_RESERVED_PER_TEAM = 5
LAMBDA_UNRESERVED_MINIMUM = 100
#: SageMaker Serverless Inference memory sizes (ProductionVariantServerlessConfig.MemorySizeInMB).
SERVERLESS_MEMORY_SIZES = (1024, 2048, 3072, 4096, 5120, 6144)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


#: Noncurrent-version expiry per zone (days) unless an environment's ``retention.noncurrent_days`` says
#: otherwise. The PII zones keep noncurrent versions briefly (an erased subject must not linger there).
DEFAULT_NONCURRENT_DAYS: dict[str, int] = {
    "raw": 30,
    "curated": 30,
    "features": 30,
    "artifacts": 365,
    "capture": 90,
    "reports": 90,
}


class RetentionConfig(_Frozen):
    """Per-zone data retention (days), applied by the data lake as S3 lifecycle rules (docs/privacy.md).

    ``raw_days``: landed batches (``<team>/incoming/``) expire this long after landing (``None``: kept);
    ``quarantine_days``: quarantined batches (``<team>/quarantine/``) expire; ``noncurrent_days``: zone ->
    how long a noncurrent version is kept (defaults: :data:`DEFAULT_NONCURRENT_DAYS`; partial maps merge).
    """

    raw_days: int | None = Field(default=365, ge=1, le=3650)
    quarantine_days: int = Field(default=90, ge=1, le=3650)
    noncurrent_days: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_NONCURRENT_DAYS))

    @field_validator("noncurrent_days")
    @classmethod
    def _noncurrent(cls, v: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(v) - set(DEFAULT_NONCURRENT_DAYS))
        if unknown:
            raise ValueError(f"unknown zone(s) {unknown}; zones: {list(DEFAULT_NONCURRENT_DAYS)}")
        bad = {zone: days for zone, days in v.items() if not 1 <= days <= 3650}
        if bad:
            raise ValueError(f"noncurrent_days must be 1-3650 days, got {bad}")
        return {**DEFAULT_NONCURRENT_DAYS, **v}


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
    # The lifecycle Lambdas reserve concurrency (LAMBDA_RESERVED_PER_TEAM per team) so that one team's burst
    # cannot starve another's and the deploy function runs one invocation at a time. Lambda keeps 100 of
    # the account's concurrent executions unreserved, so a new account (quota 10) cannot reserve any:
    # request a higher quota and set `lambda_account_concurrency` to it, or set `lambda_reserved_concurrency:
    # false` (README.md, "Lambda concurrency").
    lambda_reserved_concurrency: bool = True
    lambda_account_concurrency: int = Field(default=1000, ge=10, le=1_000_000)
    # The version of AWS's public Powertools layer (AWSLambdaPowertoolsPythonV3-python314-arm64:<v>);
    # unset: stacks/components/lambda_package.py's POWERTOOLS_LAYER_VERSION. Check it before a first deploy.
    powertools_layer_version: int | None = Field(default=None, ge=1, le=10_000)
    # Data retention per zone (raw expiry, quarantine expiry, noncurrent-version expiry).
    retention: RetentionConfig = RetentionConfig()

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

    @model_validator(mode="after")
    def _production_endpoints(self) -> EnvironmentConfig:
        if self.is_production and self.endpoint_min_instances < 2:
            raise ValueError(
                f"endpoint_min_instances: production endpoints need at least 2 instances (one per AZ, and a "
                f"blue/green canary next to them), got {self.endpoint_min_instances}"
            )
        return self

    @property
    def is_production(self) -> bool:
        """Production gets multi-instance endpoints and retained data no matter what."""
        return self.name == "prod"


class MetricGate(_Frozen):
    """The quality gate a trained model must pass before it is registered."""

    metric: str
    threshold: float
    # The lead over the trivial model (majority class / training mean) the gate requires; validated by the
    # template (``pipelines/tabular/template.py``: 0 to 0.5, default 0.01).
    trivial_margin: float | None = None
    # Optional: fail the gate when the worst fairness gap over the contract's protected columns exceeds this.
    fairness_max_gap: float | None = None


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


class DeploymentSettings(_Frozen):
    """How an approved model reaches the team's endpoint: the deploy Lambda's rollout settings.

    Realtime teams roll out blue/green with a canary (SageMaker deployment guardrails): ``canary_percent``
    (1-50 % of the new fleet's capacity) *or* ``canary_instances`` (an instance count, at most half the
    environment's ``endpoint_min_instances``), baked ``bake_seconds`` under the rollback alarms, the old
    fleet kept ``termination_wait_seconds``, the whole rollout cut at ``max_execution_seconds``.
    Serverless teams: ``serverless_memory_mb`` and ``serverless_max_concurrency``; SageMaker Serverless
    Inference supports no VPC config, network isolation or data capture, so a serverless team must set
    ``accept_no_network_isolation: true`` (the residual risk is in docs/security.md).
    """

    canary_percent: int | None = Field(default=None, ge=1, le=50)
    canary_instances: int | None = Field(default=None, ge=1, le=10)
    bake_seconds: int = Field(default=600, ge=0, le=3600)
    termination_wait_seconds: int = Field(default=300, ge=0, le=3600)
    max_execution_seconds: int = Field(default=3600, ge=600, le=28_800)
    serverless_memory_mb: int = 2048
    serverless_max_concurrency: int = Field(default=5, ge=1, le=200)
    accept_no_network_isolation: bool = False

    @field_validator("serverless_memory_mb")
    @classmethod
    def _memory(cls, v: int) -> int:
        if v not in SERVERLESS_MEMORY_SIZES:
            raise ValueError(f"{v} MB is not a SageMaker serverless memory size; use one of {SERVERLESS_MEMORY_SIZES}")
        return v

    @model_validator(mode="after")
    def _rollout(self) -> DeploymentSettings:
        if self.canary_percent is not None and self.canary_instances is not None:
            raise ValueError("set canary_percent or canary_instances, not both (the canary is one or the other)")
        if self.bake_seconds + self.termination_wait_seconds >= self.max_execution_seconds:
            raise ValueError(
                f"max_execution_seconds ({self.max_execution_seconds}) must exceed bake_seconds + "
                f"termination_wait_seconds ({self.bake_seconds + self.termination_wait_seconds}), or every rollout "
                "times out"
            )
        return self

    @property
    def canary(self) -> tuple[str, int]:
        """``(CanarySize.Type, CanarySize.Value)``: ``CAPACITY_PERCENT`` (default 10) or ``INSTANCE_COUNT``."""
        if self.canary_instances is not None:
            return "INSTANCE_COUNT", self.canary_instances
        return "CAPACITY_PERCENT", 10 if self.canary_percent is None else self.canary_percent


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
    # Shown on the model card: who answers for the team's models and what they are (not) meant for.
    owner: str = ""
    intended_use: str = ""
    pipelines: tuple[str, ...] = ("tabular",)
    contract: Any = None
    metric_gate: MetricGate | None = None
    instances: InstanceSettings = InstanceSettings()
    deploy_target: Literal["serverless", "realtime", "batch"] = "realtime"
    deployment: DeploymentSettings = DeploymentSettings()
    #: Batch-scoring settings (schedule, transform capacity): validated by the ``batch-scoring`` template.
    scoring: Any = None
    monthly_budget_usd: float = Field(default=500, gt=0)
    monitoring: MonitoringSettings = MonitoringSettings()
    tags: dict[str, str] = Field(default_factory=dict)
    # Who may assume the team's persona roles (config/personas.py; docs/teams.md).
    principals: PersonaPrincipals = PersonaPrincipals()
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
    def _deployment(self) -> TeamConfig:
        accepted = self.deployment.accept_no_network_isolation
        if self.deploy_target == "serverless" and not accepted:
            raise ValueError(
                "deploy_target serverless: SageMaker Serverless Inference supports no VPC config, network "
                "isolation or data capture, so the model would run outside the team's VPC with internet access "
                "and no captured requests; set deployment.accept_no_network_isolation: true to accept that "
                "(docs/security.md, 'Serverless endpoints'), or use deploy_target: realtime"
            )
        if accepted and self.deploy_target != "serverless":
            raise ValueError(
                f"deployment.accept_no_network_isolation applies to deploy_target serverless only; remove it "
                f"(deploy_target is {self.deploy_target}: its models are network-isolated in the VPC)"
            )
        return self

    @model_validator(mode="after")
    def _template_settings(self, info: ValidationInfo) -> TeamConfig:
        values: dict[str, Any] = {"instances": self.instances.model_dump()}
        # The model card's fields (a template that writes a card reads them; the others ignore them).
        values["card"] = {"owner": self.owner, "intended_use": self.intended_use, "description": self.description}
        if self.contract is not None:
            values["contract"] = self.contract
        if self.metric_gate is not None:
            values["metric_gate"] = self.metric_gate.model_dump(exclude_none=True)
        if self.scoring is not None:
            values["scoring"] = self.scoring
        for name in self.pipelines:
            template = load_template(name, search_path=_template_dirs(info))
            settings = template.validate_settings(values)
            self._templates[name] = template
            self._settings[name] = settings
            if "contract" in type(settings).model_fields:
                # The template's typed contract replaces the raw mapping (validated, not re-parsed).
                object.__setattr__(self, "contract", settings.contract)  # type: ignore[attr-defined]
        if self.scoring is not None and not any(
            "scoring" in type(settings).model_fields for settings in self._settings.values()
        ):
            raise ValueError(
                "scoring: set, but none of the team's pipelines reads it: add batch-scoring to pipelines: "
                "or remove scoring:"
            )
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
        # A team called <team>-v... would fall under <team>'s <endpoint>-v* grants (and a serverless team's
        # boundary exception): config/team_limits.py refuses it below, naming both teams.
        for i, env in enumerate(self.environments):
            reserved = LAMBDA_RESERVED_PER_TEAM * len(self.teams)
            if (
                env.lambda_reserved_concurrency
                and env.lambda_account_concurrency - reserved < LAMBDA_UNRESERVED_MINIMUM
            ):
                raise ValueError(
                    f"environments.yaml: environments[{i}].lambda_account_concurrency: {len(self.teams)} team(s) "
                    f"reserve {reserved} of the account's {env.lambda_account_concurrency} concurrent Lambda "
                    f"executions and Lambda keeps {LAMBDA_UNRESERVED_MINIMUM} unreserved; raise the account's "
                    "'Concurrent executions' quota (Service Quotas) and set lambda_account_concurrency to it, or "
                    "set lambda_reserved_concurrency: false (README.md, 'Lambda concurrency')"
                )
        # AWS name limits and cross-team collisions, in every environment (config/team_limits.py).
        problems = team_problems([e.name for e in self.environments], [(t.name, t.pipelines) for t in self.teams])
        if problems:
            raise ValueError("; ".join(problems))
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


# -- the CI/CD toolchain (config/toolchain.yaml) -------------------------------------------------------------

#: CodeConnections providers (the ``ProviderType`` of a connection) by the name used in config.
GIT_PROVIDERS = {
    "github": "GitHub",
    "github-enterprise": "GitHubEnterpriseServer",
    "gitlab": "GitLab",
    "gitlab-self-managed": "GitLabSelfManaged",
    "bitbucket": "Bitbucket",
}
CONNECTION_ARN = re.compile(
    r"^arn:aws(-[a-z]+)*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/[0-9a-f-]{36}$"
)
# owner/name (GitLab also allows nested groups: group/subgroup/name); no wildcards, no '..'.
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){1,4}$")
GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9_.-]{1,100}$")
S3_OBJECT_KEY = re.compile(r"^[A-Za-z0-9!_.*'()/-]{1,900}\.zip$")
GITHUB_ENVIRONMENT = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")


def branch_problem(name: str) -> str | None:
    """Why ``name`` is not a valid git branch name (``git check-ref-format --branch`` rules), or None."""
    if not name or name == "@":
        return "is empty or '@'"
    if name.startswith(("-", "/")) or name.endswith(("/", ".", ".lock")):
        return "may not start with '-' or '/', nor end with '/', '.' or '.lock'"
    if ".." in name or "//" in name or "@{" in name:
        return "may not contain '..', '//' or '@{'"
    if any(c in name for c in " ~^:?*[\\") or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "may not contain spaces, control characters or any of ~ ^ : ? * [ \\"
    if any(part.startswith(".") for part in name.split("/")):
        return "no path component may start with '.'"
    return None


def _branch(value: str) -> str:
    problem = branch_problem(value)
    if problem:
        raise ValueError(f"{value!r} is not a valid git branch name: it {problem}")
    return value


class ConnectionSource(_Frozen):
    """A git repository reached through an AWS CodeConnections connection (no CodeCommit)."""

    kind: Literal["codeconnections"] = "codeconnections"
    provider: str
    connection_arn: str | None = None
    repository: str
    branch: str = "main"
    trigger_on_push: bool = True

    @field_validator("provider")
    @classmethod
    def _provider(cls, v: str) -> str:
        if v not in GIT_PROVIDERS:
            raise ValueError(f"unknown git provider {v!r}; choose from {', '.join(GIT_PROVIDERS)} (or kind: s3)")
        return v

    @field_validator("repository")
    @classmethod
    def _repository(cls, v: str) -> str:
        if not REPOSITORY.match(v) or ".." in v:
            raise ValueError(f"{v!r} is not a repository path: use owner/name (GitLab: group/subgroup/name)")
        return v

    @field_validator("branch")
    @classmethod
    def _branch(cls, v: str) -> str:
        return _branch(v)

    @model_validator(mode="after")
    def _connection(self) -> ConnectionSource:
        if not self.connection_arn:
            raise ValueError(
                f"connection_arn: a git source ({self.provider}) needs the ARN of an AWS CodeConnections "
                "connection: create one (console: Developer Tools > Settings > Connections, or `aws "
                "codeconnections create-connection`), complete the handshake, then paste its ARN here"
            )
        if not CONNECTION_ARN.match(self.connection_arn):
            raise ValueError(
                f"connection_arn: {self.connection_arn!r} is not a connection ARN "
                "(arn:aws:codeconnections:<region>:<account>:connection/<id>)"
            )
        return self


class S3Source(_Frozen):
    """A zip archive in a source bucket the toolchain creates (air-gapped or git-less setups)."""

    kind: Literal["s3"] = "s3"
    object_key: str = "flywheel/source.zip"

    @field_validator("object_key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not S3_OBJECT_KEY.match(v) or v.startswith("/") or ".." in v:
            raise ValueError(f"{v!r} is not a source object key: a relative S3 key ending in .zip")
        return v


class GitHubDeploy(_Frozen):
    """The GitHub Actions deploy role: its trust names exactly this repository and branch or environment."""

    repository: str
    branch: str | None = None
    environment: str | None = None
    #: An AWS account holds one provider per URL: set false when the account already has GitHub's.
    create_provider: bool = True

    @field_validator("repository")
    @classmethod
    def _repository(cls, v: str) -> str:
        if not GITHUB_REPOSITORY.match(v) or ".." in v:
            raise ValueError(f"{v!r} is not a GitHub repository: use owner/name, no wildcards")
        return v

    @field_validator("branch")
    @classmethod
    def _branch(cls, v: str | None) -> str | None:
        return None if v is None else _branch(v)

    @field_validator("environment")
    @classmethod
    def _environment(cls, v: str | None) -> str | None:
        if v is not None and not GITHUB_ENVIRONMENT.match(v):
            raise ValueError(f"{v!r} is not a GitHub environment name (letters, digits, '_', '.', '-')")
        return v

    @model_validator(mode="after")
    def _one_pin(self) -> GitHubDeploy:
        if (self.branch is None) == (self.environment is None):
            raise ValueError(
                "set exactly one of branch (sub = repo:<repository>:ref:refs/heads/<branch>) or environment "
                "(sub = repo:<repository>:environment:<name>, when the deploy job declares `environment:`)"
            )
        return self

    @property
    def subject(self) -> str:
        """The exact ``token.actions.githubusercontent.com:sub`` the role trusts."""
        if self.environment is not None:
            return f"repo:{self.repository}:environment:{self.environment}"
        return f"repo:{self.repository}:ref:refs/heads/{self.branch}"


class RetrainSettings(_Frozen):
    """Retrain on code change: after a stage deploys, restart the team pipelines whose definition changed."""

    enabled: bool = True
    #: Teams whose pipelines are never restarted by a deploy (they retrain on data arrival only).
    opt_out_teams: tuple[str, ...] = ()
    #: Environments whose deploy restarts pipelines (default: every stage of the toolchain).
    environments: tuple[str, ...] | None = None


class SmokeSettings(_Frozen):
    """The post-deploy smoke test of one environment (staging)."""

    environment: str = "staging"
    #: Fail when a team with an endpoint target has no approved model deployed yet (off for a first deploy).
    require_endpoint: bool = False


class ToolchainConfig(_Frozen):
    """The CI/CD toolchain: its account and region, its source, the stages it deploys, GitHub OIDC."""

    account: str
    region: str
    source: ConnectionSource | S3Source = Field(discriminator="kind")
    #: Environments deployed in this order; every production environment waits for a manual approval.
    stages: tuple[str, ...] = ("dev", "staging", "prod")
    github: GitHubDeploy | None = None
    retrain: RetrainSettings = RetrainSettings()
    smoke_test: SmokeSettings | None = SmokeSettings()
    log_retention_days: int = 90
    #: CodeBuild compute for the synth step (it runs the whole test suite).
    synth_compute: Literal["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE"] = (
        "BUILD_GENERAL1_MEDIUM"
    )

    @field_validator("account")
    @classmethod
    def _account(cls, v: str) -> str:
        return EnvironmentConfig._account(v)

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        return EnvironmentConfig._region(v)

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        return EnvironmentConfig._retention(v)

    @field_validator("stages")
    @classmethod
    def _stages(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("the toolchain needs at least one stage")
        if len(set(v)) != len(v):
            raise ValueError(f"a stage is listed twice: {list(v)}")
        return v

    def check_against(self, environments: tuple[EnvironmentConfig, ...], teams: tuple[TeamConfig, ...]) -> None:
        """Cross-file checks (ValueError): stages, smoke and retrain name configured environments and teams,
        and every stage lives in the toolchain's region (cross-region deploys need replication buckets)."""
        known = {e.name: e for e in environments}
        unknown = [s for s in self.stages if s not in known]
        if unknown:
            raise ValueError(f"stages: unknown environment(s) {unknown}; known: {', '.join(known)}")
        other_region = [s for s in self.stages if known[s].region != self.region]
        if other_region:
            raise ValueError(
                f"stages: {other_region} are not in the toolchain region {self.region}; this toolchain deploys "
                "in its own region only (cross-region actions would need a replication bucket per region)"
            )
        if self.smoke_test is not None and self.smoke_test.environment not in self.stages:
            raise ValueError(f"smoke_test.environment: {self.smoke_test.environment!r} is not one of the stages")
        team_names = {t.name for t in teams}
        bad_teams = sorted(set(self.retrain.opt_out_teams) - team_names)
        if bad_teams:
            known_teams = ", ".join(sorted(team_names))
            raise ValueError(f"retrain.opt_out_teams: unknown team(s) {bad_teams}; known: {known_teams}")
        bad_envs = sorted(set(self.retrain.environments or ()) - set(self.stages))
        if bad_envs:
            raise ValueError(f"retrain.environments: {bad_envs} are not stages of the toolchain")
