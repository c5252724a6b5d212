"""Order use cases, the plugin's public API: make an order (from an accepted quote, or entered
directly), edit it while it is open, move it through its life, invoice it, look orders up.

An order is a core record of type ``sales_order`` or ``loaner_order`` (:mod:`crm_orders.types`)
with an :class:`~crm_orders.models.Order` row of details beside it and its
:class:`~crm_orders.models.OrderLine` rows, priced by quoting's line rule
(:func:`crm_quoting.service.price_lines`) and rounded by :mod:`crmcore.money`. Every function is
one transaction (``use_case``): members write, read-only users read, admins change the
settings. Bad input raises ValidationFailed naming each field (``lines.1.quantity``) and writes
nothing; a step the order's status forbids (editing a fulfilled order) raises Conflict; another
business's order, party or quote is NotFound.

Statuses (``docs/orders.md``)::

    sales:  open -> fulfilled -> invoiced;  open -> invoiced;  open -> cancelled
    loaner: open -> out (handed over) -> returned;  open -> cancelled
            "overdue": out past its due-back day (shown and filtered, never stored)

Header and lines change only while an order is open; everything else is locked.

The modules behind it (rules, orders, creating, editing, lifecycle, billing, lookup) are internal;
import from here.
"""

from __future__ import annotations

from crm_orders.billing import available as invoicing_available
from crm_orders.billing import create_invoice
from crm_orders.creating import create_order, create_order_from_quote
from crm_orders.editing import save_order, set_lines, update_order
from crm_orders.lifecycle import cancel_order, extend_loan, fulfil_order, hand_over, return_unit
from crm_orders.lookup import lookup_orders
from crm_orders.orders import (
    InvoiceState,
    OrderSummary,
    OrderView,
    get_order,
    order_for_quote,
    orders_for_deal,
    orders_for_party,
)
from crm_orders.rules import OVERDUE, TRANSITIONS, Settings, is_overdue, save_settings, settings, today

__all__ = [
    "OVERDUE", "TRANSITIONS", "InvoiceState", "OrderSummary", "OrderView", "Settings", "cancel_order",
    "create_invoice", "create_order", "create_order_from_quote", "extend_loan", "fulfil_order", "get_order",
    "hand_over", "invoicing_available", "is_overdue", "lookup_orders", "order_for_quote", "orders_for_deal",
    "orders_for_party", "return_unit", "save_order", "save_settings", "set_lines", "settings", "today",
    "update_order",
]
