"""The model card: one self-contained HTML file (inline CSS, plots as base64 PNG) an approver decides from.

One renderer for both places the card is written: the ``Evaluate`` step (``evaluate.py --card``: beside
``evaluation.json``, so the deployed pipeline stores it with the model package it registers) and the local
runtime (``flywheel.report``, which adds what only it knows: the steps, the serving figures, the registered
version, the lineage to the endpoint). Standard library only: it runs in the framework container.
:func:`write_report` renders a ``run`` mapping. Every key but ``team``,
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

The model-card sections: card, "Should I approve?", contract columns, threshold/per-class/calibration,
champion figures, fairness, drift baseline.
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
from typing import Any, Required, TypedDict

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
_OK = {"succeeded", "success", "passed", "pass", "approved", "completed", "inservice", "executed", "true", "gatepassed"}
_BAD = {"failed", "failure", "fail", "rejected", "error", "stopped", "false", "gatefailed"}


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
    op = "≥" if higher else "≤"
    parts.append("<h3>Metric gate</h3>")
    parts.append(
        _kv(
            [
                ("Metric", _code(gate_metric)),
                ("Value", _e(_num(gate.get("value")))),
                ("Threshold", _e(DASH if threshold is None else f"{op} {_short(threshold)} required")),
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
        paired = champion.get("paired") or {}
        if paired:
            same = "; the two models' predictions are identical" if paired.get("identical_predictions") else ""
            worse = f"{float(paired.get('share_worse') or 0):.0%}"
            parts.append(
                f'<p class="muted">Both models scored on these {_e(_num(evaluation.get("test_rows")))} test rows: '
                f"95% interval of the difference (challenger - champion) {_e(_num(paired.get('low')))} to "
                f"{_e(_num(paired.get('high')))}, challenger worse in {_e(worse)} of "
                f"{_e(_num(paired.get('resamples')))} resamples{_e(same)}.</p>"
            )
        if isinstance(champion.get("recorded_value"), int | float):
            parts.append(
                f'<p class="muted">The champion\'s own run measured {_e(_num(champion["recorded_value"]))} on its '
                "test rows (another batch); the comparison above is on this run's rows.</p>"
            )
        elif champion.get("unpaired_reason"):
            parts.append(
                f'<p class="muted">Compared on the champion\'s recorded value only: '
                f"{_e(champion['unpaired_reason'])}.</p>"
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
    elif run.get("written_by") == WRITTEN_BY_EVALUATE and run.get("gate_passed"):
        missing.append(
            "the model package is registered after this card is written (RegisterModel, PendingManualApproval); "
            "the card is stored with it (ModelMetrics' folder, customer metadata flywheel:model-card)"
        )
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


# --- model-card sections ---------------------------------------------------------------------------


def card_section(run: Mapping[str, Any], evaluation: Mapping[str, Any] | None) -> str:
    """Who owns the model, what it is for, what it predicts and at which threshold."""
    card = dict(run.get("card") or {})
    spec = dict(run.get("contract_spec") or {})
    training = dict((evaluation or {}).get("training") or {})
    threshold = dict((evaluation or {}).get("decision_threshold") or {})
    rows = [
        ("Team", _e(run.get("team"))),
        ("Description", _e(card.get("description") or DASH)),
        ("Owner", _e(card.get("owner") or "not set (teams.yaml: owner)")),
        ("Intended use", _e(card.get("intended_use") or "not set (teams.yaml: intended_use)")),
        ("Objective", _e(run.get("objective", DASH))),
        ("Target", _code(spec.get("target") or training.get("target"))),
    ]
    labels = training.get("class_labels")
    if labels:
        rows.append(("Classes (model order)", _e(", ".join(repr(c) for c in labels))))
    if training.get("positive_label") is not None:
        said = ""
        if spec.get("positive_class") is not None:
            said = " (set in the contract: positive_class)"
        elif spec:
            said = " (the target's second allowed value: the contract sets no positive_class)"
        rows.append(("Positive class", _e(f"{training['positive_label']!r}{said}")))
    if threshold:
        rows.append(
            (
                "Decision threshold",
                _e(f"P({threshold.get('positive_label')!r}) >= {_num(threshold.get('value'), 2)}: ")
                + _e(threshold.get("method", "")),
            )
        )
    return _section("card", "Model card", _kv(rows))


def verdict_section(run: Mapping[str, Any], evaluation: Mapping[str, Any] | None) -> str:
    """The decision at a glance: gate reasons in words, warnings, and the commands to approve or reject."""
    parts: list[str] = []
    lin = run.get("lineage") or {}
    version = lin.get("model_package_version")
    if evaluation is None:
        parts.append(_empty("Nothing to approve: the run was not evaluated (see Steps and Data contract)."))
        return _section("decide", "Should I approve?", "".join(parts))
    gate = dict(evaluation.get("gate") or {})
    passed = bool(gate.get("passed", 0))
    head = (
        f"{_badge('passed')} The quality gate passed: every check below holds."
        if passed
        else f"{_badge('failed')} The quality gate failed: {_e(gate.get('summary', ''))}."
    )
    parts.append(f"<p>{head}</p>")
    checks = gate.get("checks") or []
    if checks:
        items = "".join(
            f"<li>{_badge('passed') if c.get('passed') else _badge('failed')} "
            f"<strong>{_e(_CHECK_NAMES.get(str(c.get('check')), c.get('check')))}</strong>: "
            f"{_e(c.get('reason'))}</li>"
            for c in checks
        )
        parts.append(f'<ul class="reasons">{items}</ul>')
    warnings = list((evaluation.get("training") or {}).get("warnings") or [])
    fairness = evaluation.get("fairness") or {}
    for column, result in (fairness.get("columns") or {}).items():
        ratio = (result.get("gaps") or {}).get("selection_rate_ratio")
        if isinstance(ratio, int | float) and ratio < 0.8:
            warnings.append(f"selection-rate ratio on {column!r} is {ratio:.2f}, below the four-fifths rule's 0.8")
    if warnings:
        parts.append("<p><strong>Before approving, check:</strong></p><ul>")
        parts.append("".join(f"<li>{_badge('warning')} {_e(w)}</li>" for w in warnings) + "</ul>")
    if version not in (None, "") and lin.get("approval_status") in ("Approved", "Rejected"):
        ref = f"{run.get('team')}:{version}"
        status = str(lin["approval_status"])
        undo = f'flywheel reject {ref} --note "<why>"' if status == "Approved" else f"flywheel approve {ref}"
        parts.append(
            f"<p>{_badge(status.lower())} Version {_e(version)} is already {_e(status)} "
            f"(approval recorded before this report was written). To change it: {_code(undo)}</p>"
        )
    elif version not in (None, ""):
        ref = f"{run.get('team')}:{version}"
        parts.append(
            _kv(
                [
                    ("Approve (deploys it)", _code(f"flywheel approve {ref}")),
                    ("Reject", _code(f'flywheel reject {ref} --note "<why>"')),
                ]
            )
        )
        parts.append(
            '<p class="muted">Approving a model worse than the deployed one asks for confirmation and says by '
            "how much (<code>--yes</code> skips the question).</p>"
        )
    elif run.get("written_by") == WRITTEN_BY_EVALUATE:
        # The Evaluate step writes the card before RegisterModel assigns the version (and only a passed gate
        # registers a package): the commands name the package the pipeline registers next.
        if passed:
            arn = "arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>"
            parts.append(
                _kv(
                    [
                        ("Approve (deploys it)", _code(f"flywheel approve {run.get('team')}:<version>")),
                        ("Reject", _code(f'flywheel reject {run.get("team")}:<version> --note "<why>"')),
                        (
                            "With the AWS CLI",
                            _code(f"aws sagemaker update-model-package --model-package-arn {arn} "
                                  "--model-approval-status Approved"),
                        ),
                    ]
                )
            )  # fmt: skip
            parts.append(
                "<p class=\"muted\">Written by the pipeline's Evaluate step, before RegisterModel gives this run's "
                "package its version: the version is the newest of the team's model package group "
                "(PendingManualApproval) whose <code>flywheel:execution-id</code> is this run's.</p>"
            )
        else:
            parts.append(
                _empty("The gate failed: the pipeline registers no model package, there is nothing to approve.")
            )
    else:
        parts.append(_empty("No model package was registered by this run: there is nothing to approve."))
    return _section("decide", "Should I approve?", "".join(parts))


_CHECK_NAMES = {
    "defined": "metric defined",
    "threshold": "threshold",
    "beats_trivial": "beats the trivial model",
    "second_metric": "second metric",
    "champion": "champion / challenger",
    "fairness": "fairness",
}


def contract_spec(run: Mapping[str, Any]) -> str:
    """The team's data contract: every column's dtype, role and checks, and the batch-level settings."""
    spec = run.get("contract_spec")
    if not spec:
        return ""
    rows = []
    for col in spec.get("columns") or []:
        checks = []
        if col.get("min") is not None or col.get("max") is not None:
            checks.append(f"range {_bound(col.get('min'))} to {_bound(col.get('max'))}")
        if col.get("allowed") is not None:
            checks.append("allowed " + ", ".join(map(str, col["allowed"]))[:160])
        if col.get("generalize"):
            checks.append(f"generalized: {col['generalize']}" + (f" ({col['width']})" if col.get("width") else ""))
        rows.append(
            (
                _code(col.get("name")),
                _e(col.get("dtype")),
                _e(col.get("role", "feature")),
                _e("yes" if col.get("nullable") else "no"),
                _e("; ".join(checks) or DASH),
            )
        )
    split = spec.get("split") or {}
    settings = (
        f"min_rows {spec.get('min_rows')}; split validation {split.get('validation')}, test {split.get('test')} "
        f"(seed {split.get('seed')}); min_class_count {spec.get('min_class_count')}; empty_feature "
        f"{spec.get('empty_feature')}; protected_as_features {spec.get('protected_as_features')}"
    )
    return (
        "<h3>Contract</h3>"
        + _table(["column", "dtype", "role", "nullable", "checks"], rows, cls="contract-columns")
        + f'<p class="muted">{_e(settings)}</p>'
    )


def _bound(value: Any) -> str:
    """A contract bound as written: ``120`` for an integer bound, ``0.5`` or ``100000`` otherwise."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _short(value) if value is not None else "none"


def threshold_classes_calibration(evaluation: Mapping[str, Any]) -> str:
    """Decision threshold, per-class metrics, confusion matrix and calibration."""
    parts: list[str] = []
    chosen = evaluation.get("decision_threshold")
    if chosen:
        val = chosen.get("validation") or {}
        score = str(val.get("score_name", "")).replace("_", " ")
        detail = (
            f"; on validation {score} {_num(val.get('validation_score'), 3)} at it vs "
            f"{_num(val.get('validation_score_at_0_5'), 3)} at 0.5"
            if "validation_score" in val
            else ""
        )
        parts.append(
            "<h3>Decision threshold</h3>"
            f"<p>A row is predicted {_e(repr(chosen.get('positive_label')))} when its probability is at least "
            f"<strong>{_e(_num(chosen.get('value'), 2))}</strong>: {_e(chosen.get('method'))}{_e(detail)}. "
            "Serving uses the same threshold; the threshold-dependent metrics above (accuracy, F1, precision, "
            "recall, balanced accuracy) are measured at it.</p>"
        )
    per_class = evaluation.get("per_class")
    if per_class:
        rows = [
            (
                _e(repr(c.get("label"))),
                _e(_num(c.get("support"))),
                _e(_num(c.get("predicted"))),
                _e(_num(c.get("precision"), 3)),
                _e(_num(c.get("recall"), 3)),
                _e(_num(c.get("f1"), 3)),
            )
            for c in per_class
        ]
        parts.append(
            "<h3>Per class (test split)</h3>"
            + _table(["class", "rows", "predicted", "precision", "recall", "F1"], rows, cls="per-class")
        )
    matrix = evaluation.get("confusion_matrix")
    if matrix:
        labels = [repr(x) for x in matrix.get("labels") or []]
        cells = matrix.get("rows_actual_columns_predicted") or []
        matrix_rows = [[_e(f"actual {labels[i]}"), *(_e(_num(v)) for v in row)] for i, row in enumerate(cells)]
        parts.append(
            "<h3>Confusion matrix (test split)</h3>"
            + _table(["", *(f"predicted {x}" for x in labels)], matrix_rows, cls="confusion")
        )
    cal = evaluation.get("calibration")
    if cal:
        cal_rows = [
            (
                _e(f"{b['low']:.1f}-{b['high']:.1f}"),
                _e(_num(b.get("rows"))),
                _e(_num(b.get("predicted"), 3)),
                _e(_num(b.get("observed"), 3)),
            )
            for b in cal.get("bins") or []
        ]
        parts.append(
            "<h3>Calibration</h3>"
            f"<p>{_e(cal.get('what', ''))}: expected calibration error "
            f"<strong>{_e(_num(cal.get('ece'), 3))}</strong>, Brier score {_e(_num(cal.get('brier'), 3))} "
            f"(lower is better), on {_e(_num(cal.get('rows')))} test rows.</p>"
            + _table(["bin", "rows", "mean predicted", "observed"], cal_rows, cls="calibration")
        )
    elif evaluation.get("calibration", "absent") is None:
        parts.append("<h3>Calibration</h3>" + _empty("Not applicable: a regression model predicts values."))
    return "".join(parts)


def champion_figures(run: Mapping[str, Any]) -> str:
    """The deployed champion's own evaluation (every metric, on its own test split)."""
    champ = run.get("champion")
    if not champ:
        return ""
    evaluation = champ.get("evaluation") or {}
    _, metrics = _metric_section(evaluation)
    second = evaluation.get("second_metric") or {}
    rows = [(_e(name), _e(_num((e or {}).get("value")))) for name, e in metrics.items()]
    if second.get("name") and second["name"] not in metrics:
        rows.append((_e(second["name"]), _e(_num(second.get("value")))))
    test_rows = evaluation.get("test_rows")
    note = (
        f"Version {champ.get('version')} ({champ.get('approval', 'Approved')}), measured by its own run on its "
        f"{_num(test_rows)} test rows (another batch: compare with care; the gate compares on the gate metric)."
    )
    return (
        "<h3>Champion's figures</h3>"
        + f'<p class="muted">{_e(note)}</p>'
        + (_table(["metric", "champion"], rows, cls="champion-metrics") if rows else _empty("No metrics."))
    )


def _short(value: Any) -> str:
    """A statistic in 4 significant digits, without exponent or thousands separator (years stay 2024)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return DASH
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def baseline_section(run: Mapping[str, Any]) -> str:
    """Per-feature summary of the drift baseline (``baseline/statistics.json`` of the evaluation)."""
    directory = run.get("evaluation_dir")
    path = Path(directory) / "baseline" / "statistics.json" if directory is not None else None
    if path is None or not path.is_file():
        return _section("baseline", "Drift baseline", _empty("No baseline statistics in this run."))
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return _section("baseline", "Drift baseline", _empty(f"{path.name} cannot be read."))
    rows = []
    for feature in stats.get("features") or []:
        num = feature.get("numerical_statistics")
        text = feature.get("string_statistics")
        common = (num or text or {}).get("common") or {}
        present, missing = int(common.get("num_present") or 0), int(common.get("num_missing") or 0)
        share = missing / (present + missing) if present + missing else 0.0
        if num:
            summary = (
                f"mean {_short(num.get('mean'))}, std. dev. {_short(num.get('std_dev'))}, "
                f"range {_short(num.get('min'))} to {_short(num.get('max'))}"
            )
        else:
            buckets = ((text or {}).get("distribution") or {}).get("categorical", {}).get("buckets") or []
            top = sorted(buckets, key=lambda b: -int(b.get("count", 0)))[:3]
            summary = f"{(text or {}).get('distinct_count', len(buckets))} values; top: " + ", ".join(
                f"{b.get('value')} ({int(b.get('count', 0)):,})" for b in top
            )
        rows.append(
            (
                _code(feature.get("name")),
                _e(feature.get("role", "")),
                _e(feature.get("inferred_type", "")),
                _e(f"{share:.1%}"),
                _e(summary),
            )
        )
    dataset = stats.get("dataset") or {}
    note = (
        f"Statistics of {_num(dataset.get('item_count'))} training rows: what serving traffic is compared with "
        "(PSI > 0.2 on a feature, or more than 5% unseen values in a closed vocabulary, counts as drift)."
    )
    return _section(
        "baseline",
        "Drift baseline",
        f'<p class="muted">{_e(note)}</p>'
        + _table(["column", "role", "type", "missing", "summary"], rows, cls="baseline"),
    )


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

    # The step's card has no step records, serving figures or artifact list: only the local runtime knows them.
    local = run.get("written_by") != WRITTEN_BY_EVALUATE
    body = "".join(
        [
            _section("summary", "Run", _summary(run)),
            card_section(run, evaluation),
            verdict_section(run, evaluation),
            _steps(run) if local else "",
            _contract(run),
            _evaluation_html(run, evaluation),
            baseline_section(run),
            _plots(_plot_paths(run, evaluation)),
            _lineage(run),
            _serving(run) if local else "",
            _extra(run),
            _artifacts(run) if local else "",
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


#: The model card's name next to the package's ``evaluation.json`` (its ModelMetrics' folder).
CARD_FILE = "model-card.html"
#: ``run["written_by"]`` of the card the ``Evaluate`` step writes (no steps, serving or version yet).
WRITTEN_BY_EVALUATE = "evaluate"


def evaluation_card_run(
    evaluation: Mapping[str, Any],
    evaluation_dir: Path,
    *,
    team: str,
    execution_id: str,
    contract_spec: Mapping[str, Any] | None,
    card: Mapping[str, Any],
    input_data_uri: str | None,
    gate_threshold: float | None,
) -> dict[str, Any]:
    """The ``run`` of the card the ``Evaluate`` step writes beside ``evaluation.json``.

    Evaluate runs only after the batch passed the data contract (DataContractCheck), so the card says so.
    """
    training = evaluation.get("training") or {}
    rows = [training.get("train_rows"), training.get("validation_rows"), evaluation.get("test_rows")]
    passed = bool((evaluation.get("gate") or {}).get("passed"))
    run: dict[str, Any] = {
        "title": f"Model card: {team}",
        "team": team,
        "objective": (contract_spec or {}).get("objective", ""),
        "pipeline": "tabular",
        "execution_id": execution_id or "unknown",
        "status": "gate passed" if passed else "gate failed",
        "written_by": WRITTEN_BY_EVALUATE,
        "evaluation": dict(evaluation),
        "evaluation_dir": evaluation_dir,
        "gate_passed": passed,
        "card": dict(card),
        "contract": {
            "passed": True,
            "summary": "the batch passed the data contract (the pipeline evaluates only such batches)",
            "rows": sum(r for r in rows if isinstance(r, int)) or None,
        },
        "lineage": {"data_uri": input_data_uri or "", "execution_arn": execution_id},
    }
    if contract_spec:
        run["contract_spec"] = dict(contract_spec)
    if gate_threshold is not None:
        run["gate_threshold"] = gate_threshold
    return run
