"""Per-group metrics and the usual gaps between groups of a ``protected`` column (numpy only).

Definitions (for a binary classifier with predicted label ŷ and true label y, per group g):

- selection rate ``P(ŷ=1 | g)``; the **selection-rate ratio** (disparate impact) is the lowest group's rate
  divided by the highest's — the "four-fifths rule" flags a ratio below 0.8 (US EEOC, *Uniform Guidelines on
  Employee Selection Procedures*, 29 CFR 1607.4(D), 1978; Feldman et al., "Certifying and removing disparate
  impact", KDD 2015);
- true-positive rate ``P(ŷ=1 | y=1, g)`` and false-positive rate ``P(ŷ=1 | y=0, g)``; the **TPR difference**
  (equal opportunity) and **FPR difference** are the largest minus the smallest over groups; both at 0 is
  *equalized odds* (Hardt, Price & Srebro, "Equality of Opportunity in Supervised Learning", NeurIPS 2016);
- multiclass: per-group accuracy and its gap; regression: per-group MAE, RMSE and mean residual
  (actual - predicted), and the MAE gap.

Groups with fewer than ``MIN_GROUP_ROWS`` test rows are reported but left out of the gaps (their rates are
noise); a rate undefined in a group (no positives for TPR) is ``None`` and left out too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

MIN_GROUP_ROWS = 10
_MISSING = "(missing)"


def _rate(mask: np.ndarray, of: np.ndarray) -> float | None:
    return float(np.mean(mask[of])) if np.any(of) else None


def _spread(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return max(defined) - min(defined) if len(defined) >= 2 else None


def group_metrics(
    problem: str, y: np.ndarray, scores: np.ndarray, groups: pd.Series, threshold: float = 0.5
) -> dict[str, Any]:
    """Per-group figures and gaps for one protected column (``groups``: its value per test row); binary
    labels are ``P(positive) >= threshold`` (the model's decision threshold)."""
    labels = groups.astype(object).where(groups.notna(), _MISSING).astype(str).to_numpy()
    if problem == "binary":
        pred = (scores >= threshold).astype(int)
    elif problem == "multiclass":
        pred = np.argmax(scores, axis=1)
    else:
        pred = scores
    per_group: dict[str, dict[str, Any]] = {}
    for g in sorted(set(labels)):
        m = labels == g
        entry: dict[str, Any] = {"rows": int(m.sum())}
        if problem == "binary":
            entry["base_rate"] = float(np.mean(y[m]))
            entry["selection_rate"] = float(np.mean(pred[m]))
            entry["tpr"] = _rate(pred[m] == 1, y[m] == 1)
            entry["fpr"] = _rate(pred[m] == 1, y[m] == 0)
            entry["accuracy"] = float(np.mean(pred[m] == y[m]))
        elif problem == "multiclass":
            entry["accuracy"] = float(np.mean(pred[m] == y[m]))
        else:
            residual = y[m] - pred[m]
            entry["mae"] = float(np.mean(np.abs(residual)))
            entry["rmse"] = float(np.sqrt(np.mean(residual**2)))
            entry["mean_residual"] = float(np.mean(residual))
        per_group[g] = entry
    counted = [e for e in per_group.values() if e["rows"] >= MIN_GROUP_ROWS]
    gaps: dict[str, float | None]
    if problem == "binary":
        rates = [e["selection_rate"] for e in counted]
        top = max(rates) if rates else 0.0
        gaps = {
            "selection_rate_ratio": (min(rates) / top) if len(rates) >= 2 and top > 0 else None,
            "selection_rate_difference": _spread(list(rates)),
            "tpr_difference": _spread([e["tpr"] for e in counted]),
            "fpr_difference": _spread([e["fpr"] for e in counted]),
        }
    elif problem == "multiclass":
        gaps = {"accuracy_difference": _spread([e["accuracy"] for e in counted])}
    else:
        gaps = {"mae_difference": _spread([e["mae"] for e in counted])}
    return {"groups": per_group, "gaps": gaps, "min_group_rows": MIN_GROUP_ROWS}


def worst_gap(problem: str, report: dict[str, Any]) -> tuple[str, float] | None:
    """The gap an optional fairness gate checks: the selection-rate ratio's shortfall from 1 (binary), else the
    largest difference; ``(name, value)`` with larger meaning worse, or None when nothing was measurable."""
    worst: tuple[str, float] | None = None
    for column, result in report.items():
        for name, value in result["gaps"].items():
            if value is None or name == "selection_rate_difference":
                continue
            badness = 1.0 - value if name == "selection_rate_ratio" else value
            if worst is None or badness > worst[1]:
                worst = (f"{column}.{name}", badness)
    return worst
