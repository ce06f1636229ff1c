"""What every benchmark shares: arguments, scratch space, child processes, machine facts, results, rows.

A benchmark writes one JSON document (:func:`write_result`, ``bench/results/<name>.json``). The harness
(``python -m bench``, ``bench/report.py``) turns each document into *rows* of docs/benchmarks.md. A row is
the dict :func:`row` builds (the schema is :data:`ROW_FIELDS`); a benchmark may put its own rows in the
document under ``"bench_rows"``, otherwise the harness derives them from the document's other keys.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = REPO / "bench" / "results"
#: Where results go: ``FLYWHEEL_BENCH_RESULTS`` (the harness sets it, e.g. to a scratch folder) or bench/results.
RESULTS = Path(os.environ.get("FLYWHEEL_BENCH_RESULTS") or DEFAULT_RESULTS)


def parser(doc: str | None, *, rows: int, repeat: int = 1) -> argparse.ArgumentParser:
    """``--rows``, ``--repeat`` (the fastest run counts) and ``--workdir``; add more as needed."""
    p = argparse.ArgumentParser(description=(doc or "").splitlines()[0] if doc else None)
    p.add_argument("--rows", type=int, default=rows)
    p.add_argument("--repeat", type=int, default=repeat, help="runs of each program; the fastest counts")
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp folder)")
    return p


@contextlib.contextmanager
def scratch(workdir: Path | None) -> Iterator[Path]:
    """A temporary folder (inside ``workdir`` when given), removed afterwards."""
    with tempfile.TemporaryDirectory(dir=workdir) as path:
        yield Path(path)


def child_json(code: str, *args: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (its own peak RSS) and parse the JSON of its last stdout line."""
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpus() -> int:
    """CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def memory_gb() -> float | None:
    """Physical memory of the machine in GB (``MemTotal``), ``None`` where /proc is missing."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """Facts that say how comparable a run is: interpreter, CPUs, memory, platform, how busy the machine was."""
    return {
        "python": platform.python_version(),
        "cpus": cpus(),
        "memory_gb": memory_gb(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()),
    }


#: The fields of a row (docs/benchmarks.md's table). ``figure``/``baseline``/``ratio`` are numbers;
#: ``goal`` is ``None`` or ``{"on": "figure"|"ratio", "op": "<="|">=", "value": float, "text": str}``.
ROW_FIELDS = (
    "id",  # stable key, e.g. "preprocess.1m" (tests/bench checks the set)
    "what",  # what the figure measures, one line
    "figure",
    "unit",
    "baseline",  # measured in the same run, same unit as the figure unless baseline_unit says otherwise
    "baseline_what",
    "ratio",
    "ratio_what",  # how the ratio is formed, e.g. "figure / baseline" or "throughput: baseline s / figure s"
    "goal",
    "verdict",  # "met", "not met" or "no goal" (a breakdown row: the share of a total)
    "peak_rss_mb",  # beside the time wherever data size matters (None elsewhere)
    "baseline_peak_rss_mb",
    "cpu_s",  # CPU seconds of the measured program where known: load inflates it far less than wall time
    "note",
)
VERDICTS = ("met", "not met", "no goal")


def goal(on: str, op: str, value: float, text: str) -> dict[str, Any]:
    """A goal on the row's ``figure`` or ``ratio``: ``op`` is ``"<="`` or ``">="``."""
    if on not in ("figure", "ratio") or op not in ("<=", ">="):
        raise ValueError(f"goal: on must be figure|ratio and op <=|>=, got {on!r} {op!r}")
    return {"on": on, "op": op, "value": float(value), "text": text}


def verdict(r: dict[str, Any]) -> str:
    """``met`` / ``not met`` against the row's goal, ``no goal`` when it has none."""
    if r.get("blocker"):  # a condition of the goal that no figure can meet (e.g. a forbidden import)
        return "not met"
    g = r.get("goal")
    if not g:
        return "no goal"
    value = r[g["on"]]
    ok = value <= g["value"] if g["op"] == "<=" else value >= g["value"]
    return "met" if ok else "not met"


def row(
    id: str,
    what: str,
    figure: float,
    unit: str,
    baseline: float,
    baseline_what: str,
    *,
    ratio: float | None = None,
    ratio_what: str = "figure / baseline",
    goal: dict[str, Any] | None = None,
    peak_rss_mb: float | None = None,
    baseline_peak_rss_mb: float | None = None,
    cpu_s: float | None = None,
    note: str = "",
) -> dict[str, Any]:
    """One row of docs/benchmarks.md (see :data:`ROW_FIELDS`); ``ratio`` defaults to figure / baseline."""
    if ratio is None:
        ratio = figure / baseline if baseline else float("nan")
    r: dict[str, Any] = {
        "id": id,
        "what": what,
        "figure": float(figure),
        "unit": unit,
        "baseline": float(baseline),
        "baseline_what": baseline_what,
        "ratio": float(ratio),
        "ratio_what": ratio_what,
        "goal": goal,
        "peak_rss_mb": peak_rss_mb,
        "baseline_peak_rss_mb": baseline_peak_rss_mb,
        "cpu_s": cpu_s,
        "note": note,
    }
    r["verdict"] = verdict(r)
    return r


def write_result(name: str, result: dict[str, Any]) -> Path:
    """``bench/results/<name>.json`` (or under ``FLYWHEEL_BENCH_RESULTS``); rows, if any, under ``bench_rows``."""
    for r in result.get("bench_rows", []):
        missing = [f for f in ROW_FIELDS if f not in r]
        if missing:
            raise ValueError(f"{name}: row {r.get('id')!r} lacks {missing}; build rows with bench.common.row()")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path


def standard_main(
    name: str,
    doc: str | None,
    *,
    rows: int,
    run: Callable[[int, int, Path], dict[str, Any]],
    print_table: Callable[[dict[str, Any]], None],
    argv: list[str] | None,
) -> int:
    """The ``main`` of a benchmark taking ``--rows/--repeat/--workdir``: run, print, write the result."""
    args = parser(doc, rows=rows).parse_args(argv)
    with scratch(args.workdir) as folder:
        result = run(args.rows, args.repeat, folder)
    print_table(result)
    write_result(name, result)
    return 0
