"""``python -m bench``: run every benchmark (one fresh process per run) and write docs/benchmarks.md.

    python -m bench                      # every benchmark at full size -> docs/benchmarks.md
    python -m bench --quick              # small sizes, 1 run each, every row -> bench/results/benchmarks-quick.md
    python -m bench --repeat 3           # each benchmark 3 times (fresh processes); rows hold the medians
    python -m bench preprocess-1m train  # some only (no page, record in bench-partial.json, unless --output)
    python -m bench train -- --rows 5000 # extra arguments for the selected benchmarks

Each job runs a ``bench/bench_*.py`` script with the job's arguments, then reads the result document the
script wrote and turns it into rows (``bench/report.py``): figure, baseline measured in the same run,
ratio, goal, verdict, peak RSS where data size matters, plus the machine, the 1-minute load average at
the start of that run and the date. Everything the run measured is kept in ``bench/results/bench.json``,
the record the page is rendered from (and ``--merge`` reads); a run that writes no page (some jobs named
without ``--merge`` or ``--output``, or ``--output none``) keeps its record in ``bench-partial.json`` instead,
so exploring one benchmark never clobbers the full run's record.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import common, report

HERE = Path(__file__).resolve().parent
DOCS = common.REPO / "docs" / "benchmarks.md"
QUICK_DOC = common.DEFAULT_RESULTS / "benchmarks-quick.md"
#: The lock before issue 16's dependency diet: bench_install's venv-size baseline in a full run.
INSTALL_BEFORE = "9a849ee"


@dataclass(frozen=True)
class Job:
    """One benchmark invocation: a script, its arguments at full size and in quick mode, and its rows."""

    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    #: The file the script writes (under FLYWHEEL_BENCH_RESULTS, or bench/results for older scripts).
    result: str
    #: The rows this job must produce (tests/bench checks them).
    rows: tuple[str, ...]
    #: How quick mode's measurement differs from the row's definition (marked "quick proxy" in the docs).
    proxy: str = ""
    #: Environment of the quick run (e.g. what makes the script measure its smaller proxy).
    quick_env: tuple[tuple[str, str], ...] = ()
    #: Further rows the job may produce beyond ``rows``: ids starting with this (e.g. one per demo phase).
    more: str = ""
    #: Rows from the document when it has no ``bench_rows`` (scripts written before the row interface).
    derive: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = field(default=None, compare=False)


_HANDLERS = ("data_arrival", "deploy")
_PHASES = ("interpreter", "import", "embedded_aws", "provision", "pipeline")

JOBS: tuple[Job, ...] = (
    Job("preprocess-1m", "bench_preprocess", ("--rows", "1000000"), ("--rows", "20000"), "bench_preprocess.json",
        ("preprocess.1m",), "20,000 rows, not 1M", derive=report.preprocess_1m),
    Job("preprocess-10m", "bench_preprocess", ("--rows", "10000000"), ("--rows", "40000"), "bench_preprocess.json",
        ("preprocess.10m", "preprocess.10m.rss"), "40,000 rows, not 10M", derive=report.preprocess_10m),
    Job("train", "bench_train", ("--rows", "1000000"), ("--rows", "4000", "--num-round", "10"), "bench_train.json",
        ("train.overhead",), "4,000 rows, 10 rounds, not 1M rows and 300 rounds"),
    Job("demo", "bench_demo", ("--rows", "100000"), ("--rows", "2000"), "bench_demo.json",
        ("demo.first_run", "demo.second_run", *(f"demo.phase.{p}" for p in _PHASES)), "2,000 rows, not 100k",
        more="demo.phase.", derive=report.demo),
    Job("executor", "bench_executor", ("--rows", "100000"), ("--rows", "2000"), "bench_executor.json",
        ("executor.overhead",), "2,000 rows, not 100k"),
    Job("serving", "bench_serving", (),
        ("--rows", "2000", "--requests", "100", "--batch-rows", "100", "--batches", "5", "--repeat", "1",
         "--transform-rows", "2000", "--transform-batches", "2"),
        "serving.json", ("serving.p50", "serving.p99", "serving.batch", "serving.transform"),
        "100 requests and 5 batches of 100 rows, 2 transform requests of 2,000 rows, one run",
        derive=report.serving),
    Job("lambdas", "bench_lambdas", (), ("--repeat", "1"), "bench_lambdas.json",
        (*(f"lambdas.import.{h}" for h in _HANDLERS), *(f"lambdas.package.{h}" for h in _HANDLERS)),
        "one import each, not the best of 7"),
    Job("monitor", "bench_monitor", ("--rows", "1000000"), ("--rows", "20000"), "bench_monitor.json",
        ("monitor.throughput",), "20,000 rows, not 1M"),
    Job("privacy", "bench_privacy", ("--rows", "1000000"), ("--rows", "20000"), "bench_privacy.json",
        ("privacy.erasure", "privacy.pii_scan"), "20,000 rows, not 1M"),
    Job("synth", "bench_synth", ("--teams", "1,10,50"), ("--teams", "1,2"), "bench_synth.json",
        ("synth.teams.1", "synth.teams.10", "synth.teams.50", "synth.marginal"),
        "1 and 2 teams, not 1, 10 and 50 (the 10- and 50-team rows repeat the 2-team run)"),
    Job("install", "bench_install", ("--before", INSTALL_BEFORE), (), "bench_install.json",
        ("install.time", "install.venv"), "the same `uv sync --frozen` of the runtime dependencies only "
        "(UV_NO_DEFAULT_GROUPS=1: no CDK, steps, Lambda, local or dev groups), no `--before` lock (the venv is its "
        "own baseline)", quick_env=(("UV_NO_DEFAULT_GROUPS", "1"),), derive=report.install),
    Job("commands", "bench_commands", (), ("--rows", "500"), "bench_commands.json",
        tuple(rid for rid, _, _ in report._COMMANDS), "a 500-row run registers the package, not 2,000",
        derive=report.commands),
    Job("tests", "bench_tests", (), ("--quick",), "bench_tests.json", ("tests.suite",),
        "a fixed subset of the suite, serial (see bench_tests.QUICK_SUBSET), not the whole suite on 2 workers"),
)  # fmt: skip


def expected_rows() -> list[str]:
    """Every row id a complete run produces, in document order."""
    return [rid for job in JOBS for rid in job.rows]


def _find_result(job: Job, results: Path, since: float) -> Path:
    path = results / job.result  # every script writes under FLYWHEEL_BENCH_RESULTS (common.write_result)
    if path.is_file() and path.stat().st_mtime >= since:
        return path
    raise FileNotFoundError(f"{job.script} wrote no {job.result} during this run")


def run_job(job: Job, args: list[str], results: Path, quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the job's script once in a fresh process; its rows (with machine, load, date) and the run's facts."""
    load = os.getloadavg()[0]
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    env = {**os.environ, "FLYWHEEL_BENCH_RESULTS": str(results)}
    env.setdefault("CDK_VALIDATION", "false")
    env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    if quick:  # idle OpenMP threads sleep instead of spinning: tiny inputs, less CPU burnt waiting (CI)
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        env.update(job.quick_env)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    since = time.time() - 1
    started = time.perf_counter()
    code = subprocess.call([sys.executable, "-m", f"bench.{job.script}", *args], cwd=common.REPO, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    facts: dict[str, Any] = {"job": job.name, "args": args, "exit": code, "wall_s": wall, "cpu_s": cpu,
                             "load_1m": load, "date": date}  # fmt: skip
    if code:
        raise RuntimeError(f"{job.script} exited {code}")
    doc = json.loads(_find_result(job, results, since).read_text(encoding="utf-8"))
    facts["result"] = doc
    mach = common.machine()
    rows = report.rows_of(doc, job.derive)
    for r in rows:
        r.update(benchmark=job.script, job=job.name, load_1m=load, date=date, machine=mach)
        r["quick_proxy"] = job.proxy if quick else None
    unexpected = sorted(i for i in {r["id"] for r in rows} - set(job.rows) if not (job.more and i.startswith(job.more)))
    if unexpected:
        raise RuntimeError(f"{job.script} produced rows the job table does not list: {unexpected}")
    return rows, facts


def main(argv: list[str]) -> int:
    names, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").splitlines()[0])
    p.add_argument("names", nargs="*", help="jobs (or script names) to run; default: all")
    p.add_argument("--quick", action="store_true", help="small sizes, 1 run each: every row, in CI time")
    p.add_argument("--repeat", type=int, default=None, help="runs of each benchmark (default 3, quick 1); medians")
    p.add_argument("--output", type=Path, default=None, help="the Markdown to write (default: docs/benchmarks.md, "
                   "quick: bench/results/benchmarks-quick.md; none for a partial run)")  # fmt: skip
    p.add_argument("--results", type=Path, default=None, help="folder for the result documents (bench/results)")
    p.add_argument("--merge", action="store_true", help="keep the rows of the jobs not run now from the previous "
                   "bench.json of --results (re-run one benchmark, regenerate the whole page)")  # fmt: skip
    p.add_argument("--list", action="store_true", help="list the jobs and their rows")
    args = p.parse_args(names)
    if args.list:
        for job in JOBS:
            print(f"{job.name:<16}{job.script:<18}{' '.join(job.rows)}")
        return 0
    jobs = [j for j in JOBS if not args.names or j.name in args.names or j.script in args.names
            or j.script.removeprefix("bench_") in args.names]  # fmt: skip
    if not jobs:
        print(f"no benchmark named {args.names}; available: {[j.name for j in JOBS]}", file=sys.stderr)
        return 2
    repeat = args.repeat or (1 if args.quick else 3)
    if repeat < 1:
        p.error("--repeat must be at least 1")
    results = (args.results or common.RESULTS).resolve()
    results.mkdir(parents=True, exist_ok=True)
    output = args.output or (None if args.names and not args.merge else QUICK_DOC if args.quick else DOCS)
    if output is not None and str(output) == "none":  # `--output none`: write no page (a partial run)
        output = None
    previous: dict[str, Any] = {}
    if args.merge and (results / "bench.json").is_file():
        previous = json.loads((results / "bench.json").read_text(encoding="utf-8"))
        if previous.get("quick") != args.quick:
            p.error(f"--merge: {results / 'bench.json'} is a {'quick' if previous.get('quick') else 'full'} run")
    started_at, started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), time.perf_counter()
    runs: dict[str, list[list[dict[str, Any]]]] = {}
    facts: list[dict[str, Any]] = []
    failed: list[str] = []
    for job in jobs:
        job_args = [*(job.quick if args.quick else job.full), *extra]
        for i in range(repeat):
            print(f"\n== {job.name} ({job.script} {' '.join(job_args)}) run {i + 1}/{repeat} ==", flush=True)
            try:
                rows, fact = run_job(job, job_args, results, args.quick)
            except (RuntimeError, OSError, ValueError, KeyError, TypeError) as exc:
                print(f"({job.name}: FAILED: {exc})", flush=True)
                failed.append(job.name)
                facts.append({"job": job.name, "error": str(exc)})
                break
            runs.setdefault(job.name, []).append(rows)
            facts.append(fact)
            print(f"({job.name}: {fact['wall_s']:.1f} s wall, {fact['cpu_s']:.1f} s CPU)", flush=True)
    kept = {r["job"]: r for r in previous.get("rows", [])}  # only to know which jobs the previous run holds
    if previous:
        facts = [f for f in previous.get("runs", []) if f.get("job") not in {j.name for j in jobs}] + facts
        jobs = [j for j in JOBS if j in jobs or j.name in kept]
    merged: list[dict[str, Any]] = []
    for job in jobs:
        if job.name in runs:
            merged += report.merge(runs[job.name])
        elif job.name not in failed:  # kept from the previous run, as it was (a failure now drops them)
            merged += [r for r in previous.get("rows", []) if r["job"] == job.name]
    cpu = sum(f.get("cpu_s", 0.0) for f in facts)
    record = {
        "quick": args.quick,
        "repeat": repeat,
        "started": started_at,
        # --merge: the runs whose rows were kept (their own dates are in their rows)
        "merged_from": [previous.get("started"), *previous.get("merged_from", [])] if previous else [],
        "wall_s": time.perf_counter() - started,
        "cpu_s": cpu,
        "machine": common.machine(),
        "jobs": [j.name for j in jobs],
        "failed": sorted(set(failed) | (set(previous.get("failed", [])) - {j.name for j in jobs if j.name in runs})),
        "expected": [rid for j in jobs for rid in j.rows],
        "rows": merged,
        "runs": facts,
    }
    # Only a run that renders a page replaces bench.json: --merge of a later run builds on it.
    record_file = results / ("bench.json" if output is not None else "bench-partial.json")
    record_file.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(report.render(record, record["expected"]), encoding="utf-8")
    print(f"\n{'verdict':<9}{'row':<28}{'figure':>12}{'baseline':>12}{'ratio':>9}")
    for r in merged:
        print(f"{r['verdict']:<9}{r['id']:<28}{report.fmt(r['figure']):>12}{report.fmt(r['baseline']):>12}"
              f"{report.fmt(r['ratio']):>9}")  # fmt: skip
    missing = [rid for rid in record["expected"] if rid not in {r["id"] for r in merged}]
    print(f"\n{len(merged)} rows, {record['wall_s']:.0f} s wall, {cpu:.0f} s CPU; results in {record_file}"
          + (f"; written {output}" if output else "") + (f"; FAILED: {record['failed']}" if failed else "")
          + (f"; MISSING rows: {missing}" if missing else ""))  # fmt: skip
    return 1 if failed or missing else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
