"""Evaluation step: test-set metrics, metric gate, champion comparison, plots and the merged baseline.

SageMaker Processing contract::

    python3 evaluate.py --model-dir DIR --test-dir DIR --baseline-dir DIR --contract PATH
                        --output-dir DIR --gate-metric NAME [--champion-metric VALUE]

``--model-dir`` holds ``model.tar.gz`` as the training job wrote it, or the unpacked files. Writes
``evaluation.json`` (SageMaker model-quality shape plus ``gate`` and ``champion``, read by the
pipeline's ``PropertyFile``/``JsonGet``), ``plots/*.png``, ``baseline/statistics.json`` +
``baseline/constraints.json`` (merged from the per-host parts of the preprocessing step) and, with
``--team``, ``model-card.html`` (``model_card.py``: the card stored with the registered package).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tarfile
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from baseline import constraints, merge_statistics
from contract import DEFAULT_TRIVIAL_MARGIN, METRICS, NO_CHAMPION_KEY, DataContract, load_contract
from fairness import group_metrics, worst_gap
from features import encode_labels
from inference import Model, decision_threshold, model_fn, predict_scores
from model_card import CARD_FILE, evaluation_card_run, write_report
from thresholds import calibration, per_class
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


def compute_metrics(
    problem: str, y: np.ndarray, scores: np.ndarray, n_classes: int, threshold: float = 0.5
) -> dict[str, float | None]:
    """Test metrics; ``None`` where a metric is undefined (e.g. AUC with one class in the test set).

    Binary labels are ``P(positive) >= threshold`` (the model's decision threshold, chosen on validation).
    The definitions are scikit-learn 1.9's (``roc_auc_score``, ``average_precision_score``, ``f1_score`` with
    ``zero_division=0``, ``log_loss`` over every class, ``r2_score``...), computed in numpy: the step imports
    no scikit-learn (1.5 s of a 2 s import), and the tests hold every value equal to scikit-learn's to 1e-12
    (tests/pipelines/tabular/test_tabular_fast_metrics.py, degenerate inputs included).
    """
    if len(y) == 0:
        raise ValueError("the test split has no rows: nothing to evaluate")
    values = fast_metrics(problem, y, scores, n_classes, threshold)
    if problem == "regression":  # r2 as r2_score reports it; second_metric's is None for a constant target
        values["r2"] = _r2_score(y, scores)
    return {name: values[name] for name in _POINT_METRICS[problem]}


#: The metrics :func:`compute_metrics` reports per problem (the second metric is reported on its own).
_POINT_METRICS: Final = {
    "binary": ("auc", "accuracy", "f1", "log_loss", "precision", "recall", "pr_auc"),
    "multiclass": ("accuracy", "macro_f1", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}


def _r2_score(y: np.ndarray, scores: np.ndarray) -> float:
    """scikit-learn's ``r2_score`` (``force_finite``): 1 - SS_res / SS_tot; a constant target scores 1.0 when
    predicted exactly, else 0.0; NaN below two rows."""
    if len(y) < 2:
        return float("nan")
    ss_res = float(np.sum((y - scores) ** 2))
    ss_tot = float(np.sum((y - np.mean(y)) ** 2))
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot


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


# --- trivial baseline, second metric, bootstrap ---------------------------------------------------------

#: How much better than the trivial model the challenger must be (``contract.DEFAULT_TRIVIAL_MARGIN``).
DEFAULT_MARGIN = DEFAULT_TRIVIAL_MARGIN
DEFAULT_RESAMPLES = 300
DEFAULT_SEED = 20260101
#: Bootstrap work bound: resamples x test rows stays under this (fewer resamples on very large test sets).
BOOTSTRAP_BUDGET = 4_000_000
CONFIDENCE = 0.95
SECOND_METRIC = {"binary": "balanced_accuracy", "multiclass": "balanced_accuracy", "regression": "r2"}
_TIE = 1e-12


def second_metric(
    problem: str, y: np.ndarray, scores: np.ndarray, n_classes: int, threshold: float = 0.5
) -> float | None:
    """The metric a degenerate model cannot fake: balanced accuracy (the mean recall over classes present
    in ``y``; 1/k for any constant prediction) for classification, R² (0 for the mean) for regression
    (None for a constant target)."""
    if len(y) == 0:
        return None
    return fast_metrics(problem, y, scores, n_classes, threshold)[SECOND_METRIC[problem]]


def trivial_scores(model: Model, y: np.ndarray) -> tuple[np.ndarray, str]:
    """Scores of the trivial model on the test rows, and what it is in words.

    Classification: the training split's class prior for every row (its predicted class is the majority
    class); regression: the training mean. A model without a training summary falls back to the test
    split's own prior/mean (said so in the description).
    """
    summary = model.metadata.get("target_summary") or {}
    n = len(y)
    if model.problem == "regression":
        if "mean" in summary:
            mean, where = float(summary["mean"]), "training"
        else:
            mean, where = float(np.mean(y)) if n else 0.0, "test (no training summary in the model)"
        return np.full(n, mean), f"predicts the {where} mean {mean:.4g} for every row"
    k = len(model.labels)
    counts = summary.get("class_counts")
    if counts:
        prior = np.array([float(counts.get(str(lbl), 0)) for lbl in model.labels])
        where = "training"
    else:
        prior, where = np.bincount(y.astype(int), minlength=k).astype(float), "test (no training summary)"
    prior = prior / prior.sum() if prior.sum() > 0 else np.full(k, 1.0 / k)
    majority = model.labels[int(np.argmax(prior))]
    if model.problem == "binary":
        text = f"scores every row with the {where} rate of {model.labels[1]!r} ({prior[1]:.3f}): always {majority!r}"
        return np.full(n, prior[1]), text
    return np.tile(prior, (n, 1)), f"the {where} class prior for every row: always {majority!r}"


def _resamples(n: int, requested: int) -> int:
    if n == 0:
        return 0
    return max(min(requested, 100), min(requested, BOOTSTRAP_BUDGET // n))


# --- the metrics in numpy -------------------------------------------------------------------------------
# The point estimates (compute_metrics, second_metric) and every bootstrap resample use these: scikit-learn's
# definitions without its import or its per-call input validation (tests/pipelines/tabular/
# test_tabular_fast_metrics.py holds them equal to scikit-learn to 1e-12, degenerate resamples included).


def _ratio(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """``num / den`` with 0 where ``den == 0`` (sklearn's ``zero_division=0``)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _fast_log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """sklearn 1.9 ``log_loss`` with ``labels`` = every class: binary scores become ``[1 - p, p]``, then
    both are clipped to ``[eps, 1 - eps]`` (``eps`` of the scores' float dtype), no renormalisation."""
    p = np.asarray(proba)
    if not np.issubdtype(p.dtype, np.floating) or p.dtype == np.float16:
        p = p.astype(np.float64)
    eps = np.finfo(p.dtype).eps
    # the probability of the true class (binary: 1 - p computed before clipping, as sklearn does)
    picked = np.where(y == 1, p, 1 - p) if p.ndim == 1 else p[np.arange(len(y)), y.astype(np.intp)]
    return float(np.mean(-np.log(np.clip(picked, eps, 1 - eps))))


def _fast_auc_ap(y: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """ROC AUC (Mann-Whitney with average ranks for ties) and average precision (sklearn's step sum over
    distinct thresholds), for 0/1 ``y`` with both classes present."""
    return _auc_ap(*Ranking.of(y, scores).counts())


def confusion_matrix(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """``k`` x ``k`` counts, rows the actual class, columns the predicted one (scikit-learn's layout)."""
    cells = np.asarray(y, dtype=np.intp) * k + np.asarray(pred, dtype=np.intp)
    return np.bincount(cells, minlength=k * k).reshape(k, k)


def _auc_ap(tps: np.ndarray, fps: np.ndarray) -> tuple[float, float]:
    """AUC and average precision from the cumulative true/false positives at each distinct threshold
    (descending; every threshold holds at least one row)."""
    n_pos, n_neg = tps[-1], fps[-1]
    # AUC (Mann-Whitney U / (P N)): each positive beats the negatives below its tie group, half of those in it
    d_tp = np.diff(np.r_[0, tps])
    d_fp = np.diff(np.r_[0, fps])
    auc = float(np.sum(d_tp * (n_neg - fps + d_fp / 2.0)) / (n_pos * n_neg))
    precision = tps / (tps + fps)
    recall = tps / n_pos
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return auc, ap


@dataclass(frozen=True)
class Ranking:
    """Binary test rows sorted by score once (descending), with their groups of equal scores.

    A bootstrap resample ``idx`` holds row ``i`` ``count(i)`` times, so sorting the resample gives this order
    with each row repeated, and its distinct thresholds are this order's groups that kept a row. Its AUC and
    average precision are therefore weighted cumulative sums in this order (:meth:`auc_ap`): the same terms,
    in the same order, as :func:`_fast_auc_ap` on ``y[idx], scores[idx]``, without a sort per resample (the
    sort was 2/3 of the bootstrap's time).
    """

    order: np.ndarray
    ends: np.ndarray  # index (in ``order``) of the last row of each group of equal scores
    positive: np.ndarray  # 1.0 where the sorted row is a positive

    @classmethod
    def of(cls, y: np.ndarray, scores: np.ndarray) -> Ranking:
        order = np.argsort(-scores, kind="mergesort")
        s_sorted = scores[order]
        # last index of each run of equal scores (descending): sklearn's distinct thresholds
        ends = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
        return cls(order, ends, (y[order] == 1).astype(np.float64))

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative true and false positives at each distinct score, descending (every row counted once)."""
        tps = np.cumsum(self.positive)[self.ends]
        return tps, self.ends + 1 - tps

    def auc_ap(self, idx: np.ndarray) -> tuple[float, float]:
        """AUC and average precision of the resample ``y[idx], scores[idx]`` (both classes present in it)."""
        weights = np.bincount(idx, minlength=len(self.order))[self.order].astype(np.float64)
        rows = np.cumsum(weights)[self.ends]
        tps = np.cumsum(weights * self.positive)[self.ends]
        kept = np.diff(np.r_[0.0, rows]) > 0  # groups none of whose rows was drawn are no threshold
        return _auc_ap(tps[kept], rows[kept] - tps[kept])


def _fast_binary(
    y: np.ndarray, scores: np.ndarray, threshold: float = 0.5, auc_ap: Callable[[], tuple[float, float]] | None = None
) -> dict[str, float | None]:
    pred = scores >= threshold
    truth = y == 1
    n = len(y)
    tp = int(np.count_nonzero(pred & truth))
    n_pred, n_true = int(np.count_nonzero(pred)), int(np.count_nonzero(truth))
    fp, fn = n_pred - tp, n_true - tp
    tn = n - tp - fp - fn
    two_classes = 0 < n_true < n
    if two_classes:
        auc, ap = auc_ap() if auc_ap is not None else _fast_auc_ap(y, scores)
    else:
        auc, ap = None, None
    recalls = [float(tn / (n - n_true))] if n_true < n else []
    if n_true:
        recalls.append(float(tp / n_true))
    return {
        "auc": auc,
        "accuracy": float((tp + tn) / n),
        "f1": float(_ratio(2 * tp, 2 * tp + fp + fn)),
        "log_loss": _fast_log_loss(y, scores),
        "precision": float(_ratio(tp, n_pred)),
        "recall": float(_ratio(tp, n_true)),
        "pr_auc": ap,
        "balanced_accuracy": float(np.mean(recalls)) if recalls else None,
    }


def _fast_multiclass(y: np.ndarray, scores: np.ndarray, n_classes: int) -> dict[str, float | None]:
    pred = np.argmax(scores, axis=1)
    yi = y.astype(np.intp)
    k = max(n_classes, 2)
    true_count = np.bincount(yi, minlength=k)[:k]
    pred_count = np.bincount(pred, minlength=k)[:k]
    tp = np.bincount(yi[pred == yi], minlength=k)[:k]
    f1 = _ratio(2 * tp[:n_classes], true_count[:n_classes] + pred_count[:n_classes])
    present = true_count > 0
    return {
        "accuracy": float(tp.sum() / len(y)),
        "macro_f1": float(np.mean(f1)),
        "log_loss": _fast_log_loss(yi, scores),
        "balanced_accuracy": float(np.mean(tp[present] / true_count[present])) if present.any() else None,
    }


def _fast_regression(y: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    err = y - scores
    sq = err**2
    # r2 here is the second metric's: None for a constant target (compute_metrics reports r2_score's)
    r2 = None if np.all(y == y[0]) else 1.0 - float(np.sum(sq)) / float(np.sum((y - np.mean(y)) ** 2))
    return {"rmse": float(np.sqrt(np.mean(sq))), "mae": float(np.mean(np.abs(err))), "r2": r2}


def fast_metrics(
    problem: str,
    y: np.ndarray,
    scores: np.ndarray,
    n_classes: int,
    threshold: float = 0.5,
    auc_ap: Callable[[], tuple[float, float]] | None = None,
) -> dict[str, float | None]:
    """Every metric of ``problem`` (the point metrics and the second metric) on non-empty ``y``
    (``auc_ap``: a binary resample's AUC and average precision, when they are known another way)."""
    if problem == "binary":
        return _fast_binary(y, scores, threshold, auc_ap)
    if problem == "multiclass":
        return _fast_multiclass(y, scores, n_classes)
    return _fast_regression(y, scores)


def resample_metrics(
    problem: str,
    y: np.ndarray,
    scores: np.ndarray,
    idx: np.ndarray,
    n_classes: int,
    threshold: float,
    ranking: Ranking | None,
) -> dict[str, float | None]:
    """:func:`fast_metrics` of the resample ``y[idx], scores[idx]``; a binary one's AUC and average precision
    from ``ranking`` (the rows' :class:`Ranking`, made once per bootstrap)."""
    auc_ap = None if ranking is None else (lambda: ranking.auc_ap(idx))
    return fast_metrics(problem, y[idx], scores[idx], n_classes, threshold, auc_ap)


def bootstrap_intervals(
    problem: str, y: np.ndarray, scores: np.ndarray, n_classes: int, resamples: int, seed: int, threshold: float = 0.5
) -> dict[str, dict[str, Any]]:
    """Percentile bootstrap intervals (``CONFIDENCE``) of every test metric, resampling test rows.

    Seeded (``numpy.random.default_rng(seed)``): the same inputs give the same intervals. Resamples where
    a metric is undefined (e.g. AUC on a one-class resample) are left out of that metric's interval.
    """
    n = len(y)
    r = _resamples(n, resamples)
    rng = np.random.default_rng(seed)
    ranking = Ranking.of(y, scores) if problem == "binary" and r else None
    draws: dict[str, list[float]] = {}
    for _ in range(r):
        idx = rng.integers(0, n, size=n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = resample_metrics(problem, y, scores, idx, n_classes, threshold, ranking)
        for name, v in values.items():
            if v is not None and math.isfinite(v):
                draws.setdefault(name, []).append(v)
    alpha = (1 - CONFIDENCE) / 2
    out: dict[str, dict[str, Any]] = {}
    for name, vals in draws.items():
        arr = np.asarray(vals)
        out[name] = {
            "low": float(np.quantile(arr, alpha)),
            "high": float(np.quantile(arr, 1 - alpha)),
            "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "resamples": len(arr),
        }
    return out


def paired_bootstrap(
    problem: str,
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    n_classes: int,
    metric: str,
    resamples: int,
    seed: int,
    thresholds: tuple[float, float] = (0.5, 0.5),
) -> dict[str, Any]:
    """Paired bootstrap of ``metric(challenger) - metric(champion)`` on the same resampled test rows.

    Both models are scored on each resample, so the row-to-row noise they share cancels (Efron &
    Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 16). Returns the observed difference, its
    percentile interval and the share of resamples where the challenger is worse.
    """
    higher = METRICS[problem][metric]
    n = len(y)
    r = _resamples(n, resamples)
    rng = np.random.default_rng(seed)

    rankings = (Ranking.of(y, challenger), Ranking.of(y, champion)) if problem == "binary" and r else (None, None)

    def value(idx: np.ndarray | None, s: np.ndarray, t: float, ranking: Ranking | None) -> float | None:
        if idx is None:  # the observed values, as the point estimates
            return fast_metrics(problem, y, s, n_classes, t)[metric]
        return resample_metrics(problem, y, s, idx, n_classes, t, ranking)[metric]

    a, b = value(None, challenger, thresholds[0], None), value(None, champion, thresholds[1], None)
    diffs = []
    for _ in range(r):
        idx = rng.integers(0, n, size=n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            va = value(idx, challenger, thresholds[0], rankings[0])
            vb = value(idx, champion, thresholds[1], rankings[1])
        if va is not None and vb is not None:
            diffs.append(va - vb)
    arr = np.asarray(diffs) if diffs else np.zeros(1)
    alpha = (1 - CONFIDENCE) / 2
    sign = 1.0 if higher else -1.0
    return {
        "metric": metric,
        "challenger": a,
        "champion": b,
        "difference": None if a is None or b is None else a - b,
        "low": float(np.quantile(arr, alpha)),
        "high": float(np.quantile(arr, 1 - alpha)),
        "share_worse": float(np.mean(sign * arr < -_TIE)),
        "resamples": len(diffs),
        "identical_predictions": bool(np.array_equal(challenger, champion)) and thresholds[0] == thresholds[1],
    }


def compare_with_champion(
    value: float | None,
    champion: float | None,
    higher: bool,
    interval: dict[str, Any] | None,
    paired: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Name the champion/challenger difference: ``none``, ``tie``, ``better``, ``worse``, each of the last
    two ``within noise`` when the difference is inside the bootstrap interval.

    With ``paired`` (the champion scored on the same test rows) the interval is that of the paired
    difference and "within noise" means it contains 0; otherwise it means the champion's value lies inside
    the challenger's own interval. The decision (``challenger_not_worse``) stays the point comparison:
    a tie passes, a noise-level drop is named but does not (an approver can still approve it knowingly).
    """
    out: dict[str, Any] = {"metric_value": champion, "challenger_not_worse": not_worse(value, champion, higher)}
    if champion is None:
        out.update(verdict="none", difference=None, display="none")
        return out
    out["display"] = f"{champion:.4g}"
    if value is None:
        out.update(verdict="worse", difference=None)
        return out
    diff = value - champion
    out["difference"] = diff
    if paired is not None:
        out["paired"] = paired
        noise = paired["low"] <= 0 <= paired["high"]
        exact = paired["identical_predictions"] or abs(diff) <= _TIE
    else:
        noise = interval is not None and interval["low"] <= champion <= interval["high"]
        exact = abs(diff) <= _TIE
    if exact:
        out["verdict"] = "tie"
    else:
        better = diff > 0 if higher else diff < 0
        out["verdict"] = ("better" if better else "worse") + (", within noise" if noise else "")
    out["noise_method"] = (
        "paired bootstrap on the same test rows" if paired is not None else "champion inside the challenger's interval"
    )
    return out


def _f(v: float | None) -> str:
    return "undefined" if v is None else f"{v:.4g}"


def gate_checks(
    problem: str,
    values: dict[str, float | None],
    trivial: dict[str, float | None],
    gate_metric: str,
    threshold: float | None,
    margin: float,
    champion: dict[str, Any],
) -> list[dict[str, Any]]:
    """Every check of the quality gate, each with its outcome and its reason in words."""
    higher = METRICS[problem][gate_metric]
    op = ">=" if higher else "<="
    value = values[gate_metric]
    checks: list[dict[str, Any]] = []

    def add(name: str, passed: bool, reason: str) -> None:
        checks.append({"check": name, "passed": bool(passed), "reason": reason})

    if value is None:
        add("defined", False, f"{gate_metric} is undefined on the test split (e.g. only one class in it)")
    if threshold is not None:
        ok = passes_gate(value, threshold, higher)
        add(
            "threshold", ok, f"{gate_metric} {_f(value)} {'meets' if ok else 'misses'} the threshold {op} {threshold:g}"
        )
    base = trivial.get(gate_metric)
    if base is not None:
        need = base + margin if higher else base - margin * abs(base)
        ok = value is not None and (value >= need if higher else value <= need)
        add(
            "beats_trivial",
            ok,
            f"{gate_metric} {_f(value)} vs the trivial model's {_f(base)}: "
            f"{'beats' if ok else 'does not beat'} it by the margin (needs {op} {need:.4g})",
        )
    second = SECOND_METRIC[problem]
    v2, b2 = values.get(second), trivial.get(second)
    floor = (b2 if b2 is not None else 0.0) if problem != "regression" else 0.0
    ok = v2 is not None and v2 > floor + margin
    what = "the trivial model's" if problem != "regression" else "the training mean's (0)"
    add(
        "second_metric",
        ok,
        f"{second.replace('_', ' ')} {_f(v2)} vs {what} {floor:.4g}: "
        + ("better by the margin" if ok else f"needs > {floor + margin:.4g}; the model may predict one value for all"),
    )
    verdict = champion.get("verdict", "none")
    if verdict == "none":
        add("champion", True, "no approved champion to compare with")
    else:
        diff = champion.get("difference")
        by = "" if diff is None or verdict == "tie" else f" (by {abs(diff):.4g})"
        if (champion.get("paired") or {}).get("identical_predictions"):
            by += " (identical predictions on the same test rows)"
        elif champion.get("paired"):
            by += " (paired on the same test rows)"
        add(
            "champion",
            bool(champion["challenger_not_worse"]),
            f"challenger {gate_metric} {_f(value)} vs champion {_f(champion['metric_value'])}: {verdict}{by}",
        )
    return checks


def evaluation_report(
    problem: str,
    values: dict[str, float | None],
    gate_metric: str,
    champion: float | None,
    test_rows: int,
    *,
    intervals: dict[str, dict[str, Any]] | None = None,
    trivial: dict[str, float | None] | None = None,
    trivial_description: str = "",
    threshold: float | None = None,
    margin: float = DEFAULT_MARGIN,
    paired: dict[str, Any] | None = None,
    second_value: float | None = None,
) -> dict[str, Any]:
    """``evaluation.json``: SageMaker model-quality metrics plus ``gate``, ``champion``, ``trivial_baseline``."""
    higher = check_gate_metric(problem, gate_metric)
    intervals = intervals or {}
    section = {
        name: {
            "value": v,
            "standard_deviation": intervals[name]["std"] if name in intervals else "NaN",
        }
        for name, v in values.items()
    }
    value = values[gate_metric]
    # The quality gate compares gate.value numerically: an undefined metric (e.g. AUC on a one-class test
    # split) must fail the gate cleanly, so it is written as the worst possible value and flagged.
    gate_value = value if value is not None else (WORST_DEFINED_VALUE * (-1 if higher else 1))
    comparison = compare_with_champion(value, champion, higher, intervals.get(gate_metric), paired)
    all_values = {**values, SECOND_METRIC[problem]: second_value}
    checks = gate_checks(problem, all_values, trivial or {}, gate_metric, threshold, margin, comparison)
    failed = [c["reason"] for c in checks if not c["passed"]]
    return {
        METRIC_SECTIONS[problem]: section,
        "gate": {
            "metric": gate_metric,
            "value": gate_value,
            "display": _f(value),
            "higher_is_better": higher,
            "defined": value is not None,
            "threshold": threshold,
            "margin": margin,
            "passed": int(not failed),
            "checks": checks,
            "summary": "; ".join(failed) if failed else "every check passed",
        },
        "champion": comparison,
        "second_metric": {"name": SECOND_METRIC[problem], "value": second_value},
        "trivial_baseline": {"description": trivial_description, "metrics": trivial or {}},
        "intervals": {"confidence": CONFIDENCE, "method": "percentile bootstrap over test rows", "metrics": intervals},
        "test_rows": test_rows,
    }


def add_fairness(
    report: dict[str, Any],
    problem: str,
    y: np.ndarray,
    scores: np.ndarray,
    test: Any,
    contract: DataContract,
    threshold: float,
    max_gap: float | None,
) -> None:
    """Per-group metrics of every protected column in ``test`` into ``report['fairness']`` and, with
    ``max_gap``, the ``fairness`` check of the gate on the worst gap (:func:`fairness.worst_gap`)."""
    protected = [c for c in contract.names("protected") if c in test.columns]
    if not protected:
        return
    columns = {c: group_metrics(problem, y, scores, test[c], threshold) for c in protected}
    report["fairness"] = {"columns": columns, "used_as_features": contract.protected_as_features}
    worst = worst_gap(problem, columns)
    if max_gap is not None and worst is None:
        reason = f"no group gap measurable on {', '.join(map(repr, protected))} (groups too small): not gated"
        add_check(report, "fairness", True, reason)
    elif max_gap is not None and worst is not None:
        add_check(report, "fairness", worst[1] <= max_gap, _fairness_reason(worst, max_gap))


def _fairness_reason(worst: tuple[str, float], allowed: float) -> str:
    """The fairness check in words: the worst gap, on which column, against the allowed gap."""
    column, _, name = worst[0].partition(".")
    within = "within" if worst[1] <= allowed else "above"
    if name == "selection_rate_ratio":
        what = f"selection-rate ratio {1 - worst[1]:.3f} (a gap of {worst[1]:.3f} from parity)"
    else:
        what = f"{name.replace('_', ' ')} {worst[1]:.3f}"
    return f"worst group gap on {column!r}: {what}, {within} the allowed gap of {allowed:g}"


def add_check(report: dict[str, Any], name: str, passed: bool, reason: str) -> None:
    """Add a check to ``report['gate']`` and recompute its decision and summary."""
    gate = report["gate"]
    gate["checks"].append({"check": name, "passed": bool(passed), "reason": reason})
    failed = [c["reason"] for c in gate["checks"] if not c["passed"]]
    gate["passed"] = int(not failed)
    gate["summary"] = "; ".join(failed) if failed else "every check passed"


def holds_no_champion(champion_dir: Path) -> bool:
    """True if ``champion_dir`` holds the "no champion" marker (``ChampionModelUri``'s default) and no model.

    The marker is recognised by its content, not its name: a CDK asset reaches the container under its
    content hash (``<sha256>.json``).
    """
    if not champion_dir.is_dir():
        raise ValueError(f"--champion-model-dir {champion_dir} is not a folder")
    files = [p for p in champion_dir.rglob("*") if p.is_file()]
    if not files:
        raise ValueError(f"--champion-model-dir {champion_dir} is empty: expected model.tar.gz or the marker")
    for path in files:
        if path.suffix == ".json" and path.stat().st_size < 4096:
            try:
                content = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(content, dict) and content.get(NO_CHAMPION_KEY) is True:
                return len(files) == 1
    return False


def incomparable(champion: Model, challenger: Model, columns: Any) -> str | None:
    """Why the champion cannot be scored on the challenger's test rows (None if it can): another objective,
    other classes, or features the test split no longer has (the contract changed since)."""
    if champion.problem != challenger.problem:
        return f"the champion is a {champion.problem} model, the challenger {challenger.problem}"
    if champion.problem != "regression" and list(champion.labels) != list(challenger.labels):
        return f"the champion's classes {champion.labels} differ from the challenger's {challenger.labels}"
    missing = [c for c in champion.columns if c not in set(columns)]
    if missing:
        return f"the test split lacks the champion's feature(s) {', '.join(missing[:5])}"
    return None


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


def make_plots(model: Model, y: np.ndarray, scores: np.ndarray, out: Path, threshold: float = 0.5) -> list[str]:
    """ROC + PR + calibration (binary), confusion matrix at ``threshold`` (classification), residuals
    (regression), importance (all).

    Returns the file names written (none if matplotlib is missing from the container).
    """
    plt = _pyplot()
    if plt is None:
        LOG.warning("matplotlib is not installed: no plots")
        return []
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if model.problem == "binary" and len(np.unique(y)) == 2:
        tps, fps = Ranking.of(y, scores).counts()
        fpr, tpr = np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(fpr, tpr, label=f"AUC {np.trapezoid(tpr, fpr):.3f}")
        ax.plot([0, 1], [0, 1], "--", color="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
        ax.legend(loc="lower right")
        written.append(_save(plt, fig, out / "roc.png"))
        prec, rec = np.r_[1.0, tps / (tps + fps)], np.r_[0.0, tps / tps[-1]]
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(rec, prec)
        ax.axhline(float(np.mean(y)), ls="--", color="grey")
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
        written.append(_save(plt, fig, out / "pr.png"))
    table = calibration(y, scores, model.problem)
    if table is not None and table["bins"]:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        xs = [b["predicted"] for b in table["bins"]]
        ys = [b["observed"] for b in table["bins"]]
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
        ax.plot(xs, ys, "o-", label=f"model (ECE {table['ece']:.3f})")
        label = "P(positive)" if model.problem == "binary" else "top-class confidence"
        ax.set(xlabel=f"mean predicted {label}", ylabel="observed rate", title="Calibration", xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="upper left")
        written.append(_save(plt, fig, out / "calibration.png"))
    if model.problem in ("binary", "multiclass"):
        pred = (scores >= threshold).astype(int) if model.problem == "binary" else np.argmax(scores, axis=1)
        k = len(model.labels)
        cm = confusion_matrix(y, pred, k)
        fig, ax = plt.subplots(figsize=(1.2 * k + 2.5, 1.2 * k + 2))
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            # white on the dark cells, black on the light ones: readable whatever the counts
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
        names = [str(c) for c in model.labels]
        ax.set(xticks=range(k), yticks=range(k), xticklabels=names, yticklabels=names)
        at = f" (threshold {threshold:g})" if model.problem == "binary" else ""
        ax.set(xlabel="predicted", ylabel="actual", title=f"Confusion matrix{at}")
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
    *,
    threshold: float | None = None,
    margin: float = DEFAULT_MARGIN,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    champion_model_dir: Path | None = None,
    fairness_max_gap: float | None = None,
) -> dict[str, Any]:
    """Run the step; returns the content of ``evaluation.json``."""
    check_gate_metric(contract.objective, gate_metric)
    with tempfile.TemporaryDirectory() as scratch:
        model = model_fn(str(resolve_model_dir(model_dir, Path(scratch))))
    champion_model = None
    if champion_model_dir is not None and not holds_no_champion(champion_model_dir):
        with tempfile.TemporaryDirectory() as scratch:
            champion_model = model_fn(str(resolve_model_dir(champion_model_dir, Path(scratch))))
    if model.problem != contract.objective:
        raise ValueError(f"model objective {model.problem!r} differs from the contract's {contract.objective!r}")
    test = read_split(test_dir)
    unpaired = None if champion_model is None else incomparable(champion_model, model, test.columns)
    if unpaired is not None:
        LOG.warning("champion model not scored on the test rows: %s", unpaired)
        champion_model = None
    scores = predict_scores(test[model.columns], model)
    y = encode_labels(test[contract.target], model.labels)
    if model.problem != "regression":
        y = y.astype(int)
    k = len(model.labels)
    cut = decision_threshold(model) if model.problem == "binary" else 0.5
    values = compute_metrics(model.problem, y, scores, k, cut)
    base_scores, description = trivial_scores(model, y)
    # The trivial model is the majority-class predictor: its labels at 0.5 (the prior decides them).
    trivial = fast_metrics(model.problem, y, base_scores, k)
    intervals = bootstrap_intervals(model.problem, y, scores, k, resamples, seed, cut)
    paired = None
    champion_values = None
    if champion_model is not None:
        champ_scores = predict_scores(test[champion_model.columns], champion_model)
        champ_cut = decision_threshold(champion_model) if model.problem == "binary" else 0.5
        champion_values = fast_metrics(model.problem, y, champ_scores, k, champ_cut)
        # Compared on the same test rows: the champion's value here, not the one its own run measured on
        # another batch (kept as recorded_value); that one only when the metric is undefined on these rows.
        recorded = champion
        if champion_values[gate_metric] is not None:
            champion = champion_values[gate_metric]
        paired = paired_bootstrap(
            model.problem, y, scores, champ_scores, k, gate_metric, resamples, seed, thresholds=(cut, champ_cut)
        )
    report = evaluation_report(
        model.problem,
        values,
        gate_metric,
        champion,
        len(test),
        intervals=intervals,
        trivial=trivial,
        trivial_description=description,
        threshold=threshold,
        margin=margin,
        paired=paired,
        second_value=second_metric(model.problem, y, scores, k, cut),
    )
    if champion_values is not None:
        report["champion"]["metrics"] = champion_values
        report["champion"]["recorded_value"] = recorded
    if unpaired is not None:
        report["champion"]["unpaired_reason"] = unpaired
    add_fairness(report, model.problem, y, scores, test, contract, cut, fairness_max_gap)
    report["intervals"].update(seed=seed, resamples_requested=resamples)
    report["training"] = {
        key: model.metadata.get(key)
        for key in (
            "hyperparameters",
            "best_iteration",
            "rounds_trained",
            "early_stopping_rounds",
            "validation_metric",
            "train_rows",
            "validation_rows",
            "training_seconds",
            "target_summary",
            "warnings",
            "class_labels",
            "positive_label",
        )
    }
    report["test_summary"] = _test_summary(model, y)
    if model.problem == "binary":
        chosen = model.metadata.get("decision_threshold") or {}
        report["decision_threshold"] = {
            "value": cut,
            "method": chosen.get("method", "default 0.5 (the model records no chosen threshold)"),
            "rule": chosen.get("rule", "default"),
            "positive_label": model.labels[1],
            "validation": {
                k2: chosen[k2]
                for k2 in ("validation_rows", "validation_score", "validation_score_at_0_5", "score_name")
                if k2 in chosen
            },
        }
    if model.problem != "regression":
        pred = (scores >= cut).astype(int) if model.problem == "binary" else np.argmax(scores, axis=1)
        report["per_class"] = per_class(y, pred, model.labels)
        report["confusion_matrix"] = {
            "labels": model.labels,
            "rows_actual_columns_predicted": confusion_matrix(y, pred, k).tolist(),
        }
    report["calibration"] = calibration(y, scores, model.problem)
    report["plots"] = make_plots(model, y, scores, output_dir / "plots", threshold=cut)
    merge_baseline(baseline_dir, contract, output_dir / "baseline")
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "evaluation.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return report


def _test_summary(model: Model, y: np.ndarray) -> dict[str, Any]:
    """Class counts (classification) or target mean/std (regression) of the test split."""
    if model.problem == "regression":
        return {
            "rows": len(y),
            "mean": float(np.mean(y)) if len(y) else None,
            "std": float(np.std(y)) if len(y) else None,
        }
    counts = np.bincount(y, minlength=len(model.labels))
    return {"rows": len(y), "class_counts": {str(lbl): int(c) for lbl, c in zip(model.labels, counts, strict=True)}}


def _optional_float(value: str | None, name: str) -> float | None:
    if value is None or value.strip().lower() in _NONE:
        return None
    try:
        out = float(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite")
    return out


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
    p.add_argument("--gate-threshold", default="", help="the gate threshold (for the reasons in evaluation.json)")
    p.add_argument("--trivial-margin", default=str(DEFAULT_MARGIN), help="required lead over the trivial model")
    p.add_argument("--bootstrap-resamples", type=int, default=DEFAULT_RESAMPLES)
    p.add_argument("--bootstrap-seed", type=int, default=DEFAULT_SEED)
    p.add_argument(
        "--champion-model-dir",
        default="",
        help="the champion's model (model.tar.gz) for a paired comparison, or a folder holding only the "
        "no-champion marker",
    )
    p.add_argument("--fairness-max-gap", default="", help="fail the gate when the worst group gap exceeds this")
    # The model card (model-card.html beside evaluation.json): who, what for, which run and batch.
    p.add_argument("--team", default="", help="the team (the model card's; no card without it)")
    p.add_argument("--execution-id", default="", help="the pipeline execution (the card's lineage)")
    p.add_argument("--input-data-uri", default="", help="the raw batch (the card's lineage)")
    p.add_argument("--card-file", default="", help="card.json: owner, intended_use, description (team config)")
    return p.parse_args(argv)


def read_card_fields(path: str) -> dict[str, str]:
    """``owner``, ``intended_use`` and ``description`` from ``card.json`` (none without ``--card-file``)."""
    if not path:
        return {}
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"--card-file {path}: expected a JSON object with owner, intended_use, description")
    return {k: str(data.get(k) or "") for k in ("owner", "intended_use", "description")}


def write_card(output_dir: Path, report: dict[str, Any], contract: DataContract, args: argparse.Namespace) -> Path:
    """``model-card.html`` beside ``evaluation.json``: the card the pipeline stores with the package it
    registers (the renderer is the local runtime's too: ``model_card.py``)."""
    run = evaluation_card_run(
        report,
        output_dir,
        team=args.team,
        execution_id=args.execution_id,
        contract_spec=json.loads(contract.to_json()),
        card=read_card_fields(args.card_file),
        input_data_uri=args.input_data_uri,
        gate_threshold=_optional_float(args.gate_threshold, "--gate-threshold"),
    )
    return write_report(output_dir / CARD_FILE, run=run)


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
            threshold=_optional_float(args.gate_threshold, "--gate-threshold"),
            margin=_optional_float(args.trivial_margin, "--trivial-margin") or 0.0,
            resamples=args.bootstrap_resamples,
            seed=args.bootstrap_seed,
            champion_model_dir=Path(args.champion_model_dir) if args.champion_model_dir else None,
            fairness_max_gap=_optional_float(args.fairness_max_gap, "--fairness-max-gap"),
        )
        if args.team:
            write_card(Path(args.output_dir), report, contract, args)
    except (ValueError, OSError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    gate = report["gate"]
    LOG.info(
        "%s = %s (champion %s, %s); gate %s: %s",
        gate["metric"],
        gate["value"],
        champion,
        report["champion"]["verdict"],
        "passed" if gate["passed"] else "FAILED",
        gate["summary"],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
