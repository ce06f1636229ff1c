"""CDK stacks, the stage that composes them, and components/ (one construct per logical unit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cdk_json_context() -> dict[str, Any]:
    """The feature flags of cdk.json, for apps built outside the CDK CLI (tests, ``make demo``)."""
    return dict(json.loads((PROJECT_ROOT / "cdk.json").read_text(encoding="utf-8"))["context"])
