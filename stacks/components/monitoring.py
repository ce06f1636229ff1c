"""A team's monitoring: dashboard, alarms → the team's alert topic, budget, and the drift-monitor schedule.

:class:`TeamMonitoring` (built by ``MlTeam``) composes

* the team's **alert topic**: the lifecycle's KMS-encrypted topic when the team has a lifecycle (the
  rollback, dead-letter and handler alarms already notify it; one topic per team), else its own; the
  subscriptions of ``monitoring.subscriptions`` and the Budgets service admitted to it;
* **alarms** with defaults from ``monitoring.alarms`` (config/models.py ``AlarmThresholds``), each with an
  action on the topic: failed pipeline executions, endpoint 5xx rate and p99 ``ModelLatency`` (µs),
  Lambda errors and throttles, drifted features (``naming.drift_alarm_name``), failed monitor runs;
  with ``drift.retrain_after_windows`` > 0 a persistent-drift alarm whose ALARM state starts the team's
  pipeline (EventBridge rule) on ``<team>/incoming/<retrain_batch>/``;
* an **AWS Budgets** budget of ``monthly_budget_usd`` (cost filtered by the ``flywheel:team`` tag) that
  notifies the topic at ``budget_percent`` % actual and 100 % forecast spend;
* a **dashboard** ``flywheel-<env>-<team>``: pipeline executions/failures/durations (SageMaker's
  ``AWS/Sagemaker/ModelBuildingPipeline`` metrics, which it derives from the execution state changes),
  endpoint invocations, 4xx/5xx, ``ModelLatency`` p50/p99 (µs), CPU/memory, Lambda errors/throttles,
  dead-letter depth, the drift monitor's score per feature (a ``SEARCH`` over the features it reports),
  the budget and every alarm's state;
* the **drift monitor** (:class:`DriftSchedule`, realtime teams: only they capture): EventBridge Scheduler
  → a Step Functions state machine (JSONata) that resolves the deployed package's registered baseline,
  lists the window's capture (``naming.capture_prefix``), runs ``pipelines/monitor/drift.py`` as a
  processing job (KMS volume and output, VPC, network isolation, traffic encryption, a role under the
  boundary) writing ``report.json``/``metrics.json`` to ``naming.drift_prefix`` of the reports zone, and
  publishes ``metrics.json`` to CloudWatch (the job itself has no network).

``cdk-monitoring-constructs`` was evaluated and not used (README, dependency table): it has no SageMaker
endpoint, pipeline, Budgets or Step Functions-drift monitor, so every panel here would be a custom metric
anyway, and a second jsii bundle costs every synth process its import time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aws_cdk import Duration, RemovalPolicy, Stack, TimeZone
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

import naming
from naming import Names
from stacks.components.keys import purpose_key
from stacks.components.ml_pipeline import sagemaker_principal, vpc_network_statement
from stacks.components.sagemaker_images import image_accounts
from stacks.nag import acknowledge

if TYPE_CHECKING:
    from config.models import EnvironmentConfig, TeamConfig
    from stacks.components.lifecycle import TeamLifecycle

#: The drift monitor's step code (one self-contained module: no Flywheel runtime in the job).
MONITOR_CODE: Final = Path(__file__).resolve().parents[2] / "pipelines" / "monitor" / "drift.py"
#: Its CloudWatch namespace (``drift.METRICS_NAMESPACE``; tests check they agree).
DRIFT_NAMESPACE: Final = "Flywheel/Drift"
#: The tag the deploy handler puts on endpoint configs (``lambdas/deploy/actions.py`` ``PACKAGE_TAG``).
PACKAGE_TAG: Final = "flywheel:model-package-arn"
#: The endpoint's variant (``lifecycle.VARIANT_NAME``) whose capture the monitor reads.
VARIANT: Final = "AllTraffic"
#: Role kinds (path segments): the monitor's processing jobs; the state machine, schedule and retrain roles.
MONITOR_ROLE_KIND: Final = "drift-monitor"
MONITORING_ROLE_KIND: Final = "monitoring"
MONITORING_ROLE_KINDS: Final = (MONITOR_ROLE_KIND, MONITORING_ROLE_KIND)
#: SageMaker's pipeline metrics (emitted per pipeline from its execution status changes).
PIPELINE_NAMESPACE: Final = "AWS/Sagemaker/ModelBuildingPipeline"
#: The rule Step Functions creates to follow ``createProcessingJob.sync`` jobs.
SYNC_RULE: Final = "StepFunctionsGetEventsForSageMakerProcessingJobsRule"
_SKLEARN_IMAGE = re.compile(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/sagemaker-scikit-learn:[\w.-]+")
_BASELINE_URI = "$states.result.DriftCheckBaselines.ModelDataQuality.Statistics.S3Uri"
#: Window length (UTC) and when its run starts (minutes after the window closes, so capture is flushed).
WINDOWS: Final = {"hour": (Duration.hours(1), "cron(10 * * * ? *)"), "day": (Duration.days(1), "cron(20 0 * * ? *)")}
MONITOR_MAX_RUNTIME_SECONDS: Final = 3600
MONITOR_VOLUME_GB: Final = 30


def job_name_prefix(team: str) -> str:
    """``dm-<team>``: the monitor's processing jobs are ``dm-<team>-<yyyymmddhh>-<8 hex>`` (≤ 63 chars)."""
    return f"dm-{team}"


@dataclass(frozen=True)
class AlarmDefaults:
    """Thresholds of the team's alarms (``monitoring.alarms``)."""

    failed_executions: int = 1
    error_5xx_percent: float = 1.0
    p99_latency_ms: float = 1000
    drifted_features: int = 1
    lambda_errors: int = 1
    budget_percent: float = 80


@dataclass(frozen=True)
class DriftProps:
    """The drift monitor's schedule (``monitoring.drift``)."""

    window: str = "day"
    min_rows: int = 500
    psi: bool = False
    instance_type: str = "ml.m5.large"
    retrain_after_windows: int = 0
    retrain_batch: str = "retrain"


@dataclass(frozen=True)
class MonitoringProps:
    """What a team's monitoring needs from config (narrower than ``TeamConfig``)."""

    env_name: str
    monthly_budget_usd: float
    alarms: AlarmDefaults
    subscriptions: tuple[tuple[str, str], ...]
    drift: DriftProps | None
    deploy_target: str
    log_retention: logs.RetentionDays
    buckets: Mapping[str, str]  # zone → bucket name (capture, reports, raw)
    zone_keys: Mapping[str, kms.IKey]
    logs_key: kms.IKey

    @classmethod
    def from_config(
        cls,
        environment: EnvironmentConfig,
        team: TeamConfig,
        *,
        log_retention: logs.RetentionDays,
        buckets: Mapping[str, str],
        zone_keys: Mapping[str, kms.IKey],
        logs_key: kms.IKey,
    ) -> MonitoringProps:
        m = team.monitoring
        d = m.drift
        return cls(
            env_name=environment.name,
            monthly_budget_usd=team.monthly_budget_usd,
            alarms=AlarmDefaults(**m.alarms.model_dump()),
            subscriptions=tuple((s.protocol, s.endpoint) for s in m.subscriptions),
            drift=DriftProps(
                window=d.window,
                min_rows=d.min_rows,
                psi=d.psi,
                instance_type=d.instance_type,
                retrain_after_windows=d.retrain_after_windows,
                retrain_batch=d.retrain_batch,
            )
            if d.enabled
            else None,
            deploy_target=team.deploy_target,
            log_retention=log_retention,
            buckets=buckets,
            zone_keys=zone_keys,
            logs_key=logs_key,
        )


def _alarm(
    scope: Construct,
    construct_id: str,
    *,
    name: str | None,
    description: str,
    metric: cloudwatch.IMetric,
    threshold: float,
    topic: sns.ITopic,
    evaluation_periods: int = 1,
    comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
) -> cloudwatch.Alarm:
    alarm = cloudwatch.Alarm(
        scope,
        construct_id,
        alarm_name=name,
        alarm_description=description,
        metric=metric,
        threshold=threshold,
        comparison_operator=comparison,
        evaluation_periods=evaluation_periods,
        datapoints_to_alarm=evaluation_periods,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    alarm.add_alarm_action(cw_actions.SnsAction(topic))
    return alarm


class TeamMonitoring(Construct):
    """``topic``, ``alarms`` (name → Alarm), ``budget``, ``dashboard`` and ``drift`` (DriftSchedule or None)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        props: MonitoringProps,
        team_name: str,
        pipeline_names: Sequence[str],
        lifecycle: TeamLifecycle | None,
        job_key: kms.IKey,
        subnets: Sequence[ec2.ISubnet],
        security_group: ec2.ISecurityGroup,
        removal_policy: RemovalPolicy,
        sklearn_image: str | None = None,
        input_parameter: str = "InputDataUri",
    ) -> None:
        """``pipeline_names``: the team's pipelines (the first is retrained on persistent drift, with its
        template's ``input_parameter``); ``sklearn_image``: the image the monitor job runs (default: the
        SDK's scikit-learn 1.9-0)."""
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        names = Names(props.env_name)
        endpoint = names.endpoint(team_name)
        self.team_name = team_name
        self.endpoint_name = endpoint
        a = props.alarms

        # -- the team's topic -------------------------------------------------------------------------
        if lifecycle is not None:
            self.topic: sns.ITopic = lifecycle.topic
            self.topic_key: kms.IKey = lifecycle.store.key
        else:
            self.topic_key = purpose_key(
                self, "AlertsKey", purpose=f"{team_name} alerts", removal_policy=removal_policy
            )
            self.topic_key.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    resources=["*"],  # in a key policy "*" means "this key"
                    conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
                )
            )
            self.topic = sns.Topic(
                self,
                "Alerts",
                display_name=f"Flywheel {props.env_name} {team_name} alerts",
                master_key=self.topic_key,
                enforce_ssl=True,
            )
        # Undeliverable notifications and schedule invocations wait here (encrypted with the topic's key).
        for service in ("sns.amazonaws.com", "scheduler.amazonaws.com"):
            self.topic_key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"{service.split('.')[0].title()}DeadLetters{team_name.title().replace('-', '')}",
                    principals=[iam.ServicePrincipal(service)],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    resources=["*"],  # in a key policy "*" means "this key"
                    conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
                )
            )
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.topic_key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        for rule in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy"):
            acknowledge(
                self.dead_letters,
                rule,
                "This queue is itself the dead-letter queue of the team's alert "
                "subscriptions and of the drift-monitor schedule; a queue of last resort has none",
            )
        self.subscriptions = [
            sns.Subscription(
                self,
                f"Subscription{i}",
                topic=self.topic,
                protocol=sns.SubscriptionProtocol(
                    {"email": "EMAIL", "https": "HTTPS", "sqs": "SQS", "lambda": "LAMBDA"}[protocol]
                ),
                endpoint=endpoint_,
                dead_letter_queue=self.dead_letters,
            )
            for i, (protocol, endpoint_) in enumerate(props.subscriptions)
        ]
        budget_name = f"flywheel-{props.env_name}-{team_name}"
        budget_arn = f"arn:{stack.partition}:budgets::{stack.account}:budget/{budget_name}"
        # AWS Budgets publishes to an encrypted topic only when the topic policy and the key admit it.
        budgets_principal = iam.ServicePrincipal("budgets.amazonaws.com")
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="BudgetsPublish",
                principals=[budgets_principal],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": budget_arn},
                },
            )
        )
        self.topic_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid=f"BudgetsEncrypt{team_name.title().replace('-', '')}",
                principals=[budgets_principal],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy "*" means "this key"
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )

        # -- alarms -----------------------------------------------------------------------------------
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for i, pipeline in enumerate(pipeline_names):
            self.alarms[f"failed-executions:{pipeline}"] = _alarm(
                self,
                f"FailedExecutions{i}",
                name=f"{pipeline}-failed-executions",
                description=f"pipeline {pipeline}: {a.failed_executions}+ failed execution(s) in an hour",
                metric=pipeline_metric("ExecutionFailed", pipeline, "Sum", Duration.hours(1)),
                threshold=a.failed_executions,
                topic=self.topic,
            )
        serving = props.deploy_target != "batch"
        if serving:
            self.alarms["5xx-rate"] = _alarm(
                self,
                "Error5xxRate",
                name=f"{endpoint}-5xx-rate",
                description=f"{endpoint}: 5xx errors at or above {a.error_5xx_percent:g} % of invocations (5 min)",
                metric=cloudwatch.MathExpression(
                    expression="IF(invocations > 0, 100 * errors / invocations, 0)",
                    using_metrics={
                        "errors": endpoint_metric("Invocation5XXErrors", endpoint, "Sum"),
                        "invocations": endpoint_metric("Invocations", endpoint, "Sum"),
                    },
                    period=Duration.minutes(5),
                    label="5xx % of invocations",
                ),
                threshold=a.error_5xx_percent,
                topic=self.topic,
            )
            self.alarms["p99-latency"] = _alarm(
                self,
                "LatencyP99",
                name=f"{endpoint}-latency-p99",
                description=f"{endpoint}: ModelLatency p99 above {a.p99_latency_ms:g} ms (5 min; the metric is in µs)",
                metric=endpoint_metric("ModelLatency", endpoint, "p99"),
                threshold=a.p99_latency_ms * 1000,
                topic=self.topic,
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            )
        functions: dict[str, Any] = {}
        if lifecycle is not None:
            functions = {"DataArrival": lifecycle.arrival, "Deploy": lifecycle.deploy}
            for label, fn in functions.items():
                self.alarms[f"lambda-errors:{label}"] = _alarm(
                    self,
                    f"{label}Errors",
                    name=None,
                    description=f"{team_name} {label} function: {a.lambda_errors}+ errors or throttles in 5 min",
                    metric=cloudwatch.MathExpression(
                        expression="errors + throttles",
                        using_metrics={
                            "errors": fn.function.metric_errors(period=Duration.minutes(5)),
                            "throttles": fn.function.metric_throttles(period=Duration.minutes(5)),
                        },
                        period=Duration.minutes(5),
                        label="errors + throttles",
                    ),
                    threshold=a.lambda_errors,
                    topic=self.topic,
                )
        self.alarms["dead-letters"] = _alarm(
            self,
            "DeadLettersAlarm",
            name=None,
            description=f"{team_name}: an alert notification or a drift-monitor start could not be delivered",
            metric=self.dead_letters.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            threshold=1,
            topic=self.topic,
        )
        self.drift: DriftSchedule | None = None
        if props.drift is not None and props.deploy_target == "realtime":
            window = WINDOWS[props.drift.window][0]
            dims = {"team": team_name, "endpoint": endpoint}
            drifted = cloudwatch.Metric(
                namespace=DRIFT_NAMESPACE,
                metric_name="DriftedFeatures",
                dimensions_map=dims,
                statistic="Maximum",
                period=window,
            )
            self.alarms["drift"] = _alarm(
                self,
                "Drift",
                name=naming.drift_alarm_name(endpoint),
                description=f"{endpoint}: {a.drifted_features}+ feature(s) drifted in a monitor window "
                "(pipelines/monitor/drift.py; report under drift/ of the reports zone)",
                metric=drifted,
                threshold=a.drifted_features,
                topic=self.topic,
            )
            self.drift = DriftSchedule(
                self,
                "DriftMonitor",
                props=props,
                drift=props.drift,
                team_name=team_name,
                endpoint_name=endpoint,
                group_name=names.model_package_group(team_name),
                pipeline_names=pipeline_names,
                job_key=job_key,
                subnets=subnets,
                security_group=security_group,
                sklearn_image=sklearn_image,
                dead_letters=self.dead_letters,
                dead_letters_key=self.topic_key,
                removal_policy=removal_policy,
            )
            self.alarms["monitor-failed"] = _alarm(
                self,
                "MonitorFailed",
                name=f"{endpoint}-drift-monitor-failed",
                description=f"{endpoint}: a drift monitor run failed (Step Functions execution; see its history)",
                metric=self.drift.state_machine.metric_failed(period=window, statistic="Sum"),
                threshold=1,
                topic=self.topic,
            )
            if props.drift.retrain_after_windows > 0:
                n = props.drift.retrain_after_windows
                self.alarms["persistent-drift"] = _alarm(
                    self,
                    "PersistentDrift",
                    name=f"{endpoint}-persistent-drift",
                    description=f"{endpoint}: drift in {n} consecutive windows: retraining starts",
                    metric=drifted,
                    threshold=a.drifted_features,
                    topic=self.topic,
                    evaluation_periods=n,
                )
                self.drift.retrain_on(
                    self.alarms["persistent-drift"], pipeline_names[0], input_parameter, props, team_name
                )

        # -- budget -----------------------------------------------------------------------------------
        subscriber = budgets.CfnBudget.SubscriberProperty(subscription_type="SNS", address=self.topic.topic_arn)
        self.budget = budgets.CfnBudget(
            self,
            "Budget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name=budget_name,
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=props.monthly_budget_usd, unit="USD"),
                # Needs the flywheel:team cost allocation tag activated in Billing (docs/monitoring.md).
                cost_filters={"TagKeyValue": [f"user:flywheel:team${team_name}"]},
            ),
            notifications_with_subscribers=[
                budgets.CfnBudget.NotificationWithSubscribersProperty(
                    notification=budgets.CfnBudget.NotificationProperty(
                        notification_type=kind,
                        comparison_operator="GREATER_THAN",
                        threshold=threshold,
                        threshold_type="PERCENTAGE",
                    ),
                    subscribers=[subscriber],
                )
                for kind, threshold in (("ACTUAL", a.budget_percent), ("FORECASTED", 100.0))
            ],
        )
        self.budget.node.add_dependency(self.topic)

        # -- dashboard --------------------------------------------------------------------------------
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"flywheel-{props.env_name}-{team_name}",
            default_interval=Duration.days(7),
        )
        self._widgets(props, pipeline_names, endpoint, serving, lifecycle, functions, budget_name)

    def _widgets(
        self,
        props: MonitoringProps,
        pipeline_names: Sequence[str],
        endpoint: str,
        serving: bool,
        lifecycle: TeamLifecycle | None,
        functions: Mapping[str, Any],
        budget_name: str,
    ) -> None:
        d = self.dashboard
        team = self.team_name
        d.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# {team} ({props.env_name})\nPipelines {', '.join(pipeline_names)}; endpoint `{endpoint}` "
                f"({props.deploy_target}). Alerts: SNS topic of the team. Runbooks: docs/runbooks/; drift: "
                "docs/monitoring.md.",
                width=24,
                height=2,
            )
        )
        hour = Duration.hours(1)
        d.add_widgets(
            cloudwatch.GraphWidget(
                title="Pipeline executions (per hour)",
                width=12,
                left=[
                    pipeline_metric(m, p, "Sum", hour, label=f"{p.removeprefix(f'flywheel-{props.env_name}-')} {m}")
                    for p in pipeline_names
                    for m in ("ExecutionStarted", "ExecutionSucceeded", "ExecutionFailed")
                ],
            ),
            cloudwatch.GraphWidget(
                title="Pipeline execution duration (ms)",
                width=12,
                left=[
                    pipeline_metric("ExecutionDuration", p, s, hour, label=f"{s} {p}")
                    for p in pipeline_names
                    for s in ("Average", "Maximum")
                ],
            ),
        )
        if serving:
            d.add_widgets(
                cloudwatch.GraphWidget(
                    title="Endpoint invocations and errors (5 min)",
                    width=8,
                    left=[
                        endpoint_metric(m, endpoint, "Sum")
                        for m in ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors")
                    ],
                ),
                cloudwatch.GraphWidget(
                    title="ModelLatency p50 / p99 (microseconds)",
                    width=8,
                    left=[endpoint_metric("ModelLatency", endpoint, s, label=f"{s} (µs)") for s in ("p50", "p99")],
                    left_annotations=[
                        cloudwatch.HorizontalAnnotation(value=props.alarms.p99_latency_ms * 1000, label="p99 alarm")
                    ],
                ),
                cloudwatch.GraphWidget(
                    title="Endpoint CPU / memory (%)",
                    width=8,
                    left=[
                        cloudwatch.Metric(
                            namespace="/aws/sagemaker/Endpoints",
                            metric_name=m,
                            dimensions_map={"EndpointName": endpoint, "VariantName": VARIANT},
                            statistic="Average",
                            period=Duration.minutes(5),
                        )
                        for m in ("CPUUtilization", "MemoryUtilization")
                    ],
                ),
            )
        if lifecycle is not None:
            five = Duration.minutes(5)
            d.add_widgets(
                cloudwatch.GraphWidget(
                    title="Lifecycle functions: errors / throttles (5 min)",
                    width=12,
                    left=[
                        m
                        for label, fn in functions.items()
                        for m in (
                            fn.function.metric_errors(period=five, label=f"{label} errors"),
                            fn.function.metric_throttles(period=five, label=f"{label} throttles"),
                        )
                    ],
                ),
                cloudwatch.GraphWidget(
                    title="Dead-letter queue depth",
                    width=12,
                    left=[
                        fn.dlq.metric_approximate_number_of_messages_visible(
                            period=five, statistic="Maximum", label=f"{label} DLQ"
                        )
                        for label, fn in functions.items()
                    ],
                ),
            )
        if self.drift is not None:
            period = WINDOWS[self.drift.drift.window][0]
            search = (
                f'SEARCH(\'{{{DRIFT_NAMESPACE},endpoint,feature,team}} MetricName="DriftScore" '
                f"endpoint=\"{endpoint}\"', 'Maximum', {int(period.to_seconds())})"
            )
            d.add_widgets(
                cloudwatch.GraphWidget(
                    title="Drift score per feature (1 = at the threshold)",
                    width=12,
                    left=[cloudwatch.MathExpression(expression=search, label="", period=period)],
                    left_annotations=[cloudwatch.HorizontalAnnotation(value=1, label="drift threshold")],
                ),
                cloudwatch.GraphWidget(
                    title="Drift monitor: drifted features and window rows",
                    width=12,
                    left=[
                        cloudwatch.Metric(
                            namespace=DRIFT_NAMESPACE,
                            metric_name="DriftedFeatures",
                            dimensions_map={"team": team, "endpoint": endpoint},
                            statistic="Maximum",
                            period=period,
                        )
                    ],
                    right=[
                        cloudwatch.Metric(
                            namespace=DRIFT_NAMESPACE,
                            metric_name="WindowRows",
                            dimensions_map={"team": team, "endpoint": endpoint},
                            statistic="Maximum",
                            period=period,
                        )
                    ],
                ),
            )
        alarms: list[cloudwatch.IAlarm] = list(self.alarms.values())
        if lifecycle is not None:
            alarms += [fn.dlq_alarm for fn in functions.values()]
            alarms += list(lifecycle.metric_alarms.values())
            if lifecycle.endpoint_alarms is not None:
                alarms += list(lifecycle.endpoint_alarms.alarms)
        d.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms (all notify the team topic)", alarms=alarms, width=16, height=6),
            cloudwatch.TextWidget(
                markdown=f"## Budget\n**${props.monthly_budget_usd:,.0f}/month** (AWS Budgets `{budget_name}`, "
                "cost tagged `flywheel:team`): the topic is told at "
                f"{props.alarms.budget_percent:g} % actual and 100 % forecast spend.",
                width=8,
                height=6,
            ),
        )


def pipeline_metric(
    name: str, pipeline: str, statistic: str, period: Duration, label: str | None = None
) -> cloudwatch.Metric:
    """A SageMaker pipeline metric (``AWS/Sagemaker/ModelBuildingPipeline``, dimension ``PipelineName``)."""
    return cloudwatch.Metric(
        namespace=PIPELINE_NAMESPACE,
        metric_name=name,
        dimensions_map={"PipelineName": pipeline},
        statistic=statistic,
        period=period,
        label=label,
    )


def endpoint_metric(name: str, endpoint: str, statistic: str, label: str | None = None) -> cloudwatch.Metric:
    """An ``AWS/SageMaker`` endpoint metric of the team's variant, over 5 minutes (``ModelLatency``: µs)."""
    return cloudwatch.Metric(
        namespace="AWS/SageMaker",
        metric_name=name,
        statistic=statistic,
        label=label,
        dimensions_map={"EndpointName": endpoint, "VariantName": VARIANT},
        period=Duration.minutes(5),
    )


class DriftSchedule(Construct):
    """``schedule`` → ``state_machine`` → processing job as ``job_role``; ``code`` (the drift.py asset)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        props: MonitoringProps,
        drift: DriftProps,
        team_name: str,
        endpoint_name: str,
        group_name: str,
        pipeline_names: Sequence[str],
        job_key: kms.IKey,
        subnets: Sequence[ec2.ISubnet],
        security_group: ec2.ISecurityGroup,
        sklearn_image: str | None,
        dead_letters: sqs.IQueue,
        dead_letters_key: kms.IKey,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        region, account, partition = stack.region, stack.account, stack.partition
        names = Names(props.env_name)
        self.drift = drift
        sm = f"arn:{partition}:sagemaker:{region}:{account}"
        capture_bucket, reports_bucket = props.buckets["capture"], props.buckets["reports"]
        capture_key, reports_key = props.zone_keys["capture"], props.zone_keys["reports"]
        capture_prefix = f"{naming.capture_prefix(endpoint_name)}{VARIANT}/"
        reports_prefix = naming.drift_prefix(endpoint_name)
        self.code = s3_assets.Asset(self, "Code", path=str(MONITOR_CODE))
        image = sklearn_image or _sdk_sklearn_image(region)

        # -- the job's role: read the window, the baseline and the code; write the report -----------------
        path = names.role_path(MONITOR_ROLE_KIND)
        self.job_role = iam.Role(
            self,
            "JobRole",
            assumed_by=sagemaker_principal(stack),
            path=path,
            description=f"SageMaker role of {team_name}'s drift monitor jobs",
        )
        cfn_role = self.job_role.node.default_child
        assert isinstance(cfn_role, iam.CfnRole)
        cfn_role.add_property_override("Path", path)
        reports_arn = f"arn:{partition}:s3:::{reports_bucket}"
        baselines = [f"{reports_arn}/{naming.pipeline_prefix(p)}*" for p in pipeline_names]
        images = [f"arn:{partition}:ecr:{region}:{a}:repository/sagemaker-*" for a in image_accounts(region)]
        job_logs = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/ProcessingJobs"
        statements = [
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[
                    f"arn:{partition}:s3:::{capture_bucket}/{capture_prefix}*",
                    *baselines,
                    f"arn:{partition}:s3:::{self.code.s3_bucket_name}/{self.code.s3_object_key}",
                ],
            ),
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[f"arn:{partition}:s3:::{capture_bucket}"],
                conditions={"StringLike": {"s3:prefix": [f"{capture_prefix}*"]}},
            ),
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[reports_arn],
                conditions={"StringLike": {"s3:prefix": [naming.pipeline_prefix(p) + "*" for p in pipeline_names]}},
            ),
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[f"arn:{partition}:s3:::{self.code.s3_bucket_name}"],
                conditions={"StringEquals": {"s3:prefix": [self.code.s3_object_key]}},
            ),
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=[f"{reports_arn}/{reports_prefix}*"]
            ),
            iam.PolicyStatement(actions=["kms:Decrypt"], resources=[capture_key.key_arn, reports_key.key_arn]),
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[job_key.key_arn],
            ),
            iam.PolicyStatement(
                actions=["kms:CreateGrant"],
                resources=[job_key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=images,
            ),
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[job_logs, f"{job_logs}:*"],
            ),
            vpc_network_statement(),
        ]
        self.job_policy = iam.ManagedPolicy(
            self,
            "JobPolicy",
            roles=[self.job_role],
            statements=statements,
            description=f"Least privilege for {team_name}'s drift monitor jobs",
        )
        lake = {z: Names(props.env_name).bucket_export(z) for z in ("capture", "reports")}
        job_reasons = {
            "Resource::*": "ecr:GetAuthorizationToken and the ec2 network-interface actions of in-VPC jobs "
            "support no resource-level permissions",
            f"Resource::{job_logs}:*": "SageMaker writes each processing job's log stream under its own name",
            f"Resource::arn:{partition}:s3:::{lake['capture']}/{capture_prefix}*": "the endpoint's own capture "
            "(objects per hour)",
            f"Resource::arn:{partition}:s3:::{lake['reports']}/{reports_prefix}*": "the endpoint's own drift "
            "reports (one folder per window)",
        }
        for p in pipeline_names:
            job_reasons[f"Resource::arn:{partition}:s3:::{lake['reports']}/{naming.pipeline_prefix(p)}*"] = (
                "the baselines the team's pipeline registers (keys per execution)"
            )
        for a in image_accounts(region):
            job_reasons[f"Resource::arn:{partition}:ecr:{region}:{a}:repository/sagemaker-*"] = (
                "SageMaker's own framework images in its pinned image accounts"
            )
        for resource, reason in job_reasons.items():
            acknowledge(self.job_policy, f"AwsSolutions-IAM5[{resource}]", reason)

        # -- the state machine (JSONata) --------------------------------------------------------------
        window, cron = WINDOWS[drift.window]
        ms = int(window.to_milliseconds())
        fmt = "[Y0001]/[M01]/[D01]/[H01]" if drift.window == "hour" else "[Y0001]/[M01]/[D01]"
        start = f"$toMillis($states.context.Execution.StartTime) - {ms}"
        name_prefix = job_name_prefix(team_name)
        setup = sfn.Pass.jsonata(
            self,
            "Window",
            assign={
                "window": f"{{% $fromMillis({start}, '{fmt}') %}}",
                "stamp": f"{{% $fromMillis({start}, '[Y0001][M01][D01][H01]') %}}",
            },
        )
        setup_job = sfn.Pass.jsonata(
            self,
            "JobName",
            assign={
                "job": f"{{% '{name_prefix}-' & $stamp & '-' & $substring($uuid(), 0, 8) %}}",
                "capture": f"{{% '{capture_prefix}' & $window & '/' %}}",
                "output": f"{{% '{reports_prefix}' & $stamp & '/' %}}",
            },
        )
        describe_endpoint = tasks.CallAwsService.jsonata(
            self,
            "DescribeEndpoint",
            service="sagemaker",
            action="describeEndpoint",
            parameters={"EndpointName": endpoint_name},
            iam_resources=[f"{sm}:endpoint/{endpoint_name}"],
            assign={"config": "{% $states.result.EndpointConfigName %}"},
        )
        describe_config = tasks.CallAwsService.jsonata(
            self,
            "DescribeEndpointConfig",
            service="sagemaker",
            action="describeEndpointConfig",
            parameters={"EndpointConfigName": "{% $config %}"},
            iam_resources=[f"{sm}:endpoint-config/{endpoint_name}-v*"],
            assign={"configArn": "{% $states.result.EndpointConfigArn %}"},
        )
        list_tags = tasks.CallAwsService.jsonata(
            self,
            "PackageOfEndpoint",
            service="sagemaker",
            action="listTags",
            parameters={"ResourceArn": "{% $configArn %}"},
            iam_resources=[f"{sm}:endpoint-config/{endpoint_name}-v*"],
            assign={"package": f"{{% $states.result.Tags[Key='{PACKAGE_TAG}'].Value %}}"},
        )
        describe_package = tasks.CallAwsService.jsonata(
            self,
            "BaselineOfPackage",
            service="sagemaker",
            action="describeModelPackage",
            parameters={"ModelPackageName": "{% $package %}"},
            iam_resources=[f"{sm}:model-package/{group_name}/*"],
            # A package without a registered baseline assigns "" (an undefined result would fail the state).
            assign={"baseline": f"{{% $exists({_BASELINE_URI}) ? {_BASELINE_URI} : '' %}}"},
        )
        list_window = tasks.CallAwsService.jsonata(
            self,
            "ListWindow",
            service="s3",
            action="listObjectsV2",
            parameters={"Bucket": capture_bucket, "Prefix": "{% $capture %}", "MaxKeys": 1},
            iam_resources=[f"arn:{partition}:s3:::{capture_bucket}"],
            iam_action="s3:ListBucket",
            assign={"objects": "{% $states.result.KeyCount %}"},
        )
        base_dims = [{"Name": "team", "Value": team_name}, {"Name": "endpoint", "Value": endpoint_name}]
        no_data = tasks.CallAwsService.jsonata(
            self,
            "PublishNoData",
            service="cloudwatch",
            action="putMetricData",
            parameters={
                "Namespace": DRIFT_NAMESPACE,
                "MetricData": [
                    {"MetricName": "WindowRows", "Dimensions": base_dims, "Value": 0, "Unit": "Count"},
                    {"MetricName": "NotEnoughData", "Dimensions": base_dims, "Value": 1, "Unit": "Count"},
                ],
            },
            iam_resources=["*"],
        )
        code_dir = "/opt/ml/processing/input/code"
        arguments = [
            "--baseline-dir",
            "/opt/ml/processing/input/baseline",
            "--capture-dir",
            "/opt/ml/processing/input/capture",
            "--output-dir",
            "/opt/ml/processing/output",
            "--min-rows",
            str(drift.min_rows),
            "--team",
            team_name,
            "--endpoint",
            endpoint_name,
            "--window",
            "{% $window %}",
            *(["--psi"] if drift.psi else []),
        ]

        def s3_input(name: str, uri: str, local: str) -> dict[str, Any]:
            return {
                "InputName": name,
                "S3Input": {
                    "S3Uri": uri,
                    "LocalPath": local,
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            }

        self.job_request: dict[str, Any] = {
            "ProcessingJobName": "{% $job %}",
            "RoleArn": self.job_role.role_arn,
            "AppSpecification": {
                "ImageUri": image,
                "ContainerEntrypoint": ["python3", f"{code_dir}/{self.code.asset_hash}.py"],
                "ContainerArguments": arguments,
            },
            "ProcessingInputs": [
                s3_input("code", self.code.s3_object_url, code_dir),
                s3_input(
                    "baseline",
                    "{% $substringBefore($baseline, 'statistics.json') %}",
                    "/opt/ml/processing/input/baseline",
                ),
                s3_input("capture", f"{{% 's3://{capture_bucket}/' & $capture %}}", "/opt/ml/processing/input/capture"),
            ],
            "ProcessingOutputConfig": {
                "KmsKeyId": job_key.key_arn,
                "Outputs": [
                    {
                        "OutputName": "report",
                        "S3Output": {
                            "S3Uri": f"{{% 's3://{reports_bucket}/' & $output %}}",
                            "LocalPath": "/opt/ml/processing/output",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ],
            },
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": drift.instance_type,
                    "VolumeSizeInGB": MONITOR_VOLUME_GB,
                    "VolumeKmsKeyId": job_key.key_arn,
                }
            },
            "NetworkConfig": {
                "EnableNetworkIsolation": True,
                "EnableInterContainerTrafficEncryption": True,
                "VpcConfig": {
                    "Subnets": [s.subnet_id for s in subnets],
                    "SecurityGroupIds": [security_group.security_group_id],
                },
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": MONITOR_MAX_RUNTIME_SECONDS},
            "Tags": [{"Key": "flywheel:team", "Value": team_name}],
        }
        run_job = sfn.CustomState(
            self,
            "RunMonitorJob",
            state_json={
                "Type": "Task",
                "QueryLanguage": "JSONata",
                "Resource": f"arn:{partition}:states:::sagemaker:createProcessingJob.sync",
                "Arguments": self.job_request,
            },
        )
        read_metrics = tasks.CallAwsService.jsonata(
            self,
            "ReadMetrics",
            service="s3",
            action="getObject",
            parameters={"Bucket": reports_bucket, "Key": "{% $output & 'metrics.json' %}"},
            iam_resources=[f"{reports_arn}/{reports_prefix}*"],
            outputs="{% $parse($states.result.Body) %}",
        )
        publish = tasks.CallAwsService.jsonata(
            self,
            "PublishMetrics",
            service="cloudwatch",
            action="putMetricData",
            parameters={"Namespace": DRIFT_NAMESPACE, "MetricData": "{% $states.input.MetricData %}"},
            iam_resources=["*"],
        )
        nothing = sfn.Succeed(self, "NothingDeployed", comment="no endpoint: nothing to monitor")
        no_baseline = sfn.Fail(
            self,
            "NoBaseline",
            error="NoBaseline",
            cause="the deployed package registers no DriftCheckBaselines.ModelDataQuality",
        )
        describe_endpoint.add_catch(nothing, errors=["SageMaker.SageMakerException", "SageMaker.ValidationException"])
        definition = (
            setup.next(describe_endpoint)
            .next(describe_config)
            .next(list_tags)
            .next(describe_package)
            .next(
                sfn.Choice.jsonata(self, "HasBaseline?")
                .when(
                    sfn.Condition.jsonata("{% $baseline != '' %}"),
                    setup_job.next(list_window).next(
                        sfn.Choice.jsonata(self, "HasCapture?")
                        .when(sfn.Condition.jsonata("{% $objects = 0 %}"), no_data)
                        .otherwise(run_job.next(read_metrics).next(publish))
                    ),
                )
                .otherwise(no_baseline)
            )
        )
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            encryption_key=props.logs_key,
            retention=props.log_retention,
            removal_policy=removal_policy,
        )
        # The state machine's own role with one managed policy: CDK's generated grants are left out
        # (without_policy_updates), every statement below is explicit.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "states.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": account}}
            ),
            path=names.role_path(MONITORING_ROLE_KIND),
            description=f"Step Functions role of {endpoint_name}'s drift monitor",
        )
        _pin_path(self.role, names.role_path(MONITORING_ROLE_KIND))
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            query_language=sfn.QueryLanguage.JSONATA,
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            role=self.role.without_policy_updates(),
            timeout=Duration.seconds(MONITOR_MAX_RUNTIME_SECONDS + 900),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            comment=f"Drift monitor of {endpoint_name}: one {drift.window} of capture vs. the deployed baseline",
        )
        job_arn = f"{sm}:processing-job/{name_prefix}-*"
        configs = f"{sm}:endpoint-config/{endpoint_name}-v*"
        packages = f"{sm}:model-package/{group_name}/*"
        statements = [
            iam.PolicyStatement(actions=["sagemaker:DescribeEndpoint"], resources=[f"{sm}:endpoint/{endpoint_name}"]),
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpointConfig", "sagemaker:ListTags"], resources=[configs]
            ),
            iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"], resources=[packages]),
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:AddTags",
                ],
                resources=[job_arn],
            ),
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[f"arn:{partition}:events:{region}:{account}:rule/{SYNC_RULE}"],
            ),
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.job_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[f"arn:{partition}:s3:::{capture_bucket}"],
                conditions={"StringLike": {"s3:prefix": [f"{capture_prefix}*"]}},
            ),
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"{reports_arn}/{reports_prefix}*"]),
            iam.PolicyStatement(
                actions=["kms:Decrypt"],
                resources=[job_key.key_arn, reports_key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
            ),
            # PutMetricData has no resource type: only the monitor's own namespace.
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": DRIFT_NAMESPACE}},
            ),
            # Step Functions' log delivery and X-Ray (no resource-level permissions).
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogDelivery",
                    "logs:GetLogDelivery",
                    "logs:UpdateLogDelivery",
                    "logs:DeleteLogDelivery",
                    "logs:ListLogDeliveries",
                    "logs:PutResourcePolicy",
                    "logs:DescribeResourcePolicies",
                    "logs:DescribeLogGroups",
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                ],
                resources=["*"],
            ),
        ]
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            roles=[self.role],
            statements=statements,
            description=f"Least privilege for {endpoint_name}'s drift monitor",
        )
        self.state_machine.node.add_dependency(self.policy, self.job_policy)
        lake_reports = f"arn:{partition}:s3:::{lake['reports']}/{reports_prefix}*"
        for resource, reason in {
            job_arn: f"the monitor's processing jobs are named {name_prefix}-<window>-<random>",
            configs: "the endpoint's configs are named <endpoint>-v<version>-<hash> by the deploy handler",
            packages: "versions of the team's own model package group (the deployed one is read from its tag)",
            lake_reports: "the endpoint's own drift reports (metrics.json of each window)",
            "*": "cloudwatch:PutMetricData (conditioned on the monitor's namespace), Step Functions log delivery "
            "and X-Ray support no resource-level permissions",
        }.items():
            acknowledge(self.policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)

        # -- the schedule -----------------------------------------------------------------------------
        self.schedule_role = iam.Role(
            self,
            "ScheduleRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": account}}
            ),
            path=names.role_path(MONITORING_ROLE_KIND),
            description=f"EventBridge Scheduler role of {endpoint_name}'s drift monitor",
        )
        _pin_path(self.schedule_role, names.role_path(MONITORING_ROLE_KIND))
        self.schedule_policy = iam.ManagedPolicy(
            self,
            "SchedulePolicy",
            roles=[self.schedule_role],
            statements=[
                iam.PolicyStatement(
                    actions=["states:StartExecution"], resources=[self.state_machine.state_machine_arn]
                ),
                iam.PolicyStatement(actions=["kms:Decrypt"], resources=[job_key.key_arn]),
                iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[dead_letters.queue_arn]),
                iam.PolicyStatement(
                    actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[dead_letters_key.key_arn]
                ),
            ],
            description=f"{endpoint_name}'s drift schedule starts its state machine",
        )
        self.schedule = scheduler.Schedule(
            self,
            "Schedule",
            schedule=scheduler.ScheduleExpression.expression(cron, TimeZone.ETC_UTC),
            description=f"Drift monitor of {endpoint_name}: every {drift.window} (UTC), after the window closes",
            key=job_key,
            target=scheduler_targets.StepFunctionsStartExecution(
                self.state_machine,
                role=self.schedule_role.without_policy_updates(),
                dead_letter_queue=dead_letters,
                retry_attempts=2,
                max_event_age=Duration.hours(1),
            ),
        )
        self.schedule.node.add_dependency(self.schedule_policy)
        job_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid=f"SchedulerEncryptsDriftSchedule{team_name.title().replace('-', '')}",
                principals=[iam.ServicePrincipal("scheduler.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy "*" means "this key"
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )

    def retrain_on(
        self, alarm: cloudwatch.Alarm, pipeline_name: str, input_parameter: str, props: MonitoringProps, team: str
    ) -> None:
        """Persistent drift (``alarm`` in ALARM) starts ``pipeline_name`` on ``<team>/incoming/<retrain_batch>/``."""
        stack = Stack.of(self)
        assert props.drift is not None
        data = naming.s3_uri(props.buckets["raw"], f"{naming.incoming_prefix(team)}{props.drift.retrain_batch}/")
        pipeline_arn = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}:pipeline/{pipeline_name}"
        role = iam.Role(
            self,
            "RetrainRole",
            assumed_by=iam.ServicePrincipal(
                "events.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
            path=Names(props.env_name).role_path(MONITORING_ROLE_KIND),
            description=f"EventBridge starts {pipeline_name} on persistent drift",
        )
        _pin_path(role, Names(props.env_name).role_path(MONITORING_ROLE_KIND))
        iam.ManagedPolicy(
            self,
            "RetrainPolicy",
            roles=[role],
            description=f"Start {pipeline_name} on persistent drift",
            statements=[iam.PolicyStatement(actions=["sagemaker:StartPipelineExecution"], resources=[pipeline_arn])],
        )
        self.retrain_rule = events.CfnRule(
            self,
            "RetrainRule",
            description=f"{alarm.alarm_name} in ALARM → start {pipeline_name}",
            event_pattern={
                "source": ["aws.cloudwatch"],
                "detail-type": ["CloudWatch Alarm State Change"],
                "resources": [alarm.alarm_arn],
                "detail": {"state": {"value": ["ALARM"]}},
            },
            targets=[
                events.CfnRule.TargetProperty(
                    id="RetrainPipeline",
                    arn=pipeline_arn,
                    role_arn=role.role_arn,
                    sage_maker_pipeline_parameters=events.CfnRule.SageMakerPipelineParametersProperty(
                        pipeline_parameter_list=[
                            events.CfnRule.SageMakerPipelineParameterProperty(name=input_parameter, value=data)
                        ]
                    ),
                )
            ],
        )


def _pin_path(role: iam.Role, path: str) -> None:
    """Keep ``path`` (the role's kind) even though the stage's aspect sets the environment's path on roles."""
    cfn = role.node.default_child
    assert isinstance(cfn, iam.CfnRole)
    cfn.add_property_override("Path", path)


def _sdk_sklearn_image(region: str) -> str:
    from pipelines.sdk_offline import image_uri

    return image_uri("sklearn", "1.9-0", region, "inference")


def sklearn_image_of(definition_body: str) -> str | None:
    """The scikit-learn image a pipeline definition runs (the monitor uses the same pinned image)."""
    match = _SKLEARN_IMAGE.search(definition_body)
    return match.group(0) if match else None
