"""Where the templates come from: a cloud assembly on disk (``cdk.out``) or an in-process synth.

The in-process synth is :func:`flywheel.access_report.synthesize` (the one the access and security reports
use; no AWS call, validation off), plus the toolchain stack when every environment is priced.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flywheel.cost.report import TOOLCHAIN_STACK, EnvTemplates

_ENV_OF_STACK = re.compile(r"^Flywheel-(?P<env>[A-Za-z0-9]+)-")


class AssemblyError(ValueError):
    """A ``--cdk-out`` directory that is not a readable cloud assembly."""


def read_assembly(directory: Path) -> tuple[list[EnvTemplates], EnvTemplates | None]:
    """Every stack of a synthesized cloud assembly (nested stage assemblies included), grouped by environment
    (``Flywheel-<env>-...``), and the toolchain stack when present."""
    if not (directory / "manifest.json").is_file():
        raise AssemblyError(
            f"{directory} is not a cloud assembly (no manifest.json): run `make synth` (cdk synth -c env=all) "
            "or omit --cdk-out to synthesize in-process"
        )
    stacks: dict[str, tuple[str, dict[str, Any]]] = {}
    _collect(directory, stacks, seen=set())
    envs: dict[str, dict[str, dict[str, Any]]] = {}
    regions: dict[str, str] = {}
    toolchain = None
    for name, (region, template) in sorted(stacks.items()):
        if name == TOOLCHAIN_STACK:
            toolchain = EnvTemplates("toolchain", region, {name: template})
            continue
        match = _ENV_OF_STACK.match(name)
        if match is None:
            continue  # not a Flywheel stack
        env = match.group("env")
        envs.setdefault(env, {})[name] = template
        regions.setdefault(env, region)
    if not envs and toolchain is None:
        raise AssemblyError(f"{directory} holds no Flywheel stacks (Flywheel-<env>-...)")
    return [EnvTemplates(env, regions[env], templates) for env, templates in envs.items()], toolchain


def _collect(directory: Path, out: dict[str, tuple[str, dict[str, Any]]], seen: set[Path]) -> None:
    real = directory.resolve()
    if real in seen:
        return
    seen.add(real)
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AssemblyError(f"{directory / 'manifest.json'} is unreadable: {exc}") from None
    for artifact_id, artifact in (manifest.get("artifacts") or {}).items():
        props = artifact.get("properties") or {}
        if artifact.get("type") == "aws:cloudformation:stack":
            path = directory / str(props.get("templateFile", ""))
            try:
                template = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise AssemblyError(f"stack {artifact_id}: template {path} is unreadable: {exc}") from None
            region = str(artifact.get("environment", "")).rsplit("/", 1)[-1]
            out[str(props.get("stackName") or artifact_id)] = (region, template)
        elif artifact.get("type") == "cdk:cloud-assembly":
            _collect(directory / str(props.get("directoryName", "")), out, seen)


def synthesize(env: str | None, config: Any) -> tuple[list[EnvTemplates], EnvTemplates | None]:
    """Synthesize in-process: ``env`` only, or every environment plus the toolchain (``env`` None)."""
    from aws_cdk.assertions import Template

    from flywheel.access_report import stage_templates, synthesize_with_toolchain
    from flywheel.access_report import synthesize as synth_stages

    names = [config.environment(env).name] if env else [e.name for e in config.environments]  # KeyError first
    if env is None:
        _, stages, tool = synthesize_with_toolchain(config)
    else:
        (_, stages), tool = synth_stages(config), None
    envs = []
    for name in names:
        t = stage_templates(stages[name])
        envs.append(EnvTemplates(name, t.region, t.templates))
    toolchain = None
    if tool is not None:
        toolchain = EnvTemplates("toolchain", tool.region, {tool.stack_name: Template.from_stack(tool).to_json()})
    return envs, toolchain
