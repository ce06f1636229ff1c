"""What the toolchain's post-deploy steps (``toolchain/post_deploy.py``) need to know, decided at synth.

The plan is plain JSON (names, the role to assume, a sample request per team) passed to the CodeBuild step
as ``FLYWHEEL_PLAN``: the step needs no config, no CDK and no template code, only boto3. Names come from
:mod:`naming`, so they are the names the stage's stacks give the pipelines, registries and endpoints.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import naming
from config.models import EnvironmentConfig, TeamConfig
from pipelines.tabular.contract import ColumnSpec, DataContract

#: Rows in the smoke test's sample request.
SAMPLE_ROWS = 2


def toolchain_role_name(env_name: str, step: str) -> str:
    """The stage-side role a post-deploy step assumes (``flywheel-<env>-toolchain-<step>``)."""
    return f"{naming.PREFIX}-{env_name}-toolchain-{step}"


def toolchain_role_arn(environment: EnvironmentConfig, step: str, partition: str = "aws") -> str:
    """Its ARN: every role of a stage lives under ``/flywheel/<env>/`` (``stacks.stage``'s RolePath aspect)."""
    names = naming.Names(environment.name)
    name = toolchain_role_name(environment.name, step)
    return f"arn:{partition}:iam::{environment.account}:role{names.role_path()}{name}"


def step_role_name(step: str) -> str:
    """The toolchain-side role of a post-deploy CodeBuild step (named: the stage roles trust it by ARN)."""
    return f"{naming.PREFIX}-toolchain-{step}"


def _value(col: ColumnSpec, contract: DataContract) -> Any:
    """A value the contract accepts for a feature column (inside its range, one of its allowed values)."""
    if col.allowed:
        first = col.allowed[0]
        if col.dtype == "int":
            return int(first)
        if col.dtype == "bool":
            return str(first).lower() in ("true", "1")
        return str(first)
    if col.dtype in ("int", "float"):
        low, high = col.min, col.max
        value = (low + high) / 2 if low is not None and high is not None else (low if low is not None else high)
        value = 0.0 if value is None else value
        return round(value) if col.dtype == "int" else float(value)
    if col.dtype == "bool":
        return True
    if col.dtype == "date":
        return contract.reference_date
    return "sample"


def sample_instance(contract: DataContract) -> dict[str, Any]:
    """One request row of the *curated* columns an endpoint of the ``tabular`` template accepts.

    Mirrors ``pipelines/tabular/features.serving_columns`` (features and generalized quasi-identifiers;
    never ids, direct identifiers or the target); ``tests/stacks/test_toolchain_post_deploy.py`` checks the
    names against it for every configured team.
    """
    row: dict[str, Any] = {}
    for col in contract.columns:
        if col.role == "feature" or (col.role == "protected" and contract.protected_as_features):
            row[col.name] = _value(col, contract)
        elif col.role == "quasi_identifier":
            if col.generalize == "age_band":
                row[f"{col.name}_age_band"] = "30-39"
            elif col.generalize == "year":
                row[f"{col.name}_year"] = int(contract.reference_date[:4]) - 1
            else:
                row[f"{col.name}_prefix"] = "x" * (col.width or 3)
    return row


def team_plan(environment: EnvironmentConfig, team: TeamConfig, *, retrain: bool) -> dict[str, Any]:
    """One team's entry: its pipelines, registry, endpoint (none for batch), objective and sample."""
    names = naming.Names(environment.name)
    contract = team.contract if isinstance(team.contract, DataContract) else None
    return {
        "team": team.name,
        "pipelines": [names.pipeline(team.name, template) for template in team.pipelines],
        "model_package_group": names.model_package_group(team.name),
        "endpoint": None if team.deploy_target == "batch" else names.endpoint(team.name),
        "objective": contract.objective if contract else None,
        "sample": {"instances": [sample_instance(contract)] * SAMPLE_ROWS} if contract else None,
        "retrain": retrain,
    }


def plan(
    environment: EnvironmentConfig,
    teams: Iterable[TeamConfig],
    *,
    step: str,
    opt_out: Iterable[str] = (),
    require_endpoint: bool = False,
) -> str:
    """The ``FLYWHEEL_PLAN`` JSON of ``step`` (``smoke`` or ``retrain``) for one environment's stage."""
    skip = set(opt_out)
    return json.dumps(
        {
            "environment": environment.name,
            "region": environment.region,
            "role_arn": toolchain_role_arn(environment, step),
            "require_endpoint": require_endpoint,
            "teams": [team_plan(environment, t, retrain=t.name not in skip) for t in teams],
        },
        sort_keys=True,
        separators=(",", ":"),
    )
