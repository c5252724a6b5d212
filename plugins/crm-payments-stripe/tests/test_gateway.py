"""The gateway with the real ``stripe`` package against the local Stripe (crm_payments_stripe.testing):
sessions, the payer's return, refunds, and failures as the contract wants them."""

from __future__ import annotations

import dataclasses
import logging
import socket
from decimal import Decimal

import pytest
from crm_payments_stripe.client import clean
from crm_payments_stripe.gateway import StripeGateway, session_params, stripe_locale

from crmcore.payments.gateways import (
    EventKind,
    PaymentRequest,
    PermanentFailure,
    ReturnRequest,
    TemporaryFailure,
)

RETURN = "https://crm.example.com/pay/acme/INV-2026-0007/return"
CANCEL = "https://crm.example.com/pay/acme/INV-2026-0007"


@pytest.fixture
def gateway():
    return StripeGateway()


def payment(**over) -> PaymentRequest:
    base = dict(attempt_id=41, idempotency_key="att-41-7f3c", amount=Decimal("1234.50"), currency="EUR",
                reference="INV-2026-0007", description="Invoice INV-2026-0007, Acme Equipment",
                return_url=RETURN, cancel_url=CANCEL, customer_email="ap@globex.example", locale="nl",
                metadata={"invoice_id": "7", "business": "acme"})
    base.update(over)
    return PaymentRequest(**base)


def back(session) -> ReturnRequest:
    return ReturnRequest(provider_reference=session.provider_reference, query={"session_id": "forged"}, form={})


# -- creating the session -----------------------------------------------------------------------


def test_session_in_cents_with_everything_echoed(gateway, fake_stripe):
    session = gateway.create_session(payment(), fake_stripe.settings())
    assert session.provider_reference.startswith("cs_test_")
    assert session.redirect_url == f"{fake_stripe.url}/checkout/{session.provider_reference}"
    assert session.redirect_method == "GET"
    [request] = fake_stripe.api_requests("POST", "/v1/checkout/sessions")
    assert request.authorization == f"Bearer {fake_stripe.secret_key}"
    assert request.idempotency_key == "att-41-7f3c"
    form = request.form
    assert form["mode"] == "payment"
    assert form["line_items"] == [{"quantity": "1", "price_data": {
        "currency": "eur", "unit_amount": "123450",
        "product_data": {"name": "INV-2026-0007", "description": "Invoice INV-2026-0007, Acme Equipment"}}}]
    assert (form["success_url"], form["cancel_url"]) == (RETURN, CANCEL)
    assert form["client_reference_id"] == "41"
    assert form["metadata"] == {"invoice_id": "7", "business": "acme", "attempt_id": "41"}
    assert form["payment_intent_data"]["metadata"] == form["metadata"]
    assert form["customer_email"] == "ap@globex.example" and form["locale"] == "nl"
    stored = fake_stripe.session(session.provider_reference)
    assert (stored["amount_total"], stored["currency"], stored["payment_status"]) == (123450, "eur", "unpaid")


def test_yen_have_no_minor_unit(gateway, fake_stripe):
    session = gateway.create_session(payment(amount=Decimal("15000"), currency="JPY", locale="ja-JP"),
                                     fake_stripe.settings())
    form = fake_stripe.api_requests("POST")[0].form
    assert form["line_items"][0]["price_data"]["unit_amount"] == "15000"
    assert form["line_items"][0]["price_data"]["currency"] == "jpy"
    assert form["locale"] == "ja"
    assert fake_stripe.session(session.provider_reference)["amount_total"] == 15000


def test_half_cents_round_half_up(gateway, fake_stripe):
    gateway.create_session(payment(amount=Decimal("10.005")), fake_stripe.settings())
    assert fake_stripe.api_requests("POST")[0].form["line_items"][0]["price_data"]["unit_amount"] == "1001"


def test_same_idempotency_key_makes_one_session(gateway, fake_stripe):
    first = gateway.create_session(payment(), fake_stripe.settings())
    again = gateway.create_session(payment(), fake_stripe.settings())
    assert again == first
    assert len(fake_stripe.sessions) == 1 and len(fake_stripe.api_requests("POST")) == 2
    other = gateway.create_session(payment(idempotency_key="att-42-0000", attempt_id=42), fake_stripe.settings())
    assert other.provider_reference != first.provider_reference and len(fake_stripe.sessions) == 2


def test_same_key_with_another_amount_is_refused(gateway, fake_stripe):
    gateway.create_session(payment(), fake_stripe.settings())
    with pytest.raises(PermanentFailure, match="idempotency key with other parameters"):
        gateway.create_session(payment(amount=Decimal("99.00")), fake_stripe.settings())
    assert len(fake_stripe.sessions) == 1


def test_optional_settings_reach_stripe(gateway, fake_stripe):
    settings = fake_stripe.settings(statement_descriptor_suffix="INV 0007", payment_method_types=["card", "ideal"])
    gateway.create_session(payment(), settings)
    form = fake_stripe.api_requests("POST")[0].form
    assert form["payment_intent_data"]["statement_descriptor_suffix"] == "INV 0007"
    assert form["payment_method_types"] == ["card", "ideal"]


def test_odd_payer_details_are_left_out(gateway, fake_stripe):
    """An address Stripe would refuse, or a language it does not show, must not fail the payment."""
    gateway.create_session(payment(customer_email="not an email", locale="xx", description=""),
                           fake_stripe.settings())
    form = fake_stripe.api_requests("POST")[0].form
    assert "customer_email" not in form and "locale" not in form
    assert form["line_items"][0]["price_data"]["product_data"] == {"name": "INV-2026-0007"}


@pytest.mark.parametrize(("given", "expected"), [
    ("nl", "nl"), ("nl_BE", "nl"), ("pt-br", "pt-BR"), ("EN-gb", "en-GB"), ("fr-CA", "fr-CA"), ("es-419", "es-419"),
    ("zh-Hant-TW", "zh"), ("xx", None), ("", None), (None, None),
])
def test_locales(given, expected):
    assert stripe_locale(given) == expected


def test_metadata_cannot_override_the_attempt():
    params = session_params(payment(metadata={"attempt_id": "999"}), {"secret_key": "sk_test_x"})
    assert params["metadata"]["attempt_id"] == "41"


@pytest.mark.parametrize(("over", "message"), [
    ({"amount": Decimal("0")}, "above zero"),
    ({"amount": Decimal("-5")}, "above zero"),
    ({"amount": Decimal("0.004")}, "above zero"),
    ({"amount": Decimal("NaN")}, "above zero"),
    ({"currency": "euro"}, "ISO 4217"),
    ({"idempotency_key": ""}, "idempotency key"),
    ({"idempotency_key": "k" * 256}, "idempotency key"),
])
def test_impossible_requests_fail_before_calling(gateway, fake_stripe, over, message):
    with pytest.raises(PermanentFailure, match=message):
        gateway.create_session(payment(**over), fake_stripe.settings())
    assert fake_stripe.received == []


def test_stripe_refusals_are_permanent_and_say_why(gateway, fake_stripe):
    with pytest.raises(PermanentFailure, match=r"HTTP 400.*amount_too_small.*minimum charge"):
        gateway.create_session(payment(amount=Decimal("0.20")), fake_stripe.settings())
    with pytest.raises(PermanentFailure, match=r"url_invalid, parameter success_url"):
        gateway.create_session(payment(return_url="javascript:alert(1)"), fake_stripe.settings())
    assert fake_stripe.sessions == {}


# -- the payer comes back -----------------------------------------------------------------------


def test_return_before_paying_reports_nothing(gateway, fake_stripe):
    session = gateway.create_session(payment(), fake_stripe.settings())
    assert gateway.handle_return(back(session), fake_stripe.settings()) == []


def test_return_after_paying_is_a_payment_of_the_intent(gateway, fake_stripe):
    session = gateway.create_session(payment(), fake_stripe.settings())
    paid = fake_stripe.mark_paid(session.provider_reference)
    [event] = gateway.handle_return(back(session), fake_stripe.settings())
    assert event.kind == EventKind.SUCCEEDED
    assert event.provider_payment_id == paid["payment_intent"] and event.provider_payment_id.startswith("pi_")
    assert event.provider_reference == session.provider_reference
    assert (event.amount, event.currency, event.attempt_id) == (Decimal("1234.50"), "EUR", 41)
    assert "test mode" in event.detail
    assert fake_stripe.api_requests("GET")[0].path == f"/v1/checkout/sessions/{session.provider_reference}"


def test_return_of_a_delayed_payment_is_pending_then_paid(gateway, fake_stripe):
    session = gateway.create_session(payment(), fake_stripe.settings())
    fake_stripe.mark_processing(session.provider_reference)
    [pending] = gateway.handle_return(back(session), fake_stripe.settings())
    assert pending.kind == EventKind.PENDING and pending.provider_payment_id.startswith("pi_")
    fake_stripe.settle(session.provider_reference)
    [paid] = gateway.handle_return(back(session), fake_stripe.settings())
    assert paid.kind == EventKind.SUCCEEDED and paid.provider_payment_id == pending.provider_payment_id


def test_return_of_an_expired_session_is_a_failure(gateway, fake_stripe):
    session = gateway.create_session(payment(), fake_stripe.settings())
    fake_stripe.expire(session.provider_reference)
    [event] = gateway.handle_return(back(session), fake_stripe.settings())
    assert event.kind == EventKind.FAILED and event.provider_payment_id is None and "expired" in event.detail


def test_return_for_an_unknown_session_is_permanent(gateway, fake_stripe):
    with pytest.raises(PermanentFailure, match=r"HTTP 404.*resource_missing"):
        gateway.handle_return(ReturnRequest("cs_test_nope", {}, {}), fake_stripe.settings())
    for reference in ("", "cs/../../v1/refunds"):
        with pytest.raises(PermanentFailure, match="no Stripe Checkout Session"):
            gateway.handle_return(ReturnRequest(reference, {}, {}), fake_stripe.settings())


# -- refunds ------------------------------------------------------------------------------------


@pytest.fixture
def paid(gateway, fake_stripe):
    session = gateway.create_session(payment(), fake_stripe.settings())
    return fake_stripe.mark_paid(session.provider_reference)["payment_intent"]


def test_partial_then_full_refund(gateway, fake_stripe, paid):
    first = gateway.refund(paid, Decimal("234.50"), "EUR", "refund-1", fake_stripe.settings())
    assert first.provider_refund_id.startswith("re_") and first.amount == Decimal("234.50")
    assert first.status == "succeeded"
    [request] = fake_stripe.api_requests("POST", "/v1/refunds")
    assert request.form == {"payment_intent": paid, "amount": "23450"} and request.idempotency_key == "refund-1"
    # a retry with the same key refunds once
    assert gateway.refund(paid, Decimal("234.50"), "EUR", "refund-1", fake_stripe.settings()) == first
    rest = gateway.refund(paid, Decimal("1000.00"), "EUR", "refund-2", fake_stripe.settings())
    assert rest.amount == Decimal("1000.00") and len(fake_stripe.refunds) == 2
    charge = next(iter(fake_stripe.charges.values()))
    assert charge["amount_refunded"] == 123450 and charge["refunded"] is True


def test_refund_larger_than_the_payment_is_permanent(gateway, fake_stripe, paid):
    with pytest.raises(PermanentFailure, match="greater than unrefunded amount"):
        gateway.refund(paid, Decimal("5000"), "EUR", "refund-1", fake_stripe.settings())
    with pytest.raises(PermanentFailure, match="above zero"):
        gateway.refund(paid, Decimal("0"), "EUR", "refund-2", fake_stripe.settings())
    with pytest.raises(PermanentFailure, match="No such payment_intent"):
        gateway.refund("pi_unknown", Decimal("1"), "EUR", "refund-3", fake_stripe.settings())
    assert fake_stripe.refunds == {}


def test_pending_and_failed_refunds(gateway, fake_stripe, paid):
    fake_stripe.refund_status = "pending"
    assert gateway.refund(paid, Decimal("10"), "EUR", "refund-1", fake_stripe.settings()).status == "pending"
    fake_stripe.refund_status = "failed"
    with pytest.raises(PermanentFailure, match=r"Stripe refused the refund re_\w+ \(failed: unknown\)"):
        gateway.refund(paid, Decimal("10"), "EUR", "refund-2", fake_stripe.settings())


def test_refund_by_charge(gateway, fake_stripe, paid):
    charge = fake_stripe.payment_intents[paid]["latest_charge"]
    result = gateway.refund(charge, Decimal("1.00"), "EUR", "refund-1", fake_stripe.settings())
    assert result.amount == Decimal("1.00")
    assert fake_stripe.api_requests("POST", "/v1/refunds")[0].form == {"charge": charge, "amount": "100"}


# -- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_throttling_and_server_errors_are_temporary(gateway, fake_stripe, status):
    fake_stripe.fail_next(status)
    with pytest.raises(TemporaryFailure, match=f"Stripe is unavailable \\(HTTP {status}\\)"):
        gateway.create_session(payment(), fake_stripe.settings())
    # the retry with the same key goes through: the failure was not saved under the key
    assert gateway.create_session(payment(), fake_stripe.settings()).provider_reference
    assert len(fake_stripe.sessions) == 1


def test_server_errors_on_return_and_refund_are_temporary(gateway, fake_stripe, paid):
    session_id = next(iter(fake_stripe.sessions))
    fake_stripe.fail_next(500, 503)
    with pytest.raises(TemporaryFailure, match="could not confirm the payment"):
        gateway.handle_return(ReturnRequest(session_id, {}, {}), fake_stripe.settings())
    with pytest.raises(TemporaryFailure, match="could not refund"):
        gateway.refund(paid, Decimal("1"), "EUR", "refund-1", fake_stripe.settings())
    assert fake_stripe.refunds == {}


def test_a_hanging_stripe_is_cut_off_by_the_timeout(gateway, fake_stripe):
    fake_stripe.hang_next()
    with pytest.raises(TemporaryFailure, match=r"Stripe did not answer within 0.3 s"):
        gateway.create_session(payment(), fake_stripe.settings(timeout=0.3))
    fake_stripe.release()
    assert gateway.create_session(payment(), fake_stripe.settings()).provider_reference
    assert len(fake_stripe.received) == 2


def test_nobody_listening_is_temporary(gateway):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = {"secret_key": "sk_test_" + "a" * 24, "webhook_secret": "whsec_" + "b" * 32,
                "api_base": f"http://127.0.0.1:{port}", "timeout": 1}
    with pytest.raises(TemporaryFailure, match="could not connect to Stripe") as exc:
        gateway.create_session(payment(), settings)
    assert "a" * 24 not in str(exc.value)


def test_wrong_key_is_permanent_and_never_shown(gateway, fake_stripe, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "sk_test_" + "Wr0ngKey" * 4
    with pytest.raises(PermanentFailure, match="Stripe refused the secret key \\(HTTP 401\\)") as exc:
        gateway.create_session(payment(), fake_stripe.settings(secret_key=wrong))
    text = str(exc.value)
    assert wrong not in text and wrong[-12:] not in text and "sk_test_" not in text
    assert exc.value.__context__ is None and exc.value.__cause__ is None
    with pytest.raises(PermanentFailure, match="HTTP 401") as exc:
        gateway.refund("pi_x", Decimal(1), "EUR", "k", fake_stripe.settings(secret_key=wrong))
    assert wrong not in str(exc.value)
    assert wrong not in caplog.text and fake_stripe.secret_key not in caplog.text
    assert fake_stripe.sessions == {}


def test_provider_text_is_cleaned_of_keys():
    config = {"secret_key": "sk_live_" + "S" * 30, "webhook_secret": "whsec_" + "W" * 30}
    text = clean(f"bad {config['secret_key']} and {config['webhook_secret']} and rk_test_12****7890 "
                 f"and sk_live_{'*' * 20}abcd", config)
    assert "SSSS" not in text and "WWWW" not in text and "rk_test" not in text and "sk_live" not in text


@pytest.mark.parametrize(("settings", "fields"), [
    ({}, "secret_key, webhook_secret"),
    ({"secret_key": "pk_test_abcdefghijkl", "webhook_secret": "whsec_abcdefghijkl"}, "secret_key"),
    ({"secret_key": "sk_test_abcdefghijkl", "webhook_secret": "whsec_abcdefghijkl", "timeout": 99}, "timeout"),
])
def test_invalid_stored_settings_fail_permanently_naming_fields_only(gateway, settings, fields):
    with pytest.raises(PermanentFailure, match=f"\\({fields}\\)") as exc:
        gateway.create_session(payment(), settings)
    assert "abcdefghijkl" not in str(exc.value)


def test_the_contract_timeout_covers_a_call():
    """connect (at most 5 s) + the whole answer (the timeout setting, at most 10 s)"""
    from crm_payments_stripe.schemas import StripeSettings

    assert StripeSettings().fields["timeout"].validators[0].max + 5 <= StripeGateway.timeout


def test_session_params_are_frozen_input():
    """The request object is not changed by building the parameters (it is reused on retry)."""
    request = payment()
    before = dataclasses.asdict(request)
    session_params(request, {"secret_key": "sk_test_x"})
    assert dataclasses.asdict(request) == before
