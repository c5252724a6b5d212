"""The generic HTTP provider against a local gateway (crm_sms_http.testing.FakeGateway)."""

from __future__ import annotations

import logging

import pytest
from crm_sms_http.provider import HttpSmsProvider
from crm_sms_http.testing import FakeGateway
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmcore.messaging.providers import OutgoingSms, PermanentFailure, TemporaryFailure

TOKEN = "bearer-" + "7" * 30
PASSWORD = "pa55-" + "w" * 20
HEADER_KEY = "key-" + "k" * 24


@pytest.fixture
def gateway():
    with FakeGateway() as server:
        yield server


@pytest.fixture
def provider():
    return HttpSmsProvider()


def sms(body="Your order 2031 is ready.", to="+32470123456", **over):
    return OutgoingSms(message_id=over.pop("message_id", 11), idempotency_key=over.pop("key", "key-11"),
                       to=to, body=body, **over)


def conf(gateway, **over):
    base = {"url_template": gateway.url, "message_id_path": "messages.0.id",
            "timeout": 10.0}  # generous: only the hang test is about timing (it sets its own)
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def test_form_post(gateway, provider):
    result = provider.send(sms(sender="ACME"), conf(gateway))
    [request] = gateway.requests
    assert request["method"] == "POST" and "x-www-form-urlencoded" in request["content_type"]
    assert request["fields"] == {"to": "+32470123456", "text": "Your order 2031 is ready."}
    assert result.provider_message_id == gateway.delivered[0].id and result.status == "sent"


def test_from_field_and_default_sender(gateway, provider):
    provider.send(sms(), conf(gateway, from_field="from", sender="Acme"))
    provider.send(sms(sender="Other"), conf(gateway, from_field="from", sender="Acme"))
    assert [r["fields"]["from"] for r in gateway.requests] == ["Acme", "Other"]


def test_json_post_with_custom_fields(provider):
    with FakeGateway(to_field="msisdn", text_field="message", from_field="originator") as gw:
        provider.send(sms(), conf(gw, body_format="json", to_field="msisdn", text_field="message",
                                  from_field="originator", sender="ACME", number_format="digits",
                                  extra_params="route=premium&dlr=1"))
        [request] = gw.requests
    assert "application/json" in request["content_type"]
    assert request["fields"] == {"msisdn": "32470123456", "message": "Your order 2031 is ready.",
                                 "originator": "ACME", "route": "premium", "dlr": "1"}


def test_get_with_placeholders_url_encoded(gateway, provider):
    template = gateway.url + "?dest={to_digits}&msg={text}&ref={message_id}&k={idempotency_key}"
    text = "Déjà vu & 100% sure? #1 €5"
    result = provider.send(sms(body=text), conf(gateway, url_template=template, method="GET", to_field="to",
                                                message_id_path=None, message_id_regex=None))
    [request] = gateway.requests
    assert request["method"] == "GET"
    assert request["query"]["dest"] == "32470123456" and request["query"]["msg"] == text
    assert request["query"]["ref"] == "11" and request["query"]["k"] == "key-11"
    assert request["fields"]["text"] == text  # the text field rides in the query string too
    assert result.provider_message_id is None  # no id rule configured


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=200),
       fmt=st.sampled_from(["form", "json", "get"]))
def test_any_text_arrives_unchanged(gateway, provider, text, fmt):
    extra = {"method": "GET"} if fmt == "get" else {"body_format": fmt}
    before = len(gateway.delivered)
    provider.send(sms(body=text), conf(gateway, **extra))
    assert gateway.delivered[before].text == text


def test_text_answer_with_regex(provider):
    with FakeGateway(answer="text") as gw:
        result = provider.send(sms(), conf(gw, message_id_path=None, message_id_regex=r"^OK: (\w+)$"))
        assert result.provider_message_id == gw.delivered[0].id


def test_named_group_regex(provider):
    with FakeGateway(answer="text") as gw:
        result = provider.send(sms(), conf(gw, message_id_path=None, message_id_regex=r"(OK): (?P<id>\w+)"))
        assert result.provider_message_id == gw.delivered[0].id


def test_missing_id_is_still_sent(gateway, provider, caplog):
    result = provider.send(sms(), conf(gateway, message_id_path="data.id"))
    assert result.provider_message_id is None and result.status == "sent"
    assert "no message id" in caplog.text


@pytest.mark.parametrize(("auth", "settings_"), [
    (("basic", "acme", PASSWORD), {"auth_type": "basic", "username": "acme", "password": PASSWORD}),
    (("bearer", TOKEN), {"auth_type": "bearer", "token": TOKEN}),
    (("header", "X-API-Key", HEADER_KEY), {"auth_type": "header", "header_name": "X-API-Key", "header_value": HEADER_KEY}),
])
def test_authentication(provider, auth, settings_, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeGateway(auth=auth) as gw:
        assert provider.send(sms(), conf(gw, **settings_)).provider_message_id
        wrong = {k: (v + "-wrong" if k in ("password", "token", "header_value") else v) for k, v in settings_.items()}
        with pytest.raises(PermanentFailure, match="refused the credentials") as exc:
            provider.send(sms(), conf(gw, **wrong))
    secret = settings_.get("password") or settings_.get("token") or settings_.get("header_value")
    assert secret not in str(exc.value) and secret not in caplog.text


def test_no_auth_when_the_gateway_wants_some(provider):
    with FakeGateway(auth=("bearer", TOKEN)) as gw, pytest.raises(PermanentFailure, match="HTTP 401"):
        provider.send(sms(), conf(gw))


def test_idempotency_field_makes_retries_harmless(provider):
    with FakeGateway(idempotency_field="client_ref") as gw:
        settings_ = conf(gw, idempotency_field="client_ref")
        assert provider.supports_idempotency_for(settings_) is True
        first = provider.send(sms(), settings_)
        again = provider.send(sms(), settings_)  # a retry after a lost answer
        assert first.provider_message_id == again.provider_message_id
        assert len(gw.delivered) == 1 and gw.duplicates_dropped == 1
    assert provider.supports_idempotency_for(conf(gw)) is False
    assert provider.supports_idempotency_for({"url_template": "https://x.example/s?ref={idempotency_key}"}) is True
    assert provider.supports_idempotency_for({"url_template": "nonsense {x}"}) is False


def test_invalid_number_is_permanent_and_quotes_the_gateway(gateway, provider):
    with pytest.raises(PermanentFailure, match=r"HTTP 400\): \{\"error\": \"invalid number"):
        provider.send(sms(to="+1"), conf(gateway))


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_temporary_statuses(gateway, provider, status):
    gateway.script(status)
    with pytest.raises(TemporaryFailure, match=f"HTTP {status}"):
        provider.send(sms(), conf(gateway))
    assert provider.send(sms(), conf(gateway)).provider_message_id


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_permanent_statuses(gateway, provider, status):
    gateway.script(status)
    with pytest.raises(PermanentFailure, match=f"HTTP {status}"):
        provider.send(sms(), conf(gateway))


def test_custom_success_statuses(gateway, provider):
    with pytest.raises(PermanentFailure, match="HTTP 200"):
        provider.send(sms(), conf(gateway, success_statuses="201, 202"))
    assert provider.send(sms(), conf(gateway, success_statuses="200")).provider_message_id


def test_error_regex_turns_a_200_into_a_refusal(provider):
    with FakeGateway(answer="text") as gw, pytest.raises(PermanentFailure, match="refused the message: OK"):
        provider.send(sms(), conf(gw, message_id_path=None, error_regex=r"^OK"))


def test_hang_is_bounded_by_the_timeout(gateway, provider):
    gateway.hang = True
    with pytest.raises(TemporaryFailure, match="did not answer within 0.2 s"):
        provider.send(sms(), conf(gateway, timeout=0.2))
    gateway.release()
    assert provider.send(sms(), conf(gateway)).provider_message_id


def test_redirect_is_not_followed(provider):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *_a):
            pass

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        with pytest.raises(PermanentFailure, match="HTTP 302"):
            provider.send(sms(), {"url_template": f"http://127.0.0.1:{server.server_port}/send"})
    finally:
        server.shutdown()
        server.server_close()


def test_invalid_settings_fail_permanently(provider):
    with pytest.raises(PermanentFailure, match=r"\(url_template\)"):
        provider.send(sms(), {"url_template": "https://gw.example/send?to={phone}"})
    with pytest.raises(PermanentFailure, match=r"\(token\)"):
        provider.send(sms(), {"url_template": "https://gw.example/send", "auth_type": "bearer", "token": ""})


def test_callback_url_goes_where_the_gateway_takes_it(gateway, provider):
    url = "https://crm.example.com/hooks/sms/http/acme"
    base = conf(gateway, callback_url_field="dlr_url", callbacks=True, callback_secret="s" * 20)
    provider.send(sms(status_callback_url=url), base)
    provider.send(sms(status_callback_url=url), base | {"callback_auth": "url_token"})
    provider.send(sms(status_callback_url=url), base | {"callbacks": False})
    got = [r["fields"].get("dlr_url") for r in gateway.requests]
    assert got == [url, url + "?token=" + "s" * 20, None]
