"""A team's deployed lifecycle: data arrival → pipeline, approval → deployment, rollout outcomes.

One construct per concern, composed by :class:`TeamLifecycle` (built by ``MlTeam``):

* :class:`LifecycleStore` — the team's DynamoDB table (key ``id``, TTL ``expiration``, point-in-time
  recovery) and the team's lifecycle key (table, dead-letter queues, alert topic);
* :class:`LifecycleFunction` — one handler (``lambdas/<handler>/``): its own role under the boundary,
  a KMS-encrypted log group with the environment's retention, an SQS dead-letter queue (KMS) used both
  as the function's async DLQ and as the EventBridge targets' DLQ, an alarm on the queue's depth;
  Python 3.14 on arm64, explicit memory/timeout, reserved concurrency, active tracing, the Powertools
  layer; no function URL, and the only resource policy is EventBridge's, per rule (``SourceArn``);
* :class:`ModelExecutionRole` — what the team's SageMaker models run as (artifacts read with the job
  key, SageMaker image pulls, capture writes with the capture key);
* :class:`EndpointAlarms` — the rollback alarms (5xx errors, model latency) the deploy function names in
  ``ROLLBACK_ALARMS`` (realtime teams only);
* the EventBridge rules (default bus): ``Object Created`` under ``<team>/incoming/`` of the raw bucket
  → data arrival; ``SageMaker Model Package State Change`` of the team's group (not in production, where
  a person's promotion event is the trigger instead: ``docs/runbooks/approve-and-promote.md``) and ``SageMaker Endpoint
  Deployment State Change`` of the team's endpoint → deploy.

Settings that config does not (yet) hold are the constants below, documented where they are used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aws_cdk import Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

import naming
from lambdas.deploy.config import rollout_environ
from naming import Names
from stacks.components.keys import purpose_key
from stacks.components.lambda_package import POWERTOOLS_LAYER_VERSION, build_package, powertools_layer_arn
from stacks.components.ml_pipeline import sagemaker_metrics_statement, sagemaker_principal, vpc_network_statement
from stacks.components.sagemaker_images import image_accounts
from stacks.nag import acknowledge

#: Role kinds of the lifecycle (the segment after ``/flywheel/<env>/``): the deploy function's role, so
#: that another account's registry and artifacts can name it by path; the models' execution role.
DEPLOY_ROLE_KIND: Final = "deploy"
MODEL_ROLE_KIND: Final = "model"
DATA_ARRIVAL_ROLE_KIND: Final = "data-arrival"
LIFECYCLE_ROLE_KINDS: Final = (DATA_ARRIVAL_ROLE_KIND, DEPLOY_ROLE_KIND, MODEL_ROLE_KIND)
#: The metrics namespace and service names the handlers emit under (``Metrics(namespace=..., service=...)``
#: in ``lambdas/*/handler.py``; Powertools adds the ``service`` dimension).
METRICS_NAMESPACE: Final = "Flywheel"
SERVICE_NAMES: Final = {
    "data_arrival": "flywheel-data-arrival",
    "deploy": "flywheel-deploy",
    "batch_scoring": "flywheel-batch-scoring",
}
#: The handlers' default dimension naming the team (``metrics.set_default_dimensions(team=TEAM)``): every
#: metric is emitted with exactly ``service`` + ``team``, and an alarm matches only that exact set, so each
#: team's alarms count only its own functions' metrics.
#: The promotion event a person's approval puts on production's default bus (docs/runbooks/approve-and-promote.md).
PROMOTION_SOURCE: Final = "flywheel.promotion"
PROMOTION_DETAIL_TYPE: Final = "Model Promotion Approved"
MODEL_PACKAGE_STATE_CHANGE: Final = "SageMaker Model Package State Change"
DEPLOYMENT_STATE_CHANGE: Final = "SageMaker Endpoint Deployment State Change"
OBJECT_CREATED: Final = "Object Created"


@dataclass(frozen=True)
class FunctionSizing:
    """Memory, timeout and reserved concurrency of one handler (constants: config has no field yet)."""

    memory_mb: int
    timeout: Duration
    reserved_concurrency: int


#: Data arrival: a few API calls per event; 2 concurrent (a burst of files starts one run per batch anyway).
#: Deploy: 1 at a time per team, so two approvals never race on one endpoint (the handler also refuses a
#: busy endpoint and Lambda retries).
SIZING: Final = {
    "data_arrival": FunctionSizing(256, Duration.seconds(60), 2),
    "deploy": FunctionSizing(256, Duration.seconds(120), 1),
    # Batch scoring: a listing and a few API calls per tick; 1 at a time per pipeline (claims guard it too).
    "batch_scoring": FunctionSizing(256, Duration.seconds(120), 1),
}
#: EventBridge → Lambda: retries and the oldest event worth delivering; then the target's DLQ.
TARGET_RETRIES: Final = 4
TARGET_MAX_AGE: Final = Duration.hours(2)
#: Lambda async retries after a function error (then the function's DLQ).
ASYNC_RETRIES: Final = 2
#: Rollout settings when a team's config has none (``teams[].deployment``; the deploy handler's defaults).
DEFAULT_ROLLOUT: Final = rollout_environ(
    canary_size_type="CAPACITY_PERCENT",
    canary_size=10,
    bake_seconds=600,
    termination_wait_seconds=300,
    max_execution_seconds=3600,
    serverless_memory_mb=2048,
    serverless_max_concurrency=5,
)
_REALTIME_ROLLOUT: Final = ("CANARY_SIZE_TYPE", "CANARY_SIZE", "BAKE_SECONDS", "TERMINATION_WAIT_SECONDS",
                            "MAX_EXECUTION_SECONDS")  # fmt: skip
_SERVERLESS_ROLLOUT: Final = ("SERVERLESS_MEMORY_MB", "SERVERLESS_MAX_CONCURRENCY")
CAPTURE_SAMPLING_PERCENT: Final = 100
IDEMPOTENCY_TTL_SECONDS: Final = {"data_arrival": 86_400, "deploy": 3600}
CLAIM_TTL_DAYS: Final = 365
#: Rollback alarms: any 5xx in a minute; average model latency above 1 s (``ModelLatency`` is in µs)
#: for 3 consecutive minutes.
LATENCY_THRESHOLD_MICROSECONDS: Final = 1_000_000
VARIANT_NAME: Final = "AllTraffic"


def _check_canary(team: str, rollout: Mapping[str, str], min_instances: int) -> None:
    """An instance-count canary fits the endpoint: at most half its instances (SageMaker's limit)."""
    if rollout["CANARY_SIZE_TYPE"] == "INSTANCE_COUNT" and int(rollout["CANARY_SIZE"]) > max(1, min_instances // 2):
        raise ValueError(
            f"team {team!r}: deployment.canary_instances {rollout['CANARY_SIZE']} is more than half of the "
            f"environment's endpoint_min_instances ({min_instances}); lower it or use canary_percent"
        )


def rollback_alarm_names(endpoint: str) -> tuple[str, str]:
    """``(<endpoint>-5xx, <endpoint>-latency)``: the alarms ``ROLLBACK_ALARMS`` names."""
    return f"{endpoint}-5xx", f"{endpoint}-latency"


@dataclass(frozen=True)
class PromotionConsumer:
    """Another environment (own account) whose deploy and model roles read this environment's registry."""

    env_name: str
    account: str

    def role_pattern(self, kind: str, partition: str = "aws") -> str:
        return Names(self.env_name).role_arn_pattern(kind, account=self.account, partition=partition)


@dataclass(frozen=True)
class PromotionSource:
    """The environment (usually dev, another account) whose approved packages production deploys."""

    env_name: str
    account: str


@dataclass(frozen=True)
class LifecycleProps:
    """What a team's lifecycle needs (narrower than config; buckets are names, keys are keys)."""

    env_name: str
    is_production: bool
    deploy_target: str
    instance_type: str
    min_instances: int
    log_retention: logs.RetentionDays
    logs_key: kms.IKey
    buckets: Mapping[str, str]  # zone → bucket name (raw, artifacts, capture, reports)
    zone_keys: Mapping[str, kms.IKey]
    promotion_consumers: Sequence[PromotionConsumer] = field(default_factory=tuple)
    #: The deploy Lambda's rollout variables (:func:`lambdas.deploy.config.rollout_environ` of the team's
    #: ``deployment`` settings); the realtime or serverless ones are set per ``deploy_target``.
    rollout: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ROLLOUT))
    #: Reserve each function's concurrency (``SIZING``); off only where the account's quota cannot afford
    #: it (``environments[].lambda_reserved_concurrency``).
    reserved_concurrency: bool = True
    powertools_layer_version: int = POWERTOOLS_LAYER_VERSION


class LifecycleStore(Construct):
    """``key`` (the team's lifecycle key) and ``table`` (id S, TTL ``expiration``, PITR, the key)."""

    def __init__(self, scope: Construct, construct_id: str, *, team_name: str, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.key = purpose_key(
            self, "Key", purpose=f"{team_name} lifecycle table, queues and alerts", removal_policy=removal_policy
        )
        # EventBridge writes failed deliveries to the DLQs and CloudWatch publishes alarms to the topic:
        # both encrypt with this key, only on behalf of this account.
        for service in ("events.amazonaws.com", "cloudwatch.amazonaws.com"):
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal(service)],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    resources=["*"],  # in a key policy "*" means "this key"
                    conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
                )
            )
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            time_to_live_attribute="expiration",
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=removal_policy == RemovalPolicy.RETAIN,
            removal_policy=removal_policy,
        )
        for pack in ("HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321"):
            acknowledge(
                self.table,
                f"{pack}-DynamoDBInBackupPlan",
                "Idempotency records and rollout bookkeeping only (rebuildable from the registry and the "
                "endpoints); point-in-time recovery covers 35 days without an AWS Backup plan",
            )
        for pack in ("NIST.800.53.R5", "PCI.DSS.321"):
            acknowledge(
                self.table,
                f"{pack}-DynamoDBAutoscalingEnabled",
                "On-demand (PAY_PER_REQUEST) capacity scales by itself; autoscaling applies to provisioned tables",
            )


class LifecycleFunction(Construct):
    """``function``, ``role``, ``log_group``, ``dlq`` and ``dlq_alarm`` of one handler."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        role_path: str,
        description: str,
        environment: Mapping[str, str],
        key: kms.IKey,
        logs_key: kms.IKey,
        log_retention: logs.RetentionDays,
        topic: sns.ITopic,
        removal_policy: RemovalPolicy,
        reserved_concurrency: bool = True,
        powertools_layer_version: int = POWERTOOLS_LAYER_VERSION,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        sizing = SIZING[handler]
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "lambda.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
            path=role_path,
            description=f"Lambda role of {description}",
        )
        cfn_role = self.role.node.default_child
        assert isinstance(cfn_role, iam.CfnRole)
        cfn_role.add_property_override("Path", role_path)  # the kind path wins over the stage aspect
        #: Every grant of the role, in one managed policy (no inline policies): the function gets the role
        #: without policy updates, so CDK's implicit grants (DLQ, tracing) are written here explicitly.
        self.policy = iam.ManagedPolicy(self, "Policy", description=f"Least privilege for {description}"[:1000],
                                        roles=[self.role])  # fmt: skip
        self.log_group = logs.LogGroup(
            self, "Logs", encryption_key=logs_key, retention=log_retention, removal_policy=removal_policy
        )
        self.dlq = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            data_key_reuse=Duration.hours(1),
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        for rule in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy"):
            acknowledge(
                self.dlq,
                rule,
                "This queue is itself the dead-letter queue of the function and its EventBridge targets; "
                "its depth alarm notifies the team",
            )
        package = build_package(handler)
        self.code_sha256 = package.sha256
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            handler=f"lambdas.{handler}.handler.lambda_handler",
            code=lambda_.Code.from_asset(str(package.path)),
            layers=[
                lambda_.LayerVersion.from_layer_version_arn(
                    self,
                    "Powertools",
                    powertools_layer_arn(stack.region, stack.partition, version=powertools_layer_version),
                )
            ],
            role=self.role.without_policy_updates(),
            memory_size=sizing.memory_mb,
            timeout=sizing.timeout,
            reserved_concurrent_executions=sizing.reserved_concurrency if reserved_concurrency else None,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            dead_letter_queue=self.dlq,
            on_failure=destinations.SqsDestination(self.dlq),
            retry_attempts=ASYNC_RETRIES,
            max_event_age=Duration.hours(6),
            environment={
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAMES[handler],
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
                **environment,
            },
        )
        self.grant(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self.grant(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.dlq.queue_arn]))
        self.grant(iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn]))
        self.grant(iam.PolicyStatement(actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources=["*"]))
        acknowledge(
            self.policy,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level permissions",
        )
        if not reserved_concurrency:  # the packs with a LambdaConcurrency rule
            for pack in ("HIPAA.Security", "NIST.800.53.R5"):
                acknowledge(
                    self.function,
                    f"{pack}-LambdaConcurrency",
                    "The environment sets lambda_reserved_concurrency: false: its account's concurrency quota "
                    "cannot keep Lambda's 100 unreserved executions next to the reservations (config/models.py)",
                )
        for pack in ("HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321"):
            acknowledge(
                self.function,
                f"{pack}-LambdaInsideVPC",
                "The function calls AWS control-plane APIs only (SageMaker, DynamoDB, S3 list/metadata) and "
                "reads no lake data; the isolated VPC has no DynamoDB or X-Ray endpoint, and in-VPC ENI "
                "permissions would need an AWS-managed policy on the role",
            )
        self.dlq_alarm = cloudwatch.Alarm(
            self,
            "DeadLetterAlarm",
            alarm_description=f"Failed events of {description} wait in its dead-letter queue",
            metric=self.dlq.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.dlq_alarm.add_alarm_action(cw_actions.SnsAction(topic))

    def grant(self, statement: iam.PolicyStatement) -> None:
        """Add ``statement`` to the function's role (its one managed policy)."""
        self.policy.add_statements(statement)

    def target(self) -> targets.LambdaFunction:
        """The EventBridge target: retries, then this function's DLQ."""
        return targets.LambdaFunction(
            self.function, dead_letter_queue=self.dlq, retry_attempts=TARGET_RETRIES, max_event_age=TARGET_MAX_AGE
        )


class ModelExecutionRole(Construct):
    """``role``: what the team's SageMaker models run as (path ``/flywheel/<env>/model/``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        team_name: str,
        endpoint_name: str,
        pipeline_names: Sequence[str],
        buckets: Mapping[str, str],
        job_key: kms.IKey,
        capture_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        region, account, partition = stack.region, stack.account, stack.partition
        path = Names(env_name).role_path(MODEL_ROLE_KIND)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=sagemaker_principal(stack),
            path=path,
            description=f"SageMaker role of team {team_name}'s models (endpoint {endpoint_name})",
        )
        cfn_role = self.role.node.default_child
        assert isinstance(cfn_role, iam.CfnRole)
        cfn_role.add_property_override("Path", path)
        artifacts = [
            f"arn:{partition}:s3:::{buckets['artifacts']}/{naming.pipeline_prefix(p)}*" for p in pipeline_names
        ]
        capture = f"arn:{partition}:s3:::{buckets['capture']}/{naming.capture_prefix(endpoint_name)}*"
        logs_arn = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{endpoint_name}"
        images = [f"arn:{partition}:ecr:{region}:{a}:repository/sagemaker-*" for a in image_accounts(region)]
        statements = [
            iam.PolicyStatement(actions=["s3:GetObject"], resources=artifacts),
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:DescribeKey"], resources=[job_key.key_arn]),
            iam.PolicyStatement(actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=[capture]),
            iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Encrypt"], resources=[capture_key.key_arn]),
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=images,
            ),
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[logs_arn, f"{logs_arn}:*"],
            ),
            vpc_network_statement(),
            sagemaker_metrics_statement(),
        ]
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description=f"Least privilege for team {team_name}'s models",
            roles=[self.role],
            statements=statements,
        )
        reasons = {
            "Resource::*": "ecr:GetAuthorizationToken, the ec2 network-interface actions of in-VPC models and "
            "cloudwatch:PutMetricData (namespace-conditioned) support no resource-level permissions",
            f"Resource::{logs_arn}:*": "SageMaker writes the endpoint's logs to streams it names per instance",
            f"Resource::arn:{partition}:s3:::{Names(env_name).bucket_export('capture')}/"
            f"{naming.capture_prefix(endpoint_name)}*": "the endpoint's own capture prefix; keys per hour",
        }
        for pipeline in pipeline_names:
            reasons[
                f"Resource::arn:{partition}:s3:::{Names(env_name).bucket_export('artifacts')}/"
                f"{naming.pipeline_prefix(pipeline)}*"
            ] = "the team's pipelines' own artifacts; model keys per execution"
        for image in image_accounts(region):
            reasons[f"Resource::arn:{partition}:ecr:{region}:{image}:repository/sagemaker-*"] = (
                "SageMaker's own inference images in its pinned image accounts"
            )
        for resource, reason in reasons.items():
            acknowledge(self.policy, f"AwsSolutions-IAM5[{resource}]", reason)


class EndpointAlarms(Construct):
    """``alarms``: 5xx errors and model latency of the team's endpoint (the canary's rollback alarms)."""

    def __init__(self, scope: Construct, construct_id: str, *, endpoint_name: str, topic: sns.ITopic) -> None:
        super().__init__(scope, construct_id)
        dimensions = {"EndpointName": endpoint_name, "VariantName": VARIANT_NAME}
        errors, latency = rollback_alarm_names(endpoint_name)
        self.alarms = [
            cloudwatch.Alarm(
                self,
                "Errors5xx",
                alarm_name=errors,
                alarm_description=f"{endpoint_name}: 5xx errors (rolls back a canary)",
                metric=cloudwatch.Metric(
                    namespace="AWS/SageMaker",
                    metric_name="Invocation5XXErrors",
                    dimensions_map=dimensions,
                    statistic="Sum",
                    period=Duration.minutes(1),
                ),
                threshold=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cloudwatch.Alarm(
                self,
                "Latency",
                alarm_name=latency,
                alarm_description=f"{endpoint_name}: model latency above {LATENCY_THRESHOLD_MICROSECONDS} µs",
                metric=cloudwatch.Metric(
                    namespace="AWS/SageMaker",
                    metric_name="ModelLatency",
                    dimensions_map=dimensions,
                    statistic="Average",
                    period=Duration.minutes(1),
                ),
                threshold=LATENCY_THRESHOLD_MICROSECONDS,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=3,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        ]
        for alarm in self.alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(topic))


class TeamLifecycle(Construct):
    """The team's lifecycle: ``store``, ``topic``, ``arrival``/``deploy`` (LifecycleFunction),
    ``model_role``, ``endpoint_alarms`` (realtime only), ``metric_alarms`` and ``rules`` (name → Rule)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        props: LifecycleProps,
        team_name: str,
        group_name: str,
        pipeline_names: Sequence[str],
        job_key: kms.IKey,
        subnets: Sequence[ec2.ISubnet],
        security_group: ec2.ISecurityGroup,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        if not pipeline_names:
            raise ValueError(f"team {team_name!r}: the lifecycle needs a pipeline to start")
        stack = Stack.of(self)
        region, account, partition = stack.region, stack.account, stack.partition
        names = Names(props.env_name)
        endpoint = names.endpoint(team_name)
        pipeline = pipeline_names[0]
        sm = f"arn:{partition}:sagemaker:{region}:{account}"
        self.endpoint_name = endpoint
        self.team_name = team_name
        self.promotion_source: PromotionSource | None = None
        self.store = LifecycleStore(self, "Store", team_name=team_name, removal_policy=removal_policy)
        key, table = self.store.key, self.store.table
        self.topic = sns.Topic(
            self, "Alerts", display_name=f"Flywheel {props.env_name} {team_name} lifecycle", master_key=key,
            enforce_ssl=True,
        )  # fmt: skip
        self.model_execution = ModelExecutionRole(
            self,
            "ModelRole",
            env_name=props.env_name,
            team_name=team_name,
            endpoint_name=endpoint,
            pipeline_names=pipeline_names,
            buckets=props.buckets,
            job_key=job_key,
            capture_key=props.zone_keys["capture"],
        )
        self.model_role = self.model_execution.role
        self.env_name = props.env_name
        self.pipeline_names = tuple(pipeline_names)
        common = {"TEAM": team_name, "ACCOUNT_ID": account, "MODEL_PACKAGE_GROUP": group_name,
                  "IDEMPOTENCY_TABLE": table.table_name}  # fmt: skip
        function_props: dict[str, Any] = {"key": key, "logs_key": props.logs_key, "log_retention": props.log_retention,
                          "topic": self.topic, "removal_policy": removal_policy,
                          "reserved_concurrency": props.reserved_concurrency,
                          "powertools_layer_version": props.powertools_layer_version}  # fmt: skip
        self.arrival = LifecycleFunction(
            self,
            "DataArrival",
            handler="data_arrival",
            role_path=names.role_path(DATA_ARRIVAL_ROLE_KIND),
            description=f"data arrival of team {team_name} ({props.env_name})",
            environment={
                **common,
                "RAW_BUCKET": props.buckets["raw"],
                "PIPELINE_NAME": pipeline,
                "IDEMPOTENCY_TTL_SECONDS": str(IDEMPOTENCY_TTL_SECONDS["data_arrival"]),
                "CLAIM_TTL_DAYS": str(CLAIM_TTL_DAYS),
                "BATCH_COMPLETE_MARKER": "_SUCCESS",
            },
            **function_props,
        )
        realtime = props.deploy_target == "realtime"
        alarm_names = rollback_alarm_names(endpoint) if realtime else ()
        deploy_env = {
            **common,
            "ENDPOINT_NAME": endpoint,
            "DEPLOY_TARGET": props.deploy_target,
            "MODEL_EXECUTION_ROLE_ARN": self.model_role.role_arn,
            "VOLUME_KMS_KEY_ID": job_key.key_arn,
            "INSTANCE_TYPE": props.instance_type,
            "MIN_INSTANCES": str(props.min_instances),
            "IDEMPOTENCY_TTL_SECONDS": str(IDEMPOTENCY_TTL_SECONDS["deploy"]),
        }
        if props.deploy_target != "serverless":
            deploy_env["SUBNET_IDS"] = Fn.join(",", [s.subnet_id for s in subnets])
            deploy_env["SECURITY_GROUP_IDS"] = security_group.security_group_id
        rollout = {**DEFAULT_ROLLOUT, **props.rollout}
        if realtime:
            _check_canary(team_name, rollout, props.min_instances)
            deploy_env.update(
                {
                    "CAPTURE_BUCKET": props.buckets["capture"],
                    "CAPTURE_KMS_KEY_ID": props.zone_keys["capture"].key_arn,
                    "CAPTURE_SAMPLING_PERCENT": str(CAPTURE_SAMPLING_PERCENT),
                    **{name: rollout[name] for name in _REALTIME_ROLLOUT},
                    "ROLLBACK_ALARMS": ",".join(alarm_names),
                }
            )
        if props.deploy_target == "serverless":
            deploy_env.update({name: rollout[name] for name in _SERVERLESS_ROLLOUT})
        self.deploy = LifecycleFunction(
            self,
            "Deploy",
            handler="deploy",
            role_path=names.role_path(DEPLOY_ROLE_KIND),
            description=f"deployment of team {team_name}'s approved models ({props.env_name})",
            environment=deploy_env,
            **function_props,
        )
        self.endpoint_alarms = (
            EndpointAlarms(self, "EndpointAlarms", endpoint_name=endpoint, topic=self.topic) if realtime else None
        )

        # -- least privilege (lambdas/README.md, "IAM") -------------------------------------------------
        group_arn = f"{sm}:model-package-group/{group_name}"
        packages = f"{sm}:model-package/{group_name}/*"
        for function in (self.arrival, self.deploy):
            function.grant(
                iam.PolicyStatement(
                    actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                    resources=[table.table_arn],
                )
            )
            function.grant(
                iam.PolicyStatement(
                    actions=["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]
                )
            )
            function.grant(iam.PolicyStatement(actions=["sagemaker:ListModelPackages"], resources=[group_arn]))
            function.grant(iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"], resources=[packages]))
            acknowledge(
                function.policy,
                f"AwsSolutions-IAM5[Resource::{packages}]",
                "versions of the team's own model package group; version numbers are assigned at registration",
            )
        arrival = self.arrival
        arrival.grant(
            iam.PolicyStatement(actions=["sagemaker:StartPipelineExecution"], resources=[f"{sm}:pipeline/{pipeline}"])
        )
        reports = f"arn:{partition}:s3:::{props.buckets['reports']}/{naming.pipeline_prefix(pipeline)}*"
        arrival.grant(iam.PolicyStatement(actions=["s3:GetObject"], resources=[reports]))
        # The champion's model artifact: HeadObject (needs s3:GetObject) before passing it as ChampionModelUri.
        models = f"arn:{partition}:s3:::{props.buckets['artifacts']}/{naming.pipeline_prefix(pipeline)}*/model/*"
        arrival.grant(iam.PolicyStatement(actions=["s3:GetObject"], resources=[models]))
        arrival.grant(
            iam.PolicyStatement(
                actions=["kms:Decrypt"],
                resources=[job_key.key_arn, props.zone_keys["reports"].key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
            )
        )
        arrival.grant(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[f"arn:{partition}:s3:::{props.buckets['raw']}"],
                conditions={"StringLike": {"s3:prefix": [naming.incoming_prefix(team_name) + "*"]}},
            )
        )
        acknowledge(
            arrival.policy,
            f"AwsSolutions-IAM5[Resource::arn:{partition}:s3:::{names.bucket_export('reports')}/"
            f"{naming.pipeline_prefix(pipeline)}*]",
            "the team pipeline's own reports (evaluation.json of the champion); keys per execution",
        )
        acknowledge(
            arrival.policy,
            f"AwsSolutions-IAM5[Resource::arn:{partition}:s3:::{names.bucket_export('artifacts')}/"
            f"{naming.pipeline_prefix(pipeline)}*/model/*]",
            "the team pipeline's own model artifacts (the champion's, checked to exist before the paired "
            "comparison); keys per execution and training job",
        )
        deploy = self.deploy
        model_prefix = group_name if props.deploy_target == "batch" else endpoint
        created = [f"{sm}:model/{model_prefix}-v*", f"{sm}:endpoint-config/{endpoint}-v*"]
        endpoint_arn = f"{sm}:endpoint/{endpoint}"
        deploy.grant(iam.PolicyStatement(actions=["sagemaker:CreateModel"], resources=[created[0]]))
        deploy.grant(iam.PolicyStatement(actions=["sagemaker:CreateEndpointConfig"], resources=[created[1]]))
        deploy.grant(
            iam.PolicyStatement(
                actions=["sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DescribeEndpoint",
                         "sagemaker:DeleteEndpoint"],
                resources=[endpoint_arn],
            )
        )  # fmt: skip
        deploy.grant(
            iam.PolicyStatement(
                actions=["sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DescribeEndpointConfig"],
                resources=[created[1]],
            )
        )
        deploy.grant(iam.PolicyStatement(actions=["sagemaker:AddTags"], resources=[*created, endpoint_arn]))
        deploy.grant(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.model_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        grant_keys = [job_key.key_arn] + ([props.zone_keys["capture"].key_arn] if realtime else [])
        deploy.grant(iam.PolicyStatement(actions=["kms:DescribeKey"], resources=grant_keys))
        deploy.grant(
            iam.PolicyStatement(
                actions=["kms:CreateGrant"],
                resources=grant_keys,
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        if realtime:
            deploy.grant(
                iam.PolicyStatement(
                    actions=["cloudwatch:DescribeAlarms"],
                    resources=[f"arn:{partition}:cloudwatch:{region}:{account}:alarm:{n}" for n in alarm_names],
                )
            )
        for resource in created:
            acknowledge(
                deploy.policy,
                f"AwsSolutions-IAM5[Resource::{resource}]",
                "models and endpoint configs of the team's endpoint are named <endpoint>-v<version>-<hash> "
                "when a package is deployed",
            )

        # -- events (default bus) ------------------------------------------------------------------------
        self.rules: dict[str, events.Rule] = {}
        self.rules["arrival"] = events.Rule(
            self,
            "DataArrivalRule",
            description=f"Objects landed under {naming.incoming_prefix(team_name)} of the raw zone → data arrival",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=[OBJECT_CREATED],
                detail={
                    "bucket": {"name": [props.buckets["raw"]]},
                    "object": {"key": [{"prefix": naming.incoming_prefix(team_name)}]},
                },
            ),
            targets=[self.arrival.target()],
        )
        if props.is_production:
            # Production deploys only what a person promoted (docs/runbooks/approve-and-promote.md).
            self.rules["promotion"] = events.Rule(
                self,
                "PromotionRule",
                description=f"A person approved the promotion of a {team_name} model to production → deploy",
                event_pattern=events.EventPattern(
                    source=[PROMOTION_SOURCE],
                    detail_type=[PROMOTION_DETAIL_TYPE],
                    account=[account],
                    detail={"ModelPackageGroupName": [group_name]},
                ),
                targets=[self.deploy.target()],
            )
        else:
            self.rules["approval"] = events.Rule(
                self,
                "ApprovalRule",
                description=f"Approval changes in registry {group_name} → deploy",
                event_pattern=events.EventPattern(
                    source=["aws.sagemaker"],
                    detail_type=[MODEL_PACKAGE_STATE_CHANGE],
                    detail={"ModelPackageGroupName": [group_name]},
                ),
                targets=[self.deploy.target()],
            )
        if props.deploy_target != "batch":
            self.rules["rollout"] = events.Rule(
                self,
                "RolloutRule",
                description=f"Deployment state changes of endpoint {endpoint} → deploy (rollout outcome)",
                event_pattern=events.EventPattern(
                    source=["aws.sagemaker"],
                    detail_type=[DEPLOYMENT_STATE_CHANGE],
                    detail={"EndpointName": [endpoint]},
                ),
                targets=[self.deploy.target()],
            )

        # -- alarms on what the handlers count ----------------------------------------------------------
        self.metric_alarms: dict[str, cloudwatch.Alarm] = {}
        for handler, metric in (
            ("deploy", "RolloutRolledBack"),
            ("deploy", "DeploymentRefused"),
            ("deploy", "DependencyAccessDenied"),
            ("data_arrival", "DependencyAccessDenied"),
        ):
            alarm = cloudwatch.Alarm(
                self,
                f"{metric}{'Arrival' if handler == 'data_arrival' else 'Deploy'}Alarm",
                alarm_description=f"{SERVICE_NAMES[handler]} counted {metric} ({team_name})",
                metric=cloudwatch.Metric(
                    namespace=METRICS_NAMESPACE,
                    metric_name=metric,
                    dimensions_map={"service": SERVICE_NAMES[handler], naming.TEAM_DIMENSION: team_name},
                    statistic="Sum",
                    period=Duration.minutes(5),
                ),
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
            self.metric_alarms[f"{handler}:{metric}"] = alarm

        # -- other accounts' deploy and model roles read this registry's packages and artifacts ---------
        self.consumers = tuple(props.promotion_consumers)
        if self.consumers:
            job_key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="PromotionModelRolesDecryptArtifacts",
                    principals=[iam.AccountPrincipal(c.account) for c in self.consumers],
                    actions=["kms:Decrypt", "kms:DescribeKey"],
                    resources=["*"],  # in a key policy "*" means "this key"
                    conditions={
                        "ArnLike": {"aws:PrincipalArn": [c.role_pattern(MODEL_ROLE_KIND) for c in self.consumers]},
                        "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                    },
                )
            )

    def accept_promotions_from(self, source: PromotionSource) -> None:
        """Production: the deploy function accepts ``Model Promotion Approved`` of ``source``'s packages.

        ``SOURCE_ACCOUNTS`` (the source account, the only one a promoted package may live in) and
        ``SOURCE_MODEL_PACKAGE_GROUP`` (the team's group there), and DescribeModelPackage on that group's
        versions (the source group's resource policy admits this role: ``MlTeam``'s registry readers).
        """
        if "promotion" not in self.rules:
            raise ValueError("only production deploys promoted packages (it has the promotion rule)")
        stack = Stack.of(self)
        source_group = Names(source.env_name).model_package_group(self.team_name)
        self.promotion_source = source
        self.deploy.function.add_environment("SOURCE_ACCOUNTS", source.account)
        self.deploy.function.add_environment("SOURCE_MODEL_PACKAGE_GROUP", source_group)
        packages = f"arn:{stack.partition}:sagemaker:{stack.region}:{source.account}:model-package/{source_group}/*"
        self.deploy.grant(iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"], resources=[packages]))
        acknowledge(
            self.deploy.policy,
            f"AwsSolutions-IAM5[Resource::{packages}]",
            "versions of the team's model package group in the promotion source account (a person promotes "
            "one of them); version numbers are assigned at registration",
        )

    def read_promoted_artifacts(self, source: PromotionSource, *, bucket_pattern: str) -> None:
        """The models' role reads the artifacts of the team's pipelines in ``source``'s artifacts bucket.

        ``bucket_pattern``: the source's (generated) artifacts bucket name as a pattern. Identity grants
        only: the source's bucket policy and job key admit this environment's model roles (``MlTeam``);
        ``kms:Decrypt`` names the source's keys by ARN pattern (the source account), through S3, for
        objects of that bucket only (the S3 encryption context).
        """
        stack = Stack.of(self)
        partition, region = stack.partition, stack.region
        template_of = Names(self.env_name).pipeline(self.team_name, "")
        pipelines = [Names(source.env_name).pipeline(self.team_name, p.removeprefix(template_of))
                     for p in self.pipeline_names]  # fmt: skip
        bucket = f"arn:{partition}:s3:::{bucket_pattern}"
        objects = [f"{bucket}/{naming.pipeline_prefix(p)}*" for p in pipelines]
        keys = f"arn:{partition}:kms:{region}:{source.account}:key/*"
        self.model_execution.policy.add_statements(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=objects,
                conditions={"StringEquals": {"aws:ResourceAccount": source.account}},
            ),
            iam.PolicyStatement(
                actions=["kms:Decrypt"],
                resources=[keys],
                conditions={
                    "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                    "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket, *objects]},
                },
            ),
        )
        reasons = {keys: "the source account's team job key (its ARN is not known here); only through S3 and "
                   "only for objects of the source's artifacts bucket (encryption context)"}  # fmt: skip
        for resource in objects:
            reasons[resource] = "the team's pipelines' artifacts in the promotion source (model keys per execution)"
        for resource, reason in reasons.items():
            acknowledge(self.model_execution.policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
