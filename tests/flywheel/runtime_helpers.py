"""Helpers of the executor tests: stub step scripts and definition builders."""

from __future__ import annotations

import json
from typing import Any

STUB_BUCKET = "flywheel-exec-test"
STUB_KEY = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000001"

# Tiny "step scripts": the executor is generic, so its tests run stand-ins that start in milliseconds.
STUB_SCRIPTS = {
    "inspect.py": """
import json, os, sys
from pathlib import Path
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
config = json.loads(Path(args["--config"]).read_text())
host = config["current_host"]
inp, out = Path(args["--input"]), Path(args["--output"])
files = sorted(p.relative_to(inp).as_posix() for p in inp.rglob("*") if p.is_file())
out.mkdir(parents=True, exist_ok=True)
(out / f"{host}.json").write_text(json.dumps({"host": host, "hosts": config["hosts"], "files": files,
                                              "python": sys.executable, "env": os.environ.get("STUB_ENV", "")}))
(out / "result.json").write_text(json.dumps({"passed": True, "score": 0.91, "nested": {"items": [1, 2, 3]},
                                             "label": "ok", "host": host}))
print("inspected", host, len(files))
""",
    "fail.py": """
import sys
print("working on it")
print("boom: the stub step broke on purpose", file=sys.stderr)
sys.exit(3)
""",
    "sleep.py": """
import time
time.sleep(30)
""",
    "train_stub.py": """
import argparse, json, os
from pathlib import Path
p = argparse.ArgumentParser()
p.add_argument("--alpha", type=float)
p.add_argument("--rounds", type=int)
args = p.parse_args()
model = Path(os.environ["SM_MODEL_DIR"])
train = Path(os.environ["SM_CHANNEL_TRAIN"])
model.mkdir(parents=True, exist_ok=True)
(model / "model.json").write_text(json.dumps({
    "alpha": args.alpha, "rounds": args.rounds, "hps": json.loads(os.environ["SM_HPS"]),
    "hosts": json.loads(os.environ["SM_HOSTS"]), "current_host": os.environ["SM_CURRENT_HOST"],
    "train_files": sorted(p.name for p in train.iterdir()), "output_data": os.environ["SM_OUTPUT_DATA_DIR"],
    "cwd": os.getcwd(), "aws_key": os.environ.get("AWS_ACCESS_KEY_ID"),
}))
(Path(os.environ["SM_OUTPUT_DATA_DIR"]) / "extra.txt").write_text("x")
print("loss: 0.125")
""",
}


def s3_input(name: str, uri: Any, local: str, distribution: str = "FullyReplicated") -> dict[str, Any]:
    """A ProcessingInputs entry."""
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": distribution,
            "S3CompressionType": "None",
        },
    }


def processing_step(
    name: str,
    script: str,
    *,
    inputs: list[dict[str, Any]] | None = None,
    output_uri: Any = None,
    count: Any = 1,
    extra_args: list[Any] | None = None,
    property_files: bool = True,
    timeout: int = 600,
) -> dict[str, Any]:
    """A Processing step running stub ``script`` (code input + data input ``in/`` by default)."""
    output_uri = output_uri or {
        "Std:Join": {"On": "/", "Values": ["s3:/", STUB_BUCKET, "out", {"Get": "Execution.PipelineExecutionId"}, name]}
    }
    step: dict[str, Any] = {
        "Name": name,
        "Type": "Processing",
        "Arguments": {
            "AppSpecification": {
                "ImageUri": "stub",
                "ContainerEntrypoint": ["python3", f"/opt/ml/processing/input/code/{script}"],
                "ContainerArguments": [
                    "--input",
                    "/opt/ml/processing/input/data",
                    "--output",
                    "/opt/ml/processing/output/result",
                    "--config",
                    "/opt/ml/config/resourceconfig.json",
                    *(extra_args or []),
                ],
            },
            "Environment": {"STUB_ENV": "from-definition"},
            "ProcessingInputs": [
                s3_input("code", f"s3://{STUB_BUCKET}/code/{script}", "/opt/ml/processing/input/code"),
                *(
                    inputs
                    if inputs is not None
                    else [s3_input("data", f"s3://{STUB_BUCKET}/in/", "/opt/ml/processing/input/data")]
                ),
            ],
            "ProcessingOutputConfig": {
                "KmsKeyId": STUB_KEY,
                "Outputs": [
                    {
                        "OutputName": "result",
                        "S3Output": {
                            "S3Uri": output_uri,
                            "LocalPath": "/opt/ml/processing/output/result",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ],
            },
            "ProcessingResources": {
                "ClusterConfig": {"InstanceCount": count, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}
            },
            "RoleArn": "arn:aws:iam::123456789012:role/stub",
            "StoppingCondition": {"MaxRuntimeInSeconds": timeout},
        },
    }
    if property_files:
        step["PropertyFiles"] = [{"PropertyFileName": "Result", "OutputName": "result", "FilePath": "result.json"}]
    return step


def definition(steps: list[dict[str, Any]], parameters: list[dict[str, Any]] | None = None) -> str:
    """A pipeline definition JSON with ``steps``."""
    return json.dumps({"Version": "2020-12-01", "Metadata": {}, "Parameters": parameters or [], "Steps": steps})
