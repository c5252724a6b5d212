"""Availability: the stock on hand plus inventory plugins' answers to crm_catalog_availability;
a plugin that raises, answers nonsense or breaks its SQL is logged and skipped, never breaking
the inquiry; the inquiry combines search, price and availability."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from crm_catalog import service
from sqlalchemy import text

from crmcore import hookimpl
from crmcore.errors import NotFound, ValidationFailed

from .conftest import new_party, new_product  # noqa: TID252


class Warehouse:
    """An inventory plugin: knows products whose SKU starts with W."""

    @staticmethod
    @hookimpl
    def crm_catalog_availability(product, quantity):
        if not product.sku.startswith("W"):
            return None
        return [{"source": "Main warehouse", "available": 7, "location": "Antwerp", "lead_time_days": 0},
                {"source": "Supplier", "available": 2.5, "lead_time_days": 14, "extra": "ignored"}]


class Broken:
    @staticmethod
    @hookimpl
    def crm_catalog_availability(product):
        raise RuntimeError("inventory service down")


class Nonsense:
    @staticmethod
    @hookimpl
    def crm_catalog_availability(product):
        return [{"source": "Negative", "available": -1}, "not a dict", {"available": 3},
                {"source": "Fine", "available": "4"}, {"source": "Bad lead", "available": 1, "lead_time_days": "x"}]


class BadSql:
    @staticmethod
    @hookimpl
    def crm_catalog_availability(ctx, product):
        ctx.session.execute(text("select * from no_such_inventory_table"))
        return [{"source": "never", "available": 1}]

    @staticmethod
    @hookimpl
    def crm_catalog_product_in_use(ctx, product):
        ctx.session.execute(text("select * from no_such_quotes_table"))
        return "never"


def test_stock_on_hand_alone(cat):
    tracked = new_product(cat, stock_on_hand="12.5")
    untracked = new_product(cat)
    result = service.availability(cat, tracked.id, Decimal(20))
    assert (result.stock_on_hand, result.available, result.enough) == (Decimal("12.5"), Decimal("12.5"), False)
    assert [(s.source, s.plugin) for s in result.sources] == [("Stock on hand", "catalog")]
    assert service.availability(cat, tracked.id, Decimal(12)).enough is True
    nothing = service.availability(cat, untracked.id)
    assert (nothing.sources, nothing.available, nothing.enough) == ([], None, None)
    assert nothing.to_dict()["available"] is None


def test_plugins_answers_are_added(cat, register_plugin):
    name = register_plugin(Warehouse, enable_for=cat)
    product = new_product(cat, sku="W-1", stock_on_hand="1")
    result = service.availability(cat, product.id, Decimal(10))
    assert [(s.source, s.available, s.location, s.lead_time_days, s.plugin) for s in result.sources] == [
        ("Stock on hand", Decimal(1), None, None, "catalog"),
        ("Main warehouse", Decimal(7), "Antwerp", 0, name),
        ("Supplier", Decimal("2.5"), None, 14, name),
    ]
    assert result.available == Decimal("10.5") and result.enough is True
    assert result.to_dict()["sources"][2] == {"source": "Supplier", "available": "2.5", "location": None,
                                              "lead_time_days": 14, "plugin": name}
    # a product the plugin does not know: its None is no answer
    other = new_product(cat, sku="X-1")
    assert service.availability(cat, other.id).sources == []


def test_a_plugin_disabled_in_the_business_is_not_asked(cat, other_cat, register_plugin):
    register_plugin(Warehouse, enable_for=other_cat)
    product = new_product(cat, sku="W-2")
    assert service.availability(cat, product.id).sources == []


def test_failing_and_malformed_plugins_are_logged_and_skipped(cat, register_plugin, caplog):
    register_plugin(Broken, enable_for=cat)
    register_plugin(Nonsense, enable_for=cat)
    register_plugin(Warehouse, enable_for=cat)
    product = new_product(cat, sku="W-3", stock_on_hand="2")
    with caplog.at_level(logging.WARNING):
        result = service.availability(cat, product.id, Decimal(1))
    assert sorted(s.source for s in result.sources) == ["Fine", "Main warehouse", "Stock on hand", "Supplier"]
    assert "inventory service down" in caplog.text
    assert "answer ignored" in caplog.text and "not a dict" in caplog.text


def test_a_plugin_whose_sql_fails_does_not_break_the_inquiry(cat, register_plugin):
    register_plugin(BadSql, enable_for=cat)
    party = new_party(cat)
    for n in range(3):
        new_product(cat, sku=f"PUMP-{n}", name=f"Pump {n}", stock_on_hand=str(n))
    matches = service.inquire(cat, "pump", party_id=party.id, quantity=Decimal(2))
    assert [(m.product.sku, m.availability.available, m.availability.enough) for m in matches] == [
        ("PUMP-0", Decimal(0), False), ("PUMP-1", Decimal(1), False), ("PUMP-2", Decimal(2), True)]
    assert all(m.price.source == "list price" for m in matches)
    # the delete goes on after asking the plugins (on PostgreSQL, a failed statement would
    # otherwise abort the whole transaction)
    product = new_product(cat, sku="GONE")
    assert service.delete_product(cat, product.id).deleted
    with pytest.raises(NotFound):
        service.get_product(cat, product.id)


def test_availability_arguments_are_checked(cat):
    product = new_product(cat)
    with pytest.raises(NotFound):
        service.availability(cat, 999_999)
    with pytest.raises(ValidationFailed) as exc:
        service.availability(cat, product.id, Decimal(0))
    assert "quantity" in exc.value.errors


def test_the_inquiry_prices_each_match_for_the_party(cat):
    party = new_party(cat)
    bolt = new_product(cat, sku="BOLT-8", name="Hex bolt", unit_price="0.20", stock_on_hand="500")
    new_product(cat, sku="NUT-8", name="Nut", unit_price="0.10")
    service.add_cross_reference(cat, {"party_id": party.id, "product_id": bolt.id, "customer_part_number": "THEIRS-1"})
    service.add_special_price(cat, {"party_id": party.id, "product_id": bolt.id, "unit_price": "0.15"})
    (match,) = service.inquire(cat, "theirs-1", party_id=party.id, quantity=Decimal(100))
    assert (match.product.id, match.price.unit_price, match.price.source) == (bolt.id, Decimal("0.15"), "special price")
    assert match.price.customer_part_number == "THEIRS-1" and match.availability.enough is True
    data = match.to_dict()
    assert data["price"]["unit_price"] == "0.1500" and data["availability"]["available"] == "500.0000"
    assert service.inquire(cat, "nothing-like-it", party_id=party.id) == []
    with pytest.raises(ValidationFailed) as exc:
        service.inquire(cat, "bolt", quantity="-2")
    assert "quantity" in exc.value.errors
