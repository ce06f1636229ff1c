"""A scheduled template's launch path: EventBridge Scheduler → the scoring launcher → the pipeline.

Built by ``MlTeam`` for every pipeline whose template declares a schedule (``batch-scoring``), on the
team's lifecycle (its table, key, topic):

* :class:`~stacks.components.lifecycle.LifecycleFunction` ``batch_scoring`` (``lambdas/batch_scoring``,
  role path ``/flywheel/<env>/scoring-launcher/``): on the schedule's tick it finds the team's newest
  Approved package, creates the scoring Model (network-isolated, in the VPC, as the pipeline's
  ``scoring`` role — the only role it may pass), and starts the pipeline once per new batch under
  ``<team>/scoring/incoming/``; when an execution of the pipeline ends it publishes the run's row
  counts and outcome (``Flywheel/BatchScoring`` namespace, ``team`` + ``pipeline`` dimensions);
* ``AWS::Scheduler::Schedule`` with the team's validated cron and time zone, a retry policy and the
  function's dead-letter queue, run as a scheduler role (path ``/flywheel/<env>/scheduler/``) that may
  invoke exactly this function and write exactly that queue;
* an EventBridge rule (``SageMaker Model Building Pipeline Execution Status Change`` of this pipeline)
  → the function; an alarm on ``ScoringRunsFailed`` and one on the ``AWS/Sagemaker/ModelBuildingPipeline``
  ``ExecutionFailed`` metric of the pipeline → the team's topic.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

from aws_cdk import Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from constructs import Construct

import naming
from naming import Names
from pipelines.template import Schedule
from stacks.components.lifecycle import CLAIM_TTL_DAYS, LifecycleFunction
from stacks.components.ml_pipeline import MlPipeline
from stacks.nag import acknowledge

LAUNCHER_ROLE_KIND: Final = "scoring-launcher"
SCHEDULER_ROLE_KIND: Final = "scheduler"
SCHEDULE_SOURCE: Final = "flywheel.scoring-schedule"
EXECUTION_STATUS_CHANGE: Final = "SageMaker Model Building Pipeline Execution Status Change"
#: Scheduler → Lambda: retries within the hour, then the function's DLQ.
SCHEDULE_RETRIES: Final = 3
SCHEDULE_MAX_AGE_SECONDS: Final = 3600
METRICS_NAMESPACE: Final = "Flywheel/BatchScoring"


class ScoringSchedule(Construct):
    """``launcher`` (LifecycleFunction), ``schedule`` (CfnSchedule), ``scheduler_role``, ``rule``,
    ``failed_alarm`` and ``pipeline_failed_alarm`` of one scheduled pipeline."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        team_name: str,
        pipeline: MlPipeline,
        schedule: Schedule,
        group_name: str,
        buckets: dict[str, str],
        zone_keys: dict[str, kms.IKey],
        job_key: kms.IKey,
        key: kms.IKey,
        table_arn: str,
        table_name: str,
        topic: sns.ITopic,
        logs_key: kms.IKey,
        log_retention: logs.RetentionDays,
        subnets: Sequence[ec2.ISubnet],
        security_group: ec2.ISecurityGroup,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        region, account, partition = stack.region, stack.account, stack.partition
        names = Names(env_name)
        sm = f"arn:{partition}:sagemaker:{region}:{account}"
        name = pipeline.pipeline_name
        model_role = pipeline.step_roles.get("scoring")
        if model_role is None:
            raise ValueError(f"{name}: a scheduled pipeline needs a 'scoring' step role (the model's role)")
        self.launcher = LifecycleFunction(
            self,
            "Launcher",
            handler="batch_scoring",
            role_path=names.role_path(LAUNCHER_ROLE_KIND),
            description=f"batch scoring launcher of {name}",
            environment={
                "TEAM": team_name,
                "ACCOUNT_ID": account,
                "MODEL_PACKAGE_GROUP": group_name,
                "PIPELINE_NAME": name,
                "RAW_BUCKET": buckets["raw"],
                "REPORTS_BUCKET": buckets["reports"],
                "MODEL_ROLE_ARN": model_role.role_arn,
                "SUBNET_IDS": Fn.join(",", [s.subnet_id for s in subnets]),
                "SECURITY_GROUP_IDS": security_group.security_group_id,
                "IDEMPOTENCY_TABLE": table_name,
                "CLAIM_TTL_DAYS": str(CLAIM_TTL_DAYS),
                "BATCH_COMPLETE_MARKER": "_SUCCESS",
            },
            key=key,
            logs_key=logs_key,
            log_retention=log_retention,
            topic=topic,
            removal_policy=removal_policy,
        )
        launcher = self.launcher
        group_arn = f"{sm}:model-package-group/{group_name}"
        packages = f"{sm}:model-package/{group_name}/*"
        models = f"{sm}:model/{name}-v*"
        summaries = f"arn:{partition}:s3:::{buckets['reports']}/{naming.pipeline_prefix(name)}*/summary/summary.json"
        launcher.grant(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                resources=[table_arn],
            )
        )
        launcher.grant(iam.PolicyStatement(actions=["sagemaker:ListModelPackages"], resources=[group_arn]))
        launcher.grant(iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"], resources=[packages]))
        launcher.grant(iam.PolicyStatement(actions=["sagemaker:DescribeModel"], resources=[models]))
        # The scoring Model: only with the team's tag, network-isolated, in the VPC (the transform job runs it).
        launcher.grant(
            iam.PolicyStatement(
                actions=["sagemaker:CreateModel"],
                resources=[models],
                conditions={
                    "StringEquals": {f"aws:RequestTag/{naming.PREFIX}:team": team_name},
                    "Bool": {"sagemaker:NetworkIsolation": "true"},
                    "Null": {"sagemaker:VpcSubnets": "false"},
                },
            )
        )
        launcher.grant(
            iam.PolicyStatement(
                actions=["sagemaker:AddTags"],
                resources=[models],
                conditions={"StringEquals": {f"aws:RequestTag/{naming.PREFIX}:team": team_name}},
            )
        )
        launcher.grant(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[model_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        launcher.grant(
            iam.PolicyStatement(actions=["sagemaker:StartPipelineExecution"], resources=[f"{sm}:pipeline/{name}"])
        )
        launcher.grant(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[f"arn:{partition}:s3:::{buckets['raw']}"],
                conditions={"StringLike": {"s3:prefix": [naming.scoring_incoming_prefix(team_name) + "*"]}},
            )
        )
        launcher.grant(iam.PolicyStatement(actions=["s3:GetObject"], resources=[summaries]))
        launcher.grant(
            iam.PolicyStatement(
                actions=["kms:Decrypt"],
                resources=[job_key.key_arn, zone_keys["reports"].key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
            )
        )
        launcher.grant(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
            )
        )
        summary_key = f"{naming.pipeline_prefix(name)}*/summary/summary.json"
        shown_summaries = f"arn:{partition}:s3:::{names.bucket_export('reports')}/{summary_key}"
        for resource, reason in (
            (packages, "versions of the team's own model package group; version numbers are assigned at registration"),
            (models, "the scoring models of this pipeline, one per package version (<pipeline>-v<version>)"),
            (shown_summaries, "the run summaries of this pipeline; one folder per execution"),
            ("*", "cloudwatch:PutMetricData has no resource type; limited to the Flywheel/BatchScoring namespace"),
        ):
            acknowledge(launcher.policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)

        # The scheduler's role: invoke this function, dead-letter to its queue (encrypted with the key).
        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": account}}
            ),
            path=names.role_path(SCHEDULER_ROLE_KIND),
            description=f"EventBridge Scheduler role of the schedule of {name}",
        )
        cfn_role = self.scheduler_role.node.default_child
        assert isinstance(cfn_role, iam.CfnRole)
        cfn_role.add_property_override("Path", names.role_path(SCHEDULER_ROLE_KIND))
        function_arn = launcher.function.function_arn
        scheduler_policy = iam.ManagedPolicy(
            self,
            "SchedulerPolicy",
            description=f"Schedule of {name}: invoke its launcher, dead-letter to its queue"[:1000],
            roles=[self.scheduler_role],
            statements=[
                iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[function_arn]),
                iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[launcher.dlq.queue_arn]),
                iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn]),
            ],
        )
        del scheduler_policy
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            description=f"Batch scoring of {name} with the newest Approved model",
            schedule_expression=schedule.expression,
            schedule_expression_timezone=schedule.timezone,
            state="ENABLED" if schedule.enabled else "DISABLED",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            target=scheduler.CfnSchedule.TargetProperty(
                arn=function_arn,
                role_arn=self.scheduler_role.role_arn,
                input=json.dumps({"source": SCHEDULE_SOURCE, "team": team_name}, sort_keys=True),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_retry_attempts=SCHEDULE_RETRIES, maximum_event_age_in_seconds=SCHEDULE_MAX_AGE_SECONDS
                ),
                dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(arn=launcher.dlq.queue_arn),
            ),
        )
        self.schedule.node.add_dependency(self.scheduler_role)

        # A finished execution → its row counts and outcome as metrics.
        self.rule = events.Rule(
            self,
            "ExecutionFinished",
            description=f"Executions of {name} that ended → their row counts and outcome",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=[EXECUTION_STATUS_CHANGE],
                detail={
                    "pipelineArn": [f"{sm}:pipeline/{name}", f"{sm}:pipeline/{name.lower()}"],
                    "currentPipelineExecutionStatus": ["Succeeded", "Failed", "Stopped"],
                },
            ),
            targets=[launcher.target()],
        )
        dimensions = {naming.TEAM_DIMENSION: team_name, "pipeline": name}
        self.failed_alarm = cloudwatch.Alarm(
            self,
            "RunFailedAlarm",
            alarm_description=f"A batch-scoring run of {name} failed (see its summary and step logs)",
            metric=cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name="ScoringRunsFailed",
                dimensions_map=dimensions,
                period=Duration.hours(1),
                statistic="Sum",
            ),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.failed_alarm.add_alarm_action(cw_actions.SnsAction(topic))
        self.pipeline_failed_alarm = cloudwatch.Alarm(
            self,
            "PipelineFailedAlarm",
            alarm_description=f"SageMaker reports a failed execution of {name}",
            metric=cloudwatch.Metric(
                namespace="AWS/Sagemaker/ModelBuildingPipeline",
                metric_name="ExecutionFailed",
                dimensions_map={"PipelineName": name},
                period=Duration.hours(1),
                statistic="Sum",
            ),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.pipeline_failed_alarm.add_alarm_action(cw_actions.SnsAction(topic))
