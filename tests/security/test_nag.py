"""cdk-nag 3.x, five packs, every environment: zero unacknowledged findings; acknowledgments reviewed."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.nag import MIN_REASON, acknowledge, acknowledgments, findings
from tests.snapshots import assert_matches_snapshot


def test_no_unacknowledged_findings_in_any_environment(synthesized):
    app, stages = synthesized
    assert set(stages) == {"dev", "staging", "prod"}
    problems = findings(app)
    assert problems == [], "\n".join(f"{f.pack} {f.rule} {f.resource}: {f.description}" for f in problems)


def test_packs_do_find_problems_when_acknowledgments_are_missing():
    """Guard against a silently disabled pack: an unprotected bucket must be reported by every pack."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_s3 as s3

    app = App()
    s3.Bucket(Stack(app, "Weak"), "Open")
    packs_reporting = {f.pack for f in findings(app)}
    assert {"AwsSolutions", "HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321"} <= packs_reporting


def test_acknowledgments_match_reviewed_snapshot(dev):
    acks = acknowledgments(dev.stage)
    assert acks, "expected the platform's acknowledgments"
    assert_matches_snapshot(Path(__file__).with_name("nag_acknowledgments.json"), acks)


def test_every_acknowledgment_reason_is_substantial_and_granular(stages):
    for stage in stages.values():
        for ack in acknowledgments(stage.stage):
            assert len(ack["reason"]) >= MIN_REASON, ack
            if "IAM4" in ack["id"] or "IAM5" in ack["id"]:
                assert "[" in ack["id"], f"IAM4/IAM5 must be granular: {ack}"


def test_acknowledgments_sit_below_stack_level(stages):
    """Narrowest construct: never a whole stack or stage."""
    for stage in stages.values():
        for ack in acknowledgments(stage.stage):
            assert ack["path"].count("/") >= 2, ack


def test_acknowledge_refuses_vague_reason_and_coarse_iam_ids():
    from aws_cdk import App, Stack

    stack = Stack(App(), "S")
    with pytest.raises(ValueError, match="at least 20 characters"):
        acknowledge(stack, "AwsSolutions-S1", "trust me")
    with pytest.raises(ValueError, match="granular id"):
        acknowledge(stack, "AwsSolutions-IAM5", "a long enough reason that is not granular")
