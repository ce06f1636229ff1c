"""Team workload: registry, pipeline (one definition, two places) and a least-privilege execution role."""

from __future__ import annotations

import dataclasses
import json

from aws_cdk import Token

from pipelines.tabular.definition import build_pipeline_definition


def _resource(template, kind):
    (item,) = template.find_resources(kind).items()
    return item


def test_each_team_gets_a_registry_retained(dev):
    for name, template in dev.teams.items():
        _, group = _resource(template, "AWS::SageMaker::ModelPackageGroup")
        assert group["Properties"]["ModelPackageGroupName"] == f"flywheel-dev-{name}"
        assert group["DeletionPolicy"] == "Retain"


def test_pipeline_runs_as_its_own_execution_role(dev):
    template = dev.teams["churn"]
    _, pipeline = _resource(template, "AWS::SageMaker::Pipeline")
    assert pipeline["Properties"]["PipelineName"] == "flywheel-dev-churn-tabular"
    role_id, role = _resource(template, "AWS::IAM::Role")
    assert pipeline["Properties"]["RoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "sagemaker.amazonaws.com"
    }
    assert "PermissionsBoundary" in role["Properties"]
    template.resource_count_is("AWS::IAM::Policy", 0)  # no inline policies: one reviewed managed policy


def _statements(template):
    _, policy = _resource(template, "AWS::IAM::ManagedPolicy")
    return {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


def test_s3_access_is_limited_to_the_pipeline_and_team_prefixes(dev):
    s = _statements(dev.teams["churn"])
    own = json.dumps(s["ReadWriteOwnPrefixes"]["Resource"])
    assert own.count("/flywheel-dev-churn-tabular/*") == 3
    assert "s3:DeleteObject" not in json.dumps(s)  # jobs never delete data
    assert json.dumps(s["ReadTeamRawBatchesAndPiiKey"]["Resource"]).endswith('/churn/*"]]}')
    assert sorted(s["WriteQuarantine"]["Action"]) == ["s3:AbortMultipartUpload", "s3:PutObject"]
    assert "diagnostics" not in json.dumps(s)


def test_pass_role_only_to_sagemaker_and_only_itself(dev):
    s = _statements(dev.teams["churn"])["PassOwnRoleToSageMaker"]
    assert s["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert s["Resource"]["Fn::GetAtt"][1] == "Arn"


def test_registration_limited_to_the_team_group(dev):
    s = _statements(dev.teams["churn"])["RegisterInTeamGroup"]
    assert all("flywheel-dev-churn" in r for r in s["Resource"])


def test_step_code_read_by_exact_object(dev):
    s = _statements(dev.teams["churn"])["ReadStepCodeAndContract"]
    assert len(s["Resource"]) == 2 and not any("*" in r for r in s["Resource"])


def test_every_s3_prefix_input_can_be_listed_and_read(dev):
    """SageMaker lists an S3Prefix input before reading it: each input of the definition needs both."""
    construct = dev.stage.teams["churn"].pipelines["tabular"]
    document = json.loads(construct.definition_body)
    statements = _statements(dev.teams["churn"])
    listable = json.dumps([s for s in statements.values() if "s3:ListBucket" in s["Action"]])
    readable = json.dumps([s for s in statements.values() if "s3:GetObject" in s["Action"]])
    inputs = []
    for step in document["Steps"] + [
        x for s in document["Steps"] for k in ("IfSteps", "ElseSteps") for x in s.get("Arguments", {}).get(k, [])
    ]:
        args = step.get("Arguments", {})
        inputs += [i["S3Input"] for i in args.get("ProcessingInputs", [])]
        inputs += [c["DataSource"]["S3DataSource"] for c in args.get("InputDataConfig", [])]
    literal = [i["S3Uri"] for i in inputs if isinstance(i["S3Uri"], str) and i["S3Uri"].startswith("s3://cdk-")]
    assert len(literal) == 6  # code + contract for Preprocess, Train, Evaluate
    for uri in literal:
        key = uri.split("/", 3)[3]
        assert f'"{key}"' in listable, f"no ListBucket for {key}"
        assert key in readable, f"no GetObject for {key}"


def test_kms_grants_only_for_aws_resources(dev):
    s = _statements(dev.teams["churn"])
    grants = [x for x in s.values() if "kms:CreateGrant" in x["Action"]]
    assert grants and all(g["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}} for g in grants)


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
    assert {"role_arn", "raw_bucket", "kms_key_arn", "subnet_ids.0"} <= marked
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


def test_gate_threshold_comes_from_team_config(stages):
    for stage in stages.values():
        for name, template in stage.teams.items():
            _, pipeline = _resource(template, "AWS::SageMaker::Pipeline")
            parts = _join_parts(pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"])
            document = json.loads("".join(p if isinstance(p, str) else "X" for p in parts))
            (gate,) = [p for p in document["Parameters"] if p["Name"] == "GateThreshold"]
            team = next(t for t in stage.stage.teams_config if t.name == name)
            assert gate["DefaultValue"] == team.metric_gate.threshold


def test_each_team_has_its_own_rotating_job_key_used_by_every_job(dev):
    keys = {}
    for name, template in dev.teams.items():
        key_id, key = _resource(template, "AWS::KMS::Key")
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
