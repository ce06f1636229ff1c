"""The ``flywheel`` command line: the local runtime's entry point.

Every command that touches the embedded AWS finds it the same way: ``--endpoint-url`` if given, else
the server a running ``flywheel up`` recorded in the state dir, else a private in-process one for the
duration of the command (the model registry and PII keys persist in the state dir either way).
Expected problems print what is wrong and how to fix it, without a stack trace, and exit with 1.

Config and templates: every command reads ``config/`` of the repository and the templates under
``pipelines/``, unless told otherwise before the command name: ``--config-dir DIR``
(``$FLYWHEEL_CONFIG_DIR``) reads the environments, teams and contracts from ``DIR``, and
``--templates-dir DIR`` (repeatable; ``$FLYWHEEL_TEMPLATES_DIR``, ``os.pathsep``-separated) also searches
``DIR`` for template folders, so a template kept outside the repository runs locally::

    flywheel --config-dir my/config --templates-dir my/templates run --team counter --data batch.csv
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Flywheel: the AWS MLOps platform, runnable offline.", no_args_is_help=True, pretty_exceptions_enable=False
)
# soft_wrap: long paths, URIs and ARNs stay on one line (copyable); the terminal wraps them for display.
console = Console(soft_wrap=True)

StateDir = Annotated[
    Path,
    typer.Option(
        "--state-dir",
        envvar="FLYWHEEL_STATE_DIR",
        help="Where the local runtime keeps its state, jobs and reports.",
        show_default=True,
    ),
]
EndpointUrl = Annotated[
    str | None,
    typer.Option("--endpoint-url", help="Embedded AWS to use (default: a running `flywheel up`, else in-process)."),
]
DEFAULT_STATE_DIR = Path(".flywheel/state")


@dataclass
class _Sources:
    """Where this invocation reads config and templates from (the app's options, before the command)."""

    config_dir: Path | None = None
    template_dirs: tuple[Path, ...] = ()


_SOURCES = _Sources()


@app.callback()
def _main(
    config_dir: Annotated[
        Path | None,
        typer.Option(
            "--config-dir",
            envvar="FLYWHEEL_CONFIG_DIR",
            exists=True,
            file_okay=False,
            help="Config directory (environments.yaml, teams.yaml, contracts/); default: the repository's config/.",
        ),
    ] = None,
    templates_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--templates-dir",
            envvar="FLYWHEEL_TEMPLATES_DIR",
            exists=True,
            file_okay=False,
            help="Extra directory of pipeline template folders, searched after pipelines/ (repeatable; the "
            "variable takes several, separated by the path separator).",
        ),
    ] = None,
) -> None:
    _SOURCES.config_dir = config_dir
    _SOURCES.template_dirs = tuple(templates_dir or ())
    # Whatever this invocation writes (state, job folders, reports) is private to the user.
    from flywheel.state import private_umask

    private_umask()


def _load_config() -> Any:
    """The config this invocation uses (``--config-dir``, ``--templates-dir``)."""
    from config.loader import CONFIG_DIR, load_config

    return load_config(_SOURCES.config_dir or CONFIG_DIR, template_dirs=_SOURCES.template_dirs)


_MARKS = {"Succeeded": "[green]✓[/]", "Failed": "[red]✗[/]"}


def _table(*headers: str, title: str | None = None) -> Table:
    """A table whose cells wrap instead of being cut: ARNs and URIs must stay copyable."""
    table = Table(title=title)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]Error:[/] {message}")
    return typer.Exit(code)


@contextlib.contextmanager
def _expected_errors() -> Iterator[None]:
    """Turn expected errors into ``Error: <message>`` and exit code 1 (no stack trace): every
    :class:`flywheel.errors.FlywheelError`, a rejected lifecycle event, invalid config, and a refused
    embedded-AWS call (named by its operation and code only)."""
    from botocore.exceptions import ClientError

    from config.loader import ConfigError
    from flywheel.errors import FlywheelError
    from lambdas.lifecycle import LifecycleEventError

    try:
        yield
    except (FlywheelError, LifecycleEventError, ConfigError) as exc:
        raise _fail(str(exc)) from None
    except ClientError as exc:
        # The service's own message can carry ARNs and request details: name the call and the code only.
        error = exc.response.get("Error", {})
        raise _fail(
            f"the embedded AWS refused {exc.operation_name}: {error.get('Code', 'error')}; "
            "run `flywheel status` to see what exists"
        ) from None


@contextlib.contextmanager
def _runtime(
    state_dir: Path,
    endpoint_url: str | None,
    *,
    serve_port: int | None = None,
    on_update: Any = None,
    keep_job_data: bool = False,
) -> Iterator[Any]:
    """A LocalRuntime on the embedded AWS this command should use (see the module docstring).

    With ``serve_port`` set and no running embedded AWS, this command starts its own server on it.
    """
    from flywheel.embedded import EmbeddedAws
    from flywheel.runtime import AWS_SERVER, LocalRuntime, open_aws
    from flywheel.state import StateStore, pid_alive

    state = StateStore(state_dir)
    record = state.server(AWS_SERVER)
    if serve_port is not None and not endpoint_url and not (record and pid_alive(record.get("pid"))):
        aws = EmbeddedAws.serve(serve_port)
    else:
        aws = open_aws(state, endpoint_url, lazy=True)  # in-process: started by the first AWS call, if any
    try:
        yield LocalRuntime(aws, state, _load_config(), on_update=on_update, keep_job_data=keep_job_data)
    finally:
        aws.close()


def _wait(duration: float | None) -> None:
    """Block until Ctrl-C (or for ``duration`` seconds)."""
    deadline = None if duration is None else time.monotonic() + duration
    with contextlib.suppress(KeyboardInterrupt):
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))


class _Progress:
    """Prints each pipeline step as it finishes; a spinner names the running one."""

    def __init__(self) -> None:
        self.status: Any = None
        self.done: set[str] = set()

    def __call__(self, record: Any) -> None:
        for step in record.steps:
            if step.status == "Executing" and self.status is not None:
                self.status.update(f"[bold]{step.name}[/] ({step.type}) running…")
            if step.status != "Executing" and step.name not in self.done:
                self.done.add(step.name)
                mark = "[green]✓[/]" if step.status == "Succeeded" else "[red]✗[/]"
                seconds = "-" if step.duration_s is None else f"{step.duration_s:.1f} s"
                detail = ""
                if step.type == "Condition":
                    detail = f" → {step.metadata.get('Condition', {}).get('Outcome')}"
                if step.type == "RegisterModel" and step.metadata.get("RegisterModel"):
                    reg = step.metadata["RegisterModel"]
                    detail = f" → version {reg.get('Version')} ({reg.get('ApprovalStatus')})"
                console.print(f"  {mark} {step.name} [dim]({step.type}, {seconds})[/]{detail}")
                if step.status != "Succeeded" and step.failure_reason:
                    console.print(f"    [red]{step.failure_reason}[/]")


@contextlib.contextmanager
def _spinner(progress: _Progress, message: str) -> Iterator[None]:
    with console.status(message) as status:
        progress.status = status
        try:
            yield
        finally:
            progress.status = None


def _parse_params(values: list[str] | None) -> dict[str, str]:
    params = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise _fail(f"--param {item!r}: use NAME=VALUE, e.g. --param NumRound=50")
        params[name] = value
    return params


def _show_outcome(outcome: Any, runtime: Any) -> str | None:
    """Print a run's result; the error message when it failed (a contract failure with its quarantine report)."""
    record = outcome.execution
    if outcome.contract_failed:
        validation = outcome.validation or {}
        console.print(f"[bold red]The batch failed its data contract:[/] {validation.get('summary', '')}")
        failures = (outcome.quarantine_report or {}).get("failures") or validation.get("failures") or []
        if failures:
            table = _table(
                "check", "column", "failing rows", "message", "example values", "hint", title="Quarantine report"
            )
            for f in failures[:20]:
                # example_values exist only for feature/target columns: preprocessing never writes identifiers'
                values = list(dict.fromkeys(repr(v) for v in f.get("example_values") or []))[:5]
                table.add_row(
                    str(f.get("check", "")),
                    str(f.get("column", "") or ""),
                    str(f.get("failure_count", "")),
                    str(f.get("message", "")),
                    ", ".join(values) or "-",
                    str(f.get("hint", "")),
                )
            console.print(table)
        console.print(f"Quarantined copy and report: {outcome.quarantine_uri}")
        console.print(f"Raw data left intact: {_raw_intact(outcome, runtime)}")
        return (
            "the batch failed its data contract and was quarantined; nothing was trained or registered. "
            "Fix the data (see the quarantine report) and land it again"
        )
    if not record.succeeded and outcome.evaluation and not outcome.evaluation.get("gate", {}).get("passed", 1):
        _print_gate(outcome.evaluation)
    if not record.succeeded:
        failed = record.step(record.failed_step) if record.failed_step else None
        if failed is not None and failed.log_tail:
            console.print(f"[dim]Last lines of {failed.log_path}:[/]")
            console.print(failed.log_tail, markup=False, highlight=False)
        return f"execution {record.execution_id} failed: {record.failure_reason}"
    console.print(f"[bold green]Execution {record.execution_id} succeeded.[/]")
    if outcome.evaluation:
        console.print(f"  {gate_line(outcome.evaluation)}", highlight=False)
    if not outcome.package:
        for step in record.steps:
            for name, uri in (step.metadata.get("Outputs") or {}).items():
                console.print(f"  {step.name} output {name}: {uri}", highlight=False)
    if outcome.package:
        pkg = outcome.package
        version, approval = pkg["ModelPackageVersion"], pkg["ModelApprovalStatus"]
        console.print(f"  Registered version {version} ({approval}): {pkg['ModelPackageArn']}")
        console.print(f"  Approve it with: flywheel approve {outcome.team}:{pkg['ModelPackageVersion']}")
    return None


def _num(value: Any) -> str:
    return "none" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def gate_line(evaluation: dict[str, Any]) -> str:
    """One line: the gate metric with its interval, the champion's value and the verdict, rounded."""
    gate, champion = evaluation.get("gate", {}), evaluation.get("champion", {})
    metric = gate.get("metric")
    interval = ((evaluation.get("intervals") or {}).get("metrics") or {}).get(metric) or {}
    around = f" (95% {_num(interval['low'])} to {_num(interval['high'])})" if "low" in interval else ""
    value = gate.get("value") if gate.get("defined", True) else None
    champ = champion.get("metric_value")
    versus = "no champion" if champ is None else f"champion {_num(champ)}: {champion.get('verdict', '')}"
    decision = "gate passed" if gate.get("passed", 1) else f"gate FAILED: {gate.get('summary', '')}"
    return f"{metric} = {_num(value)}{around}; {versus}; {decision}"


def _print_gate(evaluation: dict[str, Any]) -> None:
    """The quality gate's decision: challenger, champion, threshold, trivial model, each check in words."""
    gate, champion = evaluation.get("gate", {}), evaluation.get("champion", {})
    metric = gate.get("metric")
    trivial = (evaluation.get("trivial_baseline") or {}).get("metrics", {}).get(metric)
    op = ">=" if gate.get("higher_is_better", True) else "<="
    console.print(
        f"[bold red]Quality gate failed[/] on {metric}: challenger {_num(gate.get('value'))}, "
        f"champion {_num(champion.get('metric_value'))} ({champion.get('verdict', 'none')}), "
        f"threshold {op} {_num(gate.get('threshold'))}, trivial model {_num(trivial)}",
        highlight=False,
    )
    for check in gate.get("checks", []):
        mark = "[green]pass[/]" if check.get("passed") else "[red]FAIL[/]"
        console.print(f"  {mark} {check.get('check')}: {check.get('reason')}", highlight=False)


def _print_rollout_event(kind: str, data: dict[str, Any]) -> None:
    """What a serving endpoint prints as a rollout starts and ends (called from its threads)."""
    from flywheel.demo import rollout_plan

    if kind == "rollout-started":
        rollout = data["rollout"]
        settings = data["settings"].to_dict()
        console.print(rollout_plan(settings, rollout["ModelPackageVersion"], rollout.get("ChampionVersion")))
    elif kind == "replaced":
        console.print(f"Now serving version {data['version']} (updated all at once).")
    else:
        canary, champion = data["figures"]["canary"], data["figures"]["champion"]
        verdict = {"promoted": "[bold green]PROMOTED[/]", "rolled-back": "[bold red]ROLLED BACK[/]"}.get(
            kind, "[bold yellow]CANCELLED[/]"
        )
        console.print(
            f"{verdict} version {data['version']} after {data['elapsed_s']:.1f} s: {data['reason']}; all traffic "
            f"now on version {data['serving_version']} (canary {canary['requests']} requests, "
            f"{canary['errors_5xx']} 5xx; champion {champion['requests']} requests, {champion['errors_5xx']} 5xx)",
            highlight=False,
        )


def _raw_intact(outcome: Any, runtime: Any) -> str:
    detail = outcome.event["detail"]
    bucket, key, etag = detail["bucket"]["name"], detail["object"]["key"], detail["object"]["etag"]
    try:
        head = runtime.aws.client("s3").head_object(Bucket=bucket, Key=key)
    except Exception:
        return f"[red]s3://{bucket}/{key} is missing[/]"
    same = str(head["ETag"]).strip('"') == etag
    return f"s3://{bucket}/{key} ({'unchanged' if same else '[red]changed[/]'}, etag {etag})"


# Commands ---------------------------------------------------------------------------------------------


@app.command("security-report")
def security_report() -> None:
    """Synthesize every environment offline and report stacks, resources, cdk-nag and policy rules."""
    from flywheel.security_report import build_reports, print_reports

    if not print_reports(build_reports(), console):
        raise typer.Exit(1)


@app.command("access-report")
def access_report(
    env: Annotated[str | None, typer.Option(help="One environment (default: every configured one).")] = None,
    markdown: Annotated[
        Path | None, typer.Option(help="Also write the 'who can do what' table (docs/access.md) of --env or dev.")
    ] = None,
) -> None:
    """Who can read, write, decrypt, approve, deploy: every role evaluated from the synthesized templates."""
    from flywheel.access_report import build_reports, print_report, render_markdown

    with _expected_errors():
        config = _load_config()
    try:
        reports = build_reports(env, config)
    except KeyError as exc:
        raise _fail(str(exc.args[0]), 2) from None
    ok = all([print_report(report, console) for report in reports])
    if markdown is not None:
        (chosen,) = [r for r in reports if r.env == (env or "dev")] or reports[:1]
        markdown.write_text(render_markdown(chosen), encoding="utf-8")
        console.print(f"wrote {markdown} (environment {chosen.env})")
    if not ok:
        raise typer.Exit(1)


@app.command()
def cost(
    context: Annotated[
        list[str] | None,
        typer.Option("--context", "-c", help="CDK-style context: env=NAME (one environment; default: all of them)."),
    ] = None,
    env: Annotated[str | None, typer.Option(help="One environment (same as -c env=NAME).")] = None,
    cdk_out: Annotated[
        Path | None,
        typer.Option(help="Read this synthesized cloud assembly (`make synth` → cdk.out) instead of synthesizing."),
    ] = None,
    assume: Annotated[
        list[str] | None,
        typer.Option(help="Change a usage assumption NAME=VALUE (repeatable; listed under the report)."),
    ] = None,
    markdown: Annotated[Path | None, typer.Option(help="Also write the report as Markdown (docs/cost.md).")] = None,
) -> None:
    """Idle monthly cost per team and platform baseline, from the synthesized templates and the dated price table."""
    from flywheel.cost.assembly import AssemblyError, read_assembly, synthesize
    from flywheel.cost.model import Assumptions
    from flywheel.cost.prices import PriceError
    from flywheel.cost.render import print_report, render_markdown
    from flywheel.cost.report import estimate

    for item in context or []:
        key, sep, value = item.partition("=")
        if key != "env" or not sep or not value:
            raise _fail(f"-c {item!r}: only -c env=NAME is understood (e.g. -c env=dev)", 2)
        if env is not None and env != value:
            raise _fail(f"-c env={value} and --env {env} disagree: give one", 2)
        env = value
    overrides = {}
    for item in assume or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise _fail(f"--assume {item!r}: use NAME=VALUE, e.g. --assume minutes_per_step=20", 2)
        overrides[name] = value
    try:
        assumptions = Assumptions().with_overrides(overrides)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    try:
        if cdk_out is not None:
            envs, toolchain = read_assembly(cdk_out)
            if env is not None:
                chosen = [e for e in envs if e.env == env]
                if not chosen:
                    have = ", ".join(e.env for e in envs) or "none"
                    raise _fail(f"{cdk_out} has no environment {env!r} (it has: {have})", 2)
                envs, toolchain = chosen, None
        else:
            with _expected_errors():
                config = _load_config()
            envs, toolchain = synthesize(env, config)
        report = estimate(envs, assume=assumptions, toolchain=toolchain)
    except KeyError as exc:
        raise _fail(str(exc.args[0]), 2) from None
    except (AssemblyError, PriceError) as exc:
        raise _fail(str(exc), 2) from None
    print_report(report, console)
    if markdown is not None:
        markdown.write_text(render_markdown(report), encoding="utf-8")
        console.print(f"wrote {markdown}")


@app.command()
def up(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = a free one).")] = 0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).")
    ] = None,
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """Start the embedded AWS on localhost as a live local SageMaker, provision every team and keep it
    running until Ctrl-C (docs/local-sagemaker.md)."""
    from flywheel.embedded import EmbeddedAws
    from flywheel.live import LiveRouter, LiveSageMaker
    from flywheel.runtime import AWS_SERVER, LocalRuntime
    from flywheel.state import StateStore, pid_alive

    state = StateStore(state_dir)
    with _expected_errors():
        existing = state.server(AWS_SERVER)
        if existing and pid_alive(existing.get("pid")) and existing.get("pid") != os.getpid():
            raise _fail(
                f"an embedded AWS from this state dir already runs at {existing['url']} (pid {existing['pid']}); "
                "stop it with Ctrl-C in its terminal, or use another --state-dir"
            )
        aws = EmbeddedAws.serve(port, wrap=LiveRouter)
        live = None
        try:
            with console.status("Provisioning every team…"):
                runtime = LocalRuntime(aws, state, _load_config())
                resources = runtime.provision()
            live = LiveSageMaker(runtime, on_event=_print_live_event).install(aws.app)
            state.save_server(AWS_SERVER, {"url": aws.endpoint_url, "pid": os.getpid(), "port": aws.port})
            console.print(f"[bold green]Embedded AWS running at {aws.endpoint_url}[/] (state: {state_dir})")
            for name, res in resources.items():
                pipelines = ", ".join(p.pipeline_name for p in res.pipelines.values())
                console.print(
                    f"  team [bold]{name}[/]: pipeline {pipelines}, registry {res.group_name}, "
                    f"batches land in s3://{res.raw_bucket}/{res.incoming_prefix}<batch>/",
                    highlight=False,
                )
            console.print("Try it with the AWS CLI (any credentials work):")
            console.print(
                f"  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local aws --region {aws.region} "
                f"--endpoint-url {aws.endpoint_url} s3 ls",
                markup=False,
                highlight=False,
            )
            console.print("Or point every client (boto3, the SageMaker SDK, the AWS CLI) at it:")
            console.print(
                f"  export AWS_ENDPOINT_URL={aws.endpoint_url} AWS_DEFAULT_REGION={aws.region} "
                "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local",
                markup=False,
                highlight=False,
            )
            console.print(
                "Pipeline executions really run here (StartPipelineExecution, an object under a team's incoming/, "
                "approvals deploy): docs/local-sagemaker.md. Other flywheel commands use this server while it "
                "runs. Press Ctrl-C to stop."
            )
            _wait(duration)
        finally:
            if live is not None:
                live.close()
            state.save_server(AWS_SERVER, None)
            aws.close()
            console.print("Embedded AWS stopped.")


def _print_live_event(delivery: Any) -> None:
    """One line per event the live layer delivered (``flywheel up``)."""
    where = f" → {delivery.execution_arn}" if delivery.execution_arn else ""
    console.print(f"  [dim]{delivery.kind}[/] {delivery.subject}: {delivery.outcome}{where}", highlight=False)


@app.command()
def run(
    team: Annotated[str | None, typer.Option(help="Team whose pipeline runs (config/teams.yaml).")] = None,
    definition: Annotated[
        Path | None,
        typer.Option(help="Run this SageMaker pipeline definition JSON instead of a team's pipeline."),
    ] = None,
    pipeline_name: Annotated[
        str | None, typer.Option(help="Name of the --definition's pipeline (default: from the file name).")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="CSV or parquet file to land as the batch.")] = None,
    rows: Annotated[int | None, typer.Option(help="Generate this many rows of the team's example data.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = 0,
    template: Annotated[
        str | None, typer.Option(help="Which of the team's pipeline templates runs (default: its first).")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Pipeline parameter override NAME=VALUE (repeatable).")
    ] = None,
    keep_job_data: Annotated[bool, typer.Option(help="Keep the jobs' /opt/ml folders for debugging.")] = False,
    state_dir: StateDir = DEFAULT_STATE_DIR,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Run a team's pipeline on a data file or generated rows: land → trigger → execute → register; or any
    pipeline definition JSON with --definition (docs/local-sagemaker.md)."""
    params = _parse_params(param)
    if definition is not None:
        if team is not None or data is not None or rows is not None or template is not None:
            raise _fail("--definition runs the file as it is: drop --team, --data, --rows and --template")
        _run_definition(definition, pipeline_name, params, keep_job_data, state_dir, endpoint_url)
        return
    if team is None:
        raise _fail("give --team TEAM (with --data FILE or --rows N), or --definition pipeline.json")
    if pipeline_name is not None:
        raise _fail("--pipeline-name names a --definition's pipeline; a team's pipeline has its own name")
    if (data is None) == (rows is None):
        raise _fail("give either --data FILE or --rows N")
    progress = _Progress()
    with _expected_errors(), _runtime(state_dir, endpoint_url, on_update=progress, keep_job_data=keep_job_data) as rt:
        rt.team_config(team)
        if rt.aws.mode == "in-process":
            console.print(
                "[dim]No `flywheel up` running: using an in-process embedded AWS for this command "
                "(the registry is kept in the state dir).[/]"
            )
        if rt.is_scoring(team, template):
            if params:
                raise _fail("--param does not apply to a batch-scoring run (its model is the newest Approved one)")
            from flywheel.batch_scoring import describe_outcome

            with _spinner(progress, f"Scoring a {team} batch…"):
                scored = rt.score(team, str(template), data=data, rows=rows, seed=seed)
            lines, problem = describe_outcome(scored)
            for line in lines:
                console.print(line, markup=False, highlight=False)
        else:
            with _spinner(progress, f"Running the {team} pipeline…"):
                outcome = rt.run(team, data=data, rows=rows, seed=seed, parameters=params, template=template)
            problem = _show_outcome(outcome, rt)
            report_path, report_uri = rt.write_report(outcome, serving=None)
            console.print(f"  Report (model card): {report_path.resolve()}", highlight=False)
            if report_uri:
                console.print(f"  Report in S3: {report_uri}", highlight=False)
    if problem:
        raise _fail(problem)


def _run_definition(
    definition: Path,
    pipeline_name: str | None,
    params: dict[str, str],
    keep_job_data: bool,
    state_dir: Path,
    endpoint_url: str | None,
) -> None:
    """``flywheel run --definition``: the definition run on the embedded AWS, with progress and a report."""
    from flywheel.live.definition_run import run_definition, write_report

    progress = _Progress()
    with _expected_errors(), _runtime(state_dir, endpoint_url, keep_job_data=keep_job_data) as rt:
        if rt.aws.mode == "in-process":
            console.print(
                "[dim]No `flywheel up` running: using an in-process embedded AWS for this command; the "
                "definition's S3 inputs must exist in it (start `flywheel up` and upload them there).[/]"
            )
        with _spinner(progress, f"Running {definition}…"):
            record = run_definition(rt, definition, params, pipeline_name=pipeline_name, on_update=progress)
        report = write_report(rt, record)
    if record.succeeded:
        console.print(f"[bold green]Execution {record.execution_id} succeeded.[/]")
    for step in record.steps:
        for name, uri in (step.metadata.get("Outputs") or {}).items():
            console.print(f"  {step.name} output {name}: {uri}", highlight=False)
        registered = step.metadata.get("RegisterModel")
        if registered:
            console.print(f"  Registered {registered.get('Arn')} ({registered.get('ApprovalStatus')})", highlight=False)
    console.print(f"  Report: {report.resolve()}", highlight=False)
    if not record.succeeded:
        failed = record.step(record.failed_step) if record.failed_step else None
        if failed is not None and failed.log_tail:
            console.print(f"[dim]Last lines of {failed.log_path}:[/]")
            console.print(failed.log_tail, markup=False, highlight=False)
        raise _fail(f"execution {record.execution_id} {record.status.lower()}: {record.failure_reason}")


def _package_evaluation(rt: Any, package: dict[str, Any]) -> dict[str, Any] | None:
    """The ``evaluation.json`` registered with a package (its model-quality statistics), or None."""
    from botocore.exceptions import ClientError

    from lambdas import lifecycle

    quality = ((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}
    uri = quality.get("S3Uri")
    if not uri:
        return None
    try:
        return dict(lifecycle.read_s3_json(rt.aws.client("s3"), uri))
    except (ClientError, ValueError, KeyError):  # a missing or unreadable file only skips the comparison
        return None


def worse_than_deployed(rt: Any, ref: str) -> str | None:
    """Why approving ``ref`` would deploy a model worse than the deployed one (on the gate metric), or None."""
    team, package = rt.resolve_package(ref)
    record = rt.state.deployment(team) or {}
    deployed_arn = record.get("ModelPackageArn")
    if not deployed_arn or deployed_arn == package.get("ModelPackageArn"):
        return None
    deployed = rt.aws.client("sagemaker").describe_model_package(ModelPackageName=deployed_arn)
    new, old = _package_evaluation(rt, package), _package_evaluation(rt, deployed)
    if not new or not old:
        return None
    gate, old_gate = new.get("gate", {}), old.get("gate", {})
    metric, value, current = gate.get("metric"), gate.get("value"), old_gate.get("value")
    if metric != old_gate.get("metric") or not isinstance(value, int | float) or not isinstance(current, int | float):
        return None
    higher = bool(gate.get("higher_is_better", True))
    if (value >= current) if higher else (value <= current):
        return None
    interval = ((new.get("intervals") or {}).get("metrics") or {}).get(metric) or {}
    noise = (
        " (within this model's 95% interval: possibly noise)"
        if interval and interval.get("low", 1) <= current <= interval.get("high", -1)
        else ""
    )
    return (
        f"version {package.get('ModelPackageVersion')} is worse than the deployed version "
        f"{deployed.get('ModelPackageVersion')} on {metric}: {value:.4g} vs {current:.4g}, "
        f"worse by {abs(value - current):.4g}{noise}"
    )


def _approval(
    ref: str, status: str, note: str, state_dir: Path, endpoint_url: str | None, *, confirm: bool = False
) -> None:
    with _expected_errors(), _runtime(state_dir, endpoint_url) as rt:
        if confirm:
            worse = worse_than_deployed(rt, ref)
            if worse:
                console.print(f"[bold yellow]Warning:[/] {worse}.", highlight=False)
                if not typer.confirm("Approve and deploy it anyway?", default=False):
                    raise _fail("not approved (use --yes to approve a worse model without asking)")
        result = rt.set_approval(ref, status, note)
        console.print(f"Model package {result.package_arn} is now [bold]{status}[/].")
        actions = {
            "deployed": f"deployed to the {result.team} endpoint (serve it with `flywheel serve --team {result.team}`)",
            "already-deployed": "already deployed",
            "rolled-back": f"it was deployed: rolled back to {result.deployed_arn}",
            "undeployed": "it was deployed and no other approved package exists: the endpoint has no model now",
            "ignored": "nothing to deploy",
        }
        console.print(f"Lifecycle: {actions.get(result.action, result.action)}.")
        _say_deploy_action(rt.actions.last_action, result.team)


def _say_deploy_action(action: dict[str, Any], team: str) -> None:
    """What the local deploy path did beyond the lifecycle's verdict (a canary rollout, its cancellation)."""
    from flywheel.demo import rollout_plan

    if action.get("action") == "rollout-started":
        console.print(rollout_plan(action["settings"], action["version"], action["champion_version"]))
        console.print(
            f"The {team} endpoint bakes it while it serves (`flywheel serve --team {team}`, or the running one) "
            "and then promotes it or rolls it back; the outcome is recorded (`flywheel status`)."
        )
    elif action.get("action") == "rollout-cancelled":
        console.print(f"Rollout cancelled: {action['reason']}; the champion keeps all traffic.")


@app.command()
def approve(
    package: Annotated[str, typer.Argument(help="Model package ARN or <team>:<version> (e.g. churn:1).")],
    note: Annotated[str, typer.Option(help="Approval description.")] = "approved with flywheel approve",
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Approve without asking, even a model worse than the deployed one.")
    ] = False,
    state_dir: StateDir = DEFAULT_STATE_DIR,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Approve a model package; the lifecycle deploys it as the team's endpoint model.

    A package worse than the deployed one on the gate metric is approved only after a confirmation.
    """
    _approval(package, "Approved", note, state_dir, endpoint_url, confirm=not yes)


@app.command()
def reject(
    package: Annotated[str, typer.Argument(help="Model package ARN or <team>:<version> (e.g. churn:2).")],
    note: Annotated[str, typer.Option(help="Rejection reason.")] = "rejected with flywheel reject",
    state_dir: StateDir = DEFAULT_STATE_DIR,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Reject a model package; if it was deployed, the lifecycle rolls back to the previous approved one."""
    _approval(package, "Rejected", note, state_dir, endpoint_url)


@app.command()
def serve(
    team: Annotated[str, typer.Option(help="Team whose approved (deployed) package is served.")],
    host: Annotated[str, typer.Option(help="Address to bind (keep 127.0.0.1: there is no authentication).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port (0 = a free one).")] = 8080,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).")
    ] = None,
    allow_remote: Annotated[
        bool,
        typer.Option(help="Allow a --host other machines can reach (the endpoint has no authentication)."),
    ] = False,
    state_dir: StateDir = DEFAULT_STATE_DIR,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Serve the team's deployed model (GET /ping, POST /invocations) with data capture."""
    from flywheel.embedded import is_loopback_host

    if not is_loopback_host(host) and not allow_remote:
        raise _fail(
            f"refusing to serve on {host}: other machines could reach it and the endpoint has no authentication; "
            "keep --host 127.0.0.1, or pass --allow-remote if you mean it"
        )
    with _expected_errors(), _runtime(state_dir, endpoint_url) as rt:
        server, record, capture = rt.start_endpoint(
            team,
            host,
            port,
            capture_to_s3=rt.aws.mode != "in-process",
            allow_remote=allow_remote,
            on_rollout=_print_rollout_event,
        )
        try:
            console.print(
                f"[bold green]Serving {team} version {record['ModelPackageVersion']}[/] at {server.url} "
                f"(capture: {capture})"
            )
            console.print(f"  flywheel invoke --team {team} --sample 5", markup=False)
            console.print(
                f"  curl -s -H 'Content-Type: text/csv' --data-binary @rows.csv {server.url}/invocations",
                markup=False,
                highlight=False,
            )
            console.print("Press Ctrl-C to stop.")
            _wait(duration)
        finally:
            server.stop()
            rt.state.save_server(f"endpoint-{team}", None)
            console.print("Endpoint stopped.")


@app.command()
def invoke(
    team: Annotated[str | None, typer.Option(help="Team whose running endpoint is called.")] = None,
    url: Annotated[str | None, typer.Option(help="Endpoint base URL (default: the team's running endpoint).")] = None,
    data: Annotated[Path | None, typer.Option(help="Request body file: CSV rows (no header) or JSON.")] = None,
    sample: Annotated[int | None, typer.Option(help="Send this many sample rows of the deployed model.")] = None,
    content_type: Annotated[str | None, typer.Option(help="text/csv or application/json (default: by file).")] = None,
    accept: Annotated[str, typer.Option(help="Response type.")] = "application/json",
    allow_remote: Annotated[
        bool, typer.Option(help="Allow a --url on another machine (default: only this machine's endpoints).")
    ] = False,
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """Send rows to a running endpoint and print the predictions."""
    from urllib.parse import urlsplit

    from flywheel import serving
    from flywheel.embedded import is_loopback_host
    from flywheel.state import StateStore, pid_alive

    state = StateStore(state_dir)
    if team is not None:
        with _expected_errors():
            from flywheel.errors import UnknownTeamError

            known = [t.name for t in _load_config().teams]
            if team not in known:
                raise UnknownTeamError(f"unknown team {team!r}: known teams are {', '.join(known)}")
    if url is None:
        if team is None:
            raise _fail("give --team (its running endpoint) or --url")
        with _expected_errors():
            record = state.server(f"endpoint-{team}")
        if not record or not pid_alive(record.get("pid")):
            raise _fail(f"no endpoint of team {team} is running: start one with `flywheel serve --team {team}`")
        url = str(record["url"])
    if not is_loopback_host(urlsplit(url).hostname) and not allow_remote:
        raise _fail(f"{url} is not on this machine: pass --allow-remote to send rows to another host")
    if (data is None) == (sample is None):
        raise _fail("give either --data FILE or --sample N")
    if data is not None:
        if not data.is_file():
            raise _fail(f"{data} does not exist")
        body = data.read_bytes()
        content_type = content_type or ("application/json" if data.suffix.lower() == ".json" else "text/csv")
    else:
        if team is None:
            raise _fail("--sample sends the deployed model's sample rows: give --team too")
        with _expected_errors():
            deployment = state.deployment(team)
        samples = Path(str((deployment or {}).get("Samples") or ""))
        if not deployment or not samples.is_file():
            raise _fail(f"team {team} has no deployed model with sample rows: pass --data FILE")
        lines = [line for line in samples.read_text(encoding="utf-8").splitlines() if line][: max(1, sample or 1)]
        body = ("\n".join(lines) + "\n").encode()
        content_type = content_type or "text/csv"
    started = time.perf_counter()
    try:
        response = serving.invoke(url, body, content_type, accept)
    except OSError as exc:
        raise _fail(f"cannot reach {url}: {exc}; is the endpoint running (`flywheel serve`)?") from None
    elapsed = (time.perf_counter() - started) * 1000
    if not response.ok:
        raise _fail(f"the endpoint answered {response.status}: {response.body.decode(errors='replace')}")
    text = response.body.decode(errors="replace")
    if "json" in response.content_type:
        console.print_json(text)
    else:
        console.print(text, markup=False, highlight=False)
    console.print(f"[dim]{response.status} in {elapsed:.1f} ms from {url}[/]")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw status as JSON.")] = False,
    limit: Annotated[int, typer.Option(help="Show the last N executions.")] = 10,
    state_dir: StateDir = DEFAULT_STATE_DIR,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Teams, pipeline executions and their steps, registry contents, deployments and endpoints."""
    with _expected_errors(), _runtime(state_dir, endpoint_url) as rt:
        data = rt.status()
    if as_json:
        console.print_json(json.dumps(data, default=str))
        return
    aws = data["embedded_aws"]
    console.print(f"Embedded AWS: {aws['endpoint_url'] or 'in-process (no `flywheel up` running)'}")
    teams = _table("team", "objective", "gate", "pipeline", "registry group", title="Teams")
    for t in data["teams"]:
        teams.add_row(t["team"], t["objective"], t["gate"], t["pipeline"], t["group"])
    console.print(teams)
    executions = _table("execution", "pipeline", "status", "started", "gate", "steps", title="Executions")
    for record in data["executions"][-limit:]:
        steps = " ".join(f"{_MARKS.get(s['StepStatus'], '…')}{s['StepName']}" for s in record.get("Steps", []))
        if record.get("FailureReason"):
            steps += f"\n[red]{record['FailureReason'][:200]}[/]"
        executions.add_row(
            record["PipelineExecutionId"],
            record.get("PipelineName", ""),
            record.get("PipelineExecutionStatus", ""),
            str(record.get("StartTime", ""))[:19],
            f"{gate['metric']} {gate['operator']} {gate['threshold']}" if (gate := record.get("Gate")) else "",
            steps,
        )
    console.print(executions if data["executions"] else "No executions yet: try `flywheel demo`.")
    registry = _table("team", "version", "approval", "model package", title="Model registry")
    for team, packages in data["registry"].items():
        for p in packages:
            registry.add_row(team, str(p["ModelPackageVersion"]), p["ModelApprovalStatus"], p["ModelPackageArn"])
    console.print(registry if registry.row_count else "The model registry is empty.")
    deployments = _table("team", "deployed version", "gate value", "endpoint", title="Deployments and endpoints")
    for team, record in data["deployments"].items():
        server = data["servers"].get(f"endpoint-{team}")
        endpoint = f"{server['url']} ({'running' if server['alive'] else 'stale'})" if server else "not serving"
        deployments.add_row(team, str(record["ModelPackageVersion"]), str(record.get("GateMetricValue")), endpoint)
    console.print(deployments if deployments.row_count else "No approved model is deployed.")
    for team, record in data["deployments"].items():
        if record.get("Rollout"):
            rollout = record["Rollout"]
            console.print(
                f"{team}: canary rollout of version {rollout.get('ModelPackageVersion')} in progress since "
                f"{str(rollout.get('StartedAt', ''))[:19]} (baked while the endpoint serves)",
                highlight=False,
            )
        if record.get("Rollouts"):
            last = record["Rollouts"][-1]
            console.print(
                f"{team}: last rollout: version {last.get('version')} {last.get('outcome')} at "
                f"{str(last.get('EndedAt', ''))[:19]}: {last.get('reason')}",
                highlight=False,
            )
    for problem in data.get("problems", []):
        console.print(f"[bold yellow]Warning:[/] skipped {problem}", highlight=False)


@app.command()
def demo(
    rows: Annotated[int, typer.Option(help="Rows of generated data (teams with an example generator).")] = 100_000,
    data: Annotated[
        Path | None, typer.Option(help="CSV or parquet file to land instead of generated rows (any team).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = 0,
    team: Annotated[str, typer.Option(help="Team to run the loop for.")] = "churn",
    port: Annotated[int, typer.Option(help="Port of the embedded AWS on 127.0.0.1 (0 = a free one).")] = 0,
    serve_port: Annotated[int, typer.Option(help="Port of the local endpoint (0 = a free one).")] = 0,
    requests: Annotated[
        int, typer.Option(help="Single-row requests (latency), then as many batch requests (throughput).")
    ] = 50,
    batch_rows: Annotated[int, typer.Option(help="Rows per batch request.")] = 100,
    break_challenger: Annotated[
        bool,
        typer.Option(
            "--break-challenger",
            help="Register a challenger whose inference code fails at serving time, approve it and show the "
            "automatic rollback (trains and approves a champion first if none is deployed).",
        ),
    ] = False,
    drift: Annotated[
        bool,
        typer.Option(
            "--drift",
            help="Shift one feature of the demo traffic: the report's drift section then flags it and the "
            "local drift alarm fires.",
        ),
    ] = False,
    state_dir: StateDir = DEFAULT_STATE_DIR,
    endpoint_url: EndpointUrl = None,
) -> None:
    """The whole loop offline: data → raw zone → pipeline → registry → approval → endpoint → report.

    Run it twice: the second run registers version 2, compares it with the approved champion and, once
    approved, rolls it out with a canary (promoted after the bake, or rolled back on an alarm).
    """
    started = time.perf_counter()
    progress = _Progress()
    from flywheel.demo import run_demo

    with _expected_errors(), _runtime(state_dir, endpoint_url, serve_port=port, on_update=progress) as rt:
        console.print(f"[bold]Flywheel demo[/]: embedded AWS at {rt.aws.endpoint_url or 'in-process'}")
        with _spinner(progress, "Working…"):
            result = run_demo(
                rt,
                team=team,
                rows=rows,
                seed=seed,
                requests=requests,
                batch_rows=batch_rows,
                serve_port=serve_port,
                say=lambda message: console.print(f"• {message}", highlight=False),
                break_challenger=break_challenger,
                data=data,
                drift=drift,
            )
        outcome = result.outcome
        problem = _show_outcome(outcome, rt) if outcome is not None and not outcome.execution.succeeded else None
    elapsed = time.perf_counter() - started
    summary = Table(show_header=False, title="Demo summary")
    summary.add_column("what", no_wrap=True)
    summary.add_column("value", overflow="fold")
    record = outcome.execution if outcome is not None else None
    if outcome is not None and record is not None:
        summary.add_row("execution", f"{record.execution_id} ({record.status})")
        if outcome.evaluation:
            summary.add_row("quality gate", gate_line(outcome.evaluation))
        if outcome.package and not break_challenger:
            pkg = outcome.package
            summary.add_row("model package", f"version {pkg['ModelPackageVersion']}: {pkg['ModelPackageArn']}")
    if break_challenger and result.package_version is not None:
        summary.add_row("model package", f"version {result.package_version} (broken on purpose)")
    if result.approval:
        summary.add_row("approval", f"Approved by the demo; deployment {result.approval.action}")
    if result.rollout:
        r = result.rollout
        during = r["traffic"]["during"]
        summary.add_row(
            "rollout",
            f"version {r['version']} {r['outcome']} ({r['reason']}); {during['failed']} of {during['requests']} "
            f"requests failed during the bake (canary share {r['canary_percent']:g} %); serving version "
            f"{r['serving_version']}",
        )
    if result.serving:
        s = result.serving
        summary.add_row(
            "serving",
            f"single row p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms ({s['requests']} requests); "
            f"{s['rows_per_s']:,.0f} rows/s in batches of {s['batch_rows']}; {s['errors']} errors",
        )
    if result.capture_uri:
        summary.add_row("data capture", result.capture_uri)
    if result.report_path:
        summary.add_row("report", str(result.report_path.resolve()))
    if result.report_uri:
        summary.add_row("report (S3)", result.report_uri)
    if record is not None:
        summary.add_row("job logs", record.work_dir)
    summary.add_row("state", str(Path(state_dir).resolve()))
    summary.add_row("wall time", f"{elapsed:.1f} s")
    console.print(summary)
    if problem:
        raise _fail(problem)
    if break_challenger:
        console.print("The champion kept answering; `flywheel status` shows the recorded rollback.")
    else:
        console.print(
            "Run `flywheel demo` again to train a challenger against this champion, or "
            "`flywheel demo --break-challenger` to watch a failing one roll back."
        )


def _warn_in_process(rt: Any) -> None:
    """The lake's data lives in the embedded AWS: an in-process one is empty (only the registry persists)."""
    if rt.aws.mode == "in-process":
        console.print(
            "[yellow]No `flywheel up` running: this command's in-process embedded AWS holds no landed data "
            "(only the registry and PII keys persist in the state dir). Start `flywheel up`, then land data "
            "(`flywheel run` / `flywheel demo`) to erase or trace it.[/]"
        )


@app.command()
def erase(
    team: Annotated[str, typer.Option(help="Team whose data holds the subject (config/teams.yaml).")],
    subject: Annotated[str, typer.Option(help="The data subject's id (the value of the contract's `id` column).")],
    request_id: Annotated[
        str | None, typer.Option(help="Name of the erasure receipt (default: erase-<time>-<random>).")
    ] = None,
    retrain: Annotated[
        bool, typer.Option(help="Then retrain on the erased batches (one new batch) and register a new version.")
    ] = False,
    state_dir: StateDir = DEFAULT_STATE_DIR,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Erase a data subject: rewrite every raw, curated and feature object holding it, delete every old
    version, write a receipt (no PII), list the model packages trained on it (docs/privacy.md)."""
    from flywheel.erasure import erase_subject
    from flywheel.erasure import retrain as retrain_on

    with _expected_errors(), _runtime(state_dir, endpoint_url) as rt:
        rt.team_config(team)
        _warn_in_process(rt)
        receipt = erase_subject(rt, team, subject, request_id=request_id)
        console.print(receipt.message())
        if receipt.status == "nothing-found":
            return
        table = _table("zone", "object", "rows removed", "versions deleted", title="Rewritten objects")
        for obj in receipt.objects:
            table.add_row(
                obj.zone, f"s3://{obj.bucket}/{obj.key}", str(obj.rows_removed), str(len(obj.removed_version_ids))
            )
        console.print(table)
        if receipt.packages:
            packages = _table(
                "package", "status", "why", "recommended action", title="Model packages trained on the subject"
            )
            for package in receipt.packages:
                packages.add_row(f"{team}:{package.version}", package.status, package.reason, package.action)
            console.print(packages)
        console.print(f"Receipt: {receipt.receipt_uri}")
        if retrain:
            folder = Path(state_dir) / "data" / f"retrain-{receipt.request_id}"
            with _spinner(_Progress(), f"Retraining {team} on the erased batches…"):
                outcome = retrain_on(rt, team, receipt.batches, folder)
            problem = _show_outcome(outcome, rt)
            if problem:
                raise _fail(problem)


@app.command()
def lineage(
    team: Annotated[str, typer.Option(help="Team (config/teams.yaml).")],
    subject: Annotated[str | None, typer.Option(help="Where are this data subject's rows (id column value)?")] = None,
    package: Annotated[
        str | None, typer.Option(help="Which raw objects trained this package (<team>:<version>)?")
    ] = None,
    state_dir: StateDir = DEFAULT_STATE_DIR,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Lineage: the raw objects (bucket, key, version id) a package was trained on, or a subject's rows."""
    from flywheel import lineage as lin

    if (subject is None) == (package is None):
        raise _fail("give either --subject ID or --package <team>:<version>")
    with _expected_errors(), _runtime(state_dir, endpoint_url) as rt:
        rt.team_config(team)
        _warn_in_process(rt)
        if package is not None:
            _, described = rt.resolve_package(package)
            record = lin.package_lineage(rt.aws.client("s3"), described)
            console.print(
                f"{package} was trained on batch {record['input_data_uri']} (execution {record['execution_id']})"
            )
            table = _table("bucket", "key", "version id", title="Raw objects")
            for obj in record["raw_objects"]:
                table.add_row(obj["bucket"], obj["key"], obj["version_id"])
            console.print(table)
            return
        try:
            found = lin.find_subject(rt, team, str(subject))
        except ValueError as exc:
            raise _fail(str(exc)) from None
        if not found:
            console.print(f"No current object of team {team} holds this subject.")
            return
        table = _table("zone", "object", "rows", title="Objects holding the subject (raw: its id; else its token)")
        for item in found:
            table.add_row(item["zone"], f"s3://{item['bucket']}/{item['key']}", str(item["rows"]))
        console.print(table)


@app.command()
def monitor(
    team: Annotated[str, typer.Option(help="Team whose endpoint's captured traffic to check.")],
    since_hours: Annotated[
        float | None, typer.Option(help="Only traffic captured in the last N hours (default: all of it).")
    ] = None,
    min_rows: Annotated[
        int | None, typer.Option(help="Fewest rows for a verdict (default: the team's drift.min_rows).")
    ] = None,
    psi: Annotated[bool | None, typer.Option("--psi/--no-psi", help="PSI instead of the default tests.")] = None,
    state_dir: StateDir = DEFAULT_STATE_DIR,
    endpoint_url: EndpointUrl = None,
) -> None:
    """The drift monitor (the scheduled job's code) on the team's locally captured traffic.

    Compares the capture with the baseline registered with the deployed model; exit code 0 when nothing
    drifted, 3 on drift (the alarm message is printed), 4 when the window has too few rows for a verdict.
    """
    from datetime import UTC, datetime, timedelta

    from flywheel.monitor import report_lines, run_monitor

    if since_hours is not None and since_hours <= 0:
        raise _fail("--since-hours must be positive")
    if min_rows is not None and min_rows < 1:
        raise _fail("--min-rows must be at least 1")
    since = datetime.now(UTC) - timedelta(hours=since_hours) if since_hours is not None else None
    with _expected_errors(), _runtime(state_dir, endpoint_url) as rt:
        rt.team_config(team)
        result = run_monitor(rt, team, since=since, min_rows=min_rows, psi=psi)
    for line in report_lines(result):
        style = "bold red" if line.startswith("ALARM") else None
        console.print(line, style=style, highlight=False)
    console.print(f"report: {result.report_path}" + (f" ({result.report_uri})" if result.report_uri else ""))
    status = result.report["status"]
    if status != "no_drift":
        raise typer.Exit(3 if status == "drift" else 4)


if __name__ == "__main__":
    app()
