"""The SageMaker pipeline definition of the ``tabular`` template.

This is the ``tabular`` template's SageMaker Python SDK (v3) importer (built through :mod:`pipelines.sdk_offline`).
It turns a frozen :class:`TabularPipelineInputs` into the pipeline definition JSON that the CDK puts into
``AWS::SageMaker::Pipeline`` and that the local executor runs step by step: one definition, two places.

Parameters (names are a contract with the Lambdas and the local runtime)
    ``InputDataUri`` (String, required: S3 prefix of the raw batch; ``Preprocess`` refuses one outside
    ``s3://<raw_bucket>/<team>/incoming/``), ``ProcessingInstanceType``, ``TrainingInstanceType``,
    ``EvaluationInstanceType``, ``ChampionMetric`` (String, default ``"none"``), ``ChampionModelUri``
    (String: the approved champion's ``ModelDataUrl``, which ``Evaluate`` scores on the same test rows for a
    paired comparison; default the team's "no champion" marker object, provisioned with the contract,
    because a processing input whose prefix holds no object fails the job), ``NumRound``, ``MaxDepth``,
    ``EarlyStoppingRounds`` (Integer) and ``Eta`` (Float).

    Never parameters (whoever may start an execution must not weaken a control): the PII key's
    location (``s3://<raw_bucket>/<team>/_keys/pii-hmac.key``), the gate threshold (from the team's
    config), the allowed input prefix and the registration status. Only a local build
    (``local_overrides=True``, the local runtime) declares ``GateThreshold`` (Float, default: the
    configured threshold) so a developer can try another gate; the run report labels such a run.

Roles and tags
    Each job runs as its step kind's role: ``Preprocess`` as ``preprocessing_role_arn`` (the only role
    that can read raw batches and the PII key), ``Train`` as ``training_role_arn`` and ``Evaluate`` as
    ``evaluation_role_arn`` (features and artifacts only). Every job is tagged ``flywheel:team``: the
    pipeline's role may create, describe and stop only jobs carrying its team's tag.

Steps
    ``Preprocess`` (Processing, scikit-learn image) validates the batch against the data contract,
    pseudonymizes PII and splits it; outputs train/validation/test (features bucket), baseline
    (artifacts bucket), status (reports bucket) and quarantine (raw bucket: PII stays in the raw zone),
    all under ``<pipeline_name>/<ExecutionId>``. ``DataContractCheck`` (Condition) reads
    each host's ``status/validation-<host>.json`` (property files ``ValidationStatusAlgo<i>``; the host
    count is fixed at synth from the team config): ``passed == true`` on every host runs ``PiiScanCheck``
    (Condition) on each host's ``status/pii-scan-<host>.json`` (``PiiScanAlgo<i>``: the PII scan the
    preprocessing job runs before upload, ``pii_scan.py``), whose failure ends in ``PiiScanFailed`` (Fail:
    the scan's summary) and whose success runs
    ``Train`` (Training, XGBoost image, script mode), ``Evaluate`` (Processing on the XGBoost image, which
    loads the model; ``EvaluationReport``
    property file on ``evaluation.json``) and ``QualityGate`` (Condition: gate value against
    ``GateThreshold`` and champion/challenger) which leads to ``RegisterModel`` (RegisterModel, into the
    team's model package group, ``PendingManualApproval`` by default; its customer metadata records the
    lineage ``flywheel:input-data-uri`` = ``InputDataUri`` and ``flywheel:execution-id``) or
    ``QualityGateFailed`` (Fail);
    otherwise ``DataContractFailed`` (Fail) names the quarantine location. Every job carries volume and
    output KMS keys, the VPC config, network isolation and inter-container traffic encryption.

Code
    All step scripts travel in one ``sourcedir.tar.gz`` (see :mod:`pipelines.packaging`). Processing
    jobs receive it as the ``code`` input and run :func:`processing_entrypoint`, a fixed bash one-liner
    that verifies the archive's sha256 (known at synth: :mod:`pipelines.packaging` is deterministic),
    unpacks it into ``/opt/ml/processing/code`` and ``exec``\\ s ``python3 "$0" "$@"``: the script
    name is the last entrypoint element and the CLI arguments are ``ContainerArguments``. Training uses
    the framework container's script mode under network isolation, exactly as the SDK's framework
    estimators do: the tarball is the ``code`` channel and the hyperparameters ``sagemaker_program`` /
    ``sagemaker_submit_directory`` point at it (no SDK driver upload: ``ModelTrainer`` is used without
    ``source_code``, which would upload its drivers to S3). The framework container unpacks the training
    code itself, so the training job cannot verify the hash before unpacking; its code channel is the
    same content-addressed object, which no Flywheel role can write.

Why the build is offline and deterministic
    :func:`build_pipeline_definition` builds through the shared harness :mod:`pipelines.sdk_offline`
    (sentinels for every account-specific value, a scrubbed environment, a refusing boto session,
    memoized SDK config validation, canonical JSON); only the pipeline composition is this module's.

    Measured (dev container, Python 3.11): the first build in a process takes ~2.1 s, 1.5 s of it
    importing the SDK; later builds take ~0.5 s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from naming import (
    EVALUATION,
    KEYS,
    PII_KEY_FILE,
    PREPROCESSING,
    S3_SCHEME,
    TRAINING,
    incoming_prefix,
    pii_key_prefix,
    quarantine_prefix,
)
from pipelines.packaging import SOURCEDIR_NAME
from pipelines.sdk_offline import (  # OfflineBuildError, object_name: re-exported for callers
    OfflineBuildError,
    build_offline,
    image_uri,
    object_name,
    pipeline_session,
    role_sentinel,
    sentinel,
    sequence_sentinels,
    uri_sentinel,
)
from pipelines.tabular.contract import DEFAULT_TRIVIAL_MARGIN, NO_CHAMPION_FILE, TRAINING_DEFAULTS
from pipelines.tabular.model_card import CARD_FILE as MODEL_CARD_FILE

__all__ = [
    "OfflineBuildError",
    "TabularPipelineInputs",
    "build_pipeline_definition",
    "inputs_for_settings",
    "inputs_for_team",
    "object_name",
]

Objective = Literal["binary", "multiclass", "regression"]
OBJECTIVES: Final[tuple[str, ...]] = ("binary", "multiclass", "regression")

# Pipeline parameter names (a contract with the Lambdas and the local runtime).
PARAM_INPUT_DATA_URI: Final = "InputDataUri"
PARAM_PII_KEY_URI: Final = "PiiKeyUri"
PARAM_PROCESSING_INSTANCE_TYPE: Final = "ProcessingInstanceType"
PARAM_TRAINING_INSTANCE_TYPE: Final = "TrainingInstanceType"
PARAM_EVALUATION_INSTANCE_TYPE: Final = "EvaluationInstanceType"
PARAM_GATE_THRESHOLD: Final = "GateThreshold"
PARAM_CHAMPION_METRIC: Final = "ChampionMetric"
PARAM_CHAMPION_MODEL_URI: Final = "ChampionModelUri"
PARAM_NUM_ROUND: Final = "NumRound"
PARAM_MAX_DEPTH: Final = "MaxDepth"
PARAM_ETA: Final = "Eta"
PARAM_EARLY_STOPPING_ROUNDS: Final = "EarlyStoppingRounds"
#: The deployed definition's parameters, in order.
PARAMETER_NAMES: Final[tuple[str, ...]] = (
    PARAM_INPUT_DATA_URI,
    PARAM_PROCESSING_INSTANCE_TYPE,
    PARAM_TRAINING_INSTANCE_TYPE,
    PARAM_EVALUATION_INSTANCE_TYPE,
    PARAM_CHAMPION_METRIC,
    PARAM_CHAMPION_MODEL_URI,
    PARAM_NUM_ROUND,
    PARAM_MAX_DEPTH,
    PARAM_ETA,
    PARAM_EARLY_STOPPING_ROUNDS,
)
#: Declared only by a local build (``local_overrides=True``), after :data:`PARAMETER_NAMES`.
LOCAL_OVERRIDE_PARAMETERS: Final[tuple[str, ...]] = (PARAM_GATE_THRESHOLD,)
TEAM_TAG: Final = "flywheel:team"

# Step and property-file names.
STEP_PREPROCESS: Final = "Preprocess"
STEP_DATA_CONTRACT_CHECK: Final = "DataContractCheck"
STEP_DATA_CONTRACT_FAILED: Final = "DataContractFailed"
STEP_TRAIN: Final = "Train"
STEP_EVALUATE: Final = "Evaluate"
STEP_QUALITY_GATE: Final = "QualityGate"
STEP_QUALITY_GATE_FAILED: Final = "QualityGateFailed"
STEP_REGISTER_MODEL: Final = "RegisterModel"
STEP_PII_SCAN_CHECK: Final = "PiiScanCheck"
STEP_PII_SCAN_FAILED: Final = "PiiScanFailed"
PROPERTY_FILE_PII_SCAN: Final = "PiiScan"
"""Prefix of the per-host PII scan property files: ``PiiScanAlgo1`` reads ``status/pii-scan-algo-1.json``."""
#: Customer metadata of a registered package: its lineage (the raw batch its training data came from).
LINEAGE_INPUT_KEY: Final = "flywheel:input-data-uri"
LINEAGE_EXECUTION_KEY: Final = "flywheel:execution-id"
PROPERTY_FILE_VALIDATION: Final = "ValidationStatus"
"""Prefix of the per-host property files: ``ValidationStatusAlgo1`` reads ``status/validation-algo-1.json``."""
PROPERTY_FILE_EVALUATION: Final = "EvaluationReport"

# The container contract of the step scripts.
CONTRACT_FILE_NAME: Final = "contract.json"
PII_KEY_FILE_NAME: Final = PII_KEY_FILE
PROCESSING_CODE_DIR: Final = "/opt/ml/processing/input/code"
PROCESSING_UNPACK_DIR: Final = "/opt/ml/processing/code"
TRAINING_CODE_DIR: Final = "/opt/ml/input/data/code"
CHAMPION_MODEL_DIR: Final = "/opt/ml/processing/input/champion"
#: The team file holding the "no champion" marker (``contract.NO_CHAMPION_FILE``).
NO_CHAMPION_FILE_NAME: Final = NO_CHAMPION_FILE
#: The team file with the model card's owner, intended use and description.
CARD_FILE_NAME: Final = "card.json"
CARD_INPUT_DIR: Final = "/opt/ml/processing/input/card"
#: Customer metadata of a registered package: where its model card is (beside its evaluation.json).
MODEL_CARD_KEY: Final = "flywheel:model-card"


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def processing_entrypoint(code_file: str = SOURCEDIR_NAME, sha256: str | None = None) -> tuple[str, ...]:
    """Prefix of every processing ``ContainerEntrypoint``; the script file name is appended to it.

    ``code_file`` is the object name of the code archive (``sourcedir.tar.gz``, or a content-hashed
    CDK asset name such as ``<sha256>.gz``): the container sees the object under its own name.
    ``sha256``: the archive's expected sha256 (hex): the job verifies it before unpacking and fails
    with a message naming the archive on a mismatch.
    """
    archive = f"{PROCESSING_CODE_DIR}/{code_file}"
    check = ""
    if sha256 is not None:
        if not _SHA256.match(sha256):
            raise ValueError(f"sha256: expected 64 lowercase hex digits, got {sha256!r}")
        check = (
            f'echo "{sha256}  {archive}" | sha256sum -c --quiet - '
            f'|| {{ echo "step code {archive}: sha256 mismatch" >&2; exit 1; }}; '
        )
    return (
        "/bin/bash",
        "-c",
        f"set -eu; {check}mkdir -p {PROCESSING_UNPACK_DIR}; "
        f"tar -xzf {archive} -C {PROCESSING_UNPACK_DIR}; "
        f'cd {PROCESSING_UNPACK_DIR}; exec python3 "$0" "$@"',
    )


PROCESSING_ENTRYPOINT: Final[tuple[str, ...]] = processing_entrypoint()
"""The entrypoint prefix for a code archive named ``sourcedir.tar.gz``."""
INFERENCE_SUBMIT_DIRECTORY: Final = "/opt/ml/model/code"
CONTENT_TYPES: Final[tuple[str, ...]] = ("text/csv", "application/json")
REGISTRATION_STATUS: Final = "PendingManualApproval"
#: The step kinds (roles) of this template: Preprocess, Train, Evaluate.
STEP_ROLE_KINDS: Final[tuple[str, ...]] = (PREPROCESSING, TRAINING, EVALUATION)

_PREPROCESS_OUTPUTS: Final = ("train", "validation", "test", "baseline", "status", "quarantine")
_METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class TabularPipelineInputs:
    """Everything the ``tabular`` definition depends on; account-specific values may be any string.

    Strings such as ARNs, bucket names and URIs are never parsed here, so placeholders or CDK tokens
    work. Exceptions, because they are part of the container contract: ``source_uri`` must be an
    ``s3://`` URI of a ``.gz`` object (``sourcedir.tar.gz`` or a hashed CDK asset) and ``contract_uri``
    one of a ``.json`` object; the containers address them by their object names. ``region`` must be
    a real region (it selects the framework image registry).
    """

    pipeline_name: str
    region: str
    role_arn: str  # the pipeline's own role (never a job's)
    preprocessing_role_arn: str
    training_role_arn: str
    evaluation_role_arn: str
    team: str
    source_sha256: str
    kms_key_arn: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    raw_bucket: str
    features_bucket: str
    artifacts_bucket: str
    reports_bucket: str
    source_uri: str
    contract_uri: str
    model_package_group_name: str
    # The "no champion" marker object (``contract.NO_CHAMPION_FILE``, a team file): ChampionModelUri's default.
    no_champion_uri: str
    # The model card's fields (owner, intended use, description: ``card.json``, a team file).
    card_uri: str
    objective: Objective
    gate_metric: str
    gate_threshold: float
    higher_is_better: bool
    # The gate's required lead over the trivial model, and the optional worst-fairness-gap gate (config).
    trivial_margin: float = DEFAULT_TRIVIAL_MARGIN
    fairness_max_gap: float | None = None
    processing_instance_type: str = "ml.m5.large"
    training_instance_type: str = "ml.m5.large"
    evaluation_instance_type: str = "ml.m5.large"
    preprocess_instance_count: int = 1
    num_round: int = int(TRAINING_DEFAULTS["num_round"])
    max_depth: int = int(TRAINING_DEFAULTS["max_depth"])
    eta: float = float(TRAINING_DEFAULTS["eta"])
    early_stopping_rounds: int = int(TRAINING_DEFAULTS["early_stopping_rounds"])
    seed: int = int(TRAINING_DEFAULTS["seed"])
    sklearn_framework_version: str = "1.9-0"
    xgboost_framework_version: str = "3.2-0"
    volume_size_gb: int = 30
    max_runtime_seconds: int = 3600
    # Key prefix, in the raw bucket, of the PII HMAC key object (per team, e.g. "churn/_keys/").
    pii_key_prefix: str = f"{KEYS}/"
    # The local runtime's build: GateThreshold becomes a parameter (default: gate_threshold).
    local_overrides: bool = False

    def __post_init__(self) -> None:
        """Normalize sequences to tuples and reject bad values with a message naming the field."""
        for name in ("subnet_ids", "security_group_ids"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise ValueError(f"{name}: expected a sequence of strings, got {value!r}")
            object.__setattr__(self, name, tuple(value))
            if not value:
                raise ValueError(f"{name}: must not be empty (every job runs in the VPC)")
            for item in value:
                _require_text(name, item)
        for name in (
            "pipeline_name",
            "region",
            "role_arn",
            "preprocessing_role_arn",
            "training_role_arn",
            "evaluation_role_arn",
            "team",
            "kms_key_arn",
            "raw_bucket",
            "features_bucket",
            "artifacts_bucket",
            "reports_bucket",
            "model_package_group_name",
            "sklearn_framework_version",
            "xgboost_framework_version",
        ):
            _require_text(name, getattr(self, name))
        _require_s3_object("source_uri", self.source_uri, ".gz")
        if not isinstance(self.source_sha256, str) or not _SHA256.match(self.source_sha256):
            raise ValueError(
                f"source_sha256: expected the code archive's sha256 (64 hex digits), got {self.source_sha256!r}"
            )
        if "/" in self.team or self.team.strip() != self.team:
            raise ValueError(f"team: expected a team name, got {self.team!r}")
        if not isinstance(self.local_overrides, bool):
            raise ValueError(f"local_overrides: expected a bool, got {self.local_overrides!r}")
        _require_s3_object("contract_uri", self.contract_uri, ".json")
        _require_s3_object("no_champion_uri", self.no_champion_uri, ".json")
        _require_s3_object("card_uri", self.card_uri, ".json")
        prefix = self.pii_key_prefix
        if not isinstance(prefix, str) or not prefix.endswith("/") or prefix.startswith("/") or ".." in prefix:
            raise ValueError(f"pii_key_prefix: expected a relative key prefix ending in '/', got {prefix!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective: expected one of {OBJECTIVES}, got {self.objective!r}")
        if not isinstance(self.gate_metric, str) or not _METRIC_NAME.match(self.gate_metric):
            raise ValueError(f"gate_metric: expected a metric name like 'auc', got {self.gate_metric!r}")
        _require_number("gate_threshold", self.gate_threshold)
        _require_number("trivial_margin", self.trivial_margin)
        if not 0 <= self.trivial_margin <= 0.5:
            raise ValueError(f"trivial_margin: expected 0 <= margin <= 0.5, got {self.trivial_margin!r}")
        if self.fairness_max_gap is not None:
            _require_number("fairness_max_gap", self.fairness_max_gap)
            if self.fairness_max_gap <= 0:
                raise ValueError(f"fairness_max_gap: expected a positive gap, got {self.fairness_max_gap!r}")
        if not isinstance(self.higher_is_better, bool):
            raise ValueError(f"higher_is_better: expected a bool, got {self.higher_is_better!r}")
        for name in ("processing_instance_type", "training_instance_type", "evaluation_instance_type"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.startswith("ml."):
                raise ValueError(f"{name}: expected a SageMaker instance type like 'ml.m5.large', got {value!r}")
        for name, minimum in (
            ("preprocess_instance_count", 1),
            ("num_round", 1),
            ("max_depth", 1),
            ("early_stopping_rounds", 1),
            ("seed", 0),
            ("volume_size_gb", 1),
            ("max_runtime_seconds", 60),
        ):
            _require_int(name, getattr(self, name), minimum)
        _require_number("eta", self.eta)
        if not 0 < self.eta <= 1:
            raise ValueError(f"eta: expected 0 < eta <= 1, got {self.eta!r}")


def inputs_for_team(
    team: Any,
    *,
    pipeline_name: str,
    region: str,
    role_arn: str,
    role_arns: Mapping[str, str],
    source_sha256: str,
    kms_key_arn: str,
    subnet_ids: Sequence[str],
    security_group_ids: Sequence[str],
    buckets: Mapping[str, str],
    source_uri: str,
    contract_uri: str,
    no_champion_uri: str,
    card_uri: str,
    model_package_group_name: str,
    local_overrides: bool = False,
) -> TabularPipelineInputs:
    """:func:`inputs_for_settings` for a ``config.models.TeamConfig`` (which carries the same fields)."""
    return inputs_for_settings(
        team.name,
        team,
        pipeline_name=pipeline_name,
        region=region,
        role_arn=role_arn,
        role_arns=role_arns,
        source_sha256=source_sha256,
        kms_key_arn=kms_key_arn,
        subnet_ids=subnet_ids,
        security_group_ids=security_group_ids,
        buckets=buckets,
        source_uri=source_uri,
        contract_uri=contract_uri,
        no_champion_uri=no_champion_uri,
        card_uri=card_uri,
        model_package_group_name=model_package_group_name,
        local_overrides=local_overrides,
    )


def inputs_for_settings(
    team_name: str,
    settings: Any,
    *,
    pipeline_name: str,
    region: str,
    role_arn: str,
    role_arns: Mapping[str, str],
    source_sha256: str,
    kms_key_arn: str,
    subnet_ids: Sequence[str],
    security_group_ids: Sequence[str],
    buckets: Mapping[str, str],
    source_uri: str,
    contract_uri: str,
    no_champion_uri: str,
    card_uri: str,
    model_package_group_name: str,
    local_overrides: bool = False,
) -> TabularPipelineInputs:
    """The definition inputs for a team's ``tabular`` settings (``contract``, ``metric_gate``,
    ``instances``, ``higher_is_better``: a ``pipelines.tabular.template.TabularSettings``), given
    account-specific values.

    The CDK construct (with tokens) and the local runtime (with embedded-AWS names) both call this, so
    everything taken from the team's config is mapped in exactly one place.
    """
    missing = sorted(set(STEP_ROLE_KINDS) - set(role_arns))
    if missing:
        raise ValueError(f"role_arns: no role for step kind(s) {missing}")
    return TabularPipelineInputs(
        pipeline_name=pipeline_name,
        region=region,
        role_arn=role_arn,
        preprocessing_role_arn=role_arns[PREPROCESSING],
        training_role_arn=role_arns[TRAINING],
        evaluation_role_arn=role_arns[EVALUATION],
        team=team_name,
        source_sha256=source_sha256,
        kms_key_arn=kms_key_arn,
        subnet_ids=tuple(subnet_ids),
        security_group_ids=tuple(security_group_ids),
        raw_bucket=buckets["raw"],
        features_bucket=buckets["features"],
        artifacts_bucket=buckets["artifacts"],
        reports_bucket=buckets["reports"],
        source_uri=source_uri,
        contract_uri=contract_uri,
        no_champion_uri=no_champion_uri,
        card_uri=card_uri,
        model_package_group_name=model_package_group_name,
        objective=settings.contract.objective,
        gate_metric=settings.metric_gate.metric,
        gate_threshold=settings.metric_gate.threshold,
        higher_is_better=settings.higher_is_better,
        trivial_margin=float(getattr(settings.metric_gate, "trivial_margin", DEFAULT_TRIVIAL_MARGIN)),
        fairness_max_gap=getattr(settings.metric_gate, "fairness_max_gap", None),
        processing_instance_type=settings.instances.processing,
        training_instance_type=settings.instances.training,
        evaluation_instance_type=settings.instances.processing,
        preprocess_instance_count=settings.instances.processing_count,
        pii_key_prefix=pii_key_prefix(team_name),  # the team's own prefix: only its jobs can read the key
        local_overrides=local_overrides,
    )


def _interleave(items: list[Any], separator: str) -> list[Any]:
    out: list[Any] = []
    for i, item in enumerate(items):
        out.extend([separator, item] if i else [item])
    return out


def _require_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: expected a non-empty string, got {value!r}")


def _require_s3_object(name: str, value: object, suffix: str) -> None:
    if (
        not isinstance(value, str)
        or not value.startswith("s3://")
        or not value.endswith(suffix)
        or "/" not in value.removeprefix("s3://").strip("/")
        or value.endswith("/" + suffix)
    ):
        raise ValueError(f"{name}: expected an s3:// URI of an object whose name ends in {suffix!r}, got {value!r}")


def _require_number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")


def _require_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")


def build_pipeline_definition(inputs: TabularPipelineInputs) -> str:
    """Build the pipeline definition JSON (canonical: sorted keys, compact) without touching AWS.

    Raises:
        ValueError: ``region`` or a framework version is unknown to the SDK's image registry.
        OfflineBuildError: the SDK tried to call AWS (a bug to fix here, never a fallback).
    """
    return build_offline(inputs, region=inputs.region, sentinels=_sentinel_values(inputs), build=_build_with_sdk)


def _sentinel_values(inputs: TabularPipelineInputs) -> dict[str, Any]:
    """Stand-ins for every account-specific field (see :mod:`pipelines.sdk_offline`)."""
    return {
        "pipeline_name": sentinel("pipeline-name"),
        "role_arn": role_sentinel(),
        "preprocessing_role_arn": role_sentinel("preprocessing-role"),
        "training_role_arn": role_sentinel("training-role"),
        "evaluation_role_arn": role_sentinel("evaluation-role"),
        "team": sentinel("team"),
        "kms_key_arn": sentinel("kms-key"),
        "subnet_ids": sequence_sentinels("subnet", inputs.subnet_ids),
        "security_group_ids": sequence_sentinels("security-group", inputs.security_group_ids),
        "raw_bucket": sentinel("raw-bucket"),
        "features_bucket": sentinel("features-bucket"),
        "artifacts_bucket": sentinel("artifacts-bucket"),
        "reports_bucket": sentinel("reports-bucket"),
        # Object names are kept: the containers address the files by them.
        "source_uri": uri_sentinel("source-uri", inputs.source_uri),
        "contract_uri": uri_sentinel("contract-uri", inputs.contract_uri),
        "no_champion_uri": uri_sentinel("no-champion-uri", inputs.no_champion_uri),
        "card_uri": uri_sentinel("card-uri", inputs.card_uri),
        "model_package_group_name": sentinel("model-package-group"),
    }


# --------------------------------------------------------------------------------------------
# The pipeline itself.


def _build_with_sdk(inputs: TabularPipelineInputs) -> str:
    """Compose the pipeline with the SDK (inputs hold sentinels) and return the SDK's JSON."""
    from sagemaker.core.drift_check_baselines import DriftCheckBaselines
    from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.core.network import NetworkConfig
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import (
        Channel,
        DataSource,
        ProcessingInput,
        ProcessingOutput,
        ProcessingS3Input,
        ProcessingS3Output,
        S3DataSource,
        Tag,
    )
    from sagemaker.core.training.configs import Compute, Networking, OutputDataConfig, StoppingCondition
    from sagemaker.core.workflow.conditions import (
        ConditionEquals,
        ConditionGreaterThanOrEqualTo,
        ConditionLessThanOrEqualTo,
    )
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow import ConditionStep, FailStep, ModelStep, Pipeline, ProcessingStep, TrainingStep
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.train.model_trainer import ModelTrainer

    sklearn_image = image_uri("sklearn", inputs.sklearn_framework_version, inputs.region, "training")
    xgboost_image = image_uri("xgboost", inputs.xgboost_framework_version, inputs.region, "training")
    xgboost_inference_image = image_uri("xgboost", inputs.xgboost_framework_version, inputs.region, "inference")
    session = pipeline_session(inputs.region)

    # Parameters ------------------------------------------------------------------------
    input_data_uri = ParameterString(name=PARAM_INPUT_DATA_URI)
    # Constants, never parameters: who may start an execution must not point Preprocess at another key.
    pii_key_uri = f"{S3_SCHEME}{inputs.raw_bucket}/{inputs.pii_key_prefix}{PII_KEY_FILE_NAME}"
    allowed_input_prefix = f"{S3_SCHEME}{inputs.raw_bucket}/{incoming_prefix(inputs.team)}"
    processing_instance_type = ParameterString(
        name=PARAM_PROCESSING_INSTANCE_TYPE, default_value=inputs.processing_instance_type
    )
    # Fixed at synth, not a runtime parameter: the contract check reads one status file per host,
    # so the number of hosts must be known when the condition is built.
    processing_instance_count = inputs.preprocess_instance_count
    training_instance_type = ParameterString(
        name=PARAM_TRAINING_INSTANCE_TYPE, default_value=inputs.training_instance_type
    )
    evaluation_instance_type = ParameterString(
        name=PARAM_EVALUATION_INSTANCE_TYPE, default_value=inputs.evaluation_instance_type
    )
    # The gate comes from config at synth; only a local build may expose it as a (labelled) parameter.
    gate_threshold: Any = (
        ParameterFloat(name=PARAM_GATE_THRESHOLD, default_value=float(inputs.gate_threshold))
        if inputs.local_overrides
        else float(inputs.gate_threshold)
    )
    champion_metric = ParameterString(name=PARAM_CHAMPION_METRIC, default_value="none")
    # The champion's model for the paired comparison; by default the marker object that means "none".
    champion_model_uri = ParameterString(name=PARAM_CHAMPION_MODEL_URI, default_value=inputs.no_champion_uri)
    num_round = ParameterInteger(name=PARAM_NUM_ROUND, default_value=inputs.num_round)
    max_depth = ParameterInteger(name=PARAM_MAX_DEPTH, default_value=inputs.max_depth)
    eta = ParameterFloat(name=PARAM_ETA, default_value=float(inputs.eta))
    early_stopping_rounds = ParameterInteger(
        name=PARAM_EARLY_STOPPING_ROUNDS, default_value=inputs.early_stopping_rounds
    )
    parameters = [
        input_data_uri,
        processing_instance_type,
        training_instance_type,
        evaluation_instance_type,
        champion_metric,
        champion_model_uri,
        num_round,
        max_depth,
        eta,
        early_stopping_rounds,
        *([gate_threshold] if inputs.local_overrides else []),
    ]
    tags = [{"Key": TEAM_TAG, "Value": inputs.team}]

    # Helpers -----------------------------------------------------------------------------
    execution_id = ExecutionVariables.PIPELINE_EXECUTION_ID

    def execution_uri(bucket: str, name: str) -> Any:
        return Join(on="/", values=["s3:/", bucket, inputs.pipeline_name, execution_id, name])

    def processing_input(name: str, uri: Any, local_dir: str, distribution: str = "FullyReplicated") -> Any:
        return ProcessingInput(
            input_name=name,
            s3_input=ProcessingS3Input(
                s3_uri=uri,
                local_path=local_dir,
                s3_data_type="S3Prefix",
                s3_input_mode="File",
                s3_data_distribution_type=distribution,
                s3_compression_type="None",
            ),
        )

    def processing_output(name: str, uri: Any, local_dir: str) -> Any:
        return ProcessingOutput(
            output_name=name,
            s3_output=ProcessingS3Output(s3_uri=uri, local_path=local_dir, s3_upload_mode="EndOfJob"),
        )

    def processor(script: str, role_arn: str, instance_type: Any, instance_count: Any, image_uri: str) -> Any:
        return Processor(
            role=role_arn,
            image_uri=image_uri,
            entrypoint=[*processing_entrypoint(object_name(inputs.source_uri), inputs.source_sha256), script],
            instance_type=instance_type,
            instance_count=instance_count,
            volume_size_in_gb=inputs.volume_size_gb,
            volume_kms_key=inputs.kms_key_arn,
            output_kms_key=inputs.kms_key_arn,
            max_runtime_in_seconds=inputs.max_runtime_seconds,
            base_job_name=f"flywheel-{script.removesuffix('.py')}",
            tags=tags,
            network_config=NetworkConfig(
                enable_network_isolation=True,
                security_group_ids=list(inputs.security_group_ids),
                subnets=list(inputs.subnet_ids),
                encrypt_inter_container_traffic=True,
            ),
            sagemaker_session=session,
        )

    code_input = processing_input("code", inputs.source_uri, PROCESSING_CODE_DIR)
    contract_input = processing_input("contract", inputs.contract_uri, "/opt/ml/processing/input/contract")
    contract_path = f"/opt/ml/processing/input/contract/{object_name(inputs.contract_uri)}"

    # Preprocess --------------------------------------------------------------------------
    preprocess_destinations = {
        "train": execution_uri(inputs.features_bucket, "train"),
        "validation": execution_uri(inputs.features_bucket, "validation"),
        "test": execution_uri(inputs.features_bucket, "test"),
        "baseline": execution_uri(inputs.artifacts_bucket, "baseline"),
        "status": execution_uri(inputs.reports_bucket, "status"),
        "quarantine": Join(
            on="",
            values=[
                f"{S3_SCHEME}{inputs.raw_bucket}/{quarantine_prefix(inputs.team, inputs.pipeline_name)}",
                execution_id,
            ],
        ),
    }
    # Every preprocessing host validates its own shard and writes status/validation-<host>.json; the
    # batch passes only if every host passed (a single validation.json would be last-writer-wins).
    hosts = [f"algo-{i}" for i in range(1, inputs.preprocess_instance_count + 1)]
    validation_status = [
        PropertyFile(name=f"{PROPERTY_FILE_VALIDATION}Algo{i}", output_name="status", path=f"validation-{host}.json")
        for i, host in enumerate(hosts, start=1)
    ]
    # Verified pseudonymization (pii_scan.py) runs in the same job after preprocessing, before upload.
    pii_scan_status = [
        PropertyFile(name=f"{PROPERTY_FILE_PII_SCAN}Algo{i}", output_name="status", path=f"pii-scan-{host}.json")
        for i, host in enumerate(hosts, start=1)
    ]
    preprocess = ProcessingStep(
        name=STEP_PREPROCESS,
        description="Validate the batch against the data contract, pseudonymize PII, split.",
        step_args=processor(
            "preprocess.py",
            inputs.preprocessing_role_arn,
            processing_instance_type,
            processing_instance_count,
            sklearn_image,
        ).run(
            inputs=[
                processing_input("raw", input_data_uri, "/opt/ml/processing/input/raw", distribution="ShardedByS3Key"),
                contract_input,
                processing_input("pii-key", pii_key_uri, "/opt/ml/processing/input/pii-key"),
                code_input,
            ],
            outputs=[
                processing_output(name, preprocess_destinations[name], f"/opt/ml/processing/output/{name}")
                for name in _PREPROCESS_OUTPUTS
            ],
            arguments=[
                "--contract",
                contract_path,
                "--input-dir",
                "/opt/ml/processing/input/raw",
                "--output-dir",
                "/opt/ml/processing/output",
                "--pii-key-file",
                f"/opt/ml/processing/input/pii-key/{PII_KEY_FILE_NAME}",
                # Preprocess refuses a batch outside the team's incoming prefix (its role cannot read
                # other prefixes either, but it can read the team's PII key folder).
                "--input-uri",
                input_data_uri,
                "--allowed-input-prefix",
                allowed_input_prefix,
            ],
        ),
        property_files=[*validation_status, *pii_scan_status],
    )

    def preprocess_output(name: str) -> Any:
        return preprocess.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri

    # Train ---------------------------------------------------------------------------------
    def channel(name: str, uri: Any) -> Any:
        return Channel(
            channel_name=name,
            data_source=DataSource(
                s3_data_source=S3DataSource(
                    s3_data_type="S3Prefix", s3_uri=uri, s3_data_distribution_type="FullyReplicated"
                )
            ),
            input_mode="File",
        )

    trainer = ModelTrainer(
        training_image=xgboost_image,
        role=inputs.training_role_arn,
        base_job_name="flywheel-train",
        tags=[Tag(key=TEAM_TAG, value=inputs.team)],
        sagemaker_session=session,
        compute=Compute(
            instance_type=training_instance_type,
            instance_count=1,
            volume_size_in_gb=inputs.volume_size_gb,
            volume_kms_key_id=inputs.kms_key_arn,
        ),
        networking=Networking(
            subnets=list(inputs.subnet_ids),
            security_group_ids=list(inputs.security_group_ids),
            enable_network_isolation=True,
            enable_inter_container_traffic_encryption=True,
        ),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=inputs.max_runtime_seconds),
        output_data_config=OutputDataConfig(
            s3_output_path=execution_uri(inputs.artifacts_bucket, "model"),
            kms_key_id=inputs.kms_key_arn,
            compression_type="GZIP",
        ),
        hyperparameters={
            # Script mode of the framework container, with the code as a channel: the way the
            # SDK's framework estimators run user code under network isolation.
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": f"{TRAINING_CODE_DIR}/{object_name(inputs.source_uri)}",
            # CreateTrainingJob takes string values only: render the typed parameters as strings.
            "num_round": num_round.to_string(),
            "max_depth": max_depth.to_string(),
            "eta": eta.to_string(),
            "early_stopping_rounds": early_stopping_rounds.to_string(),
            "seed": str(inputs.seed),
        },
    )
    train = TrainingStep(
        name=STEP_TRAIN,
        description="Train an XGBoost model in script mode (train.py) under network isolation.",
        step_args=trainer.train(
            input_data_config=[
                channel("train", preprocess_output("train")),
                channel("validation", preprocess_output("validation")),
                channel("contract", inputs.contract_uri),
                channel("code", inputs.source_uri),
            ]
        ),
    )
    model_artifacts = train.properties.ModelArtifacts.S3ModelArtifacts

    # Evaluate ------------------------------------------------------------------------------
    evaluation_report = PropertyFile(name=PROPERTY_FILE_EVALUATION, output_name="evaluation", path="evaluation.json")
    evaluate = ProcessingStep(
        name=STEP_EVALUATE,
        description="Score the test split, compare with the champion, write baseline statistics.",
        # Evaluate loads the XGBoost model, so it runs on the XGBoost image (which also ships
        # scikit-learn, pandas and pyarrow) — the same image that trained and will serve the model.
        step_args=processor("evaluate.py", inputs.evaluation_role_arn, evaluation_instance_type, 1, xgboost_image).run(
            inputs=[
                processing_input("model", model_artifacts, "/opt/ml/processing/input/model"),
                processing_input("test", preprocess_output("test"), "/opt/ml/processing/input/test"),
                processing_input("baseline", preprocess_output("baseline"), "/opt/ml/processing/input/baseline"),
                processing_input("champion", champion_model_uri, CHAMPION_MODEL_DIR),
                processing_input("card", inputs.card_uri, CARD_INPUT_DIR),
                contract_input,
                code_input,
            ],
            outputs=[
                processing_output(
                    "evaluation",
                    execution_uri(inputs.reports_bucket, "evaluation"),
                    "/opt/ml/processing/output/evaluation",
                )
            ],
            arguments=[
                "--model-dir",
                "/opt/ml/processing/input/model",
                "--test-dir",
                "/opt/ml/processing/input/test",
                "--baseline-dir",
                "/opt/ml/processing/input/baseline",
                "--contract",
                contract_path,
                "--output-dir",
                "/opt/ml/processing/output/evaluation",
                "--gate-metric",
                inputs.gate_metric,
                "--champion-metric",
                champion_metric,
                # model.tar.gz of the champion, or only the no-champion marker: evaluate tells them apart.
                "--champion-model-dir",
                CHAMPION_MODEL_DIR,
                "--gate-threshold",
                # container arguments are strings: a constant as text, the local parameter joined into one
                Join(on="", values=[gate_threshold]) if inputs.local_overrides else repr(float(gate_threshold)),
                # From the team's config at synth, never parameters (like the threshold).
                "--trivial-margin",
                repr(float(inputs.trivial_margin)),
                "--fairness-max-gap",
                "none" if inputs.fairness_max_gap is None else repr(float(inputs.fairness_max_gap)),
                # The model card (model-card.html beside evaluation.json, stored with the package).
                "--team",
                inputs.team,
                "--execution-id",
                execution_id,
                "--input-data-uri",
                input_data_uri,
                "--card-file",
                f"{CARD_INPUT_DIR}/{object_name(inputs.card_uri)}",
            ],
        ),
        property_files=[evaluation_report],
    )
    evaluation_prefix = evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri

    def evaluation_file(*parts: str) -> Any:
        return Join(on="/", values=[evaluation_prefix, *parts])

    # RegisterModel -------------------------------------------------------------------------
    model_builder = ModelBuilder(
        image_uri=xgboost_inference_image,
        s3_model_data_url=model_artifacts,
        role_arn=inputs.role_arn,
        sagemaker_session=session,
        env_vars={"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": INFERENCE_SUBMIT_DIRECTORY},
        instance_type=inputs.evaluation_instance_type,  # skips the SDK's instance-type detection
        dependencies=None,  # the default {"auto": False} would make register() stage code in S3
        log_level=None,  # the default sets the SDK's module logger to DEBUG, process-wide
    )
    register = ModelStep(
        name=STEP_REGISTER_MODEL,
        description="Register the model package for manual approval.",
        step_args=model_builder.register(
            model_package_group_name=inputs.model_package_group_name,
            content_types=list(CONTENT_TYPES),
            response_types=list(CONTENT_TYPES),
            # Fixed, never a parameter: whoever can start an execution must not be able to
            # register an already-approved package (approval is a separate, audited action).
            approval_status=REGISTRATION_STATUS,
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(
                    content_type="application/json", s3_uri=evaluation_file("evaluation.json")
                )
            ),
            drift_check_baselines=DriftCheckBaselines(
                model_data_statistics=MetricsSource(
                    content_type="application/json", s3_uri=evaluation_file("baseline", "statistics.json")
                ),
                model_data_constraints=MetricsSource(
                    content_type="application/json", s3_uri=evaluation_file("baseline", "constraints.json")
                ),
            ),
            customer_metadata_properties={
                "flywheel:template": "tabular",
                "flywheel:objective": inputs.objective,
                "flywheel:gate-metric": inputs.gate_metric,
                "flywheel:higher-is-better": str(inputs.higher_is_better).lower(),
                # Lineage: the raw batch (a write-once prefix) and the run; see docs/privacy.md.
                LINEAGE_INPUT_KEY: input_data_uri,
                LINEAGE_EXECUTION_KEY: execution_id,
                # The model card Evaluate wrote: what an approver reads before deciding.
                MODEL_CARD_KEY: evaluation_file(MODEL_CARD_FILE),
            },
        ),
    )

    # Conditions and failures -----------------------------------------------------------
    gate_value = JsonGet(step_name=STEP_EVALUATE, property_file=evaluation_report, json_path="gate.value")
    not_worse = JsonGet(
        step_name=STEP_EVALUATE, property_file=evaluation_report, json_path="champion.challenger_not_worse"
    )
    # gate.passed (1/0) is evaluate's decision over every check: threshold, the lead over the trivial model
    # on the gate metric and on a second metric (balanced accuracy / R²), champion not worse.
    gate_passed = JsonGet(step_name=STEP_EVALUATE, property_file=evaluation_report, json_path="gate.passed")
    comparison = ConditionGreaterThanOrEqualTo if inputs.higher_is_better else ConditionLessThanOrEqualTo
    quality_gate = ConditionStep(
        name=STEP_QUALITY_GATE,
        description="Register only if the gate metric meets the threshold, beats the trivial model and the champion.",
        conditions=[
            comparison(left=gate_value, right=gate_threshold),
            ConditionEquals(left=not_worse, right=1),
            ConditionEquals(left=gate_passed, right=1),
        ],
        if_steps=[register],
        else_steps=[
            FailStep(
                name=STEP_QUALITY_GATE_FAILED,
                error_message=Join(
                    on="",
                    values=[
                        f"Quality gate failed: {inputs.gate_metric}=",
                        # evaluate's rounded text of the value ("undefined" for a metric it could not compute)
                        JsonGet(step_name=STEP_EVALUATE, property_file=evaluation_report, json_path="gate.display"),
                        " (required ",
                        ">=" if inputs.higher_is_better else "<=",
                        " ",
                        gate_threshold,
                        "), champion=",
                        JsonGet(step_name=STEP_EVALUATE, property_file=evaluation_report, json_path="champion.display"),
                        ", challenger_not_worse=",
                        not_worse,
                        ": ",
                        JsonGet(step_name=STEP_EVALUATE, property_file=evaluation_report, json_path="gate.summary"),
                    ],
                ),
            )
        ],
    )
    pii_scan_check = ConditionStep(
        name=STEP_PII_SCAN_CHECK,
        description="Train only on outputs the PII scan proved free of raw identifiers and PII-shaped values.",
        conditions=[
            ConditionEquals(
                left=JsonGet(step_name=STEP_PREPROCESS, property_file=status, json_path="passed"),
                right=True,
            )
            for status in pii_scan_status
        ],
        if_steps=[train, evaluate, quality_gate],
        else_steps=[
            FailStep(
                name=STEP_PII_SCAN_FAILED,
                error_message=Join(
                    on="",
                    values=_interleave(
                        [
                            JsonGet(step_name=STEP_PREPROCESS, property_file=status, json_path="summary")
                            for status in pii_scan_status
                        ],
                        " | ",
                    ),
                ),
            )
        ],
    )
    data_contract_check = ConditionStep(
        name=STEP_DATA_CONTRACT_CHECK,
        description="Continue only with a batch that passed the data contract.",
        conditions=[
            ConditionEquals(
                left=JsonGet(step_name=STEP_PREPROCESS, property_file=status, json_path="passed"),
                right=True,
            )
            for status in validation_status
        ],
        if_steps=[pii_scan_check],
        else_steps=[
            FailStep(
                name=STEP_DATA_CONTRACT_FAILED,
                error_message=Join(
                    on="",
                    values=[
                        "Data contract failed: ",
                        *_interleave(
                            [
                                JsonGet(step_name=STEP_PREPROCESS, property_file=status, json_path="summary")
                                for status in validation_status
                            ],
                            " | ",
                        ),
                        ". The batch is quarantined at ",
                        preprocess_output("quarantine"),
                    ],
                ),
            )
        ],
    )

    pipeline = Pipeline(
        name=inputs.pipeline_name,
        parameters=parameters,
        steps=[preprocess, data_contract_check],
        pipeline_experiment_config=None,  # no Experiments trial per execution
        sagemaker_session=session,
    )
    return str(pipeline.definition())
