"""Architecture diagrams generated from the synthesized app (issue 17): ``make diagrams``.

The app is built in-process exactly as the toolchain builds it (every configured environment's
:class:`~stacks.stage.FlywheelStage` and the ``Flywheel-Toolchain`` stack that deploys them, no AWS call), and
the picture is read from what it synthesizes — the stacks' templates and the construct tree — never drawn by
hand:

* **nodes** are resources, grouped by stack and by the construct that owns them. Resources that only serve
  another one are folded into it: a bucket's policy, a function's execution role, its policy, log group, dead
  letter queue, invoke config and permissions, a VPC's subnets, route tables, security groups and flow log. A
  construct's alarms and a VPC's endpoints are one node each. Resources that code creates at run time and the
  templates only name in grants (the team's SageMaker endpoint, its endpoint configs and models) are drawn
  dashed.
* **edges** come from references in the templates: ``Ref``/``Fn::GetAtt``/``Fn::Sub``, cross-stack imports
  (``Fn::ImportValue``, ``Fn::GetStackOutput``) and literal ARNs resolved against resources' physical names;
  an EventBridge rule's pattern (what it listens to) and its targets, a schedule's target and an alarm's
  actions are *events*; an allowed IAM statement of a role's policy is a *grant* (labelled with the verbs and
  S3 prefixes); anything else is a *use*. The toolchain's deploy actions point at the stages they deploy.

Two kinds of picture: ``platform.dot`` (the toolchain and every environment's shared stacks; each team stack
is one node) and ``team-<name>.dot`` per team (its stack in the first environment, where it trains, with
the shared resources it references). Output is deterministic (sorted, no hashes or timestamps), so the
committed DOT is compared with a fresh one by ``tests/test_diagrams.py``; the SVG rendered from it by Graphviz
(``dot``) records the DOT's SHA-256, so a stale SVG is caught too, without Graphviz in the test.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DIAGRAMS_DIR = Path(__file__).resolve().parents[1] / "docs" / "diagrams"
#: The comment an SVG carries: the SHA-256 of the DOT it was rendered from.
SVG_STAMP = "flywheel-diagram dot-sha256:"
REGENERATE = "make diagrams"

# -- the model ---------------------------------------------------------------------------------------------

Key = tuple[str, str]  # (stack name, logical id); runtime nodes: ("runtime:<env>", name)


@dataclass
class Resource:
    """One resource of a synthesized template, with where it sits in the construct tree."""

    key: Key
    type: str
    props: Mapping[str, Any]
    path: tuple[str, ...]  # construct path below its stack, without the trailing Resource/Default
    env: str  # environment name ("toolchain" for the toolchain stack)
    account: str
    region: str


@dataclass
class App:
    """What the diagrams are drawn from: every stack's resources and how stacks are ordered."""

    resources: dict[Key, Resource]
    stacks: dict[str, str]  # stack name -> environment
    stack_ids: dict[str, str]  # stack name -> construct id in its stage (Security, Team-churn, ...)
    exports: dict[str, Key]  # export name -> resource
    outputs: dict[tuple[str, str], Key]  # (stack, output) -> resource
    environments: tuple[str, ...]
    accounts: dict[str, tuple[str, str]]  # env -> (account, region)


@dataclass
class Node:
    key: Key
    kind: str  # a short type name ("Lambda", "S3 bucket", ...)
    title: str
    lines: list[str] = field(default_factory=list)
    category: str = "other"
    cluster: tuple[str, ...] = ()  # (stack, construct, ...)
    runtime: bool = False
    members: int = 1


@dataclass(frozen=True)
class Edge:
    src: Key
    dst: Key
    kind: str  # event | grant | use | deploy
    label: str = ""


# Short names and categories of the resource types a picture shows.
TYPES: dict[str, tuple[str, str]] = {
    "AWS::S3::Bucket": ("S3 bucket", "storage"),
    "AWS::KMS::Key": ("KMS key", "security"),
    "AWS::Glue::Database": ("Glue database", "storage"),
    "AWS::EC2::VPC": ("VPC", "network"),
    "AWS::EC2::VPCEndpoint": ("VPC endpoint", "network"),
    "AWS::IAM::Role": ("IAM role", "security"),
    "AWS::IAM::ManagedPolicy": ("IAM policy", "security"),
    "AWS::IAM::OIDCProvider": ("OIDC provider", "security"),
    "AWS::Lambda::Function": ("Lambda", "compute"),
    "AWS::Events::Rule": ("EventBridge rule", "events"),
    "AWS::Scheduler::Schedule": ("Scheduler schedule", "events"),
    "AWS::SageMaker::Pipeline": ("SageMaker pipeline", "ml"),
    "AWS::SageMaker::ModelPackageGroup": ("model registry", "ml"),
    "AWS::DynamoDB::Table": ("DynamoDB table", "storage"),
    "AWS::SNS::Topic": ("SNS topic", "monitoring"),
    "AWS::SQS::Queue": ("SQS queue", "monitoring"),
    "AWS::StepFunctions::StateMachine": ("Step Functions", "compute"),
    "AWS::CloudWatch::Dashboard": ("dashboard", "monitoring"),
    "AWS::CloudWatch::Alarm": ("alarm", "monitoring"),
    "AWS::Budgets::Budget": ("budget", "monitoring"),
    "AWS::CloudTrail::Trail": ("CloudTrail", "security"),
    "AWS::Logs::LogGroup": ("log group", "monitoring"),
    "AWS::CodePipeline::Pipeline": ("CodePipeline", "ci"),
    "AWS::CodeBuild::Project": ("CodeBuild", "ci"),
}
COLOURS = {
    "storage": "#e3effb",
    "security": "#fde7e4",
    "network": "#e9f5ee",
    "compute": "#fff1db",
    "events": "#efe8fa",
    "ml": "#fcf6d3",
    "monitoring": "#eef1f4",
    "ci": "#e4f4f7",
    "people": "#ffe9c7",
    "other": "#ffffff",
}
#: Resources folded into the one they serve: type -> the property naming it.
ATTACHED = {
    "AWS::S3::BucketPolicy": "Bucket",
    "AWS::SQS::QueuePolicy": "Queues",
    "AWS::SNS::TopicPolicy": "Topics",
    "AWS::SNS::Subscription": "TopicArn",
    "AWS::Lambda::Permission": "FunctionName",
    "AWS::Lambda::EventInvokeConfig": "FunctionName",
    "AWS::KMS::Alias": "TargetKeyId",
    "AWS::EC2::Subnet": "VpcId",
    "AWS::EC2::RouteTable": "VpcId",
    "AWS::EC2::SecurityGroup": "VpcId",
    "AWS::EC2::FlowLog": "ResourceId",
    "AWS::EC2::SubnetRouteTableAssociation": "SubnetId",
    "AWS::IAM::Policy": "Roles",
    "AWS::IAM::ManagedPolicy": "Roles",
}
#: Where a resource names the role it runs as (that role is folded into it).
EXECUTION_ROLE = {
    "AWS::Lambda::Function": ("Role",),
    "AWS::StepFunctions::StateMachine": ("RoleArn",),
    "AWS::Scheduler::Schedule": ("Target", "RoleArn"),
    "AWS::SageMaker::Pipeline": ("RoleArn",),
    "AWS::CodeBuild::Project": ("ServiceRole",),
    "AWS::CodePipeline::Pipeline": ("RoleArn",),
    "AWS::EC2::FlowLog": ("DeliverLogsPermissionArn",),
    "AWS::CloudTrail::Trail": ("CloudWatchLogsRoleArn",),
}
#: Resources that pass a role to what they create (jobs, models): a role only they name is drawn with them.
PASSES_ROLES = frozenset({"AWS::SageMaker::Pipeline", "AWS::StepFunctions::StateMachine", "AWS::Lambda::Function"})
#: Properties that are not references worth drawing (every role names the boundary; tags; asset code).
IGNORED_PROPS = frozenset({"Tags", "PermissionsBoundary", "Layers", "Code", "AssumeRolePolicyDocument"})
#: Resources whose key is drawn (a data store encrypted by it); other key references are left out.
ENCRYPTED = frozenset(
    {
        "AWS::S3::Bucket",
        "AWS::DynamoDB::Table",
        "AWS::SNS::Topic",
        "AWS::SageMaker::Pipeline",
        "AWS::CloudTrail::Trail",
        "AWS::Logs::LogGroup",
    }
)
#: Types a construct's several instances of are drawn as one node.
GROUPED = frozenset({"AWS::CloudWatch::Alarm", "AWS::EC2::VPCEndpoint", "AWS::Glue::Database"})
#: Literal ARNs: (service, resource type) -> (CloudFormation type, name property). A name may be nested.
NAMED: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("sagemaker", "pipeline"): ("AWS::SageMaker::Pipeline", ("PipelineName",)),
    ("sagemaker", "model-package-group"): ("AWS::SageMaker::ModelPackageGroup", ("ModelPackageGroupName",)),
    ("sagemaker", "model-package"): ("AWS::SageMaker::ModelPackageGroup", ("ModelPackageGroupName",)),
    ("cloudwatch", "alarm"): ("AWS::CloudWatch::Alarm", ("AlarmName",)),
    ("lambda", "function"): ("AWS::Lambda::Function", ("FunctionName",)),
    ("dynamodb", "table"): ("AWS::DynamoDB::Table", ("TableName",)),
    ("states", "stateMachine"): ("AWS::StepFunctions::StateMachine", ("StateMachineName",)),
    ("budgets", "budget"): ("AWS::Budgets::Budget", ("Budget", "BudgetName")),
    ("iam", "role"): ("AWS::IAM::Role", ("RoleName",)),
    ("codebuild", "project"): ("AWS::CodeBuild::Project", ("Name",)),
}
#: SageMaker resources that code creates at run time (the deploy and launcher Lambdas): drawn dashed.
RUNTIME = {"endpoint": "SageMaker endpoint", "endpoint-config": "SageMaker endpoint", "model": "SageMaker models"}
TIMES = "\u00d7"  # the multiplication sign of "alarms x3"
ARN = re.compile(r"^arn:[^:]*:([^:]+):([^:]*):(\d{12})?:(.+)$")


# -- building the app ----------------------------------------------------------------------------------------


def build_app() -> Any:
    """The CDK app as the toolchain builds it: every configured stage and the toolchain stack (offline)."""
    from config.loader import load_config
    from flywheel.access_report import synthesize_with_toolchain

    return synthesize_with_toolchain(load_config())[0]


def read_app(app: Any) -> App:
    """Every stack's template and construct paths (a synthesized ``aws_cdk.App``)."""
    from aws_cdk import CfnResource, Stack, Stage
    from aws_cdk.assertions import Template

    resources: dict[Key, Resource] = {}
    stacks: dict[str, str] = {}
    stack_ids: dict[str, str] = {}
    exports: dict[str, Key] = {}
    outputs: dict[tuple[str, str], Key] = {}
    accounts: dict[str, tuple[str, str]] = {}
    environments: list[str] = []
    for stack in app.node.find_all():
        if not isinstance(stack, Stack):
            continue
        stage = Stage.of(stack)
        env = stage.node.id.removeprefix("Flywheel-") if stage is not None and stage.node.scope else "toolchain"
        if env != "toolchain" and env not in environments:
            environments.append(env)
        name = stack.stack_name
        stacks[name], stack_ids[name] = env, stack.node.id
        accounts.setdefault(env, (str(stack.account), str(stack.region)))
        template = Template.from_stack(stack).to_json()
        paths: dict[str, tuple[str, ...]] = {}
        for c in stack.node.find_all():
            if isinstance(c, CfnResource) and Stack.of(c) is stack:
                parts = c.node.path.split("/")[len(stack.node.path.split("/")) :]
                while len(parts) > 1 and parts[-1] in ("Resource", "Default"):
                    parts.pop()
                paths[stack.resolve(c.logical_id)] = tuple(parts)
        for lid, res in template.get("Resources", {}).items():
            resources[(name, lid)] = Resource(
                key=(name, lid),
                type=res["Type"],
                props=res.get("Properties", {}),
                path=paths.get(lid, (lid,)),
                env=env,
                account=str(stack.account),
                region=str(stack.region),
            )
        for out_id, out in template.get("Outputs", {}).items():
            target = _local_ref(out.get("Value"))
            if target is None:
                continue
            outputs[(name, out_id)] = (name, target)
            if "Export" in out and isinstance(out["Export"].get("Name"), str):
                exports[out["Export"]["Name"]] = (name, target)
    return App(resources, stacks, stack_ids, exports, outputs, tuple(environments), accounts)


def _local_ref(value: Any) -> str | None:
    if isinstance(value, dict):
        if isinstance(value.get("Ref"), str):
            return str(value["Ref"])
        if isinstance(value.get("Fn::GetAtt"), list):
            return str(value["Fn::GetAtt"][0])
    return None


# -- references ----------------------------------------------------------------------------------------------


class References:
    """Resolves every reference in a resource's properties to the resources (or runtime names) it names."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.runtime_kinds: dict[Key, set[str]] = defaultdict(set)
        self.by_name: dict[tuple[str, str], list[tuple[str, Key]]] = defaultdict(list)
        for res in app.resources.values():
            for (service, _kind), (cfn_type, prop) in NAMED.items():
                if res.type != cfn_type:
                    continue
                value: Any = res.props
                for part in prop:
                    value = value.get(part) if isinstance(value, dict) else None
                if isinstance(value, str):
                    name = value
                    if res.type == "AWS::IAM::Role":
                        name = f"{res.props.get('Path', '/')}{value}".lstrip("/")
                    entry = (name, res.key)
                    if entry not in self.by_name[(service, res.account)]:
                        self.by_name[(service, res.account)].append(entry)

    def of(self, res: Resource, value: Any) -> Iterator[Key]:
        """Resources ``value`` (part of ``res``'s properties) refers to."""
        if isinstance(value, str):
            yield from self.literal(res, value)
        elif isinstance(value, list):
            for item in value:
                yield from self.of(res, item)
        elif isinstance(value, dict):
            if isinstance(value.get("Ref"), str):
                key = (res.key[0], value["Ref"])
                if key in self.app.resources:
                    yield key
                return
            if isinstance(value.get("Fn::GetAtt"), list):
                key = (res.key[0], str(value["Fn::GetAtt"][0]))
                if key in self.app.resources:
                    yield key
                return
            if isinstance(value.get("Fn::ImportValue"), str):
                if value["Fn::ImportValue"] in self.app.exports:
                    yield self.app.exports[value["Fn::ImportValue"]]
                return
            if isinstance(value.get("Fn::GetStackOutput"), dict):
                out = value["Fn::GetStackOutput"]
                found = self.app.outputs.get((str(out.get("StackName")), str(out.get("OutputName"))))
                if found is not None:
                    yield found
                return
            if "Fn::Sub" in value:
                sub = value["Fn::Sub"]
                text = sub if isinstance(sub, str) else sub[0]
                for name in re.findall(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z]+)?\}", text):
                    if (res.key[0], name) in self.app.resources:
                        yield (res.key[0], name)
                return
            if "Fn::Join" in value:
                yield from self._join(res, value["Fn::Join"])
                return
            for item in value.values():
                yield from self.of(res, item)

    def _join(self, res: Resource, join: Any) -> Iterator[Key]:
        parts = join[1] if isinstance(join, list) and len(join) == 2 and isinstance(join[1], list) else []
        found = False
        for part in parts:
            if not isinstance(part, str):
                for key in self.of(res, part):
                    found = True
                    yield key
        if not found and all(isinstance(p, str) for p in parts):
            yield from self.literal(res, "".join(parts))

    def literal(self, res: Resource, text: str) -> Iterator[Key]:
        """An ARN (possibly with wildcards) resolved against physical names; SageMaker resources that code
        creates at run time become runtime keys."""
        match = ARN.match(text)
        if match is None:
            return
        service, _region, account, rest = match.groups()
        account = account or res.account
        kind, _, name = rest.partition("/") if "/" in rest.split(":")[0] else rest.partition(":")
        if service == "sagemaker" and kind in RUNTIME and name:
            base = re.sub(r"-v\*?$|\*$", "", name)
            env = next((e for e, (acct, _r) in self.app.accounts.items() if acct == account), res.env)
            self.runtime_kinds[(f"runtime:{env}", base)].add(kind)
            yield (f"runtime:{env}", base)
            return
        if (service, kind) not in NAMED or not name:
            return
        if kind == "model-package":
            name = name.split("/")[0]
        for physical, key in self.by_name.get((service, account), []):
            if physical == name or (("*" in name or "?" in name) and fnmatch.fnmatchcase(physical, name)):
                yield key


def join_suffix(value: Any) -> str | None:
    """The S3 prefix of an ``arn:aws:s3:::<bucket ref>/<prefix>`` join, if any."""
    if isinstance(value, dict) and "Fn::Join" in value:
        parts = value["Fn::Join"][1]
        if parts and isinstance(parts[-1], str) and parts[-1].startswith("/") and not isinstance(parts[-2], str):
            return parts[-1][1:]
    return None


# -- the graph -----------------------------------------------------------------------------------------------


@dataclass
class Graph:
    nodes: dict[Key, Node]
    edges: set[Edge]
    owner: dict[Key, Key]  # every resource -> the node it is drawn as
    passed: dict[Key, str] = field(default_factory=dict)  # a role drawn with the resource that passes it
    direct: dict[Key, Key] = field(default_factory=dict)  # what a folded resource was folded into


def build_graph(app: App) -> Graph:
    """Fold, group and connect every resource of the app (the whole picture; views filter it)."""
    refs = References(app)
    owner: dict[Key, Key] = {}
    resources = app.resources

    def first_ref(res: Resource, value: Any) -> Key | None:
        return next(iter(sorted(set(refs.of(res, value)))), None)

    # 1. attachments and execution roles
    role_users: dict[Key, list[Key]] = defaultdict(list)
    for res in resources.values():
        path = EXECUTION_ROLE.get(res.type)
        if path is None:
            continue
        value: Any = res.props
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        target = first_ref(res, value)
        if target is not None and resources[target].type == "AWS::IAM::Role":
            role_users[target].append(res.key)
    for role, runners in role_users.items():
        if len(runners) == 1:
            owner[role] = runners[0]
    for res in resources.values():
        if res.type in ATTACHED:
            target = first_ref(res, res.props.get(ATTACHED[res.type]))
            if target is not None:
                owner[res.key] = target
        elif res.type.startswith("Custom::"):
            target = first_ref(res, {k: v for k, v in res.props.items() if k != "ServiceToken"})
            provider = first_ref(res, res.props.get("ServiceToken"))
            if target is not None:
                owner[res.key] = target
            if provider is not None:
                owner[provider] = res.key
                for other in resources.values():  # the provider's role
                    if other.key[0] == provider[0] and other.path[:-1] == resources[provider].path[:-1]:
                        owner.setdefault(other.key, res.key)
    # managed policies attached through a role's ManagedPolicyArns
    for res in resources.values():
        if res.type == "AWS::IAM::Role":
            for key in refs.of(res, res.props.get("ManagedPolicyArns", [])):
                if resources[key].type == "AWS::IAM::ManagedPolicy":
                    owner.setdefault(key, res.key)
    # 2. log groups, dead-letter queues and their alarms serve the one resource that references them
    users: dict[Key, set[Key]] = defaultdict(set)
    passed: dict[Key, str] = {}
    for res in resources.values():
        if res.type in ATTACHED or res.type in ("AWS::IAM::Role",) or res.type.startswith("Custom::"):
            continue
        for key in refs.of(res, {k: v for k, v in res.props.items() if k not in IGNORED_PROPS}):
            if key != res.key:
                users[key].add(res.key)
    for key, by in users.items():
        if key not in resources or key in owner:
            continue
        res = resources[key]
        direct = {b for b in by if resources[b].type not in ("AWS::CloudWatch::Alarm", "AWS::Events::Rule")}
        if res.type == "AWS::Logs::LogGroup" and len(direct) == 1:
            owner[key] = next(iter(direct))
        if res.type == "AWS::SQS::Queue":
            fns = {b for b in by if resources[b].type == "AWS::Lambda::Function"}
            if len(fns) == 1:
                owner[key] = next(iter(fns))

    # roles a resource passes to the jobs or models it creates (and nothing else names) are drawn with it
    for key, by in sorted(users.items()):
        if key not in resources:
            continue
        res = resources[key]
        if res.type != "AWS::IAM::Role" or key in owner or is_people_role(res) or len(by) != 1:
            continue
        (user,) = by
        if resources[user].type in PASSES_ROLES:
            owner[key] = user
            passed[key] = _role_name(res)

    def root(key: Key) -> Key:
        seen = set()
        while key in owner and key not in seen:
            seen.add(key)
            key = owner[key]
        return key

    for res in resources.values():
        if res.type == "AWS::CloudWatch::Alarm":
            watched = {root(k) for k in refs.of(res, res.props.get("Dimensions", []))}
            if len(watched) == 1 and resources.get(next(iter(watched))) is not None:
                target = next(iter(watched))
                if resources[target].path[:-1] == res.path[:-1]:
                    owner[res.key] = target
    # 3. grouped types: one node per construct (and type)
    groups: dict[tuple[str, str, tuple[str, ...]], list[Key]] = defaultdict(list)
    for res in resources.values():
        if res.type in GROUPED and root(res.key) == res.key:
            groups[(res.key[0], res.type, res.path[:-1])].append(res.key)
    members: dict[Key, list[Key]] = {}
    for (_stack, _type, _parent), keys in groups.items():
        keys.sort()
        if len(keys) > 1:
            for key in keys[1:]:
                owner[key] = keys[0]
            members[keys[0]] = keys

    graph = Graph(nodes={}, edges=set(), owner={}, passed=passed, direct=dict(owner))
    for res in resources.values():
        graph.owner[res.key] = root(res.key)
    folded: dict[Key, list[Key]] = defaultdict(list)
    for key, node in graph.owner.items():
        if node != key:
            folded[node].append(key)
    for res in resources.values():
        if graph.owner[res.key] == res.key and res.type in TYPES:
            graph.nodes[res.key] = _node(app, res, members.get(res.key, [res.key]), folded[res.key])
    _edges(app, refs, graph)
    return graph


#: Construct ids that only repeat the resource type: ``TabularPipeline/Pipeline`` is titled ``TabularPipeline``.
GENERIC = frozenset({"Pipeline", "ModelPackageGroup", "Table", "StateMachine", "Schedule", "Role", "Provider"})


def _role_name(res: Resource) -> str:
    """``Preprocessing`` of ``.../PreprocessingRole``, ``Model`` of ``.../ModelRole/Role``."""
    parts = [p.removesuffix("Role") for p in res.path if p.removesuffix("Role")]
    return parts[-1] if parts else res.path[-1]


def _title(path: tuple[str, ...]) -> str:
    parts: list[str] = []
    for p in path:
        if p not in ("Team", "Lake", "Resource", "Default", "Function", "Bucket") and (not parts or parts[-1] != p):
            parts.append(p)
    if len(parts) > 1 and parts[-1] in GENERIC:
        parts.pop()
    return " / ".join(parts[-2:]) if parts else path[-1]


def _node(app: App, res: Resource, members: list[Key], folded: list[Key]) -> Node:
    kind, category = TYPES[res.type]
    node = Node(key=res.key, kind=kind, title=_title(res.path), category=category, members=len(members))
    node.cluster = (res.key[0], *_cluster(res.path))
    props = res.props
    if len(members) > 1:
        node.kind = f"{kind}s {TIMES}{len(members)}"
        node.title = _title(res.path[:-1]) if len(res.path) > 1 else node.title
        names = sorted(_member_name(app.resources[m]) for m in members)
        node.lines.append(_wrap(", ".join(names)))
    elif res.type == "AWS::EC2::VPCEndpoint":
        node.lines.append(_member_name(res))
    if res.type == "AWS::SageMaker::Pipeline":
        node.lines.append(str(props.get("PipelineName", "")))
    elif res.type == "AWS::SageMaker::ModelPackageGroup":
        node.lines.append(str(props.get("ModelPackageGroupName", "")))
    elif res.type == "AWS::Scheduler::Schedule":
        node.lines.append(str(props.get("ScheduleExpression", "")))
    elif res.type == "AWS::Events::Rule":
        node.lines.append(_pattern(props.get("EventPattern", {})))
    elif res.type == "AWS::EC2::VPC":
        subnets = sum(1 for k in folded if app.resources[k].type == "AWS::EC2::Subnet")
        sgs = sum(1 for k in folded if app.resources[k].type == "AWS::EC2::SecurityGroup")
        flow = any(app.resources[k].type == "AWS::EC2::FlowLog" for k in folded)
        node.lines.append(f"{subnets} isolated subnet{'s' if subnets != 1 else ''}, {sgs} security groups")
        if flow:
            node.lines.append("flow logs")
    elif res.type == "AWS::CloudTrail::Trail":
        node.lines.append("S3 data events" if props.get("EventSelectors") else "management events")
    elif res.type == "AWS::Lambda::Function":
        handler = str(props.get("Handler", ""))
        node.lines.append(handler.removesuffix(".lambda_handler").removesuffix(".handler"))
    elif res.type == "AWS::IAM::Role" and props.get("RoleName"):
        node.lines.append(str(props["RoleName"]))
    if is_people_role(res):
        node.category = "people"
        node.lines.append("assumed by people: grants in docs/access.md")
    extras = Counter(
        TYPES.get(app.resources[k].type, (app.resources[k].type.split("::")[-1],))[0]
        for k in folded
        if k not in members and app.resources[k].type not in ATTACHED and not app.resources[k].type.startswith("Custom")
    )
    if res.type == "AWS::EC2::VPC":
        extras = Counter()
    if extras:
        node.lines.append("+ " + ", ".join(f"{n} {TIMES}{c}" if c > 1 else n for n, c in sorted(extras.items())))
    node.lines = [line for line in node.lines if line]
    return node


def _member_name(res: Resource) -> str:
    if res.type == "AWS::EC2::VPCEndpoint":
        service = res.props.get("ServiceName")
        text = service if isinstance(service, str) else ""
        if not text and isinstance(service, dict):
            text = "".join(p for p in service.get("Fn::Join", ["", []])[1] if isinstance(p, str))
        name = text.rsplit(".", 1)[-1] if text.count(".") <= 3 else ".".join(text.split(".")[-2:])
        name = re.sub(r"^com\.amazonaws\.[a-z0-9-]+\.", "", text) if text.startswith("com.") else name.lstrip(".")
        return f"{name} (gateway)" if res.props.get("VpcEndpointType") == "Gateway" else name
    if res.type == "AWS::CloudWatch::Alarm":
        alarm = res.props.get("AlarmName")
        return str(alarm).split("-", 3)[-1] if isinstance(alarm, str) else res.path[-1].removesuffix("Alarm")
    return res.path[-1].removesuffix("Database")


def _wrap(text: str, width: int = 44) -> str:
    """Break each line of ``text`` at spaces before ``width`` characters."""
    out = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            if line and len(line) + len(word) + 1 > width:
                out.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        out.append(line)
    return "\n".join(out)


def _cluster(path: tuple[str, ...]) -> tuple[str, ...]:
    parts = [p for p in path[:-1] if p not in ("Team", "Lake")]
    return tuple(parts[:1])


def _pattern(pattern: Mapping[str, Any]) -> str:
    kinds = pattern.get("detail-type") or pattern.get("source") or []
    text = ", ".join(str(k) for k in kinds)
    detail = pattern.get("detail", {})
    key = detail.get("object", {}).get("key") if isinstance(detail.get("object"), dict) else None
    if key:
        text += " " + ", ".join(str(k.get("prefix", k)) if isinstance(k, dict) else str(k) for k in key)
    return _wrap(text.replace("SageMaker ", ""), 40)


# -- edges ---------------------------------------------------------------------------------------------------

VERBS = (
    ("read", re.compile(r"^s3:(Get|List|Head)|:(Get|Describe|List|BatchGet|Query|Scan)")),
    ("write", re.compile(r"^s3:(Put|Delete|Abort|Restore)|:(Put|BatchWrite|Update|Delete)Item")),
    ("decrypt", re.compile(r"^kms:(Decrypt|ReEncryptFrom)")),
    ("encrypt", re.compile(r"^kms:(Encrypt|GenerateDataKey|ReEncryptTo)")),
    ("start", re.compile(r":Start|:Invoke|:Send|:Publish|:PutMetric|:PutEvents|:RunTask")),
    ("manage", re.compile(r"^(?!s3:).*:(Create|Update|Delete|Stop|Add|Tag|Untag|Set|Enable|Disable|Pass)")),
)


def _verbs(actions: Iterable[str]) -> list[str]:
    out = []
    for verb, pattern in VERBS:
        if any(pattern.search(a) or a.endswith(":*") for a in actions):
            out.append(verb)
    return out


def _edges(app: App, refs: References, graph: Graph) -> None:
    resources, owner = app.resources, graph.owner

    def root(key: Key) -> Key:
        return owner.get(key, key)

    grants: dict[tuple[Key, Key], dict[str, tuple[set[str], set[str]]]] = defaultdict(dict)

    def add(src: Key, dst: Key, kind: str, label: str = "") -> None:
        src, dst = owner.get(src, src), owner.get(dst, dst)
        if src != dst:
            graph.edges.add(Edge(src, dst, kind, label))

    people = {k for k, r in resources.items() if is_people_role(r)}
    for res in resources.values():
        props = res.props
        attached = graph.direct.get(res.key)
        if res.type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and attached is not None:
            for stmt in _statements(props.get("PolicyDocument", {})):
                if stmt.get("Effect") != "Allow":
                    continue
                actions = stmt.get("Action", [])
                actions = [actions] if isinstance(actions, str) else list(actions)
                targets = stmt.get("Resource", [])
                for target_value in targets if isinstance(targets, list) else [targets]:
                    prefix = join_suffix(target_value)
                    prefixes = (
                        stmt.get("Condition", {}).get("StringLike", {}).get("s3:prefix", [])
                        if isinstance(stmt.get("Condition"), dict)
                        else []
                    )
                    role = attached
                    for key in set(refs.of(res, target_value)):
                        verbs, where = grants[(root(role), key)].setdefault(graph.passed.get(role, ""), (set(), set()))
                        verbs.update(_verbs(actions))
                        if prefix and prefix != "*":
                            where.add(prefix)
                        where.update(p for p in ([prefixes] if isinstance(prefixes, str) else prefixes) if p != "*")
            continue
        if res.type in ATTACHED or res.type.startswith("Custom::"):
            continue
        if res.type == "AWS::Events::Rule":
            pattern = props.get("EventPattern", {})
            for key in refs.of(res, pattern):
                add(key, res.key, "event")
            detail = pattern.get("detail", {}) if isinstance(pattern, dict) else {}
            for field_name, service, kind in (
                ("ModelPackageGroupName", "sagemaker", "model-package-group"),
                ("EndpointName", "sagemaker", "endpoint"),
            ):
                for name in detail.get(field_name, []) if isinstance(detail, dict) else []:
                    arn = f"arn:aws:{service}:{res.region}:{res.account}:{kind}/{name}"
                    for key in refs.literal(res, arn):
                        add(key, res.key, "event")
            for target in props.get("Targets", []):
                for key in refs.of(res, target.get("Arn")):
                    add(res.key, key, "event")
            continue
        if res.type == "AWS::Scheduler::Schedule":
            for key in refs.of(res, props.get("Target", {}).get("Arn")):
                add(res.key, key, "event", str(props.get("ScheduleExpression", "")))
            continue
        if res.type == "AWS::CloudWatch::Alarm":
            for key in refs.of(res, props.get("AlarmActions", [])):
                add(res.key, key, "event", "alarm")
            continue
        if res.type == "AWS::CodePipeline::Pipeline":
            for stage in props.get("Stages", []):
                for action in stage.get("Actions", []):
                    stack = action.get("Configuration", {}).get("StackName")
                    if isinstance(stack, str) and stack in app.stacks:
                        graph.edges.add(Edge(res.key, ("stack", stack), "deploy", stage.get("Name", "")))
        if res.type == "AWS::CloudWatch::Dashboard":
            continue  # its widgets name most of the team's resources: the picture would be all dashboard
        skip = IGNORED_PROPS | {"Stages"}
        for key in refs.of(res, {k: v for k, v in props.items() if k not in skip}):
            if resources[key].type == "AWS::KMS::Key" and resources[root(res.key)].type not in ENCRYPTED:
                continue  # log-group and queue encryption of a compute resource: not worth a line
            if resources[key].type == "AWS::IAM::Role" and res.type in EXECUTION_ROLE:
                add(res.key, key, "use", "passes role" if res.type == "AWS::Lambda::Function" else "runs jobs as")
            else:
                add(res.key, key, "use")
    for (src, dst), by_role in grants.items():
        if dst in resources and resources[dst].type == "AWS::KMS::Key":
            continue  # a key grant goes with the data grant it serves (docs/access.md lists both)
        if src in people:
            continue  # people's roles: their grants are the access table (docs/access.md), not lines
        # S3 grants carry their verbs and prefixes (and which passed role holds them); others are plain lines
        add(src, dst, "grant", _grant_label(by_role))
    granted = {(e.src, e.dst) for e in graph.edges if e.kind == "grant"}
    graph.edges -= {e for e in graph.edges if e.kind == "use" and (e.src, e.dst) in granted}
    # a runtime node per runtime key that any edge names
    for edge in list(graph.edges):
        for key in (edge.src, edge.dst):
            if key[0].startswith("runtime:") and key not in graph.nodes:
                kinds = refs.runtime_kinds[key]
                what = sorted(k for k in ("endpoint-config", "model") if k in kinds)
                graph.nodes[key] = Node(
                    key=key,
                    kind=RUNTIME["endpoint" if "endpoint" in kinds else sorted(kinds)[0]],
                    title=key[1],
                    lines=[
                        f"created at run time{' (+ ' + ', '.join(what) + 's)' if 'endpoint' in kinds and what else ''}"
                    ],
                    category="ml",
                    cluster=(),
                    runtime=True,
                )


def _grant_label(by_role: Mapping[str, tuple[set[str], set[str]]]) -> str:
    """``<prefixes>: read · Preprocessing, Training: write`` — S3 prefixes, then who may do what there (the
    resource's own role first, unnamed; then the roles it passes)."""
    by_where: dict[tuple[str, ...], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for role, (verbs, where) in by_role.items():
        if where:
            by_where[tuple(sorted(where))]["/".join(v for v, _ in VERBS if v in verbs)].append(role)
    parts = []
    for prefixes, by_verbs in sorted(by_where.items()):
        who: list[str] = []
        for allowed, roles in sorted(by_verbs.items()):
            named = sorted(r for r in roles if r)
            if "" in roles:
                who.insert(0, allowed)
            if named:
                who.append(f"{', '.join(named)}: {allowed}")
        parts.append(f"{', '.join(prefixes)}\n{' · '.join(who)}")
    return "\n".join(parts)


def is_people_role(res: Resource) -> bool:
    """A role that people (or another account's identities, or a CI's OIDC identity) assume: its trust
    policy names no AWS service."""
    if res.type != "AWS::IAM::Role":
        return False
    trust = _statements(res.props.get("AssumeRolePolicyDocument", {}))
    return bool(trust) and not any(isinstance(s.get("Principal"), dict) and "Service" in s["Principal"] for s in trust)


def _statements(doc: Any) -> list[Mapping[str, Any]]:
    stmts = doc.get("Statement", []) if isinstance(doc, dict) else []
    return [stmts] if isinstance(stmts, dict) else list(stmts)


# -- views and DOT -------------------------------------------------------------------------------------------

EDGE_STYLE = {
    "event": 'color="#7b3fbf", penwidth=1.6',
    "grant": 'color="#c0392b", style=dashed, fontcolor="#c0392b"',
    "use": 'color="#8a9199"',
    "deploy": 'color="#00838f", penwidth=2, fontcolor="#00838f"',
}


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _id(key: Key) -> str:
    return _q(f"{key[0]}/{key[1]}")


def _label(node: Node) -> str:
    return "\n".join(
        [f"{node.kind}: {node.title}" if node.members == 1 else f"{node.kind} — {node.title}", *node.lines]
    )


def _node_dot(node: Node, indent: str) -> str:
    style = "rounded,filled,dashed" if node.runtime else "rounded,filled"
    fill = COLOURS[node.category]
    return f"{indent}{_id(node.key)} [label={_q(_label(node))}, style={_q(style)}, fillcolor={_q(fill)}];"


def _legend() -> list[str]:
    rows = [
        ("#7b3fbf", "━━━▶", "event: rule pattern / target, schedule, alarm action"),
        ("#c0392b", "╍╍╍▶", "IAM grant (S3: prefixes and verbs; KMS grants left out)"),
        ("#8a9199", "───▶", "reference (Ref, GetAtt, import, ARN)"),
        ("#00838f", "━━━▶", "the toolchain deploys"),
    ]
    cells = "".join(
        f'<tr><td align="left"><font color="{colour}">{arrow}</font></td><td align="left">{text}</td></tr>'
        for colour, arrow, text in rows
    )
    notes = (
        '<tr><td colspan="2" align="left">dashed box: created at run time (named by grants)</td></tr>'
        '<tr><td colspan="2" align="left">roles people assume: their grants are docs/access.md</td></tr>'
    )
    return [
        f'  legend [shape=plain, fontsize=9, label=<<table border="1" cellborder="0" color="#b0b6bc" '
        f'cellpadding="2"><tr><td colspan="2"><b>legend</b></td></tr>{cells}{notes}</table>>];'
    ]


def _render(
    title: str,
    nodes: dict[Key, Node],
    edges: Iterable[Edge],
    cluster_labels: Mapping[str, str],
    *,
    rankdir: str = "TB",
    extra: Iterable[str] = (),
    order: Iterable[str] = (),
) -> str:
    lines = [
        "// Generated by `make diagrams` (flywheel/diagram.py) from the synthesized app. Do not edit.",
        "digraph flywheel {",
        f"  graph [label={_q(title)}, labelloc=t, fontsize=18, fontname=Helvetica, rankdir={rankdir}, compound=true,"
        ' newrank=true, nodesep=0.25, ranksep=0.9, splines=true, bgcolor="white"];',
        '  node [shape=box, fontname=Helvetica, fontsize=10, margin="0.12,0.06", color="#6b7280"];',
        "  edge [fontname=Helvetica, fontsize=8, arrowsize=0.6];",
    ]
    tree: dict[tuple[str, ...], list[Node]] = defaultdict(list)
    sizes = Counter(node.cluster[:i] for node in nodes.values() for i in range(1, len(node.cluster) + 1))
    for node in nodes.values():
        # a construct with one node drawn is no box of its own
        cluster = node.cluster
        while len(cluster) > 1 and sizes[cluster] == 1:
            cluster = cluster[:-1]
        tree[cluster].append(node)
    prefixes = sorted({c[:i] for c in tree for i in range(1, len(c) + 1)})

    def emit(prefix: tuple[str, ...], depth: int) -> None:
        indent = "  " * (depth + 1)
        name = "cluster_" + re.sub(r"[^A-Za-z0-9]", "_", "/".join(prefix))
        label = cluster_labels.get(prefix[0], prefix[0]) if len(prefix) == 1 else prefix[-1]
        colour = "#f7f8fa" if depth == 0 else "#ffffff"
        lines.append(f"{indent}subgraph {name} {{")
        lines.append(
            f"{indent}  label={_q(label)}; style={_q('rounded,filled')}; fillcolor={_q(colour)};"
            f' color="#9aa3ad"; fontsize={13 if depth == 0 else 11}; fontname=Helvetica;'
        )
        for node in sorted(tree.get(prefix, []), key=lambda n: n.key):
            lines.append(_node_dot(node, indent + "  "))
        for child in prefixes:
            if len(child) == len(prefix) + 1 and child[: len(prefix)] == prefix:
                emit(child, depth + 1)
        lines.append(f"{indent}}}")

    for node in sorted(tree.get((), []), key=lambda n: n.key):
        lines.append(_node_dot(node, "  "))
    first = {name: i for i, name in enumerate(order)}
    for prefix in sorted((p for p in prefixes if len(p) == 1), key=lambda p: (first.get(p[0], len(first)), p)):
        emit(prefix, 0)
    for edge in sorted(edges, key=lambda e: (e.src, e.dst, e.kind, e.label)):
        attrs = [EDGE_STYLE[edge.kind]]
        if edge.label:
            attrs.append(f"label={_q(_wrap(edge.label, 42))}")
        lines.append(f"  {_id(edge.src)} -> {_id(edge.dst)} [{', '.join(attrs)}];")
    lines.extend(extra)
    lines.extend(_legend())
    lines.append("}")
    return "\n".join(lines) + "\n"


def _merge(edges: Iterable[Edge]) -> list[Edge]:
    """One edge per (src, dst, kind), labels joined."""
    labels: dict[tuple[Key, Key, str], set[str]] = defaultdict(set)
    for e in edges:
        labels[(e.src, e.dst, e.kind)].add(e.label)
    return [Edge(s, d, k, "; ".join(sorted(x for x in ls if x))) for (s, d, k), ls in labels.items()]


def team_view(app: App, graph: Graph, team: str, env: str | None = None) -> str:
    """One team's stack in ``env`` (default: the first environment) and what it references."""
    env = env or app.environments[0]
    stack = next(s for s, e in app.stacks.items() if e == env and app.stack_ids[s] == f"Team-{team}")
    own = {k: n for k, n in graph.nodes.items() if k[0] == stack}
    runtime = f"runtime:{env}"
    edges = [
        e
        for e in graph.edges
        if e.kind != "deploy" and (e.src in own or e.dst in own) and not _other_runtime(e, runtime)
    ]
    nodes = dict(own)
    for e in edges:
        for key in (e.src, e.dst):
            if key not in nodes and key in graph.nodes:
                nodes[key] = graph.nodes[key]
    # a runtime node that is another team's (named by a grant pattern) is not this team's picture
    labels = {s: f"{app.stack_ids[s]} ({s})" for s in app.stacks}
    labels[stack] = f"stack {stack}"
    for key, node in list(nodes.items()):
        if node.runtime:
            nodes[key] = Node(**{**node.__dict__, "cluster": (stack,)})
    edges = [e for e in edges if e.src in nodes and e.dst in nodes]
    title = f"Team {team} in {env} (stack {stack}): generated from the synthesized templates by `make diagrams`"
    return _render(title, nodes, _merge(edges), labels, order=[stack])


def _other_runtime(edge: Edge, runtime: str) -> bool:
    return any(k[0].startswith("runtime:") and k[0] != runtime for k in (edge.src, edge.dst))


def platform_view(app: App, graph: Graph) -> str:
    """The toolchain and every environment's shared stacks; each team stack (and runtime resources) as one node."""
    team_stacks = {s for s in app.stacks if app.stack_ids[s].startswith("Team-")}
    collapse: dict[Key, Key] = {}
    nodes: dict[Key, Node] = {}
    for stack in sorted(team_stacks):
        env = app.stacks[stack]
        key = (stack, "Team")
        team = app.stack_ids[stack].removeprefix("Team-")
        counts = Counter(r.type for r in app.resources.values() if r.key[0] == stack)
        pipelines = sorted(
            str(r.props.get("PipelineName", "")).removeprefix(f"flywheel-{env}-{team}-")
            for r in app.resources.values()
            if r.key[0] == stack and r.type == "AWS::SageMaker::Pipeline"
        )
        lines = [
            f"pipelines: {', '.join(pipelines)}",
            f"Lambdas {counts['AWS::Lambda::Function']} · rules {counts['AWS::Events::Rule']}"
            f" · schedules {counts['AWS::Scheduler::Schedule']}",
            f"alarms {counts['AWS::CloudWatch::Alarm']} · roles {counts['AWS::IAM::Role']}"
            f" · {sum(counts.values())} resources",
        ]
        if env == app.environments[0]:
            lines.append(f"detail: team-{team}.svg")
        nodes[key] = Node(
            key=key, kind="team stack", title=team, lines=lines, category="ml", cluster=(f"env:{env}", stack)
        )
        for k in graph.nodes:
            if k[0] == stack:
                collapse[k] = key
    for k, node in graph.nodes.items():
        if k in collapse:
            continue
        if node.runtime:
            env = k[0].removeprefix("runtime:")
            team_key = next((t for t in nodes if app.stacks.get(t[0]) == env and _runtime_of(node, t, app)), None)
            if team_key is not None:
                collapse[k] = team_key
                continue
        env = app.stacks.get(k[0], "")
        cluster = (f"env:{env}", k[0]) if env != "toolchain" else (k[0],)
        nodes[k] = Node(**{**node.__dict__, "cluster": (*cluster, *node.cluster[1:])})
    anchors: dict[str, Key] = {}
    for key in sorted(nodes):
        anchors.setdefault(key[0], key)
    edges: list[Edge] = []
    for e in graph.edges:
        src, dst = collapse.get(e.src, e.src), collapse.get(e.dst, e.dst)
        if e.kind == "deploy":
            continue
        if src == dst or src not in nodes or dst not in nodes:
            continue
        team_edge = src in collapse.values() or dst in collapse.values()
        edges.append(Edge(src, dst, e.kind, "" if team_edge and e.kind != "event" else e.label))
    # the toolchain deploys each stage (one edge per environment, to its stacks' cluster)
    deploys: dict[tuple[Key, str], list[str]] = defaultdict(list)
    for e in graph.edges:
        if e.kind == "deploy":
            deploys[(e.src, app.stacks[e.dst[1]])].append(e.label)
    deploy_edges = []
    for (src, env), _labels in sorted(deploys.items()):
        stage_stacks = sorted(s for s, e in app.stacks.items() if e == env)
        target = anchors.get(next((s for s in stage_stacks if app.stack_ids[s] == "Security"), stage_stacks[0]))
        if target is None:
            continue
        step = app.environments.index(env) + 1
        approval = _has_approval(app, src, env)
        label = f"{step}. deploy {len(stage_stacks)} stacks" + (" after manual approval" if approval else "")
        deploy_edges.append((src, target, env, label))
    labels = {s: f"{app.stack_ids[s]}" for s in app.stacks}
    for env in app.environments:
        account, region = app.accounts[env]
        labels[f"env:{env}"] = f"environment {env} (account {account}, {region})"
    labels["Flywheel-Toolchain"] = "Flywheel-Toolchain (toolchain account)"
    title = "Flywheel platform: generated from the synthesized app by `make diagrams` (team stacks: one node each)"
    extra = [
        f"  {_id(src)} -> {_id(dst)} [{EDGE_STYLE['deploy']}, label={_q(label)}, lhead={_q(_cluster_name(env))}];"
        for src, dst, env, label in deploy_edges
    ]
    order = ["Flywheel-Toolchain", *(f"env:{name}" for name in app.environments)]
    return _render(title, nodes, _merge(edges), labels, rankdir="LR", extra=extra, order=order)


def _cluster_name(env: str) -> str:
    """The DOT name of an environment's cluster (as :func:`_render` names it)."""
    return "cluster_" + re.sub(r"[^A-Za-z0-9]", "_", f"env:{env}")


def _runtime_of(node: Node, team_key: Key, app: App) -> bool:
    env = app.stacks[team_key[0]]
    team = app.stack_ids[team_key[0]].removeprefix("Team-")
    return node.title == f"flywheel-{env}-{team}" or node.title.startswith(f"flywheel-{env}-{team}-")


def _has_approval(app: App, pipeline: Key, env: str) -> bool:
    stage_name = f"Flywheel-{env}"
    for stage in app.resources[pipeline].props.get("Stages", []):
        if stage.get("Name") == stage_name:
            return any(a.get("ActionTypeId", {}).get("Category") == "Approval" for a in stage.get("Actions", []))
    return False


def render_all(app: App) -> dict[str, str]:
    """File name -> DOT text: ``platform.dot`` and ``team-<name>.dot`` for every team."""
    graph = build_graph(app)
    out = {"platform.dot": platform_view(app, graph)}
    first = app.environments[0]
    for stack, env in sorted(app.stacks.items()):
        if env == first and app.stack_ids[stack].startswith("Team-"):
            team = app.stack_ids[stack].removeprefix("Team-")
            out[f"team-{team}.dot"] = team_view(app, graph, team, first)
    return out


def dot_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def render_svg(dot_text: str, dot_binary: str = "dot") -> str:
    """The SVG Graphviz renders from ``dot_text``, stamped with the DOT's SHA-256."""
    svg = subprocess.run(  # noqa: S603 - a fixed binary, our own input
        [dot_binary, "-Tsvg"], input=dot_text, capture_output=True, text=True, check=True
    ).stdout
    return stamp_svg(svg, dot_text)


def stamp_svg(svg: str, dot_text: str) -> str:
    """``svg`` with a comment recording the SHA-256 of the DOT it was rendered from (before ``<svg``)."""
    head, sep, rest = svg.partition("<svg")
    return f"{head}<!-- {SVG_STAMP} {dot_sha256(dot_text)} -->\n{sep}{rest}"


def svg_stamp(svg_text: str) -> str | None:
    match = re.search(re.escape(SVG_STAMP) + r" ([0-9a-f]{64})", svg_text)
    return match.group(1) if match else None


def stale(out_dir: Path, files: Mapping[str, str]) -> list[str]:
    """What is out of date under ``out_dir`` against freshly rendered ``files`` (empty: current): a missing,
    changed or extra DOT file, an SVG that is missing or was rendered from another DOT."""
    problems = []
    committed = {p.name for p in out_dir.glob("*.dot")} if out_dir.is_dir() else set()
    for name in sorted(set(files) | committed):
        path = out_dir / name
        if name not in files:
            problems.append(f"{path} belongs to no team or view any more")
        elif not path.is_file():
            problems.append(f"{path} is missing")
        elif path.read_text(encoding="utf-8") != files[name]:
            problems.append(f"{path} differs from the synthesized app")
        svg = path.with_suffix(".svg")
        if name in files and (
            not svg.is_file() or svg_stamp(svg.read_text(encoding="utf-8")) != dot_sha256(files[name])
        ):
            problems.append(f"{svg} was not rendered from the current {name}")
    return problems


def write(out_dir: Path, *, svg: bool = True) -> list[Path]:
    """Regenerate every DOT (and SVG) under ``out_dir``; remove diagrams of teams that no longer exist."""
    files = render_all(read_app(build_app()))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stale in sorted(out_dir.glob("*.dot")) + sorted(out_dir.glob("*.svg")):
        if stale.with_suffix(".dot").name not in files:
            stale.unlink()
    for name, text in sorted(files.items()):
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
        if svg:
            svg_path = path.with_suffix(".svg")
            svg_path.write_text(render_svg(text), encoding="utf-8")
            written.append(svg_path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel.diagram", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DIAGRAMS_DIR, help="output directory (default: docs/diagrams)")
    parser.add_argument("--no-svg", action="store_true", help="write the DOT files only (no Graphviz needed)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when the committed files are stale")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale(args.out, render_all(read_app(build_app())))
        for problem in problems:
            print(f"flywheel diagram: {problem}", file=sys.stderr)
        if problems:
            print(f"flywheel diagram: the diagrams are stale: run `{REGENERATE}`", file=sys.stderr)
        return 1 if problems else 0
    if not args.no_svg and shutil.which("dot") is None:
        print(
            "flywheel diagram: Graphviz `dot` is not installed: run `make diagrams` (installs the Debian package "
            "graphviz) or `apt-get install graphviz`; `--no-svg` writes the DOT files only",
            file=sys.stderr,
        )
        return 2
    for path in write(args.out, svg=not args.no_svg):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
