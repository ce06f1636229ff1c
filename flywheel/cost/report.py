"""``flywheel cost``: per team and platform baseline, for one environment or all of them, with goals and knobs.

Stacks ``Flywheel-<env>-Team-<team>`` are the team's; every other stack of the environment is the platform
baseline; ``Flywheel-Toolchain`` (one per organisation, in the tools account) is the toolchain, counted once in
the all-environments total. The account free tiers (alarms, dashboards, budgets) are a credit on the
environment's baseline, so a team's figure is what one more team costs once the free tier is used up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flywheel.cost.model import ASSUMED, NOT_PRICED, PRICED, Assumptions, Line, RunCost, price_template, run_cost
from flywheel.cost.prices import PriceTable, load_prices

TOOLCHAIN_STACK = "Flywheel-Toolchain"
FREE_TIER = "free tier"
#: Goals of issue 17: the platform baseline of all three environments with full isolation, and one more dev team.
BASELINE_GOAL = 180.0
TEAM_GOAL = 10.0
#: The closest public reference (issue 17, "measured from its templates").
REFERENCE = {
    "name": "AWS's enterprise MLOps framework sample (the closest public reference)",
    "idle_business_unit": 540.0,
    "per_realtime_project": 259.0,
}


@dataclass(frozen=True)
class EnvTemplates:
    """One environment's synthesized stacks: ``{deployed stack name: template}``."""

    env: str
    region: str
    templates: Mapping[str, Mapping[str, Any]]


@dataclass
class Group:
    """The lines of one team, of one environment's platform baseline, or of the toolchain."""

    name: str
    kind: str  # team | baseline | toolchain
    lines: list[Line] = field(default_factory=list)
    runs: list[RunCost] = field(default_factory=list)

    @property
    def idle(self) -> float:
        """Monthly at rest, before any model is deployed."""
        return round(sum(line.monthly for line in self.lines if not line.deployed), 2)

    @property
    def deployed(self) -> float:
        """What the team's deployed endpoint adds after the first approval."""
        return round(sum(line.monthly for line in self.lines if line.deployed), 2)

    @property
    def not_priced(self) -> list[Line]:
        return [line for line in self.lines if line.status == NOT_PRICED]

    def by_item(self) -> list[tuple[str, int, float]]:
        """(item, count, monthly) of the priced and assumed lines, costliest first."""
        count: Counter[str] = Counter()
        total: dict[str, float] = {}
        for line in self.lines:
            if line.status in (PRICED, ASSUMED) and not line.deployed and line.type != FREE_TIER:
                count[line.item] += 1
                total[line.item] = total.get(line.item, 0.0) + line.monthly
        return sorted(((i, count[i], round(total[i], 2)) for i in count), key=lambda r: (-r[2], r[0]))

    @property
    def free_tier(self) -> float:
        """The account free-tier credit on this group (negative)."""
        return round(sum(line.monthly for line in self.lines if line.type == FREE_TIER), 2)


@dataclass
class EnvironmentCost:
    env: str
    region: str
    baseline: Group
    teams: dict[str, Group]

    @property
    def idle(self) -> float:
        return round(self.baseline.idle + sum(t.idle for t in self.teams.values()), 2)

    @property
    def deployed(self) -> float:
        return round(sum(t.deployed for t in self.teams.values()), 2)

    def groups(self) -> list[Group]:
        return [self.baseline, *self.teams.values()]


@dataclass
class CostReport:
    prices: PriceTable
    assume: Assumptions
    environments: list[EnvironmentCost]
    toolchain: Group | None = None

    @property
    def baseline(self) -> float:
        """Platform baseline of every environment in the report (+ the toolchain, when present)."""
        tool = self.toolchain.idle if self.toolchain else 0.0
        return round(sum(e.baseline.idle for e in self.environments) + tool, 2)

    @property
    def total(self) -> float:
        tool = self.toolchain.idle if self.toolchain else 0.0
        return round(sum(e.idle for e in self.environments) + tool, 2)

    def groups(self) -> list[Group]:
        out = [g for e in self.environments for g in e.groups()]
        return out + ([self.toolchain] if self.toolchain else [])

    def not_priced(self) -> list[Line]:
        return [line for g in self.groups() for line in g.not_priced]

    def knobs(self, *, baseline_only: bool = False) -> list[tuple[str, float]]:
        """Each knob that lowers the idle figure and what it saves per month over the report (largest first);
        ``baseline_only``: what it saves on the platform baselines (and the toolchain) alone."""
        groups = [g for g in self.groups() if not baseline_only or g.kind != "team"]
        saved: dict[str, float] = {}
        for group in groups:
            for line in group.lines:
                for label, saving in line.savings:
                    if line.deployed:
                        label = f"{label}, after the first approval"
                    saved[label] = saved.get(label, 0.0) + saving
        out = []
        for label, saving in saved.items():
            if label.startswith("drop interface endpoints"):
                # dropping them is for a dev sandbox only: jobs need them (the other environments keep them)
                dev = [e for e in self.environments if e.env == "dev"]
                saving = sum(
                    line.monthly for e in dev for line in e.baseline.lines if line.item == "interface endpoint"
                )
                label = "drop interface endpoints in dev (`interface_endpoints: []`: synth/IAM work only, no jobs)"
                if not saving:
                    continue
            out.append((label, round(saving, 2)))
        # KMS: one key per account instead of one per zone, purpose and team
        keys = 0
        for env in self.environments:
            n = sum(1 for g in env.groups() if g in groups for line in g.lines if line.item == "KMS key")
            keys += max(n - 1, 0)
        if keys:
            unit = self.prices["kms_key_month"]
            label = "one KMS key per environment instead of one per zone, purpose and team (gives up key isolation)"
            out.append((label, round(keys * unit, 2)))
        return sorted(out, key=lambda r: (-r[1], r[0]))

    def goals(self) -> list[tuple[str, bool | None, str]]:
        """(goal, met (None: not measurable from this report), why) for the issue's two goals."""
        out: list[tuple[str, bool | None, str]] = []
        envs = {e.env for e in self.environments}
        if {"dev", "staging", "prod"} <= envs:
            met = self.baseline <= BASELINE_GOAL
            out.append(
                (
                    f"platform baseline ≤ ${BASELINE_GOAL:.0f}/month, three environments, full isolation",
                    met,
                    f"${self.baseline:,.2f}/month"
                    + ("" if met else f"; dominated by {self._dominant_baseline()}{self._fix()}"),
                )
            )
        else:
            out.append(
                (
                    f"platform baseline ≤ ${BASELINE_GOAL:.0f}/month, three environments",
                    None,
                    "needs dev, staging and prod: run without --env",
                )
            )
        for e in self.environments:
            if e.env != "dev":
                continue
            for name, team in e.teams.items():
                met = team.idle <= TEAM_GOAL
                after = team.idle + team.deployed
                why = f"{name}: ${team.idle:,.2f}/month idle"
                if team.deployed:
                    why += f"; ${after:,.2f} with its real-time endpoint deployed (serverless: $0 at rest)"
                if not met:
                    why += f"; dominated by {_dominant(team)}"
                out.append((f"≤ ${TEAM_GOAL:.0f}/month idle per extra dev team ({name})", met, why))
        return out

    def _fix(self) -> str:
        """The single knob that brings the baseline under the goal, if one does."""
        for label, saving in self.knobs(baseline_only=True):
            if self.baseline - saving <= BASELINE_GOAL:
                return f"; met with {label.split(' (')[0]}: ${self.baseline - saving:,.2f}"
        return "; no single knob meets it"

    def _dominant_baseline(self) -> str:
        total: dict[str, float] = {}
        for group in [*(e.baseline for e in self.environments), *([self.toolchain] if self.toolchain else [])]:
            for item, _, monthly in group.by_item():
                total[item] = total.get(item, 0.0) + monthly
        item, monthly = max(total.items(), key=lambda kv: kv[1])
        return f"{item}s (${monthly:,.2f} of ${self.baseline:,.2f})"


def _dominant(group: Group) -> str:
    items = group.by_item()
    if not items:
        return "nothing priced"
    item, count, monthly = items[0]
    return f"{count} {item}(s) (${monthly:,.2f})"


def estimate(
    environments: Iterable[EnvTemplates],
    *,
    assume: Assumptions | None = None,
    toolchain: EnvTemplates | None = None,
    prices: PriceTable | None = None,
) -> CostReport:
    """Price every stack of every environment (and the toolchain), grouped per team and baseline."""
    assume = assume or Assumptions()
    envs = list(environments)
    tables: dict[str, PriceTable] = {}

    def table(region: str) -> PriceTable:
        if prices is not None:
            return prices
        if region not in tables:
            tables[region] = load_prices(region)
        return tables[region]

    out = []
    for env in envs:
        p = table(env.region)
        team_prefix = f"Flywheel-{env.env}-Team-"
        baseline = Group("platform baseline", "baseline")
        teams: dict[str, Group] = {}
        for stack, template in sorted(env.templates.items()):
            if stack.startswith(team_prefix):
                name = stack[len(team_prefix) :]
                group = teams.setdefault(name, Group(name, "team"))
                group.runs.extend(run_cost(stack, template, p, assume))
            else:
                group = baseline
            group.lines.extend(price_template(stack, template, p, assume))
        baseline.lines.extend(_free_tier_credit(f"Flywheel-{env.env}", [baseline, *teams.values()], p))
        out.append(EnvironmentCost(env.env, env.region, baseline, dict(sorted(teams.items()))))
    tool = None
    if toolchain is not None:
        p = table(toolchain.region)
        tool = Group("toolchain", "toolchain")
        for stack, template in sorted(toolchain.templates.items()):
            tool.lines.extend(price_template(stack, template, p, assume))
        tool.lines.extend(_free_tier_credit(TOOLCHAIN_STACK, [tool], p))
    first = table(envs[0].region) if envs else table(toolchain.region if toolchain else "eu-west-1")
    return CostReport(first, assume, out, tool)


def _free_tier_credit(account: str, groups: list[Group], prices: PriceTable) -> list[Line]:
    """The account's free tiers as negative lines: first alarm metrics, dashboards and budgets."""
    lines = [line for g in groups for line in g.lines if line.status == PRICED and not line.deployed]
    alarm_metrics = sum(
        int(line.detail.split(" ", 1)[0])
        for line in lines
        if line.item == "alarm" and "high-resolution" not in line.detail
    )
    dashboards = sum(1 for line in lines if line.item == "dashboard")
    budgets = sum(1 for line in lines if line.item == "budget")
    credits = [
        ("alarm metrics", alarm_metrics, "cloudwatch_alarm_metrics", prices["cloudwatch_alarm_metric_month"]),
        ("dashboards", dashboards, "cloudwatch_dashboards", prices["cloudwatch_dashboard_month"]),
        ("budgets", budgets, "budgets", prices["budget_day"] * prices.hours_per_month / 24),
    ]
    out = []
    for label, used, key, unit in credits:
        free = min(used, prices.free_tier.get(key, 0))
        if free:
            out.append(
                Line(
                    account,
                    f"free tier: {label}",
                    FREE_TIER,
                    PRICED,
                    round(-free * unit, 6),
                    f"first {prices.free_tier[key]} {label} per account free ({free} used)",
                    "account free tier",
                )
            )
    return out
