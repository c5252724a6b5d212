"""Price lists, special prices and cross references: validation naming the field, roles, what a
delete keeps, a party merge, and business isolation (another business's rows are never used)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from crm_catalog import service
from crm_catalog.models import CrossReference, PriceList, SpecialPrice
from sqlalchemy import func, select

from crmcore.errors import NotFound, PermissionDenied, ValidationFailed
from crmcore.parties.service import create_party

from .conftest import new_party, new_product  # noqa: TID252


def count(ctx, model) -> int:
    ctx.session.rollback()
    return ctx.session.scalar(select(func.count()).select_from(model))


# -- price lists ---------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "field"), [
    ({"name": ""}, "name"),
    ({"name": "L", "valid_from": "2026-05-01", "valid_to": "2026-04-30"}, "valid_to"),
    ({"name": "L", "valid_from": "01/05/2026"}, "valid_from"),
    ({"name": "L", "currency": "XYZ1"}, "currency"),
    ({"name": "L", "active": "perhaps"}, "active"),
])
def test_a_bad_price_list_is_refused(cat, data, field):
    with pytest.raises(ValidationFailed) as exc:
        service.create_price_list(cat, data)
    assert field in exc.value.errors
    assert count(cat, PriceList) == 0


def test_price_list_names_are_unique_and_dates_are_checked_on_edit(cat):
    first = service.create_price_list(cat, {"name": "Dealers", "valid_from": "2026-01-01"})
    assert first.currency == "EUR" and first.active
    with pytest.raises(ValidationFailed) as exc:
        service.create_price_list(cat, {"name": "DEALERS"})
    assert "already exists" in exc.value.errors["name"][0]
    with pytest.raises(ValidationFailed) as exc:
        service.update_price_list(cat, first.id, {"valid_to": "2025-12-31"})  # before the stored start
    assert "valid_to" in exc.value.errors


def test_price_list_items_are_validated(cat):
    plist = service.create_price_list(cat, {"name": "L"})
    product = new_product(cat)
    for data, field in [({"sku": product.sku, "unit_price": "-1"}, "unit_price"),
                        ({"sku": product.sku, "unit_price": "1", "min_quantity": "0.5"}, "min_quantity"),
                        ({"sku": "NOPE", "unit_price": "1"}, "sku"),
                        ({"product_id": 999_999, "unit_price": "1"}, "product_id"),
                        ({"unit_price": "1"}, "sku")]:
        with pytest.raises(ValidationFailed) as exc:
            service.set_price_list_item(cat, plist.id, data)
        assert field in exc.value.errors, data
    item = service.set_price_list_item(cat, plist.id, {"sku": product.sku.lower(), "unit_price": "9"})
    again = service.set_price_list_item(cat, plist.id, {"sku": product.sku, "unit_price": "8", "min_quantity": "1"})
    assert again.id == item.id and again.unit_price == Decimal(8)  # same break: the price is replaced
    page = service.list_price_list_items(cat, plist.id)
    assert [(i.product.sku, i.unit_price) for i in page.items] == [(product.sku, Decimal(8))]


def test_the_currency_of_a_list_with_prices_stays(cat):
    plist = service.create_price_list(cat, {"name": "L"})
    service.set_price_list_item(cat, plist.id, {"sku": new_product(cat).sku, "unit_price": "1"})
    with pytest.raises(ValidationFailed) as exc:
        service.update_price_list(cat, plist.id, {"currency": "USD"})
    assert "currency" in exc.value.errors


def test_a_list_given_to_a_party_is_deactivated_not_deleted(cat):
    given = service.create_price_list(cat, {"name": "Given"})
    lonely = service.create_price_list(cat, {"name": "Lonely"})
    service.set_price_list_item(cat, lonely.id, {"sku": new_product(cat).sku, "unit_price": "1"})
    service.add_special_price(cat, {"party_id": new_party(cat).id, "price_list_id": given.id})
    removal = service.delete_price_list(cat, given.id)
    assert not removal.deleted and removal.reason == "given to 1 party"
    assert service.get_price_list(cat, given.id).active is False
    assert service.delete_price_list(cat, lonely.id).deleted
    with pytest.raises(NotFound):
        service.get_price_list(cat, lonely.id)


def test_price_lists_page_by_name_with_their_item_counts(cat):
    made = [service.create_price_list(cat, {"name": name}) for name in ("b", "A", "c")]
    service.set_price_list_item(cat, made[0].id, {"sku": new_product(cat).sku, "unit_price": "1"})
    first = service.list_price_lists(cat, limit=2)
    second = service.list_price_lists(cat, cursor=first.next_cursor, limit=2)
    assert [p.name for p in first.items + second.items] == ["A", "b", "c"]
    assert first.extra["items"] == {made[1].id: 0, made[0].id: 1}


# -- special prices ------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "field"), [
    ({}, "price_list_id"),                                              # neither
    ({"sku": "P", "price_list_id": "LIST"}, "price_list_id"),           # both
    ({"sku": "P"}, "unit_price"),                                       # a product needs a price
    ({"sku": "P", "unit_price": "-0.01"}, "unit_price"),
    ({"price_list_id": "LIST", "unit_price": "3"}, "unit_price"),       # a list brings its prices
    ({"sku": "P", "unit_price": "1", "valid_from": "2026-02-01", "valid_to": "2026-01-31"}, "valid_to"),
    ({"sku": "NOPE", "unit_price": "1"}, "sku"),
    ({"product_id": 999_999, "unit_price": "1"}, "product_id"),
    ({"price_list_id": 999_999}, "price_list_id"),
    ({"sku": "P", "unit_price": "1", "note": "x" * 501}, "note"),
])
def test_a_bad_special_price_is_refused(cat, data, field):
    product = new_product(cat, sku="P")
    plist = service.create_price_list(cat, {"name": "L"})
    party = new_party(cat)
    data = {k: (plist.id if v == "LIST" else v) for k, v in data.items()}
    with pytest.raises(ValidationFailed) as exc:
        service.add_special_price(cat, {"party_id": party.id, **data})
    assert field in exc.value.errors
    assert count(cat, SpecialPrice) == 0
    assert product.id


def test_special_prices_need_a_party_of_this_business(cat, other_cat):
    product = new_product(cat)
    theirs = new_party(other_cat)
    for party_id in (theirs.id, 999_999, "abc", None):
        with pytest.raises(ValidationFailed) as exc:
            service.add_special_price(cat, {"party_id": party_id, "product_id": product.id, "unit_price": "1"})
        assert "party_id" in exc.value.errors
    assert count(cat, SpecialPrice) == 0


def test_special_prices_are_for_admins(cat, business, make_user):
    product = new_product(cat)
    party = new_party(cat)
    row = service.add_special_price(cat, {"party_id": party.id, "product_id": product.id, "unit_price": "1"})
    member = make_user(business, "member")
    with pytest.raises(PermissionDenied):
        service.add_special_price(member, {"party_id": party.id, "product_id": product.id, "unit_price": "0"})
    with pytest.raises(PermissionDenied):
        service.remove_special_price(member, row.id)
    # members do keep the party's part numbers
    xref = service.add_cross_reference(member, {"party_id": party.id, "product_id": product.id,
                                                "customer_part_number": "M-1"})
    service.remove_cross_reference(member, xref.id, party_id=party.id)
    reader = make_user(business, "read_only")
    with pytest.raises(PermissionDenied):
        service.add_cross_reference(reader, {"party_id": party.id, "product_id": product.id,
                                             "customer_part_number": "R-1"})
    assert service.party_catalog(reader, party.id).special_prices[0].id == row.id


def test_removing_another_partys_row_through_this_party_is_not_found(cat):
    product = new_product(cat)
    a, b = new_party(cat), new_party(cat)
    row = service.add_special_price(cat, {"party_id": a.id, "product_id": product.id, "unit_price": "1"})
    xref = service.add_cross_reference(cat, {"party_id": a.id, "product_id": product.id, "customer_part_number": "X"})
    with pytest.raises(NotFound):
        service.remove_special_price(cat, row.id, party_id=b.id)
    with pytest.raises(NotFound):
        service.remove_cross_reference(cat, xref.id, party_id=b.id)
    assert count(cat, SpecialPrice) == 1 and count(cat, CrossReference) == 1


# -- cross references ----------------------------------------------------------------------


def test_a_part_number_is_unique_per_party_whatever_its_case(cat):
    product, other = new_product(cat), new_product(cat)
    a, b = new_party(cat, "Alpha"), new_party(cat, "Beta")
    service.add_cross_reference(cat, {"party_id": a.id, "sku": product.sku, "customer_part_number": "AB-12",
                                      "customer_description": "their bolt"})
    with pytest.raises(ValidationFailed) as exc:
        service.add_cross_reference(cat, {"party_id": a.id, "sku": other.sku, "customer_part_number": "ab-12"})
    assert "already uses part number 'AB-12'" in exc.value.errors["customer_part_number"][0]
    service.add_cross_reference(cat, {"party_id": b.id, "sku": other.sku, "customer_part_number": "ab-12"})
    found = service.cross_reference(cat, a.id, " aB-12 ")
    assert (found.product_id, found.customer_description) == (product.id, "their bolt")
    assert service.cross_reference(cat, b.id, "AB-12").product_id == other.id
    assert service.cross_reference(cat, a.id, "nope") is None
    for data, field in [({"customer_part_number": ""}, "customer_part_number"), ({}, "sku"),
                        ({"customer_part_number": "X", "sku": "NOPE"}, "sku")]:
        with pytest.raises(ValidationFailed) as exc:
            service.add_cross_reference(cat, {"party_id": a.id, **data, **({"sku": product.sku} if field != "sku" else {})})
        assert field in exc.value.errors


# -- isolation -----------------------------------------------------------------------------


def test_another_business_rows_are_never_used_or_seen(cat, other_cat):
    mine = new_product(cat, sku="SAME", unit_price="10")
    theirs = new_product(other_cat, sku="SAME", unit_price="1")
    their_list = service.create_price_list(other_cat, {"name": "Theirs"})
    service.set_price_list_item(other_cat, their_list.id, {"sku": "SAME", "unit_price": "0.5"})
    their_party = new_party(other_cat)
    party = new_party(cat)

    with pytest.raises(NotFound):
        service.get_product(cat, theirs.id)
    with pytest.raises(NotFound):
        service.price_for(cat, theirs.id)
    with pytest.raises(NotFound):
        service.get_price_list(cat, their_list.id)
    with pytest.raises(NotFound):
        service.set_price_list_item(cat, their_list.id, {"sku": "SAME", "unit_price": "1"})
    with pytest.raises(ValidationFailed) as exc:
        service.add_special_price(cat, {"party_id": party.id, "price_list_id": their_list.id})
    assert "price_list_id" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        service.add_special_price(cat, {"party_id": party.id, "product_id": theirs.id, "unit_price": "1"})
    assert "product_id" in exc.value.errors
    with pytest.raises(ValidationFailed):
        service.price_for(cat, mine.id, party_id=their_party.id)
    with pytest.raises(ValidationFailed):
        service.cross_reference(cat, their_party.id, "X")
    assert [p.id for p in service.find_products(cat, "same")] == [mine.id]
    assert [p.id for p in service.list_products(cat).items] == [mine.id]
    assert service.list_price_lists(cat).items == []
    assert service.price_for(cat, mine.id, party_id=party.id).unit_price == Decimal(10)


# -- merge ---------------------------------------------------------------------------------


def test_a_merge_moves_the_duplicates_rows_to_the_kept_party(cat):
    from crmcore.parties.merge import merge_parties

    product, other = new_product(cat), new_product(cat)
    kept = create_party(cat, {"kind": "organisation", "name": "Kept"})
    dup = create_party(cat, {"kind": "organisation", "name": "Dup"})
    special = service.add_special_price(cat, {"party_id": dup.id, "product_id": product.id, "unit_price": "3"})
    service.add_cross_reference(cat, {"party_id": kept.id, "product_id": product.id, "customer_part_number": "K-1"})
    clash = service.add_cross_reference(cat, {"party_id": dup.id, "product_id": other.id, "customer_part_number": "k-1"})
    moved = service.add_cross_reference(cat, {"party_id": dup.id, "product_id": other.id, "customer_part_number": "D-2"})
    merge_parties(cat, kept.id, dup.id)
    cat.session.rollback()
    kept_rows = service.party_catalog(cat, kept.id)
    assert [s.id for s in kept_rows.special_prices] == [special.id]
    assert sorted(x.customer_part_number for x in kept_rows.cross_references) == ["D-2", "K-1"]
    assert cat.session.get(CrossReference, clash.id).party_id == dup.id  # K-1 was taken: stays behind
    assert cat.session.get(CrossReference, moved.id).party_id == kept.id
    assert service.price_for(cat, product.id, party_id=kept.id).unit_price == Decimal(3)
