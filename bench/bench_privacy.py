"""Benchmark: erasure of one subject across 1M rows in 10 batches; PII-scan throughput vs preprocessing.

Two measurements, each against a baseline measured in the same run:

* **PII scan** (``pipelines/tabular/pii_scan.py``, ``verify_outputs``) vs the preprocessing step itself
  (``preprocess.preprocess``: validate, pseudonymize, split, baseline statistics) on the same batch, in one
  fresh process: rows/s of each and the scan's cost as a fraction of preprocessing (goal: <= 0.5, the
  verification must not double the step).
* **Erasure** (``lambdas/erasure/logic.erase``) of one subject present in 2 of 10 raw batches (CSV) and their
  features splits (parquet) on moto's in-process S3, against reading every object once (the least any
  erasure must do: find the subject), so the ratio shows what rewriting and version deletion add::

    python -m bench.bench_privacy [--rows 1000000] [--batches 10] [--repeat 1] [--workdir DIR]

Prints a table and writes ``bench/results/bench_privacy.json``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from bench import common

REPO = Path(__file__).resolve().parents[1]
STEP_DIR = REPO / "pipelines" / "tabular"
BENCH_KEY = b"benchmark-only-key-0123456789abcdef-0123"

_SCAN = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import preprocess, pii_scan
from contract import load_contract
contract = load_contract(sys.argv[2])
raw, out = Path(sys.argv[3]), Path(sys.argv[4])
t = time.perf_counter()
status = preprocess.preprocess(raw, out, contract, sys.argv[5].encode(), "algo-1", ["algo-1"])
prep = time.perf_counter() - t
t = time.perf_counter()
scan = pii_scan.verify_outputs(raw, out, contract, "algo-1")
print(json.dumps({"preprocess_seconds": prep, "scan_seconds": time.perf_counter() - t, "rows": status["rows"],
                  "passed": scan["passed"], "cells": scan["cells"], "scanned_rows": scan["rows"]}))
"""


def _scan(rows: int, workdir: Path) -> dict[str, Any]:
    from flywheel.datasets import write_churn_csv

    raw = workdir / "scan-raw"
    write_churn_csv(raw / "batch.csv", rows, seed=1)
    out = workdir / "scan-out"
    contract = REPO / "config" / "contracts" / "churn.json"
    result = common.child_json(_SCAN, str(STEP_DIR), str(contract), str(raw), str(out), BENCH_KEY.decode())
    if not result["passed"]:
        raise RuntimeError("the PII scan found PII in generated churn data")
    return {
        "rows": result["rows"],
        "preprocess_seconds": result["preprocess_seconds"],
        "preprocess_rows_per_s": result["rows"] / result["preprocess_seconds"],
        "scan_seconds": result["scan_seconds"],
        "scan_rows_per_s": result["rows"] / result["scan_seconds"],
        "scanned_cells": result["cells"],
        "scan_over_preprocess": result["scan_seconds"] / result["preprocess_seconds"],
        "goal_scan_over_preprocess_at_most": 0.5,
    }


def _erasure(rows: int, batches: int, workdir: Path) -> dict[str, Any]:
    import boto3
    import pandas as pd
    from moto import mock_aws

    sys.path.insert(0, str(STEP_DIR))
    import preprocess
    from contract import load_contract

    from flywheel.datasets import write_churn_csv
    from lambdas.erasure.logic import ErasureScope, erase, is_data_key

    contract = load_contract(REPO / "config" / "contracts" / "churn.json")
    data = pd.read_csv(write_churn_csv(workdir / "all.csv", rows, seed=2), dtype=str, keep_default_na=False)
    per = rows // batches
    subject = str(data.loc[3 * per + 5, "customer_id"])
    team, pipeline, region = "churn", "flywheel-bench-churn-tabular", "eu-west-1"
    buckets = {z: f"flywheel-bench-{z}" for z in ("raw", "curated", "features", "reports")}
    with mock_aws():
        s3 = boto3.client("s3", region_name=region)
        sm = boto3.client("sagemaker", region_name=region)
        for bucket in buckets.values():
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket=buckets["raw"], Key=f"{team}/_keys/pii-hmac.key", Body=BENCH_KEY)
        sm.create_model_package_group(ModelPackageGroupName="flywheel-bench-churn")
        for b in range(batches):
            part = data.iloc[b * per : (b + 1) * per]
            if b == 7:  # the subject is in two batches
                part = pd.concat([part, data.loc[[3 * per + 5]]])
            folder = workdir / f"batch-{b}"
            (folder / "raw").mkdir(parents=True)
            part.to_csv(folder / "raw" / "batch.csv", index=False)
            preprocess.preprocess(folder / "raw", folder / "out", contract, BENCH_KEY, "algo-1", ["algo-1"])
            s3.upload_file(str(folder / "raw" / "batch.csv"), buckets["raw"], f"{team}/incoming/b{b}/batch.csv")
            for split in ("train", "validation", "test"):
                key = f"{pipeline}/exec-{b}/{split}/part-algo-1.parquet"
                s3.upload_file(str(folder / "out" / split / "part-algo-1.parquet"), buckets["features"], key)
        scope = ErasureScope(team, buckets, (pipeline,), "flywheel-bench-churn", ("customer_id",))
        t = time.perf_counter()
        read = 0
        for _zone, bucket, prefix, _clear in scope.locations():
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
                for v in page.get("Versions", []):
                    if is_data_key(v["Key"]):
                        read += len(s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read())
        read_seconds = time.perf_counter() - t
        t = time.perf_counter()
        receipt = erase(s3, sm, scope, subject, request_id="bench")
        erase_seconds = time.perf_counter() - t
        t = time.perf_counter()
        again = erase(s3, sm, scope, subject, request_id="bench-2")
        second_seconds = time.perf_counter() - t
    if receipt.status != "erased" or len(receipt.batches) != 2 or again.status != "nothing-found":
        raise RuntimeError(f"unexpected erasure outcome: {receipt.message()} / {again.message()}")
    return {
        "rows": rows + 1,
        "batches": batches,
        "objects": receipt.objects_scanned,
        "bytes_read": read,
        "read_every_object_seconds": read_seconds,
        "erase_seconds": erase_seconds,
        "erase_rows_per_s": (rows + 1) / erase_seconds,
        "erase_over_read": erase_seconds / read_seconds,
        "second_run_seconds": second_seconds,
        "rows_removed": receipt.rows_removed,
        "objects_rewritten": len(receipt.objects),
        "versions_removed": receipt.versions_removed,
    }


def run(rows: int, repeat: int, workdir: Path, batches: int = 10) -> dict[str, Any]:
    """Both measurements (the fastest of ``repeat`` runs of each)."""
    sys.path.insert(0, str(REPO))
    scans = []
    erasures = []
    for i in range(repeat):
        scans.append(_scan(rows, workdir / f"s{i}"))
        erasures.append(_erasure(rows, batches, workdir / f"e{i}"))
    scan = min(scans, key=lambda r: r["scan_seconds"])
    erasure = min(erasures, key=lambda r: r["erase_seconds"])
    return {
        "benchmark": "privacy",
        "repeat": repeat,
        "pii_scan": scan,
        "erasure": erasure,
        "machine": common.machine(),
        "bench_rows": bench_rows(scan, erasure),
    }


def bench_rows(s: dict[str, Any], e: dict[str, Any]) -> list[dict[str, Any]]:
    """Erasure against reading every object once; the PII scan against the preprocessing step."""
    return [
        common.row(
            "privacy.erasure",
            f"erasure of one subject in 2 of {e['batches']} batches, {e['rows']:,} rows ({e['objects']} objects, "
            "moto S3 in-process)",
            e["erase_seconds"],
            "s",
            e["read_every_object_seconds"],
            "reading every object version once (the least any erasure must do: find the subject)",
            note=f"{e['objects_rewritten']} objects rewritten, {e['versions_removed']} versions deleted; second run "
            f"(nothing found) {e['second_run_seconds']:.2f} s",
        ),
        common.row(
            "privacy.pii_scan",
            f"PII scan of the preprocessing outputs (pii_scan.verify_outputs), {s['rows']:,} rows",
            s["scan_seconds"],
            "s",
            s["preprocess_seconds"],
            "preprocess.preprocess on the same batch, same process",
            goal=common.goal("ratio", "<=", s["goal_scan_over_preprocess_at_most"], "≤ 0.5 of preprocessing"),
            note=f"{s['scan_rows_per_s']:,.0f} rows/s, {s['scanned_cells']:,} cells",
        ),
    ]


def print_table(result: dict[str, Any]) -> None:
    """A small fixed-width table."""
    s, e = result["pii_scan"], result["erasure"]
    print(f"PII scan on {s['rows']:,} churn rows ({s['scanned_cells']:,} cells of curated output)")
    print(f"  preprocess  {s['preprocess_seconds']:8.2f} s  {s['preprocess_rows_per_s']:>12,.0f} rows/s")
    print(f"  PII scan    {s['scan_seconds']:8.2f} s  {s['scan_rows_per_s']:>12,.0f} rows/s")
    ok = "meets" if s["scan_over_preprocess"] <= s["goal_scan_over_preprocess_at_most"] else "misses"
    print(f"  scan / preprocess = {s['scan_over_preprocess']:.2f} ({ok} the goal <= 0.5)")
    print(f"Erasure of one subject across {e['rows']:,} rows in {e['batches']} batches ({e['objects']} objects)")
    print(f"  read every object once  {e['read_every_object_seconds']:8.2f} s  ({e['bytes_read'] / 1e6:.0f} MB)")
    print(f"  erase                   {e['erase_seconds']:8.2f} s  ({e['objects_rewritten']} objects rewritten, "
          f"{e['versions_removed']} versions deleted)")  # fmt: skip
    print(f"  erase / read = {e['erase_over_read']:.2f}; second run (nothing found) {e['second_run_seconds']:.2f} s")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write ``bench/results/bench_privacy.json``."""
    return common.standard_main("bench_privacy", __doc__, rows=1_000_000, run=run, print_table=print_table, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())
