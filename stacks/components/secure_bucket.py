"""The one way Flywheel makes an S3 bucket: encrypted, private, TLS-only, versioned, access-logged."""

from __future__ import annotations

import enum

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.nag import acknowledge

# Every bucket aborts stale multipart uploads; noncurrent versions are kept long enough to recover from
# a bad write, then expire so versioning does not grow storage forever.
BASE_LIFECYCLE = (
    s3.LifecycleRule(id="AbortIncompleteUploads", abort_incomplete_multipart_upload_after=Duration.days(7)),
)


class ObjectLockMode(enum.Enum):
    """Default retention mode of a locked bucket: governance (privileged bypass) or compliance (none)."""

    GOVERNANCE = "GOVERNANCE"
    COMPLIANCE = "COMPLIANCE"


class SecureBucket(Construct):
    """An S3 bucket with the Flywheel baseline (DESIGN §7) applied; ``bucket`` and ``key`` are exposed.

    ``key=None`` means SSE-S3, allowed only for the server-access-log bucket (S3 log delivery does not
    support SSE-KMS targets).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey | None,
        access_log_bucket: s3.IBucket | None,
        access_log_prefix: str = "",
        removal_policy: RemovalPolicy,
        noncurrent_days: int = 90,
        transition_after_days: int | None = None,
        object_lock_days: int | None = None,
        object_lock_mode: ObjectLockMode = ObjectLockMode.GOVERNANCE,
        extra_lifecycle: tuple[s3.LifecycleRule, ...] = (),
        event_bridge: bool = False,
    ) -> None:
        """``object_lock_mode`` applies with ``object_lock_days``: COMPLIANCE for production audit logs.

        ``event_bridge``: send the bucket's events to EventBridge (the raw zone: data arrival). Set on the
        bucket resource itself (``NotificationConfiguration.EventBridgeConfiguration``), not through
        ``s3.Bucket(event_bridge_enabled=True)``, which adds a notifications custom resource: a Lambda
        with its own role that could change any notification of the bucket.
        """
        super().__init__(scope, construct_id)
        rules = [
            *BASE_LIFECYCLE,
            s3.LifecycleRule(id="ExpireNoncurrent", noncurrent_version_expiration=Duration.days(noncurrent_days)),
            *extra_lifecycle,
        ]
        if transition_after_days is not None:
            rules.append(
                s3.LifecycleRule(
                    id="IntelligentTiering",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INTELLIGENT_TIERING,
                            transition_after=Duration.days(transition_after_days),
                        )
                    ],
                )
            )
        self.key = key
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS if key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=key,
            bucket_key_enabled=bool(key),
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=access_log_bucket,
            server_access_logs_prefix=access_log_prefix or None,
            lifecycle_rules=rules,
            object_lock_enabled=object_lock_days is not None,
            object_lock_default_retention=(
                _retention(object_lock_mode, Duration.days(object_lock_days)) if object_lock_days else None
            ),
            removal_policy=removal_policy,
        )
        if event_bridge:
            cfn = self.bucket.node.default_child
            assert isinstance(cfn, s3.CfnBucket)
            cfn.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
                event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(event_bridge_enabled=True)
            )
        for pack in ("HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321"):
            acknowledge(
                self.bucket,
                f"{pack}-S3BucketReplicationEnabled",
                "Cross-region replication is a per-organisation disaster-recovery choice (it doubles storage "
                "and moves regulated data across regions); versioning, object lock and retained removal "
                "policies protect integrity in-region",
            )
            if key is None:
                acknowledge(
                    self.bucket,
                    f"{pack}-S3DefaultEncryptionKMS",
                    "S3 server access log delivery rejects SSE-KMS target buckets, so the access-log bucket "
                    "uses SSE-S3; it holds request metadata only, never data-lake objects",
                )


def _retention(mode: ObjectLockMode, days: Duration) -> s3.ObjectLockRetention:
    if mode is ObjectLockMode.COMPLIANCE:
        return s3.ObjectLockRetention.compliance(days)
    return s3.ObjectLockRetention.governance(days)
