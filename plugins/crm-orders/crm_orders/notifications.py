"""The notification events orders raise (an admin's rules decide whether a message goes out:
"your order was delivered", "thank you for returning the demo unit"). Raising one costs a single
query when the business has no rule for it.

Internal: the lifecycle calls :func:`notify`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crmcore.messaging.rules import NotificationEvent
from crmcore.money import round_money

if TYPE_CHECKING:
    from crm_orders.models import Order
    from crmcore.context import Context
    from crmcore.records.models import Record

_SAMPLE = {"number": "SO26-0007", "title": "Order: Fleet renewal", "kind": "sales", "status": "fulfilled",
           "currency": "EUR", "total": "1210.00", "order_date": "2026-03-02", "customer_reference": "PO-4471",
           "unit": None, "serial": None, "lent_on": None, "due_back": None, "returned_on": None}
_LOANER = {**_SAMPLE, "number": "LO26-0003", "title": "Loan for Meadow Farms", "kind": "loaner", "status": "out",
           "total": "0.00", "unit": "Demo tractor T100", "serial": "T100-0042", "lent_on": "2026-03-02",
           "due_back": "2026-03-16"}

EVENTS = (
    NotificationEvent("order.fulfilled", "Sales order fulfilled", ("party", "contact", "record"),
                      {"order": _SAMPLE}, "A sales order was marked fulfilled (delivered or done)."),
    NotificationEvent("loaner.handed_over", "Loaned unit handed over", ("party", "contact", "record"),
                      {"order": _LOANER}, "A loaner order's unit was handed to the customer; order.due_back is "
                                          "the day it is due back."),
    NotificationEvent("loaner.returned", "Loaned unit returned", ("party", "contact", "record"),
                      {"order": {**_LOANER, "status": "returned", "returned_on": "2026-03-15"}},
                      "A loaner order's unit came back."),
)


def order_vars(record: Record, order: Order) -> dict[str, Any]:
    """What notification templates see as ``order``."""
    def day(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {"number": record.reference, "title": record.title, "kind": order.kind, "status": order.status,
            "currency": order.currency, "total": str(round_money(Decimal(order.total_amount), order.currency)),
            "order_date": day(order.order_date), "customer_reference": order.customer_reference,
            "unit": order.unit_description, "serial": order.unit_serial, "lent_on": day(order.lent_on),
            "due_back": day(order.due_back), "returned_on": day(order.returned_on)}


def notify(ctx: Context, event: str, record: Record, order: Order) -> None:
    """Raise ``event`` for the order, in the current transaction."""
    from crmcore.messaging.rules import notify as send

    send(ctx, event, record=record, order=order_vars(record, order))
