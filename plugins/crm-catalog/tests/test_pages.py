"""The pages through the real Flask app: forms with CSRF and their errors beside the fields,
escaping, keyset pages, the party panel and its inquiry, the JSON search, roles, another
business's ids answering 404, and the plugin's pages existing only where it is enabled."""

from __future__ import annotations

import re
from decimal import Decimal

from crm_catalog import service
from crm_catalog.models import PriceListItem, Product, SpecialPrice
from sqlalchemy import func, select

from crmcore.plugins.service import disable_plugin
from crmcore.testing import CrmClient

from .conftest import new_party, new_product  # noqa: TID252

XSS = "<script>alert(1)</script>"


def count(ctx, model) -> int:
    ctx.session.rollback()
    return ctx.session.scalar(select(func.count()).select_from(model))


def product_form(**changes):
    data = {"sku": "BOLT-8", "name": "Hex bolt", "description": "", "kind": "product", "unit": "pcs",
            "unit_price": "0.25", "currency": "", "tax_rate": "21", "stock_on_hand": "", "active": ["", "1"]}
    data.update(changes)
    return data


def body(response) -> str:
    return response.get_data(as_text=True)


def logged_in(app, ctx) -> CrmClient:
    client = CrmClient(app.test_client())
    assert client.login(ctx.user.email).status_code == 302
    return client


# -- products ------------------------------------------------------------------------------


def test_create_and_edit_a_product(cat, client):
    page = client.get("/catalog/products/new")
    assert page.status_code == 200 and 'name="csrf_token"' in body(page)
    saved = client.post("/catalog/products/new", product_form(name=XSS))
    assert saved.status_code == 302
    cat.session.rollback()
    product = cat.session.scalar(select(Product))
    assert (product.sku, product.unit_price, product.currency, product.active) == ("BOLT-8", Decimal("0.25"), "EUR", True)
    listing = body(client.get("/catalog/"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing and XSS not in listing
    assert "€0.25" in listing
    detail = body(client.get(f"/catalog/products/{product.id}"))
    assert "&lt;script&gt;" in detail and XSS not in detail
    edit = body(client.get(f"/catalog/products/{product.id}/edit"))
    assert 'value="0.25"' in edit and 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in edit
    assert client.post(f"/catalog/products/{product.id}/edit",
                       product_form(name="Hex bolt", unit_price="0.0125", active="")).status_code == 302
    cat.session.rollback()
    product = service.get_product(cat, product.id)
    assert (product.name, product.unit_price, product.active) == ("Hex bolt", Decimal("0.0125"), False)
    assert "€0.0125" in body(client.get("/catalog/"))


def test_product_errors_show_beside_their_fields_with_the_input_kept(cat, client):
    response = client.post("/catalog/products/new", product_form(unit_price="-5", tax_rate="150", currency="EURO",
                                                                 name="Kept <name>"))
    page = body(response)
    assert response.status_code == 422
    for field in ("unit_price", "tax_rate", "currency"):
        assert f'id="product-{field}-err"' in page, field
    assert "must not be negative" in page and "at most 100" in page
    assert 'value="Kept &lt;name&gt;"' in page and 'value="-5"' in page
    new_product(cat, sku="TAKEN")
    response = client.post("/catalog/products/new", product_form(sku="taken"))
    assert response.status_code == 422 and 'id="product-sku-err"' in body(response)
    assert count(cat, Product) == 1


def test_a_post_without_the_csrf_token_is_refused(cat, client):
    assert client.raw.post("/catalog/products/new", data=product_form()).status_code == 400
    assert count(cat, Product) == 0


def test_the_product_list_searches_filters_and_pages_by_keyset(cat, client):
    for n in range(55):
        new_product(cat, sku=f"P-{n:02}", name=f"Pump {n:02}")
    new_product(cat, sku="OLD", name="Old pump", active=False)
    first = body(client.get("/catalog/?q=pump"))
    assert first.count('<tr id="product-') == 50 and "Pump 00" in first and "Old pump" in first
    cursor = re.search(r'href="([^"]*cursor=[^"]+)"', first).group(1).replace("&amp;", "&")
    assert "offset" not in cursor
    second = body(client.get(cursor))
    assert second.count('<tr id="product-') == 6 and "Pump 54" in second and "Pump 00" not in second
    inactive = body(client.get("/catalog/?active=inactive"))
    assert inactive.count('<tr id="product-') == 1 and "Old pump" in inactive
    assert client.get("/catalog/?active=bogus").status_code == 422
    assert client.get("/catalog/?cursor=garbage").status_code == 422


def test_deleting_a_referenced_product_deactivates_it(cat, client):
    used = new_product(cat, sku="USED")
    service.add_cross_reference(cat, {"party_id": new_party(cat).id, "product_id": used.id,
                                      "customer_part_number": "X"})
    page = body(client.post(f"/catalog/products/{used.id}/delete", follow_redirects=True))
    assert "deactivated instead" in page and "1 cross reference" in page
    unused = new_product(cat, sku="UNUSED")
    assert "Product deleted." in body(client.post(f"/catalog/products/{unused.id}/delete", follow_redirects=True))
    assert count(cat, Product) == 1


# -- price lists ---------------------------------------------------------------------------


def list_form(**changes):
    data = {"name": "Dealers", "currency": "", "valid_from": "", "valid_to": "", "note": "", "active": ["", "1"]}
    data.update(changes)
    return data


def test_price_lists_and_their_items(cat, client):
    product = new_product(cat, sku="BOLT-8")
    new_product(cat, sku="USD-1", currency="USD")
    response = client.post("/catalog/price-lists/new", list_form(valid_from="2026-05-01", valid_to="2026-04-01"))
    assert response.status_code == 422 and 'id="list-valid_to-err"' in body(response)
    assert 'value="2026-05-01"' in body(response)
    created = client.post("/catalog/price-lists/new", list_form(name=f"Dealers {XSS}"))
    assert created.status_code == 302
    list_id = int(re.search(r"/price-lists/(\d+)$", created.headers["Location"]).group(1))
    page = body(client.get(f"/catalog/price-lists/{list_id}"))
    assert "Dealers &lt;script&gt;" in page and XSS not in page and 'id="item-form"' in page

    bad = client.post(f"/catalog/price-lists/{list_id}/items", {"sku": "USD-1", "min_quantity": "1", "unit_price": "3"})
    assert bad.status_code == 422 and 'id="item-sku-err"' in body(bad) and "priced in USD" in body(bad)
    assert 'value="USD-1"' in body(bad)
    bad = client.post(f"/catalog/price-lists/{list_id}/items", {"sku": "BOLT-8", "min_quantity": "0", "unit_price": "x"})
    assert bad.status_code == 422 and 'id="item-min_quantity-err"' in body(bad) and 'id="item-unit_price-err"' in body(bad)
    assert client.post(f"/catalog/price-lists/{list_id}/items",
                       {"sku": "bolt-8", "min_quantity": "10", "unit_price": "0.2"}).status_code == 302
    page = body(client.get(f"/catalog/price-lists/{list_id}"))
    assert "BOLT-8" in page and "€0.20" in page
    (item,) = service.list_price_list_items(cat, list_id).items
    assert (item.product_id, item.min_quantity, item.unit_price) == (product.id, Decimal(10), Decimal("0.2"))
    assert "Dealers &lt;script&gt;" in body(client.get("/catalog/price-lists/"))
    edited = client.post(f"/catalog/price-lists/{list_id}", list_form(name="Dealers", currency="USD"))
    assert edited.status_code == 422 and 'id="list-currency-err"' in body(edited)
    assert client.post(f"/catalog/price-lists/{list_id}/items/{item.id}/delete").status_code == 302
    assert count(cat, PriceListItem) == 0
    assert client.post(f"/catalog/price-lists/{list_id}/delete").status_code == 302
    assert client.get(f"/catalog/price-lists/{list_id}").status_code == 404


# -- the party panel -----------------------------------------------------------------------


def test_the_party_sheet_has_the_catalog_panel_and_its_inquiry(cat, client):
    party = new_party(cat, "Meadow <Farms>")
    bolt = new_product(cat, sku="BOLT-8", name="Hex bolt", unit_price="0.25", stock_on_hand="40")
    service.add_special_price(cat, {"party_id": party.id, "product_id": bolt.id, "unit_price": "0.2",
                                    "valid_to": "2099-12-31"})
    service.add_cross_reference(cat, {"party_id": party.id, "product_id": bolt.id, "customer_part_number": "MF-77"})
    sheet = body(client.get(f"/parties/{party.id}"))
    assert 'id="catalog-panel"' in sheet and "Price &amp; availability inquiry" in sheet
    assert "MF-77" in sheet and "Add a special price" in sheet and "Add their part number" in sheet

    asked = body(client.get(f"/parties/{party.id}?catalog_q=mf-77&catalog_qty=50"))
    results = asked.split('id="catalog-results"')[1]
    assert "BOLT-8" in results and "€0.20" in results and "special price" in results
    assert "40 available" in results and "short of 50" in results
    assert "€10.00" in results  # 50 × 0.20, by crmcore.money's rule
    assert "Meadow &lt;Farms&gt;" in asked and "Meadow <Farms>" not in asked

    bad = body(client.get(f"/parties/{party.id}?catalog_q=bolt&catalog_qty=-3"))
    assert 'id="inquiry-catalog_qty-err"' in bad and 'value="-3"' in bad and 'id="catalog-results"' not in bad
    empty = body(client.get(f"/parties/{party.id}?catalog_q=&catalog_qty=1"))
    assert 'id="inquiry-catalog_q-err"' in empty
    none = body(client.get(f"/parties/{party.id}?catalog_q=zzz"))
    assert "No active product matches" in none


def test_special_price_and_part_number_forms_on_the_party(cat, client):
    party = new_party(cat)
    product = new_product(cat, sku="BOLT-8")
    plist = service.create_price_list(cat, {"name": "Dealers"})
    url = f"/catalog/parties/{party.id}/special-prices"
    bad = client.post(url, {"target": "product", "sku": "BOLT-8", "unit_price": "-1", "valid_from": "2026-02-01",
                            "valid_to": "2026-01-01", "note": "kept note"})
    page = body(bad)
    assert bad.status_code == 422
    assert 'id="sp-unit_price-err"' in page and 'value="kept note"' in page and "<details class=\"catalog-add\" open>" in page
    bad = client.post(url, {"target": "product", "sku": "BOLT-8", "unit_price": "1", "valid_from": "2026-02-01",
                            "valid_to": "2026-01-01", "note": ""})
    assert bad.status_code == 422 and 'id="sp-valid_to-err"' in body(bad)
    bad = client.post(url, {"target": "price_list", "price_list_id": "", "valid_from": "", "valid_to": "", "note": ""})
    assert bad.status_code == 422 and 'id="spl-price_list_id-err"' in body(bad)
    assert count(cat, SpecialPrice) == 0
    ok = client.post(url, {"target": "product", "sku": "bolt-8", "unit_price": "0.5", "valid_from": "",
                           "valid_to": "", "note": ""})
    assert ok.status_code == 302 and ok.headers["Location"].endswith(f"/parties/{party.id}#catalog-panel")
    assert client.post(url, {"target": "price_list", "price_list_id": str(plist.id), "valid_from": "",
                             "valid_to": "", "note": ""}).status_code == 302
    rows = service.party_catalog(cat, party.id).special_prices
    assert {(r.product_id, r.price_list_id) for r in rows} == {(product.id, None), (None, plist.id)}

    xurl = f"/catalog/parties/{party.id}/cross-references"
    assert client.post(xurl, {"sku": "BOLT-8", "customer_part_number": "C-1", "customer_description": ""}).status_code == 302
    again = client.post(xurl, {"sku": "BOLT-8", "customer_part_number": "c-1", "customer_description": "kept"})
    assert again.status_code == 422 and 'id="xref-customer_part_number-err"' in body(again)
    assert 'value="kept"' in body(again)
    catalog = service.party_catalog(cat, party.id)
    for row in rows:
        assert client.post(f"/catalog/parties/{party.id}/special-prices/{row.id}/delete").status_code == 302
    xref = catalog.cross_references[0]
    assert client.post(f"/catalog/parties/{party.id}/cross-references/{xref.id}/delete").status_code == 302
    catalog = service.party_catalog(cat, party.id)
    assert catalog.special_prices == [] and catalog.cross_references == []


def test_members_inquire_and_keep_part_numbers_but_do_not_price(cat, app, business, make_user):
    party = new_party(cat)
    product = new_product(cat, sku="BOLT-8")
    member = logged_in(app, make_user(business, "member"))
    sheet = body(member.get(f"/parties/{party.id}?catalog_q=bolt"))
    assert "BOLT-8" in sheet.split('id="catalog-results"')[1]
    assert "Add a special price" not in sheet and "Add their part number" in sheet
    assert member.get("/catalog/").status_code == 200
    assert "New product" not in body(member.get("/catalog/"))
    assert member.get("/catalog/products/new").status_code == 403
    assert member.get(f"/catalog/products/{product.id}/edit").status_code == 403
    assert member.post("/catalog/products/new", product_form(sku="M")).status_code == 403
    assert member.post(f"/catalog/parties/{party.id}/special-prices",
                       {"target": "product", "sku": "BOLT-8", "unit_price": "1"}).status_code == 403
    assert member.post(f"/catalog/parties/{party.id}/cross-references",
                       {"sku": "BOLT-8", "customer_part_number": "M-1", "customer_description": ""}).status_code == 302
    reader = logged_in(app, make_user(business, "read_only"))
    assert "BOLT-8" in body(reader.get(f"/parties/{party.id}?catalog_q=bolt"))
    assert reader.post(f"/catalog/parties/{party.id}/cross-references",
                       {"sku": "BOLT-8", "customer_part_number": "R-1"}).status_code == 403
    assert count(cat, Product) == 1


# -- the JSON search -----------------------------------------------------------------------


def test_the_json_search_gives_each_match_its_price(cat, client, anon_client):
    party = new_party(cat)
    bolt = new_product(cat, sku="BOLT-8", name="Hex bolt", unit_price="0.25", tax_rate="21")
    plist = service.create_price_list(cat, {"name": "Volume"})
    service.set_price_list_item(cat, plist.id, {"product_id": bolt.id, "unit_price": "0.18", "min_quantity": "100"})
    service.add_special_price(cat, {"party_id": party.id, "price_list_id": plist.id})
    data = client.get(f"/catalog/products/search.json?q=bolt&party_id={party.id}&quantity=100").get_json()
    (match,) = data["matches"]
    assert match["sku"] == "BOLT-8" and match["availability"] is None
    price = match["price"]
    assert (price["unit_price"], price["source"], price["source_id"], price["currency"], price["tax_rate"]) == (
        "0.1800", "price list Volume", plist.id, "EUR", "21.000")
    assert client.get("/catalog/products/search.json?q=bolt").get_json()["matches"][0]["price"]["source"] == "list price"
    with_stock = client.get("/catalog/products/search.json?q=bolt&availability=1").get_json()
    assert with_stock["matches"][0]["availability"]["sources"] == []
    bad = client.get("/catalog/products/search.json?q=bolt&quantity=abc")
    assert bad.status_code == 422 and "quantity" in bad.get_json()["errors"]
    assert client.get("/catalog/products/search.json?q=bolt&party_id=999999").status_code == 422
    assert client.get("/catalog/products/search.json").get_json() == {"matches": []}
    anonymous = anon_client.get("/catalog/products/search.json?q=bolt")
    assert anonymous.status_code != 200 and b"BOLT" not in anonymous.data


# -- isolation and enablement --------------------------------------------------------------


def test_another_business_ids_answer_404(cat, other_cat, client):
    theirs = new_product(other_cat, sku="THEIRS")
    their_list = service.create_price_list(other_cat, {"name": "Theirs"})
    their_party = new_party(other_cat)
    party = new_party(cat)
    for url in (f"/catalog/products/{theirs.id}", f"/catalog/products/{theirs.id}/edit",
                f"/catalog/price-lists/{their_list.id}", f"/catalog/parties/{their_party.id}"):
        assert client.get(url).status_code == 404, url
    for url in (f"/catalog/products/{theirs.id}/delete", f"/catalog/price-lists/{their_list.id}/delete",
                f"/catalog/price-lists/{their_list.id}/items", f"/catalog/parties/{their_party.id}/special-prices",
                f"/catalog/parties/{their_party.id}/cross-references"):
        assert client.post(url, {"sku": "THEIRS", "unit_price": "1", "customer_part_number": "X"}).status_code == 404, url
    # their ids typed into our forms are field errors, never used
    response = client.post(f"/catalog/parties/{party.id}/special-prices",
                           {"target": "price_list", "price_list_id": str(their_list.id)})
    assert response.status_code == 422 and 'id="spl-price_list_id-err"' in body(response)
    response = client.post(f"/catalog/parties/{party.id}/cross-references",
                           {"sku": "THEIRS", "customer_part_number": "X"})
    assert response.status_code == 422 and 'id="xref-sku-err"' in body(response)
    assert "THEIRS" not in body(client.get("/catalog/?q=theirs"))
    assert client.get(f"/catalog/products/search.json?q=theirs&party_id={their_party.id}").status_code == 422
    assert client.get("/catalog/products/search.json?q=theirs").get_json() == {"matches": []}
    other_cat.session.rollback()
    assert service.get_product(other_cat, theirs.id).active


def test_the_pages_exist_only_where_the_plugin_is_enabled(ctx, client):
    party = new_party(ctx)
    assert client.get("/catalog/").status_code == 404
    assert client.get("/catalog/products/search.json?q=x").status_code == 404
    assert 'id="catalog-panel"' not in body(client.get(f"/parties/{party.id}"))
    from crm_catalog import NAME

    from crmcore.plugins.service import enable_plugin

    enable_plugin(ctx, NAME)
    assert client.get("/catalog/").status_code == 200
    sheet = body(client.get(f"/parties/{party.id}"))
    assert 'id="catalog-panel"' in sheet and 'href="/catalog/"' in sheet  # the menu entry
    disable_plugin(ctx, NAME)
    assert client.get("/catalog/").status_code == 404
    assert client.get("/catalog/static/catalog.css").status_code == 404
