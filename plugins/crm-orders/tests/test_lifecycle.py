"""Every step of an order's life and every refusal: a sales order fulfilled or cancelled; a
loaner handed over (a reminder for its owner on the due-back day), extended, overdue (shown and
filtered, never stored), returned; each step on the timeline."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from crm_orders import service
from crm_orders.plugin import crm_record_statuses
from sqlalchemy import select

from crmcore.errors import Conflict, ValidationFailed
from crmcore.plugins.service import save_settings
from crmcore.timeline.models import Reminder, TimelineEvent

from .conftest import line, new_party  # noqa: TID252


def kinds(ctx, record_id):
    return [e.kind for e in ctx.session.scalars(select(TimelineEvent).where(TimelineEvent.record_id == record_id)
                                                .order_by(TimelineEvent.id))]


def reminders(ctx, record_id):
    return list(ctx.session.scalars(select(Reminder).where(Reminder.record_id == record_id).order_by(Reminder.id)))


def sales(ctx, lines=True):
    return service.create_order(ctx, {"party_id": new_party(ctx).id, "lines": [line()] if lines else []})


def loaner(ctx, **data):
    return service.create_order(ctx, {"kind": "loaner", "party_id": new_party(ctx).id,
                                      "unit_description": "Demo tractor T100", "unit_serial": "T100-0042", **data})


def test_a_sales_order_is_fulfilled_once_and_locked(o):
    record = sales(o)
    service.fulfil_order(o, record.id)
    view = service.get_order(o, record.id)
    assert (view.status, view.order.fulfilled_by_id) == ("fulfilled", o.user_id)
    assert view.order.fulfilled_at is not None and view.locked
    assert "order_fulfilled" in kinds(o, record.id)
    with pytest.raises(Conflict) as exc:
        service.fulfil_order(o, record.id)
    assert "is fulfilled: it cannot be fulfilled" in exc.value.message
    with pytest.raises(Conflict):
        service.cancel_order(o, record.id, "too late")


def test_an_order_without_lines_is_not_fulfilled(o):
    record = sales(o, lines=False)
    with pytest.raises(Conflict) as exc:
        service.fulfil_order(o, record.id)
    assert "no lines" in exc.value.message
    assert service.get_order(o, record.id).status == "open"


def test_cancelling_needs_a_reason_and_is_final(o):
    record = sales(o)
    with pytest.raises(ValidationFailed) as exc:
        service.cancel_order(o, record.id, "  ")
    assert "reason" in exc.value.errors
    service.cancel_order(o, record.id, "Customer bought elsewhere")
    view = service.get_order(o, record.id)
    assert (view.status, view.order.cancel_reason) == ("cancelled", "Customer bought elsewhere")
    for step in (lambda: service.fulfil_order(o, record.id), lambda: service.cancel_order(o, record.id, "again")):
        with pytest.raises(Conflict):
            step()
    assert kinds(o, record.id)[-1] == "order_cancelled"


def test_the_kinds_keep_to_their_own_steps(o):
    order, loan = sales(o), loaner(o)
    with pytest.raises(Conflict) as exc:
        service.hand_over(o, order.id)
    assert "only a loaner order" in exc.value.message
    with pytest.raises(Conflict) as exc:
        service.fulfil_order(o, loan.id)
    assert "hand its unit over" in exc.value.message
    with pytest.raises(Conflict):
        service.return_unit(o, loan.id)  # not out yet
    with pytest.raises(Conflict):
        service.extend_loan(o, order.id, "2030-01-01")


def test_handing_a_loaner_over_sets_its_dates_and_reminds_the_owner(o):
    day = service.today(o)
    record = loaner(o, due_back=(day + dt.timedelta(days=10)).isoformat())
    service.hand_over(o, record.id)
    view = service.get_order(o, record.id)
    assert (view.status, view.order.lent_on, view.order.due_back) == ("out", day, day + dt.timedelta(days=10))
    assert view.locked and {"return", "extend"} <= view.actions and "edit" not in view.actions
    (reminder,) = reminders(o, record.id)
    assert reminder.assigned_to_id == record.owner_id == o.user_id and reminder.done_at is None
    assert reminder.due_at.date() == view.order.due_back and "T100-0042" in (reminder.description or "")
    assert view.order.reminder_id == reminder.id
    assert {"reminder", "loaner_out"} <= set(kinds(o, record.id))
    with pytest.raises(Conflict):
        service.update_order(o, record.id, {"unit_serial": "swapped"})


def test_hand_over_defaults_and_refusals(o):
    day = service.today(o)
    record = loaner(o, order_date=(day - dt.timedelta(days=30)).isoformat())  # due back 14 days after that
    with pytest.raises(ValidationFailed) as exc:
        service.hand_over(o, record.id, {"lent_on": (day + dt.timedelta(days=1)).isoformat()})
    assert "today or earlier" in exc.value.errors["lent_on"][0]
    with pytest.raises(ValidationFailed) as exc:
        service.hand_over(o, record.id, {"due_back": (day - dt.timedelta(days=1)).isoformat()})
    assert "on or after the day the unit is lent" in exc.value.errors["due_back"][0]
    assert service.get_order(o, record.id).status == "open" and reminders(o, record.id) == []
    service.hand_over(o, record.id)  # the stored due-back day is past: lent today + loan days
    assert service.get_order(o, record.id).order.due_back == day + dt.timedelta(days=14)


def test_a_unit_must_be_described_before_it_is_lent(o):
    record = service.create_order(o, {"kind": "loaner", "party_id": new_party(o).id})
    with pytest.raises(ValidationFailed) as exc:
        service.hand_over(o, record.id)
    assert "describe the unit" in exc.value.errors["unit_description"][0]


def test_no_reminder_when_the_setting_is_off(o):
    save_settings(o, "orders", {"remind_due_back": False})
    record = loaner(o)
    service.hand_over(o, record.id)
    assert reminders(o, record.id) == [] and service.get_order(o, record.id).order.reminder_id is None


def test_a_loan_is_extended_and_its_reminder_moves(o):
    day = service.today(o)
    record = loaner(o)
    service.hand_over(o, record.id)
    with pytest.raises(ValidationFailed) as exc:
        service.extend_loan(o, record.id, (day - dt.timedelta(days=1)).isoformat())
    assert "on or after the day the unit was lent" in exc.value.errors["due_back"][0]
    with pytest.raises(ValidationFailed):
        service.extend_loan(o, record.id, "")
    later = day + dt.timedelta(days=40)
    service.extend_loan(o, record.id, later.isoformat())
    old, new = reminders(o, record.id)
    assert old.done_at is not None and new.done_at is None and new.due_at.date() == later
    assert service.get_order(o, record.id).order.due_back == later
    assert "loaner_extended" in kinds(o, record.id)


def test_an_overdue_loaner_is_shown_and_found_but_not_stored(o):
    day = service.today(o)
    late = loaner(o)
    service.hand_over(o, late.id, {"lent_on": (day - dt.timedelta(days=10)).isoformat(),
                                   "due_back": (day - dt.timedelta(days=3)).isoformat()})
    due_today = loaner(o)
    service.hand_over(o, due_today.id, {"due_back": day.isoformat()})
    view = service.get_order(o, late.id)
    assert (view.status, view.overdue, view.order.status) == ("overdue", True, "out")
    assert service.get_order(o, due_today.id).status == "out"  # due today is not late yet
    assert [s.record_id for s in service.lookup_orders(o, {"status": "overdue"}).items] == [late.id]
    assert {s.record_id for s in service.lookup_orders(o, {"status": "out"}).items} == {late.id, due_today.id}
    answer = crm_record_statuses(ctx=o, record_type="loaner_order", records=[view.record])
    assert answer == {late.id: "overdue"}


def test_a_returned_unit_ends_the_loan(o):
    day = service.today(o)
    record = loaner(o)
    service.hand_over(o, record.id, {"lent_on": (day - dt.timedelta(days=20)).isoformat(),
                                     "due_back": (day - dt.timedelta(days=2)).isoformat()})
    for bad, words in (((day + dt.timedelta(days=1)).isoformat(), "today or earlier"),
                       ((day - dt.timedelta(days=21)).isoformat(), "on or after the day the unit was lent")):
        with pytest.raises(ValidationFailed) as exc:
            service.return_unit(o, record.id, {"returned_on": bad})
        assert words in exc.value.errors["returned_on"][0]
    service.return_unit(o, record.id, {"condition": "Scratch on the left door"})
    view = service.get_order(o, record.id)
    assert (view.status, view.order.returned_on, view.order.return_condition) == \
        ("returned", day, "Scratch on the left door")
    assert not view.overdue and all(r.done_at is not None for r in reminders(o, record.id))
    feed = o.session.scalars(select(TimelineEvent).where(TimelineEvent.record_id == record.id,
                                                         TimelineEvent.kind == "loaner_returned")).one()
    assert "2 days late" in feed.summary and feed.data["days_late"] == 2
    with pytest.raises(Conflict):
        service.return_unit(o, record.id)
    with pytest.raises(Conflict):
        service.cancel_order(o, record.id, "no")


def test_totals_of_a_loaner_with_a_fee(o):
    record = loaner(o, lines=[line(description="Loan fee, 2 weeks", unit_price="150", tax_rate="21")])
    view = service.get_order(o, record.id)
    assert (view.totals.net, view.totals.total) == (D("150.00"), D("181.50"))
