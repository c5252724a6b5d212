"""On a party's page in a real browser: ask the price & availability of a product by the
customer's own part number, see a refused quantity beside its field, add a special price."""

from __future__ import annotations

from decimal import Decimal

from crm_catalog import service

from crmcore.testing import TEST_PASSWORD

from .conftest import new_party, new_product  # noqa: TID252


def test_the_party_page_inquiry(browse, cat):
    party = new_party(cat, "Meadow Farms")
    bolt = new_product(cat, sku="BOLT-8", name="Hex bolt M8", unit_price="0.25", stock_on_hand="40")
    new_product(cat, sku="NUT-8", name="Hex nut M8", unit_price="0.10")
    plist = service.create_price_list(cat, {"name": "Farm dealers"})
    service.set_price_list_item(cat, plist.id, {"product_id": bolt.id, "unit_price": "0.18", "min_quantity": "25"})
    service.add_special_price(cat, {"party_id": party.id, "price_list_id": plist.id})
    service.add_cross_reference(cat, {"party_id": party.id, "product_id": bolt.id, "customer_part_number": "MF-77"})
    party_id = party.id

    def inquire(page):
        page.goto("/login")
        page.fill("#email", "owner@acme.example")
        page.fill("#password", TEST_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("header.topbar")
        page.goto(f"/parties/{party_id}")
        page.wait_for_selector("#catalog-panel")

        page.fill("#inquiry-catalog_q", "mf-77")
        page.fill("#inquiry-catalog_qty", "lots")
        page.click("#catalog-inquiry button[type=submit]")
        page.wait_for_selector("#inquiry-catalog_qty-err")
        assert "number" in page.inner_text("#inquiry-catalog_qty-err")
        assert page.input_value("#inquiry-catalog_q") == "mf-77"  # what was typed is kept

        page.fill("#inquiry-catalog_qty", "30")
        page.click("#catalog-inquiry button[type=submit]")
        page.wait_for_selector("#catalog-results")
        result = page.inner_text("#catalog-results")
        assert "BOLT-8" in result and "MF-77" in result
        assert "€0.18" in result and "price list Farm dealers" in result
        assert "40 available" in result and "€5.40" in result  # 30 × 0.18
        assert "NUT-8" not in result

        page.click("text=Add a special price")
        page.fill("#sp-sku", "nut-8")
        page.fill("#sp-unit_price", "0.08")
        page.click("#special-product-form button[type=submit]")
        page.wait_for_selector("#special-prices:has-text('NUT-8')")
        assert "€0.08" in page.inner_text("#special-prices")

    browse(inquire)
    cat.session.rollback()
    specials = service.party_catalog(cat, party_id).special_prices
    assert [(s.unit_price, s.currency) for s in specials if s.product_id] == [(Decimal("0.08"), "EUR")]
