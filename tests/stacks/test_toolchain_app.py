"""app.py selects stages or the toolchain by context (``-c target=``), and reports bad input as a config error."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App

import app as entry
from config.loader import ConfigError
from stacks import cdk_json_context
from stacks.toolchain_stack import TOOLCHAIN_STACK, ToolchainStack


def _app(**context: str) -> App:
    return App(context={**cdk_json_context(), "nag": "false", **context})


def test_target_toolchain_builds_the_toolchain_stack_in_its_account_and_no_loose_stages(monkeypatch):
    built = {}

    def stages(scope, toolchain, environments, teams):
        built["order"] = toolchain.stages
        return {}  # the stage build itself is covered by the session fixture (tests/cdk_fixtures.py)

    monkeypatch.setattr(entry, "toolchain_stages", stages)
    app = entry.build_app(_app(target="toolchain"))
    stack = app.node.find_child(TOOLCHAIN_STACK)
    assert isinstance(stack, ToolchainStack)
    assert (stack.account, stack.region) == ("444444444444", "eu-west-1")
    assert built["order"] == ("dev", "staging", "prod")
    assert [c.node.id for c in app.node.children if c.node.id.startswith("Flywheel-")] == [TOOLCHAIN_STACK]


def test_unknown_target_is_a_configuration_error():
    with pytest.raises(ConfigError, match=r"unknown -c target='pipeline'; use one of: stages, toolchain"):
        entry.build_app(_app(target="pipeline"))


def test_main_reports_a_bad_toolchain_config_without_a_traceback(monkeypatch, capsys):
    def broken(**_):
        raise ConfigError("config/toolchain.yaml: toolchain.account: '1' is not an AWS account id")

    monkeypatch.setattr(entry, "load_toolchain", broken)
    monkeypatch.setattr(entry, "App", lambda: _app(target="toolchain"))
    assert entry.main() == 2
    err = capsys.readouterr().err
    assert "flywheel: configuration error:" in err and "toolchain.account" in err and "Traceback" not in err


def test_availability_zones_are_answered_so_the_cli_makes_no_lookup(tmp_path):
    """Without the pinned context the VPC's AZ check leaves a lookup for the CLI (an AWS call, or an error
    without credentials: the toolchain's synth step has none for the target accounts)."""
    from aws_cdk import Environment, Stack
    from aws_cdk import aws_ec2 as ec2

    from config.loader import load_config

    def missing(pin: bool) -> list[str]:
        app = App(context=cdk_json_context(), outdir=str(tmp_path / str(pin)))
        env = load_config().environment("staging")
        if pin:
            entry._pin_availability_zones(app, [env])
        stack = Stack(app, "S", env=Environment(account=env.account, region=env.region))
        ec2.Vpc(stack, "Vpc", availability_zones=["eu-west-1a", "eu-west-1b"], nat_gateways=0, subnet_configuration=[])
        app.synth()
        manifest = json.loads((tmp_path / str(pin) / "manifest.json").read_text(encoding="utf-8"))
        return [m["key"] for m in manifest.get("missing", [])]

    assert missing(pin=False) == ["availability-zones:account=222222222222:region=eu-west-1"]
    assert missing(pin=True) == []
