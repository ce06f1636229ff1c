"""Load and validate ``config/`` once, at the edge, with errors that name the file, field and problem."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from config.models import TEMPLATE_DIRS, EnvironmentConfig, FlywheelConfig, TeamConfig, ToolchainConfig
from pipelines import load_template

CONFIG_DIR = Path(__file__).resolve().parent


class ConfigError(ValueError):
    """Invalid configuration; the message names the file, the field and the problem."""


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _format(path: Path, root: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = _location((root, *err["loc"])) if err["loc"] else root
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {where}: {msg}")
    return "\n".join(lines)


def _read_yaml(path: Path, key: str) -> list[Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise ConfigError(f"{path}: expected a top-level '{key}:' list")
    items: list[Any] = data[key]
    return items


def _load_contract(config_dir: Path, team_index: int, ref: Any) -> tuple[Path, Any]:
    """``(path, parsed JSON)`` of a team's contract file (``ref`` relative to ``config_dir``)."""
    if not isinstance(ref, str):
        raise ConfigError(
            f"{config_dir / 'teams.yaml'}: teams[{team_index}].contract: expected a path such as contracts/<team>.json"
        )
    path = (config_dir / ref).resolve()
    if config_dir.resolve() not in path.parents:
        raise ConfigError(f"{config_dir / 'teams.yaml'}: teams[{team_index}].contract: {ref!r} is outside config/")
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{config_dir / 'teams.yaml'}: teams[{team_index}].contract: {path} not found") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc


def _refuse_duplicates(path: Path, kind: str, names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{path}: duplicate {kind} name(s): {', '.join(dupes)}")


def load_environments(config_dir: Path = CONFIG_DIR) -> tuple[EnvironmentConfig, ...]:
    """The environments of ``environments.yaml``, validated."""
    path = config_dir / "environments.yaml"
    raw = _read_yaml(path, "environments")
    try:
        envs = TypeAdapter(tuple[EnvironmentConfig, ...]).validate_python(raw)
    except ValidationError as exc:
        raise ConfigError(_format(path, "environments", exc)) from exc
    _refuse_duplicates(path, "environment", [e.name for e in envs])
    return envs


def _check_contract_file(path: Path, contract: Any, templates: Any, template_dirs: tuple[Path, ...]) -> None:
    """Validate the contract file with the contract model of each of the team's templates (errors name
    the file); unknown templates are left to the team's own validation."""
    names = templates if isinstance(templates, list | tuple) else TeamConfig.model_fields["pipelines"].default
    for name in names:
        try:
            model = load_template(str(name), search_path=template_dirs).contract_model
        except KeyError:
            continue
        if model is None:
            continue
        try:
            TypeAdapter(model).validate_python(contract)
        except ValidationError as exc:
            raise ConfigError(_format(path, "contract", exc)) from exc


def load_teams(config_dir: Path = CONFIG_DIR, *, template_dirs: Iterable[Path] = ()) -> tuple[TeamConfig, ...]:
    """The teams of ``teams.yaml`` with their data contracts, validated.

    ``template_dirs``: extra directories searched for pipeline templates (after ``pipelines/``).
    """
    path = config_dir / "teams.yaml"
    dirs = tuple(Path(d) for d in template_dirs)
    raw = _read_yaml(path, "teams")
    teams = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: teams[{i}]: expected a mapping")
        values = dict(entry)
        if "contract" in entry:  # optional: only templates that read a data contract require one
            contract_path, values["contract"] = _load_contract(config_dir, i, entry["contract"])
            _check_contract_file(contract_path, values["contract"], entry.get("pipelines"), dirs)
        try:
            teams.append(TeamConfig.model_validate(values, context={TEMPLATE_DIRS: dirs}))
        except ValidationError as exc:
            raise ConfigError(_format(path, f"teams[{i}]", exc)) from exc
    _refuse_duplicates(path, "team", [t.name for t in teams])
    return tuple(teams)


def load_config(config_dir: Path = CONFIG_DIR, *, template_dirs: Iterable[Path] = ()) -> FlywheelConfig:
    """Environments and teams of ``config_dir``; raises ConfigError naming file, field and problem.

    ``template_dirs``: extra directories searched for pipeline templates (after ``pipelines/``).
    """
    config_dir = Path(config_dir)
    dirs = tuple(Path(d) for d in template_dirs)
    envs, teams = load_environments(config_dir), load_teams(config_dir, template_dirs=dirs)
    try:
        return FlywheelConfig.model_validate({"environments": envs, "teams": teams}, context={TEMPLATE_DIRS: dirs})
    except ValidationError as exc:
        raise ConfigError(_format(config_dir, "config", exc).replace(": config: ", ": ")) from exc


def sandbox_environment(account: str | None, region: str | None) -> EnvironmentConfig:
    """A personal environment from ``CDK_DEFAULT_ACCOUNT``/``CDK_DEFAULT_REGION`` (read by app.py only).

    One AZ, no trail (the account usually has one), data not retained: cheap to deploy and destroy.
    """
    if not account or not region:
        raise ConfigError(
            "environment 'sandbox' needs CDK_DEFAULT_ACCOUNT and CDK_DEFAULT_REGION (set by the CDK CLI "
            "from your AWS profile, e.g. `npx cdk deploy -c env=sandbox --profile me`)"
        )
    try:
        return EnvironmentConfig(
            name="sandbox", account=account, region=region, max_azs=1, trail=False, retain_data=False,
            log_retention_days=14,
        )  # fmt: skip
    except ValidationError as exc:
        raise ConfigError(_format(Path("CDK_DEFAULT_ACCOUNT/CDK_DEFAULT_REGION"), "sandbox", exc)) from exc


def load_toolchain(config_dir: Path = CONFIG_DIR, *, config: FlywheelConfig | None = None) -> ToolchainConfig:
    """The ``toolchain:`` section of ``toolchain.yaml``, validated and checked against the environments and
    teams of ``config`` (loaded from ``config_dir`` when not given); ConfigError naming file and field."""
    path = Path(config_dir) / "toolchain.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found (the toolchain needs it: see docs/toolchain.md)") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("toolchain"), dict):
        raise ConfigError(f"{path}: expected a top-level 'toolchain:' mapping")
    try:
        toolchain = ToolchainConfig.model_validate(data["toolchain"])
    except ValidationError as exc:
        raise ConfigError(_format(path, "toolchain", exc)) from exc
    config = config if config is not None else load_config(config_dir)
    try:
        toolchain.check_against(config.environments, config.teams)
    except ValueError as exc:
        raise ConfigError(f"{path}: toolchain.{exc}") from exc
    return toolchain
