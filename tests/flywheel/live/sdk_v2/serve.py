"""``make sdk-v2-check``: the live local SageMaker on a free port, the SDK v2 script against it.

Run with the project's Python; ``sys.argv[1]`` is the v2 venv's interpreter. The server is the one
``flywheel up`` serves (embedded AWS + :mod:`flywheel.live`), on a private state dir; the script gets
``AWS_ENDPOINT_URL``, dummy credentials and an SDK config that opts out of telemetry (no request leaves
the machine). Exits with the script's code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from flywheel.embedded import EmbeddedAws
from flywheel.live import LiveRouter, LiveSageMaker
from flywheel.runtime import LocalRuntime
from flywheel.state import StateStore

HERE = Path(__file__).resolve().parent
SDK_CONFIG = "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"


def main(python: str) -> int:
    with tempfile.TemporaryDirectory(prefix="flywheel-sdk-v2-") as tmp:
        aws = EmbeddedAws.serve(0, wrap=LiveRouter)
        live = LiveSageMaker(LocalRuntime(aws, StateStore(Path(tmp) / "state"))).install(aws.app)
        config = Path(tmp) / "sagemaker-config.yaml"
        config.write_text(SDK_CONFIG, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_"))}
        env.update(
            AWS_ENDPOINT_URL=str(aws.endpoint_url),
            AWS_DEFAULT_REGION=aws.region,
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
            SAGEMAKER_USER_CONFIG_OVERRIDE=str(config),
            SAGEMAKER_ADMIN_CONFIG_OVERRIDE=str(config),
            SAGEMAKER_SUPPRESS_V2_WARNING="1",
        )
        try:
            return subprocess.run([python, str(HERE / "check_pipeline.py")], env=env, check=False).returncode
        finally:
            live.close()
            aws.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
