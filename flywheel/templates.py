"""What the local runtime reads of a template's runs: step and output names, the gate parameter.

The one module of ``flywheel/`` that maps a template's declared names (:class:`pipelines.template.
PipelineSteps`, from its ``template.py``) to what the run outcome, the registry mirror, the local
deployment, the report and ``status`` read; a step, output, file or function a template does not
declare is simply not read (a template without a register step: a run ends with no package; without
a gate parameter: no gate is shown).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.template import PipelineTemplate


@dataclass(frozen=True)
class RunReading:
    """The names through which the runtime reads one template's runs (None: the template has none)."""

    template: str
    #: The pipeline parameter holding the landed batch's S3 prefix.
    input_data_parameter: str
    #: Every parameter the definition declares (empty: the template did not list them).
    parameters: tuple[str, ...]
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
    #: The files of the validation-status and quarantine outputs.
    validation_file_prefix: str | None = None
    validation_file: str | None = None
    quarantine_report_file: str | None = None
    #: The model's input columns: a JSON file in ``model.tar.gz`` and its field.
    model_metadata_file: str | None = None
    feature_names_field: str | None = None
    #: Merges per-host statuses (the template's ``merge_status``), None if it declares none.
    status_merger: Callable[[Sequence[Mapping[str, Any]]], Mapping[str, Any]] | None = None

    @classmethod
    def of(cls, template: PipelineTemplate) -> RunReading:
        """How the runtime reads runs of ``template`` (its declared :class:`pipelines.template.PipelineSteps`)."""
        steps = template.steps
        outputs = steps.preprocess_outputs
        return cls(
            template=template.name,
            input_data_parameter=steps.input_data_parameter,
            # The local build also declares the template's local-only override parameters.
            parameters=(*steps.parameters, *steps.local_override_parameters),
            gate_threshold_parameter=steps.gate_parameter,
            quality_gate_step=steps.gate_step,
            validation_output=outputs.status,
            quarantine_output=outputs.quarantine,
            evaluation_output=steps.evaluation_output,
            test_split_output=outputs.test,
            evaluation_file=steps.evaluation_file,
            validation_file_prefix=outputs.status_file_prefix,
            validation_file=outputs.status_file,
            quarantine_report_file=outputs.quarantine_report_file,
            model_metadata_file=steps.model_metadata_file,
            feature_names_field=steps.feature_names_field,
            status_merger=template.merge_status,
        )

    @property
    def has_gate(self) -> bool:
        """Whether the template's runs have a metric gate (a threshold parameter)."""
        return self.gate_threshold_parameter is not None

    def merge_status(self, statuses: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
        """The per-host validation statuses merged by the template's rule; a single one as it is; None if
        several hosts reported and the template declares no rule to merge them."""
        if self.status_merger is not None:
            return dict(self.status_merger(statuses))
        return dict(statuses[0]) if len(statuses) == 1 else None

    def gate_threshold(self, parameters: Mapping[str, Any]) -> float | None:
        """The threshold a run used (its resolved parameters), or None if it did not record one."""
        if self.gate_threshold_parameter is None:
            return None
        value = parameters.get(self.gate_threshold_parameter)
        try:
            return float(value) if value is not None and not isinstance(value, bool) else None
        except (TypeError, ValueError):
            return None

    def accepted(self, parameters: Mapping[str, str]) -> dict[str, str]:
        """The lifecycle's start parameters this template's pipeline declares (all if it lists none).

        The data-arrival handler passes the same parameters to every pipeline (``InputDataUri``,
        ``ChampionMetric``); a pipeline that declares fewer would refuse the others.
        """
        if not self.parameters:
            return dict(parameters)
        return {k: v for k, v in parameters.items() if k in self.parameters}


def reading(template: str, search_path: Iterable[Path] = ()) -> RunReading:
    """How the runtime reads runs of the template named ``template`` (found by :func:`pipelines.load_template`)."""
    from pipelines import load_template

    return RunReading.of(load_template(template, search_path=search_path))
