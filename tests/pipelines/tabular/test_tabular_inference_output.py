"""inference.output_fn: the Arrow serialization writes exactly what json.dumps / csv.writer write."""

from __future__ import annotations

import json
import re
from typing import Any

import inference
import numpy as np
import pytest

LABELS: list[list[Any]] = [
    ["stay", "churn"],
    [0, 1],
    [False, True],
    [np.int64(3), np.int64(7)],
    ['say "no"', "a,b"],  # csv quoting, JSON escaping
    ["naïve", "line\nbreak"],
    ["", "x"],  # an empty label: an empty CSV field, not ""
    [None, "x"],
    [np.float32(0.1), np.float32(0.7)],  # written as the JSON float they are
    [0.0, -0.0],  # two labels
]


#: Scores where Arrow's text and repr's are laid out differently (whole numbers, exponents) or nearly so.
AWKWARD = [0.0, -0.0, 1.0, 3.0, 1e-300, 1e-4, 9.999999999999999e-05, 1.5e-4, -2.5e-7, 1e10, 9999999999.5, 1e16, 1e300]


def _prediction(problem: str, labels: list[Any], n: int = 50, index: bool = True) -> dict[str, Any]:
    rng = np.random.default_rng(len(labels) + n)
    if problem == "regression":
        scores = rng.normal(0, 1e6, n) * 10.0 ** rng.integers(-12, 8, n)
        scores[: len(AWKWARD)] = AWKWARD
        return {"problem": problem, "scores": scores, "labels": [], "class_labels": [], "label_index": None}
    if problem == "binary":
        scores = rng.random(n)
        scores[:3] = [0.0, 1.0, 1e-300]
        scores[3:6] = [1e-4, 9.999999999999999e-05, 0.5]
        picked = (scores >= 0.5).astype(np.intp)
    else:
        scores = rng.dirichlet(np.ones(len(labels)) * 0.1, n)  # some tiny probabilities (exponents)
        picked = np.argmax(scores, axis=1)
    chosen = [labels[i] for i in picked]
    return {
        "problem": problem,
        "scores": scores,
        "labels": chosen,
        "class_labels": labels,
        "label_index": picked if index else None,
    }


@pytest.mark.parametrize("index", [True, False], ids=["label-index", "labels-only"])
@pytest.mark.parametrize("media", ["application/json", "text/csv"])
@pytest.mark.parametrize("labels", LABELS, ids=range(len(LABELS)))
@pytest.mark.parametrize("problem", ["binary", "multiclass", "regression"])
def test_fast_output_is_byte_identical_to_the_record_path(
    problem: str, labels: list[Any], media: str, index: bool
) -> None:
    pred = _prediction(problem, labels, index=index)
    fast = inference.output_fn(pred, media)
    slow = inference._records_output(problem, pred["scores"], pred["labels"], pred["class_labels"], media)
    assert fast == slow
    if media == "application/json":
        assert len(json.loads(fast)["predictions"]) == 50


@pytest.mark.parametrize("labels", LABELS, ids=range(len(LABELS)))
@pytest.mark.parametrize("problem", ["binary", "multiclass", "regression"])
def test_csv_written_by_arrows_csv_writer_is_what_csv_writer_writes(
    problem: str, labels: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """CSV lines go through Arrow's CSV writer unless a label's cell needs quoting (decided before writing);
    a score repr lays out otherwise is handed to it as repr's text. The text is the csv module's either way."""
    written: list[int] = []
    real = inference._written_csv
    monkeypatch.setattr(inference, "_written_csv", lambda *a: written.append(len(a[2][0])) or real(*a))
    pred = _prediction(problem, labels)
    rng = np.random.default_rng(11)
    shape = np.shape(pred["scores"])
    pred["scores"] = (
        rng.uniform(-1e6, 1e6, shape) if problem == "regression" else rng.uniform(0.001, 0.999, shape)
    )  # no whole numbers, nothing under 1e-4
    quoted = problem != "regression" and any(c in str(label) for label in labels for c in ',"\n')
    for awkward in (None, 1e-5, 1.0, 3e12):  # an exponent, a whole number, beyond 1e10
        if awkward is not None:
            pred["scores"].flat[7] = awkward
        fast = inference.output_fn(pred, "text/csv")
        assert fast == inference._records_output(
            problem, pred["scores"], pred["labels"], pred["class_labels"], "text/csv"
        )
        assert written == ([] if quoted else [50])  # one slice of 50 rows, through the writer or not at all
        written.clear()


def test_a_label_with_a_carriage_return_is_joined_not_written() -> None:
    """csv.writer leaves a lone CR bare, Arrow's writer refuses it: such labels skip the writer up front."""
    pred = _prediction("binary", ["ok", "a\rb"])
    assert inference.output_fn(pred, "text/csv") == inference._records_output(
        "binary", pred["scores"], pred["labels"], pred["class_labels"], "text/csv"
    )


def test_the_arrow_path_runs_and_matches_repr_on_a_million_scores() -> None:
    rng = np.random.default_rng(5)
    scores = np.concatenate([rng.random(500_000).astype(np.float32), 10 ** rng.uniform(-8, 12, 500_000)])
    pred = {"problem": "regression", "scores": scores.astype(np.float64), "labels": [], "class_labels": []}
    text = inference._arrow_output("regression", pred["scores"], [], [], None, "text/csv")
    assert text is not None  # the fast path itself, not the fallback
    assert text.splitlines() == [repr(v) for v in pred["scores"].tolist()]


def test_a_pyarrow_that_formats_otherwise_gets_the_record_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inference, "_ARROW_REPR", False)
    pred = _prediction("binary", ["stay", "churn"])
    assert inference._arrow_output("binary", pred["scores"], pred["labels"], [], None, "text/csv") is None
    assert inference.output_fn(pred, "text/csv") == inference._records_output(
        "binary", pred["scores"], pred["labels"], pred["class_labels"], "text/csv"
    )


def test_non_finite_scores_keep_the_record_path() -> None:
    pred = _prediction("regression", [])
    pred["scores"][4] = np.nan
    assert '"value": NaN' in inference.output_fn(pred, "application/json")
    assert "nan" in inference.output_fn(pred, "text/csv").splitlines()[4]


def test_binary_labels_follow_the_threshold_with_nan_as_the_first_label() -> None:
    picked = inference._pick(["no", "yes"], (np.array([0.2, 0.5, np.nan, 0.9]) >= 0.5).astype(np.intp))
    assert picked == ["no", "yes", "no", "yes"]


@pytest.mark.parametrize("media", ["application/json", "text/csv"])
@pytest.mark.parametrize("problem", ["binary", "multiclass", "regression"])
def test_a_large_response_written_in_slices_on_all_cores_is_the_same_text(
    problem: str, media: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch-transform payload's response is formatted a slice per core, then joined: the same bytes."""
    monkeypatch.setattr(inference, "PARALLEL_PREDICT_ROWS", 10)
    monkeypatch.setattr(inference.os, "cpu_count", lambda: 3)  # three uneven slices of 50 rows
    sliced: list[int] = []
    real = inference._row_text
    monkeypatch.setattr(inference, "_row_text", lambda pa, pc, *a: sliced.append(len(a[1])) or real(pa, pc, *a))
    pred = _prediction(problem, ['say "no"', "a,b", "c"][: 3 if problem == "multiclass" else 2])
    fast = inference.output_fn(pred, media)
    assert sliced == [16, 17, 17]
    assert fast == inference._records_output(problem, pred["scores"], pred["labels"], pred["class_labels"], media)


@pytest.mark.parametrize(
    "odd",
    [
        {"label_index": np.array([0, -1] * 25)},  # not positions in class_labels
        {"label_index": np.array([0, 1])},  # not one per row
        {"problem": "ranking"},  # not a problem of this module
        {"labels": ["stay"] * 49},  # one label short
    ],
    ids=["negative-index", "short-index", "unknown-problem", "short-labels"],
)
def test_a_hand_built_prediction_gets_the_record_paths_answer(odd: dict[str, Any]) -> None:
    pred = {**_prediction("binary", ["stay", "churn"]), **odd}
    for media in ("application/json", "text/csv"):
        try:
            expected = inference._records_output(
                pred["problem"], pred["scores"], pred["labels"], pred["class_labels"], media
            )
        except ValueError as exc:  # the record path refuses it: so must output_fn
            with pytest.raises(ValueError, match=re.escape(str(exc))):
                inference.output_fn(pred, media)
            continue
        assert inference.output_fn(pred, media) == expected
