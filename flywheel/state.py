"""The local runtime's record: a small JSON store under a state directory (default ``.flywheel/state``).

What the embedded AWS does not keep (or does not simulate) lives here, so that ``flywheel status`` can
show it from any process: pipeline executions and their steps, the lifecycle's idempotency claims,
each team's deployment (the approved package the local endpoint serves) and running servers.

Layout::

    <state>/executions/<execution-id>.json   one execution: status, parameters, steps
    <state>/pending/<execution-id>.json      a started run no process has taken yet (team, parameters)
    <state>/events/<sha256>.json             idempotency claims of lifecycle events
    <state>/deployments/<team>.json          the team's deployed (approved) model package
    <state>/deployments/<team>/<version>/    the deployed model.tar.gz (copied at deploy time)
    <state>/servers/<name>.json              running local servers (embedded AWS, endpoints)
    <state>/registry/<group>/<version>.json  snapshots of registered model packages (+ their S3 objects
                                             and the execution that registered them)
    <state>/keys/<name>                      the teams' PII HMAC keys (mode 0600), stable across runs
    <state>/jobs/, data/, reports/           job folders and logs, generated data, HTML reports

The embedded AWS lives as long as one process (or one ``flywheel up``); what must outlive it is kept
here: the registry (snapshots replayed into a fresh embedded AWS with the same versions and approval
statuses, see :mod:`flywheel.registry_mirror`) and the teams' PII keys (so tokens stay stable across runs).

Every write goes to a temporary file in the same folder and is renamed over the target
(``os.replace`` is atomic on POSIX and Windows), so a reader never sees half a file, and a crash leaves
the previous version. Claims use ``O_CREAT | O_EXCL`` so two processes cannot both claim one event;
a pending run is taken by renaming it away, so two processes cannot both execute one run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

DEFAULT_STATE_DIR: Final = Path(".flywheel") / "state"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _check_name(kind: str, name: str) -> str:
    # Names become file names: refuse anything that could leave the folder ("..", "/", "\").
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise ValueError(f"{kind}: {name!r} is not a safe name (letters, digits, '.', '_', '-')")
    return name


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True, default=str)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> Any | None:
    """The JSON content of ``path``, or None if it does not exist."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _create_once(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` (mode 0600) only if it does not exist; atomic: written to a temp
    file, then hard-linked into place, so the file is never observed empty or half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def pid_alive(pid: Any) -> bool:
    """Whether a process ``pid`` runs on this machine (servers record their pid)."""
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


class StateStore:
    """JSON records of executions, event claims, deployments and servers under ``root``."""

    def __init__(self, root: str | Path = DEFAULT_STATE_DIR) -> None:
        self.root = Path(root)

    # Executions -------------------------------------------------------------------------------------
    def save_execution(self, record: dict[str, Any]) -> None:
        """Create or replace the record of execution ``record['PipelineExecutionId']``."""
        execution_id = _check_name("execution id", str(record["PipelineExecutionId"]))
        atomic_write_json(self.root / "executions" / f"{execution_id}.json", record)

    def execution(self, execution_id: str) -> dict[str, Any] | None:
        """One execution record, or None."""
        return read_json(self.root / "executions" / f"{_check_name('execution id', execution_id)}.json")

    def executions(self, pipeline_name: str | None = None) -> list[dict[str, Any]]:
        """All execution records (optionally of one pipeline), oldest first."""
        folder = self.root / "executions"
        records = [read_json(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
        found = [r for r in records if r and (pipeline_name is None or r.get("PipelineName") == pipeline_name)]
        return sorted(found, key=lambda r: (str(r.get("StartTime", "")), str(r.get("PipelineExecutionId"))))

    # Pending runs ----------------------------------------------------------------------------------
    # StartPipelineExecution and the run are separate calls (and may be separate processes, as the
    # data-arrival Lambda and SageMaker are): the start records what the run needs, any process takes it.
    def save_pending_run(self, execution_id: str, run: dict[str, Any]) -> None:
        """Record a started run (``team``, ``parameters``, ...) for whichever process executes it."""
        atomic_write_json(self.root / "pending" / f"{_check_name('execution id', execution_id)}.json", run)

    def pending_run(self, execution_id: str) -> dict[str, Any] | None:
        """A started run no process has taken yet, or None."""
        return read_json(self.root / "pending" / f"{_check_name('execution id', execution_id)}.json")

    def take_pending_run(self, execution_id: str) -> dict[str, Any] | None:
        """Remove and return a pending run; None if there is none (never started, or already taken).

        The file is renamed away first (atomic): of several processes taking one run, exactly one gets it.
        """
        path = self.root / "pending" / f"{_check_name('execution id', execution_id)}.json"
        taken = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.taken")
        try:
            os.rename(path, taken)
        except FileNotFoundError:
            return None
        try:
            record: dict[str, Any] = json.loads(taken.read_text(encoding="utf-8"))
            return record
        finally:
            os.unlink(taken)

    # Idempotency claims -----------------------------------------------------------------------------
    def claim(self, key: str, record: dict[str, Any]) -> bool:
        """Claim ``key`` for ``record``; False (nothing written) if it was claimed before.

        Created complete in one step, so a concurrent reader never sees an empty claim.
        """
        path = self.root / "events" / f"{_check_name('event key', key)}.json"
        return _create_once(path, json.dumps(record, indent=2, sort_keys=True).encode("utf-8"))

    def claimed(self, key: str) -> dict[str, Any] | None:
        """The record of a claimed key, or None."""
        return read_json(self.root / "events" / f"{_check_name('event key', key)}.json")

    def update_claim(self, key: str, record: dict[str, Any]) -> None:
        """Replace the record of an existing claim (e.g. with the execution it started)."""
        atomic_write_json(self.root / "events" / f"{_check_name('event key', key)}.json", record)

    def release(self, key: str) -> None:
        """Drop a claim (the action it guarded failed, so a retry must be possible)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / "events" / f"{_check_name('event key', key)}.json")

    # Deployments ------------------------------------------------------------------------------------
    def deployment_dir(self, team: str, version: int | str) -> Path:
        """Where the deployed artifact of ``team``'s package ``version`` is kept."""
        return self.root / "deployments" / _check_name("team", team) / _check_name("version", str(version))

    def save_deployment(self, team: str, record: dict[str, Any] | None) -> None:
        """Record (or, with None, clear) the package the team's endpoint serves."""
        path = self.root / "deployments" / f"{_check_name('team', team)}.json"
        if record is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        atomic_write_json(path, record)

    def deployment(self, team: str) -> dict[str, Any] | None:
        """The team's deployment record, or None."""
        return read_json(self.root / "deployments" / f"{_check_name('team', team)}.json")

    def deployments(self) -> dict[str, dict[str, Any]]:
        """Team -> deployment record."""
        folder = self.root / "deployments"
        if not folder.is_dir():
            return {}
        return {p.stem: record for p in sorted(folder.glob("*.json")) if (record := read_json(p))}

    # Secrets and registry snapshots ---------------------------------------------------------------------
    def secret(self, name: str, factory: Callable[[], bytes]) -> bytes:
        """The secret ``name`` (created by ``factory`` on first use, file mode 0600)."""
        path = self.root / "keys" / _check_name("secret", name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        value = factory()
        if not _create_once(path, value):
            return path.read_bytes()  # another process created it first: use theirs
        return value

    def registry_dir(self, group: str) -> Path:
        """Where snapshots of a model package group's packages are kept."""
        return self.root / "registry" / _check_name("group", group)

    def save_package(self, group: str, version: int, record: dict[str, Any]) -> None:
        """Snapshot one model package (DescribeModelPackage + local copies of its S3 objects)."""
        atomic_write_json(self.registry_dir(group) / f"{int(version):06d}.json", record)

    def package(self, group: str, version: int) -> dict[str, Any] | None:
        """One package snapshot (``package``, ``objects``, ``execution_arn``), or None."""
        return read_json(self.registry_dir(group) / f"{int(version):06d}.json")

    def packages(self, group: str) -> list[dict[str, Any]]:
        """The group's package snapshots, by version."""
        folder = self.registry_dir(group)
        if not folder.is_dir():
            return []
        return [r for p in sorted(folder.glob("*.json")) if (r := read_json(p))]

    # Servers ----------------------------------------------------------------------------------------
    def save_server(self, name: str, record: dict[str, Any] | None) -> None:
        """Record (or, with None, clear) a running server: ``aws`` or ``endpoint-<team>``."""
        path = self.root / "servers" / f"{_check_name('server', name)}.json"
        if record is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        atomic_write_json(path, record)

    def server(self, name: str) -> dict[str, Any] | None:
        """A server record, or None."""
        return read_json(self.root / "servers" / f"{_check_name('server', name)}.json")

    def servers(self) -> dict[str, dict[str, Any]]:
        """Name -> server record."""
        folder = self.root / "servers"
        if not folder.is_dir():
            return {}
        return {p.stem: record for p in sorted(folder.glob("*.json")) if (record := read_json(p))}

    def iter_files(self) -> Iterator[Path]:
        """Every file of the store (for tests and diagnostics)."""
        yield from (p for p in sorted(self.root.rglob("*")) if p.is_file())
