"""The ``smtp`` transport against real aiosmtpd servers on 127.0.0.1: what arrives, and how each
kind of failure is reported (temporary: retried; permanent: failed at once)."""

from __future__ import annotations

import ssl

import pytest
from crm_email_smtp.transport import SmtpTransport, message_id

from crmcore.messaging.providers import EmailAttachment, OutgoingEmail, PermanentFailure, TemporaryFailure

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def outgoing(**changes) -> OutgoingEmail:
    values = dict(message_id=7, idempotency_key="email:1:7:0f3c9a", to="maria@meadow.example", to_name="Maria Schmidt",
                  subject="Your quote Q-0042", text="Hello Maria,\nyour quote is attached.\n",
                  html="<p>Hello <b>Maria</b>, your quote is attached.</p>",
                  attachments=(EmailAttachment("quote Q-0042.pdf", "application/pdf", PDF),),
                  headers={"List-Unsubscribe": "<https://crm.example.test/unsubscribe/abc>",
                           "List-Unsubscribe-Post": "List-Unsubscribe=One-Click", "Bcc": "spy@evil.example"},
                  reply_to="anna@acme.example")
    values.update(changes)
    return OutgoingEmail(**values)


def settings(port, **changes):
    values = {"host": "127.0.0.1", "port": port, "security": "none", "from_address": "sales@acme.example",
              "from_name": "Acme Sales", "timeout": 5.0, "username": None, "password": None, "ca_file": None}
    values.update(changes)
    return values


def test_a_plain_message_arrives_whole(make_smtp_server):
    server = make_smtp_server()
    result = SmtpTransport().send(outgoing(), settings(server.port))
    (arrived,) = server.messages
    assert server.envelopes[0].rcpt_tos == ["maria@meadow.example"]
    assert server.envelopes[0].mail_from == "sales@acme.example"
    assert arrived["From"] == "Acme Sales <sales@acme.example>"
    assert arrived["To"] == "Maria Schmidt <maria@meadow.example>"
    assert arrived["Subject"] == "Your quote Q-0042"
    assert arrived["Reply-To"] == "anna@acme.example"
    assert arrived["Message-ID"] == "<email.1.7.0f3c9a@acme.example>"
    assert result.provider_message_id == "email.1.7.0f3c9a@acme.example" and result.status == "sent"
    assert arrived["List-Unsubscribe"] == "<https://crm.example.test/unsubscribe/abc>"
    assert arrived["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert arrived["Bcc"] is None  # only the headers a transport may pass through
    assert arrived["Date"]
    assert arrived.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Hello Maria,\nyour quote is attached.\n"
    assert arrived.get_body(("html",)).get_content().strip() == "<p>Hello <b>Maria</b>, your quote is attached.</p>"
    (attachment,) = list(arrived.iter_attachments())
    assert attachment.get_filename() == "quote Q-0042.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == PDF


def test_the_message_id_is_the_same_on_every_retry():
    assert message_id("email:1:7:0f3c9a", "a@b.example") == message_id("email:1:7:0f3c9a", "x@b.example")
    assert message_id("sms/weird key!", "a@b.example") == "<sms.weird.key@b.example>"


def test_text_only_and_no_reply_to(make_smtp_server):
    server = make_smtp_server()
    SmtpTransport().send(outgoing(html=None, attachments=(), reply_to=None, to_name=None), settings(server.port))
    (arrived,) = server.messages
    assert arrived.get_content_type() == "text/plain"
    assert arrived["To"] == "maria@meadow.example" and arrived["Reply-To"] is None


def test_starttls_with_a_self_signed_certificate_and_a_login(make_smtp_server, tls_certificate, login):
    USER, PASSWORD = login
    server = make_smtp_server(tls_context=tls_certificate.server_context(), require_starttls=True, login=login)
    SmtpTransport().send(outgoing(), settings(server.port, security="starttls", username=USER,
                                             password=PASSWORD, ca_file=tls_certificate.cert))
    assert len(server.messages) == 1
    assert server.logins == [USER]


def test_tls_from_the_first_byte(make_smtp_server, tls_certificate, login):
    USER, PASSWORD = login
    server = make_smtp_server(implicit_tls=tls_certificate.server_context(), login=login, auth_require_tls=False)
    SmtpTransport().send(outgoing(), settings(server.port, security="tls", username=USER, password=PASSWORD,
                                             ca_file=tls_certificate.cert))
    assert len(server.messages) == 1 and server.logins == [USER]


def test_an_untrusted_certificate_is_refused_for_good(make_smtp_server, tls_certificate):
    server = make_smtp_server(tls_context=tls_certificate.server_context(), require_starttls=True)
    with pytest.raises(PermanentFailure, match="not trusted"):
        SmtpTransport().send(outgoing(), settings(server.port, security="starttls"))
    assert server.messages == []


def test_starttls_asked_but_not_offered_never_falls_back_to_clear_text(make_smtp_server):
    server = make_smtp_server()
    with pytest.raises(PermanentFailure, match="does not offer STARTTLS"):
        SmtpTransport().send(outgoing(), settings(server.port, security="starttls"))
    assert server.messages == []


def test_a_wrong_password_is_permanent_and_not_in_the_error(make_smtp_server, tls_certificate, login):
    USER, PASSWORD = login
    server = make_smtp_server(tls_context=tls_certificate.server_context(), require_starttls=True, login=login)
    wrong = "wrong-pa55word-123"
    with pytest.raises(PermanentFailure) as raised:
        SmtpTransport().send(outgoing(), settings(server.port, security="starttls", username=USER,
                                                 password=wrong, ca_file=tls_certificate.cert))
    assert "refused the login" in str(raised.value) and "535" in str(raised.value)
    assert wrong not in str(raised.value) and PASSWORD not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert server.messages == []


@pytest.mark.parametrize(("where", "reply", "kind"), [
    ("rcpt", "451 4.3.0 Mailbox busy, try again later", TemporaryFailure),
    ("rcpt", "550 5.1.1 No such user here", PermanentFailure),
    ("data", "451 4.3.0 Local problem, try again later", TemporaryFailure),
    ("data", "554 5.7.1 Message refused as spam", PermanentFailure),
])
def test_smtp_answers_map_to_temporary_or_permanent(make_smtp_server, where, reply, kind):
    server = make_smtp_server()
    setattr(server, f"{where}_reply", reply)
    with pytest.raises(kind) as raised:
        SmtpTransport().send(outgoing(), settings(server.port))
    assert reply.split()[0] in str(raised.value) and reply.split()[-1] in str(raised.value)
    assert server.messages == []


def test_a_server_that_never_answers_is_a_temporary_failure_bounded_by_the_timeout(silent_server):
    with pytest.raises(TemporaryFailure, match="did not answer within 1 s"):
        SmtpTransport().send(outgoing(), settings(silent_server, timeout=1.0))


def test_a_tls_server_that_never_answers_is_bounded_too(silent_server, tls_certificate):
    with pytest.raises(TemporaryFailure):
        SmtpTransport().send(outgoing(), settings(silent_server, timeout=1.0, security="tls",
                                                 ca_file=tls_certificate.cert))


def test_a_refused_connection_is_temporary(closed_port):
    with pytest.raises(TemporaryFailure, match="cannot reach 127.0.0.1"):
        SmtpTransport().send(outgoing(), settings(closed_port))


def test_header_injection_through_the_subject_is_impossible(make_smtp_server):
    server = make_smtp_server()
    SmtpTransport().send(outgoing(subject="Hi\r\nBcc: spy@evil.example"), settings(server.port))
    (arrived,) = server.messages
    assert arrived["Bcc"] is None and arrived["Subject"] == "Hi Bcc: spy@evil.example"
    assert server.envelopes[0].rcpt_tos == ["maria@meadow.example"]


def test_an_unreadable_ca_file_is_permanent(make_smtp_server, tmp_path, tls_certificate):
    server = make_smtp_server(tls_context=tls_certificate.server_context(), require_starttls=True)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(PermanentFailure, match="CA file"):
        SmtpTransport().send(outgoing(), settings(server.port, security="starttls", ca_file=str(bad)))


def test_the_system_trust_store_is_the_default():
    context = ssl.create_default_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
