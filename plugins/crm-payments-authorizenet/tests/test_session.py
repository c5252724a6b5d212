"""create_session against the local stand-in: the request Authorize.Net receives, the session the
payer is sent to, and every way it fails (as TemporaryFailure or PermanentFailure, no secret)."""

from __future__ import annotations

import json
import logging
import socket
from decimal import Decimal

import pytest

from crmcore.payments.gateways import PaymentRequest, PermanentFailure, TemporaryFailure

RETURN = "https://crm.example.com/pay/acme/return?attempt=42"
CANCEL = "https://crm.example.com/pay/acme/cancel?attempt=42"


def payment(**over):
    base = dict(attempt_id=42, idempotency_key="attempt-42-key", amount=Decimal("1250.50"), currency="USD",
                reference="INV-2026-0007", description="Hydraulic pump service", return_url=RETURN,
                cancel_url=CANCEL, customer_email="pat@example.com", customer_name="Pat Payer")
    base.update(over)
    return PaymentRequest(**base)


def sent(fake):
    [received] = fake.requests("getHostedPaymentPageRequest")
    return received.body


def options(body):
    return {item["settingName"]: json.loads(item["settingValue"]) for item in body["hostedPaymentSettings"]["setting"]}


def test_creates_a_hosted_form_session(fake, gateway):
    session = gateway.create_session(payment(), fake.settings())
    body = sent(fake)
    assert body["merchantAuthentication"] == {"name": fake.api_login_id, "transactionKey": fake.transaction_key}
    tx = body["transactionRequest"]
    assert tx["transactionType"] == "authCaptureTransaction"
    assert tx["amount"] == "1250.50" and tx["currencyCode"] == "USD"
    assert tx["order"] == {"invoiceNumber": "A42", "description": "INV-2026-0007: Hydraulic pump service"}
    assert tx["customer"] == {"email": "pat@example.com"}
    assert len(body["refId"]) == 20
    assert options(body) == {
        "hostedPaymentReturnOptions": {"showReceipt": False, "url": RETURN, "urlText": "Continue",
                                       "cancelUrl": CANCEL, "cancelUrlText": "Cancel"},
        "hostedPaymentButtonOptions": {"text": "Pay"},
    }
    assert session.provider_reference == "A42"
    assert session.redirect_url == fake.hosted_url and session.redirect_method == "POST"
    assert session.redirect_fields == {"token": next(iter(fake.sessions))}


def test_a_retry_sends_the_same_reference_and_ref_id(fake, gateway):
    first = gateway.create_session(payment(), fake.settings())
    second = gateway.create_session(payment(), fake.settings())
    one, two = (r.body for r in fake.requests("getHostedPaymentPageRequest"))
    assert one["refId"] == two["refId"] and first.provider_reference == second.provider_reference
    other = gateway.create_session(payment(idempotency_key="attempt-43-key", attempt_id=43), fake.settings())
    assert fake.requests("getHostedPaymentPageRequest")[-1].body["refId"] != one["refId"]
    assert other.provider_reference == "A43"


@pytest.mark.parametrize(("amount", "sent_as"), [(Decimal("5"), "5.00"), (Decimal("0.01"), "0.01"),
                                                 (Decimal("19.900"), "19.90"), (Decimal("999999999999.99"), "999999999999.99")])
def test_amounts_are_sent_with_two_decimals(fake, gateway, amount, sent_as):
    gateway.create_session(payment(amount=amount), fake.settings())
    assert sent(fake)["transactionRequest"]["amount"] == sent_as


@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("-5.00"), Decimal("12.345"), Decimal("NaN"),
                                    Decimal("1000000000000.00")])
def test_impossible_amounts_are_refused_before_calling(fake, gateway, amount):
    with pytest.raises(PermanentFailure, match="amount"):
        gateway.create_session(payment(amount=amount), fake.settings())
    assert fake.received == []


@pytest.mark.parametrize("currency", ["JPY", "BHD", "KWD", "CLP"])
def test_currencies_without_two_decimals_are_refused(fake, gateway, currency):
    with pytest.raises(PermanentFailure, match=f"exactly 2 decimals .like USD.; {currency}"):
        gateway.create_session(payment(amount=Decimal("100"), currency=currency), fake.settings())
    assert fake.received == []


@pytest.mark.parametrize("currency", ["", "US", "ZZZ", "usd1"])
def test_unknown_currencies_are_refused(fake, gateway, currency):
    with pytest.raises(PermanentFailure, match="not a currency code"):
        gateway.create_session(payment(currency=currency), fake.settings())


def test_a_currency_the_account_does_not_take_is_refused_by_authorize_net(fake, gateway):
    with pytest.raises(PermanentFailure, match="currencyCode is invalid"):
        gateway.create_session(payment(currency="EUR"), fake.settings())


def test_description_is_cut_to_255_and_odd_emails_are_left_out(fake, gateway):
    gateway.create_session(payment(description="x" * 400, customer_email="not an email"), fake.settings())
    tx = sent(fake)["transactionRequest"]
    assert len(tx["order"]["description"]) == 255 and "customer" not in tx


def test_an_empty_description_is_left_out(fake, gateway):
    gateway.create_session(payment(reference=" ", description=""), fake.settings())
    assert sent(fake)["transactionRequest"]["order"] == {"invoiceNumber": "A42"}


def test_reference_prefix_and_its_limit(fake, gateway):
    session = gateway.create_session(payment(attempt_id=9_007_199), fake.settings(reference_prefix="STG1"))
    assert session.provider_reference == "STG19007199"
    with pytest.raises(PermanentFailure, match="longer than 20"):
        gateway.create_session(payment(attempt_id=9_223_372_036_854_775_807), fake.settings(reference_prefix="STG1"))
    with pytest.raises(PermanentFailure, match="no valid id"):
        gateway.create_session(payment(attempt_id=0), fake.settings())


@pytest.mark.parametrize("field", ["return_url", "cancel_url"])
def test_return_addresses_must_be_web_addresses(fake, gateway, field):
    with pytest.raises(PermanentFailure, match=field):
        gateway.create_session(payment(**{field: "javascript:alert(1)"}), fake.settings())


def test_bad_credentials_are_permanent_and_name_no_secret(fake, gateway, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "WrongKey12345678"
    with pytest.raises(PermanentFailure, match="E00007 User authentication failed") as exc:
        gateway.create_session(payment(), fake.settings(transaction_key=wrong))
    assert "check api_login_id and transaction_key" in str(exc.value)
    for secret in (wrong, fake.transaction_key, fake.signature_key):
        assert secret not in str(exc.value) and secret not in caplog.text
    with pytest.raises(PermanentFailure, match="E00007"):
        gateway.create_session(payment(), fake.settings(api_login_id="someoneElse"))


def test_an_error_text_quoting_a_secret_is_scrubbed(fake, gateway):
    fake.fail_next("E00003", f"The element 'transactionKey' value '{fake.transaction_key}' is bad.")
    with pytest.raises(PermanentFailure) as exc:
        gateway.create_session(payment(), fake.settings())
    assert fake.transaction_key not in str(exc.value) and "[secret]" in str(exc.value)


@pytest.mark.parametrize("code", ["E00001", "E00053"])
def test_try_again_errors_are_temporary(fake, gateway, code):
    fake.fail_next(code, "An error occurred during processing. Please try again.")
    with pytest.raises(TemporaryFailure, match=code):
        gateway.create_session(payment(), fake.settings())
    assert gateway.create_session(payment(), fake.settings()).redirect_fields["token"]


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_throttling_and_server_errors_are_temporary(fake, gateway, status):
    fake.script(status)
    with pytest.raises(TemporaryFailure, match=f"HTTP {status}"):
        gateway.create_session(payment(), fake.settings())
    assert gateway.create_session(payment(), fake.settings()).provider_reference == "A42"


def test_other_http_statuses_are_permanent(fake, gateway):
    fake.script(404)
    with pytest.raises(PermanentFailure, match="HTTP 404: check the API address"):
        gateway.create_session(payment(), fake.settings())


def test_a_hanging_server_is_cut_off_by_the_timeout(fake, gateway):
    fake.hang = True
    with pytest.raises(TemporaryFailure, match="did not answer within 0.3 s"):
        gateway.create_session(payment(), fake.settings(timeout=0.3))
    fake.release()
    assert gateway.create_session(payment(), fake.settings()).redirect_fields


def test_nobody_listening_is_temporary(fake, gateway):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TemporaryFailure, match="could not connect to Authorize.Net"):
        gateway.create_session(payment(), fake.settings(api_url=f"http://127.0.0.1:{port}/xml/v1/request.api"))


def test_stored_settings_that_no_longer_validate_fail_naming_fields_only(fake, gateway):
    with pytest.raises(PermanentFailure, match=r"\(signature_key, transaction_key\)") as exc:
        gateway.create_session(payment(), fake.settings(transaction_key="short", signature_key="abc"))
    assert "short" not in str(exc.value)
    assert fake.received == []


def test_default_addresses_follow_the_environment():
    from crm_payments_authorizenet.schemas import load_settings

    base = {"api_login_id": "5KP3u95bQpv", "transaction_key": "346HZ32z3fP4hTG2", "signature_key": "A" * 128}
    sandbox = load_settings(base)
    assert sandbox["api_url"] == "https://apitest.authorize.net/xml/v1/request.api"
    assert sandbox["hosted_url"] == "https://test.authorize.net/payment/payment"
    production = load_settings(base | {"environment": "production"})
    assert production["api_url"] == "https://api.authorize.net/xml/v1/request.api"
    assert production["hosted_url"] == "https://accept.authorize.net/payment/payment"
    custom = load_settings(base | {"environment": "production", "api_url": "http://127.0.0.1:9/x"})
    assert custom["api_url"] == "http://127.0.0.1:9/x" and custom["hosted_url"].startswith("https://accept.")
