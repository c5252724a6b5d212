"""The Twilio provider against a local server speaking Twilio's Messages API (crm_sms_twilio.testing)."""

from __future__ import annotations

import logging
import socket

import pytest
from crm_sms_twilio.provider import TwilioSmsProvider
from crm_sms_twilio.testing import FakeTwilio

from crmcore.messaging.providers import OutgoingSms, PermanentFailure, TemporaryFailure

ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "tok-" + "9f8e7d6c5b4a3210" * 2
KEY_SID = "SK" + "fedcba9876543210" * 2
KEY_SECRET = "sec-" + "00112233445566778899" * 2
SERVICE = "MG" + "a1b2c3d4e5f60718" * 2
SENDER = "+15017122661"
CALLBACK = "https://crm.example.com/hooks/sms/twilio/acme"


@pytest.fixture
def fake():
    with FakeTwilio(ACCOUNT, TOKEN, api_keys={KEY_SID: KEY_SECRET}) as server:
        yield server


@pytest.fixture
def provider():
    return TwilioSmsProvider()


def settings(fake, **over):
    base = {"account_sid": ACCOUNT, "auth_token": TOKEN, "from_number": SENDER, "api_base_url": fake.url,
            "timeout": 10.0}  # generous: only the hang test is about timing (it sets its own)
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sms(body="Your invoice INV-2031 is due on 12 March.", to="+32470123456", **over):
    return OutgoingSms(message_id=over.pop("message_id", 7), idempotency_key=over.pop("key", "k-7"), to=to,
                       body=body, **over)


def test_sends_with_the_auth_token(fake, provider):
    result = provider.send(sms(status_callback_url=CALLBACK), settings(fake))
    assert result.provider_message_id.startswith("SM") and len(result.provider_message_id) == 34
    assert result.status == "sent" and result.segments == 1 and not result.deduplicated
    [received] = fake.sent()
    assert received.path == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert received.auth == (ACCOUNT, TOKEN)
    assert received.form == {"To": "+32470123456", "From": SENDER, "Body": sms().body, "StatusCallback": CALLBACK}
    assert received.sid == result.provider_message_id


def test_sends_with_an_api_key(fake, provider):
    provider.send(sms(), settings(fake, api_key_sid=KEY_SID, api_key_secret=KEY_SECRET))
    assert fake.sent()[0].auth == (KEY_SID, KEY_SECRET)


def test_api_key_without_auth_token_asks_no_callback(fake, provider):
    """Callbacks are signed with the auth token: without it they could not be verified."""
    provider.send(sms(status_callback_url=CALLBACK),
                  settings(fake, auth_token=None, api_key_sid=KEY_SID, api_key_secret=KEY_SECRET))
    assert "StatusCallback" not in fake.sent()[0].form


def test_callbacks_switched_off_or_no_url(fake, provider):
    provider.send(sms(status_callback_url=CALLBACK), settings(fake, status_callbacks=False))
    provider.send(sms(), settings(fake))
    assert ["StatusCallback" in r.form for r in fake.sent()] == [False, False]


def test_messaging_service_picks_the_sender(fake, provider):
    result = provider.send(sms(), settings(fake, from_number=None, messaging_service_sid=SERVICE))
    form = fake.sent()[0].form
    assert form["MessagingServiceSid"] == SERVICE and "From" not in form
    assert result.segments is None  # Twilio answers num_segments 0 until it picked a sender


def test_message_sender_overrides_the_setting(fake, provider):
    provider.send(sms(sender="ACME"), settings(fake))
    assert fake.sent()[0].form["From"] == "ACME"


def test_segments_reported(fake, provider):
    result = provider.send(sms(body="ż" * 71), settings(fake))
    assert result.segments == 2


def test_invalid_number_is_permanent(fake, provider):
    with pytest.raises(PermanentFailure, match="21211"):
        provider.send(sms(to="+1"), settings(fake))
    fake.script(400)
    with pytest.raises(PermanentFailure, match="not a valid phone number"):
        provider.send(sms(), settings(fake))


def test_bad_credentials_are_permanent_and_not_echoed(fake, provider, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + "a" * 26
    with pytest.raises(PermanentFailure, match="authentication failed") as exc:
        provider.send(sms(), settings(fake, auth_token=wrong))
    assert wrong not in str(exc.value) and wrong not in caplog.text
    with pytest.raises(PermanentFailure, match="authentication failed") as exc:
        provider.send(sms(), settings(fake, api_key_sid=KEY_SID, api_key_secret="x" * 20))
    assert "x" * 20 not in str(exc.value)
    fake.script(401)
    with pytest.raises(PermanentFailure, match="authentication failed") as exc:
        provider.send(sms(), settings(fake))
    assert TOKEN not in str(exc.value) and TOKEN not in caplog.text


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_temporary(fake, provider, status):
    fake.script(status)
    with pytest.raises(TemporaryFailure, match=str(status)):
        provider.send(sms(), settings(fake))
    # and the next call goes through
    assert provider.send(sms(), settings(fake)).provider_message_id


def test_a_hanging_server_is_cut_off_by_the_timeout(fake, provider):
    fake.hang = True
    with pytest.raises(TemporaryFailure, match="did not answer within 0.3 s"):
        provider.send(sms(), settings(fake, timeout=0.3))
    fake.release()
    assert provider.send(sms(), settings(fake)).provider_message_id
    assert len(fake.received) == 2


def test_nobody_listening_is_temporary(provider):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TemporaryFailure, match="could not connect to Twilio"):
        provider.send(sms(), {"account_sid": ACCOUNT, "auth_token": TOKEN, "from_number": SENDER,
                              "api_base_url": f"http://127.0.0.1:{port}"})


def test_unknown_account_is_permanent(fake, provider):
    other = "AC" + "1" * 32
    with pytest.raises(PermanentFailure, match="authentication failed"):
        provider.send(sms(), settings(fake, account_sid=other))


def test_invalid_stored_settings_fail_permanently_naming_fields_only(fake, provider):
    with pytest.raises(PermanentFailure, match=r"\(auth_token\)") as exc:
        provider.send(sms(), settings(fake, auth_token=""))
    with pytest.raises(PermanentFailure, match="from_number") as exc:
        provider.send(sms(), settings(fake, from_number=None))
    assert TOKEN not in str(exc.value)


def test_accepted_but_unreadable_answer_is_not_retried(provider):
    """A 2xx without a sid: Twilio took the message; raising would make the worker send again."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Odd(BaseHTTPRequestHandler):
        def log_message(self, *_a):
            pass

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(201)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"not json!")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Odd)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        result = provider.send(sms(), {"account_sid": ACCOUNT, "auth_token": TOKEN, "from_number": SENDER,
                                       "api_base_url": f"http://127.0.0.1:{server.server_port}"})
    finally:
        server.shutdown()
        server.server_close()
    assert result.provider_message_id is None and result.status == "sent"


def test_declares_no_idempotency():
    assert TwilioSmsProvider.supports_idempotency is False
    assert TwilioSmsProvider.name == "twilio"
