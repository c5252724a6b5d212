"""The pay flow end to end through the real app and a real HTTP gateway (TestPay and its local
provider): the amount comes from the server, the attempt and its idempotency key are committed
before the gateway is called, failures mark the attempt only, returns and webhooks apply
payments once however often and however concurrently they arrive, and the deal moves."""

from __future__ import annotations

import re
import threading
from decimal import Decimal

import pytest
from crm_invoicing import NAME, payments, service
from crm_invoicing.models import AttemptStatus, GatewayEvent, Payment, PaymentAttempt
from sqlalchemy import func, select, text

from crmcore import PluginInfo, hookimpl
from crmcore.context import Context
from crmcore.payments.gateways import EventKind, PaymentEvent
from crmcore.plugins.service import disable_plugin, enable_plugin
from crmcore.records import service as records

from .testgateway import NAME as GATEWAY  # noqa: TID252
from .testgateway import installed  # noqa: TID252


class Payer:
    """An anonymous browser on the public pages (keeps its cookie and CSRF token)."""

    def __init__(self, app):
        self.client = app.test_client()
        self.token = None

    def page(self, path):
        response = self.client.get(path)
        match = re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True))
        if match:
            self.token = match.group(1)  # one per browser session: kept from an earlier page
        return response

    def pay(self, path, gateway=GATEWAY, **form):
        self.page(path)
        return self.client.post(f"{path}/{gateway}", data={"csrf_token": self.token, **form})


def continue_target(response) -> str:
    """The provider's address on the page that sends the payer on (HTTP 200, not a redirect:
    Chromium checks a redirect after a form POST against the form page's form-action): in the
    meta refresh and in the visible link, escaped; no script."""
    import html

    assert response.status_code == 200 and "Location" not in response.headers
    page = response.get_data(as_text=True)
    refresh = re.search(r'<meta http-equiv="refresh" content="0;url=([^"]+)">', page).group(1)
    link = re.search(r'<a class="button primary" id="pay-continue" href="([^"]+)"', page).group(1)
    assert refresh == link and "<script" not in page
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self';")
    assert response.headers["Referrer-Policy"] == "no-referrer" and response.headers["Cache-Control"] == "no-store"
    return html.unescape(link)


def issue_from_deal(ctx, deal):
    record = service.create_invoice_from_deal(ctx, deal.id, {"lines": [
        {"description": "Printer", "quantity": "2", "unit_price": "400"},
        {"description": "Installation", "quantity": "1", "unit_price": "100", "tax_rate": "9"}]})
    done = service.activate_invoice(ctx, record.id)
    return record, f"/pay/{ctx.business.slug}/{done.token}"


def invoice_state(ctx, record_id):
    ctx.session.rollback()
    got = service.get_invoice(ctx, record_id)
    gateway_payments = [p for p in got.payments if p.gateway == GATEWAY and p.amount > 0]
    return got.invoice.status, got.invoice.paid_amount, len(gateway_payments)


def attempts(ctx):
    ctx.session.rollback()
    return ctx.session.scalars(select(PaymentAttempt).order_by(PaymentAttempt.id)).all()


class Listener:
    def __init__(self):
        self.paid = []

    @hookimpl
    def crm_after_invoice_paid(self, ctx, invoice):
        self.paid.append(invoice.id)


@pytest.fixture
def listener(inv, register_plugin):
    heard = Listener()
    register_plugin(heard, name="paid-listener", info=PluginInfo(title="L", depends=(NAME,)), enable_for=inv)
    return heard


def won_stage(ctx, deal):
    from crmcore.pipelines.service import list_pipelines

    pipeline = next(p for p in list_pipelines(ctx, "deal") if p.id == deal.pipeline_id)
    return next(s for s in pipeline.stages if s.kind == "won")


# total: 2 x 400 x 1.21 = 968.00 + 100 x 1.09 = 109.00 -> 1077.00


def test_the_payer_pays_and_returns_the_deal_moves_and_the_hook_runs(inv, app, deal, gateway, listener):
    service.save_settings(inv, {"paid_stage_id": won_stage(inv, deal).id})
    record, path = issue_from_deal(inv, deal)
    payer = Payer(app)
    page = payer.page(path).get_data(as_text=True)
    assert "Pay with TestPay" in page and "1,077.00" in page and "Initech &lt;BV&gt;" in page
    response = payer.pay(path, amount="1.00", currency="USD")  # the form's amount is ignored
    target = continue_target(response)
    assert "Continue to TestPay" in response.get_data(as_text=True)
    (sent,) = gateway.received
    assert sent["json"]["amount"] == 107700 and sent["json"]["currency"] == "EUR"
    (attempt,) = attempts(inv)
    assert sent["headers"]["idempotency-key"] == attempt.idempotency_key
    assert attempt.status == "redirected" and attempt.amount == Decimal("1077.00")
    session_id = attempt.provider_reference
    assert target == f"{gateway.url}/checkout/{session_id}"
    assert sent["json"]["return_url"] == f"https://crm.example.test{path}/return/{attempt.id}"
    gateway.pay(session_id)
    back = payer.client.get(f"{path}/return/{attempt.id}")
    assert back.status_code == 303
    page = payer.page(back.headers["Location"]).get_data(as_text=True)
    assert "your payment was received" in page and "This invoice is paid" in page
    assert invoice_state(inv, record.id) == ("paid", Decimal("1077.00"), 1)
    moved = records.get_record(inv, deal.id)
    assert (moved.status, moved.stage_id) == ("won", won_stage(inv, deal).id)
    assert listener.paid == [record.id]
    # coming back again (a reload) and the webhook for the same payment change nothing
    payer.client.get(f"{path}/return/{attempt.id}")
    body, headers = gateway.webhook("payment.succeeded", gateway.sessions[session_id])
    assert payer.client.post(f"/hooks/payments/{GATEWAY}/acme", data=body, headers=headers).status_code == 200
    assert invoice_state(inv, record.id) == ("paid", Decimal("1077.00"), 1)
    assert listener.paid == [record.id]
    assert "Pay with" not in payer.page(path).get_data(as_text=True)


def test_the_attempt_and_its_key_are_committed_before_the_gateway_is_called(inv, app, deal, gateway):
    _record, path = issue_from_deal(inv, deal)
    seen = []

    def look(request):  # runs in the provider's thread, on its own connection
        key = request["headers"]["idempotency-key"]
        with inv.crm.db.engine.connect() as conn:
            seen.append(conn.execute(text("select status, amount from invoicing_payment_attempts "
                                          "where idempotency_key = :key"), {"key": key}).one())

    gateway.on_session = look
    target = continue_target(Payer(app).pay(path))
    assert len(seen) == 1 and seen[0][0] == "created" and Decimal(seen[0][1]) == Decimal("1077.00")
    (attempt,) = attempts(inv)  # exactly one attempt, the one the gateway was called for
    assert attempt.status == "redirected" and target.endswith(f"/checkout/{attempt.provider_reference}")


@pytest.mark.parametrize("trouble", ["500", "timeout", "401"])
def test_a_failing_gateway_marks_the_attempt_and_changes_nothing_else(inv, app, deal, gateway, trouble):
    record, path = issue_from_deal(inv, deal)
    if trouble == "500":
        gateway.script(500)
    elif trouble == "timeout":
        gateway.hang = True
    else:
        gateway.script(401)
    payer = Payer(app)
    response = payer.pay(path)
    assert response.status_code == 303 and "attempt=" in response.headers["Location"]
    page = payer.page(response.headers["Location"]).get_data(as_text=True)
    assert "did not go through" in page and "Pay with TestPay" in page
    (attempt,) = attempts(inv)
    assert attempt.status == AttemptStatus.FAILED
    expected = {"500": "TestPay answered 500", "timeout": "did not answer", "401": "refused the session"}[trouble]
    assert expected in attempt.error and gateway.api_key not in attempt.error
    assert invoice_state(inv, record.id) == ("active", Decimal("0"), 0)
    gateway.hang = False
    gateway._released.set()
    assert continue_target(payer.pay(path))  # trying again works, with a new attempt and key
    keys = [a.idempotency_key for a in attempts(inv)]
    assert len(set(keys)) == 2


def test_a_webhook_with_a_bad_signature_or_stale_time_is_400_and_changes_nothing(inv, app, deal, gateway):
    import time

    record, path = issue_from_deal(inv, deal)
    payer = Payer(app)
    payer.pay(path)
    (attempt,) = attempts(inv)
    session = gateway.pay(attempt.provider_reference)
    for body, headers in (gateway.webhook("payment.succeeded", session, secret="whsec_wrong_wrong_wrong"),
                          gateway.webhook("payment.succeeded", session, timestamp=int(time.time()) - 3600)):
        assert payer.client.post(f"/hooks/payments/{GATEWAY}/acme", data=body, headers=headers).status_code == 400
    body, headers = gateway.webhook("payment.succeeded", session)
    tampered = body.replace(b'"amount": 107700', b'"amount": 100')
    assert tampered != body
    assert payer.client.post(f"/hooks/payments/{GATEWAY}/acme", data=tampered, headers=headers).status_code == 400
    assert invoice_state(inv, record.id) == ("active", Decimal("0"), 0)
    inv.session.rollback()
    assert inv.session.scalar(select(func.count()).select_from(GatewayEvent)) == 0


def test_the_same_event_three_times_and_from_many_threads_is_one_payment(inv, app, deal, gateway):
    record, path = issue_from_deal(inv, deal)
    payer = Payer(app)
    payer.pay(path)
    (attempt,) = attempts(inv)
    session = gateway.pay(attempt.provider_reference)
    body, headers = gateway.webhook("payment.succeeded", session, event_id="evt_once")
    for _ in range(3):
        assert payer.client.post(f"/hooks/payments/{GATEWAY}/acme", data=body, headers=headers).status_code == 200
    assert invoice_state(inv, record.id) == ("paid", Decimal("1077.00"), 1)
    inv.session.rollback()
    (logged,) = inv.session.scalars(select(GatewayEvent)).all()
    assert (logged.deliveries, logged.outcome) == (3, "applied")

    # a second invoice, its payment delivered by 8 threads at once (each its own client)
    record2, path2 = issue_from_deal(inv, deal)
    payer.pay(path2)
    attempt2 = attempts(inv)[-1]
    session2 = gateway.pay(attempt2.provider_reference)
    body2, headers2 = gateway.webhook("payment.succeeded", session2)
    start = threading.Barrier(8)
    statuses = []

    def deliver():
        client = app.test_client()
        start.wait()
        statuses.append(client.post(f"/hooks/payments/{GATEWAY}/acme", data=body2, headers=headers2).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [200] * 8
    assert invoice_state(inv, record2.id) == ("paid", Decimal("1077.00"), 1)
    with inv.crm.db.engine.connect() as conn:
        assert conn.execute(text("select count(*) from invoicing_payments where provider_payment_id = :p"),
                            {"p": session2["payment_id"]}).scalar() == 1


def test_return_and_webhook_racing_for_one_payment_make_one(inv, app, deal, gateway):
    """The payer's return and the webhook arrive together: still one payment."""
    record, path = issue_from_deal(inv, deal)
    payer = Payer(app)
    payer.pay(path)
    (attempt,) = attempts(inv)
    session = gateway.pay(attempt.provider_reference)
    body, headers = gateway.webhook("payment.succeeded", session)
    start = threading.Barrier(4)

    def by_return():
        client = app.test_client()
        start.wait()
        client.get(f"{path}/return/{attempt.id}")

    def by_webhook():
        client = app.test_client()
        start.wait()
        client.post(f"/hooks/payments/{GATEWAY}/acme", data=body, headers=headers)

    threads = [threading.Thread(target=f) for f in (by_return, by_webhook, by_return, by_webhook)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert invoice_state(inv, record.id) == ("paid", Decimal("1077.00"), 1)


def test_more_than_the_balance_is_kept_as_an_overpayment_and_a_refund_reopens(inv, app, deal, gateway):
    record, path = issue_from_deal(inv, deal)
    payer = Payer(app)
    payer.pay(path)
    (attempt,) = attempts(inv)
    session = gateway.pay(attempt.provider_reference, amount=110000)  # 1,100.00 for 1,077.00
    body, headers = gateway.webhook("payment.succeeded", session)
    payer.client.post(f"/hooks/payments/{GATEWAY}/acme", data=body, headers=headers)
    got = service.get_invoice(inv, record.id)
    assert (got.invoice.status, got.invoice.paid_amount, got.overpaid) == ("paid", Decimal("1077.00"),
                                                                           Decimal("23.00"))
    for event_id in ("evt_refund_1", "evt_refund_1", "evt_refund_update"):  # redelivered, then reported again
        body, headers = gateway.webhook("payment.refunded", session, amount=10000, refund_id="re_1", event_id=event_id)
        assert payer.client.post(f"/hooks/payments/{GATEWAY}/acme", data=body, headers=headers).status_code == 200
    inv.session.rollback()
    got = service.get_invoice(inv, record.id)
    # 100.00 back: the 23.00 overpaid first, then 77.00 of the applied part
    assert (got.invoice.status, got.invoice.paid_amount, got.balance) == ("partly_paid", Decimal("1000.00"),
                                                                           Decimal("77.00"))


def test_money_in_another_currency_is_not_applied(inv, app, deal, gateway):
    record, path = issue_from_deal(inv, deal)
    payer = Payer(app)
    payer.pay(path)
    (attempt,) = attempts(inv)
    session = gateway.pay(attempt.provider_reference)
    body, headers = gateway.webhook("payment.succeeded", session, currency="USD")
    payer.client.post(f"/hooks/payments/{GATEWAY}/acme", data=body, headers=headers)
    got = service.get_invoice(inv, record.id)
    assert got.invoice.status == "active" and got.overpaid == Decimal("1077.00")


def test_a_post_form_redirect_is_rendered_escaped_with_the_provider_allowed(inv, app, deal):
    with installed(inv, redirect_method="POST") as fake:
        _record, path = issue_from_deal(inv, deal)
        response = Payer(app).pay(path)
        page = response.get_data(as_text=True)
        assert response.status_code == 200 and f'action="{fake.url}/checkout/' in page
        assert 'name="note" value="&lt;&amp;&gt;"' in page and "data-submit-now" in page
        assert f"form-action 'self' https: {fake.url}" in response.headers["Content-Security-Policy"]


def test_the_continue_page_escapes_the_provider_address(inv, app, deal):
    with installed(inv, url_suffix="?next=a'b\"c<d>&e=1 2") as fake:
        _record, path = issue_from_deal(inv, deal)
        response = Payer(app).pay(path)
        page = response.get_data(as_text=True)
        target = continue_target(response)
        assert target.startswith(f"{fake.url}/checkout/") and target.endswith("?next=a%27b%22c%3Cd%3E&e=1%202")
        assert "<d>" not in page and "a'b" not in page and "&amp;e=1%202" in page
        (attempt,) = attempts(inv)
        assert attempt.status == "redirected"


def test_the_cancel_page_marks_the_attempt(inv, app, deal, gateway):
    _record, path = issue_from_deal(inv, deal)
    payer = Payer(app)
    payer.pay(path)
    (attempt,) = attempts(inv)
    response = payer.client.get(f"{path}/cancel/{attempt.id}")
    assert response.status_code == 303
    assert "You cancelled the payment" in payer.page(response.headers["Location"]).get_data(as_text=True)
    assert attempts(inv)[0].status == "cancelled"
    assert payer.client.get(f"{path}/cancel/{attempt.id + 1000}").status_code == 404


def test_webhooks_only_where_the_gateway_is_enabled_and_within_the_size_limit(inv, app, other_ctx, deal, gateway):
    client = app.test_client()
    assert client.post(f"/hooks/payments/{GATEWAY}/globex", data=b"{}").status_code == 404  # plugin off there
    enable_plugin(other_ctx, NAME)
    assert client.post(f"/hooks/payments/{GATEWAY}/globex", data=b"{}").status_code == 404  # gateway off there
    assert client.post("/hooks/payments/nope/acme", data=b"{}").status_code == 404
    assert client.post(f"/hooks/payments/{GATEWAY}/no-such-biz", data=b"{}").status_code == 404
    assert client.post(f"/hooks/payments/{GATEWAY}/acme", data=b"x" * (300 * 1024)).status_code == 413
    assert client.post(f"/hooks/payments/{GATEWAY}/acme", data=b"{}").status_code == 400


def test_an_event_naming_another_business_attempt_is_ignored(inv, app, other_ctx, deal, gateway):
    """globex enables TestPay too; acme's payment reported to globex's webhook changes nothing."""
    from crmcore.parties.service import create_party

    enable_plugin(other_ctx, NAME)
    enable_plugin(other_ctx, "testpay-plugin", gateway.settings())
    record, path = issue_from_deal(inv, deal)
    payer = Payer(app)
    payer.pay(path)
    (attempt,) = attempts(inv)
    session = gateway.pay(attempt.provider_reference)
    body, headers = gateway.webhook("payment.succeeded", session)
    assert payer.client.post(f"/hooks/payments/{GATEWAY}/globex", data=body, headers=headers).status_code == 200
    assert invoice_state(inv, record.id) == ("active", Decimal("0"), 0)
    other_ctx.session.rollback()
    (logged,) = other_ctx.session.scalars(select(GatewayEvent)).all()
    assert logged.outcome == "ignored" and logged.invoice_id is None
    theirs = create_party(other_ctx, {"kind": "organisation", "name": "Globex customer"})
    assert theirs.id  # globex has its own data; none of acme's rows are visible there
    assert other_ctx.session.scalar(select(func.count()).select_from(Payment)) == 0


def test_gateways_are_offered_per_business_and_the_pages_follow_the_plugin(inv, app, other_ctx, deal, gateway):
    from crmcore.parties.service import create_party

    _mine, my_path = issue_from_deal(inv, deal)

    enable_plugin(other_ctx, NAME)
    theirs = create_party(other_ctx, {"kind": "organisation", "name": "Globex customer"})
    record = service.create_invoice(other_ctx, {"party_id": theirs.id, "lines": [
        {"description": "x", "quantity": "1", "unit_price": "10"}]})
    path = f"/pay/globex/{service.activate_invoice(other_ctx, record.id).token}"
    payer = Payer(app)
    assert "Pay with TestPay" in payer.page(my_path).get_data(as_text=True)  # acme offers it
    page = payer.page(path).get_data(as_text=True)
    assert page and "TestPay" not in page and "contact Globex Agency" in page
    assert payer.pay(path).status_code == 404  # a POST to a gateway globex does not have
    disable_plugin(other_ctx, NAME)
    assert payer.page(path).status_code == 404


def test_concurrent_deliveries_are_serialised_on_the_invoice_row(inv, deal, gateway):
    """Without the web layer: contexts in threads apply the same event; one payment."""
    record, _path = issue_from_deal(inv, deal)
    started = payments.start_attempt(inv, service.renew_payment_link(inv, record.id), GATEWAY)
    event = PaymentEvent(EventKind.SUCCEEDED, None, "pi_threads", Decimal("1077.00"), "EUR",
                         attempt_id=started.attempt_id)
    start = threading.Barrier(6)
    outcomes = []

    def apply():
        with Context.open(inv.crm, inv.business.slug, system=True) as ctx:
            start.wait()
            outcomes.append(payments.apply_event(ctx, GATEWAY, event))

    threads = [threading.Thread(target=apply) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["applied"] + ["duplicate"] * 5
    assert invoice_state(inv, record.id) == ("paid", Decimal("1077.00"), 1)
