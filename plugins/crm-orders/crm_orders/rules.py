"""The rules every step shares: the settings, today in the business's time zone, which status may
follow which, the lock, "overdue", and money as plain text.

Internal: import the use cases from :mod:`crm_orders.service`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError

from crm_orders import NAME
from crm_orders.models import Kind, Order, Status
from crm_orders.schemas import OrdersSettings, load
from crmcore.context import use_case
from crmcore.db import utcnow
from crmcore.money import round_money
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

log = logging.getLogger("crm_orders")

OPEN, FULFILLED, INVOICED = Status.OPEN.value, Status.FULFILLED.value, Status.INVOICED.value
CANCELLED, OUT, RETURNED = Status.CANCELLED.value, Status.OUT.value, Status.RETURNED.value

#: kind -> status -> the statuses it may go to (nothing else is ever written)
TRANSITIONS: dict[str, dict[str, frozenset[str]]] = {
    Kind.SALES.value: {OPEN: frozenset({FULFILLED, INVOICED, CANCELLED}), FULFILLED: frozenset({INVOICED}),
                       INVOICED: frozenset(), CANCELLED: frozenset()},
    Kind.LOANER.value: {OPEN: frozenset({OUT, CANCELLED}), OUT: frozenset({RETURNED}), RETURNED: frozenset(),
                        CANCELLED: frozenset()},
}
#: the only status whose header and lines may change
EDITABLE = OPEN
#: statuses a sales order may be invoiced from; a loaner is invoiced (a loan charge, damage)
#: once its unit was lent, without changing its status (the status follows the unit)
INVOICEABLE = {Kind.SALES.value: (OPEN, FULFILLED), Kind.LOANER.value: (OUT, RETURNED)}
#: the status a loaner shows while it is out past its due-back day (never stored)
OVERDUE = "overdue"


def may_move(kind: str, from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(kind, {}).get(from_status, frozenset())


def is_overdue(order: Order, on: dt.date) -> bool:
    """A loaner that is out after its due-back day (the due-back day itself is not late)."""
    return order.status == OUT and order.due_back is not None and order.due_back < on


def shown_status(order: Order, on: dt.date) -> str:
    return OVERDUE if is_overdue(order, on) else order.status


# --------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class Settings:
    order_on_accept: bool
    loan_days: int
    remind_due_back: bool


def settings(ctx: Context) -> Settings:
    """The business's settings with the schema's defaults (a stored row that no longer
    validates falls back to the defaults rather than stopping orders)."""
    stored = ctx.plugin_settings(NAME) or {}
    known = OrdersSettings().fields
    try:
        values = OrdersSettings().load({k: v for k, v in stored.items() if k in known})
    except ValidationError:
        log.warning("orders settings of business %s do not validate; using the defaults", ctx.business_id)
        values = OrdersSettings().load({})
    return Settings(values["order_on_accept"], values["loan_days"], values["remind_due_back"])


@use_case(Role.ADMIN)
def save_settings(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and store the settings (admins)."""
    from crmcore.plugins.service import save_settings as store

    load(OrdersSettings, data, "orders settings")
    return store(ctx, NAME, dict(data))


def today(ctx: Context) -> dt.date:
    """The business's calendar day now: a loaner due back on the 30th is late from the 31st there."""
    return utcnow().astimezone(zone(ctx)).date()


def zone(ctx: Context) -> dt.tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(ctx.business.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def money_text(amount: Decimal, currency: str) -> str:
    """``EUR 1,234.50``, ``JPY 1,235``: plain text for timelines and messages."""
    return f"{currency} {round_money(Decimal(amount), currency):,f}"
