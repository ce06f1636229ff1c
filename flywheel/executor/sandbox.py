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

The wrapper, :mod:`flywheel.executor.sandbox_exec`, is run as ``python3 -I -S sandbox_exec.py SPEC_JSON --
COMMAND...``: the standard library and libc only (``unshare(2)`` and ``mount(2)`` through ctypes), then
``execvp`` of the job's command, so the job keeps the wrapper's pid, session, environment and parent-death
signal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from flywheel.executor import sandbox_exec

__all__ = ["SANDBOX_ENV", "SETUP_FAILED", "WRAPPER", "Sandbox", "probe"]

#: Exit code of the wrapper when it cannot set the sandbox up (the reason is on its stderr).
SETUP_FAILED: Final = sandbox_exec.SETUP_FAILED

#: The wrapper program every job is started through (standard library only, see its docstring).
WRAPPER: Final = Path(sandbox_exec.__file__).resolve()
#: ``FLYWHEEL_JOB_SANDBOX=off`` forces the path-rewrite fallback (debugging, or to compare the two).
SANDBOX_ENV: Final = "FLYWHEEL_JOB_SANDBOX"


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
