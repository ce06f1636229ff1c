"""What the local runtime reads of a template's runs: step and output names, the gate parameter.

The one module of ``flywheel/`` that maps a template's declared names (:class:`pipelines.template.
PipelineSteps`, from its ``template.py``) to what the run outcome, the registry mirror, the report and
``status`` read; an output a template does not declare is simply not read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

DEFAULT_TEMPLATE: Final = "tabular"


@dataclass(frozen=True)
class RunReading:
    """The names through which the runtime reads one template's runs (None: the template has none)."""

    template: str
    #: The pipeline parameter holding the metric gate's threshold.
    gate_threshold_parameter: str | None
    #: The condition step deciding the quality gate.
    quality_gate_step: str | None
    #: Step outputs (``Outputs`` in a step's metadata).
    validation_output: str | None
    quarantine_output: str | None
    evaluation_output: str | None
    test_split_output: str | None
    #: The file in the evaluation output with the metrics (and ``gate``/``champion``).
    evaluation_file: str | None
    # The preprocessing status files (the container contract of preprocess steps, not declared per template).
    validation_file_prefix: str = "validation-"
    validation_file: str = "validation.json"
    quarantine_report_file: str = "report.json"

    def merge_status(self, statuses: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The per-host validation statuses merged (a batch passes only if every host passed)."""
        from pipelines.tabular.contract import merge_status

        return merge_status(statuses)

    def gate_threshold(self, parameters: Mapping[str, Any]) -> float | None:
        """The threshold a run used (its resolved parameters), or None if it did not record one."""
        if self.gate_threshold_parameter is None:
            return None
        value = parameters.get(self.gate_threshold_parameter)
        try:
            return float(value) if value is not None and not isinstance(value, bool) else None
        except (TypeError, ValueError):
            return None


def reading(template: str = DEFAULT_TEMPLATE, search_path: Sequence[Any] = ()) -> RunReading:
    """How the runtime reads runs of ``template`` (its ``template.py``, found by :func:`pipelines.load_template`)."""
    from pipelines import load_template

    steps = load_template(template, search_path=search_path).steps
    outputs = steps.preprocess_outputs
    return RunReading(
        template=template,
        gate_threshold_parameter=steps.gate_parameter,
        quality_gate_step=steps.gate_step,
        validation_output=outputs.status,
        quarantine_output=outputs.quarantine,
        evaluation_output=steps.evaluation_output,
        test_split_output=outputs.test,
        evaluation_file=steps.evaluation_file,
    )
