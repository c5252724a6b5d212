"""The pages through the real Flask app: the panels on deals, parties and quotes, the line
editor (without JavaScript: a typed SKU picks the product), errors beside their fields with the
input kept, the actions, CSRF, escaping, roles, another business's quote and a disabled plugin."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal as D

from crm_catalog import service as catalog
from crm_quoting import NAME, service
from sqlalchemy import text

from crmcore.plugins.service import disable_plugin
from crmcore.testing import CrmClient

from .conftest import line, new_contact, new_deal, new_party, new_product  # noqa: TID252


def count(ctx, sql):
    with ctx.crm.db.engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def body(response):
    return response.get_data(as_text=True)


def editor_form(**fields):
    """The editor's fields as a browser without JavaScript posts them (header + rows)."""
    data = {"contact_id": "", "quote_date": "", "valid_until": "", "intro": "", "terms": "", "then": "stay"}
    for kind in ("billing_address", "shipping_address"):
        for name in ("line1", "line2", "postal_code", "city", "region", "country"):
            data[f"{kind}.{name}"] = ""
    data.update(fields)
    return data


def row(i, **values):
    out = {f"lines.{i}.{k}": "" for k in ("id", "product_id", "product_sku", "sku", "description", "quantity",
                                            "unit", "unit_price", "discount_percent", "tax_rate", "position")}
    out[f"lines.{i}.position"] = str(i + 1)
    out.update({f"lines.{i}.{k}": v for k, v in values.items()})
    return out


def test_from_a_deal_to_an_accepted_quote_without_javascript(q, client):
    party = new_party(q, "Meadow <Farms>")
    tractor = new_product(q, sku="TR-100", name="Tractor T100", unit_price=D("50000"), tax_rate=D(21), unit="pc")
    catalog.add_special_price(q, {"party_id": party.id, "product_id": tractor.id, "unit_price": "45000"})
    deal = new_deal(q, party)
    page = body(client.get(f"/records/{deal.id}"))
    assert 'id="deal-quotes"' in page and "New quote" in page and "No quotes yet." in page
    created = client.post("/quotes/new", {"deal_id": str(deal.id), "next": f"/records/{deal.id}"})
    assert created.status_code == 303
    record_id = int(re.search(r"/quotes/(\d+)/edit$", created.headers["Location"]).group(1))
    editor = client.get(f"/quotes/{record_id}/edit")
    assert editor.status_code == 200 and 'name="csrf_token"' in body(editor)
    assert 'name="lines.0.sku"' in body(editor) and "quoting.js" in body(editor)
    saved = client.post(f"/quotes/{record_id}/edit", editor_form(
        then="close", **row(0, sku="tr-100", quantity="1"),
        **row(1, description="Delivery <by truck>", quantity="1", unit_price="350", tax_rate="21"),
        **row(2)))
    assert saved.status_code == 303 and saved.headers["Location"].endswith(f"/records/{record_id}")
    page = body(client.get(f"/records/{record_id}"))
    assert 'id="quote-panel"' in page and "Tractor T100" in page and "special price" in page
    assert "Delivery &lt;by truck&gt;" in page and "<by truck>" not in page
    assert "€45,350.00" in page and "€54,873.50" in page  # net, total with 21% tax
    assert "Accept" in page and "Edit quote" in page
    assert client.post(f"/quotes/{record_id}/accept").status_code == 303
    page = body(client.get(f"/records/{record_id}"))
    assert 'id="quote-status"><span class="badge quote-status status-accepted">accepted' in page
    assert "Edit quote" not in page
    deal_page = body(client.get(f"/records/{deal.id}"))
    assert "accepted" in deal_page and "€54,873.50" in deal_page
    # the party's sheet lists it too
    assert 'id="party-quotes"' in body(client.get(f"/parties/{party.id}"))


def test_errors_come_back_beside_their_fields_with_the_input_kept(q, client):
    party = new_party(q)
    record = service.create_quote(q, {"party_id": party.id, "lines": [line(description="Kept line")]})
    (kept,) = service.get_quote(q, record.id).lines
    response = client.post(f"/quotes/{record.id}/edit", editor_form(
        valid_until="2000-01-01", **{"billing_address.city": "Ghent"},
        **row(0, id=str(kept.id), description="Kept line", quantity="2", unit_price="100"),
        **row(1, description="Credit", quantity="-1", unit_price="5"),
        **row(2, sku="NOPE-404", quantity="1"),
        **row(3, description="Odd tax", quantity="1", unit_price="5", tax_rate="17")))
    page = body(response)
    assert response.status_code == 422
    assert 'id="line-1-quantity-err"' in page and "negative unit price" in page
    assert 'id="line-2-description-err"' in page and 'id="line-2-unit_price-err"' in page
    assert 'id="line-3-tax_rate-err"' in page and "not a tax rate of this business" in page
    assert 'id="quote-valid_until-err"' in page and 'id="quote-billing_address-line1-err"' in page
    assert 'value="NOPE-404"' in page and 'value="Credit"' not in page  # textarea, kept below
    assert ">Credit</textarea>" in page and 'value="2000-01-01"' in page
    view = service.get_quote(q, record.id)  # nothing was written
    assert [(ln.description, ln.quantity) for ln in view.lines] == [("Kept line", D("1"))]
    assert view.quote.valid_until == view.quote.quote_date + dt.timedelta(days=30)
    assert view.quote.billing_address is None


def test_lines_are_edited_reordered_and_removed_in_the_form(q, client):
    record = service.create_quote(q, {"party_id": new_party(q).id, "lines": [
        line(description="First"), line(description="Second")]})
    first, second = service.get_quote(q, record.id).lines
    response = client.post(f"/quotes/{record.id}/edit", editor_form(
        **row(0, id=str(first.id), description="First", quantity="1", unit_price="100", position="3"),
        **row(1, id=str(second.id), description="Second", quantity="1", unit_price="100", remove="1"),
        **row(2, description="New", quantity="3", unit_price="1.5", discount_percent="10", position="1")))
    assert response.status_code == 303
    view = service.get_quote(q, record.id)
    assert [(ln.description, ln.net_amount) for ln in view.lines] == [("New", D("4.05")), ("First", D("100.00"))]


def test_actions_refuse_send_version_and_pdf(q, client):
    party = new_party(q)
    new_contact(q, party, "Ann Buyer", None)
    record = service.create_quote(q, {"party_id": party.id, "lines": [line()]})
    pdf = client.get(f"/quotes/{record.id}/quote.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF-")
    assert client.post(f"/quotes/{record.id}/pdf").status_code == 303
    assert service.get_quote(q, record.id).quote.pdf_attachment_id is not None
    send_page = client.get(f"/quotes/{record.id}/send")
    assert send_page.status_code == 200 and "Ann Buyer (no email)" in body(send_page)
    refused = client.post(f"/quotes/{record.id}/send", {"contact_id": "", "to": "", "subject": "S", "message": "M"})
    assert refused.status_code == 422 and 'id="send-to-err"' in body(refused)
    assert client.get(f"/quotes/{record.id}/refuse").status_code == 200
    blank = client.post(f"/quotes/{record.id}/refuse", {"reason": " "})
    assert blank.status_code == 422 and 'id="refuse-reason-err"' in body(blank)
    assert client.post(f"/quotes/{record.id}/refuse", {"reason": "Too <dear>"}).status_code == 303
    page = body(client.get(f"/records/{record.id}"))
    assert "Too &lt;dear&gt;" in page and "status-refused" in page
    assert client.get(f"/quotes/{record.id}/edit").status_code == 303  # not a draft: back to the page
    again = client.post(f"/quotes/{record.id}/accept", follow_redirects=True)
    assert "make a new version" in body(again)
    revised = client.post(f"/quotes/{record.id}/version")
    assert revised.status_code == 303 and "/edit" in revised.headers["Location"]


def test_csrf_roles_isolation_and_a_disabled_plugin(q, other_q, app, client, make_user, business):
    record = service.create_quote(q, {"party_id": new_party(q).id, "lines": [line()]})
    raw = app.test_client()
    CrmClient(raw).login("owner@acme.example")
    assert raw.post(f"/quotes/{record.id}/accept").status_code == 400  # no CSRF token
    reader_ctx = make_user(business, "read_only")
    reader = CrmClient(app.test_client())
    reader.login(reader_ctx.user.email)
    page = body(reader.get(f"/records/{record.id}"))
    assert 'id="quote-panel"' in page and "Edit quote" not in page and "Accept" not in page
    assert reader.post(f"/quotes/{record.id}/accept").status_code == 403
    assert reader.get(f"/quotes/{record.id}/quote.pdf").status_code == 200
    other = CrmClient(app.test_client())
    other.login("owner@globex.example")
    assert other.get(f"/quotes/{record.id}/edit").status_code == 404
    assert other.post(f"/quotes/{record.id}/accept").status_code == 404
    assert service.get_quote(q, record.id).status == "draft"
    disable_plugin(q, NAME)
    assert client.get(f"/quotes/{record.id}/edit").status_code == 404
    assert count(q, "select count(*) from quoting_quotes") == 1


def test_the_settings_save_through_the_cores_plugin_settings_page(q, client):
    page = body(client.get("/settings/plugins"))
    assert "Tax rates (%)" in page and 'value="0, 9, 21"' in page
    saved = client.post("/settings/plugins/quoting/settings", {
        "tax_rates": "21; 6, 0", "default_tax_rate": "6", "validity_days": "14", "accepted_stage_id": "",
        "invoice_on_accept": "1", "default_intro": "Thank you for your enquiry.", "default_terms": ""})
    assert saved.status_code in (302, 303)
    cfg = service.settings(q)
    assert (cfg.tax_rates, cfg.default_tax_rate, cfg.validity_days) == ((D(0), D(6), D(21)), D(6), 14)
    assert cfg.default_intro == "Thank you for your enquiry."
    refused = client.post("/settings/plugins/quoting/settings", {"tax_rates": "0, 250", "default_tax_rate": "0"})
    assert refused.status_code == 422 and "0 to 100 percent" in body(refused)
