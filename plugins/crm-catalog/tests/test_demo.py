"""The catalog's demo data (hook ``crm_seed_demo``): the machines the core's demo deals are about,
their attachments and services, a fleet price list with quantity breaks given to a customer, and
the featured customer's special price and part number, priced by the catalog's own rule."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from crm_catalog import service
from crm_catalog.demo import PRODUCTS
from crm_catalog.plugin import crm_seed_demo

from crmcore.parties.service import create_party
from crmcore.records.service import close_won, create_record


def _deal(ctx, name: str, machine: str, *, customer: bool) -> int:
    party = create_party(ctx, {"kind": "organisation", "name": name, "is_customer": customer,
                               "is_prospect": not customer})
    create_record(ctx, "deal", {"title": f"{machine} for {name}", "party_id": party.id, "amount": "50000",
                                "currency": "EUR", "custom": {"machine_model": machine}})
    return party.id


def _machine_field(ctx) -> None:
    from crmcore.fields.service import define_field

    define_field(ctx, "record:deal", {"key": "machine_model", "label": "Machine model", "type": "text"})


def test_the_catalog_sells_every_machine_of_the_core_demo():
    from crmcore.demo import _MACHINES

    by_name = {p.name: p for p in PRODUCTS}
    assert set(_MACHINES) <= set(by_name)
    assert all(by_name[m].sku == m.rsplit(" ", 1)[-1] for m in _MACHINES)  # quoting finds them by SKU
    assert len({p.sku for p in PRODUCTS}) == len(PRODUCTS) == 13


def test_seed_demo_creates_products_a_price_list_and_customer_prices(cat):
    _machine_field(cat)
    prospect = _deal(cat, "Oakdale Farms", "Tractor T-95", customer=False)          # oldest, not a customer
    featured = _deal(cat, "Stonebridge Construction", "Excavator EX-140", customer=True)
    won = create_party(cat, {"kind": "organisation", "name": "Won Only Ltd", "is_customer": True})
    close_won(cat, create_record(cat, "deal", {"title": "Closed", "party_id": won.id}).id)  # not open: left out
    fleet_customer = _deal(cat, "Riverford Rentals", "Skid steer SS-50", customer=True)

    lines = crm_seed_demo(cat)
    year = dt.date.today().year
    assert lines == ["13 products and services", f"price list 'Fleet customers {year}' (6 prices)",
                     "special price and part number for Stonebridge Construction (Excavator EX-140)",
                     f"Riverford Rentals buys from 'Fleet customers {year}'"]

    products = {p.sku: p for p in service.list_products(cat, limit=100).items}
    assert len(products) == 13 and products["SVC-TRAINING"].kind == "service" and products["SVC-TRAINING"].unit == "h"
    assert products["WL-220"].stock_on_hand == 0 and products["EX-140"].unit_price == Decimal("142000")

    special = service.price_for(cat, products["EX-140"].id, party_id=featured)
    assert (special.kind, special.unit_price) == ("special_price", Decimal("133480"))
    assert special.customer_part_number == "FLEET-EX140" and special.valid_to == dt.date(year, 12, 31)
    assert service.price_for(cat, products["EX-140"].id, party_id=prospect).kind == "list_price"

    one = service.price_for(cat, products["CL-35"].id, party_id=fleet_customer)
    three = service.price_for(cat, products["CL-35"].id, party_id=fleet_customer, quantity=Decimal(3))
    assert (one.kind, one.unit_price, three.unit_price) == ("price_list", Decimal("37200"), Decimal("36100"))
    assert service.price_for(cat, products["CL-35"].id, party_id=featured).kind == "list_price"


def test_seed_demo_without_deals_makes_only_the_catalog(cat):
    lines = crm_seed_demo(cat)
    assert len(lines) == 2 and lines[0] == "13 products and services"
    assert len(service.list_products(cat, limit=100).items) == 13
    (fleet,) = service.list_price_lists(cat).items
    assert fleet.active and len(service.list_price_list_items(cat, fleet.id).items) == 6
