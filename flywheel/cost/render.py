"""The cost report as rich tables (``flywheel cost``) and as ``docs/cost.md`` (``make cost-docs``)."""

from __future__ import annotations

from typing import Any

from flywheel.cost.model import FREE, Assumptions
from flywheel.cost.report import REFERENCE, CostReport, EnvironmentCost, Group

ASSUMPTION_HELP = {
    "trail_data_events_per_month": "CloudTrail data events per month and environment",
    "flow_log_gb_per_month": "GB of VPC flow logs ingested per month and flow log",
    "s3_gb_per_bucket": "GB stored per S3 bucket",
    "minutes_per_step": "minutes per pipeline job step (processing, training, transform)",
    "runs": "pipeline runs the run cost is quoted for",
}


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def _items(group: Group, limit: int = 5) -> str:
    parts = [f"{n} {item} {_usd(m)}" for item, n, m in group.by_item()[:limit]]
    rest = group.by_item()[limit:]
    if rest:
        parts.append(f"+{len(rest)} more {_usd(sum(m for _, _, m in rest))}")
    if group.free_tier:
        parts.append(f"account free tier -{_usd(-group.free_tier)}")
    return "; ".join(parts) or "—"


def rows(report: CostReport) -> list[tuple[str, str, float, float, str]]:
    """(environment, group, idle, deployed, what it is) for each team and baseline, each environment total,
    the toolchain and the grand total."""
    out: list[tuple[str, str, float, float, str]] = []
    for env in report.environments:
        for group in env.groups():
            out.append((env.env, group.name, group.idle, group.deployed, _items(group)))
        out.append((env.env, "environment total", env.idle, env.deployed, ""))
    if report.toolchain is not None:
        out.append(("tools account", "toolchain", report.toolchain.idle, 0.0, _items(report.toolchain)))
    if len(report.environments) > 1 or report.toolchain is not None:
        deployed = sum(e.deployed for e in report.environments)
        out.append(
            ("all", "total", report.total, round(deployed, 2), f"of which platform baseline {_usd(report.baseline)}")
        )
    return out


def _run_env(report: CostReport) -> EnvironmentCost | None:
    by_name = {e.env: e for e in report.environments}
    return by_name.get("dev") or (report.environments[0] if report.environments else None)


def run_rows(report: CostReport) -> list[tuple[str, str, str, float, float | None]]:
    """(team, pipeline, jobs, cost of N runs at the assumed minutes, upper bound at MaxRuntime)."""
    env = _run_env(report)
    out: list[tuple[str, str, str, float, float | None]] = []
    if env is None:
        return out
    for name, team in env.teams.items():
        for run in team.runs:
            jobs = ", ".join(f"{j.step}: {j.instance_count} x {j.instance_type}" for j in run.jobs)
            out.append((name, run.pipeline, jobs, run.assumed, run.upper_bound))
    return out


def _free_types(report: CostReport) -> list[str]:
    return sorted({line.type for g in report.groups() for line in g.lines if line.status == FREE and not line.deployed})


def print_report(report: CostReport, console: Any) -> None:
    from rich.table import Table

    p = report.prices
    envs = ", ".join(e.env for e in report.environments) or "toolchain"
    console.print(
        f"[bold]Idle monthly cost[/] — {envs} — prices {p.region} as of {p.as_of} "
        f"({len(p.unverified)} of {len(p.prices)} unverified: see {p.path.name if p.path else 'the table'})"
    )
    table = Table(title="Per team and platform baseline (USD/month at rest)")
    for header in ("environment", "group", "idle", "+ deployed endpoint", "what it is"):
        table.add_column(header, justify="right" if header in ("idle", "+ deployed endpoint") else "left")
    for env, group, idle, deployed, what in rows(report):
        bold = group in ("environment total", "total")
        fmt = (lambda s: f"[bold]{s}[/]") if bold else (lambda s: s)
        table.add_row(env, fmt(group), fmt(_usd(idle)), _usd(deployed) if deployed else "—", what)
    console.print(table)

    runs = run_rows(report)
    if runs:
        a = report.assume
        t = Table(
            title=f"Cost per {a.runs:,.0f} pipeline runs ({_run_env(report).env}; jobs only) — "  # type: ignore[union-attr]
            f"at {a.minutes_per_step:g} min per job step (assumed) and at every step's MaxRuntime (upper bound)"
        )
        for header in ("team", "pipeline", "job steps", f"{a.minutes_per_step:g} min/step", "MaxRuntime bound"):
            t.add_column(header)
        for team, pipeline, jobs, assumed, upper in runs:
            t.add_row(team, pipeline, jobs, _usd(assumed), _usd(upper) if upper is not None else "no MaxRuntime")
        console.print(t)

    knobs = Table(title="Knobs that lower it (saving per month over this report)")
    knobs.add_column("knob")
    knobs.add_column("saves", justify="right")
    for label, saving in report.knobs():
        knobs.add_row(label, _usd(saving))
    console.print(knobs)

    goals = Table(title="Goals (issue 17)")
    for header in ("goal", "met", "figure"):
        goals.add_column(header)
    for goal, met, why in report.goals():
        mark = "[green]yes[/]" if met else "[yellow]n/a[/]" if met is None else "[red]no[/]"
        goals.add_row(goal, mark, why)
    console.print(goals)

    missing = report.not_priced()
    if missing:
        t = Table(title="Not priced (listed, never ignored)")
        for header in ("type", "stack", "resource", "why"):
            t.add_column(header)
        for line in missing:
            t.add_row(line.type, line.stack, line.logical_id, line.detail)
        console.print(t)
    else:
        console.print("Not priced: none — every resource type is priced or known to cost $0 at rest.")
    console.print(f"$0 at rest: {', '.join(_free_types(report))}")
    console.print("Assumptions (--assume NAME=VALUE): " + ", ".join(_assumptions(report.assume)))


def _assumptions(assume: Assumptions) -> list[str]:
    return [f"{name}={getattr(assume, name):g}" for name in Assumptions.names()]


def render_markdown(report: CostReport) -> str:
    """``docs/cost.md``: the all-environments report (generated by ``make cost-docs``; a test keeps it current)."""
    p = report.prices
    a = report.assume
    out = [
        "# Cost of a Flywheel platform (idle)",
        "",
        "<!-- Generated by `make cost-docs` (flywheel cost --markdown docs/cost.md) from the synthesized templates "
        "and flywheel/cost/prices/; do not edit by hand. tests/flywheel/cost checks it is current. -->",
        "",
        f"What the platform costs per month before any job runs, estimated by `flywheel cost` from the synthesized "
        f"CloudFormation templates of every environment and the dated price table "
        f"`flywheel/cost/prices/{p.region}.yaml` ({p.region} list prices as of {p.as_of}, {p.hours_per_month:g} h "
        f"a month). Every resource type is priced, known to cost $0 at rest, or listed as not priced. "
        f"{len(p.unverified)} of {len(p.prices)} prices are marked `unverified` (written offline; each names its "
        "AWS pricing page): check them before quoting a figure.",
        "",
        "`flywheel cost -c env=dev` prints one environment; `--cdk-out cdk.out` reads an assembly synthesized "
        "by `make synth` instead of synthesizing in-process; `--assume NAME=VALUE` changes an assumption.",
        "",
        "## Per team and platform baseline (USD/month at rest)",
        "",
        "| environment | group | idle | + deployed endpoint | what it is |",
        "|---|---|---:|---:|---|",
    ]
    for env, group, idle, deployed, what in rows(report):
        bold = group in ("environment total", "total")
        cell = f"**{_usd(idle)}**" if bold else _usd(idle)
        name = f"**{group}**" if bold else group
        out.append(f"| {env} | {name} | {cell} | {_usd(deployed) if deployed else '—'} | {what} |")
    out += [
        "",
        "*Deployed endpoint*: a team's endpoint is created by its deploy function after the first approval "
        "(`deploy_target`, `instances.endpoint`, `endpoint_min_instances`); serverless endpoints cost $0 at rest. "
        "The account free tiers (10 alarm metrics, 3 dashboards, 2 budgets per account) are credited to each "
        "environment's baseline, so a team's figure is what one more team costs.",
        "",
        "## Goals",
        "",
        "| goal | met | figure |",
        "|---|---|---|",
    ]
    for goal, met, why in report.goals():
        out.append(f"| {goal} | {'yes' if met else 'n/a' if met is None else '**no**'} | {why} |")
    out += ["", "## Knobs that lower it", "", "| knob | saves per month |", "|---|---:|"]
    for label, saving in report.knobs():
        out.append(f"| {label} | {_usd(saving)} |")
    out += [
        "",
        "The levers live in `config/environments.yaml` (`max_azs`, `interface_endpoints`, `trail`, `flow_logs`) and "
        "`config/teams.yaml` (`deploy_target`, `instances`). No NAT gateway is priced because there is none: the "
        "isolated subnets have no internet path, and the S3 gateway endpoint is free.",
        "",
        "## Comparison with the closest public reference",
        "",
    ]
    per_team: dict[str, float] = {}
    for env_cost in report.environments:
        for name, team in env_cost.teams.items():
            per_team[name] = per_team.get(name, 0.0) + team.idle + team.deployed
    out += [
        f"{REFERENCE['name']}: about **${REFERENCE['idle_business_unit']:.0f}/month idle for one business unit** and "
        f"**+${REFERENCE['per_realtime_project']:.0f}/month per real-time project** (measured from its templates, as "
        "issue 17 states; not re-measured here).",
        "",
        "| | reference | Flywheel |",
        "|---|---:|---:|",
        f"| idle platform (Flywheel: dev + staging + prod baselines and the toolchain) | "
        f"${REFERENCE['idle_business_unit']:.0f} | {_usd(report.baseline)} |",
    ]
    for name, value in per_team.items():
        out.append(
            f"| per project: team `{name}` in every environment, endpoint deployed | "
            f"${REFERENCE['per_realtime_project']:.0f} | {_usd(value)} |"
        )
    runs = run_rows(report)
    if runs:
        out += [
            "",
            f"## Cost per {a.runs:,.0f} pipeline runs",
            "",
            f"Job steps only (pipeline orchestration is free), from the pipeline definitions of "
            f"{_run_env(report).env}: at **{a.minutes_per_step:g} minutes per job step (an assumption, "  # type: ignore[union-attr]
            "`--assume minutes_per_step=N`)** and, as an upper bound, at every step's `MaxRuntimeInSeconds`.",
            "",
            f"| team | pipeline | job steps | at {a.minutes_per_step:g} min/step | upper bound (MaxRuntime) |",
            "|---|---|---|---:|---:|",
        ]
        for team_name, pipeline, jobs, assumed, upper in runs:
            bound = _usd(upper) if upper is not None else "no MaxRuntime"
            out.append(f"| {team_name} | {pipeline} | {jobs} | {_usd(assumed)} | {bound} |")
    missing = report.not_priced()
    out += ["", "## Not priced", ""]
    if missing:
        out += ["| type | stack | resource | why |", "|---|---|---|---|"]
        out += [f"| {m.type} | {m.stack} | {m.logical_id} | {m.detail} |" for m in missing]
    else:
        out.append("None: every resource type in the templates is priced or known to cost $0 at rest.")
    out += [
        "",
        "## $0 at rest",
        "",
        ", ".join(f"`{t}`" for t in _free_types(report)) + ".",
        "",
        "## Assumptions",
        "",
        "| assumption | value |",
        "|---|---:|",
    ]
    out += [f"| `{name}`: {ASSUMPTION_HELP.get(name, name)} | {getattr(a, name):g} |" for name in Assumptions.names()]
    out += [
        "",
        f"## Prices ({p.region}, as of {p.as_of})",
        "",
        "| price | USD | unit | source | verified |",
        "|---|---:|---|---|---|",
    ]
    for key, entry in sorted(p.prices.items()):
        shown = (
            f"{entry.price:g}"
            if entry.price is not None
            else ", ".join(f"{k} {v:g}" for k, v in sorted(entry.by_instance.items()))
        )
        out.append(f"| `{key}` | {shown} | {entry.unit} | {entry.source} | {'no' if entry.unverified else 'yes'} |")
    out.append("")
    return "\n".join(out)
