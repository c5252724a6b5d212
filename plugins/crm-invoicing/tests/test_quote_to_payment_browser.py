"""The whole sale in a real browser, as its people click it: the salesperson quotes a deal (a
catalog product at the party's special price and a free line), the customer accepts, the
invoice draft that acceptance made is issued, and the customer opens the payment link in a
browser of their own (no session), pays on (the local stand-in of) Stripe's hosted page and
comes back to an invoice that is paid, while the deal moved to the stage the business chose.

Set up beforehand, as an admin would through the services: the plugins (Stripe pointed at the
local server), the product and its special price, the stage settings, and the installation's
public_url, which must be the live server so Stripe's return and webhook reach it. Screenshots:
docs/screenshots/invoice.png (the staff's invoice) and docs/screenshots/payment-page.png (the
customer's page before paying)."""

from __future__ import annotations

import dataclasses
import struct
from decimal import Decimal as D
from pathlib import Path

from crm_catalog import service as catalog
from crm_invoicing import service as invoicing
from crm_invoicing.models import AttemptStatus, Invoice, Payment, PaymentAttempt
from crm_quoting import service as quoting
from sqlalchemy import select

from crmcore.parties.service import create_party, get_party
from crmcore.pipelines.service import list_pipelines
from crmcore.plugins.service import enable_plugin
from crmcore.records import service as records
from crmcore.testing import TEST_PASSWORD

SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
INVOICE_SHOT = SCREENSHOTS / "invoice.png"
PAYMENT_SHOT = SCREENSHOTS / "payment-page.png"
VIEWPORT = {"width": 1360, "height": 900}

# 2 x 750.00 at 21 % (the special price, not the list's 900.00) = 1,500.00 + 315.00
# 1 x 120.00 at 9 % (free text)                                  =   120.00 +  10.80
NET, TOTAL = "€1,620.00", "€1,945.80"


def deal_stages(ctx, deal):
    pipeline = next(p for p in list_pipelines(ctx, "deal") if p.id == deal.pipeline_id)
    opened = [s for s in pipeline.stages if s.kind == "open"]
    won = next(s for s in pipeline.stages if s.kind == "won")
    return opened, won


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def test_quote_accept_invoice_and_pay_with_stripe_in_the_browser(browse, crm, ctx, fake_stripe):
    for name in ("catalog", "quoting", "invoicing"):
        enable_plugin(ctx, name)
    enable_plugin(ctx, "payments-stripe", fake_stripe.settings())
    party = create_party(ctx, {
        "kind": "organisation", "name": "Initech <BV>", "currency": "EUR", "is_prospect": True,
        "mechanisms": [{"kind": "email", "value": "billing@initech.example"}],
        "addresses": [{"purpose": "billing", "line1": "Keizersgracht 1", "postal_code": "1015 CJ",
                       "city": "Amsterdam", "country": "NL", "is_default": True}],
    })
    printer = catalog.create_product(ctx, {"sku": "PR-500", "name": "Printer P500", "unit": "pc",
                                           "unit_price": D("900.00"), "tax_rate": D(21)})
    catalog.add_special_price(ctx, {"party_id": party.id, "product_id": printer.id, "unit_price": "750"})
    deal = records.create_record(ctx, "deal", {"title": "Printers for Initech", "party_id": party.id,
                                               "amount": "1900.00", "currency": "EUR"})
    opened, won = deal_stages(ctx, deal)
    proposal = opened[-1]  # where acceptance puts the deal; payment then wins it
    assert deal.stage_id != proposal.id
    quoting.save_settings(ctx, {"accepted_stage_id": proposal.id, "invoice_on_accept": True})
    invoicing.save_settings(ctx, {"paid_stage_id": won.id})
    seen: dict[str, str] = {}

    def public_address(base: str) -> None:
        """The installation's public_url is the live server; Stripe's webhook goes there."""
        crm.config = dataclasses.replace(crm.config, public_url=base)
        fake_stripe.webhook_url = f"{base}/hooks/payments/stripe/{ctx.business.slug}"

    def sell(page) -> None:
        page.goto("/login")
        public_address(page.url.split("/login", 1)[0])
        base = crm.config.public_url
        page.fill("#email", "owner@acme.example")
        page.fill("#password", TEST_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("header.topbar")

        # the deal -> a new quote -> two lines
        page.goto(f"/records/{deal.id}")
        page.click("#deal-quotes button:has-text('New quote')")
        page.wait_for_selector("#quote-form")
        page.fill("#line-0-sku", "printer")
        page.wait_for_selector("#line-0 .picker button:has-text('PR-500')")
        assert "special price" in page.inner_text("#line-0 .picker")
        page.click("#line-0 .picker button:has-text('PR-500')")
        assert page.input_value("#line-0-description") == "Printer P500"
        assert page.get_attribute("#line-0-unit_price", "placeholder") == "750 EUR"
        page.fill("#line-0-quantity", "2")
        page.fill("#line-1-description", "Installation and training")
        page.fill("#line-1-quantity", "1")
        page.fill("#line-1-unit_price", "120")
        page.select_option("#line-1-tax_rate", "9")
        page.click("button[value=close]")

        # the totals, then accepted: the deal moves on and an invoice draft is made
        page.wait_for_selector("#quote-panel")
        lines = page.inner_text("#quote-lines")
        assert "special price" in lines and "€750.00" in lines and "€900.00" not in lines
        assert page.inner_text("#quote-net") == NET
        assert page.inner_text("#quote-total") == TOTAL
        page.on("dialog", lambda dialog: dialog.accept())
        page.click("#quote-panel button:has-text('Accept')")
        page.wait_for_selector("#quote-status:has-text('accepted')")
        accepted = page.inner_text(".flash-success")
        assert "An invoice draft was made." in accepted and f"The deal is in {proposal.name}." in accepted

        # the draft, from the deal's invoices -> issued -> its payment link
        page.goto(f"/records/{deal.id}")
        page.click(".invoice-list a:has-text('Draft')")
        page.wait_for_selector("#invoice-panel")
        assert page.inner_text("#invoice-number") == "Draft"
        invoice_lines = page.inner_text(".invoice-lines")
        assert "Printer P500" in invoice_lines and "€750.00" in invoice_lines
        assert "Installation and training" in invoice_lines
        assert page.inner_text("#invoice-total") == TOTAL
        invoice_url = page.url
        page.click("#invoice-panel button:has-text('Issue invoice')")
        page.wait_for_selector("#payment-link")
        link = page.input_value("#payment-link")
        assert link.startswith(f"{base}/pay/{ctx.business.slug}/")
        seen["heading"] = page.inner_text("h1")

        # the customer: a browser of their own, without the staff's session, and with the pay
        # page's Content-Security-Policy in force: the local Stripe is plain http, which the
        # page's form-action does not allow, so the POST is answered with a page that moves on
        # by itself (a redirect after the POST would be checked against form-action and blocked)
        customer = page.context.browser.new_context(viewport=VIEWPORT)
        try:
            assert customer.cookies() == []
            public = customer.new_page()
            public.set_default_timeout(30_000)
            public.goto(link)
            public.wait_for_selector("button[data-gateway=stripe]")
            assert public.inner_text("#pay-balance") == TOTAL
            assert "Printer P500" in public.inner_text(".invoice-lines")
            assert "Initech <BV>" in public.inner_text(".details")
            assert "owner@acme.example" not in public.content()
            seen["public_heading"] = public.inner_text("h1")
            public.screenshot(path=str(PAYMENT_SHOT))

            # Stripe's hosted page: the server's balance, paid; back on the invoice
            blocked: list[str] = []
            public.on("console", lambda message: blocked.append(message.text)
                      if "Content Security Policy" in message.text else None)
            public.click("button:has-text('Pay with Stripe')")
            public.wait_for_url(f"{fake_stripe.url}/checkout/*")
            assert blocked == []
            assert public.inner_text(".amount") == "1,945.80 EUR"
            public.click("#pay")
            public.wait_for_url(f"{link}?attempt=*")
            assert "your payment was received" in public.inner_text("#pay-message")
            assert public.inner_text("#pay-state") == "This invoice is paid. Thank you!"
            assert public.locator("button[data-gateway]").count() == 0
            assert public.inner_text("#pay-balance") == "€0.00"
        finally:
            customer.close()

        # the staff see it paid, and the deal won
        page.goto(invoice_url)
        page.wait_for_selector("#invoice-panel")
        assert page.inner_text("#invoice-panel .invoice-status") == "paid"
        assert page.inner_text("#invoice-balance") == "€0.00"
        seen["staff_payments"] = page.inner_text("#invoice-panel table.payments")
        page.screenshot(path=str(INVOICE_SHOT))
        page.goto(f"/records/{deal.id}")
        assert page.inner_text("ol.stage-progress li[aria-current=step]") == won.name

    browse(sell)

    ctx.session.rollback()
    (record, invoice), = invoicing.list_invoices(ctx, {"deal_id": deal.id}).items
    assert seen["heading"] == f"Invoice {record.reference} issued"
    assert seen["public_heading"].startswith(f"Invoice {record.reference}")
    assert (invoice.status, invoice.total_amount, invoice.paid_amount) == ("paid", D("1945.80"), D("1945.80"))
    payment, = ctx.session.scalars(select(Payment).where(Payment.invoice_id == invoice.id)).all()
    assert (payment.gateway, payment.amount, payment.applied_amount, payment.currency) == \
        ("stripe", D("1945.80"), D("1945.80"), "EUR")
    attempt, = ctx.session.scalars(select(PaymentAttempt).where(PaymentAttempt.invoice_id == invoice.id)).all()
    assert (attempt.status, attempt.amount, attempt.currency) == (AttemptStatus.SUCCEEDED.value, D("1945.80"), "EUR")
    assert payment.attempt_id == attempt.id
    assert payment.provider_payment_id in seen["staff_payments"] and "€1,945.80" in seen["staff_payments"]
    sent, = fake_stripe.api_requests("POST", "/v1/checkout/sessions")
    assert attempt.idempotency_key and sent.idempotency_key == attempt.idempotency_key
    assert sent.form["line_items"][0]["price_data"]["unit_amount"] == "194580"
    assert attempt.provider_reference in fake_stripe.sessions
    assert fake_stripe.deliveries == [("checkout.session.completed", 200)]
    moved = records.get_record(ctx, deal.id)
    assert (moved.status, moved.stage_id) == ("won", won.id)
    assert get_party(ctx, party.id).is_customer
    assert ctx.session.scalar(select(Invoice.deal_id).where(Invoice.id == invoice.id)) == deal.id
    for shot in (INVOICE_SHOT, PAYMENT_SHOT):
        assert png_size(shot) == (VIEWPORT["width"], VIEWPORT["height"])
