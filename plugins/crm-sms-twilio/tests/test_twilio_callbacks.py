"""Twilio status callbacks end to end: a signed form POST to /hooks/sms/twilio/<business> through
the Flask app updates the message; a bad signature is refused. Plus the plugin's settings as an
admin saves them (validated, secrets encrypted, never echoed)."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from crm_sms_twilio import DRIVER, NAME
from crm_sms_twilio.provider import TwilioSmsProvider
from crm_sms_twilio.testing import signed_callback, status_params
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from crmcore import ValidationFailed
from crmcore.messaging.models import Message
from crmcore.messaging.providers import CallbackRequest, InvalidCallback
from crmcore.plugins.drivers import load_group
from crmcore.plugins.service import disable_plugin, enable_plugin, get_settings

ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "tok-" + "9f8e7d6c5b4a3210" * 2
SETTINGS = {"account_sid": ACCOUNT, "auth_token": TOKEN, "from_number": "+15017122661"}
PUBLIC = "https://crm.example.com"


def add_message(ctx, sid, status="sent", provider=DRIVER):
    with ctx.crm.db.transaction(ctx.business_id) as session:
        message = Message(channel="sms", status=status, to_address="+32470123456", body_text="Hello",
                          provider=provider, provider_message_id=sid)
        session.add(message)
        session.flush()
        return message.id


def message(crm, message_id):
    with crm.db.engine.connect() as conn:
        return conn.execute(text("select status, error, delivered_at, sent_at from messages where id = :i"),
                            {"i": message_id}).one()


def post_callback(client, url, params, token=TOKEN, signed_url=None):
    headers, body = signed_callback(token, signed_url or url, params)
    path = url.split("://", 1)[1].split("/", 1)[1]
    return client.post("/" + path, data=body, headers=headers)


@pytest.fixture
def twilio(ctx, crm):
    crm.config = dataclasses.replace(crm.config, public_url=PUBLIC)
    enable_plugin(ctx, NAME, SETTINGS)
    return ctx


@pytest.fixture
def web(app):
    return app.test_client()


URL = f"{PUBLIC}/hooks/sms/twilio/acme"


def test_discovered_with_its_driver(crm):
    assert NAME in crm.registry.plugins and NAME not in crm.registry.errors
    driver = load_group("crmcore.sms_providers")[DRIVER]
    assert driver.plugin == NAME and driver.obj is TwilioSmsProvider


def test_delivered_report_updates_the_message(twilio, web, crm):
    sid = "SM" + "1" * 32
    mid = add_message(twilio, sid)
    response = post_callback(web, URL, status_params(ACCOUNT, sid, "delivered"))
    assert response.status_code == 200
    status, error, delivered_at, _sent_at = message(crm, mid)
    assert (status, error) == ("delivered", None) and delivered_at is not None
    # a late "sent" after "delivered" changes nothing
    assert post_callback(web, URL, status_params(ACCOUNT, sid, "sent")).status_code == 200
    assert message(crm, mid)[0] == "delivered"


def test_failed_report_records_the_error(twilio, web, crm):
    sid = "SM" + "2" * 32
    mid = add_message(twilio, sid)
    assert post_callback(web, URL, status_params(ACCOUNT, sid, "sending")).status_code == 200
    assert message(crm, mid)[0] == "sent"
    assert post_callback(web, URL, status_params(ACCOUNT, sid, "undelivered", "30003")).status_code == 200
    status, error, delivered_at, _ = message(crm, mid)
    assert status == "failed" and error == "Twilio error 30003: unreachable handset" and delivered_at is None


def test_bad_signature_is_refused_and_changes_nothing(twilio, web, crm, caplog):
    caplog.set_level(logging.DEBUG)
    sid = "SM" + "3" * 32
    mid = add_message(twilio, sid)
    params = status_params(ACCOUNT, sid, "delivered")
    assert post_callback(web, URL, params, token="not-the-token-" + "0" * 18).status_code == 403
    # signed for another URL (another business's callback) is refused too
    assert post_callback(web, URL, params, signed_url=f"{PUBLIC}/hooks/sms/twilio/globex").status_code == 403
    # a tampered field after signing
    headers, body = signed_callback(TOKEN, URL, params)
    tampered = body.replace(b"delivered", b"failed")
    assert web.post("/hooks/sms/twilio/acme", data=tampered, headers=headers).status_code == 403
    # no signature at all
    assert web.post("/hooks/sms/twilio/acme", data=params).status_code == 403
    assert message(crm, mid)[0] == "sent"
    assert TOKEN not in caplog.text


def test_without_public_url_the_request_url_is_signed(ctx, crm, web):
    enable_plugin(ctx, NAME, SETTINGS)
    sid = "SM" + "4" * 32
    mid = add_message(ctx, sid)
    response = post_callback(web, "http://localhost/hooks/sms/twilio/acme", status_params(ACCOUNT, sid, "delivered"))
    assert response.status_code == 200
    assert message(crm, mid)[0] == "delivered"


def test_unknown_business_or_disabled_plugin_is_404(twilio, web, crm, other_business):
    sid = "SM" + "5" * 32
    mid = add_message(twilio, sid)
    params = status_params(ACCOUNT, sid, "delivered")
    assert post_callback(web, f"{PUBLIC}/hooks/sms/twilio/nope", params).status_code == 404
    # globex exists but has not enabled the plugin
    assert post_callback(web, f"{PUBLIC}/hooks/sms/twilio/globex", params).status_code == 404
    disable_plugin(twilio, NAME)
    assert post_callback(web, URL, params).status_code == 404
    assert message(crm, mid)[0] == "sent"


def test_another_business_with_the_same_sid_is_untouched(twilio, web, crm, other_ctx):
    enable_plugin(other_ctx, NAME, SETTINGS)
    sid = "SM" + "6" * 32
    mine = add_message(twilio, sid)
    theirs = add_message(other_ctx, sid)
    assert post_callback(web, URL, status_params(ACCOUNT, sid, "delivered")).status_code == 200
    assert message(crm, mine)[0] == "delivered" and message(crm, theirs)[0] == "sent"


def test_unknown_sid_and_odd_statuses_answer_200(twilio, web):
    assert post_callback(web, URL, status_params(ACCOUNT, "SM" + "7" * 32, "delivered")).status_code == 200
    assert post_callback(web, URL, status_params(ACCOUNT, "SM" + "7" * 32, "received")).status_code == 200
    assert post_callback(web, URL, {"Garbage": "yes"}).status_code == 200
    assert post_callback(web, URL, {}).status_code == 200


def test_get_is_refused(twilio, web):
    assert web.get("/hooks/sms/twilio/acme?MessageSid=SMx&MessageStatus=delivered").status_code == 403


def test_parse_callback_needs_the_auth_token():
    provider = TwilioSmsProvider()
    request = CallbackRequest(method="POST", url=URL, headers={"X-Twilio-Signature": "abc"}, query={},
                              form={}, body=b"")
    with pytest.raises(InvalidCallback, match="no auth token"):
        provider.parse_callback(request, {"account_sid": ACCOUNT})


def test_default_port_variants_are_accepted():
    """Twilio may sign https://host:443/... for a URL configured as https://host/... (and back)."""
    provider = TwilioSmsProvider()
    params = status_params(ACCOUNT, "SM" + "8" * 32, "delivered")
    for signed, received in [(URL.replace(".com/", ".com:443/"), URL), (URL, URL.replace(".com/", ".com:443/"))]:
        headers, body = signed_callback(TOKEN, signed, params)
        request = CallbackRequest(method="POST", url=received, headers=headers, query={}, form={}, body=body)
        assert provider.parse_callback(request, SETTINGS)[0].status == "delivered"


def test_json_webhook_checks_body_hash():
    import hashlib

    from crm_sms_twilio.provider import signature

    provider = TwilioSmsProvider()
    body = b'{"MessageSid": "SMx"}'
    digest = hashlib.sha256(body).hexdigest()
    url = f"{URL}?bodySHA256={digest}"
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": signature(TOKEN, url, [])}
    ok = CallbackRequest(method="POST", url=url, headers=headers, query={"bodySHA256": digest}, form={}, body=body)
    assert provider.parse_callback(ok, SETTINGS) == []  # JSON bodies carry no status fields we read
    bad = dataclasses.replace(ok, body=b'{"MessageSid": "SMy"}')
    with pytest.raises(InvalidCallback, match="bodySHA256"):
        provider.parse_callback(bad, SETTINGS)


# -- settings ---------------------------------------------------------------------------------


def test_secrets_are_encrypted_and_masked(ctx, crm, caplog):
    caplog.set_level(logging.DEBUG)
    enable_plugin(ctx, NAME, SETTINGS | {"api_key_sid": "SK" + "f" * 32, "api_key_secret": "s3cret-" + "k" * 20})
    with crm.db.engine.connect() as conn:
        raw = str(conn.execute(text("select settings from plugin_enablements where plugin = :p"), {"p": NAME}).scalar())
    assert TOKEN not in raw and "s3cret-" not in raw and "$enc" in raw
    shown = get_settings(ctx, NAME)
    assert TOKEN not in str(shown) and "s3cret-" not in str(shown)
    assert ctx.plugin_settings(NAME)["auth_token"] == TOKEN
    assert TOKEN not in caplog.text and "s3cret-" not in caplog.text


@pytest.mark.parametrize(("settings", "field", "message"), [
    ({"auth_token": TOKEN, "from_number": "+15017122661"}, "account_sid", "required"),
    (SETTINGS | {"account_sid": "AC123"}, "account_sid", "Account SID"),
    ({"account_sid": ACCOUNT, "auth_token": TOKEN}, "from_number", "Messaging Service SID"),
    (SETTINGS | {"from_number": "0470 12 34 56"}, "from_number", "international form"),
    (SETTINGS | {"from_number": "Acme Equipment Ltd"}, "from_number", "11 characters"),
    ({"account_sid": ACCOUNT, "from_number": "+15017122661"}, "auth_token", "auth token"),
    (SETTINGS | {"api_key_sid": "SK" + "a" * 32}, "api_key_secret", "both"),
    (SETTINGS | {"messaging_service_sid": "MG1"}, "messaging_service_sid", "Messaging Service SID"),
    (SETTINGS | {"api_base_url": "ftp://api.twilio.com"}, "api_base_url", "http"),
    (SETTINGS | {"api_base_url": "https://user:pw@api.twilio.com"}, "api_base_url", "credentials"),
    (SETTINGS | {"timeout": 60}, "timeout", "less than or equal"),
    (SETTINGS | {"colour": "red"}, "colour", "Unknown"),
])
def test_invalid_settings_are_refused_naming_the_field(ctx, settings, field, message):
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(ctx, NAME, settings)
    assert field in exc.value.errors and message in str(exc.value.errors[field])
    assert TOKEN not in str(exc.value.errors)
    assert not ctx.is_enabled(NAME)


def test_short_token_error_does_not_echo_it(ctx):
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(ctx, NAME, SETTINGS | {"auth_token": "abc123"})
    assert "abc123" not in str(exc.value.errors) and "auth_token" in exc.value.errors


def test_saving_again_keeps_the_stored_token(ctx, crm):
    from crmcore.plugins.service import save_settings

    enable_plugin(ctx, NAME, SETTINGS)
    save_settings(ctx, NAME, {"account_sid": ACCOUNT, "from_number": "+15017122662", "auth_token": ""})
    assert ctx.plugin_settings(NAME)["auth_token"] == TOKEN
    assert ctx.plugin_settings(NAME)["from_number"] == "+15017122662"


def test_messages_never_hold_the_token(twilio, web, crm):
    sid = "SM" + "9" * 32
    add_message(twilio, sid)
    post_callback(web, URL, status_params(ACCOUNT, sid, "failed", "30008"))
    with crm.db.transaction(twilio.business_id) as session:
        rows = session.scalars(select(Message)).all()
        assert all(TOKEN not in str(vars(m)) for m in rows)


def test_published_signature_vectors():
    """The example of Twilio's webhook-security documentation (auth token 12345), in the two
    versions that circulate (the caller's number differs)."""
    from crm_sms_twilio.provider import signature

    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    for caller, expected in [("+14158675309", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
                             ("+14158675310", "GvWf1cFY/Q7PnoempGyD5oXAezc=")]:
        params = {"CallSid": "CA1234567890ABCDE", "Caller": caller, "Digits": "1234", "From": caller,
                  "To": "+18005551212"}
        assert signature("12345", url, list(params.items())) == expected


field_names = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="=&%+"),
                      min_size=1, max_size=12)
field_values = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=80, deadline=None)
@given(params=st.dictionaries(field_names, field_values, max_size=8), key=st.data())
def test_signature_accepts_exactly_what_was_signed(params, key):
    """Any form Twilio signs is accepted as sent; changing any value, or the URL, is refused."""
    provider = TwilioSmsProvider()
    headers, body = signed_callback(TOKEN, URL, params)
    request = CallbackRequest(method="POST", url=URL, headers=headers, query={}, form={}, body=body)
    provider.parse_callback(request, SETTINGS)
    with pytest.raises(InvalidCallback):
        provider.parse_callback(dataclasses.replace(request, url=URL + "x"), SETTINGS)
    if params:
        name = key.draw(st.sampled_from(sorted(params)))
        _, tampered = signed_callback(TOKEN, URL, {**params, name: params[name] + "!"})
        with pytest.raises(InvalidCallback):
            provider.parse_callback(dataclasses.replace(request, body=tampered), SETTINGS)
