"""The HTML report of one pipeline run: a single self-contained file (inline CSS, plots as base64 PNG).

:func:`run_report` shapes the :class:`RunReport` dict of a local run (its outcome, the deployment and
the serving figures); :func:`write_report` renders it. Every key but ``team``,
``execution_id`` and ``status`` is optional; a section without data says so instead of disappearing,
so a reader can tell "not run" from "forgot to report". Everything that comes from data is
HTML-escaped; the file references nothing outside itself (no scripts, fonts, styles or images).

Schema (``run``)::

    title            str             heading (default "Flywheel run <execution_id>")
    team             str             required
    objective        str             binary | multiclass | regression (or free text)
    pipeline         str             pipeline / template name
    execution_id     str             required: pipeline execution id or ARN
    status           str             required: Succeeded | Failed | Executing | Stopped ...
    started_at       str             ISO-8601 timestamps
    finished_at      str
    steps            list[StepRecord]     name, status, type, duration_s, message
    evaluation       dict            the content of evaluate.py's evaluation.json
    evaluation_dir   str | Path      alternative: evaluation.json (+ plots/*.png) is read from here
    plots            list[str | Path]     PNG files (default: <evaluation_dir>/plots/<evaluation["plots"]>)
    gate_threshold   float           the metric gate the run used (its GateThreshold parameter)
    gate_override    str             set when a local run overrode the deployed gate: "gate threshold
                                     overridden locally: X (deployed: Y)" (the deployed definition has
                                     no such parameter: the gate comes from config)
    gate_passed      bool            the condition step's outcome if known (else computed from the threshold)
    lineage          Lineage         data -> execution -> model package -> endpoint
    serving          ServingFigures  p50_ms, p99_ms, rows_per_s, ... (any extra key is shown too)
    contract         ContractResult  passed, summary, rows, failures, quarantined_files, quarantine_uri
    artifacts        dict[str, str]  label -> S3 URI or local path
    extra_sections   list[Section]   title + rows of (label, value): e.g. drift results
    card             dict            model card: description, owner, intended_use (the team's config)
    contract_spec    dict            the team's data contract (DataContract as a dict: columns, split, ...)
    champion         dict            the deployed champion: version, approval, evaluation (its evaluation.json)

The model-card sections (card, "Should I approve?", contract columns, threshold/per-class/calibration,
champion figures, drift baseline) are rendered by :mod:`flywheel.model_card`.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Required, TypedDict

if TYPE_CHECKING:
    from flywheel.outcome import RunOutcome
    from flywheel.templates import RunReading

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DASH = "\u2013"  # shown for a value that is absent
#: Plots larger than this are listed, not embedded (keeps the report mailable).
MAX_PLOT_BYTES = 5 * 1024 * 1024
_PLOT_TITLES = {
    "roc": "ROC curve",
    "pr": "Precision-recall curve",
    "confusion_matrix": "Confusion matrix",
    "feature_importance": "Feature importance",
    "residuals": "Residuals",
    "calibration": "Calibration (reliability) curve",
}
_OK = {"succeeded", "success", "passed", "pass", "approved", "completed", "inservice", "executed", "true"}
_BAD = {"failed", "failure", "fail", "rejected", "error", "stopped", "false"}


class StepRecord(TypedDict, total=False):
    """One pipeline step as the executor saw it."""

    name: Required[str]
    status: Required[str]
    type: str  # Processing | Training | Condition | RegisterModel | Fail | ...
    duration_s: float | None
    message: str  # failure reason, condition outcome, ...


class Lineage(TypedDict, total=False):
    """Where the model came from and where it went."""

    data_uri: str  # the raw batch (S3 URI or local path)
    execution_arn: str
    model_data_uri: str  # model.tar.gz
    model_package_arn: str
    model_package_version: int
    approval_status: str  # PendingManualApproval | Approved | Rejected
    endpoint_name: str
    endpoint_url: str
    group_versions: list[dict[str, Any]]  # every version of the group: version, approval, deployed


class ServingFigures(TypedDict, total=False):
    """Latency and throughput measured against the served model."""

    p50_ms: float
    p99_ms: float
    rows_per_s: float
    requests: int
    batch_rows: int


class ContractResult(TypedDict, total=False):
    """The data-contract check of the batch (preprocess.py's ``status/validation.json``)."""

    passed: Required[bool]
    summary: str
    rows: int
    failures: list[dict[str, Any]]  # validation.Failure.to_dict(): check, column, failure_count, message, ...
    quarantined_files: list[str]
    quarantine_uri: str


class Section(TypedDict):
    """A free-form extra section: a title and (label, value) rows."""

    title: str
    rows: list[tuple[str, Any]]


class RunReport(TypedDict, total=False):
    """The ``run`` argument of :func:`write_report` (see the module docstring for each key)."""

    title: str
    team: Required[str]
    objective: str
    pipeline: str
    execution_id: Required[str]
    status: Required[str]
    started_at: str
    finished_at: str
    steps: list[StepRecord]
    evaluation: dict[str, Any]
    evaluation_dir: str | Path
    plots: list[str | Path]
    gate_threshold: float
    gate_override: str
    gate_passed: bool
    lineage: Lineage
    serving: ServingFigures
    contract: ContractResult
    artifacts: dict[str, str]
    extra_sections: list[Section]
    card: dict[str, Any]
    contract_spec: dict[str, Any]
    champion: dict[str, Any]


# --- formatting --------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"
    if isinstance(value, str) and value.strip().lower() == "nan":
        return DASH
    return str(value)


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return DASH
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes} min {sec:02d} s"


def _badge(status: Any) -> str:
    text = str(status)
    key = text.replace(" ", "").replace("_", "").lower()
    cls = "ok" if key in _OK else "bad" if key in _BAD else "neutral"
    return f'<span class="badge {cls}">{_e(text)}</span>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table; cells are trusted HTML (callers escape data with :func:`_e`)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column key/value table; values are trusted HTML."""
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def _section(anchor: str, title: str, content: str) -> str:
    return f'<section id="{_e(anchor)}"><h2>{_e(title)}</h2>{content}</section>'


def _empty(message: str) -> str:
    return f'<p class="muted">{_e(message)}</p>'


def _code(value: Any) -> str:
    return f"<code>{_e(value)}</code>" if value not in (None, "") else DASH


# --- inputs ------------------------------------------------------------------------------------------


def _evaluation(run: Mapping[str, Any]) -> dict[str, Any] | None:
    if run.get("evaluation") is not None:
        return dict(run["evaluation"])
    directory = run.get("evaluation_dir")
    if directory is not None and (Path(directory) / "evaluation.json").is_file():
        return dict(json.loads((Path(directory) / "evaluation.json").read_text(encoding="utf-8")))
    return None


def _plot_paths(run: Mapping[str, Any], evaluation: Mapping[str, Any] | None) -> list[Path]:
    if run.get("plots") is not None:
        return [Path(p) for p in run["plots"]]
    directory = run.get("evaluation_dir")
    if directory is None:
        return []
    plots = Path(directory) / "plots"
    names = (evaluation or {}).get("plots")
    if isinstance(names, list):
        return [plots / str(n) for n in names]
    return sorted(plots.glob("*.png")) if plots.is_dir() else []


def _metric_section(evaluation: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    for key, value in evaluation.items():
        if key.endswith("_metrics") and isinstance(value, Mapping):
            return key, dict(value)
    return "", {}


def gate_decision(
    value: float | None, threshold: float | None, higher_is_better: bool, passed: bool | None = None
) -> bool | None:
    """The metric gate as the pipeline's condition decides it (value at or beyond the threshold).

    ``passed`` (the condition step's recorded outcome) wins when given; None when undecidable.
    """
    if passed is not None:
        return bool(passed)
    if threshold is None:
        return None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return value >= threshold if higher_is_better else value <= threshold


# --- sections ----------------------------------------------------------------------------------------


def _summary(run: Mapping[str, Any]) -> str:
    rows = [
        ("Team", _e(run.get("team"))),
        ("Objective", _e(run.get("objective", DASH))),
        ("Pipeline", _e(run.get("pipeline", DASH))),
        ("Execution", _code(run.get("execution_id"))),
        ("Status", _badge(run.get("status"))),
        ("Started", _e(_when(run.get("started_at")))),
        ("Finished", _e(_when(run.get("finished_at")))),
    ]
    if run.get("gate_override"):
        rows.append(("Local override", _badge("local") + " " + _e(run["gate_override"])))
    return _kv(rows)


def _steps(run: Mapping[str, Any]) -> str:
    steps = run.get("steps") or []
    if not steps:
        return _section("steps", "Steps", _empty("No step records."))
    rows = [
        (
            _e(s.get("name")),
            _e(s.get("type", "")),
            _badge(s.get("status", "")),
            _duration(s.get("duration_s")),
            _e(s.get("message", "")),
        )
        for s in steps
    ]
    total = sum(s["duration_s"] for s in steps if isinstance(s.get("duration_s"), int | float))
    footer = f'<p class="muted">Step time in total: {_e(_duration(total))}</p>'
    return _section("steps", "Steps", _table(["step", "type", "status", "duration", "detail"], rows) + footer)


def _contract(run: Mapping[str, Any]) -> str:
    contract = run.get("contract")
    if not contract:
        return _section("contract", "Data contract", _empty("No data-contract result recorded."))
    passed = bool(contract.get("passed"))
    from flywheel.model_card import contract_spec

    parts = [
        _kv(
            [
                ("Result", _badge("passed" if passed else "failed")),
                ("Summary", _e(contract.get("summary", ""))),
                ("Rows", _e(_num(contract.get("rows")))),
                (
                    "Quarantined rows",
                    _e("none: the batch passed" if passed else "the whole batch (files copied unchanged, below)"),
                ),
            ]
        ),
        contract_spec(run),
    ]
    if not passed:
        failures = contract.get("failures") or []
        if failures:
            rows = [
                (
                    _e(f.get("check")),
                    _e(f.get("column") or "(batch)"),
                    _e(_num(f.get("failure_count"))),
                    _e(f.get("message")),
                    _e(f.get("file") or ""),
                    _e(", ".join(str(i) for i in (f.get("examples") or [])[:5])),
                    # Only present for feature/target columns: validation redacts identifiers' values.
                    _e(", ".join(repr(v) for v in list(dict.fromkeys(map(str, f.get("example_values") or [])))[:5])),
                    _e(f.get("hint") or ""),
                )
                for f in failures
            ]
            parts.append("<h3>Quarantine report</h3>")
            headers = ["check", "column", "failures", "message", "file", "example rows", "example values", "hint"]
            parts.append(_table(headers, rows))
        quarantined = contract.get("quarantined_files") or []
        where = contract.get("quarantine_uri")
        parts.append(
            f"<p>Quarantined {len(quarantined)} file(s), unchanged"
            + (f", at {_code(where)}" if where else "")
            + (": " + ", ".join(_code(q) for q in quarantined) if quarantined else "")
            + ". Nothing was deleted; training did not run on this batch.</p>"
        )
    return _section("contract", "Data contract", "".join(parts))


def _interval(entry: Mapping[str, Any] | None) -> str:
    if not entry or entry.get("low") is None:
        return DASH
    return f"{_num(entry.get('low'))} to {_num(entry.get('high'))}"


def _std(entry: Mapping[str, Any], interval: Mapping[str, Any] | None) -> Any:
    value = entry.get("standard_deviation")
    if (value is None or value == "NaN") and interval and interval.get("std") is not None:
        return interval["std"]
    return value


def _share(counts: Mapping[str, Any]) -> str:
    total = sum(int(v) for v in counts.values()) or 1
    return ", ".join(f"{_e(k)}: {int(v):,} ({int(v) / total:.1%})" for k, v in counts.items())


def _data_and_training(evaluation: Mapping[str, Any]) -> str:
    training = dict(evaluation.get("training") or {})
    if not training:
        return ""
    test = dict(evaluation.get("test_summary") or {})
    summary = dict(training.get("target_summary") or {})
    rows = [
        ("Rows per split", _e(
            f"train {_num(training.get('train_rows'))}, validation {_num(training.get('validation_rows'))}, "
            f"test {_num(evaluation.get('test_rows'))}"
        )),
    ]  # fmt: skip
    if "class_counts" in summary:
        rows.append(("Class balance (train)", _share(summary["class_counts"])))
        if test.get("class_counts"):
            rows.append(("Class balance (test)", _share(test["class_counts"])))
        if training.get("positive_label") is not None and summary["class_counts"]:
            counts = summary["class_counts"]
            rate = int(counts.get(str(training["positive_label"]), 0)) / max(sum(counts.values()), 1)
            rows.append(("Base rate", _e(f"{rate:.1%} of training rows are {training['positive_label']!r}")))
    elif "mean" in summary:
        rows.append(("Target (train)", _e(f"mean {_num(summary['mean'])}, std. dev. {_num(summary.get('std'))}")))
        if test.get("mean") is not None:
            rows.append(("Target (test)", _e(f"mean {_num(test['mean'])}, std. dev. {_num(test.get('std'))}")))
    hps = training.get("hyperparameters") or {}
    val = training.get("validation_metric") or {}
    rows += [
        ("Hyperparameters", _e(", ".join(f"{k}={v}" for k, v in hps.items()) or DASH)),
        ("Best iteration", _e(
            f"{_num(training.get('best_iteration'))} of {_num(training.get('rounds_trained'))} rounds trained "
            f"(early stopping after {_num(training.get('early_stopping_rounds'))} rounds without improvement)"
        )),
        ("Validation " + _e(val.get("name", "metric")), _e(_num(val.get("value")))),
        ("Training time", _e(_duration(training.get("training_seconds")))),
    ]  # fmt: skip
    warnings = training.get("warnings") or []
    if warnings:
        rows.append(("Warnings", "<br>".join(_badge("warning") + " " + _e(w) for w in warnings)))
    return "<h3>Data and training</h3>" + _kv(rows)


def _evaluation_html(run: Mapping[str, Any], evaluation: Mapping[str, Any] | None) -> str:
    if evaluation is None:
        return _section("evaluation", "Evaluation", _empty("Not evaluated in this run."))
    kind, metrics = _metric_section(evaluation)
    gate = dict(evaluation.get("gate") or {})
    gate_metric = gate.get("metric")
    intervals = dict((evaluation.get("intervals") or {}).get("metrics") or {})
    trivial = dict((evaluation.get("trivial_baseline") or {}).get("metrics") or {})
    champion = dict(evaluation.get("champion") or {})
    champion_metrics = dict(champion.get("metrics") or {})
    second = dict(evaluation.get("second_metric") or {})
    rows = []
    all_metrics = dict(metrics)
    if second.get("name") and second["name"] not in all_metrics:
        all_metrics[second["name"]] = {"value": second.get("value"), "standard_deviation": "NaN"}
    for name, entry in all_metrics.items():
        entry = entry if isinstance(entry, Mapping) else {"value": entry}
        marker = ' <span class="tag">gate</span>' if name == gate_metric else ""
        champ = champion_metrics.get(name, champion.get("metric_value") if name == gate_metric else None)
        row = [
            _e(name) + marker,
            _e(_num(entry.get("value"))),
            _e(_interval(intervals.get(name))),
            _e(_num(_std(entry, intervals.get(name)))),
            _e(_num(trivial.get(name))),
        ]
        if champion.get("metric_value") is not None:
            row.append(_e(_num(champ)))
        rows.append(row)
    title = kind.removesuffix("_metrics").replace("_", " ") if kind else "metrics"
    parts = [_data_and_training(evaluation), f"<h3>Test metrics ({_e(title)})</h3>"]
    headers = ["metric", "value", "95% interval", "std. dev.", "trivial model"]
    if champion.get("metric_value") is not None:
        headers.append("champion")
    parts.append(_table(headers, rows) if rows else _empty("No metrics."))
    if "test_rows" in evaluation:
        parts.append(f'<p class="muted">On {_e(_num(evaluation["test_rows"]))} held-out test rows.</p>')
    if intervals:
        info = evaluation.get("intervals") or {}
        resamples = next(iter(intervals.values())).get("resamples")
        parts.append(
            f'<p class="muted">Intervals: percentile bootstrap over the test rows, {_e(_num(resamples))} '
            f"resamples, seed {_e(info.get('seed', DASH))}.</p>"
        )
    description = (evaluation.get("trivial_baseline") or {}).get("description")
    if description:
        parts.append(f'<p class="muted">Trivial model: {_e(description)}.</p>')
    from flywheel.model_card import champion_figures, threshold_classes_calibration

    parts.append(threshold_classes_calibration(evaluation))

    threshold = run.get("gate_threshold")
    higher = bool(gate.get("higher_is_better", True))
    decision = gate_decision(gate.get("value"), threshold, higher, run.get("gate_passed"))
    if run.get("gate_passed") is None and decision is not None and "passed" in gate:
        decision = decision and bool(gate["passed"])
    verdict = {True: _badge("passed"), False: _badge("failed"), None: _badge("undecided")}[decision]
    consequence = {
        True: "the model package is registered for approval",
        False: "the pipeline stops at its Fail step; no model package is registered",
        None: "no threshold was given",
    }[decision]
    parts.append("<h3>Metric gate</h3>")
    parts.append(
        _kv(
            [
                ("Metric", _code(gate_metric)),
                ("Value", _e(_num(gate.get("value")))),
                ("Threshold", _e(_num(threshold)) + f" ({'≥' if higher else '≤'} required)"),
                ("Decision", f"{verdict} {_e(consequence)}"),
            ]
        )
    )
    checks = gate.get("checks") or []
    if checks:
        parts.append(
            _table(
                ["check", "result", "reason"],
                [
                    (_e(c.get("check")), _badge("passed") if c.get("passed") else _badge("failed"), _e(c.get("reason")))
                    for c in checks
                ],
                cls="gate-checks",
            )
        )

    parts.append("<h3>Champion / challenger</h3>")
    champ_value = champion.get("metric_value")
    not_worse = champion.get("challenger_not_worse")
    if champ_value is None:
        parts.append(_empty("No approved champion to compare with (no version of the group is approved)."))
    else:
        parts.append(
            _table(
                ["", _e(gate_metric or "metric")],
                [
                    ("champion (current production)", _e(_num(champ_value))),
                    ("challenger (this run)", _e(_num(gate.get("value")))),
                ],
            )
        )
        verdict_cc = _badge("passed") if not_worse else _badge("failed")
        parts.append(f"<p>Challenger not worse than champion: {verdict_cc}</p>")
        if champion.get("verdict"):
            diff = champion.get("difference")
            parts.append(
                f'<p class="verdict">Verdict: <strong>{_e(champion["verdict"])}</strong>'
                + (f", difference {_e(_num(diff))}" if isinstance(diff, int | float) else "")
                + (f" ({_e(champion['noise_method'])})" if champion.get("noise_method") else "")
                + "</p>"
            )
    parts.append(champion_figures(run))
    parts.append(_fairness(evaluation))
    return _section("evaluation", "Evaluation", "".join(parts))


def _fairness(evaluation: Mapping[str, Any]) -> str:
    fairness = evaluation.get("fairness")
    if not fairness:
        return "<h3>Fairness</h3>" + _empty("No protected column in the data contract: fairness not measured.")
    parts = ["<h3>Fairness</h3>"]
    if fairness.get("used_as_features"):
        parts.append(f"<p>{_badge('warning')} The protected columns are model features (contract opt-in).</p>")
    else:
        parts.append('<p class="muted">Protected columns are not model features; measured on the test rows.</p>')
    for column, result in (fairness.get("columns") or {}).items():
        groups = dict(result.get("groups") or {})
        keys = [k for k in next(iter(groups.values()), {}) if k != "rows"]
        rows = [[_e(g), _e(_num(e.get("rows"))), *(_e(_num(e.get(k), 3)) for k in keys)] for g, e in groups.items()]
        parts.append(f"<h4>{_e(column)}</h4>" + _table(["group", "rows", *(k.replace("_", " ") for k in keys)], rows))
        gaps = result.get("gaps") or {}
        parts.append(
            _kv((name.replace("_", " "), _e(_num(value, 3))) for name, value in gaps.items())
            + f'<p class="muted">Groups under {_e(result.get("min_group_rows"))} test rows are left out of the gaps; '
            "a selection-rate ratio under 0.8 fails the four-fifths rule.</p>"
        )
    return "".join(parts)


def _when(value: Any) -> str:
    """An ISO-8601 timestamp to the second, in UTC (no microseconds); other values as given."""
    if not value:
        return DASH
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.tzinfo is not None else "")


def _plots(paths: Sequence[Path]) -> str:
    if not paths:
        return _section("plots", "Evaluation plots", _empty("No plots."))
    figures, missing = [], []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            missing.append(f"{path.name} (not found)")
            continue
        if not data.startswith(PNG_MAGIC):
            missing.append(f"{path.name} (not a PNG)")
            continue
        if len(data) > MAX_PLOT_BYTES:
            missing.append(f"{path.name} (too large to embed: {len(data):,} bytes)")
            continue
        caption = _PLOT_TITLES.get(path.stem, path.stem.replace("_", " "))
        b64 = base64.b64encode(data).decode("ascii")
        figures.append(
            f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    content = f'<div class="plots">{"".join(figures)}</div>'
    if missing:
        content += _empty("Not embedded: " + "; ".join(missing))
    return _section("plots", "Evaluation plots", content)


def _history(lin: Mapping[str, Any]) -> str:
    """The package's place in its group: first version, or the earlier versions and their approval."""
    version = lin.get("model_package_version")
    earlier = [v for v in lin.get("group_versions") or [] if version is None or int(v["version"]) < int(version)]
    if version is None:
        return ""
    if not earlier and "group_versions" in lin:
        return "the first version of its model package group"
    if not earlier:
        return ""
    counts: dict[str, int] = {}
    for v in earlier:
        counts[str(v.get("approval"))] = counts.get(str(v.get("approval")), 0) + 1
    shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    deployed = [v["version"] for v in earlier if v.get("deployed")]
    return f"{len(earlier)} earlier version(s): {shown}" + (f"; version {deployed[0]} is deployed" if deployed else "")


def _lineage(run: Mapping[str, Any]) -> str:
    lin = run.get("lineage") or {}
    execution = lin.get("execution_arn") or run.get("execution_id")
    nodes: list[tuple[str, list[tuple[str, str]]]] = [
        ("Data", [("batch", _code(lin.get("data_uri")))]),
        ("Pipeline execution", [("id", _code(execution)), ("status", _badge(run.get("status")))]),
    ]
    missing: list[str] = []
    if lin.get("model_package_arn"):
        package = [
            ("ARN", _code(lin.get("model_package_arn"))),
            ("version", _e(lin.get("model_package_version", DASH))),
            ("approval", _badge(lin["approval_status"]) if lin.get("approval_status") else DASH),
            ("model data", _code(lin.get("model_data_uri"))),
        ]
        history = _history(lin)
        if history:
            package.append(("group", _e(history)))
        nodes.append(("Model package", package))
        if lin.get("endpoint_name"):
            nodes.append(
                ("Endpoint", [("name", _code(lin.get("endpoint_name"))), ("url", _code(lin.get("endpoint_url")))])
            )
        else:
            missing.append("not served in this run (an approved version is deployed by the lifecycle)")
    else:
        missing.append("no model package registered by this run, so nothing to deploy")
    boxes = []
    for title, rows in nodes:
        inner = "".join(f"<div><span class='muted'>{_e(k)}</span> {v}</div>" for k, v in rows)
        boxes.append(f'<div class="node"><h4>{_e(title)}</h4>{inner}</div>')
    chain = '<div class="lineage">' + '<div class="arrow">→</div>'.join(boxes) + "</div>"
    note = "".join(_empty(m[:1].upper() + m[1:] + ".") for m in missing)
    return _section("lineage", "Lineage", chain + note)


def _serving(run: Mapping[str, Any]) -> str:
    serving = run.get("serving")
    if not serving:
        return _section("serving", "Serving", _empty("The model was not served in this run."))
    labels = {
        "p50_ms": "latency p50 (ms per request)",
        "p99_ms": "latency p99 (ms per request)",
        "rows_per_s": "throughput (rows/s)",
        "requests": "requests",
        "batch_rows": "rows per batch request",
    }
    digits = {"rows_per_s": 0}
    rows = [(labels.get(k, k.replace("_", " ")), _e(_num(v, digits.get(k, 2)))) for k, v in serving.items()]
    return _section("serving", "Serving", _kv(rows))


def _artifacts(run: Mapping[str, Any]) -> str:
    artifacts = run.get("artifacts") or {}
    if not artifacts:
        return _section("artifacts", "Artifacts", _empty("No artifact locations recorded."))
    return _section("artifacts", "Artifacts", _kv((str(k), _code(v)) for k, v in artifacts.items()))


def _extra(run: Mapping[str, Any]) -> str:
    out = []
    for i, sec in enumerate(run.get("extra_sections") or []):
        rows = [(str(k), _e(_num(v))) for k, v in sec.get("rows", [])]
        out.append(_section(f"extra-{i}", str(sec.get("title", "")), _kv(rows) if rows else _empty("Nothing.")))
    return "".join(out)


_CSS = """
:root{--ok:#1a7f37;--bad:#cf222e;--mut:#57606a;--bd:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328}
header{background:#0d1117;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c9d1d9}main{padding:8px 32px 32px;max-width:1200px}
h2{border-bottom:1px solid var(--bd);padding-bottom:4px;margin-top:28px}h3{margin:18px 0 6px;font-size:15px}
table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid var(--bd);padding:4px 10px;text-align:left;
vertical-align:top}thead th,table.kv th{background:var(--bg);font-weight:600}table.kv th{width:200px}
code{background:var(--bg);padding:1px 4px;border-radius:4px;font-size:12.5px;word-break:break-all}
.badge{display:inline-block;padding:0 8px;border-radius:10px;font-weight:600;font-size:12.5px;color:#fff;
background:var(--mut)}.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}
.tag{font-size:11px;border:1px solid var(--mut);border-radius:6px;padding:0 4px;color:var(--mut)}
.muted{color:var(--mut)}.plots{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;border:1px solid var(--bd);padding:8px;border-radius:6px}figure img{max-width:420px;display:block}
figcaption{text-align:center;color:var(--mut)}
.lineage{display:flex;align-items:stretch;gap:8px;flex-wrap:wrap}.node{border:1px solid var(--bd);
border-radius:6px;padding:8px 12px;min-width:200px;max-width:320px;background:var(--bg)}.node h4{margin:0 0 4px}
.arrow{align-self:center;font-size:22px;color:var(--mut)}footer{color:var(--mut);padding:0 32px 24px}
"""


def render_report(run: RunReport | Mapping[str, Any]) -> str:
    """The report as one HTML document (see the module docstring for ``run``)."""
    missing = [k for k in ("team", "execution_id", "status") if not run.get(k)]
    if missing:
        raise ValueError(f"run is missing required key(s): {', '.join(missing)}")
    evaluation = _evaluation(run)
    # An execution ARN ends with the execution id; the full ARN is in the summary table.
    title = run.get("title") or f"Flywheel run {str(run['execution_id']).rsplit('/', 1)[-1]}"
    subtitle = " · ".join(str(run[k]) for k in ("team", "pipeline", "objective") if run.get(k))
    from flywheel.model_card import baseline_section, card_section, verdict_section

    body = "".join(
        [
            _section("summary", "Run", _summary(run)),
            card_section(run, evaluation),
            verdict_section(run, evaluation),
            _steps(run),
            _contract(run),
            _evaluation_html(run, evaluation),
            baseline_section(run),
            _plots(_plot_paths(run, evaluation)),
            _lineage(run),
            _serving(run),
            _extra(run),
            _artifacts(run),
        ]
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No scripts, no remote anything: the file renders the same offline, in a mail client or an archive.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(title)} {_badge(run['status'])}</h1><p>{_e(subtitle)}</p></header>"
        f"<main>{body}</main><footer>Generated by flywheel at {_e(generated)}.</footer></body></html>\n"
    )


def write_report(path: Path, *, run: RunReport | Mapping[str, Any]) -> Path:
    """Write the report for ``run`` to ``path`` (parent folders created; replaced atomically); returns ``path``."""
    document = render_report(run)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written next to the target and renamed: a reader never sees half a report. (Not mkstemp: its 0600
    # mode would make the report unreadable to the rest of the team where umask allows sharing.)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("x", encoding="utf-8") as fh:
            fh.write(document)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# --- a local run's report ------------------------------------------------------------------------------


_OPERATORS = {
    "GreaterThanOrEqualTo": "≥",
    "GreaterThan": ">",
    "LessThanOrEqualTo": "≤",
    "LessThan": "<",
    "Equals": "=",
    "In": "in",
}


def condition_words(condition: Mapping[str, Any] | None) -> str:
    """A condition step's evaluations in words, numbers rounded: ``0.8545 ≥ 0.7: yes; 1 = 1: yes``.

    The executor records each as ``"<left!r> <Operator> <right!r> -> <True|False>"``; anything else is shown
    as recorded.
    """
    if not condition:
        return ""
    out = []
    for text in condition.get("Evaluations") or []:
        head, arrow, result = str(text).rpartition(" -> ")
        words = None
        for name, symbol in _OPERATORS.items():
            left, sep, right = head.partition(f" {name} ")
            if arrow and sep and name == "Equals" and right == "True" and left in ("True", "False"):
                words = "passed" if left == "True" else "not passed"  # a recorded flag, e.g. the contract check
                break
            if arrow and sep:
                words = f"{_round_text(left)} {symbol} {_round_text(right)}: {'yes' if result == 'True' else 'no'}"
                break
        out.append(words or str(text))
    return "; ".join(out)


def _round_text(text: str) -> str:
    try:
        value = float(text.strip("'\""))
    except ValueError:
        return text
    return f"{value:.4g}"


def gate_override_label(threshold: float, deployed: float) -> str:
    """The label of a local run whose gate differs from the deployed (configured) one."""
    return f"gate threshold overridden locally: {threshold} (deployed: {deployed})"


def run_report(
    outcome: RunOutcome,
    reading: RunReading,
    *,
    objective: str | None,
    default_gate_threshold: float | None,
    deployment: Mapping[str, Any] | None = None,
    serving: Mapping[str, Any] | None = None,
    endpoint_name: str = "",
    evaluation_dir: Path | None = None,
    card: Mapping[str, Any] | None = None,
    contract_spec: Mapping[str, Any] | None = None,
    champion: Mapping[str, Any] | None = None,
    group_versions: Sequence[Mapping[str, Any]] | None = None,
) -> RunReport:
    """The report of one run: its steps, the parameters it used, its lineage, contract and serving figures.

    The gate threshold is the one the run used (its recorded parameters); ``default_gate_threshold``
    (the team's configured gate) only for a run that recorded none; a template without a gate (no
    threshold either way) gets no gate in its report, one without a data contract (``objective`` None) no
    objective. ``endpoint_name`` is shown when the run's model was served (``serving``). ``card``,
    ``contract_spec``, ``champion`` and ``group_versions`` (every version of the team's group) feed the
    model-card sections.
    """
    record = outcome.execution
    steps: list[StepRecord] = [
        {
            "name": s.name,
            "status": s.status,
            "type": s.type,
            "duration_s": s.duration_s,
            "message": s.failure_reason or condition_words(s.metadata.get("Condition")),
        }
        for s in record.steps
    ]
    evaluation = outcome.evaluation or {}
    for step in steps:
        if step["name"] == reading.quality_gate_step and evaluation.get("gate"):
            gate = evaluation["gate"]
            step["message"] = (
                "every check passed: the model is registered"
                if gate.get("passed")
                else f"gate failed: {gate.get('summary', '')}"
            )
    deployment = deployment or {}
    package = outcome.package or {}
    lineage = {
        "data_uri": outcome.raw_uri,
        "execution_arn": record.execution_arn,
        "model_data_uri": ((package.get("InferenceSpecification") or {}).get("Containers") or [{}])[0].get(
            "ModelDataUrl", ""
        ),
        "model_package_arn": package.get("ModelPackageArn", ""),
        "model_package_version": package.get("ModelPackageVersion"),
        "approval_status": (
            "Approved"
            if deployment.get("ModelPackageArn") == package.get("ModelPackageArn") and package
            else package.get("ModelApprovalStatus", "")
        ),
        "endpoint_name": endpoint_name if serving else "",
        "endpoint_url": (serving or {}).get("endpoint_url", ""),
    }
    threshold = reading.gate_threshold(record.parameters)
    threshold = default_gate_threshold if threshold is None else threshold
    run: RunReport = {
        "team": outcome.team,
        "pipeline": record.pipeline_name,
        "execution_id": record.execution_arn,
        "status": record.status,
        "started_at": record.start_time,
        "finished_at": record.end_time or "",
        "steps": steps,
        "lineage": {k: v for k, v in lineage.items() if v not in (None, "")},  # type: ignore[typeddict-item]
        "artifacts": {
            "raw batch": outcome.raw_uri,
            **{f"{k} output": v for s in record.steps for k, v in (s.metadata.get("Outputs") or {}).items()},
            "job logs": str(Path(record.work_dir)),
        },
    }
    if objective is not None:
        run["objective"] = objective
    if threshold is not None:
        run["gate_threshold"] = threshold
        if default_gate_threshold is not None and threshold != default_gate_threshold:
            run["gate_override"] = gate_override_label(threshold, default_gate_threshold)
    if outcome.evaluation is not None:
        run["evaluation"] = outcome.evaluation  # read as the template declares (its evaluation file)
    gate = record.step(reading.quality_gate_step) if reading.quality_gate_step else None
    if gate is not None and gate.metadata.get("Condition"):
        run["gate_passed"] = gate.metadata["Condition"]["Outcome"] == "True"
    if evaluation_dir is not None:
        run["evaluation_dir"] = evaluation_dir
    validation = outcome.validation
    if validation is not None:
        contract: ContractResult = {
            "passed": bool(validation.get("passed")),
            "summary": str(validation.get("summary", "")),
            "rows": int(validation.get("rows", 0) or 0),
            "failures": list(validation.get("failures", [])),
            "quarantined_files": list(validation.get("quarantined_files", [])),
        }
        if outcome.quarantine_uri:
            contract["quarantine_uri"] = outcome.quarantine_uri
        run["contract"] = contract
    if serving:
        run["serving"] = ServingFigures(
            p50_ms=serving["p50_ms"],
            p99_ms=serving["p99_ms"],
            rows_per_s=serving["rows_per_s"],
            requests=serving["requests"],
            batch_rows=serving["batch_rows"],
        )
    if card:
        run["card"] = dict(card)
    if contract_spec:
        run["contract_spec"] = dict(contract_spec)
    if champion:
        run["champion"] = dict(champion)
    if group_versions is not None and "model_package_version" in run["lineage"]:
        run["lineage"]["group_versions"] = [dict(v) for v in group_versions]
    if record.failure_reason:
        run["extra_sections"] = [{"title": "Failure", "rows": [("reason", record.failure_reason)]}]
    return run
