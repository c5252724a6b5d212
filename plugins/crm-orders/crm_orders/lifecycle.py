"""An order's life after its lines: fulfilling a sales order, handing a loaner's unit over,
extending and ending the loan, cancelling, and which of these (and invoicing) a page may offer.

Each step moves the status only along :data:`crm_orders.rules.TRANSITIONS` (under the order's
row lock, so two clicks make one move), stamps who and when, and leaves a timeline entry.

Internal: import the use cases from :mod:`crm_orders.service`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from crm_orders.models import Kind, Order, Status
from crm_orders.notifications import notify
from crm_orders.orders import lines_of, sentence_label, timeline, writable
from crm_orders.rules import may_move, settings, today, zone
from crm_orders.schemas import CancelInput, ExtendInput, HandOverInput, ReturnInput, load
from crmcore.context import use_case
from crmcore.db import utcnow
from crmcore.errors import Conflict, CrmError, ValidationFailed
from crmcore.records.models import Record
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crm_orders.orders import OrderView
    from crmcore.context import Context

#: the local time of day a due-back reminder falls due
REMINDER_TIME = dt.time(9, 0)


def _move(record: Record, order: Order, to_status: str, what: str) -> None:
    """Refuse a step the order's kind and status do not allow, naming why."""
    if may_move(order.kind, order.status, to_status):
        return
    kind_word = "a loaner order" if order.kind == Kind.LOANER.value else "a sales order"
    if to_status in (Status.OUT.value, Status.RETURNED.value) and order.kind != Kind.LOANER.value:
        raise Conflict(f"{sentence_label(record, order)} is a sales order: only a loaner order's unit "
                       f"can be {what}")
    if to_status == Status.FULFILLED.value and order.kind != Kind.SALES.value:
        raise Conflict(f"{sentence_label(record, order)} is {kind_word}: hand its unit over instead")
    raise Conflict(f"{sentence_label(record, order)} is {order.status}: it cannot be {what}")


@use_case(Role.MEMBER)
def fulfil_order(ctx: Context, record_id: int) -> Record:
    """A sales order was delivered (or done): open -> fulfilled, locked from now on (still to
    be invoiced). It needs at least one line."""
    record, order = writable(ctx, record_id)
    _move(record, order, Status.FULFILLED.value, "fulfilled")
    if not lines_of(ctx, order.id):
        raise Conflict(f"{sentence_label(record, order)} has no lines: add what was ordered first")
    order.status, order.fulfilled_at, order.fulfilled_by_id = Status.FULFILLED.value, utcnow(), ctx.user_id
    ctx.session.flush()
    timeline(ctx, record, "order_fulfilled", "Order fulfilled", {"status": order.status})
    notify(ctx, "order.fulfilled", record, order)
    return record


def _reminder_at(ctx: Context, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, REMINDER_TIME, tzinfo=zone(ctx))


def _remind(ctx: Context, record: Record, order: Order) -> None:
    """A reminder on the due-back day for the order's owner (else the acting user) so the unit
    is not forgotten. Who cannot take it (a read-only owner, a deactivated one) is skipped; when
    nobody can, the timeline says so and the hand-over stands."""
    from crmcore.timeline.service import add_reminder

    if not settings(ctx).remind_due_back or order.due_back is None:
        order.reminder_id = None
        return
    title = f"Loaner {record.reference or record.id} due back: {order.unit_description}"[:200]
    serial = f" (serial {order.unit_serial})" if order.unit_serial else ""
    for assignee in dict.fromkeys(a for a in (record.owner_id, ctx.user_id) if a is not None):
        savepoint = ctx.session.begin_nested()
        try:
            reminder = add_reminder(ctx, title=title, due_at=_reminder_at(ctx, order.due_back),
                                    assigned_to_id=assignee, record_id=record.id,
                                    description=f"{order.unit_description}{serial} was lent on "
                                                f"{order.lent_on:%Y-%m-%d}, due back {order.due_back:%Y-%m-%d}.")
        except CrmError:
            savepoint.rollback()
            continue
        savepoint.commit()
        order.reminder_id = reminder.id
        return
    order.reminder_id = None
    timeline(ctx, record, "order_reminder_skipped", "No due-back reminder: neither the owner nor you can take one")


def _close_reminder(ctx: Context, order: Order) -> None:
    """Complete the due-back reminder (any member may; one already done or deleted is left)."""
    from crmcore.timeline.service import complete_reminder

    if order.reminder_id is None:
        return
    savepoint = ctx.session.begin_nested()
    try:
        complete_reminder(ctx, order.reminder_id)
    except CrmError:
        savepoint.rollback()
    else:
        savepoint.commit()


@use_case(Role.MEMBER)
def hand_over(ctx: Context, record_id: int, data: Mapping[str, Any] | None = None) -> Record:
    """A loaner's unit was handed to the customer: open -> out (its "fulfilled"), locked.

    ``data``: ``lent_on`` (default: today; not in the future) and ``due_back`` (default: the
    order's due-back day when it is not before ``lent_on``, else ``lent_on`` plus the
    ``loan_days`` setting; never before ``lent_on``). The order needs its unit described. With
    the ``remind_due_back`` setting, the order's owner gets a reminder on the due-back day."""
    values = load(HandOverInput, dict(data or {}), "hand-over")
    record, order = writable(ctx, record_id)
    _move(record, order, Status.OUT.value, "handed over")
    day = today(ctx)
    lent_on = values["lent_on"] or day
    errors: dict[str, list[str]] = {}
    if lent_on > day:
        errors["lent_on"] = [f"a unit is handed over today or earlier, not on {lent_on:%Y-%m-%d}"]
    if not order.unit_description:
        errors["unit_description"] = ["describe the unit lent (edit the order) before handing it over"]
    due_back = values["due_back"]
    if due_back is None:
        due_back = order.due_back if order.due_back is not None and order.due_back >= lent_on \
            else lent_on + dt.timedelta(days=settings(ctx).loan_days)
    if due_back < lent_on:
        errors["due_back"] = [f"must be on or after the day the unit is lent ({lent_on:%Y-%m-%d})"]
    if errors:
        raise ValidationFailed("the unit was not handed over: check " + ", ".join(sorted(errors)), errors)
    order.status, order.lent_on, order.due_back = Status.OUT.value, lent_on, due_back
    order.fulfilled_at, order.fulfilled_by_id = utcnow(), ctx.user_id
    ctx.session.flush()
    _remind(ctx, record, order)
    ctx.session.flush()
    serial = f" (serial {order.unit_serial})" if order.unit_serial else ""
    timeline(ctx, record, "loaner_out", f"Unit handed over: {order.unit_description}{serial}, due back "
             f"{due_back:%Y-%m-%d}", {"lent_on": lent_on.isoformat(), "due_back": due_back.isoformat()})
    notify(ctx, "loaner.handed_over", record, order)
    return record


@use_case(Role.MEMBER)
def extend_loan(ctx: Context, record_id: int, due_back: Any) -> Record:
    """Give a loaner that is out a new due-back day (not before it was lent); its reminder moves
    with it. This is not an edit: the order stays locked."""
    values = load(ExtendInput, {"due_back": due_back}, "new due-back day")
    record, order = writable(ctx, record_id)
    if order.kind != Kind.LOANER.value or order.status != Status.OUT.value:
        raise Conflict(f"{sentence_label(record, order)} is {order.status}: only a loaner that is out can "
                       "have its due-back day changed")
    new = values["due_back"]
    if order.lent_on is not None and new < order.lent_on:
        raise ValidationFailed("invalid due-back day", {"due_back": [
            f"must be on or after the day the unit was lent ({order.lent_on:%Y-%m-%d})"]})
    if new == order.due_back:
        return record
    old = order.due_back
    order.due_back = new
    _close_reminder(ctx, order)
    _remind(ctx, record, order)
    ctx.session.flush()
    timeline(ctx, record, "loaner_extended", f"Due back moved from {old:%Y-%m-%d} to {new:%Y-%m-%d}",
             {"from": old.isoformat() if old else None, "to": new.isoformat()})
    return record


@use_case(Role.MEMBER)
def return_unit(ctx: Context, record_id: int, data: Mapping[str, Any] | None = None) -> Record:
    """The loaned unit came back: out -> returned (final). ``data``: ``returned_on`` (default:
    today; between the day it was lent and today) and ``condition`` (a note: scratches, hours
    used). The due-back reminder is completed."""
    values = load(ReturnInput, dict(data or {}), "return")
    record, order = writable(ctx, record_id)
    _move(record, order, Status.RETURNED.value, "returned")
    day = today(ctx)
    returned_on = values["returned_on"] or day
    if returned_on > day:
        raise ValidationFailed("invalid return day", {"returned_on": [
            f"a unit comes back today or earlier, not on {returned_on:%Y-%m-%d}"]})
    if order.lent_on is not None and returned_on < order.lent_on:
        raise ValidationFailed("invalid return day", {"returned_on": [
            f"must be on or after the day the unit was lent ({order.lent_on:%Y-%m-%d})"]})
    late = (returned_on - order.due_back).days if order.due_back is not None else 0
    order.status, order.returned_on, order.return_condition = Status.RETURNED.value, returned_on, values["condition"]
    ctx.session.flush()
    _close_reminder(ctx, order)
    note = f" ({late} day{'s' if late != 1 else ''} late)" if late > 0 else ""
    condition = f": {values['condition']}" if values["condition"] else ""
    timeline(ctx, record, "loaner_returned", f"Unit returned on {returned_on:%Y-%m-%d}{note}{condition}",
             {"returned_on": returned_on.isoformat(), "days_late": max(late, 0)})
    notify(ctx, "loaner.returned", record, order)
    return record


@use_case(Role.MEMBER)
def cancel_order(ctx: Context, record_id: int, reason: str) -> Record:
    """Withdraw an open order, for ``reason`` (required): open -> cancelled (final)."""
    values = load(CancelInput, {"reason": reason}, "cancellation")
    record, order = writable(ctx, record_id)
    _move(record, order, Status.CANCELLED.value, "cancelled")
    order.status, order.cancelled_at, order.cancelled_by_id = Status.CANCELLED.value, utcnow(), ctx.user_id
    order.cancel_reason = values["reason"]
    ctx.session.flush()
    timeline(ctx, record, "order_cancelled", f"Order cancelled: {values['reason']}", {"reason": values["reason"]})
    return record


def actions(ctx: Context, view: OrderView) -> set[str]:
    """What may be done to the order now (the services check again)."""
    from crm_orders.billing import may_invoice

    order, status = view.order, view.order.status
    out: set[str] = set()
    if view.record.archived_at is not None:
        return out
    if status == Status.OPEN.value:
        out |= {"edit", "cancel"}
        if order.kind == Kind.SALES.value and view.lines:
            out.add("fulfil")
        if order.kind == Kind.LOANER.value:
            out.add("hand_over")
    if order.kind == Kind.LOANER.value and status == Status.OUT.value:
        out |= {"return", "extend"}
    if may_invoice(ctx, order, view.invoice) and (view.lines or order.kind == Kind.LOANER.value):
        out.add("invoice")
    return out


__all__ = ["actions", "cancel_order", "extend_loan", "fulfil_order", "hand_over", "return_unit"]
