"""Flywheel's drift monitor: a window of captured requests against the baseline registered with the model.

One self-contained module (standard library, numpy, pandas, scipy: what the SageMaker scikit-learn
image ships), run as a network-isolated processing job by the monitor schedule and in-process by
``flywheel monitor``. It imports nothing of Flywheel, so the job ships no Flywheel runtime.

Inputs
    the baseline ``statistics.json`` (and optionally ``constraints.json``) the evaluation step registers
    with a model package (``DriftCheckBaselines.ModelDataQuality``; format: ``pipelines/tabular/baseline.py``:
    per feature exact counts, missing counts, mean/std/min/max and a mergeable log-bucket sketch of
    relative accuracy ``relative_accuracy``, or exact category counts);
    a window of data capture (SageMaker's JSON-lines format: ``captureData.endpointInput`` with a CSV or
    JSON body; CSV rows carry the features positionally, in the baseline's feature order).

Per-column tests (Evidently's defaults, pinned here; ``n`` = the reference column's present values,
``k`` = distinct values of reference and window together)

    =========================  ======================  ==================================  =========
    column                     reference n <= 1000     reference n > 1000                  drift when
    =========================  ======================  ==================================  =========
    numeric, k > 5             Kolmogorov-Smirnov      Wasserstein / reference std         p <= 0.05
                               (``ks_2samp``)          (``wasserstein_distance``)          d >= 0.1
    numeric k <= 5 or          chi-square (k > 2),     Jensen-Shannon distance             p < 0.05
    categorical                two-proportion z (k<=2) (``jensenshannon``, natural log)    d >= 0.1
    =========================  ======================  ==================================  =========

    PSI (30 bins / categories, threshold 0.1) replaces the test for every column when ``psi=True``.
    The dataset drifts when at least half of the compared columns drift.

Numeric values are compared at the resolution the baseline keeps: each window value is snapped to its
sketch bucket's representative value (relative accuracy 1 %), exactly as the reference is, so an
unchanged distribution compares equal. Missing values are left out of the tests (as Evidently does) and
judged on their own.

Further findings (each names its column): a column of the baseline missing from the window, a column the
baseline does not have, a numeric column whose values are mostly not numbers (retyped), a column with
every value missing, a missing-value share up by more than :data:`MISSING_SHARE_INCREASE`, categories the
baseline never saw. A window with fewer rows than ``min_rows`` is ``not_enough_data``: no test runs and
the verdict is neither drift nor a pass.

``python3 drift.py --baseline-dir B --capture-dir C --output-dir O`` writes ``O/report.json`` (the full
report) and ``O/metrics.json`` (CloudWatch ``PutMetricData`` input the schedule publishes).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

#: Reference columns with at most this many present values get the hypothesis tests (p-values).
SMALL_REFERENCE_ROWS: Final = 1000
#: p-value below which (KS: at or below which) a column drifts.
P_VALUE_THRESHOLD: Final = 0.05
#: Normed Wasserstein and Jensen-Shannon distance at or above which a column drifts.
DISTANCE_THRESHOLD: Final = 0.1
#: PSI (opt-in) at or above which a column drifts, and its number of numeric bins.
PSI_THRESHOLD: Final = 0.1
PSI_BINS: Final = 30
#: Numeric columns with at most this many distinct values are compared as categories.
LOW_CARDINALITY: Final = 5
#: The dataset drifts when at least this share of the compared columns drifts.
DATASET_DRIFT_SHARE: Final = 0.5
#: A column's missing-value share rising by more than this (absolute) is a finding.
MISSING_SHARE_INCREASE: Final = 0.1
#: A numeric column whose present values are at least this share non-numbers has been retyped.
RETYPED_SHARE: Final = 0.5
#: Fewest window rows that give a verdict (config: ``drift.min_rows``).
DEFAULT_MIN_ROWS: Final = 100
#: Floor of the reference standard deviation that norms the Wasserstein distance (Evidently's 0.001).
NORM_FLOOR: Final = 0.001
#: Relative accuracy of the baseline sketch when statistics do not say (pipelines/tabular/baseline.py).
DEFAULT_RELATIVE_ACCURACY: Final = 0.01
#: A numeric column whose sketch buckets near its mean are wider than its std / this is measured coarsely:
#: e.g. calendar years (2020 ± 2) in 1 %-relative buckets (± 20 years); reported as a finding.
MIN_RESOLUTION: Final = 4
#: Values at most this far from zero fall in the sketch's zero bucket (as in the baseline).
ZERO: Final = 1e-9
#: Categorical columns with more baseline categories than this (open vocabularies: postcode prefixes) are
#: tested on their most frequent ones plus one bucket for the rest: thousands of sparse categories would
#: measure sampling noise (a deviation from Evidently, which tests every category).
MAX_CATEGORIES: Final = 20
#: The bucket of the categories beyond :data:`MAX_CATEGORIES` (and unseen ones) in such a column.
OTHER: Final = "\x00other"
#: New categories listed in a finding (the count is always complete).
MAX_LISTED: Final = 10
#: The CloudWatch namespace and dimensions of the monitor's metrics.
METRICS_NAMESPACE: Final = "Flywheel/Drift"
NOT_ENOUGH_DATA: Final = "not_enough_data"
DRIFT: Final = "drift"
NO_DRIFT: Final = "no_drift"
_TRUE: Final = frozenset({"true", "1", "1.0", "t", "yes"})
_FALSE: Final = frozenset({"false", "0", "0.0", "f", "no"})


class MonitorInputError(ValueError):
    """The baseline or the capture cannot be read; the message names the input and the fix."""


@dataclass(frozen=True)
class MonitorSettings:
    """What a run compares with which thresholds (defaults: the pinned constants above)."""

    min_rows: int = DEFAULT_MIN_ROWS
    psi: bool = False

    def __post_init__(self) -> None:
        if self.min_rows < 1:
            raise MonitorInputError(f"min_rows must be at least 1, got {self.min_rows}")


# --- the reference ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnReference:
    """One baseline column: ``numeric`` (sketch values and weights, exact std) or ``categorical`` (counts)."""

    name: str
    kind: str
    present: int
    missing: int
    values: np.ndarray = field(default_factory=lambda: np.empty(0))
    weights: np.ndarray = field(default_factory=lambda: np.empty(0))
    std: float = 0.0
    minimum: float | None = None
    maximum: float | None = None
    gamma: float = (1 + DEFAULT_RELATIVE_ACCURACY) / (1 - DEFAULT_RELATIVE_ACCURACY)
    categories: Mapping[str, int] = field(default_factory=dict)
    closed_domain: bool = True

    @property
    def missing_share(self) -> float:
        total = self.present + self.missing
        return self.missing / total if total else 0.0

    @property
    def resolution(self) -> float:
        """The column's std over the width of the sketch bucket at its mean (how finely drift is seen)."""
        if self.kind != "numeric" or not self.weights.size:
            return math.inf
        mean = abs(float(np.average(self.values, weights=self.weights)))
        width = mean * (self.gamma - 1)
        return math.inf if width <= ZERO else self.std / width

    @property
    def boolean(self) -> bool:
        return bool(self.categories) and set(self.categories) <= {"true", "false"}


def _representatives(sketch: Mapping[str, Any], gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Representative value and count of every sketch bucket, in value order."""
    rows: list[tuple[float, float]] = []
    for sign, factor in (("neg", -1.0), ("pos", 1.0)):
        for k, c in (sketch.get(sign) or {}).items():
            rows.append((factor * 2 * gamma ** int(k) / (gamma + 1), float(c)))
    if sketch.get("zero"):
        rows.append((0.0, float(sketch["zero"])))
    rows.sort()
    arr = np.asarray(rows, dtype="float64").reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def snap(values: np.ndarray, gamma: float) -> np.ndarray:
    """Each value replaced by its sketch bucket's representative (same buckets as the baseline's sketch)."""
    mags = np.abs(values)
    zero = mags <= ZERO
    idx = np.ceil(np.log(np.where(zero, 1.0, mags)) / math.log(gamma))
    reps = 2 * np.power(gamma, idx) / (gamma + 1)
    return np.where(zero, 0.0, np.sign(values) * reps)


def load_reference(
    statistics: Mapping[str, Any], constraints: Mapping[str, Any] | None = None
) -> dict[str, ColumnReference]:
    """The feature columns of a baseline ``statistics.json`` (the target is left out), in baseline order."""
    features = statistics.get("features") if isinstance(statistics, Mapping) else None
    if not isinstance(features, list) or not features:
        raise MonitorInputError("baseline statistics.json has no 'features' list: is it the registered baseline?")
    closed: dict[str, bool] = {}
    for entry in (constraints or {}).get("features", []) or []:
        sc = entry.get("string_constraints")
        if isinstance(sc, Mapping) and "closed_domain" in sc:
            closed[str(entry.get("name"))] = bool(sc["closed_domain"])
    out: dict[str, ColumnReference] = {}
    for feat in features:
        name = str(feat.get("name", ""))
        if not name:
            raise MonitorInputError("baseline statistics.json has a feature without a name")
        if feat.get("role") == "target":
            continue
        if "numerical_statistics" in feat:
            ns = feat["numerical_statistics"]
            sketch = ns.get("sketch")
            if not isinstance(sketch, Mapping):
                raise MonitorInputError(f"baseline feature {name!r} has no sketch (statistics from an older baseline?)")
            accuracy = float(sketch.get("relative_accuracy", DEFAULT_RELATIVE_ACCURACY))
            gamma = (1 + accuracy) / (1 - accuracy)
            values, weights = _representatives(sketch, gamma)
            out[name] = ColumnReference(
                name=name,
                kind="numeric",
                present=int(ns["common"]["num_present"]),
                missing=int(ns["common"]["num_missing"]),
                values=values,
                weights=weights,
                std=float(ns.get("std_dev") or 0.0),
                minimum=ns.get("min"),
                maximum=ns.get("max"),
                gamma=gamma,
            )
        elif "string_statistics" in feat:
            ss = feat["string_statistics"]
            buckets = ss["distribution"]["categorical"]["buckets"]
            out[name] = ColumnReference(
                name=name,
                kind="categorical",
                present=int(ss["common"]["num_present"]),
                missing=int(ss["common"]["num_missing"]),
                categories={str(b["value"]): int(b["count"]) for b in buckets},
                closed_domain=closed.get(name, True),
            )
        else:
            raise MonitorInputError(f"baseline feature {name!r} has neither numerical nor string statistics")
    if not out:
        raise MonitorInputError("baseline statistics.json describes no feature columns (only a target)")
    return out


def profile_frame(
    frame: pd.DataFrame, categorical: Iterable[str] = (), relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY
) -> dict[str, Any]:
    """``statistics.json`` (the baseline's format) of a frame: used for fixtures, tests and the cross-check.

    ``categorical`` names the columns counted as categories; every other column is numeric.
    """
    gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
    cats = set(categorical)
    features: list[dict[str, Any]] = []
    for name in frame.columns:
        col = frame[name]
        if name in cats:
            present = col.dropna()
            counts = present.astype(str).value_counts()
            common = {"num_present": int(present.size), "num_missing": int(col.size - present.size)}
            buckets = [{"value": str(k), "count": int(v)} for k, v in sorted(counts.items())]
            features.append(
                {
                    "name": str(name),
                    "inferred_type": "String",
                    "string_statistics": {
                        "common": common,
                        "distinct_count": len(buckets),
                        "distribution": {"categorical": {"buckets": buckets}},
                    },
                }
            )
            continue
        arr = pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        present_values = arr[~np.isnan(arr)]
        n = int(present_values.size)
        mags = np.abs(present_values)
        zero = mags <= ZERO
        idx = np.ceil(np.log(np.where(zero, 1.0, mags)) / math.log(gamma)).astype(np.int64)

        def counts(mask: np.ndarray, idx: np.ndarray = idx) -> dict[str, int]:
            keys, cnt = np.unique(idx[mask], return_counts=True)
            return {str(int(k)): int(c) for k, c in zip(keys, cnt, strict=True)}

        mean = float(present_values.mean()) if n else 0.0
        m2 = float(((present_values - mean) ** 2).sum()) if n else 0.0
        features.append(
            {
                "name": str(name),
                "inferred_type": "Fractional",
                "numerical_statistics": {
                    "common": {"num_present": n, "num_missing": int(arr.size - n)},
                    "mean": mean if n else None,
                    "std_dev": math.sqrt(m2 / n) if n else None,
                    "min": float(present_values.min()) if n else None,
                    "max": float(present_values.max()) if n else None,
                    "sketch": {
                        "relative_accuracy": relative_accuracy,
                        "zero": int(zero.sum()),
                        "pos": counts(~zero & (present_values > 0)),
                        "neg": counts(~zero & (present_values < 0)),
                        "m2": m2,
                    },
                },
            }
        )
    return {"version": 0.0, "dataset": {"item_count": len(frame)}, "features": features}


# --- the window (data capture) ------------------------------------------------------------------------


@dataclass
class CaptureWindow:
    """The rows of a window and what could not be read (bodies are counted, never silently dropped)."""

    rows: pd.DataFrame
    records: int = 0
    unreadable: int = 0
    first_error: str = ""
    extra_columns: list[str] = field(default_factory=list)
    #: The columns the requests carried (a baseline column absent from every request is a schema change).
    carried: set[str] = field(default_factory=set)
    first_time: str | None = None
    last_time: str | None = None


def iter_records(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Capture records of JSON lines (blank lines skipped); a line that is not JSON raises, naming it."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MonitorInputError(f"capture line {number} is not JSON ({exc.msg}): not a data-capture file?") from exc
        if isinstance(record, dict):
            yield record


def _body(section: Mapping[str, Any]) -> tuple[str, str]:
    import base64

    data = section.get("data", "")
    encoding = str(section.get("encoding", "")).upper()
    media = str(section.get("observedContentType", "")).split(";")[0].strip().lower()
    text = base64.b64decode(data).decode("utf-8") if encoding == "BASE64" else str(data)
    return media, text


def read_window(
    records: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    categorical: Iterable[str] = (),
) -> CaptureWindow:
    """The requests' rows as a frame with the baseline's ``columns`` (positional CSV/JSON lists, or JSON
    objects by name); columns beyond them are kept as ``extra_<i>`` (a schema finding).

    ``since``/``until`` (UTC) keep records whose ``inferenceTime`` is inside ``[since, until)``.
    """
    cats = set(categorical)
    csv_bodies: dict[int, list[str]] = {}
    frames: list[pd.DataFrame] = []
    window = CaptureWindow(rows=pd.DataFrame(columns=list(columns)))
    times: list[str] = []
    for record in records:
        when = str((record.get("eventMetadata") or {}).get("inferenceTime") or "")
        if since is not None or until is not None:
            at = _parse_time(when)
            if at is None or (since is not None and at < since) or (until is not None and at >= until):
                continue
        window.records += 1
        if when:
            times.append(when)
        try:
            section = (record.get("captureData") or {}).get("endpointInput")
            if not isinstance(section, dict):
                raise ValueError("no captureData.endpointInput")
            media, text = _body(section)
            if media == "text/csv":
                first = next(csv.reader(io.StringIO(text.split("\n", 1)[0])), [])
                if not first:
                    raise ValueError("empty CSV body")
                csv_bodies.setdefault(len(first), []).append(text.rstrip("\n"))
            elif media in ("application/json", "application/jsonlines"):
                frames.append(_json_rows(text, columns))
            else:
                raise ValueError(f"content type {media!r} is not CSV or JSON")
        except (ValueError, UnicodeDecodeError) as exc:
            window.unreadable += 1
            window.first_error = window.first_error or str(exc)
    for width, bodies in sorted(csv_bodies.items()):
        names = list(columns[:width]) + [f"extra_{i}" for i in range(1, width - len(columns) + 1)]
        dtypes = {c: str for c in names if c in cats or c.startswith("extra_")}
        frame = pd.read_csv(
            io.StringIO("\n".join(bodies)), header=None, names=names, dtype=dtypes, skip_blank_lines=True
        )
        frames.append(frame)
    if frames:
        rows = pd.concat(frames, ignore_index=True, sort=False)
        window.carried = {str(c) for frame in frames for c in frame.columns}
        window.extra_columns = [c for c in rows.columns if c not in columns]
        window.rows = rows.reindex(columns=[*columns, *window.extra_columns])
    if times:
        window.first_time, window.last_time = min(times), max(times)
    return window


def _json_rows(text: str, columns: Sequence[str]) -> pd.DataFrame:
    payload = json.loads(text)
    instances = payload.get("instances") if isinstance(payload, dict) else payload
    if not isinstance(instances, list) or not instances:
        raise ValueError('JSON body is not {"instances": [...]} or a non-empty list')
    if all(isinstance(r, dict) for r in instances):
        return pd.DataFrame(instances)
    if all(isinstance(r, list) for r in instances):
        width = max(len(r) for r in instances)
        names = list(columns[:width]) + [f"extra_{i}" for i in range(1, width - len(columns) + 1)]
        return pd.DataFrame(instances, columns=names[:width])
    raise ValueError("JSON instances are neither all lists nor all objects")


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


# --- the comparison -----------------------------------------------------------------------------------


def _finding(kind: str, column: str | None, message: str, severity: str = "warning") -> dict[str, Any]:
    return {"kind": kind, "column": column, "severity": severity, "message": message}


def _test_numeric(ref: ColumnReference, current: np.ndarray, psi: bool) -> dict[str, Any]:
    snapped = snap(current, ref.gamma)
    cur_values, cur_counts = np.unique(snapped, return_counts=True)
    distinct = np.union1d(ref.values, cur_values).size
    if psi:
        return _psi_numeric(ref, snapped, distinct)
    if distinct <= LOW_CARDINALITY:
        keys = [_number_key(v) for v in ref.values]
        cur_keys = [_number_key(v) for v in cur_values]
        return _test_counts(
            dict(zip(keys, ref.weights.astype(int).tolist(), strict=True)),
            dict(zip(cur_keys, cur_counts.tolist(), strict=True)),
            ref.present,
            distinct,
        )
    if ref.present <= SMALL_REFERENCE_ROWS:
        reference = np.repeat(ref.values, ref.weights.astype(np.int64))
        result = stats.ks_2samp(reference, snapped)
        p = float(result.pvalue)
        return {
            "test": "ks",
            "score": p,
            "statistic": float(result.statistic),
            "threshold": P_VALUE_THRESHOLD,
            "drifted": p <= P_VALUE_THRESHOLD,
        }
    norm = max(ref.std, NORM_FLOOR)
    d = float(stats.wasserstein_distance(ref.values, cur_values, ref.weights, cur_counts)) / norm
    return {
        "test": "wasserstein_normed",
        "score": d,
        "threshold": DISTANCE_THRESHOLD,
        "drifted": d >= DISTANCE_THRESHOLD,
    }


def _number_key(value: float) -> str:
    return repr(float(value))


def _fill_zeros(shares: np.ndarray) -> np.ndarray:
    """Evidently's floor for empty bins (so that logarithms and JS stay finite)."""
    nonzero = shares[shares != 0]
    if nonzero.size == 0:
        return shares
    smallest = float(nonzero.min())
    floor = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return np.where(shares == 0, floor, shares)


def _psi_value(ref_shares: np.ndarray, cur_shares: np.ndarray) -> float:
    r, c = _fill_zeros(ref_shares), _fill_zeros(cur_shares)
    return float(np.sum((r - c) * np.log(r / c)))


def _psi_numeric(ref: ColumnReference, snapped: np.ndarray, distinct: int) -> dict[str, Any]:
    """PSI over Sturges equal-width bins of reference and window together (categories when the reference
    has at most 20 distinct values), as Evidently bins it."""
    if np.unique(ref.values).size <= 20:
        cur_values, cur_counts = np.unique(snapped, return_counts=True)
        return _psi_counts(
            {_number_key(v): int(w) for v, w in zip(ref.values, ref.weights, strict=True)},
            {_number_key(v): int(c) for v, c in zip(cur_values, cur_counts, strict=True)},
        )
    lo = min(float(ref.values.min()), float(snapped.min()))
    hi = max(float(ref.values.max()), float(snapped.max()))
    bins = math.ceil(math.log2(ref.present + snapped.size)) + 1
    edges = np.linspace(lo, hi, bins + 1)
    r = np.histogram(ref.values, edges, weights=ref.weights)[0] / ref.weights.sum()
    c = np.histogram(snapped, edges)[0] / snapped.size
    value = _psi_value(r, c)
    return {"test": "psi", "score": value, "threshold": PSI_THRESHOLD, "drifted": value >= PSI_THRESHOLD}


def _test_counts(
    reference: Mapping[str, int], current: Mapping[str, int], ref_total: int, distinct: int
) -> dict[str, Any]:
    """Chi-square / z-test (small reference) or Jensen-Shannon (large) on category counts."""
    keys = sorted(set(reference) | set(current))
    ref = np.array([reference.get(k, 0) for k in keys], dtype="float64")
    cur = np.array([current.get(k, 0) for k in keys], dtype="float64")
    n_ref, n_cur = ref.sum(), cur.sum()
    if ref_total <= SMALL_REFERENCE_ROWS:
        if distinct <= 2:
            return _z_test(ref, cur)
        expected = ref * n_cur / n_ref
        statistic: float | None = None
        if np.any(expected == 0):  # a category the reference never saw: infinitely unlikely under it
            p = 0.0
        else:
            result = stats.chisquare(cur, expected)
            p, statistic = float(result.pvalue), float(result.statistic)
        return {
            "test": "chi_square",
            "score": p,
            "statistic": statistic,
            "threshold": P_VALUE_THRESHOLD,
            "drifted": p < P_VALUE_THRESHOLD,
        }
    d = float(distance.jensenshannon(ref / n_ref, cur / n_cur))
    return {"test": "jensen_shannon", "score": d, "threshold": DISTANCE_THRESHOLD, "drifted": d >= DISTANCE_THRESHOLD}


def _z_test(ref: np.ndarray, cur: np.ndarray) -> dict[str, Any]:
    """Two-proportion z-test on the first category's share (two-sided, pooled variance)."""
    n1, n2 = ref.sum(), cur.sum()
    if len(ref) == 1:
        p = 1.0
    else:
        p1, p2 = ref[0] / n1, cur[0] / n2
        pooled = (ref[0] + cur[0]) / (n1 + n2)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        p = 1.0 if se == 0 else float(2 * stats.norm.sf(abs((p1 - p2) / se)))
    return {"test": "z", "score": p, "threshold": P_VALUE_THRESHOLD, "drifted": p < P_VALUE_THRESHOLD}


def _psi_counts(reference: Mapping[str, int], current: Mapping[str, int]) -> dict[str, Any]:
    keys = sorted(set(reference) | set(current))
    ref = np.array([reference.get(k, 0) for k in keys], dtype="float64")
    cur = np.array([current.get(k, 0) for k in keys], dtype="float64")
    value = _psi_value(ref / ref.sum(), cur / cur.sum())
    return {"test": "psi", "score": value, "threshold": PSI_THRESHOLD, "drifted": value >= PSI_THRESHOLD}


def _categories(values: pd.Series, ref: ColumnReference) -> pd.Series:
    text = values.dropna().astype(str).str.strip()
    if ref.boolean:
        lowered = text.str.lower()
        text = lowered.where(~lowered.isin(_TRUE), "true").where(~lowered.isin(_FALSE), "false")
    return text


def compare(
    reference: Mapping[str, ColumnReference],
    window: CaptureWindow | pd.DataFrame,
    settings: MonitorSettings | None = None,
) -> dict[str, Any]:
    """The drift report of a window (see the module docstring for what it tests and finds)."""
    settings = settings or MonitorSettings()
    if isinstance(window, pd.DataFrame):
        extra = [str(c) for c in window.columns if c not in reference]
        window = CaptureWindow(rows=window, extra_columns=extra, carried={str(c) for c in window.columns})
    rows = window.rows
    n = len(rows)
    report: dict[str, Any] = {
        "status": NOT_ENOUGH_DATA,
        "rows": n,
        "min_rows": settings.min_rows,
        "records": window.records,
        "unreadable_records": window.unreadable,
        "window": {"first": window.first_time, "last": window.last_time},
        "dataset_drift": None,
        "drift_share": None,
        "drifted_features": [],
        "features": {},
        "findings": [],
        "thresholds": thresholds(settings),
    }
    findings: list[dict[str, Any]] = report["findings"]
    if window.unreadable:
        findings.append(
            _finding(
                "unreadable_records",
                None,
                f"{window.unreadable} captured request(s) could not be "
                f"read and were left out (first: {window.first_error})",
            )
        )
    if n < settings.min_rows:
        findings.append(
            _finding(
                "not_enough_data",
                None,
                f"the window has {n} row(s), fewer than the minimum {settings.min_rows}: "
                "no verdict (neither drift nor a pass); widen the window or lower drift.min_rows",
                "info",
            )
        )
        return report
    for name in window.extra_columns:
        findings.append(_finding("extra_column", name, f"column {name!r} is not in the baseline (schema change)"))
    compared = 0
    drifted: list[str] = []
    for name, ref in reference.items():
        if name not in window.carried:
            findings.append(
                _finding(
                    "missing_column", name, f"column {name!r} of the baseline is not in the window (schema change)"
                )
            )
            report["features"][name] = {
                "type": ref.kind,
                "test": None,
                "score": None,
                "drifted": True,
                "reason": "missing column",
            }
            drifted.append(name)
            compared += 1
            continue
        entry = _compare_column(ref, rows[name], settings, findings)
        report["features"][name] = entry
        compared += 1
        if entry["drifted"]:
            drifted.append(name)
    share = len(drifted) / compared if compared else 0.0
    report["drift_share"] = share
    report["dataset_drift"] = share >= DATASET_DRIFT_SHARE
    report["drifted_features"] = drifted
    report["status"] = DRIFT if drifted else NO_DRIFT
    for name in drifted:
        entry = report["features"][name]
        if entry.get("test"):
            findings.append(
                _finding(
                    "drift",
                    name,
                    f"column {name!r} drifted: {entry['test']} = {entry['score']:.4g} "
                    f"({'p-value below' if entry['test'] in ('ks', 'chi_square', 'z') else 'at or above'} "
                    f"{entry['threshold']:g})",
                )
            )
    return report


def _compare_column(
    ref: ColumnReference, values: pd.Series, settings: MonitorSettings, findings: list[dict[str, Any]]
) -> dict[str, Any]:
    name = ref.name
    total = len(values)
    missing = int(values.isna().sum())
    entry: dict[str, Any] = {
        "type": ref.kind,
        "missing_share": missing / total if total else 0.0,
        "baseline_missing_share": ref.missing_share,
    }
    if missing == total:
        findings.append(_finding("all_missing", name, f"every value of column {name!r} is missing in the window"))
        entry.update(test=None, score=None, drifted=True, reason="all values missing")
        return entry
    if entry["missing_share"] - ref.missing_share > MISSING_SHARE_INCREASE:
        findings.append(
            _finding(
                "missing_values",
                name,
                f"column {name!r}: {entry['missing_share']:.1%} of values missing (baseline {ref.missing_share:.1%})",
            )
        )
    present = values.dropna()
    if ref.kind == "numeric":
        # Parsed as numbers already (the usual case): no per-value conversion.
        numbers = present if pd.api.types.is_numeric_dtype(present) else pd.to_numeric(present, errors="coerce")
        bad = int(numbers.isna().sum())
        if bad / len(present) >= RETYPED_SHARE:
            sample = ", ".join(repr(str(v)) for v in present[numbers.isna()].head(3))
            share = bad / len(present)
            findings.append(
                _finding(
                    "retyped_column",
                    name,
                    f"column {name!r} is numeric in the baseline but "
                    f"{share:.0%} of its values are not numbers (e.g. {sample})",
                )
            )
            entry.update(test=None, score=None, drifted=True, reason="retyped (not numeric)")
            return entry
        if bad:
            findings.append(_finding("invalid_values", name, f"column {name!r}: {bad} value(s) are not numbers"))
        if ref.resolution < MIN_RESOLUTION:
            findings.append(
                _finding(
                    "coarse_baseline",
                    name,
                    f"column {name!r}: the baseline sketch's buckets near its mean are "
                    f"wider than its standard deviation / {MIN_RESOLUTION} (values far from zero, small spread): "
                    "shifts smaller than a bucket are not seen",
                    "info",
                )
            )
        arr = numbers.dropna().to_numpy(dtype="float64")
        entry.update(_test_numeric(ref, arr, settings.psi))
        return entry
    text = _categories(present, ref)
    counts = {str(k): int(v) for k, v in text.value_counts().items()}
    if ref.categories and all(_is_number(k) for k in counts) and not any(_is_number(k) for k in ref.categories):
        findings.append(
            _finding(
                "retyped_column",
                name,
                f"column {name!r} holds categories in the baseline but only numbers in the window",
            )
        )
    new = sorted(set(counts) - set(ref.categories))
    if new:
        share = sum(counts[k] for k in new) / sum(counts.values())
        listed = ", ".join(repr(k) for k in new[:MAX_LISTED]) + (", ..." if len(new) > MAX_LISTED else "")
        findings.append(
            _finding(
                "new_categories",
                name,
                f"column {name!r}: {len(new)} categor{'y' if len(new) == 1 else 'ies'} "
                f"the baseline never saw ({share:.1%} of values): {listed}",
                "warning" if ref.closed_domain else "info",
            )
        )
        entry["new_categories"] = new[:MAX_LISTED]
        entry["new_category_share"] = share
    reference_counts: Mapping[str, int] = ref.categories
    if len(ref.categories) > MAX_CATEGORIES:
        reference_counts, counts = _lumped(ref.categories), _lumped(counts, keep=ref.categories)
        entry["lumped_categories"] = len(ref.categories) - MAX_CATEGORIES
    distinct = len(set(counts) | set(reference_counts))
    entry.update(
        _psi_counts(reference_counts, counts)
        if settings.psi
        else _test_counts(reference_counts, counts, ref.present, distinct)
    )
    return entry


def _lumped(counts: Mapping[str, int], keep: Mapping[str, int] | None = None) -> dict[str, int]:
    """The :data:`MAX_CATEGORIES` most frequent categories of ``keep`` (default: of ``counts``) and one
    :data:`OTHER` bucket for every other value of ``counts``."""
    basis = counts if keep is None else keep
    top = [k for k, _ in sorted(basis.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_CATEGORIES]]
    out = {k: int(counts.get(k, 0)) for k in top}
    out[OTHER] = int(sum(counts.values()) - sum(out.values()))
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def thresholds(settings: MonitorSettings) -> dict[str, Any]:
    """The pinned thresholds a report was computed with (printed in every report)."""
    return {
        "small_reference_rows": SMALL_REFERENCE_ROWS,
        "p_value": P_VALUE_THRESHOLD,
        "distance": DISTANCE_THRESHOLD,
        "psi": PSI_THRESHOLD if settings.psi else None,
        "dataset_drift_share": DATASET_DRIFT_SHARE,
        "missing_share_increase": MISSING_SHARE_INCREASE,
        "min_rows": settings.min_rows,
    }


# --- outputs ------------------------------------------------------------------------------------------


def metric_data(report: Mapping[str, Any], *, team: str, endpoint: str) -> list[dict[str, Any]]:
    """CloudWatch ``PutMetricData`` entries: ``DriftScore`` per feature, ``DriftedFeatures``, ``DatasetDrift``,
    ``DriftShare``, ``WindowRows`` and ``NotEnoughData`` (dimensions ``team``, ``endpoint``[, ``feature``])."""
    base = [{"Name": "team", "Value": team}, {"Name": "endpoint", "Value": endpoint}]
    out: list[dict[str, Any]] = [
        {"MetricName": "WindowRows", "Dimensions": base, "Value": float(report["rows"]), "Unit": "Count"},
        {
            "MetricName": "NotEnoughData",
            "Dimensions": base,
            "Value": float(report["status"] == NOT_ENOUGH_DATA),
            "Unit": "Count",
        },
    ]
    if report["status"] == NOT_ENOUGH_DATA:
        return out
    out += [
        {
            "MetricName": "DriftedFeatures",
            "Dimensions": base,
            "Value": float(len(report["drifted_features"])),
            "Unit": "Count",
        },
        {
            "MetricName": "DatasetDrift",
            "Dimensions": base,
            "Value": float(bool(report["dataset_drift"])),
            "Unit": "Count",
        },
        {"MetricName": "DriftShare", "Dimensions": base, "Value": float(report["drift_share"]), "Unit": "None"},
    ]
    for name, entry in report["features"].items():
        score = drift_score(entry)
        out.append(
            {
                "MetricName": "DriftScore",
                "Dimensions": [*base, {"Name": "feature", "Value": name}],
                "Value": score,
                "Unit": "None",
            }
        )
    return out


def drift_score(entry: Mapping[str, Any]) -> float:
    """One number per feature where 1 means "at the threshold": distance / threshold, or threshold / p-value
    for the tests (capped at 100); a column that could not be compared (missing, retyped, all null) is 100."""
    score, threshold = entry.get("score"), entry.get("threshold")
    if score is None or threshold is None:
        return 100.0
    if entry.get("test") in ("ks", "chi_square", "z"):
        return float(min(100.0, threshold / max(float(score), 1e-300)))
    return float(min(100.0, float(score) / threshold))


def summary(report: Mapping[str, Any]) -> str:
    """One line: the verdict, naming the drifted features."""
    if report["status"] == NOT_ENOUGH_DATA:
        return f"not enough data: {report['rows']} row(s) in the window, at least {report['min_rows']} needed"
    compared = len(report["features"])
    drifted = report["drifted_features"]
    if not drifted:
        return f"no drift: {compared} feature(s) compared on {report['rows']:,} rows, none drifted"
    kind = "DATASET DRIFT" if report["dataset_drift"] else "DRIFT"
    return f"{kind}: {len(drifted)} of {compared} feature(s) drifted on {report['rows']:,} rows: {', '.join(drifted)}"


def read_capture_dir(folder: Path) -> Iterator[dict[str, Any]]:
    """Every capture record of the ``*.jsonl`` files under ``folder`` (path order)."""
    for path in sorted(folder.rglob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            yield from iter_records(handle)


def run(
    statistics: Mapping[str, Any],
    records: Iterable[Mapping[str, Any]],
    settings: MonitorSettings | None = None,
    *,
    constraints: Mapping[str, Any] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Baseline + capture records → report (what ``main`` and ``flywheel monitor`` both call)."""
    reference = load_reference(statistics, constraints)
    cats = [n for n, r in reference.items() if r.kind == "categorical"]
    window = read_window(records, list(reference), since=since, until=until, categorical=cats)
    return compare(reference, window, settings)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MonitorInputError(f"{what} not found at {path}") from None
    except json.JSONDecodeError as exc:
        raise MonitorInputError(f"{what} at {path} is not JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise MonitorInputError(f"{what} at {path} is not a JSON object")
    return data


def main(argv: Sequence[str] | None = None) -> int:
    """The processing job: ``report.json`` and ``metrics.json`` under ``--output-dir``; exit 2 on bad input."""
    p = argparse.ArgumentParser(description="Flywheel drift monitor (one window of data capture vs. the baseline)")
    p.add_argument("--baseline-dir", required=True, type=Path, help="holds statistics.json (and constraints.json)")
    p.add_argument("--capture-dir", required=True, type=Path, help="the window's capture *.jsonl files")
    p.add_argument("--output-dir", required=True, type=Path)
    p.add_argument("--min-rows", type=int, default=DEFAULT_MIN_ROWS)
    p.add_argument("--psi", action="store_true", help="PSI instead of the default tests")
    p.add_argument("--team", default="")
    p.add_argument("--endpoint", default="")
    p.add_argument("--window", default="", help="label of the window (e.g. its capture prefix)")
    args = p.parse_args(argv)
    try:
        settings = MonitorSettings(min_rows=args.min_rows, psi=args.psi)
        statistics = _read_json(args.baseline_dir / "statistics.json", "baseline statistics.json")
        constraints_path = args.baseline_dir / "constraints.json"
        constraints = _read_json(constraints_path, "constraints.json") if constraints_path.exists() else None
        records = read_capture_dir(args.capture_dir) if args.capture_dir.is_dir() else iter(())
        report = run(statistics, records, settings, constraints=constraints)
    except MonitorInputError as exc:
        print(f"drift monitor: {exc}", file=sys.stderr)
        return 2
    report.update(
        team=args.team,
        endpoint=args.endpoint,
        window_label=args.window,
        computed_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "report.json").write_text(
        json.dumps(report, indent=1, default=_jsonable) + "\n", encoding="utf-8"
    )
    metrics = {
        "Namespace": METRICS_NAMESPACE,
        "MetricData": metric_data(report, team=args.team, endpoint=args.endpoint),
    }
    (args.output_dir / "metrics.json").write_text(json.dumps(metrics) + "\n", encoding="utf-8")
    print(json.dumps({"drift_monitor": summary(report), "status": report["status"]}))
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
