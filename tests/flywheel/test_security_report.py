"""The security report attributes every nag finding and rule problem to its environment."""

from __future__ import annotations

from aws_cdk import App
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

from config.loader import load_config
from flywheel.security_report import print_reports, report_stage
from stacks import cdk_json_context
from stacks.stage import FlywheelStage


def _stage(app: App, name: str) -> FlywheelStage:
    config = load_config()
    return FlywheelStage(app, f"Flywheel-{name}", environment=config.environment(name), teams=())


def test_a_weakened_environment_fails_and_a_clean_one_passes() -> None:
    app = App(context=cdk_json_context())
    clean, weak = _stage(app, "staging"), _stage(app, "dev")
    s3.Bucket(weak.data_lake, "OpenBucket")  # no KMS, no logging, no TLS policy
    iam.Role(weak.data_lake, "LooseRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))

    weak_report, clean_report = report_stage(weak), report_stage(clean)

    assert weak_report.name == "dev" and not weak_report.passed
    assert any("OpenBucket" in f for f in weak_report.nag_findings)
    assert any("OpenBucket" in p for p in weak_report.rule_problems["buckets-use-distinct-customer-keys"])
    assert clean_report.passed and clean_report.nag_findings == []
    assert set(clean_report.stacks) == {"Security", "DataLake", "Audit"}
    assert clean_report.acknowledgments > 0
    assert print_reports([clean_report, weak_report]) is False
