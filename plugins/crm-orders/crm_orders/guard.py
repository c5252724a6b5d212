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

from crm_quoting import service as quoting
from sqlalchemy import select

from crm_orders.models import Order
from crm_orders.orders import sentence_label
from crm_orders.rules import EDITABLE
from crm_orders.types import TYPES
from crmcore.errors import Veto

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.records.models import Record


def check_save(ctx: Context, record: Record, changes: dict[str, Any], created: bool) -> None:
    """Refuse a change of an order's record that the order does not say (see the module); the
    checks a quote's record has too are quoting's."""
    if created or record.type not in TYPES or not changes.keys() & set(quoting.WATCHED_FIELDS):
        return
    with ctx.session.no_autoflush:  # the record's new values stay unwritten while we look
        order = ctx.session.scalar(select(Order).where(Order.record_id == record.id))
    if order is None:
        return
    name = sentence_label(record, order)
    errors = quoting.amount_errors(record, changes, order.net_amount, order.currency, "order")
    if order.status != EDITABLE:
        refused = quoting.locked_refusals(changes, errors)
        if refused:
            raise Veto(f"{name} is {order.status}: its {quoting.listed_fields(refused)} can no longer change",
                       {f: [f"can no longer change: the order is {order.status}"] for f in refused})
        return
    quoting.refuse_open_change(name, changes, errors, "order")
    if "contact_id" in changes:
        order.contact_id = record.contact_id  # the open order's details follow (its invoice goes to them)
