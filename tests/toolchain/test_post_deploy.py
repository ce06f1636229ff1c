"""The toolchain's post-deploy steps, offline: SageMaker under moto, the endpoint's answer through a stub.

The plan is the one the toolchain stack writes at synth (``stacks.components.post_deploy.plan``) for the
configured staging environment and teams, so names line up with what the stage deploys.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

import naming
from config.loader import load_config
from stacks.components.post_deploy import plan as build_plan
from stacks.components.post_deploy import sample_instance
from toolchain import post_deploy as pd

REGION = "eu-west-1"
ROLE = "arn:aws:iam::222222222222:role/flywheel/staging/pipeline/x"
PACKAGE_TAG = "flywheel:model-package-arn"


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture
def staging(config):
    return config.environment("staging")


def definition(version: int = 1) -> str:
    return json.dumps(
        {
            "Version": "2020-12-01",
            "Parameters": [{"Name": "InputDataUri", "Type": "String"}],
            "Steps": [{"Name": "Preprocess", "Type": "Processing", "Arguments": {"code": f"sha-{version}"}}],
        }
    )


class Runtime:
    """The ``sagemaker-runtime`` seam: answers every invocation with ``answer`` and records the requests."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        body = self.answer if isinstance(self.answer, bytes) else json.dumps(self.answer).encode()
        return {"Body": io.BytesIO(body), "ContentType": "application/json"}


def binary_answer(rows: int = 2) -> dict[str, Any]:
    return {"predictions": [{"probability": 0.8, "label": 1}] * rows}


@pytest.fixture
def aws():
    with mock_aws():
        yield boto3.client("sagemaker", region_name=REGION)


def provision(sm, env_name: str, teams, *, approve: dict[str, bool] | None = None, tag_other: bool = False) -> None:
    """Create what the stage deploys: a pipeline per template, the registry, and (when approved) the endpoint."""
    names = naming.Names(env_name)
    for team in teams:
        for template in team.pipelines:
            sm.create_pipeline(
                PipelineName=names.pipeline(team.name, template), PipelineDefinition=definition(), RoleArn=ROLE
            )
        group = names.model_package_group(team.name)
        sm.create_model_package_group(ModelPackageGroupName=group)
        if not (approve or {}).get(team.name):
            continue
        arns = [
            sm.create_model_package(
                ModelPackageGroupName=group,
                ModelApprovalStatus="Approved",
                InferenceSpecification={
                    "Containers": [{"Image": "img", "ModelDataUrl": "s3://b/model.tar.gz"}],
                    "SupportedContentTypes": ["application/json"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
            )["ModelPackageArn"]
            for _ in range(2)
        ]
        if team.deploy_target == "batch":
            continue
        endpoint = names.endpoint(team.name)
        sm.create_model(ModelName=f"{endpoint}-m", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img"})
        serving = arns[0] if tag_other else arns[-1]
        config_name = f"{endpoint}-v2-abcdef12"
        sm.create_endpoint_config(
            EndpointConfigName=config_name,
            ProductionVariants=[
                {"VariantName": "AllTraffic", "ModelName": f"{endpoint}-m", "InstanceType": "ml.m5.large",
                 "InitialInstanceCount": 1}
            ],
            Tags=[{"Key": PACKAGE_TAG, "Value": serving}],
        )  # fmt: skip
        sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)


def run(step: str, plan_json: str, runtime: Runtime | None = None, capsys=None) -> tuple[int, str]:
    def clients(plan: pd.Plan, session: str):
        cache: dict[str, Any] = {"sagemaker-runtime": runtime or Runtime(binary_answer())}
        return lambda service: cache.setdefault(service, boto3.client(service, region_name=plan.region))

    code = pd.main([step], environ={pd.PLAN_VARIABLE: plan_json}, clients=clients)
    out = capsys.readouterr() if capsys else None
    return code, (out.out + out.err) if out else ""


def _binary_only(config):
    """The configured teams, binary objective (churn, diagnostics): what the shipped config holds."""
    assert {t.contract.objective for t in config.teams} == {"binary"}
    return config.teams


# -- smoke -------------------------------------------------------------------------------------------------


def test_smoke_passes_when_every_endpoint_runs_the_approved_model_and_answers(aws, config, staging, capsys):
    teams = _binary_only(config)
    provision(aws, "staging", teams, approve={t.name: True for t in teams})
    runtime = Runtime(binary_answer())
    code, out = run("smoke", build_plan(staging, teams, step="smoke"), runtime, capsys)
    assert code == 0, out
    assert "ok    endpoint flywheel-staging-churn: InService on flywheel-staging-churn-v2-abcdef12" in out
    assert "answered the contract sample as a binary model" in out
    assert "FAIL" not in out
    # the sample is the contract's curated columns (no id, no direct identifier, no target)
    body = json.loads(runtime.requests[0]["Body"])
    churn = config.team("churn").contract
    assert set(body["instances"][0]) == set(sample_instance(churn))
    assert not set(body["instances"][0]) & set(churn.names("id", "direct_identifier", "target"))


def test_smoke_fails_when_the_endpoint_runs_another_package(aws, config, staging, capsys):
    teams = config.teams
    provision(aws, "staging", teams, approve={t.name: True for t in teams}, tag_other=True)
    code, out = run("smoke", build_plan(staging, teams, step="smoke"), Runtime(binary_answer()), capsys)
    assert code == 1
    assert "FAIL  endpoint flywheel-staging-churn: runs config flywheel-staging-churn-v2-abcdef12 of package" in out
    assert "newest approved package is" in out


WRONG_ANSWERS = [
    ({"predictions": [{"label": 1}] * 2}, "needs 'probability' in [0, 1] and 'label'"),
    ({"predictions": [{"probability": 1.5, "label": 1}] * 2}, "needs 'probability' in [0, 1]"),
    ({"predictions": [{"probability": 0.5, "label": 1}]}, "1 predictions for 2 rows"),
    ({"result": []}, "no 'predictions' list"),
    (b"<html>oops</html>", "the answer is not JSON"),
]


def test_smoke_fails_on_a_wrong_answer_shape(aws, config, staging, capsys):
    teams = config.teams
    provision(aws, "staging", teams, approve={t.name: True for t in teams})
    for answer, expected in WRONG_ANSWERS:
        code, out = run("smoke", build_plan(staging, teams, step="smoke"), Runtime(answer), capsys)
        assert code == 1 and "FAIL  endpoint flywheel-staging-churn: " in out and expected in out, (answer, out)


def test_smoke_without_an_approved_model_notes_it_unless_required(aws, config, staging, capsys):
    provision(aws, "staging", config.teams)
    code, out = run("smoke", build_plan(staging, config.teams, step="smoke"), capsys=capsys)
    assert code == 0, out
    assert "note  endpoint flywheel-staging-churn: no approved model in flywheel-staging-churn yet" in out
    assert "ok    pipeline flywheel-staging-churn-tabular: Active, 1 top-level steps" in out
    assert "ok    registry flywheel-staging-churn: exists" in out
    code, out = run("smoke", build_plan(staging, config.teams, step="smoke", require_endpoint=True), capsys=capsys)
    assert code == 1 and "(require_endpoint is on)" in out


def test_smoke_fails_when_a_pipeline_or_registry_is_missing(aws, config, staging, capsys):
    code, out = run("smoke", build_plan(staging, config.teams, step="smoke"), capsys=capsys)
    assert code == 1
    assert "FAIL  pipeline flywheel-staging-churn-tabular: not found" in out
    assert "FAIL  registry flywheel-staging-churn: not found" in out


def test_smoke_fails_when_an_approved_model_has_no_endpoint(aws, config, staging, capsys):
    teams = config.teams
    provision(aws, "staging", teams, approve={t.name: True for t in teams})
    aws.delete_endpoint(EndpointName="flywheel-staging-churn")
    code, out = run("smoke", build_plan(staging, teams, step="smoke"), capsys=capsys)
    assert code == 1 and "FAIL  endpoint flywheel-staging-churn: not found although" in out


def test_batch_teams_have_no_endpoint_in_the_plan(config, staging):
    batch = config.team("churn").model_copy(update={"deploy_target": "batch"})
    plan = pd.parse_plan(build_plan(staging, (batch,), step="smoke"))
    assert plan.teams[0].endpoint is None


@pytest.mark.parametrize(
    ("answer", "objective", "problem"),
    [
        ({"class_labels": ["a", "b"], "predictions": [{"probabilities": [0.2, 0.8], "label": "b"}]}, "multiclass",
         None),
        ({"class_labels": ["a", "b"], "predictions": [{"probabilities": [0.2, 0.7], "label": "b"}]}, "multiclass",
         "summing to 1"),
        ({"class_labels": ["a", "b"], "predictions": [{"probabilities": [0.2, 0.8], "label": "c"}]}, "multiclass",
         "not one of the class labels"),
        ({"predictions": [{"probabilities": [1.0], "label": "a"}]}, "multiclass", "needs 'class_labels'"),
        ({"predictions": [{"value": 3.5}]}, "regression", None),
        ({"predictions": [{"value": "3.5"}]}, "regression", "finite 'value'"),
        ({"predictions": [{"value": float("nan")}]}, "regression", "finite 'value'"),
        ({"predictions": [{"probability": True, "label": 1}]}, "binary", "probability"),
    ],
)  # fmt: skip
def test_shape_rules_per_objective(answer, objective, problem):
    problems = pd.shape_problems(answer, objective, 1)
    assert (problems == []) if problem is None else any(problem in p for p in problems), problems


# -- retrain -------------------------------------------------------------------------------------------------


def _executions(sm, name: str) -> list[dict[str, Any]]:
    return sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"]


def test_retrain_restarts_only_changed_pipelines_with_the_last_parameters_once(aws, config, staging, capsys):
    teams = config.teams
    provision(aws, "staging", teams)
    plan_json = build_plan(staging, teams, step="retrain")
    churn, diagnostics = "flywheel-staging-churn-tabular", "flywheel-staging-diagnostics-tabular"

    code, out = run("retrain", plan_json, capsys=capsys)
    assert code == 0 and f"note  pipeline {churn}: never ran; it trains when data arrives" in out

    for name in (churn, diagnostics):
        aws.start_pipeline_execution(
            PipelineName=name, PipelineParameters=[{"Name": "InputDataUri", "Value": "s3://raw/churn/incoming/b1/"}]
        )
    code, out = run("retrain", plan_json, capsys=capsys)
    assert code == 0 and f"note  pipeline {churn}: definition unchanged since its latest execution" in out
    assert len(_executions(aws, churn)) == 1

    # a deploy changed churn's step code (the code hash in its definition)
    aws.update_pipeline(PipelineName=churn, PipelineDefinition=definition(2))
    code, out = run("retrain", plan_json, capsys=capsys)
    assert code == 0, out
    assert f"ok    pipeline {churn}: definition changed since execution" in out and "with its 1 parameters" in out
    assert len(_executions(aws, churn)) == 2 and len(_executions(aws, diagnostics)) == 1
    latest = aws.list_pipeline_executions(PipelineName=churn, SortBy="CreationTime", SortOrder="Descending")[
        "PipelineExecutionSummaries"
    ][0]["PipelineExecutionArn"]
    params = aws.list_pipeline_parameters_for_execution(PipelineExecutionArn=latest)["PipelineParameters"]
    assert params == [{"Name": "InputDataUri", "Value": "s3://raw/churn/incoming/b1/"}]

    # the step runs again (a retried build): the new execution ran the new definition, nothing restarts
    code, out = run("retrain", plan_json, capsys=capsys)
    assert code == 0 and len(_executions(aws, churn)) == 2


def test_retrain_skips_teams_that_opted_out(aws, config, staging, capsys):
    provision(aws, "staging", config.teams)
    churn = "flywheel-staging-churn-tabular"
    aws.start_pipeline_execution(PipelineName=churn, PipelineParameters=[{"Name": "InputDataUri", "Value": "s3://x/"}])
    aws.update_pipeline(PipelineName=churn, PipelineDefinition=definition(2))
    code, out = run("retrain", build_plan(staging, config.teams, step="retrain", opt_out=["churn"]), capsys=capsys)
    assert code == 0 and "note  team churn: opted out of retrain on code change" in out
    assert len(_executions(aws, churn)) == 1


def test_client_token_is_stable_and_within_sagemaker_limits():
    token = pd.client_token("p", definition(1))
    assert token == pd.client_token("p", json.dumps(json.loads(definition(1)), indent=4))
    assert token != pd.client_token("p", definition(2)) and 32 <= len(token) <= 128


# -- the entry point -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "no plan: pass --plan FILE or set FLYWHEEL_PLAN"),
        ({pd.PLAN_VARIABLE: "{not json"}, "the plan is not JSON"),
        ({pd.PLAN_VARIABLE: '{"environment": "staging", "region": "eu-west-1"}'}, "role_arn: missing"),
        ({pd.PLAN_VARIABLE: '{"environment": "s", "region": "r", "role_arn": "a", "teams": [{"team": 1}]}'},
         "teams[0].team: expected str"),
    ],
)  # fmt: skip
def test_bad_plans_exit_2_with_the_problem(environ, expected, capsys):
    assert pd.main(["smoke"], environ=environ, clients=lambda *_: pytest.fail("no clients")) == 2
    assert expected in capsys.readouterr().err


def test_the_plan_file_must_match_its_digest(tmp_path, config, staging, aws, capsys):
    import hashlib

    text = build_plan(staging, config.teams, step="smoke")
    path = tmp_path / "staging-smoke.json"
    path.write_text(text, encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()
    provision(aws, "staging", config.teams)

    def clients(plan, session):
        return lambda service: boto3.client(service, region_name=plan.region)

    assert pd.main(["smoke", "--plan", str(path)], environ={pd.DIGEST_VARIABLE: digest}, clients=clients) == 0
    path.write_text(text.replace("churn", "chur2"), encoding="utf-8")
    assert pd.main(["smoke", "--plan", str(path)], environ={pd.DIGEST_VARIABLE: digest}, clients=clients) == 2
    assert "a stale or edited plan file" in capsys.readouterr().err
    assert pd.main(["smoke", "--plan", str(tmp_path / "missing.json")], environ={}, clients=clients) == 2
    assert "No such file" in capsys.readouterr().err


def test_an_unexpected_failure_is_named_without_a_traceback(config, staging, capsys):
    def clients(plan, session):
        def get(service):
            raise RuntimeError("arn:aws:iam::222222222222:role/secret token=abc")

        return get

    assert pd.main(["smoke"], environ={pd.PLAN_VARIABLE: build_plan(staging, config.teams, step="smoke")},
                   clients=clients) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "could not run (RuntimeError)" in err and "Traceback" not in err and "secret" not in err


def test_assumed_clients_assume_the_plans_role(config, staging):
    with mock_aws():
        plan = pd.parse_plan(build_plan(staging, config.teams, step="smoke"))
        clients = pd.assumed_clients(plan, "flywheel-smoke-staging")
        assert clients("sagemaker") is clients("sagemaker")
        assert clients("sagemaker").meta.region_name == "eu-west-1"


# -- the sample and the plan -------------------------------------------------------------------------------


def _features():
    folder = str(Path(__file__).resolve().parents[2] / "pipelines" / "tabular")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import features

    return features


def test_sample_rows_carry_exactly_the_serving_columns_of_every_team(config):
    features = _features()
    for team in config.teams:
        row = sample_instance(team.contract)
        assert list(row) == features.serving_names(team.contract), team.name
        for col in team.contract.columns:
            if col.name in row and col.min is not None:
                assert row[col.name] >= col.min, (team.name, col.name)
            if col.name in row and col.max is not None:
                assert row[col.name] <= col.max, (team.name, col.name)
            if col.name in row and col.allowed:
                assert str(row[col.name]).lower() in [str(a).lower() for a in col.allowed]


def test_the_sample_is_accepted_by_the_real_inference_code(config):
    """The sample goes through the inference container's own parsing, column check and encoding, and every
    value is recognized (an unknown category or unparsable number would encode as missing)."""
    import numpy as np

    features = _features()
    import inference

    for team in config.teams:
        body = json.dumps({"instances": [sample_instance(team.contract)] * 2})
        metadata = {"feature_names": features.serving_names(team.contract), "problem": "binary", "class_labels": [0, 1]}
        model = inference.Model(booster=None, metadata=metadata, contract=team.contract)
        matrix = features.encode(inference.align(inference.input_fn(body, "application/json"), model), team.contract)
        assert matrix.shape == (2, len(metadata["feature_names"])) and not np.isnan(matrix).any(), team.name


def test_the_plan_names_what_the_stage_deploys(config, staging):
    plan = pd.parse_plan(build_plan(staging, config.teams, step="smoke", opt_out=["diagnostics"]))
    assert plan.role_arn == "arn:aws:iam::222222222222:role/flywheel/staging/flywheel-staging-toolchain-smoke"
    churn = plan.teams[0]
    assert churn.pipelines == ("flywheel-staging-churn-tabular", "flywheel-staging-churn-batch-scoring")
    assert churn.model_package_group == "flywheel-staging-churn" and churn.endpoint == "flywheel-staging-churn"
    assert churn.objective == "binary" and len(churn.sample["instances"]) == 2  # type: ignore[index]
    assert [t.retrain for t in plan.teams] == [True, False]
