"""Finding 10: a run killed with SIGKILL mid-step leaves no job process and, once a runtime starts
again, no raw data or key copy in its job folders; nothing under the state dir is group/world-readable.

A real ``flywheel run`` in a subprocess, on a copy of the minimal template whose step sleeps (so the
kill lands while the job runs with its raw input in place), ``kill -9``-ed; then a fresh
``flywheel status`` starts a runtime, which sweeps the dead run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_second_template import _config_with_minimal_team

from flywheel.executor.jobs import JOB_MARKER_ENV, OWNER_FILE, _scrub, sweep_stale_jobs, write_owner

REPO = Path(__file__).resolve().parents[2]
PII_ROWS = "name,email,phone,birth_date\n" + "".join(
    f"Person {i},p{i}@example.com,+44 20 7946 {i:04d},1980-01-{1 + i % 28:02d}\n" for i in range(200)
)


_tokens: set[bytes] = set()


def _processes_under(root: Path) -> list[int]:
    """Live job processes of the state dir ``root``: their working directory lies under it (the path-rewrite
    fallback) or their environment carries the owner token of one of its executions (the sandbox, where a
    job's working directory is its private ``/opt/ml``). Tokens seen once are remembered: the owner file
    outlives the owner, but the test reads it while the run is alive."""
    for owner in root.glob(f"jobs/*/{OWNER_FILE}"):
        _tokens.add(f"{JOB_MARKER_ENV}={json.loads(owner.read_text())['token']}".encode())
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            environ = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if state != "Z" and (cwd.startswith(str(root.resolve())) or environ & _tokens):
            found.append(int(entry.name))
    return found


def _wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout  # a safety net, not a measured time
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _loose_files(root: Path) -> list[str]:
    return [
        f"{p} {oct(p.lstat().st_mode & 0o777)}"
        for p in [root, *root.rglob("*")]
        if not p.is_symlink() and p.lstat().st_mode & 0o077
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_run_leaves_no_job_process_and_its_data_is_swept_at_the_next_start(tmp_path: Path) -> None:
    config_dir, templates = _config_with_minimal_team(tmp_path)
    fit = templates / "minimal" / "fit.py"
    head = "def main(argv: list[str]) -> int:\n"
    fit.write_text(fit.read_text().replace(head, head + "    import time\n    time.sleep(120)\n"))
    batch = tmp_path / "people.csv"
    batch.write_text(PII_ROWS, encoding="utf-8")
    state_dir = tmp_path / "state"
    options = ["--config-dir", str(config_dir), "--templates-dir", str(templates), "--state-dir", str(state_dir)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    run = subprocess.Popen(
        [sys.executable, "-m", "flywheel", *options[:4], "run", "--team", "counter", "--data", str(batch),
         *options[4:]],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        raw = _wait_for(lambda: list((state_dir / "jobs").glob("*/Fit/algo-1/opt/ml/processing/input/raw/**/*.csv")),
                        240, "the job's raw input")  # fmt: skip
        jobs = _wait_for(lambda: _processes_under(state_dir), 60, "the job process")
        # The job folder is private while the job runs (umask 077), not only after a sweep: every folder
        # is 0700 (what a job itself writes with explicit modes, e.g. tar as root, stays unreachable)
        # and the input copies the executor made are 0600.
        assert PII_ROWS.splitlines()[1] in raw[0].read_text()
        assert [f for f in _loose_files(state_dir) if Path(f.split(" ")[0]).is_dir()] == []
        assert raw[0].stat().st_mode & 0o777 == 0o600
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)

    # No orphan: the job process died with its parent.
    _wait_for(lambda: _processes_under(state_dir) == [], 20, f"job processes {jobs} to die")
    assert raw[0].exists()  # SIGKILL ran no clean-up: the copy is still there...

    # ...until the next runtime start sweeps it.
    status = subprocess.run(
        [sys.executable, "-m", "flywheel", *options[:4], "status", "--json", *options[4:]],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert status.returncode == 0, status.stdout + status.stderr
    leftovers = [p for p in state_dir.rglob("*") if p.is_file() and (p.suffix == ".csv" or "pii" in p.name)]
    leftovers = [p for p in leftovers if p.parent.name != "keys"]  # the state's own key store (0600)
    assert leftovers == []
    assert not list((state_dir / "jobs").glob(f"*/{OWNER_FILE}"))
    assert _loose_files(state_dir) == []
    executions = json.loads(status.stdout)["executions"]
    assert [e["PipelineExecutionStatus"] for e in executions] == ["Failed"]
    assert "died" in executions[0]["FailureReason"]


def test_the_sweep_scrubs_only_dead_owners_and_reuses_the_scrub(tmp_path: Path) -> None:
    work = tmp_path / "jobs"
    for name in ("dead", "alive"):
        write_owner(work / name)
        key = work / name / "Preprocess" / "algo-1" / "opt" / "ml" / "processing" / "input" / "key" / "pii-hmac.key"
        key.parent.mkdir(parents=True)
        key.write_bytes(b"k" * 64)
        (work / name / "Preprocess" / ".s3cache").mkdir()
    dead_owner = work / "dead" / OWNER_FILE
    record = json.loads(dead_owner.read_text())
    record["pid"] = 2**22 + 12345  # above Linux's pid_max: never alive
    dead_owner.write_text(json.dumps(record))

    assert sweep_stale_jobs(work) == [work / "dead"]
    assert not (work / "dead" / "Preprocess" / "algo-1" / "opt").exists()
    assert not (work / "dead" / "Preprocess" / ".s3cache").exists()
    assert (work / "alive" / "Preprocess" / "algo-1" / "opt").exists()  # this process owns it: untouched
    _scrub(work / "alive" / "Preprocess")
