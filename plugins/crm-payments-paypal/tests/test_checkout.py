"""The PayPal gateway against a local server speaking PayPal's REST API (crm_payments_paypal.testing):
order, approval, capture on return, refunds, tokens, idempotency and failures."""

from __future__ import annotations

import logging
import re
import socket
from decimal import Decimal

import pytest
import requests
from crm_payments_paypal import client as paypal_client
from crm_payments_paypal.testing import TEST_CLIENT_SECRET as CLIENT_SECRET

from crmcore.payments.gateways import (
    EventKind,
    PaymentRequest,
    PermanentFailure,
    ReturnRequest,
    TemporaryFailure,
)


def payment(**over):
    values = {"attempt_id": 41, "idempotency_key": "attempt-41-7f3c", "amount": Decimal("1250.40"),
              "currency": "EUR", "reference": "INV-2026-0007", "description": "Invoice INV-2026-0007",
              "return_url": "https://crm.example.com/pay/acme/return?attempt=41",
              "cancel_url": "https://crm.example.com/pay/acme/cancel?attempt=41", "locale": "nl"}
    values.update(over)
    return PaymentRequest(**values)


def back(session):
    return ReturnRequest(provider_reference=session.provider_reference, query={}, form={})


def approve_in_browser_form(fake, session):
    """What the payer does on PayPal's page: open it, press Approve, follow the redirect."""
    page = requests.get(session.redirect_url, timeout=5)
    assert page.status_code == 200 and ">Approve</button>" in page.text
    token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
    answer = requests.post(f"{fake.url}/checkoutnow", data={"token": token, "action": "approve"},
                           allow_redirects=False, timeout=5)
    assert answer.status_code == 303
    return answer.headers["Location"]


# -- the whole flow -------------------------------------------------------------------------------


def test_pay_approve_return_captures_once(fake, gateway, settings):
    session = gateway.create_session(payment(), settings())
    order = fake.orders[session.provider_reference]
    assert session.redirect_url == f"{fake.url}/checkoutnow?token={order.id}" and session.redirect_method == "GET"
    assert gateway.handle_return(back(session), settings()) == []  # not approved yet: nothing to confirm

    location = approve_in_browser_form(fake, session)
    assert location.startswith("https://crm.example.com/pay/acme/return?attempt=41&token=" + order.id + "&PayerID=")

    [event] = gateway.handle_return(back(session), settings())
    [capture] = fake.captures.values()
    assert event.kind == EventKind.SUCCEEDED and event.provider_payment_id == capture.id
    assert (event.amount, event.currency, event.attempt_id) == (Decimal("1250.40"), "EUR", 41)
    assert event.provider_reference == order.id and event.occurred_at is not None

    again = gateway.handle_return(back(session), settings())  # the payer reloads the return page
    assert again == [event] and len(fake.captures) == 1
    captures = fake.requests_to(f"/v2/checkout/orders/{order.id}/capture")
    assert {r.headers["paypal-request-id"] for r in captures} == {f"capture-{order.id}"}


def test_the_order_as_paypal_receives_it(fake, gateway, settings):
    gateway.create_session(payment(), settings())
    [request] = fake.requests_to("/v2/checkout/orders", "POST")
    assert request.headers["paypal-request-id"] == "attempt-41-7f3c"
    assert request.headers["authorization"].startswith("Bearer ") and request.headers["content-type"] == "application/json"
    assert request.body["intent"] == "CAPTURE"
    assert request.body["purchase_units"] == [{
        "reference_id": "INV-2026-0007", "invoice_id": "INV-2026-0007-41", "custom_id": "41",
        "description": "Invoice INV-2026-0007", "amount": {"currency_code": "EUR", "value": "1250.40"}}]
    assert request.body["payment_source"]["paypal"]["experience_context"] == {
        "return_url": "https://crm.example.com/pay/acme/return?attempt=41",
        "cancel_url": "https://crm.example.com/pay/acme/cancel?attempt=41",
        "user_action": "PAY_NOW", "shipping_preference": "NO_SHIPPING", "brand_name": "Acme Equipment", "locale": "nl"}


def test_optional_parts_are_left_out(fake, gateway, settings):
    gateway.create_session(payment(locale="not a locale", description=""), settings(brand_name=None))
    body = fake.requests_to("/v2/checkout/orders", "POST")[0].body
    assert "description" not in body["purchase_units"][0]
    assert set(body["payment_source"]["paypal"]["experience_context"]) == {
        "return_url", "cancel_url", "user_action", "shipping_preference"}


def test_long_texts_are_cut_to_paypals_limits(fake, gateway, settings):
    gateway.create_session(payment(reference="R" * 300, description="D" * 300), settings())
    unit = fake.requests_to("/v2/checkout/orders", "POST")[0].body["purchase_units"][0]
    assert (len(unit["reference_id"]), len(unit["invoice_id"]), len(unit["description"])) == (256, 127, 127)


@pytest.mark.parametrize(("given", "sent"), [("nl_NL", "nl-NL"), ("en-us", "en-US"), ("FR", "fr"), ("zh-Hant-TW", "zh-Hant-TW")])
def test_locales_in_paypals_form(fake, gateway, settings, given, sent):
    gateway.create_session(payment(locale=given), settings())
    assert fake.requests_to("/v2/checkout/orders", "POST")[0].body["payment_source"]["paypal"][
        "experience_context"]["locale"] == sent


def test_the_cancel_button_returns_to_cancel_url(fake, gateway, settings):
    session = gateway.create_session(payment(), settings())
    answer = requests.post(f"{fake.url}/checkoutnow", data={"token": session.provider_reference, "action": "cancel"},
                           allow_redirects=False, timeout=5)
    assert answer.headers["Location"] == ("https://crm.example.com/pay/acme/cancel?attempt=41&token="
                                          + session.provider_reference)
    assert gateway.handle_return(back(session), settings()) == []


# -- amounts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "currency", "value"), [
    ("1200", "JPY", "1200"), ("1200.4", "JPY", "1200"), ("1199.5", "JPY", "1200"), ("12.3", "EUR", "12.30"),
    ("0.005", "USD", "0.01"), ("1E+3", "GBP", "1000.00"), ("15000", "HUF", "15000"), ("990.00", "TWD", "990"),
])
def test_amounts_use_the_currencys_decimals(fake, gateway, settings, amount, currency, value):
    session = gateway.create_session(payment(amount=Decimal(amount), currency=currency.lower()), settings())
    assert fake.orders[session.provider_reference].unit["amount"] == {"currency_code": currency, "value": value}


def test_a_jpy_payment_end_to_end(fake, gateway, settings):
    session = gateway.create_session(payment(amount=Decimal("48000"), currency="JPY"), settings())
    fake.approve(session.provider_reference)
    [event] = gateway.handle_return(back(session), settings())
    assert (event.amount, event.currency) == (Decimal("48000"), "JPY")
    refund = gateway.refund(event.provider_payment_id, Decimal("8000"), "JPY", "refund-1", settings())
    assert refund.amount == Decimal("8000")
    assert fake.requests_to("/v2/payments/captures")[0].body == {"amount": {"currency_code": "JPY", "value": "8000"}}


@pytest.mark.parametrize(("amount", "currency", "message"), [
    ("0", "EUR", "more than zero"), ("-5", "EUR", "more than zero"), ("0.004", "EUR", "rounds to zero"),
    ("NaN", "EUR", "more than zero"), ("10", "EURO", "ISO 4217"), ("10.50", "HUF", "whole amounts in HUF"),
])
def test_impossible_amounts_are_refused_before_calling_paypal(fake, gateway, settings, amount, currency, message):
    with pytest.raises(PermanentFailure, match=message):
        gateway.create_session(payment(amount=Decimal(amount), currency=currency), settings())
    assert fake.requests_to("/v2/") == []


def test_a_currency_paypal_does_not_take_is_its_refusal(fake, gateway, settings):
    with pytest.raises(PermanentFailure, match="CURRENCY_NOT_SUPPORTED"):
        gateway.create_session(payment(currency="XOF"), settings())


# -- idempotency ------------------------------------------------------------------------------------


def test_the_same_idempotency_key_gets_the_same_order(fake, gateway, settings):
    first = gateway.create_session(payment(), settings())
    again = gateway.create_session(payment(), settings())
    other = gateway.create_session(payment(idempotency_key="attempt-42-0a1b", attempt_id=42), settings())
    assert again == first and other.provider_reference != first.provider_reference
    assert len(fake.orders) == 2


def test_a_retry_after_a_hang_creates_one_order(fake, gateway, settings):
    gateway.create_session(payment(idempotency_key="warm-up"), settings())  # token cached
    fake.hang = True
    with pytest.raises(TemporaryFailure, match="did not answer within 0.3 s"):
        gateway.create_session(payment(), settings(timeout=0.3))
    fake.release()
    first = gateway.create_session(payment(), settings())
    assert gateway.create_session(payment(), settings()) == first
    assert len(fake.orders) == 2  # the warm-up and this attempt's one


def test_an_order_captured_elsewhere_is_read_back(fake, gateway, settings):
    session = gateway.create_session(payment(), settings())
    fake.approve(session.provider_reference)
    token = next(iter(fake.tokens))
    direct = requests.post(f"{fake.url}/v2/checkout/orders/{session.provider_reference}/capture",
                           headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                                    "PayPal-Request-Id": "captured-by-hand"}, timeout=5)
    assert direct.status_code == 201
    [event] = gateway.handle_return(back(session), settings())
    assert event.kind == EventKind.SUCCEEDED and event.provider_payment_id == next(iter(fake.captures))
    assert event.attempt_id == 41 and len(fake.captures) == 1
    assert fake.requests_to(f"/v2/checkout/orders/{session.provider_reference}", "GET")


# -- capture outcomes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("outcome", "kind", "detail"), [
    ("DECLINED", EventKind.FAILED, "declined (DECLINED_BY_RISK_FRAUD_FILTERS)"),
    ("PENDING", EventKind.PENDING, "pending (PENDING_REVIEW)"),
])
def test_capture_outcomes(fake, gateway, settings, outcome, kind, detail):
    fake.capture_outcome = outcome
    session = gateway.create_session(payment(), settings())
    fake.approve(session.provider_reference)
    [event] = gateway.handle_return(back(session), settings())
    assert event.kind == kind and detail in event.detail
    assert event.provider_payment_id == next(iter(fake.captures))


def test_a_declined_funding_source_fails_the_attempt(fake, gateway, settings):
    fake.capture_outcome = "INSTRUMENT_DECLINED"
    session = gateway.create_session(payment(), settings())
    fake.approve(session.provider_reference)
    [event] = gateway.handle_return(back(session), settings())
    assert event.kind == EventKind.FAILED and "INSTRUMENT_DECLINED" in event.detail
    assert event.provider_payment_id is None and fake.captures == {}


def test_an_unknown_order_is_permanent(fake, gateway, settings):
    with pytest.raises(PermanentFailure, match="RESOURCE_NOT_FOUND"):
        gateway.handle_return(ReturnRequest("5O190127TN364715T", {}, {}), settings())
    with pytest.raises(PermanentFailure, match="not a PayPal order id"):
        gateway.handle_return(ReturnRequest("../../v1/oauth2/token", {}, {}), settings())


# -- refunds --------------------------------------------------------------------------------------


@pytest.fixture
def paid(fake, gateway, settings):
    session = gateway.create_session(payment(), settings())
    fake.approve(session.provider_reference)
    return gateway.handle_return(back(session), settings())[0]


def test_partial_then_full_refund(fake, gateway, settings, paid):
    first = gateway.refund(paid.provider_payment_id, Decimal("250.40"), "EUR", "refund-a", settings())
    assert first.amount == Decimal("250.40") and first.status == "succeeded"
    assert first.provider_refund_id in fake.refunds
    request = fake.requests_to(f"/v2/payments/captures/{paid.provider_payment_id}/refund")[0]
    assert request.headers["paypal-request-id"] == "refund-a"
    assert request.body == {"amount": {"currency_code": "EUR", "value": "250.40"}}
    assert fake.captures[paid.provider_payment_id].status == "PARTIALLY_REFUNDED"
    gateway.refund(paid.provider_payment_id, Decimal("1000"), "EUR", "refund-b", settings())
    assert fake.captures[paid.provider_payment_id].status == "REFUNDED"


def test_a_retried_refund_refunds_once(fake, gateway, settings, paid):
    first = gateway.refund(paid.provider_payment_id, Decimal("100"), "EUR", "refund-a", settings())
    assert gateway.refund(paid.provider_payment_id, Decimal("100"), "EUR", "refund-a", settings()) == first
    assert len(fake.refunds) == 1 and fake.captures[paid.provider_payment_id].refunded == Decimal("100")


@pytest.mark.parametrize(("capture", "amount", "currency", "message"), [
    (None, "2000", "EUR", "REFUND_AMOUNT_EXCEEDED"),
    (None, "10", "USD", "REFUND_CURRENCY_MISMATCH"),
    ("8MC585209K746631M", "10", "EUR", "RESOURCE_NOT_FOUND"),
    ("not/a/capture", "10", "EUR", "not a PayPal capture id"),
    (None, "0", "EUR", "more than zero"),
])
def test_refused_refunds_are_permanent(fake, gateway, settings, paid, capture, amount, currency, message):
    with pytest.raises(PermanentFailure, match=message):
        gateway.refund(capture or paid.provider_payment_id, Decimal(amount), currency, "refund-x", settings())
    assert fake.refunds == {}


# -- tokens ----------------------------------------------------------------------------------------


def test_the_access_token_is_fetched_once_and_reused(fake, gateway, settings):
    gateway.create_session(payment(), settings())
    gateway.create_session(payment(idempotency_key="k2"), settings())
    [token_request] = fake.requests_to("/v1/oauth2/token")
    assert token_request.body == {"grant_type": "client_credentials"}
    assert token_request.headers["authorization"].startswith("Basic ")
    bearers = {r.headers["authorization"] for r in fake.requests_to("/v2/")}
    assert len(bearers) == 1


def test_a_token_is_replaced_shortly_before_it_expires(fake, gateway, settings, monkeypatch):
    fake.token_lifetime = 3600
    start = paypal_client.clock()
    gateway.create_session(payment(), settings())
    monkeypatch.setattr(paypal_client, "clock", lambda: start + 3600 - 600)  # 10 minutes left: kept
    gateway.create_session(payment(idempotency_key="k2"), settings())
    assert len(fake.requests_to("/v1/oauth2/token")) == 1
    monkeypatch.setattr(paypal_client, "clock", lambda: start + 3600 - 60)  # 1 minute left: replaced
    gateway.create_session(payment(idempotency_key="k3"), settings())
    assert len(fake.requests_to("/v1/oauth2/token")) == 2


def test_a_401_refreshes_the_token_once(fake, gateway, settings):
    first = gateway.create_session(payment(), settings())
    fake.expire_tokens()
    session = gateway.create_session(payment(idempotency_key="k2"), settings())
    assert session.provider_reference != first.provider_reference and len(fake.orders) == 2
    assert len(fake.requests_to("/v1/oauth2/token")) == 2
    assert [r.status for r in fake.requests_to("/v2/checkout/orders", "POST")] == [201, 401, 201]


def test_a_second_401_is_permanent(fake, gateway, settings):
    fake.script(401, 401, path="/v2/")
    with pytest.raises(PermanentFailure, match="refused a fresh access token"):
        gateway.create_session(payment(), settings())
    assert len(fake.requests_to("/v1/oauth2/token")) == 2 and fake.orders == {}


def test_tokens_are_per_app_and_secret(fake, gateway, settings):
    """A business naming the same client ID with a wrong secret never borrows the cached token."""
    gateway.create_session(payment(), settings())
    wrong = "EWrong" + "x" * 40
    with pytest.raises(PermanentFailure, match="authentication failed"):
        gateway.create_session(payment(idempotency_key="k2"), settings(client_secret=wrong))
    assert len(fake.orders) == 1


def test_bad_credentials_are_permanent_and_not_echoed(fake, gateway, settings, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "EWrongSecret" + "q" * 40
    with pytest.raises(PermanentFailure, match="authentication failed") as exc:
        gateway.create_session(payment(), settings(client_secret=wrong))
    assert wrong not in str(exc.value) and wrong not in caplog.text
    assert [r.status for r in fake.received] == [401]


def test_secrets_paypal_echoes_are_scrubbed(fake, gateway, settings, caplog):
    caplog.set_level(logging.DEBUG)
    gateway.create_session(payment(), settings())
    token = next(iter(fake.tokens))
    fake.script((400, {"name": "INVALID_REQUEST", "message": f"bad secret {CLIENT_SECRET} for token {token}"}),
                path="/v2/checkout/orders")
    with pytest.raises(PermanentFailure, match="INVALID_REQUEST") as exc:
        gateway.create_session(payment(idempotency_key="k2"), settings())
    text = str(exc.value)
    assert CLIENT_SECRET not in text and token not in text and "[secret]" in text
    assert CLIENT_SECRET not in caplog.text and token not in caplog.text


# -- failures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_temporary(fake, gateway, settings, status):
    fake.script(status, path="/v2/checkout/orders")
    with pytest.raises(TemporaryFailure, match=f"HTTP {status}"):
        gateway.create_session(payment(), settings())
    assert gateway.create_session(payment(), settings()).provider_reference in fake.orders


def test_a_500_on_the_token_is_temporary(fake, gateway, settings):
    fake.script(500, path="/v1/oauth2/token")
    with pytest.raises(TemporaryFailure, match="HTTP 500"):
        gateway.create_session(payment(), settings())


def test_a_500_on_capture_is_temporary_and_the_retry_captures_once(fake, gateway, settings):
    session = gateway.create_session(payment(), settings())
    fake.approve(session.provider_reference)
    fake.script(500, path="/v2/checkout/orders/")
    with pytest.raises(TemporaryFailure, match="HTTP 500"):
        gateway.handle_return(back(session), settings())
    [event] = gateway.handle_return(back(session), settings())
    assert event.kind == EventKind.SUCCEEDED and len(fake.captures) == 1


@pytest.mark.parametrize("operation", ["create", "capture", "refund", "token"])
def test_a_hanging_paypal_is_cut_off_by_the_timeout(fake, gateway, settings, operation):
    if operation == "token":
        fake.hang = True
        with pytest.raises(TemporaryFailure, match="did not answer within 0.3 s"):
            gateway.create_session(payment(), settings(timeout=0.3))
        return
    session = gateway.create_session(payment(), settings())
    fake.approve(session.provider_reference)
    event = gateway.handle_return(back(session), settings())[0] if operation == "refund" else None
    fake.hang = True
    with pytest.raises(TemporaryFailure, match="did not answer within 0.3 s"):
        if operation == "create":
            gateway.create_session(payment(idempotency_key="k2"), settings(timeout=0.3))
        elif operation == "capture":
            gateway.handle_return(back(session), settings(timeout=0.3))
        else:
            gateway.refund(event.provider_payment_id, Decimal(1), "EUR", "r1", settings(timeout=0.3))


def test_nobody_listening_is_temporary(gateway, settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TemporaryFailure, match="could not connect to PayPal"):
        gateway.create_session(payment(), settings(api_base=f"http://127.0.0.1:{port}"))


def test_an_answer_without_approval_link_is_temporary(fake, gateway, settings):
    fake.script((201, {"id": "5O190127TN364715T", "status": "CREATED", "links": []}), path="/v2/checkout/orders")
    with pytest.raises(TemporaryFailure, match="no id or approval link"):
        gateway.create_session(payment(), settings())


def test_invalid_stored_settings_fail_permanently_naming_fields_only(gateway, settings):
    with pytest.raises(PermanentFailure, match=r"\(client_secret\)") as exc:
        gateway.create_session(payment(), settings(client_secret="bad secret!"))
    assert "bad secret!" not in str(exc.value)
    with pytest.raises(PermanentFailure, match=r"\(webhook_id\)"):
        gateway.refund("8MC585209K746631M", Decimal(1), "EUR", "k", settings(webhook_id=None))


def test_a_budget_bounds_the_whole_operation(fake, settings):
    """Even a slow token plus a slow call cannot keep a worker past the gateway's timeout."""
    from crm_payments_paypal.client import PayPalApi
    from crm_payments_paypal.schemas import load_settings

    api = PayPalApi(load_settings(settings()), budget=0.01)
    with pytest.raises(TemporaryFailure, match="did not finish within 0.01 s"):
        api.request("GET", "/v2/checkout/orders/X")
    assert fake.received == []
