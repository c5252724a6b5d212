"""A salesperson quotes in a real browser: from the deal, a new quote, a catalog product picked
with the type-ahead (the party's special price) and a free line, the totals, then accepted.
The quote's page is saved as docs/screenshots/quote.png."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from crm_catalog import service as catalog
from crm_quoting import service

from crmcore.parties.service import get_party
from crmcore.testing import TEST_PASSWORD

from .conftest import new_contact, new_deal, new_party, new_product  # noqa: TID252

SCREENSHOT = Path(__file__).resolve().parents[3] / "docs" / "screenshots" / "quote.png"


def test_a_quote_from_a_deal_to_acceptance_in_the_browser(browse, q):
    party = new_party(q, "Meadow Farms")
    new_contact(q, party, "Ann Buyer", "ann@meadow.example")
    tractor = new_product(q, sku="TR-100", name="Tractor T100", unit_price=D("50000"), tax_rate=D(21), unit="pc")
    new_product(q, sku="TR-200", name="Tractor T200", unit_price=D("65000"), tax_rate=D(21), unit="pc")
    catalog.add_special_price(q, {"party_id": party.id, "product_id": tractor.id, "unit_price": "45000"})
    deal = new_deal(q, party, title="Fleet renewal")
    stages = service.deal_stages(q)
    service.save_settings(q, {"accepted_stage_id": stages[1]["id"], "invoice_on_accept": False})

    def quote_it(page):
        page.goto("/login")
        page.fill("#email", "owner@acme.example")
        page.fill("#password", TEST_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("header.topbar")
        page.goto(f"/records/{deal.id}")
        page.click("#deal-quotes button:has-text('New quote')")
        page.wait_for_selector("#quote-form")
        # the type-ahead: part of the name, the party's price in the list, picked with a click
        page.fill("#line-0-sku", "tract")
        page.wait_for_selector("#line-0 .picker button:has-text('TR-100')")
        assert "special price" in page.inner_text("#line-0 .picker")
        page.click("#line-0 .picker button:has-text('TR-100')")
        assert page.input_value("#line-0-description") == "Tractor T100"
        assert page.get_attribute("#line-0-unit_price", "placeholder") == "45000 EUR"
        page.fill("#line-0-quantity", "2")
        # a free line: a trade-in credit is a negative price
        page.fill("#line-1-description", "Trade-in: old tractor")
        page.fill("#line-1-unit_price", "-8000")
        page.select_option("#line-1-tax_rate", "0")
        # a mistake first: the error beside the field, what was typed kept
        page.fill("#line-2-description", "Transport")
        page.fill("#line-2-quantity", "-1")
        page.fill("#line-2-unit_price", "350")
        page.click("button[value=stay]")
        page.wait_for_selector("#line-2-quantity-err")
        assert "negative unit price" in page.inner_text("#line-2-quantity-err")
        assert page.input_value("#line-1-description") == "Trade-in: old tractor"
        page.fill("#line-2-quantity", "1")
        page.click("button[value=close]")
        page.wait_for_selector("#quote-panel")
        assert "special price" in page.inner_text("#quote-lines")
        assert page.inner_text("#quote-net") == "€82,350.00"
        assert page.inner_text("#quote-total") == "€101,323.50"
        page.on("dialog", lambda dialog: dialog.accept())
        page.click("#quote-panel button:has-text('Accept')")
        page.wait_for_selector("#quote-status:has-text('accepted')")
        assert "now a customer" in page.inner_text(".flash-success")
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    browse(quote_it)
    q.session.rollback()
    (summary,) = service.quotes_for_deal(q, deal.id)
    assert (summary.status, summary.net) == ("accepted", D("82350.00"))
    assert get_party(q, party.id).is_customer
    assert SCREENSHOT.stat().st_size > 10_000
