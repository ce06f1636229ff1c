"""One synth exactly as the CDK CLI runs it: the built-in CloudFormation validator on, cdk-nag plugins on.

Unit tests switch the validator off for speed (tests/conftest.py); this test runs it once, in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stacks import PROJECT_ROOT, cdk_json_context


def test_app_synthesizes_dev_with_validation_and_nag(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "CDK_VALIDATION"}
    env["CDK_OUTDIR"] = str(tmp_path)
    env["CDK_CONTEXT_JSON"] = json.dumps({**cdk_json_context(), "env": "dev"})
    proc = subprocess.run(
        [sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    templates = list(tmp_path.glob("assembly-Flywheel-dev/*.template.json"))
    assert len(templates) == 5  # Security, DataLake, Audit, two teams


def test_app_rejects_bad_environment_with_clear_message(tmp_path: Path):
    env = dict(os.environ, CDK_OUTDIR=str(tmp_path), CDK_CONTEXT_JSON=json.dumps({**cdk_json_context(), "env": "qa"}))
    proc = subprocess.run(
        [sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2
    assert "unknown environment 'qa'" in proc.stderr and "Traceback" not in proc.stderr
