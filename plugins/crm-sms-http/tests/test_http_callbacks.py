"""Delivery reports of the generic gateway end to end through /hooks/sms/http/<business>, and the
plugin's settings as an admin saves them."""

from __future__ import annotations

import dataclasses
import json
import logging
from urllib.parse import urlencode

import pytest
from crm_sms_http import DRIVER, NAME
from crm_sms_http.provider import HttpSmsProvider, callback_signature
from sqlalchemy import text

from crmcore import ValidationFailed
from crmcore.messaging.models import Message
from crmcore.plugins.drivers import load_group
from crmcore.plugins.service import enable_plugin, get_settings, save_settings

SECRET = "shared-" + "c" * 24
PUBLIC = "https://crm.example.com"
URL = f"{PUBLIC}/hooks/sms/http/acme"
BASE = {"url_template": "https://gw.example/api/send", "callbacks": True, "callback_secret": SECRET}


def add_message(ctx, pid, status="sent"):
    with ctx.crm.db.transaction(ctx.business_id) as session:
        message = Message(channel="sms", status=status, to_address="+32470123456", body_text="Hello",
                          provider=DRIVER, provider_message_id=pid)
        session.add(message)
        session.flush()
        return message.id


def state(crm, message_id):
    with crm.db.engine.connect() as conn:
        return conn.execute(text("select status, error from messages where id = :i"), {"i": message_id}).one()


@pytest.fixture
def web(app, crm):
    crm.config = dataclasses.replace(crm.config, public_url=PUBLIC)
    return app.test_client()


def enable(ctx, **over):
    enable_plugin(ctx, NAME, BASE | over)


def test_discovered_with_its_driver(crm):
    assert NAME in crm.registry.plugins and NAME not in crm.registry.errors
    assert load_group("crmcore.sms_providers")[DRIVER].obj is HttpSmsProvider


def test_signed_json_report(ctx, web, crm):
    enable(ctx)
    mid = add_message(ctx, "gw-1")
    body = json.dumps({"id": "gw-1", "status": "DELIVRD"}).encode()
    headers = {"Content-Type": "application/json", "X-Signature": callback_signature(SECRET, body)}
    assert web.post("/hooks/sms/http/acme", data=body, headers=headers).status_code == 200
    assert state(crm, mid) == ("delivered", None)


def test_bad_or_missing_signature_is_403(ctx, web, crm, caplog):
    caplog.set_level(logging.DEBUG)
    enable(ctx)
    mid = add_message(ctx, "gw-2")
    body = json.dumps({"id": "gw-2", "status": "delivered"}).encode()
    wrong = callback_signature("another-secret-" + "x" * 10, body)
    for headers in ({"X-Signature": wrong}, {}, {"X-Signature": "sha256=" + wrong}, {"X-Signature": "zz"}):
        response = web.post("/hooks/sms/http/acme", data=body, headers={"Content-Type": "application/json", **headers})
        assert response.status_code == 403
    assert state(crm, mid) == ("sent", None)
    assert SECRET not in caplog.text


def test_prefixed_base64_signature_over_url_and_body(ctx, web, crm):
    enable(ctx, signature_header="X-Hub-Signature", signature_encoding="base64", signature_algorithm="sha512",
           signature_covers="url_and_body", callback_id_field="data.ref", callback_status_field="data.state",
           callback_error_field="data.reason")
    mid = add_message(ctx, "gw-3")
    body = json.dumps({"data": {"ref": "gw-3", "state": "undeliv", "reason": "absent subscriber"}}).encode()
    signature = callback_signature(SECRET, URL.encode() + body, "sha512", "base64")
    response = web.post("/hooks/sms/http/acme", data=body,
                        headers={"Content-Type": "application/json", "X-Hub-Signature": "sha512=" + signature})
    assert response.status_code == 200
    assert state(crm, mid) == ("failed", "the gateway reported undeliv: absent subscriber")


def test_batch_of_reports(ctx, web, crm):
    enable(ctx, status_map="1=delivered, 2=failed, 8=sent, 16=ignore")
    ids = [add_message(ctx, f"gw-b{i}") for i in range(4)]
    body = json.dumps([{"id": "gw-b0", "status": 1}, {"id": "gw-b1", "status": 2}, {"id": "gw-b2", "status": 16},
                       {"id": "gw-unknown", "status": 1}, {"nothing": True}, "garbage"]).encode()
    response = web.post("/hooks/sms/http/acme", data=body,
                        headers={"Content-Type": "application/json", "X-Signature": callback_signature(SECRET, body)})
    assert response.status_code == 200
    assert [state(crm, i)[0] for i in ids] == ["delivered", "failed", "sent", "sent"]


def test_get_report_with_url_token(ctx, web, crm):
    enable(ctx, callback_auth="url_token", callback_id_field="msgid", callback_status_field="stat")
    mid = add_message(ctx, "gw-4")
    query = urlencode({"token": SECRET, "msgid": "gw-4", "stat": "DELIVRD"})
    assert web.get(f"/hooks/sms/http/acme?{query}").status_code == 200
    assert state(crm, mid)[0] == "delivered"
    mid2 = add_message(ctx, "gw-5")
    bad = urlencode({"token": "guess", "msgid": "gw-5", "stat": "DELIVRD"})
    assert web.get(f"/hooks/sms/http/acme?{bad}").status_code == 403
    assert web.get("/hooks/sms/http/acme?msgid=gw-5&stat=DELIVRD").status_code == 403
    assert state(crm, mid2)[0] == "sent"


def test_signed_form_report(ctx, web, crm):
    enable(ctx)
    mid = add_message(ctx, "gw-6")
    body = urlencode({"id": "gw-6", "status": "failed"}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Signature": callback_signature(SECRET, body)}
    assert web.post("/hooks/sms/http/acme", data=body, headers=headers).status_code == 200
    assert state(crm, mid) == ("failed", "the gateway reported failed")


def test_unchecked_reports_when_chosen(ctx, web, crm):
    enable_plugin(ctx, NAME, {"url_template": "https://gw.example/api/send", "callbacks": True, "callback_auth": "none"})
    mid = add_message(ctx, "gw-7")
    assert web.post("/hooks/sms/http/acme", json={"id": "gw-7", "status": "delivered"}).status_code == 200
    assert state(crm, mid)[0] == "delivered"


def test_callbacks_off_is_403(ctx, web):
    enable_plugin(ctx, NAME, {"url_template": "https://gw.example/api/send"})
    assert web.post("/hooks/sms/http/acme", json={"id": "x", "status": "delivered"}).status_code == 403


def test_unknown_business_and_not_enabled_are_404(ctx, web, other_business):
    enable(ctx)
    body = b'{"id": "x", "status": "delivered"}'
    headers = {"Content-Type": "application/json", "X-Signature": callback_signature(SECRET, body)}
    assert web.post("/hooks/sms/http/nobody", data=body, headers=headers).status_code == 404
    assert web.post("/hooks/sms/http/globex", data=body, headers=headers).status_code == 404


@pytest.mark.parametrize("body", [b"", b"{", b"[1, 2", b"\xff\xfe", b"null", b"42", b'"x"', b"a=b&c", b"{}" * 1000])
def test_garbage_never_500(ctx, web, body):
    enable(ctx)
    headers = {"Content-Type": "application/json", "X-Signature": callback_signature(SECRET, body)}
    assert web.post("/hooks/sms/http/acme", data=body, headers=headers).status_code == 200


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "field", "message"), [
    ({}, "url_template", "required"),
    ({"url_template": "https://gw.example/send?to={phone}"}, "url_template", "unknown placeholder {phone}"),
    ({"url_template": "https://gw.example/send?to={to"}, "url_template", "unbalanced braces"),
    ({"url_template": "https://gw.example/send?to={to!r}"}, "url_template", "without format specs"),
    ({"url_template": "https://gw.example/send?to={to:>10}"}, "url_template", "without format specs"),
    ({"url_template": "https://gw.example/send?x={}"}, "url_template", "{name}"),
    ({"url_template": "gw.example/send"}, "url_template", "http"),
    ({"url_template": "https://user:pw@gw.example/send"}, "url_template", "no credentials"),
    ({"url_template": "https://{sender}.example/send"}, "url_template", "host"),
    ({"url_template": "https://gw.example", "method": "PUT"}, "method", "Must be one of"),
    ({"url_template": "https://gw.example", "method": "GET", "body_format": "json"}, "body_format", "GET"),
    ({"url_template": "https://gw.example", "auth_type": "basic", "username": "u"}, "password", "basic"),
    ({"url_template": "https://gw.example", "auth_type": "bearer"}, "token", "bearer"),
    ({"url_template": "https://gw.example", "auth_type": "header", "header_value": "v" * 10}, "header_name", "header"),
    ({"url_template": "https://gw.example", "header_name": "Bad Header"}, "header_name", "header name"),
    ({"url_template": "https://gw.example", "to_field": "to field"}, "to_field", "letters"),
    ({"url_template": "https://gw.example", "message_id_regex": "(unclosed"}, "message_id_regex", "regular expression"),
    ({"url_template": "https://gw.example", "message_id_regex": "(a)(b)"}, "message_id_regex", "one capture group"),
    ({"url_template": "https://gw.example", "message_id_path": "a.id", "message_id_regex": "(x)"}, "message_id_regex", "not both"),
    ({"url_template": "https://gw.example", "message_id_path": "a..b"}, "message_id_path", "dotted path"),
    ({"url_template": "https://gw.example", "success_statuses": "2xx"}, "success_statuses", "200-299"),
    ({"url_template": "https://gw.example", "success_statuses": "299-200"}, "success_statuses", "empty range"),
    ({"url_template": "https://gw.example", "status_map": "DELIVRD=done"}, "status_map", "not one of"),
    ({"url_template": "https://gw.example", "status_map": "DELIVRD"}, "status_map", "pairs"),
    ({"url_template": "https://gw.example", "extra_params": "a&&=b=="}, "extra_params", "query string"),
    ({"url_template": "https://gw.example", "callbacks": True}, "callback_secret", "needed"),
    ({"url_template": "https://gw.example", "callback_secret": "short"}, "callback_secret", "between 16"),
    ({"url_template": "https://gw.example", "timeout": 0}, "timeout", "greater than or equal"),
])
def test_invalid_settings_name_the_field(ctx, settings, field, message):
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(ctx, NAME, settings)
    assert field in exc.value.errors, exc.value.errors
    assert message.lower() in str(exc.value.errors[field]).lower(), exc.value.errors


def test_secrets_encrypted_masked_and_kept(ctx, crm, caplog):
    caplog.set_level(logging.DEBUG)
    secret_token = "tok-" + "z" * 30
    enable_plugin(ctx, NAME, BASE | {"auth_type": "bearer", "token": secret_token})
    with crm.db.engine.connect() as conn:
        raw = str(conn.execute(text("select settings from plugin_enablements where plugin = :p"), {"p": NAME}).scalar())
    assert secret_token not in raw and SECRET not in raw
    assert secret_token not in str(get_settings(ctx, NAME))
    # saved again without the secrets (as the admin form does): kept, and the rules still pass
    save_settings(ctx, NAME, {"url_template": "https://gw.example/v2/send", "auth_type": "bearer",
                              "callbacks": True, "token": "", "callback_secret": ""})
    stored = ctx.plugin_settings(NAME)
    assert stored["token"] == secret_token and stored["callback_secret"] == SECRET
    assert stored["url_template"] == "https://gw.example/v2/send"
    assert secret_token not in caplog.text and SECRET not in caplog.text


def test_structured_settings_round_trip(ctx):
    enable_plugin(ctx, NAME, {"url_template": "https://gw.example/send", "status_map": "DELIVRD=delivered;UNDELIV=failed",
                              "success_statuses": "200, 202-204", "extra_params": "route=1&type=text"})
    stored = ctx.plugin_settings(NAME)
    from crm_sms_http.schemas import load_config

    config = load_config(stored)
    assert config.status_map == {"delivrd": "delivered", "undeliv": "failed"}
    assert config.success == ((200, 200), (202, 204)) and config.is_success(203) and not config.is_success(201)
    assert config.extra == (("route", "1"), ("type", "text"))
