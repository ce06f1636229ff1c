"""Parameters, references (Get / Std:Join / Std:JsonGet) and conditions of the definition language."""

from __future__ import annotations

from typing import Any

import pytest

from flywheel.executor import DefinitionError, ParameterError, ResolutionError
from flywheel.executor.expressions import (
    Scope,
    evaluate_condition,
    json_path,
    parse_path,
    references,
    resolve,
    resolve_parameters,
)

DECLARED = [
    {"Name": "InputDataUri", "Type": "String"},
    {"Name": "Count", "Type": "Integer", "DefaultValue": 1},
    {"Name": "Threshold", "Type": "Float", "DefaultValue": 0.75},
    {"Name": "Flag", "Type": "Boolean", "DefaultValue": False},
    {"Name": "Status", "Type": "String", "DefaultValue": "Pending", "EnumValues": ["Pending", "Approved"]},
]


def _scope(**steps: Any) -> Scope:
    evaluation = {"gate": {"value": 0.82, "metric": "auc"}, "items": [{"v": 1}, {"v": 2}], "passed": True}
    return Scope(
        parameters={"InputDataUri": "s3://raw/batch/", "Count": 3, "Threshold": 0.75, "Flag": True},
        execution={"PipelineExecutionId": "abc123", "PipelineName": "p", "StartDateTime": "t0"},
        steps=steps
        or {
            "Pre": {
                "ProcessingOutputConfig": {
                    "Outputs": [
                        {"OutputName": "train", "S3Output": {"S3Uri": "s3://f/train"}},
                        {"OutputName": "test", "S3Output": {"S3Uri": "s3://f/test"}},
                    ]
                }
            },
            "Train": {"ModelArtifacts": {"S3ModelArtifacts": "s3://a/model.tar.gz"}},
            "Eval": {"ProcessingJobStatus": "Completed"},
        },
        property_files={("Eval", "Report"): lambda: evaluation},
        known_steps=frozenset({"Pre", "Train", "Eval", "Later"}),
    )


def _json_get(path: str, step: str = "Eval", name: str = "Report") -> dict[str, Any]:
    return {"Std:JsonGet": {"PropertyFile": {"Get": f"Steps.{step}.PropertyFiles.{name}"}, "Path": path}}


def test_parameters_take_overrides_typed_then_defaults() -> None:
    values = resolve_parameters(DECLARED, {"InputDataUri": "s3://b/k/", "Count": "4", "Flag": "true"})
    assert values == {
        "InputDataUri": "s3://b/k/",
        "Count": 4,
        "Threshold": 0.75,
        "Flag": True,
        "Status": "Pending",
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "parameter InputDataUri is required"),
        ({"InputDataUri": "x", "Count": "2.5"}, "'2.5' is not a valid Integer"),
        ({"InputDataUri": "x", "Threshold": "high"}, "'high' is not a valid Float"),
        ({"InputDataUri": "x", "Flag": "maybe"}, "'maybe' is not a valid Boolean"),
        ({"InputDataUri": "x", "Status": "Rejected"}, "not one of Pending, Approved"),
        ({"InputDataUri": "x", "Nope": "1"}, "unknown parameter"),
    ],
)
def test_bad_parameter_values_are_named(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        resolve_parameters(DECLARED, overrides)


def test_unknown_parameter_type_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="unknown type 'Decimal'"):
        resolve_parameters([{"Name": "X", "Type": "Decimal", "DefaultValue": 1}], {})


def test_get_parameters_execution_and_step_properties() -> None:
    scope = _scope()
    assert resolve({"Get": "Parameters.Count"}, scope) == 3
    assert resolve({"Get": "Execution.PipelineExecutionId"}, scope) == "abc123"
    uri = resolve({"Get": "Steps.Pre.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"}, scope)
    assert uri == "s3://f/test"
    assert resolve({"Get": 'Steps.Pre.ProcessingOutputConfig.Outputs["train"].S3Output.S3Uri'}, scope) == "s3://f/train"
    assert resolve({"Get": "Steps.Pre.ProcessingOutputConfig.Outputs[1].S3Output.S3Uri"}, scope) == "s3://f/test"
    assert resolve({"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}, scope) == "s3://a/model.tar.gz"
    nested = resolve({"A": [{"Get": "Parameters.Flag"}, "plain", 1]}, scope)
    assert nested == {"A": [True, "plain", 1]}


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("Parameters.Missing", "declares no parameter 'Missing'"),
        ("Execution.Nope", "unknown execution variable 'Nope'"),
        ("Steps.Later.Foo", "step 'Later' has not run"),
        ("Steps.Ghost.Foo", "step 'Ghost' does not exist"),
        ("Steps.Train.ModelArtifacts.Nope", "no property 'Nope'"),
        ("Steps.Train.ModelArtifacts[0]", "index [0] is out of range"),
        ("Steps.Train", "needs a property path"),
        ("Steps.Pre.ProcessingOutputConfig.Outputs[", "malformed property path"),
        ("Somewhere.X", "unknown namespace 'Somewhere'"),
    ],
)
def test_bad_references_are_named(reference: str, message: str) -> None:
    with pytest.raises(ResolutionError) as excinfo:
        resolve({"Get": reference}, _scope())
    assert message in str(excinfo.value)


def test_join_renders_values_like_sagemaker() -> None:
    scope = _scope()
    joined = {
        "Std:Join": {
            "On": "/",
            "Values": ["s3:/", "bucket", {"Get": "Execution.PipelineExecutionId"}, {"Get": "Parameters.Count"}],
        }
    }
    assert resolve(joined, scope) == "s3://bucket/abc123/3"
    rendered = {"Std:Join": {"On": " ", "Values": [0.75, True, None, _json_get("gate.value")]}}
    assert resolve(rendered, scope) == "0.75 true null 0.82"
    with pytest.raises(ResolutionError, match="malformed Std:Join"):
        resolve({"Std:Join": {"On": "/"}}, scope)


def test_json_get_reads_property_files_by_path() -> None:
    scope = _scope()
    assert resolve(_json_get("gate.value"), scope) == 0.82
    assert resolve(_json_get("items[1].v"), scope) == 2
    assert resolve(_json_get("$.passed"), scope) is True
    with pytest.raises(ResolutionError, match=r"path 'gate\.nope' not found"):
        resolve(_json_get("gate.nope"), scope)
    with pytest.raises(ResolutionError, match="declares no property file 'Other'"):
        resolve(_json_get("x", name="Other"), scope)
    with pytest.raises(ResolutionError, match="unsupported function Std:Magic"):
        resolve({"Std:Magic": {}}, scope)


def test_json_get_from_s3_uri() -> None:
    scope = _scope()
    scope.read_s3_json = lambda uri: {"uri": uri, "n": 5}
    assert resolve({"Std:JsonGet": {"S3Uri": "s3://b/x.json", "Path": "n"}}, scope) == 5


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"Type": "Equals", "LeftValue": _json_get("passed"), "RightValue": True}, True),
        ({"Type": "Equals", "LeftValue": 1, "RightValue": 1.0}, True),
        ({"Type": "Equals", "LeftValue": "a", "RightValue": "b"}, False),
        ({"Type": "GreaterThan", "LeftValue": _json_get("gate.value"), "RightValue": 0.82}, False),
        ({"Type": "GreaterThanOrEqualTo", "LeftValue": _json_get("gate.value"), "RightValue": 0.82}, True),
        ({"Type": "LessThan", "LeftValue": 1, "RightValue": {"Get": "Parameters.Count"}}, True),
        ({"Type": "LessThanOrEqualTo", "LeftValue": 4, "RightValue": {"Get": "Parameters.Count"}}, False),
        ({"Type": "In", "QueryValue": {"Get": "Parameters.Count"}, "Values": [1, 2, 3]}, True),
        ({"Type": "Not", "Expression": {"Type": "Equals", "LeftValue": 1, "RightValue": 1}}, False),
        (
            {
                "Type": "Or",
                "Conditions": [
                    {"Type": "Equals", "LeftValue": 1, "RightValue": 2},
                    {"Type": "Equals", "LeftValue": 2, "RightValue": 2},
                ],
            },
            True,
        ),
    ],
)
def test_condition_types(condition: dict[str, Any], expected: bool) -> None:
    outcome, text = evaluate_condition(condition, _scope())
    assert outcome is expected
    assert text


def test_conditions_refuse_unknown_types_and_incomparable_values() -> None:
    with pytest.raises(DefinitionError, match="unknown condition type 'Between'"):
        evaluate_condition({"Type": "Between"}, _scope())
    with pytest.raises(ResolutionError, match=r"cannot compare None with 0\.7"):
        evaluate_condition({"Type": "GreaterThan", "LeftValue": None, "RightValue": 0.7}, _scope())


def test_booleans_are_not_numbers_and_strings_are_not_ordered() -> None:
    """As in SageMaker: True does not equal 1, and only numbers can be ordered."""
    assert evaluate_condition({"Type": "Equals", "LeftValue": True, "RightValue": 1}, _scope())[0] is False
    assert evaluate_condition({"Type": "Equals", "LeftValue": True, "RightValue": True}, _scope())[0] is True
    with pytest.raises(ResolutionError, match="need two numbers"):
        evaluate_condition({"Type": "GreaterThan", "LeftValue": "10", "RightValue": "9"}, _scope())


def test_path_parsing_and_reference_discovery() -> None:
    assert parse_path("Outputs['train'].S3Output.S3Uri") == ["Outputs", "train", "S3Output", "S3Uri"]
    assert parse_path("a[0].b") == ["a", 0, "b"]
    assert json_path({"a": [{"b": 1}]}, "a[0].b", "doc") == 1
    node = {"x": [{"Get": "Steps.A.Foo"}, _json_get("p", step="B"), {"Get": "Parameters.P"}]}
    assert references(node) == {"A", "B"}
