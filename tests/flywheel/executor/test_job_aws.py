"""AWS access of a job follows its network isolation, and a failing job's FailureReason names its exception.

GIVEN a processing step that downloads its own input with boto3 (as ordinary step code does), WHEN it is not
network-isolated and the embedded AWS is a server, THEN it gets the endpoint and credentials and succeeds;
WHEN it is isolated, THEN it gets nothing and fails with ``NoCredentialsError: ...`` as its reason; WHEN the
embedded AWS is in-process (no endpoint to give), THEN the reason says so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import STUB_BUCKET, definition, processing_step

from flywheel.embedded import EmbeddedAws
from flywheel.executor import FAILED, SUCCEEDED, PipelineExecutor
from flywheel.executor.jobs import exception_from_log

DOWNLOADER = """
import os, sys, boto3
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
s3 = boto3.client("s3")
body = s3.get_object(Bucket=os.environ["STUB_BUCKET"], Key="in/part-3.csv")["Body"].read()
os.makedirs(args["--output"], exist_ok=True)
with open(os.path.join(args["--output"], "fetched.csv"), "wb") as out:
    out.write(body)
print("endpoint", os.environ.get("AWS_ENDPOINT_URL"))
"""


def _step(isolated: bool | None) -> dict[str, Any]:
    step = processing_step("Fetch", "download.py", inputs=[], property_files=False)
    step["Arguments"]["Environment"] = {"STUB_BUCKET": STUB_BUCKET}
    if isolated is not None:
        step["Arguments"]["NetworkConfig"] = {"EnableNetworkIsolation": isolated}
    return step


def _seed(aws: EmbeddedAws) -> None:
    s3 = aws.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):  # servers in one process share moto's state
        s3.create_bucket(Bucket=STUB_BUCKET, CreateBucketConfiguration={"LocationConstraint": aws.region})
    s3.put_object(Bucket=STUB_BUCKET, Key="code/download.py", Body=DOWNLOADER.encode())
    s3.put_object(Bucket=STUB_BUCKET, Key="in/part-3.csv", Body=b"a,b\n3,3\n")


@pytest.fixture
def server() -> Iterator[EmbeddedAws]:
    aws = EmbeddedAws.serve(port=0)
    try:
        _seed(aws)
        yield aws
    finally:
        aws.close()


@pytest.mark.enable_socket
def test_a_job_that_is_not_isolated_reaches_the_embedded_aws(server: EmbeddedAws, tmp_path: Path) -> None:
    executor = PipelineExecutor(server, tmp_path / "work")
    assert executor.aws_endpoint == server.endpoint_url  # taken from the clients
    record = executor.execute(definition([_step(isolated=False)]), execution_id="aws1")

    assert record.status == SUCCEEDED, record.failure_reason
    body = server.client("s3").get_object(Bucket=STUB_BUCKET, Key="out/aws1/Fetch/fetched.csv")["Body"].read()
    assert body == b"a,b\n3,3\n"
    assert f"endpoint {server.endpoint_url}" in Path(record.steps[0].log_path or "").read_text()


@pytest.mark.enable_socket
def test_an_isolated_job_gets_no_aws_access_and_its_reason_names_the_exception(
    server: EmbeddedAws, tmp_path: Path
) -> None:
    record = PipelineExecutor(server, tmp_path / "work").execute(definition([_step(isolated=True)]))

    assert record.status == FAILED
    assert record.failure_reason == (
        "Step Fetch failed: AlgorithmError: NoCredentialsError: Unable to locate credentials (exit code 1, host algo-1)"
    )
    assert "raise NoCredentialsError()" in (record.steps[0].log_tail or "")


def test_in_process_there_is_no_endpoint_to_give_and_the_reason_says_so(embedded: EmbeddedAws, tmp_path: Path) -> None:
    _seed(embedded)
    executor = PipelineExecutor(embedded, tmp_path / "work")
    assert executor.aws_endpoint is None
    record = executor.execute(definition([_step(isolated=False)]))

    assert record.status == FAILED
    reason = record.failure_reason or ""
    assert "NoCredentialsError: Unable to locate credentials" in reason
    assert "the embedded AWS runs in-process" in reason and "flywheel up" in reason


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (
            'working\nTraceback (most recent call last):\n  File "x.py", line 1, in <module>\n    boom()\n'
            "    ^^^^^^\nbotocore.exceptions.NoCredentialsError: Unable to locate credentials\n",
            "NoCredentialsError: Unable to locate credentials",
        ),
        # chained: the last traceback's exception is the one that ended the job
        (
            "Traceback (most recent call last):\n  File \"a\"\nKeyError: 'x'\n\nDuring handling of the above "
            'exception, another exception occurred:\n\nTraceback (most recent call last):\n  File "b"\n'
            "ValueError: bad row 7\n",
            "ValueError: bad row 7",
        ),
        ('Traceback (most recent call last):\n  File "a"\nKeyboardInterrupt\n', "KeyboardInterrupt"),
        ("boom: the stub step broke on purpose\n", ""),  # no traceback: the exit code alone
    ],
)
def test_exception_from_log(log: str, expected: str) -> None:
    assert exception_from_log(log) == expected
