"""The timeline: log_event, notes and the feed of a party or a record."""

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select

from crmcore.audit.models import AuditEntry
from crmcore.context import use_case
from crmcore.errors import NotFound, PermissionDenied, ValidationFailed
from crmcore.parties.models import Party
from crmcore.records.models import Record
from crmcore.tenancy.models import Role
from crmcore.timeline import service as timeline
from crmcore.timeline.models import Note, TimelineEvent


def party(ctx, name="Acme Corp"):
    row = Party(kind="organisation", name=name, name_key=name.casefold())
    ctx.session.add(row)
    ctx.session.commit()
    return row


def record(ctx, party_row, title="T"):
    row = Record(type="deal", title=title, party_id=party_row.id if party_row else None)
    ctx.session.add(row)
    ctx.session.commit()
    return row


def count(ctx, model):
    ctx.session.rollback()
    return ctx.session.scalar(select(func.count()).select_from(model))


@use_case(Role.MEMBER)
def _log(ctx, kind, summary, **kwargs):
    return timeline.log_event(ctx, kind, summary, **kwargs)


# -- log_event ---------------------------------------------------------------------------------


def test_log_event_fills_party_from_record_and_actor(ctx):
    p = party(ctx)
    r = record(ctx, p)
    event_ = _log(ctx, "stage_change", "moved to Won", record_id=r.id, data={"to": "Won"})
    assert event_.party_id == p.id and event_.record_id == r.id
    assert event_.actor_id == ctx.user_id
    assert event_.occurred_at.tzinfo is not None
    assert event_.id is None  # written at commit with the transaction's other append-only rows
    stored = ctx.session.scalars(select(TimelineEvent).where(TimelineEvent.kind == "stage_change")).one()
    assert (stored.party_id, stored.record_id, stored.data) == (p.id, r.id, {"to": "Won"})


def test_log_event_truncates_summary(ctx):
    p = party(ctx)
    event_ = _log(ctx, "party_updated", "x" * 2000, party_id=p.id)
    assert len(event_.summary) == 500 and event_.summary.endswith("…")


def test_log_event_rolls_back_with_the_use_case(ctx):
    p = party(ctx)

    @use_case(Role.MEMBER)
    def failing(c):
        timeline.log_event(c, "party_updated", "will vanish", party_id=p.id)
        c.session.flush()
        raise ValidationFailed("no")

    with pytest.raises(ValidationFailed):
        failing(ctx)
    assert count(ctx, TimelineEvent) == 0


# -- notes -------------------------------------------------------------------------------------


def test_add_note_on_record_logs_event_on_party_feed(ctx):
    p = party(ctx)
    r = record(ctx, p)
    note = timeline.add_note(ctx, body="  Called them about the renewal; they want a demo next week.  ",
                             record_id=r.id)
    assert note.body.startswith("Called") and note.party_id == p.id and note.author_id == ctx.user_id
    page = timeline.feed(ctx, party_id=p.id)
    [ev] = page.items
    assert ev.kind == "note" and ev.ref_type == "note" and ev.ref_id == note.id
    assert ev.summary.startswith("Note by Acme Equipment Owner: Called them")
    assert page.extra["refs"]["note"][note.id].body == note.body
    assert page.extra["actors"][ctx.user_id].email == "owner@acme.example"
    assert [e.id for e in timeline.feed(ctx, record_id=r.id).items] == [ev.id]


def test_note_summary_is_an_excerpt(ctx):
    p = party(ctx)
    timeline.add_note(ctx, body="word " * 100, party_id=p.id)
    ev = timeline.feed(ctx, party_id=p.id).items[0]
    assert len(ev.summary) < 120 and ev.summary.endswith("…")


def test_add_note_bad_input_names_the_field(ctx):
    p = party(ctx)
    cases = [
        ({"body": ""}, "body"),
        ({"body": "   "}, "body"),
        ({"body": "x" * 20_001}, "body"),
        ({"body": 5}, "body"),
        ({"body": "ok", "party_id": None}, "party_id"),
        ({"body": "ok", "party_id": "abc"}, "party_id"),
        ({"body": "ok", "party_id": True}, "party_id"),
    ]
    for kwargs, field in cases:
        kwargs = {"party_id": p.id, **kwargs}
        with pytest.raises(ValidationFailed) as exc:
            timeline.add_note(ctx, **kwargs)
        assert field in exc.value.errors, kwargs
    assert count(ctx, Note) == 0 and count(ctx, TimelineEvent) == 0


def test_add_note_max_length_is_accepted(ctx):
    note = timeline.add_note(ctx, body="x" * 20_000, party_id=party(ctx).id)
    assert len(note.body) == 20_000


def test_note_record_must_belong_to_party(ctx):
    p1, p2 = party(ctx, "One"), party(ctx, "Two")
    r = record(ctx, p2)
    with pytest.raises(ValidationFailed) as exc:
        timeline.add_note(ctx, body="x", party_id=p1.id, record_id=r.id)
    assert "does not belong to party" in exc.value.message and "record_id" in exc.value.errors
    assert count(ctx, Note) == 0


def test_note_on_other_business_party_or_record_is_not_found(ctx, other_ctx):
    theirs = party(other_ctx, "Theirs")
    their_record = record(other_ctx, theirs)
    with pytest.raises(NotFound, match="party"):
        timeline.add_note(ctx, body="x", party_id=theirs.id)
    with pytest.raises(NotFound, match="record"):
        timeline.add_note(ctx, body="x", record_id=their_record.id)
    with pytest.raises(NotFound):
        timeline.add_note(ctx, body="x", party_id=999_999)
    assert count(ctx, Note) == 0


def test_read_only_cannot_add_note(ctx, business, make_user):
    p = party(ctx)
    reader = make_user(business, "read_only")
    with pytest.raises(PermissionDenied):
        timeline.add_note(reader, body="x", party_id=p.id)
    assert timeline.feed(reader, party_id=p.id).items == []


def test_update_note_by_author_updates_feed_and_audit(ctx):
    p = party(ctx)
    note = timeline.add_note(ctx, body="first", party_id=p.id)
    timeline.update_note(ctx, note.id, body="second version", pinned=True)
    ctx.session.expire_all()
    assert ctx.session.get(Note, note.id).pinned is True
    assert timeline.feed(ctx, party_id=p.id).items[0].summary.endswith(": second version")
    entry = ctx.session.scalars(select(AuditEntry).where(AuditEntry.action == "note.updated")).one()
    assert entry.changes == {"body": ["first", "second version"], "pinned": [False, True]}


def test_only_author_or_admin_changes_a_note(ctx, business, make_user):
    p = party(ctx)
    ann = make_user(business, "member")
    bob = make_user(business, "member")
    admin = make_user(business, "admin")
    note = timeline.add_note(ann, body="mine", party_id=p.id)
    with pytest.raises(PermissionDenied, match="author"):
        timeline.update_note(bob, note.id, body="hijacked")
    with pytest.raises(PermissionDenied):
        timeline.delete_note(bob, note.id)
    timeline.update_note(admin, note.id, pinned=True)
    timeline.delete_note(ann, note.id)
    assert count(ctx, Note) == 0
    assert timeline.feed(ctx, party_id=p.id).items == []


def test_update_note_validates_and_other_business_is_not_found(ctx, other_ctx):
    note = timeline.add_note(ctx, body="mine", party_id=party(ctx).id)
    with pytest.raises(ValidationFailed) as exc:
        timeline.update_note(ctx, note.id, body=" ")
    assert "body" in exc.value.errors
    with pytest.raises(NotFound):
        timeline.update_note(other_ctx, note.id, body="theirs")
    with pytest.raises(NotFound):
        timeline.delete_note(other_ctx, note.id)


# -- the feed ----------------------------------------------------------------------------------


def test_feed_needs_exactly_one_target(ctx):
    p = party(ctx)
    r = record(ctx, p)
    with pytest.raises(ValidationFailed):
        timeline.feed(ctx)
    with pytest.raises(ValidationFailed):
        timeline.feed(ctx, party_id=p.id, record_id=r.id)


def test_feed_of_other_business_is_not_found(ctx, other_ctx):
    p = party(ctx)
    timeline.add_note(ctx, body="secret plans", party_id=p.id)
    with pytest.raises(NotFound):
        timeline.feed(other_ctx, party_id=p.id)


def test_feed_filters_by_kind_and_rejects_bad_cursor(ctx):
    p = party(ctx)
    timeline.add_note(ctx, body="n", party_id=p.id)
    _log(ctx, "party_updated", "renamed", party_id=p.id)
    assert [e.kind for e in timeline.feed(ctx, party_id=p.id, kinds=["note"]).items] == ["note"]
    assert [e.kind for e in timeline.feed(ctx, party_id=p.id, kinds="party_updated").items] == ["party_updated"]
    with pytest.raises(ValidationFailed, match="cursor"):
        timeline.feed(ctx, party_id=p.id, cursor="garbage!")


def test_feed_loads_refs_with_one_query_per_kind(ctx, crm):
    p = party(ctx)
    for i in range(5):
        timeline.add_note(ctx, body=f"note {i}", party_id=p.id)
        timeline.add_reminder(ctx, title=f"call {i}", due_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC), party_id=p.id)
    statements = []

    def count_statements(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(crm.db.engine, "before_cursor_execute", count_statements)
    try:
        page = timeline.feed(ctx, party_id=p.id, limit=20)
    finally:
        event.remove(crm.db.engine, "before_cursor_execute", count_statements)
    assert len(page.items) == 10
    assert len(page.extra["refs"]["note"]) == 5 and len(page.extra["refs"]["reminder"]) == 5
    for table in ("timeline_events", "notes", "reminders", "users"):
        assert sum(f"FROM {table}" in s for s in statements) == 1, table
    # and at most the party check (answered from the session when the party is already loaded),
    # besides the business's versions every use case reads first
    assert len([s for s in statements if s.startswith("SELECT") and "FROM businesses" not in s]) <= 5


def _events(ctx, p, r, n, same_time_every):
    """n events on the party (some via its record), several sharing one timestamp."""
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rows = []
    for i in range(n):
        rows.append(TimelineEvent(party_id=p.id, record_id=r.id if i % 3 == 0 else None, kind="test",
                                  summary=f"e{i}", occurred_at=base + dt.timedelta(seconds=i // same_time_every)))
    ctx.session.add_all(rows)
    ctx.session.commit()
    return sorted(rows, key=lambda e: (e.occurred_at, e.id), reverse=True)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 25), limit=st.integers(1, 8), same=st.integers(1, 4))
def test_feed_pages_concatenate_newest_first(ctx, n, limit, same):
    ctx.session.rollback()
    ctx.session.query(TimelineEvent).delete()
    ctx.session.commit()
    p = ctx.session.scalar(select(Party)) or party(ctx)
    r = ctx.session.scalar(select(Record)) or record(ctx, p)
    expected = _events(ctx, p, r, n, same)
    seen, cursor, pages = [], None, 0
    while True:
        page = timeline.feed(ctx, party_id=p.id, cursor=cursor, limit=limit)
        assert len(page.items) <= limit
        seen.extend(e.id for e in page.items)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [e.id for e in expected]
    assert pages == max(1, -(-n // limit))
    record_feed = [e.id for e in timeline.feed(ctx, record_id=r.id, limit=200).items]
    assert record_feed == [e.id for e in expected if e.record_id == r.id]
