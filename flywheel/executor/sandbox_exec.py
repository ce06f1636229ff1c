"""The sandbox wrapper program: ``python3 -I -S sandbox_exec.py SPEC_JSON -- COMMAND...``.

It gives the job process a private ``/opt/ml`` (and, for a network-isolated job, no network), then execs
the job's command; what it does and why is in :mod:`flywheel.executor.sandbox`, which builds its command
line and probes whether it works. It runs before every job, so it imports the standard library's
``os``, ``sys``, ``json``, ``errno`` and ``ctypes`` only (no ``pathlib``, ``dataclasses``, ``subprocess``
or ``ctypes.util`` unless libc is not ``libc.so.6``): ~6 ms of imports instead of ~25 ms, per job.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import sys

OPT = "/opt"
OPT_ML = "/opt/ml"
#: Exit code of the wrapper when it cannot set the sandbox up (the reason is on stderr).
SETUP_FAILED = 125

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_MS_NOSUID = 2
_MS_NODEV = 4


class SandboxError(Exception):
    """The wrapper could not set the sandbox up."""


def _libc() -> ctypes.CDLL:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # not glibc: look it up (ctypes.util imports subprocess and shutil, hence not first)
        from ctypes.util import find_library

        libc = ctypes.CDLL(find_library("c"), use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.unshare.argtypes = [ctypes.c_int]
    return libc


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(code)} (errno {errno.errorcode.get(code, code)})")


def _mount(
    libc: ctypes.CDLL, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
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


def _unshare(libc: ctypes.CDLL, user: bool, net: bool) -> None:
    uid, gid = os.getuid(), os.getgid()
    flags = _CLONE_NEWNS | (_CLONE_NEWNET if net else 0) | (_CLONE_NEWUSER if user else 0)
    _check(libc.unshare(flags), "unshare" + (" (user namespace)" if user else ""))
    if user:
        # Root of the new user namespace, mapped to the caller: files the job writes stay the caller's.
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w", encoding="ascii") as f:
                f.write(text)


def _private_opt_ml(libc: ctypes.CDLL, ml: str) -> None:
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
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
        _mount(libc, source, target, None, _MS_BIND | _MS_REC)
    os.mkdir(OPT_ML)
    _mount(libc, ml, OPT_ML, None, _MS_BIND | _MS_REC)
    os.close(handle)


def enter(spec: dict[str, object]) -> None:
    """Set the sandbox of ``spec`` up in this process (then the caller execs the job)."""
    libc = _libc()
    _unshare(libc, bool(spec.get("user")), bool(spec.get("net")))
    _private_opt_ml(libc, str(spec["ml"]))
    os.chdir(str(spec.get("cwd") or "/"))


def main(argv: list[str]) -> int:
    """``sandbox_exec.py SPEC_JSON -- COMMAND...``: enter the sandbox, then exec the command."""
    if len(argv) < 3 or argv[1] != "--":
        print("usage: sandbox_exec.py SPEC_JSON -- COMMAND...", file=sys.stderr)
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
