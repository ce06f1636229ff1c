"""Benchmark: a fresh ``make install`` (Python half) from a warm package cache, and the venv it builds.

Copies what ``uv sync`` reads (pyproject.toml, uv.lock, README.md and the package folders) into a scratch
folder and runs the Makefile's commands there: ``uv sync --frozen`` with ``UV_COMPILE_BYTECODE=1`` as the
Makefile exports it, into a new ``.venv``, then its ``bytecode`` step (compileall of the project's
packages). The uv cache is the user's (warm after any earlier install), so this times resolving nothing,
linking the wheels and byte-compiling. Reported: seconds, venv size,
installed distributions, and ``python -c pass`` as the same-run baseline of "nothing to install".

``--before REF`` installs the pyproject.toml + uv.lock of a git ref as well (e.g. the commit before the
dependency diet) and reports the ratios (goal, issue 16: the install in at most 90 s on this machine,
the venv at least a third smaller than before)::

    python -m bench.bench_install [--before REF] [--repeat 1] [--workdir DIR]

Prints a table and writes ``bench/results/bench_install.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from bench import common

REPO = Path(__file__).resolve().parents[1]
#: pyproject.toml's wheel packages (the Makefile's PACKAGES): what uv installs editable and `bytecode` compiles.
PACKAGES: tuple[str, ...] = tuple(
    tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["hatch"]["build"]["targets"]["wheel"][
        "packages"
    ]
)
GOAL_SECONDS = 90.0
# What the Makefile passes as --python (a base interpreter, not this venv's).
PYTHON = os.environ.get("PYTHON") or shutil.which("python3") or sys.executable
GOAL_SIZE_RATIO = 2 / 3  # "at least a third smaller"


def uv_binary() -> str:
    """The uv the Makefile would use: on PATH, else the bootstrapped copy (this tree's or the main one's)."""
    found = shutil.which("uv")
    if found:
        return found
    for candidate in (REPO / ".bootstrap" / "bin" / "uv", Path(os.environ.get("FLYWHEEL_UV", "/nonexistent"))):
        if candidate.is_file():
            return str(candidate)
    raise SystemExit("uv not found: run `make install` once (it bootstraps .bootstrap/bin/uv) or put uv on PATH")


def project_copy(dest: Path, ref: str | None) -> Path:
    """What ``uv sync`` needs of the project; pyproject.toml and uv.lock from ``ref`` when given."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        if ref is None:
            shutil.copyfile(REPO / name, dest / name)
        else:
            text = subprocess.run(
                ["git", "show", f"{ref}:{name}"], cwd=REPO, check=True, capture_output=True, text=True
            ).stdout
            (dest / name).write_text(text, encoding="utf-8")
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def folder_size(path: Path) -> int:
    """Bytes of every file under ``path`` (symlinks not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = Path(root) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def install(project: Path, uv: str, compile_bytecode: bool = True) -> dict[str, Any]:
    """``uv sync --frozen`` into ``project/.venv`` as ``make install`` runs it; time, size, distributions."""
    compiled = "1" if compile_bytecode else "0"
    env = {**os.environ, "UV_COMPILE_BYTECODE": compiled, "UV_PROJECT_ENVIRONMENT": str(project / ".venv")}
    env.pop("VIRTUAL_ENV", None)
    started = time.perf_counter()
    done = subprocess.run(
        [uv, "sync", "--frozen", "--python", PYTHON], cwd=project, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"uv sync failed:\n{done.stderr[-3000:]}")
    if compile_bytecode:  # the Makefile's `bytecode` step: the project's own packages (uv compiles the venv's)
        subprocess.run(
            [str(project / ".venv" / "bin" / "python"), "-m", "compileall", "-q", "-j", "0", *PACKAGES],
            cwd=project, check=True, capture_output=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    site = next((project / ".venv" / "lib").glob("python*/site-packages"))
    dists = sorted(p.name.split("-")[0].lower() for p in site.glob("*.dist-info"))
    pyc = sum(1 for _ in site.rglob("*.pyc"))
    return {
        "seconds": seconds,
        "venv_mb": folder_size(project / ".venv") / 1e6,
        "distributions": len(dists),
        "pyc_files": pyc,
        "has": {name: name in dists for name in ("mlflow", "nvidia_nccl_cu12", "xgboost", "xgboost_cpu")},
    }


def baseline_seconds() -> float:
    """``python -c pass``: the floor of any command."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def run(repeat: int, before: str | None, workdir: Path, compile_bytecode: bool = True) -> dict[str, Any]:
    """Install the current lock (and ``before``'s) ``repeat`` times each; the fastest counts."""
    uv = uv_binary()
    load = os.getloadavg()
    result: dict[str, Any] = {
        "benchmark": "install",
        "repeat": repeat,
        "compile_bytecode": compile_bytecode,
        "python_pass_s": baseline_seconds(),
    }
    for label, ref in (("current", None), ("before", before)):
        if label == "before" and ref is None:
            continue
        runs = []
        for i in range(repeat):
            project = project_copy(workdir / f"{label}-{i}", ref)
            runs.append(install(project, uv, compile_bytecode))
            shutil.rmtree(project, ignore_errors=True)
        result[label] = min(runs, key=lambda r: r["seconds"])
        if ref:
            result[label]["ref"] = ref
    cur = result["current"]
    result["goals"] = {"seconds_at_most": GOAL_SECONDS, "seconds": cur["seconds"]}
    if "before" in result:
        result["goals"]["size_ratio"] = cur["venv_mb"] / result["before"]["venv_mb"]
        result["goals"]["size_ratio_at_most"] = GOAL_SIZE_RATIO
        result["goals"]["time_ratio"] = cur["seconds"] / result["before"]["seconds"]
    result["machine"] = {**common.machine(), "load_average_before": list(load)}
    return result


def print_table(result: dict[str, Any]) -> None:
    """A small fixed-width table."""
    compiled = int(result.get("compile_bytecode", True))
    best = result["repeat"]
    print(f"install benchmark: uv sync --frozen, UV_COMPILE_BYTECODE={compiled}, warm cache (best of {best})")
    print(f"{'lock':<10}{'seconds':>9}{'venv MB':>10}{'dists':>7}{'.pyc':>8}   mlflow / nccl / xgboost(-cpu)")
    for label in ("current", "before"):
        if label not in result:
            continue
        r = result[label]
        has = r["has"]
        flags = f"{has['mlflow']} / {has['nvidia_nccl_cu12']} / {has['xgboost']}({has['xgboost_cpu']})"
        sizes = f"{r['venv_mb']:>10,.0f}{r['distributions']:>7}{r['pyc_files']:>8}"
        print(f"{label:<10}{r['seconds']:>9.1f}{sizes}   {flags}")
    g = result["goals"]
    ok = "meets" if g["seconds"] <= g["seconds_at_most"] else "misses"
    floor = result["python_pass_s"]
    print(f"install {g['seconds']:.1f} s ({ok} <= {g['seconds_at_most']:.0f} s); python -c pass {floor:.2f} s")
    if "size_ratio" in g:
        ok = "meets" if g["size_ratio"] <= g["size_ratio_at_most"] else "misses"
        goal = g["size_ratio_at_most"]
        print(f"venv size ratio {g['size_ratio']:.2f} of before ({ok} <= {goal:.2f}); time ratio {g['time_ratio']:.2f}")
    print(f"load average before {result['machine']['load_average_before'][0]:.2f}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write ``bench/results/bench_install.json``."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--before", default=os.environ.get("BENCH_INSTALL_BEFORE"), help="git ref to compare with")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--no-compile", action="store_true", help="UV_COMPILE_BYTECODE=0 (what compiling costs)")
    p.add_argument("--rows", type=int, default=None, help=argparse.SUPPRESS)  # `python -m bench -- --rows N`
    args = p.parse_args(argv)
    # Default scratch inside the repository: on the uv cache's filesystem, as a real install is (uv links
    # wheels from its cache; across filesystems it copies, which would time something else).
    workdir = args.workdir or REPO / ".flywheel"
    workdir.mkdir(parents=True, exist_ok=True)
    with common.scratch(workdir) as folder:
        result = run(args.repeat, args.before, folder, not args.no_compile)
    print_table(result)
    common.write_result("bench_install", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
