"""Every relative link in README.md and docs/**/*.md resolves: to an existing file and, for a link into a
Markdown file with ``#anchor``, to one of its headings (GitHub's anchor rule)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (but ``-`` and ``_``), spaces to ``-``."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {anchor(m.group(1)) for m in re.finditer(r"^#{1,6} +(.+?) *#*$", text, re.M)}


def broken_links(path: Path) -> list[str]:
    """``<file>: <link>: <problem>`` for each relative link of ``path`` that does not resolve."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    out = []
    for match in LINK.finditer(text):
        target = match.group(1)
        if re.match(r"^[a-z]+:", target) or target.startswith("//"):
            continue  # http(s), mailto: not checked offline
        file_part, _, fragment = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}: {target}"
        if not resolved.exists():
            out.append(f"{where}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            out.append(f"{where}: no heading with anchor #{fragment}")
    return out


def test_every_relative_link_resolves():
    problems = [p for doc in _documents() for p in broken_links(doc)]
    assert problems == [], "\n".join(problems)
    assert len(_documents()) > 20  # README, docs/, docs/runbooks/, docs/decisions/


def test_the_checker_catches_a_missing_file_and_a_missing_anchor(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("tests.test_docs_links.ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# Top\n## 5. Roll back (now)\n```\n[in code](nope.md)\n```\n")
    doc = tmp_path / "b.md"
    doc.write_text(
        "[ok](a.md#5-roll-back-now) [self](#here) [web](https://example.com/x)\n# Here\n"
        "[gone](missing.md) [bad anchor](a.md#roll-back) ![img](pic.svg)\n"
    )
    assert broken_links(doc) == [
        "b.md: missing.md: no such file",
        "b.md: a.md#roll-back: no heading with anchor #roll-back",
        "b.md: pic.svg: no such file",
    ]
    assert broken_links(tmp_path / "a.md") == []  # links in code blocks are not links
