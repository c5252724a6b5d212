"""Quoting's part of ``crm demo`` (hook ``crm_seed_demo``): quotes on open demo deals, one in each
state a salesperson meets every day: accepted, sent (with a trade-in credit) and draft, each
about another machine where the deals allow.

Lines are the deal's machine from the catalog (the deal's ``machine_model`` is "Excavator
EX-140"; the catalog's demo SKU is "EX-140", priced for the party: the featured customer of the
catalog's demo, the party of the oldest open deal that is a customer, gets its special price and
part number) with delivery and training; without that product the line is typed, at the deal's
amount. Accepting drafts the invoice where crm-invoicing is on (its demo issues it). Written
through :mod:`crm_quoting.service`, :mod:`crm_catalog.service` and the core's services only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crm_quoting import service

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.records.models import Record

TRADE_IN = {"description": "Trade-in: used skid steer (2017, 4,200 hours), as inspected on site",
            "quantity": "1", "unit_price": "-7500", "tax_rate": "0"}
INTRO = "Thank you for the visit to our yard. As discussed, we are pleased to offer:"


def seed(ctx: Context) -> list[str]:
    """Create the demo quotes; returns the lines ``crm demo`` prints."""
    deals = _open_deals(ctx)
    if not deals:
        return []
    accepted_deal = next((d for d, customer in deals if customer), deals[0][0])
    others = _other_machines(accepted_deal, [d for d, _ in deals if d.id != accepted_deal.id])
    made: list[str] = []

    accepted = _quote(ctx, accepted_deal, [_service_line(ctx, "SVC-TRAINING", "Operator training", "95", "8")])
    service.mark_sent(ctx, accepted.id)
    acceptance = service.accept_quote(ctx, accepted.id)
    made.append(f"{accepted.reference} accepted" + (" (invoice drafted)" if acceptance.invoice_id else ""))
    if others:
        sent = _quote(ctx, others[0], [TRADE_IN])
        service.mark_sent(ctx, sent.id)
        made.append(f"{sent.reference} sent")
    if len(others) > 1:
        draft = _quote(ctx, others[1], [_service_line(ctx, "SVC-CONTRACT", "Full service contract, 1 year",
                                                       "2400", "1")])
        made.append(f"{draft.reference} draft")
    return [f"{len(made)} quotes on open deals: {', '.join(made)}"]


def _open_deals(ctx: Context) -> list[tuple[Record, bool]]:
    """Open deals with a party, oldest first, each with whether its party is a customer."""
    from crmcore.records.service import list_records

    page = list_records(ctx, record_type="deal", filters={"status": "open"}, sort="created", limit=200,
                        with_count=False)
    parties = page.extra["parties"]
    return [(deal, bool(parties[deal.party_id].is_customer)) for deal in page.items if deal.party_id in parties]


def _machine(deal: Record) -> str:
    return str((deal.custom or {}).get("machine_model") or "").strip()


def _other_machines(first: Record, deals: list[Record]) -> list[Record]:
    """``deals`` with those about a machine not quoted yet first (a demo shows several)."""
    seen = {_machine(first)}
    fresh = []
    for deal in deals:
        if _machine(deal) not in seen:
            seen.add(_machine(deal))
            fresh.append(deal)
    return fresh + [deal for deal in deals if deal not in fresh]


def _quote(ctx: Context, deal: Record, extra: list[dict[str, Any]]) -> Record:
    """A draft quote on ``deal`` for its machine, delivery and ``extra`` lines, addressed to the
    party's first contact."""
    contacts = service.contacts_of(ctx, deal.party_id)
    lines = [_machine_line(ctx, deal), _service_line(ctx, "SVC-DELIVERY", "Delivery and commissioning", "850", "1"),
             *extra]
    data: dict[str, Any] = {"lines": lines, "intro": INTRO}
    if contacts:
        data["contact_id"] = min(contacts)
    return service.create_quote_for_deal(ctx, deal.id, data)


def _product_id(ctx: Context, sku: str, party_id: int | None) -> int | None:
    """The catalog product with exactly this SKU, if the catalog has it."""
    from crm_catalog import service as catalog

    if not sku:
        return None
    found = catalog.find_products(ctx, sku, party_id=party_id, limit=5)
    return next((p.id for p in found if p.sku.casefold() == sku.casefold()), None)


def _machine_line(ctx: Context, deal: Record) -> dict[str, Any]:
    model = _machine(deal)
    product_id = _product_id(ctx, model.rsplit(" ", 1)[-1], deal.party_id)
    if product_id is not None:
        return {"product_id": product_id, "quantity": "1"}
    price = deal.amount if deal.amount is not None and deal.amount > 0 else Decimal("25000")
    return {"description": model or deal.title, "quantity": "1", "unit_price": str(price), "tax_rate": "21"}


def _service_line(ctx: Context, sku: str, description: str, price: str, quantity: str) -> dict[str, Any]:
    product_id = _product_id(ctx, sku, None)
    if product_id is not None:
        return {"product_id": product_id, "quantity": quantity}
    return {"description": description, "quantity": quantity, "unit_price": price, "tax_rate": "21"}
