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
#: Libraries the X-Ray SDK can patch and this venv holds: importing them would be pure cold-start cost.
PATCHABLE = ("sqlalchemy", "requests", "httpx", "pymongo", "psycopg2", "pynamodb", "aiobotocore")


@pytest.mark.parametrize(
    "module",
    [
        "lambdas.data_arrival.handler",
        "lambdas.deploy.handler",
        "lambdas.erasure.handler",
        "lambdas.batch_scoring.handler",
    ],
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


@pytest.mark.parametrize("module", ["lambdas.data_arrival.handler", "lambdas.deploy.handler"])
def test_in_the_lambda_runtime_the_tracer_patches_botocore_only(module: str, tmp_path) -> None:
    # the deployed function's environment: tracing on (active tracing), the runtime's variables set
    env = {"PATH": "/usr/bin:/bin", "LAMBDA_TASK_ROOT": str(tmp_path), "AWS_LAMBDA_FUNCTION_NAME": "f",
           "AWS_DEFAULT_REGION": "eu-west-1"}  # fmt: skip
    code = (
        f"import json, sys; import {module} as h; from aws_xray_sdk.core import patcher, xray_recorder; "
        "print(json.dumps({'patched': sorted(patcher._PATCHED_MODULES),"
        " 'sampler': type(xray_recorder.sampler).__name__,"
        f" 'loaded': sorted(m for m in sys.modules if m.split('.')[0] in {PATCHABLE!r}),"
        " 'disabled': h.tracer.disabled}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"patched": ["botocore"], "sampler": "LocalSampler", "loaded": [], "disabled": False}
