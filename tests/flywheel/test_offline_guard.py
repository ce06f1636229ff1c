"""Finding 8: the offline runtime never reaches anything but this machine.

Every boto3 client the local runtime builds has a loopback endpoint or is intercepted by the in-process
mock (refused at construction otherwise), and its HTTP sender refuses any non-loopback host. A socket
guard (connect, connect_ex, create_connection, getaddrinfo) records and refuses every non-loopback
address while every CLI command runs — also with a stale ``servers/aws.json`` whose pid is alive and
whose URL is dead (the case that once sent ``status`` and ``run`` to eu-west-1).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.handlers
import pytest
from test_second_template import _batch, _config_with_minimal_team
from typer.testing import CliRunner

from flywheel import embedded as emb
from flywheel.cli import app
from flywheel.embedded import EmbeddedAws, is_loopback_host
from flywheel.errors import OfflineViolationError

REPO = Path(__file__).resolve().parents[2]


def _dead_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _stale_server_record(state_dir: Path) -> None:
    """``servers/aws.json`` of a `flywheel up` whose pid is alive (this process) and whose URL is dead."""
    folder = state_dir / "servers"
    folder.mkdir(parents=True, exist_ok=True)
    url = _dead_url()
    (folder / "aws.json").write_text(json.dumps({"url": url, "pid": os.getpid(), "port": int(url.rsplit(":", 1)[1])}))


class NetworkGuard:
    """Records every attempt to reach a non-loopback address, and refuses it."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def refuse(self, what: str) -> OSError:
        self.attempts.append(what)
        return OSError(f"network guard: {what} is not on this machine")


def _host(address: Any) -> str | None:
    return str(address[0]) if isinstance(address, tuple) and address else None


@pytest.fixture
def network_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkGuard]:
    guard = NetworkGuard()
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo, real_create_connection = socket.getaddrinfo, socket.create_connection

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback_host(_host(address)):
            raise guard.refuse(f"connect {address!r}")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback_host(_host(address)):
            raise guard.refuse(f"connect_ex {address!r}")
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not is_loopback_host(host.decode() if isinstance(host, bytes) else str(host)):
            raise socket.gaierror(socket.EAI_NONAME, str(guard.refuse(f"getaddrinfo {host!r}")))
        return real_getaddrinfo(host, *args, **kwargs)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback_host(_host(address)):
            raise guard.refuse(f"create_connection {address!r}")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    yield guard


# The commands, in an order that gives each something to work on; each with minimal valid arguments.
# ``{batch}`` is a small CSV, ``{dead}`` a loopback URL nothing listens on.
COMMANDS: list[tuple[str, list[str]]] = [
    ("status", ["status"]),
    ("status", ["status", "--json"]),
    ("run", ["run", "--team", "counter", "--data", "{batch}"]),
    ("approve", ["approve", "counter:1"]),
    ("reject", ["reject", "counter:1"]),
    ("serve", ["serve", "--team", "counter", "--port", "0", "--duration", "0.2"]),
    ("serve", ["serve", "--team", "counter", "--host", "0.0.0.0", "--duration", "0.2"]),
    ("invoke", ["invoke", "--url", "{dead}", "--data", "{batch}"]),
    ("invoke", ["invoke", "--url", "https://runtime.sagemaker.eu-west-1.amazonaws.com", "--data", "{batch}"]),
    ("invoke", ["invoke", "--team", "counter", "--sample", "1"]),
    ("demo", ["demo", "--team", "counter", "--rows", "20", "--requests", "1", "--batch-rows", "1"]),
    ("monitor", ["monitor", "--team", "counter"]),
    ("up", ["up", "--port", "0", "--duration", "0.2"]),
    ("lineage", ["lineage", "--team", "counter", "--subject", "x"]),
    ("lineage", ["lineage", "--team", "counter", "--package", "counter:1"]),
    ("erase", ["erase", "--team", "counter", "--subject", "x"]),
]
# Synthesize environments with CDK in-process (no network; minutes): covered by their own tests.
SLOW_COMMANDS = {"security-report", "access-report", "cost"}


def _registered_commands() -> set[str]:
    return {(c.name or c.callback.__name__).replace("_", "-") for c in app.registered_commands if c.callback}


def test_the_table_covers_every_cli_command() -> None:
    assert _registered_commands() == {name for name, _ in COMMANDS} | SLOW_COMMANDS


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_no_cli_command_reaches_beyond_loopback_even_with_a_stale_server_record(
    tmp_path: Path, network_guard: NetworkGuard
) -> None:
    config_dir, templates = _config_with_minimal_team(tmp_path)
    options = ["--config-dir", str(config_dir), "--templates-dir", str(templates)]
    state_dir = tmp_path / "state"
    values = {"batch": str(_batch(tmp_path, rows=5)), "dead": _dead_url()}
    for name, args in COMMANDS:
        _stale_server_record(state_dir)
        argv = [*options, *(a.format(**values) for a in args), "--state-dir", str(state_dir)]
        result = CliRunner().invoke(app, argv)
        assert network_guard.attempts == [], f"{name}: {network_guard.attempts}\n{result.output}"
        assert result.exception is None or isinstance(result.exception, SystemExit), (name, result.output)
        assert "Traceback" not in result.output, (name, result.output)
        if args[:1] == ["run"]:
            assert result.exit_code == 0 and "succeeded" in result.output, result.output
        if "0.0.0.0" in args:
            assert result.exit_code == 1 and "--allow-remote" in result.output, result.output


@pytest.mark.slow
@pytest.mark.enable_socket
@pytest.mark.network_local
def test_security_report_stays_offline(tmp_path: Path, network_guard: NetworkGuard) -> None:
    result = CliRunner().invoke(app, ["security-report"])
    assert network_guard.attempts == [], network_guard.attempts
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output


# A fresh interpreter: its boto3 session is made before moto is imported, exactly as in the incident
# (in the test process moto is long imported, which hides that case). The guard is installed first.
GUARDED_CLI = textwrap.dedent(
    """
    import json, socket, sys
    from flywheel.embedded import is_loopback_host
    attempts = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect
    def getaddrinfo(host, *a, **k):
        if host is not None and not is_loopback_host(str(host)):
            attempts.append(f"getaddrinfo {host}")
            raise socket.gaierror(socket.EAI_NONAME, "guard")
        return real_getaddrinfo(host, *a, **k)
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback_host(str(address[0])):
            attempts.append(f"connect {address}")
            raise OSError("guard")
        return real_connect(self, address)
    socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
    from flywheel.cli import app
    try:
        app(sys.argv[1:], prog_name="flywheel")
    except SystemExit as exc:
        code = exc.code
    print("GUARD " + json.dumps(attempts))
    """
)


@pytest.mark.enable_socket
@pytest.mark.network_local
@pytest.mark.parametrize("command", [["status"], ["reject", "counter:1"]])
def test_a_fresh_cli_process_with_a_stale_record_stays_offline(tmp_path: Path, command: list[str]) -> None:
    config_dir, templates = _config_with_minimal_team(tmp_path)
    state_dir = tmp_path / "state"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _stale_server_record(state_dir)
        record = json.loads((state_dir / "servers" / "aws.json").read_text())
        record["pid"] = sleeper.pid  # another live process, as a crashed-but-reused pid would be
        (state_dir / "servers" / "aws.json").write_text(json.dumps(record))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        argv = ["--config-dir", str(config_dir), "--templates-dir", str(templates), *command]
        done = subprocess.run(
            [sys.executable, "-c", GUARDED_CLI, *argv, "--state-dir", str(state_dir)],
            cwd=REPO, capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip
    finally:
        sleeper.kill()
        sleeper.wait()
    line = [x for x in done.stdout.splitlines() if x.startswith("GUARD ")]
    assert line, done.stdout + done.stderr
    assert json.loads(line[-1][6:]) == [], done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_a_client_for_a_non_loopback_endpoint_is_refused() -> None:
    with pytest.raises(OfflineViolationError, match="not on this machine"):
        EmbeddedAws(endpoint_url="https://sagemaker.eu-west-1.amazonaws.com", mode="remote")
    with pytest.raises(OfflineViolationError, match="loopback endpoint"):
        EmbeddedAws(endpoint_url=None, mode="remote")


def test_an_in_process_client_without_an_active_mock_is_refused() -> None:
    aws = EmbeddedAws(endpoint_url=None, mode="in-process")  # not started through in_process()
    with pytest.raises(OfflineViolationError, match="no in-process embedded AWS is active"):
        aws.client("sts")


def test_an_in_process_client_the_mock_does_not_intercept_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # A session made as if before moto's import: moto's stubber missing from the built-in handlers.
    stubber = emb._mock_stubber()
    with emb.in_process() as aws:
        assert stubber is not None
        builtin = [h for h in botocore.handlers.BUILTIN_HANDLERS if h[1] is not stubber]
        monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", builtin)
        monkeypatch.setattr(aws, "_session", boto3.session.Session(region_name=aws.region))
        with pytest.raises(OfflineViolationError, match="not intercepted"):
            aws.client("sagemaker")


def test_a_request_that_escapes_the_mock_is_refused_before_it_is_sent() -> None:
    aws = EmbeddedAws.in_process()
    sts = aws.client("sts")
    assert sts.get_caller_identity()["Account"] == emb.ACCOUNT
    aws.close()  # the mock stops: the cached client would now talk to sts.eu-west-1.amazonaws.com
    with pytest.raises(OfflineViolationError, match=r"refused a sts request to sts\.eu-west-1\.amazonaws\.com"):
        sts.get_caller_identity()
