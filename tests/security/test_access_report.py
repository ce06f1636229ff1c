"""``flywheel access-report`` (issues 12 and 15): the per-zone and per-key view, its intents, and that each
intent fails on a weakened copy of the synthesized templates (a statement that widens access)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import naming
from flywheel.access_report import (
    AccessReport,
    duty_problems,
    intent_problems,
    matrix_problems,
    policy_statements,
    problems,
    render_markdown,
    report_of,
    weakened,
)
from tests.security.stage_policies import templates_of

DOCS = Path(__file__).resolve().parents[2] / "docs" / "access.md"
ACCOUNT = "111111111111"


@pytest.fixture(scope="module")
def report(dev) -> AccessReport:
    return report_of(templates_of(dev), "dev", list(dev.teams))


def test_every_assertion_holds_in_every_environment(report, prod):
    assert problems(report) == {name: [] for name in problems(report)}
    prod_report = report_of(templates_of(prod), "prod", list(prod.teams))
    assert all(found == [] for found in problems(prod_report).values()), problems(prod_report)


def _kinds(labels: set[str]) -> set[str]:
    return {label.split("/", 1)[1] for label in labels}


def test_per_zone_and_per_key_readers_are_what_the_design_says(report):
    zones, keys = report.zones(), report.keys()
    # The erasure function rewrites a subject's rows in every zone (docs/privacy.md); no other role reads raw.
    assert _kinds(zones["raw"]["read"]) == {naming.PREPROCESSING, naming.ERASURE_ROLE}
    assert _kinds(keys["raw zone key"]["decrypt"]) == {naming.PREPROCESSING, naming.ERASURE_ROLE}
    assert _kinds(zones["curated"]["read"]) == {naming.DATA_SCIENTIST, naming.ERASURE_ROLE}
    people = set(naming.PERSONAS)
    for zone in ("raw", "artifacts", "capture"):
        assert not _kinds(zones[zone].get("read", set())) & people, zone
    assert not any(_kinds(zones[z].get("write", set())) & people for z in zones), "a person writes data"
    # Each team's roles reach only their own team's data (cross-team is the matrix: empty).
    assert matrix_problems(report) == []


def test_docs_access_md_is_current(report):
    expected = render_markdown(report)
    assert DOCS.read_text(encoding="utf-8") == expected, (
        "docs/access.md is stale: run `make access-docs` (flywheel access-report --env dev --markdown docs/access.md)"
    )


# -- weakenings: each widening trips its assertion ------------------------------------------------------------


def _resource(t: dict[str, Any], stack: str, prefix: str, kind: str) -> dict[str, Any]:
    (found,) = [r for lid, r in t[stack]["Resources"].items() if lid.startswith(prefix) and r["Type"] == kind]
    return found["Properties"]


def _raw_readers_widened(t: dict[str, Any]) -> None:
    """The raw bucket's and key's reader patterns widened to every Flywheel role of the environment."""
    lake = "Flywheel-dev-DataLake"
    every = f"arn:aws:iam::{ACCOUNT}:role/flywheel/dev/*"
    bucket = [r for r in t[lake]["Resources"].values() if r["Type"] == "AWS::S3::BucketPolicy"]
    key = _resource(t, lake, "LakeRawKey", "AWS::KMS::Key")["KeyPolicy"]
    for document in [b["Properties"]["PolicyDocument"] for b in bucket] + [key]:
        for stmt in document["Statement"]:
            if stmt["Effect"] == "Deny" and "ArnNotLike" in stmt.get("Condition", {}):
                stmt["Condition"]["ArnNotLike"]["aws:PrincipalArn"] = [every]


def _person_reads_raw(t: dict[str, Any]) -> None:
    _raw_readers_widened(t)
    statements = policy_statements(t, "dev", "churn", naming.DATA_SCIENTIST)
    statements[:] = [s for s in statements if s["Effect"] == "Allow"]  # its explicit raw denies dropped
    statements.append({"Effect": "Allow", "Action": ["s3:GetObject", "kms:Decrypt"], "Resource": "*"})


def _lifecycle_reads_raw(t: dict[str, Any]) -> None:
    _raw_readers_widened(t)
    policy = _resource(t, "Flywheel-dev-Team-churn", "TeamLifecycleDataArrivalPolicy", "AWS::IAM::ManagedPolicy")
    policy["PolicyDocument"]["Statement"].append({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})


def _curated_for_another_team(t: dict[str, Any]) -> None:
    policy_statements(t, "dev", "diagnostics", naming.DATA_SCIENTIST).append(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::*/*"}
    )


def _approver_starts_pipelines(t: dict[str, Any]) -> None:
    statements = policy_statements(t, "dev", "churn", naming.APPROVER)
    statements[:] = [s for s in statements if "sagemaker:StartPipelineExecution" not in s.get("Action", [])]
    statements.append({"Effect": "Allow", "Action": "sagemaker:StartPipelineExecution", "Resource": "*"})


def _boundary_denies_approvers_too(t: dict[str, Any]) -> None:
    boundary = _resource(t, "Flywheel-dev-Security", "GuardrailsPermissionsBoundary", "AWS::IAM::ManagedPolicy")
    for stmt in boundary["PolicyDocument"]["Statement"]:
        if stmt["Effect"] == "Deny" and stmt.get("Action") == "sagemaker:UpdateModelPackage":
            stmt.pop("Condition")


def _data_scientist_approves(t: dict[str, Any]) -> None:
    boundary = _resource(t, "Flywheel-dev-Security", "GuardrailsPermissionsBoundary", "AWS::IAM::ManagedPolicy")
    for stmt in boundary["PolicyDocument"]["Statement"]:
        if stmt["Effect"] == "Deny" and stmt.get("Action") == "sagemaker:UpdateModelPackage":
            stmt["Condition"]["ArnNotLike"]["aws:PrincipalArn"] = f"arn:aws:iam::{ACCOUNT}:role/flywheel/dev/*"
    statements = policy_statements(t, "dev", "churn", naming.DATA_SCIENTIST)
    statements[:] = [s for s in statements if s["Effect"] == "Allow"]
    statements.append({"Effect": "Allow", "Action": "sagemaker:UpdateModelPackage", "Resource": "*"})


WEAKENINGS: list[tuple[str, Callable[[dict[str, Any]], None], Callable[[AccessReport], list[str]], str]] = [
    ("a person reads the raw zone", _person_reads_raw, intent_problems, r"churn/data-scientist \(a person's role\)"),
    (
        "a lifecycle role reads the raw zone",
        _lifecycle_reads_raw,
        intent_problems,
        r"churn/data-arrival \(not a raw reader\)",
    ),
    (
        "curated readable by another team",
        _curated_for_another_team,
        intent_problems,
        r"diagnostics/data-scientist can s3:GetObject curated:flywheel-dev-churn",
    ),
    (
        "curated readable by another team (matrix)",
        _curated_for_another_team,
        matrix_problems,
        r"diagnostics/data-scientist can .* of team churn",
    ),
    (
        "the approver may start pipelines",
        _approver_starts_pipelines,
        duty_problems,
        r"churn/approver can start its pipelines",
    ),
    (
        "the boundary denies approvers too",
        _boundary_denies_approvers_too,
        duty_problems,
        r"churn/approver cannot approve a model",
    ),
    ("a data scientist approves", _data_scientist_approves, duty_problems, r"churn/data-scientist can approve a model"),
]


@pytest.mark.parametrize(("name", "mutate", "check", "expect"), WEAKENINGS, ids=[w[0] for w in WEAKENINGS])
def test_a_widening_trips_its_assertion(report, name, mutate, check, expect):
    import re

    assert check(report) == [], f"the unweakened templates already fail {check.__name__}"
    found = check(weakened(report, mutate))
    assert found, f"{name}: not caught by {check.__name__}"
    assert any(re.search(expect, p) for p in found), f"{name}: the problems do not name it: {found[:5]}"


def test_cli_names_an_unknown_environment():
    from flywheel.cli import app

    result = CliRunner().invoke(app, ["access-report", "--env", "nope"])
    assert result.exit_code == 2
    assert "unknown environment 'nope'" in result.output and "dev" in result.output
    assert "Traceback" not in result.output
