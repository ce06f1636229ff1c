"""The ``batch-scoring`` template's contract (:class:`pipelines.template.PipelineTemplate`): settings, steps, access.

A scheduled pipeline without training: new batches under the team's ``scoring/incoming/`` prefix of the
raw zone are scored with the team's latest *Approved* model through a SageMaker batch transform; the
predictions (the id's HMAC token, never the id) land in the features zone, the row counts in a summary.

Settings (validated when config is loaded, :class:`BatchScoringSettings`): the team's data ``contract``
(the one its ``tabular`` pipeline trains with — exactly one ``id`` column, whose token keys each
prediction) and ``scoring``: ``schedule`` (an EventBridge Scheduler ``cron(...)`` expression, checked
field by field), ``timezone`` (IANA), the transform's ``instance_type`` / ``instance_count`` /
``max_payload_mb``, the ``processing_instance_type`` of the prepare and summary jobs, and ``enabled``
(the schedule's state).
"""

from __future__ import annotations

import re
import zoneinfo
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from naming import INCOMING, PREPROCESSING, SCORING
from pipelines.batch_scoring import definition as d
from pipelines.tabular.contract import DataContract, contract_problems
from pipelines.template import (
    DeploymentValues,
    ExecutionAccess,
    PipelineSteps,
    PipelineTemplate,
    Schedule,
    StepRole,
    TeamFile,
)

FOLDER = Path(__file__).resolve().parent
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
#: The roles whose columns the model reads (``features.serving_columns`` of the tabular template).
_SERVING_ROLES: Final = ("feature", "quasi_identifier")

# EventBridge Scheduler cron fields: name, lowest, highest, allowed names, allowed special characters.
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_CRON_FIELDS: Final = (
    ("minutes", 0, 59, (), ""),
    ("hours", 0, 23, (), ""),
    ("day-of-month", 1, 31, (), "?LW"),
    ("month", 1, 12, _MONTHS, ""),
    ("day-of-week", 1, 7, _DAYS, "?L#"),
    ("year", 1970, 2199, (), ""),
)
_CRON = re.compile(r"^cron\((.*)\)$")
CRON_EXAMPLE: Final = "cron(0 2 * * ? *)"


def cron_problems(expression: str) -> list[str]:
    """What is wrong with an EventBridge Scheduler cron expression (empty: nothing).

    ``cron(minutes hours day-of-month month day-of-week year)``; exactly one of day-of-month and
    day-of-week is ``?``; values, ranges (``a-b``), lists (``a,b``) and increments (``a/n``, ``*/n``) in
    each field's range; ``L``/``W`` (day-of-month), ``L``/``#`` (day-of-week) as AWS documents them. A
    schedule firing every minute is refused: each run starts a batch transform.
    """
    match = _CRON.match(expression.strip())
    if match is None:
        return [f"{expression!r} is not a cron(...) expression; e.g. {CRON_EXAMPLE} (02:00 every day)"]
    parts = match.group(1).split()
    if len(parts) != len(_CRON_FIELDS):
        return [
            f"{expression!r} has {len(parts)} fields; EventBridge Scheduler needs 6: "
            "minutes hours day-of-month month day-of-week year, e.g. " + CRON_EXAMPLE
        ]
    problems = [
        problem
        for part, (name, low, high, names, special) in zip(parts, _CRON_FIELDS, strict=True)
        for problem in _field_problems(part, name, low, high, names, special)
    ]
    day_of_month, day_of_week = parts[2], parts[4]
    if (day_of_month == "?") == (day_of_week == "?"):
        problems.append(
            f"{expression!r}: exactly one of day-of-month ({day_of_month!r}) and day-of-week ({day_of_week!r}) "
            "must be '?'"
        )
    if parts[0] == "*" or re.fullmatch(r"(\*|0)/1", parts[0]):
        problems.append(f"{expression!r} fires every minute; a batch transform per minute is not a schedule")
    return problems


def _field_problems(part: str, name: str, low: int, high: int, names: tuple[str, ...], special: str) -> list[str]:
    if part in ("*", "?"):
        return [] if part == "*" or "?" in special else [f"{name}: '?' is allowed only in day-of-month/day-of-week"]
    problems: list[str] = []
    for item in part.split(","):
        base, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            problems.append(f"{name}: increment {step!r} in {item!r} is not a positive number")
        if "L" in special and base in ("L", "LW") and name == "day-of-month":
            continue
        if "W" in special and base.endswith("W") and base[:-1].isdigit():
            base = base[:-1]
        if "L" in special and name == "day-of-week" and base.endswith("L") and len(base) > 1:
            base = base[:-1]
        if "#" in special and "#" in base:
            base, _, nth = base.partition("#")
            if not nth.isdigit() or not 1 <= int(nth) <= 5:
                problems.append(f"{name}: {item!r}: the n-th weekday after '#' must be 1-5")
        if base == "*" and step:
            continue
        for value in base.split("-") if "-" in base[1:] else [base]:
            number = _value(value, names)
            if number is None:
                hint = f" or one of {'/'.join(names)}" if names else ""
                problems.append(f"{name}: {value!r} in {item!r} is not a number{hint}")
            elif not low <= number <= high:
                problems.append(f"{name}: {value} in {item!r} is outside {low}-{high}")
    return problems


def _value(text: str, names: tuple[str, ...]) -> int | None:
    if text.isdigit():
        return int(text)
    if text.upper() in names:
        return names.index(text.upper()) + 1
    return None


class ScoringSettings(BaseModel):
    """The team's ``scoring:`` settings (schedule and transform capacity)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schedule: str
    timezone: str = "UTC"
    enabled: bool = True
    instance_type: str = "ml.m5.large"
    instance_count: int = Field(default=1, ge=1, le=10)
    max_payload_mb: int = Field(default=6, ge=1, le=100)
    processing_instance_type: str = "ml.m5.large"

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        problems = cron_problems(v)
        if problems:
            raise ValueError("; ".join(problems))
        return v.strip()

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        if v not in zoneinfo.available_timezones():
            raise ValueError(f"{v!r} is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)")
        return v

    @field_validator("instance_type", "processing_instance_type")
    @classmethod
    def _instance_type(cls, v: str) -> str:
        if not _INSTANCE_TYPE.match(v):
            raise ValueError(f"{v!r} is not a SageMaker instance type (ml.<family>.<size>, e.g. ml.m5.large)")
        return v


class BatchScoringSettings(BaseModel):
    """A team's ``batch-scoring`` settings: its data contract (one id column) and ``scoring``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contract: DataContract
    scoring: ScoringSettings

    @field_validator("contract")
    @classmethod
    def _contract(cls, v: DataContract) -> DataContract:
        problems = contract_problems(v)
        if problems:
            raise ValueError("; ".join(problems))
        ids = v.names("id")
        if len(ids) != 1:
            raise ValueError(
                f"batch-scoring keys each prediction by the token of exactly one id column; the contract has "
                f"{len(ids)} ({', '.join(ids) or 'none'}): give it one column with role 'id'"
            )
        return v


def serving_column_count(contract: DataContract) -> int:
    """How many columns the model reads: features (and protected columns used as features) and one
    generalized column per quasi-identifier (``features.serving_columns`` of the tabular template)."""
    return sum(
        1
        for col in contract.columns
        if col.role in _SERVING_ROLES or (col.role == "protected" and contract.protected_as_features)
    )


def definition_inputs(team_name: str, settings: BatchScoringSettings, values: DeploymentValues) -> d.BatchScoringInputs:
    """The definition inputs of team ``team_name`` with ``settings`` for ``values``."""
    return d.inputs_for_settings(
        team_name,
        settings,
        serving_column_count=serving_column_count(settings.contract),
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
    )


def team_files(settings: BatchScoringSettings) -> tuple[TeamFile, ...]:
    """The team's data contract as ``contract.json`` (``prepare.py`` reads it)."""
    return (TeamFile("contract", d.CONTRACT_FILE_NAME, settings.contract.to_json().encode(), "DataContract"),)


def describe(team_name: str, settings: BatchScoringSettings) -> str:
    """The pipeline's description."""
    return f"{team_name}: batch scoring with the latest approved model ({settings.scoring.schedule})"


def schedule(settings: BatchScoringSettings) -> Schedule:
    """The team's scoring schedule (validated cron, IANA time zone, enabled or not)."""
    scoring = settings.scoring
    return Schedule(expression=scoring.schedule, timezone=scoring.timezone, enabled=scoring.enabled)


TEMPLATE = PipelineTemplate(
    name="batch-scoring",
    folder=FOLDER,
    settings_model=BatchScoringSettings,
    contract_model=DataContract,
    definition_inputs=definition_inputs,
    build_definition=d.build_pipeline_definition,
    team_files=team_files,
    describe=describe,
    schedule=schedule,
    access=ExecutionAccess(
        registers_models=False,
        step_roles=(
            # Prepare: the batch to score and the PII key in; tokenized scoring input and its manifest out.
            StepRole(
                kind=PREPROCESSING,
                reads_team_raw=True,
                raw_input=f"{SCORING}/{INCOMING}",
                writes=("features", "reports"),
                job_kinds=("Processing",),
            ),
            # Score: the model's execution role — the team's model artifacts and images, the scoring
            # input in, predictions out.
            StepRole(
                kind=d.SCORING,
                reads=("features",),
                writes=("features",),
                job_kinds=("Transform",),
                reads_team_models=True,
            ),
            # Summarize: manifest and predictions in, summary out.
            StepRole(kind=d.REPORTING, reads=("features", "reports"), writes=("reports",), job_kinds=("Processing",)),
        ),
    ),
    steps=PipelineSteps(
        input_data_parameter=d.PARAM_INPUT_DATA_URI,
        parameters=d.PARAMETER_NAMES,
        fail_steps=(d.STEP_INPUT_REJECTED, d.STEP_SCORING_FAILED),
    ),
)
