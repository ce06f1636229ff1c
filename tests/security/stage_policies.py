"""A synthesized stage as :class:`tests.security.iam_eval.Templates` (deployed stack names as keys)."""

from __future__ import annotations

from tests.cdk_fixtures import SynthesizedStage
from tests.security.iam_eval import Templates

#: ``id(stage)`` → (stage, its templates). The stage is held so its id is never reused by another
#: (the mutation suite builds short-lived weakened stages).
_CACHE: dict[int, tuple[SynthesizedStage, Templates]] = {}


def templates_of(stage: SynthesizedStage) -> Templates:
    """Every stack template of ``stage`` keyed by its deployed name (``Flywheel-dev-Security``)."""
    key = id(stage)
    if key not in _CACHE or _CACHE[key][0] is not stage:
        stacks = {"Security": stage.stage.security, "DataLake": stage.stage.data_lake}
        if stage.stage.audit is not None:
            stacks["Audit"] = stage.stage.audit
        stacks.update({f"Team-{name}": s for name, s in stage.stage.teams.items()})
        templates = stage.templates()
        _CACHE[key] = (
            stage,
            Templates(
                {stack.stack_name: templates[short].to_json() for short, stack in stacks.items()},
                account=stage.environment.account,
                region=stage.environment.region,
            ),
        )
    return _CACHE[key][1]


def stack_name(stage: SynthesizedStage, short: str) -> str:
    """``Security`` → ``Flywheel-dev-Security``."""
    return f"Flywheel-{stage.environment.name}-{short}"
