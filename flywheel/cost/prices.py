"""The dated, region-specific price table (``flywheel/cost/prices/<region>.yaml``) and its validation.

Each entry carries its ``source`` (the AWS pricing page) and either ``checked`` (the figure was read in a
stored copy of an AWS page) or ``unverified: true`` with ``from`` (where the figure came from). A table that
breaks these rules is refused: a figure without a source is never multiplied.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRICES_DIR = Path(__file__).resolve().parent / "prices"


class PriceError(ValueError):
    """A price table that is missing, malformed, or lacks a price the model needs."""


@dataclass(frozen=True)
class Price:
    """One entry: a flat ``price`` or ``by_instance`` prices, its unit and provenance."""

    key: str
    unit: str
    source: str
    price: float | None = None
    by_instance: dict[str, float] = field(default_factory=dict)
    unverified: bool = False
    origin: str = ""  # `from` (unverified) or `checked` (verified)


@dataclass(frozen=True)
class PriceTable:
    region: str
    currency: str
    as_of: dt.date
    hours_per_month: float
    prices: dict[str, Price]
    free_tier: dict[str, int]
    free_tier_source: str
    path: Path | None = None

    def __getitem__(self, key: str) -> float:
        entry = self.prices.get(key)
        if entry is None or entry.price is None:
            raise PriceError(f"the {self.region} price table has no flat price {key!r}: add it with its source")
        return entry.price

    def instance(self, key: str, instance_type: str) -> float | None:
        """The ``key`` price of ``instance_type`` (None: not in the table, the caller reports "not priced")."""
        entry = self.prices.get(key)
        if entry is None:
            raise PriceError(f"the {self.region} price table has no instance prices {key!r}")
        return entry.by_instance.get(instance_type)

    @property
    def unverified(self) -> list[str]:
        return sorted(k for k, p in self.prices.items() if p.unverified)


def load_prices(region: str, directory: Path = PRICES_DIR) -> PriceTable:
    """The price table of ``region``; a clear :class:`PriceError` when there is none or it is malformed."""
    path = directory / f"{region}.yaml"
    if not path.is_file():
        have = ", ".join(sorted(p.stem for p in directory.glob("*.yaml"))) or "none"
        raise PriceError(
            f"no price table for region {region!r} (have: {have}); add flywheel/cost/prices/{region}.yaml "
            "with an as_of date and a source for every price"
        )
    return parse_prices(yaml.safe_load(path.read_text(encoding="utf-8")), path=path)


def parse_prices(data: Any, *, path: Path | None = None) -> PriceTable:
    """Validate a loaded table: dated, region-specific, every entry with a unit, a source and provenance."""
    where = path.name if path else "price table"
    if not isinstance(data, dict):
        raise PriceError(f"{where}: expected a mapping")
    missing = [k for k in ("region", "currency", "as_of", "hours_per_month", "prices", "free_tier") if k not in data]
    if missing:
        raise PriceError(f"{where}: missing {', '.join(missing)}")
    as_of = data["as_of"]
    try:
        date = as_of if isinstance(as_of, dt.date) else dt.date.fromisoformat(str(as_of))
    except ValueError:
        raise PriceError(f"{where}: as_of {as_of!r} is not a YYYY-MM-DD date") from None
    prices: dict[str, Price] = {}
    for key, raw in dict(data["prices"]).items():
        if not isinstance(raw, dict):
            raise PriceError(f"{where}: price {key!r} must be a mapping")
        source = str(raw.get("source") or "").strip()
        if not source:
            raise PriceError(f"{where}: price {key!r} has no source (the AWS pricing page it comes from)")
        unverified = bool(raw.get("unverified", False))
        origin = str(raw.get("from" if unverified else "checked") or "").strip()
        if not origin:
            need = "`from` (where the unverified figure came from)" if unverified else "`checked` or `unverified: true`"
            raise PriceError(f"{where}: price {key!r} needs {need}")
        flat, by_instance = raw.get("price"), raw.get("by_instance") or {}
        if (flat is None) == (not by_instance):
            raise PriceError(f"{where}: price {key!r} needs exactly one of price / by_instance")
        values = [flat] if flat is not None else list(by_instance.values())
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in values):
            raise PriceError(f"{where}: price {key!r} must be a non-negative number")
        prices[key] = Price(
            key=key,
            unit=str(raw.get("unit") or ""),
            source=source,
            price=float(flat) if flat is not None else None,
            by_instance={str(k): float(v) for k, v in by_instance.items()},
            unverified=unverified,
            origin=origin,
        )
    return PriceTable(
        region=str(data["region"]),
        currency=str(data["currency"]),
        as_of=date,
        hours_per_month=float(data["hours_per_month"]),
        prices=prices,
        free_tier={str(k): int(v) for k, v in dict(data["free_tier"]).items()},
        free_tier_source=str(data.get("free_tier_source") or ""),
        path=path,
    )
