"""Finding 11: a corrupt state file is named, with the fix, through the CLI (exit code, no traceback);
a corrupt registry snapshot does not block the group's other packages; PII keys are never replaced."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_second_template import _config_with_minimal_team
from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.errors import StateCorruptError
from flywheel.state import StateStore

GROUP = "flywheel-local-counter"
TRUNCATED = b'{"PipelineExecutionId": "e1", "Pipeline'
GARBAGE = bytes(range(256)) * 4
CASES = {
    "truncated JSON": TRUNCATED,
    "wrong type": b"[1, 2, 3]\n",
    "binary garbage": GARBAGE,
    "empty file": b"",
    "missing field": b'{"something": "else"}\n',
}


def _cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    config_dir, templates = _config_with_minimal_team(tmp_path) if not (tmp_path / "config").exists() else (
        tmp_path / "config", tmp_path / "templates")  # fmt: skip
    argv = ["--config-dir", str(config_dir), "--templates-dir", str(templates), *args]
    result = CliRunner().invoke(app, [*argv, "--state-dir", str(tmp_path / "state")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_corrupt_server_record_is_named_with_the_fix(tmp_path: Path, case: str) -> None:
    path = _write(tmp_path / "state" / "servers" / "aws.json", CASES[case])
    code, output = _cli(tmp_path, "status")
    assert code == 1
    assert str(path) in output.replace("\n", "") and "start the server again" in output


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_corrupt_execution_record_is_reported_and_skipped(tmp_path: Path, case: str) -> None:
    path = _write(tmp_path / "state" / "executions" / "e1.json", CASES[case])
    good = {"PipelineExecutionId": "e2", "PipelineName": "p", "PipelineExecutionStatus": "Succeeded", "Steps": []}
    _write(tmp_path / "state" / "executions" / "e2.json", json.dumps(good).encode())
    code, output = _cli(tmp_path, "status")
    assert code == 0
    assert "e2" in output and "Warning" in output and str(path) in output.replace("\n", "")


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_corrupt_deployment_record_is_named_by_serve(tmp_path: Path, case: str) -> None:
    path = _write(tmp_path / "state" / "deployments" / "counter.json", CASES[case])
    code, output = _cli(tmp_path, "serve", "--team", "counter", "--port", "0", "--duration", "0")
    assert code == 1
    assert str(path) in output.replace("\n", "") and "approve the package again" in output


@pytest.mark.parametrize("content", [b"", b"\n", b"0123456789abcdef", b"x" * 31])
def test_a_short_or_empty_pii_key_is_refused_and_never_replaced(tmp_path: Path, content: bytes) -> None:
    path = _write(tmp_path / "state" / "keys" / "counter-pii-hmac.key", content)
    data = _write(tmp_path / "batch.csv", b"a,b\n1,2\n")
    code, output = _cli(tmp_path, "run", "--team", "counter", "--data", str(data))
    assert code == 1
    assert str(path) in output.replace("\n", "") and "restore it from your backup" in output
    assert path.read_bytes() == content  # never silently replaced


def _snapshot(version: int, status: str = "PendingManualApproval") -> dict:
    arn = f"arn:aws:sagemaker:eu-west-1:123456789012:model-package/{GROUP}/{version}"
    package = {
        "ModelPackageArn": arn,
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": version,
        "ModelApprovalStatus": status,
        "ModelPackageDescription": f"version {version}",
    }
    return {"package": package, "objects": {}, "execution_arn": None}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_corrupt_registry_snapshot_blocks_neither_status_nor_other_packages(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "state" / "registry" / GROUP
    _write(folder / "000001.json", json.dumps(_snapshot(1)).encode())
    corrupt = _write(folder / "000002.json", CASES[case])
    _write(folder / "000003.json", json.dumps(_snapshot(3)).encode())

    code, output = _cli(tmp_path, "status", "--json")
    assert code == 0, output
    status = json.loads(output)
    assert [p["ModelPackageVersion"] for p in status["registry"]["counter"]] == [1, 3]
    assert any(str(corrupt) in problem for problem in status["problems"])

    code, output = _cli(tmp_path, "reject", "counter:3")  # a later package: replayed at its own version
    assert code == 0, output
    assert "is now Rejected" in output
    assert json.loads((folder / "000003.json").read_text())["package"]["ModelApprovalStatus"] == "Rejected"
    code, output = _cli(tmp_path, "approve", "counter:2")  # the corrupt one: named, not touched
    assert code == 1 and str(corrupt) in output.replace("\n", "")
    assert corrupt.read_bytes() == CASES[case]


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_reader_names_the_file(tmp_path: Path, case: str) -> None:
    state = StateStore(tmp_path)
    readers = {
        "executions/e1.json": lambda: state.execution("e1"),
        "pending/e1.json": lambda: state.take_pending_run("e1"),
        "events/k1.json": lambda: state.claimed("k1") if case not in ("missing field",) else _raise_for_missing(),
        "deployments/t.json": lambda: state.deployment("t"),
        "servers/aws.json": lambda: state.server("aws"),
        "registry/g/000001.json": lambda: state.package("g", 1),
    }
    for relative, read in readers.items():
        path = _write(tmp_path / relative, CASES[case])
        if relative.startswith("events") and case == "missing field":
            continue  # a claim's record has no required field
        with pytest.raises(StateCorruptError) as caught:
            read()
        assert caught.value.path == str(path) and str(path) in str(caught.value)
        assert path.read_bytes() == CASES[case]  # a read never removes or rewrites the file


def _raise_for_missing() -> None:
    raise StateCorruptError("unused", "", "")


def test_listings_survive_an_unreadable_file(tmp_path: Path) -> None:
    state = StateStore(tmp_path)
    path = _write(tmp_path / "executions" / "e1.json", b"{}")
    path.chmod(0)
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    assert state.executions() == [] and str(path) in str(state.problems[0])
