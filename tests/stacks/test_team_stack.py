"""Team workload: registry, pipeline (one definition, two places), one least-privilege role per step kind.

Policy tests evaluate the synthesized statements (actions, resources, conditions) with the offline IAM
evaluator of ``tests/security/iam_eval.py`` — never Sids or logical ids.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from aws_cdk import Token

import naming
from pipelines.tabular.definition import build_pipeline_definition
from stacks.components.lifecycle import LIFECYCLE_ROLE_KINDS
from stacks.components.monitoring import MONITORING_ROLE_KINDS
from tests.security.iam_eval import Decision, Request, Templates, evaluate

ACCOUNT = "111111111111"
REGION = "eu-west-1"
KINDS = ("preprocessing", "training", "evaluation")


def _resource(template, kind):
    items = template.find_resources(kind).items()
    if kind == "AWS::SageMaker::Pipeline":  # a team may also have other templates' pipelines (batch-scoring)
        items = [(k, v) for k, v in items if v["Properties"]["PipelineName"].endswith("-tabular")]
    (item,) = items
    return item


# -- the evaluated stage ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lake(dev):
    stacks = {"Security": dev.stage.security, "DataLake": dev.stage.data_lake}
    stacks |= {f"Team-{name}": stack for name, stack in dev.stage.teams.items()}
    templates = dev.templates()
    return Templates({s.stack_name: templates[k].to_json() for k, s in stacks.items()}, account=ACCOUNT, region=REGION)


@pytest.fixture(scope="module")
def roles(lake, dev):
    """(team, kind) → the role of the team's tabular pipeline; kind is the role's path segment after /flywheel/dev/."""
    out = {}
    for team, stack in dev.stage.teams.items():
        for role in lake.roles():
            if role.stack != stack.stack_name or not role.logical_id.startswith("TeamTabularPipeline"):
                continue
            for kind in (*KINDS, "pipeline"):
                if f":role/flywheel/dev/{kind}/" in role.arn:
                    assert (team, kind) not in out, f"two {kind} roles for {team}"
                    out[(team, kind)] = role
    assert {kind for _, kind in out} == {*KINDS, "pipeline"} and len(out) == 8
    return out


def _bucket(lake, zone):
    return lake.resolve("Flywheel-dev-DataLake", {"Fn::ImportValue": f"flywheel-dev-{zone}-bucket"})


def _obj(lake, zone, key):
    return f"arn:aws:s3:::{_bucket(lake, zone)}/{key}"


def _can(role, action, resource="*", **context):
    return evaluate(role.identity, Request(action, resource, context)).allowed


def _decision(role, action, resource="*", **context):
    return evaluate(role.identity, Request(action, resource, context))


# -- registry, roles ---------------------------------------------------------------------------------------


def test_each_team_gets_a_registry_retained(dev):
    for name, template in dev.teams.items():
        _, group = _resource(template, "AWS::SageMaker::ModelPackageGroup")
        assert group["Properties"]["ModelPackageGroupName"] == f"flywheel-dev-{name}"
        assert group["DeletionPolicy"] == "Retain"


def test_pipeline_runs_as_its_own_role_and_each_role_has_its_kind_path(dev, roles):
    template = dev.teams["churn"]
    _, pipeline = _resource(template, "AWS::SageMaker::Pipeline")
    assert pipeline["Properties"]["PipelineName"] == "flywheel-dev-churn-tabular"
    role_id = pipeline["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    assert roles[("churn", "pipeline")].logical_id == role_id
    for role_id, role in template.find_resources("AWS::IAM::Role").items():
        path = role["Properties"]["Path"]
        scoring = ("scoring", "reporting", "scoring-launcher", "scheduler")  # the batch-scoring pipeline's
        kinds = (
            *KINDS,
            "pipeline",
            *LIFECYCLE_ROLE_KINDS,
            *naming.PERSONAS,
            "erasure",
            *scoring,
            *MONITORING_ROLE_KINDS,
        )
        assert path in {f"/flywheel/dev/{k}/" for k in kinds}, (role_id, path)
        assert "PermissionsBoundary" in role["Properties"]
    template.resource_count_is("AWS::IAM::Policy", 0)  # no inline policies: reviewed managed policies


def test_trust_policies_name_the_account_and_sagemaker_source(roles):
    for role in roles.values():
        ok = Request(
            "sts:AssumeRole",
            principal={"Service": "sagemaker.amazonaws.com"},
            context={"aws:SourceAccount": ACCOUNT, "aws:SourceArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/x"},
        )
        assert evaluate([role.trust], ok).allowed, role.name
        for context in (
            {"aws:SourceAccount": "222222222222", "aws:SourceArn": f"arn:aws:sagemaker:{REGION}:222222222222:x/y"},
            {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:x/y"},
            {"aws:SourceAccount": "222222222222", "aws:SourceArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:x/y"},
            {"aws:SourceArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:x/y"},
            {"aws:SourceAccount": ACCOUNT},
            {},
        ):
            bad = Request("sts:AssumeRole", principal={"Service": "sagemaker.amazonaws.com"}, context=context)
            assert not evaluate([role.trust], bad).allowed, (role.name, context)


# -- finding 3: PII only for preprocessing -----------------------------------------------------------------


def test_only_the_preprocessing_role_reads_raw_batches_and_the_pii_key(lake, roles):
    batch = _obj(lake, "raw", "churn/incoming/2026-01-01/part-0.csv")
    pii_key = _obj(lake, "raw", "churn/_keys/pii-hmac.key")
    for obj in (batch, pii_key):
        assert _can(roles[("churn", "preprocessing")], "s3:GetObject", obj)
        for kind in ("training", "evaluation", "pipeline"):
            assert not _can(roles[("churn", kind)], "s3:GetObject", obj), kind
            assert not _can(roles[("churn", kind)], "s3:GetObjectVersion", obj), kind
    # nothing else of the raw zone, nothing of another team, no quarantine reads
    pre = roles[("churn", "preprocessing")]
    for key in (
        "churn/_keys/other.key",
        "churn/quarantine/flywheel-dev-churn-tabular/e1/part-0.csv",
        "diagnostics/incoming/b/part-0.csv",
        "diagnostics/_keys/pii-hmac.key",
        "quarantine/flywheel-dev-diagnostics-tabular/e1/x.csv",
    ):
        assert not _can(pre, "s3:GetObject", _obj(lake, "raw", key)), key


def test_training_and_evaluation_read_only_their_pipeline_prefixes(lake, roles):
    own = "flywheel-dev-churn-tabular/e1/train/part.parquet"
    assert _can(roles[("churn", "training")], "s3:GetObject", _obj(lake, "features", own))
    assert not _can(roles[("churn", "training")], "s3:GetObject", _obj(lake, "reports", own))
    assert _can(
        roles[("churn", "training")], "s3:PutObject", _obj(lake, "artifacts", "flywheel-dev-churn-tabular/e1/m")
    )
    assert _can(roles[("churn", "evaluation")], "s3:GetObject", _obj(lake, "artifacts", own))
    assert _can(roles[("churn", "evaluation")], "s3:PutObject", _obj(lake, "reports", own))
    for kind in KINDS:
        role = roles[("churn", kind)]
        assert not _can(role, "s3:GetObject", _obj(lake, "features", "flywheel-dev-diagnostics-tabular/e1/x"))
        for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutBucketPolicy"):
            assert not _can(role, action, _obj(lake, "features", own)), (kind, action)


def test_quarantine_is_written_by_preprocessing_under_the_team_prefix(lake, roles):
    pre = roles[("churn", "preprocessing")]
    assert _can(pre, "s3:PutObject", _obj(lake, "raw", "churn/quarantine/flywheel-dev-churn-tabular/e1/part.csv"))
    assert not _can(pre, "s3:PutObject", _obj(lake, "raw", "quarantine/flywheel-dev-churn-tabular/e1/part.csv"))
    assert not _can(pre, "s3:PutObject", _obj(lake, "raw", "churn/incoming/b/part.csv"))
    for kind in ("training", "evaluation", "pipeline"):
        quarantine = _obj(lake, "raw", "churn/quarantine/flywheel-dev-churn-tabular/e1/part.csv")
        assert not _can(roles[("churn", kind)], "s3:PutObject", quarantine), kind


def test_raw_zone_key_decrypts_only_the_teams_raw_objects_through_s3(lake, roles):
    (raw_key_id,) = [k for k in lake.templates["Flywheel-dev-DataLake"]["Resources"] if k.startswith("LakeRawKey")]
    raw_key = lake.get_att("Flywheel-dev-DataLake", raw_key_id, "Arn")
    via = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    pre = roles[("churn", "preprocessing")]
    for key in ("churn/incoming/b/part.csv", "churn/_keys/pii-hmac.key"):
        ctx = {**via, "kms:EncryptionContext:aws:s3:arn": _obj(lake, "raw", key)}
        assert _can(pre, "kms:Decrypt", raw_key, **ctx), key
    for key in ("diagnostics/incoming/b/part.csv", "diagnostics/_keys/pii-hmac.key"):
        assert not _can(
            pre, "kms:Decrypt", raw_key, **via, **{"kms:EncryptionContext:aws:s3:arn": _obj(lake, "raw", key)}
        )
    assert not _can(pre, "kms:Decrypt", raw_key)  # directly, outside S3
    for kind in ("training", "evaluation", "pipeline"):
        ctx = {**via, "kms:EncryptionContext:aws:s3:arn": _obj(lake, "raw", "churn/incoming/b/part.csv")}
        assert not _can(roles[("churn", kind)], "kms:Decrypt", raw_key, **ctx), kind
    # No role of a team may use another zone's shared key at all: what jobs write is under the job key.
    zone_keys = [k for k in lake.templates["Flywheel-dev-DataLake"]["Resources"] if k.startswith("Lake") and "Key" in k]
    for role in roles.values():
        for key_id in zone_keys:
            if lake.templates["Flywheel-dev-DataLake"]["Resources"][key_id]["Type"] != "AWS::KMS::Key":
                continue
            arn = lake.get_att("Flywheel-dev-DataLake", key_id, "Arn")
            if arn != raw_key:
                assert not _can(role, "kms:Decrypt", arn, **via), (role.name, key_id)


# -- finding 5: registration only for approval --------------------------------------------------------------


def test_pipeline_registers_only_pending_packages_and_no_role_changes_approval(roles):
    group = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/flywheel-dev-churn"
    package = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/flywheel-dev-churn/3"
    pipeline = roles[("churn", "pipeline")]
    for resource in (group, package):
        assert _can(
            pipeline,
            "sagemaker:CreateModelPackage",
            resource,
            **{"sagemaker:ModelApprovalStatus": "PendingManualApproval"},
        )
        assert (
            _decision(
                pipeline, "sagemaker:CreateModelPackage", resource, **{"sagemaker:ModelApprovalStatus": "Approved"}
            )
            is Decision.EXPLICIT_DENY
        )
        assert not _can(pipeline, "sagemaker:CreateModelPackage", resource)  # status omitted
    other = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/flywheel-dev-diagnostics"
    assert not _can(
        pipeline, "sagemaker:CreateModelPackage", other, **{"sagemaker:ModelApprovalStatus": "PendingManualApproval"}
    )
    for role in roles.values():
        for status in ("Approved", "Rejected", None):
            ctx = {"sagemaker:ModelApprovalStatus": status} if status else {}
            assert _decision(role, "sagemaker:UpdateModelPackage", package, **ctx) is Decision.EXPLICIT_DENY, role.name


# -- finding 7: jobs by team tag, pass exactly the step roles, pinned images ----------------------------------


def test_pipeline_role_creates_and_controls_only_its_teams_jobs(roles):
    pipeline = roles[("churn", "pipeline")]
    for kind in ("Processing", "Training"):
        job = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind.lower()}-job/pipelines-abc-Preprocess-x"
        tagged = {"aws:RequestTag/flywheel:team": "churn", "aws:TagKeys": ["flywheel:team"]}
        assert _can(pipeline, f"sagemaker:Create{kind}Job", job, **tagged)
        assert _can(pipeline, "sagemaker:AddTags", job, **tagged)
        other = {"aws:RequestTag/flywheel:team": "diagnostics", "aws:TagKeys": ["flywheel:team"]}
        assert not _can(pipeline, f"sagemaker:Create{kind}Job", job, **other)
        assert not _can(pipeline, f"sagemaker:Create{kind}Job", job)
        assert not _can(
            pipeline, f"sagemaker:Create{kind}Job", job, **tagged | {"aws:TagKeys": ["flywheel:team", "owner"]}
        )
        for verb in ("Describe", "Stop"):
            assert _can(pipeline, f"sagemaker:{verb}{kind}Job", job, **{"aws:ResourceTag/flywheel:team": "churn"})
            assert not _can(
                pipeline, f"sagemaker:{verb}{kind}Job", job, **{"aws:ResourceTag/flywheel:team": "diagnostics"}
            )
            assert not _can(pipeline, f"sagemaker:{verb}{kind}Job", job)
    for kind in KINDS:  # step roles create no jobs
        job = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/pipelines-x"
        assert not _can(
            roles[("churn", kind)], "sagemaker:CreateProcessingJob", job, **{"aws:RequestTag/flywheel:team": "churn"}
        )


def test_pipeline_role_passes_exactly_its_step_roles_to_sagemaker(roles):
    pipeline = roles[("churn", "pipeline")]
    to_sagemaker = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    for kind in KINDS:
        assert _can(pipeline, "iam:PassRole", roles[("churn", kind)].arn, **to_sagemaker)
        assert not _can(
            pipeline, "iam:PassRole", roles[("churn", kind)].arn, **{"iam:PassedToService": "ec2.amazonaws.com"}
        )
        assert not _can(pipeline, "iam:PassRole", roles[("diagnostics", kind)].arn, **to_sagemaker)
    assert not _can(pipeline, "iam:PassRole", pipeline.arn, **to_sagemaker)
    for kind in KINDS:
        assert not _can(roles[("churn", kind)], "iam:PassRole", roles[("churn", "preprocessing")].arn, **to_sagemaker)


def test_image_pulls_only_from_the_definitions_sagemaker_repositories(dev, roles):
    body = dev.stage.teams["churn"].pipelines["tabular"].definition_body
    from stacks.components.ml_pipeline import image_repositories
    from stacks.components.sagemaker_images import image_accounts

    images = image_repositories(body)
    assert images and {a for a, _, _ in images} <= set(image_accounts(REGION))
    for kind in KINDS:
        role = roles[("churn", kind)]
        for account, region, repo in images:
            assert _can(role, "ecr:BatchGetImage", f"arn:aws:ecr:{region}:{account}:repository/{repo}")
        for foreign in ("999999999999", ACCOUNT):
            assert not _can(role, "ecr:BatchGetImage", f"arn:aws:ecr:{REGION}:{foreign}:repository/sagemaker-xgboost")


# -- the definition: roles, tags, no weakening parameters, code hash ------------------------------------------


def _walk(steps):
    for step in steps:
        yield step
        for branch in ("IfSteps", "ElseSteps"):
            yield from _walk(step.get("Arguments", {}).get(branch, []))


def test_each_job_runs_as_its_step_role_and_is_tagged_with_the_team(dev):
    construct = dev.stage.teams["churn"].pipelines["tabular"]
    document = json.loads(construct.definition_body)
    expected = {"Preprocess": "preprocessing", "Train": "training", "Evaluate": "evaluation"}
    jobs = {s["Name"]: s for s in _walk(document["Steps"]) if s["Type"] in ("Processing", "Training")}
    assert set(jobs) == set(expected)
    for step_name, kind in expected.items():
        args = jobs[step_name]["Arguments"]
        assert args["RoleArn"] == construct.step_roles[kind].role_arn, step_name
        assert {"Key": "flywheel:team", "Value": "churn"} in args["Tags"], step_name
    assert construct.role.role_arn not in construct.definition_body


def test_deployed_definition_has_no_parameter_that_weakens_a_control(stages):
    for stage in stages.values():
        for name, stack in stage.stage.teams.items():
            construct = stack.pipelines["tabular"]
            document = json.loads(construct.definition_body)
            declared = {p["Name"] for p in document["Parameters"]}
            assert not declared & {"PiiKeyUri", "GateThreshold"}, declared
            team = next(t for t in stage.stage.teams_config if t.name == name)
            (gate,) = [s for s in _walk(document["Steps"]) if s["Name"] == "QualityGate"]
            rights = [c["RightValue"] for c in gate["Arguments"]["Conditions"]]
            assert team.metric_gate.threshold in rights
            (pre,) = [s for s in document["Steps"] if s["Name"] == "Preprocess"]
            args = pre["Arguments"]["AppSpecification"]["ContainerArguments"]
            raw = construct.definition_inputs.raw_bucket
            assert args[args.index("--allowed-input-prefix") + 1] == f"s3://{raw}/{name}/incoming/"
            assert args[args.index("--input-uri") + 1] == {"Get": "Parameters.InputDataUri"}
            pii = [i["S3Input"]["S3Uri"] for i in pre["Arguments"]["ProcessingInputs"] if i["InputName"] == "pii-key"]
            assert pii == [f"s3://{raw}/{name}/_keys/pii-hmac.key"]


def test_processing_jobs_verify_the_synthesized_code_archive_hash(dev):
    import hashlib

    construct = dev.stage.teams["churn"].pipelines["tabular"]
    digest = hashlib.sha256(construct.template.sourcedir_bytes()).hexdigest()
    assert construct.code_sha256 == digest
    document = json.loads(construct.definition_body)
    for step in _walk(document["Steps"]):
        if step["Type"] == "Processing":
            command = step["Arguments"]["AppSpecification"]["ContainerEntrypoint"][2]
            assert f'echo "{digest}  ' in command and "sha256sum -c" in command
            assert command.index("sha256sum") < command.index("tar -xzf")


def test_every_s3_input_of_each_job_can_be_listed_and_read_by_its_role(dev, lake, roles):
    """SageMaker lists an S3Prefix input before reading it: each literal input needs both, per step role."""
    construct = dev.stage.teams["churn"].pipelines["tabular"]
    document = json.loads(construct.definition_body)
    kind_of = {"Preprocess": "preprocessing", "Train": "training", "Evaluate": "evaluation"}
    checked = 0
    stack = dev.stage.teams["churn"].stack_name
    for step in _walk(document["Steps"]):
        if step["Type"] not in ("Processing", "Training"):
            continue
        role = roles[("churn", kind_of[step["Name"]])]
        args = step["Arguments"]
        uris = [i["S3Input"]["S3Uri"] for i in args.get("ProcessingInputs", [])]
        uris += [c["DataSource"]["S3DataSource"]["S3Uri"] for c in args.get("InputDataConfig", [])]
        for uri in uris:
            if not isinstance(uri, str):
                continue  # a property reference: checked by the zone tests above
            bucket, key = lake.resolve(stack, dev.stage.teams["churn"].resolve(uri)).removeprefix("s3://").split("/", 1)
            assert _can(role, "s3:ListBucket", f"arn:aws:s3:::{bucket}", **{"s3:prefix": key}), (step["Name"], uri)
            assert _can(role, "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}"), (step["Name"], uri)
            checked += 1
    # code + contract for each job, the PII key for Preprocess and the card fields (card.json) for Evaluate
    assert checked == 8
    # Evaluate's champion input defaults to the no-champion marker: a team file its role must list and read.
    (marker,) = [p["DefaultValue"] for p in document["Parameters"] if p["Name"] == "ChampionModelUri"]
    bucket, key = lake.resolve(stack, dev.stage.teams["churn"].resolve(marker)).removeprefix("s3://").split("/", 1)
    evaluation = roles[("churn", "evaluation")]
    assert _can(evaluation, "s3:ListBucket", f"arn:aws:s3:::{bucket}", **{"s3:prefix": key}), marker
    assert _can(evaluation, "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}"), marker


def _join_parts(value):
    """A synthesized string as an alternating list: literal text and CloudFormation intrinsics."""
    if isinstance(value, str):
        return [value]
    (fn,) = value
    assert fn == "Fn::Join" and value[fn][0] == ""
    parts: list = []
    for part in value[fn][1]:
        if isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] += part
        else:
            parts.append(part)
    return parts


def test_synthesized_body_is_the_module_definition_for_the_same_inputs(dev):
    """One definition, two places: literal text identical, each account-specific input → one intrinsic."""
    construct = dev.stage.teams["churn"].pipelines["tabular"]
    inputs = construct.definition_inputs

    def mark(name, value):
        return f"@@{name}@@" if isinstance(value, str) and Token.is_unresolved(value) else value

    replaced = {}
    for field in dataclasses.fields(inputs):
        value = getattr(inputs, field.name)
        if isinstance(value, tuple):
            replaced[field.name] = tuple(mark(f"{field.name}.{i}", v) for i, v in enumerate(value))
        else:
            replaced[field.name] = mark(field.name, value)
    expected = build_pipeline_definition(dataclasses.replace(inputs, **replaced))
    marked = {m for m in expected.split("@@")[1::2]}
    assert {"preprocessing_role_arn", "training_role_arn", "evaluation_role_arn", "raw_bucket"} <= marked
    assert {"kms_key_arn", "subnet_ids.0"} <= marked and "role_arn" not in marked  # never a job's role
    expected_parts = [c if i % 2 == 0 else ("FIELD", c) for i, c in enumerate(expected.split("@@")) if c != ""]

    _, pipeline = _resource(dev.teams["churn"], "AWS::SageMaker::Pipeline")
    actual_parts = _join_parts(pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"])
    assert len(actual_parts) == len(expected_parts)
    binding: dict[str, str] = {}
    for exp, act in zip(expected_parts, actual_parts, strict=True):
        if isinstance(exp, str):
            assert exp == act
        else:
            key = json.dumps(act, sort_keys=True)
            assert binding.setdefault(exp[1], key) == key, f"{exp[1]} bound to two different values"
    # distinct inputs stay distinct after synthesis
    assert len(set(binding.values())) == len(binding)
    assert construct.definition_body == build_pipeline_definition(inputs)


def test_pipeline_body_is_valid_json_once_resolved(dev):
    _, pipeline = _resource(dev.teams["diagnostics"], "AWS::SageMaker::Pipeline")
    parts = _join_parts(pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"])
    text = "".join(p if isinstance(p, str) else "X" for p in parts)
    document = json.loads(text)
    assert [s["Name"] for s in document["Steps"]] == ["Preprocess", "DataContractCheck"]


def test_each_team_has_its_own_rotating_job_key_used_by_every_job(dev):
    keys = {}
    for name, template in dev.teams.items():
        ((key_id, key),) = [(k, v) for k, v in template.find_resources("AWS::KMS::Key").items() if "JobKey" in k]
        assert key["Properties"]["EnableKeyRotation"] is True
        construct = dev.stage.teams[name].pipelines["tabular"]
        document = json.loads(construct.definition_body)
        key_arn = construct.definition_inputs.kms_key_arn
        assert dev.stage.teams[name].resolve(key_arn) == {"Fn::GetAtt": [key_id, "Arn"]}  # the team stack's own key
        keys[name] = key_arn
        jobs = [s for s in document["Steps"] if s["Type"] == "Processing"] + [
            x for s in document["Steps"] for x in s.get("Arguments", {}).get("IfSteps", []) if x["Type"] != "Condition"
        ]
        for job in jobs:
            text = json.dumps(job["Arguments"])
            assert key_arn in text, f"{name}/{job['Name']} does not use the team's job key"
    assert len(set(keys.values())) == len(keys) >= 2  # no two teams share a job key
