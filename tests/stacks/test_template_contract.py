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

import naming
from config.loader import CONFIG_DIR, load_config
from naming import ZONES
from pipelines import discover_templates, load_template
from stacks import cdk_json_context
from stacks.components.lifecycle import LIFECYCLE_ROLE_KINDS
from stacks.components.ml_team import MlTeam, TeamPipeline
from stacks.components.monitoring import MONITORING_ROLE_KINDS
from stacks.stage import add_stages
from tests.security.iam_eval import Request, evaluate

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

    # The step role gets exactly what the template's access declares: raw batches (a preprocessing role),
    # its own reports prefix, no quarantine, no registry; the pipeline's role only processing jobs.
    roles = _roles_by_kind(synthesized)
    expected = {"preprocessing", "pipeline", *LIFECYCLE_ROLE_KINDS, *naming.PERSONAS, *MONITORING_ROLE_KINDS}
    assert set(roles) == expected
    pre, pipeline = roles["preprocessing"], roles["pipeline"]
    raw, reports = "arn:aws:s3:::raw-bucket", "arn:aws:s3:::reports-bucket"
    assert _allowed(pre, "s3:GetObject", f"{raw}/counter/incoming/b/part.csv")
    assert not _allowed(pre, "s3:PutObject", f"{raw}/counter/quarantine/flywheel-dev-counter-minimal/e/x")
    assert _allowed(pre, "s3:PutObject", f"{reports}/flywheel-dev-counter-minimal/e/summary/x.json")
    assert not _allowed(pre, "s3:GetObject", "arn:aws:s3:::features-bucket/flywheel-dev-counter-minimal/e/x")
    job = "arn:aws:sagemaker:eu-west-1:111111111111:{}-job/pipelines-x"
    tagged = {"aws:RequestTag/flywheel:team": "counter", "aws:TagKeys": ["flywheel:team"]}
    assert _allowed(pipeline, "sagemaker:CreateProcessingJob", job.format("processing"), **tagged)
    assert not _allowed(pipeline, "sagemaker:CreateTrainingJob", job.format("training"), **tagged)
    pending = {"sagemaker:ModelApprovalStatus": "PendingManualApproval"}
    group = "arn:aws:sagemaker:eu-west-1:111111111111:model-package-group/flywheel-dev-counter"
    assert not _allowed(pipeline, "sagemaker:CreateModelPackage", group, **pending)


def _roles_by_kind(template: Template) -> dict[str, list[dict]]:
    """Role path kind → the identity policy documents attached to it (CDK intrinsics left as they are)."""
    out: dict[str, list[dict]] = {}
    policies = template.find_resources("AWS::IAM::ManagedPolicy").values()
    for role_id, role in template.find_resources("AWS::IAM::Role").items():
        kind = role["Properties"]["Path"].strip("/").split("/")[-1]
        docs = [p["Properties"]["PolicyDocument"] for p in policies if {"Ref": role_id} in p["Properties"]["Roles"]]
        out[kind] = [_plain(d) for d in docs]
    return out


def _plain(node):
    """Intrinsics replaced by stand-ins: imported bucket names by ``<zone>-bucket``, the rest by ``X``."""
    if isinstance(node, list):
        return [_plain(n) for n in node]
    if isinstance(node, dict):
        if "Fn::ImportValue" in node:
            return node["Fn::ImportValue"].removeprefix("flywheel-dev-")
        if "Fn::Join" in node:
            return "".join(str(_plain(p)) for p in node["Fn::Join"][1])
        if node == {"Ref": "AWS::Partition"}:
            return "aws"
        if len(node) == 1 and next(iter(node)).startswith(("Fn::", "Ref")):
            return "X"
        return {k: _plain(v) for k, v in node.items()}
    return node


def _allowed(documents: list[dict], action: str, resource: str, **context) -> bool:
    return evaluate(documents, Request(action, resource, context)).allowed


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
    roles = _roles_by_kind(template)
    assert set(roles) == {"preprocessing", "training", "evaluation", "pipeline", *naming.PERSONAS}
    quarantine = "arn:aws:s3:::bucket-raw/churn/quarantine/flywheel-dev-churn-tabular/e/x.csv"
    assert _allowed(roles["preprocessing"], "s3:PutObject", quarantine)
    assert _allowed(roles["preprocessing"], "s3:GetObject", "arn:aws:s3:::bucket-raw/churn/incoming/b/x.csv")
    for kind in ("training", "evaluation", "pipeline"):
        assert not _allowed(roles[kind], "s3:GetObject", "arn:aws:s3:::bucket-raw/churn/incoming/b/x.csv"), kind
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
