"""A small, offline IAM policy evaluator for synthesized CloudFormation templates (tests, access report).

Why hand-written: no maintained PyPI library evaluates identity policies *through* a permissions
boundary offline (the AWS policy simulator is an API call). This one implements the subset of the IAM
evaluation logic our templates use, and refuses what it does not know instead of guessing:

* statements: ``Effect`` Allow/Deny, ``Action``/``NotAction`` (case-insensitive, ``*``/``?``
  wildcards), ``Resource``/``NotResource`` (case-sensitive wildcards), ``Principal`` (Service/AWS/``*``,
  for trust and resource policies) and ``Condition``;
* decision: an explicit Deny anywhere wins; otherwise Allow only if some statement allows; else an
  implicit deny. :func:`evaluate_role` intersects identity policies with a boundary (both must allow;
  explicit denies in either win);
* condition operators: String(Not)Equals(IgnoreCase), String(Not)Like, Arn(Not)Equals, Arn(Not)Like,
  Bool, Null, Numeric*, each with the ``IfExists`` suffix and the ``ForAllValues:``/``ForAnyValue:``
  qualifiers. An unknown operator raises :class:`UnsupportedPolicy` (never "allow"); so does a
  multi-valued context key under a single-valued operator without a qualifier.

:class:`Templates` resolves CDK intrinsics enough to evaluate: ``Fn::Join``, ``Fn::Sub``, ``Fn::Select``,
``Fn::Split``, ``Ref``/``Fn::GetAtt`` to a placeholder name or ARN of the referenced resource (shaped like
what CloudFormation generates: ``<stack>-<logicalid>-<suffix>``, the role's ``Path`` included),
``Fn::ImportValue`` to the exporting stack's value (or the export name when no stack exports it),
``Fn::GetStackOutput`` to the output's value, and the ``AWS::Partition``/``Region``/``AccountId``/
``StackName``/``URLSuffix`` pseudo parameters.
"""

from __future__ import annotations

import enum
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Json = Any


class UnsupportedPolicy(ValueError):
    """The policy (or template) uses something this evaluator does not implement."""


class Decision(enum.Enum):
    ALLOW = "allow"
    IMPLICIT_DENY = "implicit deny"
    EXPLICIT_DENY = "explicit deny"

    @property
    def allowed(self) -> bool:
        return self is Decision.ALLOW


@dataclass(frozen=True)
class Request:
    """One API call: ``action`` (``service:Name``) on ``resource`` (an ARN or ``*``) with ``context``.

    ``principal`` is only consulted by statements with a ``Principal`` (trust and resource policies):
    ``{"Service": "lambda.amazonaws.com"}`` or ``{"AWS": "arn:aws:iam::111111111111:role/x"}``.
    Context values are strings, bools, numbers or lists (multi-valued keys).
    """

    action: str
    resource: str = "*"
    context: Mapping[str, Any] = field(default_factory=dict)
    principal: Mapping[str, str] | None = None


# Wildcards ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def _wildcard_regex(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    parts: list[str] = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts) + r"\Z", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM wildcard matching: ``*`` any run of characters (``:`` and ``/`` included), ``?`` one."""
    if "*" not in pattern and "?" not in pattern:  # most patterns are exact names: no regex needed
        return pattern.lower() == value.lower() if ignore_case else pattern == value
    if pattern == "*":
        return True
    return _wildcard_regex(pattern, ignore_case=ignore_case).match(value) is not None


def arn_match(pattern: str, value: str) -> bool:
    """``ArnLike``: the six ``:``-separated ARN parts match one by one (the last may hold ``:``)."""
    if pattern == "*":
        return True
    if "*" not in pattern and "?" not in pattern:
        return pattern == value
    p_parts, v_parts = pattern.split(":", 5), value.split(":", 5)
    if len(p_parts) != 6 or len(v_parts) != 6:
        return False
    return all(wildcard_match(p, v) for p, v in zip(p_parts, v_parts, strict=True))


def action_matches(pattern: str, action: str) -> bool:
    return wildcard_match(pattern, action, ignore_case=True)


def resource_matches(pattern: str, resource: str) -> bool:
    if resource == "*":
        return pattern == "*"
    return arn_match(pattern, resource) if pattern.startswith("arn:") else wildcard_match(pattern, resource)


# Conditions ---------------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, (str, int, float)):
        raise UnsupportedPolicy(f"condition value {value!r} is not a string (unresolved intrinsic?)")
    return str(value)


def _number(value: Any) -> float:
    try:
        return float(_string(value))
    except ValueError as exc:
        raise UnsupportedPolicy(f"{value!r} is not a number") from exc


def _bool(value: Any) -> str:
    return _string(value).lower()


# base operator -> (match one context value against one policy value, negated?)
_OPERATORS: dict[str, tuple[Any, bool]] = {
    "StringEquals": (lambda c, p: _string(c) == _string(p), False),
    "StringNotEquals": (lambda c, p: _string(c) == _string(p), True),
    "StringEqualsIgnoreCase": (lambda c, p: _string(c).lower() == _string(p).lower(), False),
    "StringNotEqualsIgnoreCase": (lambda c, p: _string(c).lower() == _string(p).lower(), True),
    "StringLike": (lambda c, p: wildcard_match(_string(p), _string(c)), False),
    "StringNotLike": (lambda c, p: wildcard_match(_string(p), _string(c)), True),
    "ArnEquals": (lambda c, p: arn_match(_string(p), _string(c)), False),
    "ArnLike": (lambda c, p: arn_match(_string(p), _string(c)), False),
    "ArnNotEquals": (lambda c, p: arn_match(_string(p), _string(c)), True),
    "ArnNotLike": (lambda c, p: arn_match(_string(p), _string(c)), True),
    "Bool": (lambda c, p: _bool(c) == _bool(p), False),
    "NumericEquals": (lambda c, p: _number(c) == _number(p), False),
    "NumericNotEquals": (lambda c, p: _number(c) == _number(p), True),
    "NumericLessThan": (lambda c, p: _number(c) < _number(p), False),
    "NumericLessThanEquals": (lambda c, p: _number(c) <= _number(p), False),
    "NumericGreaterThan": (lambda c, p: _number(c) > _number(p), False),
    "NumericGreaterThanEquals": (lambda c, p: _number(c) >= _number(p), False),
}
SUPPORTED_OPERATORS = frozenset({*_OPERATORS, "Null"})


def _context_value(context: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    for k, v in context.items():  # condition keys are case-insensitive
        if k.lower() == key.lower():
            return True, v
    return False, None


def _key_matches(operator: str, key: str, expected: Any, context: Mapping[str, Any]) -> bool:
    qualifier, _, base = operator.rpartition(":")
    if qualifier not in ("", "ForAllValues", "ForAnyValue"):
        raise UnsupportedPolicy(f"unknown set qualifier {qualifier!r}")
    if_exists = base.endswith("IfExists")
    if if_exists:
        base = base[: -len("IfExists")]
    present, value = _context_value(context, key)
    policy_values = _as_list(expected)
    if base == "Null":
        if qualifier or if_exists:
            raise UnsupportedPolicy(f"{operator} is not a valid operator")
        return any((not present) == (_bool(p) == "true") for p in policy_values)
    if base not in _OPERATORS:
        raise UnsupportedPolicy(f"unknown condition operator {operator!r}")
    match_one, negated = _OPERATORS[base]
    if not present:
        # A missing key: IfExists and negated operators are true, ForAllValues is vacuously true,
        # everything else is false.
        return if_exists or qualifier == "ForAllValues" or (negated and not qualifier)
    values = _as_list(value)
    if qualifier == "":
        if isinstance(value, (list, tuple)):
            raise UnsupportedPolicy(f"{key} is multi-valued: {operator} needs ForAllValues/ForAnyValue")
        hit = any(match_one(value, p) for p in policy_values)
        return not hit if negated else hit

    def ok(v: Any) -> bool:
        hit = any(match_one(v, p) for p in policy_values)
        return not hit if negated else hit

    return all(ok(v) for v in values) if qualifier == "ForAllValues" else any(ok(v) for v in values)


def conditions_match(condition: Mapping[str, Mapping[str, Any]] | None, context: Mapping[str, Any]) -> bool:
    """All operators and all keys must match (AND); values of one key are alternatives (OR)."""
    for operator, tests in (condition or {}).items():
        for key, expected in tests.items():
            if not _key_matches(operator, key, expected, context):
                return False
    return True


# Statements and policies --------------------------------------------------------------------------------


def statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    stmts = document.get("Statement", [])
    return [stmts] if isinstance(stmts, Mapping) else list(stmts)


def _principal_matches(principal: Any, request: Request) -> bool:
    if principal == "*" or principal == {"AWS": "*"}:
        return True
    if request.principal is None:
        return False
    for kind, values in principal.items():
        for value in _as_list(values):
            want = request.principal.get(kind)
            if want is not None and wildcard_match(_string(value), want):
                return True
    return False


def statement_applies(stmt: Mapping[str, Any], request: Request) -> bool:
    """Whether ``stmt`` covers ``request`` (action, resource, principal and conditions)."""
    unknown = set(stmt) - {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
    unknown -= {"Principal", "NotPrincipal"}
    if unknown:
        raise UnsupportedPolicy(f"statement keys {sorted(unknown)}")
    if "NotPrincipal" in stmt:
        raise UnsupportedPolicy("NotPrincipal")
    if stmt.get("Effect") not in ("Allow", "Deny"):
        raise UnsupportedPolicy(f"Effect {stmt.get('Effect')!r}")
    if "Action" in stmt:
        if not any(action_matches(_string(a), request.action) for a in _as_list(stmt["Action"])):
            return False
    elif "NotAction" in stmt:
        if any(action_matches(_string(a), request.action) for a in _as_list(stmt["NotAction"])):
            return False
    else:
        raise UnsupportedPolicy("statement without Action or NotAction")
    if "Resource" in stmt:
        if not any(resource_matches(_string(r), request.resource) for r in _as_list(stmt["Resource"])):
            return False
    elif "NotResource" in stmt:
        if any(resource_matches(_string(r), request.resource) for r in _as_list(stmt["NotResource"])):
            return False
    elif "Principal" not in stmt:  # trust policies have no Resource
        raise UnsupportedPolicy("statement without Resource or NotResource")
    if "Principal" in stmt and not _principal_matches(stmt["Principal"], request):
        return False
    return conditions_match(stmt.get("Condition"), request.context)


def evaluate(documents: Iterable[Mapping[str, Any]], request: Request) -> Decision:
    """One policy set (e.g. a role's identity policies): explicit deny > allow > implicit deny."""
    allowed = False
    for document in documents:
        for stmt in statements(document):
            if statement_applies(stmt, request):
                if stmt["Effect"] == "Deny":
                    return Decision.EXPLICIT_DENY
                allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def evaluate_with_boundary(
    identity: Sequence[Mapping[str, Any]], boundary: Sequence[Mapping[str, Any]] | None, request: Request
) -> Decision:
    """Effective permission of a principal: identity ∩ boundary; an explicit deny in either wins."""
    ident = evaluate(identity, request)
    if boundary is None:
        return ident
    bound = evaluate(boundary, request)
    if Decision.EXPLICIT_DENY in (ident, bound):
        return Decision.EXPLICIT_DENY
    return Decision.ALLOW if ident.allowed and bound.allowed else Decision.IMPLICIT_DENY


# Templates: intrinsics and roles ------------------------------------------------------------------------

#: AWS-managed policies our roles attach (CDK attaches the first to its custom-resource providers).
AWS_MANAGED_POLICIES: dict[str, dict[str, Any]] = {
    "service-role/AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            }
        ],
    },
}

PLACEHOLDER_SUFFIX = "abcdef123456"


@dataclass(frozen=True)
class Role:
    """A role of a synthesized stage with its policies resolved to plain JSON."""

    stack: str
    logical_id: str
    arn: str
    trust: dict[str, Any]
    identity: list[dict[str, Any]]
    boundary: list[dict[str, Any]] | None
    boundary_ref: str | None

    def can(self, request: Request) -> Decision:
        return evaluate_with_boundary(self.identity, self.boundary, request)

    @property
    def name(self) -> str:
        return f"{self.stack}/{self.logical_id}"


class Templates:
    """Every stack template of one environment (``{stack name: template}``) with intrinsics resolved.

    ``stack name`` is the deployed name (``Flywheel-dev-Security``): it prefixes generated names, and
    ``Fn::GetStackOutput`` names it.
    """

    def __init__(self, templates: Mapping[str, Mapping[str, Any]], *, account: str, region: str) -> None:
        self.templates = dict(templates)
        self.account = account
        self.region = region
        self.partition = "aws"
        self.exports: dict[str, tuple[str, Any]] = {}
        for stack, template in self.templates.items():
            for output in template.get("Outputs", {}).values():
                name = output.get("Export", {}).get("Name")
                if isinstance(name, str):
                    self.exports[name] = (stack, output["Value"])

    # -- names and ARNs of resources (what CloudFormation would generate, with a fixed suffix)

    def resource(self, stack: str, logical_id: str) -> Mapping[str, Any]:
        try:
            return self.templates[stack]["Resources"][logical_id]
        except KeyError as exc:
            raise UnsupportedPolicy(f"{stack} has no resource {logical_id}") from exc

    def generated_name(self, stack: str, logical_id: str, *, lower: bool = False) -> str:
        name = f"{stack}-{logical_id}-{PLACEHOLDER_SUFFIX}"
        return name.lower() if lower else name

    def ref(self, stack: str, logical_id: str) -> str:
        pseudo = {
            "AWS::Partition": self.partition,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::StackName": stack,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": "",
        }
        if logical_id in pseudo:
            return pseudo[logical_id]
        if logical_id in self.templates[stack].get("Parameters", {}):
            raise UnsupportedPolicy(f"{stack}: Ref to parameter {logical_id}")
        res = self.resource(stack, logical_id)
        kind, props = res["Type"], res.get("Properties", {})
        if kind == "AWS::S3::Bucket":
            return (
                self.resolve(stack, props["BucketName"])
                if "BucketName" in props
                else self.generated_name(stack, logical_id, lower=True)
            )
        if kind == "AWS::IAM::ManagedPolicy":
            name = self.resolve(stack, props.get("ManagedPolicyName", self.generated_name(stack, logical_id)))
            return f"arn:{self.partition}:iam::{self.account}:policy{props.get('Path', '/')}{name}"
        if kind == "AWS::IAM::Role":
            return (
                self.resolve(stack, props["RoleName"])
                if "RoleName" in props
                else self.generated_name(stack, logical_id)
            )
        if kind == "AWS::Logs::LogGroup":
            return (
                self.resolve(stack, props["LogGroupName"])
                if "LogGroupName" in props
                else self.generated_name(stack, logical_id)
            )
        for name_kind, prop in (("AWS::CloudWatch::Alarm", "AlarmName"), ("AWS::DynamoDB::Table", "TableName")):
            if kind == name_kind and prop in props:
                return str(self.resolve(stack, props[prop]))
        if kind == "AWS::EC2::VPC":
            return f"vpc-{logical_id.lower()}"
        if kind == "AWS::EC2::SecurityGroup":
            return f"sg-{logical_id.lower()}"
        if kind == "AWS::EC2::Subnet":
            return f"subnet-{logical_id.lower()}"
        if kind == "AWS::KMS::Key":  # unique per stack: every team stack has a TeamJobKey
            return f"key-{stack.lower()}-{logical_id.lower()}"
        return self.generated_name(stack, logical_id)

    def get_att(self, stack: str, logical_id: str, attribute: str) -> str:
        res = self.resource(stack, logical_id)
        kind, props = res["Type"], res.get("Properties", {})
        p, r, a = self.partition, self.region, self.account
        name = self.ref(stack, logical_id)
        if attribute == "Arn":
            if kind == "AWS::S3::Bucket":
                return f"arn:{p}:s3:::{name}"
            if kind == "AWS::IAM::Role":
                return f"arn:{p}:iam::{a}:role{props.get('Path', '/')}{name}"
            if kind == "AWS::Logs::LogGroup":
                return f"arn:{p}:logs:{r}:{a}:log-group:{name}:*"
            if kind == "AWS::KMS::Key":
                return f"arn:{p}:kms:{r}:{a}:key/{name}"
            if kind == "AWS::Lambda::Function":
                return f"arn:{p}:lambda:{r}:{a}:function:{name}"
            if kind == "AWS::CloudWatch::Alarm":
                return f"arn:{p}:cloudwatch:{r}:{a}:alarm:{name}"
            if kind == "AWS::DynamoDB::Table":
                return f"arn:{p}:dynamodb:{r}:{a}:table/{name}"
            if kind == "AWS::SNS::Topic":
                return f"arn:{p}:sns:{r}:{a}:{name}"
            if kind == "AWS::SQS::Queue":
                return f"arn:{p}:sqs:{r}:{a}:{name}"
            if kind == "AWS::CloudTrail::Trail":
                return f"arn:{p}:cloudtrail:{r}:{a}:trail/{name}"
            service = kind.split("::")[1].lower()
            return f"arn:{p}:{service}:{r}:{a}:{logical_id.lower()}/{name}"
        if kind == "AWS::EC2::VPC" and attribute == "DefaultSecurityGroup":
            return f"sg-{logical_id.lower()}-default"
        if kind == "AWS::EC2::VPC" and attribute == "CidrBlock":
            return res["Properties"]["CidrBlock"]
        if attribute == "GroupId" and kind == "AWS::EC2::SecurityGroup":
            return name
        return f"{name}.{attribute}"

    # -- intrinsics

    def resolve(self, stack: str, value: Json) -> Json:
        """``value`` with every intrinsic replaced by a string (in ``stack``'s context)."""
        if isinstance(value, list):
            return [self.resolve(stack, v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(stack, v) for k, v in value.items()}
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return self.ref(stack, arg)
        if fn == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.get_att(stack, logical_id, attribute)
        if fn == "Fn::Join":
            sep, parts = arg
            return _string(self.resolve(stack, sep)).join(_string(self.resolve(stack, p)) for p in parts)
        if fn == "Fn::Select":
            index, items = arg
            return self.resolve(stack, items)[int(self.resolve(stack, index))]
        if fn == "Fn::Split":
            sep, text = arg
            return _string(self.resolve(stack, text)).split(sep)
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else arg

            def sub(match: re.Match[str]) -> str:
                ref = match.group(1)
                if ref in variables:
                    return _string(self.resolve(stack, variables[ref]))
                if "." in ref and not ref.startswith("AWS::"):
                    lid, att = ref.split(".", 1)
                    return self.get_att(stack, lid, att)
                return self.ref(stack, ref)

            return re.sub(r"\$\{([^!}][^}]*)\}", sub, text)
        if fn == "Fn::ImportValue":
            name = self.resolve(stack, arg)
            if name in self.exports:
                source, exported = self.exports[name]
                return self.resolve(source, exported)
            return name
        if fn == "Fn::GetStackOutput":
            source = self.resolve(stack, arg["StackName"])
            output = self.templates[source]["Outputs"][arg["OutputName"]]
            return self.resolve(source, output["Value"])
        if fn.startswith("Fn::") or fn == "Condition":
            raise UnsupportedPolicy(f"{stack}: intrinsic {fn} not supported")
        return {fn: self.resolve(stack, arg)}

    # -- roles

    def managed_policy_by_arn(self, arn: str) -> dict[str, Any]:
        aws_prefix = f"arn:{self.partition}:iam::aws:policy/"
        if arn.startswith(aws_prefix):
            name = arn[len(aws_prefix) :]
            if name not in AWS_MANAGED_POLICIES:
                raise UnsupportedPolicy(f"AWS-managed policy {name}: add its document to AWS_MANAGED_POLICIES")
            return AWS_MANAGED_POLICIES[name]
        for stack, template in self.templates.items():
            for lid, res in template.get("Resources", {}).items():
                if res["Type"] == "AWS::IAM::ManagedPolicy" and self.ref(stack, lid) == arn:
                    return self.resolve(stack, res["Properties"]["PolicyDocument"])
        raise UnsupportedPolicy(f"managed policy {arn} is not in these templates")

    def roles(self) -> list[Role]:
        out = []
        for stack, template in self.templates.items():
            resources = template.get("Resources", {})
            for lid, res in resources.items():
                if res["Type"] != "AWS::IAM::Role":
                    continue
                props = res.get("Properties", {})
                identity = [self.resolve(stack, p["PolicyDocument"]) for p in props.get("Policies", [])]
                identity += [
                    self.managed_policy_by_arn(self.resolve(stack, a)) for a in props.get("ManagedPolicyArns", [])
                ]
                for other in resources.values():
                    attaches = other["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and {
                        "Ref": lid
                    } in other.get("Properties", {}).get("Roles", [])
                    if attaches:
                        identity.append(self.resolve(stack, other["Properties"]["PolicyDocument"]))
                boundary_ref = (
                    self.resolve(stack, props["PermissionsBoundary"]) if "PermissionsBoundary" in props else None
                )
                out.append(
                    Role(
                        stack=stack,
                        logical_id=lid,
                        arn=self.get_att(stack, lid, "Arn"),
                        trust=self.resolve(stack, props["AssumeRolePolicyDocument"]),
                        identity=identity,
                        boundary=[self.managed_policy_by_arn(boundary_ref)] if boundary_ref else None,
                        boundary_ref=boundary_ref,
                    )
                )
        return out

    def role(self, stack: str, logical_id_prefix: str) -> Role:
        (role,) = [r for r in self.roles() if r.stack == stack and r.logical_id.startswith(logical_id_prefix)]
        return role


def dump(value: Json) -> str:
    """Compact JSON for assertion messages."""
    return json.dumps(value, sort_keys=True)[:2000]


__all__ = [
    "AWS_MANAGED_POLICIES",
    "SUPPORTED_OPERATORS",
    "Decision",
    "Request",
    "Role",
    "Templates",
    "UnsupportedPolicy",
    "action_matches",
    "arn_match",
    "conditions_match",
    "dump",
    "evaluate",
    "evaluate_with_boundary",
    "resource_matches",
    "statement_applies",
    "statements",
    "wildcard_match",
]
