"""Benchmark: the drift monitor (pipelines/monitor/drift.py main) on a 1M-row capture window.

The window is SageMaker data capture (JSON lines, one record per request of ``--batch`` CSV rows) of a
mixed table (4 numeric, 3 categorical columns, one shifted), compared with the baseline statistics of
100,000 reference rows. Both programs run in a fresh Python process each (peak RSS is the job's own),
timed after imports:

* baseline: read the same capture files the cheapest sensible way (``json.loads`` per line, the CSV bodies
  joined and parsed by ``pandas.read_csv``): the cost of just getting the rows;
* monitor: ``drift.main`` (parse, every column's test and finding, report.json, metrics.json).

The ratio is monitor throughput / baseline throughput (goal >= 0.5: the statistics cost at most as much
again as reading the window)::

    python -m bench.bench_monitor [--rows 1000000] [--repeat 1] [--workdir DIR]

Prints a table and writes ``bench/results/bench_monitor.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import common

REPO = Path(__file__).resolve().parents[1]
STEP_DIR = REPO / "pipelines" / "monitor"
REFERENCE_ROWS = 100_000
BATCH = 100
CATEGORICAL = ("plan", "region", "channel")
GOAL_RATIO = 0.5

_BASELINE = """
import io, json, resource, sys, time
from pathlib import Path
import pandas as pd
t = time.perf_counter()
bodies = []
for path in sorted(Path(sys.argv[1]).rglob("*.jsonl")):
    for line in path.open(encoding="utf-8"):
        bodies.append(json.loads(line)["captureData"]["endpointInput"]["data"])
frame = pd.read_csv(io.StringIO("".join(bodies)), header=None)
sec = time.perf_counter() - t
print(json.dumps({"seconds": sec, "rows": len(frame),
                  "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""
_MONITOR = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import drift
t = time.perf_counter()
code = drift.main(sys.argv[2:])
sec = time.perf_counter() - t
print(json.dumps({"seconds": sec, "exit_code": code,
                  "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def table(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(45 + shift, 12, n).round(1),
            "income": rng.lognormal(10, 0.6, n).round(2),
            "visits": rng.poisson(3, n),
            "score": rng.uniform(0, 1, n).round(4),
            "plan": rng.choice(["basic", "plus", "pro", "team"], n, p=[0.4, 0.3, 0.2, 0.1]),
            "region": rng.choice([f"r{i:02d}" for i in range(40)], n),
            "channel": rng.choice(["web", "app", "store"], n),
        }
    )


def write_inputs(rows: int, folder: Path) -> tuple[Path, Path, int]:
    """Baseline statistics of the reference and the window's capture files; returns their folders, bytes."""
    import sys

    sys.path.insert(0, str(STEP_DIR))
    import drift  # the step module, as the job imports it

    baseline = folder / "baseline"
    baseline.mkdir(parents=True)
    stats = drift.profile_frame(table(REFERENCE_ROWS, 1), CATEGORICAL)
    (baseline / "statistics.json").write_text(json.dumps(stats), encoding="utf-8")
    capture = folder / "capture" / "2026" / "01" / "01"
    capture.mkdir(parents=True)
    size = 0
    chunk = 100_000
    for part, start in enumerate(range(0, rows, chunk)):
        frame = table(min(chunk, rows - start), 100 + part, shift=3.0)
        csv = frame.to_csv(header=False, index=False, lineterminator="\n")
        lines = csv.splitlines(keepends=True)
        with (capture / f"part-{part:04d}.jsonl").open("w", encoding="utf-8") as out:
            for i in range(0, len(lines), BATCH):
                record = {
                    "captureData": {
                        "endpointInput": {
                            "observedContentType": "text/csv",
                            "mode": "INPUT",
                            "data": "".join(lines[i : i + BATCH]),
                            "encoding": "CSV",
                        }
                    },
                    "eventMetadata": {"eventId": f"{part}-{i}", "inferenceTime": "2026-01-01T00:00:00Z"},
                    "eventVersion": "0",
                }
                text = json.dumps(record) + "\n"
                size += len(text)
                out.write(text)
    return baseline, folder / "capture", size


def run(rows: int, repeat: int, workdir: Path) -> dict[str, Any]:
    t = time.perf_counter()
    baseline_dir, capture, size = write_inputs(rows, workdir)
    gen_seconds = time.perf_counter() - t
    base, mon = [], []
    for i in range(repeat):
        base.append(common.child_json(_BASELINE, str(capture)))
        out = workdir / f"out-{i}"
        args = ["--baseline-dir", str(baseline_dir), "--capture-dir", str(capture), "--output-dir", str(out)]
        result = common.child_json(_MONITOR, str(STEP_DIR), *args)
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
        if result["exit_code"] != 0 or report["rows"] != rows or report["drifted_features"] != ["age"]:
            raise RuntimeError(f"the monitor did not find the shifted column: {report.get('drifted_features')}")
        mon.append(result)
    b = min(base, key=lambda r: r["seconds"])
    m = min(mon, key=lambda r: r["seconds"])

    def entry(r: dict[str, Any]) -> dict[str, Any]:
        return {
            "seconds": r["seconds"],
            "rows_per_s": rows / r["seconds"],
            "mb_per_s": size / 1e6 / r["seconds"],
            "peak_rss_mb": r["peak_rss_kib"] / 1024,
        }

    ratio = b["seconds"] / m["seconds"]
    bench_row = common.row(
        "monitor.throughput",
        f"drift monitor (drift.py main: parse, every column's test, reports) on {rows:,} captured rows "
        f"({size / 1e6:.0f} MB JSON lines)",
        m["seconds"],
        "s",
        b["seconds"],
        "reading the same capture (json.loads per line + one pandas.read_csv)",
        ratio=ratio,
        ratio_what="throughput: baseline s / figure s",
        goal=common.goal("ratio", ">=", GOAL_RATIO, f"≥ {GOAL_RATIO} of the read-only throughput"),
        peak_rss_mb=m["peak_rss_kib"] / 1024,
        baseline_peak_rss_mb=b["peak_rss_kib"] / 1024,
        note=f"{rows / m['seconds']:,.0f} rows/s",
    )
    return {
        "benchmark": "monitor",
        "rows": rows,
        "requests": -(-rows // BATCH),
        "capture_mb": size / 1e6,
        "reference_rows": REFERENCE_ROWS,
        "repeat": repeat,
        "generate_seconds": gen_seconds,
        "read_capture": entry(b),
        "monitor": entry(m),
        "throughput_ratio": ratio,
        "goal_ratio_at_least": GOAL_RATIO,
        "machine": common.machine(),
        "bench_rows": [bench_row],
    }


def print_table(result: dict[str, Any]) -> None:
    print(
        f"monitor benchmark: {result['rows']:,} captured rows in {result['requests']:,} requests "
        f"({result['capture_mb']:.0f} MB), baseline of {result['reference_rows']:,} rows"
    )
    print(f"{'program':<16}{'seconds':>10}{'rows/s':>14}{'MB/s':>10}{'peak RSS MB':>14}")
    for name in ("read_capture", "monitor"):
        r = result[name]
        print(
            f"{name:<16}{r['seconds']:>10.2f}{r['rows_per_s']:>14,.0f}{r['mb_per_s']:>10.1f}{r['peak_rss_mb']:>14.0f}"
        )
    ok = "meets" if result["throughput_ratio"] >= result["goal_ratio_at_least"] else "misses"
    print(f"throughput ratio {result['throughput_ratio']:.2f} ({ok} the goal >= {result['goal_ratio_at_least']})")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write ``bench/results/bench_monitor.json``."""
    return common.standard_main("bench_monitor", __doc__, rows=1_000_000, run=run, print_table=print_table, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())
