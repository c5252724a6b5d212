"""Refunds in webhooks: one REFUNDED event per refund, named by its ``re_...`` id and carrying
that refund's amount. ``charge.refunded`` lists the charge's refunds (GET /v1/refunds) from the
local Stripe; ``refund.*`` events carry the refund itself."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe
from crm_payments_stripe.client import new_client
from crm_payments_stripe.gateway import REFUND_PAGE, StripeGateway

from crmcore.payments.gateways import EventKind, InvalidWebhook, PaymentRequest, TemporaryFailure


@pytest.fixture
def gateway():
    return StripeGateway()


def pay(gateway, fake_stripe, attempt_id=12, amount="99.95", currency="EUR"):
    """A paid Checkout Session: its PaymentIntent id."""
    request = PaymentRequest(attempt_id=attempt_id, idempotency_key=f"att-{attempt_id}", amount=Decimal(amount),
                             currency=currency, reference=f"INV-{attempt_id}", description="",
                             return_url="https://crm.example.com/r", cancel_url="https://crm.example.com/c")
    session = gateway.create_session(request, fake_stripe.settings())
    return fake_stripe.mark_paid(session.provider_reference)["payment_intent"]


def refund(gateway, fake_stripe, intent, amount, key, currency="EUR"):
    return gateway.refund(intent, Decimal(amount), currency, key, fake_stripe.settings())


def parse(gateway, fake_stripe, event, **settings):
    return gateway.parse_webhook(fake_stripe.webhook(event), fake_stripe.settings(**settings))


def charge_of(fake_stripe, intent):
    return fake_stripe.payment_intents[intent]["latest_charge"]


# -- charge.refunded ----------------------------------------------------------------------------


def test_two_partial_refunds_are_two_events_with_their_own_amounts_and_ids(gateway, fake_stripe):
    intent = pay(gateway, fake_stripe)
    first = refund(gateway, fake_stripe, intent, "10.00", "r-1")
    second = refund(gateway, fake_stripe, intent, "5.50", "r-2")
    event = fake_stripe.refund_event(intent)
    assert event["data"]["object"]["amount_refunded"] == 1550  # the running total is not what is reported
    got = parse(gateway, fake_stripe, event)
    assert [(e.provider_refund_id, e.amount) for e in got] == [
        (first.provider_refund_id, Decimal("10.00")), (second.provider_refund_id, Decimal("5.50"))]
    for item in got:
        assert item.kind == EventKind.REFUNDED and item.provider_refund_id.startswith("re_")
        assert (item.provider_payment_id, item.currency, item.attempt_id) == (intent, "EUR", 12)
        assert item.provider_reference is None and item.provider_event_id == event["id"]
        assert item.provider_refund_id in item.detail and "test mode" in item.detail
        made = fake_stripe.refunds[item.provider_refund_id]["created"]
        assert item.occurred_at == dt.datetime.fromtimestamp(made, dt.UTC)
    [listing] = fake_stripe.api_requests("GET", "/v1/refunds")
    assert listing.form == {"charge": charge_of(fake_stripe, intent), "limit": str(REFUND_PAGE)}
    assert listing.authorization == f"Bearer {fake_stripe.secret_key}"


def test_the_same_webhook_delivered_twice_names_the_same_refunds(gateway, fake_stripe):
    intent = pay(gateway, fake_stripe)
    refund(gateway, fake_stripe, intent, "10.00", "r-1")
    refund(gateway, fake_stripe, intent, "20.00", "r-2")
    event = fake_stripe.refund_event(intent)
    once = parse(gateway, fake_stripe, event)
    again = parse(gateway, fake_stripe, event)
    assert once == again and len(once) == 2
    assert len({e.provider_refund_id for e in once}) == 2


def test_a_later_refund_reports_the_earlier_ones_again_under_their_ids(gateway, fake_stripe):
    """Each charge.refunded lists every refund: the earlier one comes back with the same id and
    amount (the owning plugin counts it once), the new one is added."""
    intent = pay(gateway, fake_stripe)
    first = refund(gateway, fake_stripe, intent, "10.00", "r-1")
    [before] = parse(gateway, fake_stripe, fake_stripe.refund_event(intent))
    second = refund(gateway, fake_stripe, intent, "89.95", "r-2")
    after = parse(gateway, fake_stripe, fake_stripe.refund_event(intent))
    assert [(e.provider_refund_id, e.amount) for e in after] == [
        (first.provider_refund_id, Decimal("10.00")), (second.provider_refund_id, Decimal("89.95"))]
    assert before.provider_refund_id == after[0].provider_refund_id and before.amount == after[0].amount
    assert sum(e.amount for e in after) == Decimal("99.95")


def test_more_refunds_than_stripes_default_page_are_all_reported(gateway, fake_stripe):
    intent = pay(gateway, fake_stripe)
    made = [refund(gateway, fake_stripe, intent, "1.00", f"r-{n}").provider_refund_id for n in range(12)]
    got = parse(gateway, fake_stripe, fake_stripe.refund_event(intent))
    assert [e.provider_refund_id for e in got] == made


def test_only_this_charges_refunds_are_reported(gateway, fake_stripe):
    mine = pay(gateway, fake_stripe, attempt_id=12)
    theirs = pay(gateway, fake_stripe, attempt_id=13, amount="40.00")
    refund(gateway, fake_stripe, theirs, "15.00", "r-theirs")
    kept = refund(gateway, fake_stripe, mine, "7.00", "r-mine")
    [got] = parse(gateway, fake_stripe, fake_stripe.refund_event(mine))
    assert (got.provider_refund_id, got.provider_payment_id, got.attempt_id) == (kept.provider_refund_id, mine, 12)


def test_pending_and_failed_refunds_are_not_money_given_back(gateway, fake_stripe):
    intent = pay(gateway, fake_stripe)
    done = refund(gateway, fake_stripe, intent, "10.00", "r-1")
    fake_stripe.refund_status = "pending"
    pending = refund(gateway, fake_stripe, intent, "20.00", "r-2")
    assert pending.status == "pending"
    lost = refund(gateway, fake_stripe, intent, "30.00", "r-3")
    fake_stripe.settle_refund(lost.provider_refund_id, succeeded=False)
    got = parse(gateway, fake_stripe, fake_stripe.refund_event(intent))
    assert [e.provider_refund_id for e in got] == [done.provider_refund_id]
    fake_stripe.settle_refund(pending.provider_refund_id)
    got = parse(gateway, fake_stripe, fake_stripe.refund_event(intent))
    assert [e.provider_refund_id for e in got] == [done.provider_refund_id, pending.provider_refund_id]


def test_yen_refunds_are_whole(gateway, fake_stripe):
    intent = pay(gateway, fake_stripe, amount="15000", currency="JPY")
    made = refund(gateway, fake_stripe, intent, "2500", "r-1", currency="JPY")
    [got] = parse(gateway, fake_stripe, fake_stripe.refund_event(intent))
    assert (got.provider_refund_id, got.amount, got.currency) == (made.provider_refund_id, Decimal("2500"), "JPY")


def test_a_charge_without_a_payment_intent_is_the_payment(gateway, fake_stripe):
    intent = pay(gateway, fake_stripe)
    charge = charge_of(fake_stripe, intent)
    refund(gateway, fake_stripe, intent, "3.00", "r-1")
    event = fake_stripe.refund_event(intent)
    event["data"]["object"]["payment_intent"] = None
    [got] = parse(gateway, fake_stripe, event)
    assert got.provider_payment_id == charge


# -- charge.refunded when the refunds cannot be read ---------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 503])
def test_stripe_unavailable_is_temporary_and_the_retry_reports(gateway, fake_stripe, status):
    intent = pay(gateway, fake_stripe)
    made = refund(gateway, fake_stripe, intent, "10.00", "r-1")
    event = fake_stripe.refund_event(intent)
    fake_stripe.fail_next(status)
    with pytest.raises(TemporaryFailure, match=f"refunds of the payment could not be read.*HTTP {status}"):
        parse(gateway, fake_stripe, event)
    [got] = parse(gateway, fake_stripe, event)  # Stripe delivers it again
    assert got.provider_refund_id == made.provider_refund_id


def test_a_refused_key_is_temporary_too_and_never_shown(gateway, fake_stripe, caplog):
    """The delivery is genuine (signed): it must come back once the key is fixed."""
    caplog.set_level(logging.DEBUG)
    intent = pay(gateway, fake_stripe)
    refund(gateway, fake_stripe, intent, "10.00", "r-1")
    wrong = "sk_test_" + "Wr0ngKey" * 4
    with pytest.raises(TemporaryFailure, match=r"HTTP 401.*check secret_key") as exc:
        parse(gateway, fake_stripe, fake_stripe.refund_event(intent), secret_key=wrong)
    assert wrong not in str(exc.value) and wrong[-12:] not in str(exc.value) and "sk_test_" not in str(exc.value)
    assert exc.value.__cause__ is None and exc.value.__context__ is None
    assert wrong not in caplog.text and fake_stripe.secret_key not in caplog.text


def test_an_unknown_charge_is_temporary(gateway, fake_stripe):
    event = fake_stripe.event("charge.refunded", {"id": "ch_unknown", "object": "charge", "amount_refunded": 100,
                                                  "currency": "eur", "payment_intent": "pi_unknown"})
    with pytest.raises(TemporaryFailure, match=r"HTTP 404.*resource_missing"):
        parse(gateway, fake_stripe, event)


def test_a_hanging_stripe_is_cut_off(gateway, fake_stripe):
    intent = pay(gateway, fake_stripe)
    event = fake_stripe.refund_event(intent)
    fake_stripe.hang_next()
    with pytest.raises(TemporaryFailure, match="did not answer within 0.3 s"):
        parse(gateway, fake_stripe, event, timeout=0.3)
    fake_stripe.release()


@pytest.mark.parametrize("answer", [
    {"object": "list", "data": [{"id": "re_1", "object": "refund", "amount": "10.00", "currency": "eur"}]},
    {"object": "list", "data": [{"object": "refund", "amount": 1000, "currency": "eur", "status": "succeeded"}]},
    {"object": "list"},
    {"object": "refund", "id": "re_1"},
])
def test_an_unreadable_list_is_temporary(gateway, fake_stripe, answer):
    """A Stripe (here: a server in its place) answering something else than a list of refunds."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args):
            pass

        def do_GET(self):  # noqa: N802
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        event = fake_stripe.event("charge.refunded", {"id": "ch_1", "object": "charge", "amount_refunded": 1000,
                                                      "currency": "eur"})
        with pytest.raises(TemporaryFailure, match="list of the refunds of charge ch_1 cannot be read"):
            parse(gateway, fake_stripe, event, api_base=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


def test_a_bad_signature_is_refused_before_asking_stripe(gateway, fake_stripe):
    intent = pay(gateway, fake_stripe)
    refund(gateway, fake_stripe, intent, "10.00", "r-1")
    request = fake_stripe.webhook(fake_stripe.refund_event(intent), secret="whsec_" + "0" * 32)
    with pytest.raises(InvalidWebhook, match="does not match"):
        gateway.parse_webhook(request, fake_stripe.settings())
    assert fake_stripe.api_requests("GET", "/v1/refunds") == []


# -- refund.created / refund.updated / charge.refund.updated -----------------------------------


@pytest.mark.parametrize("type_", ["refund.created", "refund.updated", "charge.refund.updated"])
def test_a_succeeded_refund_object_is_one_event(gateway, fake_stripe, type_):
    intent = pay(gateway, fake_stripe)
    made = refund(gateway, fake_stripe, intent, "12.34", "r-1")
    event = fake_stripe.refund_object_event(type_, made.provider_refund_id)
    [got] = parse(gateway, fake_stripe, event)
    assert got.kind == EventKind.REFUNDED
    assert (got.provider_refund_id, got.provider_payment_id, got.amount, got.currency) == (
        made.provider_refund_id, intent, Decimal("12.34"), "EUR")
    assert got.provider_event_id == event["id"] and got.attempt_id is None
    assert fake_stripe.api_requests("GET") == []  # the event holds the refund: no lookup
    # the same refund through charge.refunded: the same id and amount, so it counts once
    [listed] = parse(gateway, fake_stripe, fake_stripe.refund_event(intent))
    assert (listed.provider_refund_id, listed.amount) == (got.provider_refund_id, got.amount)


def test_a_pending_refund_is_reported_when_it_succeeds(gateway, fake_stripe):
    intent = pay(gateway, fake_stripe)
    fake_stripe.refund_status = "pending"
    made = refund(gateway, fake_stripe, intent, "25.00", "r-1")
    assert parse(gateway, fake_stripe, fake_stripe.refund_object_event("refund.created", made.provider_refund_id)) == []
    fake_stripe.settle_refund(made.provider_refund_id)
    [got] = parse(gateway, fake_stripe, fake_stripe.refund_object_event("refund.updated", made.provider_refund_id))
    assert (got.provider_refund_id, got.amount) == (made.provider_refund_id, Decimal("25.00"))


def test_failed_refunds_and_refunds_of_no_payment_report_nothing(gateway, fake_stripe):
    intent = pay(gateway, fake_stripe)
    fake_stripe.refund_status = "pending"
    made = refund(gateway, fake_stripe, intent, "25.00", "r-1")
    fake_stripe.settle_refund(made.provider_refund_id, succeeded=False)
    assert parse(gateway, fake_stripe, fake_stripe.refund_object_event("refund.updated", made.provider_refund_id)) == []
    balance = {"id": "re_balance", "object": "refund", "amount": 500, "currency": "eur", "status": "succeeded",
               "charge": None, "payment_intent": None, "created": 1_700_000_000}
    assert parse(gateway, fake_stripe, fake_stripe.event("refund.created", balance)) == []
    empty = {**balance, "charge": "ch_1", "amount": 0}
    assert parse(gateway, fake_stripe, fake_stripe.event("refund.created", empty)) == []


def test_an_expanded_charge_on_a_refund_is_read_by_its_id(gateway, fake_stripe):
    obj = {"id": "re_1", "object": "refund", "amount": 500, "currency": "usd", "status": "succeeded",
           "charge": {"id": "ch_1", "object": "charge"}, "payment_intent": None, "created": 1_700_000_000}
    [got] = parse(gateway, fake_stripe, fake_stripe.event("refund.updated", obj))
    assert (got.provider_payment_id, got.amount, got.currency) == ("ch_1", Decimal("5.00"), "USD")
    assert got.occurred_at == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)


# -- the local Stripe's GET /v1/refunds, through the stripe package ----------------------------


def test_the_fake_lists_refunds_as_stripe_does(gateway, fake_stripe):
    intent = pay(gateway, fake_stripe)
    other = pay(gateway, fake_stripe, attempt_id=13)
    made = [refund(gateway, fake_stripe, intent, "1.00", f"r-{n}").provider_refund_id for n in range(5)]
    refund(gateway, fake_stripe, other, "1.00", "r-other")
    client = new_client(fake_stripe.settings())
    page = client.v1.refunds.list(params={"payment_intent": intent, "limit": 2}).to_dict()
    assert [r["id"] for r in page["data"]] == made[::-1][:2] and page["has_more"] is True
    rest = client.v1.refunds.list(params={"payment_intent": intent, "starting_after": made[3]}).to_dict()
    assert [r["id"] for r in rest["data"]] == made[2::-1] and rest["has_more"] is False
    back = client.v1.refunds.list(params={"payment_intent": intent, "ending_before": made[1], "limit": 2}).to_dict()
    assert [r["id"] for r in back["data"]] == [made[3], made[2]] and back["has_more"] is True
    assert len(client.v1.refunds.list().to_dict()["data"]) == 6
    both = client.v1.refunds.list(params={"charge": charge_of(fake_stripe, other), "payment_intent": intent})
    assert both.to_dict()["data"] == []


@pytest.mark.parametrize(("params", "message"), [
    ({"limit": 101}, "less than or equal to 100"),
    ({"limit": 0}, "greater than or equal to 1"),
    ({"customer": "cus_1"}, "unknown parameter: customer"),
    ({"charge": "ch_nope"}, "No such charge"),
    ({"payment_intent": "pi_nope"}, "No such payment_intent"),
    ({"starting_after": "re_nope"}, "No such refund"),
])
def test_the_fake_refuses_bad_list_requests(fake_stripe, params, message):
    with pytest.raises(stripe.InvalidRequestError, match=message):
        new_client(fake_stripe.settings()).v1.refunds.list(params=params)
