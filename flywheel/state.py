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
the previous version. Records that must exist once are created exclusively (a hard link of a complete
temporary file: claims, new executions, new registry snapshots), so two processes cannot both create one;
a pending run is taken by renaming it away, so two processes cannot both execute one run. Writes that
replace a record, and the registry's version allocation (:mod:`flywheel.registry_mirror`), hold an
exclusive ``flock`` on ``<state>/locks/<name>.lock`` (:meth:`StateStore.lock`).

Everything under the state dir is private to its owner: directories 0700, files 0600 (the runtime runs
with umask 077; :meth:`StateStore.harden` tightens what an older version left group/world-readable).

Every read names the file when it cannot be used (:class:`flywheel.errors.StateCorruptError`: truncated
or binary content, wrong type, missing field) and says what to do; listings skip such a file and report
it in :attr:`StateStore.problems`, so one corrupt record never hides the others.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Final

from flywheel.errors import FlywheelError, StateCorruptError, StateLockError

DEFAULT_STATE_DIR: Final = Path(".flywheel") / "state"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: The umask of the local runtime: nothing it writes is readable by the group or others.
PRIVATE_UMASK: Final = 0o077
#: A PII HMAC key must hold at least this many bytes (README: 32+ random bytes).
MIN_KEY_BYTES: Final = 32
#: How long a writer waits for a state lock before giving up with :class:`StateLockError`.
LOCK_TIMEOUT_S: Final = 600.0

# What to do about a corrupt file, by the folder it lives in.
_FIXES: Final = {
    "executions": "delete it (only the record of that run is lost; its data and registered packages are not), "
    "or restore it from a backup",
    "pending": "delete it and start the run again (`flywheel run`)",
    "events": "delete it: the event it claimed can then be delivered again",
    "deployments": "delete it and approve the package again (`flywheel approve <team>:<version>`)",
    "servers": "delete it and start the server again (`flywheel up` / `flywheel serve`)",
    "registry": "restore it from a backup, or move it out of the state dir to drop that package "
    "(the group's other packages are kept)",
}


def private_umask() -> None:
    """Make this process create files 0600 and folders 0700 (umask 077)."""
    os.umask(PRIVATE_UMASK)


def _check_name(kind: str, name: str) -> str:
    # Names become file names: refuse anything that could leave the folder ("..", "/", "\").
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise ValueError(f"{kind}: {name!r} is not a safe name (letters, digits, '.', '_', '-')")
    return name


def _fix_for(path: Path) -> str:
    for part in reversed(path.parts):
        if part in _FIXES:
            return _FIXES[part]
    return "delete it or restore it from a backup"


def _mkdir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temporary file + rename; mode 0600)."""
    _mkdir(path.parent)
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


def parse_json(path: Path, raw: bytes, required: Iterable[str] = ()) -> dict[str, Any]:
    """``raw`` (the content of ``path``) as a JSON object with the ``required`` keys; StateCorruptError
    naming the file and the fix otherwise."""
    fix = _fix_for(path)
    if not raw.strip():
        raise StateCorruptError(path, "is empty", fix)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise StateCorruptError(path, "is not text (binary content)", fix) from None
    except ValueError as exc:
        raise StateCorruptError(path, f"is not valid JSON ({exc})", fix) from None
    if not isinstance(data, dict):
        raise StateCorruptError(path, f"holds a JSON {type(data).__name__}, not an object", fix)
    missing = [key for key in required if key not in data]
    if missing:
        raise StateCorruptError(path, f"lacks the field(s) {', '.join(missing)}", fix)
    return data


def read_json(path: Path, required: Iterable[str] = ()) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if it does not exist; StateCorruptError if it is unusable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise StateCorruptError(path, "is a directory", _fix_for(path)) from None
    except OSError as exc:
        raise StateCorruptError(path, f"cannot be read ({exc.strerror})", "check its owner and permissions") from None
    return parse_json(path, raw, required)


def _create_once(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` (mode 0600) only if it does not exist; atomic: written to a temp
    file, then hard-linked into place, so the file is never observed empty or half-written."""
    _mkdir(path.parent)
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
    except (OSError, ValueError, TypeError, OverflowError):
        return False
    return True


class _Lock:
    """One flock-ed lock file, re-entrant within the process (flock locks belong to an open file, so a
    second open of the same file in this process would wait for the first)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.guard = threading.RLock()
        self.depth = 0
        self.fd: int | None = None


_LOCKS: dict[Path, _Lock] = {}
_LOCKS_GUARD = threading.Lock()


class StateStore:
    """JSON records of executions, event claims, deployments and servers under ``root``."""

    def __init__(self, root: str | Path = DEFAULT_STATE_DIR) -> None:
        self.root = Path(root)
        #: Corrupt files a listing skipped (each a :class:`StateCorruptError`), for ``flywheel status``.
        self.problems: list[StateCorruptError] = []

    def _report(self, error: StateCorruptError) -> None:
        if all(p.path != error.path for p in self.problems):
            self.problems.append(error)

    def _listing(self, folder: Path, required: Iterable[str] = ()) -> list[tuple[Path, dict[str, Any]]]:
        """``(path, record)`` of the folder's ``*.json`` files, by name; corrupt ones reported and skipped."""
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.glob("*.json")):
            try:
                record = read_json(path, required)
            except StateCorruptError as exc:
                self._report(exc)
                continue
            if record is not None:
                found.append((path, record))
        return found

    # Locks and permissions -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, name: str, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        """Hold the exclusive lock ``name`` of this state dir (``<root>/locks/<name>.lock``, flock) across
        processes; re-entrant in this process. StateLockError naming the file after ``timeout`` seconds."""
        path = (self.root / "locks" / f"{_check_name('lock', name)}.lock").absolute()
        with _LOCKS_GUARD:
            entry = _LOCKS.setdefault(path, _Lock(path))
        with entry.guard:
            if entry.depth == 0:
                _mkdir(path.parent)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            os.close(fd)
                            raise StateLockError(
                                f"lock {path} is held by another flywheel process for more than {timeout:.0f} s: "
                                "wait for it to finish (a lock of a process that died is released by the system)"
                            ) from None
                        time.sleep(0.02)
                entry.fd = fd
            entry.depth += 1
            try:
                yield
            finally:
                entry.depth -= 1
                if entry.depth == 0 and entry.fd is not None:
                    fcntl.flock(entry.fd, fcntl.LOCK_UN)
                    os.close(entry.fd)
                    entry.fd = None

    def harden(self) -> None:
        """Make the state dir private: folders 0700, files 0600 (an executable keeps its owner's x bit)."""
        _mkdir(self.root)
        for folder, dirs, files in os.walk(self.root):
            for name in [*dirs, *files]:
                path = Path(folder, name)
                with contextlib.suppress(FileNotFoundError, PermissionError):
                    mode = os.lstat(path).st_mode
                    if stat.S_ISLNK(mode) or not mode & 0o077:
                        continue
                    os.chmod(path, stat.S_IMODE(mode) & 0o700)
        with contextlib.suppress(PermissionError):
            os.chmod(self.root, 0o700)

    # Executions -------------------------------------------------------------------------------------
    def save_execution(self, record: dict[str, Any], *, create: bool = False) -> None:
        """Replace the record of execution ``record['PipelineExecutionId']`` (under its lock); with
        ``create``, create it exclusively (FlywheelError if one with that id exists)."""
        execution_id = _check_name("execution id", str(record["PipelineExecutionId"]))
        path = self.root / "executions" / f"{execution_id}.json"
        if create:
            data = json.dumps(record, indent=2, sort_keys=True, default=str).encode("utf-8")
            if not _create_once(path, data):
                raise FlywheelError(f"execution {execution_id} already has a record ({path}): not replaced")
            return
        with self.lock(f"execution-{execution_id}"):
            atomic_write_json(path, record)

    def execution(self, execution_id: str) -> dict[str, Any] | None:
        """One execution record, or None."""
        return read_json(
            self.root / "executions" / f"{_check_name('execution id', execution_id)}.json", ("PipelineExecutionId",)
        )

    def executions(self, pipeline_name: str | None = None) -> list[dict[str, Any]]:
        """All execution records (optionally of one pipeline), oldest first; corrupt ones in :attr:`problems`."""
        records = [r for _, r in self._listing(self.root / "executions", ("PipelineExecutionId",))]
        found = [r for r in records if pipeline_name is None or r.get("PipelineName") == pipeline_name]
        return sorted(found, key=lambda r: (str(r.get("StartTime", "")), str(r.get("PipelineExecutionId"))))

    # Pending runs ----------------------------------------------------------------------------------
    # StartPipelineExecution and the run are separate calls (and may be separate processes, as the
    # data-arrival Lambda and SageMaker are): the start records what the run needs, any process takes it.
    def save_pending_run(self, execution_id: str, run: dict[str, Any]) -> None:
        """Record a started run (``team``, ``parameters``, ...) for whichever process executes it (once)."""
        path = self.root / "pending" / f"{_check_name('execution id', execution_id)}.json"
        if not _create_once(path, json.dumps(run, indent=2, sort_keys=True, default=str).encode("utf-8")):
            raise FlywheelError(f"execution {execution_id} is already pending ({path}): not replaced")

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
            raw = taken.read_bytes()
        except OSError:
            os.rename(taken, path)
            raise
        try:
            record = parse_json(path, raw, ("team", "parameters"))
        except StateCorruptError:
            os.rename(taken, path)  # leave it where the message says it is
            raise
        os.unlink(taken)
        return record

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
        """Replace the record of an existing claim (e.g. with the execution it started), under its lock."""
        with self.lock(f"event-{_check_name('event key', key)}"):
            atomic_write_json(self.root / "events" / f"{key}.json", record)

    def release(self, key: str) -> None:
        """Drop a claim (the action it guarded failed, so a retry must be possible)."""
        with self.lock(f"event-{_check_name('event key', key)}"), contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / "events" / f"{key}.json")

    # Deployments ------------------------------------------------------------------------------------
    _DEPLOYMENT_FIELDS: Final = ("ModelPackageArn", "ModelPackageVersion", "LocalModel")

    def deployment_dir(self, team: str, version: int | str) -> Path:
        """Where the deployed artifact of ``team``'s package ``version`` is kept."""
        return self.root / "deployments" / _check_name("team", team) / _check_name("version", str(version))

    def save_deployment(self, team: str, record: dict[str, Any] | None) -> None:
        """Record (or, with None, clear) the package the team's endpoint serves (under the team's lock)."""
        path = self.root / "deployments" / f"{_check_name('team', team)}.json"
        with self.lock(f"deployment-{team}"):
            if record is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                return
            atomic_write_json(path, record)

    def update_deployment(
        self, team: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Read, change and write the team's deployment record in one hold of its lock (a rollout's
        outcome must not overwrite an approval another process made meanwhile); returns the new record."""
        with self.lock(f"deployment-{team}"):
            record = change(self.deployment(team))
            self.save_deployment(team, record)
            return record

    def deployment(self, team: str) -> dict[str, Any] | None:
        """The team's deployment record, or None.

        ``Rollout``: the canary rollout in progress (the new version's fields, its ``Settings`` and
        ``RolloutId``), until the endpoint promotes or rolls it back; ``Rollouts``: the latest outcomes
        (``promoted`` / ``rolled-back`` / ``cancelled``, with the reason and the figures), newest last."""
        return read_json(self.root / "deployments" / f"{_check_name('team', team)}.json", self._DEPLOYMENT_FIELDS)

    def deployments(self) -> dict[str, dict[str, Any]]:
        """Team -> deployment record (corrupt ones in :attr:`problems`)."""
        return {p.stem: r for p, r in self._listing(self.root / "deployments", self._DEPLOYMENT_FIELDS)}

    # Secrets and registry snapshots ---------------------------------------------------------------------
    def secret(self, name: str, factory: Callable[[], bytes], *, min_bytes: int = MIN_KEY_BYTES) -> bytes:
        """The secret ``name`` (created by ``factory`` on first use, file mode 0600).

        An existing secret is never replaced: an empty or short one (fewer than ``min_bytes``) is a
        StateCorruptError naming the file and how to restore or rotate it.
        """
        path = self.root / "keys" / _check_name("secret", name)
        try:
            return self._check_secret(path, path.read_bytes(), min_bytes)
        except FileNotFoundError:
            pass
        value = factory()
        if len(value.strip()) < min_bytes:
            raise FlywheelError(f"a new secret {name} must hold at least {min_bytes} bytes, got {len(value.strip())}")
        if not _create_once(path, value):
            return self._check_secret(path, path.read_bytes(), min_bytes)  # another process created it first
        return value

    @staticmethod
    def _check_secret(path: Path, value: bytes, min_bytes: int) -> bytes:
        if len(value.strip()) < min_bytes:
            problem = "is empty" if not value.strip() else f"holds {len(value.strip())} bytes (at least {min_bytes})"
            raise StateCorruptError(
                path,
                problem,
                "it is never replaced silently (tokens made with a key are stable only with that key): restore "
                f"it from your backup, or rotate it by deleting the file (a new random key of {min_bytes}+ bytes "
                "is generated on the next run; earlier batches' tokens will no longer match new ones)",
            )
        with contextlib.suppress(OSError):
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)
        return value

    def registry_dir(self, group: str) -> Path:
        """Where snapshots of a model package group's packages are kept."""
        return self.root / "registry" / _check_name("group", group)

    def package_path(self, group: str, version: int) -> Path:
        """The snapshot file of package ``version`` of ``group``."""
        return self.registry_dir(group) / f"{int(version):06d}.json"

    def save_package(self, group: str, version: int, record: dict[str, Any], *, create: bool = False) -> None:
        """Snapshot one model package (DescribeModelPackage + local copies of its S3 objects), under the
        group's lock; with ``create`` (a new registration), exclusively: FlywheelError if the version has one."""
        path = self.package_path(group, version)
        with self.lock(f"registry-{group}"):
            if create:
                data = json.dumps(record, indent=2, sort_keys=True, default=str).encode("utf-8")
                if not _create_once(path, data):
                    raise FlywheelError(
                        f"package version {version} of {group} already has a snapshot ({path}): another process "
                        "registered it; not replaced"
                    )
                return
            atomic_write_json(path, record)

    def package(self, group: str, version: int) -> dict[str, Any] | None:
        """One package snapshot (``package``, ``objects``, ``execution_arn``), or None."""
        path = self.package_path(group, version)
        record = read_json(path, ("package",))
        if record is not None:
            _check_snapshot(path, record, int(version))
        return record

    def packages(self, group: str) -> list[dict[str, Any]]:
        """The group's package snapshots, by version; corrupt ones are reported in :attr:`problems` and skipped."""
        found = []
        for path, record in self._listing(self.registry_dir(group), ("package",)):
            try:
                _check_snapshot(path, record, int(path.stem) if path.stem.isdigit() else None)
            except StateCorruptError as exc:
                self._report(exc)
                continue
            found.append(record)
        return found

    def corrupt_package_versions(self, group: str) -> set[int]:
        """Versions of ``group`` whose snapshot file exists but cannot be used."""
        versions = set()
        for problem in self.problems:
            path = Path(problem.path)
            if path.parent == self.registry_dir(group) and path.stem.isdigit():
                versions.add(int(path.stem))
        return versions

    # Servers ----------------------------------------------------------------------------------------
    def save_server(self, name: str, record: dict[str, Any] | None) -> None:
        """Record (or, with None, clear) a running server: ``aws`` or ``endpoint-<team>``."""
        path = self.root / "servers" / f"{_check_name('server', name)}.json"
        with self.lock(f"server-{name}"):
            if record is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                return
            atomic_write_json(path, record)

    def server(self, name: str) -> dict[str, Any] | None:
        """A server record, or None."""
        return read_json(self.root / "servers" / f"{_check_name('server', name)}.json", ("url", "pid"))

    def servers(self) -> dict[str, dict[str, Any]]:
        """Name -> server record (corrupt ones in :attr:`problems`)."""
        return {p.stem: r for p, r in self._listing(self.root / "servers", ("url", "pid"))}

    def iter_files(self) -> Iterator[Path]:
        """Every file of the store (for tests and diagnostics)."""
        yield from (p for p in sorted(self.root.rglob("*")) if p.is_file())


def sweep_leftovers(state: StateStore) -> list[Path]:
    """What every runtime does first: private permissions (umask 077; the state dir made 0700/0600),
    and the leftovers of processes that died mid-run swept — their job processes killed, the input
    copies of their job folders (raw data, PII key) and their generated data removed, their
    executions marked failed. Returns the execution folders swept."""
    from flywheel.actions import now
    from flywheel.executor.jobs import sweep_stale_jobs

    private_umask()
    state.harden()
    with state.lock("sweep"):
        swept = sweep_stale_jobs(state.root / "jobs")
        for folder in sorted((state.root / "data").glob("*-p*-*")):
            owner = folder.name.rsplit("-", 2)[-2].removeprefix("p")
            if owner.isdigit() and not pid_alive(int(owner)):
                shutil.rmtree(folder, ignore_errors=True)
        for execution_dir in swept:
            with contextlib.suppress(ValueError, FlywheelError):
                stored = state.execution(execution_dir.name)
                if stored and stored.get("PipelineExecutionStatus") == "Executing":
                    stored.update(
                        PipelineExecutionStatus="Failed",
                        FailureReason="the process running it died; its job folders were scrubbed",
                        EndTime=now(),
                    )
                    state.save_execution(stored)
    return swept


def _check_snapshot(path: Path, record: dict[str, Any], version: int | None) -> None:
    """A registry snapshot must describe a package of its own version."""
    package = record.get("package")
    fix = _FIXES["registry"]
    if not isinstance(package, dict):
        raise StateCorruptError(path, "has no package description (field 'package' is not an object)", fix)
    missing = [k for k in ("ModelPackageArn", "ModelPackageVersion", "ModelPackageGroupName") if k not in package]
    if missing:
        raise StateCorruptError(path, f"lacks the package field(s) {', '.join(missing)}", fix)
    try:
        number = int(package["ModelPackageVersion"])
    except (TypeError, ValueError):
        raise StateCorruptError(
            path, f"has a non-numeric ModelPackageVersion {package['ModelPackageVersion']!r}", fix
        ) from None
    if version is not None and number != version:
        raise StateCorruptError(path, f"describes version {number}, not {version}", fix)
    if not isinstance(record.get("objects", {}), dict):
        raise StateCorruptError(path, "has an 'objects' field that is not an object", fix)
