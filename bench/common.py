"""What every benchmark shares: arguments, scratch space, child processes, machine facts, results."""

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
RESULTS = REPO / "bench" / "results"


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


def machine() -> dict[str, Any]:
    """Facts that say how comparable a run is: interpreter, CPUs, platform, how busy the machine was."""
    return {
        "python": platform.python_version(),
        "cpus": cpus(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    """``bench/results/<name>.json``."""
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
