"""``python -m bench --quick`` for real: the rows a run produces (their presence and shape, not their figures)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import common
from bench.__main__ import JOBS, expected_rows

REPO = Path(__file__).resolve().parents[2]


def _bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m bench ARGS --quick --results <tmp>/results`` in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    command = [sys.executable, "-m", "bench", *args, "--quick", "--results", str(tmp_path / "results")]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)


def _harness(tmp_path: Path, *names: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = _bench(tmp_path, *names, "--output", str(tmp_path / "benchmarks.md"))
    record = json.loads((tmp_path / "results" / "bench.json").read_text(encoding="utf-8"))
    return done, record


def _check_rows(record: dict[str, Any], ids: list[str], text: str) -> None:
    rows = {r["id"]: r for r in record["rows"]}
    assert [r["id"] for r in record["rows"] if r["id"] in ids] == [i for i in rows if i in ids]  # no duplicates
    assert set(ids) <= set(rows), sorted(set(ids) - set(rows))
    for rid in ids:
        r = rows[rid]
        for f in ("figure", "baseline", "ratio"):
            assert isinstance(r[f], float) and math.isfinite(r[f]), (rid, f, r[f])
        assert r["verdict"] in ("met", "not met") if r["goal"] else r["verdict"] == "no goal", rid
        assert isinstance(r["load_1m"], float) and r["load_1m"] >= 0, rid
        assert r["date"].startswith("20") and r["machine"]["cpus"] >= 1 and r["machine"]["python"], rid
        assert r["machine"]["memory_gb"] and r["machine"]["memory_gb"] > 0, rid
        assert r["quick_proxy"], rid  # every quick row says what it measured instead
        assert f"| `{rid}` |" in text, rid


@pytest.mark.parametrize("name", ["lambdas", "serving"])
def test_one_benchmark_through_the_harness_writes_its_rows_where_told(tmp_path: Path, name: str) -> None:
    """Cheap jobs (handler imports; serving at quick sizes, ~3 s) end to end: fresh process, result under
    --results and nowhere else."""
    job = next(j for j in JOBS if j.name == name)
    default = common.DEFAULT_RESULTS / job.result
    before = default.stat().st_mtime_ns if default.is_file() else None
    done, record = _harness(tmp_path, name)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (tmp_path / "results" / job.result).is_file()  # FLYWHEEL_BENCH_RESULTS was honoured
    assert (default.stat().st_mtime_ns if default.is_file() else None) == before  # bench/results untouched
    _check_rows(record, list(job.rows), (tmp_path / "benchmarks.md").read_text(encoding="utf-8"))
    assert record["quick"] is True and record["repeat"] == 1 and record["failed"] == []


@pytest.mark.slow
def test_quick_run_produces_every_row(tmp_path: Path) -> None:
    """`make bench QUICK=1` in full (~140 s of CPU on this machine, ~10 min wall: every benchmark, demo included)."""
    done, record = _harness(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert record["failed"] == [] and record["expected"] == expected_rows()
    text = (tmp_path / "benchmarks.md").read_text(encoding="utf-8")
    _check_rows(record, expected_rows(), text)
    assert "QUICK RUN" in text and "Missing rows" not in text
    assert all(r["verdict"] in common.VERDICTS for r in record["rows"])


def test_merge_keeps_the_rows_of_the_jobs_not_run_again(tmp_path: Path) -> None:
    """Re-running one job with --merge regenerates the page with the other jobs' rows as they were."""
    done, first = _harness(tmp_path, "lambdas")
    assert done.returncode == 0, done.stdout[-2000:]
    done, record = _harness(tmp_path, "tests", "--merge")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert record["jobs"] == ["lambdas", "tests"] and record["merged_from"] == [first["started"]]
    kept = [r for r in record["rows"] if r["job"] == "lambdas"]
    assert kept == first["rows"]  # as they were, with their own load and date
    ids = [*(j for job in JOBS if job.name in ("lambdas", "tests") for j in job.rows)]
    _check_rows(record, ids, (tmp_path / "benchmarks.md").read_text(encoding="utf-8"))


def test_a_partial_run_without_a_page_leaves_the_full_record_alone(tmp_path: Path) -> None:
    """Exploring one benchmark (`--output none`) writes bench-partial.json; the record --merge reads stays."""
    done, first = _harness(tmp_path, "lambdas")
    assert done.returncode == 0, done.stdout[-2000:]
    record_file = tmp_path / "results" / "bench.json"
    before = record_file.read_bytes()
    done = _bench(tmp_path, "lambdas", "--output", "none")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert record_file.read_bytes() == before
    partial = json.loads((tmp_path / "results" / "bench-partial.json").read_text(encoding="utf-8"))
    assert partial["started"] >= first["started"] and {r["job"] for r in partial["rows"]} == {"lambdas"}
    assert "bench-partial.json" in done.stdout
