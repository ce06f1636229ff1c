"""GitHub Actions → AWS without long-lived keys: GitHub's OIDC provider and the deploy workflow's role.

The role's trust requires ``token.actions.githubusercontent.com:aud`` = ``sts.amazonaws.com`` and a
``:sub`` that *equals* (``StringEquals``, no wildcard) the configured repository and branch or GitHub
environment: a workflow of any other repository, branch or environment cannot assume it. No thumbprint
is configured: AWS validates GitHub's certificate against its library of trusted CAs.

What the role may do (``.github/workflows/deploy.yml``): assume the toolchain account's CDK bootstrap
roles (deploy, file publishing, lookup — ``cdk deploy`` of the toolchain stack itself) and, for an S3
source, put the source archive into the source bucket (which starts the pipeline).
"""

from __future__ import annotations

from aws_cdk import DefaultStackSynthesizer, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from config.models import GitHubDeploy

GITHUB_ISSUER = "token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"
#: The bootstrap roles ``cdk deploy`` assumes (``DefaultStackSynthesizer``'s role names, default qualifier).
BOOTSTRAP_ROLES = ("deploy", "file-publishing", "lookup")


def bootstrap_role_arn(partition: str, account: str, region: str, kind: str) -> str:
    """``arn:<partition>:iam::<account>:role/cdk-<qualifier>-<kind>-role-<account>-<region>``."""
    qualifier = DefaultStackSynthesizer.DEFAULT_QUALIFIER
    return f"arn:{partition}:iam::{account}:role/cdk-{qualifier}-{kind}-role-{account}-{region}"


class GitHubDeployRole(Construct):
    """``provider_arn`` (created or GitHub's existing one) and ``role``, trusted for exactly one subject."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        github: GitHubDeploy,
        source_bucket: s3.IBucket | None,
        source_object_key: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        if github.create_provider:
            provider = iam.OidcProviderNative(self, "Provider", url=f"https://{GITHUB_ISSUER}", client_ids=[AUDIENCE])
            self.provider_arn = provider.oidc_provider_arn
        else:
            self.provider_arn = f"arn:{stack.partition}:iam::{stack.account}:oidc-provider/{GITHUB_ISSUER}"
        self.subject = github.subject
        self.role = iam.Role(
            self,
            "Role",
            description=f"GitHub Actions deploy role for {github.subject} (OIDC, no long-lived keys)",
            assumed_by=iam.FederatedPrincipal(
                self.provider_arn,
                conditions={"StringEquals": {f"{GITHUB_ISSUER}:aud": AUDIENCE, f"{GITHUB_ISSUER}:sub": github.subject}},
                assume_role_action="sts:AssumeRoleWithWebIdentity",
            ),
            max_session_duration=Duration.hours(1),
        )
        statements = [
            iam.PolicyStatement(
                sid="AssumeCdkBootstrapRoles",
                actions=["sts:AssumeRole", "sts:TagSession"],
                resources=[
                    bootstrap_role_arn(stack.partition, stack.account, stack.region, kind) for kind in BOOTSTRAP_ROLES
                ],
            )
        ]
        iam.ManagedPolicy(self, "Policy", statements=statements, roles=[self.role])
        if source_bucket is not None and source_object_key is not None:
            source_bucket.grant_put(self.role, source_object_key)
