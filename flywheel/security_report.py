"""Synthesize every environment offline and report stacks, resources and security-check results."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from stacks.stage import FlywheelStage
from rich.table import Table


@dataclass
class EnvironmentReport:
    """What one environment synthesizes to and how it fares against the checks."""

    name: str
    stacks: dict[str, Counter[str]] = field(default_factory=dict)
    nag_findings: list[str] = field(default_factory=list)
    acknowledgments: int = 0
    rule_problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.nag_findings and not any(self.rule_problems.values())


def build_reports() -> list[EnvironmentReport]:
    """Synthesize all configured environments in-process (no AWS call) and run nag + our rules."""
    os.environ.setdefault("CDK_VALIDATION", "false")
    from aws_cdk import App

    from config.loader import load_config
    from stacks import cdk_json_context
    from stacks.stage import add_stages

    config = load_config()
    app = App(context=cdk_json_context())
    stages = add_stages(app, config.environments, config.teams)
    return [report_stage(stage) for stage in stages.values()]


def report_stage(stage: FlywheelStage) -> EnvironmentReport:
    """Stacks, resources by type, cdk-nag findings (run on this stage only) and policy-rule results."""
    from aws_cdk import Stack
    from aws_cdk.assertions import Template

    from stacks.nag import acknowledgments, findings
    from stacks.policy_rules import check

    report = EnvironmentReport(name=stage.environment.name)
    templates = {}
    for child in stage.node.children:
        if isinstance(child, Stack):
            template = Template.from_stack(child).to_json()
            templates[child.node.id] = template
            report.stacks[child.node.id] = Counter(r["Type"] for r in template.get("Resources", {}).values())
    report.nag_findings = [f"{f.pack} {f.rule} {f.resource}" for f in findings(stage)]
    report.acknowledgments = len(acknowledgments(stage))
    report.rule_problems = check(templates)
    return report


def print_reports(reports: list[EnvironmentReport], console: Console | None = None) -> bool:
    """Render the reports; True when every environment passes every check."""
    console = console or Console()
    for report in reports:
        table = Table(title=f"environment {report.name}", show_lines=False)
        table.add_column("stack")
        table.add_column("resources", justify="right")
        table.add_column("by type")
        for stack, counts in report.stacks.items():
            top = ", ".join(f"{t.removeprefix('AWS::')}x{n}" for t, n in counts.most_common(6))
            table.add_row(stack, str(sum(counts.values())), top)
        console.print(table)
        verdict = "[green]pass[/]" if not report.nag_findings else f"[red]{len(report.nag_findings)} findings[/]"
        console.print(
            f"  cdk-nag (AwsSolutions, HIPAA, NIST 800-53 R5, PCI DSS 3.2.1, Serverless): {verdict}; "
            f"{report.acknowledgments} acknowledgments with reasons"
        )
        for finding in report.nag_findings[:20]:
            console.print(f"    [red]{finding}[/]")
        for rule, problems in report.rule_problems.items():
            mark = "[green]ok[/]" if not problems else f"[red]{len(problems)} problem(s)[/]"
            console.print(f"  rule {rule}: {mark}")
            for p in problems[:5]:
                console.print(f"    [red]{p}[/]")
    return all(r.passed for r in reports)
