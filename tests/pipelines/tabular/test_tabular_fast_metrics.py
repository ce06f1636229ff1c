"""The step's numpy metrics (point estimates, second metric, every bootstrap resample, the confusion matrix)
equal scikit-learn's to 1e-12. scikit-learn is the oracle here only: the step does not import it.

Random data with tied scores on every objective, plus the degenerate resamples a bootstrap draws: one class
present, all-equal scores, a constant target, a single row, probabilities at 0 and 1 (log-loss clipping).
"""

from __future__ import annotations

import math
import warnings

import evaluate
import numpy as np
import pytest
from sklearn import metrics as skm

N_CLASSES = 4


def sklearn_point_metrics(
    problem: str, y: np.ndarray, scores: np.ndarray, n_classes: int, threshold: float = 0.5
) -> dict[str, float | None]:
    """What evaluate.compute_metrics reports, by scikit-learn 1.9 (the step's implementation until it dropped
    the import)."""
    if problem == "binary":
        pred = (scores >= threshold).astype(int)
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


def sklearn_metrics(
    problem: str, y: np.ndarray, scores: np.ndarray, n_classes: int, threshold: float = 0.5
) -> dict[str, float | None]:
    """What evaluate.fast_metrics reports: the point metrics and the second metric (balanced accuracy over
    the classes present, or R² with None for a constant target)."""
    values = sklearn_point_metrics(problem, y, scores, n_classes, threshold)
    if problem == "regression":
        values["r2"] = float(skm.r2_score(y, scores)) if len(np.unique(y)) > 1 else None
    else:
        pred = (scores >= threshold).astype(int) if problem == "binary" else np.argmax(scores, axis=1)
        present = np.unique(y)
        values["balanced_accuracy"] = float(skm.recall_score(y, pred, labels=present, average="macro"))
    return values


def _close(got: dict[str, float | None], expected: dict[str, float | None]) -> None:
    assert got.keys() == expected.keys()
    for name, want in expected.items():
        have = got[name]
        if want is None or not math.isfinite(want):
            assert have is None or not math.isfinite(have), (name, have, want)
        else:
            assert have is not None and abs(have - want) <= 1e-12, (name, have, want)


def _same(problem: str, y: np.ndarray, scores: np.ndarray, n_classes: int, threshold: float = 0.5) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = sklearn_metrics(problem, y, scores, n_classes, threshold)
        point = sklearn_point_metrics(problem, y, scores, n_classes, threshold)
        got_point = evaluate.compute_metrics(problem, y, scores, n_classes, threshold)
    _close(evaluate.fast_metrics(problem, y, scores, n_classes, threshold), expected)
    _close(got_point, point)
    second = evaluate.second_metric(problem, y, scores, n_classes, threshold)
    _close({"second": second}, {"second": expected[evaluate.SECOND_METRIC[problem]]})
    if problem != "regression":
        pred = (scores >= threshold).astype(int) if problem == "binary" else np.argmax(scores, axis=1)
        k = max(n_classes, 2)
        want = skm.confusion_matrix(y, pred, labels=list(range(k)))
        assert np.array_equal(evaluate.confusion_matrix(y, pred, k), want)


def _binary_cases(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    n = 500
    y = rng.integers(0, 2, n)
    tied = np.round(np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1), 2)  # many ties, some exactly 0.5
    return [
        (y, tied),
        (y, rng.random(n)),
        (y, np.full(n, 0.5)),  # all-equal scores: AUC 0.5, everything predicted positive
        (y, np.full(n, 0.2)),  # all-equal, everything predicted negative: precision/recall/f1 zero_division
        (np.zeros(n, dtype=int), tied),  # one class present: AUC / PR-AUC undefined
        (np.ones(n, dtype=int), tied),
        (y, y.astype(float)),  # perfect, probabilities at exactly 0 and 1 (clipped)
        (y, 1.0 - y),  # perfectly wrong
        (y[:1], tied[:1]),
    ]


@pytest.mark.parametrize("seed", range(5))
def test_binary_fast_metrics_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for y, scores in _binary_cases(rng):
        _same("binary", y, scores, 2)
        idx = rng.integers(0, len(y), len(y))  # a bootstrap resample
        _same("binary", y[idx], scores[idx], 2)
        for cut in (0.26, 0.7):  # a decision threshold chosen on validation: same labels on both paths
            _same("binary", y, scores, 2, cut)
            _same("binary", y[idx], scores[idx], 2, cut)


@pytest.mark.parametrize("seed", range(5))
def test_multiclass_fast_metrics_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    y = rng.integers(0, N_CLASSES, n)
    proba = rng.dirichlet(np.ones(N_CLASSES), n)
    rounded = np.round(proba, 1)
    rounded /= rounded.sum(axis=1, keepdims=True)  # ties in argmax
    onehot = np.eye(N_CLASSES)[y]  # probabilities at 0 and 1
    cases = [
        (y, proba),
        (y, rounded),
        (y, np.full((n, N_CLASSES), 1.0 / N_CLASSES)),  # all-equal: argmax is class 0
        (np.full(n, 2), proba),  # one class present, other labels get f1 0
        (y % 2, proba),  # classes 2 and 3 absent from y
        (y, onehot),
        (y, onehot[:, ::-1].copy()),
        (y[:1], proba[:1]),
    ]
    for yy, p in cases:
        _same("multiclass", yy, p, N_CLASSES)
        idx = rng.integers(0, len(yy), len(yy))
        _same("multiclass", yy[idx], p[idx], N_CLASSES)


@pytest.mark.parametrize("seed", range(5))
def test_regression_fast_metrics_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    y = np.round(rng.normal(10, 3, n), 1)  # tied targets
    cases = [
        (y, y + rng.normal(0, 1, n)),
        (y, y.copy()),  # perfect
        (y, np.full(n, y.mean())),
        (np.full(n, 4.0), rng.normal(4, 1, n)),  # constant target: r2 undefined
        (np.full(n, 4.0), np.full(n, 4.0)),
        (y[:1], y[:1] + 1),
        (y[:2], y[:2][::-1].copy()),
    ]
    for yy, s in cases:
        _same("regression", yy, s, 0)
        idx = rng.integers(0, len(yy), len(yy))
        _same("regression", yy[idx], s[idx], 0)


def test_bootstrap_uses_the_fast_path_with_sklearn_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """The intervals with the fast path equal those computed with sklearn on every resample."""
    rng = np.random.default_rng(3)
    n = 600
    y = rng.integers(0, 2, n)
    scores = np.round(np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1), 2)
    other = np.round(rng.random(n), 2)
    fast = evaluate.bootstrap_intervals("binary", y, scores, 2, 120, seed=5)
    fast_paired = evaluate.paired_bootstrap("binary", y, scores, other, 2, "auc", 120, seed=5)

    def sklearn_on_the_resample(problem, y, scores, idx, n_classes, threshold, ranking):
        return sklearn_metrics(problem, y[idx], scores[idx], n_classes, threshold)

    monkeypatch.setattr(evaluate, "resample_metrics", sklearn_on_the_resample)
    slow = evaluate.bootstrap_intervals("binary", y, scores, 2, 120, seed=5)
    slow_paired = evaluate.paired_bootstrap("binary", y, scores, other, 2, "auc", 120, seed=5)
    assert fast.keys() == slow.keys()
    for name in slow:
        assert fast[name]["resamples"] == slow[name]["resamples"]
        for key in ("low", "high", "std"):
            assert fast[name][key] == pytest.approx(slow[name][key], abs=1e-12)
    for key in ("low", "high", "share_worse", "difference"):
        assert fast_paired[key] == pytest.approx(slow_paired[key], abs=1e-12)
    assert fast_paired["resamples"] == slow_paired["resamples"]


@pytest.mark.parametrize("seed", range(4))
def test_a_ranking_gives_each_resample_the_auc_and_ap_of_sorting_it(seed: int) -> None:
    """The sort-once path (Ranking.auc_ap on the resample's row counts) adds the same terms in the same order
    as sorting the resample: equal to the last bit, ties and rows drawn zero or many times included."""
    rng = np.random.default_rng(seed)
    for y, scores in [*_binary_cases(rng)[:4], (rng.integers(0, 2, 50), np.round(rng.random(50), 1))]:
        ranking = evaluate.Ranking.of(y, scores)
        for _ in range(20):
            idx = rng.integers(0, len(y), len(y))
            if 0 < y[idx].sum() < len(idx):
                assert ranking.auc_ap(idx) == evaluate._fast_auc_ap(y[idx], scores[idx])
