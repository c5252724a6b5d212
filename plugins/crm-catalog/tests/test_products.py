"""Products: validation naming the field, SKU uniqueness whatever the case, currency defaults,
roles, deleting (or deactivating when referenced), keyset paging and the search."""

from __future__ import annotations

from decimal import Decimal

import pytest
from crm_catalog import service
from crm_catalog.models import Product
from sqlalchemy import func, select

from crmcore.errors import NotFound, PermissionDenied, ValidationFailed

from .conftest import new_party, new_product  # noqa: TID252


def product_count(ctx) -> int:
    ctx.session.rollback()
    return ctx.session.scalar(select(func.count()).select_from(Product))


def test_a_product_gets_the_business_currency_and_its_keys(cat):
    product = new_product(cat, sku=" Bolt-M8 ", name="Hex bolt M8", unit="pcs", unit_price="0.0125")
    assert (product.sku, product.sku_key, product.name_key) == ("Bolt-M8", "bolt-m8", "hex bolt m8")
    assert product.currency == cat.business.currency == "EUR"
    assert product.unit_price == Decimal("0.0125") and product.kind == "product" and product.active
    assert product.stock_on_hand is None  # not tracked
    again = service.get_product(cat, product.id)
    assert again.unit_price == Decimal("0.0125") and again.tax_rate == Decimal(21)


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"unit_price": "-1"}, "unit_price", "negative"),
    ({"unit_price": "abc"}, "unit_price", "number"),
    ({"unit_price": 1.5}, "unit_price", "number"),          # a float is not exact: refused
    ({"unit_price": "1.00001"}, "unit_price", "4 decimals"),
    ({"unit_price": "12345678901"}, "unit_price", "10 digits"),
    ({"unit_price": "NaN"}, "unit_price", "number"),
    ({"tax_rate": "100.5"}, "tax_rate", "at most 100"),
    ({"tax_rate": "-0.1"}, "tax_rate", "negative"),
    ({"kind": "gadget"}, "kind", "product or service"),
    ({"currency": "EURO"}, "currency", "ISO 4217"),
    ({"currency": "ABC"}, "currency", "ISO 4217"),
    ({"sku": ""}, "sku", "empty"),
    ({"sku": "has space"}, "sku", "no spaces"),
    ({"sku": "x" * 65}, "sku", "64"),
    ({"name": "  "}, "name", "empty"),
    ({"name": "nul\x00name"}, "name", "NUL"),
    ({"stock_on_hand": "-3"}, "stock_on_hand", "negative"),
    ({"unit": ""}, "unit", "empty"),
    ({"colour": "red"}, "colour", "Unknown"),
])
def test_bad_input_is_refused_naming_the_field(cat, changes, field, words):
    data = {"sku": "A-1", "name": "A", "unit_price": "1", **changes}
    with pytest.raises(ValidationFailed) as exc:
        service.create_product(cat, data)
    assert field in exc.value.errors
    assert words.lower() in str(exc.value.errors[field]).lower()
    assert product_count(cat) == 0


def test_the_sku_is_unique_whatever_its_case(cat):
    first = new_product(cat, sku="ABC-1")
    with pytest.raises(ValidationFailed) as exc:
        new_product(cat, sku="abc-1")
    assert "already used" in exc.value.errors["sku"][0]
    other = new_product(cat, sku="ABC-2")
    with pytest.raises(ValidationFailed):
        service.update_product(cat, other.id, {"sku": "Abc-1"})
    assert service.update_product(cat, first.id, {"sku": "abc-1"}).sku == "abc-1"  # its own SKU, new case


def test_the_same_sku_in_another_business_is_fine(cat, other_cat):
    mine = new_product(cat, sku="SHARED")
    theirs = new_product(other_cat, sku="shared")
    assert mine.id != theirs.id


def test_an_edit_changes_only_what_is_given_and_is_audited(cat):
    from crmcore.audit.service import history

    product = new_product(cat, name="Old", unit_price="5")
    service.update_product(cat, product.id, {"name": "New name", "currency": ""})
    cat.session.rollback()
    product = service.get_product(cat, product.id)
    assert (product.name, product.name_key, product.unit_price, product.currency) == (
        "New name", "new name", Decimal("5"), "EUR")
    entries = history(cat, "catalog_product", product.id)
    assert [e.action for e in entries] == ["catalog.product.updated", "catalog.product.created"]
    assert entries[0].changes["name"] == ["Old", "New name"]


def test_a_product_with_prices_keeps_its_currency(cat):
    product = new_product(cat)
    plist = service.create_price_list(cat, {"name": "Dealers"})
    service.set_price_list_item(cat, plist.id, {"product_id": product.id, "unit_price": "8"})
    with pytest.raises(ValidationFailed) as exc:
        service.update_product(cat, product.id, {"currency": "USD"})
    assert "currency" in exc.value.errors
    lonely = new_product(cat)
    assert service.update_product(cat, lonely.id, {"currency": "usd"}).currency == "USD"


def test_members_read_but_do_not_write_products(cat, business, make_user):
    product = new_product(cat)
    member = make_user(business, "member")
    reader = make_user(business, "read_only")
    assert service.get_product(reader, product.id).id == product.id
    assert service.price_for(reader, product.id).unit_price == Decimal("10.00")
    for ctx in (member, reader):
        with pytest.raises(PermissionDenied):
            service.create_product(ctx, {"sku": "X", "name": "X", "unit_price": "1"})
        with pytest.raises(PermissionDenied):
            service.update_product(ctx, product.id, {"name": "Y"})
        with pytest.raises(PermissionDenied):
            service.delete_product(ctx, product.id)
    admin = make_user(business, "admin")
    assert service.update_product(admin, product.id, {"name": "By admin"}).name == "By admin"


def test_delete_removes_an_unused_product_and_deactivates_a_referenced_one(cat):
    unused = new_product(cat)
    removal = service.delete_product(cat, unused.id)
    assert removal.deleted and removal.reason is None
    with pytest.raises(NotFound):
        service.get_product(cat, unused.id)

    used = new_product(cat)
    party = new_party(cat)
    service.add_cross_reference(cat, {"party_id": party.id, "product_id": used.id, "customer_part_number": "P1"})
    removal = service.delete_product(cat, used.id)
    assert not removal.deleted and "1 cross reference" in removal.reason
    product = service.get_product(cat, used.id)
    assert product.active is False
    # it is no longer offered, but still priced (a quote that has it keeps working)
    assert service.find_products(cat, product.sku) == []
    assert [p.id for p in service.find_products(cat, product.sku, active_only=False)] == [used.id]
    assert service.price_for(cat, used.id).unit_price == Decimal("10.00")


def test_another_plugin_can_keep_a_product_from_being_deleted(cat, register_plugin):
    class Quotes:
        @staticmethod
        def crm_catalog_product_in_use(product):
            return "on 2 quotes" if product.sku == "QUOTED" else None

    from crmcore import hookimpl

    Quotes.crm_catalog_product_in_use = staticmethod(hookimpl(Quotes.crm_catalog_product_in_use))
    register_plugin(Quotes, enable_for=cat)
    quoted = new_product(cat, sku="QUOTED")
    free = new_product(cat, sku="FREE")
    assert service.delete_product(cat, quoted.id).reason == "on 2 quotes"
    assert service.get_product(cat, quoted.id).active is False
    assert service.delete_product(cat, free.id).deleted


def test_products_page_by_name_with_a_cursor(cat):
    names = ["delta", "Alpha", "charlie", "bravo", "echo", "alpha"]
    made = [new_product(cat, name=name) for name in names]
    seen, cursor = [], None
    while True:
        page = service.list_products(cat, cursor=cursor, limit=2)
        seen += [p.id for p in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = [p.id for p in sorted(made, key=lambda p: (p.name.casefold(), p.id))]
    assert seen == expected
    assert service.list_products(cat, limit=2).total.value == 6


def test_the_product_list_filters_by_text_and_state(cat):
    bolt = new_product(cat, sku="BOLT-8", name="Hex bolt")
    nut = new_product(cat, sku="NUT-8", name="Nut for a bolt")
    old = new_product(cat, sku="OLD-1", name="Old bolt", active=False)
    ids = lambda **f: [p.id for p in service.list_products(cat, f).items]  # noqa: E731
    assert ids(q="BOLT") == [bolt.id, nut.id, old.id]
    assert ids(q="bolt", active="active") == [bolt.id, nut.id]
    assert ids(q="bolt", active="inactive") == [old.id]
    assert ids(q="nut-") == [nut.id]
    assert ids(q="%") == [] and ids(q="_") == []  # LIKE wildcards are literal
    with pytest.raises(ValidationFailed) as exc:
        service.list_products(cat, {"active": "maybe"})
    assert "active" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        service.list_products(cat, cursor="garbage")
    assert "cursor" in exc.value.errors


def test_find_ranks_part_numbers_then_skus_then_names(cat):
    party = new_party(cat)
    by_part = new_product(cat, sku="ZZ-9", name="Widget")
    by_sku = new_product(cat, sku="W-100", name="Gadget")
    by_sku_prefix = new_product(cat, sku="W-1000", name="Gizmo")
    by_name = new_product(cat, sku="Q-1", name="A w-100 compatible part")
    service.add_cross_reference(cat, {"party_id": party.id, "product_id": by_part.id, "customer_part_number": "w-100"})
    found = service.find_products(cat, "W-100", party_id=party.id)
    assert [p.id for p in found] == [by_part.id, by_sku.id, by_sku_prefix.id, by_name.id]
    # without the party its part numbers do not count
    assert [p.id for p in service.find_products(cat, "w-100")] == [by_sku.id, by_sku_prefix.id, by_name.id]
    assert [p.id for p in service.find_products(cat, "widg")] == [by_part.id]
    assert service.find_products(cat, "   ") == []
    assert len(service.find_products(cat, "W", limit=1)) == 1
    with pytest.raises(ValidationFailed) as exc:
        service.find_products(cat, "x", party_id=999_999)
    assert "party_id" in exc.value.errors
