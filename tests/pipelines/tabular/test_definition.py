"""The ``tabular`` pipeline definition: references, security, gates, determinism, offline build.

The definition is built once per module (it costs ~0.5 s after the SDK import) and inspected as JSON,
the form in which both SageMaker and the local executor consume it. The tiny condition evaluator below
only exists to test the gate logic; the real one lives in the local runtime.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import subprocess
import sys
import tarfile
import textwrap
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3  # imported at collection: urllib3 probes IPv6 with a socket on first import
import pytest

from pipelines import sdk_offline
from pipelines.tabular import definition as d
from pipelines.tabular.definition import TabularPipelineInputs, build_pipeline_definition

REPO_ROOT = Path(__file__).resolve().parents[3]
ROLE = "arn:aws:iam::123456789012:role/flywheel/dev/pipeline/team-a"
STEP_ROLES = {
    "preprocessing_role_arn": "arn:aws:iam::123456789012:role/flywheel/dev/preprocessing/team-a",
    "training_role_arn": "arn:aws:iam::123456789012:role/flywheel/dev/training/team-a",
    "evaluation_role_arn": "arn:aws:iam::123456789012:role/flywheel/dev/evaluation/team-a",
}
JOB_ROLES = {
    "Preprocess": STEP_ROLES["preprocessing_role_arn"],
    "Train": STEP_ROLES["training_role_arn"],
    "Evaluate": STEP_ROLES["evaluation_role_arn"],
}
SHA = "0123456789abcdef" * 4
KMS = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
SUBNETS = ("subnet-0aaa", "subnet-0bbb")
SECURITY_GROUPS = ("sg-0ccc",)
BUCKETS = {
    "raw_bucket": "team-a-raw",
    "features_bucket": "team-a-features",
    "artifacts_bucket": "team-a-artifacts",
    "reports_bucket": "team-a-reports",
}
SOURCE_URI = "s3://team-a-artifacts/code/tabular/0123abcd/sourcedir.tar.gz"
CONTRACT_URI = "s3://team-a-artifacts/code/tabular/0123abcd/contract.json"
NO_CHAMPION_URI = "s3://team-a-artifacts/code/team-a/4567cdef/no-champion.json"
CARD_URI = "s3://team-a-artifacts/code/team-a/89abcdef/card.json"
JOB_STEP_TYPES = {"Processing", "Training"}
KNOWN_STEP_TYPES = JOB_STEP_TYPES | {"Condition", "Fail", "RegisterModel"}
EXECUTION_VARIABLES = {
    "PipelineExecutionId",
    "PipelineExecutionArn",
    "PipelineName",
    "PipelineArn",
    "StartDateTime",
    "CurrentDateTime",
}


def make_inputs(**overrides: Any) -> TabularPipelineInputs:
    values: dict[str, Any] = {
        "pipeline_name": "team-a-tabular",
        "region": "eu-west-1",
        "role_arn": ROLE,
        **STEP_ROLES,
        "team": "team-a",
        "source_sha256": SHA,
        "kms_key_arn": KMS,
        "subnet_ids": SUBNETS,
        "security_group_ids": SECURITY_GROUPS,
        **BUCKETS,
        "source_uri": SOURCE_URI,
        "contract_uri": CONTRACT_URI,
        "no_champion_uri": NO_CHAMPION_URI,
        "card_uri": CARD_URI,
        "model_package_group_name": "team-a-tabular",
        "objective": "binary",
        "gate_metric": "auc",
        "gate_threshold": 0.75,
        "higher_is_better": True,
    }
    values.update(overrides)
    return TabularPipelineInputs(**values)


@pytest.fixture(scope="module")
def definition_text() -> str:
    return build_pipeline_definition(make_inputs())


@pytest.fixture(scope="module")
def definition(definition_text: str) -> dict[str, Any]:
    return json.loads(definition_text)


@pytest.fixture(scope="module")
def local_definition() -> dict[str, Any]:
    """The local runtime's build: GateThreshold is a (labelled) local-only parameter."""
    return json.loads(build_pipeline_definition(make_inputs(local_overrides=True)))


# ------------------------------------------------------------------------------------------------
# Helpers: walking the definition.


def iter_steps(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every step, including the ones nested in condition branches (pre-order)."""
    for step in steps:
        yield step
        if step["Type"] == "Condition":
            yield from iter_steps(step["Arguments"]["IfSteps"])
            yield from iter_steps(step["Arguments"]["ElseSteps"])


def steps_by_name(definition: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["Name"]: step for step in iter_steps(definition["Steps"])}


def own_content(step: Mapping[str, Any]) -> Any:
    """A step without the steps nested in its branches."""
    if step["Type"] != "Condition":
        return step
    arguments = {k: v for k, v in step["Arguments"].items() if k not in ("IfSteps", "ElseSteps")}
    return {**step, "Arguments": arguments}


def find_gets(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if set(node) == {"Get"}:
            yield node["Get"]
        for value in node.values():
            yield from find_gets(value)
    elif isinstance(node, list):
        for item in node:
            yield from find_gets(item)


def find_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from find_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from find_strings(item)


def find_joins(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "Std:Join" in node:
            yield node["Std:Join"]
        for value in node.values():
            yield from find_joins(value)
    elif isinstance(node, list):
        for item in node:
            yield from find_joins(item)


def output_names(step: Mapping[str, Any]) -> set[str]:
    return {o["OutputName"] for o in step["Arguments"]["ProcessingOutputConfig"]["Outputs"]}


# ------------------------------------------------------------------------------------------------
# A minimal evaluator of the definition's expressions and conditions (tests only).


def resolve(node: Any, parameters: Mapping[str, Any], files: Mapping[tuple[str, str], Any]) -> Any:
    if isinstance(node, dict) and "Get" in node:
        kind, _, name = node["Get"].partition(".")
        assert kind == "Parameters", f"evaluator only resolves parameters here, got {node}"
        return parameters[name]
    if isinstance(node, dict) and "Std:JsonGet" in node:
        spec = node["Std:JsonGet"]
        _, step, _, property_file = spec["PropertyFile"]["Get"].split(".")
        value = files[(step, property_file)]
        for key in spec["Path"].split("."):
            value = value[key]
        return value
    if isinstance(node, dict) and "Std:Join" in node:
        spec = node["Std:Join"]
        parts = [resolve(v, parameters, files) for v in spec["Values"]]
        return spec["On"].join(str(p).lower() if isinstance(p, bool) else str(p) for p in parts)
    return node


def holds(condition: Mapping[str, Any], parameters: Mapping[str, Any], files: Mapping[tuple[str, str], Any]) -> bool:
    left = resolve(condition["LeftValue"], parameters, files)
    right = resolve(condition["RightValue"], parameters, files)
    return {
        "Equals": lambda: left == right,
        "GreaterThanOrEqualTo": lambda: left >= right,
        "LessThanOrEqualTo": lambda: left <= right,
        "GreaterThan": lambda: left > right,
        "LessThan": lambda: left < right,
    }[condition["Type"]]()


def default_parameters(definition: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    values = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    values.update(overrides)
    return values


def branch_taken(step: Mapping[str, Any], parameters: Mapping[str, Any], files: Mapping[tuple[str, str], Any]) -> str:
    ok = all(holds(c, parameters, files) for c in step["Arguments"]["Conditions"])
    return "IfSteps" if ok else "ElseSteps"


def evaluation_document(value: float, not_worse: int, kind: str = "binary", passed: int = 1) -> dict[str, Any]:
    return {
        f"{kind}_metrics": {"auc": value},
        "gate": {
            "metric": "auc",
            "value": value,
            "display": f"{value:.4g}",
            "higher_is_better": True,
            "passed": passed,
            "summary": "every check passed" if passed else "balanced accuracy 0.5 vs the trivial model's 0.5",
        },
        "champion": {"metric_value": None, "challenger_not_worse": not_worse, "display": "none"},
    }


# ------------------------------------------------------------------------------------------------
# Structure and references.


def test_parameters_have_the_agreed_names_types_and_defaults(definition: dict[str, Any]) -> None:
    parameters = {p["Name"]: p for p in definition["Parameters"]}
    assert tuple(parameters) == d.PARAMETER_NAMES
    types = {name: p["Type"] for name, p in parameters.items()}
    assert types == {
        "InputDataUri": "String",
        "ProcessingInstanceType": "String",
        "TrainingInstanceType": "String",
        "EvaluationInstanceType": "String",
        "ChampionMetric": "String",
        "ChampionModelUri": "String",
        "NumRound": "Integer",
        "MaxDepth": "Integer",
        "Eta": "Float",
        "EarlyStoppingRounds": "Integer",
    }
    defaults = default_parameters(definition)
    assert "DefaultValue" not in parameters["InputDataUri"]  # the caller always names the batch
    # Nothing a starter could lower: the PII key, the gate and the input prefix are fixed at synth.
    assert not {"PiiKeyUri", "GateThreshold"} & set(parameters)
    assert defaults["ChampionMetric"] == "none"
    assert defaults["ChampionModelUri"] == NO_CHAMPION_URI  # the marker object: an input needs an object
    assert (defaults["NumRound"], defaults["MaxDepth"], defaults["Eta"], defaults["EarlyStoppingRounds"]) == (
        200,
        6,
        0.2,
        20,
    )


def test_steps_form_the_agreed_tree(definition: dict[str, Any]) -> None:
    top = [step["Name"] for step in definition["Steps"]]
    assert top == ["Preprocess", "DataContractCheck"]
    steps = steps_by_name(definition)
    check = steps["DataContractCheck"]["Arguments"]
    assert [s["Name"] for s in check["IfSteps"]] == ["PiiScanCheck"]
    assert [s["Name"] for s in check["ElseSteps"]] == ["DataContractFailed"]
    pii = steps["PiiScanCheck"]["Arguments"]
    assert [s["Name"] for s in pii["IfSteps"]] == ["Train", "Evaluate", "QualityGate"]
    assert [s["Name"] for s in pii["ElseSteps"]] == ["PiiScanFailed"]
    gate = steps["QualityGate"]["Arguments"]
    assert [s["Name"] for s in gate["IfSteps"]] == ["RegisterModel"]
    assert [s["Name"] for s in gate["ElseSteps"]] == ["QualityGateFailed"]
    assert {name: s["Type"] for name, s in steps.items()} == {
        "Preprocess": "Processing",
        "DataContractCheck": "Condition",
        "Train": "Training",
        "Evaluate": "Processing",
        "QualityGate": "Condition",
        "RegisterModel": "RegisterModel",
        "QualityGateFailed": "Fail",
        "DataContractFailed": "Fail",
        "PiiScanCheck": "Condition",
        "PiiScanFailed": "Fail",
    }


def test_every_reference_resolves_to_something_that_runs_before_it(definition: dict[str, Any]) -> None:
    parameters = {p["Name"] for p in definition["Parameters"]}
    steps = steps_by_name(definition)
    checked = 0

    def check(step: dict[str, Any], available: set[str]) -> None:
        nonlocal checked
        for ref in find_gets(own_content(step)):
            checked += 1
            kind, _, rest = ref.partition(".")
            if kind == "Parameters":
                assert rest in parameters, ref
            elif kind == "Execution":
                assert rest in EXECUTION_VARIABLES, ref
            else:
                assert kind == "Steps", ref
                name, _, path = rest.partition(".")
                assert name in available, f"{step['Name']} reads {ref} before {name} has run"
                target = steps[name]
                if path.startswith("PropertyFiles."):
                    declared = {p["PropertyFileName"] for p in target.get("PropertyFiles", [])}
                    assert path.removeprefix("PropertyFiles.") in declared, ref
                elif path.startswith("ProcessingOutputConfig.Outputs['"):
                    output = path.split("'")[1]
                    assert target["Type"] == "Processing" and output in output_names(target), ref
                else:
                    assert path == "ModelArtifacts.S3ModelArtifacts" and target["Type"] == "Training", ref

    def walk(branch: list[dict[str, Any]], available: set[str]) -> None:
        seen = set(available)
        for step in branch:
            check(step, seen)
            if step["Type"] == "Condition":
                walk(step["Arguments"]["IfSteps"], seen)
                walk(step["Arguments"]["ElseSteps"], seen)
            seen.add(step["Name"])

    walk(definition["Steps"], set())
    assert checked > 30


def test_property_files_point_at_declared_outputs(definition: dict[str, Any]) -> None:
    steps = steps_by_name(definition)
    declared = {
        (name, p["PropertyFileName"]): (p["OutputName"], p["FilePath"])
        for name, step in steps.items()
        for p in step.get("PropertyFiles", [])
    }
    assert declared == {
        ("Preprocess", "ValidationStatusAlgo1"): ("status", "validation-algo-1.json"),
        ("Preprocess", "PiiScanAlgo1"): ("status", "pii-scan-algo-1.json"),
        ("Evaluate", "EvaluationReport"): ("evaluation", "evaluation.json"),
    }
    for (name, _), (output, _) in declared.items():
        assert output in output_names(steps[name])


def test_step_names_are_unique(definition: dict[str, Any]) -> None:
    names = [step["Name"] for step in iter_steps(definition["Steps"])]
    assert len(names) == len(set(names))


# ------------------------------------------------------------------------------------------------
# Security properties of every job.


def test_every_job_is_encrypted_isolated_and_in_the_vpc(definition: dict[str, Any]) -> None:
    steps = list(iter_steps(definition["Steps"]))
    assert {s["Type"] for s in steps} <= KNOWN_STEP_TYPES, "a new step type needs its security checks here"
    jobs = [s for s in steps if s["Type"] in JOB_STEP_TYPES]
    assert [j["Name"] for j in jobs] == ["Preprocess", "Train", "Evaluate"]
    vpc = {"Subnets": list(SUBNETS), "SecurityGroupIds": list(SECURITY_GROUPS)}
    for job in jobs:
        args = job["Arguments"]
        assert args["RoleArn"] == JOB_ROLES[job["Name"]]  # each job as its step kind's role
        assert {"Key": "flywheel:team", "Value": "team-a"} in args["Tags"]
        assert args["StoppingCondition"]["MaxRuntimeInSeconds"] > 0
        if job["Type"] == "Processing":
            assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KMS
            assert args["ProcessingOutputConfig"]["KmsKeyId"] == KMS
            network = args["NetworkConfig"]
            assert network["EnableNetworkIsolation"] is True
            assert network["EnableInterContainerTrafficEncryption"] is True
            assert network["VpcConfig"] == vpc
        else:
            assert args["ResourceConfig"]["VolumeKmsKeyId"] == KMS
            assert args["OutputDataConfig"]["KmsKeyId"] == KMS
            assert args["EnableNetworkIsolation"] is True
            assert args["EnableInterContainerTrafficEncryption"] is True
            assert args["VpcConfig"] == vpc


def test_data_only_goes_to_the_team_buckets(definition: dict[str, Any]) -> None:
    buckets = set(BUCKETS.values())
    literal_uris = [s for s in find_strings(definition) if s.startswith("s3://")]
    assert literal_uris, "expected the code, contract and PII key URIs"
    for uri in literal_uris:
        assert uri.removeprefix("s3://").split("/")[0] in buckets, uri
    s3_joins = [j for j in find_joins(definition) if j["Values"] and j["Values"][0] == "s3:/"]
    assert len(s3_joins) == 7  # 5 preprocess outputs (quarantine: under the team prefix), model, evaluation
    for join in s3_joins:
        assert join["On"] == "/" and join["Values"][1] in buckets, join


def test_pii_stays_in_the_raw_zone(definition: dict[str, Any]) -> None:
    preprocess = steps_by_name(definition)["Preprocess"]["Arguments"]
    outputs = {
        o["OutputName"]: o["S3Output"]["S3Uri"]["Std:Join"]["Values"]
        for o in preprocess["ProcessingOutputConfig"]["Outputs"]
    }
    assert outputs["quarantine"] == [
        "s3://team-a-raw/team-a/quarantine/team-a-tabular/",
        {"Get": "Execution.PipelineExecutionId"},
    ]
    outputs["quarantine"] = ["s3:/", "team-a-raw"]
    assert {name: values[1] for name, values in outputs.items()} == {
        "train": "team-a-features",
        "validation": "team-a-features",
        "test": "team-a-features",
        "baseline": "team-a-artifacts",
        "status": "team-a-reports",
        "quarantine": "team-a-raw",
    }
    raw_input = next(i for i in preprocess["ProcessingInputs"] if i["InputName"] == "raw")["S3Input"]
    assert raw_input["S3Uri"] == {"Get": "Parameters.InputDataUri"}
    assert raw_input["S3DataDistributionType"] == "ShardedByS3Key"


# ------------------------------------------------------------------------------------------------
# The container contract of the step scripts.


def test_processing_steps_unpack_the_sourcedir_and_run_their_script(definition: dict[str, Any]) -> None:
    steps = steps_by_name(definition)
    for name, script in (("Preprocess", "preprocess.py"), ("Evaluate", "evaluate.py")):
        app = steps[name]["Arguments"]["AppSpecification"]
        assert app["ContainerEntrypoint"] == [*d.processing_entrypoint("sourcedir.tar.gz", SHA), script]
        image = (
            steps["Train"]["Arguments"]["AlgorithmSpecification"]["TrainingImage"]
            if name == "Evaluate"
            else ("141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3")
        )
        assert app["ImageUri"] == image  # Evaluate loads the model: the image that trained it
        inputs = {i["InputName"]: i["S3Input"] for i in steps[name]["Arguments"]["ProcessingInputs"]}
        assert inputs["code"]["S3Uri"] == SOURCE_URI
        assert inputs["code"]["LocalPath"] == "/opt/ml/processing/input/code"
        assert inputs["contract"]["S3Uri"] == CONTRACT_URI
    assert steps["Preprocess"]["Arguments"]["AppSpecification"]["ContainerArguments"] == [
        "--contract",
        "/opt/ml/processing/input/contract/contract.json",
        "--input-dir",
        "/opt/ml/processing/input/raw",
        "--output-dir",
        "/opt/ml/processing/output",
        "--pii-key-file",
        "/opt/ml/processing/input/pii-key/pii-hmac.key",
        "--input-uri",
        {"Get": "Parameters.InputDataUri"},
        "--allowed-input-prefix",
        "s3://team-a-raw/team-a/incoming/",
    ]
    pii = {i["InputName"]: i["S3Input"]["S3Uri"] for i in steps["Preprocess"]["Arguments"]["ProcessingInputs"]}
    assert pii["pii-key"] == "s3://team-a-raw/_keys/pii-hmac.key"  # a constant, never a parameter
    assert steps["Evaluate"]["Arguments"]["AppSpecification"]["ContainerArguments"] == [
        "--model-dir",
        "/opt/ml/processing/input/model",
        "--test-dir",
        "/opt/ml/processing/input/test",
        "--baseline-dir",
        "/opt/ml/processing/input/baseline",
        "--contract",
        "/opt/ml/processing/input/contract/contract.json",
        "--output-dir",
        "/opt/ml/processing/output/evaluation",
        "--gate-metric",
        "auc",
        "--champion-metric",
        {"Get": "Parameters.ChampionMetric"},
        "--champion-model-dir",
        "/opt/ml/processing/input/champion",
        "--gate-threshold",
        "0.75",
        "--trivial-margin",
        "0.01",
        "--fairness-max-gap",
        "none",
        "--team",
        "team-a",
        "--execution-id",
        {"Get": "Execution.PipelineExecutionId"},
        "--input-data-uri",
        {"Get": "Parameters.InputDataUri"},
        "--card-file",
        "/opt/ml/processing/input/card/card.json",
    ]


def test_the_champion_model_is_an_evaluate_input_from_its_parameter(definition: dict[str, Any]) -> None:
    """The deployed Evaluate scores the champion on the same test rows: ChampionModelUri, the parameter the
    data-arrival Lambda fills with the champion's ModelDataUrl, is mounted where --champion-model-dir points."""
    from lambdas.lifecycle import arrival

    assert arrival.PARAM_CHAMPION_MODEL_URI == d.PARAM_CHAMPION_MODEL_URI  # the Lambda's name is the pipeline's
    assert arrival.PARAM_CHAMPION_METRIC == d.PARAM_CHAMPION_METRIC
    evaluate_step = steps_by_name(definition)["Evaluate"]["Arguments"]
    inputs = {i["InputName"]: i["S3Input"] for i in evaluate_step["ProcessingInputs"]}
    champion = inputs["champion"]
    assert champion["S3Uri"] == {"Get": "Parameters.ChampionModelUri"}
    assert champion["S3DataType"] == "S3Prefix" and champion["S3DataDistributionType"] == "FullyReplicated"
    args = evaluate_step["AppSpecification"]["ContainerArguments"]
    assert args[args.index("--champion-model-dir") + 1] == champion["LocalPath"]
    # Preprocess and Train never see the champion.
    steps = steps_by_name(definition)
    assert "ChampionModelUri" not in json.dumps(steps["Preprocess"]) + json.dumps(steps["Train"])
    with pytest.raises(ValueError, match=r"^no_champion_uri: "):
        make_inputs(no_champion_uri="s3://team-a-artifacts/code/")


def test_the_gate_margin_and_fairness_gap_come_from_config_never_parameters() -> None:
    inputs = make_inputs(trivial_margin=0.05, fairness_max_gap=0.2)
    steps = steps_by_name(json.loads(d.build_pipeline_definition(inputs)))
    args = steps["Evaluate"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert args[args.index("--trivial-margin") + 1] == "0.05"
    assert args[args.index("--fairness-max-gap") + 1] == "0.2"
    for bad, field in ((dict(trivial_margin=0.9), "trivial_margin"), (dict(fairness_max_gap=0.0), "fairness_max_gap")):
        with pytest.raises(ValueError, match=field):
            make_inputs(**bad)


@pytest.mark.parametrize("tampered", [False, True])
def test_the_entrypoint_verifies_the_archive_hash_before_unpacking(tmp_path: Path, tampered: bool) -> None:
    import hashlib

    code_dir = tmp_path / "input" / "code"
    code_dir.mkdir(parents=True)
    buffer = io.BytesIO()
    script = b"import pathlib; pathlib.Path('ran.txt').write_text('ran')"
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("step.py")
        info.size = len(script)
        archive.addfile(info, io.BytesIO(script))
    data = buffer.getvalue()
    (code_dir / "sourcedir.tar.gz").write_bytes(data + (b"x" if tampered else b""))
    unpack_dir = tmp_path / "code"
    entrypoint = d.processing_entrypoint("sourcedir.tar.gz", hashlib.sha256(data).hexdigest())
    command = (
        entrypoint[2].replace(d.PROCESSING_CODE_DIR, str(code_dir)).replace(d.PROCESSING_UNPACK_DIR, str(unpack_dir))
    )
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python3").symlink_to(sys.executable)
    env = {"PATH": f"{shim}:{os.environ['PATH']}"}
    done = subprocess.run([entrypoint[0], "-c", command, "step.py"], env=env, capture_output=True, text=True)
    if tampered:
        assert done.returncode != 0 and "sha256 mismatch" in done.stderr
        assert not unpack_dir.exists()  # nothing unpacked, nothing ran
    else:
        assert done.returncode == 0, done.stderr
        assert (unpack_dir / "ran.txt").read_text() == "ran"
    with pytest.raises(ValueError, match=r"^sha256: "):
        d.processing_entrypoint("sourcedir.tar.gz", "abc")


def test_the_entrypoint_runs_the_named_script_with_the_container_arguments(tmp_path: Path) -> None:
    # What the processing container does with ContainerEntrypoint + ContainerArguments, on a fake tree.
    code_dir = tmp_path / "input" / "code"
    code_dir.mkdir(parents=True)
    script = "import sys, pathlib; pathlib.Path(sys.argv[0]).with_name('ran.txt').write_text(' '.join(sys.argv[1:]))"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("step.py")
        info.size = len(script)
        archive.addfile(info, io.BytesIO(script.encode()))
    (code_dir / "sourcedir.tar.gz").write_bytes(buffer.getvalue())
    unpack_dir = tmp_path / "code"
    command = (
        d.PROCESSING_ENTRYPOINT[2]
        .replace(d.PROCESSING_CODE_DIR, str(code_dir))
        .replace(d.PROCESSING_UNPACK_DIR, str(unpack_dir))
    )
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python3").symlink_to(sys.executable)
    env = {"PATH": f"{shim}:{os.environ['PATH']}"}
    subprocess.run([d.PROCESSING_ENTRYPOINT[0], "-c", command, "step.py", "--a", "b c"], check=True, env=env)
    assert (unpack_dir / "ran.txt").read_text() == "--a b c"


def test_training_uses_script_mode_with_the_code_channel(definition: dict[str, Any]) -> None:
    train = steps_by_name(definition)["Train"]["Arguments"]
    assert train["AlgorithmSpecification"] == {
        "TrainingImage": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.2-0",
        "TrainingInputMode": "File",
    }
    hyper = train["HyperParameters"]
    assert hyper["sagemaker_program"] == "train.py"
    assert hyper["sagemaker_submit_directory"] == "/opt/ml/input/data/code/sourcedir.tar.gz"
    assert hyper["seed"] == "42"
    for key, parameter in (
        ("num_round", "NumRound"),
        ("max_depth", "MaxDepth"),
        ("eta", "Eta"),
        ("early_stopping_rounds", "EarlyStoppingRounds"),
    ):
        # CreateTrainingJob takes strings only: typed parameters are rendered with Std:Join.
        assert hyper[key] == {"Std:Join": {"On": "", "Values": [{"Get": f"Parameters.{parameter}"}]}}
    assert all(isinstance(v, str | dict) for v in hyper.values())
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in train["InputDataConfig"]}
    assert channels == {
        "train": {"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"},
        "validation": {"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['validation'].S3Output.S3Uri"},
        "contract": CONTRACT_URI,
        "code": SOURCE_URI,
    }
    assert train["OutputDataConfig"]["S3OutputPath"] == {
        "Std:Join": {
            "On": "/",
            "Values": [
                "s3:/",
                "team-a-artifacts",
                "team-a-tabular",
                {"Get": "Execution.PipelineExecutionId"},
                "model",
            ],
        }
    }
    assert "ContainerEntrypoint" not in train["AlgorithmSpecification"]  # no SDK driver channel


def test_registration_is_pending_manual_approval_with_metrics_and_baselines(definition: dict[str, Any]) -> None:
    register = steps_by_name(definition)["RegisterModel"]["Arguments"]
    assert register["ModelPackageGroupName"] == "team-a-tabular"
    # A literal, not a parameter: starting an execution must never be a way to self-approve a model.
    assert register["ModelApprovalStatus"] == "PendingManualApproval"
    assert not any("Approval" in p["Name"] for p in definition["Parameters"])
    spec = register["InferenceSpecification"]
    assert spec["SupportedContentTypes"] == spec["SupportedResponseMIMETypes"] == ["text/csv", "application/json"]
    (container,) = spec["Containers"]
    assert container["Image"] == "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.2-0"
    assert container["ModelDataUrl"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert container["Environment"] == {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    }
    report = {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}

    def under_report(*parts: str) -> dict[str, Any]:
        return {"ContentType": "application/json", "S3Uri": {"Std:Join": {"On": "/", "Values": [report, *parts]}}}

    assert register["ModelMetrics"]["ModelQuality"] == {"Statistics": under_report("evaluation.json")}
    assert register["DriftCheckBaselines"] == {
        "ModelDataQuality": {
            "Statistics": under_report("baseline", "statistics.json"),
            "Constraints": under_report("baseline", "constraints.json"),
        }
    }
    assert register["CustomerMetadataProperties"]["flywheel:objective"] == "binary"


# ------------------------------------------------------------------------------------------------
# Gates: the condition JSON evaluated against status and evaluation documents.


@pytest.mark.parametrize(("passed", "branch"), [(True, "IfSteps"), (False, "ElseSteps")])
def test_data_contract_check_gates_training(definition: dict[str, Any], passed: bool, branch: str) -> None:
    check = steps_by_name(definition)["DataContractCheck"]
    files = {("Preprocess", "ValidationStatusAlgo1"): {"passed": passed, "summary": "2 rows failed"}}
    taken = branch_taken(check, default_parameters(definition), files)
    assert taken == branch
    names = [s["Name"] for s in check["Arguments"][taken]]
    assert ("PiiScanCheck" in names) is passed


@pytest.mark.parametrize(("passed", "branch"), [(True, "IfSteps"), (False, "ElseSteps")])
def test_pii_scan_check_gates_training(definition: dict[str, Any], passed: bool, branch: str) -> None:
    """Training runs only if every host's PII scan passed; the failure message is the scan's summary."""
    check = steps_by_name(definition)["PiiScanCheck"]
    summary = "PII scan failed: train/part-algo-1.parquet: column 'contact': 1 email value(s)"
    files = {("Preprocess", "PiiScanAlgo1"): {"passed": passed, "summary": summary}}
    taken = branch_taken(check, default_parameters(definition), files)
    assert taken == branch
    names = [s["Name"] for s in check["Arguments"][taken]]
    assert ("Train" in names) is passed
    if not passed:
        (fail,) = check["Arguments"]["ElseSteps"]
        message = fail["Arguments"]["ErrorMessage"]
        assert {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Preprocess.PropertyFiles.PiiScanAlgo1"},
                                "Path": "summary"}} in message["Std:Join"]["Values"]  # fmt: skip


def test_registered_package_records_its_raw_batch(definition: dict[str, Any]) -> None:
    """Lineage: the package's customer metadata carries the InputDataUri and the execution id."""
    register = steps_by_name(definition)["RegisterModel"]["Arguments"]
    metadata = register["CustomerMetadataProperties"]
    assert metadata[d.LINEAGE_INPUT_KEY] == {"Get": "Parameters.InputDataUri"}
    assert metadata[d.LINEAGE_EXECUTION_KEY] == {"Get": "Execution.PipelineExecutionId"}

    # The model card Evaluate writes beside evaluation.json is recorded with the package.
    card = metadata[d.MODEL_CARD_KEY]["Std:Join"]
    evaluation = {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}
    assert card == {"On": "/", "Values": [evaluation, "model-card.html"]}
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]["Std:Join"]
    assert statistics["Values"][0] == evaluation  # the same folder as the registered evaluation.json
    evaluate_step = steps_by_name(definition)["Evaluate"]["Arguments"]
    card_input = {i["InputName"]: i["S3Input"] for i in evaluate_step["ProcessingInputs"]}["card"]
    assert card_input["S3Uri"] == CARD_URI


def test_data_contract_failure_names_the_quarantine_location(definition: dict[str, Any]) -> None:
    (fail,) = steps_by_name(definition)["DataContractCheck"]["Arguments"]["ElseSteps"]
    values = fail["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert {"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['quarantine'].S3Output.S3Uri"} in values
    summary = {
        "Std:JsonGet": {
            "Path": "summary",
            "PropertyFile": {"Get": "Steps.Preprocess.PropertyFiles.ValidationStatusAlgo1"},
        }
    }
    assert summary in values
    assert "quarantined" in "".join(v for v in values if isinstance(v, str))


@pytest.mark.parametrize(
    ("host_results", "branch"), [((True, True, True), "IfSteps"), ((True, False, True), "ElseSteps")]
)
def test_sharded_preprocess_passes_only_if_every_host_passed(host_results: tuple[bool, ...], branch: str) -> None:
    """Each host writes status/validation-<host>.json; one failing shard fails the batch."""
    document = json.loads(build_pipeline_definition(make_inputs(preprocess_instance_count=3)))
    steps = steps_by_name(document)
    assert steps["Preprocess"]["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3
    files = {
        ("Preprocess", f"ValidationStatusAlgo{i}"): {"passed": ok, "summary": f"host {i}"}
        for i, ok in enumerate(host_results, start=1)
    }
    assert branch_taken(steps["DataContractCheck"], default_parameters(document), files) == branch
    declared = {p["FilePath"] for p in steps["Preprocess"]["PropertyFiles"]}
    assert declared == {f"{kind}-algo-{i}.json" for kind in ("validation", "pii-scan") for i in (1, 2, 3)}


@pytest.mark.parametrize(
    ("value", "not_worse", "overrides", "registered"),
    [
        (0.80, 1, {}, True),
        (0.75, 1, {}, True),  # the threshold itself passes
        (0.74, 1, {}, False),
        (0.90, 0, {}, False),  # worse than the champion
        (0.90, 1, {"GateThreshold": 0.95}, False),  # a local-only override of the threshold
    ],
)
def test_quality_gate_higher_is_better(
    definition: dict[str, Any],
    local_definition: dict[str, Any],
    value: float,
    not_worse: int,
    overrides: dict[str, Any],
    registered: bool,
) -> None:
    document = local_definition if overrides else definition
    gate = steps_by_name(document)["QualityGate"]
    files = {("Evaluate", "EvaluationReport"): evaluation_document(value, not_worse)}
    taken = branch_taken(gate, default_parameters(document, **overrides), files)
    assert [s["Name"] for s in gate["Arguments"][taken]] == (["RegisterModel"] if registered else ["QualityGateFailed"])


@pytest.fixture(scope="module")
def regression_definition() -> dict[str, Any]:
    inputs = make_inputs(objective="regression", gate_metric="rmse", gate_threshold=5, higher_is_better=False)
    return json.loads(build_pipeline_definition(inputs))


@pytest.mark.parametrize(
    ("value", "not_worse", "registered"), [(4.0, 1, True), (5.0, 1, True), (6.5, 1, False), (4.0, 0, False)]
)
def test_quality_gate_lower_is_better(
    regression_definition: dict[str, Any], value: float, not_worse: int, registered: bool
) -> None:
    gate = steps_by_name(regression_definition)["QualityGate"]
    document = {
        "regression_metrics": {"rmse": value},
        "gate": {"metric": "rmse", "value": value, "higher_is_better": False, "passed": 1},
        "champion": {"metric_value": 5.5, "challenger_not_worse": not_worse},
    }
    taken = branch_taken(gate, default_parameters(regression_definition), {("Evaluate", "EvaluationReport"): document})
    assert (taken == "IfSteps") is registered
    assert 5.0 in [c["RightValue"] for c in gate["Arguments"]["Conditions"]]  # the configured gate, a constant


def test_only_a_local_build_declares_the_gate_threshold_parameter(
    definition: dict[str, Any], local_definition: dict[str, Any]
) -> None:
    assert [p["Name"] for p in definition["Parameters"]] == list(d.PARAMETER_NAMES)
    names = [p["Name"] for p in local_definition["Parameters"]]
    assert names == [*d.PARAMETER_NAMES, *d.LOCAL_OVERRIDE_PARAMETERS] == [*d.PARAMETER_NAMES, "GateThreshold"]
    assert default_parameters(local_definition)["GateThreshold"] == 0.75
    gate = steps_by_name(definition)["QualityGate"]
    assert {"Get": "Parameters.GateThreshold"} not in [c["RightValue"] for c in gate["Arguments"]["Conditions"]]
    assert "GateThreshold" not in json.dumps(definition)


def test_quality_gate_failure_gives_value_and_threshold(definition: dict[str, Any]) -> None:
    (fail,) = steps_by_name(definition)["QualityGate"]["Arguments"]["ElseSteps"]
    files = {("Evaluate", "EvaluationReport"): evaluation_document(0.7, 1)}
    message = resolve(fail["Arguments"]["ErrorMessage"], default_parameters(definition), files)
    assert message == (
        "Quality gate failed: auc=0.7 (required >= 0.75), champion=none, challenger_not_worse=1: every check passed"
    )
    files = {("Evaluate", "EvaluationReport"): evaluation_document(0.8544583445825821, 0)}
    message = resolve(fail["Arguments"]["ErrorMessage"], default_parameters(definition), files)
    assert message.startswith("Quality gate failed: auc=0.8545 (required >= 0.75)")  # rounded, not 16 digits
    files = {("Evaluate", "EvaluationReport"): evaluation_document(0.8, 1, passed=0)}
    message = resolve(fail["Arguments"]["ErrorMessage"], default_parameters(definition), files)
    assert message.endswith("challenger_not_worse=1: balanced accuracy 0.5 vs the trivial model's 0.5")


@pytest.mark.parametrize(("passed", "registered"), [(1, True), (0, False)])
def test_quality_gate_enforces_the_evaluation_decision(
    definition: dict[str, Any], passed: int, registered: bool
) -> None:
    """A model above the threshold and the champion but no better than the trivial model is refused."""
    gate = steps_by_name(definition)["QualityGate"]
    files = {("Evaluate", "EvaluationReport"): evaluation_document(0.9, 1, passed=passed)}
    assert (branch_taken(gate, default_parameters(definition), files) == "IfSteps") is registered


# ------------------------------------------------------------------------------------------------
# Inputs: arbitrary account strings, validation.


def test_account_values_may_be_arbitrary_strings() -> None:
    token = "${Token[TOKEN.%d]}"
    inputs = make_inputs(
        pipeline_name=token % 1,
        training_role_arn=token % 2,
        kms_key_arn=token % 3,
        subnet_ids=(token % 4, token % 5),
        security_group_ids=(token % 6,),
        raw_bucket=token % 7,
        features_bucket=token % 8,
        artifacts_bucket=token % 9,
        reports_bucket=token % 10,
        source_uri=f"s3://{token % 11}/code/sourcedir.tar.gz",
        contract_uri=f"s3://{token % 11}/code/contract.json",
        no_champion_uri=f"s3://{token % 11}/code/no-champion.json",
        card_uri=f"s3://{token % 11}/code/card.json",
        model_package_group_name=token % 12,
    )
    document = json.loads(build_pipeline_definition(inputs))
    steps = steps_by_name(document)
    assert steps["Train"]["Arguments"]["RoleArn"] == token % 2
    assert steps["Train"]["Arguments"]["VpcConfig"]["Subnets"] == [token % 4, token % 5]
    assert steps["RegisterModel"]["Arguments"]["ModelPackageGroupName"] == token % 12
    pre = {i["InputName"]: i["S3Input"]["S3Uri"] for i in steps["Preprocess"]["Arguments"]["ProcessingInputs"]}
    assert pre["pii-key"] == f"s3://{token % 7}/_keys/pii-hmac.key"
    text = json.dumps(document)
    assert "sentinel" not in text
    for n in range(1, 13):
        assert token % n in text


def test_pii_key_default_follows_the_team_prefix() -> None:
    document = json.loads(build_pipeline_definition(make_inputs(pii_key_prefix="churn/_keys/")))
    pre = steps_by_name(document)["Preprocess"]["Arguments"]["ProcessingInputs"]
    assert {i["InputName"]: i["S3Input"]["S3Uri"] for i in pre}["pii-key"] == "s3://team-a-raw/churn/_keys/pii-hmac.key"
    with pytest.raises(ValueError, match=r"^pii_key_prefix: "):
        make_inputs(pii_key_prefix="../other/")


def test_hashed_asset_object_names_flow_into_every_container_path() -> None:
    """CDK assets are content-addressed (``<sha256>.gz``): the containers must use those names."""
    code, contract = "s3://assets/0a1b2c.gz", "s3://assets/9f8e7d.json"
    document = json.loads(build_pipeline_definition(make_inputs(source_uri=code, contract_uri=contract)))
    steps = steps_by_name(document)
    for name in ("Preprocess", "Evaluate"):
        app = steps[name]["Arguments"]["AppSpecification"]
        assert "/opt/ml/processing/input/code/0a1b2c.gz" in app["ContainerEntrypoint"][2]
        assert "/opt/ml/processing/input/contract/9f8e7d.json" in app["ContainerArguments"]
    hps = steps["Train"]["Arguments"]["HyperParameters"]
    assert hps["sagemaker_submit_directory"] == "/opt/ml/input/data/code/0a1b2c.gz"
    assert "sourcedir.tar.gz" not in json.dumps(document) and "contract.json" not in json.dumps(document)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"objective": "ranking"}, "objective"),
        ({"gate_threshold": "0.8"}, "gate_threshold"),
        ({"gate_threshold": float("nan")}, "gate_threshold"),
        ({"gate_threshold": True}, "gate_threshold"),
        ({"subnet_ids": ()}, "subnet_ids"),
        ({"subnet_ids": "subnet-0aaa"}, "subnet_ids"),
        ({"security_group_ids": ("",)}, "security_group_ids"),
        ({"role_arn": ""}, "role_arn"),
        ({"preprocessing_role_arn": ""}, "preprocessing_role_arn"),
        ({"source_sha256": "0123"}, "source_sha256"),
        ({"team": "a/b"}, "team"),
        ({"higher_is_better": "yes"}, "higher_is_better"),
        ({"gate_metric": "AUC score"}, "gate_metric"),
        ({"source_uri": "s3://bucket/code.zip"}, "source_uri"),
        ({"contract_uri": "/tmp/contract.json"}, "contract_uri"),
        ({"preprocess_instance_count": 0}, "preprocess_instance_count"),
        ({"training_instance_type": "m5.large"}, "training_instance_type"),
        ({"eta": 0}, "eta"),
        ({"num_round": 1.5}, "num_round"),
    ],
)
def test_bad_inputs_are_rejected_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        make_inputs(**overrides)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"region": "mars-north-1"}, "region"),
        ({"xgboost_framework_version": "9.9-9"}, "xgboost_framework_version"),
        ({"sklearn_framework_version": "0.1-0"}, "sklearn_framework_version"),
    ],
)
def test_unknown_region_or_image_version_is_rejected_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        build_pipeline_definition(make_inputs(**overrides))


def test_lists_are_accepted_and_frozen_to_tuples() -> None:
    inputs = make_inputs(subnet_ids=list(SUBNETS))
    assert inputs.subnet_ids == SUBNETS
    assert inputs == make_inputs()


# ------------------------------------------------------------------------------------------------
# Determinism and isolation.


def test_two_builds_are_byte_identical(definition_text: str) -> None:
    assert build_pipeline_definition(make_inputs()) == definition_text
    assert definition_text == json.dumps(json.loads(definition_text), sort_keys=True, separators=(",", ":"))


def test_build_works_without_credentials_and_ignores_the_callers_aws_environment(
    definition_text: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in [v for v in os.environ if v.startswith(("AWS_", "SAGEMAKER_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing-config"))
    monkeypatch.setenv("AWS_PROFILE", "does-not-exist")
    monkeypatch.setenv("HOME", str(tmp_path))
    before = dict(os.environ)
    assert build_pipeline_definition(make_inputs()) == definition_text
    assert dict(os.environ) == before


def test_build_restores_process_state(definition_text: str) -> None:
    root = logging.getLogger()
    state = (list(root.handlers), root.level, logging.root.manager.disable, boto3.DEFAULT_SESSION)
    started: list[str] = []
    original_start = threading.Thread.start

    def record_start(self: threading.Thread) -> None:
        started.append(self.name)
        original_start(self)

    threading.Thread.start = record_start  # type: ignore[method-assign]
    try:
        assert build_pipeline_definition(make_inputs()) == definition_text
    finally:
        threading.Thread.start = original_start  # type: ignore[method-assign]
    assert (list(root.handlers), root.level, logging.root.manager.disable, boto3.DEFAULT_SESSION) == state
    assert not [name for name in started if "telemetry" in name]  # SDK telemetry is opted out


def test_the_offline_session_refuses_every_request() -> None:
    with pytest.raises(sdk_offline.OfflineBuildError, match="ListBuckets"):
        sdk_offline.offline_boto_session("eu-west-1").client("s3").list_buckets()


def test_a_fresh_process_builds_the_same_json_with_no_aws_setup_and_no_network(
    definition_text: str, tmp_path: Path
) -> None:
    # The CDK synth situation: a new interpreter, no region, no credentials, no network (sockets and
    # DNS blocked), and the SDK imported for the first time by the build itself.
    program = textwrap.dedent(
        f"""
        import socket, sys
        def blocked(*args, **kwargs):
            raise OSError("network access attempted")
        class BlockedSocket(socket.socket):
            def __new__(cls, *args, **kwargs):
                blocked()
        socket.socket = BlockedSocket
        socket.getaddrinfo = socket.create_connection = blocked
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import logging
        from test_definition import make_inputs
        from pipelines.tabular.definition import build_pipeline_definition
        text = build_pipeline_definition(make_inputs())
        assert "sagemaker" not in " ".join(h.__class__.__name__ for h in logging.getLogger().handlers)
        assert not logging.getLogger().handlers, logging.getLogger().handlers
        sys.stdout.write(text)
        """
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == definition_text
    assert result.stderr == ""


def test_inputs_are_a_frozen_hashable_value() -> None:
    inputs = make_inputs()
    with pytest.raises(dataclasses.FrozenInstanceError):
        inputs.region = "us-east-1"  # type: ignore[misc]
    assert hash(inputs) == hash(make_inputs())
