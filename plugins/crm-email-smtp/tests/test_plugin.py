"""The plugin in a running core: discovered, per business, and the whole path of an email from a
use case through the outbox to a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import io
import logging

import pytest
from crm_email_smtp import NAME
from sqlalchemy import text

from crmcore import ValidationFailed
from crmcore.messaging import service as messaging
from crmcore.parties.service import create_party
from crmcore.plugins.drivers import load_group
from crmcore.plugins.service import disable_plugin, enable_plugin, get_settings
from crmcore.timeline.service import add_attachment

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def crm_config(crm_config):
    """The installation has a public address, so emails carry an unsubscribe link."""
    return dataclasses.replace(crm_config, public_url="https://crm.example.test")


def smtp_settings(port, **changes):
    values = {"host": "127.0.0.1", "port": port, "security": "none", "from_address": "sales@acme.example",
              "from_name": "Acme Sales", "timeout": 5}
    values.update(changes)
    return values


def outbox_rows(crm):
    with crm.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(
            "select kind, status, payload, last_error, attempts from outbox where kind = 'email' order by id"))]


def message_rows(crm):
    with crm.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text("select * from messages order by id"))]


def test_discovered_with_its_transport(crm):
    plugin = crm.registry.plugins[NAME]
    assert plugin.source == "entry_point" and NAME not in crm.registry.errors
    driver = load_group("crmcore.email_transports")["smtp"]
    assert driver.plugin == NAME


def test_an_email_goes_from_a_use_case_to_the_server(ctx, make_smtp_server, login, tls_certificate, caplog):
    user, password = login
    server = make_smtp_server(tls_context=tls_certificate.server_context(), require_starttls=True, login=login)
    enable_plugin(ctx, NAME, smtp_settings(server.port, security="starttls", username=user,
                                           password=password, ca_file=tls_certificate.cert))
    party = create_party(ctx, {"kind": "organisation", "name": "Meadow Farms",
                               "mechanisms": [{"kind": "email", "value": "info@meadow.example"}]})
    attachment = add_attachment(ctx, filename="quote.pdf", content_type="application/pdf", stream=io.BytesIO(PDF),
                                party_id=party.id)
    caplog.set_level(logging.DEBUG)
    message = messaging.send_email(ctx, to="info@meadow.example", to_name="Meadow Farms", subject="Your quote",
                                   text="Please find the quote attached.", html="<p>Please find the quote.</p>",
                                   party=party, attachments=[attachment.id])
    (arrived,) = server.messages
    assert arrived["Subject"] == "Your quote" and arrived["From"] == "Acme Sales <sales@acme.example>"
    (file,) = list(arrived.iter_attachments())
    assert file.get_filename() == "quote.pdf" and file.get_content() == PDF
    assert arrived["List-Unsubscribe"].startswith("<https://crm.example.test/unsubscribe/")
    assert arrived["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    row = messaging.get_message(ctx, message.id)
    assert row.status == "sent" and row.provider == "smtp" and row.sent_at is not None
    assert f"<{row.provider_message_id}>" == arrived["Message-ID"]
    assert row.from_address == "sales@acme.example" and row.error is None
    (job,) = outbox_rows(ctx.crm)
    assert job["status"] == "done"
    # the password is nowhere: not in the settings shown, the rows, the payload, the logs
    assert get_settings(ctx, NAME)["password"] != password
    for blob in (str(message_rows(ctx.crm)), str(outbox_rows(ctx.crm)), caplog.text):
        assert password not in blob


def test_a_refused_recipient_fails_the_message_without_retrying(ctx, make_smtp_server):
    server = make_smtp_server()
    server.rcpt_reply = "550 5.1.1 No such user here"
    enable_plugin(ctx, NAME, smtp_settings(server.port))
    message = messaging.send_email(ctx, to="nobody@meadow.example", subject="Hi", text="Hello")
    row = messaging.get_message(ctx, message.id)
    assert row.status == "failed" and "550 5.1.1 No such user here" in row.error
    (job,) = outbox_rows(ctx.crm)
    assert job["status"] == "done" and job["attempts"] == 1  # no retry


def test_a_busy_server_keeps_the_message_queued_and_the_job_retries(ctx, make_smtp_server):
    server = make_smtp_server()
    server.rcpt_reply = "451 4.3.0 Try again later"
    enable_plugin(ctx, NAME, smtp_settings(server.port))
    message = messaging.send_email(ctx, to="maria@meadow.example", subject="Hi", text="Hello")
    row = messaging.get_message(ctx, message.id)
    assert row.status == "queued" and "451 4.3.0" in row.error
    (job,) = outbox_rows(ctx.crm)
    assert job["status"] == "failed" and "451 4.3.0" in job["last_error"]
    # the server recovers; the retry delivers
    server.rcpt_reply = None
    from crmcore.outbox.service import run_messages

    with ctx.crm.db.engine.begin() as conn:
        conn.execute(text("update outbox set next_attempt_at = created_at"))
        job_id = conn.execute(text("select id from outbox where kind = 'email'")).scalar()
    assert run_messages(ctx.crm, [job_id]) == {job_id: "done"}
    assert messaging.get_message(ctx, message.id).status == "sent"
    assert len(server.messages) == 1


def test_bad_settings_are_refused_by_field(ctx):
    with pytest.raises(ValidationFailed) as raised:
        enable_plugin(ctx, NAME, {"host": "", "security": "ssl3", "from_address": "not an address", "timeout": 0})
    assert {"host", "security", "from_address", "timeout"} <= set(raised.value.errors)
    with pytest.raises(ValidationFailed) as raised:
        enable_plugin(ctx, NAME, smtp_settings(25, ca_file="/no/such/file.pem"))
    assert "ca_file" in raised.value.errors


def test_only_where_enabled(ctx, other_ctx, make_smtp_server):
    server = make_smtp_server()
    enable_plugin(ctx, NAME, smtp_settings(server.port))
    theirs = messaging.send_email(other_ctx, to="x@globex.example", subject="Hi", text="Hello")
    row = messaging.get_message(other_ctx, theirs.id)
    assert row.status == "queued" and "no email transport is enabled" in row.error
    disable_plugin(ctx, NAME)
    mine = messaging.send_email(ctx, to="y@acme.example", subject="Hi", text="Hello")
    assert "no email transport is enabled" in messaging.get_message(ctx, mine.id).error
    assert server.messages == []


def test_crm_worker_delivers_what_a_committed_change_queued(ctx, make_smtp_server):
    """Production runs jobs in ``crm worker``, not inline: the same path, through the worker."""
    from crmcore.outbox.worker import Worker

    server = make_smtp_server()
    enable_plugin(ctx, NAME, smtp_settings(server.port))
    ctx.crm.config = dataclasses.replace(ctx.crm.config, outbox_inline=False)
    message = messaging.send_email(ctx, to="maria@meadow.example", subject="From the worker", text="Hello")
    assert server.messages == [] and messaging.get_message(ctx, message.id).status == "queued"
    Worker(ctx.crm, poll=0.05).run(once=True)
    assert [m["Subject"] for m in server.messages] == ["From the worker"]
    assert messaging.get_message(ctx, message.id).status == "sent"
