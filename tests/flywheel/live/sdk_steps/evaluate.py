"""Evaluation: the built-in XGBoost model's accuracy on the test split, as a property file (evaluation.json)."""

import json
import tarfile
from pathlib import Path

import numpy as np
import xgboost

model_dir = Path("/opt/ml/processing/model")
with tarfile.open(model_dir / "model.tar.gz") as tar:
    tar.extractall(model_dir)
booster = xgboost.Booster()
booster.load_model(str(model_dir / "xgboost-model"))  # what the built-in algorithm writes
test = np.loadtxt(next(Path("/opt/ml/processing/test").glob("*.csv")), delimiter=",", ndmin=2)
predicted = booster.predict(xgboost.DMatrix(test[:, 1:])) >= 0.5
accuracy = float(np.mean(predicted == (test[:, 0] >= 0.5)))
out = Path("/opt/ml/processing/evaluation")
out.mkdir(parents=True, exist_ok=True)
(out / "evaluation.json").write_text(json.dumps({"metrics": {"accuracy": {"value": accuracy}}}))
print("accuracy", accuracy)
