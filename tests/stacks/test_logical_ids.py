"""Stateful resources keep their logical ids: a rename would replace (and empty) a bucket or key."""

from __future__ import annotations

from pathlib import Path

from tests.snapshots import assert_matches_snapshot

STATEFUL = (
    "AWS::S3::Bucket", "AWS::KMS::Key", "AWS::Logs::LogGroup", "AWS::CloudTrail::Trail",
    "AWS::Glue::Database", "AWS::EC2::VPC", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role",
    "AWS::SageMaker::ModelPackageGroup", "AWS::SageMaker::Pipeline", "AWS::DynamoDB::Table", "AWS::SQS::Queue",
)  # fmt: skip


def test_stateful_logical_ids_are_pinned(stages):
    actual = {}
    for name, stage in stages.items():
        for stack_name, template in stage.templates().items():
            ids = {kind: sorted(template.find_resources(kind)) for kind in STATEFUL}
            actual[f"{name}/{stack_name}"] = {k: v for k, v in ids.items() if v}
    assert_matches_snapshot(Path(__file__).with_name("stateful_logical_ids.json"), actual)
