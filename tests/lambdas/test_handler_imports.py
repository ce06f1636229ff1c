"""Each handler module imports in a fresh interpreter without heavy or forbidden packages.

A Lambda package holds ``lambdas/``, ``naming/`` and Powertools: the SageMaker SDK, pandas, numpy, the
CDK and the local runtime must not be imported (they would not be there, and they cost cold start).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN = ("sagemaker", "pandas", "numpy", "aws_cdk", "flywheel", "moto", "pydantic")


@pytest.mark.parametrize(
    "module", ["lambdas.data_arrival.handler", "lambdas.deploy.handler", "lambdas.batch_scoring.handler"]
)
def test_a_handler_imports_nothing_heavy(module: str) -> None:
    code = (
        f"import json, sys; import {module}; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"}
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
