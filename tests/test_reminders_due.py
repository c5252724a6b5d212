"""Reminders that fall due are announced once, by the worker's periodic scan, as the
``reminder.due`` notification event to the reminder's assignee."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from crmcore.db import utcnow
from crmcore.messaging import rules
from crmcore.messaging import service as messaging
from crmcore.messaging.reminders import announce_due_reminders
from crmcore.outbox.service import PERIODIC
from crmcore.parties.service import create_party
from crmcore.timeline.models import Reminder
from crmcore.timeline.service import add_reminder, complete_reminder


def log(ctx):
    return [(m.event, m.to_address, m.status, m.subject) for m in reversed(messaging.list_messages(ctx).items)]


def due_rule(ctx):
    template = messaging.create_template(ctx, {
        "key": "reminder.due", "name": "Reminder due",
        "subject": "Due: {{ reminder.title }}{% if party %} ({{ party.name }}){% endif %}",
        "body_text": "{{ recipient.name }}, {{ reminder.title }} is due."})
    return rules.create_rule(ctx, {"event": "reminder.due", "recipient": "responsible_user", "channel": "email",
                                   "template_id": template.id, "active": True})


def notified_at(ctx, reminder_id):
    with ctx.crm.db.engine.connect() as conn:
        return conn.execute(select(Reminder.notified_at).where(Reminder.id == reminder_id)).scalar()


def test_a_due_reminder_is_announced_once_to_its_assignee(ctx, make_user):
    rep = make_user(ctx.business, "member", email="rep@acme.example")
    party = create_party(ctx, {"kind": "organisation", "name": "Meadow Farms"})
    due_rule(ctx)
    past = utcnow() - dt.timedelta(minutes=5)
    due = add_reminder(ctx, title="Call back", due_at=past, assigned_to_id=rep.user_id, party_id=party.id)
    later = add_reminder(ctx, title="Next week", due_at=utcnow() + dt.timedelta(days=7), assigned_to_id=rep.user_id)
    done = add_reminder(ctx, title="Done already", due_at=past, assigned_to_id=rep.user_id)
    complete_reminder(ctx, done.id)
    assert announce_due_reminders(ctx.crm) == 1
    assert log(ctx) == [("reminder.due", "rep@acme.example", "queued", "Due: Call back (Meadow Farms)")]
    message = messaging.list_messages(ctx).items[0]
    assert message.party_id == party.id
    assert notified_at(ctx, due.id) is not None
    assert notified_at(ctx, later.id) is None and notified_at(ctx, done.id) is None
    assert announce_due_reminders(ctx.crm) == 0  # a second scan announces nothing again
    assert len(log(ctx)) == 1


def test_without_rules_switched_on_reminders_are_marked_not_sent(ctx, make_user):
    rep = make_user(ctx.business, "member", email="rep@acme.example")
    reminder = add_reminder(ctx, title="Quiet", due_at=utcnow() - dt.timedelta(minutes=1), assigned_to_id=rep.user_id)
    assert not ctx.is_enabled(rules.NAME)
    assert announce_due_reminders(ctx.crm) == 1
    assert notified_at(ctx, reminder.id) is not None and log(ctx) == []
    due_rule(ctx)  # switching rules on later sends no stale notice
    assert announce_due_reminders(ctx.crm) == 0 and log(ctx) == []


def test_each_business_gets_only_its_own_reminders(ctx, other_ctx, make_user):
    rep = make_user(ctx.business, "member", email="rep@acme.example")
    due_rule(ctx)
    add_reminder(ctx, title="Ours", due_at=utcnow() - dt.timedelta(minutes=1), assigned_to_id=rep.user_id)
    add_reminder(other_ctx, title="Theirs", due_at=utcnow() - dt.timedelta(minutes=1))
    assert announce_due_reminders(ctx.crm) == 2
    assert [row[3] for row in log(ctx)] == ["Due: Ours"]
    assert log(other_ctx) == []  # the other business has no rules: marked, not sent


def test_a_failing_scan_is_rolled_back_and_retried(ctx, make_user, monkeypatch):
    rep = make_user(ctx.business, "member", email="rep@acme.example")
    due_rule(ctx)
    reminder = add_reminder(ctx, title="Retry me", due_at=utcnow() - dt.timedelta(minutes=1),
                            assigned_to_id=rep.user_id)

    def broken(*_args, **_kwargs):
        raise RuntimeError("rules broke")

    monkeypatch.setattr(rules, "notify", broken)
    with pytest.raises(RuntimeError):  # the worker logs it and tries again at the next turn
        announce_due_reminders(ctx.crm)
    assert notified_at(ctx, reminder.id) is None and log(ctx) == []  # nothing half done
    monkeypatch.undo()
    assert announce_due_reminders(ctx.crm) == 1 and len(log(ctx)) == 1


def test_every_worker_runs_the_scan():
    fn, interval = PERIODIC["reminders.due"]
    assert fn is announce_due_reminders and 0 < interval <= 60


def test_a_new_due_time_is_announced_again(ctx, make_user):
    from crmcore.timeline.service import update_reminder

    rep = make_user(ctx.business, "member", email="rep@acme.example")
    due_rule(ctx)
    reminder = add_reminder(ctx, title="Postponed", due_at=utcnow() - dt.timedelta(minutes=1),
                            assigned_to_id=rep.user_id)
    assert announce_due_reminders(ctx.crm) == 1
    update_reminder(ctx, reminder.id, title="Postponed (renamed)")  # not the due time: stays announced
    assert announce_due_reminders(ctx.crm) == 0
    update_reminder(ctx, reminder.id, due_at=utcnow() - dt.timedelta(seconds=1))
    assert announce_due_reminders(ctx.crm) == 1
    assert [row[3] for row in log(ctx)] == ["Due: Postponed", "Due: Postponed (renamed)"]


def test_a_failing_periodic_task_never_stops_the_worker_or_the_others(crm, ctx, make_user, caplog):
    from crmcore.outbox.service import register_periodic
    from crmcore.outbox.worker import Worker

    calls = []

    def broken(_crm):
        raise RuntimeError("scan broke")

    def counting(_crm):
        calls.append(1)
        return 0

    register_periodic("test.broken", broken, interval=60)
    register_periodic("test.counting", counting, interval=60)
    try:
        rep = make_user(ctx.business, "member", email="rep@acme.example")
        due_rule(ctx)
        add_reminder(ctx, title="Via the worker", due_at=utcnow() - dt.timedelta(minutes=1),
                     assigned_to_id=rep.user_id)
        Worker(crm).run(once=True)
    finally:
        PERIODIC.pop("test.broken", None)
        PERIODIC.pop("test.counting", None)
    assert calls == [1]
    assert "periodic task test.broken failed: RuntimeError: scan broke" in caplog.text
    assert [row[3] for row in log(ctx)] == ["Due: Via the worker"]
