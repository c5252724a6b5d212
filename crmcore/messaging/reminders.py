"""Reminders that fall due become the "reminder.due" notification event, once each.

Nothing happens in a request when a reminder's time comes, so every ``crm worker`` runs
:func:`announce_due_reminders` on a schedule (:func:`crmcore.outbox.service.register_periodic`).
It claims due, open, unannounced reminders (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several
workers share them; SQLite runs one worker at a time), marks them announced and raises the event
for each in ONE transaction per business: the messages the rules write are outbox rows of that
same transaction, so a reminder is announced exactly once, and a crash announces nothing.
A business that has not switched notification rules on gets its reminders marked, not sent (so
switching rules on later does not send a burst of stale notices).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from crmcore.context import use_case
from crmcore.db import utcnow
from crmcore.tenancy.models import Role
from crmcore.timeline.models import Reminder

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.runtime import Crm

EVENT = "reminder.due"
#: reminders claimed per business per run (the rest wait for the next run, seconds later)
BATCH = 200
NOTIFICATIONS_PLUGIN = "core-notifications"


def _due_businesses(crm: Crm, now: object) -> list[int]:
    with crm.db.transaction(unscoped=True, write=False) as session:
        return list(session.scalars(
            select(Reminder.business_id).where(Reminder.done_at.is_(None), Reminder.notified_at.is_(None),
                                               Reminder.due_at <= now).distinct()))


def announce_due_reminders(crm: Crm) -> int:
    """Announce the reminders that are due now; returns how many were claimed."""
    from crmcore.context import Context

    now = utcnow()
    handled = 0
    for business_id in _due_businesses(crm, now):
        ctx = Context.open(crm, business_id, None, system=True)
        try:
            handled += _announce(ctx, now)
        finally:
            ctx.close()
    return handled


@use_case(Role.OWNER)
def _announce(ctx: Context, now: dt.datetime) -> int:
    """One business's due reminders: claimed, marked and announced in this one transaction."""
    from crmcore.messaging.rules import notify

    session = ctx.session
    claim = (select(Reminder).where(Reminder.done_at.is_(None), Reminder.notified_at.is_(None),
                                    Reminder.due_at <= now)
             .order_by(Reminder.due_at, Reminder.id).limit(BATCH))
    if session.get_bind().dialect.name == "postgresql":
        claim = claim.with_for_update(skip_locked=True)
    reminders = list(session.scalars(claim))
    if not reminders:
        return 0
    session.execute(update(Reminder).where(Reminder.id.in_([r.id for r in reminders]))
                    .values(notified_at=now).execution_options(synchronize_session=False))
    if ctx.is_enabled(NOTIFICATIONS_PLUGIN):
        for reminder in reminders:
            notify(ctx, EVENT, reminder=reminder, party=reminder.party_id, record=reminder.record_id)
    return len(reminders)
