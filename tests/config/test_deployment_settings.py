"""Deployment settings (``teams[].deployment``) and the environment's Lambda knobs: bad values name the field."""

from __future__ import annotations

import pytest

from config.loader import ConfigError, load_config
from config.models import LAMBDA_RESERVED_PER_TEAM, DeploymentSettings

from .test_loader import ENV, TEAM, write

SERVERLESS = {**TEAM, "deploy_target": "serverless", "deployment": {"accept_no_network_isolation": True}}


@pytest.mark.parametrize(
    ("deployment", "expected"),
    [
        ({"canary_percent": 60}, r"teams\[0\]\.deployment\.canary_percent: Input should be less than or equal to 50"),
        ({"canary_percent": 0}, r"deployment\.canary_percent: Input should be greater than or equal to 1"),
        ({"canary_percent": 10, "canary_instances": 1}, r"deployment: set canary_percent or canary_instances, not"),
        ({"bake_seconds": 3601}, r"deployment\.bake_seconds: Input should be less than or equal to 3600"),
        ({"max_execution_seconds": 599}, r"deployment\.max_execution_seconds: Input should be greater than or equal"),
        ({"bake_seconds": 600, "termination_wait_seconds": 300, "max_execution_seconds": 900},
         r"max_execution_seconds \(900\) must exceed bake_seconds \+ termination_wait_seconds \(900\)"),
        ({"serverless_memory_mb": 1500}, r"serverless_memory_mb: 1500 MB is not a SageMaker serverless memory size"),
        ({"serverless_max_concurrency": 201}, r"serverless_max_concurrency: Input should be less than or equal to 200"),
        ({"canary": 10}, r"deployment\.canary: Extra inputs are not permitted"),
        ({"accept_no_network_isolation": True}, r"accept_no_network_isolation applies to deploy_target serverless"),
    ],
)  # fmt: skip
def test_bad_deployment_settings_name_the_field(tmp_path, deployment, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, teams=[{**TEAM, "deployment": deployment}]))


def test_a_serverless_team_must_accept_running_outside_the_vpc(tmp_path):
    with pytest.raises(ConfigError, match=r"teams\[0\]: deploy_target serverless: .*no VPC config, network isolation"):
        load_config(write(tmp_path, teams=[{**TEAM, "deploy_target": "serverless"}]))
    team = load_config(write(tmp_path, teams=[SERVERLESS])).team("churn")
    assert team.deployment.accept_no_network_isolation is True


def test_the_canary_is_a_percentage_or_an_instance_count():
    assert DeploymentSettings().canary == ("CAPACITY_PERCENT", 10)
    assert DeploymentSettings(canary_percent=25).canary == ("CAPACITY_PERCENT", 25)
    assert DeploymentSettings(canary_instances=2).canary == ("INSTANCE_COUNT", 2)


def test_reserved_concurrency_must_leave_lambdas_unreserved_minimum(tmp_path):
    small = {**ENV, "lambda_account_concurrency": 10}  # a new account's quota
    with pytest.raises(ConfigError, match=r"environments\[0\]\.lambda_account_concurrency: 1 team\(s\) reserve 5 of"):
        load_config(write(tmp_path, envs=[small]))
    assert load_config(write(tmp_path, envs=[{**small, "lambda_reserved_concurrency": False}]))
    # exactly 100 left unreserved is enough
    fits = {**ENV, "lambda_account_concurrency": 100 + LAMBDA_RESERVED_PER_TEAM}
    assert load_config(write(tmp_path, envs=[fits])).environment("dev").lambda_reserved_concurrency


def test_the_layer_version_is_an_environment_setting(tmp_path):
    assert load_config(write(tmp_path)).environment("dev").powertools_layer_version is None
    cfg = load_config(write(tmp_path, envs=[{**ENV, "powertools_layer_version": 41}]))
    assert cfg.environment("dev").powertools_layer_version == 41
    with pytest.raises(ConfigError, match=r"powertools_layer_version: Input should be greater than or equal to 1"):
        load_config(write(tmp_path, envs=[{**ENV, "powertools_layer_version": 0}]))


def test_a_team_named_after_another_team_plus_v_is_refused(tmp_path):
    other = {**TEAM, "name": "churn-v2"}
    with pytest.raises(ConfigError, match=r"team 'churn-v2'.*falls under team 'churn'"):
        load_config(write(tmp_path, teams=[TEAM, other]))


def test_production_endpoints_need_two_instances(tmp_path):
    prod = {**ENV, "name": "prod", "endpoint_min_instances": 1}
    with pytest.raises(ConfigError, match=r"environments\[0\]: endpoint_min_instances: production endpoints need at"):
        load_config(write(tmp_path, envs=[prod]))
    assert load_config(write(tmp_path, envs=[{**prod, "endpoint_min_instances": 2}])).environment("prod")
