"""Customer-managed KMS keys, one per purpose, with rotation on and no ``*`` principals."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


def purpose_key(scope: Construct, construct_id: str, *, purpose: str, removal_policy: RemovalPolicy) -> kms.Key:
    """A rotating symmetric key whose policy trusts only this account (IAM decides the rest).

    The default CDK key policy grants ``kms:*`` to the account root principal (not ``*``); access is then
    granted per role with ``grant_*`` so every use of a key is visible in the templates.
    """
    return kms.Key(
        scope,
        construct_id,
        description=f"Flywheel {purpose} key",
        enable_key_rotation=True,
        rotation_period=Duration.days(365),
        removal_policy=removal_policy,
        pending_window=Duration.days(30),
    )


def allow_service_logs(key: kms.Key) -> None:
    """Let CloudWatch Logs in this account/region encrypt log groups with ``key`` (scoped by context)."""
    stack = Stack.of(key)
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AllowCloudWatchLogsInThisAccount",
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=[
                "kms:Encrypt*",
                "kms:Decrypt*",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Describe*",
            ],
            resources=["*"],  # in a key policy "*" means "this key"
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:*"
                }
            },
        )
    )
