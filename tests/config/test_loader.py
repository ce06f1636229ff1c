"""Config is validated once, at the edge; each bad value fails with file, field and problem named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from config.loader import ConfigError, load_config, sandbox_environment

CONTRACT = {
    "target": "label",
    "objective": "binary",
    "min_rows": 20,
    "columns": [
        {"name": "customer_id", "dtype": "str", "role": "id"},
        {"name": "email", "dtype": "str", "role": "direct_identifier"},
        {"name": "postcode", "dtype": "str", "role": "quasi_identifier", "generalize": "prefix", "width": 3},
        {"name": "x", "dtype": "float", "min": 0, "max": 10},
        {"name": "label", "dtype": "int", "role": "target", "allowed": ["0", "1"]},
    ],
}
ENV = {"name": "dev", "account": "111111111111", "region": "eu-west-1"}
TEAM = {
    "name": "churn",
    "contract": "contracts/churn.json",
    "metric_gate": {"metric": "auc", "threshold": 0.7},
}


def write(tmp_path: Path, envs=None, teams=None, contract=None) -> Path:
    (tmp_path / "contracts").mkdir(exist_ok=True)
    (tmp_path / "contracts" / "churn.json").write_text(json.dumps(contract or CONTRACT))
    (tmp_path / "environments.yaml").write_text(yaml.safe_dump({"environments": envs or [ENV]}))
    (tmp_path / "teams.yaml").write_text(yaml.safe_dump({"teams": teams or [TEAM]}))
    return tmp_path


def test_valid_config_loads(tmp_path):
    cfg = load_config(write(tmp_path))
    assert cfg.environment("dev").account == "111111111111"
    team = cfg.team("churn")
    assert team.contract.target == "label" and team.higher_is_better is True


def test_shipped_config_is_valid():
    cfg = load_config()
    assert {e.name for e in cfg.environments} == {"dev", "staging", "prod"}
    assert {"churn", "diagnostics"} <= {t.name for t in cfg.teams}


@pytest.mark.parametrize(
    ("envs", "teams", "expected"),
    [
        (
            [{**ENV, "account": "12345"}],
            None,
            r"environments.yaml: environments\[0\].account: '12345' is not an AWS account id",
        ),
        (
            [{**ENV, "region": "eu-mars-1"}],
            None,
            r"environments.yaml: environments\[0\].region: unknown region 'eu-mars-1'",
        ),
        (
            [{**ENV, "interface_endpoints": ["sqs"]}],
            None,
            r"environments\[0\].interface_endpoints: unknown interface endpoint",
        ),
        (
            [{**ENV, "log_retention_days": 42}],
            None,
            r"environments\[0\].log_retention_days: 42 is not a CloudWatch Logs retention",
        ),
        ([{**ENV, "colour": "blue"}], None, r"environments\[0\].colour: Extra inputs are not permitted"),
        ([ENV, ENV], None, r"duplicate environment name\(s\): dev"),
        (None, [TEAM, TEAM], r"teams.yaml: duplicate team name\(s\): churn"),
        (
            None,
            [{**TEAM, "name": "Churn_Team"}],
            r"teams.yaml: teams\[0\].name: 'Churn_Team' cannot be used in AWS resource names",
        ),
        (
            None,
            [{**TEAM, "metric_gate": {"metric": "auc", "threshold": 1.5}}],
            r"teams\[0\]: metric_gate.threshold: 1.5 is outside \[0, 1\] for auc",
        ),
        (
            None,
            [{**TEAM, "metric_gate": {"metric": "rmse", "threshold": 3}}],
            r"metric_gate.metric: 'rmse' is not reported for objective 'binary'",
        ),
        (
            None,
            [{**TEAM, "pipelines": ["images"]}],
            r"teams\[0\].pipelines: unknown pipeline template\(s\) \['images'\]",
        ),
        (
            None,
            [{**TEAM, "deploy_target": "edge"}],
            r"teams\[0\].deploy_target: Input should be 'serverless', 'realtime' or 'batch'",
        ),
        (
            None,
            [{**TEAM, "instances": {"training": "m5.large"}}],
            r"teams\[0\].instances.training: 'm5.large' is not a SageMaker instance type",
        ),
        (
            None,
            [{**TEAM, "contract": "contracts/missing.json"}],
            r"teams\[0\].contract: .*missing.json not found",
        ),
        (
            None,
            [{**TEAM, "contract": "../../etc/passwd"}],
            r"teams\[0\].contract: '../../etc/passwd' is outside config/",
        ),
    ],
)
def test_bad_values_are_rejected_with_file_field_and_problem(tmp_path, envs, teams, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, envs=envs, teams=teams))


@pytest.mark.parametrize(
    ("contract", "expected"),
    [
        (
            {**CONTRACT, "objective": "ranking"},
            r"contracts/churn.json: contract.objective: Input should be 'binary', 'multiclass' or 'regression'",
        ),
        (
            {**CONTRACT, "columns": [*CONTRACT["columns"], {"name": "x", "dtype": "float"}]},
            r"duplicate column names: x",
        ),
        (
            {
                **CONTRACT,
                "columns": [{**c, "min": 5, "max": 1} if c["name"] == "x" else c for c in CONTRACT["columns"]],
            },
            r"min 5.0 is greater than max 1.0",
        ),
        ({**CONTRACT, "target": "nope"}, r"exactly one column with role 'target' named 'nope'"),
        (
            {**CONTRACT, "columns": [*CONTRACT["columns"], {"name": "bad name;", "dtype": "float"}]},
            r"column names must be letters, digits and underscores",
        ),
        (
            {
                **CONTRACT,
                "columns": [
                    {**c, "allowed": ["0", "1", "2"]} if c["name"] == "label" else c for c in CONTRACT["columns"]
                ],
            },
            r"binary target 'label' needs exactly two allowed values",
        ),
        (
            {
                **CONTRACT,
                "columns": [
                    {**c, "allowed": ["no", "yes"]} if c["name"] == "label" else c for c in CONTRACT["columns"]
                ],
            },
            r"column 'label': allowed values \['no', 'yes'\] are not int",
        ),
    ],
)
def test_bad_contracts_name_the_problem(tmp_path, contract, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, contract=contract))


def test_invalid_yaml_names_the_file(tmp_path):
    write(tmp_path)
    (tmp_path / "teams.yaml").write_text("teams: [unclosed")
    with pytest.raises(ConfigError, match=r"teams.yaml: not valid YAML"):
        load_config(tmp_path)


def test_sandbox_needs_account_and_region():
    with pytest.raises(ConfigError, match="CDK_DEFAULT_ACCOUNT and CDK_DEFAULT_REGION"):
        sandbox_environment(None, "eu-west-1")
    env = sandbox_environment("999999999999", "us-west-2")
    assert env.name == "sandbox" and env.max_azs == 1 and env.trail is False
    with pytest.raises(ConfigError, match="account"):
        sandbox_environment("abc", "us-west-2")


def test_unknown_environment_and_team_list_the_known_ones(tmp_path):
    cfg = load_config(write(tmp_path))
    with pytest.raises(KeyError, match="known: dev"):
        cfg.environment("qa")
    with pytest.raises(KeyError, match="known: churn"):
        cfg.team("fraud")


# --- reserved names and optional template settings (issue 8, finding 6) -----------------------------------


@pytest.mark.parametrize("name", ["quarantine", "incoming", "datacapture", "flywheel", "ingest", "preprocessing"])
def test_a_team_may_not_take_a_name_flywheel_uses_as_a_prefix(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=rf"teams\[0\]\.name: '{name}' is reserved"):
        load_config(write(tmp_path, teams=[{**TEAM, "name": name}]))


def test_reserved_names_cover_every_layout_prefix() -> None:
    import naming

    assert {naming.INCOMING, naming.QUARANTINE, naming.KEYS, naming.CAPTURE, naming.PREFIX, naming.CODE} <= (
        naming.RESERVED
    )
    assert set(naming.RAW_READER_KINDS) <= naming.RESERVED


def test_contract_and_gate_are_required_only_by_templates_that_read_them(tmp_path: Path) -> None:
    import shutil

    templates = tmp_path / "templates"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "templates" / "minimal", templates / "minimal")
    bare = {"name": "counter", "pipelines": ["minimal"]}
    (tmp_path / "c1").mkdir()
    (tmp_path / "c2").mkdir()
    config = load_config(write(tmp_path / "c1", teams=[bare]), template_dirs=[templates])
    team = config.team("counter")
    assert team.contract is None and team.metric_gate is None
    with pytest.raises(ConfigError, match=r"teams\[0\]: contract: Field required; metric_gate: Field required"):
        load_config(write(tmp_path / "c2", teams=[{"name": "churn"}]))
