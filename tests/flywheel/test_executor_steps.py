"""The local executor, step type by step type, on stub scripts and in-process moto."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import STUB_BUCKET, STUB_KEY, definition, processing_step, s3_input

from flywheel.embedded import EmbeddedAws
from flywheel.executor import (
    FAILED,
    SUCCEEDED,
    DefinitionError,
    ParameterError,
    PipelineExecutor,
    UnsupportedStepError,
)
from flywheel.executor.jobs import local_path, map_opt_ml, python_shim


def _read(aws: EmbeddedAws, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bytes(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def _keys(aws: EmbeddedAws, prefix: str) -> list[str]:
    listing = aws.client("s3").list_objects_v2(Bucket=STUB_BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


@pytest.fixture
def executor(embedded: EmbeddedAws, stub_bucket: str, tmp_path: Path) -> PipelineExecutor:
    return PipelineExecutor(embedded, tmp_path / "work")


def _training_step(name: str = "Train", **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "AlgorithmSpecification": {
            "TrainingImage": "stub",
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "loss", "Regex": r"loss: ([0-9.]+)"}],
        },
        "HyperParameters": {
            "sagemaker_program": "train_stub.py",
            "sagemaker_submit_directory": "/opt/ml/input/data/code/sourcedir.tar.gz",
            "alpha": {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.Alpha"}]}},
            "rounds": "7",
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{STUB_BUCKET}/in/"}},
            },
            {
                "ChannelName": "code",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{STUB_BUCKET}/code/sourcedir.tar.gz"}
                },
            },
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{STUB_BUCKET}/models", "KmsKeyId": STUB_KEY},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "RoleArn": "arn:aws:iam::123456789012:role/stub",
    }
    args.update(overrides)
    return {"Name": name, "Type": "Training", "Arguments": args}


def test_processing_runs_the_container_command_under_opt_ml_and_uploads_outputs(
    executor: PipelineExecutor, embedded: EmbeddedAws
) -> None:
    record = executor.execute(definition([processing_step("Inspect", "inspect.py")]), execution_id="exec1")

    assert record.status == SUCCEEDED, record.failure_reason
    step = record.steps[0]
    assert (step.name, step.type, step.status) == ("Inspect", "Processing", SUCCEEDED)
    out = step.metadata["Outputs"]["result"]
    assert out == f"s3://{STUB_BUCKET}/out/exec1/Inspect"  # Std:Join with Execution.PipelineExecutionId
    seen = json.loads(_read(embedded, out + "/algo-1.json"))
    assert seen["files"] == [f"part-{i}.csv" for i in range(5)]  # key minus prefix, as SageMaker does
    assert seen["hosts"] == ["algo-1"] and seen["env"] == "from-definition"
    assert Path(seen["python"]).name.startswith("python")  # python3 resolved through the shim
    head = embedded.client("s3").head_object(Bucket=STUB_BUCKET, Key="out/exec1/Inspect/result.json")
    assert head["ServerSideEncryption"] == "aws:kms"  # outputs carry the job's output key
    assert "inspected algo-1 5" in Path(step.log_path or "").read_text()


def test_sharded_processing_runs_n_instances_on_their_shards(executor: PipelineExecutor, embedded: EmbeddedAws) -> None:
    step = processing_step(
        "Shard",
        "inspect.py",
        count={"Get": "Parameters.Count"},
        inputs=[s3_input("data", f"s3://{STUB_BUCKET}/in/", "/opt/ml/processing/input/data", "ShardedByS3Key")],
    )
    params = [{"Name": "Count", "Type": "Integer", "DefaultValue": 1}]
    record = executor.execute(definition([step], params), {"Count": "3"}, execution_id="shard1")

    assert record.status == SUCCEEDED, record.failure_reason
    shards = {}
    for host in ("algo-1", "algo-2", "algo-3"):
        seen = json.loads(_read(embedded, f"s3://{STUB_BUCKET}/out/shard1/Shard/{host}.json"))
        assert seen["host"] == host and seen["hosts"] == ["algo-1", "algo-2", "algo-3"]
        shards[host] = seen["files"]
    assert sorted(f for files in shards.values() for f in files) == [f"part-{i}.csv" for i in range(5)]
    assert all(shards.values())  # every instance got part of the data, none got all of it
    assert max(len(files) for files in shards.values()) < 5
    # Every instance's outputs are uploaded; a shared key holds the last instance's file.
    assert json.loads(_read(embedded, f"s3://{STUB_BUCKET}/out/shard1/Shard/result.json"))["host"] == "algo-3"


def test_training_script_mode_and_model_artifact_reference(executor: PipelineExecutor, embedded: EmbeddedAws) -> None:
    evaluate = processing_step(
        "Evaluate",
        "inspect.py",
        inputs=[
            s3_input("data", {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}, "/opt/ml/processing/input/data")
        ],
    )
    params = [{"Name": "Alpha", "Type": "Float", "DefaultValue": 0.5}]
    record = executor.execute(definition([evaluate, _training_step()], params), execution_id="train1")

    assert record.status == SUCCEEDED, record.failure_reason
    assert [s.name for s in record.steps] == ["Train", "Evaluate"]  # ordered by the reference
    uri = record.steps[0].metadata["ModelArtifacts"]
    assert uri == f"s3://{STUB_BUCKET}/models/pipelines-train1-Train/output/model.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(_read(embedded, uri)), mode="r:gz") as tar:
        member = tar.extractfile("model.json")
        assert member is not None
        model = json.loads(member.read())
    assert (model["alpha"], model["rounds"]) == (0.5, 7)  # hyperparameters as --name value
    assert model["hps"] == {"alpha": 0.5, "rounds": 7}  # SM_HPS without sagemaker_* entries
    assert model["hosts"] == ["algo-1"] and model["current_host"] == "algo-1"
    assert model["train_files"] == [f"part-{i}.csv" for i in range(5)]
    assert model["cwd"].endswith("/opt/ml/code") and model["output_data"].endswith("/opt/ml/output/data")
    # Not isolated, but the in-process embedded AWS has no endpoint to give: no credentials reach the job
    # (tests/flywheel/executor/test_job_aws.py covers a server's endpoint).
    assert model["aws_key"] is None
    assert record.steps[0].metadata["TrainingJob"]["Name"] == "pipelines-train1-Train"
    assert _keys(embedded, "models/pipelines-train1-Train/output/") == [
        "models/pipelines-train1-Train/output/model.tar.gz",
        "models/pipelines-train1-Train/output/output.tar.gz",
    ]
    evaluated = json.loads(_read(embedded, f"s3://{STUB_BUCKET}/out/train1/Evaluate/algo-1.json"))
    assert evaluated["files"] == ["model.tar.gz"]


def test_conditions_property_files_fail_step_and_join(executor: PipelineExecutor) -> None:
    json_get = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Inspect.PropertyFiles.Result"}, "Path": "score"}}
    condition = {
        "Name": "Check",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [
                {"Type": "GreaterThanOrEqualTo", "LeftValue": json_get, "RightValue": {"Get": "Parameters.Threshold"}},
                {
                    "Type": "Equals",
                    "LeftValue": {
                        "Std:JsonGet": {
                            "PropertyFile": {"Get": "Steps.Inspect.PropertyFiles.Result"},
                            "Path": "nested.items[2]",
                        }
                    },
                    "RightValue": 3,
                },
            ],
            "IfSteps": [{"Name": "Passed", "Type": "Fail", "Arguments": {"ErrorMessage": "stop here (if branch)"}}],
            "ElseSteps": [
                {
                    "Name": "TooLow",
                    "Type": "Fail",
                    "Arguments": {
                        "ErrorMessage": {
                            "Std:Join": {
                                "On": "",
                                "Values": ["score ", json_get, " < ", {"Get": "Parameters.Threshold"}],
                            }
                        }
                    },
                }
            ],
        },
    }
    params = [{"Name": "Threshold", "Type": "Float", "DefaultValue": 0.5}]
    doc = definition([processing_step("Inspect", "inspect.py"), condition], params)

    high = executor.execute(doc, {"Threshold": 0.95})
    assert high.status == FAILED and high.failure_reason == "score 0.91 < 0.95"
    assert [(s.name, s.status) for s in high.steps] == [
        ("Inspect", SUCCEEDED),
        ("Check", SUCCEEDED),
        ("TooLow", FAILED),
    ]
    assert high.step("Check").metadata["Condition"]["Outcome"] == "False"  # type: ignore[union-attr]
    assert high.failed_step == "TooLow"

    low = executor.execute(doc)  # default threshold 0.5
    assert low.failure_reason == "stop here (if branch)"
    assert [s.name for s in low.steps] == ["Inspect", "Check", "Passed"]


def test_register_model_creates_a_pending_package(executor: PipelineExecutor, embedded: EmbeddedAws) -> None:
    embedded.client("sagemaker").create_model_package_group(ModelPackageGroupName="stub-group")
    register = {
        "Name": "Register",
        "Type": "RegisterModel",
        "Arguments": {
            "ModelPackageGroupName": "stub-group",
            "ModelApprovalStatus": {"Get": "Parameters.Approval"},
            "InferenceSpecification": {
                "Containers": [
                    {"Image": "stub", "ModelDataUrl": {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}}
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            "SkipModelValidation": "None",
            "NotAnApiField": "dropped",
        },
    }
    params = [
        {"Name": "Alpha", "Type": "Float", "DefaultValue": 0.5},
        {
            "Name": "Approval",
            "Type": "String",
            "DefaultValue": "PendingManualApproval",
            "EnumValues": ["PendingManualApproval", "Approved"],
        },
    ]
    record = executor.execute(definition([_training_step(), register], params), execution_id="reg1")

    assert record.status == SUCCEEDED, record.failure_reason
    arn = record.step("Register").metadata["RegisterModel"]["Arn"]  # type: ignore[union-attr]
    package = embedded.client("sagemaker").describe_model_package(ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"].endswith("/output/model.tar.gz")


def test_a_failing_step_stops_the_run_with_reason_and_log_tail(executor: PipelineExecutor) -> None:
    after = processing_step("After", "inspect.py")
    after["DependsOn"] = ["Broken"]
    record = executor.execute(definition([processing_step("Broken", "fail.py"), after]))

    assert record.status == FAILED
    assert record.failure_reason == "Step Broken failed: AlgorithmError: exit code 3 (host algo-1)"
    broken = record.step("Broken")
    assert broken is not None and broken.status == FAILED
    assert "boom: the stub step broke on purpose" in (broken.log_tail or "")
    assert record.step("After") is None  # nothing runs after a failure
    # The failed job's local input copies (raw data, PII key in real runs) are gone; its log stays.
    assert not list(executor.work_dir.rglob("opt")) and not list(executor.work_dir.rglob(".s3cache"))
    assert list(executor.work_dir.rglob("logs/algo-1.log"))


def test_max_runtime_is_enforced(executor: PipelineExecutor) -> None:
    record = executor.execute(definition([processing_step("Slow", "sleep.py", timeout=1)]))
    assert record.status == FAILED
    assert "MaxRuntimeExceeded" in (record.failure_reason or "")


def test_missing_input_objects_fail_the_step(executor: PipelineExecutor) -> None:
    step = processing_step(
        "NoData", "inspect.py", inputs=[s3_input("data", f"s3://{STUB_BUCKET}/nothing/", "/opt/ml/processing/input/d")]
    )
    record = executor.execute(definition([step]))
    assert record.status == FAILED
    assert f"no S3 objects found under S3 URL s3://{STUB_BUCKET}/nothing/" in (record.failure_reason or "")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("ProcessingOutputConfig.Outputs['nope'].S3Output.S3Uri", "no element named 'nope'"),
        ("ProcessingOutputConfig.Outputz", "no property 'Outputz'"),
        ("ProcessingOutputConfig.Outputs[7].S3Output", "index [7] is out of range"),
    ],
)
def test_a_bad_property_path_fails_the_step_that_uses_it(executor: PipelineExecutor, path: str, message: str) -> None:
    consumer = processing_step(
        "Consumer", "inspect.py", inputs=[s3_input("data", {"Get": f"Steps.Producer.{path}"}, "/opt/ml/processing/x")]
    )
    record = executor.execute(definition([processing_step("Producer", "inspect.py"), consumer]))
    assert record.status == FAILED and record.failed_step == "Consumer"
    assert message in (record.failure_reason or "") and "step Producer" in (record.failure_reason or "")


def test_reference_to_an_unknown_step_names_it(executor: PipelineExecutor) -> None:
    step = processing_step(
        "Consumer", "inspect.py", inputs=[s3_input("data", {"Get": "Steps.Ghost.Foo"}, "/opt/ml/processing/x")]
    )
    record = executor.execute(definition([step]))
    assert "step 'Ghost' does not exist" in (record.failure_reason or "")


def test_unsupported_step_types_are_refused_before_anything_runs(executor: PipelineExecutor) -> None:
    nested = {
        "Name": "Gate",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1}],
            "IfSteps": [{"Name": "Tune", "Type": "Tuning", "Arguments": {}}],
        },
    }
    with pytest.raises(UnsupportedStepError, match=r"step 'Tune' has type 'Tuning'.*supported: Processing"):
        executor.execute(definition([processing_step("First", "inspect.py"), nested]))
    foreign = {"Name": "Notify", "Type": "Lambda", "FunctionArn": "arn:aws:lambda:eu-west-1:1:function:notify-me"}
    refused = r"step 'Notify'.*function:notify-me'.*Flywheel's own handlers.*data_arrival"
    with pytest.raises(UnsupportedStepError, match=refused):
        executor.validate(definition([foreign]))
    with pytest.raises(UnsupportedStepError, match="'Quantum'"):
        executor.validate(definition([{"Name": "X", "Type": "Quantum", "Arguments": {}}]))


def test_missing_and_bad_parameters_are_refused(executor: PipelineExecutor) -> None:
    params = [{"Name": "InputDataUri", "Type": "String"}, {"Name": "N", "Type": "Integer", "DefaultValue": 2}]
    doc = definition([processing_step("First", "inspect.py")], params)
    with pytest.raises(ParameterError, match="parameter InputDataUri is required"):
        executor.execute(doc)
    with pytest.raises(ParameterError, match="'many' is not a valid Integer"):
        executor.execute(doc, {"InputDataUri": "s3://x/", "N": "many"})
    with pytest.raises(ParameterError, match="unknown parameter"):
        executor.execute(doc, {"InputDataUri": "s3://x/", "Typo": "1"})


def test_malformed_definitions_are_refused(executor: PipelineExecutor) -> None:
    with pytest.raises(DefinitionError, match="not valid JSON"):
        executor.validate("{nope")
    with pytest.raises(DefinitionError, match="non-empty Steps"):
        executor.validate(json.dumps({"Steps": []}))
    twice = processing_step("Same", "inspect.py")
    with pytest.raises(DefinitionError, match="duplicate step name"):
        executor.validate(definition([twice, twice]))
    cyclic_a, cyclic_b = processing_step("A", "inspect.py"), processing_step("B", "inspect.py")
    cyclic_a["DependsOn"], cyclic_b["DependsOn"] = ["B"], ["A"]
    with pytest.raises(DefinitionError, match="circular dependencies"):
        executor.validate(definition([cyclic_a, cyclic_b]))


def test_updates_are_reported_as_steps_progress(embedded: EmbeddedAws, stub_bucket: str, tmp_path: Path) -> None:
    seen: list[tuple[str, list[tuple[str, str]]]] = []
    executor = PipelineExecutor(
        embedded, tmp_path / "w", on_update=lambda r: seen.append((r.status, [(s.name, s.status) for s in r.steps]))
    )
    record = executor.execute(definition([processing_step("Only", "inspect.py")]))
    assert record.succeeded
    assert seen[0] == ("Executing", [])
    assert ("Executing", [("Only", "Executing")]) in seen
    assert seen[-1] == ("Succeeded", [("Only", "Succeeded")])
    as_dict = record.to_dict()
    assert as_dict["Steps"][0]["StepStatus"] == "Succeeded" and as_dict["PipelineExecutionStatus"] == "Succeeded"


def test_opt_ml_paths_are_mapped_to_the_job_root(tmp_path: Path) -> None:
    root = tmp_path / "algo-1"
    script = "set -eu; tar -xzf /opt/ml/processing/input/code/x.tar.gz -C /opt/ml/processing/code; cd /opt/ml"
    mapped = map_opt_ml(script, root)
    assert mapped.count(f"{root}/opt/ml") == 3 and " /opt/ml" not in mapped
    assert map_opt_ml("/srv/opt/ml/x and /opt/mlx", root) == "/srv/opt/ml/x and /opt/mlx"  # not ours
    assert local_path("/opt/ml/processing/input", root) == root / "opt/ml/processing/input"
    shim = python_shim(tmp_path / "bin", sys.executable)
    assert (shim / "python3").read_text().endswith(f'exec {sys.executable} "$@"\n')


def test_python_shim_is_absolute_so_jobs_that_cd_still_find_it(tmp_path: Path, monkeypatch) -> None:
    """The CLI's default state dir is relative; job commands cd before running python3."""
    monkeypatch.chdir(tmp_path)
    shim = python_shim(Path("relative") / "bin", sys.executable)
    assert shim.is_absolute() and (shim / "python3").exists()
    out = subprocess.run(
        ["bash", "-c", "cd / && python3 -c 'import sys; print(sys.executable)'"],
        env={**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == sys.executable


def test_an_unexpected_executor_error_is_recorded_as_failed(
    embedded: EmbeddedAws, stub_bucket: str, tmp_path: Path, monkeypatch
) -> None:
    """A bug in the executor must not leave the stored execution 'Executing' forever."""
    seen: list[str] = []
    executor = PipelineExecutor(embedded, tmp_path / "w", on_update=lambda r: seen.append(r.status))

    def explode(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(executor, "_run_steps", explode)
    with pytest.raises(RuntimeError, match="boom"):
        executor.execute(definition([processing_step("Only", "inspect.py")]))
    assert seen[-1] == "Failed"


def test_keep_job_data_keeps_the_container_folders_for_debugging(
    embedded: EmbeddedAws, stub_bucket: str, tmp_path: Path
) -> None:
    kept = PipelineExecutor(embedded, tmp_path / "kept", keep_job_data=True)
    assert kept.execute(definition([processing_step("Only", "inspect.py")])).succeeded
    assert list((tmp_path / "kept").rglob("opt/ml/processing"))
    scrubbed = PipelineExecutor(embedded, tmp_path / "scrubbed")
    assert scrubbed.execute(definition([processing_step("Only", "inspect.py")])).succeeded
    assert not list((tmp_path / "scrubbed").rglob("opt"))
