"""Processing and training jobs run as local processes under SageMaker's container contract.

Each job gets a root folder; each instance ``algo-<i>`` gets ``<root>/algo-<i>/opt/ml``, which its
process sees as ``/opt/ml``: on Linux each job process runs in a mount namespace of its own with that folder
bind-mounted at ``/opt/ml`` (:mod:`.sandbox`), so step code that spells literal ``/opt/ml`` paths works and
never touches the host's ``/opt/ml``. Where namespaces are not available (macOS; a container without
``CAP_SYS_ADMIN`` and without user namespaces) every ``/opt/ml`` path in the job's entrypoint, arguments and
environment is rewritten to the instance folder instead (:func:`map_opt_ml`): literal paths in the step's
source then are not. ``python3`` resolves to the interpreter running the executor (a wrapper script first
on ``PATH``; a wrapper rather than a symlink because a symlinked venv interpreter loses its venv).

AWS access follows the job's network isolation (``NetworkConfig.EnableNetworkIsolation`` of a processing
job, ``EnableNetworkIsolation`` of a training job, the model's for a transform): an isolated job gets no
``AWS_*`` variable at all and, in the sandbox, a network namespace of its own (no network); a job that is
not isolated gets the embedded AWS as an instance role would give it — ``AWS_ENDPOINT_URL``, credentials,
region (:class:`JobAws`) — when the embedded AWS has an endpoint (a server on 127.0.0.1). With the
in-process mock there is no endpoint to give: the job gets no credentials, and a job that then fails on
AWS access says so in its FailureReason. A failing job's FailureReason names the exception of the last
Python traceback in its log (:func:`exception_from_log`), as SageMaker's toolkit does.

Job folders hold raw data and the PII key while a job runs, so everything is private (umask 077 for
the job processes; folders 0700) and never outlives its owner: each job process runs in its own session
and gets SIGKILL when the executor that started it dies (``PR_SET_PDEATHSIG`` on Linux); each execution
folder records its owner (``.owner.json``: pid and a token every job process carries in its environment),
and :func:`sweep_stale_jobs` — run when a runtime starts — kills what is left of a dead owner's jobs and
scrubs their input copies (:func:`_scrub`, the single clean-up point).

* Processing: inputs downloaded to their ``LocalPath``; ``ShardedByS3Key`` inputs are split across
  the ``InstanceCount`` instances, which run in parallel, each with its own
  ``/opt/ml/config/resourceconfig.json``; every instance's outputs are uploaded (``algo-1`` first, so a
  key written by several instances holds the last instance's file, deterministically).
* Training (script mode of the framework containers): channels under ``/opt/ml/input/data/<channel>``,
  ``sagemaker_submit_directory`` unpacked to ``/opt/ml/code``, ``sagemaker_program`` run with the other
  hyperparameters as ``--name value`` and the ``SM_*`` environment; the model folder is uploaded as
  ``<S3OutputPath>/<job>/output/model.tar.gz``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from flywheel.errors import StepFailed
from flywheel.executor.algorithms.xgboost_container import METRICS_FILE as BUILTIN_METRICS_FILE
from flywheel.executor.algorithms.xgboost_container import PATH as XGBOOST_CONTAINER
from flywheel.executor.algorithms.xgboost_container import builtin_xgboost_notes
from flywheel.executor.images import is_builtin_xgboost
from flywheel.executor.s3io import S3Object, S3Transfers, link_or_copy, split_uri
from flywheel.executor.sandbox import SETUP_FAILED, Sandbox, probe
from naming import S3_SCHEME

OPT_ML: Final = "/opt/ml"
# "/opt/ml" as a path of its own: not inside a longer path or word (e.g. /x/opt/ml, /opt/mlx).
_OPT_ML = re.compile(r"(?<![\w./-])/opt/ml(?![\w.-])")
LOG_TAIL_LINES: Final = 25
# The host's variables that never reach a job (credentials, endpoints): a job gets its own (JobAws).
_SCRUBBED_PREFIXES: Final = ("AWS_", "SM_", "SAGEMAKER_")
#: The credentials a non-isolated job gets for the embedded AWS (any credentials work there).
JOB_CREDENTIAL: Final = "flywheel-local"
# Exceptions of a job that tried AWS without an endpoint or credentials (the in-process embedded AWS).
_NO_AWS_SYMPTOMS: Final = ("NoCredentialsError", "EndpointConnectionError", "NoRegionError", "InvalidAccessKeyId")
_SAFE_ROOT = re.compile(r"^[A-Za-z0-9_./+-]+$")
# The exception line that ends a Python traceback: a dotted name, then its message.
_EXCEPTION_LINE = re.compile(r"^(?P<name>[A-Za-z_][\w.]*)(?::(?P<message>.*))?$")
#: The environment variable that marks a job process with its execution's owner token.
JOB_MARKER_ENV: Final = "FLYWHEEL_JOB_MARKER"
OWNER_FILE: Final = ".owner.json"
JOB_UMASK: Final = 0o077
_PR_SET_PDEATHSIG: Final = 1


def _load_prctl() -> Any:
    """libc's ``prctl`` (Linux), resolved before any fork so the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _die_with_parent() -> None:
    """In the forked job process, before exec: SIGKILL when the process (thread) that started it dies."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def write_owner(execution_dir: Path) -> str:
    """Record this process as the owner of an execution's job folder; returns the token its jobs carry."""
    execution_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    path = execution_dir / OWNER_FILE
    path.write_text(json.dumps({"pid": os.getpid(), "token": token}), encoding="utf-8")
    path.chmod(0o600)
    return token


def processes_with_token(token: str) -> list[int]:
    """Pids of live processes whose environment carries ``token`` (Linux /proc; [] elsewhere)."""
    marker = f"{JOB_MARKER_ENV}={token}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def _owner_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except PermissionError:
        return True  # someone else's process: not ours to judge dead
    except (OSError, ValueError, TypeError, OverflowError):
        return False
    return True


def sweep_stale_jobs(work_dir: Path) -> list[Path]:
    """Clean the execution folders under ``work_dir`` whose owner process is dead: kill their leftover job
    processes, scrub every job's input copies (raw data, PII key) and drop the owner record. Returns the
    execution folders swept."""
    swept: list[Path] = []
    if not work_dir.is_dir():
        return swept
    for owner in sorted(work_dir.glob(f"*/{OWNER_FILE}")):
        try:
            record = json.loads(owner.read_text(encoding="utf-8"))
            pid, token = record["pid"], str(record["token"])
        except (OSError, ValueError, KeyError, TypeError):
            pid, token = None, ""
        if pid is not None and _owner_alive(pid):
            continue
        if token:
            for job_pid in processes_with_token(token):
                with contextlib.suppress(OSError):
                    os.killpg(job_pid, signal.SIGKILL)  # each job leads its own session / process group
                with contextlib.suppress(OSError):
                    os.kill(job_pid, signal.SIGKILL)
        execution_dir = owner.parent
        for job_root in [p for p in execution_dir.iterdir() if p.is_dir()]:
            _scrub(job_root)
        with contextlib.suppress(FileNotFoundError):
            owner.unlink()
        swept.append(execution_dir)
    return swept


def map_opt_ml(value: str, instance_root: Path) -> str:
    """Rewrite every ``/opt/ml`` path in ``value`` to ``<instance_root>/opt/ml``."""
    return _OPT_ML.sub(lambda _: f"{instance_root}{OPT_ML}", value)


def local_path(container_path: str, instance_root: Path) -> Path:
    """The host path of an absolute container path under ``/opt/ml``."""
    if not container_path.startswith(OPT_ML + "/") and container_path != OPT_ML:
        raise StepFailed(f"ValidationException: local path {container_path!r} is not under {OPT_ML}")
    parts = container_path.split("/")
    if ".." in parts:
        raise StepFailed(f"ValidationException: local path {container_path!r} contains '..'")
    return Path(map_opt_ml(container_path, instance_root))


def python_shim(bin_dir: Path, interpreter: str) -> Path:
    """Write ``python3``/``python`` wrappers that exec ``interpreter``; returns ``bin_dir`` (absolute).

    Absolute because it goes first on ``PATH`` and job commands ``cd`` before running ``python3``: a
    relative entry would silently fall through to the system interpreter.
    """
    bin_dir = bin_dir.resolve()
    bin_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in ("python3", "python"):
        path = bin_dir / name
        content = f'#!/bin/sh\nexec {shlex.quote(interpreter)} "$@"\n'
        if not path.exists() or path.read_text() != content:
            path.write_text(content)
            path.chmod(0o700)
    return bin_dir


def safe_root(root: Path) -> Path:
    """``root`` if its path is shell-safe, else a symlink to it whose path is.

    Entrypoints such as ``bash -c "... tar -xzf /opt/ml/... "`` are not quoted for paths with spaces;
    the rewritten paths must therefore contain no characters a shell would split or expand.
    """
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    root = root.resolve()
    if _SAFE_ROOT.match(str(root)):
        return root
    import tempfile

    link = Path(tempfile.mkdtemp(prefix="flywheel-job-")) / "root"
    link.symlink_to(root, target_is_directory=True)
    return link


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' if there is none)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def exception_from_log(text: str) -> str:
    """``Name: message`` of the exception that ended the last Python traceback in ``text`` ('' if none).

    The exception line is the first unindented line after ``Traceback (most recent call last):``; its
    dotted module path is dropped (``botocore.exceptions.NoCredentialsError`` → ``NoCredentialsError``).
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last):")]
    if not starts:
        return ""
    for line in lines[starts[-1] + 1 :]:
        if not line.strip() or line[:1] in (" ", "\t"):
            continue
        match = _EXCEPTION_LINE.match(line.rstrip())
        if not match:
            return ""
        name = match["name"].rsplit(".", 1)[-1]
        message = (match["message"] or "").strip()
        return (f"{name}: {message}" if message else name)[:1024]
    return ""


@dataclass(frozen=True)
class JobAws:
    """The embedded AWS as a job that is not network-isolated sees it (what an instance role gives it)."""

    endpoint_url: str | None
    region: str

    def environment(self, config_file: Path) -> dict[str, str]:
        """``AWS_*`` variables for the job ({} without an endpoint: credentials alone would aim at real AWS)."""
        if not self.endpoint_url:
            return {}
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": JOB_CREDENTIAL,
            "AWS_SECRET_ACCESS_KEY": JOB_CREDENTIAL,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_CONFIG_FILE": str(config_file),
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }


@dataclass
class Instance:
    """One local "instance" of a job."""

    host: str
    root: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    returncode: int | None = None


class JobRunner:
    """Runs jobs' processes: sandbox, environment, ``python3`` shim, logs, timeouts.

    ``sandbox``: how job processes get their private ``/opt/ml`` (default: :func:`.sandbox.probe`, once per
    process); ``aws``: what a job that is not network-isolated gets (default: nothing).
    """

    def __init__(
        self,
        transfers: S3Transfers,
        bin_dir: Path,
        interpreter: str,
        token: str = "",
        *,
        sandbox: Sandbox | None = None,
        aws: JobAws | None = None,
    ) -> None:
        self.transfers = transfers
        self.interpreter = interpreter
        self.bin_dir = python_shim(bin_dir, interpreter)
        #: Carried by every job process (``$FLYWHEEL_JOB_MARKER``), so a sweep can find it if its owner dies.
        self.token = token
        self.sandbox = sandbox if sandbox is not None else probe(interpreter)
        self.aws = aws or JobAws(None, "eu-west-1")

    def view(self, value: str, instance_root: Path) -> str:
        """``value`` (a container path, or text holding some) as the job process must see it: unchanged in
        the sandbox (its ``/opt/ml`` is the instance's), rewritten to the instance folder without it."""
        return value if self.sandbox.available else map_opt_ml(value, instance_root)

    def base_environment(self, instances: int = 1, *, network_isolated: bool = True) -> dict[str, str]:
        """The host environment minus AWS/SageMaker variables, ``python3`` shim first on PATH; for a job that
        is not network-isolated, the embedded AWS's endpoint and credentials (:class:`JobAws`).

        Local "instances" share the host's cores with each other and with everything else running, so
        OpenMP (XGBoost, numpy's BLAS) must not spin-wait: measured on a loaded 2-core host, XGBoost
        trained 1,400 rows in 6 s with the default active wait and in 0.1 s with a passive one. Parallel
        instances split the cores between them. Values set by the user or the job win.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", os.defpath)])
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if instances > 1:
            env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // instances)))
        env.pop("PYTHONPATH", None)  # the container has its own; the host's must not leak in
        env.pop(JOB_MARKER_ENV, None)
        if self.token:
            env[JOB_MARKER_ENV] = self.token
        if not network_isolated and self.aws.endpoint_url:
            config = self.bin_dir / "aws-config"
            if not config.exists():
                # Path-style S3 addressing: bucket.127.0.0.1 is not a host name.
                config.write_text("[default]\ns3 =\n    addressing_style = path\n", encoding="utf-8")
            env.update(self.aws.environment(config))
        return env

    def run_instances(
        self,
        instances: Sequence[Instance],
        command: Callable[[Instance], list[str]],
        environment: Callable[[Instance], dict[str, str]],
        cwd: Callable[[Instance], Path],
        timeout: float,
        *,
        network_isolated: bool = True,
        notes: Sequence[str] = (),
    ) -> None:
        """Start one process per instance, wait for all; StepFailed naming the first failing host.

        ``notes`` (warnings of the executor about the job) open each instance's log.
        """
        started = time.monotonic()
        for inst in instances:
            inst.log.parent.mkdir(parents=True, exist_ok=True)
            with inst.log.open("wb") as log:
                for note in notes:
                    log.write(f"[flywheel] {note}\n".encode())
                log.flush()
                try:
                    inst.process = subprocess.Popen(  # noqa: S603 - the job's own command, by design
                        self._wrap(inst, command(inst), cwd(inst), network_isolated),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        env=environment(inst),
                        cwd=cwd(inst),
                        # Its own session (signals to the executor's group do not reach it, and it can
                        # be killed as a group), private files, and killed when the executor dies.
                        start_new_session=True,
                        umask=JOB_UMASK,
                        preexec_fn=_die_with_parent if _PRCTL is not None else None,
                    )
                except OSError as exc:
                    self._stop(instances)
                    raise StepFailed(f"ClientError: cannot start the container command on {inst.host}: {exc}") from exc
        timed_out = False
        try:
            for inst in instances:
                assert inst.process is not None
                remaining = max(0.0, timeout - (time.monotonic() - started))
                try:
                    inst.returncode = inst.process.wait(timeout=remaining)
                except subprocess.TimeoutExpired:
                    timed_out = True
                    self._stop(instances)
                    break
        except BaseException:
            # Ctrl-C (the jobs run in their own sessions: the terminal's SIGINT does not reach them) or
            # any other way out: no job outlives the wait.
            self._stop(instances)
            raise
        if timed_out:
            first = instances[0]
            raise StepFailed(
                f"MaxRuntimeExceeded: the job ran longer than MaxRuntimeInSeconds={int(timeout)}",
                log_tail=tail(first.log),
                log_path=str(first.log),
            )
        for inst in instances:
            if inst.returncode != 0:
                raise StepFailed(
                    self._failure_reason(inst, network_isolated), log_tail=tail(inst.log), log_path=str(inst.log)
                )

    def _wrap(self, inst: Instance, command: list[str], cwd: Path, network_isolated: bool) -> list[str]:
        if not self.sandbox.available:
            return command
        ml = inst.root / "opt" / "ml"
        ml.mkdir(parents=True, exist_ok=True)
        try:
            inside = f"{OPT_ML}/{cwd.relative_to(ml).as_posix()}".rstrip("/").removesuffix("/.")
        except ValueError:
            inside = str(cwd)
        return self.sandbox.command(self.interpreter, ml, inside, network_isolated, command)

    def _failure_reason(self, inst: Instance, network_isolated: bool) -> str:
        log_text = tail(inst.log, 400)
        if self.sandbox.available and inst.returncode == SETUP_FAILED and "flywheel sandbox:" in log_text:
            detail = log_text.split("flywheel sandbox:", 1)[1].strip().splitlines()[0]
            return f"ClientError: the job's sandbox (private /opt/ml) could not be set up on {inst.host}: {detail}"
        reason = _failure_message(inst) or exception_from_log(log_text)
        where = f"exit code {inst.returncode}, host {inst.host}" if reason else ""
        reason = f"{reason} ({where})" if reason else f"exit code {inst.returncode} (host {inst.host})"
        if not network_isolated and not self.aws.endpoint_url and any(s in log_text for s in _NO_AWS_SYMPTOMS):
            reason += (
                "; the job is not network-isolated but the embedded AWS runs in-process, with no endpoint to give "
                "it: run the pipeline against `flywheel up` (a server on 127.0.0.1) for jobs that call AWS"
            )
        return f"AlgorithmError: {reason}"

    @staticmethod
    def _stop(instances: Sequence[Instance]) -> None:
        for inst in instances:
            if inst.process is not None and inst.process.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(inst.process.pid, signal.SIGKILL)  # the job and anything it started
                inst.process.kill()
                inst.returncode = inst.process.wait()


def _failure_message(inst: Instance) -> str:
    """What the container wrote to ``/opt/ml/output/failure`` (SageMaker's FailureReason), if anything."""
    path = inst.root / "opt" / "ml" / "output" / "failure"
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()[:1024]
    except OSError:
        return ""


def _resource_config(inst: Instance, hosts: list[str], instance_type: str) -> dict[str, Any]:
    return {
        "current_host": inst.host,
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": hosts,
        "instance_groups": [
            {"instance_group_name": "homogeneousCluster", "instance_type": instance_type, "hosts": hosts}
        ],
        "network_interface_name": "eth0",
    }


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")


def _require(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in mapping or mapping[key] in (None, ""):
        raise StepFailed(f"ValidationException: {where}.{key} is required")
    return mapping[key]


def _positive_int(value: Any, where: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise StepFailed(f"ValidationException: {where} must be an integer, got {value!r}") from None
    if number < 1:
        raise StepFailed(f"ValidationException: {where} must be at least 1, got {number}")
    return number


class _Downloads:
    """Downloads each object once per job and places it in every instance that receives it."""

    def __init__(self, transfers: S3Transfers, cache: Path) -> None:
        self.transfers = transfers
        self.cache = cache
        self._done: dict[str, Path] = {}

    def place(self, obj: S3Object, dest_dir: Path) -> None:
        cached = self._done.get(obj.key + "\x00" + obj.bucket)
        if cached is None:
            cached = self.transfers.download(obj, self.cache / obj.bucket / str(len(self._done)))
            self._done[obj.key + "\x00" + obj.bucket] = cached
        link_or_copy(cached, dest_dir.joinpath(*obj.relative.split("/")))


def _scrub(job_root: Path) -> None:
    """Remove a job's container folders and download cache (raw data, PII key), succeeded or failed: the
    single place local job data is cleaned up. Logs and the model archive stay for debugging/upload."""
    for path in [*job_root.glob("*/opt"), job_root / ".s3cache"]:
        shutil.rmtree(path, ignore_errors=True)


def network_isolated(flag_holder: Any, key: str = "EnableNetworkIsolation") -> bool:
    """Whether a request (or its ``NetworkConfig``) asks for network isolation (absent: not isolated)."""
    if not isinstance(flag_holder, Mapping):
        return False
    value = flag_holder.get(key, False)
    return value is True or str(value).lower() == "true"


def run_processing_job(
    runner: JobRunner,
    job_name: str,
    request: dict[str, Any],
    job_root: Path,
    *,
    keep_data: bool = False,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Run a resolved ``CreateProcessingJob`` request; returns DescribeProcessingJob-shaped properties.

    Unless ``keep_data``, the job's local copies of its inputs are removed afterwards (see :func:`_scrub`).
    ``notes`` (executor warnings, e.g. a framework version mismatch) open the job's log.
    """
    try:
        return _run_processing_job(runner, job_name, request, job_root, notes)
    finally:
        if not keep_data:
            _scrub(job_root)


def _run_processing_job(
    runner: JobRunner, job_name: str, request: dict[str, Any], job_root: Path, notes: Sequence[str]
) -> dict[str, Any]:
    started, clock = now(), time.perf_counter()
    app = _require(request, "AppSpecification", "Processing")
    entrypoint = list(app.get("ContainerEntrypoint") or [])
    arguments = [str(a) for a in app.get("ContainerArguments") or []]
    if not entrypoint:
        raise StepFailed(
            "ValidationException: AppSpecification.ContainerEntrypoint is required locally "
            "(an image's built-in entrypoint cannot be run without the image)"
        )
    cluster = _require(_require(request, "ProcessingResources", "Processing"), "ClusterConfig", "ProcessingResources")
    count = _positive_int(cluster.get("InstanceCount", 1), "ClusterConfig.InstanceCount")
    instance_type = str(cluster.get("InstanceType", "ml.m5.large"))
    timeout = float((request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds", 86400))
    hosts = [f"algo-{i + 1}" for i in range(count)]
    root = safe_root(job_root)
    instances = [Instance(host, root / host, root / "logs" / f"{host}.log") for host in hosts]
    downloads = _Downloads(runner.transfers, root / ".s3cache")

    for spec in request.get("ProcessingInputs") or []:
        name = spec.get("InputName", "?")
        s3 = spec.get("S3Input")
        if s3 is None:
            kind = "DatasetDefinition" if "DatasetDefinition" in spec else "unknown"
            raise StepFailed(f"ValidationException: input {name}: {kind} inputs are not supported locally (S3Input)")
        if s3.get("S3InputMode", "File") != "File":
            raise StepFailed(f"ValidationException: input {name}: S3InputMode {s3['S3InputMode']} (only File)")
        if s3.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise StepFailed(f"ValidationException: input {name}: S3DataType {s3['S3DataType']} (only S3Prefix)")
        if s3.get("S3CompressionType", "None") not in ("None", None):
            raise StepFailed(f"ValidationException: input {name}: S3CompressionType {s3['S3CompressionType']}")
        objects = runner.transfers.list_prefix(_require(s3, "S3Uri", f"input {name}"))
        if not objects:
            raise StepFailed(f"ClientError: input {name}: no S3 objects found under S3 URL {s3['S3Uri']}")
        container_dir = _require(s3, "LocalPath", f"input {name}")
        sharded = s3.get("S3DataDistributionType", "FullyReplicated") == "ShardedByS3Key"
        for index, inst in enumerate(instances):
            dest = local_path(container_dir, inst.root)
            dest.mkdir(parents=True, exist_ok=True)
            # ShardedByS3Key: each instance gets every N-th object of the sorted keys.
            mine = objects[index::count] if sharded else objects
            for obj in mine:
                downloads.place(obj, dest)

    outputs = (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    for inst in instances:
        for spec in outputs:
            s3 = spec.get("S3Output")
            if s3 is None:
                raise StepFailed(
                    f"ValidationException: output {spec.get('OutputName')}: only S3Output is supported locally"
                )
            local_path(_require(s3, "LocalPath", f"output {spec.get('OutputName')}"), inst.root).mkdir(
                parents=True, exist_ok=True
            )
        _write_json(inst.root / "opt/ml/config/resourceconfig.json", _resource_config(inst, hosts, instance_type))
        _write_json(inst.root / "opt/ml/config/processingjobconfig.json", {**request, "ProcessingJobName": job_name})

    isolated = network_isolated(request.get("NetworkConfig"))
    base_env = runner.base_environment(len(instances), network_isolated=isolated)
    env_spec = {str(k): str(v) for k, v in (request.get("Environment") or {}).items()}
    timings = {"download_s": time.perf_counter() - clock}
    clock = time.perf_counter()
    runner.run_instances(
        instances,
        command=lambda inst: [runner.view(str(part), inst.root) for part in [*entrypoint, *arguments]],
        environment=lambda inst: {**base_env, **{k: runner.view(v, inst.root) for k, v in env_spec.items()}},
        cwd=lambda inst: inst.root,
        timeout=timeout,
        network_isolated=isolated,
        notes=notes,
    )

    timings["run_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    kms_key = (request.get("ProcessingOutputConfig") or {}).get("KmsKeyId")
    for inst in instances:  # algo-1 first: with shared keys the last instance's file wins, deterministically
        for spec in outputs:
            s3 = spec["S3Output"]
            runner.transfers.upload_dir(
                local_path(s3["LocalPath"], inst.root), _require(s3, "S3Uri", "output"), kms_key
            )
    timings["upload_s"] = time.perf_counter() - clock
    return {
        **request,
        "LocalTimings": timings,
        "ProcessingJobName": job_name,
        "ProcessingJobStatus": "Completed",
        "LocalWarnings": list(notes),
        "ExitMessage": "",
        "ProcessingStartTime": started.isoformat(),
        "ProcessingEndTime": now().isoformat(),
        "LogFiles": [str(inst.log) for inst in instances],
    }


def _decode_hyperparameter(value: Any) -> Any:
    """As the SageMaker training toolkit: JSON-decode a hyperparameter string when it is JSON."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _cli_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _extract_tar(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(dest, filter="data")  # refuses absolute paths, '..' and links that leave dest
    except (tarfile.TarError, OSError) as exc:
        raise StepFailed(f"ClientError: cannot unpack sagemaker_submit_directory {archive.name}: {exc}") from exc


def run_training_job(
    runner: JobRunner,
    job_name: str,
    request: dict[str, Any],
    job_root: Path,
    *,
    keep_data: bool = False,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Run a resolved ``CreateTrainingJob`` request — script mode of a framework image, or SageMaker's
    built-in XGBoost algorithm (its image, no ``sagemaker_program``; :mod:`.algorithms.xgboost_container`)
    — and return a DescribeTrainingJob-shaped result.

    Unless ``keep_data``, the job's local copies of its inputs are removed afterwards (see :func:`_scrub`).
    ``notes`` (executor warnings) open the job's log.
    """
    try:
        return _run_training_job(runner, job_name, request, job_root, notes)
    finally:
        if not keep_data:
            _scrub(job_root)


def _run_training_job(
    runner: JobRunner, job_name: str, request: dict[str, Any], job_root: Path, notes: Sequence[str]
) -> dict[str, Any]:
    started, clock = now(), time.perf_counter()
    algorithm = _require(request, "AlgorithmSpecification", "Training")
    if algorithm.get("TrainingInputMode", "File") != "File":
        raise StepFailed(f"ValidationException: TrainingInputMode {algorithm['TrainingInputMode']} (only File)")
    resources = _require(request, "ResourceConfig", "Training")
    count = _positive_int(resources.get("InstanceCount", 1), "ResourceConfig.InstanceCount")
    if count != 1:
        raise StepFailed(
            f"ValidationException: ResourceConfig.InstanceCount={count}: distributed training is not supported "
            "locally (use 1)"
        )
    instance_type = str(resources.get("InstanceType", "ml.m5.large"))
    output_config = _require(request, "OutputDataConfig", "Training")
    output_path = str(_require(output_config, "S3OutputPath", "OutputDataConfig")).rstrip("/")
    timeout = float((request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds", 86400))
    hyperparameters = {str(k): str(v) for k, v in (request.get("HyperParameters") or {}).items()}
    decoded = {k: _decode_hyperparameter(v) for k, v in hyperparameters.items()}
    program = decoded.get("sagemaker_program")
    image = str(algorithm.get("TrainingImage") or algorithm.get("AlgorithmName") or "")
    builtin = not program and is_builtin_xgboost(image)
    if not program and not builtin:
        raise StepFailed(
            f"ValidationException: the local executor cannot run training image {image or '(none)'!r} without "
            "sagemaker_program: it runs framework images in script mode (HyperParameters name sagemaker_program) "
            "and SageMaker's built-in XGBoost algorithm (the sagemaker-xgboost image); other built-in "
            "algorithms need their image"
        )
    notes = [*notes, *(builtin_xgboost_notes(hyperparameters) if builtin else [])]
    root = safe_root(job_root)
    inst = Instance("algo-1", root / "algo-1", root / "logs" / "algo-1.log")
    ml = inst.root / "opt" / "ml"

    channels: dict[str, Any] = {}
    for channel in request.get("InputDataConfig") or []:
        name = _require(channel, "ChannelName", "InputDataConfig")
        source = (channel.get("DataSource") or {}).get("S3DataSource")
        if source is None:
            raise StepFailed(f"ValidationException: channel {name}: only S3DataSource is supported locally")
        if source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise StepFailed(f"ValidationException: channel {name}: S3DataType {source['S3DataType']} (only S3Prefix)")
        if channel.get("CompressionType", "None") not in ("None", None):
            raise StepFailed(f"ValidationException: channel {name}: CompressionType {channel['CompressionType']}")
        objects = runner.transfers.list_prefix(_require(source, "S3Uri", f"channel {name}"))
        if not objects:
            raise StepFailed(f"ClientError: channel {name}: no S3 objects found under S3 URL {source['S3Uri']}")
        dest = ml / "input" / "data" / name
        dest.mkdir(parents=True, exist_ok=True)
        for obj in objects:
            runner.transfers.download(obj, dest)
        channels[name] = {
            **({"ContentType": channel["ContentType"]} if channel.get("ContentType") else {}),
            "TrainingInputMode": channel.get("InputMode", "File"),
            "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }

    code_dir = ml / "code"
    submit = str(decoded.get("sagemaker_submit_directory") or "")
    if builtin:
        code_dir.mkdir(parents=True, exist_ok=True)
    elif submit.startswith(S3_SCHEME):
        objects = runner.transfers.list_prefix(submit)
        if not objects:
            raise StepFailed(f"ClientError: sagemaker_submit_directory {submit} does not exist")
        archive = runner.transfers.download(objects[0], root / ".submit")
        _extract_tar(archive, code_dir)
    elif submit:
        source_path = Path(map_opt_ml(submit, inst.root))
        if source_path.is_dir():
            shutil.copytree(source_path, code_dir, dirs_exist_ok=True)
        elif source_path.is_file():
            _extract_tar(source_path, code_dir)
        else:
            raise StepFailed(f"ClientError: sagemaker_submit_directory {submit} does not exist in the container")
    else:
        code_dir.mkdir(parents=True, exist_ok=True)
    if not builtin and not (code_dir / str(program)).is_file():
        raise StepFailed(f"ClientError: sagemaker_program {program} is not in the submitted code")

    for folder in ("model", "output/data", "input/config"):
        (ml / folder).mkdir(parents=True, exist_ok=True)
    user_hps = {k: v for k, v in decoded.items() if not k.startswith("sagemaker_")}
    _write_json(ml / "input/config/hyperparameters.json", hyperparameters)
    _write_json(ml / "input/config/inputdataconfig.json", channels)
    _write_json(ml / "input/config/resourceconfig.json", _resource_config(inst, ["algo-1"], instance_type))

    # The training toolkit passes hyperparameters sorted by name, as --name value.
    user_args = [arg for key in sorted(user_hps) for arg in (f"--{key}", _cli_value(user_hps[key]))]
    sm_env = {
        "SM_MODEL_DIR": f"{OPT_ML}/model",
        "SM_OUTPUT_DIR": f"{OPT_ML}/output",
        "SM_OUTPUT_DATA_DIR": f"{OPT_ML}/output/data",
        "SM_OUTPUT_INTERMEDIATE_DIR": f"{OPT_ML}/output/intermediate",
        "SM_INPUT_DIR": f"{OPT_ML}/input",
        "SM_INPUT_CONFIG_DIR": f"{OPT_ML}/input/config",
        "SM_INPUT_DATA_CONFIG": json.dumps(channels),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_HPS": json.dumps(user_hps),
        "SM_USER_ARGS": json.dumps(user_args),
        "SM_USER_ENTRY_POINT": str(program),
        "SM_MODULE_NAME": str(program).removesuffix(".py"),
        "SM_MODULE_DIR": submit,
        "SM_CURRENT_HOST": inst.host,
        "SM_HOSTS": json.dumps(["algo-1"]),
        "SM_CURRENT_INSTANCE_TYPE": instance_type,
        "SM_NETWORK_INTERFACE_NAME": "eth0",
        "SM_NUM_CPUS": str(os.cpu_count() or 1),
        "SM_NUM_GPUS": "0",
        "SM_LOG_LEVEL": "20",
        "SM_TRAINING_ENV": json.dumps({"job_name": job_name, "hyperparameters": user_hps, "hosts": ["algo-1"]}),
    }
    sm_env.update({f"SM_CHANNEL_{name.upper().replace('-', '_')}": f"{OPT_ML}/input/data/{name}" for name in channels})
    sm_env.update({f"SM_HP_{key.upper().replace('-', '_')}": _cli_value(v) for key, v in user_hps.items()})
    isolated = network_isolated(request)
    base_env = runner.base_environment(network_isolated=isolated)
    job_env = {str(k): str(v) for k, v in (request.get("Environment") or {}).items()}
    env = {
        **base_env,
        **{k: runner.view(v, inst.root) for k, v in {**sm_env, **job_env, "PYTHONPATH": f"{OPT_ML}/code"}.items()},
    }
    command = ["python3", str(XGBOOST_CONTAINER), "train"] if builtin else ["python3", str(program), *user_args]
    timings = {"download_s": time.perf_counter() - clock}
    clock = time.perf_counter()
    runner.run_instances(
        [inst],
        command=lambda _: command,
        environment=lambda _: env,
        cwd=lambda _: code_dir,
        timeout=timeout,
        network_isolated=isolated,
        notes=notes,
    )

    timings["run_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    kms_key = output_config.get("KmsKeyId")
    prefix = f"{output_path}/{job_name}/output"
    if str(output_config.get("CompressionType", "GZIP")).upper() == "NONE":
        runner.transfers.upload_dir(ml / "model", f"{prefix}/model", kms_key)
        model_uri = f"{prefix}/model/"
    else:
        archive = root / "model.tar.gz"
        _tar_dir(ml / "model", archive)
        bucket, key = split_uri(f"{prefix}/model.tar.gz")
        runner.transfers.upload_file(archive, bucket, key, kms_key)
        model_uri = f"{prefix}/model.tar.gz"
    data_dir = ml / "output" / "data"
    if any(p.is_file() for p in data_dir.rglob("*")):
        archive = root / "output.tar.gz"
        _tar_dir(data_dir, archive)
        bucket, key = split_uri(f"{prefix}/output.tar.gz")
        runner.transfers.upload_file(archive, bucket, key, kms_key)
    metrics = _metrics(algorithm.get("MetricDefinitions") or [], inst.log)
    if builtin:
        metrics += _builtin_metrics(ml / "output" / BUILTIN_METRICS_FILE)
    timings["upload_s"] = time.perf_counter() - clock
    return {
        **request,
        "LocalTimings": timings,
        "TrainingJobName": job_name,
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": model_uri},
        "LocalWarnings": list(notes),
        "FinalMetricDataList": metrics,
        "TrainingStartTime": started.isoformat(),
        "TrainingEndTime": now().isoformat(),
        "LogFiles": [str(inst.log)],
    }


def _builtin_metrics(path: Path) -> list[dict[str, Any]]:
    """``FinalMetricDataList`` of the built-in algorithm (``validation:rmse``, ...: its last evaluation)."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    stamp = now().isoformat()
    return [{"MetricName": str(k), "Value": float(v), "Timestamp": stamp} for k, v in sorted(found.items())]


def _tar_dir(folder: Path, archive: Path) -> None:
    # compresslevel 6: the default of SageMaker's packaging; 9 costs time and saves little on models.
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)


def _metrics(definitions: list[dict[str, Any]], log: Path) -> list[dict[str, Any]]:
    """``FinalMetricDataList`` from the job log with the definitions' regexes (last match wins)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found = []
    for spec in definitions:
        try:
            matches = re.findall(str(spec.get("Regex", "")), text)
        except re.error:
            continue
        if matches:
            last = matches[-1]
            value = last[0] if isinstance(last, tuple) else last
            try:
                found.append({"MetricName": spec.get("Name"), "Value": float(value), "Timestamp": now().isoformat()})
            except ValueError:
                continue
    return found
