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
    ``name``            the folder name; part of the pipeline's name ``flywheel-<env>-<team>-<name>``
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
    ``access``          :class:`ExecutionAccess`: what the execution role needs (zones and prefixes it
                        reads/writes, job kinds, registration); the construct turns it into IAM statements
    ``describe(team_name, settings)``  the pipeline's description
    ``merge_status``    optional: merges per-host validation statuses (the local runtime's run outcome)

Adding a template = adding a folder with ``template.py`` (+ ``definition.py`` and step code); a team
names it in ``config/teams.yaml`` ``pipelines:``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from naming import PIPELINE_OWNED_ZONES, ZONES


@dataclass(frozen=True)
class DeploymentValues:
    """The account-specific values a definition depends on: CDK tokens at synth, local names locally.

    ``buckets`` maps zone name → bucket name for (at least) the zones of the template's
    :attr:`ExecutionAccess.zones`; ``file_uris`` maps :attr:`TeamFile.key` → ``s3://`` URI.
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
    parameters: tuple[str, ...] = ()  # every parameter the definition declares, in order
    pii_key_parameter: str | None = None  # String parameter: S3 URI of the team's PII HMAC key
    gate_parameter: str | None = None  # Float parameter: the quality gate threshold
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


@dataclass(frozen=True)
class ExecutionAccess:
    """What a template's execution role needs; ``stacks.components.ml_pipeline`` grants exactly this.

    ``reads_team_raw``: objects under ``<team>/`` of the raw zone (batches and the PII key);
    ``writes_quarantine``: ``quarantine/<pipeline>/`` of the raw zone; ``owned_zones``: read/write of
    ``<pipeline>/`` in those zones; ``job_kinds``: SageMaker job kinds the pipeline runs
    (``Processing``, ``Training``); ``registers_models``: registration in the team's package group.
    """

    reads_team_raw: bool = True
    writes_quarantine: bool = True
    owned_zones: tuple[str, ...] = PIPELINE_OWNED_ZONES
    job_kinds: tuple[str, ...] = ("Processing", "Training")
    registers_models: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.owned_zones) - set(ZONES))
        if unknown:
            raise ValueError(f"owned_zones: unknown zone(s) {unknown}; zones: {', '.join(ZONES)}")
        if "raw" in self.owned_zones:
            raise ValueError("owned_zones: a pipeline never owns a prefix of the raw zone")

    @property
    def zones(self) -> tuple[str, ...]:
        """Every zone the role touches (buckets to list, keys to use), in lake order."""
        touched = set(self.owned_zones) | ({"raw"} if self.reads_team_raw or self.writes_quarantine else set())
        return tuple(zone for zone in ZONES if zone in touched)


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

    def __post_init__(self) -> None:
        if self.folder.name != self.name:
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
