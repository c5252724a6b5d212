"""Sending email and SMS: validation, the outbox in the caller's transaction, opt-outs, delivery
through the business's transport, failures, secrets, the timeline and isolation.

The transports here are drivers of a test plugin registered for the test (the SMTP transport
against a real server is tested in plugins/crm-email-smtp); they record what they were given.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging

import marshmallow as ma
import pytest
from sqlalchemy import text

from crmcore import PluginInfo
from crmcore.context import use_case
from crmcore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crmcore.messaging import service as messaging
from crmcore.messaging.models import Message
from crmcore.messaging.providers import (
    EMAIL_TRANSPORTS_GROUP,
    SMS_PROVIDERS_GROUP,
    EmailTransport,
    PermanentFailure,
    SendResult,
    SmsProvider,
    TemporaryFailure,
)
from crmcore.parties.service import create_contact, create_party
from crmcore.plugins.drivers import register_driver, unregister_driver
from crmcore.plugins.service import save_settings
from crmcore.records.service import create_record
from crmcore.tenancy.models import Role
from crmcore.timeline.service import add_attachment, feed

API_KEY = "sk_live_4f9c2b7e1d8a6350"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


class ChannelSettings(ma.Schema):
    mode = ma.fields.String(load_default="ok", validate=ma.validate.OneOf(("ok", "temporary", "permanent", "crash")))
    api_key = ma.fields.String(load_default=None, allow_none=True, metadata={"secret": True})


class TestChannels:
    """A plugin owning the test transports (their settings say how they behave)."""

    PLUGIN = PluginInfo(title="Test channels", settings_schema=ChannelSettings)


def _behave(settings, what):
    mode = settings.get("mode", "ok")
    if mode == "temporary":  # a careless provider error that quotes the key: must be redacted
        raise TemporaryFailure(f"{what} busy (key {settings['api_key']})")
    if mode == "permanent":
        raise PermanentFailure(f"{what} refused the recipient (account {settings['api_key']})")
    if mode == "crash":
        raise RuntimeError(f"bug with {settings['api_key']}")


class RecordingEmail(EmailTransport):
    name, title = "recording-email", "Recording email"
    sent: list = []

    def send(self, message, settings):
        _behave(settings, "mail server")
        RecordingEmail.sent.append((message, dict(settings)))
        return SendResult(provider_message_id=f"mail-{message.message_id}")

    def default_sender(self, settings):
        return "sales@acme.example"


class RecordingSms(SmsProvider):
    name, title = "recording-sms", "Recording SMS"
    sent: list = []

    def send(self, message, settings):
        _behave(settings, "gateway")
        RecordingSms.sent.append((message, dict(settings)))
        return SendResult(provider_message_id=f"sms-{message.message_id}", segments=1)


@pytest.fixture
def channels(ctx, register_plugin):
    """The test plugin enabled in ``ctx``'s business with its two transports."""
    name = register_plugin(TestChannels(), name="test-channels", enable_for=ctx,
                           settings={"mode": "ok", "api_key": API_KEY})
    register_driver(EMAIL_TRANSPORTS_GROUP, "recording-email", RecordingEmail, name)
    register_driver(SMS_PROVIDERS_GROUP, "recording-sms", RecordingSms, name)
    RecordingEmail.sent, RecordingSms.sent = [], []
    yield name
    unregister_driver(EMAIL_TRANSPORTS_GROUP, "recording-email")
    unregister_driver(SMS_PROVIDERS_GROUP, "recording-sms")


def rows(crm, sql, **params):
    """Rows read past the tenant scope (as an auditor would); JSON columns decoded on SQLite."""
    with crm.db.engine.connect() as conn:
        out = [dict(r._mapping) for r in conn.execute(text(sql), params)]
    for row in out:
        for key in ("payload", "attachments"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
    return out


def messages(crm):
    return rows(crm, "select * from messages order by id")


def jobs(crm):
    return rows(crm, "select * from outbox where kind in ('email', 'sms') order by id")


def meadow(ctx):
    return create_party(ctx, {"kind": "organisation", "name": "Meadow Farms", "addresses": [
        {"purpose": "billing", "line1": "Main street 1", "city": "Ghent", "country": "BE", "is_default": True}],
        "mechanisms": [{"kind": "email", "value": "info@meadow.example"}]})


# --------------------------------------------------------------------------------------------
# queueing


def test_a_send_is_a_message_and_an_outbox_row_and_is_delivered_after_commit(ctx, channels):
    party = meadow(ctx)
    message = messaging.send_email(ctx, to=" Maria@Meadow.example ", to_name="Maria", subject="Hello\nthere",
                                   text="Hi Maria", html="<p>Hi</p>", party=party)
    (row,) = messages(ctx.crm)
    (job,) = jobs(ctx.crm)
    assert row["to_address"] == "Maria@meadow.example" and row["subject"] == "Hello there"
    assert row["outbox_id"] == job["id"] and job["kind"] == "email" and job["payload"] == {"message_id": message.id}
    assert row["status"] == "sent" and row["provider"] == "recording-email"
    assert row["provider_message_id"] == f"mail-{message.id}" and row["sent_at"] is not None
    assert row["from_address"] == "sales@acme.example"
    (sent, settings), = RecordingEmail.sent
    assert sent.idempotency_key == job["idempotency_key"] and sent.to == "Maria@meadow.example"
    assert sent.text == "Hi Maria" and sent.html == "<p>Hi</p>" and sent.to_name == "Maria"
    assert settings["api_key"] == API_KEY  # decrypted for the transport, and only there
    assert "List-Unsubscribe" not in sent.headers  # no public_url configured: no link


def test_a_rollback_of_the_business_change_sends_nothing(ctx, channels):
    @use_case(Role.MEMBER)
    def activate_invoice(ctx, party_id):
        messaging.send_email(ctx, to="billing@meadow.example", subject="Invoice", text="Attached", party=party_id)
        messaging.send_sms(ctx, to="+32 470 12 34 56", text="Invoice sent", party=party_id)
        raise Conflict("the invoice has no lines")

    party = meadow(ctx)
    with pytest.raises(Conflict):
        activate_invoice(ctx, party.id)
    assert messages(ctx.crm) == [] and jobs(ctx.crm) == []
    assert RecordingEmail.sent == [] and RecordingSms.sent == []
    assert [e for e in feed(ctx, party_id=party.id).items if e.kind == "message"] == []


def test_sends_inside_a_use_case_go_out_only_after_its_commit(ctx, channels):
    seen_during = []

    @use_case(Role.MEMBER)
    def two_sends(ctx):
        messaging.send_email(ctx, to="a@meadow.example", subject="One", text="1")
        messaging.send_email(ctx, to="b@meadow.example", subject="Two", text="2")
        seen_during.append(len(RecordingEmail.sent))

    two_sends(ctx)
    assert seen_during == [0]
    assert sorted(m.to for m, _ in RecordingEmail.sent) == ["a@meadow.example", "b@meadow.example"]


def test_an_sms_is_normalised_in_the_business_country_and_counted(ctx, channels):
    save_settings(ctx, "core-messaging", {"default_region": "be"})
    message = messaging.send_sms(ctx, to="0470 12 34 56", text="Your machine is ready: pick it up at 9 €")
    row = messaging.get_message(ctx, message.id)
    assert row.to_address == "+32470123456" and row.segments == 1 and row.status == "sent"
    (sent, _), = RecordingSms.sent
    assert sent.to == "+32470123456" and sent.body.startswith("Your machine is ready")


def test_without_a_default_country_the_party_address_reads_national_numbers(ctx, channels):
    party = meadow(ctx)
    assert messaging.send_sms(ctx, to="0470 12 34 56", text="Hi", party=party).to_address == "+32470123456"
    with pytest.raises(ValidationFailed) as raised:
        messaging.send_sms(ctx, to="0470 12 34 56", text="Hi")
    assert "international form" in raised.value.errors["to"][0]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"to": "not an address", "subject": "s", "text": "t"}, "to"),
    ({"to": "a@b.example", "text": "t"}, "subject"),
    ({"to": "a@b.example", "subject": "s"}, "text"),
    ({"to": "a@b.example", "template_key": "message", "subject": "s"}, "subject"),
    ({"to": "a@b.example", "template_key": "nope"}, "template_key"),
    ({"to": "a@b.example", "subject": "s", "text": "t", "attachments": [987654]}, "attachments"),
    ({"to": "a@b.example", "subject": "s", "text": "t", "reply_to": "nobody"}, "reply_to"),
    ({"to": "a@b.example", "subject": "s" * 301, "text": "t"}, "subject"),
])
def test_bad_email_input_is_refused_by_field_and_writes_nothing(ctx, kwargs, field):
    with pytest.raises(ValidationFailed) as raised:
        messaging.send_email(ctx, **kwargs)
    assert field in raised.value.errors
    assert messages(ctx.crm) == [] and jobs(ctx.crm) == []


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"to": "+32 12", "text": "t"}, "to"),
    ({"to": "+32470123456"}, "text"),
    ({"to": "+32470123456", "text": "x" * 1601}, "text"),
    ({"to": "+32470123456", "text": "   "}, "text"),
])
def test_bad_sms_input_is_refused_by_field(ctx, kwargs, field):
    with pytest.raises(ValidationFailed) as raised:
        messaging.send_sms(ctx, **kwargs)
    assert field in raised.value.errors
    assert messages(ctx.crm) == []


def test_a_template_is_rendered_with_the_business_values(ctx, channels):
    messaging.seed_default_templates(ctx)
    party = meadow(ctx)
    contact = create_contact(ctx, {"party_id": party.id, "first_name": "Maria", "last_name": "Schmidt"})
    deal = create_record(ctx, "deal", {"title": "Excavator EX-140", "party_id": party.id, "contact_id": contact.id,
                                       "owner_id": ctx.user_id})
    message = messaging.send_email(ctx, to="maria@meadow.example", to_name="Maria", template_key="deal.won",
                                   record=deal)
    assert message.subject == "Thank you for your order: Excavator EX-140"
    assert "thank you for choosing Acme Equipment" in message.body_text
    assert "Acme Equipment Owner will contact you" in message.body_text
    assert message.party_id == party.id and message.contact_id == contact.id and message.record_id == deal.id
    sms = messaging.send_sms(ctx, to="+32470123456", template_key="deal.won", record=deal)
    assert sms.body_text == "Acme Equipment: thank you for your order (Excavator EX-140)!"


def test_a_template_that_cannot_render_for_these_values_refuses_the_send(ctx):
    messaging.seed_default_templates(ctx)
    with pytest.raises(ValidationFailed) as raised:
        messaging.send_email(ctx, to="a@b.example", template_key="deal.stage_changed")  # no record, no stage
    assert "template_key" in raised.value.errors and "empty for this message" in raised.value.message
    with pytest.raises(ValidationFailed):
        messaging.send_email(ctx, to="a@b.example", template_key="message")  # needs variables.message
    ok = messaging.send_email(ctx, to="a@b.example", template_key="message", variables={"message": "<b>Ready</b>"})
    assert "<b>Ready</b>" in ok.body_text and "&lt;b&gt;Ready&lt;/b&gt;" in ok.body_html


def test_attachments_travel_by_reference_and_are_read_when_sending(ctx, channels):
    party = meadow(ctx)
    pdf = add_attachment(ctx, filename="quote.pdf", content_type="application/pdf", stream=io.BytesIO(PDF),
                         party_id=party.id)
    message = messaging.send_email(ctx, to="a@meadow.example", subject="Quote", text="Attached", attachments=[pdf.id])
    assert messaging.get_message(ctx, message.id).attachments == [
        {"attachment_id": pdf.id, "filename": "quote.pdf", "content_type": "application/pdf", "size": len(PDF)}]
    (sent, _), = RecordingEmail.sent
    (attached,) = sent.attachments
    assert (attached.filename, attached.content_type, attached.data) == ("quote.pdf", "application/pdf", PDF)


def test_an_attachment_deleted_before_sending_fails_the_message(ctx, channels):
    from crmcore.timeline.service import delete_attachment

    ctx.crm.config = dataclasses.replace(ctx.crm.config, outbox_inline=False)
    pdf = add_attachment(ctx, filename="quote.pdf", content_type="application/pdf", stream=io.BytesIO(PDF),
                         party_id=meadow(ctx).id)
    message = messaging.send_email(ctx, to="a@meadow.example", subject="Quote", text="x", attachments=[pdf.id])
    delete_attachment(ctx, pdf.id)
    run_all(ctx)
    row = messaging.get_message(ctx, message.id)
    assert row.status == "failed" and "was deleted" in row.error and RecordingEmail.sent == []


def test_another_business_attachment_cannot_be_sent(ctx, other_ctx):
    theirs = add_attachment(other_ctx, filename="secret.pdf", content_type="application/pdf",
                            stream=io.BytesIO(PDF), party_id=meadow(other_ctx).id)
    with pytest.raises(ValidationFailed) as raised:
        messaging.send_email(ctx, to="a@b.example", subject="s", text="t", attachments=[theirs.id])
    assert "attachments" in raised.value.errors


def test_roles(ctx, make_user):
    reader = make_user(ctx.business, "read_only")
    with pytest.raises(PermissionDenied):
        messaging.send_email(reader, to="a@b.example", subject="s", text="t")
    member = make_user(ctx.business, "member")
    assert messaging.send_email(member, to="a@b.example", subject="s", text="t").status == "queued"
    with pytest.raises(PermissionDenied):
        messaging.create_template(member, {"key": "x", "name": "x", "subject": "s", "body_text": "t"})
    with pytest.raises(PermissionDenied):
        messaging.opt_out(member, "email", "a@b.example")
    with pytest.raises(PermissionDenied):
        messaging.list_messages(reader)


# --------------------------------------------------------------------------------------------
# opt-outs


def test_opt_outs_are_honoured_on_both_channels(ctx, channels):
    messaging.opt_out(ctx, "email", "MARIA@meadow.example", reason="asked by phone")
    messaging.opt_out(ctx, "sms", "+32 470 12 34 56")
    email = messaging.send_email(ctx, to="maria@MEADOW.example", subject="s", text="t", party=meadow(ctx))
    sms = messaging.send_sms(ctx, to="0032470123456", text="t")
    assert (email.status, sms.status) == ("suppressed", "suppressed")
    assert "opted out" in email.error and email.outbox_id is None
    assert jobs(ctx.crm) == [] and RecordingEmail.sent == [] and RecordingSms.sent == []
    # other addresses and the other channel still go out
    other = messaging.send_email(ctx, to="other@meadow.example", subject="s", text="t")
    assert messaging.get_message(ctx, other.id).status == "sent"


def test_an_opt_out_after_queueing_stops_the_delivery(ctx, channels):
    ctx.crm.config = dataclasses.replace(ctx.crm.config, outbox_inline=False)
    message = messaging.send_email(ctx, to="maria@meadow.example", subject="s", text="t")
    messaging.opt_out(ctx, "email", "maria@meadow.example")
    run_all(ctx)
    row = messaging.get_message(ctx, message.id)
    assert row.status == "suppressed" and RecordingEmail.sent == []


def test_opting_out_is_idempotent_and_removable(ctx, channels):
    first = messaging.opt_out(ctx, "email", "maria@meadow.example")
    again = messaging.opt_out(ctx, "email", "Maria@Meadow.Example", source="unsubscribe_link")
    assert again.id == first.id and again.source == "admin"
    assert [o.address for o in messaging.list_opt_outs(ctx).items] == ["maria@meadow.example"]
    messaging.remove_opt_out(ctx, first.id)
    again = messaging.send_email(ctx, to="maria@meadow.example", subject="s", text="t")
    assert messaging.get_message(ctx, again.id).status == "sent"


def test_an_opt_out_needs_a_valid_address(ctx):
    with pytest.raises(ValidationFailed) as raised:
        messaging.opt_out(ctx, "sms", "12")
    assert "address" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        messaging.opt_out(ctx, "fax", "+32470123456")
    assert "channel" in raised.value.errors


def test_sms_stop_handling_opts_out_with_a_system_context(crm, ctx, channels):
    """What a provider's inbound "STOP" handler does (crmcore.messaging.status may call it)."""
    with crm.context(ctx.business_id, system=True) as system:
        messaging.opt_out(system, "sms", "+32470123456", source="sms_stop")
    assert messaging.send_sms(ctx, to="+32470123456", text="t").status == "suppressed"
    assert messaging.list_opt_outs(ctx, channel="sms").items[0].source == "sms_stop"


def test_the_unsubscribe_token_opts_out_once_and_is_tamper_proof(crm, ctx, other_ctx, channels):
    token = messaging.unsubscribe_token(ctx, "email", "Maria@Meadow.example")
    shown = messaging.unsubscribe(crm, token, confirm=False)
    assert shown == {"business": "Acme Equipment", "channel": "email", "address": "maria@meadow.example",
                     "already": False, "done": False}
    assert messaging.list_opt_outs(ctx).items == []  # looking is not unsubscribing
    assert messaging.unsubscribe(crm, token, confirm=True)["done"]
    assert messaging.unsubscribe(crm, token, confirm=True)["already"]
    assert len(messaging.list_opt_outs(ctx).items) == 1
    assert messaging.list_opt_outs(ctx).items[0].source == "unsubscribe_link"
    assert messaging.list_opt_outs(other_ctx).items == []  # the other business still sends to her
    for bad in (token[:-2] + "xx", "nonsense", token.replace(".", "", 1)):
        with pytest.raises(NotFound):
            messaging.unsubscribe(crm, bad, confirm=True)


def test_the_unsubscribe_link_needs_a_public_url(ctx, channels):
    assert messaging.unsubscribe_url(ctx, "email", "a@b.example") is None
    ctx.crm.config = dataclasses.replace(ctx.crm.config, public_url="https://crm.example.test/")
    link = messaging.unsubscribe_url(ctx, "email", "a@b.example")
    assert link.startswith("https://crm.example.test/unsubscribe/")
    messaging.send_email(ctx, to="a@b.example", subject="s", text="t")
    (sent, _), = RecordingEmail.sent
    assert sent.headers == {"List-Unsubscribe": f"<{link}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


# --------------------------------------------------------------------------------------------
# delivery outcomes


def run_all(ctx):
    from crmcore.outbox.service import run_messages

    ids = [j["id"] for j in jobs(ctx.crm) if j["status"] in ("pending", "failed")]
    with ctx.crm.db.engine.begin() as conn:
        conn.execute(text("update outbox set next_attempt_at = created_at"))
    return run_messages(ctx.crm, ids)


def test_a_temporary_failure_keeps_the_message_queued_and_retries_without_leaking_the_key(ctx, channels, caplog):
    save_settings(ctx, channels, {"mode": "temporary"})
    caplog.set_level(logging.DEBUG)
    message = messaging.send_email(ctx, to="a@b.example", subject="s", text="t")
    row = messaging.get_message(ctx, message.id)
    (job,) = jobs(ctx.crm)
    assert row.status == "queued" and "mail server busy" in row.error
    assert job["status"] == "failed" and "mail server busy" in job["last_error"]
    everything = str(messages(ctx.crm)) + str(jobs(ctx.crm)) + caplog.text
    assert API_KEY not in everything
    save_settings(ctx, channels, {"mode": "ok"})
    assert run_all(ctx) == {job["id"]: "done"}
    row = messaging.get_message(ctx, message.id)
    assert row.status == "sent" and row.error is None


def test_the_last_failed_attempt_marks_the_message_failed(ctx, channels):
    ctx.crm.config = dataclasses.replace(ctx.crm.config, outbox_max_attempts=2)
    save_settings(ctx, channels, {"mode": "crash"})
    message = messaging.send_sms(ctx, to="+32470123456", text="t")
    assert messaging.get_message(ctx, message.id).status == "queued"
    (job_id,) = [j["id"] for j in jobs(ctx.crm)]
    assert run_all(ctx) == {job_id: "parked"}
    row = messaging.get_message(ctx, message.id)
    assert row.status == "failed" and "RuntimeError: bug with [redacted]" in row.error
    assert API_KEY not in str(jobs(ctx.crm))


def test_a_permanent_failure_fails_the_message_and_ends_the_job(ctx, channels):
    save_settings(ctx, channels, {"mode": "permanent"})
    message = messaging.send_sms(ctx, to="+32470123456", text="t")
    row = messaging.get_message(ctx, message.id)
    (job,) = jobs(ctx.crm)
    assert row.status == "failed" and "gateway refused the recipient" in row.error
    assert API_KEY not in row.error and "[redacted]" in row.error
    assert job["status"] == "done" and job["attempts"] == 1


def test_without_a_transport_the_admin_is_told_what_to_do(ctx):
    message = messaging.send_email(ctx, to="a@b.example", subject="s", text="t")
    row = messaging.get_message(ctx, message.id)
    (job,) = jobs(ctx.crm)
    assert row.status == "queued" and "no email transport is enabled" in row.error
    assert "Settings → Plugins" in job["last_error"] and job["status"] == "failed"


def test_several_transports_need_a_choice(ctx, channels):
    class OtherEmail(RecordingEmail):
        name = "other-email"

    register_driver(EMAIL_TRANSPORTS_GROUP, "other-email", OtherEmail, channels)
    try:
        first = messaging.send_email(ctx, to="a@b.example", subject="s", text="t")
        assert "several email transports are enabled (other-email, recording-email)" in \
            messaging.get_message(ctx, first.id).error
        save_settings(ctx, "core-messaging", {"email_transport": "recording-email"})
        second = messaging.send_email(ctx, to="a@b.example", subject="s", text="t")
        assert messaging.get_message(ctx, second.id).provider == "recording-email"
        save_settings(ctx, "core-messaging", {"email_transport": "other-email"})
        from crmcore.plugins.service import disable_plugin

        disable_plugin(ctx, channels)
        third = messaging.send_email(ctx, to="a@b.example", subject="s", text="t")
        assert "'other-email', is not enabled" in messaging.get_message(ctx, third.id).error
    finally:
        unregister_driver(EMAIL_TRANSPORTS_GROUP, "other-email")


def test_a_message_sent_already_is_never_sent_again_by_a_repeated_job(ctx, channels):
    from crmcore.messaging.delivery import deliver_email
    from crmcore.outbox.models import OutboxMessage

    message = messaging.send_email(ctx, to="a@b.example", subject="s", text="t")
    with ctx.crm.db.session(unscoped=True) as session:
        job = session.get(OutboxMessage, message.outbox_id)
        session.expunge(job)
    deliver_email(ctx.crm, job)  # a worker that crashed after sending and before recording "done"
    assert len(RecordingEmail.sent) == 1


# --------------------------------------------------------------------------------------------
# the log, the timeline, isolation


def test_messages_appear_on_the_party_and_record_timelines(ctx, channels):
    party = meadow(ctx)
    deal = create_record(ctx, "deal", {"title": "Loader", "party_id": party.id})
    messaging.opt_out(ctx, "sms", "+32470123456")
    email = messaging.send_email(ctx, to="a@meadow.example", subject="Your offer for the loader", text="t",
                                 record=deal)
    sms = messaging.send_sms(ctx, to="+32470123456", text="Call me", party=party)
    party_feed = feed(ctx, party_id=party.id, kinds=["message"])
    assert [e.ref_id for e in party_feed.items] == [sms.id, email.id]
    assert party_feed.extra["refs"]["message"][email.id].status == "sent"
    assert party_feed.items[1].summary == "Email to a@meadow.example: Your offer for the loader"
    assert party_feed.items[0].summary == "SMS to +32470123456 not sent (opted out): Call me"
    assert [e.ref_id for e in feed(ctx, record_id=deal.id, kinds=["message"]).items] == [email.id]


def test_the_log_filters_pages_and_counts(ctx, channels):
    for i in range(5):
        messaging.send_email(ctx, to=f"p{i}@b.example", subject=f"s{i}", text="t")
    messaging.send_sms(ctx, to="+32470123456", text="t")
    messaging.opt_out(ctx, "email", "p9@b.example")
    messaging.send_email(ctx, to="p9@b.example", subject="s9", text="t")
    page = messaging.list_messages(ctx, {"channel": "email"}, limit=3)
    assert [m.subject for m in page.items] == ["s9", "s4", "s3"] and str(page.total) == "6"
    rest = messaging.list_messages(ctx, {"channel": "email"}, cursor=page.next_cursor, limit=3)
    assert [m.subject for m in rest.items] == ["s2", "s1", "s0"] and rest.next_cursor is None
    assert [m.subject for m in messaging.list_messages(ctx, {"status": "suppressed"}).items] == ["s9"]
    assert [m.channel for m in messaging.list_messages(ctx, {"channel": "sms"}).items] == ["sms"]
    with pytest.raises(ValidationFailed) as raised:
        messaging.list_messages(ctx, {"status": "lost"})
    assert "status" in raised.value.errors
    with pytest.raises(ValidationFailed):
        messaging.list_messages(ctx, cursor="garbage")


def test_each_business_sees_only_its_own(ctx, other_ctx, channels):
    mine = messaging.send_email(ctx, to="a@b.example", subject="mine", text="t")
    theirs = messaging.send_email(other_ctx, to="a@b.example", subject="theirs", text="t")
    assert [m.subject for m in messaging.list_messages(ctx).items] == ["mine"]
    assert [m.subject for m in messaging.list_messages(other_ctx).items] == ["theirs"]
    with pytest.raises(NotFound):
        messaging.get_message(ctx, theirs.id)
    with pytest.raises(NotFound):
        messaging.send_email(ctx, to="a@b.example", subject="s", text="t", party=meadow(other_ctx).id)
    messaging.opt_out(other_ctx, "email", "a@b.example")
    again = messaging.send_email(ctx, to="a@b.example", subject="again", text="t")
    assert messaging.get_message(ctx, again.id).status == "sent"
    assert ctx.session.get(Message, mine.id) is not None
    # the other business has no transport: its message waits, and says why
    assert "no email transport" in messaging.get_message(other_ctx, theirs.id).error
