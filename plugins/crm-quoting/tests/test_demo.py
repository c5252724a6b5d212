"""Quoting's demo data (hook ``crm_seed_demo``): an accepted, a sent and a draft quote on open
deals, with the deal's machine from the catalog at the party's price, or typed at the deal's
amount when the catalog has no such product."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from crm_quoting import service
from crm_quoting.plugin import crm_seed_demo

from crmcore.fields.service import define_field
from crmcore.records import service as records

from .conftest import new_contact, new_deal, new_party  # noqa: TID252


@pytest.fixture
def deals(q):
    """Four open deals, oldest first: a prospect's for the machine the customer's deal is about
    too, a prospect's, a customer's (with a contact), another's; and a won deal, which is not
    quoted."""
    define_field(q, "record:deal", {"key": "machine_model", "label": "Machine model", "type": "text"})
    prospect = new_party(q, "Oakdale Farms", is_prospect=True)
    customer = new_party(q, "Stonebridge Construction", is_customer=True)
    other = new_party(q, "Riverford Rentals", is_prospect=True)
    contact = new_contact(q, customer, "Mia Novak", "mia@stonebridge.example")
    made = [new_deal(q, other, "Second excavator for Riverford", amount=D("139000"), currency="EUR",
                     custom={"machine_model": "Excavator EX-140"}),
            new_deal(q, prospect, "Tractor T-95 for Oakdale Farms", amount=D("96000"), currency="EUR",
                     custom={"machine_model": "Tractor T-95"}),
            new_deal(q, customer, "Excavator EX-140 for Stonebridge", amount=D("140000"), currency="EUR",
                     custom={"machine_model": "Excavator EX-140"}),
            new_deal(q, other, "Mower for Riverford", amount=D("18000"), currency="EUR")]
    won = new_deal(q, customer, "Old order", amount=D("1000"), currency="EUR")
    records.close_won(q, won.id)
    return made, contact, won


def _by_status(ctx) -> dict[str, service.QuoteView]:
    quotes = records.list_records(ctx, record_type="quote", limit=50).items
    return {view.status: view for view in (service.get_quote(ctx, r.id) for r in quotes)}


def test_seed_demo_with_the_catalog_quotes_catalog_lines_at_the_party_price(q, deals):
    from crm_catalog import service as catalog
    from crm_catalog.demo import seed as seed_catalog

    (same_machine, prospect_deal, customer_deal, other_deal), contact, won = deals
    seed_catalog(q)  # what crm demo runs first (quoting depends on the catalog)
    lines = crm_seed_demo(q)
    assert len(lines) == 1 and lines[0].startswith("3 quotes on open deals: ")
    assert service.count_by_status(q) == {"accepted": 1, "sent": 1, "draft": 1}

    views = _by_status(q)
    accepted, sent, draft = views["accepted"], views["sent"], views["draft"]
    assert (accepted.deal.id, sent.deal.id, draft.deal.id) == (customer_deal.id, prospect_deal.id, other_deal.id)
    assert accepted.record.reference in lines[0] and f"{sent.record.reference} sent" in lines[0]
    assert accepted.quote.contact_id == contact.id
    machine, delivery, training = accepted.lines
    ex140 = catalog.find_products(q, "EX-140")[0]
    assert machine.product_id == ex140.id and machine.price_source == "special price"
    assert machine.unit_price == D("133480") and "FLEET-EX140" in machine.description
    assert (delivery.sku, delivery.unit_price, training.sku, training.quantity) == \
        ("SVC-DELIVERY", D("850"), "SVC-TRAINING", D(8))
    assert accepted.quote.total_amount == accepted.totals.total > 0
    tractor, _delivery, trade_in = sent.lines
    assert tractor.sku == "T-95" and tractor.price_source == "list price"
    assert trade_in.unit_price == D("-7500") and trade_in.tax_rate == 0
    assert sent.totals.net == D("96500") + D("850") - D("7500")
    # a deal without a machine model: its title, at the deal's amount, typed
    assert draft.lines[0].description == "Mower for Riverford" and draft.lines[0].unit_price == D("18000")
    assert draft.lines[2].sku == "SVC-CONTRACT"
    assert not service.quotes_for_deal(q, won.id)
    assert not service.quotes_for_deal(q, same_machine.id)  # the excavator is quoted already


def test_seed_demo_without_catalog_products_types_the_lines(q, deals):
    (same_machine, prospect_deal, customer_deal, other_deal), contact, won = deals
    crm_seed_demo(q)
    views = _by_status(q)
    machine, delivery, training = views["accepted"].lines
    assert machine.product_id is None and machine.description == "Excavator EX-140"
    assert machine.unit_price == D("140000") and machine.price_source is None
    assert (delivery.description, delivery.unit_price, training.quantity) == ("Delivery and commissioning", D("850"), D(8))
    assert views["sent"].lines[0].unit_price == D("96000")


def test_seed_demo_without_open_deals_makes_nothing(q):
    assert crm_seed_demo(q) == []
    assert service.count_by_status(q) == {}
