"""Every physical name and S3 layout Flywheel derives, in one place (standard library only).

Stacks, Lambdas, pipeline definition builders and the local runtime all import this module, so a
name the CDK gives a deployed resource is, by construction, the name the local runtime provisions and
the Lambdas look for. Nothing here reads config or the environment: callers pass the environment and
team names (already validated by ``config``).

Names (per environment, :class:`Names`)
    ``flywheel-<env>-<zone>``              local zone bucket (deployed buckets get generated names and
                                           are exported as ``flywheel-<env>-<zone>-bucket``)
    ``flywheel_<env>_<zone>``              Glue database of a zone
    ``flywheel-<env>-<team>``              the team's model package group and endpoint
    ``flywheel-<env>-<team>-<template>``   a team's pipeline (and its own S3 prefix in each zone)
    ``flywheel-boundary-<env>``            the permissions boundary every Flywheel role carries
    ``/flywheel/<env>/<kind>/``            IAM path of a role kind (:meth:`Names.role_path`): the step
                                           roles ``preprocessing``/``training``/``evaluation``, the
                                           pipelines' own roles ``pipeline``, the ``ingest`` path that
                                           lands raw data, the ``erasure`` handler and the operators'
                                           ``break-glass`` role. The
                                           raw zone's bucket and key policies name the raw readers by it.
                                           People's roles: ``data-scientist``, ``approver``, ``operator``.
    ``flywheel-<env>-<team>-<persona>``    a person's role of a team (path ``/flywheel/<env>/<persona>/``)

S3 layout (per team / pipeline, module functions)
    raw:        ``<team>/incoming/<batch>/<file>`` (landed batches), ``<team>/scoring/incoming/<batch>/<file>``
                (batches to score with the team's approved model), ``<team>/_keys/pii-hmac.key``
                (the team's PII HMAC key), ``<team>/quarantine/<pipeline>/<execution>/`` (failed batches)
                ``<team>/_erasure/requests/<request>.json`` (erasure requests: they name a subject)
    reports:    also ``_erasure/<team>/<request>.json`` (erasure receipts, no PII)
    features, artifacts, reports: ``<pipeline>/<execution>/...``
    capture:    ``datacapture/<endpoint>/<variant>/<yyyy>/<mm>/<dd>/<hh>/...``
    artifacts:  ``_code/...`` (step code and per-team files the local runtime uploads)
    reports:    ``drift/<endpoint>/<window>/report.json`` (+ ``metrics.json``): drift monitor runs

Team names never equal a prefix Flywheel puts next to them (:data:`RESERVED`): a team called
``quarantine`` would otherwise own ``quarantine/`` of the raw zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

PREFIX: Final = "flywheel"

#: The data-lake zones, in the order the lake builds them.
ZONES: Final[tuple[str, ...]] = ("raw", "curated", "features", "artifacts", "capture", "reports")
#: The zones a training pipeline reads or writes.
PIPELINE_ZONES: Final[tuple[str, ...]] = ("raw", "features", "artifacts", "reports")
#: The zones in which a pipeline owns the prefix ``<pipeline>/``.
PIPELINE_OWNED_ZONES: Final[tuple[str, ...]] = ("features", "artifacts", "reports")

INCOMING: Final = "incoming"
SCORING: Final = "scoring"
#: The raw-zone inputs a template's preprocessing role may read (below ``<team>/``): landed training
#: batches and batches to score.
RAW_INPUTS: Final[tuple[str, ...]] = (INCOMING, f"{SCORING}/{INCOMING}")
QUARANTINE: Final = "quarantine"
KEYS: Final = "_keys"
PII_KEY_FILE: Final = "pii-hmac.key"
CAPTURE: Final = "datacapture"
CODE: Final = "_code"
#: Erasure: requests under ``<team>/_erasure/requests/`` (raw zone), receipts under ``_erasure/<team>/`` (reports).
ERASURE: Final = "_erasure"
ERASURE_REQUESTS: Final = "requests"
DRIFT: Final = "drift"

# IAM role kinds (the segment after /flywheel/<env>/ in a role's path).
PREPROCESSING: Final = "preprocessing"
TRAINING: Final = "training"
EVALUATION: Final = "evaluation"
PIPELINE_ROLE: Final = "pipeline"
INGEST: Final = "ingest"
BREAK_GLASS: Final = "break-glass"
#: The erasure handler's role: it reads and rewrites a team's raw objects to remove a data subject.
ERASURE_ROLE: Final = "erasure"
#: The role kinds that may read raw data and decrypt it with the raw zone key (the raw bucket and key
#: policies deny everyone else): the preprocessing step roles, the ingest path, break-glass operators.
RAW_READER_KINDS: Final[tuple[str, ...]] = (PREPROCESSING, INGEST, BREAK_GLASS, ERASURE_ROLE)
# People's roles per team (stacks/components/personas.py): the role kind is the persona.
DATA_SCIENTIST: Final = "data-scientist"
APPROVER: Final = "approver"
OPERATOR: Final = "operator"
#: The personas every team gets, in the order the access report lists them.
PERSONAS: Final[tuple[str, ...]] = (DATA_SCIENTIST, APPROVER, OPERATOR)
#: Role kinds a template's step may not use (they are not step roles).
NON_STEP_ROLE_KINDS: Final[frozenset[str]] = frozenset({PIPELINE_ROLE, INGEST, BREAK_GLASS, ERASURE_ROLE, *PERSONAS})

#: Names a team may not have: every prefix Flywheel uses next to team prefixes (or as a name part).
RESERVED: Final[frozenset[str]] = frozenset(
    {INCOMING, QUARANTINE, KEYS, CAPTURE, PREFIX, CODE, ERASURE, "keys", "code", *RAW_READER_KINDS, PIPELINE_ROLE}
)
#: Start of every permissions boundary's name (``Names.boundary``: ``flywheel-boundary-<env>``).
BOUNDARY_PREFIX: Final = f"{PREFIX}-boundary-"
S3_SCHEME: Final = "s3://"
#: The metric dimension naming the team (lifecycle handlers emit it; the team's alarms select on it).
TEAM_DIMENSION: Final = "team"


def _require_zone(zone: str) -> str:
    if zone not in ZONES:
        raise ValueError(f"unknown zone {zone!r}; zones: {', '.join(ZONES)}")
    return zone


@dataclass(frozen=True)
class Names:
    """The physical names of one environment (``dev``, ``prod``, ``local``, ...)."""

    env: str

    def bucket(self, zone: str) -> str:
        """A zone's bucket as the local runtime names it (deployed buckets use generated names)."""
        return f"{PREFIX}-{self.env}-{_require_zone(zone)}"

    def bucket_export(self, zone: str) -> str:
        """The CloudFormation export of a zone bucket's (generated) name."""
        return f"{PREFIX}-{self.env}-{_require_zone(zone)}-bucket"

    def glue_database(self, zone: str) -> str:
        """The Glue database of a zone (underscores: Glue names are lower-case identifiers)."""
        return f"{PREFIX}_{self.env}_{_require_zone(zone)}"

    def key_alias(self, purpose: str) -> str:
        """The KMS alias of a key (a zone name, or ``<team>-jobs`` for a team's job key)."""
        return f"alias/{PREFIX}-{self.env}-{purpose}"

    def job_key_purpose(self, team: str) -> str:
        """The purpose (alias suffix) of a team's SageMaker job key."""
        return f"{team}-jobs"

    def model_package_group(self, team: str) -> str:
        """The team's model registry."""
        return f"{PREFIX}-{self.env}-{team}"

    def pipeline(self, team: str, template: str) -> str:
        """A team's pipeline of one template; also its prefix in the pipeline-owned zones."""
        return f"{PREFIX}-{self.env}-{team}-{template}"

    def execution_role(self, team: str) -> str:
        """The local runtime's name for a team's pipeline execution role (deployed roles: generated)."""
        return f"{PREFIX}-{self.env}-{team}-execution"

    def endpoint(self, team: str) -> str:
        """The team's serving endpoint."""
        return f"{PREFIX}-{self.env}-{team}"

    def persona_role(self, team: str, persona: str) -> str:
        """``flywheel-<env>-<team>-<persona>``: a person's role of a team (a fixed name people assume)."""
        if persona not in PERSONAS:
            raise ValueError(f"unknown persona {persona!r}; personas: {', '.join(PERSONAS)}")
        return f"{PREFIX}-{self.env}-{team}-{persona}"

    def role_path(self, kind: str | None = None) -> str:
        """``/flywheel/<env>/`` (every role of the environment), or ``/flywheel/<env>/<kind>/``.

        A path, not a name prefix: it is exact (generated role names are truncated) and cannot be
        changed once a role exists, so a policy can name a role kind by ``aws:PrincipalArn``.
        """
        return f"/{PREFIX}/{self.env}/" + (f"{kind}/" if kind else "")

    def role_arn_pattern(self, kind: str, *, account: str, partition: str = "aws") -> str:
        """``arn:<partition>:iam::<account>:role/flywheel/<env>/<kind>/*``: every role of one kind."""
        return f"arn:{partition}:iam::{account}:role{self.role_path(kind)}*"

    @property
    def boundary(self) -> str:
        """The permissions boundary's managed-policy name."""
        return f"{BOUNDARY_PREFIX}{self.env}"


# S3 layout -------------------------------------------------------------------------------------------


def team_raw_prefix(team: str) -> str:
    """``<team>/``: everything of a team in the raw zone (batches and its PII key)."""
    return f"{team}/"


def incoming_prefix(team: str) -> str:
    """``<team>/incoming/``: where a team's raw batches land (``<batch>/<file>`` below it)."""
    return f"{team}/{INCOMING}/"


def scoring_incoming_prefix(team: str) -> str:
    """``<team>/scoring/incoming/``: where a team's batches to score land (``<batch>/<file>`` below it)."""
    return f"{team}/{SCORING}/{INCOMING}/"


def raw_input_prefix(team: str, raw_input: str = INCOMING) -> str:
    """``<team>/<raw_input>/`` for one of :data:`RAW_INPUTS`; ValueError for anything else."""
    if raw_input not in RAW_INPUTS:
        raise ValueError(f"unknown raw input {raw_input!r}; raw inputs: {', '.join(RAW_INPUTS)}")
    return f"{team}/{raw_input}/"


def pii_key_prefix(team: str) -> str:
    """``<team>/_keys/``: the folder of the team's PII HMAC key in the raw zone."""
    return f"{team}/{KEYS}/"


def pii_key_object(team: str) -> str:
    """``<team>/_keys/pii-hmac.key``: the team's PII HMAC key object in the raw zone."""
    return f"{pii_key_prefix(team)}{PII_KEY_FILE}"


def quarantine_prefix(team: str, pipeline: str) -> str:
    """``<team>/quarantine/<pipeline>/``: where a team's pipeline copies batches that fail their contract
    (raw zone; under the team's prefix, so quarantined PII stays with the team's raw data)."""
    return f"{team}/{QUARANTINE}/{pipeline}/"


def team_quarantine_prefix(team: str) -> str:
    """``<team>/quarantine/``: every quarantined batch of the team (all its pipelines)."""
    return f"{team}/{QUARANTINE}/"


def erasure_request_prefix(team: str) -> str:
    """``<team>/_erasure/requests/``: where erasure requests for the team's data subjects are put (raw zone:
    a request names a subject in clear, so it lives with the team's PII, readable by raw readers only)."""
    return f"{team}/{ERASURE}/{ERASURE_REQUESTS}/"


def erasure_receipt_prefix(team: str) -> str:
    """``_erasure/<team>/``: the team's erasure receipts (reports zone; they hold no PII)."""
    return f"{ERASURE}/{team}/"


def code_prefix() -> str:
    """``_code/``: step code and per-team files the local runtime uploads (artifacts zone)."""
    return f"{CODE}/"


def pipeline_prefix(pipeline: str) -> str:
    """``<pipeline>/``: a pipeline's own prefix in the features, artifacts and reports zones."""
    return f"{pipeline}/"


def capture_prefix(endpoint: str) -> str:
    """``datacapture/<endpoint>/``: an endpoint's inference capture in the capture zone.

    SageMaker writes ``<DestinationS3Uri>/<endpoint>/<variant>/<yyyy>/<mm>/<dd>/<hh>/...`` below the
    data-capture destination, which Flywheel sets to ``s3://<capture bucket>/datacapture``.
    """
    return f"{CAPTURE}/{endpoint}/"


def drift_prefix(endpoint: str) -> str:
    """``drift/<endpoint>/``: the drift monitor's reports of an endpoint in the reports zone (pipeline
    prefixes start with ``flywheel-``, so the two never overlap)."""
    return f"{DRIFT}/{endpoint}/"


def drift_alarm_name(endpoint: str) -> str:
    """``<endpoint>-drift``: the alarm on the drift monitor's drifted-feature count (deployed and local)."""
    return f"{endpoint}-drift"


def s3_uri(bucket: str, key: str = "") -> str:
    """``s3://<bucket>/<key>``."""
    return f"{S3_SCHEME}{bucket}/{key}"


def split_s3_uri(uri: object) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``; ValueError naming the value for anything else."""
    if not isinstance(uri, str) or not uri.startswith(S3_SCHEME):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    return bucket, key
