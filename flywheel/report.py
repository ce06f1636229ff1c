"""The HTML report of one local pipeline run: the model card plus what only the local runtime knows.

The card itself (every section, the schema of ``run``, :func:`render_report` and :func:`write_report`) is
:mod:`pipelines.tabular.model_card`: one renderer for the ``Evaluate`` step, which stores the card with the
package in the deployed pipeline, and for this runtime. :func:`run_report` shapes the :class:`RunReport`
dict of a local run (its outcome, the steps, the deployment, the serving figures) for it; see that module's
docstring for each key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.tabular.model_card import (
    DASH,
    MAX_PLOT_BYTES,
    PNG_MAGIC,
    ContractResult,
    Lineage,
    RunReport,
    Section,
    ServingFigures,
    StepRecord,
    gate_decision,
    render_report,
    write_report,
)

if TYPE_CHECKING:
    from flywheel.outcome import RunOutcome
    from flywheel.templates import RunReading

__all__ = [
    "DASH",
    "MAX_PLOT_BYTES",
    "PNG_MAGIC",
    "ContractResult",
    "Lineage",
    "RunReport",
    "Section",
    "ServingFigures",
    "StepRecord",
    "condition_words",
    "gate_decision",
    "gate_override_label",
    "render_report",
    "run_report",
    "write_report",
]


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
