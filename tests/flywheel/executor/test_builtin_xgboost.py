"""SageMaker's built-in XGBoost, Model, Transform and RegisterModel steps, from a definition the SDK (v3) builds.

GIVEN a pipeline written with the SageMaker SDK (built-in XGBoost training on CSV channels with a deprecated
objective → CreateModel → batch transform → RegisterModel into a group that does not exist yet), WHEN the
executor runs it on the embedded AWS, THEN the model is trained (``xgboost-model`` in ``model.tar.gz``), the
transform answers one prediction per input line close to the truth, the group is created and the package
registered, and the warnings (deprecated objective, image vs local XGBoost version) are in the log and metadata.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path
from typing import Any

import pytest

from flywheel.embedded import EmbeddedAws
from flywheel.executor import SUCCEEDED, PipelineExecutor
from flywheel.executor.algorithms import xgboost_container as xgb_container
from flywheel.executor.images import framework_notes, framework_version, local_version, repository_and_tag
from flywheel.executor.transform import builtin_inference
from flywheel.serving import load_model
from pipelines.sdk_offline import (
    BUILD_LOCK,
    image_uri,
    isolated_sdk_environment,
    memoized_sdk_config_validation,
    no_local_session_probe,
    pipeline_session,
)

BUCKET = "flywheel-xgb-test"
ROLE = "arn:aws:iam::123456789012:role/stub"
REGION = "eu-west-1"


def _rows(n: int, seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        x = [rng.uniform(0, 1) for _ in range(3)]
        rows.append([round(4 * x[0] + x[1], 4), *(round(v, 4) for v in x)])  # label first
    return rows


def _csv(rows: list[list[float]]) -> bytes:
    return "".join(",".join(map(str, r)) + "\n" for r in rows).encode()


def sdk_definition() -> str:
    """Built-in XGBoost training → Model → Transform, and RegisterModel, with the SDK (offline)."""
    with BUILD_LOCK, isolated_sdk_environment(REGION), memoized_sdk_config_validation(), no_local_session_probe():
        from sagemaker.core.shapes import Channel, DataSource, S3DataSource
        from sagemaker.core.training.configs import Compute, OutputDataConfig
        from sagemaker.core.transformer import Transformer
        from sagemaker.mlops.workflow import ModelStep, Pipeline, TrainingStep, TransformStep
        from sagemaker.serve.model_builder import ModelBuilder
        from sagemaker.train.model_trainer import ModelTrainer

        session = pipeline_session(REGION)
        image = image_uri("xgboost", "1.7-1", REGION, "training")

        def channel(name: str) -> Any:
            source = S3DataSource(s3_data_type="S3Prefix", s3_uri=f"s3://{BUCKET}/{name}/")
            return Channel(channel_name=name, data_source=DataSource(s3_data_source=source), content_type="text/csv")

        trainer = ModelTrainer(
            training_image=image,
            role=ROLE,
            sagemaker_session=session,
            compute=Compute(instance_type="ml.m5.large", instance_count=1),
            output_data_config=OutputDataConfig(s3_output_path=f"s3://{BUCKET}/model"),
            hyperparameters={"objective": "reg:linear", "num_round": "30", "max_depth": "3", "eta": "0.3"},
        )
        train = TrainingStep(
            name="Train", step_args=trainer.train(input_data_config=[channel("train"), channel("validation")])
        )
        builder = ModelBuilder(
            image_uri=image,
            s3_model_data_url=train.properties.ModelArtifacts.S3ModelArtifacts,
            role_arn=ROLE,
            sagemaker_session=session,
            instance_type="ml.m5.large",
            dependencies=None,
            log_level=None,
        )
        model = ModelStep(name="CreateModel", step_args=builder.build())
        transformer = Transformer(
            model_name=model.properties.ModelName,
            instance_count=1,
            instance_type="ml.m5.large",
            output_path=f"s3://{BUCKET}/scored",
            sagemaker_session=session,
        )
        transform = TransformStep(
            name="Score",
            step_args=transformer.transform(data=f"s3://{BUCKET}/batch/", content_type="text/csv", split_type="Line"),
        )
        register = ModelStep(
            name="Register",
            step_args=builder.register(
                model_package_group_name="sdk-built-group",
                content_types=["text/csv"],
                response_types=["text/csv"],
                approval_status="PendingManualApproval",
            ),
        )
        return str(
            Pipeline(name="sdk-xgb", steps=[train, model, transform, register], sagemaker_session=session).definition()
        )


@pytest.fixture
def data(embedded: EmbeddedAws) -> list[list[float]]:
    s3 = embedded.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": embedded.region})
    s3.put_object(Bucket=BUCKET, Key="train/part.csv", Body=_csv(_rows(200, 1)))
    s3.put_object(Bucket=BUCKET, Key="validation/part.csv", Body=_csv(_rows(50, 2)))
    batch = _rows(12, 3)
    s3.put_object(Bucket=BUCKET, Key="batch/batch.csv", Body=_csv([r[1:] for r in batch]))
    return batch


def test_an_sdk_pipeline_with_builtin_xgboost_model_transform_and_register_runs(
    embedded: EmbeddedAws, data: list[list[float]], tmp_path: Path
) -> None:
    doc = json.loads(sdk_definition())
    assert [s["Type"] for s in doc["Steps"]] == ["Training", "Model", "Transform", "RegisterModel"]
    record = PipelineExecutor(embedded, tmp_path / "work").execute(doc, execution_id="xgb1")

    assert record.status == SUCCEEDED, (record.failure_reason, [s.log_tail for s in record.steps])
    s3 = embedded.client("s3")
    train = record.step("Train")
    assert train is not None
    key = train.metadata["ModelArtifacts"].removeprefix(f"s3://{BUCKET}/")
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()), mode="r:gz") as tar:
        assert tar.getnames() == ["xgboost-model"]  # what the container writes
    warnings = " | ".join(train.metadata["Warnings"])
    assert "'reg:linear' is deprecated; training with 'reg:squarederror'" in warnings
    assert "sagemaker-xgboost:1.7-1 runs XGBoost 1.7" in warnings and f"XGBoost {local_version('XGBoost')}" in warnings
    log = Path(train.log_path or "").read_text()
    assert "[flywheel] warning: image sagemaker-xgboost:1.7-1" in log and "validation-rmse" in log

    model_name = record.step("CreateModel").metadata["Model"]["Name"]  # type: ignore[union-attr]
    assert (
        embedded.client("sagemaker")
        .describe_model(ModelName=model_name)["PrimaryContainer"]["Image"]
        .endswith("sagemaker-xgboost:1.7-1")
    )
    out = s3.get_object(Bucket=BUCKET, Key="scored/batch.csv.out")["Body"].read().decode()
    predictions = [float(line) for line in out.splitlines()]
    assert len(predictions) == len(data)  # one prediction per input line
    errors = [abs(p - row[0]) for p, row in zip(predictions, data, strict=True)]
    assert sum(errors) / len(errors) < 0.4  # labels span 0..5: a trained model, not a constant

    # The same artifact served through the built-in inference contract (what `flywheel serve` loads).
    container = embedded.client("sagemaker").describe_model(ModelName=model_name)["PrimaryContainer"]
    code = builtin_inference(container)
    assert code is not None
    artifact = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with load_model(artifact, code_dir=code[0], entry_point=code[1]) as served:
        body, media = served.invoke(b"0.5,0.5,0.5\n0.1,0.2,0.3\n", "text/csv", "text/csv")
    assert media == "text/csv" and len(body.decode().splitlines()) == 2
    assert abs(float(body.decode().splitlines()[0]) - 2.5) < 0.6  # 4 * 0.5 + 0.5

    registered = record.step("Register").metadata["RegisterModel"]  # type: ignore[union-attr]
    assert registered["CreatedModelPackageGroup"] == "sdk-built-group"  # SageMaker Pipelines creates it
    package = embedded.client("sagemaker").describe_model_package(ModelPackageName=registered["Arn"])
    assert package["ModelApprovalStatus"] == "PendingManualApproval"


def test_libsvm_channels_and_early_stopping_train_in_process(tmp_path: Path) -> None:
    """The algorithm itself on a libsvm train/validation pair (no job process: fast)."""
    ml = tmp_path / "opt/ml"
    for name, seed in (("train", 1), ("validation", 2)):
        folder = ml / "input/data" / name
        folder.mkdir(parents=True)
        lines = [f"{r[0]} " + " ".join(f"{i}:{v}" for i, v in enumerate(r[1:])) for r in _rows(80, seed)]
        (folder / "part.libsvm").write_text("\n".join(lines) + "\n")
    config = ml / "input/config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(
        json.dumps({"num_round": "200", "early_stopping_rounds": "3", "eval_metric": "rmse,mae", "eta": "0.5"})
    )
    (config / "inputdataconfig.json").write_text(
        json.dumps({"train": {"ContentType": "text/libsvm"}, "validation": {"ContentType": "libsvm"}})
    )
    env = {"SM_INPUT_CONFIG_DIR": str(config), "SM_INPUT_DIR": str(ml / "input"), "SM_MODEL_DIR": str(ml / "model")}
    metrics = xgb_container.train(env)

    assert set(metrics) == {"train:rmse", "train:mae", "validation:rmse", "validation:mae"}
    assert metrics["validation:rmse"] < 0.5
    booster = xgb_container.model_fn(str(ml / "model"))
    assert booster.num_boosted_rounds() < 200  # early stopping stopped it
    features = xgb_container.input_fn("0.5,0.5,0.5\n0.1,0.2,0.3\n", "text/csv")
    answer = xgb_container.output_fn(xgb_container.predict_fn(features, booster), "text/csv")
    assert len(answer.splitlines()) == 2
    assert json.loads(xgb_container.output_fn(xgb_container.predict_fn(features, booster), "application/json"))[
        "predictions"
    ][0]["score"] == pytest.approx(float(answer.splitlines()[0]))


def test_missing_num_round_and_bad_csv_fail_with_the_containers_reason(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "hyperparameters.json").write_text(json.dumps({"objective": "reg:squarederror"}))
    (config / "inputdataconfig.json").write_text(json.dumps({"train": {"ContentType": "text/csv"}}))
    with pytest.raises(xgb_container.AlgorithmError, match="Missing required hyperparameter: num_round"):
        xgb_container.train({"SM_INPUT_CONFIG_DIR": str(config), "SM_INPUT_DIR": str(tmp_path)})
    (tmp_path / "data/train").mkdir(parents=True)
    (tmp_path / "data/train/with-header.csv").write_text("label,a\n1,2\n")
    (config / "hyperparameters.json").write_text(json.dumps({"num_round": "2"}))
    with pytest.raises(xgb_container.AlgorithmError, match="label in the first column and no header"):
        xgb_container.train({"SM_INPUT_CONFIG_DIR": str(config), "SM_INPUT_DIR": str(tmp_path)})


def test_image_versions_are_read_and_compared() -> None:
    xgb = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.7-1"
    sklearn = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    assert repository_and_tag(xgb) == ("sagemaker-xgboost", "1.7-1")
    assert framework_version(xgb) == ("XGBoost", "1.7")
    assert framework_version(sklearn) == ("scikit-learn", "1.2")
    assert framework_version("stub") is None and framework_notes("stub") == []
    (note,) = framework_notes(sklearn)
    assert "scikit-learn 1.2" in note and f"scikit-learn {local_version('scikit-learn')}" in note
    have = str(local_version("XGBoost"))
    same = f"sagemaker-xgboost:{'.'.join(have.split('.')[:2])}-1"
    assert framework_notes(f"1.dkr.ecr.eu-west-1.amazonaws.com/{same}") == []  # the versions agree: no warning
