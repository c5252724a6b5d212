"""The staff pages through the real app: the invoice panel on the record page, "Create invoice"
on a deal, the line editor (errors beside the fields, input kept, add/remove/reorder), issuing
with the link shown once, payments, refunds, credit notes, the list with its filters, the
settings; CSRF, roles, other businesses and a disabled plugin."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from crm_invoicing import NAME, service
from crm_invoicing.models import Invoice
from sqlalchemy import update

from crmcore.plugins.service import disable_plugin, enable_plugin
from crmcore.testing import CrmClient

from .conftest import line  # noqa: TID252


def body(response) -> str:
    return response.get_data(as_text=True)


def editor_form(rows, **extra):
    data = {"currency": "EUR", "payment_terms_days": "", "customer_note": ""}
    for n, row in enumerate(rows):
        for key, value in row.items():
            data[f"lines-{n}-{key}"] = value
    data.update(extra)
    return data


def test_from_a_deal_page_to_an_issued_invoice(inv, client, deal):
    page = body(client.get(f"/records/{deal.id}"))
    assert "Create invoice" in page and "No invoices yet" in page
    response = client.post(f"/invoicing/from-deal/{deal.id}")
    assert response.status_code == 303
    record_id = int(re.search(r"/invoicing/(\d+)/edit$", response.headers["Location"]).group(1))
    editor = body(client.get(f"/invoicing/{record_id}/edit"))
    assert 'value="Printers for Initech"' in editor and 'value="1000"' in editor
    # two lines, the second typed into the blank row
    saved = client.post(f"/invoicing/{record_id}/edit", editor_form([
        {"position": "1", "description": "Printers", "quantity": "2", "unit_price": "400", "tax_rate": "21"},
        {"position": "2", "description": "Setup <fast>", "quantity": "1", "unit_price": "100", "tax_rate": "9"},
    ], action="save"))
    assert saved.status_code == 303
    shown = body(client.get(f"/records/{record_id}"))
    assert "Setup &lt;fast&gt;" in shown and "<fast>" not in shown and "Issue invoice" in shown
    assert "€1,077.00" in shown
    issued = client.post(f"/invoicing/{record_id}/activate")
    assert issued.status_code == 200
    link = re.search(r'id="payment-link" readonly value="([^"]+)"', body(issued)).group(1)
    assert link.startswith("https://crm.example.test/pay/acme/")
    assert client.get(link.replace("https://crm.example.test", "")).status_code == 200
    shown = body(client.get(f"/records/{record_id}"))
    assert "Record payment" in shown and "Edit lines" not in shown and link not in shown
    deal_page = body(client.get(f"/records/{deal.id}"))
    assert f"INV{dt.date.today():%y}-0001" in deal_page


def test_the_editor_shows_errors_beside_fields_and_keeps_what_was_typed(inv, client, party):
    record = service.create_invoice(inv, {"party_id": party.id, "lines": [line()]})
    response = client.post(f"/invoicing/{record.id}/edit", editor_form([
        {"position": "1", "description": "Good", "quantity": "1", "unit_price": "10", "tax_rate": "21"},
        {"position": "2", "description": "Bad <qty>", "quantity": "-3", "unit_price": "10", "tax_rate": "21"},
        {"position": "3", "description": "Bad tax", "quantity": "1", "unit_price": "10", "tax_rate": "19"},
    ], action="save"))
    page = body(response)
    assert response.status_code == 422
    assert 'id="lines-1-quantity-err"' in page and "more than 0" in page
    assert 'id="lines-2-tax_rate-err"' in page and "use one of 0, 9, 21" in page
    assert 'value="Bad &lt;qty&gt;"' in page and 'value="-3"' in page
    assert [li.description for li in service.get_invoice(inv, record.id).lines] == ["Consulting"]


def test_the_editor_adds_removes_and_reorders_lines(inv, client, party):
    record = service.create_invoice(inv, {"party_id": party.id, "lines": [line(description="A"),
                                                                         line(description="B"),
                                                                         line(description="C")]})
    added = client.post(f"/invoicing/{record.id}/edit", editor_form([
        {"position": "1", "description": "A", "quantity": "1", "unit_price": "1"},
    ], action="add"))
    assert added.status_code == 200 and body(added).count('class="line-row"') == 2
    response = client.post(f"/invoicing/{record.id}/edit", editor_form([
        {"position": "3", "description": "A", "quantity": "1", "unit_price": "1", "tax_rate": "0"},
        {"position": "2", "description": "B", "quantity": "1", "unit_price": "1", "tax_rate": "0", "remove": "1"},
        {"position": "1", "description": "C", "quantity": "1", "unit_price": "1", "tax_rate": "0"},
        {"position": "", "description": "", "quantity": "", "unit_price": "", "tax_rate": "21"},
    ], action="stay"))
    assert response.status_code == 303
    inv.session.rollback()
    assert [li.description for li in service.get_invoice(inv, record.id).lines] == ["C", "A"]


def test_payments_refunds_and_credit_notes_from_their_pages(inv, client, party):
    record = service.create_invoice(inv, {"party_id": party.id, "lines": [line(quantity="3")]})
    service.activate_invoice(inv, record.id)  # 181.50
    page = body(client.get(f"/invoicing/{record.id}/payment"))
    assert 'value="181.50"' in page
    refused = client.post(f"/invoicing/{record.id}/payment", {"amount": "500", "method": "cash",
                                                              "received_on": "", "reference": "r<1>", "note": ""})
    assert refused.status_code == 422 and 'id="payment-amount-err"' in body(refused)
    assert 'value="r&lt;1&gt;"' in body(refused)
    done = client.post(f"/invoicing/{record.id}/payment", {"amount": "200", "method": "cash", "received_on": "",
                                                           "reference": "", "note": "", "overpayment": "1"})
    assert done.status_code == 303
    got = service.get_invoice(inv, record.id)
    assert (got.invoice.status, got.overpaid) == ("paid", Decimal("18.50"))
    payment_id = got.payments[0].id
    assert "€200.00 of it can be refunded" in body(client.get(f"/invoicing/payments/{payment_id}/refund"))
    refund = client.post(f"/invoicing/payments/{payment_id}/refund", {"amount": "18.50", "received_on": "",
                                                                     "note": ""})
    assert refund.status_code == 303
    too_much = client.post(f"/invoicing/payments/{payment_id}/refund", {"amount": "999", "received_on": "",
                                                                       "note": ""})
    assert too_much.status_code == 422 and 'id="refund-amount-err"' in body(too_much)
    (only,) = service.get_invoice(inv, record.id).lines
    bad = client.post(f"/invoicing/{record.id}/credit-note", {f"qty-{only.id}": "5", "reason": ""})
    assert bad.status_code == 422 and f'id="qty-{only.id}-err"' in body(bad) and "at most 3" in body(bad)
    made = client.post(f"/invoicing/{record.id}/credit-note", {f"qty-{only.id}": "1", "reason": "one less"})
    assert made.status_code == 303
    inv.session.rollback()
    got = service.get_invoice(inv, record.id)
    assert got.invoice.credited_amount == Decimal("60.50") and len(got.credit_notes) == 1


def test_the_list_filters_by_status_and_overdue(inv, client, party):
    late = service.create_invoice(inv, {"party_id": party.id, "title": "Late one", "lines": [line()]})
    service.activate_invoice(inv, late.id)
    service.create_invoice(inv, {"party_id": party.id, "title": "Still a draft", "lines": [line()]})
    inv.session.execute(update(Invoice).where(Invoice.record_id == late.id)
                        .values(due_date=dt.date.today() - dt.timedelta(days=3)))
    inv.session.commit()
    everything = body(client.get("/invoicing/"))
    assert "Late one" in everything and "Still a draft" in everything and "overdue" in everything
    overdue = body(client.get("/invoicing/?overdue=1"))
    assert "Late one" in overdue and "Still a draft" not in overdue
    drafts = body(client.get("/invoicing/?status=draft"))
    assert "Still a draft" in drafts and "Late one" not in drafts
    assert client.get("/invoicing/?status=bogus").status_code == 422
    assert client.get("/invoicing/?cursor=garbage").status_code == 422


def test_posts_need_the_csrf_token(inv, client, party):
    record = service.create_invoice(inv, {"party_id": party.id, "lines": [line()]})
    assert client.raw.post(f"/invoicing/{record.id}/activate").status_code == 400
    assert service.get_invoice(inv, record.id).invoice.status == "draft"


def test_read_only_users_see_the_panel_without_actions(inv, app, party):
    record = service.create_invoice(inv, {"party_id": party.id, "lines": [line()]})
    from crmcore.auth.service import create_user
    from crmcore.tenancy.service import add_member
    from crmcore.testing import TEST_PASSWORD

    create_user(inv.crm, "reader@acme.example", TEST_PASSWORD, name="Reader")
    add_member(inv, "reader@acme.example", "read_only")
    reader = CrmClient(app.test_client())
    assert reader.login("reader@acme.example").status_code == 302
    page = body(reader.get(f"/records/{record.id}"))
    assert "Consulting" in page and "Issue invoice" not in page
    assert reader.post(f"/invoicing/{record.id}/activate").status_code == 403
    assert reader.get("/invoicing/settings").status_code == 403
    assert reader.get("/invoicing/").status_code == 200


def test_another_business_invoice_is_404_and_the_pages_follow_the_plugin(inv, client, other_ctx):
    from crmcore.parties.service import create_party

    enable_plugin(other_ctx, NAME)
    theirs = service.create_invoice(other_ctx, {"party_id": create_party(other_ctx, {
        "kind": "organisation", "name": "Theirs"}).id, "lines": [line()]})
    for url in (f"/invoicing/{theirs.id}/edit", f"/invoicing/{theirs.id}/payment",
                f"/invoicing/{theirs.id}/credit-note"):
        assert client.get(url).status_code == 404
    for url in (f"/invoicing/{theirs.id}/activate", f"/invoicing/{theirs.id}/cancel", f"/invoicing/{theirs.id}/link"):
        assert client.post(url).status_code == 404
    assert service.get_invoice(other_ctx, theirs.id).invoice.status == "draft"
    disable_plugin(inv, NAME)
    assert client.get("/invoicing/").status_code == 404


def test_settings_page_validates_the_stage_and_lists_webhook_addresses(inv, client, gateway, deal):
    page = body(client.get("/invoicing/settings"))
    assert "https://crm.example.test/hooks/payments/testpay/acme" in page
    bad = client.post("/invoicing/settings", {"payment_terms_days": "30", "tax_rates": "0, 21",
                                              "default_tax_rate": "9", "paid_stage_id": "999999"})
    assert bad.status_code == 422 and 'id="settings-default_tax_rate-err"' in body(bad)
    assert 'value="0, 21"' in body(bad)  # what was typed is kept
    from crmcore.pipelines.service import list_pipelines

    won = next(s for p in list_pipelines(inv, "deal") for s in p.stages if s.kind == "won")
    good = client.post("/invoicing/settings", {"payment_terms_days": "30", "tax_rates": "0, 9, 21",
                                               "default_tax_rate": "9", "paid_stage_id": str(won.id)})
    assert good.status_code == 303
    cfg = service.settings(inv)
    assert (cfg.payment_terms_days, cfg.default_tax_rate, cfg.paid_stage_id) == (30, Decimal("9"), won.id)
    bad_stage = client.post("/invoicing/settings", {"payment_terms_days": "30", "tax_rates": "0, 9, 21",
                                                    "default_tax_rate": "9", "paid_stage_id": "999999"})
    assert bad_stage.status_code == 422 and 'id="settings-paid_stage_id-err"' in body(bad_stage)

