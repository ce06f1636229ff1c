"""Baseline statistics of the curated feature columns: per host, merged, and compared for drift.

Each preprocessing host writes :func:`host_statistics` of its training rows (``baseline/``). The parts
are *mergeable* without a second pass over the data: numeric columns keep count/mean/M2 (Chan et al.'s
parallel variance) and a log-bucket quantile sketch (DDSketch-style, relative accuracy
:data:`SKETCH_ACCURACY`, no global range needed); categorical columns keep exact counts. The evaluation
step merges the parts (:func:`merge_statistics`) into SageMaker-Model-Monitor-like ``statistics.json``
and ``constraints.json``, and :func:`drift_report` compares a batch of feature rows (the same columns
an inference request carries) with ``statistics.json``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from contract import DataContract
from features import ServingColumn, encode_column, serving_columns

SKETCH_ACCURACY = 0.01
DISTRIBUTION_BUCKETS = 10
PSI_THRESHOLD = 0.2  # common rule of thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2 significant shift
UNSEEN_THRESHOLD = 0.05
MAX_PSI_CATEGORIES = 20
_GAMMA = (1 + SKETCH_ACCURACY) / (1 - SKETCH_ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
_ZERO = 1e-9
_EPS = 1e-4  # floor of a bucket share in PSI, so that an empty bucket does not give log(0)


# --- per host ----------------------------------------------------------------------------------------


def baseline_values(values: pd.Series, sc: ServingColumn, reference_date: str) -> pd.Series | np.ndarray:
    """The values a statistic describes: categories, or floats for numeric/date columns.

    Booleans become ``"true"``/``"false"`` whatever their spelling, so a request's ``1`` and the
    baseline's ``True`` land in the same category.
    """
    if sc.kind == "bool":
        num = encode_column(values, sc, reference_date)
        out = np.full(len(num), None, dtype=object)
        out[num == 1.0] = "true"
        out[num == 0.0] = "false"
        return out
    if sc.is_categorical:
        return values  # counted as is; keys become text in :func:`category_counts`
    return encode_column(values, sc, reference_date)


def category_counts(values: pd.Series | np.ndarray) -> tuple[dict[str, int], int]:
    """Counts per category (keys as text, sorted) and the number of missing values."""
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    out: dict[str, int] = {}
    for key, count in series.value_counts(dropna=True).items():
        out[str(key)] = out.get(str(key), 0) + int(count)  # 1 and "1" are one category
    return dict(sorted(out.items())), len(series) - sum(out.values())


def column_statistics(values: pd.Series | np.ndarray, categorical: bool) -> dict[str, Any]:
    """Mergeable statistics of one column."""
    if categorical:
        cats, nulls = category_counts(values)
        return {"kind": "categorical", "count": sum(cats.values()), "nulls": nulls, "categories": cats}
    arr = np.asarray(values, dtype="float64")
    present = arr[~np.isnan(arr)]
    n = int(present.size)
    return {
        "kind": "numeric",
        "count": n,
        "nulls": int(arr.size - n),
        "mean": float(present.mean()) if n else 0.0,
        "m2": float(((present - present.mean()) ** 2).sum()) if n else 0.0,
        "min": float(present.min()) if n else None,
        "max": float(present.max()) if n else None,
        "sketch": _sketch(present),
    }


def host_statistics(frame: pd.DataFrame, contract: DataContract, host: str) -> dict[str, Any]:
    """Statistics of one host's curated training rows (serving columns and target)."""
    cols: dict[str, Any] = {}
    for sc in serving_columns(contract):
        cols[sc.name] = column_statistics(
            baseline_values(frame[sc.name], sc, contract.reference_date), sc.is_categorical
        )
    target = frame[contract.target]
    target_values: pd.Series | np.ndarray
    if contract.objective == "regression":
        target_values = pd.to_numeric(target, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    else:
        target_values = target
    cols[contract.target] = column_statistics(target_values, contract.objective != "regression")
    return {"version": 1, "host": host, "rows": len(frame), "columns": cols}


def table_statistics(table: Any, contract: DataContract, host: str) -> dict[str, Any]:
    """:func:`host_statistics` of an Arrow table of curated rows, counted with Arrow kernels.

    The same result as ``host_statistics(table.to_pandas(), ...)`` (tested), without converting the
    columns to pandas: categories of string, integer and bool columns are ``pyarrow.compute.value_counts``
    (which runs without the GIL, so the streaming step computes it on its writer thread), numeric columns
    are read as float64 once. Other types (dates) go through :func:`baseline_values` as before.
    """
    cols: dict[str, Any] = {}
    for sc in serving_columns(contract):
        cols[sc.name] = _arrow_column_statistics(table.column(sc.name), sc, sc.is_categorical, contract.reference_date)
    target = table.column(contract.target)
    if contract.objective == "regression":
        cols[contract.target] = _arrow_column_statistics(target, None, False, contract.reference_date)
    else:
        cols[contract.target] = _arrow_column_statistics(target, None, True, contract.reference_date)
    return {"version": 1, "host": host, "rows": table.num_rows, "columns": cols}


def _arrow_column_statistics(
    column: Any, sc: ServingColumn | None, categorical: bool, reference_date: str
) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if categorical and (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_boolean(kind)
    ):
        counted = pc.value_counts(column.drop_null())
        keys = counted.field("values").to_pylist()
        numbers = counted.field("counts").to_pylist()
        if sc is not None and sc.kind == "bool":  # spelled "true"/"false", as baseline_values does
            keys = ["true" if k else "false" for k in keys]
        cats: dict[str, int] = {}
        for key, count in zip(keys, numbers, strict=True):
            cats[str(key)] = cats.get(str(key), 0) + int(count)  # 1 and "1" are one category
        cats = dict(sorted(cats.items()))
        return {
            "kind": "categorical",
            "count": sum(cats.values()),
            "nulls": len(column) - sum(cats.values()),
            "categories": cats,
        }
    numeric = sc is None or sc.kind == "numeric"
    if not categorical and numeric and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        arr = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        if sc is None or not np.isinf(arr).any():  # an infinite feature: encode_column's error, below
            return column_statistics(arr, False)
    values = column.to_pandas()
    if sc is None:  # the target
        if categorical:
            return column_statistics(values, True)
        return column_statistics(
            pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan), False
        )
    return column_statistics(baseline_values(values, sc, reference_date), categorical)


def _sketch(values: np.ndarray) -> dict[str, Any]:
    """Log-bucket counts: bucket ``i`` holds ``|x|`` in (gamma^(i-1), gamma^i]; tiny values are zero."""
    mags = np.abs(values)
    zero = mags <= _ZERO
    idx = np.ceil(np.log(np.where(zero, 1.0, mags)) / _LOG_GAMMA).astype(np.int64)

    def counts(mask: np.ndarray) -> dict[str, int]:
        keys, cnt = np.unique(idx[mask], return_counts=True)
        return {str(int(k)): int(c) for k, c in zip(keys, cnt, strict=True)}

    return {"zero": int(zero.sum()), "pos": counts(~zero & (values > 0)), "neg": counts(~zero & (values < 0))}


# --- merge -------------------------------------------------------------------------------------------


def merge_column(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the statistics of one column from several hosts (exact for counts, mean and variance)."""
    kind = parts[0]["kind"]
    if kind == "categorical":
        cats: dict[str, int] = {}
        for p in parts:
            for k, v in p["categories"].items():
                cats[k] = cats.get(k, 0) + v
        return {
            "kind": kind,
            "count": sum(p["count"] for p in parts),
            "nulls": sum(p["nulls"] for p in parts),
            "categories": dict(sorted(cats.items())),
        }
    n, mean, m2 = 0, 0.0, 0.0
    for p in parts:
        if not p["count"]:
            continue
        nb = p["count"]
        delta = p["mean"] - mean
        total = n + nb
        mean += delta * nb / total
        m2 += p["m2"] + delta**2 * n * nb / total
        n = total
    mins = [p["min"] for p in parts if p["min"] is not None]
    maxs = [p["max"] for p in parts if p["max"] is not None]
    sketch: dict[str, Any] = {"zero": 0, "pos": {}, "neg": {}}
    for p in parts:
        sketch["zero"] += p["sketch"]["zero"]
        for sign in ("pos", "neg"):
            for k, v in p["sketch"][sign].items():
                sketch[sign][k] = sketch[sign].get(k, 0) + v
    return {
        "kind": kind,
        "count": n,
        "nulls": sum(p["nulls"] for p in parts),
        "mean": mean,
        "m2": m2,
        "min": min(mins) if mins else None,
        "max": max(maxs) if maxs else None,
        "sketch": sketch,
    }


def _sketch_buckets(sketch: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sketch buckets in value order: upper boundary, representative value and count of each.

    Drift buckets are cut at these boundaries, so a batch value falls in the same bucket as the
    baseline values of its sketch bucket (representative values would split ties of discrete data).
    """
    rows: list[tuple[float, float, int]] = []
    for k, c in sketch["neg"].items():  # |x| in (g^(k-1), g^k]  ->  x in [-g^k, -g^(k-1))
        rows.append((-(_GAMMA ** (int(k) - 1)), -2 * _GAMMA ** int(k) / (_GAMMA + 1), c))
    if sketch["zero"]:
        rows.append((_ZERO, 0.0, sketch["zero"]))
    for k, c in sketch["pos"].items():
        rows.append((_GAMMA ** int(k), 2 * _GAMMA ** int(k) / (_GAMMA + 1), c))
    rows.sort()
    arr = np.asarray(rows, dtype="float64").reshape(-1, 3)
    return arr[:, 0], arr[:, 1], arr[:, 2]


def quantiles(stats: dict[str, Any], qs: Iterable[float]) -> list[float]:
    """Approximate quantiles of a merged numeric column from its sketch, clipped to [min, max]."""
    _, reps, cnts = _sketch_buckets(stats["sketch"])
    if not cnts.size:
        return []
    cum = np.cumsum(cnts) / cnts.sum()
    out = []
    for q in qs:
        v = float(reps[min(int(np.searchsorted(cum, q - 1e-12, side="left")), len(reps) - 1)])
        out.append(min(max(v, stats["min"]), stats["max"]))
    return out


def _distribution_edges(stats: dict[str, Any]) -> list[float]:
    """Inner edges (sketch boundaries) of up to :data:`DISTRIBUTION_BUCKETS` equal-frequency buckets."""
    bounds, _, cnts = _sketch_buckets(stats["sketch"])
    if not cnts.size:
        return []
    cum = np.cumsum(cnts) / cnts.sum()
    picks = {
        int(np.searchsorted(cum, i / DISTRIBUTION_BUCKETS - 1e-12, side="left")) for i in range(1, DISTRIBUTION_BUCKETS)
    }
    return [float(bounds[i]) for i in sorted(picks) if i < len(bounds) - 1]


def _bucket_shares(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Share of values per bucket ``(-inf, e1], (e1, e2], ..., (ek, inf)``."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(counts.sum(), 1)


def _sketch_bucket_shares(stats: dict[str, Any], edges: list[float]) -> np.ndarray:
    bounds, _, cnts = _sketch_buckets(stats["sketch"])
    counts = np.bincount(np.searchsorted(edges, bounds, side="left"), weights=cnts, minlength=len(edges) + 1)
    return counts / max(counts.sum(), 1.0)


def merge_statistics(parts: list[dict[str, Any]], contract: DataContract) -> dict[str, Any]:
    """Merge host parts into Model-Monitor-like ``statistics.json`` (plus our mergeable ``sketch``)."""
    if not parts:
        raise ValueError("no baseline statistics to merge")
    names = [sc.name for sc in serving_columns(contract)] + [contract.target]
    features = []
    for name in names:
        col = merge_column([p["columns"][name] for p in parts])
        spec_dtype = _inferred_type(name, col, contract)
        common = {"num_present": col["count"], "num_missing": col["nulls"]}
        entry: dict[str, Any] = {"name": name, "inferred_type": spec_dtype, "role": _role(name, contract)}
        if col["kind"] == "categorical":
            entry["string_statistics"] = {
                "common": common,
                "distinct_count": len(col["categories"]),
                "distribution": {
                    "categorical": {"buckets": [{"value": k, "count": v} for k, v in col["categories"].items()]}
                },
            }
        else:
            n = col["count"]
            edges = _distribution_edges(col) if n else []
            shares = _sketch_bucket_shares(col, edges) if n else np.array([])
            bounds = [col["min"], *edges, col["max"]]
            entry["numerical_statistics"] = {
                "common": common,
                "mean": col["mean"] if n else None,
                "sum": col["mean"] * n if n else 0.0,
                "std_dev": math.sqrt(col["m2"] / n) if n else None,
                "min": col["min"],
                "max": col["max"],
                "distribution": {
                    "kll": {
                        "buckets": [
                            {"lower_bound": bounds[i], "upper_bound": bounds[i + 1], "count": float(s * n)}
                            for i, s in enumerate(shares)
                        ],
                        "quantiles": dict(
                            zip(
                                ("p01", "p05", "p25", "p50", "p75", "p95", "p99"),
                                quantiles(col, [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]),
                                strict=False,
                            )
                        ),
                    }
                },
                "sketch": {"relative_accuracy": SKETCH_ACCURACY, **col["sketch"], "m2": col["m2"]},
            }
        features.append(entry)
    rows = sum(p["rows"] for p in parts)
    return {"version": 0.0, "dataset": {"item_count": rows, "hosts": len(parts)}, "features": features}


def _role(name: str, contract: DataContract) -> str:
    return "target" if name == contract.target else "feature"


def _inferred_type(name: str, col: dict[str, Any], contract: DataContract) -> str:
    if col["kind"] == "categorical":
        return "String"
    if name == contract.target:
        return "Fractional"
    sc = next(c for c in serving_columns(contract) if c.name == name)
    spec = contract.column(sc.source)
    return "Integral" if spec.dtype in ("int", "date") or sc.source != sc.name else "Fractional"


def constraints(statistics: dict[str, Any], contract: DataContract) -> dict[str, Any]:
    """Model-Monitor-like ``constraints.json``: types, completeness, ranges and category domains."""
    by_name = {sc.name: sc for sc in serving_columns(contract)}
    out = []
    for feat in statistics["features"]:
        name = feat["name"]
        sc = by_name.get(name)
        spec = contract.column(sc.source if sc else name)
        stats = feat.get("numerical_statistics") or feat["string_statistics"]
        common = stats["common"]
        total = common["num_present"] + common["num_missing"]
        entry: dict[str, Any] = {
            "name": name,
            "inferred_type": feat["inferred_type"],
            # A non-nullable column must be complete whatever the baseline saw.
            "completeness": 1.0 if not spec.nullable else (common["num_present"] / total if total else 1.0),
        }
        if "numerical_statistics" in feat:
            direct = sc is not None and sc.source == sc.name
            entry["num_constraints"] = {
                "is_non_negative": (stats["min"] is not None and stats["min"] >= 0),
                "min": spec.min if direct and spec.min is not None else stats["min"],
                "max": spec.max if direct and spec.max is not None else stats["max"],
            }
        else:
            domain = (
                list(sc.categories)
                if sc and sc.categories
                else [b["value"] for b in stats["distribution"]["categorical"]["buckets"]]
            )
            entry["string_constraints"] = {"domains": domain, "closed_domain": bool(sc and sc.categories)}
        out.append(entry)
    return {
        "version": 0.0,
        "features": out,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_method": "PSI",
                "comparison_threshold": PSI_THRESHOLD,
                "unseen_category_threshold": UNSEEN_THRESHOLD,
            },
        },
    }


# --- drift -------------------------------------------------------------------------------------------


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same buckets."""
    e = np.maximum(np.asarray(expected, dtype="float64"), _EPS)
    a = np.maximum(np.asarray(actual, dtype="float64"), _EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def drift_report(
    rows: pd.DataFrame,
    statistics: dict[str, Any],
    contract: DataContract,
    *,
    psi_threshold: float = PSI_THRESHOLD,
    unseen_threshold: float = UNSEEN_THRESHOLD,
) -> dict[str, Any]:
    """Compare a batch of feature rows (serving columns) with ``statistics.json``, per feature.

    Numeric features: PSI over the baseline's equal-frequency buckets. Categorical features: PSI over
    the :data:`MAX_PSI_CATEGORIES` most frequent baseline categories plus one bucket for everything
    else, and the share of values the baseline never saw. Both: the missing share in the batch vs.
    the baseline. A feature drifts when PSI exceeds ``psi_threshold``, or, for a closed vocabulary
    (contract categories, booleans, age bands), when the unseen share exceeds ``unseen_threshold``.
    """
    by_name = {sc.name: sc for sc in serving_columns(contract)}
    report: dict[str, Any] = {}
    for feat in statistics["features"]:
        name = feat["name"]
        sc = by_name.get(name)
        if sc is None or name not in rows.columns:
            continue
        values = baseline_values(rows[name], sc, contract.reference_date)
        if "numerical_statistics" in feat:
            stats = feat["numerical_statistics"]
            buckets = stats["distribution"]["kll"]["buckets"]
            edges = [b["upper_bound"] for b in buckets[:-1]]
            base = np.array([b["count"] for b in buckets], dtype="float64")
            arr = np.asarray(values, dtype="float64")
            present = arr[~np.isnan(arr)]
            value = psi(base / max(base.sum(), 1.0), _bucket_shares(present, edges)) if present.size else 0.0
            entry: dict[str, Any] = {"type": "numeric", "psi": value}
            n_missing, n_total = int(arr.size - present.size), int(arr.size)
        else:
            stats = feat["string_statistics"]
            cats = {b["value"]: b["count"] for b in stats["distribution"]["categorical"]["buckets"]}
            counts, n_missing = category_counts(values)
            n_present = sum(counts.values())
            # PSI over the most frequent baseline categories plus one "other" bucket (the rest and
            # unseen values): thousands of sparse buckets (postcode prefixes) would measure noise.
            top = sorted(cats.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_PSI_CATEGORIES]
            seen_top = [int(counts.get(k, 0)) for k, _ in top]
            base = np.array([c for _, c in top] + [sum(cats.values()) - sum(c for _, c in top)], dtype="float64")
            batch = np.array([*seen_top, n_present - sum(seen_top)], dtype="float64")
            value = psi(base / max(base.sum(), 1.0), batch / max(batch.sum(), 1.0)) if n_present else 0.0
            unseen = n_present - sum(int(counts.get(k, 0)) for k in cats)
            share = unseen / n_present if n_present else 0.0
            # New values are expected in an open vocabulary (hashed columns): only PSI judges those.
            closed = sc.kind != "hashed"
            entry = {"type": "categorical", "psi": value, "unseen_share": share, "closed_domain": closed}
            n_total = n_present + n_missing
        common = stats["common"]
        base_total = common["num_present"] + common["num_missing"]
        entry["baseline_missing_share"] = common["num_missing"] / base_total if base_total else 0.0
        entry["batch_missing_share"] = n_missing / n_total if n_total else 0.0
        unseen_drift = entry.get("closed_domain", False) and entry["unseen_share"] > unseen_threshold
        entry["drifted"] = bool(entry["psi"] > psi_threshold or unseen_drift)
        report[name] = entry
    drifted = sorted(k for k, v in report.items() if v["drifted"])
    return {"rows": len(rows), "features": report, "drifted_features": drifted, "drift": bool(drifted)}
