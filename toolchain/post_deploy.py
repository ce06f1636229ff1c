"""Post-deploy steps of the toolchain: the staging smoke test and retrain-on-code-change (docs/toolchain.md).

Runs in a CodeBuild step of the toolchain pipeline, after a stage deployed, with the standard library and
boto3 only (``toolchain/requirements.txt``). Its input is the *plan* the toolchain stack writes at synth
(``stacks/components/post_deploy.py``: role to assume, teams, pipeline/registry/endpoint names, a sample
request built from each team's data contract): ``--plan FILE`` (the pipeline passes the file the synth wrote
into the cloud assembly, and its digest in ``FLYWHEEL_PLAN_SHA256``) or the ``FLYWHEEL_PLAN`` variable.

``smoke``   for every team: each pipeline exists, is Active and has steps; the model registry exists; for
            an endpoint team with an approved model: the endpoint is InService, runs the endpoint config of
            the registry's newest approved package (``flywheel:model-package-arn`` tag), and answers the
            contract's sample with the shape of the team's objective. No approved model yet is reported
            (an error with ``require_endpoint``).
``retrain`` for every team that did not opt out: when a pipeline's deployed definition differs from the
            one its latest execution ran (step code under ``pipelines/``, its definition or its settings
            changed), start it again with that execution's parameters — once (the client token is derived
            from the new definition). A pipeline that never ran waits for data arrival.

Exit status: 0 when every check passed, 1 when one failed (each problem printed on its own line), 2 for
a bad plan or arguments. No stack trace and no credentials are printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PLAN_VARIABLE = "FLYWHEEL_PLAN"
#: The sha256 (hex) the plan must have (the toolchain sets it on the CodeBuild project next to the plan file).
DIGEST_VARIABLE = "FLYWHEEL_PLAN_SHA256"
PACKAGE_TAG = "flywheel:model-package-arn"
OBJECTIVES = ("binary", "multiclass", "regression")
#: A client factory: ``(service name) -> boto3 client`` (the seam tests replace with moto or stubs).
Clients = Callable[[str], Any]


class PlanError(ValueError):
    """The plan is not what the toolchain stack writes (a bug or a hand-edited variable)."""


@dataclass(frozen=True)
class TeamPlan:
    """What the post-deploy steps know about one team of the deployed stage."""

    team: str
    pipelines: tuple[str, ...]
    model_package_group: str
    endpoint: str | None
    objective: str | None
    sample: Mapping[str, Any] | None
    retrain: bool


@dataclass(frozen=True)
class Plan:
    """The stage the steps run against and its teams."""

    environment: str
    region: str
    role_arn: str
    require_endpoint: bool
    teams: tuple[TeamPlan, ...]


def parse_plan(raw: str) -> Plan:
    """The plan from its JSON text; PlanError naming the missing or wrong field."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PlanError(f"the plan is not JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(data, dict):
        raise PlanError("the plan must be a JSON object")

    def need(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
        if key not in obj:
            raise PlanError(f"{where}{key}: missing")
        if not isinstance(obj[key], kind):
            raise PlanError(f"{where}{key}: expected {getattr(kind, '__name__', kind)}")
        return obj[key]

    environment, region = need(data, "environment", str, ""), need(data, "region", str, "")
    role_arn = need(data, "role_arn", str, "")
    teams = []
    for i, entry in enumerate(need(data, "teams", list, "")):
        where = f"teams[{i}]."
        if not isinstance(entry, dict):
            raise PlanError(f"teams[{i}]: expected an object")
        objective = entry.get("objective")
        if objective is not None and objective not in OBJECTIVES:
            raise PlanError(f"{where}objective: {objective!r} is not one of {', '.join(OBJECTIVES)}")
        sample = entry.get("sample")
        if sample is not None and not (isinstance(sample, dict) and isinstance(sample.get("instances"), list)):
            raise PlanError(f"{where}sample: expected {{'instances': [...]}}")
        teams.append(
            TeamPlan(
                team=need(entry, "team", str, where),
                pipelines=tuple(need(entry, "pipelines", list, where)),
                model_package_group=need(entry, "model_package_group", str, where),
                endpoint=entry.get("endpoint"),
                objective=objective,
                sample=sample,
                retrain=bool(entry.get("retrain", True)),
            )
        )
    return Plan(
        environment=environment,
        region=region,
        role_arn=role_arn,
        require_endpoint=bool(data.get("require_endpoint", False)),
        teams=tuple(teams),
    )


@dataclass
class Report:
    """What a step found: passed checks, notes (nothing to do) and problems (the step fails)."""

    passed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        return (
            [f"ok    {m}" for m in self.passed]
            + [f"note  {m}" for m in self.notes]
            + [f"FAIL  {m}" for m in self.problems]
        )


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(exc).__name__))


def _is_missing(exc: Exception) -> bool:
    code = _error_code(exc)
    message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", "")).lower()
    return code in ("ResourceNotFound", "ResourceNotFoundException") or (
        code == "ValidationException" and ("does not exist" in message or "could not find" in message)
    )


# -- the answer's shape ------------------------------------------------------------------------------------


def _probability(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= float(value) <= 1.0


def shape_problems(answer: Any, objective: str, rows: int) -> list[str]:
    """Why ``answer`` (the endpoint's parsed JSON) is not the inference contract's answer for ``objective``."""
    if not isinstance(answer, dict) or not isinstance(answer.get("predictions"), list):
        return ["the answer has no 'predictions' list"]
    predictions = answer["predictions"]
    if len(predictions) != rows:
        return [f"{len(predictions)} predictions for {rows} rows"]
    problems: list[str] = []
    labels = answer.get("class_labels")
    if objective == "multiclass" and (not isinstance(labels, list) or len(labels) < 2):
        return ["a multiclass answer needs 'class_labels' (two or more)"]
    for i, p in enumerate(predictions):
        if not isinstance(p, dict):
            problems.append(f"prediction {i} is not an object")
        elif objective == "binary" and (not _probability(p.get("probability")) or "label" not in p):
            problems.append(f"prediction {i}: a binary prediction needs 'probability' in [0, 1] and 'label'")
        elif objective == "multiclass":
            probs = p.get("probabilities")
            if (
                not isinstance(probs, list)
                or len(probs) != len(labels)  # type: ignore[arg-type]
                or not all(_probability(x) for x in probs)
                or abs(sum(probs) - 1.0) > 1e-3
            ):
                problems.append(f"prediction {i}: 'probabilities' must be one per class label, summing to 1")
            elif p.get("label") not in labels:  # type: ignore[operator]
                problems.append(f"prediction {i}: label {p.get('label')!r} is not one of the class labels")
        elif objective == "regression":
            value = p.get("value")
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                problems.append(f"prediction {i}: a regression prediction needs a finite 'value'")
    return problems


# -- smoke ---------------------------------------------------------------------------------------------------


def _newest_approved(sagemaker: Any, group: str) -> str | None:
    found = sagemaker.list_model_packages(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    ).get("ModelPackageSummaryList", [])
    return str(found[0]["ModelPackageArn"]) if found else None


def _smoke_pipeline(sagemaker: Any, name: str, report: Report) -> None:
    try:
        pipeline = sagemaker.describe_pipeline(PipelineName=name)
    except Exception as exc:  # reported, not raised: every check runs
        report.problems.append(f"pipeline {name}: {'not found' if _is_missing(exc) else _error_code(exc)}")
        return
    try:
        steps = json.loads(pipeline.get("PipelineDefinition") or "{}").get("Steps") or []
    except json.JSONDecodeError:
        steps = []
    if pipeline.get("PipelineStatus") != "Active":
        report.problems.append(f"pipeline {name}: status {pipeline.get('PipelineStatus')}, not Active")
    elif not steps:
        report.problems.append(f"pipeline {name}: the deployed definition has no steps")
    else:
        report.passed.append(f"pipeline {name}: Active, {len(steps)} top-level steps")


def _smoke_endpoint(clients: Clients, team: TeamPlan, require: bool, report: Report) -> None:
    sagemaker = clients("sagemaker")
    endpoint = team.endpoint
    assert endpoint is not None
    approved = _newest_approved(sagemaker, team.model_package_group)
    if approved is None:
        message = f"endpoint {endpoint}: no approved model in {team.model_package_group} yet"
        (report.problems if require else report.notes).append(
            message + (" (require_endpoint is on)" if require else ": endpoint checks skipped")
        )
        return
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
    except Exception as exc:
        report.problems.append(
            f"endpoint {endpoint}: {'not found' if _is_missing(exc) else _error_code(exc)} "
            f"although {approved.rsplit('/', 2)[-2:]} is approved"
        )
        return
    if described.get("EndpointStatus") != "InService":
        report.problems.append(f"endpoint {endpoint}: status {described.get('EndpointStatus')}, not InService")
        return
    config_name = described["EndpointConfigName"]
    config_arn = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)["EndpointConfigArn"]
    tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=config_arn).get("Tags", [])}
    running = tags.get(PACKAGE_TAG)
    if running != approved:
        report.problems.append(
            f"endpoint {endpoint}: runs config {config_name} of package {running or '(untagged)'}, but the "
            f"registry's newest approved package is {approved} (a rollback, or a rollout not finished?)"
        )
        return
    report.passed.append(f"endpoint {endpoint}: InService on {config_name} (the newest approved package)")
    if team.sample is None or team.objective is None:
        report.notes.append(f"endpoint {endpoint}: no sample for this template; invocation skipped")
        return
    body = json.dumps(team.sample)
    try:
        response = clients("sagemaker-runtime").invoke_endpoint(
            EndpointName=endpoint, ContentType="application/json", Accept="application/json", Body=body
        )
        raw = response["Body"].read()
        answer = json.loads(raw)
    except json.JSONDecodeError:
        report.problems.append(f"endpoint {endpoint}: the answer is not JSON")
        return
    except Exception as exc:
        report.problems.append(f"endpoint {endpoint}: invocation failed ({_error_code(exc)})")
        return
    problems = shape_problems(answer, team.objective, len(team.sample["instances"]))
    if problems:
        report.problems.extend(f"endpoint {endpoint}: {p}" for p in problems)
    else:
        report.passed.append(f"endpoint {endpoint}: answered the contract sample as a {team.objective} model")


def smoke(plan: Plan, clients: Clients) -> Report:
    """The staging smoke test (see the module docstring)."""
    report = Report()
    sagemaker = clients("sagemaker")
    for team in plan.teams:
        for name in team.pipelines:
            _smoke_pipeline(sagemaker, name, report)
        try:
            sagemaker.describe_model_package_group(ModelPackageGroupName=team.model_package_group)
            report.passed.append(f"registry {team.model_package_group}: exists")
        except Exception as exc:
            report.problems.append(
                f"registry {team.model_package_group}: {'not found' if _is_missing(exc) else _error_code(exc)}"
            )
            continue
        if team.endpoint is None:
            report.notes.append(f"team {team.team}: batch target, no endpoint to invoke")
            continue
        _smoke_endpoint(clients, team, plan.require_endpoint, report)
    return report


# -- retrain ---------------------------------------------------------------------------------------------------


def _canonical(definition: str) -> str:
    try:
        return json.dumps(json.loads(definition), sort_keys=True, separators=(",", ":"))
    except json.JSONDecodeError:
        return definition


def client_token(pipeline: str, definition: str) -> str:
    """A ``ClientRequestToken`` (32-128 characters) unique to (pipeline, definition): a re-run step or a
    retried build starts the changed pipeline once."""
    return hashlib.sha256(f"{pipeline}\n{_canonical(definition)}".encode()).hexdigest()


def _parameters(sagemaker: Any, execution_arn: str) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    kwargs: dict[str, Any] = {"PipelineExecutionArn": execution_arn}
    while True:
        page = sagemaker.list_pipeline_parameters_for_execution(**kwargs)
        out.extend({"Name": p["Name"], "Value": p["Value"]} for p in page.get("PipelineParameters", []))
        if not page.get("NextToken"):
            return out
        kwargs["NextToken"] = page["NextToken"]


def _retrain_pipeline(sagemaker: Any, name: str, environment: str, report: Report) -> None:
    try:
        current = sagemaker.describe_pipeline(PipelineName=name)["PipelineDefinition"]
    except Exception as exc:
        report.problems.append(f"pipeline {name}: {'not found' if _is_missing(exc) else _error_code(exc)}")
        return
    executions = sagemaker.list_pipeline_executions(
        PipelineName=name, SortBy="CreationTime", SortOrder="Descending", MaxResults=10
    ).get("PipelineExecutionSummaries", [])
    if not executions:
        report.notes.append(f"pipeline {name}: never ran; it trains when data arrives")
        return
    # The newest of the newest-first page, by its own start time (not trusting the order alone).
    latest = max(executions, key=lambda e: e.get("StartTime") or 0)
    arn = latest["PipelineExecutionArn"]
    ran = sagemaker.describe_pipeline_definition_for_execution(PipelineExecutionArn=arn)["PipelineDefinition"]
    if _canonical(ran) == _canonical(current):
        report.notes.append(f"pipeline {name}: definition unchanged since its latest execution")
        return
    parameters = _parameters(sagemaker, arn)
    started = sagemaker.start_pipeline_execution(
        PipelineName=name,
        PipelineParameters=parameters,
        PipelineExecutionDescription=f"retrain: the {environment} deploy changed the definition",
        PipelineExecutionDisplayName="retrain-on-code-change",
        ClientRequestToken=client_token(name, current),
    )
    report.passed.append(
        f"pipeline {name}: definition changed since execution {arn.rsplit('/', 1)[-1]}; started "
        f"{started['PipelineExecutionArn'].rsplit('/', 1)[-1]} with its {len(parameters)} parameters"
    )


def retrain(plan: Plan, clients: Clients) -> Report:
    """Retrain on code change (see the module docstring)."""
    report = Report()
    sagemaker = clients("sagemaker")
    for team in plan.teams:
        if not team.retrain:
            report.notes.append(f"team {team.team}: opted out of retrain on code change")
            continue
        for name in team.pipelines:
            try:
                _retrain_pipeline(sagemaker, name, plan.environment, report)
            except Exception as exc:  # one pipeline's failure does not hide the others
                report.problems.append(f"pipeline {name}: {_error_code(exc)}")
    return report


# -- entry -----------------------------------------------------------------------------------------------------


def assumed_clients(plan: Plan, session_name: str) -> Clients:
    """Clients in the stage's account: assume the stage's toolchain role (its trust names this step's role)."""
    import boto3

    credentials = boto3.client("sts", region_name=plan.region).assume_role(
        RoleArn=plan.role_arn, RoleSessionName=session_name, DurationSeconds=900
    )["Credentials"]
    session = boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=plan.region,
    )
    cache: dict[str, Any] = {}

    def clients(service: str) -> Any:
        if service not in cache:
            cache[service] = session.client(service)  # type: ignore[call-overload]
        return cache[service]

    return clients


STEPS: dict[str, Callable[[Plan, Clients], Report]] = {"smoke": smoke, "retrain": retrain}


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    clients: Callable[[Plan, str], Clients] = assumed_clients,
) -> int:
    """``python -m toolchain.post_deploy {smoke,retrain} [--plan FILE]``."""
    parser = argparse.ArgumentParser(prog="post_deploy", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--plan", help=f"plan file (default: the {PLAN_VARIABLE} environment variable)")
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    try:
        if args.plan:
            with open(args.plan, encoding="utf-8") as handle:
                raw = handle.read()
        elif PLAN_VARIABLE in env:
            raw = env[PLAN_VARIABLE]
        else:
            raise PlanError(f"no plan: pass --plan FILE or set {PLAN_VARIABLE}")
        digest = env.get(DIGEST_VARIABLE)
        if digest and hashlib.sha256(raw.encode()).hexdigest() != digest:
            raise PlanError(f"the plan's sha256 is not {DIGEST_VARIABLE}: a stale or edited plan file")
        plan = parse_plan(raw)
    except (PlanError, OSError) as exc:
        print(f"post_deploy: {exc}", file=sys.stderr)
        return 2
    try:
        report = STEPS[args.step](plan, clients(plan, f"flywheel-{args.step}-{plan.environment}"))
    except Exception as exc:  # a name, not a stack trace (which could carry ARNs and tokens)
        print(f"post_deploy {args.step}: {plan.environment}: could not run ({_error_code(exc)})", file=sys.stderr)
        return 1
    print(f"post_deploy {args.step}: {plan.environment}")
    for line in report.lines():
        print(f"  {line}")
    print(f"  {len(report.passed)} passed, {len(report.notes)} notes, {len(report.problems)} failed")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
