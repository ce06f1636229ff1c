"""Rows of docs/benchmarks.md: derived from each benchmark's result document, merged over runs, rendered.

A benchmark's JSON document (``bench/results/<name>.json``) either carries its rows under ``"bench_rows"``
(built with :func:`bench.common.row`: the interface every benchmark should use) or the harness derives
them here from the document's other keys (:data:`DERIVERS`: the benchmarks written before rows existed).
Repeated runs of a benchmark (``python -m bench --repeat N``: each run a fresh process) are merged into
one row per id holding the *median* of each figure; the verdict is taken on the medians.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

from bench.common import goal, row, verdict

Doc = dict[str, Any]
Rows = list[dict[str, Any]]

#: Issue 16's goals, in one place for the derived rows.
GOAL_PREPROCESS_RATIO = 0.5  # >= 0.5 of raw pyarrow's throughput (<= 2x its time)
GOAL_PREPROCESS_RSS_MB = 1536.0  # peak RSS <= 1.5 GB at 10M rows
GOAL_COMMAND_S = 2.0  # status / approve / reject
GOAL_UP_S = 5.0
GOAL_DEMO_S = 20.0
GOAL_INSTALL_S = 90.0
GOAL_VENV_RATIO = 2 / 3
GOAL_P99_MS = 10.0
GOAL_BATCH_RATIO = 0.5


def _preprocess(tag: str) -> Callable[[Doc], Rows]:
    """Rows of ``bench_preprocess`` run at one size: ``tag`` is ``1m`` or ``10m`` (the row ids)."""

    def derive(doc: Doc) -> Rows:
        p, b = doc["preprocess"], doc["pyarrow_read_write"]
        size = f"{doc['rows']:,} churn rows ({doc['input_mb']:.0f} MB CSV)"
        ratio_goal = "≥ 0.5 of pyarrow's throughput" if tag == "1m" else "≤ 2x pyarrow's time (≥ 0.5 of its throughput)"
        rows = [
            row(
                f"preprocess.{tag}",
                f"preprocess.py (validate, pseudonymize, split, statistics, parquet), {size}",
                p["seconds"],
                "s",
                b["seconds"],
                "pyarrow read_csv + write_table of the same file",
                ratio=doc["throughput_ratio"],
                ratio_what="throughput: baseline s / figure s",
                goal=goal("ratio", ">=", GOAL_PREPROCESS_RATIO, ratio_goal),
                peak_rss_mb=p["peak_rss_mb"],
                baseline_peak_rss_mb=b["peak_rss_mb"],
                cpu_s=p.get("cpu_seconds"),
                note=f"{p['rows_per_s']:,.0f} rows/s; CPU-time ratio {doc.get('cpu_ratio', math.nan):.2f}",
            )
        ]
        if tag == "10m":
            rows.append(
                row(
                    "preprocess.10m.rss",
                    f"preprocess.py peak RSS, {size}",
                    p["peak_rss_mb"],
                    "MB",
                    b["peak_rss_mb"],
                    "pyarrow read + write peak RSS (holds the whole table)",
                    goal=goal("figure", "<=", GOAL_PREPROCESS_RSS_MB, "≤ 1.5 GB at 10M rows (constant memory)"),
                    peak_rss_mb=p["peak_rss_mb"],
                    baseline_peak_rss_mb=b["peak_rss_mb"],
                )
            )
        return rows

    return derive


def _demo(doc: Doc) -> Rows:
    """``bench_demo``: both runs' wall time against the pipeline steps they ran, and the first run's phases."""
    rows = []
    for key, label in (("first_run", "first run (fresh state)"), ("second_run", "second run (v2 vs champion)")):
        r = doc[key]
        steps = r.get("steps") or doc["phases"][key].get("steps") or {}
        rows.append(
            row(
                f"demo.{key}",
                f"`flywheel demo --rows {doc['rows']:,}`, {label}, process start to exit",
                r["seconds"],
                "s",
                sum(steps.values()),
                "the pipeline steps' own time in that run (Preprocess, Train, Evaluate, ...)",
                ratio_what="figure / baseline (what orchestration, AWS emulation and serving add)",
                goal=goal("figure", "<=", GOAL_DEMO_S, f"≤ {GOAL_DEMO_S:.0f} s at 100k rows, no other load"),
                note=", ".join(f"{k} {v:.1f} s" for k, v in steps.items()),
            )
        )
    timed = doc["phases"]["first_run"]
    for name, seconds in timed["phases"].items():
        if name == "in_process":
            continue
        rows.append(
            row(
                f"demo.phase.{name}",
                f"demo phase `{name}` (first run, timed in a child running the same code)",
                seconds,
                "s",
                timed["seconds"],
                "that run's wall time",
                ratio_what="share of the run",
            )
        )
    return rows


def _run_counts(record: Doc) -> str:
    """How many runs each job had, from the runs kept in the record (merged runs included)."""
    counts: dict[str, int] = {}
    for run in record.get("runs", []):
        counts[run["job"]] = counts.get(run["job"], 0) + 1
    if not counts:
        return f"{record['repeat']} run(s) of each benchmark"
    by_count: dict[int, list[str]] = {}
    for job, n in counts.items():
        by_count.setdefault(n, []).append(job)
    common_n = max(by_count, key=lambda n: len(by_count[n]))
    if len(by_count) == 1:
        return f"{common_n} run(s) of each benchmark"
    others = "; ".join(f"{', '.join(jobs)}: {n} run(s)" for n, jobs in sorted(by_count.items()) if n != common_n)
    return f"{common_n} run(s) of each benchmark except {others} (merged in with `--merge`)"


def _serving(doc: Doc) -> Rows:
    """``bench_serving`` (serving.json): keep-alive HTTP (the demo's measurement) against raw booster.predict.

    The throughput goal is read on a batch-transform payload (``serving.transform``, what batch scoring
    sends); the 1,000-row batches of a real-time client are context (``serving.batch``, no goal).
    """
    http, raw = doc["tiers"]["http keep-alive"], doc["tiers"]["xgboost"]
    base = "raw in-process booster.predict (DMatrix + predict) on the same encoded rows"
    note = f"{doc['requests']:,} requests, {doc['batches']} x {doc['batch_rows']:,}-row batches"
    tr = doc["transform"]
    tr_http, tr_raw = tr["tiers"]["http keep-alive"], tr["tiers"]["xgboost"]
    tr_base = (
        f"raw in-process booster.predict on the same {tr['rows']:,} encoded rows, {tr['xgboost_threads']} thread(s)"
    )
    return [
        row("serving.p50", "single-row request over keep-alive HTTP, p50", http["p50_ms"], "ms", raw["p50_ms"], base,
            note=note),
        row("serving.p99", "single-row request over keep-alive HTTP, p99", http["p99_ms"], "ms", raw["p99_ms"], base,
            goal=goal("figure", "<=", GOAL_P99_MS, f"p99 ≤ {GOAL_P99_MS:g} ms"), note=note),
        row("serving.batch", f"{doc['batch_rows']:,}-row batch requests over keep-alive HTTP (a real-time client), "
            "throughput", http["rows_per_s"], "rows/s", raw["rows_per_s"], base,
            ratio_what="throughput: figure / baseline",
            note=f"vs predict_fn {doc['goals'].get('batch_ratio_vs_predict_fn', math.nan):.2f}; the goal is read on "
            "serving.transform"),
        row("serving.transform", f"batch-transform requests over keep-alive HTTP ({tr['rows']:,} rows, "
            f"{tr['body_mb']:.1f} MB CSV each: the batch_scoring MaxPayloadInMB), throughput", tr_http["rows_per_s"],
            "rows/s", tr_raw["rows_per_s"], tr_base, ratio_what="throughput: figure / baseline",
            goal=goal("ratio", ">=", GOAL_BATCH_RATIO, f"≥ {GOAL_BATCH_RATIO:g} of raw predict"),
            note=f"{tr['batches']} requests; vs predict_fn {tr['ratio_vs_predict_fn']:.2f}"),
    ]  # fmt: skip


_COMMANDS = (
    ("commands.status", "status", GOAL_COMMAND_S),
    ("commands.status_package", "status (1 package)", GOAL_COMMAND_S),
    ("commands.approve", "approve", GOAL_COMMAND_S),
    ("commands.reject", "reject", GOAL_COMMAND_S),
    ("commands.up", "up (cached definitions)", GOAL_UP_S),
    ("commands.up_first", "up (first: builds definitions)", None),
)


def _commands(doc: Doc) -> Rows:
    """``bench_commands``: each command's wall time against a bare moto start (and ``python -c pass``)."""
    cmds = doc["commands"]
    moto, floor = cmds["moto start (in-process)"], cmds["python -c pass"]
    rows = []
    for rid, name, limit in _COMMANDS:
        c = cmds[name]
        g = None
        if limit is not None:
            g = goal("figure", "<=", limit, f"≤ {limit:g} s ({'ready' if name.startswith('up') else 'answered'})")
        rows.append(
            row(
                rid,
                f"`flywheel {name}` in a fresh process, wall time",
                c["seconds"],
                "s",
                moto["seconds"],
                "a bare in-process moto start (`mock_aws().start()`), fresh process",
                goal=g,
                cpu_s=c.get("cpu_seconds"),
                note=f"{c['seconds'] / floor['seconds']:.0f}x `python -c pass` ({floor['seconds']:.2f} s)",
            )
        )
    return rows


def _install(doc: Doc) -> Rows:
    """``bench_install``: a fresh ``uv sync --frozen`` and the venv it builds, against the lock of ``--before``."""
    cur, before = doc["current"], doc.get("before")
    compiled = "" if doc.get("compile_bytecode", True) else " without byte-compiling"
    if before:
        base_s, base_what = before["seconds"], f"the same install of the lock at {before.get('ref', 'before')}"
    else:
        base_s, base_what = doc["python_pass_s"], "`python -c pass` (no `--before` lock given)"
    rows = [
        row(
            "install.time",
            f"fresh `uv sync --frozen`{compiled}, warm uv cache ({cur['distributions']} distributions)",
            cur["seconds"],
            "s",
            base_s,
            base_what,
            goal=goal("figure", "<=", GOAL_INSTALL_S, f"≤ {GOAL_INSTALL_S:.0f} s"),
            note=f"{cur['pyc_files']:,} .pyc",
        )
    ]
    size_base = before["venv_mb"] if before else cur["venv_mb"]
    rows.append(
        row(
            "install.venv",
            "venv size after that install",
            cur["venv_mb"],
            "MB",
            size_base,
            f"venv of the lock at {before.get('ref', 'before')}" if before else "itself (no `--before` lock given)",
            # without the lock of before there is nothing to compare with: no verdict rather than a false one
            goal=goal("ratio", "<=", GOAL_VENV_RATIO, "≤ 2/3 of the venv before the dependency diet")
            if before
            else None,
            note=f"{cur['distributions']} distributions"
            + (
                f" (before: {before['distributions']})"
                if before
                else "; the goal (≤ 2/3 of the venv before the diet) needs --before REF"
            ),
        )
    )
    return rows


#: Derivers for the benchmarks whose documents carry no ``bench_rows`` (yet); the harness's job table names them.
preprocess_1m = _preprocess("1m")
preprocess_10m = _preprocess("10m")
demo = _demo
serving = _serving
commands = _commands
install = _install


def rows_of(doc: Doc, deriver: Callable[[Doc], Rows] | None) -> Rows:
    """A document's rows: its own ``bench_rows`` when present, else what ``deriver`` makes of it."""
    if doc.get("bench_rows"):
        return [dict(r) for r in doc["bench_rows"]]
    if deriver is None:
        raise ValueError("the result has no bench_rows and no deriver is registered for it")
    return deriver(doc)


_NUMERIC = ("figure", "baseline", "ratio", "peak_rss_mb", "baseline_peak_rss_mb", "cpu_s")


def _median(values: list[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def merge(runs: list[Rows]) -> Rows:
    """One row per id over repeated runs: the median of each number (the ratio: the median of the per-run
    ratios, each formed within one run), the spread of the figure, the verdict on the medians."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for rows in runs:
        for r in rows:
            by_id.setdefault(r["id"], []).append(r)
    merged = []
    for group in by_id.values():
        out = dict(group[0])
        for field in _NUMERIC:
            values = [g[field] for g in group if g.get(field) is not None]
            out[field] = _median(values) if values else None
        out["runs"] = len(group)
        out["figures"] = [g["figure"] for g in group]
        out["loads_1m"] = [g.get("load_1m") for g in group]
        out["verdict"] = verdict(out)
        merged.append(out)
    return merged


# Rendering ------------------------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    """A number with about three significant figures; ``—`` for nothing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    a = abs(value)
    if a >= 100_000:
        return f"{value:,.0f}"
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(record: dict[str, Any], expected: list[str]) -> str:
    """docs/benchmarks.md from a harness run record (see ``bench/__main__.py``)."""
    rows = record["rows"]
    m = record["machine"]
    quick = record["quick"]
    present = {r["id"] for r in rows}
    missing = [rid for rid in expected if rid not in present]
    goals = [r for r in rows if r["verdict"] != "no goal"]
    met = sum(1 for r in goals if r["verdict"] == "met")
    kept = ""
    if record.get("merged_from"):
        kept = f" (rows of the other jobs kept from the run of {', '.join(record['merged_from'])})"
    out = [
        "# Benchmarks",
        "",
        "<!-- GENERATED by `make bench` (python -m bench) from bench/results/bench.json: do not edit by hand."
        " Regenerate with `make bench` (full sizes) or `make bench QUICK=1 BENCH_OUT=docs/benchmarks.md`."
        " The hand-maintained analysis is docs/benchmarks-analysis.md. -->",
        "",
        "_Generated by `make bench` — do not edit; regenerate with `make bench` (every benchmark at full size, "
        "`REPEAT=N` runs each). Where the time goes and what was changed: "
        "[benchmarks-analysis.md](benchmarks-analysis.md) (hand-maintained)._",
        "",
    ]
    if quick:
        out += [
            "> **QUICK RUN** (`make bench QUICK=1`): small sizes, one run each, some rows measured on a documented "
            "smaller proxy (marked *quick proxy*). It shows that every row is produced, not what the figures are: "
            "the published figures come from a full `make bench`.",
            "",
        ]
    out += [
        f"- Run: {'quick' if quick else 'full'}, {_run_counts(record)}, each a fresh process;"
        " figures are medians over the runs, the ratio is the median of the per-run ratios (figure and baseline"
        " are always measured in the same run).",
        f"- Machine: {m['cpus']} cores, {m.get('memory_gb')} GB memory, Python {m['python']}, {m['platform']}.",
        f"- Started {record['started']}, {record['wall_s']:.0f} s wall{kept}, {record['cpu_s']:.0f} s CPU (all "
        "benchmark processes); the 1-minute load average at the start of each benchmark is in its rows (this "
        "machine is shared: under load, wall times measure the queue for a core, CPU seconds far less so).",
        f"- Goals: **{met} of {len(goals)} met**; {len(rows) - len(goals)} rows are breakdowns or context "
        "without a goal of their own.",
    ]
    if missing or record.get("failed"):
        out.append(f"- **Missing rows** (a benchmark failed: {', '.join(record.get('failed', [])) or '—'}): "
                   f"{', '.join(missing) or '—'}.")  # fmt: skip
    out.append("")
    header = (
        "| row | what | figure | baseline (same run) | ratio | goal | verdict | peak RSS MB (baseline) | CPU s "
        "| load 1m | date | machine | note |"
    )
    current = None
    for r in rows:
        if r["benchmark"] != current:
            current = r["benchmark"]
            out += ["", f"## {current}", "", header, "|" + "---|" * 13]
        rss = ""
        if r.get("peak_rss_mb") is not None:
            rss = fmt(r["peak_rss_mb"]) + (
                f" ({fmt(r['baseline_peak_rss_mb'])})" if r.get("baseline_peak_rss_mb") is not None else ""
            )
        loads = [x for x in r.get("loads_1m", [r.get("load_1m")]) if x is not None]
        load = "—" if not loads else f"{min(loads):.1f}" + (f"-{max(loads):.1f}" if len(set(loads)) > 1 else "")
        verdict_text = f"**{r['verdict']}**" if r["verdict"] == "not met" else r["verdict"]
        note = r.get("note") or ""
        if r.get("quick_proxy"):
            note = f"*quick proxy*: {r['quick_proxy']}" + (f"; {note}" if note else "")
        if r.get("runs", 1) > 1:
            note += ("; " if note else "") + "runs: " + ", ".join(fmt(f) for f in r["figures"])
        mach = r.get("machine") or m
        cells = [
            f"`{r['id']}`",
            r["what"],
            f"{fmt(r['figure'])} {r['unit']}",
            f"{fmt(r['baseline'])} {r['unit']} — {r['baseline_what']}",
            f"{fmt(r['ratio'])} — {r['ratio_what']}",
            r["goal"]["text"] if r.get("goal") else "—",
            verdict_text,
            rss or "—",
            fmt(r.get("cpu_s")),
            load,
            r.get("date", "—"),
            f"{mach['cpus']} cores, {mach.get('memory_gb')} GB, Py {mach['python']}",
            note or "—",
        ]
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(out) + "\n"
