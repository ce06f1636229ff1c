"""A job process's private ``/opt/ml`` (and, for a network-isolated job, no network), on Linux.

SageMaker runs each job in its own container, where ``/opt/ml`` is the job's. Locally each job process is
started through this file's wrapper, which gives it a mount namespace of its own with the instance's
folder bind-mounted at ``/opt/ml`` (nothing is mounted, created or written under the host's ``/opt``):

* ``/opt/ml`` exists on the host: the instance folder is bind-mounted over it, in the job's namespace only;
* it does not: the job's ``/opt`` becomes a private tmpfs holding bind mounts of every entry of the host's
  ``/opt`` (so ``/opt/<anything>`` the host has stays visible) plus ``ml``, the instance folder;
* a network-isolated job also gets a network namespace of its own: no interface but a loopback that is
  down, as ``EnableNetworkIsolation`` gives the container (no route to the embedded AWS or anywhere).

Mounts are made private first (``MS_PRIVATE`` on ``/``, recursively), so nothing propagates back to the host.
The namespaces need ``CAP_SYS_ADMIN`` (root) or, for another user, unprivileged user namespaces
(``--user`` mode: the job runs as root of its own user namespace, mapped to the caller's uid); which one
works is probed once per process (:func:`probe`). Where neither works (macOS, a container without
``CAP_SYS_ADMIN`` and with user namespaces refused), :func:`probe` says why and the executor falls back to
rewriting ``/opt/ml`` paths in the job's command and environment (:func:`flywheel.executor.jobs.map_opt_ml`):
step code that spells a literal ``/opt/ml`` path in its source then reaches the host's ``/opt/ml``.

The wrapper is run as ``python3 -I -S sandbox.py SPEC_JSON -- COMMAND...``: the standard library and
libc only (``unshare(2)`` and ``mount(2)`` through ctypes), then ``execvp`` of the job's command, so the
job keeps the wrapper's pid, session, environment and parent-death signal.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

WRAPPER: Final = Path(__file__).resolve()
OPT: Final = "/opt"
OPT_ML: Final = "/opt/ml"
#: Exit code of the wrapper when it cannot set the sandbox up (the reason is on stderr).
SETUP_FAILED: Final = 125
#: ``FLYWHEEL_JOB_SANDBOX=off`` forces the path-rewrite fallback (debugging, or to compare the two).
SANDBOX_ENV: Final = "FLYWHEEL_JOB_SANDBOX"

_CLONE_NEWNS: Final = 0x00020000
_CLONE_NEWUSER: Final = 0x10000000
_CLONE_NEWNET: Final = 0x40000000
_MS_BIND: Final = 4096
_MS_REC: Final = 16384
_MS_PRIVATE: Final = 1 << 18
_MS_NOSUID: Final = 2
_MS_NODEV: Final = 4
_MNT_DETACH: Final = 2


class SandboxError(Exception):
    """The wrapper could not set the sandbox up."""


def _libc() -> Any:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    libc.unshare.argtypes = [ctypes.c_int]
    return libc


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(code)} (errno {errno.errorcode.get(code, code)})")


def _mount(libc: Any, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {source or fstype} on {target}",
    )


def _unshare(libc: Any, user: bool, net: bool) -> None:
    uid, gid = os.getuid(), os.getgid()
    flags = _CLONE_NEWNS | (_CLONE_NEWNET if net else 0) | (_CLONE_NEWUSER if user else 0)
    _check(libc.unshare(flags), "unshare" + (" (user namespace)" if user else ""))
    if user:
        # Root of the new user namespace, mapped to the caller: files the job writes stay the caller's.
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")


def _private_opt_ml(libc: Any, ml: str) -> None:
    """Bind ``ml`` at ``/opt/ml`` in this (new) mount namespace, creating nothing on the host."""
    _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)
    if os.path.isdir(OPT_ML) and not os.path.islink(OPT_ML):
        _mount(libc, ml, OPT_ML, None, _MS_BIND | _MS_REC)
        return
    if not os.path.isdir(OPT) or os.path.islink(OPT):
        raise SandboxError(f"{OPT} is not a directory on this system: cannot give the job a private {OPT_ML}")
    # Keep a handle on the host's /opt, cover it with a tmpfs, and bind each of its entries back from the
    # handle (/proc/self/fd/N still reaches the covered directory).
    handle = os.open(OPT, os.O_RDONLY | os.O_DIRECTORY)
    host = f"/proc/self/fd/{handle}"
    entries = sorted(os.listdir(host))
    _mount(libc, "tmpfs", OPT, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755")
    for name in entries:
        if name == "ml":
            continue
        source, target = f"{host}/{name}", f"{OPT}/{name}"
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
            continue
        if os.path.isdir(source):
            os.mkdir(target)
        else:
            Path(target).touch()
        _mount(libc, source, target, None, _MS_BIND | _MS_REC)
    os.mkdir(OPT_ML)
    _mount(libc, ml, OPT_ML, None, _MS_BIND | _MS_REC)
    os.close(handle)


def enter(spec: dict[str, Any]) -> None:
    """Set the sandbox of ``spec`` up in this process (then the caller execs the job)."""
    libc = _libc()
    _unshare(libc, bool(spec.get("user")), bool(spec.get("net")))
    _private_opt_ml(libc, str(spec["ml"]))
    os.chdir(str(spec.get("cwd") or "/"))


@dataclass(frozen=True)
class Sandbox:
    """What :func:`probe` found: whether jobs get a private ``/opt/ml`` and, if so, how."""

    available: bool
    user_namespace: bool = False
    network: bool = False
    reason: str = ""

    def command(self, interpreter: str, ml: Path, cwd: str, network_isolated: bool, command: list[str]) -> list[str]:
        """``command`` wrapped to run with ``ml`` as its ``/opt/ml`` (and no network if isolated)."""
        spec = {"ml": str(ml), "cwd": cwd, "user": self.user_namespace, "net": network_isolated and self.network}
        return [interpreter, "-I", "-S", str(WRAPPER), json.dumps(spec), "--", *command]

    def describe(self) -> str:
        """One line for logs and docs."""
        if not self.available:
            return f"no private /opt/ml (paths rewritten instead): {self.reason}"
        how = "user namespace" if self.user_namespace else "mount namespace"
        net = "; network-isolated jobs get no network" if self.network else "; no network namespace"
        return f"private /opt/ml per job ({how}{net})"


_PROBED: dict[str, Sandbox] = {}


def probe(interpreter: str = sys.executable) -> Sandbox:
    """Whether the wrapper works here (run once per process and interpreter; ~50 ms)."""
    if os.environ.get(SANDBOX_ENV, "").lower() in ("off", "0", "false", "no"):
        return Sandbox(False, reason=f"{SANDBOX_ENV}=off")
    if not sys.platform.startswith("linux"):
        return Sandbox(False, reason=f"mount namespaces are Linux-only (this is {sys.platform})")
    if interpreter not in _PROBED:
        _PROBED[interpreter] = _probe(interpreter)
    return _PROBED[interpreter]


def _probe(interpreter: str) -> Sandbox:
    reasons = []
    with tempfile.TemporaryDirectory(prefix="flywheel-sandbox-probe-") as tmp:
        ml = Path(tmp) / "ml"
        ml.mkdir()
        (ml / "probe").write_text("ok")
        check = "import os,socket;print(open('/opt/ml/probe').read());print(len(socket.if_nameindex()))"
        for user in (False, True):
            for net in (True, False):
                sandbox = Sandbox(True, user_namespace=user, network=net)
                try:
                    done = subprocess.run(  # noqa: S603 - our own wrapper and interpreter
                        sandbox.command(interpreter, ml, "/", net, [interpreter, "-I", "-S", "-c", check]),
                        capture_output=True,
                        text=True,
                        timeout=30,
                        check=False,
                    )
                except (OSError, subprocess.TimeoutExpired) as exc:
                    reasons.append(str(exc))
                    continue
                lines = done.stdout.split()
                if done.returncode == 0 and lines[:1] == ["ok"]:
                    return sandbox
                error = done.stderr.strip()
                reasons.append(error.splitlines()[-1] if error else f"exit {done.returncode}")
    return Sandbox(False, reason="; ".join(dict.fromkeys(reasons)) or "the sandbox wrapper did not run")


def main(argv: list[str]) -> int:
    """``sandbox.py SPEC_JSON -- COMMAND...``: enter the sandbox, then exec the command."""
    if len(argv) < 3 or argv[1] != "--":
        print("usage: sandbox.py SPEC_JSON -- COMMAND...", file=sys.stderr)
        return 2
    try:
        enter(json.loads(argv[0]))
    except (SandboxError, OSError, ValueError, KeyError) as exc:
        print(f"flywheel sandbox: {exc}", file=sys.stderr)
        return SETUP_FAILED
    command = argv[2:]
    try:
        os.execvp(command[0], command)  # noqa: S606 - the job's own command, by design
    except OSError as exc:
        print(f"flywheel sandbox: cannot run {command[0]}: {exc}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
