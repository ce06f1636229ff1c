"""CloudTrail for the environment: KMS-encrypted, validated, sent to CloudWatch Logs, with S3 data events."""

from __future__ import annotations

from aws_cdk import CfnResource, RemovalPolicy, Stack
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.components.guardrails import audit_log_group_name
from stacks.components.keys import purpose_key
from stacks.components.secure_bucket import ObjectLockMode, SecureBucket
from stacks.nag import acknowledge


class AuditTrail(Construct):
    """``trail`` writes to ``bucket`` (object lock) under ``key``; data events cover ``data_buckets``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data_buckets: list[s3.IBucket],
        access_log_bucket: s3.IBucket,
        logs_key: kms.IKey,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        object_lock_days: int,
        object_lock_mode: ObjectLockMode,
        env_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.key = purpose_key(self, "TrailKey", purpose="CloudTrail", removal_policy=removal_policy)
        trail_arn = f"arn:{stack.partition}:cloudtrail:{stack.region}:{stack.account}:trail/*"
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudTrailEncryptThisAccount",
                principals=[iam.ServicePrincipal("cloudtrail.amazonaws.com")],
                actions=["kms:GenerateDataKey*", "kms:DescribeKey"],
                resources=["*"],  # in a key policy "*" means "this key"
                conditions={
                    "StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn": trail_arn},
                    "StringEquals": {"aws:SourceAccount": stack.account},
                },
            )
        )
        self.bucket = SecureBucket(
            self,
            "TrailBucket",
            key=self.key,
            access_log_bucket=access_log_bucket,
            access_log_prefix="cloudtrail/",
            removal_policy=removal_policy,
            noncurrent_days=365,
            object_lock_days=object_lock_days,
            object_lock_mode=object_lock_mode,
        ).bucket
        self.log_group = logs.LogGroup(
            self,
            "TrailLogs",
            # A fixed name under the audit prefix: the boundary denies deleting or shortening it.
            log_group_name=audit_log_group_name(env_name, "cloudtrail"),
            encryption_key=logs_key,
            retention=log_retention,
            removal_policy=removal_policy,
        )
        self.trail = cloudtrail.Trail(
            self,
            "Trail",
            bucket=self.bucket,
            encryption_key=self.key,
            enable_file_validation=True,
            include_global_service_events=True,
            is_multi_region_trail=True,
            send_to_cloud_watch_logs=True,
            cloud_watch_log_group=self.log_group,
            management_events=cloudtrail.ReadWriteType.ALL,
        )
        logs_role = self.trail.node.find_child("LogsRole")
        # Confused-deputy guard: only trails of this account may assume the log-delivery role.
        cfn_role = logs_role.node.default_child
        assert isinstance(cfn_role, CfnResource)
        cfn_role.add_property_override(
            "AssumeRolePolicyDocument.Statement.0.Condition",
            {"StringEquals": {"aws:SourceAccount": stack.account}, "ArnLike": {"aws:SourceArn": trail_arn}},
        )
        logs_policy = logs_role.node.find_child("DefaultPolicy")
        for pack in ("HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321"):
            acknowledge(
                logs_policy,
                f"{pack}-IAMNoInlinePolicy",
                "CDK-generated policy letting CloudTrail write to its one log group only; inline keeps it "
                "deleted together with the role",
            )
        self.trail.add_s3_event_selector(
            [cloudtrail.S3EventSelector(bucket=b) for b in data_buckets],
            read_write_type=cloudtrail.ReadWriteType.ALL,
            include_management_events=True,
        )
