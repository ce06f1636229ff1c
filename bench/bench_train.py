"""Benchmark: train.py wall time next to raw ``xgboost.train`` on the same matrix.

Both run in fresh processes on the train/validation split of generated churn data (preprocessed first,
untimed), with the same parameters, rounds and early stopping. ``train.py`` is timed from ``main()``
(read parquet, encode, DMatrix, train, trim, save); the raw run from DMatrix construction to the end of
``xgboost.train`` on a matrix encoded beforehand. Overhead = train.py / raw - 1 (goal <= 10%)::

    python -m bench.bench_train [--rows 1000000] [--num-round 300] [--repeat 1]

Prints a table and writes ``bench/results/bench_train.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import common

REPO = Path(__file__).resolve().parents[1]
STEP_DIR = REPO / "pipelines" / "tabular"
GOAL_OVERHEAD = 0.10
CONTRACT = REPO / "config" / "contracts" / "churn.json"

_TRAIN = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import train
t = time.perf_counter()
code = train.main(sys.argv[3:])
sec = time.perf_counter() - t
meta = json.loads(open(sys.argv[2] + "/metadata.json").read())
print(json.dumps({"seconds": sec, "exit_code": code, "rounds": meta["rounds_trained"],
                  "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""
_RAW = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, xgboost as xgb
import train
from features import encode, encode_labels, feature_types, serving_names, class_labels
data_dir, num_round, es = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
contract = train.resolve_contract(sys.argv[5])
tr, va = train.read_split(data_dir + "/train"), train.read_split(data_dir + "/validation")
labels = class_labels(contract, tr[contract.target].unique())
xt, yt = encode(tr, contract), encode_labels(tr[contract.target], labels)
xv, yv = encode(va, contract), encode_labels(va[contract.target], labels)
params = train.xgb_params(contract, train.HyperParameters(num_round=num_round, early_stopping_rounds=es), len(labels))
names, types = serving_names(contract), feature_types(contract)
t = time.perf_counter()
dt = xgb.DMatrix(xt, label=yt, feature_names=names, feature_types=types, enable_categorical=True)
dv = xgb.DMatrix(xv, label=yv, feature_names=names, feature_types=types, enable_categorical=True)
booster = xgb.train(params, dt, num_boost_round=num_round, evals=[(dt, "train"), (dv, "validation")],
                    early_stopping_rounds=es, verbose_eval=False)
sec = time.perf_counter() - t
print(json.dumps({"seconds": sec, "rounds": booster.num_boosted_rounds(),
                  "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def prepare(rows: int, workdir: Path) -> Path:
    """Generate churn data and preprocess it (untimed); returns the output folder."""
    sys.path.insert(0, str(REPO))
    from flywheel.datasets import write_churn_csv

    write_churn_csv(workdir / "raw" / "batch.csv", rows, seed=1)
    (workdir / "pii.key").write_text("benchmark-only-key-0123456789-0123456789")
    (workdir / "contract").mkdir()
    (workdir / "contract" / "contract.json").write_bytes(CONTRACT.read_bytes())
    code = (
        f"import sys; sys.path.insert(0, {str(STEP_DIR)!r}); import preprocess; "
        "raise SystemExit(preprocess.main(sys.argv[1:]))"
    )
    args = ["--contract", str(CONTRACT), "--input-dir", str(workdir / "raw"), "--output-dir", str(workdir / "pp")]
    args += ["--pii-key-file", str(workdir / "pii.key"), "--resource-config", str(workdir / "none")]
    subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True)
    return workdir / "pp"


def run(rows: int, num_round: int, early_stopping: int, repeat: int, workdir: Path) -> dict[str, Any]:
    """Prepare once, then time both programs ``repeat`` times each (fastest counts)."""
    t = time.perf_counter()
    data = prepare(rows, workdir)
    prep_seconds = time.perf_counter() - t
    ours, raw = [], []
    for i in range(repeat):
        model = workdir / f"model-{i}"
        args = ["--train", str(data / "train"), "--validation", str(data / "validation")]
        args += ["--contract", str(workdir / "contract"), "--model-dir", str(model)]
        args += ["--num_round", str(num_round), "--early_stopping_rounds", str(early_stopping)]
        ours.append(common.child_json(_TRAIN, str(STEP_DIR), str(model), *args))
        raw.append(
            common.child_json(
                _RAW, str(STEP_DIR), str(data), str(num_round), str(early_stopping), str(workdir / "contract")
            )
        )
    a = min(ours, key=lambda r: r["seconds"])
    b = min(raw, key=lambda r: r["seconds"])
    return {
        "benchmark": "train",
        "rows": rows,
        "train_rows": int(rows * 0.7),
        "num_round": num_round,
        "early_stopping_rounds": early_stopping,
        "repeat": repeat,
        "prepare_seconds": prep_seconds,
        "raw_xgboost_train": {"seconds": b["seconds"], "rounds": b["rounds"], "peak_rss_mb": b["peak_rss_kib"] / 1024},
        "train_py": {"seconds": a["seconds"], "rounds": a["rounds"], "peak_rss_mb": a["peak_rss_kib"] / 1024},
        "overhead": a["seconds"] / b["seconds"] - 1,
        "goal_overhead_at_most": GOAL_OVERHEAD,
        "machine": common.machine(),
        "bench_rows": [
            common.row(
                "train.overhead",
                f"train.py main() (read parquet, encode, DMatrix, train, save), {int(rows * 0.7):,} training rows",
                a["seconds"],
                "s",
                b["seconds"],
                "raw xgboost.train on the same matrix, same parameters and early stopping",
                goal=common.goal("ratio", "<=", 1 + GOAL_OVERHEAD, "overhead ≤ 10 % (ratio ≤ 1.10)"),
                peak_rss_mb=a["peak_rss_kib"] / 1024,
                baseline_peak_rss_mb=b["peak_rss_kib"] / 1024,
                note=f"{a['rounds']} / {b['rounds']} rounds trained",
            )
        ],
    }


def print_table(result: dict[str, Any]) -> None:
    """A small fixed-width table."""
    print(f"train benchmark: {result['train_rows']:,} training rows, up to {result['num_round']} rounds")
    print(f"{'program':<20}{'seconds':>10}{'rounds':>8}{'peak RSS MB':>14}")
    for name in ("raw_xgboost_train", "train_py"):
        r = result[name]
        print(f"{name:<20}{r['seconds']:>10.2f}{r['rounds']:>8}{r['peak_rss_mb']:>14.0f}")
    ok = "meets" if result["overhead"] <= result["goal_overhead_at_most"] else "misses"
    print(f"overhead {100 * result['overhead']:.1f}% ({ok} the goal <= {100 * result['goal_overhead_at_most']:.0f}%)")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write ``bench/results/bench_train.json``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="generated rows (70%% become training rows)")
    p.add_argument("--num-round", type=int, default=300)
    p.add_argument("--early-stopping-rounds", type=int, default=20)
    p.add_argument("--repeat", type=int, default=1, help="runs of each program; the fastest counts")
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp folder)")
    args = p.parse_args(argv)
    with common.scratch(args.workdir) as scratch:
        result = run(args.rows, args.num_round, args.early_stopping_rounds, args.repeat, scratch)
    if result["train_py"]["rounds"] != result["raw_xgboost_train"]["rounds"]:
        print("warning: the two runs trained a different number of rounds", file=sys.stderr)
    print_table(result)
    common.write_result("bench_train", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
