"""``flywheel access-report``: who can do what, evaluated from the synthesized templates (issues 12 and 15).

Every role of an environment's stage is evaluated — identity policies ∩ the permissions boundary, with
explicit denies in either winning, and the data lake's bucket and key policies (their explicit denies;
a key's policy must admit the caller) — against concrete requests on every team's resources: its data
in each zone, its keys, registry, pipelines and their jobs, endpoint, logs, alarms and table
(:mod:`flywheel.iam_eval`; statements, resources and conditions are evaluated, never names). Three views:

* the **isolation matrix**: for every team and role kind (the personas ``data-scientist``, ``approver``,
  ``operator`` and the workload roles), what it can do to *every other* team's resources — expected:
  nothing (:func:`matrix_problems`);
* **per zone and per key**: which roles can read, write and decrypt, and the intent
  (:func:`intent_problems`): only the preprocessing jobs (and the ingest path) read the raw zone and
  decrypt with its key; no person does; a team's curated data is readable by that team's roles only;
* **duties** (:func:`duty_problems`): separation of duties between the personas, as allowed/denied
  requests on the team's own resources (the data scientist cannot approve, the approver cannot start
  pipelines or write data, the operator reads no data).

``--markdown`` writes the "who can do what" table (``docs/access.md``) from the same evaluation.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import naming
from flywheel.iam_eval import Decision, Request, Role, Templates, evaluate, statement_applies, statements
from naming import Names

if TYPE_CHECKING:
    from stacks.stage import FlywheelStage

#: Role kinds that may read raw objects and decrypt with the raw key: the preprocessing jobs and the ingest
#: path. The lake's policies also admit the operators' documented ``break-glass`` path (docs/runbooks/break-glass.md);
#: no stack creates such a role, and one that appears in the templates is reported (it is a person's).
#: Who may read raw data and its key: the preprocessing jobs, the ingest path, and the erasure function (it
#: rewrites a subject's raw rows; docs/privacy.md).
RAW_READERS = frozenset({naming.PREPROCESSING, naming.INGEST, naming.ERASURE_ROLE})
PERSONAS = frozenset(naming.PERSONAS)
#: What kind of resource a probe targets (the matrix's categories).
CATEGORIES = ("data", "keys", "registry", "pipelines", "endpoints", "operations")
SUFFIX = "abcdef12"


@dataclass(frozen=True)
class Probe:
    """One request on one team's resource: ``owner`` team, ``category``, a readable ``label``."""

    owner: str
    category: str
    label: str
    request: Request
    zone: str | None = None
    key: str | None = None  # which key a kms probe targets ("raw zone", "job key of churn", ...)
    verb: str = ""  # read | write | decrypt | encrypt | list | manage
    #: A shared zone key under an S3 Bucket Key: the context names the bucket, not the team's objects, so
    #: which team's data it decrypts is S3's decision (the data probes); kept out of the isolation matrix.
    shared: bool = False


@dataclass(frozen=True)
class Principal:
    """A role of the stage: its team (None for platform roles), kind (path segment or logical id)."""

    role: Role
    team: str | None
    kind: str

    @property
    def label(self) -> str:
        return f"{self.team}/{self.kind}" if self.team else f"platform/{self.kind}"


@dataclass
class AccessReport:
    """The evaluation of one environment's stage."""

    env: str
    teams: tuple[str, ...]
    principals: list[Principal]
    #: every request evaluated, on every team's resources
    probes: list[Probe] = field(default_factory=list)
    #: (role, probe) for every allowed probe
    allowed: list[tuple[Principal, Probe]] = field(default_factory=list)
    #: what was evaluated (a weakened copy can be re-evaluated: tests, mutation suite)
    templates: Templates | None = None

    # -- views -----------------------------------------------------------------------------------------

    def cross_team(self) -> list[tuple[Principal, Probe]]:
        """Allowed probes on another team's resources (team roles only)."""
        return [
            (p, probe) for p, probe in self.allowed if p.team is not None and probe.owner != p.team and not probe.shared
        ]

    def matrix(self) -> dict[tuple[str, str], dict[str, list[str]]]:
        """``(team, kind)`` → other team → allowed actions on its resources (empty: isolated)."""
        out: dict[tuple[str, str], dict[str, list[str]]] = {}
        for p in self.principals:
            if p.team is not None:
                out.setdefault((p.team, p.kind), {})
        for p, probe in self.cross_team():
            assert p.team is not None
            out[(p.team, p.kind)].setdefault(probe.owner, []).append(f"{probe.category}: {probe.label}")
        return out

    def zones(self) -> dict[str, dict[str, set[str]]]:
        """zone → verb (read/write/list) → role labels that can."""
        out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for p, probe in self.allowed:
            if probe.zone is not None and probe.verb in ("read", "write", "list"):
                out[probe.zone][probe.verb].add(p.label)
        return out

    def keys(self) -> dict[str, dict[str, set[str]]]:
        """key → verb (decrypt/encrypt) → role labels that can."""
        out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for p, probe in self.allowed:
            if probe.key is not None:
                out[probe.key][probe.verb].add(p.label)
        return out


# -- evaluation --------------------------------------------------------------------------------------------


class Evaluator:
    """Effective decisions of the stage's roles, statements pre-filtered by action (fast enough for 50 teams)."""

    def __init__(self, templates: Templates) -> None:
        self.t = templates
        self.account = templates.account
        self._by_action: dict[tuple[int, str], tuple[list[Mapping[str, Any]], list[Mapping[str, Any]] | None]] = {}
        self.bucket_policies = _bucket_policies(templates)
        self.key_policies = _key_policies(templates)

    def _statements(self, role: Role, action: str) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]] | None]:
        key = (id(role), action)
        if key not in self._by_action:
            ident = [s for d in role.identity for s in statements(d) if _mentions(s, action)]
            bound = (
                None
                if role.boundary is None
                else [s for d in role.boundary for s in statements(d) if _mentions(s, action)]
            )
            self._by_action[key] = (ident, bound)
        return self._by_action[key]

    def decide(self, principal: Principal, probe: Probe) -> Decision:
        role, req = principal.role, probe.request
        context = {
            **req.context,
            "aws:PrincipalArn": role.arn,
            "aws:PrincipalAccount": self.account,
            "aws:SecureTransport": True,
        }
        request = Request(req.action, req.resource, context)
        ident, bound = self._statements(role, req.action)
        service = req.action.split(":", 1)[0].lower()
        if not ident and not self._may_allow_directly(service, req):
            return Decision.IMPLICIT_DENY  # nothing could allow it: no identity statement, no resource grant
        identity = evaluate([{"Statement": ident}], request)
        if identity is Decision.EXPLICIT_DENY:
            return identity
        if bound is not None:
            boundary = evaluate([{"Statement": bound}], request)
            if boundary is Decision.EXPLICIT_DENY:
                return boundary
            if identity.allowed and not boundary.allowed:
                identity = Decision.IMPLICIT_DENY
        if service == "s3":
            bucket = req.resource.split(":::", 1)[-1].split("/", 1)[0]
            deny, direct, _ = self._resource(self.bucket_policies.get(bucket, []), request, role)
            if deny:
                return Decision.EXPLICIT_DENY
            return Decision.ALLOW if identity.allowed or direct else Decision.IMPLICIT_DENY
        if service == "kms" and req.resource in self.key_policies:
            deny, direct, via_account = self._resource(self.key_policies[req.resource], request, role)
            if deny:
                return Decision.EXPLICIT_DENY
            return Decision.ALLOW if direct or (via_account and identity.allowed) else Decision.IMPLICIT_DENY
        return identity

    def _may_allow_directly(self, service: str, req: Request) -> bool:
        """Whether a resource policy has an Allow for this action naming a principal other than the account."""
        if service == "s3":
            documents = self.bucket_policies.get(req.resource.split(":::", 1)[-1].split("/", 1)[0], [])
        elif service == "kms":
            documents = self.key_policies.get(req.resource, [])
        else:
            return False
        root = f"arn:{self.t.partition}:iam::{self.account}:root"
        for document in documents:
            for stmt in statements(document):
                others = _aws_principals(stmt.get("Principal")) - {root, self.account}
                if stmt["Effect"] == "Allow" and _mentions(stmt, req.action) and others:
                    return True
        return False

    def _resource(
        self, documents: Sequence[Mapping[str, Any]], request: Request, role: Role
    ) -> tuple[bool, bool, bool]:
        """(explicit deny, allow naming the role or ``*``, allow naming the account) of a resource policy."""
        deny = direct = account = False
        root = f"arn:{self.t.partition}:iam::{self.account}:root"
        for document in documents:
            for stmt in statements(document):
                who = _aws_principals(stmt.get("Principal"))
                names_role = "*" in who or any(_wild(w, role.arn) for w in who)
                names_account = root in who or self.account in who
                if not (names_role or names_account):
                    continue
                bare = {k: v for k, v in stmt.items() if k not in ("Principal", "Sid")}
                if not statement_applies(bare, request):
                    continue
                if stmt["Effect"] == "Deny":
                    deny = True
                elif names_role:
                    direct = True
                else:
                    account = True
        return deny, direct, account


def _wild(pattern: str, value: str) -> bool:
    from flywheel.iam_eval import wildcard_match

    return wildcard_match(pattern, value)


def _mentions(stmt: Mapping[str, Any], action: str) -> bool:
    from flywheel.iam_eval import action_matches

    if "Action" in stmt:
        acts = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
        return any(action_matches(str(a), action) for a in acts)
    return True  # NotAction: let the evaluator decide


def _aws_principals(principal: Any) -> set[str]:
    if principal is None:
        return set()
    if principal == "*":
        return {"*"}
    values = principal.get("AWS", []) if isinstance(principal, Mapping) else []
    return set(values if isinstance(values, list) else [values])


def _bucket_policies(t: Templates) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for stack, template in t.templates.items():
        for res in template.get("Resources", {}).values():
            if res["Type"] == "AWS::S3::BucketPolicy":
                props = res["Properties"]
                out[str(t.resolve(stack, props["Bucket"]))].append(t.resolve(stack, props["PolicyDocument"]))
    return out


def _key_policies(t: Templates) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for stack, template in t.templates.items():
        for lid, res in template.get("Resources", {}).items():
            if res["Type"] == "AWS::KMS::Key":
                out[t.get_att(stack, lid, "Arn")] = [t.resolve(stack, res["Properties"]["KeyPolicy"])]
    return out


# -- who is who ---------------------------------------------------------------------------------------------


def principals_of(t: Templates, env: str) -> list[Principal]:
    """Every role of the stage with its team (from its stack) and kind (from its path)."""
    out = []
    team_stack = f"{_stage(env)}-Team-"
    base = Names(env).role_path()
    for role in t.roles():
        team = role.stack[len(team_stack) :] if role.stack.startswith(team_stack) else None
        path = "/" + role.arn.split(":role/", 1)[1].rsplit("/", 1)[0] + "/"
        kind = path[len(base) :].strip("/") if path.startswith(base) and path != base else ""
        out.append(Principal(role=role, team=team, kind=kind or role.logical_id))
    return out


def _stage(env: str) -> str:
    return f"Flywheel-{env}"


# -- what is probed -----------------------------------------------------------------------------------------


def _lake(t: Templates, env: str) -> dict[str, tuple[str, str]]:
    """zone → (bucket name, key ARN) as the evaluator resolves them."""
    out = {}
    lake = f"{_stage(env)}-DataLake"
    for zone in naming.ZONES:
        _, value = t.exports[Names(env).bucket_export(zone)]
        bucket = t.resource(lake, value["Ref"])
        rule = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        out[zone] = (
            t.ref(lake, value["Ref"]),
            str(t.resolve(lake, rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"])),
        )
    return out


def _team_pipelines(t: Templates, env: str, team: str) -> list[str]:
    stack = f"{_stage(env)}-Team-{team}"
    names = []
    for res in t.templates[stack]["Resources"].values():
        if res["Type"] == "AWS::SageMaker::Pipeline":
            names.append(str(t.resolve(stack, res["Properties"]["PipelineName"])))
    return sorted(names)


def _typed(t: Templates, stack: str, kind: str) -> list[str]:
    return sorted(lid for lid, r in t.templates[stack]["Resources"].items() if r["Type"] == kind)


def probes_of(t: Templates, env: str, team: str) -> list[Probe]:
    """Requests on every resource of ``team``: data per zone, keys, registry, pipelines, endpoint, operations."""
    n = Names(env)
    region, account = t.region, t.account
    sm = f"arn:aws:sagemaker:{region}:{account}"
    lake = _lake(t, env)
    stack = f"{_stage(env)}-Team-{team}"
    pipelines = _team_pipelines(t, env, team)
    endpoint = n.endpoint(team)
    out: list[Probe] = []
    via_s3 = f"s3.{region}.amazonaws.com"

    def data(zone: str, key: str, what: str) -> None:
        bucket, zone_key = lake[zone]
        obj = f"arn:aws:s3:::{bucket}/{key}"
        prefix = key.rsplit("/", 1)[0] + "/"
        for verb, action, resource, ctx in (
            ("read", "s3:GetObject", obj, {}),
            ("write", "s3:PutObject", obj, {}),
            ("write", "s3:DeleteObject", obj, {}),
            ("list", "s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": prefix}),
        ):
            out.append(
                Probe(team, "data", f"{action} {zone}:{what}", Request(action, resource, ctx), zone=zone, verb=verb)
            )
        # The zone key through S3: the raw zone has no Bucket Key (object ARN as context), the others do.
        context_arn = obj if zone == "raw" else f"arn:aws:s3:::{bucket}"
        ctx = {"kms:ViaService": via_s3, "kms:EncryptionContext:aws:s3:arn": context_arn}
        for verb, action in (("decrypt", "kms:Decrypt"), ("encrypt", "kms:GenerateDataKey")):
            out.append(
                Probe(
                    team,
                    "keys",
                    f"{action} {zone} key for {what}",
                    Request(action, zone_key, ctx),
                    key=f"{zone} zone key",
                    verb=verb,
                    shared=zone != "raw",
                )
            )

    data("raw", f"{naming.incoming_prefix(team)}batch-1/data.csv", "landed batch")
    data("raw", naming.pii_key_object(team), "PII HMAC key")
    for pipeline in pipelines:
        data("raw", f"{naming.quarantine_prefix(team, pipeline)}exec/data.csv", f"quarantine of {pipeline}")
        for zone in (*naming.PIPELINE_OWNED_ZONES, "curated"):
            data(zone, f"{naming.pipeline_prefix(pipeline)}exec/part-0.parquet", pipeline)
    data("capture", f"{naming.capture_prefix(endpoint)}AllTraffic/2026/01/01/00/capture.jsonl", endpoint)

    for lid in _typed(t, stack, "AWS::KMS::Key"):
        arn = t.get_att(stack, lid, "Arn")
        label = "job key" if lid.startswith("TeamJobKey") else "lifecycle key" if "LifecycleStoreKey" in lid else lid
        for verb, action, ctx in (
            ("decrypt", "kms:Decrypt", {"kms:ViaService": via_s3}),
            ("decrypt", "kms:Decrypt", {}),
            ("encrypt", "kms:GenerateDataKey", {}),
        ):
            out.append(
                Probe(team, "keys", f"{action} {label}", Request(action, arn, ctx), key=f"{team} {label}", verb=verb)
            )

    group = n.model_package_group(team)
    package = f"{sm}:model-package/{group}/1"
    for action, resource, ctx in (
        ("sagemaker:DescribeModelPackageGroup", f"{sm}:model-package-group/{group}", {}),
        ("sagemaker:ListModelPackages", f"{sm}:model-package-group/{group}", {}),
        ("sagemaker:DescribeModelPackage", package, {}),
        ("sagemaker:UpdateModelPackage", package, {"sagemaker:ModelApprovalStatus": "Approved"}),
        ("sagemaker:CreateModelPackage", package, {"sagemaker:ModelApprovalStatus": "PendingManualApproval"}),
        ("sagemaker:DeleteModelPackage", package, {}),
    ):
        out.append(Probe(team, "registry", f"{action} {group}", Request(action, resource, ctx), verb="manage"))

    job_context = {"aws:ResourceTag/flywheel:team": team}
    create_context = {
        "aws:RequestTag/flywheel:team": team,
        "aws:TagKeys": ["flywheel:team"],
        "sagemaker:VolumeKmsKey": "k",
        "sagemaker:OutputKmsKey": "k",
        "sagemaker:VpcSubnets": ["subnet-1"],
        "sagemaker:NetworkIsolation": True,
        "sagemaker:InterContainerTrafficEncryption": True,
        "iam:PassedToService": "sagemaker.amazonaws.com",
    }
    for pipeline in pipelines:
        arn = f"{sm}:pipeline/{pipeline}"
        for action, resource in (
            ("sagemaker:StartPipelineExecution", arn),
            ("sagemaker:DescribePipeline", arn),
            ("sagemaker:UpdatePipeline", arn),
            ("sagemaker:DeletePipeline", arn),
            ("sagemaker:StopPipelineExecution", f"{arn}/execution/exec1"),
            ("sagemaker:DescribePipelineExecution", f"{arn}/execution/exec1"),
        ):
            out.append(Probe(team, "pipelines", f"{action} {pipeline}", Request(action, resource), verb="manage"))
    for kind in ("processing", "training", "transform"):
        job = f"{sm}:{kind}-job/pipelines-exec1-step"
        for verb in ("Describe", "Stop"):
            action = f"sagemaker:{verb}{kind.title()}Job"
            out.append(
                Probe(team, "pipelines", f"{action} of {team}", Request(action, job, job_context), verb="manage")
            )
        action = f"sagemaker:Create{kind.title()}Job"
        out.append(
            Probe(team, "pipelines", f"{action} tagged {team}", Request(action, job, create_context), verb="manage")
        )

    endpoint_requests: tuple[tuple[str, str, Mapping[str, Any]], ...] = (
        ("sagemaker:DescribeEndpoint", f"{sm}:endpoint/{endpoint}", {}),
        ("sagemaker:UpdateEndpoint", f"{sm}:endpoint/{endpoint}", {}),
        ("sagemaker:DeleteEndpoint", f"{sm}:endpoint/{endpoint}", {}),
        ("sagemaker:InvokeEndpoint", f"{sm}:endpoint/{endpoint}", {}),
        ("sagemaker:UpdateEndpoint", f"{sm}:endpoint-config/{endpoint}-v1-{SUFFIX}", {}),
        ("sagemaker:CreateEndpointConfig", f"{sm}:endpoint-config/{endpoint}-v1-{SUFFIX}", create_context),
        ("sagemaker:CreateModel", f"{sm}:model/{endpoint}-v1-{SUFFIX}", create_context),
    )
    for action, resource, request_context in endpoint_requests:
        out.append(
            Probe(
                team,
                "endpoints",
                f"{action} {resource.rsplit(':', 1)[-1]}",
                Request(action, resource, request_context),
                verb="manage",
            )
        )

    logs = [t.get_att(stack, lid, "Arn") for lid in _typed(t, stack, "AWS::Logs::LogGroup")]
    logs.append(f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{endpoint}:*")
    for arn in logs:
        stream = arn.removesuffix(":*") + ":log-stream:s"
        out.append(
            Probe(
                team,
                "operations",
                f"logs:GetLogEvents {arn.split('log-group:')[1]}",
                Request("logs:GetLogEvents", stream),
                verb="read",
            )
        )
    for lid in _typed(t, stack, "AWS::CloudWatch::Alarm"):
        arn = t.get_att(stack, lid, "Arn")
        for action in ("cloudwatch:DescribeAlarms", "cloudwatch:SetAlarmState", "cloudwatch:DisableAlarmActions"):
            out.append(
                Probe(team, "operations", f"{action} {arn.rsplit(':', 1)[-1]}", Request(action, arn), verb="manage")
            )
    for lid in _typed(t, stack, "AWS::DynamoDB::Table"):
        arn = t.get_att(stack, lid, "Arn")
        for action in ("dynamodb:GetItem", "dynamodb:PutItem"):
            out.append(Probe(team, "operations", f"{action} lifecycle table", Request(action, arn), verb="manage"))
    return out


# -- building the report ------------------------------------------------------------------------------------


def report_of(templates: Templates, env: str, teams: Iterable[str]) -> AccessReport:
    """Evaluate every role of the stage against every probe of every team."""
    teams = tuple(teams)
    evaluator = Evaluator(templates)
    principals = principals_of(templates, env)
    probes = [probe for team in teams for probe in probes_of(templates, env, team)]
    report = AccessReport(env=env, teams=teams, principals=principals, probes=probes, templates=templates)
    for principal in principals:
        for probe in probes:
            if evaluator.decide(principal, probe).allowed:
                report.allowed.append((principal, probe))
    return report


def stage_templates(stage: FlywheelStage) -> Templates:
    """The stage's stack templates keyed by deployed stack name, for :class:`Templates`."""
    from aws_cdk import Stack
    from aws_cdk.assertions import Template

    stacks = {c.stack_name: Template.from_stack(c).to_json() for c in stage.node.children if isinstance(c, Stack)}
    return Templates(stacks, account=stage.environment.account, region=stage.environment.region)


def build_reports(env: str | None = None, config: Any = None) -> list[AccessReport]:
    """Synthesize the configured environments in-process (no AWS call; validation off) and evaluate them
    (``env``: only that one; ``config``: a loaded ``FlywheelConfig``, default ``config/``)."""
    from config.loader import load_config

    config = config if config is not None else load_config()
    envs = [config.environment(env)] if env else list(config.environments)  # KeyError before any synth
    _, stages = synthesize(config)
    return [report_of(stage_templates(stages[e.name]), e.name, [t.name for t in config.teams]) for e in envs]


def synthesize(config: Any) -> tuple[Any, dict[str, FlywheelStage]]:
    """One in-process App (no AWS call; validation off) with a stage per configured environment of ``config``
    (a loaded ``FlywheelConfig``): ``(app, {environment: stage})``. Also used by ``flywheel cost``."""
    os.environ.setdefault("CDK_VALIDATION", "false")
    from aws_cdk import App

    from stacks import cdk_json_context
    from stacks.stage import add_stages

    app = App(context=cdk_json_context())
    return app, add_stages(app, config.environments, config.teams)


def synthesize_with_toolchain(config: Any) -> tuple[Any, dict[str, FlywheelStage], Any]:
    """:func:`synthesize` plus the toolchain stack that deploys those very stages: the whole app as
    ``-c target=toolchain`` deploys it, ``(app, {environment: stage}, toolchain stack)``. The one place
    that composes it (``flywheel cost``, the diagrams and the test suite's session synth)."""
    app, stages = synthesize(config)  # first: it switches CDK validation off before aws_cdk is imported
    from config.loader import load_toolchain
    from stacks.toolchain_stack import TOOLCHAIN_STACK, ToolchainStack, pinned_cdk_cli_version

    tool = ToolchainStack(
        app,
        TOOLCHAIN_STACK,
        toolchain=load_toolchain(config=config),
        environments=config.environments,
        teams=config.teams,
        cli_version=pinned_cdk_cli_version(),
        stages=stages,
    )
    return app, stages, tool


# -- intents --------------------------------------------------------------------------------------------------


def weakened(report: AccessReport, mutate: Any) -> AccessReport:
    """The report of a deep copy of ``report``'s templates after ``mutate(templates)`` (tests: a weakening
    must trip the assertions)."""
    import copy

    assert report.templates is not None
    t = report.templates
    weak = copy.deepcopy(t.templates)
    mutate(weak)
    return report_of(Templates(weak, account=t.account, region=t.region), report.env, report.teams)


def policy_statements(templates: dict[str, Any], env: str, team: str, persona: str) -> list[dict[str, Any]]:
    """The statements of ``team``'s ``persona`` policy in (a copy of) the templates, to weaken in place."""
    stack = f"{_stage(env)}-Team-{team}"
    prefix = f"TeamPersonas{''.join(x.title() for x in persona.split('-'))}Policy"
    (policy,) = [r for lid, r in templates[stack]["Resources"].items() if lid.startswith(prefix)]
    found: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def matrix_problems(report: AccessReport) -> list[str]:
    """Every allowed request of a team's role on another team's resources (expected: none)."""
    return [
        f"{report.env}: {p.label} can {probe.label} of team {probe.owner} ({p.role.name})"
        for p, probe in report.cross_team()
    ]


def intent_problems(report: AccessReport) -> list[str]:
    """The raw zone (objects and key) only for raw readers, never a person; curated only for its own team."""
    problems = []
    for p, probe in report.allowed:
        raw_data = probe.zone == "raw" and probe.verb == "read"
        raw_key = probe.key == "raw zone key" and probe.verb == "decrypt"
        if (raw_data or raw_key) and (p.kind in PERSONAS or p.kind not in RAW_READERS):
            who = "a person's role" if p.kind in PERSONAS else "not a raw reader"
            problems.append(f"{report.env}: {p.label} ({who}) can {probe.label} of team {probe.owner}")
        if probe.zone == "curated" and probe.verb in ("read", "list") and p.team != probe.owner:
            problems.append(f"{report.env}: {p.label} can {probe.label} (curated data of team {probe.owner})")
    return problems


#: (persona, capability label, probe label prefix on its own team, expected allowed?)
DUTIES: tuple[tuple[str, str, str, bool], ...] = (
    (naming.DATA_SCIENTIST, "read curated", "s3:GetObject curated:", True),
    (naming.DATA_SCIENTIST, "read features", "s3:GetObject features:", True),
    (naming.DATA_SCIENTIST, "read reports", "s3:GetObject reports:", True),
    (naming.DATA_SCIENTIST, "start its pipelines", "sagemaker:StartPipelineExecution", True),
    (naming.DATA_SCIENTIST, "read its registry", "sagemaker:DescribeModelPackage ", True),
    (naming.DATA_SCIENTIST, "approve a model", "sagemaker:UpdateModelPackage", False),
    (naming.DATA_SCIENTIST, "read raw data", "s3:GetObject raw:", False),
    (naming.DATA_SCIENTIST, "decrypt with the raw (PII) key", "kms:Decrypt raw key", False),
    (naming.APPROVER, "approve a model", "sagemaker:UpdateModelPackage", True),
    (naming.APPROVER, "read reports", "s3:GetObject reports:", True),
    (naming.APPROVER, "start its pipelines", "sagemaker:StartPipelineExecution", False),
    (naming.APPROVER, "write data", "s3:PutObject", False),
    (naming.APPROVER, "read raw data", "s3:GetObject raw:", False),
    (naming.OPERATOR, "roll back the endpoint", "sagemaker:UpdateEndpoint", True),
    (naming.OPERATOR, "read the endpoint's status", "sagemaker:DescribeEndpoint", True),
    (naming.OPERATOR, "read logs", "logs:GetLogEvents", True),
    (naming.OPERATOR, "read any data", "s3:GetObject", False),
    (naming.OPERATOR, "approve a model", "sagemaker:UpdateModelPackage", False),
    (naming.OPERATOR, "start its pipelines", "sagemaker:StartPipelineExecution", False),
)


def duty_problems(report: AccessReport) -> list[str]:
    """Separation of duties on each team's own resources, and: only approvers change model packages."""
    allowed = {(p.role.name, probe.label) for p, probe in report.allowed}
    problems = []
    probes: dict[str, list[Probe]] = defaultdict(list)
    for probe in report.probes:
        probes[probe.owner].append(probe)
    for p in report.principals:
        if p.team is None:
            continue
        for persona, capability, prefix, expected in DUTIES:
            if p.kind != persona:
                continue
            own = [pr for pr in probes[p.team] if pr.label.startswith(prefix)]
            if not own:
                continue  # e.g. no endpoint logs without the lifecycle: nothing to check
            can = any((p.role.name, pr.label) in allowed for pr in own)
            if expected and not can:
                problems.append(f"{report.env}: {p.label} cannot {capability} (it must)")
            if can and not expected:
                problems.append(f"{report.env}: {p.label} can {capability} (separation of duties: it must not)")
    for p, probe in report.allowed:
        if probe.label.startswith("sagemaker:UpdateModelPackage") and p.kind != naming.APPROVER:
            problems.append(f"{report.env}: {p.label} can {probe.label}: only approvers change model packages")
    return problems


def problems(report: AccessReport) -> dict[str, list[str]]:
    """Every assertion of the report by name (``[]``: holds)."""
    return {
        "isolation (off-diagonal empty)": matrix_problems(report),
        "raw zone and PII key: preprocessing and ingest only, no person": intent_problems(report),
        "separation of duties": duty_problems(report),
    }


# -- rendering ------------------------------------------------------------------------------------------------

#: The "who can do what" capabilities: label → probe-label prefix on the role's own team's resources.
CAPABILITIES: tuple[tuple[str, str], ...] = (
    ("read raw batches (PII)", "s3:GetObject raw:landed batch"),
    ("read the PII HMAC key", "s3:GetObject raw:PII HMAC key"),
    ("decrypt with the raw (PII) key", "kms:Decrypt raw key"),
    ("read curated", "s3:GetObject curated:"),
    ("read features", "s3:GetObject features:"),
    ("write features", "s3:PutObject features:"),
    ("read reports", "s3:GetObject reports:"),
    ("read artifacts", "s3:GetObject artifacts:"),
    ("write artifacts", "s3:PutObject artifacts:"),
    ("start a pipeline", "sagemaker:StartPipelineExecution"),
    ("inspect pipeline runs", "sagemaker:DescribePipelineExecution"),
    ("register a model (pending)", "sagemaker:CreateModelPackage"),
    ("read the registry", "sagemaker:DescribeModelPackage "),
    ("approve / reject a model", "sagemaker:UpdateModelPackage"),
    ("deploy / roll back the endpoint", "sagemaker:UpdateEndpoint"),
    ("read endpoint status", "sagemaker:DescribeEndpoint"),
    ("read alarms", "cloudwatch:DescribeAlarms"),
    ("read lifecycle / endpoint logs", "logs:GetLogEvents"),
)
#: Column order of the table: the personas first, then the workload roles.
KIND_ORDER = (
    *naming.PERSONAS,
    "preprocessing",
    "training",
    "evaluation",
    "pipeline",
    "data-arrival",
    "deploy",
    "model",
)


def capability_table(report: AccessReport) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(role kinds, [(capability, cell per kind)]): ``yes`` when every team's role of that kind can on its
    own team's resources, ``no`` when none can, ``some teams`` otherwise."""
    allowed = {(p.role.name, id(probe)) for p, probe in report.allowed}
    kinds = [k for k in KIND_ORDER if any(p.kind == k and p.team for p in report.principals)]
    rows = []
    for label, prefix in CAPABILITIES:
        cells = []
        for kind in kinds:
            verdicts = []
            for p in report.principals:
                if p.kind != kind or p.team is None:
                    continue
                own = [pr for pr in report.probes if pr.owner == p.team and pr.label.startswith(prefix)]
                verdicts.append(any((p.role.name, id(pr)) in allowed for pr in own))
            cells.append("yes" if all(verdicts) else "no" if not any(verdicts) else "some teams")
        rows.append((label, cells))
    return kinds, rows


def render_markdown(report: AccessReport) -> str:
    """docs/access.md: the "who can do what" table, the isolation verdict and the per-zone/key readers."""
    kinds, rows = capability_table(report)
    lines = [
        "# Who can do what",
        "",
        "<!-- Generated by `flywheel access-report --markdown docs/access.md` (make access-docs); "
        "tests/security/test_access_report.py fails when it is stale. Do not edit by hand. -->",
        "",
        f"Evaluated from the synthesized `{report.env}` templates (teams: {', '.join(report.teams)}): each role's "
        "identity policies ∩ the permissions boundary, explicit denies winning, and the data lake's bucket and key "
        "policies, on concrete requests against each team's **own** resources. `yes`: every team's role of that "
        "kind may; `no`: none may.",
        "",
        "| capability | " + " | ".join(kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    cross = report.cross_team()
    lines += [
        "",
        "## Other teams' resources",
        "",
        f"Requests of every team's roles on every *other* team's data, keys, registry, pipelines, endpoint, logs, "
        f"alarms and table ({len(report.probes)} requests per role): "
        + ("**none is allowed**." if not cross else f"**{len(cross)} allowed** (see `flywheel access-report`)."),
        "",
        "## Per zone and per key",
        "",
        "| zone | read | write | list |",
        "|---|---|---|---|",
    ]
    zones = report.zones()
    for zone in naming.ZONES:
        cells = [", ".join(_kinds(zones.get(zone, {}).get(v, set()))) or "—" for v in ("read", "write", "list")]
        lines.append(f"| {zone} | " + " | ".join(cells) + " |")
    lines += ["", "| key | decrypt | encrypt |", "|---|---|---|"]
    keys = report.keys()
    for key in sorted({_generic_key(k, report.teams) for k in keys}):
        merged: dict[str, set[str]] = defaultdict(set)
        for k, verbs in keys.items():
            if _generic_key(k, report.teams) == key:
                for verb, who in verbs.items():
                    merged[verb] |= who
        cells = [", ".join(_kinds(merged.get(v, set()))) or "—" for v in ("decrypt", "encrypt")]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Role kinds are shown without their team: in every row a role reaches only its own team's prefix or key "
        "(the isolation check above). The intent, asserted by the tests: only `preprocessing` (and the `ingest` "
        "path) read the raw zone and decrypt with its key, no person's role does; curated data is readable by "
        "its own team's roles only.",
        "",
    ]
    return "\n".join(lines)


def _kinds(labels: Iterable[str]) -> list[str]:
    return sorted({label.split("/", 1)[1] for label in labels})


def _generic_key(key: str, teams: Sequence[str]) -> str:
    """``churn job key`` → ``the team's job key`` (zone keys are shared and keep their name)."""
    for team in teams:
        if key.startswith(f"{team} "):
            return f"the team's {key[len(team) + 1 :]}"
    return key


def print_report(report: AccessReport, console: Any) -> bool:
    """Render one environment's report; True when every assertion holds."""
    from rich.table import Table

    matrix = report.matrix()
    table = Table(title=f"environment {report.env}: what each team's roles can do to other teams' resources")
    table.add_column("team / role")
    for team in report.teams:
        table.add_column(team, justify="center")
    for (team, kind), others in sorted(matrix.items(), key=lambda x: (x[0][0], _order(x[0][1]))):
        cells = [_cell(team, other, others) for other in report.teams]
        table.add_row(f"{team}/{kind}", *cells)
    console.print(table)
    kinds, rows = capability_table(report)
    caps = Table(title=f"environment {report.env}: who can do what on their own team's resources")
    caps.add_column("capability")
    for kind in kinds:
        caps.add_column(kind, justify="center")
    for label, cells in rows:
        caps.add_row(label, *[{"yes": "[green]yes[/]", "no": "·"}.get(c, f"[yellow]{c}[/]") for c in cells])
    console.print(caps)
    zones = Table(title=f"environment {report.env}: per zone")
    for col in ("zone", "read", "write", "list"):
        zones.add_column(col)
    z = report.zones()
    for zone in naming.ZONES:
        zones.add_row(
            zone, *[", ".join(_kinds(z.get(zone, {}).get(v, set()))) or "—" for v in ("read", "write", "list")]
        )
    console.print(zones)
    keys = Table(title=f"environment {report.env}: per key")
    for col in ("key", "decrypt", "encrypt"):
        keys.add_column(col)
    for key, verbs in sorted(report.keys().items()):
        keys.add_row(key, *[", ".join(sorted(verbs.get(v, set()))) or "—" for v in ("decrypt", "encrypt")])
    console.print(keys)
    ok = True
    for name, found in problems(report).items():
        mark = "[green]holds[/]" if not found else f"[red]{len(found)} violation(s)[/]"
        console.print(f"  {name}: {mark}")
        for problem in found[:20]:
            console.print(f"    [red]{problem}[/]")
        ok = ok and not found
    return ok


def _cell(team: str, other: str, others: Mapping[str, list[str]]) -> str:
    if other == team:
        return "[dim]own[/]"
    return f"[red]{len(others[other])}[/]" if others.get(other) else "[green]—[/]"


def _order(kind: str) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
