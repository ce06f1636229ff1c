"""cdk-nag 3.x: the five packs we hold every environment to, and every acknowledgment with its reason.

Acknowledgments are made only through :func:`acknowledge`, which refuses vague reasons and records each
one, so ``tests/security/nag_acknowledgments.json`` (a reviewed snapshot) shows any new one in review.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, Validations
from cdk_nag import (
    AwsSolutionsChecks,
    HIPAASecurityChecks,
    NagPack,
    NIST80053R5Checks,
    PCIDSS321Checks,
    ServerlessChecks,
)
from constructs import IConstruct

MIN_REASON = 20
ACK_METADATA = "flywheel:acknowledgment"


def packs(scope: IConstruct) -> list[NagPack]:
    """The packs every environment must pass."""
    return [
        AwsSolutionsChecks(scope),
        HIPAASecurityChecks(scope),
        NIST80053R5Checks(scope),
        PCIDSS321Checks(scope),
        ServerlessChecks(scope),
    ]


@dataclass(frozen=True)
class Finding:
    """One unacknowledged violation: which pack and rule, on which resource."""

    pack: str
    rule: str
    resource: str
    description: str


def findings(scope: IConstruct) -> list[Finding]:
    """Run every pack over ``scope`` (an App or Stage) and list unacknowledged violations."""
    out: list[Finding] = []
    for pack in packs(scope):
        report = pack.validate_scope(scope)
        for violation in report.violations:
            for resource in violation.violating_resources:
                out.append(
                    Finding(
                        pack=pack.name,
                        rule=violation.rule_name,
                        resource=_resource_name(resource),
                        description=violation.description.splitlines()[0][:160],
                    )
                )
    return out


def _resource_name(resource: object) -> str:
    path = getattr(resource, "construct_path", None) or getattr(resource, "template_path", None) or ""
    return f"{path.split('/', 1)[-1]}:{getattr(resource, 'resource_logical_id', '?')}"


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge ``rule_id`` on ``construct`` (and its children) with a reason that says why it is safe."""
    if len(reason.strip()) < MIN_REASON:
        raise ValueError(f"acknowledgment of {rule_id} needs a reason of at least {MIN_REASON} characters")
    if rule_id.split("-", 1)[-1].startswith(("IAM4", "IAM5")) and "[" not in rule_id:
        raise ValueError(f"{rule_id}: IAM4/IAM5 must be acknowledged with a granular id, e.g. IAM5[Resource::*]")
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))
    # Our own record (also lands in the cloud assembly's metadata): what was acknowledged, where, why.
    construct.node.add_metadata(ACK_METADATA, {"id": rule_id, "reason": reason})


def acknowledgments(scope: IConstruct) -> list[dict[str, str]]:
    """Every acknowledgment recorded under ``scope``: construct path (below the stage), rule id, reason."""
    out = []
    for node in scope.node.find_all():
        for entry in node.node.metadata:
            data = entry.data
            if entry.type == ACK_METADATA:
                path = node.node.path.split("/", 1)[-1]
                out.append({"path": path, "id": data["id"], "reason": data["reason"]})
    return sorted(out, key=lambda a: (a["path"], a["id"]))
