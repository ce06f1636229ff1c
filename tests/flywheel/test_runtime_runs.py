"""Runs across processes: a run started in one process is executed by another; a package knows its run;
status and the report show the parameters the run used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from flywheel.embedded import EmbeddedAws
from flywheel.errors import RunNotPendingError
from flywheel.runtime import LocalRuntime
from flywheel.state import StateStore
from naming import split_s3_uri

REPO = Path(__file__).resolve().parents[2]
GROUP = "flywheel-local-churn"

# Executes one run in a fresh interpreter: its own LocalRuntime, nothing shared but the state dir and
# the embedded AWS server.
EXECUTE = textwrap.dedent(
    """
    import json, os, sys
    from flywheel.embedded import EmbeddedAws
    from flywheel.runtime import LocalRuntime
    from flywheel.state import StateStore

    url, state_dir, arn = sys.argv[1:4]
    aws = EmbeddedAws.connect(url)
    try:
        record = LocalRuntime(aws, StateStore(state_dir)).execute(arn)
    finally:
        aws.close()
    print(json.dumps({"pid": os.getpid(), "status": record.status, "arn": record.execution_arn}))
    """
)

# Takes one pending run once a start file exists (so that every taker races for it at the same moment).
TAKE = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from flywheel.state import StateStore

    state_dir, execution_id, go = sys.argv[1:4]
    while not Path(go).exists():
        time.sleep(0.005)
    print(json.dumps(StateStore(state_dir).take_pending_run(execution_id)))
    """
)


def _download_prefix(aws: EmbeddedAws, uri: str, folder: Path) -> Path:
    """The parquet files under an S3 prefix, downloaded into ``folder``."""
    bucket, prefix = split_s3_uri(uri.rstrip("/") + "/")
    s3 = aws.client("s3")
    folder.mkdir(parents=True)
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
        if item["Key"].endswith(".parquet"):
            s3.download_file(bucket, item["Key"], str(folder / item["Key"].rsplit("/", 1)[-1]))
    return folder


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_of_processes_racing_for_a_pending_run_exactly_one_takes_it(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state")
    run = {"team": "churn", "parameters": {"InputDataUri": "s3://b/churn/incoming/x/"}, "execution_arn": "arn:x/e1"}
    state.save_pending_run("e1", run)
    go = tmp_path / "go"
    takers = [_python(TAKE, str(state.root), "e1", str(go)) for _ in range(6)]
    time.sleep(1.0)  # every interpreter is up and polling
    go.touch()
    results = []
    for taker in takers:
        out, err = taker.communicate(timeout=60)
        assert taker.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r for r in results if r is not None] == [run]
    assert results.count(None) == 5
    assert state.pending_run("e1") is None
    assert [p.name for p in (state.root / "pending").iterdir()] == []  # nothing left behind


def test_execute_refuses_a_run_nobody_started(embedded: EmbeddedAws, state: StateStore) -> None:
    runtime = LocalRuntime(embedded, state)
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/flywheel-local-churn-tabular/execution/nope123"
    with pytest.raises(RunNotPendingError, match="was not started from state dir"):
        runtime.execute(arn)
    with pytest.raises(RunNotPendingError, match="was not started"):
        runtime.execute("arn:../../etc")  # not even a name the state dir could hold


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_a_run_started_here_is_executed_by_another_process_with_its_own_parameters(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state")
    aws = EmbeddedAws.serve(0)
    try:
        runtime = LocalRuntime(aws, state)
        runtime.provision(["churn"])
        configured = runtime.team_config("churn").metric_gate.threshold
        assert configured != 0.55

        # GIVEN a batch landed and its run started here, with a non-default gate threshold.
        source = runtime.generate("churn", 1200, 4, tmp_path / "data")
        event = runtime.land("churn", source)
        runtime.actions.parameter_overrides["churn"] = {"GateThreshold": "0.55"}
        arrival = runtime.trigger(event)
        arn = arrival.execution_arn
        assert arn is not None
        execution_id = arn.rsplit("/", 1)[-1]
        pending = state.pending_run(execution_id)
        assert pending and pending["team"] == "churn" and pending["parameters"]["GateThreshold"] == "0.55"

        # WHEN another process executes it (a fresh LocalRuntime: nothing in memory is shared).
        child = _python(EXECUTE, str(aws.endpoint_url), str(state.root), arn)
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err[-3000:]
        result = json.loads(out.strip().splitlines()[-1])
        assert result == {"pid": child.pid, "status": "Succeeded", "arn": arn} and child.pid != os.getpid()

        # THEN the run is done and recorded, and no process can execute it again.
        assert state.pending_run(execution_id) is None
        record = runtime.execution(arn)
        assert record is not None and record.succeeded
        assert record.parameters["GateThreshold"] == 0.55
        with pytest.raises(RunNotPendingError, match="is not pending: a process already took it"):
            runtime.execute(arn)

        # The package knows the run that registered it (recorded at registration), also after approval.
        package_arn = (record.step("RegisterModel") or record.steps[-1]).metadata["RegisterModel"]["Arn"]
        assert (state.package(GROUP, 1) or {})["execution_arn"] == arn
        assert runtime.registry.execution_of(GROUP, 1) == state.execution(execution_id)
        assert runtime.set_approval(package_arn, "Approved").action == "deployed"
        assert (state.package(GROUP, 1) or {})["execution_arn"] == arn
        deployment = state.deployment("churn") or {}
        samples = Path(str(deployment.get("Samples")))
        test_uri = next(s.metadata["Outputs"]["test"] for s in record.steps if "test" in s.metadata.get("Outputs", {}))
        test_rows = len(pd.read_parquet(_download_prefix(aws, test_uri, tmp_path / "test")))
        assert samples.is_file() and len(samples.read_text().splitlines()) == min(200, test_rows) > 0

        # Status and the report show the threshold the run used, not the configured one.
        status = runtime.status()
        (shown,) = [e for e in status["executions"] if e["PipelineExecutionArn"] == arn]
        assert shown["Gate"] == {"metric": "auc", "operator": ">=", "threshold": 0.55}
        assert status["teams"][0]["gate"] == f"auc >= {configured}"  # the team's default stays visible
        outcome = runtime.outcome("churn", event, arrival, record)
        report = runtime.report(outcome, serving=None)
        assert report["gate_threshold"] == 0.55
        # Labelled: the deployed definition has no GateThreshold parameter (the gate comes from config).
        assert report["gate_override"] == f"gate threshold overridden locally: 0.55 (deployed: {configured})"
        assert report["gate_passed"] is True and report["execution_id"] == arn
        assert report["lineage"]["model_package_arn"] == package_arn
        assert report["lineage"]["approval_status"] == "Approved"
        path, _ = runtime.write_report(outcome, serving=None)
        assert "0.55" in path.read_text(encoding="utf-8")
    finally:
        aws.close()
