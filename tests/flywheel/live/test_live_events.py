"""The AWS CLI path of the live SageMaker: an object under a team's ``incoming/`` starts its pipeline; approving
a package with ``update-model-package`` deploys it locally.

``aws`` is not a dependency of the project: the tests send the requests ``aws s3 cp`` and
``aws sagemaker update-model-package`` send (PutObject, multipart upload, UpdateModelPackage) with plain
boto3 clients — the same REST/JSON calls, through the same server.
"""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from conftest import wait_for

from flywheel.datasets import write_churn_csv
from flywheel.embedded import NAMES

pytestmark = [pytest.mark.enable_socket, pytest.mark.network_local]


# The team's preprocessing job really starts (then the test stops it).
def test_a_batch_copied_into_incoming_starts_the_team_pipeline(live: Any, client: Any, tmp_path: Path) -> None:
    res = live.runtime.provision(["churn"])["churn"]
    s3, sm = client("s3"), client("sagemaker")
    data = write_churn_csv(tmp_path / "churn.csv", 200, seed=1)
    batch = f"{res.incoming_prefix}batch-cli/"
    # `aws s3 cp churn.csv s3://.../incoming/batch-cli/` (multipart, as the CLI uploads large files) ...
    s3.upload_file(
        str(data),
        res.raw_bucket,
        f"{batch}churn.csv",
        Config=TransferConfig(multipart_threshold=1024),
    )
    live.events.drain()
    pipeline = res.primary.pipeline_name
    assert sm.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"] == []  # no marker yet
    # ... then the batch's marker: `aws s3 cp _SUCCESS s3://.../incoming/batch-cli/_SUCCESS`
    s3.put_object(Bucket=res.raw_bucket, Key=f"{batch}_SUCCESS", Body=b"")
    assert live.events.drain()
    started = [d for d in live.events.delivered if d.execution_arn]
    assert [d.outcome for d in started] == ["started team churn's pipeline"], live.events.delivered
    arn = started[0].execution_arn
    assert started[0].details["InputDataUri"] == f"s3://{res.raw_bucket}/{batch}"
    (summary,) = sm.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"]
    assert summary["PipelineExecutionArn"] == arn
    # It really runs: its first step starts (then the test stops it, which the stop test covers in depth).
    deadline = time.monotonic() + 60
    steps: list[dict[str, Any]] = []
    while not steps and time.monotonic() < deadline:
        steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
        time.sleep(0.1)
    assert steps and steps[-1]["StepName"] == "Preprocess", steps
    params = {
        p["Name"]: p["Value"]
        for p in sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    }
    assert params["InputDataUri"] == f"s3://{res.raw_bucket}/{batch}"
    sm.stop_pipeline_execution(PipelineExecutionArn=arn)
    assert wait_for(sm, arn, timeout=60)["PipelineExecutionStatus"] == "Stopped"
    # The same marker again (a redelivery) starts nothing new.
    s3.put_object(Bucket=res.raw_bucket, Key=f"{batch}_SUCCESS", Body=b"")
    live.events.drain()
    assert len(sm.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"]) == 1


def _model_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        payload = b"{}"
        info = tarfile.TarInfo("model.json")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_approving_a_package_with_update_model_package_deploys_it(live: Any, client: Any) -> None:
    res = live.runtime.provision(["churn"])["churn"]
    s3, sm = client("s3"), client("sagemaker")
    bucket = res.platform.buckets["artifacts"]
    model = _model_tar()
    s3.put_object(Bucket=bucket, Key="models/m1/model.tar.gz", Body=model)
    package = sm.create_model_package(
        ModelPackageGroupName=NAMES.model_package_group("churn"),
        InferenceSpecification={
            "Containers": [{"Image": "local/xgboost", "ModelDataUrl": f"s3://{bucket}/models/m1/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        ModelApprovalStatus="PendingManualApproval",
    )["ModelPackageArn"]
    # Another status change or another group deploys nothing.
    sm.update_model_package(ModelPackageArn=package, ApprovalDescription="looked at it")
    live.events.drain()
    assert live.runtime.state.deployment("churn") is None
    # `aws sagemaker update-model-package --model-package-arn ARN --model-approval-status Approved`
    sm.update_model_package(ModelPackageArn=package, ModelApprovalStatus="Approved")
    assert live.events.drain()
    (delivery,) = live.events.delivered
    assert delivery.kind == "package-state-change" and delivery.outcome == "Approved: deployed", delivery
    deployed = live.runtime.state.deployment("churn")
    assert deployed is not None and deployed["ModelPackageArn"] == package
    assert Path(deployed["LocalModel"]).read_bytes() == model  # the artifact copied next to the state
