"""inference.output_fn: the one-join serialization writes exactly what json.dumps / csv.writer write."""

from __future__ import annotations

import json
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
]


def _prediction(problem: str, labels: list[Any], n: int = 50) -> dict[str, Any]:
    rng = np.random.default_rng(len(labels) + n)
    if problem == "regression":
        return {"problem": problem, "scores": rng.normal(0, 1e6, n), "labels": [], "class_labels": []}
    if problem == "binary":
        scores = rng.random(n)
        scores[:3] = [0.0, 1.0, 1e-300]
        chosen = [labels[int(p >= 0.5)] for p in scores]
    else:
        scores = rng.dirichlet(np.ones(len(labels)), n)
        chosen = [labels[i] for i in np.argmax(scores, axis=1)]
    return {"problem": problem, "scores": scores, "labels": chosen, "class_labels": labels}


@pytest.mark.parametrize("media", ["application/json", "text/csv"])
@pytest.mark.parametrize("labels", LABELS, ids=range(len(LABELS)))
@pytest.mark.parametrize("problem", ["binary", "multiclass", "regression"])
def test_fast_output_is_byte_identical_to_the_record_path(problem: str, labels: list[Any], media: str) -> None:
    pred = _prediction(problem, labels)
    fast = inference.output_fn(pred, media)
    slow = inference._records_output(problem, pred["scores"], pred["labels"], pred["class_labels"], media)
    assert fast == slow
    if media == "application/json":
        assert len(json.loads(fast)["predictions"]) == 50


def test_non_finite_scores_keep_the_record_path() -> None:
    pred = _prediction("regression", [])
    pred["scores"][4] = np.nan
    assert '"value": NaN' in inference.output_fn(pred, "application/json")
    assert "nan" in inference.output_fn(pred, "text/csv").splitlines()[4]


def test_binary_labels_follow_the_threshold_with_nan_as_the_first_label() -> None:
    picked = inference._pick(["no", "yes"], (np.array([0.2, 0.5, np.nan, 0.9]) >= 0.5).astype(np.intp))
    assert picked == ["no", "yes", "no", "yes"]
