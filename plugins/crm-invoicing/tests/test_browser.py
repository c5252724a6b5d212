"""Staff flow in a real browser: a deal with a party -> "Create invoice" -> two lines -> issue ->
the payment link, opened in a fresh browser (no login), shows the bank transfer instructions."""

from __future__ import annotations

from crm_invoicing import service

from crmcore.plugins.service import enable_plugin
from crmcore.testing import TEST_PASSWORD

MANUAL = {"account_holder": "Acme Equipment BV", "iban": "NL91 ABNA 0417 1643 00", "bic": "ABNANL2A"}


def test_invoice_a_deal_and_pay_by_bank_transfer(browse, inv, deal):
    enable_plugin(inv, "payments-manual", MANUAL)
    seen: dict[str, str] = {}
    browse(lambda page: invoice_and_open_link(page, deal.id, seen))
    inv.session.rollback()
    (record, invoice), = service.list_invoices(inv).items
    assert invoice.status == "active" and invoice.total_amount == 1077
    assert seen["public"].startswith(f"Invoice {record.reference}")
    assert "NL91 ABNA 0417 1643 00" in seen["instructions"] and record.reference in seen["instructions"]


def invoice_and_open_link(page, deal_id, seen):
    page.goto("/login")
    page.fill("#email", "owner@acme.example")
    page.fill("#password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("header.topbar")
    page.goto(f"/records/{deal_id}")
    page.click("button:has-text('Create invoice')")
    page.wait_for_selector("#invoice-editor")
    page.fill("#lines-0-description", "Printer")
    page.fill("#lines-0-quantity", "2")
    page.fill("#lines-0-unit_price", "400")
    page.fill("#lines-1-description", "Installation")
    page.fill("#lines-1-quantity", "oops")
    page.fill("#lines-1-unit_price", "100")
    page.select_option("#lines-1-tax_rate", "9")
    page.click("button:has-text('Save and issue')")
    page.wait_for_selector("#lines-1-quantity-err")
    assert page.input_value("#lines-1-description") == "Installation"  # kept
    page.fill("#lines-1-quantity", "1")
    page.click("button:has-text('Save and issue')")
    page.wait_for_selector("#payment-link")
    link = page.input_value("#payment-link")
    assert "/pay/acme/" in link
    path = link.split("crm.example.test", 1)[1]
    fresh = page.context.browser.new_context(base_url=page.url.split("/invoicing")[0])
    public = fresh.new_page()
    public.goto(path)
    public.wait_for_selector(".pay-offline")
    seen["public"] = public.inner_text("h1")
    seen["instructions"] = public.inner_text("#pay")
    assert "€1,077.00" in public.inner_text("#pay-balance")
    fresh.close()
