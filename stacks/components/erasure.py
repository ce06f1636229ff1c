"""A team's deployed right to erasure: erasure-request objects → the erasure Lambda (``lambdas/erasure/``).

An operator (break-glass role) or the ingest path puts a request object under
``<team>/_erasure/requests/`` of the raw bucket (:func:`naming.erasure_request_prefix`; the raw zone's
bucket policy lets only raw readers read it and only break-glass/ingest put it); its S3 ``Object Created``
event (the raw bucket's EventBridge notifications, default bus) invokes the team's erasure function, which
rewrites the team's raw, curated and features objects holding the subject, deletes their other versions,
writes a receipt to the reports zone and lists the affected model packages (``docs/privacy.md``).

The same guardrails as the lifecycle functions (``stacks/components/lifecycle.py``): its own role under
the permissions boundary (path ``/flywheel/<env>/erasure/``: the boundary's only exception to "no role
deletes object versions", and one of the raw readers), one managed policy scoped to the team's prefixes,
a KMS-encrypted log group, an SQS dead-letter queue (KMS) for the function and the rule's target with a
depth alarm to the team's topic, Python 3.14 on arm64, explicit memory/timeout, reserved concurrency 1
(two erasures never rewrite the same object at once), active tracing, no function URL, EventBridge the
only invoker (``SourceArn``). Layers: Powertools and AWS SDK for pandas (pyarrow, for parquet rewrites),
both AWS-published; the latter's ARN is resolved at deploy time from AWS's public SSM parameter of the
pinned release (:data:`SDK_FOR_PANDAS_VERSION`), so synth does no lookup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

import naming
from naming import Names
from stacks.components.lambda_package import POWERTOOLS_LAYER_VERSION, build_package, powertools_layer_arn
from stacks.nag import acknowledge

SERVICE_NAME: Final = "flywheel-erasure"
#: One subject across ~1M rows in 10 batches takes about a minute here (bench/bench_privacy.py): 15 min
#: and 3 GB leave room for large teams; one at a time per team.
MEMORY_MB: Final = 3008
TIMEOUT: Final = Duration.minutes(15)
RESERVED_CONCURRENCY: Final = 1
#: The AWS SDK for pandas release whose published layer (pyarrow) the function uses.
SDK_FOR_PANDAS_VERSION: Final = "3.16.1"
READ: Final = ("s3:GetObject", "s3:GetObjectVersion")


def sdk_for_pandas_parameter(region: str) -> str:
    """AWS's public SSM parameter holding the layer ARN of the pinned release for Python 3.14 on arm64."""
    return f"/aws/service/aws-sdk-pandas/{SDK_FOR_PANDAS_VERSION}/{region}/py3.14/arm64/layer-arn"


class TeamErasure(Construct):
    """``function``, ``role``, ``policy``, ``log_group``, ``dlq``, ``dlq_alarm`` and ``rule`` of a team's erasure."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        team_name: str,
        pipeline_names: Sequence[str],
        group_name: str,
        id_columns: Sequence[str],
        buckets: Mapping[str, str],
        zone_keys: Mapping[str, kms.IKey],
        job_key: kms.IKey,
        queue_key: kms.IKey,
        logs_key: kms.IKey,
        log_retention: logs.RetentionDays,
        topic: sns.ITopic,
        removal_policy: RemovalPolicy,
        reserved_concurrency: bool = True,
        powertools_layer_version: int = POWERTOOLS_LAYER_VERSION,
    ) -> None:
        """``buckets``: zone → bucket name for raw, curated, features and reports; ``zone_keys`` their keys."""
        super().__init__(scope, construct_id)
        if not id_columns:
            raise ValueError(f"team {team_name}: erasure needs an `id` column in the data contract")
        stack = Stack.of(self)
        region, account, partition = stack.region, stack.account, stack.partition
        path = Names(env_name).role_path(naming.ERASURE_ROLE)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "lambda.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": account}}
            ),
            path=path,
            description=f"Lambda role of team {team_name}'s erasure",
        )
        cfn_role = self.role.node.default_child
        assert isinstance(cfn_role, iam.CfnRole)
        cfn_role.add_property_override("Path", path)
        self.log_group = logs.LogGroup(
            self, "Logs", encryption_key=logs_key, retention=log_retention, removal_policy=removal_policy
        )
        self.dlq = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=queue_key,
            data_key_reuse=Duration.hours(1),
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        for rule in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy"):
            acknowledge(self.dlq, rule, "This queue is itself the dead-letter queue of the erasure function and its "
                        "EventBridge target; its depth alarm notifies the team")  # fmt: skip
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description=f"Least privilege for team {team_name}'s erasure",
            roles=[self.role],
            statements=self._statements(team_name, pipeline_names, group_name, buckets, zone_keys, job_key),
        )
        self.policy.add_statements(
            iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                resources=[self.log_group.log_group_arn]),
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.dlq.queue_arn]),
            iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[queue_key.key_arn]),
            iam.PolicyStatement(actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources=["*"]),
        )  # fmt: skip
        self._acknowledge(env_name, team_name, pipeline_names, partition)
        package = build_package("erasure")
        self.code_sha256 = package.sha256
        pandas_layer = ssm.StringParameter.value_for_string_parameter(self, sdk_for_pandas_parameter(region))
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"Team {team_name}: erase a data subject (erasure-request objects)",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            handler="lambdas.erasure.handler.lambda_handler",
            code=lambda_.Code.from_asset(str(package.path)),
            layers=[
                lambda_.LayerVersion.from_layer_version_arn(
                    self, "Powertools", powertools_layer_arn(region, partition, version=powertools_layer_version)
                ),
                lambda_.LayerVersion.from_layer_version_arn(self, "SdkForPandas", pandas_layer),
            ],
            role=self.role.without_policy_updates(),
            memory_size=MEMORY_MB,
            timeout=TIMEOUT,
            # One erasure at a time per team (its only guard against concurrent rewrites) unless the
            # environment turns reservations off (environments[].lambda_reserved_concurrency).
            reserved_concurrent_executions=RESERVED_CONCURRENCY if reserved_concurrency else None,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            dead_letter_queue=self.dlq,
            on_failure=destinations.SqsDestination(self.dlq),
            retry_attempts=2,
            max_event_age=Duration.hours(6),
            environment={
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": "Flywheel",
                "POWERTOOLS_LOG_LEVEL": "INFO",
                "TEAM": team_name,
                "ACCOUNT_ID": account,
                "RAW_BUCKET": buckets["raw"],
                "CURATED_BUCKET": buckets["curated"],
                "FEATURES_BUCKET": buckets["features"],
                "REPORTS_BUCKET": buckets["reports"],
                "REPORTS_KMS_KEY_ID": zone_keys["reports"].key_arn,
                "PIPELINE_NAMES": ",".join(pipeline_names),
                "MODEL_PACKAGE_GROUP": group_name,
                "ID_COLUMNS": ",".join(id_columns),
            },
        )
        for pack in ("HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321"):
            acknowledge(
                self.function,
                f"{pack}-LambdaInsideVPC",
                "The function reaches S3, KMS and SageMaker's registry API through AWS endpoints; the isolated VPC "
                "has no X-Ray endpoint and in-VPC ENI permissions would need an AWS-managed policy on the role",
            )
        self.dlq_alarm = cloudwatch.Alarm(
            self,
            "DeadLetterAlarm",
            alarm_description=f"Failed erasure requests of team {team_name} wait in its dead-letter queue",
            metric=self.dlq.metric_approximate_number_of_messages_visible(period=Duration.minutes(5),
                                                                          statistic="Maximum"),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip
        self.dlq_alarm.add_alarm_action(cw_actions.SnsAction(topic))
        self.rule = events.Rule(
            self,
            "RequestRule",
            description=f"Erasure requests of team {team_name} → its erasure function",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [buckets["raw"]]},
                    "object": {"key": [{"prefix": naming.erasure_request_prefix(team_name)}]},
                },
            ),
        )
        self.rule.add_target(
            targets.LambdaFunction(
                self.function, dead_letter_queue=self.dlq, retry_attempts=4, max_event_age=Duration.hours(2)
            )
        )

    def _statements(
        self,
        team: str,
        pipelines: Sequence[str],
        group: str,
        buckets: Mapping[str, str],
        zone_keys: Mapping[str, kms.IKey],
        job_key: kms.IKey,
    ) -> list[iam.PolicyStatement]:
        stack = Stack.of(self)
        region, account, partition = stack.region, stack.account, stack.partition

        def obj(zone: str, prefix: str) -> str:
            return f"arn:{partition}:s3:::{buckets[zone]}/{prefix}*"

        raw_prefixes = [naming.incoming_prefix(team), naming.team_quarantine_prefix(team)]
        requests = naming.erasure_request_prefix(team)
        own = [naming.pipeline_prefix(p) for p in pipelines]
        rows = [obj("raw", p) for p in raw_prefixes] + [obj(z, p) for z in ("curated", "features") for p in own]
        raw_arn = f"arn:{partition}:s3:::{buckets['raw']}/"
        return [
            # Read every version of the team's rows, the request objects and the team's PII key.
            iam.PolicyStatement(
                actions=list(READ),
                resources=[*rows, obj("raw", requests), f"{raw_arn}{naming.pii_key_object(team)}"],
            ),
            # Rewrite rows, then delete every other version (and consumed requests).
            iam.PolicyStatement(actions=["s3:PutObject"], resources=rows),
            iam.PolicyStatement(actions=["s3:DeleteObjectVersion"], resources=[*rows, obj("raw", requests)]),
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[obj("reports", naming.erasure_receipt_prefix(team))]
            ),
            iam.PolicyStatement(
                actions=["s3:ListBucket", "s3:ListBucketVersions"],
                resources=[f"arn:{partition}:s3:::{buckets['raw']}"],
                conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in [*raw_prefixes, requests]]}},
            ),
            *[
                iam.PolicyStatement(
                    actions=["s3:ListBucket", "s3:ListBucketVersions"],
                    resources=[f"arn:{partition}:s3:::{buckets[zone]}"],
                    conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in own]}},
                )
                for zone in ("curated", "features")
            ],
            iam.PolicyStatement(
                actions=["s3:GetBucketObjectLockConfiguration"],
                resources=[f"arn:{partition}:s3:::{buckets[z]}" for z in ("raw", "curated", "features")],
            ),
            # The raw key is shared by every team: only through S3 and only for this team's objects.
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[zone_keys["raw"].key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                    "StringLike": {
                        "kms:EncryptionContext:aws:s3:arn": [f"{raw_arn}{p}*" for p in [*raw_prefixes, requests]]
                        + [f"{raw_arn}{naming.pii_key_object(team)}"]
                    },
                },
            ),
            # Curated/features objects are written with the team's job key (or the zone's default key).
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[job_key.key_arn, zone_keys["curated"].key_arn, zone_keys["features"].key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                actions=["kms:GenerateDataKey"],
                resources=[zone_keys["reports"].key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                actions=["sagemaker:ListModelPackages"],
                resources=[f"arn:{partition}:sagemaker:{region}:{account}:model-package-group/{group}"],
            ),
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackage"],
                resources=[f"arn:{partition}:sagemaker:{region}:{account}:model-package/{group}/*"],
            ),
        ]

    def _acknowledge(self, env_name: str, team: str, pipelines: Sequence[str], partition: str) -> None:
        names, stack = Names(env_name), Stack.of(self)

        def shown(zone: str, prefix: str) -> str:
            return f"Resource::arn:{partition}:s3:::{names.bucket_export(zone)}/{prefix}*"

        reasons = {
            "Resource::*": "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level "
            "permissions",
            shown("raw", naming.incoming_prefix(team)): "the team's landed batches (keys per batch)",
            shown("raw", naming.team_quarantine_prefix(team)): "the team's quarantined batches (keys per execution)",
            shown("raw", naming.erasure_request_prefix(team)): "the team's erasure requests (one object per request)",
            shown("reports", naming.erasure_receipt_prefix(team)): "the team's erasure receipts (one per request)",
            f"Resource::arn:{partition}:sagemaker:{stack.region}:{stack.account}:model-package/"
            f"{names.model_package_group(team)}/*": "the team's package versions (affected-package listing)",
        }
        for zone in ("curated", "features"):
            for pipeline in pipelines:
                reasons[shown(zone, naming.pipeline_prefix(pipeline))] = (
                    f"the team's pipeline's own prefix in the {zone} zone (keys per execution)"
                )
        for resource, reason in reasons.items():
            acknowledge(self.policy, f"AwsSolutions-IAM5[{resource}]", reason)
