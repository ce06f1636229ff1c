"""Reviewed snapshots: a change to one shows up in the diff. ``FLYWHEEL_UPDATE_SNAPSHOTS=1`` rewrites them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def assert_matches_snapshot(path: Path, actual: Any) -> None:
    """Compare ``actual`` with the JSON at ``path`` (write it when updating is requested)."""
    text = json.dumps(actual, indent=2, sort_keys=True) + "\n"
    if os.environ.get("FLYWHEEL_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with FLYWHEEL_UPDATE_SNAPSHOTS=1 and review the file"
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert actual == expected, f"{path.name} changed: review, then FLYWHEEL_UPDATE_SNAPSHOTS=1 to accept"
