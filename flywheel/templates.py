"""What the local runtime reads of a template's runs: step and output names, the gate parameter.

The only module of ``flywheel/`` that knows a template's step and output names; the registry mirror,
the run outcome, the report and ``status`` ask it. (Today it describes the ``tabular`` template; the
template contract in ``pipelines/`` is to declare this per template.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

DEFAULT_TEMPLATE: Final = "tabular"


@dataclass(frozen=True)
class RunReading:
    """The names through which the runtime reads one template's runs."""

    template: str
    #: The pipeline parameter holding the metric gate's threshold.
    gate_threshold_parameter: str
    #: The condition step deciding the quality gate.
    quality_gate_step: str
    #: Step output (``Outputs`` in a step's metadata) -> meaning.
    validation_output: str
    quarantine_output: str
    evaluation_output: str
    test_split_output: str
    #: The file in the evaluation output with the metrics (and ``gate``/``champion``).
    evaluation_file: str
    #: The per-host validation files in the validation output (``validation-<host>.json``), and the single one.
    validation_file_prefix: str
    validation_file: str
    #: The quarantine report in the quarantine output.
    quarantine_report_file: str

    def merge_status(self, statuses: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The per-host validation statuses merged by the template's own rule."""
        from pipelines.tabular.contract import merge_status

        return merge_status(statuses)

    def gate_threshold(self, parameters: Mapping[str, Any]) -> float | None:
        """The threshold a run used (its resolved parameters), or None if it did not record one."""
        value = parameters.get(self.gate_threshold_parameter)
        try:
            return float(value) if value is not None and not isinstance(value, bool) else None
        except (TypeError, ValueError):
            return None


TABULAR: Final = RunReading(
    template="tabular",
    gate_threshold_parameter="GateThreshold",
    quality_gate_step="QualityGate",
    validation_output="status",
    quarantine_output="quarantine",
    evaluation_output="evaluation",
    test_split_output="test",
    evaluation_file="evaluation.json",
    validation_file_prefix="validation-",
    validation_file="validation.json",
    quarantine_report_file="report.json",
)


def reading(template: str = DEFAULT_TEMPLATE) -> RunReading:
    """How the runtime reads runs of ``template``."""
    if template != TABULAR.template:
        raise ValueError(f"the local runtime does not know template {template!r}")
    return TABULAR
