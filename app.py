#!/usr/bin/env python3
"""The CDK entry point: the only place that reads CDK context and the process environment.

``npx cdk synth -c env=dev`` (dev, staging, prod from config/environments.yaml; ``sandbox`` from
CDK_DEFAULT_ACCOUNT/CDK_DEFAULT_REGION). ``-c env=all`` synthesizes every configured environment.
"""

from __future__ import annotations

import os
import sys

from aws_cdk import App, Validations

from config.loader import ConfigError, load_config, sandbox_environment
from stacks.nag import packs
from stacks.stage import add_stages


def build_app(app: App) -> App:
    """Add the stage(s) selected by ``-c env`` to ``app`` and attach the security packs."""
    config = load_config()
    selected = str(app.node.try_get_context("env") or "dev")
    if selected == "sandbox":
        envs = [sandbox_environment(os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION"))]
    elif selected == "all":
        envs = list(config.environments)
    else:
        envs = [config.environment(selected)]
    add_stages(app, envs, config.teams)
    if str(app.node.try_get_context("nag") or "true").lower() != "false":
        Validations.of(app).add_plugins(*packs(app))
    return app


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
