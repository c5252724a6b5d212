"""The price & availability inquiry: find products by what a person types (a SKU, a name, the
customer's own part number), then price each for the party and ask what is available."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crm_catalog.availability import Availability, availability
from crm_catalog.common import load
from crm_catalog.models import Product
from crm_catalog.pricing import PriceQuote, prices_for
from crm_catalog.products import find_products
from crm_catalog.schemas import PriceQuery
from crmcore.context import use_case
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

#: matches an inquiry shows at most (each asks every availability plugin)
INQUIRY_MAX = 10


@dataclass(frozen=True)
class Match:
    """One product an inquiry found, its price for the party and (when asked) its availability."""

    product: Product
    price: PriceQuote
    availability: Availability | None

    def to_dict(self) -> dict[str, Any]:
        return {"product_id": self.product.id, "sku": self.product.sku, "name": self.product.name,
                "kind": self.product.kind, "price": self.price.to_dict(),
                "availability": self.availability.to_dict() if self.availability is not None else None}


@use_case(Role.READ_ONLY, write=False)
def inquire(ctx: Context, q: str, *, party_id: int | None = None, quantity: Decimal = Decimal(1),
            limit: int = INQUIRY_MAX, with_availability: bool = True) -> list[Match]:
    """Active products matching ``q`` (as :func:`find_products` ranks them), each priced for
    ``party_id`` and ``quantity`` today; ``with_availability`` also asks
    :func:`availability`. ValidationFailed names ``q``, ``party_id`` or ``quantity``."""
    wanted = load(PriceQuery, {"party_id": party_id, "quantity": quantity}, "inquiry")
    products = find_products(ctx, q, party_id=wanted["party_id"], limit=max(1, min(limit, INQUIRY_MAX)))
    if not products:
        return []
    prices = prices_for(ctx, [p.id for p in products], party_id=wanted["party_id"], quantity=wanted["quantity"])
    return [Match(product=p, price=prices[p.id],
                  availability=availability(ctx, p.id, wanted["quantity"]) if with_availability else None)
            for p in products]
