"""The cost model on hand-built templates: known resources give the hand-computed figure, an unknown type is
listed as not priced, one more instance costs exactly the table's price, and pipeline runs are priced per job."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from flywheel.cost.model import ASSUMED, FREE, NOT_PRICED, PRICED, Assumptions, pipeline_jobs, price_template, run_cost
from flywheel.cost.prices import PriceTable, load_prices, parse_prices
from flywheel.cost.report import EnvTemplates, estimate

HOURS = 730


def _entry(price: float) -> dict[str, Any]:
    return {"price": price, "unit": "u", "source": "test", "checked": "hand-made"}


def _table(**overrides: float) -> PriceTable:
    """Round test prices, so the expected figures below are computed by hand."""
    flat = {
        "kms_key_month": 1.0,
        "vpc_interface_endpoint_az_hour": 0.01,
        "vpc_interface_endpoint_gb": 0.01,
        "nat_gateway_hour": 0.05,
        "nat_gateway_gb": 0.05,
        "public_ipv4_hour": 0.005,
        "cloudwatch_alarm_metric_month": 0.1,
        "cloudwatch_alarm_high_resolution_month": 0.3,
        "cloudwatch_composite_alarm_month": 0.5,
        "cloudwatch_dashboard_month": 3.0,
        "budget_day": 0.02,
        "secretsmanager_secret_month": 0.4,
        "ssm_advanced_parameter_month": 0.05,
        "codepipeline_v1_pipeline_month": 1.0,
        "cloudtrail_data_events_100k": 0.1,
        "cloudwatch_logs_ingest_gb": 0.5,
        "cloudwatch_logs_storage_gb_month": 0.03,
        "s3_standard_gb_month": 0.02,
    } | overrides
    prices: dict[str, Any] = {k: _entry(v) for k, v in flat.items()}
    for use in ("hosting", "training", "processing", "transform"):
        prices[f"sagemaker_{use}_hour"] = {
            "unit": "instance-hour",
            "source": "test",
            "checked": "hand-made",
            "by_instance": {"ml.m5.large": 0.1, "ml.m5.xlarge": 0.2},
        }
    return parse_prices(
        {
            "region": "eu-west-1",
            "currency": "USD",
            "as_of": "2026-12-02",
            "hours_per_month": HOURS,
            "prices": prices,
            "free_tier": {"cloudwatch_alarm_metrics": 10, "cloudwatch_dashboards": 3, "budgets": 2},
        }
    )


def _alarm(metrics: int = 1) -> dict[str, Any]:
    if metrics == 1:
        return {"Type": "AWS::CloudWatch::Alarm", "Properties": {"MetricName": "Errors", "Period": 300}}
    stats = [{"Id": f"m{i}", "MetricStat": {"Metric": {}, "Period": 300, "Stat": "Sum"}} for i in range(metrics)]
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {"Metrics": [*stats, {"Id": "e", "Expression": "m0/m1"}]}}


def _template(instances: int = 2) -> dict[str, Any]:
    """Known resources; each one's figure is written next to it (prices of :func:`_table`)."""
    return {
        "Resources": {
            "KeyA": {"Type": "AWS::KMS::Key", "Properties": {}},  # $1
            "KeyB": {"Type": "AWS::KMS::Key", "Properties": {}},  # $1
            "SubnetA": {"Type": "AWS::EC2::Subnet", "Properties": {"AvailabilityZone": "eu-west-1a"}},  # $0
            "SubnetB": {"Type": "AWS::EC2::Subnet", "Properties": {"AvailabilityZone": "eu-west-1b"}},  # $0
            "Sts": {  # 2 AZ x 730 h x $0.01 = $14.60
                "Type": "AWS::EC2::VPCEndpoint",
                "Properties": {
                    "VpcEndpointType": "Interface",
                    "ServiceName": "com.amazonaws.eu-west-1.sts",
                    "SubnetIds": [{"Ref": "SubnetA"}, {"Ref": "SubnetB"}],
                },
            },
            "S3": {"Type": "AWS::EC2::VPCEndpoint", "Properties": {"VpcEndpointType": "Gateway"}},  # $0
            "Nat": {"Type": "AWS::EC2::NatGateway", "Properties": {}},  # 730 h x $0.05 = $36.50
            "Board": {"Type": "AWS::CloudWatch::Dashboard", "Properties": {}},  # $3
            "One": _alarm(1),  # $0.10
            "Two": _alarm(2),  # 2 metrics: $0.20
            "Config": {  # $0 until an endpoint runs it
                "Type": "AWS::SageMaker::EndpointConfig",
                "Properties": {
                    "ProductionVariants": [
                        {"VariantName": "AllTraffic", "InstanceType": "ml.m5.large", "InitialInstanceCount": instances}
                    ]
                },
            },
            # instances x 730 h x $0.10 (2: $146)
            "Endpoint": {"Type": "AWS::SageMaker::Endpoint", "Properties": {"EndpointConfigName": {"Ref": "Config"}}},
            "ServerlessConfig": {
                "Type": "AWS::SageMaker::EndpointConfig",
                "Properties": {
                    "ProductionVariants": [{"VariantName": "A", "ServerlessConfig": {"MemorySizeInMB": 2048}}]
                },
            },
            "Serverless": {  # $0 at rest
                "Type": "AWS::SageMaker::Endpoint",
                "Properties": {"EndpointConfigName": {"Ref": "ServerlessConfig"}},
            },
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {}},  # $0
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},  # $0
            "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {"BillingMode": "PAY_PER_REQUEST"}},  # $0
            "Role": {"Type": "AWS::IAM::Role", "Properties": {}},  # $0
            "Pipeline": {"Type": "AWS::CodePipeline::Pipeline", "Properties": {"PipelineType": "V2"}},  # $0
        }
    }


HAND_COMPUTED = 1 + 1 + 2 * HOURS * 0.01 + HOURS * 0.05 + 3 + 0.1 + 0.2 + 2 * HOURS * 0.1  # = $202.40


def _total(lines: list[Any]) -> float:
    return round(sum(line.monthly for line in lines), 2)


def test_known_resources_give_the_hand_computed_figure():
    lines = price_template("Stack", _template(), _table(), Assumptions())
    assert _total(lines) == pytest.approx(202.40) == pytest.approx(HAND_COMPUTED)
    by_id = {line.logical_id: line for line in lines}
    assert by_id["Sts"].monthly == pytest.approx(14.60) and "2 AZ" in by_id["Sts"].detail
    assert by_id["Nat"].monthly == pytest.approx(36.50)
    assert by_id["Two"].monthly == pytest.approx(0.20)
    assert by_id["Endpoint"].monthly == pytest.approx(146.0) and by_id["Endpoint"].status == PRICED
    assert by_id["Serverless"].status == FREE and by_id["Serverless"].monthly == 0
    assert {by_id[k].status for k in ("Fn", "Queue", "Table", "Role", "Pipeline", "S3", "Config")} == {FREE}
    assert not [line for line in lines if line.status == NOT_PRICED]


def test_an_unknown_type_is_listed_as_not_priced_never_dropped():
    template = _template()
    template["Resources"]["Mystery"] = {"Type": "AWS::Mystery::Thing", "Properties": {}}
    template["Resources"]["Fixed"] = {"Type": "AWS::DynamoDB::Table", "Properties": {"BillingMode": "PROVISIONED"}}
    report = estimate([EnvTemplates("dev", "eu-west-1", {"Flywheel-dev-Team-a": template})], prices=_table())
    missing = {(line.logical_id, line.type) for line in report.not_priced()}
    assert missing == {("Mystery", "AWS::Mystery::Thing"), ("Fixed", "AWS::DynamoDB::Table")}
    # Every resource is accounted for: one line per resource (an endpoint: one per variant).
    lines = report.environments[0].teams["a"].lines
    assert {line.logical_id for line in lines} == set(template["Resources"])


def test_one_more_instance_costs_exactly_the_table_price():
    prices = load_prices("eu-west-1")  # the committed table
    two = _total(price_template("S", _template(instances=2), prices, Assumptions()))
    three = _total(price_template("S", _template(instances=3), prices, Assumptions()))
    hourly = prices.instance("sagemaker_hosting_hour", "ml.m5.large")
    assert hourly is not None
    assert three - two == pytest.approx(hourly * prices.hours_per_month, abs=0.005)


def test_endpoint_azs_come_from_the_template_subnets_when_not_listed():
    template = copy.deepcopy(_template())
    del template["Resources"]["Sts"]["Properties"]["SubnetIds"]
    template["Resources"]["SubnetC"] = {"Type": "AWS::EC2::Subnet", "Properties": {"AvailabilityZone": "eu-west-1c"}}
    (sts,) = [line for line in price_template("S", template, _table(), Assumptions()) if line.logical_id == "Sts"]
    assert sts.monthly == pytest.approx(3 * HOURS * 0.01)


def test_team_and_baseline_grouping_free_tier_and_goals():
    baseline = {"Resources": {"Key": {"Type": "AWS::KMS::Key"}, "Board": {"Type": "AWS::CloudWatch::Dashboard"}}}
    team = {"Resources": {"Key": {"Type": "AWS::KMS::Key"}, "Board": {"Type": "AWS::CloudWatch::Dashboard"}}}
    report = estimate(
        [EnvTemplates("dev", "eu-west-1", {"Flywheel-dev-Security": baseline, "Flywheel-dev-Team-x": team})],
        prices=_table(),
    )
    (env,) = report.environments
    assert env.teams["x"].idle == 4.0  # the team's full marginal cost
    # baseline: key $1 + dashboard $3, minus the account's free dashboards (2 used of 3): -$6
    assert env.baseline.idle == pytest.approx(1 + 3 - 6)
    assert env.idle == pytest.approx(2.0)
    goals = {goal: met for goal, met, _ in report.goals()}
    assert goals["≤ $10/month idle per extra dev team (x)"] is True
    assert [met for goal, met in goals.items() if goal.startswith("platform baseline")] == [None]  # dev only


def test_deployed_endpoint_of_the_deploy_function_is_priced_apart():
    fn = {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Environment": {
                "Variables": {"DEPLOY_TARGET": "realtime", "INSTANCE_TYPE": "ml.m5.xlarge", "MIN_INSTANCES": "2"}
            }
        },
    }
    report = estimate(
        [EnvTemplates("dev", "eu-west-1", {"Flywheel-dev-Team-x": {"Resources": {"Deploy": fn}}})], prices=_table()
    )
    team = report.environments[0].teams["x"]
    assert team.idle == 0 and team.deployed == pytest.approx(2 * HOURS * 0.2)
    serverless = copy.deepcopy(fn)
    serverless["Properties"]["Environment"]["Variables"]["DEPLOY_TARGET"] = "serverless"
    lines = price_template("S", {"Resources": {"Deploy": serverless}}, _table(), Assumptions())
    assert [(line.status, line.deployed) for line in lines] == [(FREE, False), (FREE, True)]


def test_usage_is_priced_from_the_assumptions():
    template = {
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket"},
            "Trail": {
                "Type": "AWS::CloudTrail::Trail",
                "Properties": {"EventSelectors": [{"DataResources": [{"Type": "AWS::S3::Object", "Values": ["x"]}]}]},
            },
        }
    }
    assume = Assumptions().with_overrides({"s3_gb_per_bucket": "100", "trail_data_events_per_month": "1000000"})
    lines = {line.logical_id: line for line in price_template("S", template, _table(), assume)}
    assert lines["Bucket"].status == ASSUMED and lines["Bucket"].monthly == pytest.approx(100 * 0.02)
    assert lines["Trail"].monthly == pytest.approx(10 * 0.1)
    with pytest.raises(ValueError, match="unknown assumption 'gb'"):
        Assumptions().with_overrides({"gb": "1"})
    with pytest.raises(ValueError, match="not a number"):
        Assumptions().with_overrides({"runs": "many"})


def _pipeline() -> dict[str, Any]:
    definition = {
        "Parameters": [{"Name": "ProcessingInstanceType", "Type": "String", "DefaultValue": "ml.m5.xlarge"}],
        "Steps": [
            {
                "Name": "Preprocess",
                "Type": "Processing",
                "Arguments": {
                    "ProcessingResources": {
                        "ClusterConfig": {
                            "InstanceCount": 2,
                            "InstanceType": {"Get": "Parameters.ProcessingInstanceType"},
                        }
                    },
                    "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
                },
            },
            {
                "Name": "Check",
                "Type": "Condition",
                "Arguments": {
                    "IfSteps": [
                        {
                            "Name": "Train",
                            "Type": "Training",
                            "Arguments": {
                                "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large"},
                                "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
                            },
                        }
                    ],
                    "ElseSteps": [{"Name": "Stop", "Type": "Fail", "Arguments": {}}],
                },
            },
        ],
    }
    text = json.dumps(definition)
    # As CDK renders it: a Fn::Join around tokens (the token's value does not matter to the model).
    head, tail = text.split('"Preprocess"', 1)
    body = {"Fn::Join": ["", [head, '"Pre', {"Ref": "AWS::Region"}, 'process"', tail]]}
    return {
        "Resources": {
            "P": {
                "Type": "AWS::SageMaker::Pipeline",
                "Properties": {"PipelineName": "p", "PipelineDefinition": {"PipelineDefinitionBody": body}},
            }
        }
    }


def test_pipeline_jobs_and_the_cost_per_1000_runs():
    jobs = pipeline_jobs("S", _pipeline())
    assert [(j.kind, j.instance_type, j.instance_count, j.max_runtime_seconds) for j in jobs] == [
        ("processing", "ml.m5.xlarge", 2, 3600),
        ("training", "ml.m5.large", 1, 7200),
    ]
    assume = Assumptions().with_overrides({"minutes_per_step": "15"})
    (run,) = run_cost("S", _pipeline(), _table(), assume)
    # 1,000 x (2 x $0.20 + 1 x $0.10) x 15/60 h = $125; upper bound: 1,000 x (2 x $0.20 x 1 h + $0.10 x 2 h) = $600
    assert run.assumed == pytest.approx(125.0)
    assert run.upper_bound == pytest.approx(600.0)
