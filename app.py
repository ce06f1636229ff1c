#!/usr/bin/env python3
"""The CDK entry point: the only place that reads CDK context and the process environment.

``-c target=stages`` (the default) builds stages: ``npx cdk synth -c env=dev`` (dev, staging, prod from
config/environments.yaml; ``sandbox`` from CDK_DEFAULT_ACCOUNT/CDK_DEFAULT_REGION); ``-c env=all``
synthesizes every configured environment. ``-c target=toolchain`` builds the CI/CD toolchain
(config/toolchain.yaml): the ``Flywheel-Toolchain`` stack, whose pipeline deploys the same stages.
"""

from __future__ import annotations

import os
import sys

from aws_cdk import App, Validations

from config.loader import ConfigError, load_config, load_toolchain, sandbox_environment
from config.models import EnvironmentConfig
from stacks.nag import packs
from stacks.stage import add_stages
from stacks.toolchain_stack import TOOLCHAIN_STACK, ToolchainStack, pinned_cdk_cli_version, toolchain_stages

TARGETS = ("stages", "toolchain")


def build_app(app: App) -> App:
    """Add the stage(s) selected by ``-c env`` (or the toolchain: ``-c target=toolchain``) to ``app`` and
    attach the security packs."""
    config = load_config()
    target = str(app.node.try_get_context("target") or "stages")
    if target not in TARGETS:
        raise ConfigError(f"unknown -c target={target!r}; use one of: {', '.join(TARGETS)}")
    selected = str(app.node.try_get_context("env") or "dev")
    if target == "toolchain":
        toolchain = load_toolchain(config=config)
        _pin_availability_zones(app, [config.environment(name) for name in toolchain.stages])
        ToolchainStack(
            app,
            TOOLCHAIN_STACK,
            toolchain=toolchain,
            environments=config.environments,
            teams=config.teams,
            cli_version=pinned_cdk_cli_version(),
            stages=toolchain_stages(app, toolchain, config.environments, config.teams),
        )
    elif selected == "sandbox":
        envs = [sandbox_environment(os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION"))]
    elif selected == "all":
        envs = list(config.environments)
    else:
        envs = [config.environment(selected)]
    if target == "stages":
        _pin_availability_zones(app, envs)
        add_stages(app, envs, config.teams)
    if str(app.node.try_get_context("nag") or "true").lower() != "false":
        Validations.of(app).add_plugins(*packs(app))
    return app


def _pin_availability_zones(app: App, environments: list[EnvironmentConfig]) -> None:
    """Answer CDK's availability-zone lookup of each environment with the AZs the network names explicitly
    (``stacks/components/network.py``): ``ec2.Vpc`` still reads ``Stack.availability_zones`` to check them,
    and without this the CLI would call AWS (or fail without credentials, as in the toolchain's synth step)."""
    for env in environments:
        key = f"availability-zones:account={env.account}:region={env.region}"
        if app.node.try_get_context(key) is None:
            app.node.set_context(key, [f"{env.region}{suffix}" for suffix in "abc"])


def main() -> int:
    try:
        app = build_app(App())
    except (ConfigError, KeyError) as exc:
        print(f"flywheel: configuration error:\n{exc}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
