"""Values of a pipeline definition: parameters, ``Get`` references, ``Std:Join``, ``Std:JsonGet``, conditions.

The definition language (``Version 2020-12-01``) writes a dynamic value as a one-key object:

* ``{"Get": "Parameters.<name>"}`` — a pipeline parameter (typed: String, Integer, Float, Boolean);
* ``{"Get": "Execution.<variable>"}`` — ``PipelineExecutionId``, ``PipelineExecutionArn``,
  ``PipelineName``, ``PipelineArn``, ``StartDateTime``, ``CurrentDateTime``;
* ``{"Get": "Steps.<step>.<property path>"}`` — a property of a finished step, e.g.
  ``ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri`` (a list indexed by a string selects the
  element whose ``*Name`` field has that value, as SageMaker does) or ``ModelArtifacts.S3ModelArtifacts``;
* ``{"Std:Join": {"On": sep, "Values": [...]}}`` — values rendered as strings and joined;
* ``{"Std:JsonGet": {"PropertyFile": {"Get": "Steps.<step>.PropertyFiles.<name>"}, "Path": "a.b[0]"}}``
  (or ``{"S3Uri": ..., "Path": ...}``) — a value from a JSON file a step wrote.

:func:`resolve` evaluates any JSON value against a :class:`Scope`; :func:`evaluate_condition` evaluates
the condition objects of a ``Condition`` step.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from flywheel.errors import DefinitionError, ParameterError, ResolutionError

PARAMETER_TYPES: Final[tuple[str, ...]] = ("String", "Integer", "Float", "Boolean")
EXECUTION_VARIABLES: Final[tuple[str, ...]] = (
    "PipelineExecutionId",
    "PipelineExecutionArn",
    "PipelineName",
    "PipelineArn",
    "StartDateTime",
    "CurrentDateTime",
)
CONDITION_TYPES: Final[tuple[str, ...]] = (
    "Equals",
    "GreaterThan",
    "GreaterThanOrEqualTo",
    "LessThan",
    "LessThanOrEqualTo",
    "In",
    "Not",
    "Or",
)
FUNCTIONS: Final[tuple[str, ...]] = ("Get", "Std:Join", "Std:JsonGet")
_TOKEN = re.compile(r"""\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\['([^']*)'\]|\["([^"]*)"\]""")


# Parameters ---------------------------------------------------------------------------------------------


def _coerce(name: str, kind: str, value: Any) -> Any:
    """``value`` (a string from the API, or a Python value) as parameter type ``kind``."""
    try:
        if kind == "String":
            if isinstance(value, bool | dict | list) or value is None:
                raise TypeError
            return value if isinstance(value, str) else str(value)
        if kind == "Integer":
            if isinstance(value, bool):
                raise TypeError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind == "Float":
            if isinstance(value, bool):
                raise TypeError
            out = float(value)
            if math.isnan(out):
                raise ValueError
            return out
        if kind == "Boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise ValueError
    except (TypeError, ValueError):
        raise ParameterError(f"parameter {name}: {value!r} is not a valid {kind}") from None
    raise DefinitionError(f"parameter {name}: unknown type {kind!r}; known: {', '.join(PARAMETER_TYPES)}")


def resolve_parameters(declared: list[dict[str, Any]], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Typed values of every declared parameter: overrides, else defaults.

    Raises :class:`ParameterError` for an unknown override, a value of the wrong type or outside
    ``EnumValues``, and a parameter with neither default nor value (naming it and how to pass it).
    """
    overrides = dict(overrides or {})
    by_name: dict[str, dict[str, Any]] = {}
    for spec in declared:
        if not isinstance(spec, dict) or not isinstance(spec.get("Name"), str):
            raise DefinitionError(f"malformed parameter declaration: {spec!r}")
        by_name[spec["Name"]] = spec
    unknown = sorted(set(overrides) - set(by_name))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(unknown)}; the pipeline declares: {', '.join(by_name) or 'none'}"
        )
    values: dict[str, Any] = {}
    for name, spec in by_name.items():
        kind = spec.get("Type", "String")
        if kind not in PARAMETER_TYPES:
            raise DefinitionError(f"parameter {name}: unknown type {kind!r}; known: {', '.join(PARAMETER_TYPES)}")
        if name in overrides:
            value = _coerce(name, kind, overrides[name])
        elif "DefaultValue" in spec:
            value = _coerce(name, kind, spec["DefaultValue"])
        else:
            raise ParameterError(f"parameter {name} is required (it has no default): pass a value for {name}")
        enum = spec.get("EnumValues")
        if enum and value not in enum:
            raise ParameterError(f"parameter {name}: {value!r} is not one of {', '.join(map(str, enum))}")
        values[name] = value
    return values


# References ----------------------------------------------------------------------------------------------


@dataclass
class Scope:
    """What references resolve against while an execution runs.

    ``steps`` maps a finished step's name to its properties (the Describe* response shape);
    ``property_files`` maps ``(step, file name)`` to a loader of that file's parsed JSON;
    ``read_s3_json`` reads a JSON object from S3 (for ``Std:JsonGet`` with ``S3Uri``).
    """

    parameters: dict[str, Any]
    execution: dict[str, Any]
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    property_files: dict[tuple[str, str], Callable[[], Any]] = field(default_factory=dict)
    read_s3_json: Callable[[str], Any] | None = None
    known_steps: frozenset[str] = frozenset()


def parse_path(path: str) -> list[str | int]:
    """``Outputs['train'].S3Output.S3Uri`` -> ``['Outputs', 'train', 'S3Output', 'S3Uri']``."""
    tokens: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if not match or match.end() == pos:
            raise ResolutionError(f"malformed property path {path!r} at position {pos}")
        name, index, single, double = match.groups()
        if name is not None:
            tokens.append(name)
        elif index is not None:
            tokens.append(int(index))
        else:
            tokens.append(single if single is not None else double)
        pos = match.end()
    if not tokens:
        raise ResolutionError("empty property path")
    return tokens


def _select(value: Any, token: str | int, where: str) -> Any:
    if isinstance(token, int):
        if isinstance(value, list) and -len(value) <= token < len(value):
            return value[token]
        raise ResolutionError(f"{where}: index [{token}] is out of range")
    if isinstance(value, dict):
        if token in value:
            return value[token]
        raise ResolutionError(f"{where}: no property {token!r} (has: {', '.join(sorted(value)) or 'nothing'})")
    if isinstance(value, list):
        # SageMaker indexes lists of named shapes by name: Outputs['train'] is the output named 'train'.
        for item in value:
            if isinstance(item, dict) and any(k.endswith("Name") and v == token for k, v in item.items()):
                return item
        names = [v for item in value if isinstance(item, dict) for k, v in item.items() if k.endswith("Name")]
        raise ResolutionError(f"{where}: no element named {token!r} (names: {', '.join(map(str, names)) or 'none'})")
    kind = type(value).__name__
    raise ResolutionError(f"{where}: {token!r} cannot be taken from a {kind}")


def select_path(root: Any, path: str, what: str) -> Any:
    """The value at ``path`` (property-path syntax) under ``root``; ResolutionError naming ``what``."""
    value = root
    walked = ""
    for token in parse_path(path):
        walked += f"[{token}]" if isinstance(token, int) else (f".{token}" if walked else str(token))
        value = _select(value, token, f"{what}: {walked}")
    return value


def json_path(document: Any, path: str, what: str) -> Any:
    """``Std:JsonGet`` path evaluation (``a.b[0].c``; a leading ``$.`` is accepted)."""
    path = path.removeprefix("$.").removeprefix("$")
    value = document
    for token in parse_path(path):
        if isinstance(token, str) and not isinstance(value, dict):
            raise ResolutionError(f"{what}: path {path!r} not found ({token!r} is not under an object)")
        if isinstance(token, str) and token not in value:
            raise ResolutionError(f"{what}: path {path!r} not found (no key {token!r})")
        value = _select(value, token, f"{what}: {path}")
    return value


def _get(reference: Any, scope: Scope) -> Any:
    if not isinstance(reference, str) or "." not in reference:
        raise ResolutionError(f"malformed Get reference {reference!r}")
    kind, _, rest = reference.partition(".")
    if kind == "Parameters":
        if rest not in scope.parameters:
            raise ResolutionError(f"Get {reference}: the pipeline declares no parameter {rest!r}")
        return scope.parameters[rest]
    if kind == "Execution":
        if rest not in EXECUTION_VARIABLES:
            raise ResolutionError(
                f"Get {reference}: unknown execution variable {rest!r}; known: {', '.join(EXECUTION_VARIABLES)}"
            )
        return scope.execution[rest]
    if kind == "Steps":
        step, _, path = rest.partition(".")
        if step not in scope.steps:
            known = step in scope.known_steps
            raise ResolutionError(
                f"Get {reference}: step {step!r} "
                + ("has not run (it is in another branch or later)" if known else "does not exist in the pipeline")
            )
        if not path:
            raise ResolutionError(f"Get {reference}: a step reference needs a property path")
        if path.startswith("PropertyFiles."):
            raise ResolutionError(f"Get {reference}: property files are read with Std:JsonGet, not Get")
        return select_path(scope.steps[step], path, f"step {step}")
    raise ResolutionError(f"Get {reference}: unknown namespace {kind!r} (Parameters, Execution or Steps)")


def _json_get(args: Any, scope: Scope) -> Any:
    if not isinstance(args, dict) or not isinstance(args.get("Path"), str):
        raise ResolutionError(f"malformed Std:JsonGet {args!r} (needs Path and PropertyFile or S3Uri)")
    path = args["Path"]
    if "PropertyFile" in args:
        ref = args["PropertyFile"]
        ref = ref.get("Get") if isinstance(ref, dict) else ref
        if not isinstance(ref, str) or not ref.startswith("Steps.") or ".PropertyFiles." not in ref:
            raise ResolutionError(f"Std:JsonGet: malformed PropertyFile reference {args['PropertyFile']!r}")
        step, _, name = ref.removeprefix("Steps.").partition(".PropertyFiles.")
        if step not in scope.steps:
            raise ResolutionError(f"Std:JsonGet {ref}: step {step!r} has not run")
        loader = scope.property_files.get((step, name))
        if loader is None:
            raise ResolutionError(f"Std:JsonGet {ref}: step {step!r} declares no property file {name!r}")
        return json_path(loader(), path, f"property file {name} of step {step}")
    if "S3Uri" in args:
        uri = resolve(args["S3Uri"], scope)
        if scope.read_s3_json is None:
            raise ResolutionError("Std:JsonGet with S3Uri: no S3 reader configured")
        return json_path(scope.read_s3_json(str(uri)), path, f"JSON file {uri}")
    raise ResolutionError(f"malformed Std:JsonGet {args!r} (needs PropertyFile or S3Uri)")


def render(value: Any) -> str:
    """A resolved value as ``Std:Join`` renders it (strings as is, others as JSON: 0.75, true, null)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        raise ResolutionError(f"Std:Join cannot render a {type(value).__name__}: {value!r}")
    return json.dumps(value)


def resolve(node: Any, scope: Scope) -> Any:
    """Evaluate every function in ``node`` (any JSON value) and return plain values."""
    if isinstance(node, list):
        return [resolve(item, scope) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, value), *_ = node.items()
        if key == "Get":
            return _get(value, scope)
        if key == "Std:Join":
            if not isinstance(value, dict) or not isinstance(value.get("Values"), list):
                raise ResolutionError(f"malformed Std:Join {value!r} (needs On and a Values list)")
            return str(value.get("On", "")).join(render(resolve(v, scope)) for v in value["Values"])
        if key == "Std:JsonGet":
            return _json_get(value, scope)
        if key.startswith("Std:"):
            raise ResolutionError(f"unsupported function {key} (the local executor knows {', '.join(FUNCTIONS)})")
    return {key: resolve(value, scope) for key, value in node.items()}


def references(node: Any) -> set[str]:
    """Names of the steps that ``node`` refers to (through Get or Std:JsonGet property files)."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= references(item)
    elif isinstance(node, dict):
        ref = node.get("Get")
        if len(node) == 1 and isinstance(ref, str) and ref.startswith("Steps."):
            found.add(ref.split(".")[1])
        for value in node.values():
            found |= references(value)
    return found


# Conditions ------------------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _compare(kind: str, left: Any, right: Any) -> bool:
    if kind == "Equals":
        ln, rn = _number(left), _number(right)
        if ln is not None and rn is not None:
            return ln == rn
        # Booleans are their own type (Python's True == 1 must not make a gate pass locally that
        # SageMaker would fail).
        if isinstance(left, bool) != isinstance(right, bool):
            return False
        return bool(left == right)
    ln, rn = _number(left), _number(right)
    if ln is None or rn is None:
        # SageMaker orders numbers only; comparing strings alphabetically would make "10" < "9".
        raise ResolutionError(f"condition {kind}: cannot compare {left!r} with {right!r} (need two numbers)")
    return {
        "GreaterThan": ln > rn,
        "GreaterThanOrEqualTo": ln >= rn,
        "LessThan": ln < rn,
        "LessThanOrEqualTo": ln <= rn,
    }[kind]


def evaluate_condition(condition: Any, scope: Scope) -> tuple[bool, str]:
    """``(outcome, explanation)`` of one condition object (Equals, ..., In, Not, Or)."""
    if not isinstance(condition, dict) or condition.get("Type") not in CONDITION_TYPES:
        kind = condition.get("Type") if isinstance(condition, dict) else condition
        raise DefinitionError(f"unknown condition type {kind!r}; known: {', '.join(CONDITION_TYPES)}")
    kind = condition["Type"]
    if kind == "Not":
        inner, text = evaluate_condition(condition.get("Expression"), scope)
        return not inner, f"Not({text})"
    if kind == "Or":
        parts = [evaluate_condition(c, scope) for c in condition.get("Conditions", [])]
        return any(p[0] for p in parts), "Or(" + ", ".join(p[1] for p in parts) + ")"
    if kind == "In":
        query = resolve(condition.get("QueryValue"), scope)
        values = resolve(condition.get("Values", []), scope)
        outcome = any(_compare("Equals", query, v) for v in values)
        return outcome, f"{query!r} In {values!r} -> {outcome}"
    left, right = resolve(condition.get("LeftValue"), scope), resolve(condition.get("RightValue"), scope)
    outcome = _compare(kind, left, right)
    return outcome, f"{left!r} {kind} {right!r} -> {outcome}"
