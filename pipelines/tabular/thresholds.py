"""The binary decision threshold (chosen on the validation split), per-class metrics and calibration.

Plain numpy, so that ``train.py`` (which chooses the threshold) and ``evaluate.py`` (which reports the
metrics at it, with the calibration of the scores) run in the framework containers without extras.

Rules for the threshold (``DataContract.decision_threshold``):

``max_f1``   the threshold on a fixed grid (0.01 … 0.99) that maximises F1 of the positive class on the
             **validation** split (never the test split: the test metrics stay an honest estimate);
``youden``   the one maximising Youden's J = TPR - FPR (Youden, *Cancer* 3(1), 1950), i.e. balanced
             accuracy, on the validation split;
a number     that fixed threshold (e.g. ``0.5``).

Ties go to the grid point closest to 0.5. A validation split with one class gives 0.5, said so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_THRESHOLD = 0.5
GRID = np.round(np.arange(1, 100) / 100, 2)
RULES = ("max_f1", "youden")
CALIBRATION_BINS = 10


def _confusion(y: np.ndarray, pred: np.ndarray) -> tuple[int, int, int, int]:
    truth = y == 1
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    return tp, fp, fn, len(y) - tp - fp - fn


def _f1(y: np.ndarray, pred: np.ndarray) -> float:
    tp, fp, fn, _ = _confusion(y, pred)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _youden(y: np.ndarray, pred: np.ndarray) -> float:
    tp, fp, fn, tn = _confusion(y, pred)
    return tp / max(tp + fn, 1) - fp / max(fp + tn, 1)


def choose_threshold(rule: str | float, y: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """``{"value", "rule", "method", "validation_rows", ...}``: the decision threshold and how it was chosen.

    ``y`` holds 0/1 labels and ``scores`` P(positive) of the **validation** split.
    """
    y = np.asarray(y).astype(int)
    scores = np.asarray(scores, dtype=float)
    if not isinstance(rule, str):
        value = float(rule)
        return {
            "value": value,
            "rule": "fixed",
            "method": f"fixed by the contract at {value:g}",
            "validation_rows": len(y),
        }
    if rule not in RULES:
        raise ValueError(f"decision_threshold: expected one of {RULES} or a number in (0, 1), got {rule!r}")
    if len(np.unique(y)) < 2:
        return {
            "value": DEFAULT_THRESHOLD,
            "rule": rule,
            "method": f"default {DEFAULT_THRESHOLD} (the validation split has one class: {rule} is undefined)",
            "validation_rows": len(y),
        }
    score = _f1 if rule == "max_f1" else _youden
    values = np.array([score(y, scores >= t) for t in GRID])
    best = float(values.max())
    candidates = GRID[np.isclose(values, best, rtol=0, atol=1e-12)]
    chosen = float(candidates[np.argmin(np.abs(candidates - DEFAULT_THRESHOLD))])
    name = "F1" if rule == "max_f1" else "Youden's J (TPR - FPR)"
    return {
        "value": chosen,
        "rule": rule,
        "method": f"maximises {name} on the validation split ({len(y)} rows), grid 0.01-0.99",
        "validation_rows": len(y),
        "validation_score": best,
        "validation_score_at_0_5": float(score(y, scores >= DEFAULT_THRESHOLD)),
        "score_name": "f1" if rule == "max_f1" else "youden_j",
    }


def per_class(y: np.ndarray, pred: np.ndarray, labels: list[Any]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support of every class (one-vs-rest), in label order."""
    out = []
    for i, label in enumerate(labels):
        truth, hit = y == i, pred == i
        tp = int(np.count_nonzero(truth & hit))
        support, predicted = int(np.count_nonzero(truth)), int(np.count_nonzero(hit))
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else None
        f1 = 2 * tp / (support + predicted) if support + predicted else 0.0
        out.append(
            {
                "label": label,
                "support": support,
                "predicted": predicted,
                "precision": precision,
                "recall": recall,
                "f1": f1,
            }
        )
    return out


def calibration(y: np.ndarray, scores: np.ndarray, problem: str, bins: int = CALIBRATION_BINS) -> dict[str, Any] | None:
    """Reliability table over ``bins`` equal-width bins of the predicted probability, the expected
    calibration error (ECE: the row-weighted mean |observed - predicted|; Naeini et al., AAAI 2015) and the
    Brier score. Binary: P(positive) vs the positive rate; multiclass: the top-class confidence vs the
    accuracy (Guo et al., ICML 2017). None for regression or no rows."""
    if problem == "regression" or len(y) == 0:
        return None
    y = np.asarray(y).astype(int)
    if problem == "binary":
        p = np.asarray(scores, dtype=float)
        hit = y == 1
        brier = float(np.mean((p - hit) ** 2))
        what = "P(positive) vs the observed positive rate"
    else:
        s = np.asarray(scores, dtype=float)
        p = s.max(axis=1)
        hit = np.argmax(s, axis=1) == y
        onehot = np.eye(s.shape[1])[y]
        brier = float(np.mean(np.sum((s - onehot) ** 2, axis=1)))
        what = "top-class confidence vs the observed accuracy"
    index = np.minimum((p * bins).astype(int), bins - 1)
    table = []
    ece = 0.0
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        if not n:
            continue
        predicted, observed = float(p[mask].mean()), float(hit[mask].mean())
        ece += n / len(y) * abs(observed - predicted)
        table.append({"low": b / bins, "high": (b + 1) / bins, "rows": n, "predicted": predicted, "observed": observed})
    return {"bins": table, "ece": float(ece), "brier": brier, "what": what, "rows": len(y)}
