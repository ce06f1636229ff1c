"""Parse a run report / model card (``flywheel.report``) into its sections, tables and text (html.parser)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any


class Card(HTMLParser):
    """The report's structure: per section id, its tables (rows of cell texts) and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict[str, Any]] = {}
        self._section: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        #: section -> table class -> rows; section -> headings (h3/h4) and image alt texts
        self.classed: dict[str, dict[str, list[list[str]]]] = {}
        self.headings: dict[str, list[str]] = {}
        self.images: dict[str, list[str]] = {}
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self._section = dict(attrs).get("id") or ""
            self.sections[self._section] = {"tables": [], "text": []}
            self.classed[self._section], self.headings[self._section], self.images[self._section] = {}, [], []
        elif tag == "table" and self._section is not None:
            self.sections[self._section]["tables"].append([])
            cls = dict(attrs).get("class")
            if cls:
                self.classed[self._section][cls] = self.sections[self._section]["tables"][-1]
        elif tag in ("h3", "h4") and self._section is not None:
            self._heading = []
        elif tag == "img" and self._section is not None:
            self.images[self._section].append(dict(attrs).get("alt") or "")
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._section is not None:
            self.sections[self._section]["tables"][-1].append(self._row)
            self._row = None
        elif tag == "section":
            self._section = None
        elif tag in ("h3", "h4") and self._heading is not None and self._section is not None:
            self.headings[self._section].append(" ".join("".join(self._heading).split()))
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._heading is not None:
            self._heading.append(data)
        if self._section is not None:
            self.sections[self._section]["text"].append(data)

    def rows(self, section: str) -> dict[str, list[str]]:
        """First cell -> the other cells, over every table of ``section``."""
        return {r[0]: r[1:] for t in self.sections[section]["tables"] for r in t if r}

    def text(self, section: str) -> str:
        return " ".join("".join(self.sections[section]["text"]).split())

    def table(self, section: str, cls: str) -> list[list[str]]:
        """The rows (header first) of the table with class ``cls`` in ``section``."""
        return self.classed[section][cls]

    @classmethod
    def parse(cls, document: str) -> Card:
        """A parsed card."""
        card = cls()
        card.feed(document)
        card.close()
        return card
