"""Fixtures of the live-SageMaker tests: a ``flywheel up``-style server on 127.0.0.1 and plain boto3 clients."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from runtime_helpers import STUB_BUCKET, STUB_SCRIPTS

from flywheel.embedded import EmbeddedAws
from flywheel.live import LiveRouter, LiveSageMaker
from flywheel.runtime import LocalRuntime
from flywheel.state import StateStore

REGION = "eu-west-1"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveSageMaker]:
    """The live layer on a server as ``flywheel up`` starts it (teams not provisioned: tests provision
    what they need)."""
    aws = EmbeddedAws.serve(0, wrap=LiveRouter)
    _reset(aws)
    layer = LiveSageMaker(LocalRuntime(aws, StateStore(tmp_path / "state"))).install(aws.app)
    try:
        yield layer
    finally:
        layer.close()
        _reset(aws)
        aws.close()


def _reset(aws: EmbeddedAws) -> None:
    """Empty moto's backends (process-global: every server and the in-process mock share them)."""
    import urllib.request

    request = urllib.request.Request(f"{aws.endpoint_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@pytest.fixture
def client(live: LiveSageMaker) -> Callable[[str], Any]:
    """``client(service)``: a plain boto3 client pointed at the server, as a user's would be."""

    def make(service: str) -> Any:
        return _session().client(
            service,
            endpoint_url=live.aws.endpoint_url,
            region_name=REGION,
            aws_access_key_id="anything",
            aws_secret_access_key="anything",
        )

    return make


@functools.cache
def _session() -> boto3.session.Session:
    """One boto3 session for the tests' clients: it caches the service models (SageMaker's is large)."""
    return boto3.session.Session()


@pytest.fixture
def stub_code(client: Callable[[str], Any]) -> str:
    """The stub step scripts under ``s3://<stub bucket>/code/``, uploaded by a client."""
    s3 = client("s3")
    s3.create_bucket(Bucket=STUB_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    for name, text in STUB_SCRIPTS.items():
        s3.put_object(Bucket=STUB_BUCKET, Key=f"code/{name}", Body=text.encode())
    s3.put_object(Bucket=STUB_BUCKET, Key="in/part-0.csv", Body=b"a,b\n1,2\n")
    return STUB_BUCKET


def wait_for(sm: Any, arn: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll DescribePipelineExecution until the execution has ended (as a waiter does)."""
    deadline = time.monotonic() + timeout
    while True:
        described = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        if described["PipelineExecutionStatus"] not in ("Executing", "Stopping"):
            return dict(described)
        if time.monotonic() > deadline:
            raise AssertionError(f"execution {arn} still {described['PipelineExecutionStatus']} after {timeout} s")
        time.sleep(0.1)


def create_pipeline(sm: Any, name: str, definition: str) -> str:
    return str(
        sm.create_pipeline(
            PipelineName=name,
            PipelineDefinition=definition,
            RoleArn="arn:aws:iam::123456789012:role/anything",
        )["PipelineArn"]
    )
