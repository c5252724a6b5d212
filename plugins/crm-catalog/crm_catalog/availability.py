"""Availability: the product's own stock on hand plus what inventory plugins answer through the
``crm_catalog_availability`` hook (see :mod:`crm_catalog.hookspecs`).

A plugin that raises is logged against its plugin and skipped by ``ctx.collect``; a malformed
answer (not a list of dicts, a negative or non-numeric quantity) is logged and left out; the
hook runs in a savepoint that is rolled back, so a plugin's failed SQL never breaks the inquiry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError

from crm_catalog.common import collect_read_only, load
from crm_catalog.models import Product
from crm_catalog.schemas import AvailabilityAnswer, PriceQuery
from crmcore.context import get_or_404, use_case
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

log = logging.getLogger("crm_catalog")

HOOK = "crm_catalog_availability"
#: the source name of the product's own ``stock_on_hand``
STOCK_SOURCE = "Stock on hand"
#: answers kept per plugin (a plugin listing every shelf of a warehouse is cut)
ANSWERS_MAX = 50


@dataclass(frozen=True)
class Source:
    """One place the product could come from."""

    source: str
    available: Decimal
    location: str | None = None
    lead_time_days: int | None = None
    #: the plugin that answered (``catalog`` for the stock on hand)
    plugin: str = "catalog"


@dataclass(frozen=True)
class Availability:
    """What is available of a product, for a wanted quantity.

    ``available`` is the sum of every source (None when no source knows: stock not tracked and
    no plugin answered); ``enough`` says whether it covers ``quantity`` (None when unknown)."""

    product_id: int
    quantity: Decimal
    stock_on_hand: Decimal | None
    sources: list[Source] = field(default_factory=list)

    @property
    def available(self) -> Decimal | None:
        return sum((s.available for s in self.sources), Decimal(0)) if self.sources else None

    @property
    def enough(self) -> bool | None:
        available = self.available
        return None if available is None else available >= self.quantity

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: Decimals as strings."""
        def text(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        return {"product_id": self.product_id, "quantity": str(self.quantity),
                "stock_on_hand": text(self.stock_on_hand), "available": text(self.available),
                "enough": self.enough,
                "sources": [{"source": s.source, "available": str(s.available), "location": s.location,
                             "lead_time_days": s.lead_time_days, "plugin": s.plugin} for s in self.sources]}


def _answers(plugin: str, result: Any) -> list[Source]:
    """The well-formed answers of one plugin; the rest is logged and left out."""
    if isinstance(result, dict):
        result = [result]
    if not isinstance(result, list | tuple):
        log.warning("plugin %s: %s returned %s, not a list of dicts: ignored", plugin, HOOK, type(result).__name__)
        return []
    out: list[Source] = []
    for answer in list(result)[:ANSWERS_MAX]:
        if not isinstance(answer, dict):
            log.warning("plugin %s: %s answer %r is not a dict: ignored", plugin, HOOK, answer)
            continue
        raw = dict(answer)
        if isinstance(raw.get("available"), float):
            raw["available"] = repr(raw["available"])  # 2.5 means "2.5", not its binary approximation
        try:
            values = AvailabilityAnswer().load(raw)
        except ValidationError as exc:
            log.warning("plugin %s: %s answer ignored: %s", plugin, HOOK, exc.messages)
            continue
        out.append(Source(source=values["source"], available=values["available"], location=values["location"],
                          lead_time_days=values["lead_time_days"], plugin=plugin))
    return out


@use_case(Role.READ_ONLY, write=False)
def availability(ctx: Context, product_id: int, quantity: Decimal = Decimal(1)) -> Availability:
    """The product's stock on hand (when tracked) and every enabled plugin's answer to
    ``crm_catalog_availability(ctx, product, quantity)``; NotFound for an unknown product."""
    wanted = load(PriceQuery, {"quantity": quantity}, "availability query")["quantity"]
    product = get_or_404(ctx, Product, product_id, "product")
    sources: list[Source] = []
    if product.stock_on_hand is not None:
        sources.append(Source(source=STOCK_SOURCE, available=max(product.stock_on_hand, Decimal(0))))
    stock = product.stock_on_hand
    for plugin, result in collect_read_only(ctx, HOOK, product=product, quantity=wanted):
        sources.extend(_answers(plugin, result))
    return Availability(product_id=product_id, quantity=wanted, stock_on_hand=stock, sources=sources)
