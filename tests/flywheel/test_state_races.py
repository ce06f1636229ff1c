"""Finding 9: concurrent processes on one state dir never lose a registered package.

Four real processes, each with its own in-process embedded AWS (as four concurrent ``flywheel run``
without ``flywheel up``), register packages through the executor's RegisterModel step at the same
moment; the registry mirror allocates the versions under the group's state lock. Every package must
survive with its own version.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flywheel.errors import FlywheelError
from flywheel.state import StateStore

REPO = Path(__file__).resolve().parents[2]
GROUP = "race-group"
PER_PROCESS = 3

REGISTER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from flywheel.embedded import EmbeddedAws
    from flywheel.executor import PipelineExecutor
    from flywheel.registry_mirror import RegistryMirror
    from flywheel.state import StateStore

    state_dir, go, group, count = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    aws = EmbeddedAws.in_process()
    sm, s3 = aws.client("sagemaker"), aws.client("s3")
    sm.create_model_package_group(ModelPackageGroupName=group)
    s3.create_bucket(Bucket="race-models", CreateBucketConfiguration={"LocationConstraint": aws.region})
    s3.put_object(Bucket="race-models", Key=f"{os.getpid()}/model.tar.gz", Body=b"x" * 200_000)
    state = StateStore(state_dir)
    mirror = RegistryMirror(aws, state)
    mirror.restore(group)  # what provisioning does
    definition = {"Version": "2020-12-01", "Steps": [{
        "Name": "Register", "Type": "RegisterModel",
        "Arguments": {
            "ModelPackageGroupName": group, "ModelApprovalStatus": "PendingManualApproval",
            "InferenceSpecification": {
                "Containers": [{"Image": "stub", "ModelDataUrl": f"s3://race-models/{os.getpid()}/model.tar.gz"}],
                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["application/json"],
            },
        },
    }]}
    registered = []
    while not go.exists():
        time.sleep(0.002)
    for i in range(count):
        arn = f"arn:aws:sagemaker:eu-west-1:123456789012:pipeline/p/execution/{os.getpid()}x{i}"
        executor = PipelineExecutor(
            aws, Path(state_dir) / "jobs", register=lambda a, arn=arn: mirror.register(a, execution_arn=arn)
        )
        record = executor.execute(definition, execution_arn=arn)
        assert record.status == "Succeeded", record.failure_reason
        registered.append([record.step("Register").metadata["RegisterModel"]["Version"], arn])
    print(json.dumps(registered))
    """
)


def test_concurrent_registering_processes_lose_no_package(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state")
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REGISTER, str(state.root), str(go), GROUP, str(PER_PROCESS)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    time.sleep(2.0)  # every interpreter is up and waiting (a safety margin, not a measured time)
    go.touch()
    registered = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        registered.extend(json.loads(out.strip().splitlines()[-1]))

    versions = sorted(int(v) for v, _ in registered)
    assert versions == list(range(1, 4 * PER_PROCESS + 1))  # all distinct, none lost
    snapshots = state.packages(GROUP)
    assert state.problems == []
    assert len(snapshots) == 4 * PER_PROCESS
    # Each snapshot is the package its registering run created (no process replaced another's).
    by_version = {int(s["package"]["ModelPackageVersion"]): s for s in snapshots}
    for version, arn in registered:
        snapshot = by_version[int(version)]
        assert snapshot["execution_arn"] == arn
        pid = arn.rsplit("/", 1)[-1].split("x")[0]
        model = snapshot["package"]["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
        assert model == f"s3://race-models/{pid}/model.tar.gz"


def test_records_that_must_exist_once_are_created_exclusively(tmp_path: Path) -> None:
    state = StateStore(tmp_path)
    record = {"PipelineExecutionId": "e1", "PipelineExecutionStatus": "Executing"}
    state.save_execution(record, create=True)
    with pytest.raises(FlywheelError, match="already has a record"):
        state.save_execution({**record, "PipelineExecutionStatus": "Other"}, create=True)
    assert state.execution("e1") == record
    state.save_pending_run("e1", {"team": "t", "parameters": {}})
    with pytest.raises(FlywheelError, match="already pending"):
        state.save_pending_run("e1", {"team": "u", "parameters": {}})
    package = {"package": {"ModelPackageArn": "a/1", "ModelPackageVersion": 1, "ModelPackageGroupName": "g"}}
    state.save_package("g", 1, package, create=True)
    with pytest.raises(FlywheelError, match="another process registered it"):
        state.save_package("g", 1, {**package, "objects": {}}, create=True)
    assert state.package("g", 1) == package


LOCKED_COUNTER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from flywheel.state import StateStore
    state, counter, n = StateStore(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    for _ in range(n):
        with state.lock("counter"):
            value = int(counter.read_text() or 0) if counter.exists() else 0
            counter.write_text(str(value + 1))
    """
)


def test_the_state_lock_excludes_other_processes(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    procs = [
        subprocess.Popen([sys.executable, "-c", LOCKED_COUNTER, str(tmp_path / "state"), str(counter), "200"], cwd=REPO)
        for _ in range(4)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    assert counter.read_text() == "800"
