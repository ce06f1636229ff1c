"""README's dependency table names every dependency pyproject.toml declares (the rest are pulled in by them).

GIVEN pyproject.toml's runtime dependencies and dependency groups, WHEN README's "Dependencies and why"
table is read, THEN each declared distribution appears in it with a reason, so that nothing enters the lock
without one; and every override that drops a distribution is listed as dropped.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=~!; ]", requirement.strip(), maxsplit=1)[0].lower()


def _table() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Dependencies and why", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return [(cells[0].lower(), cells[-1].strip()) for cells in rows[1:]]


def test_every_declared_dependency_is_in_the_readme_table() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {_name(r) for r in project["project"]["dependencies"]}
    for group in project["dependency-groups"].values():
        declared |= {_name(r) for r in group if isinstance(r, str)}
    table = _table()
    names = " ".join(cell for cell, _ in table)
    missing = sorted(d for d in declared if not re.search(rf"(?<![\w-]){re.escape(d)}(?![\w-])", names))
    assert not missing, f"add these to README's dependency table with a reason: {missing}"
    assert all(reason for _, reason in table)


def test_every_dropped_distribution_is_listed_as_dropped() -> None:
    uv = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["uv"]
    dropped = {_name(o) for o in uv.get("override-dependencies", []) if "'never'" in o}
    rows = [cell for cell, reason in _table() if "dropped" in reason.lower()]
    for name in dropped:
        assert any(re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", cell) for cell in rows), name
