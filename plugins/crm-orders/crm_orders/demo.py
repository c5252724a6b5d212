"""Orders' part of ``crm demo`` (hook ``crm_seed_demo``): the sales order of each quote quoting's
demo accepted (the same order the ``crm_after_quote_accepted`` job would make, so the job finds
it and does nothing), the first one delivered and, where crm-invoicing is on, invoiced (its
demo issues that draft); and a loaner out past its due-back day, so the lookup's "overdue"
filter and the party's panel have something to show. Written through
:mod:`crm_orders.service`, quoting's and the core's services only."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from crm_orders import service

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.records.models import Record

LOANER_UNIT = "Compact loader CL-35 (loaner fleet unit 3)"
LOANER_SERIAL = "CL35-L-0042"


def seed(ctx: Context) -> list[str]:
    """Create the demo orders; returns the lines ``crm demo`` prints."""
    made: list[str] = []
    for position, quote in enumerate(_accepted_quotes(ctx)):
        order = service.create_order_from_quote(ctx, quote.id)
        text = f"{order.reference} from {quote.reference}"
        if position == 0:
            service.fulfil_order(ctx, order.id)
            text += ", fulfilled"
            if service.invoicing_available(ctx):
                service.create_invoice(ctx, order.id)
                text += " and invoiced (draft)"
        made.append(text)
    loaner = _overdue_loaner(ctx)
    if loaner is not None:
        made.append(f"{loaner.reference} loaner out, overdue")
    return [f"{len(made)} orders: {'; '.join(made)}"] if made else []


def _accepted_quotes(ctx: Context) -> list[Record]:
    """The accepted quotes, oldest first."""
    from crm_quoting import service as quoting

    from crmcore.records.service import list_records

    quotes = list_records(ctx, record_type="quote", sort="created", limit=50, with_count=False).items
    return [q for q in quotes if quoting.get_quote(ctx, q.id).status == "accepted"]


def _overdue_loaner(ctx: Context) -> Record | None:
    """A loader lent three weeks ago, due back a week ago, to the first customer by name."""
    from crmcore.parties.service import list_parties

    customers = list_parties(ctx, filters={"is_customer": True}, sort="name", limit=1, with_count=False).items
    if not customers:
        return None
    today = service.today(ctx)
    record = service.create_order(ctx, {
        "kind": "loaner", "party_id": customers[0].id, "title": "Loaner while the loader is in the workshop",
        "order_date": (today - dt.timedelta(days=21)).isoformat(),
        "unit_description": LOANER_UNIT, "unit_serial": LOANER_SERIAL,
        "due_back": (today - dt.timedelta(days=7)).isoformat(), "lines": [],
    })
    service.hand_over(ctx, record.id, {"lent_on": (today - dt.timedelta(days=21)).isoformat(),
                                       "due_back": (today - dt.timedelta(days=7)).isoformat()})
    return record
