"""The cost model: every resource of a synthesized CloudFormation template priced at rest, from the price table.

Each resource becomes one :class:`Line` with a status:

* ``priced`` — a fixed monthly charge that runs whether or not anything happens (KMS keys, interface endpoints
  per AZ, NAT gateways, alarms, dashboards, budgets, real-time endpoints, secrets, ...);
* ``assumed`` — usage that an idle environment still has, priced from a documented :class:`Assumptions` knob
  (CloudTrail data events, flow-log ingestion, S3 storage);
* ``free`` — ``$0 at rest``: the service bills only per request / job / minute (Lambda, SQS, SNS, DynamoDB on
  demand, Step Functions, CodePipeline V2, CodeBuild, serverless endpoints, ...) or never (IAM, VPC, subnets);
* ``not priced`` — a type (or configuration) the model does not know: listed, never ignored.

A team's *deployed* endpoint is not in its template: the team's deploy function creates it after the first
approval from its ``DEPLOY_TARGET`` / ``INSTANCE_TYPE`` / ``MIN_INSTANCES`` (lambdas/deploy/config.py). It is
priced as its own line, flagged ``deployed``, so the report can show the team before and after its first model.

:func:`pipeline_jobs` reads the SageMaker pipeline definitions for the cost per 1,000 runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flywheel.cost.prices import PriceTable

PRICED, ASSUMED, FREE, NOT_PRICED = "priced", "assumed", "free", "not priced"


@dataclass(frozen=True)
class Assumptions:
    """The usage knobs of an idle environment and of a pipeline run (``--assume NAME=VALUE``)."""

    #: data events the trail delivers per month and environment (reads/writes of the lake's objects)
    trail_data_events_per_month: float = 100_000
    #: GB of VPC flow logs ingested per month and flow log (an idle VPC with endpoints only: little)
    flow_log_gb_per_month: float = 1.0
    #: GB stored per S3 bucket (an idle lake holds a few example batches, models and reports)
    s3_gb_per_bucket: float = 1.0
    #: wall minutes per pipeline job step (processing, training, transform) for the cost per 1,000 runs
    minutes_per_step: float = 10.0
    #: runs the pipeline-run figure is quoted for
    runs: float = 1000

    @classmethod
    def names(cls) -> list[str]:
        return list(cls.__dataclass_fields__)

    def with_overrides(self, values: Mapping[str, str]) -> Assumptions:
        """A copy with ``NAME=VALUE`` overrides; a clear ValueError naming the unknown or bad one."""
        changes: dict[str, float] = {}
        for name, text in values.items():
            if name not in self.names():
                raise ValueError(f"unknown assumption {name!r}; use one of: {', '.join(self.names())}")
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"assumption {name}={text!r} is not a number") from None
            if number < 0:
                raise ValueError(f"assumption {name}={text!r} must not be negative")
            changes[name] = number
        return Assumptions(**{**self.__dict__, **changes})


@dataclass(frozen=True)
class Line:
    """One resource (or one deployed endpoint) of one stack and what it costs per month at rest."""

    stack: str
    logical_id: str
    type: str
    status: str
    monthly: float
    detail: str
    item: str = ""  # what it is, for the report's grouping ("interface endpoint", "KMS key", ...)
    deployed: bool = False  # created by the deploy function after the first approval
    #: what lowering it would save and how: (knob label, monthly saving)
    savings: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Job:
    """One SageMaker job step of a pipeline definition (processing, training, transform)."""

    stack: str
    pipeline: str
    step: str
    kind: str  # processing | training | transform
    instance_type: str
    instance_count: int
    max_runtime_seconds: int | None


#: Types that cost nothing at rest, with the reason printed beside them.
FREE_TYPES: dict[str, str] = {
    "AWS::EC2::VPC": "no charge",
    "AWS::EC2::Subnet": "no charge",
    "AWS::EC2::RouteTable": "no charge",
    "AWS::EC2::Route": "no charge",
    "AWS::EC2::SubnetRouteTableAssociation": "no charge",
    "AWS::EC2::SecurityGroup": "no charge",
    "AWS::EC2::SecurityGroupIngress": "no charge",
    "AWS::EC2::SecurityGroupEgress": "no charge",
    "AWS::EC2::NetworkAcl": "no charge",
    "AWS::EC2::NetworkAclEntry": "no charge",
    "AWS::EC2::SubnetNetworkAclAssociation": "no charge",
    "AWS::EC2::InternetGateway": "no charge",
    "AWS::EC2::VPCGatewayAttachment": "no charge",
    "AWS::KMS::Alias": "no charge",
    "AWS::S3::BucketPolicy": "no charge",
    "AWS::SQS::QueuePolicy": "no charge",
    "AWS::SNS::TopicPolicy": "no charge",
    "AWS::Lambda::Permission": "no charge",
    "AWS::Lambda::EventInvokeConfig": "no charge",
    "AWS::Lambda::EventSourceMapping": "no charge (the function's invocations are Lambda usage)",
    "AWS::Glue::Database": "Data Catalog: first million objects free",
    "AWS::Glue::Table": "Data Catalog: first million objects free",
    "AWS::Events::Rule": "AWS service events are free",
    "AWS::Events::EventBus": "no charge at rest (custom events per million)",
    "AWS::Scheduler::Schedule": "14 million invocations/month free",
    "AWS::Logs::LogGroup": "usage: $ per GB ingested and stored (the writers' lines)",
    "AWS::Lambda::Function": "per request and GB-second: $0 at rest",
    "AWS::SQS::Queue": "per request (first million free): $0 at rest",
    "AWS::SNS::Topic": "per request / delivery: $0 at rest",
    "AWS::SNS::Subscription": "per delivery: $0 at rest",
    "AWS::StepFunctions::StateMachine": "per state transition (4,000/month free): $0 at rest",
    "AWS::CodeBuild::Project": "per build minute: $0 at rest",
    "AWS::SageMaker::Pipeline": "orchestration free; its jobs are priced per run",
    "AWS::SageMaker::ModelPackageGroup": "no charge",
    "AWS::SageMaker::Model": "no charge (billed when an endpoint or job runs it)",
    "AWS::SageMaker::EndpointConfig": "no charge until an endpoint runs it",
    "AWS::IAM::OIDCProvider": "no charge",
    "AWS::CDK::Metadata": "no charge",
    "AWS::CloudFormation::CustomResource": "runs at deploy time only",
}


def price_template(stack: str, template: Mapping[str, Any], prices: PriceTable, assume: Assumptions) -> list[Line]:
    """Every resource of ``template`` priced (or listed as free / not priced), plus the deployed endpoint."""
    resources: Mapping[str, Any] = template.get("Resources", {})
    lines: list[Line] = []
    for lid, resource in resources.items():
        lines.extend(_price(stack, lid, resource, resources, prices, assume))
    return lines


def _price(
    stack: str,
    lid: str,
    resource: Mapping[str, Any],
    resources: Mapping[str, Any],
    prices: PriceTable,
    assume: Assumptions,
) -> Iterator[Line]:
    kind = str(resource.get("Type", ""))
    props: Mapping[str, Any] = resource.get("Properties") or {}
    hours = prices.hours_per_month

    def line(status: str, monthly: float, detail: str, item: str = "", **kw: Any) -> Line:
        return Line(stack, lid, kind, status, round(monthly, 6), detail, item or kind.split("::")[-1], **kw)

    if kind == "AWS::KMS::Key" or kind == "AWS::KMS::ReplicaKey":
        p = prices["kms_key_month"]
        yield line(PRICED, p, f"1 key x ${p:g}/month", "KMS key")
    elif kind == "AWS::EC2::VPCEndpoint":
        endpoint_type = props.get("VpcEndpointType", "Gateway")
        if endpoint_type == "Gateway":
            yield line(FREE, 0.0, "gateway endpoint: no charge", "gateway endpoint")
        elif endpoint_type == "Interface":
            azs = _endpoint_azs(props, resources)
            p = prices["vpc_interface_endpoint_az_hour"]
            monthly = azs * hours * p
            saving: list[tuple[str, float]] = [("drop interface endpoints (sandbox without jobs)", monthly)]
            if azs > 1:
                saving.append(("interface endpoints in one AZ (gives up AZ redundancy)", (azs - 1) * hours * p))
            yield line(
                PRICED,
                monthly,
                f"{_service(props)}: {azs} AZ x {hours:g} h x ${p:g} (+ ${prices['vpc_interface_endpoint_gb']:g}/GB)",
                "interface endpoint",
                savings=tuple(saving),
            )
        else:
            yield line(NOT_PRICED, 0.0, f"{endpoint_type} endpoint: not in the price table")
    elif kind == "AWS::EC2::NatGateway":
        p = prices["nat_gateway_hour"]
        yield line(
            PRICED,
            hours * p,
            f"1 x {hours:g} h x ${p:g} (+ ${prices['nat_gateway_gb']:g}/GB)",
            "NAT gateway",
            savings=(("one NAT gateway instead of one per AZ", hours * p),),
        )
    elif kind == "AWS::EC2::EIP":
        p = prices["public_ipv4_hour"]
        yield line(PRICED, hours * p, f"public IPv4: {hours:g} h x ${p:g}", "public IPv4")
    elif kind == "AWS::CloudWatch::Alarm":
        metrics, high = _alarm_metrics(props)
        p = prices["cloudwatch_alarm_high_resolution_month" if high else "cloudwatch_alarm_metric_month"]
        label = "high-resolution " if high else ""
        yield line(PRICED, metrics * p, f"{metrics} {label}alarm metric(s) x ${p:g}/month", "alarm")
    elif kind == "AWS::CloudWatch::CompositeAlarm":
        p = prices["cloudwatch_composite_alarm_month"]
        yield line(PRICED, p, f"composite alarm x ${p:g}/month", "composite alarm")
    elif kind == "AWS::CloudWatch::Dashboard":
        p = prices["cloudwatch_dashboard_month"]
        yield line(PRICED, p, f"1 dashboard x ${p:g}/month", "dashboard")
    elif kind == "AWS::Budgets::Budget":
        p = prices["budget_day"] * hours / 24
        yield line(PRICED, p, f"{hours / 24:g} days x ${prices['budget_day']:g}/day", "budget")
    elif kind == "AWS::SecretsManager::Secret":
        p = prices["secretsmanager_secret_month"]
        yield line(PRICED, p, f"1 secret x ${p:g}/month", "secret")
    elif kind == "AWS::SSM::Parameter":
        if props.get("Tier") == "Advanced":
            p = prices["ssm_advanced_parameter_month"]
            yield line(PRICED, p, f"advanced parameter x ${p:g}/month", "SSM parameter")
        else:
            yield line(FREE, 0.0, "standard parameter: no charge", "SSM parameter")
    elif kind == "AWS::CodePipeline::Pipeline":
        if props.get("PipelineType") == "V2":
            yield line(FREE, 0.0, "V2: per action minute (100 min/month free): $0 at rest", "CodePipeline V2")
        else:
            p = prices["codepipeline_v1_pipeline_month"]
            yield line(PRICED, p, f"V1 active pipeline x ${p:g}/month", "CodePipeline V1")
    elif kind == "AWS::CloudTrail::Trail":
        if _has_data_events(props):
            p = prices["cloudtrail_data_events_100k"]
            events = assume.trail_data_events_per_month
            yield line(
                ASSUMED,
                events / 100_000 * p,
                f"{events:,.0f} data events/month (assumed) x ${p:g}/100k; management events: first copy free",
                "trail data events",
            )
        else:
            yield line(FREE, 0.0, "management events only: first copy free", "trail")
    elif kind == "AWS::EC2::FlowLog":
        if props.get("LogDestinationType", "cloud-watch-logs") == "cloud-watch-logs":
            p = prices["cloudwatch_logs_ingest_gb"]
            gb = assume.flow_log_gb_per_month
            yield line(ASSUMED, gb * p, f"{gb:g} GB/month ingested (assumed) x ${p:g}/GB", "flow logs")
        else:
            yield line(NOT_PRICED, 0.0, f"flow logs to {props.get('LogDestinationType')}: not in the price table")
    elif kind == "AWS::S3::Bucket":
        p = prices["s3_standard_gb_month"]
        gb = assume.s3_gb_per_bucket
        yield line(ASSUMED, gb * p, f"{gb:g} GB stored (assumed) x ${p:g}/GB-month", "S3 storage")
    elif kind in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"):
        if props.get("BillingMode") == "PAY_PER_REQUEST":
            yield line(FREE, 0.0, "on demand: per request; storage within the 25 GB free tier: $0 at rest", "DynamoDB")
        else:
            yield line(NOT_PRICED, 0.0, "provisioned capacity: not in the price table", "DynamoDB")
    elif kind in ("AWS::Lambda::Version", "AWS::Lambda::Alias"):
        if props.get("ProvisionedConcurrencyConfig"):
            yield line(NOT_PRICED, 0.0, "provisioned concurrency: not in the price table", "Lambda")
        else:
            yield line(FREE, 0.0, "no charge", "Lambda")
    elif kind == "AWS::SageMaker::Endpoint":
        yield from _endpoint(line, props, resources, prices)
    elif kind in FREE_TYPES:
        yield line(FREE, 0.0, FREE_TYPES[kind])
        if kind == "AWS::Lambda::Function":
            yield from _deployed_endpoint(stack, lid, props, prices)
    elif kind.startswith("AWS::IAM::"):
        yield line(FREE, 0.0, "IAM: no charge")
    elif kind.startswith("Custom::"):
        yield line(FREE, 0.0, "custom resource: runs at deploy time only (its function is listed separately)")
    else:
        yield line(NOT_PRICED, 0.0, "type not in the cost model")


def _endpoint(line: Any, props: Mapping[str, Any], resources: Mapping[str, Any], prices: PriceTable) -> Iterator[Line]:
    """A SageMaker endpoint, priced from its EndpointConfig's production variants."""
    ref = props.get("EndpointConfigName")
    config_lid = ref.get("Ref") if isinstance(ref, dict) else None
    if isinstance(ref, dict) and "Fn::GetAtt" in ref:
        config_lid = ref["Fn::GetAtt"][0]
    config = resources.get(config_lid) if isinstance(config_lid, str) else None
    if not config or config.get("Type") != "AWS::SageMaker::EndpointConfig":
        yield line(NOT_PRICED, 0.0, "its EndpointConfig is not in this template", "endpoint")
        return
    for variant in config.get("Properties", {}).get("ProductionVariants", []):
        yield _variant(line, variant, prices)


def _variant(line: Any, variant: Mapping[str, Any], prices: PriceTable, *, deployed: bool = False) -> Line:
    name = variant.get("VariantName", "variant")
    if "ServerlessConfig" in variant:
        if (variant["ServerlessConfig"] or {}).get("ProvisionedConcurrency"):
            return line(
                NOT_PRICED, 0.0, f"{name}: serverless provisioned concurrency not in the price table", "endpoint"
            )
        return line(FREE, 0.0, f"{name}: serverless, per request: $0 at rest", "serverless endpoint", deployed=deployed)
    instance_type = str(variant.get("InstanceType", ""))
    count = int(variant.get("InitialInstanceCount", 1))
    hourly = prices.instance("sagemaker_hosting_hour", instance_type)
    if hourly is None:
        return line(NOT_PRICED, 0.0, f"{name}: instance type {instance_type!r} not in the price table", "endpoint")
    hours = prices.hours_per_month
    monthly = count * hours * hourly
    return line(
        PRICED,
        monthly,
        f"{name}: {count} x {instance_type} x {hours:g} h x ${hourly:g}",
        "real-time endpoint",
        deployed=deployed,
        savings=(("serverless endpoint instead of real-time (low traffic)", monthly),),
    )


def _deployed_endpoint(stack: str, lid: str, props: Mapping[str, Any], prices: PriceTable) -> Iterator[Line]:
    """The endpoint a team's deploy function creates after the first approval (not in any template)."""
    env = (props.get("Environment") or {}).get("Variables") or {}
    target = env.get("DEPLOY_TARGET")
    if not isinstance(target, str) or "INSTANCE_TYPE" not in env:
        return
    kind = "AWS::SageMaker::Endpoint"

    def line(status: str, monthly: float, detail: str, item: str = "", **kw: Any) -> Line:
        return Line(stack, f"{lid} (deploys)", kind, status, round(monthly, 6), detail, item, **kw)

    if target == "realtime":
        variant = {
            "VariantName": "after first approval",
            "InstanceType": env["INSTANCE_TYPE"],
            "InitialInstanceCount": int(env.get("MIN_INSTANCES", 1)),
        }
        yield _variant(line, variant, prices, deployed=True)
    elif target == "serverless":
        yield _variant(line, {"VariantName": "after first approval", "ServerlessConfig": {}}, prices, deployed=True)
    else:
        yield line(FREE, 0.0, f"{target}: jobs only, no endpoint at rest", "batch target", deployed=True)


def _endpoint_azs(props: Mapping[str, Any], resources: Mapping[str, Any]) -> int:
    """The endpoint's AZs: one network interface per subnet (each in its own AZ), else the template's AZs."""
    subnets = props.get("SubnetIds")
    if isinstance(subnets, list) and subnets:
        return len(subnets)
    zones = {
        json.dumps(r.get("Properties", {}).get("AvailabilityZone"), sort_keys=True)
        for r in resources.values()
        if r.get("Type") == "AWS::EC2::Subnet"
    }
    return max(len(zones), 1)


def _service(props: Mapping[str, Any]) -> str:
    text = _text(props.get("ServiceName"))  # com.amazonaws.<region>.<service>
    return text.split(".", 3)[-1] if text.count(".") >= 3 else text


def _alarm_metrics(props: Mapping[str, Any]) -> tuple[int, bool]:
    """(billed metrics, high resolution) of an alarm: one per metric it reads; an anomaly band bills 3."""
    metrics = props.get("Metrics")
    if not metrics:
        period = props.get("Period")
        return 1, isinstance(period, int) and period < 60
    stats = [m for m in metrics if "MetricStat" in m]
    bands = sum("ANOMALY_DETECTION_BAND" in str(m.get("Expression", "")) for m in metrics)
    high = any(int(m["MetricStat"].get("Period", 60)) < 60 for m in stats)
    return max(len(stats) + 2 * bands, 1), high


def _has_data_events(props: Mapping[str, Any]) -> bool:
    if any(s.get("DataResources") for s in props.get("EventSelectors") or []):
        return True
    for selector in props.get("AdvancedEventSelectors") or []:
        for f in selector.get("FieldSelectors", []):
            if f.get("Field") == "eventCategory" and "Data" in (f.get("Equals") or []):
                return True
    return False


def _text(value: Any) -> str:
    """A CloudFormation string with its intrinsics flattened (``Fn::Join``); other tokens become ``TOKEN``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return str(sep).join(_text(p) for p in parts)
    return "TOKEN"


# -- pipelines --------------------------------------------------------------------------------------------------

_RESOURCES = {"Processing": "processing", "Training": "training", "Transform": "transform"}


def pipeline_jobs(stack: str, template: Mapping[str, Any]) -> list[Job]:
    """Every job step of every SageMaker pipeline in ``template`` (condition branches included), with its
    instance type (parameter defaults resolved), count and ``MaxRuntimeInSeconds``."""
    jobs: list[Job] = []
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::SageMaker::Pipeline":
            continue
        props = resource.get("Properties", {})
        body = props.get("PipelineDefinition", {}).get("PipelineDefinitionBody")
        if body is None:
            continue
        definition = json.loads(_text(body))
        defaults = {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])}
        name = _text(props.get("PipelineName", ""))
        for step in _walk(definition.get("Steps", [])):
            kind = _RESOURCES.get(step.get("Type", ""))
            if kind is None:
                continue
            args = step.get("Arguments", {})
            config = (
                args.get("ProcessingResources", {}).get("ClusterConfig")
                if kind == "processing"
                else args.get("ResourceConfig")
                if kind == "training"
                else args.get("TransformResources")
            ) or {}
            max_runtime = (args.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
            jobs.append(
                Job(
                    stack=stack,
                    pipeline=name,
                    step=str(step.get("Name")),
                    kind=kind,
                    instance_type=str(_resolve(config.get("InstanceType"), defaults)),
                    instance_count=int(_resolve(config.get("InstanceCount", 1), defaults)),
                    max_runtime_seconds=int(max_runtime) if isinstance(max_runtime, int) else None,
                )
            )
    return jobs


def _walk(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for step in steps:
        yield step
        args = step.get("Arguments", {})
        if step.get("Type") == "Condition":
            yield from _walk(args.get("IfSteps", []))
            yield from _walk(args.get("ElseSteps", []))


def _resolve(value: Any, defaults: Mapping[str, Any]) -> Any:
    if isinstance(value, dict) and "Get" in value and str(value["Get"]).startswith("Parameters."):
        return defaults.get(str(value["Get"]).split(".", 1)[1])
    return value


@dataclass(frozen=True)
class RunCost:
    """What ``runs`` executions of one pipeline cost: at the assumed minutes and at every step's MaxRuntime."""

    stack: str
    pipeline: str
    jobs: list[Job]
    assumed: float
    upper_bound: float | None  # None: a step without MaxRuntime (transform)
    not_priced: list[str] = field(default_factory=list)


def run_cost(stack: str, template: Mapping[str, Any], prices: PriceTable, assume: Assumptions) -> list[RunCost]:
    """Cost of ``assume.runs`` runs of each pipeline of ``template`` (jobs only; orchestration is free)."""
    by_pipeline: dict[str, list[Job]] = {}
    for job in pipeline_jobs(stack, template):
        by_pipeline.setdefault(job.pipeline, []).append(job)
    out = []
    for pipeline, jobs in by_pipeline.items():
        assumed, upper, missing = 0.0, 0.0, []
        bounded = True
        for job in jobs:
            hourly = prices.instance(f"sagemaker_{job.kind}_hour", job.instance_type)
            if hourly is None:
                missing.append(f"{job.step}: {job.kind} {job.instance_type} not in the price table")
                continue
            per_hour = hourly * job.instance_count * assume.runs
            assumed += per_hour * assume.minutes_per_step / 60
            if job.max_runtime_seconds is None:
                bounded = False
            else:
                upper += per_hour * job.max_runtime_seconds / 3600
        out.append(RunCost(stack, pipeline, jobs, round(assumed, 6), round(upper, 6) if bounded else None, missing))
    return out
