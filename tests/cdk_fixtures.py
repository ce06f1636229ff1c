"""Shared CDK fixtures: synthesize every configured environment once per test session."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from config.loader import load_config
from config.models import EnvironmentConfig
from flywheel.access_report import synthesize_with_toolchain
from stacks.stage import FlywheelStage
from stacks.toolchain_stack import TOOLCHAIN_STACK, ToolchainStack


@dataclass
class SynthesizedStage:
    """One environment's stage and the templates of its stacks."""

    environment: EnvironmentConfig
    stage: FlywheelStage
    security: Template
    data_lake: Template
    audit: Template | None
    teams: dict[str, Template]

    def templates(self) -> dict[str, Template]:
        """Every stack's template by stack id (Security, DataLake, Audit, Team-<name>)."""
        out = {"Security": self.security, "DataLake": self.data_lake}
        if self.audit is not None:
            out["Audit"] = self.audit
        out.update({f"Team-{name}": t for name, t in self.teams.items()})
        return out


def synthesize_all() -> tuple[App, dict[str, SynthesizedStage]]:
    """Build one App holding a stage per configured environment, with every configured team, and the
    toolchain that deploys those very stages (one synth for both: CDK synth is slow)."""
    app, built, _ = synthesize_with_toolchain(load_config())
    out = {}
    for name, stage in built.items():
        env = stage.environment
        out[name] = SynthesizedStage(
            environment=env,
            stage=stage,
            security=Template.from_stack(stage.security),
            data_lake=Template.from_stack(stage.data_lake),
            audit=Template.from_stack(stage.audit) if stage.audit else None,
            teams={name: Template.from_stack(stack) for name, stack in stage.teams.items()},
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


@dataclass
class SynthesizedToolchain:
    """The toolchain stack and its template, and each stage's ToolchainAccess template (by environment)."""

    stack: ToolchainStack
    template: Template
    access: dict[str, Template]

    def templates(self) -> dict[str, dict]:
        """``{Toolchain, ToolchainAccess-<env>: template JSON}`` (what the policy rules take)."""
        out = {"Toolchain": self.template.to_json()}
        out.update({f"ToolchainAccess-{env}": t.to_json() for env, t in self.access.items()})
        return out


@pytest.fixture(scope="session")
def toolchain(synthesized: tuple[App, dict[str, SynthesizedStage]]) -> SynthesizedToolchain:
    app, _ = synthesized
    stack = app.node.find_child(TOOLCHAIN_STACK)
    assert isinstance(stack, ToolchainStack)
    access = {
        env: Template.from_stack(stage.node.find_child("ToolchainAccess"))  # type: ignore[arg-type]
        for env, stage in stack.stages.items()
        if stage.node.try_find_child("ToolchainAccess") is not None
    }
    return SynthesizedToolchain(stack=stack, template=Template.from_stack(stack), access=access)
