"""The SageMaker SDK dependencies Flywheel drops (pyproject ``[tool.uv] override-dependencies``).

GIVEN the lock without MLflow, Iceberg and s3fs, WHEN a pipeline definition is built with the SDK,
THEN it builds and none of the dropped distributions is installed or imported: the override is safe,
and a new SDK version that starts importing one of them fails here instead of at synth.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tomllib
from pathlib import Path

from pipelines.tabular.definition import build_pipeline_definition
from tests.pipelines.tabular.test_definition import make_inputs

ROOT = Path(__file__).resolve().parents[2]
DROPPED = {"mlflow": "mlflow", "sagemaker-mlflow": "sagemaker_mlflow", "pyiceberg": "pyiceberg", "s3fs": "s3fs"}


def test_the_dropped_sdk_dependencies_are_the_overridden_ones() -> None:
    uv = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["uv"]
    overridden = {o.split(";")[0].strip() for o in uv["override-dependencies"] if "sys_platform == 'never'" in o}
    assert overridden == set(DROPPED)


def test_definitions_build_without_the_dropped_distributions() -> None:
    for module in DROPPED.values():
        assert importlib.util.find_spec(module) is None, f"{module} is installed: the override did not apply"
    definition = json.loads(build_pipeline_definition(make_inputs()))
    assert definition["Steps"]
    loaded = {name.split(".")[0] for name in sys.modules}
    assert not loaded & set(DROPPED.values())
