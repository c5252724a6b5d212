"""Staff refund an online payment through the gateway that took it (TestPay's local provider,
then the local Stripe and PayPal of their plugins): the request and its idempotency key are
committed before the call, the refund is recorded once even when the provider's REFUNDED
webhook reports it too, and a refusal, a timeout or a 500 changes nothing but the request,
with the reason on the invoice's timeline. A failure that may have reached the provider keeps
its amount reserved and is tried again with the same key."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from crm_invoicing import service
from crm_invoicing.models import GatewayEvent, Payment, RefundRequest
from sqlalchemy import func, select, text

from crmcore.plugins.service import enable_plugin
from crmcore.testing import CrmClient
from crmcore.timeline.service import feed

from .test_pay_flow import Payer, attempts, continue_target, issue_from_deal  # noqa: TID252
from .testgateway import NAME as GATEWAY  # noqa: TID252


def body(response) -> str:
    return response.get_data(as_text=True)


def paid_through_testpay(inv, app, deal, gateway):
    """An invoice of 1,077.00 paid in full through TestPay: (record, payment, session)."""
    record, path = issue_from_deal(inv, deal)
    payer = Payer(app)
    continue_target(payer.pay(path))
    (attempt,) = attempts(inv)
    session = gateway.pay(attempt.provider_reference)
    payer.client.get(f"{path}/return/{attempt.id}")
    return record, gateway_payment(inv, record.id), session


def gateway_payment(ctx, record_id):
    ctx.session.rollback()
    got = service.get_invoice(ctx, record_id)
    (payment,) = [p for p in got.payments if p.refund_of_id is None]
    return payment


def state(ctx, record_id):
    """(status, paid, refund rows) of the invoice."""
    ctx.session.rollback()
    got = service.get_invoice(ctx, record_id)
    return got.invoice.status, got.invoice.paid_amount, [(p.amount, p.provider_payment_id) for p in got.payments
                                                         if p.refund_of_id is not None]


def requests(ctx):
    ctx.session.rollback()
    return ctx.session.scalars(select(RefundRequest).order_by(RefundRequest.id)).all()


def timeline(ctx, record_id):
    ctx.session.rollback()
    return [e.summary for e in feed(ctx, record_id=record_id).items]


def refund(client, payment_id, amount, reason="Returned goods"):
    return client.post(f"/invoicing/payments/{payment_id}/refund", {"mode": "gateway", "amount": amount,
                                                                      "reason": reason})


# -- TestPay ---------------------------------------------------------------------------------------


def test_a_refund_is_committed_before_the_call_and_counted_once_with_its_webhook(inv, app, client, deal, gateway):
    record, payment, session = paid_through_testpay(inv, app, deal, gateway)
    page = body(client.get(f"/invoicing/payments/{payment.id}/refund"))
    assert "Refund through TestPay" in page and "at most €1,077.00" in page
    seen, meanwhile = [], []
    second = CrmClient(app.test_client())  # the same staff, a second click or a second tab
    second.login("owner@acme.example")

    def look(request):  # in the provider's thread, on a connection of its own
        with inv.crm.db.engine.connect() as conn:
            seen.append(conn.execute(text("select status, amount, reason from invoicing_refund_requests "
                                          "where idempotency_key = :k"),
                                     {"k": request["headers"]["idempotency-key"]}).one())
        meanwhile.append(refund(second, payment.id, "1.00"))

    gateway.on_refund = look
    done = refund(client, payment.id, "100.00", "Damaged <box>")
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/records/{record.id}")
    assert len(seen) == 1 and seen[0][0] == "created" and Decimal(seen[0][1]) == Decimal("100.00")
    assert meanwhile[0].status_code == 409 and "is being made" in body(meanwhile[0])
    (asked,) = requests(inv)
    (sent,) = [r for r in gateway.received if r["path"] == "/v1/refunds"]
    assert sent["headers"]["idempotency-key"] == asked.idempotency_key
    assert sent["json"] == {"payment_id": session["payment_id"], "amount": 10000, "currency": "EUR"}
    assert (asked.status, asked.provider_refund_id, asked.reason) == ("succeeded", gateway_refund_id(gateway),
                                                                      "Damaged <box>")
    expected = [(Decimal("-100.00"), f"refund:{asked.provider_refund_id}")]
    assert state(inv, record.id) == ("partly_paid", Decimal("977.00"), expected)
    assert asked.refund_id is not None
    assert "Refund of 100.00 EUR through TestPay: Damaged <box>" in timeline(inv, record.id)
    shown = body(client.get(f"/records/{record.id}"))
    assert "Damaged &lt;box&gt;" in shown and "<box>" not in shown

    # the provider's webhook reports the same refund, twice: nothing more is counted
    for _ in range(2):
        hook_body, headers = gateway.webhook("payment.refunded", session, amount=10000,
                                             refund_id=asked.provider_refund_id, event_id="evt_refund")
        assert client.raw.post(f"/hooks/payments/{GATEWAY}/acme", data=hook_body, headers=headers).status_code == 200
    assert state(inv, record.id) == ("partly_paid", Decimal("977.00"), expected)
    inv.session.rollback()
    logged = inv.session.scalar(select(GatewayEvent).where(GatewayEvent.provider_event_id == "evt_refund"))
    assert (logged.outcome, logged.deliveries) == ("duplicate", 2)


def gateway_refund_id(gateway):
    (only,) = gateway.refunds
    return only


def test_the_webhook_first_then_the_answer_is_still_one_refund(inv, app, client, deal, gateway):
    """The provider reports the refund before its answer reaches us (a webhook is quick)."""
    record, payment, session = paid_through_testpay(inv, app, deal, gateway)

    def report_first(request):
        refund_id = "re_reported_first"
        gateway.refunds_by_key[request["headers"]["idempotency-key"]] = refund_id
        gateway.refunds[refund_id] = {"id": refund_id, "payment_id": session["payment_id"], "amount": 5000,
                                      "currency": "EUR", "status": "succeeded"}
        hook_body, headers = gateway.webhook("payment.refunded", session, amount=5000, refund_id=refund_id)
        assert app.test_client().post(f"/hooks/payments/{GATEWAY}/acme", data=hook_body,
                                      headers=headers).status_code == 200

    gateway.on_refund = report_first
    assert refund(client, payment.id, "50.00").status_code == 303
    assert state(inv, record.id) == ("partly_paid", Decimal("1027.00"),
                                     [(Decimal("-50.00"), "refund:re_reported_first")])
    (asked,) = requests(inv)
    assert asked.status == "succeeded" and asked.refund_id is not None
    assert any("recorded already from the provider's report" in s for s in timeline(inv, record.id))


@pytest.mark.parametrize("trouble", ["refused", "500", "timeout"])
def test_a_failing_gateway_changes_nothing_and_says_why(inv, app, client, deal, gateway, trouble):
    record, payment, _session = paid_through_testpay(inv, app, deal, gateway)
    if trouble == "refused":
        gateway.script(402)
    elif trouble == "500":
        gateway.script(500)
    else:
        gateway.hang = True
    failed = refund(client, payment.id, "200.00")
    gateway.hang = False
    gateway._released.set()
    page = body(failed)
    assert failed.status_code == 502 and "TestPay did not refund 200.00 EUR" in page
    expected = {"refused": "TestPay refused the refund (402", "500": "TestPay answered 500",
                "timeout": "did not answer"}[trouble]
    assert expected in page
    assert state(inv, record.id) == ("paid", Decimal("1077.00"), [])
    (asked,) = requests(inv)
    assert asked.status == "failed" and expected in asked.error and gateway.api_key not in asked.error
    assert asked.retryable is (trouble != "refused")
    assert any(s.startswith("Refund of 200.00 EUR through TestPay failed:") and expected in s
               for s in timeline(inv, record.id))
    if trouble == "refused":  # nothing reserved: a new refund may ask for everything
        assert refund(client, payment.id, "1077.00").status_code == 303
        assert state(inv, record.id)[:2] == ("active", Decimal("0.00"))
        return
    # the 200.00 may have reached the provider: it stays reserved, and is tried with the same key
    too_much = refund(client, payment.id, "900.00")
    assert too_much.status_code == 422 and "at most 877.00 EUR" in body(too_much)
    assert 'id="gateway-refund-amount-err"' in body(too_much)
    page = body(client.get(f"/invoicing/payments/{payment.id}/refund"))
    assert f"/invoicing/refunds/{asked.id}/retry" in page and "outcome unknown" in page
    retried = client.post(f"/invoicing/refunds/{asked.id}/retry")
    assert retried.status_code == 303
    keys = [r["headers"]["idempotency-key"] for r in gateway.received if r["path"] == "/v1/refunds"]
    assert keys == [asked.idempotency_key, asked.idempotency_key]
    assert state(inv, record.id)[:2] == ("partly_paid", Decimal("877.00"))
    assert requests(inv)[0].status == "succeeded"
    assert client.post(f"/invoicing/refunds/{asked.id}/retry").status_code == 409  # done: nothing to retry


def test_a_dismissed_failure_frees_its_amount(inv, app, client, deal, gateway):
    record, payment, _session = paid_through_testpay(inv, app, deal, gateway)
    gateway.script(503)
    assert refund(client, payment.id, "1077.00").status_code == 502
    assert refund(client, payment.id, "1.00").status_code == 422  # all of it is reserved
    (asked,) = requests(inv)
    assert client.post(f"/invoicing/refunds/{asked.id}/dismiss").status_code == 303
    assert requests(inv)[0].retryable is False
    assert any("dismissed" in s for s in timeline(inv, record.id))
    assert client.post(f"/invoicing/refunds/{asked.id}/retry").status_code == 409
    assert refund(client, payment.id, "1.00").status_code == 303


def test_bad_input_names_the_field_and_saves_nothing(inv, app, client, deal, gateway):
    record, payment, _session = paid_through_testpay(inv, app, deal, gateway)
    for amount, reason, field in (("0", "x", "amount"), ("abc", "x", "amount"), ("10.001", "x", "amount"),
                                  ("1077.01", "x", "amount"), ("10", "  ", "reason"), ("10", "y" * 501, "reason")):
        response = refund(client, payment.id, amount, reason)
        assert response.status_code == 422, (amount, reason)
        assert f'id="gateway-refund-{field}-err"' in body(response), (amount, reason)
    assert requests(inv) == [] and [r for r in gateway.received if r["path"] == "/v1/refunds"] == []
    assert state(inv, record.id) == ("paid", Decimal("1077.00"), [])


def test_roles_manual_payments_and_other_businesses(inv, app, client, deal, gateway, make_user, other_ctx):
    record, payment, _session = paid_through_testpay(inv, app, deal, gateway)
    reader = CrmClient(app.test_client())
    reader.login(make_user(inv.business, "read_only").user.email)
    assert refund(reader, payment.id, "10").status_code == 403
    member = CrmClient(app.test_client())
    member.login(make_user(inv.business, "member").user.email)
    assert refund(member, payment.id, "10").status_code == 303
    assert len(requests(inv)) == 1
    # a payment recorded by hand is refunded by hand
    other, _path = issue_from_deal(inv, deal)
    by_hand = service.record_payment(inv, other.id, {"amount": "50"})
    page = body(client.get(f"/invoicing/payments/{by_hand.id}/refund"))
    assert "Refund through" not in page and "Record refund" in page
    refused = refund(client, by_hand.id, "10")
    assert refused.status_code == 409 and "recorded by hand" in body(refused)
    # another business sees no such payment
    enable_plugin(other_ctx, "invoicing")
    theirs = CrmClient(app.test_client())
    theirs.login("owner@globex.example")
    assert refund(theirs, payment.id, "10").status_code == 404
    assert theirs.get(f"/invoicing/payments/{payment.id}/refund").status_code == 404
    assert len(requests(inv)) == 1


def test_the_gateway_disabled_leaves_the_manual_refund(inv, app, client, deal, gateway):
    from crmcore.plugins.service import disable_plugin

    record, payment, _session = paid_through_testpay(inv, app, deal, gateway)
    disable_plugin(inv, "testpay-plugin")
    page = body(client.get(f"/invoicing/payments/{payment.id}/refund"))
    assert "is not enabled here any more" in page and "Record refund" in page
    assert refund(client, payment.id, "10").status_code == 409
    assert requests(inv) == []


# -- the local Stripe --------------------------------------------------------------------------------


@pytest.fixture
def stripe(inv, fake_stripe):
    enable_plugin(inv, "payments-stripe", fake_stripe.settings())
    return fake_stripe


def paid_through_stripe(inv, app, deal, stripe):
    record, path = issue_from_deal(inv, deal)
    payer = Payer(app)
    target = continue_target(payer.pay(path, gateway="stripe"))
    session_id = target.rsplit("/", 1)[1]
    (attempt,) = attempts(inv)
    assert target == f"{stripe.url}/checkout/{session_id}" and attempt.provider_reference == session_id
    intent = stripe.mark_paid(session_id)["payment_intent"]
    payer.client.get(f"{path}/return/{attempt.id}")
    payment = gateway_payment(inv, record.id)
    assert (payment.gateway, payment.provider_payment_id) == ("stripe", intent)
    return record, payment, intent


def post_event(client, stripe, event):
    hook_body, headers = stripe.signed(event)
    return client.raw.post("/hooks/payments/stripe/acme", data=hook_body, headers=headers)


def test_stripe_refunds_once_with_its_webhooks(inv, app, client, deal, stripe):
    record, payment, intent = paid_through_stripe(inv, app, deal, stripe)
    assert refund(client, payment.id, "77.00", "Wrong colour").status_code == 303
    (asked,) = requests(inv)
    (sent,) = stripe.api_requests("POST", "/v1/refunds")
    assert sent.idempotency_key == asked.idempotency_key
    assert sent.form["payment_intent"] == intent and sent.form["amount"] == "7700"
    (refund_id,) = stripe.refunds
    assert (asked.status, asked.provider_refund_id) == ("succeeded", refund_id)
    expected = ("partly_paid", Decimal("1000.00"), [(Decimal("-77.00"), f"refund:{refund_id}")])
    assert state(inv, record.id) == expected
    # Stripe reports it three ways; it still counts once
    for event in (stripe.refund_object_event("refund.created", refund_id), stripe.refund_event(intent),
                  stripe.refund_object_event("refund.updated", refund_id)):
        assert post_event(client, stripe, event).status_code == 200
    assert state(inv, record.id) == expected
    inv.session.rollback()
    outcomes = inv.session.scalars(select(GatewayEvent.outcome).where(GatewayEvent.kind == "refunded")).all()
    assert outcomes and set(outcomes) == {"duplicate"}


def test_stripe_refusing_or_failing_changes_nothing(inv, app, client, deal, stripe):
    record, payment, intent = paid_through_stripe(inv, app, deal, stripe)
    stripe.refund_status = "failed"
    refused = refund(client, payment.id, "10.00")
    assert refused.status_code == 502 and "Stripe refused the refund" in body(refused)
    stripe.refund_status = "succeeded"
    stripe.fail_next(500)
    failed = refund(client, payment.id, "20.00")
    assert failed.status_code == 502 and "Stripe is unavailable (HTTP 500)" in body(failed)
    stripe.hang_next()
    timed_out = refund(client, payment.id, "30.00")
    stripe.release()
    assert timed_out.status_code == 502
    assert state(inv, record.id) == ("paid", Decimal("1077.00"), [])
    first, second, third = requests(inv)
    assert [(r.status, r.retryable) for r in (first, second, third)] == [
        ("failed", False), ("failed", True), ("failed", True)]
    assert stripe.settings()["secret_key"] not in (first.error + second.error + third.error)
    lines = timeline(inv, record.id)
    assert sum(1 for s in lines if "through Stripe failed" in s) == 3
    # tried again with the same keys, Stripe refunds each once
    for asked in (second, third):
        assert client.post(f"/invoicing/refunds/{asked.id}/retry").status_code == 303
    sent = [r.idempotency_key for r in stripe.api_requests("POST", "/v1/refunds")]
    assert sent.count(second.idempotency_key) == 2 and len(stripe.refunds) == 3  # the "failed" one, and two
    assert state(inv, record.id)[:2] == ("partly_paid", Decimal("1027.00"))


def test_a_stripe_webhook_that_cannot_ask_stripe_is_503_then_retried(inv, app, client, deal, stripe):
    """``charge.refunded`` makes the gateway list the charge's refunds: Stripe answering 500
    there is a temporary failure (503: Stripe delivers again), not a bad webhook."""
    record, payment, intent = paid_through_stripe(inv, app, deal, stripe)
    from crm_payments_stripe.gateway import StripeGateway

    made = StripeGateway().refund(intent, Decimal("10.00"), "EUR", "dashboard-refund", stripe.settings())
    event = stripe.refund_event(intent)  # a refund made in Stripe's dashboard, reported by webhook
    stripe.fail_next(500)
    answer = post_event(client, stripe, event)
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert state(inv, record.id) == ("paid", Decimal("1077.00"), [])
    assert post_event(client, stripe, event).status_code == 200  # the redelivery
    assert state(inv, record.id) == ("partly_paid", Decimal("1067.00"),
                                     [(Decimal("-10.00"), f"refund:{made.provider_refund_id}")])
    bad = stripe.signed(event, secret="whsec_" + "0" * 32)
    assert client.raw.post("/hooks/payments/stripe/acme", data=bad[0], headers=bad[1]).status_code == 400


# -- the local PayPal ----------------------------------------------------------------------------------


@pytest.fixture
def paypal(inv):
    from crm_payments_paypal.client import clear_token_cache
    from crm_payments_paypal.testing import FakePayPal
    from crm_payments_paypal.webhooks import clear_certificate_cache

    clear_token_cache()
    clear_certificate_cache()
    with FakePayPal() as fake:
        enable_plugin(inv, "payments-paypal", fake.settings(timeout=2.0))
        yield fake
    clear_token_cache()
    clear_certificate_cache()


def test_paypal_refunds_once_with_its_webhook(inv, app, client, deal, paypal):
    record, path = issue_from_deal(inv, deal)
    payer = Payer(app)
    target = continue_target(payer.pay(path, gateway="paypal"))
    order_id = re.search(r"token=([A-Z0-9]+)", target).group(1)
    back = paypal.approve(order_id)
    payer.client.get(back.replace("https://crm.example.test", ""))
    payment = gateway_payment(inv, record.id)
    assert payment.gateway == "paypal" and payment.provider_payment_id in paypal.captures
    assert refund(client, payment.id, "1077.00", "Cancelled order").status_code == 303
    (asked,) = requests(inv)
    (sent,) = paypal.requests_to(f"/v2/payments/captures/{payment.provider_payment_id}/refund", "POST")
    assert {k.lower(): v for k, v in sent.headers.items()}["paypal-request-id"] == asked.idempotency_key
    (refund_id,) = paypal.refunds
    expected = ("active", Decimal("0.00"), [(Decimal("-1077.00"), f"refund:{refund_id}")])
    assert state(inv, record.id) == expected
    headers, hook_body = paypal.refund_webhook(refund_id)
    assert client.raw.post("/hooks/payments/paypal/acme", data=hook_body, headers=headers).status_code == 200
    assert state(inv, record.id) == expected
    inv.session.rollback()
    assert inv.session.scalar(select(func.count()).select_from(Payment).where(Payment.amount < 0)) == 1
