"""The pages through the real Flask app: the lookup and its filters, "New order" with its errors,
the editor (without JavaScript: a typed SKU picks the product), the panels on orders, quotes,
deals and parties, the steps' forms, invoicing, escaping, CSRF, roles, another business and a
disabled plugin."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal as D

from crm_catalog import service as catalog
from crm_orders import NAME, service
from sqlalchemy import text

from crmcore.plugins.service import disable_plugin, enable_plugin
from crmcore.testing import CrmClient

from .conftest import accepted_quote, line, new_deal, new_party, new_product  # noqa: TID252


def body(response):
    return response.get_data(as_text=True)


def count(ctx, sql):
    with ctx.crm.db.engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def editor_form(**fields):
    """The editor's fields as a browser without JavaScript posts them (header + rows)."""
    data = {name: "" for name in ("contact_id", "order_date", "customer_reference", "requested_date",
                                  "promised_date", "notes")}
    data["then"] = "stay"
    for kind in ("billing_address", "shipping_address"):
        for name in ("line1", "line2", "postal_code", "city", "region", "country"):
            data[f"{kind}.{name}"] = ""
    data.update(fields)
    return data


def row(i, group="lines", **values):
    out = {f"{group}.{i}.{k}": "" for k in ("id", "product_id", "product_sku", "sku", "description", "quantity",
                                             "unit", "unit_price", "discount_percent", "tax_rate", "position")}
    out[f"{group}.{i}.position"] = str(i + 1)
    out.update({f"{group}.{i}.{k}": v for k, v in values.items()})
    return out


def test_a_sales_order_from_a_party_sheet_to_fulfilled(o, client):
    party = new_party(o, "Meadow <Farms>")
    tractor = new_product(o, sku="TR-100", name="Tractor T100", unit_price=D("50000"), tax_rate=D(21), unit="pc")
    catalog.add_special_price(o, {"party_id": party.id, "product_id": tractor.id, "unit_price": "45000"})
    sheet = body(client.get(f"/parties/{party.id}"))
    assert 'id="party-orders"' in sheet and "New sales order" in sheet and "No orders yet." in sheet
    created = client.post("/orders/new", {"party_id": str(party.id), "kind": "sales", "quick": "1",
                                          "next": f"/parties/{party.id}"})
    assert created.status_code == 303
    record_id = int(re.search(r"/orders/(\d+)/edit$", created.headers["Location"]).group(1))
    editor = client.get(f"/orders/{record_id}/edit")
    assert editor.status_code == 200 and 'name="lines.0.sku"' in body(editor) and 'name="csrf_token"' in body(editor)
    saved = client.post(f"/orders/{record_id}/edit", editor_form(
        then="close", customer_reference="PO <77>", **row(0, sku="tr-100", quantity="2"),
        **row(1, description="Delivery <by truck>", quantity="1", unit_price="350", tax_rate="21"), **row(2)))
    assert saved.status_code == 303 and saved.headers["Location"].endswith(f"/records/{record_id}")
    page = body(client.get(f"/records/{record_id}"))
    assert 'id="order-panel"' in page and "Tractor T100" in page and "special price" in page
    assert "Delivery &lt;by truck&gt;" in page and "<by truck>" not in page and "PO &lt;77&gt;" in page
    assert "€90,350.00" in page and "€109,323.50" in page
    assert "Edit order" in page and "Mark fulfilled" in page and "Create invoice" not in page
    assert client.post(f"/orders/{record_id}/fulfil").status_code == 303
    page = body(client.get(f"/records/{record_id}"))
    assert "status-fulfilled" in page and 'id="order-locked"' in page and "Edit order" not in page
    assert client.get(f"/orders/{record_id}/edit").status_code == 303  # locked: back to the page
    refused = client.post(f"/orders/{record_id}/edit", editor_form(**row(0, description="Late", unit_price="1")))
    assert refused.status_code == 303 and service.get_order(o, record_id).lines[0].description == "Tractor T100"
    sheet = body(client.get(f"/parties/{party.id}"))
    assert 'id="party-orders"' in sheet and ">fulfilled</span>" in sheet


def test_the_editor_keeps_what_was_typed_and_marks_each_error(o, client):
    record = service.create_order(o, {"party_id": new_party(o).id, "lines": [line(description="Kept line")]})
    (kept,) = service.get_order(o, record.id).lines
    response = client.post(f"/orders/{record.id}/edit", editor_form(
        requested_date="2026-02-30", **{"billing_address.city": "Ghent"},
        **row(0, id=str(kept.id), description="Kept line", quantity="2", unit_price="100"),
        **row(1, description="Credit", quantity="-1", unit_price="5"),
        **row(2, sku="NOPE-404", quantity="1")))
    page = body(response)
    assert response.status_code == 422
    assert 'id="lines-1-quantity-err"' in page and "negative unit price" in page
    assert 'id="lines-2-description-err"' in page and 'id="lines-2-unit_price-err"' in page
    assert 'id="order-requested_date-err"' in page and 'id="order-billing_address-line1-err"' in page
    assert 'value="NOPE-404"' in page and ">Credit</textarea>" in page
    view = service.get_order(o, record.id)
    assert [(ln.description, ln.quantity) for ln in view.lines] == [("Kept line", D("1"))]
    assert view.order.billing_address is None


def test_new_order_form_errors_and_a_loaner(o, client):
    page = client.get("/orders/new")
    assert page.status_code == 200 and 'name="kind"' in body(page)
    refused = client.post("/orders/new", {"kind": "loaner", "party_id": "", "due_back": "soon"})
    assert refused.status_code == 422
    assert 'id="new-party_id-err"' in body(refused) and 'id="new-due_back-err"' in body(refused)
    party = new_party(o)
    made = client.post("/orders/new", {"kind": "loaner", "party_id": str(party.id), "unit_description": "Demo <mower>",
                                       "unit_serial": "MW-1"})
    assert made.status_code == 303
    record_id = int(re.search(r"/orders/(\d+)/edit$", made.headers["Location"]).group(1))
    page = body(client.get(f"/records/{record_id}"))
    assert 'id="loaner-unit"' in page and "Demo &lt;mower&gt;" in page and "Hand over" in page
    form = client.get(f"/orders/{record_id}/hand-over")
    assert form.status_code == 200 and 'name="due_back"' in body(form)
    bad = client.post(f"/orders/{record_id}/hand-over", {"lent_on": "2999-01-01", "due_back": ""})
    assert bad.status_code == 422 and 'id="step-lent_on-err"' in body(bad)
    due = (service.today(o) + dt.timedelta(days=9)).isoformat()
    assert client.post(f"/orders/{record_id}/hand-over", {"lent_on": "", "due_back": due}).status_code == 303
    page = body(client.get(f"/records/{record_id}"))
    assert ">out</span>" in page and "Unit returned" in page and 'name="due_back"' in page
    assert client.post(f"/orders/{record_id}/return", {"returned_on": "", "condition": "Fine"}).status_code == 303
    assert service.get_order(o, record_id).status == "returned"


def test_a_quick_new_order_with_a_bad_party_goes_back_with_the_reason(o, client):
    deal = new_deal(o, new_party(o))
    response = client.post("/orders/new", {"deal_id": str(deal.id + 1000), "kind": "sales", "quick": "1",
                                           "next": f"/records/{deal.id}"}, follow_redirects=True)
    assert "No order was made" in body(response) and "not found" in body(response)


def test_the_lookup_page_and_its_filters(o, client):
    day = service.today(o)
    farm = new_party(o, "Meadow <Farms>")
    service.create_order(o, {"party_id": farm.id, "lines": [line(description="Hydraulic hose")]})
    loan = service.create_order(o, {"kind": "loaner", "party_id": farm.id, "unit_description": "Demo mower"})
    service.hand_over(o, loan.id, {"lent_on": (day - dt.timedelta(days=5)).isoformat(),
                                   "due_back": (day - dt.timedelta(days=1)).isoformat()})
    service.create_order(o, {"party_id": new_party(o, "Town Shop").id, "lines": [line()]})
    menu = body(client.get("/parties/"))
    assert 'href="/orders/"' in menu and ">Orders<" in menu
    page = body(client.get("/orders/"))
    assert "3 orders" in page and "Meadow &lt;Farms&gt;" in page and "Town Shop" in page
    overdue = body(client.get("/orders/?status=overdue"))
    assert "Demo mower" in overdue and "is-overdue" in overdue and "Town Shop" not in overdue
    by_item = body(client.get("/orders/?item=HOSE"))
    assert "1 orders" in by_item and "Hydraulic hose" not in by_item  # the list shows titles, not lines
    by_party = body(client.get(f"/orders/?party_id={farm.id}"))
    assert "2 orders" in by_party and "Party: <strong>Meadow &lt;Farms&gt;</strong>" in by_party
    bad = client.get("/orders/?status=lost&date_from=someday")
    assert bad.status_code == 422 and 'id="f-status-err"' in body(bad) and 'id="f-date_from-err"' in body(bad)


def test_quote_panel_create_order_and_invoicing_pages(o, client):
    enable_plugin(o, "invoicing")
    from crm_quoting import service as quoting

    quoting.save_settings(o, {"invoice_on_accept": False})
    from crmcore.plugins.service import save_settings

    save_settings(o, NAME, {"order_on_accept": False})
    party = new_party(o)
    quote = accepted_quote(o, party)
    page = body(client.get(f"/records/{quote.id}"))
    assert 'id="quote-order"' in page and "Create order" in page
    made = client.post(f"/orders/from-quote/{quote.id}")
    assert made.status_code == 303
    order = service.order_for_quote(o, quote.id)
    assert made.headers["Location"].endswith(f"/records/{order.id}")
    again = client.post(f"/orders/from-quote/{quote.id}", follow_redirects=True)
    assert "already has order" in body(again)
    assert f'id="quote-order-link" href="/records/{order.id}"' in body(client.get(f"/records/{quote.id}"))
    page = body(client.get(f"/records/{order.id}"))
    assert "Create invoice" in page
    assert client.post(f"/orders/{order.id}/invoice").status_code == 303
    page = body(client.get(f"/records/{order.id}"))
    assert ">invoiced</span>" in page and 'id="order-invoice"' in page and "Create invoice" not in page


def test_csrf_roles_isolation_and_a_disabled_plugin(o, other_o, app, client, make_user, business):
    record = service.create_order(o, {"party_id": new_party(o).id, "lines": [line()]})
    raw = app.test_client()
    CrmClient(raw).login("owner@acme.example")
    assert raw.post(f"/orders/{record.id}/fulfil").status_code == 400  # no CSRF token
    reader_ctx = make_user(business, "read_only")
    reader = CrmClient(app.test_client())
    reader.login(reader_ctx.user.email)
    page = body(reader.get(f"/records/{record.id}"))
    assert 'id="order-panel"' in page and "Edit order" not in page and "Mark fulfilled" not in page
    assert reader.post(f"/orders/{record.id}/fulfil").status_code == 403
    assert reader.get("/orders/").status_code == 200
    other = CrmClient(app.test_client())
    other.login("owner@globex.example")
    assert other.get(f"/orders/{record.id}/edit").status_code == 404
    assert other.post(f"/orders/{record.id}/fulfil").status_code == 404
    assert record.reference not in body(other.get("/orders/"))
    assert service.get_order(o, record.id).status == "open"
    disable_plugin(o, NAME)
    assert client.get("/orders/").status_code == 404
    assert client.get(f"/orders/{record.id}/edit").status_code == 404
    assert count(o, "select count(*) from orders_orders") == 1  # disabling keeps the data


def test_the_settings_save_through_the_cores_plugin_settings_page(o, client):
    page = body(client.get("/settings/plugins"))
    assert "Days of a loan" in page
    saved = client.post("/settings/plugins/orders/settings", {"order_on_accept": "", "loan_days": "30",
                                                              "remind_due_back": "1"})
    assert saved.status_code in (302, 303)
    cfg = service.settings(o)
    assert (cfg.order_on_accept, cfg.loan_days, cfg.remind_due_back) == (False, 30, True)
    refused = client.post("/settings/plugins/orders/settings", {"loan_days": "0"})
    assert refused.status_code == 422 and "days of a loan" in body(refused)


def test_a_deal_panel_new_order_and_a_loaner_invoiced_with_charges(o, client):
    enable_plugin(o, "invoicing")
    party = new_party(o)
    deal = new_deal(o, party, title="Harvest <season>")
    page = body(client.get(f"/records/{deal.id}"))
    assert 'id="deal-orders"' in page and "New loaner" in page
    made = client.post("/orders/new", {"deal_id": str(deal.id), "kind": "loaner", "quick": "1",
                                       "next": f"/records/{deal.id}"})
    assert made.status_code == 303
    record_id = int(re.search(r"/orders/(\d+)/edit$", made.headers["Location"]).group(1))
    view = service.get_order(o, record_id)
    assert (view.order.deal_id, view.record.party_id, view.record.title) == (deal.id, party.id,
                                                                           "Loan: Harvest <season>")
    service.update_order(o, record_id, {"unit_description": "Combine C7"})
    service.hand_over(o, record_id)
    page = body(client.get(f"/records/{deal.id}"))
    assert "Loaned out:" in page and "Combine C7" in page and "Harvest &lt;season&gt;" in page
    form = client.get(f"/orders/{record_id}/invoice")
    assert form.status_code == 200 and 'name="charges.0.description"' in body(form)
    refused = client.post(f"/orders/{record_id}/invoice", {**row(0, "charges", description="Repair", quantity="1",
                                                                 unit_price="abc")})
    assert refused.status_code == 422 and 'id="charges-0-unit_price-err"' in body(refused)
    assert 'value="abc"' in body(refused)
    done = client.post(f"/orders/{record_id}/invoice", {**row(0, "charges", description="Loan fee", quantity="1",
                                                              unit_price="120", tax_rate="21")})
    assert done.status_code == 303
    view = service.get_order(o, record_id)
    assert view.status == "out" and view.order.invoice_id is not None and view.totals.net == D("120.00")
