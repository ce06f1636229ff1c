"""Run the SDK pipeline of ``test_live_sdk.py`` against a running ``flywheel up`` and print its steps.

    .venv/bin/python -m flywheel up --port 4566 &
    AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_DEFAULT_REGION=eu-west-1 AWS_ACCESS_KEY_ID=local \
        AWS_SECRET_ACCESS_KEY=local SAGEMAKER_VALIDATE_ROLE=false .venv/bin/python tests/flywheel/live/sdk_example.py
"""

import sys
import time
from pathlib import Path

import boto3

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]  # the tests and their helpers
from sagemaker.core.workflow.pipeline_context import PipelineSession  # noqa: E402
from test_live_sdk import DEFAULT_BUCKET, HERE, REGION, ROLE, build  # noqa: E402

session = PipelineSession(boto_session=boto3.Session(region_name=REGION), default_bucket=DEFAULT_BUCKET)
bucket = session.default_bucket()
s3, sm = boto3.client("s3"), boto3.client("sagemaker")
rows = "label,x\n" + "".join(f"{int(i >= 12)},{i}\n" for i in range(24))
s3.put_object(Bucket=bucket, Key="data/raw.csv", Body=rows.encode())
s3.put_object(Bucket=bucket, Key="data/extra.csv", Body=b"label,x\n1,100\n1,101\n")
s3.put_object(Bucket=bucket, Key="code/evaluate.py", Body=(HERE / "evaluate.py").read_bytes())
pipeline = build(session, bucket)
pipeline.upsert(role_arn=ROLE)
arn = pipeline.start().arn
while (status := sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]) == "Executing":
    time.sleep(1)
print("execution", arn, status)
print(f"{'step':<13} {'type':<14} {'status':<10} metadata")
for step in reversed(sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]):
    kind, meta = next(iter(step.get("Metadata", {}).items()), ("", {}))
    print(f"{step['StepName']:<13} {kind:<14} {step['StepStatus']:<10} {meta} {step.get('FailureReason', '')}")
