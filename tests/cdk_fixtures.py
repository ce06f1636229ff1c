"""Shared CDK fixtures: synthesize every configured environment once per test session."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from config.loader import load_environments
from config.models import EnvironmentConfig
from stacks import cdk_json_context
from stacks.stage import FlywheelStage


@dataclass
class SynthesizedStage:
    """One environment's stage and the templates of its stacks."""

    environment: EnvironmentConfig
    stage: FlywheelStage
    security: Template
    data_lake: Template
    audit: Template | None


def synthesize_all() -> tuple[App, dict[str, SynthesizedStage]]:
    """Build one App holding a stage per configured environment (teams are added by their own issue)."""
    app = App(context=cdk_json_context())
    out = {}
    for env in load_environments():
        stage = FlywheelStage(app, f"Flywheel-{env.name}", environment=env, teams=())
        out[env.name] = SynthesizedStage(
            environment=env,
            stage=stage,
            security=Template.from_stack(stage.security),
            data_lake=Template.from_stack(stage.data_lake),
            audit=Template.from_stack(stage.audit) if stage.audit else None,
        )
    return app, out


@pytest.fixture(scope="session")
def synthesized() -> tuple[App, dict[str, SynthesizedStage]]:
    return synthesize_all()


@pytest.fixture(scope="session")
def stages(synthesized: tuple[App, dict[str, SynthesizedStage]]) -> dict[str, SynthesizedStage]:
    return synthesized[1]


@pytest.fixture(scope="session")
def dev(stages: dict[str, SynthesizedStage]) -> SynthesizedStage:
    return stages["dev"]


@pytest.fixture(scope="session")
def prod(stages: dict[str, SynthesizedStage]) -> SynthesizedStage:
    return stages["prod"]
