"""The ``flywheel`` command line: the local runtime's entry point."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    help="Flywheel: the AWS MLOps platform, runnable offline.", no_args_is_help=True, pretty_exceptions_enable=False
)
console = Console()


@app.command("security-report")
def security_report() -> None:
    """Synthesize every environment offline and report stacks, resources, cdk-nag and policy rules."""
    from flywheel.security_report import build_reports, print_reports

    if not print_reports(build_reports(), console):
        raise typer.Exit(1)


@app.command()
def demo() -> None:
    """Run the main job. Until the local runtime lands: synth every environment and report security checks."""
    security_report()


if __name__ == "__main__":
    app()
