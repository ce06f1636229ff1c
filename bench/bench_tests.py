"""Benchmark: the test suite's wall time, as ``make test`` runs it, against pytest's own floor.

Full run: ``pytest -n 2 -m "not slow"`` over the whole suite (the command of ``make test``, after lint),
in a fresh process. The baseline, measured in the same run the same way, is ``pytest --collect-only``
of the same tests, serial: importing every test module and collecting the tests, the cost no test can
avoid; the ratio says how much the tests themselves cost on top. Goal: the suite within 300 s on this
2-core machine (the budget of ``make test``). CPU seconds (user + system of pytest and its workers) are
reported beside wall time: on a shared machine they say what the suite costs, wall says how long it
took.

``--quick`` measures a documented proxy instead: :data:`QUICK_SUBSET` (pure unit tests, a second or two),
serial, against its own collection — the row is produced, its figure is not the suite's::

    python -m bench.bench_tests [--quick] [--workers 2]

Prints a table and writes ``bench/results/bench_tests.json``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from typing import Any

from bench import common

GOAL_SECONDS = 300.0
#: The quick proxy: fast pure-unit test files (no CDK synth, no moto, no subprocesses); never tests/bench.
QUICK_SUBSET = ("tests/config/test_loader.py",)


def pytest_run(args: list[str]) -> dict[str, Any]:
    """``pytest ARGS`` in a fresh process from the repository root; wall and CPU seconds, exit code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "FLYWHEEL_BENCH"))}
    env.setdefault("CDK_VALIDATION", "false")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", *args],
        cwd=common.REPO,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 5):  # 5: nothing collected (a marker filter can do that)
        raise RuntimeError(f"pytest {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}")
    last = (done.stdout.strip().splitlines() or [""])[-1]
    return {
        "seconds": wall,
        "cpu_seconds": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        "summary": last,
    }


def run(quick: bool, workers: int) -> dict[str, Any]:
    """Collection (baseline), then the tests."""
    select = list(QUICK_SUBSET) if quick else ["-m", "not slow"]
    parallel = [] if quick or workers <= 1 else ["-n", str(workers)]
    collect = pytest_run(["--collect-only", *select])
    suite = pytest_run([*parallel, *select])
    what = (
        f"pytest {' '.join(QUICK_SUBSET)} (quick proxy), serial"
        if quick
        else f'the suite as `make test` runs it: pytest -n {workers} -m "not slow"'
    )
    return {
        "benchmark": "tests",
        "quick": quick,
        "workers": 0 if quick else workers,
        "collect": collect,
        "suite": suite,
        "machine": common.machine(),
        "bench_rows": [
            common.row(
                "tests.suite",
                what,
                suite["seconds"],
                "s",
                collect["seconds"],
                "pytest --collect-only of the same tests, serial (imports + collection)",
                goal=common.goal("figure", "<=", GOAL_SECONDS, f"≤ {GOAL_SECONDS:.0f} s on 2 cores (make test)"),
                cpu_s=suite["cpu_seconds"],
                note=f"{suite['summary']}; collection {collect['cpu_seconds']:.1f} s CPU",
            )
        ],
    }


def print_table(result: dict[str, Any]) -> None:
    """Two lines."""
    for name in ("collect", "suite"):
        r = result[name]
        print(f"{name:<8}{r['seconds']:>9.1f} s wall{r['cpu_seconds']:>9.1f} s CPU   {r['summary']}")
    row = result["bench_rows"][0]
    print(f"suite / collection {row['ratio']:.1f}; goal {row['goal']['text']}: {row['verdict']}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write ``bench/results/bench_tests.json``."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help=f"time {', '.join(QUICK_SUBSET)} only (a proxy)")
    p.add_argument("--workers", type=int, default=2, help="pytest-xdist workers of the full run (make test: 2)")
    args = p.parse_args(argv)
    result = run(args.quick, args.workers)
    print_table(result)
    common.write_result("bench_tests", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
