"""Reminders (due actions) and the "my actions" lists across time zones."""

import datetime as dt

import pytest
from sqlalchemy import func, select

from crmcore.auth.service import create_user
from crmcore.errors import NotFound, PermissionDenied, ValidationFailed
from crmcore.parties.models import Party
from crmcore.records.models import Record
from crmcore.timeline import service as timeline
from crmcore.timeline.models import Reminder, TimelineEvent

UTC = dt.UTC
NOW = dt.datetime(2024, 3, 10, 23, 30, tzinfo=UTC)  # 00:30 on March 11 in Berlin, 19:30 in New York


def party(ctx, name="Acme Corp"):
    row = Party(kind="organisation", name=name, name_key=name.casefold())
    ctx.session.add(row)
    ctx.session.commit()
    return row


def count(ctx, model):
    ctx.session.rollback()
    return ctx.session.scalar(select(func.count()).select_from(model))


def remind(ctx, title, due, **kwargs):
    return timeline.add_reminder(ctx, title=title, due_at=due, **kwargs)


def titles(rows):
    return [r.title for r in rows]


# -- creating and changing ----------------------------------------------------------------------


def test_add_reminder_defaults_to_acting_user_and_logs_event(ctx):
    p = party(ctx)
    rem = remind(ctx, "  Call back  ", dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
                 party_id=p.id, description="about the quote")
    assert rem.title == "Call back" and rem.assigned_to_id == ctx.user_id and rem.created_by_id == ctx.user_id
    assert rem.due_at == dt.datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    [ev] = timeline.feed(ctx, party_id=p.id).items
    assert ev.kind == "reminder" and ev.summary == "Reminder for Acme Equipment Owner: Call back (due 2024-05-01 08:00 UTC)"


def test_reminder_on_record_carries_its_party(ctx):
    p = party(ctx)
    r = Record(type="deal", title="Deal", party_id=p.id)
    ctx.session.add(r)
    ctx.session.commit()
    rem = remind(ctx, "Send quote", NOW, record_id=r.id)
    assert rem.party_id == p.id
    assert timeline.feed(ctx, party_id=p.id).items[0].record_id == r.id


def test_bad_reminder_input_names_the_field(ctx):
    cases = [
        ({"due_at": dt.datetime(2024, 1, 1)}, "due_at"),
        ({"due_at": "tomorrow"}, "due_at"),
        ({"title": ""}, "title"),
        ({"title": "x" * 301}, "title"),
        ({"assigned_to_id": 0}, "assigned_to_id"),
        ({"description": "x" * 20_001}, "description"),
        ({"party_id": -1}, "party_id"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ValidationFailed) as exc:
            timeline.add_reminder(ctx, **{"title": "Call", "due_at": NOW, **kwargs})
        assert field in exc.value.errors, kwargs
    assert count(ctx, Reminder) == 0


def test_iso_string_due_date_is_accepted(ctx):
    assert remind(ctx, "Call", "2024-03-10T12:00:00+01:00").due_at == dt.datetime(2024, 3, 10, 11, tzinfo=UTC)


def test_assignee_must_be_a_member_who_can_act(ctx, business, other_business, make_user, crm):
    outsider = create_user(crm, "outsider@example.com", "correct horse battery")
    with pytest.raises(NotFound, match="not a member"):
        remind(ctx, "Call", NOW, assigned_to_id=outsider.id)
    other_owner = make_user(other_business, "member")
    with pytest.raises(NotFound):
        remind(ctx, "Call", NOW, assigned_to_id=other_owner.user_id)
    reader = make_user(business, "read_only")
    with pytest.raises(ValidationFailed, match="read-only"):
        remind(ctx, "Call", NOW, assigned_to_id=reader.user_id)
    member = make_user(business, "member")
    assert remind(ctx, "Call", NOW, assigned_to_id=member.user_id).assigned_to_id == member.user_id
    assert count(ctx, Reminder) == 1


def test_read_only_cannot_add_or_complete(ctx, business, make_user):
    rem = remind(ctx, "Call", NOW)
    reader = make_user(business, "read_only")
    with pytest.raises(PermissionDenied):
        remind(reader, "Call", NOW)
    with pytest.raises(PermissionDenied):
        timeline.complete_reminder(reader, rem.id)


def test_complete_and_reopen(ctx, business, make_user):
    p = party(ctx)
    rem = remind(ctx, "Call", NOW, party_id=p.id)
    colleague = make_user(business, "member")
    done = timeline.complete_reminder(colleague, rem.id)
    assert done.done_at is not None and done.done_by_id == colleague.user_id
    again = timeline.complete_reminder(colleague, rem.id)
    assert again.done_at == done.done_at
    timeline.reopen_reminder(ctx, rem.id)
    ctx.session.expire_all()
    fresh = ctx.session.get(Reminder, rem.id)
    assert fresh.done_at is None and fresh.done_by_id is None
    kinds = [e.kind for e in timeline.feed(ctx, party_id=p.id).items]
    assert kinds == ["reminder_reopened", "reminder_completed", "reminder"]


def test_update_and_delete_rights(ctx, business, make_user):
    p = party(ctx)
    creator = make_user(business, "member")
    assignee = make_user(business, "member")
    stranger = make_user(business, "member")
    rem = remind(creator, "Call", NOW, assigned_to_id=assignee.user_id, party_id=p.id)
    with pytest.raises(PermissionDenied):
        timeline.update_reminder(stranger, rem.id, title="mine now")
    timeline.update_reminder(assignee, rem.id, title="Call Bob", due_at=NOW + dt.timedelta(days=1))
    timeline.update_reminder(creator, rem.id, description="bring the contract")
    timeline.update_reminder(ctx, rem.id, description=None)
    ctx.session.expire_all()
    fresh = ctx.session.get(Reminder, rem.id)
    assert (fresh.title, fresh.due_at, fresh.description) == ("Call Bob", NOW + dt.timedelta(days=1), None)
    with pytest.raises(ValidationFailed) as exc:
        timeline.update_reminder(creator, rem.id, colour="red")
    assert "colour" in exc.value.errors
    with pytest.raises(PermissionDenied):
        timeline.delete_reminder(stranger, rem.id)
    timeline.delete_reminder(assignee, rem.id)
    assert count(ctx, Reminder) == 0 and count(ctx, TimelineEvent) == 0


def test_other_business_reminder_is_not_found(ctx, other_ctx):
    rem = remind(ctx, "Call", NOW)
    for call in (timeline.complete_reminder, timeline.reopen_reminder, timeline.delete_reminder):
        with pytest.raises(NotFound):
            call(other_ctx, rem.id)
    with pytest.raises(NotFound):
        timeline.update_reminder(other_ctx, rem.id, title="x")


# -- my actions --------------------------------------------------------------------------------


def _seed(ctx):
    remind(ctx, "last week", NOW - dt.timedelta(days=7))
    remind(ctx, "utc evening", dt.datetime(2024, 3, 10, 22, 0, tzinfo=UTC))   # 23:00 Mar 10 Berlin
    remind(ctx, "utc noon", dt.datetime(2024, 3, 10, 12, 0, tzinfo=UTC))
    remind(ctx, "after midnight utc", dt.datetime(2024, 3, 11, 1, 0, tzinfo=UTC))  # 02:00 Mar 11 Berlin
    remind(ctx, "in six days", NOW + dt.timedelta(days=6))
    remind(ctx, "in ten days", NOW + dt.timedelta(days=10))
    done = remind(ctx, "done already", dt.datetime(2024, 3, 10, 9, 0, tzinfo=UTC))
    timeline.complete_reminder(ctx, done.id)


def test_my_actions_in_utc(ctx):
    _seed(ctx)
    actions = timeline.my_actions(ctx, now=NOW, tz="UTC")
    assert titles(actions["overdue"]) == ["last week"]
    assert titles(actions["today"]) == ["utc noon", "utc evening"]
    assert titles(actions["upcoming"]) == ["after midnight utc", "in six days"]
    assert actions["more"] == {"overdue": False, "today": False, "upcoming": False}
    assert actions["today_date"] == dt.date(2024, 3, 10)


def test_my_actions_across_the_date_line_in_berlin(ctx):
    _seed(ctx)
    actions = timeline.my_actions(ctx, now=NOW, tz="Europe/Berlin")
    assert actions["today_date"] == dt.date(2024, 3, 11)
    assert titles(actions["overdue"]) == ["last week", "utc noon", "utc evening"]
    assert titles(actions["today"]) == ["after midnight utc"]
    assert titles(actions["upcoming"]) == ["in six days"]


def test_my_actions_in_new_york_and_business_default(ctx):
    _seed(ctx)
    ny = timeline.my_actions(ctx, now=NOW, tz="America/New_York")
    assert ny["today_date"] == dt.date(2024, 3, 10)  # the DST switch day in New York
    assert titles(ny["today"]) == ["utc noon", "utc evening", "after midnight utc"]
    assert titles(timeline.my_actions(ctx, now=NOW)["today"]) == titles(
        timeline.my_actions(ctx, now=NOW, tz="UTC")["today"])


def test_my_actions_of_another_user_and_errors(ctx, business, make_user, other_ctx):
    member = make_user(business, "member")
    remind(ctx, "for member", NOW, assigned_to_id=member.user_id)
    assert titles(timeline.my_actions(ctx, user_id=member.user_id, now=NOW, tz="UTC")["today"]) == ["for member"]
    assert timeline.my_actions(ctx, now=NOW, tz="UTC")["today"] == []
    assert titles(timeline.my_actions(member, now=NOW, tz="UTC")["today"]) == ["for member"]
    with pytest.raises(ValidationFailed) as exc:
        timeline.my_actions(ctx, tz="Mars/Olympus")
    assert "tz" in exc.value.errors
    with pytest.raises(NotFound):
        timeline.my_actions(ctx, user_id=other_ctx.user_id)
    with pytest.raises(ValidationFailed):
        timeline.my_actions(ctx, now=dt.datetime(2024, 1, 1))
    assert titles(timeline.my_actions(other_ctx, now=NOW, tz="UTC")["today"]) == []


def test_my_actions_lists_are_capped(ctx):
    rows = [Reminder(title=f"r{i:03}", due_at=NOW - dt.timedelta(days=2, minutes=i), assigned_to_id=ctx.user_id)
            for i in range(timeline.ACTIONS_CAP + 3)]
    ctx.session.add_all(rows)
    ctx.session.commit()
    actions = timeline.my_actions(ctx, now=NOW, tz="UTC")
    assert len(actions["overdue"]) == timeline.ACTIONS_CAP and actions["more"]["overdue"] is True
    assert actions["overdue"][0].title == f"r{timeline.ACTIONS_CAP + 2:03}"
