"""SageMaker SDK v2 against ``flywheel up`` (run by ``make sdk-v2-check`` with the v2 venv's Python).

A pipeline written with v2's ``sagemaker.workflow`` classes — ``Score`` (ScriptProcessor, its code
uploaded by the SDK while building the definition) writes a property file, ``ScoreGate`` (Condition on
``JsonGet``) — is upserted, started and waited on with the v2 SDK; every AWS call goes to
``$AWS_ENDPOINT_URL``. Exits 0 when the execution succeeded with the expected steps.
"""

import os
import sys
import tempfile
from pathlib import Path

import boto3
import sagemaker
from sagemaker.processing import ProcessingOutput, ScriptProcessor
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import JsonGet
from sagemaker.workflow.parameters import ParameterFloat
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/sdk-v2"
IMAGE = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
SCRIPT = """
import json, os, sys
out = sys.argv[sys.argv.index("--out") + 1]
os.makedirs(out, exist_ok=True)
json.dump({"score": 0.8}, open(os.path.join(out, "score.json"), "w"))
print("scored")
"""


def main() -> int:
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:"), "point AWS_ENDPOINT_URL at flywheel up"
    print(f"SageMaker SDK {sagemaker.__version__} against {os.environ['AWS_ENDPOINT_URL']}")
    session = PipelineSession(
        boto_session=boto3.Session(region_name=REGION), default_bucket="sagemaker-eu-west-1-123456789012"
    )
    bucket = session.default_bucket()
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "score.py"
        code.write_text(SCRIPT)
        report = PropertyFile(name="Score", output_name="score", path="score.json")
        score = ProcessingStep(
            name="Score",
            step_args=ScriptProcessor(
                role=ROLE,
                image_uri=IMAGE,
                command=["python3"],
                instance_count=1,
                instance_type="ml.m5.large",
                sagemaker_session=session,
            ).run(
                code=str(code),
                outputs=[
                    ProcessingOutput(
                        output_name="score",
                        source="/opt/ml/processing/score",
                        destination=f"s3://{bucket}/v2-check/score",
                    )
                ],
                arguments=["--out", "/opt/ml/processing/score"],
            ),
            property_files=[report],
        )
        minimum = ParameterFloat(name="MinScore", default_value=0.5)
        gate = ConditionStep(
            name="ScoreGate",
            conditions=[
                ConditionGreaterThanOrEqualTo(
                    left=JsonGet(step_name="Score", property_file=report, json_path="score"), right=minimum
                )
            ],
            if_steps=[],
            else_steps=[FailStep(name="TooLow", error_message="score too low")],
        )
        pipeline = Pipeline(name="sdk-v2-check", parameters=[minimum], steps=[score, gate], sagemaker_session=session)
        pipeline.upsert(role_arn=ROLE)
    execution = pipeline.start()
    execution.wait(delay=1, max_attempts=300)
    status = execution.describe()["PipelineExecutionStatus"]
    steps = [(s["StepName"], s["StepStatus"]) for s in execution.list_steps()]
    print("status:", status)
    for name, step_status in steps:
        print(f"  {name}: {step_status}")
    expected = [("ScoreGate", "Succeeded"), ("Score", "Succeeded")]
    if status != "Succeeded" or steps != expected:
        print(f"FAILED: expected Succeeded with {expected}", file=sys.stderr)
        return 1
    print("SDK v2 check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
