"""The payer's whole path in Chromium: the shop's auto-submitted form POSTs the token to the hosted
form (the local stand-in), the payer clicks "Pay", lands on return_url, and the signed webhook
Authorize.Net sends is read by the gateway."""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from crm_payments_authorizenet.gateway import AuthorizeNetGateway
from crm_payments_authorizenet.testing import FakeAuthorizeNet

from crmcore.payments.gateways import EventKind, PaymentRequest, WebhookRequest


class Shop:
    """The other end: a checkout page posting a session's fields, return and cancel pages, and a
    webhook receiver keeping what it is sent."""

    def __init__(self) -> None:
        self.checkout = ""
        self.hooks: list[tuple[dict[str, str], bytes]] = []
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                pages = {"/checkout": shop.checkout, "/return": "<h1>Thank you</h1>",
                         "/cancel": "<h1>Payment cancelled</h1>"}
                body = pages.get(self.path.split("?", 1)[0], "not found").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                shop.hooks.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def post_page(self, url: str, fields: dict[str, str]) -> None:
        inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                         for k, v in fields.items())
        self.checkout = (f'<form id="go" method="post" action="{html.escape(url)}">{inputs}</form>'
                         '<script>document.getElementById("go").submit()</script>')

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()




@pytest.fixture
def shop() -> Iterator[Shop]:
    shop = Shop()
    yield shop
    shop.close()


@pytest.fixture
def anet(shop) -> Iterator[FakeAuthorizeNet]:
    with FakeAuthorizeNet("5KP3u95bQpv", "346HZ32z3fP4hTG2", "9F3A1C0B7E2D4F6A" * 8,
                          webhook_url=f"{shop.url}/hooks/payments/authorizenet/acme") as server:
        yield server


@pytest.fixture
def page(browser) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def checkout(shop, anet, page, gateway):
    request = PaymentRequest(attempt_id=42, idempotency_key="k42", amount=Decimal("1250.50"), currency="USD",
                             reference="INV-2026-0007", description="Hydraulic pump <service>",
                             return_url=f"{shop.url}/return?attempt=42", cancel_url=f"{shop.url}/cancel?attempt=42")
    session = gateway.create_session(request, anet.settings())
    shop.post_page(session.redirect_url, dict(session.redirect_fields))
    page.goto(f"{shop.url}/checkout")
    page.get_by_role("button", name="Pay").wait_for()
    return session


def test_pay_on_the_hosted_form_and_come_back(shop, anet, page):
    gateway = AuthorizeNetGateway()
    session = checkout(shop, anet, page, gateway)
    assert page.locator("#amount").inner_text() == "1250.50"
    assert page.locator("#invoice").inner_text() == "A42"
    assert "Hydraulic pump <service>" in page.content().replace("&lt;", "<").replace("&gt;", ">")
    page.get_by_role("button", name="Pay").click()
    page.wait_for_url(f"{shop.url}/return?attempt=42")
    assert page.get_by_role("heading").inner_text() == "Thank you"
    [(headers, body)] = shop.hooks
    request = WebhookRequest("POST", f"{shop.url}/hooks/payments/authorizenet/acme", headers, {}, body)
    [event] = gateway.parse_webhook(request, anet.settings())
    [tx] = anet.transactions.values()
    assert (event.kind, event.provider_reference, event.provider_payment_id, event.amount, event.attempt_id) == \
        (EventKind.SUCCEEDED, session.provider_reference, tx.trans_id, Decimal("1250.50"), 42)
    # the token was used: posting it again shows Authorize.Net's error, no second payment
    page.goto(f"{shop.url}/checkout")
    page.get_by_text("The token is invalid or has expired.").wait_for()
    assert len(anet.transactions) == 1


def test_a_declined_card_stays_on_the_form_then_pays(shop, anet, page):
    gateway = AuthorizeNetGateway()
    checkout(shop, anet, page, gateway)
    page.get_by_label("Card number").fill("4000300011110002")
    page.get_by_role("button", name="Pay").click()
    page.get_by_role("alert").wait_for()
    assert "declined" in page.get_by_role("alert").inner_text()
    kinds = [gateway.parse_webhook(WebhookRequest("POST", "u", h, {}, b), anet.settings())[0].kind for h, b in shop.hooks]
    assert kinds == [EventKind.FAILED]
    page.get_by_label("Card number").fill("4111111111111111")
    page.get_by_role("button", name="Pay").click()
    page.wait_for_url(f"{shop.url}/return?attempt=42")
    assert [tx.response_code for tx in anet.transactions.values()] == [2, 1]


def test_cancel_goes_to_cancel_url(shop, anet, page):
    checkout(shop, anet, page, AuthorizeNetGateway())
    page.get_by_role("link", name="Cancel").click()
    page.wait_for_url(f"{shop.url}/cancel?attempt=42")
    assert anet.transactions == {} and shop.hooks == []
