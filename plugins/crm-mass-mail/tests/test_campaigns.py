"""Campaigns end to end on the service layer: the audience walk, the throttle, opt-outs,
idempotent batches, cancelling, validation and business isolation."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from crm_mass_mail import NAME, service
from crm_mass_mail.models import Batch, Campaign, Recipient
from sqlalchemy import select, text

from crmcore import ValidationFailed
from crmcore.errors import Conflict, NotFound, PermissionDenied
from crmcore.messaging import service as messaging
from crmcore.outbox.service import run_messages
from crmcore.parties.service import create_party


def make_party(ctx, name, email=None, kind="organisation"):
    data: dict[str, Any] = {"kind": kind, "name": name}
    if kind == "person":
        first, _, last = name.partition(" ")
        data = {"kind": kind, "first_name": first, "last_name": last or first}
    if email:
        data["mechanisms"] = [{"kind": "email", "value": email}]
    return create_party(ctx, data)


def rows(crm, sql, **params):
    with crm.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def campaign_data(**changes):
    data = {"name": "Spring news", "template_key": "newsletter", "throttle": 100, "audience": {"kind": "organisation"}}
    data.update(changes)
    return data


def batch_jobs(crm):
    return rows(crm, "select id, status, next_attempt_at, payload from outbox where kind = 'mass_mail.batch' order by id")


def run_all_batches(crm):
    """What the worker does once the throttle's delays have passed: run every batch job."""
    ids = [job["id"] for job in batch_jobs(crm) if job["status"] in ("pending", "failed")]
    return run_messages(crm, ids)


def recipients(ctx, campaign_id):
    ctx.session.rollback()
    return list(ctx.session.scalars(select(Recipient).where(Recipient.campaign_id == campaign_id)
                                    .order_by(Recipient.id)))


def fresh(ctx, campaign_id):
    ctx.session.rollback()
    return service.get_campaign(ctx, campaign_id)


def test_the_audience_is_walked_page_by_page(mm):
    ctx = mm
    orgs = [make_party(ctx, f"Org {i}", f"org{i}@example.com") for i in range(7)]
    make_party(ctx, "Org without mail")
    make_party(ctx, "Pat Person", "pat@example.com", kind="person")  # not in the audience
    campaign = service.create_campaign(ctx, campaign_data(throttle=3))
    started = service.start_campaign(ctx, campaign.id)
    assert started.status == "sending" and started.recipients_total == 7
    assert started.batches_total >= 3  # pages of at most 3 parties (the throttle): > one page
    batches = list(ctx.session.scalars(select(Batch).where(Batch.campaign_id == campaign.id).order_by(Batch.seq)))
    assert all(len(b.party_ids) <= 3 for b in batches)
    walked = [pid for b in batches for pid in b.party_ids]
    assert sorted(walked) == sorted(p.id for p in orgs) and len(walked) == len(set(walked))
    assert len(batch_jobs(ctx.crm)) == started.batches_total  # one outbox job per batch
    run_all_batches(ctx.crm)
    sent = recipients(ctx, campaign.id)
    assert sorted(r.party_id for r in sent) == sorted(p.id for p in orgs)
    assert {r.address for r in sent} == {f"org{i}@example.com" for i in range(7)}
    assert fresh(ctx, campaign.id).status == "done"
    counts = service.recipient_counts(ctx, campaign.id)
    assert counts["queued"].value == 7 and counts["sent"].value == 0  # no transport enabled: they wait
    page = service.list_recipients(ctx, campaign.id, limit=4)
    assert len(page.items) == 4 and page.next_cursor
    rest = service.list_recipients(ctx, campaign.id, cursor=page.next_cursor, limit=4)
    assert len(rest.items) == 3 and rest.next_cursor is None
    assert {r.id for r in page.items}.isdisjoint({r.id for r in rest.items})
    messages = rows(ctx.crm, "select subject, body_text, event from messages where event = 'mass_mail'")
    assert len(messages) == 7
    assert all("https://crm.example.test/unsubscribe/" in m["body_text"] for m in messages)
    assert all("Spring news" in m["body_text"] for m in messages)


def test_the_throttle_spaces_the_batches(mm):
    ctx = mm
    for i in range(5):
        make_party(ctx, f"Org {i}", f"org{i}@example.com")
    campaign = service.create_campaign(ctx, campaign_data(throttle=2))
    service.start_campaign(ctx, campaign.id)
    ctx.session.rollback()
    batches = list(ctx.session.scalars(select(Batch).where(Batch.campaign_id == campaign.id).order_by(Batch.seq)))
    assert [len(b.party_ids) for b in batches] == [2, 2, 1]
    first = batches[0].run_at
    assert [(b.run_at - first).total_seconds() for b in batches] == [0, 60, 120]
    jobs = {job["id"]: job for job in batch_jobs(ctx.crm)}
    for batch in batches[1:]:  # the later jobs wait in the outbox until their minute
        job = jobs[batch.outbox_id]
        assert job["status"] == "pending"
        due = job["next_attempt_at"]
        due = dt.datetime.fromisoformat(due) if isinstance(due, str) else due
        due = due if due.tzinfo else due.replace(tzinfo=dt.UTC)
        assert abs((due - batch.run_at).total_seconds()) < 1
    # the first batch (due at once) ran right after the commit; the others have not
    assert len(recipients(ctx, campaign.id)) == 2


def test_a_large_throttle_sends_pages_of_at_most_200(mm):
    ctx = mm
    campaign = service.create_campaign(ctx, campaign_data(throttle=10_000))
    for i in range(3):
        make_party(ctx, f"Org {i}", f"org{i}@example.com")
    service.start_campaign(ctx, campaign.id, page_size=2)
    ctx.session.rollback()
    batches = list(ctx.session.scalars(select(Batch).order_by(Batch.seq)))
    assert [len(b.party_ids) for b in batches] == [2, 1]
    assert (batches[1].run_at - batches[0].run_at).total_seconds() == pytest.approx(2 * 60 / 10_000)


def test_an_opted_out_address_is_suppressed_not_sent(mm):
    ctx = mm
    make_party(ctx, "Keen Ltd", "keen@example.com")
    gone = make_party(ctx, "Gone Ltd", "Gone@Example.com")
    messaging.opt_out(ctx, "email", "gone@example.com", source="unsubscribe_link")
    campaign = service.create_campaign(ctx, campaign_data())
    service.start_campaign(ctx, campaign.id)
    by_party = {r.party_id: r for r in recipients(ctx, campaign.id)}
    assert len(by_party) == 2
    suppressed = by_party[gone.id]
    message = messaging.get_message(ctx, suppressed.message_id)
    assert message.status == "suppressed" and message.outbox_id is None and "opted out" in message.error
    emails = rows(ctx.crm, "select payload from outbox where kind = 'email'")
    assert len(emails) == 1  # only the other party's email is queued
    counts = service.recipient_counts(ctx, campaign.id)
    assert counts["suppressed"].value == 1 and counts["queued"].value == 1
    page = service.list_recipients(ctx, campaign.id, {"status": "suppressed"})
    assert [r.party_id for r in page.items] == [gone.id]
    assert page.extra["statuses"][suppressed.id] == "suppressed"


def test_a_batch_that_runs_twice_sends_once(mm):
    ctx = mm
    for i in range(3):
        make_party(ctx, f"Org {i}", f"org{i}@example.com")
    campaign = service.create_campaign(ctx, campaign_data())
    service.start_campaign(ctx, campaign.id)
    (job,) = batch_jobs(ctx.crm)
    assert job["status"] == "done" and len(recipients(ctx, campaign.id)) == 3
    # the worker died after sending but before recording: the job and its batch run again
    with ctx.crm.db.engine.begin() as conn:
        conn.execute(text("update outbox set status = 'pending' where id = :id"), {"id": job["id"]})
        conn.execute(text("update mass_mail_batches set status = 'pending', done_at = null"))
        conn.execute(text("update mass_mail_campaigns set status = 'sending'"))
    assert run_messages(ctx.crm, [job["id"]]) == {job["id"]: "done"}
    assert len(recipients(ctx, campaign.id)) == 3
    assert len(rows(ctx.crm, "select id from messages where event = 'mass_mail'")) == 3
    assert len(rows(ctx.crm, "select id from outbox where kind = 'email'")) == 3
    assert fresh(ctx, campaign.id).status == "done"
    # and one recipient sent twice directly: the second call finds the row
    batch = ctx.session.scalars(select(Batch)).one()
    with ctx.crm.db.engine.begin() as conn:
        conn.execute(text("update mass_mail_batches set status = 'pending'"))
        conn.execute(text("update mass_mail_campaigns set status = 'sending'"))
    assert service.send_to_party(ctx, batch.id, batch.party_ids[0]) is True
    assert len(rows(ctx.crm, "select id from messages where event = 'mass_mail'")) == 3


def test_a_duplicate_recipient_row_rolls_the_send_back(mm):
    """Two runs racing for one party: the unique (campaign, party) key refuses the second, and
    its message goes with it (same transaction)."""
    ctx = mm
    make_party(ctx, "Org", "org@example.com")
    campaign = service.create_campaign(ctx, campaign_data(throttle=1))
    make_party(ctx, "Org 2", "org2@example.com")
    service.start_campaign(ctx, campaign.id)
    ctx.session.rollback()
    first = ctx.session.scalars(select(Batch).order_by(Batch.seq)).first()
    assert first.status == "done"
    before = len(rows(ctx.crm, "select id from messages"))
    with ctx.crm.db.engine.begin() as conn:  # the other run's row, as if written a moment before our insert
        conn.execute(text("update mass_mail_batches set status = 'pending'"))
        conn.execute(text("delete from mass_mail_recipients"))
    ctx.session.rollback()

    from sqlalchemy import event

    def race(session, flush_context, instances):
        if any(isinstance(o, Recipient) for o in session.new):
            session.connection().execute(text(
                "insert into mass_mail_recipients (business_id, campaign_id, party_id, status, created_at) "
                "values (:b, :c, :p, 'queued', :now)"),
                {"b": ctx.business_id, "c": campaign.id, "p": first.party_ids[0], "now": dt.datetime.now(dt.UTC)})
    event.listen(ctx.session, "before_flush", race)
    try:
        with pytest.raises(Conflict):
            service.send_to_party(ctx, first.id, first.party_ids[0])
    finally:
        event.remove(ctx.session, "before_flush", race)
    assert len(rows(ctx.crm, "select id from messages")) == before  # the send was rolled back


def test_cancel_stops_the_unsent_batches(mm):
    ctx = mm
    for i in range(3):
        make_party(ctx, f"Org {i}", f"org{i}@example.com")
    campaign = service.create_campaign(ctx, campaign_data(throttle=1))
    service.start_campaign(ctx, campaign.id)
    assert len(recipients(ctx, campaign.id)) == 1  # the first batch went at once
    cancelled = service.cancel_campaign(ctx, campaign.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    run_all_batches(ctx.crm)  # their minutes came: the jobs run and send nothing
    assert len(recipients(ctx, campaign.id)) == 1
    assert len(rows(ctx.crm, "select id from messages where event = 'mass_mail'")) == 1
    statuses = [b["status"] for b in rows(ctx.crm, "select status from mass_mail_batches order by seq")]
    assert statuses == ["done", "cancelled", "cancelled"]
    with pytest.raises(Conflict):
        service.cancel_campaign(ctx, campaign.id)
    with pytest.raises(Conflict):
        service.start_campaign(ctx, campaign.id)


def test_a_draft_can_be_cancelled_and_a_sending_one_not_edited(mm):
    ctx = mm
    make_party(ctx, "Org", "org@example.com")
    draft = service.create_campaign(ctx, campaign_data())
    assert service.cancel_campaign(ctx, draft.id).status == "cancelled"
    other = service.create_campaign(ctx, campaign_data(throttle=1))
    make_party(ctx, "Org 2", "org2@example.com")
    service.start_campaign(ctx, other.id)
    with pytest.raises(Conflict):
        service.update_campaign(ctx, other.id, campaign_data())
    with pytest.raises(Conflict):
        service.delete_campaign(ctx, other.id)


def test_an_empty_audience_is_done_at_once(mm):
    campaign = service.create_campaign(mm, campaign_data(audience={"q": "nobody-matches-this"}))
    started = service.start_campaign(mm, campaign.id)
    assert started.status == "done" and started.batches_total == 0 and batch_jobs(mm.crm) == []


@pytest.mark.parametrize(("changes", "field"), [
    ({"throttle": 0}, "throttle"),
    ({"throttle": 10_001}, "throttle"),
    ({"throttle": "fast"}, "throttle"),
    ({"throttle": None}, "throttle"),
    ({"name": "  "}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"template_key": "no-such-template"}, "template_key"),
    ({"audience": {"kind": "alien"}}, "audience"),
    ({"audience": {"archived": "perhaps"}}, "audience"),
    ({"audience": ["not", "a", "filter"]}, "audience"),
])
def test_invalid_campaigns_are_refused_by_field(mm, changes, field):
    with pytest.raises(ValidationFailed) as raised:
        service.create_campaign(mm, campaign_data(**changes))
    assert field in raised.value.errors
    assert rows(mm.crm, "select id from mass_mail_campaigns") == []


def test_the_template_must_carry_the_unsubscribe_link(mm):
    messaging.create_template(mm, {"key": "bare", "name": "Bare", "subject": "Hi", "body_text": "Hello"})
    with pytest.raises(ValidationFailed) as raised:
        service.create_campaign(mm, campaign_data(template_key="bare"))
    assert "unsubscribe_url" in raised.value.errors["template_key"][0]


def test_the_throttle_bounds_are_accepted(mm):
    assert service.create_campaign(mm, campaign_data(throttle=1)).throttle == 1
    assert service.create_campaign(mm, campaign_data(throttle="10000")).throttle == 10_000


def test_starting_needs_a_public_url(mm):
    campaign = service.create_campaign(mm, campaign_data())
    mm.crm.config = dataclasses.replace(mm.crm.config, public_url=None)
    with pytest.raises(ValidationFailed) as raised:
        service.start_campaign(mm, campaign.id)
    assert "public_url" in raised.value.errors
    assert fresh(mm, campaign.id).status == "draft"


def test_members_read_and_admins_write(mm, business, make_user):
    campaign = service.create_campaign(mm, campaign_data())
    member = make_user(business, "member")
    assert service.get_campaign(member, campaign.id).name == "Spring news"
    assert [c.id for c in service.list_campaigns(member).items] == [campaign.id]
    for call in (lambda: service.create_campaign(member, campaign_data()),
                 lambda: service.start_campaign(member, campaign.id),
                 lambda: service.cancel_campaign(member, campaign.id)):
        with pytest.raises(PermissionDenied):
            call()


def test_another_business_sees_nothing(mm, other_ctx):
    make_party(mm, "Org", "org@example.com")
    campaign = service.create_campaign(mm, campaign_data())
    service.start_campaign(mm, campaign.id)
    for call in (service.get_campaign, service.start_campaign, service.cancel_campaign, service.list_recipients,
                 service.recipient_counts, service.delete_campaign):
        with pytest.raises(NotFound):
            call(other_ctx, campaign.id)
    assert service.list_campaigns(other_ctx).items == []
    assert other_ctx.session.scalars(select(Campaign)).all() == []
    assert other_ctx.session.scalars(select(Recipient)).all() == []


def test_a_disabled_plugin_discards_its_batches(mm):
    from crmcore.plugins.service import disable_plugin

    for i in range(2):
        make_party(mm, f"Org {i}", f"org{i}@example.com")
    campaign = service.create_campaign(mm, campaign_data(throttle=1))
    service.start_campaign(mm, campaign.id)
    disable_plugin(mm, NAME)
    assert set(run_all_batches(mm.crm).values()) == {"discarded"}
    assert len(rows(mm.crm, "select id from mass_mail_recipients")) == 1


def test_a_merge_moves_the_duplicates_recipient_rows(mm):
    from crmcore.parties.merge import merge_parties

    kept = make_party(mm, "Meadow Farms", "info@meadow.example")
    dup = make_party(mm, "Meadow Farms Ltd", "sales@meadow.example")
    both = service.create_campaign(mm, campaign_data(name="Both"))
    service.start_campaign(mm, both.id)
    only_dup = service.create_campaign(mm, campaign_data(name="Only the duplicate", audience={"q": "Ltd"}))
    service.start_campaign(mm, only_dup.id)
    merge_parties(mm, kept.id, dup.id)
    assert sorted(r.party_id for r in recipients(mm, both.id)) == sorted([kept.id, dup.id])  # the key holds
    assert [r.party_id for r in recipients(mm, only_dup.id)] == [kept.id]
