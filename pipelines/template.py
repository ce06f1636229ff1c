"""The template contract: what the rest of Flywheel needs to know about a pipeline template.

A template is one folder ``pipelines/<name>/`` (or a folder in an extra search directory) holding a
``template.py`` that exposes ``TEMPLATE``, a :class:`PipelineTemplate`, next to its ``definition.py``
(the SageMaker SDK importer, built with :mod:`pipelines.sdk_offline`) and its step code. Nothing outside
the folder names the template: config validates a team's settings with :attr:`PipelineTemplate.
settings_model`, the CDK construct (``stacks.components.ml_pipeline.MlPipeline``) and the local runtime
build the definition through :meth:`PipelineTemplate.definition`, package
:attr:`PipelineTemplate.folder`, stage :meth:`PipelineTemplate.team_files` and grant
:attr:`PipelineTemplate.access`; the runtime and the run report find steps, outputs and parameters
through :attr:`PipelineTemplate.steps`. Discovery: :func:`pipelines.discover_templates` /
:func:`pipelines.load_template`.

What a template declares
    ``name``            the folder name (``_`` read as ``-``: folder ``batch_scoring``, name
                        ``batch-scoring``); part of the pipeline's name ``flywheel-<env>-<team>-<name>``
    ``folder``          the folder; its step code is packaged into ``sourcedir.tar.gz``
                        (:mod:`pipelines.packaging`: flat, deterministic; ``definition.py`` and
                        ``template.py`` are never packaged)
    ``settings_model``  a pydantic model whose fields are the team-config keys the template reads
                        (``contract``, ``metric_gate``, ``instances`` for ``tabular``); its validators hold
                        the template's rules. ``config`` validates each team with the models of its
                        templates and keeps the result (``TeamConfig.template_settings(name)``).
    ``contract_model``  the type of the team's data-contract file (``config/contracts/<team>.json``), or
                        ``None`` if the template reads none; the loader validates the file with it so an
                        error names the file
    ``definition_inputs(team_name, settings, values)``  the definition's frozen inputs for a team
                        (its name and its validated ``settings_model`` instance) and the account-specific
                        :class:`DeploymentValues` (CDK tokens or local names)
    ``build_definition(inputs)``  the canonical pipeline definition JSON (offline, deterministic)
    ``team_files(settings)``  per-team files uploaded next to the code (:class:`TeamFile`; ``tabular``:
                        ``contract.json``); their URIs reach the inputs as ``DeploymentValues.file_uris``
    ``steps``           :class:`PipelineSteps`: step, output, property-file and parameter names the
                        runtime and the run report read (never literals outside the template)
    ``access``          :class:`ExecutionAccess`: one :class:`StepRole` per step kind (what that kind's
                        jobs read and write), job kinds, registration; the construct builds one IAM role
                        per step kind (path ``/flywheel/<env>/<kind>/``) and the pipeline's own role,
                        which creates the jobs and passes exactly those roles. Only the
                        ``preprocessing`` kind may read the team's raw batches and PII key.
    ``describe(team_name, settings)``  the pipeline's description
    ``merge_status``    optional: merges per-host validation statuses (the local runtime's run outcome)
    ``schedule(settings)``  optional: the team's :class:`Schedule` (EventBridge Scheduler); a scheduled
                        template is launched by the scoring launcher with the newest Approved model
                        (``batch-scoring``), not by data arrival

Deployed vs local
    The deployed definition carries no parameter that weakens a control: the PII key location, the
    gate threshold and the allowed input prefix are constants fixed at synth from config.
    ``DeploymentValues.local_overrides`` (the local runtime only) lets a template expose such a value
    as a parameter for local experiments (``tabular``: ``GateThreshold``, listed in
    :attr:`PipelineSteps.local_override_parameters`); the run report labels a run that used one.

Adding a template = adding a folder with ``template.py`` (+ ``definition.py`` and step code); a team
names it in ``config/teams.yaml`` ``pipelines:``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from naming import INCOMING, NON_STEP_ROLE_KINDS, PIPELINE_OWNED_ZONES, PREPROCESSING, RAW_INPUTS, ZONES

#: The SageMaker job kinds a step role may run. A ``Transform`` role is the execution role of the model a
#: batch transform runs (SageMaker runs the transform job as its model's role).
JOB_KINDS: tuple[str, ...] = ("Processing", "Training", "Transform")

_ROLE_KIND = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")


@dataclass(frozen=True)
class DeploymentValues:
    """The account-specific values a definition depends on: CDK tokens at synth, local names locally.

    ``buckets`` maps zone name → bucket name for (at least) the zones of the template's
    :attr:`ExecutionAccess.zones`; ``file_uris`` maps :attr:`TeamFile.key` → ``s3://`` URI.

    ``role_arn`` is the pipeline's own role (``AWS::SageMaker::Pipeline`` ``RoleArn``: it creates the
    jobs); ``role_arns`` maps each step kind of :attr:`ExecutionAccess.step_roles` to the role its jobs
    run as — a definition sets every job's role from it, never ``role_arn``. ``source_sha256`` is the
    sha256 (hex) of the code archive at ``source_uri`` (the jobs verify it before unpacking).
    ``local_overrides``: the local runtime's build, which may expose local-only parameters.
    """

    pipeline_name: str
    region: str
    role_arn: str
    kms_key_arn: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    buckets: Mapping[str, str]
    source_uri: str
    model_package_group_name: str
    file_uris: Mapping[str, str] = field(default_factory=dict)
    role_arns: Mapping[str, str] = field(default_factory=dict)
    source_sha256: str = ""
    local_overrides: bool = False


@dataclass(frozen=True)
class TeamFile:
    """A per-team file the pipeline's jobs read (uploaded next to the code as a content-addressed asset)."""

    key: str  # the name under which its URI reaches DeploymentValues.file_uris
    file_name: str  # object name the containers see (e.g. contract.json)
    content: bytes
    construct_id: str  # id of the CDK asset construct


@dataclass(frozen=True)
class PreprocessOutputs:
    """Output names of the preprocessing step (``None``: the template has no such output)."""

    status: str | None = None  # per-host validation status files (``validation-<host>.json``)
    quarantine: str | None = None  # where a failing batch is copied
    test: str | None = None  # the test split (serving samples come from it)
    baseline: str | None = None  # baseline statistics
    #: Files in the ``status`` output: per-host ``<status_file_prefix><host>.json`` (merged with
    #: :attr:`PipelineTemplate.merge_status`), else the single ``status_file``; the quarantine report in
    #: the ``quarantine`` output. ``None``: the runtime reads no such file.
    status_file_prefix: str | None = None
    status_file: str | None = None
    quarantine_report_file: str | None = None


@dataclass(frozen=True)
class PipelineSteps:
    """Names the local runtime and the run report read from a template's runs.

    Every field but ``input_data_parameter`` may be ``None`` when the template has no such step,
    output or parameter.
    """

    input_data_parameter: str  # String parameter: the S3 prefix of the landed batch
    register_step: str | None = None  # the RegisterModel step
    parameters: tuple[str, ...] = ()  # every parameter the deployed definition declares, in order
    #: Parameters only a local build (``DeploymentValues.local_overrides``) declares, after ``parameters``.
    local_override_parameters: tuple[str, ...] = ()
    pii_key_parameter: str | None = None  # deprecated: the PII key location is fixed at synth
    #: The quality gate's name: its threshold is fixed at synth; locally it may be this Float parameter
    #: (one of ``local_override_parameters``).
    gate_parameter: str | None = None
    champion_parameter: str | None = None  # String parameter: the champion's gate metric value
    preprocess_step: str | None = None
    preprocess_outputs: PreprocessOutputs = PreprocessOutputs()
    evaluate_step: str | None = None
    evaluation_output: str | None = None  # output name of the evaluation report folder
    evaluation_file: str | None = None  # file in that folder (``evaluation.json``)
    evaluation_property_file: str | None = None
    gate_step: str | None = None  # the Condition step of the quality gate
    fail_steps: tuple[str, ...] = ()
    #: A JSON file inside the registered ``model.tar.gz`` and its field listing the model's input columns
    #: (the local deployment's sample request rows are those columns of the ``test`` output).
    model_metadata_file: str | None = None
    feature_names_field: str | None = None


def _check_zones(field_name: str, zones: tuple[str, ...]) -> None:
    unknown = sorted(set(zones) - set(ZONES))
    if unknown:
        raise ValueError(f"{field_name}: unknown zone(s) {unknown}; zones: {', '.join(ZONES)}")
    if "raw" in zones:
        raise ValueError(f"{field_name}: a pipeline never owns a prefix of the raw zone")


@dataclass(frozen=True)
class StepRole:
    """What the jobs of one step kind need; the construct builds one role per kind with exactly this.

    ``kind`` names the role (``preprocessing``, ``training``, ``evaluation``, ...; its IAM path is
    ``/flywheel/<env>/<kind>/``); ``reads_team_raw``: the team's landed batches (``<team>/incoming/``)
    and its PII key — only the ``preprocessing`` kind may, the raw zone's policies deny every other
    role; ``writes_quarantine``: ``<team>/quarantine/<pipeline>/`` of the raw zone; ``reads`` /
    ``writes``: ``<pipeline>/`` of those zones; ``job_kinds``: the SageMaker job kinds run as it.
    ``raw_input``: which of the team's raw prefixes (:data:`naming.RAW_INPUTS`) ``reads_team_raw``
    means — ``incoming`` (landed training batches) or ``scoring/incoming`` (batches to score).
    ``reads_team_models``: the model artifacts the team's model-registering pipelines wrote (the
    ``artifacts`` zone, each such pipeline's prefix) and the model images — what a ``Transform`` role
    needs to load the team's approved model.
    """

    kind: str
    reads_team_raw: bool = False
    writes_quarantine: bool = False
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    job_kinds: tuple[str, ...] = ("Processing",)
    raw_input: str = INCOMING
    reads_team_models: bool = False

    def __post_init__(self) -> None:
        if not _ROLE_KIND.match(self.kind) or self.kind in NON_STEP_ROLE_KINDS:
            raise ValueError(
                f"step role kind {self.kind!r}: use 2-32 lowercase letters, digits and hyphens, not one of "
                f"{sorted(NON_STEP_ROLE_KINDS)}"
            )
        if (self.reads_team_raw or self.writes_quarantine) and self.kind != PREPROCESSING:
            raise ValueError(
                f"step role {self.kind!r}: only the {PREPROCESSING!r} role may read raw batches, the PII key or "
                "write quarantine (the raw zone's policies deny every other role)"
            )
        _check_zones(f"step role {self.kind!r} reads", self.reads)
        _check_zones(f"step role {self.kind!r} writes", self.writes)
        unknown = sorted(set(self.job_kinds) - set(JOB_KINDS))
        if unknown or not self.job_kinds:
            raise ValueError(f"step role {self.kind!r}: job_kinds {self.job_kinds!r}; use {', '.join(JOB_KINDS)}")
        if self.raw_input not in RAW_INPUTS:
            raise ValueError(f"step role {self.kind!r}: raw_input {self.raw_input!r}; use {', '.join(RAW_INPUTS)}")

    @property
    def zones(self) -> tuple[str, ...]:
        """Every zone this role touches, in lake order."""
        touched = set(self.reads) | set(self.writes)
        if self.reads_team_raw or self.writes_quarantine:
            touched.add("raw")
        if self.reads_team_models:
            touched.add("artifacts")
        return tuple(zone for zone in ZONES if zone in touched)


@dataclass(frozen=True)
class ExecutionAccess:
    """What a template's jobs need; ``stacks.components.ml_pipeline`` grants exactly this, per step kind.

    ``step_roles``: one :class:`StepRole` per step kind. A template that declares none gets one role
    derived from the older flat fields: ``reads_team_raw`` (the team's batches and PII key),
    ``writes_quarantine`` (``<team>/quarantine/<pipeline>/`` of the raw zone), ``owned_zones``
    (read/write of ``<pipeline>/``) and ``job_kinds`` — a ``preprocessing`` role if it reads raw data,
    else a ``jobs`` role. ``registers_models``: the pipeline's role registers in the team's package group
    (always ``PendingManualApproval``).
    """

    reads_team_raw: bool = True
    writes_quarantine: bool = True
    owned_zones: tuple[str, ...] = PIPELINE_OWNED_ZONES
    job_kinds: tuple[str, ...] = ("Processing", "Training")
    registers_models: bool = True
    step_roles: tuple[StepRole, ...] = ()

    def __post_init__(self) -> None:
        _check_zones("owned_zones", self.owned_zones)
        kinds = [role.kind for role in self.step_roles]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"step_roles: a step kind is declared twice: {kinds}")

    @property
    def roles(self) -> tuple[StepRole, ...]:
        """The step roles: declared, or the one derived from the flat fields."""
        if self.step_roles:
            return self.step_roles
        raw = self.reads_team_raw or self.writes_quarantine
        return (
            StepRole(
                kind=PREPROCESSING if raw else "jobs",
                reads_team_raw=self.reads_team_raw,
                writes_quarantine=self.writes_quarantine,
                reads=self.owned_zones,
                writes=self.owned_zones,
                job_kinds=self.job_kinds,
            ),
        )

    @property
    def role_kinds(self) -> tuple[str, ...]:
        """The step kinds (keys of ``DeploymentValues.role_arns``)."""
        return tuple(role.kind for role in self.roles)

    @property
    def all_job_kinds(self) -> tuple[str, ...]:
        """Every SageMaker job kind the pipeline runs (the pipeline's role creates them)."""
        kinds = {kind for role in self.roles for kind in role.job_kinds}
        return tuple(kind for kind in JOB_KINDS if kind in kinds)

    @property
    def zones(self) -> tuple[str, ...]:
        """Every zone some role touches (buckets, keys), in lake order."""
        touched = {zone for role in self.roles for zone in role.zones}
        return tuple(zone for zone in ZONES if zone in touched)


@dataclass(frozen=True)
class Schedule:
    """When a scheduled template's pipeline runs: an EventBridge Scheduler expression, its time zone and
    whether the schedule is enabled (a template's :attr:`PipelineTemplate.schedule` returns one per team)."""

    expression: str
    timezone: str = "UTC"
    enabled: bool = True


@dataclass(frozen=True)
class PipelineTemplate:
    """One pipeline template, as declared by ``pipelines/<name>/template.py`` (``TEMPLATE``)."""

    name: str
    folder: Path
    settings_model: type[BaseModel]
    definition_inputs: Callable[[str, Any, DeploymentValues], Any]
    build_definition: Callable[[Any], str]
    steps: PipelineSteps
    access: ExecutionAccess = ExecutionAccess()
    team_files: Callable[[Any], Sequence[TeamFile]] = lambda settings: ()
    describe: Callable[[str, Any], str] = lambda team_name, settings: f"{team_name}: training pipeline"
    contract_model: type | None = None
    #: Merges the per-host validation statuses of the ``status`` output into the batch's status (a batch
    #: passes only if every host passed); ``None``: the runtime reads a single status file only.
    merge_status: Callable[[Sequence[Mapping[str, Any]]], Mapping[str, Any]] | None = None
    #: The team's schedule (``None``: the pipeline is started by events, e.g. data arrival). A scheduled
    #: template is launched by the batch-scoring launcher (``lambdas/batch_scoring``): it scores the
    #: team's new ``scoring/incoming/`` batches with the newest Approved model.
    schedule: Callable[[Any], Schedule | None] = lambda settings: None

    def __post_init__(self) -> None:
        if self.folder.name.replace("_", "-") != self.name:
            raise ValueError(f"template {self.name!r}: declared in folder {self.folder.name!r}")

    def validate_settings(self, values: Mapping[str, Any]) -> BaseModel:
        """The team's settings for this template (keys not in :attr:`settings_model` are ignored).

        Raises ValueError with ``field: problem`` messages (``; ``-separated), so config errors name the
        team's field.
        """
        subset = {key: values[key] for key in self.settings_model.model_fields if key in values}
        try:
            return self.settings_model.model_validate(subset)
        except ValidationError as exc:
            raise ValueError("; ".join(_problem(err) for err in exc.errors())) from None

    def definition(self, team_name: str, settings: Any, values: DeploymentValues) -> tuple[Any, str]:
        """``(inputs, definition JSON)`` for a team's validated ``settings`` and the account-specific ``values``."""
        inputs = self.definition_inputs(team_name, settings, values)
        return inputs, self.build_definition(inputs)

    def sourcedir_bytes(self) -> bytes:
        """The deterministic ``sourcedir.tar.gz`` of the step code."""
        from pipelines.packaging import sourcedir_bytes

        return sourcedir_bytes(self.folder)


def _problem(err: Any) -> str:
    where = ".".join(str(part) for part in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
