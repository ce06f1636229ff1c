"""Benchmark: how long a person waits for ``flywheel up``, ``status``, ``approve``, ``reject`` and ``invoke``.

Each command is a fresh process, as a person runs it, on one scratch state dir: ``status`` on it empty,
``up --duration 0`` twice (the first builds the pipeline definitions, the second finds them in the
definition cache; both provision every team on a fresh embedded AWS), one ``run`` (not timed as a
command: it registers the package the next commands act on), ``reject`` and ``approve`` of it, and
``status`` again with a package in the registry. Baselines in the same run: ``python -c pass`` and a bare
in-process moto start (``mock_aws().start()``). Wall seconds and CPU seconds (user + system of the child:
on a loaded shared machine the CPU figure is the command's own cost, wall is what the person sees).
Goals (issue 16): ``status``, ``approve``, ``reject`` <= 2 s and ``up`` ready <= 5 s on this machine::

    python -m bench.bench_commands [--rows 2000] [--repeat 1] [--workdir DIR]

Prints a table and writes ``bench/results/bench_commands.json``.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import common

REPO = Path(__file__).resolve().parents[1]
GOALS = {"status": 2.0, "status (1 package)": 2.0, "approve": 2.0, "reject": 2.0, "up (cached definitions)": 5.0}
_MOTO = "from moto import mock_aws; m = mock_aws(); m.start(); m.stop()"


def timed(argv: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``argv`` to completion; its wall and CPU seconds (raises with its output if it fails)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[2:])} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": wall, "cpu_seconds": cpu}


def run(rows: int, repeat: int, workdir: Path) -> dict[str, Any]:
    """Every command ``repeat`` times on fresh state dirs; the fastest run of each counts."""
    load = os.getloadavg()
    py = sys.executable
    fw = [py, "-m", "flywheel"]
    env = {**os.environ, "COLUMNS": "200", "FLYWHEEL_DEFINITION_CACHE": str(workdir / "definitions")}
    results: dict[str, list[dict[str, float]]] = {}

    def add(name: str, argv: list[str]) -> None:
        results.setdefault(name, []).append(timed(argv, env))

    for i in range(repeat):
        state = ["--state-dir", str(workdir / f"state-{i}")]
        add("python -c pass", [py, "-c", "pass"])
        add("moto start (in-process)", [py, "-c", _MOTO])
        add("status", [*fw, "status", *state])
        if i == 0:
            add("up (first: builds definitions)", [*fw, "up", "--duration", "0", *state])
        add("up (cached definitions)", [*fw, "up", "--duration", "0", *state])
        timed([*fw, "run", "--team", "churn", "--rows", str(rows), *state], env)  # registers churn:1
        add("reject", [*fw, "reject", "churn:1", *state])
        add("approve", [*fw, "approve", "churn:1", "--yes", *state])
        add("status (1 package)", [*fw, "status", *state])
    best = {name: min(runs, key=lambda r: r["seconds"]) for name, runs in results.items()}
    floor = best["python -c pass"]["seconds"]
    moto = best["moto start (in-process)"]["seconds"]
    for name, r in best.items():
        r["x_python_pass"] = r["seconds"] / floor if floor else 0.0
        r["x_moto_start"] = r["seconds"] / moto if moto else 0.0
        if name in GOALS:
            r["goal_seconds_at_most"] = GOALS[name]
    return {
        "benchmark": "commands",
        "rows": rows,
        "repeat": repeat,
        "commands": best,
        "machine": {**common.machine(), "load_average_before": list(load)},
    }


def print_table(result: dict[str, Any]) -> None:
    """A small fixed-width table."""
    print(f"command benchmark (fresh process each, best of {result['repeat']})")
    print(f"{'command':<34}{'wall s':>8}{'CPU s':>8}{'x pass':>8}{'x moto':>8}   goal")
    for name, r in result["commands"].items():
        goal = ""
        if "goal_seconds_at_most" in r:
            ok = "meets" if r["seconds"] <= r["goal_seconds_at_most"] else "misses"
            goal = f"<= {r['goal_seconds_at_most']:g} s ({ok})"
        print(
            f"{name:<34}{r['seconds']:>8.2f}{r['cpu_seconds']:>8.2f}{r['x_python_pass']:>8.1f}"
            f"{r['x_moto_start']:>8.1f}   {goal}"
        )
    print(f"load average before {result['machine']['load_average_before'][0]:.2f}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write ``bench/results/bench_commands.json``."""
    return common.standard_main("bench_commands", __doc__, rows=2000, run=run, print_table=print_table, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())
