"""The permissions boundary, evaluated: what every role can do *through* it, and what nobody can.

Every check evaluates synthesized statements (actions, resources, conditions) with
:mod:`tests.security.iam_eval` — never Sid names. A role's effective permission is its identity
policies ∩ the boundary, explicit denies in either winning. The checks live in
:mod:`tests.security.boundary_checks` (the mutation suite runs the same ones on weakened templates).
"""

from __future__ import annotations

import pytest

from naming import Names
from stacks.components.guardrails import UNUSED_SAGEMAKER_ACTIONS, role_path
from tests.security.boundary_checks import (
    TRUSTS,
    _lake,
    _t,
    admin_cap_problems,
    custom_resource_problems,
    dead_grant_problems,
    log_delivery_problems,
    service_trust_problems,
    team_pipeline_problems,
    unused_surface_problems,
)
from tests.security.iam_eval import Request
from tests.security.stage_policies import stack_name

ENVS = ("dev", "staging", "prod")


@pytest.fixture(scope="module", params=ENVS)
def env(request, stages):
    return stages[request.param]


# Every role, through its boundary -----------------------------------------------------------------------


def test_every_role_carries_this_environments_boundary_and_path(env):
    roles = _t(env).roles()
    assert len(roles) >= 4
    arn = f"arn:aws:iam::{env.environment.account}:policy/{Names(env.environment.name).boundary}"
    for role in roles:
        assert role.boundary_ref == arn, role.name
        assert role.arn.startswith(f"arn:aws:iam::{env.environment.account}:role{role_path(env.environment.name)}")


def test_every_identity_grant_is_usable_through_the_boundary(env):
    """A grant the boundary silently voids is a role that fails at run time (finding 1)."""
    dead = dead_grant_problems(env)
    assert dead == [], "\n".join(dead)


# What each kind of role needs (``CUSTOM_RESOURCE_NEEDS`` in boundary_checks) ----------------------------


def test_every_custom_resource_role_can_do_its_job(env):
    problems = custom_resource_problems(env)
    assert problems == [], "\n".join(problems)


def test_restrict_default_sg_role_cannot_touch_other_vpcs(dev):
    t, sec = _t(dev), stack_name(dev, "Security")
    role = t.role(sec, "CustomVpcRestrictDefaultSG")
    sg = "arn:aws:ec2:eu-west-1:111111111111:security-group/sg-other"
    other_vpc = {"ec2:Vpc": "arn:aws:ec2:eu-west-1:111111111111:vpc/vpc-other"}
    assert not role.can(Request("ec2:RevokeSecurityGroupIngress", sg, other_vpc)).allowed


def test_log_delivery_roles_can_write_to_their_log_groups(env):
    problems = log_delivery_problems(env)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("team", ["churn", "diagnostics"])
def test_team_pipeline_roles_can_run_their_pipeline(env, team):
    """Some role of the team's stack can do each step of its pipeline (roles may be split per step)."""
    problems = team_pipeline_problems(env, team)
    assert problems == [], "\n".join(problems)


def test_team_roles_cannot_read_another_teams_raw_data(env):
    raw, _ = _lake(env, "raw")
    roles = [r for r in _t(env).roles() if r.stack == stack_name(env, "Team-churn")]
    assert not any(
        r.can(Request("s3:GetObject", f"arn:aws:s3:::{raw}/diagnostics/incoming/b/x.csv")).allowed for r in roles
    )


# What nobody can, whatever their own policy says (``_cases`` in boundary_checks) --------------------------


def test_admin_identity_is_capped_by_the_boundary(env):
    """An identity allowing ``*`` on ``*`` under the boundary: each case's decision, all reported at once."""
    wrong = admin_cap_problems(env)
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("action", UNUSED_SAGEMAKER_ACTIONS)
def test_unused_sagemaker_surfaces_are_denied_even_when_compliant(dev, action):
    assert unused_surface_problems(dev, [action]) == []


def test_no_standalone_guardrail_policy_is_left_unattached(stages):
    """Every customer-managed policy is the boundary or attached to something (no decoy controls)."""
    for stage in stages.values():
        for stack, template in _t(stage).templates.items():
            for lid, res in template["Resources"].items():
                if res["Type"] != "AWS::IAM::ManagedPolicy":
                    continue
                props = res["Properties"]
                attached = props.get("Roles") or props.get("Groups") or props.get("Users")
                is_boundary = props.get("ManagedPolicyName") == Names(stage.environment.name).boundary
                assert attached or is_boundary, f"{stack}/{lid} is attached to nothing"


@pytest.mark.parametrize(("stack", "prefix", "service", "source_arn"), TRUSTS)
def test_service_trust_is_limited_to_this_account(env, stack, prefix, service, source_arn):
    problems = service_trust_problems(env, stack, prefix, service, source_arn)
    assert problems == [], "\n".join(problems)
