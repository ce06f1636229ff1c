"""The ``tabular`` template's contract (:class:`pipelines.template.PipelineTemplate`): settings, steps, access.

Settings (validated by :class:`TabularSettings` when config is loaded): the team's data contract
(``contract``: :class:`pipelines.tabular.contract.DataContract`), its quality gate (``metric_gate``: a
metric ``evaluate`` reports for the contract's objective, with a threshold in the metric's range) and
the instance settings the definition uses (``instances.processing``, ``processing_count``,
``training``).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipelines.tabular import definition as d
from pipelines.tabular.contract import (
    DEFAULT_TRIVIAL_MARGIN,
    METRICS,
    NO_CHAMPION_CONTENT,
    UNIT_INTERVAL_METRICS,
    DataContract,
    contract_problems,
    merge_status,
)
from pipelines.template import (
    DeploymentValues,
    ExecutionAccess,
    PipelineSteps,
    PipelineTemplate,
    PreprocessOutputs,
    StepRole,
    TeamFile,
)

FOLDER = Path(__file__).resolve().parent
PREPROCESSING, TRAINING, EVALUATION = d.STEP_ROLE_KINDS


class GateSettings(BaseModel):
    """The quality gate: a metric ``evaluate`` reports and the threshold it must meet; the lead over the
    trivial model (``trivial_margin``) and, optionally, the largest fairness gap allowed over the contract's
    ``protected`` columns (``fairness_max_gap``: 1 - selection-rate ratio, TPR/FPR differences, or the
    per-group error gap for regression)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    metric: str
    threshold: float
    trivial_margin: float = Field(default=DEFAULT_TRIVIAL_MARGIN, ge=0.0, le=0.5)
    fairness_max_gap: float | None = Field(default=None, gt=0.0)


class InstanceSettings(BaseModel):
    """The instance settings the definition uses (the endpoint type is the platform's)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    processing: str = "ml.m5.xlarge"
    processing_count: int = Field(default=1, ge=1, le=20)
    training: str = "ml.m5.xlarge"


class CardSettings(BaseModel):
    """What the model card says about the team's models (``owner``, ``intended_use``, ``description``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    owner: str = ""
    intended_use: str = ""
    description: str = ""


class TabularSettings(BaseModel):
    """A team's ``tabular`` settings: data contract, gate (fitting the objective), instances."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contract: DataContract
    metric_gate: GateSettings
    instances: InstanceSettings = InstanceSettings()
    #: The model card's owner, intended use and description (the team's config): ``card.json``, a team file.
    card: CardSettings = CardSettings()

    @field_validator("contract")
    @classmethod
    def _contract(cls, v: DataContract) -> DataContract:
        problems = contract_problems(v)
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @model_validator(mode="after")
    def _gate_fits_objective(self) -> TabularSettings:
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
        gap = self.metric_gate.fairness_max_gap
        if gap is not None and objective != "regression" and gap > 1:
            raise ValueError(
                f"metric_gate.fairness_max_gap: {gap} is above 1; classification gaps (1 - selection-rate ratio, "
                "TPR/FPR or accuracy differences) lie in [0, 1]"
            )
        if gap is not None and not self.contract.names("protected"):
            raise ValueError(
                "metric_gate.fairness_max_gap: the data contract has no column with role 'protected' to measure "
                "groups on; add one or remove fairness_max_gap"
            )
        return self

    @property
    def higher_is_better(self) -> bool:
        """Direction of the gate metric."""
        return METRICS[self.contract.objective][self.metric_gate.metric]


def definition_inputs(team_name: str, settings: TabularSettings, values: DeploymentValues) -> d.TabularPipelineInputs:
    """The definition inputs of team ``team_name`` with ``settings`` for ``values``."""
    return d.inputs_for_settings(
        team_name,
        settings,
        pipeline_name=values.pipeline_name,
        region=values.region,
        role_arn=values.role_arn,
        role_arns=values.role_arns,
        source_sha256=values.source_sha256,
        kms_key_arn=values.kms_key_arn,
        subnet_ids=values.subnet_ids,
        security_group_ids=values.security_group_ids,
        buckets=values.buckets,
        source_uri=values.source_uri,
        contract_uri=values.file_uris["contract"],
        no_champion_uri=values.file_uris["no_champion"],
        card_uri=values.file_uris["card"],
        model_package_group_name=values.model_package_group_name,
        local_overrides=values.local_overrides,
    )


def team_files(settings: TabularSettings) -> tuple[TeamFile, ...]:
    """The team's data contract as ``contract.json`` (the step scripts read it), the "no champion" marker
    (the default of ``ChampionModelUri``: ``Evaluate``'s champion input must name an existing object) and the
    model card's fields as ``card.json`` (free text: too long for a container argument)."""
    return (
        TeamFile("contract", d.CONTRACT_FILE_NAME, settings.contract.to_json().encode(), "DataContract"),
        TeamFile("no_champion", d.NO_CHAMPION_FILE_NAME, NO_CHAMPION_CONTENT, "NoChampionMarker"),
        TeamFile(
            "card", d.CARD_FILE_NAME, json.dumps(settings.card.model_dump(), indent=1).encode(), "ModelCardFields"
        ),
    )


def describe(team_name: str, settings: TabularSettings) -> str:
    """The pipeline's description."""
    return f"{team_name}: tabular training pipeline ({settings.contract.objective})"


TEMPLATE = PipelineTemplate(
    name="tabular",
    folder=FOLDER,
    settings_model=TabularSettings,
    contract_model=DataContract,
    definition_inputs=definition_inputs,
    build_definition=d.build_pipeline_definition,
    team_files=team_files,
    describe=describe,
    merge_status=merge_status,
    access=ExecutionAccess(
        registers_models=True,
        step_roles=(
            # Preprocess: the only reader of raw batches and the PII key; writes pseudonymized splits,
            # the baseline, the validation status and (failed batches) the team's quarantine.
            StepRole(
                kind=PREPROCESSING,
                reads_team_raw=True,
                writes_quarantine=True,
                writes=("features", "artifacts", "reports"),
                job_kinds=("Processing",),
            ),
            # Train: pseudonymized splits in, model out.
            StepRole(kind=TRAINING, reads=("features",), writes=("artifacts",), job_kinds=("Training",)),
            # Evaluate: model, test split and baseline in, evaluation report out.
            StepRole(kind=EVALUATION, reads=("features", "artifacts"), writes=("reports",), job_kinds=("Processing",)),
        ),
    ),
    steps=PipelineSteps(
        input_data_parameter=d.PARAM_INPUT_DATA_URI,
        register_step=d.STEP_REGISTER_MODEL,
        parameters=d.PARAMETER_NAMES,
        local_override_parameters=d.LOCAL_OVERRIDE_PARAMETERS,
        gate_parameter=d.PARAM_GATE_THRESHOLD,
        champion_parameter=d.PARAM_CHAMPION_METRIC,
        preprocess_step=d.STEP_PREPROCESS,
        preprocess_outputs=PreprocessOutputs(
            status="status",
            quarantine="quarantine",
            test="test",
            baseline="baseline",
            status_file_prefix="validation-",
            status_file="validation.json",
            quarantine_report_file="report.json",
        ),
        evaluate_step=d.STEP_EVALUATE,
        evaluation_output="evaluation",
        evaluation_file="evaluation.json",
        evaluation_property_file=d.PROPERTY_FILE_EVALUATION,
        gate_step=d.STEP_QUALITY_GATE,
        fail_steps=(d.STEP_DATA_CONTRACT_FAILED, d.STEP_PII_SCAN_FAILED, d.STEP_QUALITY_GATE_FAILED),
        model_metadata_file="metadata.json",
        feature_names_field="feature_names",
    ),
)
