"""Mutation suite: deliberate weakenings, each of which our tests or rules must catch (issue 8).

Every case weakens one control — a JSON transform on a deep copy of the session's synthesized templates,
on a pipeline definition, or a monkeypatch of a validator's data — and runs the *same* checks the real
tests use: the template rules of :mod:`stacks.policy_rules`, the problem-returning checks of
:mod:`tests.security.boundary_checks`, or the real test functions of ``tests/stacks``, ``tests/config``
and ``tests/pipelines`` called on the weakened input (:func:`test_fn`: a failing assertion becomes a
problem). Nothing is re-implemented here, so a check loosened in its test is loosened here too.

For each case: the unweakened input passes every named check, the weakened one makes *every* named check
report at least one problem, and the problems name the weakness (``expect``). ``make test`` prints
``mutation suite: N/N weakenings caught`` (``tests/security/conftest.py``).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import json
import linecache
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

import naming
from flywheel.access_report import duty_problems, intent_problems, matrix_problems
from stacks.components.data_lake import ZONES
from stacks.components.guardrails import UNUSED_SAGEMAKER_ACTIONS
from stacks.policy_rules import RULES
from tests.cdk_fixtures import SynthesizedStage, SynthesizedToolchain
from tests.config import test_deployment_settings as deployment_tests
from tests.config import test_loader as loader_tests
from tests.security import boundary_checks as bc
from tests.security import test_boundary as boundary_tests
from tests.stacks import test_audit_stack as audit_tests
from tests.stacks import test_batch_scoring_stack as scoring_tests
from tests.stacks import test_data_lake_stack as lake_tests
from tests.stacks import test_erasure_stack as erasure_tests
from tests.stacks import test_lifecycle_wiring as lifecycle_tests
from tests.stacks import test_monitoring as monitoring_tests
from tests.stacks import test_security_stack as security_tests
from tests.stacks import test_team_stack as team_tests
from tests.stacks import test_toolchain as toolchain_tests

Json = Any


def _definition_tests():
    """``tests/pipelines/tabular/test_definition.py`` (no package: pytest imports it by its file name)."""
    folder = str(Path(__file__).resolve().parents[1] / "pipelines" / "tabular")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("test_definition")


definition_tests = _definition_tests()


def _step_tests(name: str):
    """A test module of ``tests/pipelines/tabular`` that imports the step code as plain modules (as the
    container does): ``tabular_helpers`` first puts ``pipelines/tabular`` on ``sys.path``."""
    importlib.import_module("tabular_helpers")
    return importlib.import_module(name)


gate_tests = _step_tests("test_tabular_gate")
fairness_tests = _step_tests("test_tabular_fairness")

# -- what a check sees ------------------------------------------------------------------------------------


@dataclass
class Subject:
    """The input of the checks: every environment's stage (one possibly weakened), a module-built pipeline
    definition, a scratch directory for config tests."""

    stages: dict[str, SynthesizedStage]
    env: str
    definition: dict[str, Any]
    local_definition: dict[str, Any]
    tmp_path: Path
    notes: list[str] = field(default_factory=list)
    toolchain: SynthesizedToolchain | None = None

    @property
    def stage(self) -> SynthesizedStage:
        return self.stages[self.env]

    @cached_property
    def templates(self) -> dict[str, dict[str, Any]]:
        """``{Security, DataLake, Audit, Team-<name>: template JSON}`` of the subject's environment."""
        return {name: t.to_json() for name, t in self.stage.templates().items()}

    @cached_property
    def lake(self):
        return team_tests.lake.__wrapped__(self.stage)

    @cached_property
    def roles(self):
        return team_tests.roles.__wrapped__(self.lake, self.stage)

    def argument(self, name: str) -> Any:
        """What a test function's fixture argument ``name`` is for this subject."""
        return {
            "dev": lambda: self.stage,
            "prod": lambda: self.stage,
            "env": lambda: self.stage,
            "stages": lambda: self.stages,
            "lake": lambda: self.lake,
            "roles": lambda: self.roles,
            "definition": lambda: self.definition,
            "local_definition": lambda: self.local_definition,
            "tmp_path": lambda: self.tmp_path,
            "toolchain": lambda: self.toolchain,
            "pipeline": lambda: toolchain_tests.pipeline.__wrapped__(self.toolchain),
            "projects": lambda: toolchain_tests.projects.__wrapped__(self.toolchain),
        }[name]()


Check = Callable[[Subject], list[str]]


def _named(check: Check, label: str) -> Check:
    check.label = label  # type: ignore[attr-defined]
    return check


def rule(name: str) -> Check:
    """A template rule of ``stacks/policy_rules.py``."""
    return _named(lambda s: [f"[{name}] {p}" for p in RULES[name](s.templates)], f"rule {name}")


def toolchain_rule(name: str) -> Check:
    """A template rule of ``stacks/policy_rules.py`` on the toolchain's templates."""
    return _named(
        lambda s: [f"[{name}] {p}" for p in RULES[name](s.toolchain.templates())],  # type: ignore[union-attr]
        f"rule {name} (toolchain)",
    )


def boundary(fn: Callable[..., list[str]], *args: Any) -> Check:
    """A check of ``tests/security/boundary_checks.py``."""
    return _named(lambda s: fn(s.stage, *args), f"boundary_checks.{fn.__name__}")


def real_test(fn: Callable[..., None], **fixed: Any) -> Check:
    """A real test function called on the subject: what makes it fail is the problem."""

    def check(s: Subject) -> list[str]:
        kwargs = {n: fixed[n] if n in fixed else s.argument(n) for n in inspect.signature(fn).parameters}
        try:
            fn(**kwargs)
        except (Exception, pytest.fail.Exception) as e:  # an assertion, pytest.raises that did not, a crash
            return [f"{fn.__name__}, {_failing_line(e, fn)}: {type(e).__name__}: {e}"]
        return []

    module = fn.__module__.rpartition(".")[2]
    suffix = f"[{','.join(map(str, fixed.values()))}]" if fixed else ""
    return _named(check, f"{module}::{fn.__name__}{suffix}")


def _failing_line(error: BaseException, fn: Callable[..., None]) -> str:
    """``line N: <source>`` of the statement of ``fn`` that failed (the control the test checks)."""
    where = ""
    for frame, line in traceback.walk_tb(error.__traceback__):
        if frame.f_code is fn.__code__:
            where = f"line {line}: {linecache.getline(frame.f_code.co_filename, line).strip()}"
    return where


def every_zone(fn: Callable[..., None]) -> Check:
    """A test parametrized by zone, for every zone."""
    checks = [real_test(fn, zone=z.construct_id) for z in ZONES]
    return _named(lambda s: [p for c in checks for p in c(s)], f"{fn.__module__.rpartition('.')[2]}::{fn.__name__}[*]")


# -- how a weakening is applied -------------------------------------------------------------------------


Apply = Callable[[Subject, pytest.MonkeyPatch], Subject]


def templates(mutate: Callable[[dict[str, Json]], None], env: str = "dev") -> Apply:
    """Weaken ``env``'s synthesized templates (a deep copy; the session's stage is untouched)."""

    def apply(base: Subject, _: pytest.MonkeyPatch) -> Subject:
        stage = base.stages[env]
        weak = copy.deepcopy({name: t.to_json() for name, t in stage.templates().items()})
        mutate(weak)
        weakened = dataclasses.replace(
            stage,
            security=Template.from_json(weak["Security"]),
            data_lake=Template.from_json(weak["DataLake"]),
            audit=Template.from_json(weak["Audit"]) if stage.audit is not None else None,
            teams={name: Template.from_json(weak[f"Team-{name}"]) for name in stage.teams},
        )
        return dataclasses.replace(base, stages={**base.stages, env: weakened}, env=env)

    return apply


def definition(mutate: Callable[[dict[str, Json]], None]) -> Apply:
    """Weaken the pipeline definition built by ``tests/pipelines/tabular/test_definition.py``."""

    def apply(base: Subject, _: pytest.MonkeyPatch) -> Subject:
        weak = copy.deepcopy(base.definition)
        mutate(weak)
        return dataclasses.replace(base, definition=weak)

    return apply


class _Over:
    """``target`` with some attributes replaced."""

    def __init__(self, target: Any, **over: Any) -> None:
        self._target, self._over = target, over

    def __getattr__(self, name: str) -> Any:
        return self._over[name] if name in self._over else getattr(self._target, name)


def deployed_definition(mutate: Callable[[dict[str, Json]], None], env: str = "dev", team: str = "churn") -> Apply:
    """Weaken the definition the team's pipeline construct deploys (``definition_body``)."""

    def apply(base: Subject, _: pytest.MonkeyPatch) -> Subject:
        stage = base.stages[env]
        stack = stage.stage.teams[team]
        construct = stack.pipelines["tabular"]
        document = json.loads(construct.definition_body)
        mutate(document)
        weak_construct = _Over(construct, definition_body=json.dumps(document))
        weak_stack = _Over(stack, pipelines={**stack.pipelines, "tabular": weak_construct})
        weak_stage = _Over(stage.stage, teams={**stage.stage.teams, team: weak_stack})
        weakened = dataclasses.replace(stage, stage=weak_stage)
        return dataclasses.replace(base, stages={**base.stages, env: weakened}, env=env)

    return apply


def toolchain_template(mutate: Callable[[dict[str, Json]], None]) -> Apply:
    """Weaken the toolchain stack's template (a deep copy)."""

    def apply(base: Subject, _: pytest.MonkeyPatch) -> Subject:
        assert base.toolchain is not None
        weak = copy.deepcopy(base.toolchain.template.to_json())
        mutate(weak)
        weakened = dataclasses.replace(base.toolchain, template=Template.from_json(weak))
        return dataclasses.replace(base, toolchain=weakened)

    return apply


def patch(mutate: Callable[[pytest.MonkeyPatch], None]) -> Apply:
    """Weaken a validator's data with ``monkeypatch`` (undone after the test)."""

    def apply(base: Subject, monkeypatch: pytest.MonkeyPatch) -> Subject:
        mutate(monkeypatch)
        return base

    return apply


# -- JSON helpers: each fails loudly when the thing to weaken is not there ------------------------------------


def res(t: dict[str, Json], stack: str, prefix: str, kind: str | None = None) -> dict[str, Json]:
    """The properties of the one resource of ``stack`` whose logical id starts with ``prefix`` (of ``kind``)."""
    (found,) = [
        r for lid, r in t[stack]["Resources"].items() if lid.startswith(prefix) and (kind is None or r["Type"] == kind)
    ]
    return found["Properties"]


def stmts(t: dict[str, Json], stack: str, prefix: str, document: str = "PolicyDocument") -> list[dict[str, Json]]:
    found = [
        r["Properties"][document]["Statement"]
        for lid, r in t[stack]["Resources"].items()
        if lid.startswith(prefix) and document in r.get("Properties", {})
    ]
    (statements,) = found
    return statements


def boundary_statements(t: dict[str, Json]) -> list[dict[str, Json]]:
    return stmts(t, "Security", "GuardrailsPermissionsBoundary")


def one(statements: list[dict[str, Json]], pred: Callable[[dict[str, Json]], bool]) -> dict[str, Json]:
    (found,) = [s for s in statements if pred(s)]
    return found


def actions(s: dict[str, Json]) -> list[str]:
    a = s.get("Action", [])
    return [a] if isinstance(a, str) else a


def has(s: dict[str, Json], action: str, effect: str = "Allow") -> bool:
    return s["Effect"] == effect and action in actions(s)


def drop_denied(statements: list[dict[str, Json]], action: str) -> None:
    """Remove ``action`` from every Deny statement (the statement goes when nothing is left)."""
    hits = [s for s in statements if has(s, action, "Deny")]
    assert hits, f"no Deny of {action}"
    for s in hits:
        rest = [a for a in actions(s) if a != action]
        if rest:
            s["Action"] = rest
        else:
            statements.remove(s)


def drop(statements: list[dict[str, Json]], pred: Callable[[dict[str, Json]], bool]) -> None:
    hits = [s for s in statements if pred(s)]
    assert hits, "nothing to drop"
    for s in hits:
        statements.remove(s)


def allow(statements: list[dict[str, Json]], action: str | list[str], resource: Json = "*") -> None:
    statements.append({"Effect": "Allow", "Action": action, "Resource": resource})


def replace_text(value: Json, old: str, new: str) -> Json:
    text = json.dumps(value)
    assert old in text, f"{old!r} not found"
    return json.loads(text.replace(old, new))


def team_policy(t: dict[str, Json], kind: str, team: str = "churn") -> list[dict[str, Json]]:
    return stmts(t, f"Team-{team}", f"TeamTabularPipeline{kind}Policy")


def raw_object(path: str) -> Json:
    return {"Fn::Join": ["", ["arn:aws:s3:::", {"Fn::ImportValue": "flywheel-dev-raw-bucket"}, path]]}


def walk(steps: list[dict[str, Json]]) -> Iterator[dict[str, Json]]:
    for step in steps:
        yield step
        for branch in ("IfSteps", "ElseSteps"):
            yield from walk(step.get("Arguments", {}).get(branch, []))


def step(document: dict[str, Json], name: str) -> dict[str, Json]:
    (found,) = [s for s in walk(document["Steps"]) if s["Name"] == name]
    return found["Arguments"]


# -- the weakenings -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Weakening:
    name: str
    how: str
    apply: Apply
    checks: tuple[Check, ...]
    expect: str  # a regular expression the problems must match: they name the weakness
    uncaught: str | None = None  # why no check catches it yet (xfail, strict)


def _w(name: str, how: str, apply: Apply, checks: list[Check], expect: str, uncaught: str | None = None) -> Weakening:
    return Weakening(name, how, apply, tuple(checks), expect, uncaught)


def _set(
    path: Callable[[dict[str, Json]], dict[str, Json]], key: str, value: Json
) -> Callable[[dict[str, Json]], None]:
    def mutate(t: dict[str, Json]) -> None:
        target = path(t)
        assert key in target, f"{key} not set before the weakening"
        target[key] = value

    return mutate


def _del(path: Callable[[dict[str, Json]], dict[str, Json]], key: str) -> Callable[[dict[str, Json]], None]:
    def mutate(t: dict[str, Json]) -> None:
        del path(t)[key]

    return mutate


def _all(*mutations: Callable[[dict[str, Json]], None]) -> Callable[[dict[str, Json]], None]:
    def mutate(t: dict[str, Json]) -> None:
        for m in mutations:
            m(t)

    return mutate


ADMIN_CAP = boundary(bc.admin_cap_problems)
TRAIL = [rule("trail-covers-lake-buckets"), real_test(audit_tests.test_trail_data_events_cover_every_lake_bucket)]
JOBS = real_test(definition_tests.test_every_job_is_encrypted_isolated_and_in_the_vpc)
DEPLOYED_DEFINITION = real_test(team_tests.test_deployed_definition_has_no_parameter_that_weakens_a_control)
REGISTRATION = real_test(team_tests.test_pipeline_registers_only_pending_packages_and_no_role_changes_approval)
PII_READERS = real_test(team_tests.test_only_the_preprocessing_role_reads_raw_batches_and_the_pii_key)


def _trail_selector(t: dict[str, Json]) -> dict[str, Json]:
    return one(
        res(t, "Audit", "AuditTrail", "AWS::CloudTrail::Trail")["EventSelectors"],
        lambda s: bool(s.get("DataResources")),
    )


def _bucket(zone: str) -> Callable[[dict[str, Json]], dict[str, Json]]:
    return lambda t: res(t, "DataLake", f"Lake{zone}Bucket", "AWS::S3::Bucket")


def _bucket_policy(zone: str) -> Callable[[dict[str, Json]], list[dict[str, Json]]]:
    return lambda t: stmts(t, "DataLake", f"Lake{zone}BucketPolicy")


def _key_policy(zone: str) -> Callable[[dict[str, Json]], list[dict[str, Json]]]:
    return lambda t: stmts(t, "DataLake", f"Lake{zone}Key", "KeyPolicy")


def _param(name: str, default: Json) -> Callable[[dict[str, Json]], None]:
    return lambda d: d["Parameters"].append({"Name": name, "Type": "String", "DefaultValue": default})


def _gate_from_parameter(d: dict[str, Json]) -> None:
    _param("GateThreshold", 0.0)(d)
    for condition in step(d, "QualityGate")["Conditions"]:
        if isinstance(condition.get("RightValue"), float | int) and not isinstance(condition["RightValue"], bool):
            condition["RightValue"] = {"Get": "Parameters.GateThreshold"}


def _no_hash_check(d: dict[str, Json]) -> None:
    for s in walk(d["Steps"]):
        if s["Type"] == "Processing":
            entry = s["Arguments"]["AppSpecification"]["ContainerEntrypoint"]
            assert "sha256sum" in entry[2]
            entry[2] = re.sub(r"echo \"[0-9a-f]{64}  [^\"]+\" \| sha256sum .*?exit 1; \}; ", "", entry[2])
            assert "sha256sum" not in entry[2]


def _widen_input_prefix(d: dict[str, Json]) -> None:
    args = step(d, "Preprocess")["AppSpecification"]["ContainerArguments"]
    i = args.index("--allowed-input-prefix") + 1
    args[i] = "s3://"


def _quarantine_top_level(d: dict[str, Json]) -> None:
    (out,) = [o for o in step(d, "Preprocess")["ProcessingOutputConfig"]["Outputs"] if o["OutputName"] == "quarantine"]
    values = out["S3Output"]["S3Uri"]["Std:Join"]["Values"]
    values[0] = values[0].replace("/team-a/quarantine/", "/quarantine/")


def _reserve_without(name: str) -> Callable[[pytest.MonkeyPatch], None]:
    def mutate(m: pytest.MonkeyPatch) -> None:
        assert name in naming.RESERVED
        m.setattr(naming, "RESERVED", naming.RESERVED - {name})

    return mutate


def _gateway_policy(t: dict[str, Json]) -> list[dict[str, Json]]:
    return stmts(t, "Security", "NetworkVpcS3")


def _serverless_model_denies(t: dict[str, Json]) -> list[dict[str, Json]]:
    """The boundary's CreateModel VPC/isolation denies, which leave out the serverless teams' models."""
    found = [s for s in boundary_statements(t) if has(s, "sagemaker:CreateModel", "Deny") and "NotResource" in s]
    assert len(found) == 2, found
    return found


def _widen_serverless_exception(resources: list[Json]) -> Callable[[dict[str, Json]], None]:
    def mutate(t: dict[str, Json]) -> None:
        for statement in _serverless_model_denies(t):
            statement["NotResource"] = [*statement["NotResource"], *resources]

    return mutate


def _monitor_definition(old: str, new: str) -> Callable[[dict[str, Json]], None]:
    """Replace ``old`` by ``new`` in the churn drift monitor's state machine definition (dev)."""

    def mutate(t: dict[str, Json]) -> None:
        (machine,) = [
            r for r in t["Team-churn"]["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
        ]
        parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
        hits = [i for i, part in enumerate(parts) if isinstance(part, str) and old in part]
        assert hits, f"{old!r} not found"
        for i in hits:
            parts[i] = parts[i].replace(old, new)

    return mutate


def _drop_serverless_principal_deny(t: dict[str, Json]) -> None:
    drop(boundary_statements(t), lambda s: "aws:PrincipalArn" in json.dumps(s.get("Condition", {}))
         and has(s, "sagemaker:CreateModel", "Deny"))  # fmt: skip


#: The realtime team's models, as the boundary's statements spell an ARN.
CHURN_MODELS = {
    "Fn::Join": [
        "",
        ["arn:", {"Ref": "AWS::Partition"}, ":sagemaker:eu-west-1:111111111111:model/flywheel-dev-churn-v*"],
    ]
}
SERVERLESS_EXCEPTION = real_test(
    lifecycle_tests.test_the_serverless_exception_is_exactly_the_serverless_teams_models_and_deploy_roles
)


def access(fn: Callable[..., list[str]]) -> Check:
    """An assertion of ``flywheel access-report`` on the subject's stage (every role evaluated)."""
    from flywheel.access_report import report_of
    from tests.security.stage_policies import templates_of

    def check(s: Subject) -> list[str]:
        return fn(report_of(templates_of(s.stage), s.stage.environment.name, list(s.stage.teams)))

    return _named(check, f"access_report.{fn.__name__}")


def _persona(t: dict[str, Json], persona: str, team: str = "churn") -> list[dict[str, Json]]:
    return stmts(t, f"Team-{team}", f"TeamPersonas{''.join(x.title() for x in persona.split('-'))}Policy")


def _ds_star(t: dict[str, Json]) -> None:
    _persona(t, naming.DATA_SCIENTIST).insert(0, {"Effect": "Allow", "Action": "*", "Resource": "*"})


def _approver_starts_pipelines(t: dict[str, Json]) -> None:
    statements = _persona(t, naming.APPROVER)
    statements[:] = [x for x in statements if "sagemaker:StartPipelineExecution" not in x.get("Action", [])]
    statements.append({"Effect": "Allow", "Action": "sagemaker:StartPipelineExecution", "Resource": "*"})


def _arrival_reads_raw(t: dict[str, Json]) -> None:
    every = "arn:aws:iam::111111111111:role/flywheel/dev/*"
    lake = t["DataLake"]["Resources"]
    documents = [r["Properties"]["PolicyDocument"] for r in lake.values() if r["Type"] == "AWS::S3::BucketPolicy"]
    documents += [r["Properties"]["KeyPolicy"] for lid, r in lake.items() if lid.startswith("LakeRawKey")]
    for document in documents:
        for x in document["Statement"]:
            if x["Effect"] == "Deny" and "ArnNotLike" in x.get("Condition", {}):
                x["Condition"]["ArnNotLike"]["aws:PrincipalArn"] = [every]
    stmts(t, "Team-churn", "TeamLifecycleDataArrivalPolicy").append(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
    )


def _replace_statements(t: dict[str, Json], policy: str, old: str, new: str) -> None:
    statements = stmts(t, "Team-churn", policy)
    statements[:] = replace_text(statements, old, new)


def _pass_also(t: dict[str, Json], policy: str, role: str) -> None:
    statement = one(stmts(t, "Team-churn", policy), lambda s: has(s, "iam:PassRole"))
    (role_id,) = [lid for lid in t["Team-churn"]["Resources"] if lid.startswith(role)]
    statement["Resource"] = [*statement["Resource"], {"Fn::GetAtt": [role_id, "Arn"]}]


def _pass_any(t: dict[str, Json], policy: str) -> None:
    one(stmts(t, "Team-churn", policy), lambda s: has(s, "iam:PassRole"))["Resource"] = "*"


def _github_trust(t: dict[str, Json]) -> dict[str, Json]:
    (role,) = [
        r for lid, r in t["Resources"].items() if lid.startswith("GitHubDeployRole") and r["Type"] == "AWS::IAM::Role"
    ]
    (stmt,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    return stmt["Condition"]  # type: ignore[no-any-return]


def _org_wide_subject(t: dict[str, Json]) -> None:
    condition = _github_trust(t)
    condition["StringEquals"].pop("token.actions.githubusercontent.com:sub")
    condition["StringLike"] = {"token.actions.githubusercontent.com:sub": "repo:example-org/*"}


def _toolchain_pipeline(t: dict[str, Json]) -> dict[str, Json]:
    (found,) = [r for r in t["Resources"].values() if r["Type"] == "AWS::CodePipeline::Pipeline"]
    return found["Properties"]  # type: ignore[no-any-return]


def _drop_prod_approval(t: dict[str, Json]) -> None:
    (prod,) = [s for s in _toolchain_pipeline(t)["Stages"] if s["Name"] == "Flywheel-prod"]
    before = len(prod["Actions"])
    prod["Actions"] = [a for a in prod["Actions"] if a["ActionTypeId"]["Category"] != "Approval"]
    assert len(prod["Actions"]) == before - 1


def _privileged_synth(t: dict[str, Json]) -> None:
    (synth,) = [
        r
        for lid, r in t["Resources"].items()
        if lid.startswith("PipelineBuildSynth") and r["Type"] == "AWS::CodeBuild::Project"
    ]
    synth["Properties"]["Environment"]["PrivilegedMode"] = True


TOOLCHAIN_OIDC = [
    toolchain_rule("oidc-trust-pins-one-repository"),
    real_test(toolchain_tests.test_oidc_trust_names_exactly_the_configured_repository_and_environment),
]


def _monitoring_alarm(name: str) -> Callable[[dict[str, Json]], dict[str, Json]]:
    def props(t: dict[str, Json]) -> dict[str, Json]:
        (alarm,) = [r["Properties"] for r in t["Team-churn"]["Resources"].values()
                    if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("AlarmName") == name]  # fmt: skip
        return alarm

    return props


WEAKENINGS = [
    # -- people and isolation (issue 12, issue 15 item 2): flywheel access-report --
    _w(
        "data-scientist-on-star",
        "churn's data-scientist policy: Allow * on *",
        templates(_ds_star),
        [access(matrix_problems), access(intent_problems)],
        "churn/data-scientist can .* of team diagnostics",
    ),
    _w(
        "approver-starts-pipelines",
        "churn's approver: the explicit pipeline deny dropped, StartPipelineExecution allowed",
        templates(_approver_starts_pipelines),
        [access(duty_problems)],
        "churn/approver can start its pipelines",
    ),
    _w(
        "lifecycle-reads-raw",
        "raw bucket/key reader patterns widened to every Flywheel role; data arrival may GetObject",
        templates(_arrival_reads_raw),
        [access(intent_problems)],
        r"churn/data-arrival \(not a raw reader\)",
    ),
    # -- monitoring (issue 13) --
    _w(
        "drift-monitor-job-not-isolated",
        "drift monitor: processing job with EnableNetworkIsolation false",
        templates(_monitor_definition('"EnableNetworkIsolation":true', '"EnableNetworkIsolation":false')),
        [real_test(monitoring_tests.test_the_drift_monitor_job_is_scheduled_encrypted_in_the_vpc_and_isolated)],
        "EnableNetworkIsolation",
    ),
    _w(
        "drift-monitor-job-volume-unencrypted",
        "drift monitor: processing job without VolumeKmsKeyId",
        templates(_monitor_definition('"VolumeKmsKeyId":"', '"VolumeKey":"')),
        [real_test(monitoring_tests.test_the_drift_monitor_job_is_scheduled_encrypted_in_the_vpc_and_isolated)],
        "VolumeKmsKeyId",
    ),
    _w(
        "drift-alarm-without-action",
        "monitoring: the drift alarm notifies nobody",
        templates(_del(_monitoring_alarm("flywheel-dev-churn-drift"), "AlarmActions")),
        [real_test(monitoring_tests.test_every_alarm_of_the_team_stack_notifies_the_team_topic, team="churn")],
        "AlarmActions",
    ),
    # -- the permissions boundary (finding 1, 2) --
    _w(
        "boundary-passrole-any-role",
        "boundary: + Allow iam:PassRole on *",
        templates(lambda t: allow(boundary_statements(t), "iam:PassRole")),
        [ADMIN_CAP],
        "pass a non-Flywheel role",
    ),
    _w(
        "boundary-attach-role-policy",
        "boundary: iam:Attach* out of the identity-change deny, + Allow iam:AttachRolePolicy",
        templates(
            lambda t: (
                drop_denied(boundary_statements(t), "iam:Attach*"),
                allow(boundary_statements(t), "iam:AttachRolePolicy"),
            )
        ),
        [ADMIN_CAP],
        "attach a policy to a role",
    ),
    _w(
        "boundary-assume-role",
        "boundary: + Allow sts:AssumeRole on *",
        templates(lambda t: allow(boundary_statements(t), "sts:AssumeRole")),
        [ADMIN_CAP],
        "assume a role",
    ),
    _w(
        "boundary-toolchain-services",
        "boundary: + Allow cloudformation:*, codebuild:*",
        templates(lambda t: allow(boundary_statements(t), ["cloudformation:*", "codebuild:*"])),
        [ADMIN_CAP],
        "cloudformation.*\n?.*codebuild|codebuild",
    ),
    _w(
        "boundary-replication-open",
        "boundary: s3:PutReplicationConfiguration out of the bucket-control deny",
        templates(lambda t: drop_denied(boundary_statements(t), "s3:PutReplicationConfiguration")),
        [ADMIN_CAP],
        "replication",
    ),
    _w(
        "boundary-trail-log-group-deletable",
        "boundary: logs:DeleteLogGroup out of the audit log-group deny",
        templates(lambda t: drop_denied(boundary_statements(t), "logs:DeleteLogGroup")),
        [ADMIN_CAP],
        "delete trail log group",
    ),
    _w(
        "boundary-notebooks-allowed",
        "boundary: sagemaker:CreateNotebookInstance out of the unused-surface deny",
        templates(lambda t: drop_denied(boundary_statements(t), "sagemaker:CreateNotebookInstance")),
        [ADMIN_CAP, boundary(bc.unused_surface_problems, UNUSED_SAGEMAKER_ACTIONS)],
        "CreateNotebookInstance",
    ),
    _w(
        "boundary-jobs-without-kms",
        "boundary: the 'no VolumeKmsKey' job deny dropped",
        templates(lambda t: drop(boundary_statements(t), lambda s: "sagemaker:VolumeKmsKey" in json.dumps(s))),
        [ADMIN_CAP],
        "no volume key",
    ),
    _w(
        "boundary-pre-approved-registration",
        "boundary: the CreateModelPackage-unless-PendingManualApproval deny dropped",
        templates(lambda t: drop_denied(boundary_statements(t), "sagemaker:CreateModelPackage")),
        [ADMIN_CAP],
        "register pre-approved",
    ),
    _w(
        "boundary-approval-changes",
        "boundary: the UpdateModelPackage deny dropped",
        templates(lambda t: drop_denied(boundary_statements(t), "sagemaker:UpdateModelPackage")),
        [ADMIN_CAP],
        "approve a package",
    ),
    _w(
        "boundary-ecr-any-account",
        "boundary: sagemaker-* repositories of any account",
        templates(
            lambda t: one(boundary_statements(t), lambda s: has(s, "ecr:BatchGetImage")).update(
                Resource="arn:aws:ecr:*:*:repository/sagemaker-*"
            )
        ),
        [ADMIN_CAP],
        "look-alike",
    ),
    _w(
        "boundary-voids-sg-rule-changes",
        "boundary: the security-group rule allow dropped (finding 1: RestrictDefaultSG cannot revoke)",
        templates(lambda t: drop(boundary_statements(t), lambda s: has(s, "ec2:RevokeSecurityGroupIngress"))),
        [boundary(bc.custom_resource_problems), boundary(bc.dead_grant_problems)],
        "RevokeSecurityGroup",
    ),
    _w(
        "role-without-boundary",
        "training role: PermissionsBoundary removed",
        templates(
            _del(
                lambda t: res(t, "Team-churn", "TeamTabularPipelineTrainingRole", "AWS::IAM::Role"),
                "PermissionsBoundary",
            )
        ),
        [
            rule("every-role-has-boundary"),
            real_test(boundary_tests.test_every_role_carries_this_environments_boundary_and_path),
        ],
        "no PermissionsBoundary",
    ),
    _w(
        "orphan-guardrail-policy",
        "Security: + a customer-managed policy attached to nothing",
        templates(
            lambda t: t["Security"]["Resources"].__setitem__(
                "OrphanGuardrails",
                {
                    "Type": "AWS::IAM::ManagedPolicy",
                    "Properties": {
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [{"Effect": "Deny", "Action": "sagemaker:*", "Resource": "*"}],
                        }
                    },
                },
            )
        ),
        [
            rule("managed-policies-are-attached"),
            real_test(boundary_tests.test_no_standalone_guardrail_policy_is_left_unattached),
        ],
        "attached to nothing",
    ),
    _w(
        "aws-managed-policy-attached",
        "training role: + AmazonSageMakerFullAccess",
        templates(
            lambda t: (
                res(t, "Team-churn", "TeamTabularPipelineTrainingRole", "AWS::IAM::Role")
                .setdefault("ManagedPolicyArns", [])
                .append("arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")
            )
        ),
        [rule("no-aws-managed-policies")],
        "AmazonSageMakerFullAccess",
    ),
    # -- team roles (findings 3, 5, 7) --
    _w(
        "pipeline-role-update-model-package",
        "pipeline role: its UpdateModelPackage deny dropped, + Allow UpdateModelPackage on the team's packages",
        templates(
            lambda t: (
                drop_denied(team_policy(t, "Pipeline"), "sagemaker:UpdateModelPackage"),
                allow(
                    team_policy(t, "Pipeline"),
                    "sagemaker:UpdateModelPackage",
                    "arn:aws:sagemaker:eu-west-1:111111111111:model-package/flywheel-dev-churn/*",
                ),
            )
        ),
        [REGISTRATION],
        "UpdateModelPackage",
    ),
    _w(
        "create-model-package-any-status",
        "pipeline role: CreateModelPackage without the PendingManualApproval condition, its deny dropped",
        templates(
            lambda t: (
                one(team_policy(t, "Pipeline"), lambda s: has(s, "sagemaker:CreateModelPackage")).pop("Condition"),
                drop_denied(team_policy(t, "Pipeline"), "sagemaker:CreateModelPackage"),
            )
        ),
        [REGISTRATION],
        "CreateModelPackage",
    ),
    _w(
        "passrole-without-passed-to-service",
        "pipeline role: iam:PassRole without its iam:PassedToService condition",
        templates(lambda t: one(team_policy(t, "Pipeline"), lambda s: has(s, "iam:PassRole")).pop("Condition")),
        [
            rule("passrole-scoped-to-service"),
            real_test(team_tests.test_pipeline_role_passes_exactly_its_step_roles_to_sagemaker),
        ],
        "iam:PassedToService",
    ),
    _w(
        "passrole-any-role",
        "pipeline role: iam:PassRole on *",
        templates(lambda t: one(team_policy(t, "Pipeline"), lambda s: has(s, "iam:PassRole")).update(Resource="*")),
        [
            rule("passrole-scoped-to-service"),
            real_test(team_tests.test_pipeline_role_passes_exactly_its_step_roles_to_sagemaker),
        ],
        "on any role",
    ),
    _w(
        "raw-readable-by-training",
        "training role: + s3:GetObject on the raw bucket",
        templates(lambda t: allow(team_policy(t, "Training"), "s3:GetObject", raw_object("/*"))),
        [PII_READERS],
        "training",
    ),
    _w(
        "preprocessing-reads-every-team",
        "preprocessing role: raw reads on */incoming/* instead of churn/incoming/*",
        templates(
            lambda t: res(t, "Team-churn", "TeamTabularPipelinePreprocessingPolicy").update(
                PolicyDocument=replace_text(
                    res(t, "Team-churn", "TeamTabularPipelinePreprocessingPolicy")["PolicyDocument"],
                    "/churn/incoming/*",
                    "/*/incoming/*",
                )
            )
        ),
        [PII_READERS, real_test(boundary_tests.test_team_roles_cannot_read_another_teams_raw_data)],
        "diagnostics/incoming",
    ),
    _w(
        "raw-key-without-encryption-context",
        "preprocessing role: raw-key Decrypt without the kms:EncryptionContext:aws:s3:arn condition",
        templates(
            lambda t: one(
                team_policy(t, "Preprocessing"), lambda s: "kms:EncryptionContext:aws:s3:arn" in json.dumps(s)
            )["Condition"].pop("StringLike")
        ),
        [real_test(team_tests.test_raw_zone_key_decrypts_only_the_teams_raw_objects_through_s3)],
        "diagnostics",
    ),
    _w(
        "quarantine-shared-across-teams",
        "preprocessing role: quarantine writes to raw/quarantine/<pipeline>/ (the pre-fix, team-less prefix)",
        templates(
            lambda t: res(t, "Team-churn", "TeamTabularPipelinePreprocessingPolicy").update(
                PolicyDocument=replace_text(
                    res(t, "Team-churn", "TeamTabularPipelinePreprocessingPolicy")["PolicyDocument"],
                    "/churn/quarantine/",
                    "/quarantine/",
                )
            )
        ),
        [real_test(team_tests.test_quarantine_is_written_by_preprocessing_under_the_team_prefix)],
        "quarantine",
    ),
    _w(
        "ecr-pulls-any-account",
        "training role: sagemaker-* repositories of any account",
        templates(
            lambda t: one(team_policy(t, "Training"), lambda s: has(s, "ecr:BatchGetImage")).update(
                Resource="arn:aws:ecr:eu-west-1:*:repository/sagemaker-*"
            )
        ),
        [real_test(team_tests.test_image_pulls_only_from_the_definitions_sagemaker_repositories)],
        "999999999999",
    ),
    _w(
        "team-jobs-untagged",
        "pipeline role: Create*Job without the aws:RequestTag/flywheel:team condition",
        templates(
            lambda t: one(team_policy(t, "Pipeline"), lambda s: has(s, "sagemaker:CreateProcessingJob")).pop(
                "Condition"
            )
        ),
        [real_test(team_tests.test_pipeline_role_creates_and_controls_only_its_teams_jobs)],
        "CreateProcessingJob|CreateTrainingJob",
    ),
    _w(
        "team-trust-without-source-account",
        "training role trust: no aws:SourceAccount / aws:SourceArn condition",
        templates(
            lambda t: res(t, "Team-churn", "TeamTabularPipelineTrainingRole", "AWS::IAM::Role")[
                "AssumeRolePolicyDocument"
            ]["Statement"][0].pop("Condition")
        ),
        [real_test(team_tests.test_trust_policies_name_the_account_and_sagemaker_source)],
        "TrainingRole",
    ),
    _w(
        "platform-trust-without-source-account",
        "flow-log delivery role trust: aws:SourceAccount condition dropped",
        templates(
            lambda t: res(t, "Security", "NetworkVpcFlowLogIAMRole", "AWS::IAM::Role")["AssumeRolePolicyDocument"][
                "Statement"
            ][0]["Condition"].pop("StringEquals")
        ),
        [boundary(bc.service_trusts_problems)],
        "aws:SourceAccount",
    ),
    # -- data lake --
    _w(
        "bucket-without-tls-only",
        "curated bucket policy: the aws:SecureTransport=false deny dropped",
        templates(lambda t: drop(_bucket_policy("Curated")(t), lambda s: "aws:SecureTransport" in json.dumps(s))),
        [every_zone(lake_tests.test_zone_policy_denies_insecure_transport)],
        r"\[Curated\]|SecureTransport",
    ),
    _w(
        "bucket-without-public-access-block",
        "features bucket: PublicAccessBlockConfiguration removed",
        templates(_del(_bucket("Features"), "PublicAccessBlockConfiguration")),
        [every_zone(lake_tests.test_zone_blocks_all_public_access)],
        "PublicAccessBlockConfiguration",
    ),
    _w(
        "bucket-versioning-off",
        "artifacts bucket: versioning Suspended",
        templates(_set(_bucket("Artifacts"), "VersioningConfiguration", {"Status": "Suspended"})),
        [every_zone(lake_tests.test_zone_is_versioned_logged_and_acl_free)],
        "Suspended",
    ),
    _w(
        "bucket-without-access-logging",
        "reports bucket: LoggingConfiguration removed",
        templates(_del(_bucket("Reports"), "LoggingConfiguration")),
        [every_zone(lake_tests.test_zone_is_versioned_logged_and_acl_free)],
        "LoggingConfiguration",
    ),
    _w(
        "bucket-sse-s3",
        "curated bucket: SSE-S3 instead of its KMS key",
        templates(
            _set(
                _bucket("Curated"),
                "BucketEncryption",
                {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            )
        ),
        [
            rule("buckets-use-distinct-customer-keys"),
            every_zone(lake_tests.test_zone_uses_its_own_kms_key_with_bucket_key_but_raw),
        ],
        "not SSE-KMS",
    ),
    _w(
        "zones-share-a-key",
        "features bucket: encrypted with the curated zone's key",
        templates(
            lambda t: _bucket("Features")(t)["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
                "ServerSideEncryptionByDefault"
            ].update(
                KMSMasterKeyID=_bucket("Curated")(t)["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
                    "ServerSideEncryptionByDefault"
                ]["KMSMasterKeyID"]
            )
        ),
        [
            rule("buckets-use-distinct-customer-keys"),
            every_zone(lake_tests.test_zone_uses_its_own_kms_key_with_bucket_key_but_raw),
        ],
        "shares its KMS key",
    ),
    _w(
        "raw-bucket-readable-by-everyone",
        "raw bucket policy: the deny of data reads to all but the raw readers dropped",
        templates(lambda t: drop(_bucket_policy("Raw")(t), lambda s: "aws:PrincipalArn" in json.dumps(s))),
        [
            real_test(lake_tests.test_raw_bucket_denies_data_reads_to_all_but_the_raw_readers),
            rule("buckets-use-distinct-customer-keys"),
        ],
        "EXPLICIT_DENY|bucket key disabled",
    ),
    _w(
        "raw-key-decrypt-by-everyone",
        "raw key policy: the deny of Decrypt to all but the raw readers dropped",
        templates(lambda t: drop(_key_policy("Raw")(t), lambda s: s["Effect"] == "Deny")),
        [real_test(lake_tests.test_raw_key_denies_decrypt_to_every_identity_but_the_raw_readers)],
        "EXPLICIT_DENY",
    ),
    _w(
        "key-policy-star-principal",
        "curated key policy: + Allow kms:Decrypt to Principal *",
        templates(
            lambda t: _key_policy("Curated")(t).append(
                {"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}
            )
        ),
        [real_test(security_tests.test_key_policies_have_no_star_principal)],
        r"Principal': '\*'",
    ),
    _w(
        "key-without-rotation",
        "curated key: EnableKeyRotation false",
        templates(_set(lambda t: res(t, "DataLake", "LakeCuratedKey"), "EnableKeyRotation", False)),
        [rule("keys-rotate")],
        "LakeCuratedKey.*rotation is off",
    ),
    _w(
        "artifacts-without-object-lock",
        "artifacts bucket: ObjectLockConfiguration removed",
        templates(_del(_bucket("Artifacts"), "ObjectLockConfiguration")),
        [real_test(lake_tests.test_artifacts_zone_has_object_lock)],
        "ObjectLockConfiguration",
    ),
    # -- audit --
    _w(
        "trail-data-events-write-only",
        "trail: data-event selector ReadWriteType WriteOnly",
        templates(_set(_trail_selector, "ReadWriteType", "WriteOnly")),
        TRAIL,
        "no trail logs all|reads of lake data must be logged",
    ),
    _w(
        "trail-misses-a-lake-bucket",
        "trail: the capture bucket's selector value dropped",
        templates(
            lambda t: _trail_selector(t)["DataResources"][0]["Values"].__setitem__(
                slice(None),
                [v for v in _trail_selector(t)["DataResources"][0]["Values"] if "LakeCapture" not in json.dumps(v)],
            )
        ),
        TRAIL,
        "LakeCaptureBucket",
    ),
    _w(
        "trail-prefix-only",
        "trail: selects raw/<prefix>/ instead of every object of the raw bucket",
        templates(
            lambda t: _trail_selector(t)["DataResources"][0]["Values"][0]["Fn::Join"][1].__setitem__(1, "/churn/")
        ),
        TRAIL,
        "LakeRawBucket",
    ),
    _w(
        "trail-not-logging",
        "trail: IsLogging false",
        templates(_set(lambda t: res(t, "Audit", "AuditTrail", "AWS::CloudTrail::Trail"), "IsLogging", False)),
        [rule("trail-covers-lake-buckets")],
        "no trail logs all",
    ),
    _w(
        "trail-log-file-validation-off",
        "trail: EnableLogFileValidation false",
        templates(
            _set(lambda t: res(t, "Audit", "AuditTrail", "AWS::CloudTrail::Trail"), "EnableLogFileValidation", False)
        ),
        [real_test(audit_tests.test_trail_is_encrypted_validated_and_multi_region)],
        "EnableLogFileValidation",
    ),
    _w(
        "prod-lock-governance",
        "prod trail bucket: object lock GOVERNANCE instead of COMPLIANCE",
        templates(
            lambda t: res(t, "Audit", "AuditTrailBucket", "AWS::S3::Bucket")["ObjectLockConfiguration"]["Rule"][
                "DefaultRetention"
            ].update(Mode="GOVERNANCE"),
            env="prod",
        ),
        [real_test(audit_tests.test_trail_bucket_lock_is_compliance_in_prod_governance_elsewhere)],
        "GOVERNANCE",
    ),
    _w(
        "log-group-without-kms",
        "trail log group: KmsKeyId removed",
        templates(_del(lambda t: res(t, "Audit", "AuditTrailLogs", "AWS::Logs::LogGroup"), "KmsKeyId")),
        [
            rule("log-groups-encrypted-and-retained"),
            real_test(audit_tests.test_trail_sends_to_encrypted_cloudwatch_logs),
        ],
        "not KMS-encrypted",
    ),
    _w(
        "log-group-without-retention",
        "flow-log group: RetentionInDays removed",
        templates(_del(lambda t: res(t, "Security", "NetworkFlowLogs", "AWS::Logs::LogGroup"), "RetentionInDays")),
        [rule("log-groups-encrypted-and-retained"), real_test(security_tests.test_flow_logs_go_to_encrypted_log_group)],
        "keeps logs forever",
    ),
    # -- network --
    _w(
        "s3-gateway-endpoint-any-bucket",
        "S3 gateway endpoint policy: Flywheel-buckets statement on Resource *",
        templates(lambda t: _gateway_policy(t)[0].update(Resource="*")),
        [real_test(security_tests.test_s3_gateway_endpoint_reaches_only_lake_asset_and_image_buckets)],
        "s3:PutObject",
    ),
    _w(
        "interface-endpoint-any-principal",
        "SageMaker API endpoint policy: aws:PrincipalAccount condition dropped",
        templates(lambda t: stmts(t, "Security", "NetworkVpcEndpointSagemakerApi")[0].pop("Condition")),
        [real_test(security_tests.test_interface_endpoints_serve_this_accounts_principals_only)],
        "NetworkVpcEndpointSagemakerApi",
    ),
    _w(
        "internet-gateway",
        "Security: + an internet gateway",
        templates(lambda t: t["Security"]["Resources"].__setitem__("Igw", {"Type": "AWS::EC2::InternetGateway"})),
        [real_test(security_tests.test_vpc_has_no_internet_path)],
        "InternetGateway",
    ),
    # -- the pipeline definition (finding 4, 7) --
    _w(
        "job-without-kms",
        "definition: Preprocess without VolumeKmsKeyId",
        definition(lambda d: step(d, "Preprocess")["ProcessingResources"]["ClusterConfig"].pop("VolumeKmsKeyId")),
        [JOBS],
        "VolumeKmsKeyId",
    ),
    _w(
        "job-without-vpc",
        "definition: Train without VpcConfig",
        definition(lambda d: step(d, "Train").pop("VpcConfig")),
        [JOBS],
        "VpcConfig",
    ),
    _w(
        "network-isolation-off",
        "definition: Evaluate with EnableNetworkIsolation false",
        definition(lambda d: step(d, "Evaluate")["NetworkConfig"].update(EnableNetworkIsolation=False)),
        [JOBS],
        "EnableNetworkIsolation",
    ),
    _w(
        "quarantine-outside-team-prefix",
        "definition: quarantine output under raw/quarantine/ (no team prefix)",
        definition(_quarantine_top_level),
        [real_test(definition_tests.test_pii_stays_in_the_raw_zone)],
        "quarantine",
    ),
    _w(
        "deployed-pii-key-uri-parameter",
        "deployed definition: + a PiiKeyUri parameter",
        deployed_definition(_param("PiiKeyUri", "s3://anywhere/key")),
        [DEPLOYED_DEFINITION],
        "PiiKeyUri",
    ),
    _w(
        "deployed-gate-threshold-parameter",
        "deployed definition: the quality gate reads a GateThreshold parameter",
        deployed_definition(_gate_from_parameter),
        [DEPLOYED_DEFINITION],
        "GateThreshold",
    ),
    _w(
        "deployed-input-prefix-widened",
        "deployed definition: Preprocess --allowed-input-prefix s3:// (any bucket)",
        deployed_definition(_widen_input_prefix),
        [DEPLOYED_DEFINITION],
        "incoming",
    ),
    _w(
        "code-hash-check-removed",
        "deployed definition: the sha256sum check removed from the processing entrypoint",
        deployed_definition(_no_hash_check),
        [real_test(team_tests.test_processing_jobs_verify_the_synthesized_code_archive_hash)],
        "sha256sum",
    ),
    # -- the batch-scoring pipeline (issue 12) --
    _w(
        "scoring-model-role-reads-every-artifact",
        "batch-scoring: the model's role reads the whole artifacts bucket, not the team's model prefixes",
        templates(
            lambda t: _replace_statements(
                t, "TeamBatchScoringPipelineScoringPolicy", "/flywheel-dev-churn-tabular/*", "/*"
            )
        ),
        [real_test(scoring_tests.test_the_models_role_reads_only_the_teams_models_and_its_own_prefix)],
        "flywheel-dev-diagnostics-tabular",
    ),
    _w(
        "scoring-prepare-reads-training-batches",
        "batch-scoring: Prepare reads the team's whole raw prefix, not scoring/incoming/",
        templates(
            lambda t: _replace_statements(
                t, "TeamBatchScoringPipelinePreprocessingPolicy", "/churn/scoring/incoming/*", "/churn/*"
            )
        ),
        [real_test(scoring_tests.test_prepare_reads_only_the_scoring_prefix_and_the_pii_key)],
        "churn/incoming/b1",
    ),
    _w(
        "scoring-pipeline-passes-the-model-role",
        "batch-scoring: the pipeline's role may pass the model's (scoring) role",
        templates(
            lambda t: _pass_also(t, "TeamBatchScoringPipelinePipelinePolicy", "TeamBatchScoringPipelineScoringRole")
        ),
        [real_test(scoring_tests.test_the_pipeline_creates_tagged_transforms_and_never_passes_the_models_role)],
        "scoring",
    ),
    _w(
        "scoring-launcher-passes-any-role",
        "batch-scoring: the launcher may pass any role",
        templates(lambda t: _pass_any(t, "TeamBatchScoringScheduleLauncherPolicy")),
        [real_test(scoring_tests.test_the_launcher_creates_only_isolated_tagged_models_and_starts_only_its_pipeline)],
        "preprocessing",
    ),
    # -- config (finding 6) --
    _w(
        "team-named-quarantine",
        "naming.RESERVED without 'quarantine' (config validation accepts a team named quarantine)",
        patch(_reserve_without("quarantine")),
        [
            real_test(loader_tests.test_a_team_may_not_take_a_name_flywheel_uses_as_a_prefix, name="quarantine"),
            real_test(loader_tests.test_reserved_names_cover_every_layout_prefix),
        ],
        "quarantine|DID NOT RAISE",
    ),
    _w(
        "team-named-incoming",
        "naming.RESERVED without 'incoming'",
        patch(_reserve_without("incoming")),
        [
            real_test(loader_tests.test_a_team_may_not_take_a_name_flywheel_uses_as_a_prefix, name="incoming"),
            real_test(loader_tests.test_reserved_names_cover_every_layout_prefix),
        ],
        "DID NOT RAISE",
    ),
    # -- the serverless exception of the boundary (issue 9) --
    _w(
        "boundary-serverless-exception-other-team",
        "boundary: the realtime team's models (flywheel-dev-churn-v*) added to the serverless exception",
        templates(_widen_serverless_exception([CHURN_MODELS])),
        [SERVERLESS_EXCEPTION],
        "flywheel-dev-churn-v3",
    ),
    _w(
        "boundary-serverless-exception-every-model",
        "boundary: the serverless exception widened to every model (model/*)",
        templates(_widen_serverless_exception(["arn:aws:sagemaker:*:*:model/*"])),
        [SERVERLESS_EXCEPTION, ADMIN_CAP],
        "model outside vpc",
    ),
    _w(
        "boundary-serverless-exception-any-principal",
        "boundary: the deny of serverless models to every principal but the deploy roles dropped",
        templates(_drop_serverless_principal_deny),
        [SERVERLESS_EXCEPTION],
        "PrincipalArn",
    ),
    _w(
        "lambda-concurrency-unchecked",
        "config: Lambda's 100 unreserved executions not checked (LAMBDA_UNRESERVED_MINIMUM = 0)",
        patch(lambda mp: mp.setattr("config.models.LAMBDA_UNRESERVED_MINIMUM", 0)),
        [real_test(deployment_tests.test_reserved_concurrency_must_leave_lambdas_unreserved_minimum)],
        "DID NOT RAISE",
    ),
    # -- privacy: erasure controls (docs/privacy.md) --
    _w(
        "boundary-version-deletion-open",
        "boundary: s3:DeleteObjectVersion out of the erasure-only deny (any role may destroy history)",
        templates(lambda t: drop_denied(boundary_statements(t), "s3:DeleteObjectVersion")),
        [ADMIN_CAP],
        "deletes a version|delete a version",
    ),
    _w(
        "raw-erasure-requests-open",
        "raw bucket policy: the deny of erasure-request puts to all but break-glass/ingest dropped",
        templates(lambda t: drop(_bucket_policy("Raw")(t), lambda s: "_erasure" in json.dumps(s))),
        [real_test(erasure_tests.test_only_break_glass_and_ingest_may_put_erasure_requests_and_erasure_may_read_them)],
        "EXPLICIT_DENY",
    ),
    # -- the toolchain (issue 11) --
    _w(
        "oidc-trust-org-wide",
        "toolchain: GitHub role's sub StringLike repo:example-org/* (any repository of the organisation)",
        toolchain_template(_org_wide_subject),
        TOOLCHAIN_OIDC,
        r"StringLike|repo:example-org/\*",
    ),
    _w(
        "oidc-trust-any-audience",
        "toolchain: GitHub role's trust without the aud condition",
        toolchain_template(lambda t: _github_trust(t)["StringEquals"].pop("token.actions.githubusercontent.com:aud")),
        TOOLCHAIN_OIDC,
        "aud",
    ),
    _w(
        "prod-without-approval",
        "toolchain: the manual approval removed from the prod stage",
        toolchain_template(_drop_prod_approval),
        [real_test(toolchain_tests.test_every_prod_deploy_waits_for_a_manual_approval)],
        "approvals",
    ),
    _w(
        "privileged-synth",
        "toolchain: the synth CodeBuild project runs privileged",
        toolchain_template(_privileged_synth),
        [
            real_test(
                toolchain_tests.test_codebuild_projects_are_unprivileged_encrypted_and_log_to_a_kms_group_with_retention
            )
        ],
        "PrivilegedMode",
    ),
    _w(
        "artifacts-with-aws-managed-key",
        "toolchain: the artifact store without our KMS key",
        toolchain_template(lambda t: _toolchain_pipeline(t)["ArtifactStore"].pop("EncryptionKey")),
        [real_test(toolchain_tests.test_artifact_store_is_our_bucket_encrypted_with_our_rotating_key)],
        "EncryptionKey",
    ),
]


def _set_evaluate_argument(name: str, value: str) -> Callable[[dict[str, Json]], None]:
    def mutate(d: dict[str, Json]) -> None:
        args = step(d, "Evaluate")["AppSpecification"]["ContainerArguments"]
        args[args.index(name) + 1] = value

    return mutate


def _margin_ignored(mp: pytest.MonkeyPatch) -> None:
    """evaluate's gate checks the lead over the trivial model at margin 0, whatever it was given."""
    import evaluate

    real = evaluate.gate_checks
    mp.setattr(evaluate, "gate_checks", lambda p, v, t, m, th, _margin, c: real(p, v, t, m, th, 0.0, c))


def _fairness_gate_skipped(mp: pytest.MonkeyPatch) -> None:
    """No worst gap is ever found, so the fairness gate never fails."""
    import evaluate

    mp.setattr(evaluate, "worst_gap", lambda *_: None)


def _protected_as_features(mp: pytest.MonkeyPatch) -> None:
    """Protected columns become model features although the contract does not opt in."""
    import features

    real = features.serving_columns
    mp.setattr(features, "serving_columns", lambda c: real(dataclasses.replace(c, protected_as_features=True)))


#: The quality gate and fairness (issue 10): step-code weakenings, caught by the step tests.
WEAKENINGS += [
    _w(
        "trivial-margin-ignored",
        "evaluate: the lead over the trivial model is checked at margin 0 (the configured margin ignored)",
        patch(_margin_ignored),
        [real_test(gate_tests.test_the_lead_over_the_trivial_model_must_reach_the_margin)],
        "beats_trivial|second_metric|passed",
    ),
    _w(
        "definition-trivial-margin-zero",
        "definition: Evaluate --trivial-margin 0 (config says 0.01)",
        definition(_set_evaluate_argument("--trivial-margin", "0")),
        [real_test(definition_tests.test_processing_steps_unpack_the_sourcedir_and_run_their_script)],
        "trivial-margin|0.01",
    ),
    _w(
        "fairness-gate-skipped",
        "evaluate: the gate on the worst fairness gap is skipped (no gap ever found)",
        patch(_fairness_gate_skipped),
        [real_test(gate_tests.test_the_fairness_gate_fails_on_a_gap_above_the_allowed_one)],
        "fairness|passes|StopIteration",
    ),
    _w(
        "protected-columns-as-features",
        "features: protected columns silently used as model features (no contract opt-in)",
        patch(_protected_as_features),
        [real_test(fairness_tests.test_a_protected_column_is_not_a_feature_unless_opted_in)],
        "sex|serving_names",
    ),
]


@pytest.fixture(scope="session")
def module_definitions() -> tuple[dict[str, Any], dict[str, Any]]:
    """The pipeline definitions ``test_definition.py``'s fixtures build (deployed and local)."""
    from pipelines.tabular.definition import build_pipeline_definition

    inputs = definition_tests.make_inputs
    return (
        json.loads(build_pipeline_definition(inputs())),
        json.loads(build_pipeline_definition(inputs(local_overrides=True))),
    )


@pytest.fixture
def base(stages, module_definitions, tmp_path, toolchain) -> Subject:
    deployed, local = module_definitions
    return Subject(
        stages=dict(stages),
        env="dev",
        definition=deployed,
        local_definition=local,
        tmp_path=tmp_path,
        toolchain=toolchain,
    )


def _run(checks: tuple[Check, ...], subject: Subject) -> dict[str, list[str]]:
    return {c.label: c(subject) for c in checks}  # type: ignore[attr-defined]


#: label → the check's problems on the unweakened input (the same for every case: computed once)
_BASELINE: dict[str, list[str]] = {}


def _baseline(checks: tuple[Check, ...], subject: Subject) -> dict[str, list[str]]:
    for c in checks:
        if c.label not in _BASELINE:  # type: ignore[attr-defined]
            _BASELINE[c.label] = c(subject)  # type: ignore[attr-defined]
    return {c.label: _BASELINE[c.label] for c in checks}  # type: ignore[attr-defined]


def test_the_table_is_large_and_named_uniquely():
    names = [w.name for w in WEAKENINGS]
    assert len(names) >= 30 and len(set(names)) == len(names)


@pytest.mark.parametrize(
    "weakening",
    [
        pytest.param(w, id=w.name, marks=[pytest.mark.xfail(strict=True, reason=w.uncaught)] if w.uncaught else [])
        for w in WEAKENINGS
    ],
)
def test_weakening_is_caught(weakening: Weakening, base: Subject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    before = _baseline(weakening.checks, dataclasses.replace(base, tmp_path=tmp_path / "before"))
    assert all(p == [] for p in before.values()), f"the unweakened input already fails: {before}"
    weak = weakening.apply(dataclasses.replace(base, tmp_path=tmp_path / "after"), monkeypatch)
    after = _run(weakening.checks, weak)
    missed = [label for label, problems in after.items() if not problems]
    assert not missed, f"{weakening.name} ({weakening.how}) is not caught by {missed}"
    text = "\n".join(p for problems in after.values() for p in problems)
    assert re.search(weakening.expect, text), f"the problems do not name the weakness /{weakening.expect}/:\n{text}"
