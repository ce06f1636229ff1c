"""Jobs as SageMaker runs them: a private /opt/ml per job process, and no network for an isolated one.

GIVEN step code that spells SageMaker's literal container paths, WHEN the executor runs it, THEN its output
is uploaded and nothing appears under the host's /opt/ml; an isolated job has no network, one that is not
isolated has the host's. Where the kernel refuses namespaces the executor falls back to rewriting paths.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import STUB_BUCKET, definition, processing_step

from flywheel.embedded import EmbeddedAws
from flywheel.executor import SUCCEEDED, PipelineExecutor
from flywheel.executor.sandbox import probe

SANDBOX = probe(sys.executable)
needs_sandbox = pytest.mark.skipif(not SANDBOX.available, reason=f"no mount namespaces here: {SANDBOX.reason}")

# Ignores its arguments: literal paths only, as step code written for the container does.
LITERAL = """
import errno, json, os, socket
os.makedirs("/opt/ml/processing/output/result", exist_ok=True)
seen = sorted(os.listdir("/opt/ml/processing/input/data"))
try:
    socket.create_connection(("127.0.0.1", 9), timeout=2).close()
    network = "connected"
except OSError as exc:
    network = errno.errorcode.get(exc.errno, str(exc.errno))
with open("/opt/ml/processing/output/result/x.txt", "w") as out:
    json.dump({"inputs": seen, "cwd": os.getcwd(), "network": network,
               "interfaces": [name for _, name in socket.if_nameindex()]}, out)
"""


def _opt_ml_state() -> Any:
    path = Path("/opt/ml")
    return sorted(str(p) for p in path.rglob("*")) if path.exists() else None


def _literal_step(isolated: bool | None) -> dict[str, Any]:
    step = processing_step("Literal", "literal.py", property_files=False)
    if isolated is not None:
        step["Arguments"]["NetworkConfig"] = {"EnableNetworkIsolation": isolated}
    return step


def _read(aws: EmbeddedAws, key: str) -> Any:
    return json.loads(aws.client("s3").get_object(Bucket=STUB_BUCKET, Key=key)["Body"].read())


@pytest.fixture
def literal_bucket(embedded: EmbeddedAws, stub_bucket: str) -> str:
    embedded.client("s3").put_object(Bucket=stub_bucket, Key="code/literal.py", Body=LITERAL.encode())
    return stub_bucket


def test_the_sandbox_works_wherever_the_kernel_allows_it() -> None:
    """No silent fallback on CI: root with CAP_SYS_ADMIN on Linux (the CI runner) must get the sandbox."""
    if not sys.platform.startswith("linux"):
        assert not SANDBOX.available and "Linux-only" in SANDBOX.reason
        return
    status = Path("/proc/self/status").read_text()
    effective = int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff")), 16)
    if effective & (1 << 21):  # CAP_SYS_ADMIN
        assert SANDBOX.available, SANDBOX.reason
    assert SANDBOX.describe()


@needs_sandbox
def test_literal_opt_ml_paths_are_the_jobs_own_and_never_the_hosts(
    embedded: EmbeddedAws, literal_bucket: str, tmp_path: Path
) -> None:
    before = _opt_ml_state()
    executor = PipelineExecutor(embedded, tmp_path / "work", sandbox=True)
    record = executor.execute(definition([_literal_step(isolated=True)]), execution_id="lit1")

    assert record.status == SUCCEEDED, record.failure_reason
    seen = _read(embedded, "out/lit1/Literal/x.txt")  # written to the literal path, uploaded from it
    assert seen["inputs"] == [f"part-{i}.csv" for i in range(5)]
    assert seen["cwd"] == str(tmp_path / "work" / "lit1" / "Literal" / "algo-1")
    assert _opt_ml_state() == before  # nothing created, written or mounted under the host's /opt/ml
    # Isolated: a network namespace of its own, loopback down — not even 127.0.0.1 is reachable.
    assert seen["interfaces"] == ["lo"] and seen["network"] == "ENETUNREACH"


@needs_sandbox
def test_a_job_that_is_not_isolated_keeps_the_network(
    embedded: EmbeddedAws, literal_bucket: str, tmp_path: Path
) -> None:
    executor = PipelineExecutor(embedded, tmp_path / "work")
    record = executor.execute(definition([_literal_step(isolated=None)]), execution_id="net1")
    assert record.status == SUCCEEDED, record.failure_reason
    assert _read(embedded, "out/net1/Literal/x.txt")["network"] == "ECONNREFUSED"  # reached 127.0.0.1


def test_without_the_sandbox_paths_in_commands_are_rewritten(
    embedded: EmbeddedAws, stub_bucket: str, tmp_path: Path
) -> None:
    executor = PipelineExecutor(embedded, tmp_path / "work", sandbox=False)
    assert not executor.sandbox.available
    record = executor.execute(definition([processing_step("Inspect", "inspect.py")]), execution_id="rw1")
    assert record.status == SUCCEEDED, record.failure_reason
    assert _read(embedded, "out/rw1/Inspect/algo-1.json")["files"] == [f"part-{i}.csv" for i in range(5)]


def test_the_wrapper_every_job_starts_through_imports_only_what_it_needs() -> None:
    # GIVEN the wrapper as a job starts it (python -I -S, no site-packages), WHEN it is imported, THEN it has
    # loaded none of the modules that cost ~20 ms per job (pathlib, dataclasses, subprocess, ctypes.util...)
    import subprocess

    from flywheel.executor.sandbox import WRAPPER

    code = (
        f"import sys; sys.path.insert(0, {str(WRAPPER.parent)!r}); import sandbox_exec; "
        "loaded = sorted(sys.modules); import json; print(json.dumps(loaded))"  # json: after the snapshot
    )
    loaded = set(json.loads(subprocess.check_output([sys.executable, "-I", "-S", "-c", code], text=True)))
    assert "sandbox_exec" in loaded
    assert not loaded & {
        "pathlib",
        "dataclasses",
        "subprocess",
        "shutil",
        "ctypes.util",
        "tempfile",
        "typing",
        "inspect",
    }
