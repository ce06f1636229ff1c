"""The committed price table is dated and region-specific, every entry names its source and provenance, the
model finds every price it needs in it, and a table that breaks the rules is refused with the fix."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from flywheel.cost.model import FREE_TYPES, Assumptions, price_template
from flywheel.cost.prices import PRICES_DIR, PriceError, load_prices, parse_prices

TABLES = sorted(PRICES_DIR.glob("*.yaml"))


def test_there_is_a_table_for_every_configured_region():
    from config.loader import load_config

    regions = {e.region for e in load_config().environments}
    assert regions <= {p.stem for p in TABLES}


@pytest.mark.parametrize("path", TABLES, ids=lambda p: p.stem)
def test_the_table_is_dated_and_every_entry_has_a_source(path: Path):
    table = load_prices(path.stem)
    assert table.region == path.stem
    assert isinstance(table.as_of, dt.date) and table.as_of <= dt.date.today()
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))["prices"]
    for key, entry in table.prices.items():
        assert entry.source.startswith("https://aws.amazon.com/") or entry.source.startswith(
            "https://docs.aws.amazon.com/"
        ), key
        assert entry.unit, key
        # verified entries say where they were read; unverified ones say where the figure came from
        assert entry.origin and (("from" in raw[key]) == entry.unverified), key
    assert table.free_tier_source


def test_every_price_the_model_uses_is_in_the_committed_table():
    """A template with every priced type, priced with the committed table: no PriceError, nothing missing."""
    priced = {
        "Key": {"Type": "AWS::KMS::Key"},
        "Ep": {"Type": "AWS::EC2::VPCEndpoint", "Properties": {"VpcEndpointType": "Interface", "SubnetIds": ["a"]}},
        "Nat": {"Type": "AWS::EC2::NatGateway"},
        "Ip": {"Type": "AWS::EC2::EIP"},
        "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"Period": 60}},
        "Fast": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"Period": 10}},
        "Composite": {"Type": "AWS::CloudWatch::CompositeAlarm"},
        "Board": {"Type": "AWS::CloudWatch::Dashboard"},
        "Budget": {"Type": "AWS::Budgets::Budget"},
        "Secret": {"Type": "AWS::SecretsManager::Secret"},
        "Param": {"Type": "AWS::SSM::Parameter", "Properties": {"Tier": "Advanced"}},
        "V1": {"Type": "AWS::CodePipeline::Pipeline"},
        "Trail": {"Type": "AWS::CloudTrail::Trail", "Properties": {"EventSelectors": [{"DataResources": [{}]}]}},
        "Flow": {"Type": "AWS::EC2::FlowLog"},
        "Bucket": {"Type": "AWS::S3::Bucket"},
    }
    free = {f"Free{i}": {"Type": t} for i, t in enumerate(FREE_TYPES)}
    lines = price_template("S", {"Resources": priced | free}, load_prices("eu-west-1"), Assumptions())
    assert [line.logical_id for line in lines if line.status == "not priced"] == []
    assert all(line.monthly > 0 for line in lines if line.logical_id in priced)
    assert all(line.monthly == 0 for line in lines if line.logical_id in free)


def _valid() -> dict:
    return {
        "region": "eu-west-1",
        "currency": "USD",
        "as_of": "2026-12-02",
        "hours_per_month": 730,
        "prices": {"kms_key_month": {"price": 1, "unit": "key", "source": "https://aws.amazon.com/kms/pricing/"}},
        "free_tier": {},
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("as_of"), "missing as_of"),
        (lambda d: d.update(as_of="last week"), "not a YYYY-MM-DD date"),
        (lambda d: d["prices"]["kms_key_month"].pop("source"), "has no source"),
        (lambda d: None, "needs `checked` or `unverified: true`"),
        (lambda d: d["prices"]["kms_key_month"].update(unverified=True), "needs `from`"),
        (lambda d: d["prices"]["kms_key_month"].update(checked="x", price=-1), "non-negative"),
    ],
)
def test_a_table_that_breaks_the_rules_is_refused(change, message):
    data = _valid()
    change(data)
    with pytest.raises(PriceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_prices(data)


def test_a_region_without_a_table_names_the_fix():
    with pytest.raises(
        PriceError, match=r"no price table for region 'ap-south-2'.*flywheel/cost/prices/ap-south-2.yaml"
    ):
        load_prices("ap-south-2")
