"""Names a team gets must fit AWS's limits and must not collide with another team's, in every environment.

Checked when the config loads (``FlywheelConfig``), before anything is synthesized, so a bad team is
rejected with a message naming the team, the name, the limit and the fix. What is checked:

* lengths and characters of every physical name derived from the team (``naming``): IAM role names of
  the personas (64), the model package group, endpoint and the models/endpoint configs the deploy
  function names ``<endpoint>-v<version>-<hash>`` (63), pipeline names (256, SageMaker's pattern:
  letters, digits, hyphens), CloudWatch alarm names (255), S3 key prefixes (kept under 256 of S3's 1024
  so object keys below them fit), the team's stack name (128);
* collisions: two teams whose pipelines get the same name (``<team>-<template>`` joins: team ``a``
  with template ``b-c`` and team ``a-b`` with template ``c``); a team whose endpoint falls under another
  team's ``<endpoint>-v*`` model and endpoint-config patterns (``churn`` and ``churn-v2``); a team whose
  name starts with ``flywheel-`` (its raw prefix could equal a pipeline's prefix).

Environments checked: the configured ones plus ``sandbox`` and ``local`` (built outside the config).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import naming
from naming import Names

#: Environments that exist without being configured: app.py's ``sandbox``, the local runtime's ``local``.
IMPLICIT_ENVIRONMENTS = ("sandbox", "local")
#: SageMaker's name pattern for pipelines, model package groups, endpoints, models, endpoint configs.
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
#: The longest ``-v<version>-<hash>`` suffix the deploy function appends (lambdas/deploy/actions.py):
#: versions up to 99999 are kept whole; the base is never truncated.
DEPLOY_SUFFIX = "-v99999-12345678"
#: Suffixes of the team's alarm names (rollback alarms ``<endpoint>-5xx``/``-latency``).
ALARM_SUFFIXES = ("-5xx", "-latency")
#: Room left below a prefix for execution ids and file names (S3 keys are at most 1024 bytes).
PREFIX_BUDGET = 256


@dataclass(frozen=True)
class Limit:
    """One AWS limit on a kind of name."""

    what: str
    maximum: int
    pattern: re.Pattern[str] | None = None
    pattern_text: str = ""


ROLE_NAME = Limit("IAM role name", 64, re.compile(r"^[\w+=,.@-]+$"), "letters, digits and +=,.@_-")
SAGEMAKER_63 = Limit("SageMaker name", 63, SAGEMAKER_NAME, "letters, digits and single hyphens inside")
PIPELINE_NAME = Limit("SageMaker pipeline name", 256, SAGEMAKER_NAME, "letters, digits and hyphens")
ALARM_NAME = Limit("CloudWatch alarm name", 255)
S3_PREFIX = Limit("S3 key prefix (of S3's 1024-byte keys)", PREFIX_BUDGET)
STACK_NAME = Limit("CloudFormation stack name", 128, re.compile(r"^[A-Za-z][A-Za-z0-9-]*$"), "letters, digits, -")


def _names(env: str, team: str, templates: Sequence[str]) -> list[tuple[Limit, str, str]]:
    """``(limit, what, name)`` of every physical name of ``team`` in ``env``."""
    n = Names(env)
    endpoint = n.endpoint(team)
    out: list[tuple[Limit, str, str]] = [
        (ROLE_NAME, f"{persona} role", n.persona_role(team, persona)) for persona in naming.PERSONAS
    ]
    out += [
        (SAGEMAKER_63, "model package group", n.model_package_group(team)),
        (SAGEMAKER_63, "endpoint", endpoint),
        (SAGEMAKER_63, "deployed model / endpoint config", endpoint + DEPLOY_SUFFIX),
        (STACK_NAME, "team stack", f"Flywheel-{env}-Team-{team}"),
        (S3_PREFIX, "raw-zone prefix", naming.incoming_prefix(team)),
        (S3_PREFIX, "capture prefix", naming.capture_prefix(endpoint)),
    ]
    out += [(ALARM_NAME, "alarm", endpoint + suffix) for suffix in ALARM_SUFFIXES]
    for template in templates:
        pipeline = n.pipeline(team, template)
        out += [(PIPELINE_NAME, f"pipeline of template {template!r}", pipeline)]
        out += [(S3_PREFIX, f"prefix of pipeline {template!r}", naming.quarantine_prefix(team, pipeline))]
    return out


def name_problems(env: str, team: str, templates: Sequence[str]) -> list[str]:
    """Each name of ``team`` in ``env`` that breaks an AWS limit, as a message naming team, name and limit."""
    problems = []
    for limit, what, name in _names(env, team, templates):
        if len(name) > limit.maximum:
            problems.append(
                f"team {team!r}: its {what} in environment {env!r} is {name!r} ({len(name)} characters), over "
                f"the {limit.what} limit of {limit.maximum}: shorten the team (or template/environment) name"
            )
        elif limit.pattern is not None and not limit.pattern.match(name.rstrip("/")):
            problems.append(
                f"team {team!r}: its {what} in environment {env!r} is {name!r}, not a valid {limit.what} "
                f"({limit.pattern_text}): rename the template or team"
            )
    return problems


def collision_problems(teams: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """Names two teams would share, or that fall under another team's name patterns."""
    problems = []
    owner: dict[str, str] = {}
    for team, templates in teams:
        if team.startswith(f"{naming.PREFIX}-"):
            problems.append(
                f"team {team!r}: names starting with '{naming.PREFIX}-' are reserved for Flywheel's own "
                "prefixes (pipelines are named flywheel-<env>-<team>-<template>): rename the team"
            )
        for template in templates:
            pipeline = f"{team}-{template}"
            if pipeline in owner and owner[pipeline] != team:
                problems.append(
                    f"teams {owner[pipeline]!r} and {team!r} would both own pipeline flywheel-<env>-{pipeline} "
                    "(and its S3 prefixes): rename one of the teams or templates"
                )
            owner.setdefault(pipeline, team)
    names = [team for team, _ in teams]
    for a in names:
        for b in names:
            if a != b and b.startswith(f"{a}-v"):
                problems.append(
                    f"team {b!r}: its endpoint flywheel-<env>-{b} falls under team {a!r}'s deployed model and "
                    f"endpoint-config names flywheel-<env>-{a}-v* (IAM patterns of {a!r}'s deploy role): "
                    f"rename {b!r} so it does not start with '{a}-v'"
                )
    return problems


def team_problems(environments: Iterable[str], teams: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """Every name-limit problem of every team in every environment (+ sandbox, local) and every collision."""
    envs = list(dict.fromkeys([*environments, *IMPLICIT_ENVIRONMENTS]))
    problems = collision_problems(teams)
    for team, templates in teams:
        for env in envs:
            problems += name_problems(env, team, templates)
    return list(dict.fromkeys(problems))
