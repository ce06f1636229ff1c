"""Reviewed acknowledgments of what CDK Pipelines generates in the toolchain stack (and nothing else).

CDK Pipelines creates its roles, their default policies and its CodeBuild projects itself; their logical
ids are generated. Rather than pinning generated ids, each entry below names a rule, the kind of construct
it may apply to (a path pattern) and why it is acceptable; :func:`acknowledge_generated` runs the packs
over the stack once and acknowledges exactly the findings an entry matches (through
:func:`stacks.nag.acknowledge`, so each lands in the reviewed snapshot). A finding no entry matches stays
unacknowledged and fails ``tests/stacks/test_toolchain.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import Stack
from constructs import IConstruct

from stacks.nag import acknowledge, packs

_GENERATED_POLICY = (
    r"(Role|CodePipelineActionRole|FileRole|SmokeStepRole|RetrainStepRole|GitHubDeploy/Role)/DefaultPolicy/Resource$"
)


@dataclass(frozen=True)
class GeneratedFinding:
    """A rule (regular expression over the granular id) on constructs whose path matches, and why."""

    rule: str
    path: str
    reason: str


def generated_findings(account: str, region: str) -> tuple[GeneratedFinding, ...]:
    """The table, for the toolchain's account and region."""
    here = re.escape(f"{region}:{account}")
    return (
        GeneratedFinding(
            r"AwsSolutions-IAM5\[Action::(s3:(Abort|DeleteObject|GetBucket|GetObject|List|PutObject)|kms:(GenerateDataKey|ReEncrypt))\*\]",
            _GENERATED_POLICY,
            "CDK Pipelines' grant on the pipeline's own artifact bucket (or the S3 source) and its KMS key: the "
            "wildcards are S3/KMS action families on those named resources only",
        ),
        GeneratedFinding(
            r"AwsSolutions-IAM5\[Resource::<(Artifacts|Source)Bucket[0-9A-F]{8}\.Arn>/\*\]",
            _GENERATED_POLICY,
            "Objects of the toolchain's own artifact (or source) bucket: artifact names are generated per execution",
        ),
        GeneratedFinding(
            rf"AwsSolutions-IAM5\[Resource::arn:aws:(logs:{here}:log-group:/aws/codebuild/<[A-Za-z0-9]+>:\*"
            rf"|codebuild:{here}:report-group/<[A-Za-z0-9]+>-\*)\]",
            _GENERATED_POLICY,
            "CodeBuild's log streams and report groups of one named project (CodeBuild names them per build)",
        ),
        GeneratedFinding(
            rf"AwsSolutions-IAM5\[Resource::(\*|arn:aws:logs:{here}:log-group:/aws/codebuild/\*"
            rf"|arn:aws:codebuild:{here}:report-group/\*)\]",
            r"Toolchain/Assets/FileRole/DefaultPolicy/Resource$",
            "CDK Pipelines' asset-publishing role: CodeBuild logs and report groups of its own projects and "
            "build status calls CDK grants on *; the only roles it may assume are the named file-publishing roles",
        ),
        GeneratedFinding(
            rf"AwsSolutions-IAM5\[Resource::(\*|arn:\*:iam::{re.escape(account)}:role/\*)\]",
            r"Toolchain/UpdatePipeline/SelfMutation/Role/DefaultPolicy/Resource$",
            "Self-mutation: cloudformation:DescribeStacks and s3:ListBucket take *; sts:AssumeRole is limited by "
            "the aws-cdk:bootstrap-role tag condition to this account's CDK bootstrap roles",
        ),
        GeneratedFinding(
            r"(HIPAA\.Security|NIST\.800\.53\.R5|PCI\.DSS\.321)-IAMNoInlinePolicy",
            _GENERATED_POLICY,
            "CDK Pipelines-generated default policy of a role it manages; inline keeps it deleted with the role",
        ),
        GeneratedFinding(
            r"(HIPAA\.Security|PCI\.DSS\.321)-CodeBuildProjectSourceRepoUrl",
            r"/Resource$",
            "Source type CODEPIPELINE: the checkout arrives as a KMS-encrypted pipeline artifact; the repository "
            "is reached through the CodeConnections connection (an AWS-managed OAuth app), no URL or credentials",
        ),
    )


def _construct_at(stack: Stack, path: str) -> IConstruct | None:
    node: IConstruct = stack
    for part in path.split("/"):
        child = node.node.try_find_child(part)
        if child is None:
            return None
        node = child
    return node


def acknowledge_generated(stack: Stack) -> list[str]:
    """Acknowledge the findings the table matches; returns the unmatched ones (``rule path``) for reporting."""
    table = generated_findings(stack.account, stack.region)
    unmatched: list[str] = []
    prefix = f"{stack.node.path}/"
    for pack in packs(stack):
        for violation in pack.validate_scope(stack).violations:
            for resource in violation.violating_resources:
                path = str(getattr(resource, "construct_path", "") or "")
                relative = path.removeprefix(prefix)
                entry = next(
                    (e for e in table if re.fullmatch(e.rule, violation.rule_name) and re.search(e.path, relative)),
                    None,
                )
                construct = _construct_at(stack, relative) if entry else None
                if entry is None or construct is None:
                    unmatched.append(f"{violation.rule_name} {relative}")
                    continue
                acknowledge(construct, violation.rule_name, entry.reason)
    return unmatched
