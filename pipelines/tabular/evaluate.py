"""Evaluation step: test-set metrics, metric gate, champion comparison, plots and the merged baseline.

SageMaker Processing contract::

    python3 evaluate.py --model-dir DIR --test-dir DIR --baseline-dir DIR --contract PATH
                        --output-dir DIR --gate-metric NAME [--champion-metric VALUE]

``--model-dir`` holds ``model.tar.gz`` as the training job wrote it, or the unpacked files. Writes
``evaluation.json`` (SageMaker model-quality shape plus ``gate`` and ``champion``, read by the
pipeline's ``PropertyFile``/``JsonGet``), ``plots/*.png`` and ``baseline/statistics.json`` +
``baseline/constraints.json`` (merged from the per-host parts of the preprocessing step).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from baseline import constraints, merge_statistics
from contract import METRICS, DataContract, load_contract
from features import encode_labels
from inference import Model, model_fn, predict_scores
from sklearn import metrics as skm
from train import read_split

LOG = logging.getLogger("flywheel.evaluate")
METRIC_SECTIONS = {
    "binary": "binary_classification_metrics",
    "multiclass": "multiclass_classification_metrics",
    "regression": "regression_metrics",
}
#: Stand-in for an undefined gate metric: fails any threshold in the right direction.
WORST_DEFINED_VALUE = 1e300
_NONE = ("", "none", "null")


def check_gate_metric(problem: str, name: str) -> bool:
    """``higher_is_better`` of ``name``; ValueError listing the choices if it is not a metric of ``problem``."""
    choices = METRICS[problem]
    if name not in choices:
        raise ValueError(
            f"gate metric {name!r} is not computed for a {problem} model; choose one of: {', '.join(choices)}"
        )
    return choices[name]


def parse_champion(value: str | None) -> float | None:
    """The champion's metric value; ``None`` for an empty string or ``none`` (no champion yet)."""
    if value is None or value.strip().lower() in _NONE:
        return None
    try:
        out = float(value)
    except ValueError as exc:
        raise ValueError(f"--champion-metric must be a number, empty or 'none', got {value!r}") from exc
    if math.isnan(out):
        raise ValueError("--champion-metric must not be NaN")
    return out


def compute_metrics(problem: str, y: np.ndarray, scores: np.ndarray, n_classes: int) -> dict[str, float | None]:
    """Test metrics; ``None`` where a metric is undefined (e.g. AUC with one class in the test set)."""
    if problem == "binary":
        pred = (scores >= 0.5).astype(int)
        two_classes = len(np.unique(y)) == 2
        return {
            "auc": float(skm.roc_auc_score(y, scores)) if two_classes else None,
            "accuracy": float(skm.accuracy_score(y, pred)),
            "f1": float(skm.f1_score(y, pred, zero_division=0)),
            "log_loss": float(skm.log_loss(y, scores, labels=[0, 1])),
            "precision": float(skm.precision_score(y, pred, zero_division=0)),
            "recall": float(skm.recall_score(y, pred, zero_division=0)),
            "pr_auc": float(skm.average_precision_score(y, scores)) if two_classes else None,
        }
    if problem == "multiclass":
        pred = np.argmax(scores, axis=1)
        return {
            "accuracy": float(skm.accuracy_score(y, pred)),
            "macro_f1": float(skm.f1_score(y, pred, average="macro", labels=range(n_classes), zero_division=0)),
            "log_loss": float(skm.log_loss(y, scores, labels=list(range(n_classes)))),
        }
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, scores))),
        "mae": float(skm.mean_absolute_error(y, scores)),
        "r2": float(skm.r2_score(y, scores)),
    }


def not_worse(value: float | None, champion: float | None, higher_is_better: bool) -> int:
    """1 if the challenger is at least as good as the champion (or there is none), else 0."""
    if champion is None:
        return 1
    if value is None:
        return 0
    return int(value >= champion if higher_is_better else value <= champion)


def passes_gate(value: float | None, threshold: float, higher_is_better: bool) -> bool:
    """What the pipeline's condition step decides: value at or beyond the threshold."""
    if value is None:
        return False
    return value >= threshold if higher_is_better else value <= threshold


def evaluation_report(
    problem: str, values: dict[str, float | None], gate_metric: str, champion: float | None, test_rows: int
) -> dict[str, Any]:
    """``evaluation.json``: SageMaker model-quality metrics plus ``gate`` and ``champion``."""
    higher = check_gate_metric(problem, gate_metric)
    section = {name: {"value": v, "standard_deviation": "NaN"} for name, v in values.items()}
    value = values[gate_metric]
    # The quality gate compares gate.value numerically: an undefined metric (e.g. AUC on a one-class test
    # split) must fail the gate cleanly, so it is written as the worst possible value and flagged.
    gate_value = value if value is not None else (WORST_DEFINED_VALUE * (-1 if higher else 1))
    return {
        METRIC_SECTIONS[problem]: section,
        "gate": {"metric": gate_metric, "value": gate_value, "higher_is_better": higher, "defined": value is not None},
        "champion": {"metric_value": champion, "challenger_not_worse": not_worse(value, champion, higher)},
        "test_rows": test_rows,
    }


def resolve_model_dir(model_dir: Path, scratch: Path) -> Path:
    """The folder with the model files: ``model_dir`` itself, or ``model.tar.gz`` unpacked into ``scratch``."""
    archive = model_dir / "model.tar.gz"
    if not archive.is_file():
        return model_dir
    with tarfile.open(archive, "r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(scratch, filter="data")  # refuses absolute paths, .. and links out
        else:  # pragma: no cover - Python without PEP 706 filters
            for member in tar.getmembers():
                target = (scratch / member.name).resolve()
                if not target.is_relative_to(scratch.resolve()) or member.issym() or member.islnk():
                    raise ValueError(f"unsafe path in model archive: {member.name}")
            tar.extractall(scratch)  # noqa: S202 - members checked above
    return scratch


# --- plots -------------------------------------------------------------------------------------------


def _pyplot() -> Any:
    """matplotlib's pyplot on the headless Agg backend, or None if matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:  # plots are a convenience: never fail an evaluation over them
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def make_plots(model: Model, y: np.ndarray, scores: np.ndarray, out: Path) -> list[str]:
    """ROC + PR (binary), confusion matrix (classification), residuals (regression), importance (all).

    Returns the file names written (none if matplotlib is missing from the container).
    """
    plt = _pyplot()
    if plt is None:
        LOG.warning("matplotlib is not installed: no plots")
        return []
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if model.problem == "binary" and len(np.unique(y)) == 2:
        fpr, tpr, _ = skm.roc_curve(y, scores)
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(fpr, tpr, label=f"AUC {skm.auc(fpr, tpr):.3f}")
        ax.plot([0, 1], [0, 1], "--", color="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
        ax.legend(loc="lower right")
        written.append(_save(plt, fig, out / "roc.png"))
        prec, rec, _ = skm.precision_recall_curve(y, scores)
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(rec, prec)
        ax.axhline(float(np.mean(y)), ls="--", color="grey")
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
        written.append(_save(plt, fig, out / "pr.png"))
    if model.problem in ("binary", "multiclass"):
        pred = (scores >= 0.5).astype(int) if model.problem == "binary" else np.argmax(scores, axis=1)
        k = len(model.labels)
        cm = skm.confusion_matrix(y, pred, labels=list(range(k)))
        fig, ax = plt.subplots(figsize=(1.2 * k + 2.5, 1.2 * k + 2))
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            # white on the dark cells, black on the light ones: readable whatever the counts
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
        names = [str(c) for c in model.labels]
        ax.set(xticks=range(k), yticks=range(k), xticklabels=names, yticklabels=names)
        ax.set(xlabel="predicted", ylabel="actual", title="Confusion matrix")
        written.append(_save(plt, fig, out / "confusion_matrix.png"))
    else:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.scatter(scores, y - scores, s=8, alpha=0.6)
        ax.axhline(0, color="grey", ls="--")
        ax.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals")
        written.append(_save(plt, fig, out / "residuals.png"))
    gains = model.booster.get_score(importance_type="gain")
    names = model.columns
    values = [float(gains.get(n, 0.0)) for n in names]
    order = np.argsort(values)
    fig, ax = plt.subplots(figsize=(5.5, 0.28 * len(names) + 1.2))
    ax.barh([names[i] for i in order], [values[i] for i in order])
    ax.set(xlabel="total gain / splits (gain)", title="Feature importance")
    written.append(_save(plt, fig, out / "feature_importance.png"))
    return written


# --- baseline ----------------------------------------------------------------------------------------


def merge_baseline(baseline_dir: Path, contract: DataContract, out: Path) -> dict[str, Any]:
    """Merge ``stats-*.json`` parts into ``statistics.json`` and ``constraints.json`` under ``out``."""
    parts = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(baseline_dir.glob("stats-*.json"))]
    if not parts:
        raise ValueError(f"no baseline statistics (stats-*.json) in {baseline_dir}")
    statistics = merge_statistics(parts, contract)
    out.mkdir(parents=True, exist_ok=True)
    (out / "statistics.json").write_text(json.dumps(statistics, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    cons = constraints(statistics, contract)
    (out / "constraints.json").write_text(json.dumps(cons, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return statistics


# --- CLI ---------------------------------------------------------------------------------------------


def evaluate(
    model_dir: Path,
    test_dir: Path,
    baseline_dir: Path,
    contract: DataContract,
    output_dir: Path,
    gate_metric: str,
    champion: float | None,
) -> dict[str, Any]:
    """Run the step; returns the content of ``evaluation.json``."""
    check_gate_metric(contract.objective, gate_metric)
    with tempfile.TemporaryDirectory() as scratch:
        model = model_fn(str(resolve_model_dir(model_dir, Path(scratch))))
    if model.problem != contract.objective:
        raise ValueError(f"model objective {model.problem!r} differs from the contract's {contract.objective!r}")
    test = read_split(test_dir)
    scores = predict_scores(test[model.columns], model)
    y = encode_labels(test[contract.target], model.labels)
    if model.problem != "regression":
        y = y.astype(int)
    values = compute_metrics(model.problem, y, scores, len(model.labels))
    report = evaluation_report(model.problem, values, gate_metric, champion, len(test))
    report["plots"] = make_plots(model, y, scores, output_dir / "plots")
    merge_baseline(baseline_dir, contract, output_dir / "baseline")
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "evaluation.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The step's command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", required=True, help="folder with model.tar.gz or the unpacked model")
    p.add_argument("--test-dir", required=True, help="curated test parquet from preprocessing")
    p.add_argument("--baseline-dir", required=True, help="per-host stats-*.json from preprocessing")
    p.add_argument("--contract", required=True, help="path of contract.json")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--gate-metric", required=True, help="metric reported under 'gate' (e.g. auc, rmse)")
    p.add_argument("--champion-metric", default="", help="the champion's gate metric; empty or 'none' if none")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(argv)
    try:
        contract = load_contract(args.contract)
        champion = parse_champion(args.champion_metric)
        check_gate_metric(contract.objective, args.gate_metric)
        report = evaluate(
            Path(args.model_dir),
            Path(args.test_dir),
            Path(args.baseline_dir),
            contract,
            Path(args.output_dir),
            args.gate_metric,
            champion,
        )
    except (ValueError, OSError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    gate = report["gate"]
    LOG.info(
        "%s = %s (champion %s, not worse: %d)",
        gate["metric"],
        gate["value"],
        champion,
        report["champion"]["challenger_not_worse"],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
