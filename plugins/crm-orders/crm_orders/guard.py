"""What the core's record service may change on an order behind the plugin's back
(``crm_before_record_save``, contract 1.2): the core's generic Edit form, the JSON API and other
plugins write a ``sales_order`` / ``loaner_order`` record through
:func:`crmcore.records.service.update_record`, and the plugin's own steps do too.

The rules (docs/orders.md, "Edits through the core's forms"):

- the record's ``amount`` and ``currency`` are the order's: its lines' net total (None while
  negative) and its currency. They may only be set to those values, which is what the plugin's
  own writes do as lines change (also on a locked loaner taking charges), so no flag is needed
  to tell them apart; any other amount or currency is refused, open or not;
- an order with a party keeps it (its lines are priced and its addresses copied for it): a new
  party is refused; a bare order made without one may be given one;
- a locked order (anything but open: fulfilled, invoiced, cancelled, out, returned) also keeps
  its title and contact, as the order's own editor does;
- everything else (description, owner, expected close date, custom fields) stays editable, and
  a new contact of an open order is copied to its details (the contact invoices go to).

A record made by the core's "New sales order" / "New loaner order" form is allowed: the plugin
makes its open details the first time it is changed (:func:`crm_orders.orders.details`), and
until then no rule applies (nothing to disagree with).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crm_orders.models import Order
from crm_orders.orders import sentence_label
from crm_orders.rules import EDITABLE, money_text
from crm_orders.types import TYPES
from crmcore.errors import Veto

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.records.models import Record

#: the record fields an order's meaning depends on, in the order messages name them
WATCHED = ("title", "party_id", "contact_id", "amount", "currency")
#: the ones a locked order keeps whatever the value
LOCKED = ("title", "party_id", "contact_id")
WORDS = {"title": "title", "party_id": "party", "contact_id": "contact", "amount": "amount", "currency": "currency"}


def _listed(fields: list[str]) -> str:
    words = [WORDS[f] for f in fields]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _amount_of(order: Order) -> Any:
    return order.net_amount if order.net_amount >= 0 else None


def check_save(ctx: Context, record: Record, changes: dict[str, Any], created: bool) -> None:
    """Refuse a change of an order's record that the order does not say (see the module)."""
    if created or record.type not in TYPES or not changes.keys() & set(WATCHED):
        return
    with ctx.session.no_autoflush:  # the record's new values stay unwritten while we look
        order = ctx.session.scalar(select(Order).where(Order.record_id == record.id))
    if order is None:
        return
    name = sentence_label(record, order)
    errors: dict[str, list[str]] = {}
    if "amount" in changes and record.amount != _amount_of(order):
        shown = money_text(order.net_amount, order.currency)
        errors["amount"] = [f"its amount is the net total of its lines ({shown}): change the lines in the "
                            "order editor"]
    if "currency" in changes and record.currency != order.currency:
        errors["currency"] = [f"its currency is that of its lines ({order.currency})"]
    if order.status != EDITABLE:
        refused = [f for f in WATCHED if f in changes and (f in LOCKED or f in errors)]
        if refused:
            raise Veto(f"{name} is {order.status}: its {_listed(refused)} can no longer change",
                       {f: [f"can no longer change: the order is {order.status}"] for f in refused})
        return
    if "party_id" in changes and changes["party_id"][0] is not None:
        errors["party_id"] = ["it keeps its party (its lines are priced for it): make a new order for another party"]
    if errors:
        raise Veto(f"{name} was not saved: " + "; ".join(errors[f][0] for f in WATCHED if f in errors), errors)
    if "contact_id" in changes:
        order.contact_id = record.contact_id  # the open order's details follow (its invoice goes to them)
