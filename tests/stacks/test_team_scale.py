"""Many teams on one platform (issue 12): one config entry per team, isolation for 1, 2 and 10 teams, what
removing a team keeps, AWS name limits and collisions, CloudFormation's per-stack limits.

Each team count is synthesized once per session (validation off, dev environment, every team from a
``teams.yaml`` of real entries — the shipped ones plus copies, as a platform team adds them); 2 teams is
the suite's session stage. The isolation matrix is :mod:`flywheel.access_report`'s evaluation of every
role (identity ∩ boundary, explicit denies, bucket and key policies) on every other team's resources.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk import App

import naming
from config.loader import CONFIG_DIR, ConfigError, load_config
from config.team_limits import team_problems
from flywheel.access_report import (
    AccessReport,
    duty_problems,
    intent_problems,
    matrix_problems,
    policy_statements,
    report_of,
    stage_templates,
    weakened,
)
from stacks import cdk_json_context
from stacks.stage import FlywheelStage, add_stages
from tests.cdk_fixtures import SynthesizedStage
from tests.security.stage_policies import templates_of

#: CloudFormation's per-stack quotas.
MAX_RESOURCES, MAX_OUTPUTS, MAX_PARAMETERS = 500, 200, 200


def team_config(tmp: Path, count: int) -> Path:
    """A config dir with ``count`` teams: the shipped entries, then copies of them under new names."""
    shutil.copytree(CONFIG_DIR / "contracts", tmp / "contracts")
    shutil.copy(CONFIG_DIR / "environments.yaml", tmp / "environments.yaml")
    shipped = yaml.safe_load((CONFIG_DIR / "teams.yaml").read_text())["teams"]
    teams = [dict(t) for t in shipped[:count]]
    for i in range(len(teams), count):
        teams.append({**shipped[i % len(shipped)], "name": f"team{i:02d}"})
    (tmp / "teams.yaml").write_text(yaml.safe_dump({"teams": teams}))
    return tmp


def synth(config_dir: Path, envs: tuple[str, ...] = ("dev",)) -> dict[str, FlywheelStage]:
    config = load_config(config_dir)
    app = App(context=cdk_json_context())
    return add_stages(app, [config.environment(e) for e in envs], config.teams)


@pytest.fixture(scope="module")
def one_team(tmp_path_factory) -> dict[str, FlywheelStage]:
    return synth(team_config(tmp_path_factory.mktemp("one"), 1))


@pytest.fixture(scope="module")
def ten_teams(tmp_path_factory) -> dict[str, FlywheelStage]:
    return synth(team_config(tmp_path_factory.mktemp("ten"), 10))


def _report(stage: FlywheelStage) -> AccessReport:
    return report_of(stage_templates(stage), stage.environment.name, list(stage.teams))


@pytest.fixture(scope="module")
def reports(one_team, ten_teams, dev: SynthesizedStage) -> dict[int, AccessReport]:
    two = report_of(templates_of(dev), "dev", list(dev.teams))
    return {1: _report(one_team["dev"]), 2: two, 10: _report(ten_teams["dev"])}


# -- isolation for 1, 2 and 10 teams ----------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 10])
def test_the_off_diagonal_is_empty(reports, count):
    report = reports[count]
    assert len(report.teams) == count
    assert matrix_problems(report) == []
    matrix = report.matrix()
    # Non-vacuous: every team has its three personas, and each can do something of its own team's.
    for team in report.teams:
        for persona in naming.PERSONAS:
            assert (team, persona) in matrix, f"{team} has no {persona} role"
            own = [pr for p, pr in report.allowed if p.team == team and p.kind == persona and pr.owner == team]
            assert own, f"{team}/{persona} can do nothing of its own team's: the evaluation is vacuous"
    # Every request was evaluated against every other team: the probes cover each team.
    assert {p.owner for p in report.probes} == set(report.teams)


@pytest.mark.parametrize("count", [1, 2, 10])
def test_raw_zone_curated_and_duties_hold(reports, count):
    assert intent_problems(reports[count]) == []
    assert duty_problems(reports[count]) == []


def test_a_data_scientist_statement_on_star_trips_the_matrix(reports):
    """The issue's weakened fixture: one statement Allow * on * in churn's data-scientist policy."""
    report = reports[2]
    star = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    weak = weakened(report, lambda t: policy_statements(t, "dev", "churn", naming.DATA_SCIENTIST).insert(0, star))
    found = matrix_problems(weak)
    assert found and all("churn/data-scientist" in p for p in found), found[:5]
    categories = {p.split(" can ")[1].split(" ")[0] for p in found}
    assert {"s3:GetObject", "sagemaker:StartPipelineExecution", "sagemaker:UpdateEndpoint"} <= categories, categories
    assert any("curated data of team diagnostics" in p for p in intent_problems(weak))


# -- one entry per team; what removing one keeps -------------------------------------------------------------


def test_each_team_is_fully_wired(ten_teams):
    stage = ten_teams["dev"]
    assert len(stage.teams) == 10
    for name, stack in stage.teams.items():
        assert set(stack.personas.roles) == set(naming.PERSONAS)
        assert stack.registry.group_name == f"flywheel-dev-{name}"
        # Copies of churn carry its templates (tabular, batch-scoring), of diagnostics only tabular.
        pipelines = [p.pipeline_name for p in stack.pipelines.values()]
        assert pipelines[0] == f"flywheel-dev-{name}-tabular"
        assert set(pipelines) <= {f"flywheel-dev-{name}-tabular", f"flywheel-dev-{name}-batch-scoring"}
        assert stack.lifecycle is not None and stack.lifecycle.endpoint_name == f"flywheel-dev-{name}"


def _template(stage: FlywheelStage, team: str) -> dict[str, Any]:
    from aws_cdk.assertions import Template

    return Template.from_stack(stage.teams[team]).to_json()


#: Resource types whose loss loses data, keys or models: retained when a team (its stack) is removed.
STATEFUL = {"AWS::KMS::Key", "AWS::SageMaker::ModelPackageGroup", "AWS::DynamoDB::Table", "AWS::Logs::LogGroup"}


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_a_removed_teams_stack_retains_its_data_keys_and_registry(stages, env):
    """Removing ``diagnostics`` from config removes its stack from the assembly (CloudFormation deletes the
    stack): its stateless resources go, every stateful one stays (DeletionPolicy Retain); its data stays in
    the shared lake buckets under its prefixes."""
    removed = _template(stages[env].stage, "diagnostics")["Resources"]
    stateful = {lid: r for lid, r in removed.items() if r["Type"] in STATEFUL}
    assert {r["Type"] for r in stateful.values()} == STATEFUL
    kept = {lid for lid, r in stateful.items() if r.get("DeletionPolicy") == "Retain"}
    assert kept == set(stateful), f"deleted with the team: {sorted(set(stateful) - kept)}"
    retained_stateless = [
        lid for lid, r in removed.items() if r["Type"] not in STATEFUL and r.get("DeletionPolicy") == "Retain"
    ]
    assert retained_stateless == [], "stateless resources would outlive the team"


def test_removing_teams_leaves_the_other_stacks_unchanged(reports):
    """The same config minus nine teams: ``churn``'s stack is byte-identical and the shared stacks keep every
    resource (same logical ids and types: nothing replaced or deleted), so a deploy after the removal deletes
    only the removed teams' stacks. The shared stacks' *properties* may lose the removed teams' parts: the raw
    zone's per-team retention rules (docs/privacy.md) and a removed serverless team's boundary exception."""
    before, after = reports[10].templates, reports[1].templates
    assert before is not None and after is not None
    assert set(after.templates) == {
        "Flywheel-dev-Security",
        "Flywheel-dev-DataLake",
        "Flywheel-dev-Audit",
        "Flywheel-dev-Team-churn",
    }
    for stack, template in after.templates.items():
        if "-Team-" in stack:
            assert before.templates[stack] == template, stack
            continue
        kinds = {lid: r["Type"] for lid, r in template["Resources"].items()}
        assert kinds == {lid: r["Type"] for lid, r in before.templates[stack]["Resources"].items()}, stack


def test_dev_does_not_retain_by_config(stages):
    """dev sets ``retain_data: false`` (config/environments.yaml): its team keys go with the team; the
    registry is retained everywhere."""
    removed = _template(stages["dev"].stage, "diagnostics")["Resources"]
    groups = [r for r in removed.values() if r["Type"] == "AWS::SageMaker::ModelPackageGroup"]
    assert groups and all(g["DeletionPolicy"] == "Retain" for g in groups)
    keys = [r for r in removed.values() if r["Type"] == "AWS::KMS::Key"]
    assert keys and all(k["DeletionPolicy"] == "Delete" for k in keys)


# -- CloudFormation limits -------------------------------------------------------------------------------------


def test_every_stack_is_within_cloudformation_limits(reports, prod):
    sizes = {}
    ten = reports[10].templates
    assert ten is not None
    for templates in (ten.templates, templates_of(prod).templates):
        for name, t in templates.items():
            sizes[name] = (len(t["Resources"]), len(t.get("Outputs", {})), len(t.get("Parameters", {})))
    assert len([n for n in sizes if "-Team-" in n]) == 10 + len(prod.teams)
    for name, (resources, outputs, parameters) in sizes.items():
        within = resources <= MAX_RESOURCES and outputs <= MAX_OUTPUTS and parameters <= MAX_PARAMETERS
        assert within, (name, sizes[name])
    largest = max((s for n, s in sizes.items() if "-Team-" in n), key=lambda s: s[0])
    # Headroom: the largest team stack uses less than a quarter of the resource quota.
    assert largest[0] < MAX_RESOURCES / 4, largest


# -- names: AWS limits and collisions, rejected when the config loads --------------------------------------------


def _write(tmp: Path, teams: list[dict[str, Any]], envs: list[dict[str, Any]] | None = None) -> Path:
    shutil.copytree(CONFIG_DIR / "contracts", tmp / "contracts")
    if envs is None:
        shutil.copy(CONFIG_DIR / "environments.yaml", tmp / "environments.yaml")
    else:
        (tmp / "environments.yaml").write_text(yaml.safe_dump({"environments": envs}))
    base = {"contract": "contracts/churn.json", "metric_gate": {"metric": "auc", "threshold": 0.7}}
    (tmp / "teams.yaml").write_text(yaml.safe_dump({"teams": [{**base, **t} for t in teams]}))
    return tmp


def test_adding_a_team_is_one_entry(tmp_path):
    config = load_config(_write(tmp_path, [{"name": "churn"}, {"name": "fraud"}]))
    assert [t.name for t in config.teams] == ["churn", "fraud"]


@pytest.mark.parametrize(
    ("teams", "message"),
    [
        (
            [{"name": "churn"}, {"name": "churn-v2"}],
            r"team 'churn-v2'.*falls under team 'churn'.*flywheel-<env>-churn-v\*",
        ),
        ([{"name": "flywheel-x"}], r"team 'flywheel-x': names starting with 'flywheel-' are reserved"),
    ],
)
def test_colliding_team_names_are_rejected_naming_both_teams(tmp_path, teams, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, teams))


def test_pipeline_names_that_join_to_the_same_name_collide():
    found = team_problems(["dev"], [("a", ["b-c"]), ("a-b", ["c"])])
    assert any("teams 'a' and 'a-b' would both own pipeline flywheel-<env>-a-b-c" in p for p in found), found


def test_names_over_aws_limits_are_rejected_naming_team_and_limit(tmp_path):
    # The longest team (21) in the longest environment name (16): every name still fits ...
    env = {"name": "e" * 16, "account": "111111111111", "region": "eu-west-1"}
    longest = "t" * 21
    assert load_config(_write(tmp_path / "ok", [{"name": longest}], [env])).team(longest)
    # ... and the checker rejects what a longer name would produce (role names 64, SageMaker names 63).
    found = team_problems(["e" * 16], [("t" * 30, ["tabular"])])
    assert any(
        "data-scientist role" in p and "IAM role name limit of 64" in p and "'" + "t" * 30 + "'" in p for p in found
    )
    assert any("endpoint" in p and "SageMaker name limit of 63" in p for p in found), found
    bad = team_problems(["dev"], [("churn", ["my_template"])])
    assert any("not a valid SageMaker pipeline name" in p for p in bad), bad


def test_the_shipped_config_and_a_hundred_teams_pass_the_name_checks():
    config = load_config()
    assert team_problems([e.name for e in config.environments], [(t.name, t.pipelines) for t in config.teams]) == []
    many = [(f"team{i:03d}", ("tabular",)) for i in range(100)]
    assert team_problems(["dev", "staging", "prod"], many) == []


def test_principals_are_validated(tmp_path):
    cases = [
        ({"data_scientist": ["arn:aws:iam::111111111111:root"]}, r"write the account id \('111111111111'\)"),
        ({"approver": ["arn:aws:iam::*:role/x"]}, r"must be 12 digits, not a wildcard"),
        ({"operator": ["arn:aws:iam::111111111111:role/*"]}, r"matches every role of the account"),
        ({"operator": ["arn:aws:iam::111111111111:user/alice"]}, r"neither an account id .* nor an IAM role ARN"),
        (
            {
                "data_scientist": ["arn:aws:iam::{account}:role/x/Lead_*"],
                "approver": ["arn:aws:iam::{account}:role/x/Lead_*"],
            },
            r"may assume both data_scientist and approver: separation of duties",
        ),
        ({"auditor": ["111111111111"]}, r"principals.auditor: Extra inputs are not permitted"),
    ]
    for i, (principals, message) in enumerate(cases):
        with pytest.raises(ConfigError, match=message):
            load_config(_write(tmp_path / str(i), [{"name": "churn", "principals": principals}]))


def test_config_errors_name_the_file_and_team_field(tmp_path):
    with pytest.raises(ConfigError, match=r"teams.yaml: teams\[0\].principals.approver"):
        load_config(_write(tmp_path, [{"name": "churn", "principals": {"approver": ["nobody"]}}]))


# -- the security gates hold for every team count ------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 10])
def test_cdk_nag_finds_nothing_unacknowledged(one_team, ten_teams, count):
    """2 teams: tests/security/test_nag.py (every environment)."""
    from stacks.nag import findings

    stage = (one_team if count == 1 else ten_teams)["dev"]
    problems = findings(stage)
    assert problems == [], "\n".join(f"{f.pack} {f.rule} {f.resource}" for f in problems[:20])


def test_cfn_lint_passes_an_added_teams_stack(reports):
    """A copied team's stack (team09 of the 10-team config) lints like the shipped teams' do."""
    import json as _json

    from cfnlint.api import ManualArgs, lint

    from tests.security.test_cfn_lint import ALLOWED_WARNINGS

    ten = reports[10].templates
    assert ten is not None
    template = ten.templates["Flywheel-dev-Team-team09"]
    matches = lint(_json.dumps(template), regions=["eu-west-1"], config=ManualArgs(regions=["eu-west-1"]))
    assert [m for m in matches if m.rule.id.startswith("E")] == []
    assert {m.rule.id for m in matches if m.rule.id.startswith("W")} <= ALLOWED_WARNINGS
