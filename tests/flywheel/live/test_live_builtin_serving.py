"""A model trained by SageMaker's built-in XGBoost is served locally (the approve → deploy path).

GIVEN a ``model.tar.gz`` holding only ``xgboost-model`` (what the built-in algorithm writes: no ``code/``),
WHEN ``flywheel.serving.load_model`` loads it as the local deploy does (no code folder named), THEN it
answers through the container's inference contract: one CSV prediction per input line, from the booster.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import xgboost

from flywheel.serving import load_model


def test_a_builtin_xgboost_artifact_is_served_with_the_container_contract(tmp_path: Path) -> None:
    x = np.arange(20, dtype=float).reshape(-1, 1)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 2}, xgboost.DMatrix(x, label=(x[:, 0] >= 10)), 3
    )
    booster.save_model(str(tmp_path / "xgboost-model"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(tmp_path / "xgboost-model", arcname="xgboost-model")
    (tmp_path / "model.tar.gz").write_bytes(buffer.getvalue())

    with load_model(tmp_path / "model.tar.gz") as served:
        body, media = served.invoke(b"2\n15\n", "text/csv", "text/csv")
    low, high = (float(v) for v in body.decode().splitlines())
    assert media == "text/csv" and low < 0.5 < high
