"""Training step: XGBoost on the curated train/validation parquet, early stopping on validation.

SageMaker training (script mode) contract::

    python3 train.py [--train DIR] [--validation DIR] [--contract DIR] [--model-dir DIR]
                     [--num_round 200] [--max_depth 6] [--eta 0.2] [--early_stopping_rounds 20]
                     [--subsample 0.9] [--min_child_weight 1] [--seed 42]

Folders default to ``$SM_CHANNEL_TRAIN``, ``$SM_CHANNEL_VALIDATION``, ``$SM_CHANNEL_CONTRACT`` (a folder
holding ``contract.json``) and ``$SM_MODEL_DIR``; hyperparameters not given on the command line are read
from the ``$SM_HPS`` JSON, then defaulted. Writes into the model folder ``xgboost-model.json`` (XGBoost's
version-stable JSON format, trimmed to the best iteration), ``metadata.json``, ``contract.json`` and
``code/`` (inference.py + its sibling modules, so that ``model.tar.gz`` serves itself).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from contract import TRAINING_DEFAULTS, DataContract, load_contract
from features import (
    ENCODING_VERSION,
    XGB_OBJECTIVES,
    class_labels,
    curated_versions,
    encode,
    encode_labels,
    feature_types,
    serving_names,
)
from thresholds import choose_threshold
from xgboost_core import xgb

LOG = logging.getLogger("flywheel.train")
MODEL_FILE = "xgboost-model.json"
METADATA_FILE = "metadata.json"
CONTRACT_FILE = "contract.json"
#: Modules copied into ``<model-dir>/code/`` so the artifact carries its own serving transform.
SERVING_MODULES = ("inference.py", "features.py", "contract.py", "xgboost_core.py")
_EVAL_METRIC = {"binary": "logloss", "multiclass": "mlogloss", "regression": "rmse"}


@dataclass(frozen=True)
class HyperParameters:
    """The tunable hyperparameters (SageMaker passes them as ``--name value``)."""

    num_round: int = int(TRAINING_DEFAULTS["num_round"])
    max_depth: int = int(TRAINING_DEFAULTS["max_depth"])
    eta: float = float(TRAINING_DEFAULTS["eta"])
    early_stopping_rounds: int = int(TRAINING_DEFAULTS["early_stopping_rounds"])
    subsample: float = float(TRAINING_DEFAULTS["subsample"])
    min_child_weight: float = float(TRAINING_DEFAULTS["min_child_weight"])
    seed: int = int(TRAINING_DEFAULTS["seed"])

    def validate(self) -> None:
        """ValueError naming the first out-of-range hyperparameter."""
        checks = {
            "num_round": self.num_round >= 1,
            "max_depth": self.max_depth >= 1,
            "eta": 0 < self.eta <= 1,
            "early_stopping_rounds": self.early_stopping_rounds >= 1,
            "subsample": 0 < self.subsample <= 1,
            "min_child_weight": self.min_child_weight >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"hyperparameter out of range: {bad[0]}={getattr(self, bad[0])}")


def resolve_hyperparameters(cli: Mapping[str, Any], env: Mapping[str, str]) -> HyperParameters:
    """CLI values win, then ``$SM_HPS`` (JSON, values may be strings), then defaults."""
    from_env = json.loads(env["SM_HPS"]) if env.get("SM_HPS") else {}
    values: dict[str, Any] = {}
    for f in fields(HyperParameters):
        raw = cli.get(f.name)
        if raw is None:
            raw = from_env.get(f.name)
        if raw is not None:
            cast = int if f.type in ("int", int) else float
            try:
                values[f.name] = cast(float(raw)) if cast is int else cast(raw)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"hyperparameter {f.name}={raw!r} is not a number") from exc
    hps = HyperParameters(**values)
    hps.validate()
    return hps


def read_split(directory: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """All parquet files of a channel (one per preprocessing host), concatenated in name order.

    ``columns``: only those of them a file has (a missing one is reported by the code that needs it, as
    when every column is read); the curated id tokens, for one, are of no use to training.
    """
    root = Path(directory)
    files = sorted(p for p in root.rglob("*.parquet") if p.is_file()) if root.is_dir() else []
    if not files:
        raise ValueError(f"no parquet files in {directory}")

    def wanted(path: Path) -> list[str] | None:
        if columns is None:
            return None
        names = set(pq.read_schema(path).names)
        present = [c for c in dict.fromkeys(columns) if c in names]
        # None of them (a split of another contract): every column, so that the rows are there and the error
        # names the missing column, not an empty split.
        return present or None

    tables = [pq.read_table(p, columns=wanted(p)) for p in files]
    frames = [t.to_pandas() for t in tables]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def resolve_contract(path: str | Path) -> DataContract:
    """The contract from a file path or a channel folder.

    In a folder, ``contract.json`` if present, else its only ``*.json`` file: SageMaker names a channel's
    file after its S3 object, and deployed contracts are content-addressed CDK assets (``<sha256>.json``).
    """
    p = Path(path)
    if not p.is_dir():
        return load_contract(p)
    if (p / CONTRACT_FILE).exists():
        return load_contract(p / CONTRACT_FILE)
    candidates = sorted(p.glob("*.json"))
    if len(candidates) != 1:
        raise ValueError(f"contract channel {p}: expected one .json file, found {[c.name for c in candidates]}")
    return load_contract(candidates[0])


def xgb_params(contract: DataContract, hps: HyperParameters, n_classes: int) -> dict[str, Any]:
    """``xgboost.train`` parameters for the contract's objective."""
    params: dict[str, Any] = {
        "objective": XGB_OBJECTIVES[contract.objective],
        "eval_metric": _EVAL_METRIC[contract.objective],
        "tree_method": "hist",
        "max_depth": hps.max_depth,
        "eta": hps.eta,
        "subsample": hps.subsample,
        "min_child_weight": hps.min_child_weight,
        "seed": hps.seed,
        "max_cat_to_onehot": 8,  # small vocabularies split one-vs-rest, larger ones by partition
    }
    if contract.objective == "multiclass":
        params["num_class"] = n_classes
    return params


def build_dmatrix(frame: pd.DataFrame, contract: DataContract, labels: list[Any]) -> xgb.DMatrix:
    """Encode a curated frame (features via :mod:`features`, target via ``labels``) as a DMatrix."""
    return xgb.DMatrix(
        encode(frame, contract),
        label=encode_labels(frame[contract.target], labels),
        feature_names=serving_names(contract),
        feature_types=feature_types(contract),
        enable_categorical=True,
        missing=np.nan,
    )


class SanityCheckError(ValueError):
    """The training split cannot give a meaningful model; ``reasons`` says why, in words."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("training sanity checks failed: " + "; ".join(reasons))
        self.reasons = reasons


def sanity_checks(train: pd.DataFrame, contract: DataContract) -> list[str]:
    """Check the training split before training; returns warnings, raises :class:`SanityCheckError`.

    Fails on: a classification target with fewer than two classes, or a class with fewer than the
    contract's ``min_class_count`` rows; a regression target with no variance (every value equal); a
    feature column with no value at all when the contract says ``empty_feature: fail`` (a warning otherwise).
    """
    reasons: list[str] = []
    warnings: list[str] = []
    target = train[contract.target]
    if contract.objective == "regression":
        values = pd.to_numeric(target, errors="coerce").dropna()
        if values.nunique() < 2:
            shown = f" (every value is {values.iloc[0]:g})" if len(values) else ""
            reasons.append(f"the regression target {contract.target!r} has no variance in the training split{shown}")
    else:
        counts = target.dropna().astype(str).value_counts()
        expected = [str(v) for v in (contract.column(contract.target).allowed or ())]
        counts = counts.reindex(list(dict.fromkeys([*expected, *counts.index])), fill_value=0)
        present = int((counts > 0).sum())
        shown = ", ".join(f"{k}: {int(v)}" for k, v in counts.items())
        if present < 2:
            reasons.append(
                f"the training split has {present} class(es) of target {contract.target!r} ({shown}); "
                "a classifier needs at least two"
            )
        else:
            small = [f"{k} ({int(v)})" for k, v in counts.items() if int(v) < contract.min_class_count]
            if small:
                reasons.append(
                    f"class(es) {', '.join(small)} of target {contract.target!r} have fewer than "
                    f"min_class_count={contract.min_class_count} training rows ({shown})"
                )
    for name in contract.names("feature", "quasi_identifier"):
        if name in train.columns and train[name].isna().all():
            message = f"feature {name!r} is entirely missing in the training split ({len(train)} rows)"
            if contract.empty_feature == "fail":
                reasons.append(message + " and the contract says empty_feature: fail")
            else:
                warnings.append(message + ": it carries no signal (contract: empty_feature: warn)")
    if contract.protected_as_features:
        for name in contract.names("protected"):
            warnings.append(
                f"protected column {name!r} is used as a model feature (contract: protected_as_features); "
                "check the per-group metrics before approving"
            )
    if reasons:
        raise SanityCheckError(reasons)
    for w in warnings:
        LOG.warning("%s", w)
    return warnings


def target_summary(train: pd.DataFrame, contract: DataContract, labels: list[Any]) -> dict[str, Any]:
    """What a trivial model learns from the training split: class counts, or the target's mean/std."""
    if contract.objective == "regression":
        values = pd.to_numeric(train[contract.target], errors="coerce").dropna()
        return {"mean": float(values.mean()), "std": float(values.std(ddof=0)), "rows": len(values)}
    codes = encode_labels(train[contract.target], labels).astype(int)
    counts = np.bincount(codes, minlength=len(labels))
    return {"class_counts": {str(lbl): int(c) for lbl, c in zip(labels, counts, strict=True)}, "rows": len(codes)}


def split_columns(contract: DataContract) -> list[str]:
    """The columns of a curated split that :func:`train_model` reads: the serving columns and the target."""
    return [*serving_names(contract), contract.target]


def train_model(
    train: pd.DataFrame, validation: pd.DataFrame, contract: DataContract, hps: HyperParameters
) -> tuple[xgb.Booster, dict[str, Any]]:
    """Train with early stopping on ``validation``; return the booster trimmed to its best iteration
    and the metadata that serving needs."""
    if train.empty or validation.empty:
        raise ValueError("train and validation data must not be empty")
    warnings = sanity_checks(train, contract)
    start = time.perf_counter()
    observed = pd.concat([train[contract.target], validation[contract.target]]).unique()
    labels = class_labels(contract, observed)
    dtrain = build_dmatrix(train, contract, labels)
    dval = build_dmatrix(validation, contract, labels)
    params = xgb_params(contract, hps, len(labels))
    history: dict[str, Any] = {}
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=hps.num_round,
        evals=[(dtrain, "train"), (dval, "validation")],
        early_stopping_rounds=hps.early_stopping_rounds,
        evals_result=history,
        verbose_eval=False,
    )
    best = int(getattr(booster, "best_iteration", hps.num_round - 1))
    metric = params["eval_metric"]
    best_score = float(history["validation"][metric][best])
    # Keep only the trees up to the best round: serving then needs no iteration_range.
    booster = booster[: best + 1]
    metadata = {
        "problem": contract.objective,
        "objective": params["objective"],
        "target": contract.target,
        "class_labels": labels,
        "positive_label": labels[1] if contract.objective == "binary" else None,
        "feature_names": serving_names(contract),
        "feature_types": feature_types(contract),
        "encoding_version": ENCODING_VERSION,
        "xgboost_version": xgb.__version__,
        "best_iteration": best,
        "rounds_trained": len(history["validation"][metric]),
        "validation_metric": {"name": metric, "value": best_score},
        "hyperparameters": asdict(hps),
        "train_rows": len(train),
        "training_seconds": round(time.perf_counter() - start, 3),
        "early_stopping_rounds": hps.early_stopping_rounds,
        "target_summary": target_summary(train, contract, labels),
        "warnings": warnings,
        "validation_rows": len(validation),
        "contract_sha256": hashlib.sha256(contract.to_json().encode()).hexdigest(),
    }
    if contract.objective == "binary":
        # Chosen on the validation split (never the test split); serving and evaluate use it.
        y_val = dval.get_label().astype(int)
        metadata["decision_threshold"] = choose_threshold(contract.decision_threshold, y_val, booster.predict(dval))
    return booster, metadata


def save_model(booster: xgb.Booster, metadata: dict[str, Any], contract: DataContract, model_dir: Path) -> None:
    """Write the model folder (model JSON, metadata, contract, serving code)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(model_dir / MODEL_FILE)
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (model_dir / CONTRACT_FILE).write_text(contract.to_json() + "\n", encoding="utf-8")
    code = model_dir / "code"
    code.mkdir(exist_ok=True)
    here = Path(__file__).resolve().parent
    for name in SERVING_MODULES:
        shutil.copyfile(here / name, code / name)


def parse_args(argv: list[str] | None, env: Mapping[str, str]) -> argparse.Namespace:
    """Channels and model folder (defaults from SageMaker's environment) plus hyperparameters."""
    # No abbreviations: ``--max_dep 3`` must fail, not silently become ``--max_depth``.
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--train", default=env.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    p.add_argument("--validation", default=env.get("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation"))
    p.add_argument("--contract", default=env.get("SM_CHANNEL_CONTRACT", "/opt/ml/input/data/contract"))
    p.add_argument("--model-dir", default=env.get("SM_MODEL_DIR", "/opt/ml/model"))
    for f in fields(HyperParameters):
        p.add_argument(f"--{f.name}", default=None, help=f"default {f.default}")
    args, unknown = p.parse_known_args(argv)
    # SageMaker may add its own ``sagemaker_*`` hyperparameters; anything else is a typo worth failing on.
    stray = [a for a in unknown if a.startswith("--") and not a[2:].startswith("sagemaker_")]
    if stray:
        p.error(f"unrecognized arguments: {' '.join(stray)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    env = os.environ
    args = parse_args(argv, env)
    try:
        hps = resolve_hyperparameters({f.name: getattr(args, f.name) for f in fields(HyperParameters)}, env)
        contract = resolve_contract(args.contract)
        used = split_columns(contract)
        train, validation = read_split(args.train, used), read_split(args.validation, used)
    except (ValueError, OSError) as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        booster, metadata = train_model(train, validation, contract, hps)
    except SanityCheckError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    metadata.update(curated_versions(args.train))  # the token/split constructions of the training data
    save_model(booster, metadata, contract, Path(args.model_dir))
    metric = metadata["validation_metric"]
    # One parseable line for SageMaker metric definitions: ``validation-<metric>: <value>``.
    print(f"validation-{metric['name']}: {metric['value']:.6f}")
    LOG.info(
        "trained %d rows, best iteration %d of %d, in %.2fs",
        metadata["train_rows"],
        metadata["best_iteration"],
        metadata["rounds_trained"],
        time.perf_counter() - start,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
