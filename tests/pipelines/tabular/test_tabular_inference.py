"""inference.py: the serving functions on the models trained by the chain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import inference
import numpy as np
import pandas as pd
import pytest
import train
from tabular_helpers import PipelineRun
from train import read_split


@pytest.fixture(scope="module")
def churn_model(chains: dict[str, PipelineRun]) -> inference.Model:
    return inference.model_fn(str(chains["churn"].model))


@pytest.fixture(scope="module")
def churn_rows(chains: dict[str, PipelineRun], churn_model: inference.Model) -> pd.DataFrame:
    return read_split(chains["churn"].processed / "test")[churn_model.columns].head(20)


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(header=False, index=False)


def test_csv_request_predicts_like_the_evaluation(churn_model: inference.Model, churn_rows: pd.DataFrame) -> None:
    # The request is text; the evaluation used typed parquet: same transform, same scores.
    body = _csv(churn_rows)
    prediction = inference.predict_fn(inference.input_fn(body, "text/csv"), churn_model)
    expected = inference.predict_scores(churn_rows, churn_model)
    np.testing.assert_allclose(prediction["scores"], expected, rtol=1e-6)
    out = json.loads(inference.output_fn(prediction, "application/json"))
    assert len(out["predictions"]) == 20
    first = out["predictions"][0]
    assert set(first) == {"probability", "label"}
    assert first["label"] == (1 if first["probability"] >= 0.5 else 0)
    assert 0.0 < first["probability"] < 1.0


def test_json_lists_and_objects_give_the_same_predictions(
    churn_model: inference.Model, churn_rows: pd.DataFrame
) -> None:
    rows = json.loads(churn_rows.head(5).to_json(orient="values"))
    objects = json.loads(churn_rows.head(5).to_json(orient="records"))
    a = inference.predict_fn(inference.input_fn(json.dumps({"instances": rows}), "application/json"), churn_model)
    b = inference.predict_fn(inference.input_fn(json.dumps({"instances": objects}), "application/json"), churn_model)
    c = inference.predict_fn(
        inference.input_fn(json.dumps(objects).encode(), "application/json; charset=utf-8"), churn_model
    )
    np.testing.assert_allclose(a["scores"], b["scores"])
    np.testing.assert_allclose(a["scores"], c["scores"])
    np.testing.assert_allclose(a["scores"], inference.predict_scores(churn_rows.head(5), churn_model), rtol=1e-6)


def test_csv_output_and_missing_values(churn_model: inference.Model, churn_rows: pd.DataFrame) -> None:
    body = _csv(churn_rows.head(2)).replace("month_to_month", "").replace("one_year", "")
    prediction = inference.predict_fn(inference.input_fn(body, "text/csv"), churn_model)
    lines = inference.output_fn(prediction, "text/csv").strip().split("\n")
    assert len(lines) == 2
    prob, label = lines[0].split(",")
    assert 0 < float(prob) < 1 and label in ("0", "1")


def test_unknown_category_is_missing_not_an_error(churn_model: inference.Model, churn_rows: pd.DataFrame) -> None:
    row = churn_rows.head(1).copy()
    unknown = row.assign(contract_type="lifetime")
    missing = row.assign(contract_type=None)
    s1 = inference.predict_scores(unknown, churn_model)
    s2 = inference.predict_scores(missing, churn_model)
    assert s1 == pytest.approx(s2)


def test_multiclass_and_regression_outputs(chains: dict[str, PipelineRun]) -> None:
    wine = inference.model_fn(str(chains["wine"].model))
    rows = read_split(chains["wine"].processed / "test")[wine.columns].head(3)
    pred = inference.predict_fn(inference.input_fn(_csv(rows), "text/csv"), wine)
    out = json.loads(inference.output_fn(pred, "application/json"))
    assert out["class_labels"] == ["class_0", "class_1", "class_2"]
    for p in out["predictions"]:
        assert sum(p["probabilities"]) == pytest.approx(1.0)
        assert p["label"] == out["class_labels"][int(np.argmax(p["probabilities"]))]
    csv_line = inference.output_fn(pred, "text/csv").splitlines()[0].split(",")
    assert len(csv_line) == 4 and csv_line[3].startswith("class_")
    diabetes = inference.model_fn(str(chains["diabetes"].model))
    rows = read_split(chains["diabetes"].processed / "test")[diabetes.columns].head(3)
    out = json.loads(
        inference.output_fn(inference.predict_fn(inference.input_fn(_csv(rows), "text/csv"), diabetes), None)
    )
    assert [set(p) for p in out["predictions"]] == [{"value"}] * 3
    assert all(0 < p["value"] < 400 for p in out["predictions"])


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("1,2,3\n", "text/csv", "expected 14 values"),
        ("a,b\nc\n", "text/csv", "row 1 has 1 values"),
        ('{"instances": [{"tenure_months": 3, "shoe_size": 9}]}', "application/json", "unknown column"),
        ('{"instances": [{"tenure_months": 3}]}', "application/json", "missing column"),
        ('{"instances": [{"a": 1}, {"b": 2}]}', "application/json", "no value for column"),
        ('{"instances": []}', "application/json", "no instances"),
        ('{"instances": [[1], {"a": 1}]}', "application/json", "all be lists"),
        ("{not json", "application/json", "not valid JSON"),
        ('{"rows": []}', "application/json", "instances"),
        ("<xml/>", "application/xml", "unsupported content type"),
    ],
)
def test_bad_requests_raise_value_error(
    churn_model: inference.Model, body: str, content_type: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        inference.predict_fn(inference.input_fn(body, content_type), churn_model)


def test_non_numeric_value_names_the_column(churn_model: inference.Model, churn_rows: pd.DataFrame) -> None:
    row = churn_rows.head(1).astype(object)
    row.loc[row.index[0], "monthly_charges"] = "expensive"
    with pytest.raises(ValueError, match="monthly_charges"):
        inference.predict_fn(inference.input_fn(_csv(row), "text/csv"), churn_model)
    with pytest.raises(ValueError, match="accept"):
        inference.output_fn({"problem": "regression", "scores": [1.0], "labels": []}, "application/xml")


def test_accept_negotiation() -> None:
    assert inference.negotiate(None) == "application/json"
    assert inference.negotiate("*/*") == "application/json"
    assert inference.negotiate("text/csv; q=0.9, application/json") == "text/csv"


def test_model_fn_refuses_a_model_it_cannot_serve(chains: dict[str, PipelineRun], tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(chains["diabetes"].model, model)
    meta = json.loads((model / "metadata.json").read_text())
    (model / "metadata.json").write_text(json.dumps({**meta, "encoding_version": 999}))
    with pytest.raises(ValueError, match="encoding"):
        inference.model_fn(str(model))
    (model / "metadata.json").write_text(json.dumps(meta))
    shutil.copyfile(chains["wine"].model / "contract.json", model / "contract.json")
    with pytest.raises(ValueError, match="contract"):
        inference.model_fn(str(model))


def test_served_code_in_the_artifact_is_the_step_code(chains: dict[str, PipelineRun]) -> None:
    code = chains["churn"].model / "code"
    here = Path(inference.__file__).parent
    assert sorted(p.name for p in code.iterdir()) == sorted(train.SERVING_MODULES)
    for name in train.SERVING_MODULES:
        assert (code / name).read_bytes() == (here / name).read_bytes()


def _nthread(model: inference.Model) -> str:
    return str(json.loads(model.booster.save_config())["learner"]["generic_param"]["nthread"])


def test_served_booster_predicts_on_one_thread_unless_overridden(
    chains: dict[str, PipelineRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLYWHEEL_PREDICT_THREADS", raising=False)
    assert _nthread(inference.model_fn(str(chains["churn"].model))) == "1"
    monkeypatch.setenv("FLYWHEEL_PREDICT_THREADS", "2")
    assert _nthread(inference.model_fn(str(chains["churn"].model))) == "2"
    monkeypatch.setenv("FLYWHEEL_PREDICT_THREADS", "two")
    with pytest.raises(ValueError, match="FLYWHEEL_PREDICT_THREADS"):
        inference.model_fn(str(chains["churn"].model))


def test_large_batches_predict_a_slice_per_core_with_the_same_scores(
    chains: dict[str, PipelineRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLYWHEEL_PREDICT_THREADS", raising=False)
    monkeypatch.setattr(inference.os, "cpu_count", lambda: 2)
    model = inference.model_fn(str(chains["churn"].model))
    assert model.threads == 1
    rows = read_split(chains["churn"].processed / "test")[model.columns].head(51)
    whole = inference.predict_scores(rows, model)
    monkeypatch.setattr(inference, "PARALLEL_PREDICT_ROWS", 10)
    sizes: list[int] = []
    real = model.booster.inplace_predict
    monkeypatch.setattr(model.booster, "inplace_predict", lambda x, **kw: sizes.append(len(x)) or real(x, **kw))
    np.testing.assert_array_equal(inference.predict_scores(rows, model), whole)
    assert sorted(sizes) == [25, 26]  # one slice per core, every row once
    # A value that cannot be read in the second slice is reported at its row in the request, not in the slice,
    # and the error is not chained to the slice's (a traceback would show both row numbers).
    text = rows.astype(object).astype(str)
    text.iloc[40, text.columns.get_loc("tenure_months")] = "many"
    with pytest.raises(ValueError, match=r"'tenure_months': 1 value\(s\) .* row 40: 'many'") as raised:
        inference.predict_scores(text, model)
    assert raised.value.__context__ is None or raised.value.__suppress_context__
    # Two threads per prediction (FLYWHEEL_PREDICT_THREADS=2) on four cores: two slices, every core busy.
    monkeypatch.setenv("FLYWHEEL_PREDICT_THREADS", "2")
    monkeypatch.setattr(inference.os, "cpu_count", lambda: 4)
    threaded = inference.model_fn(str(chains["churn"].model))
    real_threaded = threaded.booster.inplace_predict
    sizes.clear()
    monkeypatch.setattr(
        threaded.booster, "inplace_predict", lambda x, **kw: sizes.append(len(x)) or real_threaded(x, **kw)
    )
    np.testing.assert_array_equal(inference.predict_scores(rows, threaded), whole)
    assert sorted(sizes) == [25, 26]
    # All cores per prediction (0): one call.
    monkeypatch.setenv("FLYWHEEL_PREDICT_THREADS", "0")
    assert inference._spans(51, inference.model_fn(str(chains["churn"].model)).threads) == [(0, 51)]


def test_concurrent_batch_requests_share_the_slice_pool_and_get_their_own_answers(
    chains: dict[str, PipelineRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN six batch requests (each parsed, sliced, predicted and written on the one shared pool), WHEN they
    # run at once on eight threads' worth of slices, THEN each gets the answer it gets alone (no slice of one
    # lands in another; no task waits on another, so nothing hangs)
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.delenv("FLYWHEEL_PREDICT_THREADS", raising=False)
    monkeypatch.setattr(inference, "PARALLEL_PREDICT_ROWS", 10)
    monkeypatch.setattr(inference, "PARALLEL_PARSE_BYTES", 1000)
    model = inference.model_fn(str(chains["churn"].model))
    rows = read_split(chains["churn"].processed / "test")[model.columns]
    bodies = [rows.iloc[i * 40 : i * 40 + 40 + i].to_csv(header=False, index=False).encode() for i in range(6)]

    def answer(body: bytes) -> str:
        return inference.output_fn(inference.predict_fn(inference.input_fn(body, "text/csv"), model), "text/csv")

    alone = [answer(b) for b in bodies]
    with ThreadPoolExecutor(6) as clients:
        together = list(clients.map(answer, bodies * 4))
    assert together == alone * 4
    assert [len(a.splitlines()) for a in alone] == [40 + i for i in range(6)]


@pytest.mark.parametrize("name", ["wine", "diabetes"])
def test_the_sliced_path_gives_multiclass_and_regression_scores_of_one_call(
    chains: dict[str, PipelineRun], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a multiclass (rows x classes) and a regression model, WHEN a request is cut into uneven slices,
    # THEN the concatenated scores are those of one call, shape included
    monkeypatch.delenv("FLYWHEEL_PREDICT_THREADS", raising=False)
    model = inference.model_fn(str(chains[name].model))
    rows = read_split(chains[name].processed / "test")[model.columns].head(23)
    whole = inference.predict_scores(rows, model)
    monkeypatch.setattr(inference, "PARALLEL_PREDICT_ROWS", 5)
    monkeypatch.setattr(inference.os, "cpu_count", lambda: 3)
    assert len(inference._spans(len(rows), model.threads)) == 3
    sliced = inference.predict_scores(rows, model)
    assert sliced.shape == whole.shape and sliced.shape[0] == 23
    np.testing.assert_array_equal(sliced, whole)


@pytest.mark.parametrize("name", ["churn", "diagnostics", "diabetes", "wine"])
def test_in_place_scores_equal_a_dmatrix_with_the_contract_feature_types(
    chains: dict[str, PipelineRun], name: str
) -> None:
    """predict_scores predicts in place; the scores are bit for bit those of the DMatrix the model was
    evaluated on (categorical columns marked as such), on every split row of every example model."""
    import xgboost as xgb
    from features import encode, feature_types

    model = inference.model_fn(str(chains[name].model))
    rows = read_split(chains[name].processed / "test")[model.columns]
    matrix = xgb.DMatrix(
        encode(rows, model.contract),
        feature_names=model.columns,
        feature_types=feature_types(model.contract),
        enable_categorical=True,
        missing=np.nan,
    )
    expected = np.asarray(model.booster.predict(matrix), dtype="float64")
    if model.problem == "multiclass":
        expected = expected / expected.sum(axis=1, keepdims=True)
    assert inference.predict_scores(rows, model).tobytes() == expected.tobytes()


def test_model_fn_refuses_a_booster_saved_without_the_contract_feature_types(
    chains: dict[str, PipelineRun], tmp_path: Path
) -> None:
    """In-place prediction takes the categorical columns from the booster file: one whose saved types are
    not the contract's (here: every column numeric, so category codes would split as numbers) is refused."""
    import xgboost as xgb

    model = tmp_path / "model"
    shutil.copytree(chains["churn"].model, model)
    booster = xgb.Booster()
    booster.load_model(model / inference.MODEL_FILE)
    assert "c" in booster.feature_types  # the churn model has categorical columns
    booster.feature_types = ["q"] * len(booster.feature_types)
    booster.save_model(model / inference.MODEL_FILE)
    with pytest.raises(ValueError, match="feature names/types"):
        inference.model_fn(str(model))
