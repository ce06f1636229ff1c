"""train.py: hyperparameters, SageMaker environment, model folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import train
import xgboost as xgb
from tabular_helpers import CONTRACTS, PipelineRun


def test_hyperparameters_cli_then_sm_hps_then_defaults() -> None:
    env = {"SM_HPS": json.dumps({"max_depth": "7", "eta": "0.3", "num_round": "50.0", "sagemaker_program": "x"})}
    hps = train.resolve_hyperparameters({"eta": "0.05"}, env)
    assert hps.eta == 0.05  # CLI wins
    assert hps.max_depth == 7  # from SM_HPS (a string there)
    assert hps.num_round == 50
    assert hps.seed == 42  # default
    assert train.resolve_hyperparameters({}, {}) == train.HyperParameters()


@pytest.mark.parametrize(
    ("name", "value"), [("eta", "0"), ("subsample", "1.5"), ("max_depth", "0"), ("num_round", "x")]
)
def test_bad_hyperparameters_are_named(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        train.resolve_hyperparameters({name: value}, {})


def test_parse_args_reads_sagemaker_environment_and_rejects_typos() -> None:
    env = {
        "SM_CHANNEL_TRAIN": "/t",
        "SM_CHANNEL_VALIDATION": "/v",
        "SM_CHANNEL_CONTRACT": "/c",
        "SM_MODEL_DIR": "/m",
    }
    args = train.parse_args(["--max_depth", "3", "--sagemaker_program", "train.py"], env)
    assert (args.train, args.validation, args.contract, args.model_dir) == ("/t", "/v", "/c", "/m")
    assert args.max_depth == "3"
    assert train.parse_args(["--train", "/x"], env).train == "/x"
    with pytest.raises(SystemExit):
        train.parse_args(["--max-depth", "3"], env)


def test_main_with_sagemaker_env(
    chains: dict[str, PipelineRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = chains["diagnostics"]
    contract_dir = tmp_path / "contract"
    contract_dir.mkdir()
    shutil.copyfile(CONTRACTS / "diagnostics.json", contract_dir / "contract.json")
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(run.processed / "train"))
    monkeypatch.setenv("SM_CHANNEL_VALIDATION", str(run.processed / "validation"))
    monkeypatch.setenv("SM_CHANNEL_CONTRACT", str(contract_dir))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("SM_HPS", json.dumps({"num_round": 15, "early_stopping_rounds": 5}))
    assert train.main([]) == 0
    meta = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert meta["hyperparameters"]["num_round"] == 15
    assert meta["rounds_trained"] <= 15


@pytest.mark.parametrize("name", ["churn", "diagnostics", "diabetes", "wine"])
def test_model_folder_is_self_contained(chains: dict[str, PipelineRun], name: str) -> None:
    model = chains[name].model
    assert sorted(p.name for p in model.iterdir()) == ["code", "contract.json", "metadata.json", "xgboost-model.json"]
    assert sorted(p.name for p in (model / "code").iterdir()) == [
        "contract.py",
        "features.py",
        "inference.py",
        "xgboost_core.py",
    ]
    meta = json.loads((model / "metadata.json").read_text())
    expected_objective = {"churn": "binary:logistic", "diagnostics": "binary:logistic",
                          "diabetes": "reg:squarederror", "wine": "multi:softprob"}[name]  # fmt: skip
    assert meta["objective"] == expected_objective
    assert meta["xgboost_version"] == xgb.__version__
    booster = xgb.Booster(model_file=str(model / "xgboost-model.json"))
    assert booster.feature_names == meta["feature_names"]
    # Trimmed to the best iteration: no trees after it are kept.
    assert booster.num_boosted_rounds() == meta["best_iteration"] + 1
    assert meta["best_iteration"] < meta["rounds_trained"]


def test_classification_labels_and_features_in_metadata(chains: dict[str, PipelineRun]) -> None:
    wine = json.loads((chains["wine"].model / "metadata.json").read_text())
    assert wine["class_labels"] == ["class_0", "class_1", "class_2"]
    churn = json.loads((chains["churn"].model / "metadata.json").read_text())
    assert churn["class_labels"] == [0, 1] and churn["positive_label"] == 1
    assert churn["feature_types"][churn["feature_names"].index("contract_type")] == "c"
    assert "customer_id" not in churn["feature_names"]


def test_training_reads_only_the_serving_columns_and_the_target(
    chains: dict[str, PipelineRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN curated splits that also hold the id tokens, WHEN train.py runs, THEN it reads only the columns
    # train_model uses, and trains the model it trains from the whole split
    import pyarrow.parquet as pq
    from features import serving_names

    run = chains["churn"]
    contract = train.resolve_contract(CONTRACTS / "churn.json")
    assert "customer_id" in pq.read_schema(next((run.processed / "train").rglob("*.parquet"))).names
    read: list[list[str] | None] = []
    real = pq.read_table

    def recorded(path: Path, columns: list[str] | None = None, **kw: object) -> object:
        read.append(columns)
        return real(path, columns=columns, **kw)

    monkeypatch.setattr(train.pq, "read_table", recorded)
    contract_dir = tmp_path / "contract"
    contract_dir.mkdir()
    shutil.copyfile(CONTRACTS / "churn.json", contract_dir / "contract.json")
    args = ["--train", str(run.processed / "train"), "--validation", str(run.processed / "validation")]
    args += ["--contract", str(contract_dir), "--model-dir", str(tmp_path / "model")]
    assert train.main(args) == 0
    assert read and all(cols == [*serving_names(contract), contract.target] for cols in read)
    ours = json.loads((tmp_path / "model" / "metadata.json").read_text())
    hps = train.resolve_hyperparameters({}, {})
    full = [train.read_split(run.processed / split) for split in ("train", "validation")]
    _, every_column = train.train_model(*full, contract, hps)
    assert ours["validation_metric"] == every_column["validation_metric"]
    assert ours["decision_threshold"] == every_column["decision_threshold"]
    # a column a file lacks is left out of the read, so the error is the one the code that needs it raises
    frame = train.read_split(run.processed / "train", ["tenure_months", "no_such_column"])
    assert list(frame.columns) == ["tenure_months"]
    # none of them (a split of another contract): every column, so the rows are there for the error that follows
    everything = train.read_split(run.processed / "train", ["no_such_column"])
    assert len(everything) == len(frame) and "tenure_months" in everything.columns


def test_missing_channel_is_a_clear_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "c").mkdir()
    shutil.copyfile(CONTRACTS / "wine.json", tmp_path / "c" / "contract.json")
    args = [
        "--train",
        str(tmp_path / "none"),
        "--validation",
        str(tmp_path / "none"),
        "--contract",
        str(tmp_path / "c"),
    ]
    assert train.main([*args, "--model-dir", str(tmp_path / "m")]) == 2
    assert "no parquet files" in capsys.readouterr().err


def test_contract_channel_accepts_a_content_addressed_object_name(tmp_path: Path) -> None:
    """Deployed contracts are CDK assets named <sha256>.json; the channel folder holds that one file."""
    channel = tmp_path / "contract"
    channel.mkdir()
    shutil.copy(CONTRACTS / "churn.json", channel / "3f2a9c.json")
    assert train.resolve_contract(channel).target == "churned"
    (channel / "other.json").write_text("{}")
    with pytest.raises(ValueError, match=r"expected one \.json file"):
        train.resolve_contract(channel)


def test_documented_training_defaults_are_the_ones_that_run() -> None:
    """One source (contract.TRAINING_DEFAULTS): train.py, the pipeline's parameter defaults, the README."""
    import re
    from dataclasses import asdict

    from contract import TRAINING_DEFAULTS
    from tabular_helpers import STEP_DIR

    from pipelines.tabular.definition import TabularPipelineInputs

    assert asdict(train.HyperParameters()) == TRAINING_DEFAULTS
    fields = TabularPipelineInputs.__dataclass_fields__
    assert {k: fields[k].default for k in ("num_round", "max_depth", "eta", "early_stopping_rounds", "seed")} == {
        k: TRAINING_DEFAULTS[k] for k in ("num_round", "max_depth", "eta", "early_stopping_rounds", "seed")
    }
    for doc in (STEP_DIR / "README.md", STEP_DIR / "train.py"):
        documented = dict(re.findall(r"\[--(\w+) ([\d.]+)\]", doc.read_text(encoding="utf-8")))
        assert documented and {k: float(v) for k, v in documented.items()} == {
            k: float(TRAINING_DEFAULTS[k]) for k in documented
        }, doc
