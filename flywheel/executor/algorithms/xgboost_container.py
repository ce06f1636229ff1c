"""SageMaker's built-in XGBoost algorithm, locally: training (algorithm mode) and its inference contract.

Run as a job process by the executor (``python3 xgboost_container.py train``) for a training job whose
image is ``sagemaker-xgboost`` and whose hyperparameters name no ``sagemaker_program``, it does what the
container's algorithm mode does, with the local XGBoost:

* channels ``train`` (required) and ``validation`` (optional) under ``/opt/ml/input/data/<channel>`` (every
  file of the folder), in the channel's ``ContentType``: ``text/csv`` (label in the first column, no header)
  or ``libsvm`` (``text/libsvm``; the container's default when the channel names none);
* hyperparameters from ``/opt/ml/input/config/hyperparameters.json`` (strings, as SageMaker passes them):
  ``num_round`` (required), ``early_stopping_rounds`` (on the last evaluation set, ``validation``), and the
  booster's own (``objective``, ``max_depth``, ``eta``, ``eval_metric`` — comma-separated for several —
  ``subsample``, ``num_class``, ...); deprecated objectives are mapped (``reg:linear`` →
  ``reg:squarederror``) with a warning in the job log;
* the booster saved as ``/opt/ml/model/xgboost-model`` with ``Booster.save_model`` (what the container
  writes; packed into ``model.tar.gz`` by the executor), the evaluation log printed per round and the last
  round's metrics (``validation:rmse``, ...) kept for ``FinalMetricDataList``;
* a failure (bad data, a missing hyperparameter) written to ``/opt/ml/output/failure``: the job's
  FailureReason, as the container does.

The ``SM_*`` variables the executor sets locate those folders when the paths are rewritten (no sandbox).

Imported by a transform (or ``flywheel serve``) as the model's inference code, it implements the
container's inference contract: ``model_fn`` loads ``xgboost-model``; ``input_fn`` takes ``text/csv``
(features only, one record per line) or ``text/libsvm``; ``output_fn`` answers ``text/csv`` — one
prediction per line (a comma-separated row for multi-output objectives) — ``application/json``
(``{"predictions": [{"score": ...}]}``) or ``application/jsonlines``.

Standard library, numpy, scipy and xgboost only: this file runs as a script, outside the project.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

PATH: Final = Path(__file__).resolve()
MODEL_FILE: Final = "xgboost-model"
#: Written under ``/opt/ml/output``: the last round's metrics (``<set>:<metric>`` → value).
METRICS_FILE: Final = "flywheel-metrics.json"
#: Objectives the container still accepts under an old name, and their current one.
DEPRECATED_OBJECTIVES: Final[dict[str, str]] = {
    "reg:linear": "reg:squarederror",
    "gpu:reg:linear": "reg:squarederror",
    "gpu:reg:logistic": "reg:logistic",
    "gpu:binary:logistic": "binary:logistic",
    "gpu:binary:logitraw": "binary:logitraw",
}
#: Hyperparameters of the algorithm that are not booster parameters.
_NOT_BOOSTER: Final = frozenset(
    {"num_round", "early_stopping_rounds", "csv_weights", "save_model_on_termination", "_kfold", "_num_cv_round"}
)
_CSV: Final = ("text/csv", "csv")
_LIBSVM: Final = ("libsvm", "text/libsvm", "text/x-libsvm", "application/x-libsvm")


#: Media types of the inference contract (read by ``flywheel serve``'s loader; the first answer is the default).
CONTENT_TYPES: Final = ("text/csv", "text/libsvm")
ACCEPT_TYPES: Final = ("text/csv", "application/json", "application/jsonlines")


class AlgorithmError(ValueError):
    """A failure the container reports as the job's FailureReason (a ValueError: bad input to the server)."""


def builtin_xgboost_notes(hyperparameters: Mapping[str, str]) -> list[str]:
    """Warnings about hyperparameters the local algorithm maps (for the step's metadata; the job logs them too)."""
    notes = []
    objective = str(hyperparameters.get("objective", ""))
    if objective in DEPRECATED_OBJECTIVES:
        notes.append(
            f"warning: objective {objective!r} is deprecated; training with {DEPRECATED_OBJECTIVES[objective]!r}"
        )
    if str(hyperparameters.get("tree_method", "")).startswith("gpu"):
        notes.append(f"warning: tree_method {hyperparameters['tree_method']!r} needs a GPU; training with 'hist'")
    return notes


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def booster_params(hyperparameters: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The booster parameters of the hyperparameters (deprecated names mapped) and the warnings it gave."""
    params: dict[str, Any] = {}
    warnings = builtin_xgboost_notes(hyperparameters)
    for key, value in hyperparameters.items():
        if key in _NOT_BOOSTER or key.startswith(("sagemaker_", "_")):
            continue
        if key == "silent":
            continue  # removed from XGBoost; verbosity replaces it
        text = str(value)
        if key == "objective":
            text = DEPRECATED_OBJECTIVES.get(text, text)
        if key == "tree_method" and text.startswith("gpu"):
            text = "hist"
        params[key] = text.split(",") if key == "eval_metric" and "," in text else text
    params.setdefault("objective", "reg:squarederror")
    return params, warnings


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _parse_libsvm(lines: list[str], with_label: bool) -> tuple[Any, Any]:
    """``(csr features, labels or None)`` of libsvm lines (1-based or 0-based indices kept as written)."""
    import numpy as np
    from scipy.sparse import csr_matrix

    data: list[float] = []
    indices: list[int] = []
    indptr = [0]
    labels: list[float] = []
    for number, line in enumerate(lines, start=1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        if with_label or ":" not in tokens[0]:
            try:
                labels.append(float(tokens[0]))
            except ValueError:
                raise AlgorithmError(f"libsvm line {number}: the label {tokens[0]!r} is not a number") from None
            tokens = tokens[1:]
        for token in tokens:
            index, _, value = token.partition(":")
            try:
                indices.append(int(index))
                data.append(float(value))
            except ValueError:
                raise AlgorithmError(f"libsvm line {number}: {token!r} is not index:value") from None
        indptr.append(len(indices))
    width = max(indices, default=-1) + 1
    matrix = csr_matrix((np.array(data), np.array(indices), np.array(indptr)), shape=(len(indptr) - 1, width))
    return matrix, (np.array(labels) if labels else None)


def load_channel(folder: Path, content_type: str | None, name: str) -> Any:
    """A DMatrix of every file of a channel folder (label first)."""
    import numpy as np
    import xgboost as xgb

    files = _files(folder)
    if not files:
        raise AlgorithmError(f"channel {name}: no files in {folder}")
    media = _media_type(content_type) or "libsvm"  # the container's default content type
    lines = [line for path in files for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise AlgorithmError(f"channel {name}: the files hold no records")
    if media in _CSV:
        try:
            table = np.loadtxt(lines, delimiter=",", ndmin=2, dtype=float)
        except ValueError as exc:
            raise AlgorithmError(
                f"channel {name}: cannot read text/csv ({exc}); the built-in XGBoost wants numbers only, "
                "the label in the first column and no header"
            ) from None
        if table.shape[1] < 2:
            raise AlgorithmError(f"channel {name}: a text/csv record needs the label and at least one feature")
        return xgb.DMatrix(table[:, 1:], label=table[:, 0])
    if media in _LIBSVM:
        features, labels = _parse_libsvm(lines, with_label=True)
        return xgb.DMatrix(features, label=labels)
    raise AlgorithmError(
        f"channel {name}: content type {content_type!r} is not supported locally; use text/csv or text/libsvm"
    )


def train(env: Mapping[str, str]) -> dict[str, float]:
    """Train from the container layout ``env`` locates; returns the last round's metrics."""
    import xgboost as xgb

    config_dir = Path(env.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config"))
    data_dir = Path(env.get("SM_INPUT_DIR", "/opt/ml/input")) / "data"
    model_dir = Path(env.get("SM_MODEL_DIR", "/opt/ml/model"))
    hyperparameters = {str(k): str(v) for k, v in _read_json(config_dir / "hyperparameters.json").items()}
    channels = _read_json(config_dir / "inputdataconfig.json")
    if "num_round" not in hyperparameters:
        raise AlgorithmError("Missing required hyperparameter: num_round")
    try:
        num_round = int(hyperparameters["num_round"])
        stopping = hyperparameters.get("early_stopping_rounds")
        early_stopping = int(stopping) if stopping not in (None, "") else None
    except ValueError as exc:
        raise AlgorithmError(f"Hyperparameter num_round/early_stopping_rounds must be an integer: {exc}") from None
    if "train" not in channels:
        raise AlgorithmError("the built-in XGBoost needs a 'train' channel")
    params, warnings = booster_params(hyperparameters)
    for warning in warnings:
        print(f"[flywheel xgboost] {warning}", flush=True)
    dtrain = load_channel(data_dir / "train", channels["train"].get("ContentType"), "train")
    evals = [(dtrain, "train")]
    if "validation" in channels:
        validation = load_channel(data_dir / "validation", channels["validation"].get("ContentType"), "validation")
        evals.append((validation, "validation"))
    results: dict[str, Any] = {}
    try:
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=num_round,
            evals=evals,
            evals_result=results,
            early_stopping_rounds=early_stopping if len(evals) > 1 else None,
            verbose_eval=True,
        )
    except xgb.core.XGBoostError as exc:
        raise AlgorithmError(f"XGBoostError: {str(exc).strip().splitlines()[-1]}") from None
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / MODEL_FILE))
    return {f"{data}:{name}": float(v[-1]) for data, metrics in results.items() for name, v in metrics.items()}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AlgorithmError(f"cannot read {path}: {exc}") from None
    return dict(value)


# The inference contract --------------------------------------------------------------------------------


def model_fn(model_dir: str) -> Any:
    """The booster of ``<model_dir>/xgboost-model`` (native format, or a pickled booster of old containers)."""
    import pickle

    import xgboost as xgb

    folder = Path(model_dir)
    path = folder / MODEL_FILE
    if not path.is_file():
        candidates = [p for p in _files(folder) if p.suffix in ("", ".json", ".ubj", ".model", ".bst")]
        if not candidates:
            raise AlgorithmError(f"no {MODEL_FILE} in the model artifact ({model_dir})")
        path = candidates[0]
    booster = xgb.Booster()
    try:
        booster.load_model(str(path))
    except xgb.core.XGBoostError:
        with path.open("rb") as handle:
            booster = pickle.load(handle)  # noqa: S301 - the model artifact is the job's own output
    return booster


def input_fn(body: str | bytes, content_type: str) -> Any:
    """Features of a request: ``text/csv`` (one record per line, no label) or ``text/libsvm``."""
    import numpy as np

    text = body.decode("utf-8") if isinstance(body, bytes) else body
    lines = [line for line in text.splitlines() if line.strip()]
    media = _media_type(content_type)
    if media in _CSV:
        try:
            return np.loadtxt(lines, delimiter=",", ndmin=2, dtype=float)
        except ValueError as exc:
            raise AlgorithmError(f"cannot read the text/csv payload: {exc}") from None
    if media in _LIBSVM:
        return _parse_libsvm(lines, with_label=False)[0]
    raise AlgorithmError(f"content type {content_type!r} is not supported: use text/csv or text/libsvm")


def predict_fn(data: Any, model: Any) -> Any:
    """The booster's predictions for ``data``."""
    import xgboost as xgb

    return model.predict(xgb.DMatrix(data))


def output_fn(prediction: Any, accept: str) -> str:
    """Predictions as ``text/csv`` (one per line), ``application/json`` or ``application/jsonlines``."""
    rows = prediction.tolist()
    media = _media_type(accept) or "text/csv"

    def csv_row(row: Any) -> str:
        return ",".join(repr(float(v)) for v in row) if isinstance(row, list) else repr(float(row))

    if media in ("text/csv", "*/*"):
        return "\n".join(csv_row(row) for row in rows) + "\n"
    if media == "application/json":
        return json.dumps({"predictions": [{"score": row} for row in rows]})
    if media in ("application/jsonlines", "application/x-jsonlines"):
        return "".join(json.dumps({"score": row}) + "\n" for row in rows)
    raise AlgorithmError(f"accept type {accept!r} is not supported: use text/csv, application/json or jsonlines")


def main(argv: list[str]) -> int:
    """``xgboost_container.py train``: algorithm-mode training in the container layout."""
    if argv[:1] != ["train"]:
        print("usage: xgboost_container.py train", file=sys.stderr)
        return 2
    env = os.environ
    output_dir = Path(env.get("SM_OUTPUT_DIR", "/opt/ml/output"))
    try:
        metrics = train(env)
    except Exception as exc:
        traceback.print_exc()
        reason = str(exc) if isinstance(exc, AlgorithmError) else f"{type(exc).__name__}: {exc}"
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "failure").write_text(reason[:1024], encoding="utf-8")
        return 1
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / METRICS_FILE).write_text(json.dumps(metrics), encoding="utf-8")
    for name, value in sorted(metrics.items()):
        print(f"#metric {name}={value}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
