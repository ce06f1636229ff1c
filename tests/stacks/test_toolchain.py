"""The synthesized CI/CD toolchain (stacks/toolchain_stack.py), from the session's one synth.

Stage order, approval before prod, no CodeCommit, our KMS key on artifacts and builds, no privileged
builds, the synth step's commands and CLI pin, cross-account deploy roles, the post-deploy steps and the
roles they assume, GitHub's OIDC trust, cdk-nag, cfn-lint and our policy rules.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from config.loader import load_config, load_toolchain
from config.models import S3Source
from stacks.components.github_oidc import AUDIENCE, GITHUB_ISSUER
from stacks.nag import MIN_REASON, acknowledgments, findings
from stacks.policy_rules import RULES, github_trust_statements
from stacks.toolchain_stack import PLANS_DIR, TEST_COMMAND, TOOLCHAIN_STACK, ToolchainStack, pinned_cdk_cli_version
from tests.security.iam_eval import Request, Templates, evaluate
from tests.snapshots import assert_matches_snapshot

ROOT = Path(__file__).resolve().parents[2]


def _resources(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template.to_json()["Resources"].items() if r["Type"] == kind}


@pytest.fixture(scope="module")
def pipeline(toolchain) -> dict[str, Any]:
    (found,) = _resources(toolchain.template, "AWS::CodePipeline::Pipeline").values()
    return found["Properties"]


@pytest.fixture(scope="module")
def projects(toolchain) -> dict[str, dict[str, Any]]:
    return {lid: r["Properties"] for lid, r in _resources(toolchain.template, "AWS::CodeBuild::Project").items()}


def _buildspec(projects, lid_part: str) -> dict[str, Any]:
    (props,) = [p for lid, p in projects.items() if lid_part in lid]
    return json.loads(props["Source"]["BuildSpec"])


def _deploy_actions(stage: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in stage["Actions"] if a["ActionTypeId"]["Provider"] == "CloudFormation"]


# -- shape of the pipeline ------------------------------------------------------------------------------


def test_pipeline_is_v2_and_stages_run_dev_staging_then_prod(pipeline, toolchain):
    assert pipeline["PipelineType"] == "V2" and pipeline["RestartExecutionOnUpdate"] is True
    names = [s["Name"] for s in pipeline["Stages"]]
    assert names == ["Source", "Build", "UpdatePipeline", "Assets", "Flywheel-dev", "Flywheel-staging", "Flywheel-prod"]
    assert list(toolchain.stack.stages) == list(toolchain.stack.toolchain.stages)


def test_every_prod_deploy_waits_for_a_manual_approval(pipeline, stages):
    production = [f"Flywheel-{name}" for name, s in stages.items() if s.environment.is_production]
    assert production == ["Flywheel-prod"]
    for stage in pipeline["Stages"]:
        approvals = [a for a in stage["Actions"] if a["ActionTypeId"] == {
            "Category": "Approval", "Owner": "AWS", "Provider": "Manual", "Version": "1"}]  # fmt: skip
        deploys = _deploy_actions(stage)
        if stage["Name"] in production:
            assert len(approvals) == 1, stage["Name"]
            assert deploys and all(a["RunOrder"] > approvals[0]["RunOrder"] for a in deploys)
        elif stage["Name"].startswith("Flywheel-"):
            assert approvals == [], f"{stage['Name']} should deploy without waiting"


def test_no_codecommit_anywhere(toolchain, pipeline):
    text = json.dumps(toolchain.templates())
    assert "AWS::CodeCommit::" not in text and "codecommit" not in text.lower()
    source = pipeline["Stages"][0]["Actions"][0]
    config = toolchain.stack.toolchain.source
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"]["ConnectionArn"] == config.connection_arn
    assert source["Configuration"]["FullRepositoryId"] == config.repository
    assert source["Configuration"]["BranchName"] == config.branch


def test_source_role_may_use_the_connection_under_both_service_prefixes(toolchain):
    templates = Templates({TOOLCHAIN_STACK: toolchain.template.to_json()}, account="444444444444", region="eu-west-1")
    (role,) = [r for r in templates.roles() if r.logical_id.startswith("PipelineSourceCodePipelineActionRole")]
    arn = toolchain.stack.toolchain.source.connection_arn
    for action in ("codestar-connections:UseConnection", "codeconnections:UseConnection"):
        assert role.can(Request(action, arn)).allowed, action
        assert not role.can(Request(action, arn.replace("00000000-0000", "11111111-1111"))).allowed


def test_artifact_store_is_our_bucket_encrypted_with_our_rotating_key(toolchain, pipeline):
    store = pipeline["ArtifactStore"]
    key = toolchain.template.to_json()["Resources"][store["EncryptionKey"]["Id"]["Fn::GetAtt"][0]]
    assert store["Type"] == "S3" and store["EncryptionKey"]["Type"] == "KMS"
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    key_lid = store["EncryptionKey"]["Id"]["Fn::GetAtt"][0]
    assert key_lid.startswith("ArtifactKey")
    bucket = toolchain.template.to_json()["Resources"][store["Location"]["Ref"]]["Properties"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    expected = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": [key_lid, "Arn"]}}
    assert rule["ServerSideEncryptionByDefault"] == expected
    assert bucket["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    assert bucket["LoggingConfiguration"]["DestinationBucketName"]["Ref"].startswith("AccessLogs")


def test_codebuild_projects_are_unprivileged_encrypted_and_log_to_a_kms_group_with_retention(toolchain, projects):
    resources = toolchain.template.to_json()["Resources"]
    assert len(projects) >= 6  # synth, self-mutation, assets, 3 retrain, 1 smoke
    for lid, props in projects.items():
        assert props["Environment"].get("PrivilegedMode", False) is False, lid
        assert props["EncryptionKey"]["Fn::GetAtt"][0].startswith("ArtifactKey"), lid
        logs = props["LogsConfig"]["CloudWatchLogs"]
        assert logs["Status"] == "ENABLED", lid
        group = resources[logs["GroupName"]["Ref"]]["Properties"]
        assert group["KmsKeyId"]["Fn::GetAtt"][0].startswith("LogsKey") and group["RetentionInDays"] == 90, lid
        for variable in props["Environment"].get("EnvironmentVariables", []):
            assert variable["Type"] == "PLAINTEXT"
            assert not re.search(r"(?i)secret|password|token|AKIA[0-9A-Z]{16}", variable["Name"] + variable["Value"])


def test_synth_step_installs_tests_then_synthesizes_with_the_pinned_cli(projects):
    spec = _buildspec(projects, "BuildSynth")
    assert spec["phases"]["install"]["commands"] == ["make install"]
    commands = spec["phases"]["build"]["commands"]
    assert commands[0] == TEST_COMMAND == "make test"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"{TEST_COMMAND}   # the gate" in readme, "the synth step must run the README's test command"
    assert commands[-1] == "./node_modules/.bin/cdk synth -c target=toolchain --quiet"
    version = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["devDependencies"]["aws-cdk"]
    assert f'= "{version}"' in commands[1]
    assert spec["artifacts"]["base-directory"] == "cdk.out"


def test_cli_version_everywhere_equals_package_json(projects, toolchain):
    version = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["devDependencies"]["aws-cdk"]
    assert pinned_cdk_cli_version() == version == toolchain.stack.cli_version
    mutation = _buildspec(projects, "SelfMutation")
    assert mutation["phases"]["install"]["commands"] == [f"npm install -g aws-cdk@{version}"]
    assert "deploy Flywheel-Toolchain" in mutation["phases"]["build"]["commands"][0]
    with pytest.raises(ValueError, match="exact version"):
        pinned_cdk_cli_version({"devDependencies": {"aws-cdk": "^2.1148.1"}})


def test_each_stage_deploys_through_its_own_accounts_bootstrap_roles(pipeline, stages):
    by_stage = {s["Name"]: s for s in pipeline["Stages"]}
    for name, stage in stages.items():
        account, region = stage.environment.account, stage.environment.region
        deploys = _deploy_actions(by_stage[f"Flywheel-{name}"])
        stacks = {a["Configuration"]["StackName"] for a in deploys}
        assert {f"Flywheel-{name}-Security", f"Flywheel-{name}-DataLake", f"Flywheel-{name}-ToolchainAccess"} <= stacks
        assert {f"Flywheel-{name}-Team-{team}" for team in stage.teams} <= stacks
        for action in deploys:
            text = json.dumps(action["RoleArn"])
            assert f":iam::{account}:role/cdk-hnb659fds-deploy-role-{account}-{region}" in text, action["Name"]
            if action["Configuration"].get("ActionMode") != "CHANGE_SET_EXECUTE":
                execution = json.dumps(action["Configuration"]["RoleArn"])
                assert f":iam::{account}:role/cdk-hnb659fds-cfn-exec-role-{account}-{region}" in execution
            others = {s.environment.account for s in stages.values()} - {account}
            assert not any(o in text for o in others)


def test_deploy_roles_may_use_the_artifact_key_in_every_target_account(toolchain, stages):
    (key,) = [r for lid, r in toolchain.template.to_json()["Resources"].items() if lid.startswith("ArtifactKey8")]
    policy = json.dumps(key["Properties"]["KeyPolicy"])
    for stage in stages.values():
        assert f"cdk-hnb659fds-deploy-role-{stage.environment.account}" in policy


# -- post-deploy steps ----------------------------------------------------------------------------------


def _post(pipeline, stage_name: str) -> list[dict[str, Any]]:
    stage = next(s for s in pipeline["Stages"] if s["Name"] == stage_name)
    last_deploy = max(a["RunOrder"] for a in _deploy_actions(stage))
    return sorted(
        (a for a in stage["Actions"] if a["ActionTypeId"]["Provider"] == "CodeBuild"), key=lambda a: a["RunOrder"]
    ), last_deploy  # type: ignore[return-value]


def test_staging_smoke_tests_then_retrains_after_deploying_and_other_stages_retrain(pipeline, projects):
    actions, last = _post(pipeline, "Flywheel-staging")
    assert [a["Name"] for a in actions] == ["SmokeTest", "Retrain"]
    assert last < actions[0]["RunOrder"] < actions[1]["RunOrder"]
    for stage in ("Flywheel-dev", "Flywheel-prod"):
        actions, last = _post(pipeline, stage)
        assert [a["Name"] for a in actions] == ["Retrain"] and actions[0]["RunOrder"] > last
    smoke = _buildspec(projects, "stagingSmokeTest")["phases"]["build"]["commands"]
    assert smoke[-1].endswith("python -m toolchain.post_deploy smoke --plan ../toolchain-plans/staging-smoke.json")
    assert "-r source/toolchain/requirements.txt" in smoke[0]


def test_post_deploy_plans_are_in_the_assembly_with_their_digest_on_the_project(toolchain, projects):
    import hashlib

    outdir = Path(App.of(toolchain.stack).outdir) / PLANS_DIR  # type: ignore[union-attr]
    assert sorted(toolchain.stack.plans) == sorted(
        [("dev", "retrain"), ("staging", "smoke"), ("staging", "retrain"), ("prod", "retrain")]
    )
    for (env, step), text in toolchain.stack.plans.items():
        assert (outdir / f"{env}-{step}.json").read_text(encoding="utf-8") == text
        plan = json.loads(text)
        assert plan["environment"] == env
        assert plan["role_arn"].endswith(f":role/flywheel/{env}/flywheel-{env}-toolchain-{step}")
        assert {t["team"] for t in plan["teams"]} == {"churn", "diagnostics"}
        kind = "SmokeTest" if step == "smoke" else "Retrain"
        (project,) = [p for lid, p in projects.items() if f"Flywheel{env}{kind}" in lid]
        variables = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
        assert variables == {"FLYWHEEL_PLAN_SHA256": hashlib.sha256(text.encode()).hexdigest()}
        commands = json.loads(project["Source"]["BuildSpec"])["phases"]["build"]["commands"]
        plan_file = f"../{PLANS_DIR}/{env}-{step}.json"
        assert commands[-1] == f"cd source && python -m toolchain.post_deploy {step} --plan {plan_file}"


def _access_templates(toolchain, stages, env: str) -> Templates:
    stage = stages[env]
    return Templates(
        {
            f"Flywheel-{env}-Security": stage.security.to_json(),
            f"Flywheel-{env}-ToolchainAccess": toolchain.access[env].to_json(),
        },
        account=stage.environment.account,
        region=stage.environment.region,
    )


def test_stage_roles_trust_exactly_the_toolchain_step_role(toolchain, stages):
    for env in ("dev", "staging", "prod"):
        for role in _access_templates(toolchain, stages, env).roles():
            if role.stack.endswith("ToolchainAccess"):
                step = "smoke" if "Smoke" in role.logical_id else "retrain"
                (stmt,) = role.trust["Statement"]
                assert stmt["Principal"] == {"AWS": f"arn:aws:iam::444444444444:role/flywheel-toolchain-{step}"}
                assert stmt["Action"] == "sts:AssumeRole" and "Condition" not in stmt
                assert role.boundary is not None, "stage roles carry the stage's permissions boundary"


def test_smoke_role_reads_and_invokes_but_cannot_start_or_approve(toolchain, stages):
    t = _access_templates(toolchain, stages, "staging")
    (smoke,) = [r for r in t.roles() if r.logical_id.startswith("AccessSmokeRole")]
    sm = "arn:aws:sagemaker:eu-west-1:222222222222"
    assert smoke.can(Request("sagemaker:InvokeEndpoint", f"{sm}:endpoint/flywheel-staging-churn")).allowed
    config = f"{sm}:endpoint-config/flywheel-staging-churn-v3-ab12cd34"
    assert smoke.can(Request("sagemaker:DescribeEndpointConfig", config)).allowed
    assert smoke.can(Request("sagemaker:DescribePipeline", f"{sm}:pipeline/flywheel-staging-churn-tabular")).allowed
    assert not smoke.can(Request("sagemaker:InvokeEndpoint", f"{sm}:endpoint/someone-else")).allowed
    pipeline = f"{sm}:pipeline/flywheel-staging-churn-tabular"
    assert not smoke.can(Request("sagemaker:StartPipelineExecution", pipeline)).allowed
    package = f"{sm}:model-package/flywheel-staging-churn/1"
    assert not smoke.can(Request("sagemaker:UpdateModelPackage", package)).allowed


def test_retrain_role_starts_only_the_stages_team_pipelines(toolchain, stages):
    t = _access_templates(toolchain, stages, "dev")
    (retrain,) = [r for r in t.roles() if r.logical_id.startswith("AccessRetrainRole")]
    sm = "arn:aws:sagemaker:eu-west-1:111111111111"
    for team in ("churn", "diagnostics"):
        pipeline = f"{sm}:pipeline/flywheel-dev-{team}-tabular"
        assert retrain.can(Request("sagemaker:StartPipelineExecution", pipeline)).allowed
        assert retrain.can(Request("sagemaker:ListPipelineParametersForExecution", f"{pipeline}/execution/abc")).allowed
    assert not retrain.can(Request("sagemaker:StartPipelineExecution", f"{sm}:pipeline/other-pipeline")).allowed
    assert not retrain.can(Request("sagemaker:InvokeEndpoint", f"{sm}:endpoint/flywheel-dev-churn")).allowed
    assert "staging" not in json.dumps(retrain.identity)


def test_step_roles_assume_only_their_stage_roles(toolchain):
    templates = Templates({TOOLCHAIN_STACK: toolchain.template.to_json()}, account="444444444444", region="eu-west-1")
    (smoke,) = [r for r in templates.roles() if r.logical_id.startswith("SmokeStepRole")]
    (retrain,) = [r for r in templates.roles() if r.logical_id.startswith("RetrainStepRole")]
    target = "arn:aws:iam::222222222222:role/flywheel/staging/flywheel-staging-toolchain-smoke"
    assert smoke.can(Request("sts:AssumeRole", target)).allowed
    assert not smoke.can(Request("sts:AssumeRole", target.replace("smoke", "retrain"))).allowed
    for env, account in (("dev", "111111111111"), ("staging", "222222222222"), ("prod", "333333333333")):
        stage_role = f"arn:aws:iam::{account}:role/flywheel/{env}/flywheel-{env}-toolchain-retrain"
        assert retrain.can(Request("sts:AssumeRole", stage_role)).allowed
    exec_role = "arn:aws:iam::111111111111:role/cdk-hnb659fds-cfn-exec-role-111111111111-eu-west-1"
    assert not retrain.can(Request("sts:AssumeRole", exec_role)).allowed


# -- GitHub OIDC ------------------------------------------------------------------------------------------


def _github_role(toolchain):
    templates = Templates({TOOLCHAIN_STACK: toolchain.template.to_json()}, account="444444444444", region="eu-west-1")
    (role,) = [r for r in templates.roles() if r.logical_id.startswith("GitHubDeployRole")]
    return role


def test_the_stack_creates_githubs_oidc_provider(toolchain):
    (provider,) = _resources(toolchain.template, "AWS::IAM::OIDCProvider").values()
    assert provider["Properties"]["Url"] == f"https://{GITHUB_ISSUER}"
    assert provider["Properties"]["ClientIdList"] == [AUDIENCE]


def test_oidc_trust_names_exactly_the_configured_repository_and_environment(toolchain):
    """The one control: aud = sts.amazonaws.com and sub equal to the configured subject (no wildcard)."""
    role = _github_role(toolchain)
    subject = toolchain.stack.toolchain.github.subject
    assert subject == "repo:example-org/flywheel:environment:toolchain"
    (stmt,) = role.trust["Statement"]
    assert stmt["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert stmt["Condition"] == {"StringEquals": {f"{GITHUB_ISSUER}:aud": AUDIENCE, f"{GITHUB_ISSUER}:sub": subject}}, (
        "the trust must pin exactly aud and sub with StringEquals"
    )

    def assume(sub: str, aud: str = AUDIENCE) -> bool:
        context = {f"{GITHUB_ISSUER}:sub": sub, f"{GITHUB_ISSUER}:aud": aud}
        principal = {"Federated": stmt["Principal"]["Federated"]}
        request = Request("sts:AssumeRoleWithWebIdentity", context=context, principal=principal)
        return evaluate([role.trust], request).allowed

    assert assume(subject)
    for other in (
        "repo:example-org/other:environment:toolchain",
        "repo:example-org/flywheel:ref:refs/heads/main",
        "repo:example-org/flywheel:environment:production",
        "repo:example-org/flywheel-fork:environment:toolchain",
        "repo:evil/flywheel:environment:toolchain",
    ):
        assert not assume(other), other
    assert not assume(subject, aud="https://github.com/example-org")


def test_github_role_may_only_assume_the_toolchain_accounts_bootstrap_roles(toolchain):
    role = _github_role(toolchain)
    base = "arn:aws:iam::444444444444:role/cdk-hnb659fds-{}-role-444444444444-eu-west-1"
    for kind in ("deploy", "file-publishing", "lookup"):
        assert role.can(Request("sts:AssumeRole", base.format(kind))).allowed, kind
    assert not role.can(Request("sts:AssumeRole", base.format("cfn-exec"))).allowed
    other_account = "arn:aws:iam::111111111111:role/cdk-hnb659fds-deploy-role-111111111111-eu-west-1"
    assert not role.can(Request("sts:AssumeRole", other_account)).allowed
    assert not role.can(Request("s3:PutObject", "arn:aws:s3:::anything/x")).allowed


def test_the_deploy_workflow_uses_the_configured_environment(toolchain):
    workflow = (ROOT / ".github" / "workflows" / "deploy.yml").read_text(encoding="utf-8")
    github = toolchain.stack.toolchain.github
    assert re.search(rf"(?m)^    environment: {re.escape(github.environment)}$", workflow), (
        "the deploy job's `environment:` must be the one the role's sub names"
    )
    assert "id-token: write" in workflow and "aws-actions/configure-aws-credentials" in workflow
    assert "aws-access-key-id" not in workflow and "AWS_SECRET_ACCESS_KEY" not in workflow


# -- security checks ----------------------------------------------------------------------------------------


def test_nag_finds_nothing_unacknowledged_in_the_toolchain_and_its_stage_roles(toolchain):
    problems = findings(toolchain.stack)
    for env in toolchain.access:
        problems += findings(toolchain.stack.stages[env].node.find_child("ToolchainAccess"))
    assert problems == [], "\n".join(f"{f.pack} {f.rule} {f.resource}: {f.description}" for f in problems)


def test_toolchain_acknowledgments_match_the_reviewed_snapshot(toolchain):
    acks = acknowledgments(toolchain.stack)
    for env in toolchain.access:
        access = toolchain.stack.stages[env].node.find_child("ToolchainAccess")
        acks += [{**a, "path": f"{env}:{a['path']}"} for a in acknowledgments(access)]
    assert acks and all(len(a["reason"]) >= MIN_REASON for a in acks)
    assert all("[" in a["id"] for a in acks if "IAM5" in a["id"])
    assert_matches_snapshot(Path(__file__).with_name("toolchain_acknowledgments.json"), acks)


#: cfn-lint findings acknowledged in the toolchain templates: rule → (where it may occur, why it is fine).
CFN_LINT_ACKNOWLEDGED = {
    "E3703": (
        "the execution-role ARN of a CloudFormation deploy action (Configuration.RoleArn)",
        "CDK Pipelines renders the target account's cfn-exec-role ARN as Fn::Join of the partition; cfn-lint's "
        "CodePipeline action schema prefers Fn::Sub: the same string, a style preference in generated code",
    ),
}


def _acknowledged(match, template) -> bool:
    """Whether ``match`` is an entry of :data:`CFN_LINT_ACKNOWLEDGED` at the place the entry names."""
    if match.rule.id != "E3703":
        return False
    path = list(match.path)
    if len(path) < 9 or path[2:4] != ["Properties", "Stages"] or path[-2:] != ["Configuration", "RoleArn"]:
        return False
    resource = template["Resources"][path[1]]
    action = resource["Properties"]["Stages"][path[4]]["Actions"][path[6]]
    return resource["Type"] == "AWS::CodePipeline::Pipeline" and action["ActionTypeId"]["Provider"] == "CloudFormation"


def test_cfn_lint_acknowledgments_have_reasons():
    assert all(len(reason) >= MIN_REASON for _, reason in CFN_LINT_ACKNOWLEDGED.values())


def test_cfn_lint_finds_no_errors_in_the_toolchain_templates(toolchain):
    from cfnlint.api import ManualArgs, lint

    from tests.security.test_cfn_lint import ALLOWED_WARNINGS

    for name, template in toolchain.templates().items():
        matches = lint(json.dumps(template), regions=["eu-west-1"], config=ManualArgs(regions=["eu-west-1"]))
        errors = [f"{m.rule.id} {m.message} at {m.path}" for m in matches if not _acknowledged(m, template)]
        errors = [e for e in errors if e.startswith("E")]
        assert errors == [], f"{name}: {errors}"
        unexpected = sorted({m.rule.id for m in matches if m.rule.id.startswith("W")} - ALLOWED_WARNINGS)
        assert unexpected == [], f"{name}: {unexpected}"


#: Rules that hold in the toolchain account: its roles are CDK Pipelines' own (no Flywheel boundary there).
TOOLCHAIN_RULES = sorted(set(RULES) - {"every-role-has-boundary"})


def test_our_policy_rules_hold_for_the_toolchain_and_all_of_them_for_the_stage_roles(toolchain):
    templates = toolchain.templates()
    tool = {"Toolchain": templates.pop("Toolchain")}
    for name in TOOLCHAIN_RULES:
        assert RULES[name](tool) == [], name
    for name, rule in RULES.items():
        assert rule(templates) == [], name
    # the OIDC rule does see the GitHub role (its principal is a Ref to the provider, not the issuer's name)
    (seen,) = github_trust_statements(tool)
    assert seen[0].startswith("Toolchain/GitHubDeployRole")


# -- the S3 source (a second, stage-less toolchain: quick) ------------------------------------------------


@pytest.fixture(scope="module")
def s3_stack() -> ToolchainStack:
    from stacks import cdk_json_context

    config = load_config()
    base = load_toolchain(config=config)
    toolchain = base.model_copy(
        update={
            "source": S3Source(),
            "github": base.github.model_copy(update={"environment": None, "branch": "main"}),  # type: ignore[union-attr]
        }
    )
    return ToolchainStack(
        App(context=cdk_json_context()),
        TOOLCHAIN_STACK,
        toolchain=toolchain,
        environments=config.environments,
        teams=config.teams,
        cli_version=pinned_cdk_cli_version(),
        stages={},
    )


@pytest.fixture(scope="module")
def s3_toolchain(s3_stack) -> Template:
    return Template.from_stack(s3_stack)


def test_s3_source_starts_the_pipeline_on_upload_of_exactly_the_configured_key(s3_toolchain):
    t = s3_toolchain.to_json()
    assert "AWS::CodeCommit::" not in json.dumps(t)
    (pipeline,) = _resources(s3_toolchain, "AWS::CodePipeline::Pipeline").values()
    source = pipeline["Properties"]["Stages"][0]["Actions"][0]
    assert source["ActionTypeId"]["Provider"] == "S3"
    assert source["Configuration"]["S3ObjectKey"] == "flywheel/source.zip"
    assert source["Configuration"]["PollForSourceChanges"] is False
    bucket_lid = source["Configuration"]["S3Bucket"]["Ref"]
    bucket = t["Resources"][bucket_lid]["Properties"]
    assert bucket["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
        "KMSMasterKeyID"
    ]["Fn::GetAtt"][0].startswith("SourceKey")
    (rule,) = _resources(s3_toolchain, "AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"] == {"bucket": {"name": [{"Ref": bucket_lid}]}, "object": {"key": ["flywheel/source.zip"]}}
    (pipeline_lid,) = _resources(s3_toolchain, "AWS::CodePipeline::Pipeline")
    assert rule["Properties"]["Targets"][0]["Arn"]["Fn::Join"][1][-1] == {"Ref": pipeline_lid}


def test_s3_source_github_role_may_upload_only_the_source_archive(s3_toolchain):
    templates = Templates({TOOLCHAIN_STACK: s3_toolchain.to_json()}, account="444444444444", region="eu-west-1")
    (role,) = [r for r in templates.roles() if r.logical_id.startswith("GitHubDeployRole")]
    (stmt,) = role.trust["Statement"]
    assert stmt["Condition"]["StringEquals"][f"{GITHUB_ISSUER}:sub"] == "repo:example-org/flywheel:ref:refs/heads/main"
    (bucket_lid,) = _resources(s3_toolchain, "AWS::S3::Bucket").keys() - {
        lid for lid in _resources(s3_toolchain, "AWS::S3::Bucket") if not lid.startswith("SourceBucket")
    }
    bucket = templates.ref(TOOLCHAIN_STACK, bucket_lid)
    assert role.can(Request("s3:PutObject", f"arn:aws:s3:::{bucket}/flywheel/source.zip")).allowed
    assert not role.can(Request("s3:PutObject", f"arn:aws:s3:::{bucket}/other.zip")).allowed
    assert not role.can(Request("s3:DeleteObject", f"arn:aws:s3:::{bucket}/flywheel/source.zip")).allowed


def test_s3_variant_passes_nag_and_our_rules(s3_stack, s3_toolchain):
    problems = findings(s3_stack)
    assert problems == [], "\n".join(f"{f.pack} {f.rule} {f.resource}: {f.description}" for f in problems)
    for name in TOOLCHAIN_RULES:
        assert RULES[name]({"Toolchain": s3_toolchain.to_json()}) == [], name
