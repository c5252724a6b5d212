"""The fake PayPal's approval page in a real browser (headless Debian Chromium through Playwright):
the payer presses Approve and lands on return_url with PayPal's query; the gateway then captures."""

from __future__ import annotations

import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from crmcore.payments.gateways import EventKind, PaymentRequest, ReturnRequest


@pytest.fixture
def shop():
    """The merchant's site the payer comes back to: records the paths it was asked for."""
    visited: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args):
            pass

        def do_GET(self):  # noqa: N802
            visited.append(self.path)
            body = b"<!doctype html><title>Shop</title><h1>Back at the shop</h1>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", visited
    server.shutdown()
    server.server_close()


def test_the_payer_approves_in_a_browser(browser, fake, gateway, settings, shop):
    base, visited = shop
    session = gateway.create_session(PaymentRequest(
        attempt_id=9, idempotency_key="k-9", amount=Decimal("480.00"), currency="EUR", reference="INV-9",
        description="Invoice INV-9 <loader rental>", return_url=f"{base}/pay/return", cancel_url=f"{base}/pay/cancel"),
        settings())
    page = browser.new_page()
    try:
        page.goto(session.redirect_url)
        assert page.text_content("#amount") == "480.00 EUR"
        assert page.text_content("#description") == "Invoice INV-9 <loader rental>"  # escaped, shown as text
        assert "Acme Equipment" in page.text_content("h1")
        page.click("text=Approve")
        page.wait_for_url(f"{base}/pay/return**")
        assert page.text_content("h1") == "Back at the shop"
    finally:
        page.close()
    [path] = [p for p in visited if p.startswith("/pay/")]  # (the browser also asks for /favicon.ico)
    query = parse_qs(urlsplit(path).query)
    assert query["token"] == [session.provider_reference] and query["PayerID"][0]
    [event] = gateway.handle_return(ReturnRequest(session.provider_reference, {}, {}), settings())
    assert event.kind == EventKind.SUCCEEDED and event.attempt_id == 9
