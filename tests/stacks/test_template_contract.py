"""Adding a template is one folder: a minimal second template in a temporary directory is discovered,
validated for a team, and synthesized into a stage; MlTeam built on a bare App with explicit props."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from aws_cdk import App, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template

from config.loader import CONFIG_DIR, load_config
from naming import ZONES
from pipelines import discover_templates, load_template
from stacks import cdk_json_context
from stacks.components.ml_team import MlTeam, TeamPipeline
from stacks.stage import add_stages

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "templates" / "minimal"


def _config_with_minimal_team(tmp_path: Path) -> tuple[Path, Path]:
    templates = tmp_path / "templates"
    shutil.copytree(FIXTURE, templates / "minimal")
    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR / "contracts", config_dir / "contracts")
    shutil.copy(CONFIG_DIR / "environments.yaml", config_dir / "environments.yaml")
    team = {"name": "counter", "pipelines": ["minimal"], "contract": "contracts/churn.json",
            "metric_gate": {"metric": "auc", "threshold": 0.5}}  # fmt: skip
    (config_dir / "teams.yaml").write_text(yaml.safe_dump({"teams": [team]}), encoding="utf-8")
    return config_dir, templates


def _statements(template: Template) -> dict[str, dict]:
    ((_, policy),) = template.find_resources("AWS::IAM::ManagedPolicy").items()
    return {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


def test_a_template_folder_in_another_directory_is_discovered_and_synthesized(tmp_path):
    config_dir, templates = _config_with_minimal_team(tmp_path)
    assert "minimal" in discover_templates(templates) and "minimal" not in discover_templates()
    config = load_config(config_dir, template_dirs=[templates])
    team = config.team("counter")
    assert team.template("minimal") is load_template("minimal", search_path=[templates])

    app = App(context=cdk_json_context())
    stage = add_stages(app, [config.environment("dev")], config.teams)["dev"]
    synthesized = Template.from_stack(stage.teams["counter"])
    ((_, pipeline),) = synthesized.find_resources("AWS::SageMaker::Pipeline").items()
    assert pipeline["Properties"]["PipelineName"] == "flywheel-dev-counter-minimal"
    construct = stage.teams["counter"].pipelines["minimal"]
    document = json.loads(construct.definition_body)
    assert [s["Name"] for s in document["Steps"]] == ["Fit"]
    assert [p["Name"] for p in document["Parameters"]] == ["InputDataUri"]
    app_spec = document["Steps"][0]["Arguments"]["AppSpecification"]
    assert app_spec["ContainerEntrypoint"][-1] == "fit.py"

    # The role gets exactly what the template's access declares: no quarantine, no training, no registry.
    s = _statements(synthesized)
    assert "WriteQuarantine" not in s and "RegisterInTeamGroup" not in s
    assert sorted(s["RunPipelineJobs"]["Action"]) == [
        "sagemaker:AddTags", "sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob",
        "sagemaker:StopProcessingJob",
    ]  # fmt: skip
    assert json.dumps(s["ReadWriteOwnPrefixes"]["Resource"]).count("/flywheel-dev-counter-minimal/*") == 1
    assert s["ListOwnPrefixes"]["Condition"] == {
        "StringLike": {"s3:prefix": ["flywheel-dev-counter-minimal/*", "counter/*"]}
    }
    assert s["ReadStepCodeAndContract"]["Resource"].endswith(".gz")  # one object, the code: no team files


def _bare_stack() -> tuple[Stack, dict[str, kms.IKey], list[ec2.ISubnet], ec2.ISecurityGroup]:
    stack = Stack(App(context=cdk_json_context()), "Team", env={"account": "111111111111", "region": "eu-west-1"})
    keys: dict[str, kms.IKey] = {z: kms.Key(stack, f"{z}Key") for z in ZONES}
    subnets = [ec2.Subnet.from_subnet_attributes(stack, "Subnet", subnet_id="subnet-0aaa", route_table_id="rtb-0aaa")]
    group = ec2.SecurityGroup.from_security_group_id(stack, "Sg", "sg-0ccc")
    return stack, keys, subnets, group


def test_ml_team_with_one_tabular_pipeline():
    stack, keys, subnets, group = _bare_stack()
    settings = load_config().team("churn").template_settings("tabular")
    team = MlTeam(
        stack, "Team", env_name="dev", team_name="churn", description="", removal_policy=RemovalPolicy.DESTROY,
        pipelines=[TeamPipeline(load_template("tabular"), settings)], zone_keys=keys, subnets=subnets,
        security_group=group, buckets={z: f"bucket-{z}" for z in ZONES},
    )  # fmt: skip
    template = Template.from_stack(stack)
    assert team.registry.group_name == "flywheel-dev-churn" and set(team.pipelines) == {"tabular"}
    template.has_resource_properties(
        "AWS::SageMaker::ModelPackageGroup",
        {"ModelPackageGroupName": "flywheel-dev-churn", "ModelPackageGroupDescription": "Models of team churn"},
    )
    template.has_resource_properties("AWS::SageMaker::Pipeline", {"PipelineName": "flywheel-dev-churn-tabular"})
    s = _statements(template)
    assert s["WriteQuarantine"]["Resource"] == "arn:aws:s3:::bucket-raw/quarantine/flywheel-dev-churn-tabular/*"
    assert s["ReadTeamRawBatchesAndPiiKey"]["Resource"] == "arn:aws:s3:::bucket-raw/churn/*"
    assert json.loads(team.pipelines["tabular"].definition_body)["Steps"][0]["Name"] == "Preprocess"


def test_ml_team_without_pipelines_has_key_and_registry_only():
    stack, keys, subnets, group = _bare_stack()
    team = MlTeam(
        stack, "Team", env_name="prod", team_name="fraud", description="Fraud models", pipelines=[],
        zone_keys=keys, subnets=subnets, security_group=group, removal_policy=RemovalPolicy.RETAIN,
    )  # fmt: skip
    template = Template.from_stack(stack)
    assert team.pipelines == {}
    template.resource_count_is("AWS::SageMaker::Pipeline", 0)
    template.has_resource_properties(
        "AWS::SageMaker::ModelPackageGroup",
        {"ModelPackageGroupName": "flywheel-prod-fraud", "ModelPackageGroupDescription": "Fraud models"},
    )
    ((_, key),) = [(k, v) for k, v in template.find_resources("AWS::KMS::Key").items() if k.startswith("TeamJobKey")]
    assert key["Properties"]["EnableKeyRotation"] is True and key["DeletionPolicy"] == "Retain"
