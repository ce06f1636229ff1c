"""The zoned data lake: one bucket and one KMS key per zone, a Glue database per zone, access logs.

The raw zone holds PII. Its bucket policy and its key policy deny reading data (``s3:GetObject``,
``s3:GetObjectVersion``; ``kms:Decrypt``, ``kms:ReEncryptFrom``) to every principal except the raw
readers, named by IAM role path (:data:`naming.RAW_READER_KINDS`, ``aws:PrincipalArn``): the teams'
``preprocessing`` step roles, the ``ingest`` path and the operators' documented ``break-glass`` role
(``docs/runbooks/break-glass.md``). Team stacks deploy after the lake, so the policies name the roles by that
predictable path rather than by ARN. Bucket management (CDK's auto-delete and notification custom
resources, lifecycle) is untouched: the denies cover data reads only. The raw bucket uses no S3 Bucket
Key, so S3 passes each object's ARN as the KMS encryption context and a preprocessing role's key grant
can be limited to its own team's prefix (the other zones keep Bucket Keys: what jobs write there is
encrypted with the writing team's own job key).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import CfnOutput, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

import naming
from naming import Names
from stacks.components.keys import purpose_key
from stacks.components.secure_bucket import SecureBucket

# Batches that fail their data contract are copied (never deleted) to ``naming.quarantine_prefix``
# (``<team>/quarantine/<pipeline>/``) in the raw zone: quarantined data may hold PII, so it stays in the
# raw bucket (raw-zone access controls, trail data events), encrypted with the writing team's job key.


@dataclass(frozen=True)
class Zone:
    """What a zone holds and how long its data is kept warm."""

    name: str
    construct_id: str  # pinned: renaming would replace the bucket
    holds: str
    transition_after_days: int | None = None
    noncurrent_days: int = 90
    object_lock: bool = False


# Metadata per zone; the zone names (and their order) are naming.ZONES.
_ZONE_METADATA: dict[str, Zone] = {
    zone.name: zone
    for zone in (
        Zone(
            "raw",
            "Raw",
            f"landed source data, may hold PII; <team>/{naming.QUARANTINE}/ prefixes",
            transition_after_days=30,
        ),
        Zone("curated", "Curated", "validated, pseudonymized data"),
        Zone("features", "Features", "train/validation/test splits"),
        Zone(
            "artifacts",
            "Artifacts",
            "model artifacts and baselines (object lock)",
            noncurrent_days=365,
            object_lock=True,
        ),
        Zone("capture", "Capture", "endpoint inference capture", transition_after_days=30),
        Zone("reports", "Reports", "evaluation reports, validation status, drift reports"),
    )
}
if tuple(_ZONE_METADATA) != naming.ZONES:
    raise RuntimeError(f"data_lake zone metadata {tuple(_ZONE_METADATA)} does not match naming.ZONES")
ZONES: tuple[Zone, ...] = tuple(_ZONE_METADATA[name] for name in naming.ZONES)


def _raw_expiry(
    teams: Sequence[str], raw_days: int | None, quarantine_days: int | None
) -> tuple[s3.LifecycleRule, ...]:
    """Per-team expiry of landed and quarantined batches (the PII key folder is never matched)."""
    rules: list[s3.LifecycleRule] = []
    for team in sorted(teams):
        for rule_id, prefix, days in (
            ("ExpireIncoming", naming.incoming_prefix(team), raw_days),
            ("ExpireQuarantine", f"{team}/{naming.QUARANTINE}/", quarantine_days),
        ):
            if days is not None:
                rules.append(s3.LifecycleRule(id=f"{rule_id}-{team}", prefix=prefix, expiration=Duration.days(days)))
    return tuple(rules)


def bucket_export_name(env_name: str, zone: str) -> str:
    """Export name of a zone bucket's name. Team stacks import it so that IAM resources built from it
    read as ``arn:aws:s3:::flywheel-dev-raw-bucket/...`` to reviewers and cdk-nag (a stable, named
    reference instead of an opaque generated one)."""
    return Names(env_name).bucket_export(zone)


def imported_bucket_name(env_name: str, zone: str) -> str:
    """The zone bucket's name in another stack of the same environment."""
    return Fn.import_value(bucket_export_name(env_name, zone))


class DataLake(Construct):
    """Buckets per zone, each with its own key; ``buckets``/``keys`` map zone name → resource."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        removal_policy: RemovalPolicy,
        object_lock_days: int,
        noncurrent_days: Mapping[str, int] | None = None,
        raw_expiry_days: int | None = None,
        quarantine_expiry_days: int | None = None,
        teams: Sequence[str] = (),
    ) -> None:
        """Retention (``config.models.RetentionConfig``, docs/privacy.md): ``noncurrent_days`` zone -> days a
        noncurrent version is kept (default: each zone's :class:`Zone` value); ``raw_expiry_days`` /
        ``quarantine_expiry_days``: current objects under each of ``teams``' ``<team>/incoming/`` /
        ``<team>/quarantine/`` expire (per-team prefix rules: the team's PII key under ``<team>/_keys/``
        never expires)."""
        super().__init__(scope, construct_id)
        noncurrent = dict(noncurrent_days or {})
        #: zone -> the noncurrent-version expiry applied (days).
        self.noncurrent_days: dict[str, int] = {}
        # S3 server access log delivery only supports SSE-S3 on the target bucket (SSE-KMS targets are
        # rejected), so this one bucket uses S3-managed keys; it holds request metadata, not data.
        self.access_logs = SecureBucket(
            self, "AccessLogs", key=None, access_log_bucket=None, removal_policy=removal_policy
        ).bucket
        self.buckets: dict[str, s3.Bucket] = {}
        self.keys: dict[str, kms.Key] = {}
        self.databases: dict[str, glue.CfnDatabase] = {}
        stack = Stack.of(self)
        account = stack.account
        #: ``aws:PrincipalArn`` patterns of the only principals that may read raw data.
        self.raw_reader_patterns = [
            Names(env_name).role_arn_pattern(kind, account=account, partition=stack.partition)
            for kind in naming.RAW_READER_KINDS
        ]
        for zone in ZONES:
            self.noncurrent_days[zone.name] = noncurrent.get(zone.name, zone.noncurrent_days)
            key = purpose_key(
                self, f"{zone.construct_id}Key", purpose=f"{zone.name} zone", removal_policy=removal_policy
            )
            bucket = SecureBucket(
                self,
                zone.construct_id,
                key=key,
                access_log_bucket=self.access_logs,
                access_log_prefix=f"{zone.name}/",
                removal_policy=removal_policy,
                noncurrent_days=self.noncurrent_days[zone.name],
                extra_lifecycle=(
                    _raw_expiry(teams, raw_expiry_days, quarantine_expiry_days) if zone.name == "raw" else ()
                ),
                transition_after_days=zone.transition_after_days,
                object_lock_days=object_lock_days if zone.object_lock else None,
                # Landed objects are events for the teams' data-arrival rules (team stacks, default bus).
                event_bridge=zone.name == "raw",
            ).bucket
            self.buckets[zone.name] = bucket
            CfnOutput(self, f"{zone.construct_id}BucketName", value=bucket.bucket_name,
                      export_name=bucket_export_name(env_name, zone.name))  # fmt: skip
            self.keys[zone.name] = key
            if zone.name == "raw":
                self._restrict_raw_reads(bucket, key)
            self.databases[zone.name] = glue.CfnDatabase(
                self,
                f"{zone.construct_id}Database",
                catalog_id=account,
                database_input=glue.CfnDatabase.DatabaseInputProperty(
                    name=Names(env_name).glue_database(zone.name),
                    description=f"Flywheel {zone.name} zone: {zone.holds}",
                    location_uri=f"s3://{bucket.bucket_name}/",
                ),
            )

    def _restrict_raw_reads(self, bucket: s3.Bucket, key: kms.Key) -> None:
        """Only the raw readers read raw objects or decrypt with the raw key (explicit denies)."""
        only_readers = {"ArnNotLike": {"aws:PrincipalArn": self.raw_reader_patterns}}
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyRawReadsButPreprocessingIngestBreakGlass",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[bucket.arn_for_objects("*")],
                conditions=only_readers,
            )
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyRawDecryptButPreprocessingIngestBreakGlass",
                effect=iam.Effect.DENY,
                # The account principal: every identity of this account (the key admits no other account).
                # Key policies carry no "*" principal, not even in a Deny.
                principals=[iam.AccountRootPrincipal()],
                actions=["kms:Decrypt", "kms:ReEncryptFrom"],
                resources=["*"],  # in a key policy "*" means "this key"
                conditions=only_readers,
            )
        )
        # Erasure requests name a data subject and trigger deletions: only operators (break-glass) and the
        # ingest path may put them (docs/privacy.md); the erasure role may read and delete them (above).
        requesters = [
            pattern
            for kind, pattern in zip(naming.RAW_READER_KINDS, self.raw_reader_patterns, strict=True)
            if kind in (naming.BREAK_GLASS, naming.INGEST)
        ]
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyErasureRequestsButBreakGlassIngest",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=[bucket.arn_for_objects(f"*/{naming.ERASURE}/{naming.ERASURE_REQUESTS}/*")],
                conditions={"ArnNotLike": {"aws:PrincipalArn": requesters}},
            )
        )
        # Object ARNs as encryption context (no Bucket Key): per-team key conditions become possible.
        cfn = bucket.node.default_child
        assert isinstance(cfn, s3.CfnBucket)
        cfn.add_property_override("BucketEncryption.ServerSideEncryptionConfiguration.0.BucketKeyEnabled", False)

    @property
    def raw_bucket(self) -> s3.Bucket:
        """Landing zone (may hold PII)."""
        return self.buckets["raw"]

    @property
    def artifacts_bucket(self) -> s3.Bucket:
        """Model artifacts (object lock)."""
        return self.buckets["artifacts"]
