"""The state store: atomic JSON records, one-time claims, safe names, secrets; PII keys kept across runs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import naming
from flywheel import embedded as emb
from flywheel.state import StateStore, atomic_write_json, read_json


def test_atomic_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b.json"
    atomic_write_json(path, {"x": 1})
    atomic_write_json(path, {"x": 2})
    assert read_json(path) == {"x": 2}
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]
    assert read_json(tmp_path / "missing.json") is None


def test_a_failed_write_keeps_the_previous_version(tmp_path: Path) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("cannot serialize")

    path = tmp_path / "r.json"
    atomic_write_json(path, {"ok": True})
    with pytest.raises(RuntimeError, match="cannot serialize"):
        atomic_write_json(path, {"bad": Unprintable()})
    assert read_json(path) == {"ok": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_executions_are_listed_in_start_order(state: StateStore) -> None:
    state.save_execution({"PipelineExecutionId": "b", "PipelineName": "p", "StartTime": "2026-01-02"})
    state.save_execution({"PipelineExecutionId": "a", "PipelineName": "q", "StartTime": "2026-01-01"})
    assert [r["PipelineExecutionId"] for r in state.executions()] == ["a", "b"]
    assert [r["PipelineExecutionId"] for r in state.executions("p")] == ["b"]
    assert state.execution("a") == {"PipelineExecutionId": "a", "PipelineName": "q", "StartTime": "2026-01-01"}


def test_claims_are_granted_once_and_can_be_released(state: StateStore) -> None:
    key = hashlib.sha256(b"bucket/key/etag").hexdigest()
    assert state.claim(key, {"n": 1})
    assert not state.claim(key, {"n": 2})
    assert state.claimed(key) == {"n": 1}
    state.update_claim(key, {"n": 3})
    assert state.claimed(key) == {"n": 3}
    state.release(key)
    assert state.claimed(key) is None and state.claim(key, {"n": 4})


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 200, "a\\b"])
def test_names_that_could_leave_the_store_are_refused(state: StateStore, name: str) -> None:
    with pytest.raises(ValueError, match="not a safe name"):
        state.save_deployment(name, {"x": 1})


def test_deployments_servers_and_secrets(state: StateStore) -> None:
    deployment = {"ModelPackageArn": "arn:1", "ModelPackageVersion": 1, "LocalModel": "/x/model.tar.gz"}
    state.save_deployment("churn", deployment)
    state.save_server("aws", {"url": "http://127.0.0.1:1", "pid": os.getpid()})
    assert state.deployments() == {"churn": deployment}
    assert state.servers()["aws"]["url"] == "http://127.0.0.1:1"
    state.save_deployment("churn", None)
    state.save_server("aws", None)
    assert state.deployments() == {} and state.servers() == {}
    one, two = b"1" * 32, b"2" * 32
    first = state.secret("team-key", lambda: one)
    assert first == one and state.secret("team-key", lambda: two) == one
    assert (state.root / "keys" / "team-key").stat().st_mode & 0o077 == 0


def test_the_runtime_keeps_pii_keys_stable_across_embedded_aws_lifetimes(tmp_path: Path) -> None:
    from flywheel.runtime import LocalRuntime

    keys = []
    for _ in range(2):
        with emb.in_process() as aws:
            runtime = LocalRuntime(aws, StateStore(tmp_path / "state"))
            res = runtime.provision(["churn"])["churn"]
            bucket, key = naming.split_s3_uri(res.pii_key_uri)
            keys.append(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert keys[0] == keys[1]
    assert (tmp_path / "state/keys/churn-pii-hmac.key").read_bytes() == keys[0]


def test_claims_and_secrets_are_never_seen_empty(tmp_path) -> None:
    """Created whole in one step: a reader racing the writer sees nothing or everything."""
    store = StateStore(tmp_path)
    assert store.claim("a" * 64, {"state": "starting"})
    assert store.claimed("a" * 64) == {"state": "starting"}
    assert not store.claim("a" * 64, {"state": "other"})
    key = b"0123456789abcdef0123456789abcdef"
    assert store.secret("k", lambda: key) == key
    assert store.secret("k", lambda: b"different-value-xxxxx-yyyyyyyyyyyy") == key
    assert oct((tmp_path / "keys" / "k").stat().st_mode & 0o777) == "0o600"
    leftovers = [p.name for p in tmp_path.rglob(".*") if p.is_file()]
    assert leftovers == []  # no temp files left behind
