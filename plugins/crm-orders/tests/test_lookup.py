"""The order lookup: every filter alone and together, keyset pages newest first without gaps or
repeats, a capped count, bad filters named, and the same number of queries whatever a page
holds (no N+1)."""

from __future__ import annotations

import datetime as dt

import pytest
from crm_orders import service

from crmcore.errors import ValidationFailed
from crmcore.records import service as records

from .conftest import line, new_party, new_product, statements  # noqa: TID252


def ids(page):
    return [s.record_id for s in page.items]


@pytest.fixture
def book(o):
    """A small book of orders: two parties, both kinds, several days, products and texts."""
    day = service.today(o)
    farm, shop = new_party(o, "Meadow Farms"), new_party(o, "Town Shop")
    tractor = new_product(o, sku="TR-100", name="Tractor T100")
    made = {
        "old": service.create_order(o, {"party_id": farm.id, "order_date": (day - dt.timedelta(days=40)).isoformat(),
                                        "lines": [{"product_id": tractor.id}]}),
        "filters": service.create_order(o, {"party_id": shop.id, "order_date": (day - dt.timedelta(days=5)).isoformat(),
                                            "lines": [line(description="Oil filters, box of 12", sku="OF-12")]}),
        "loan": service.create_order(o, {"kind": "loaner", "party_id": farm.id, "unit_description": "Demo mower",
                                         "unit_serial": "MW-778", "order_date": (day - dt.timedelta(days=2)).isoformat()}),
        "today": service.create_order(o, {"party_id": farm.id, "lines": [line(description="Hydraulic hose")]}),
        "cancelled": service.create_order(o, {"party_id": shop.id, "lines": [line()]}),
    }
    service.fulfil_order(o, made["old"].id)
    service.cancel_order(o, made["cancelled"].id, "Duplicate")
    service.hand_over(o, made["loan"].id, {"lent_on": (day - dt.timedelta(days=2)).isoformat(),
                                           "due_back": (day - dt.timedelta(days=1)).isoformat()})
    return {"farm": farm, "shop": shop, "tractor": tractor, **made}


def test_every_filter(o, book):
    day = service.today(o)
    look = lambda **f: ids(service.lookup_orders(o, f))  # noqa: E731
    newest_first = [book["cancelled"].id, book["today"].id, book["loan"].id, book["filters"].id, book["old"].id]
    assert look() == newest_first
    assert look(party_id=book["farm"].id) == [book["today"].id, book["loan"].id, book["old"].id]
    assert look(status="fulfilled") == [book["old"].id]
    assert look(status="overdue") == [book["loan"].id]
    assert look(status="cancelled") == [book["cancelled"].id]
    assert look(kind="loaner") == [book["loan"].id]
    assert look(kind="sales", status="open") == [book["today"].id, book["filters"].id]
    assert look(date_from=(day - dt.timedelta(days=5)).isoformat(), date_to=(day - dt.timedelta(days=2)).isoformat()) \
        == [book["loan"].id, book["filters"].id]
    assert look(item="of-1") == [book["filters"].id]           # SKU start, any case
    assert look(item="FILTERS") == [book["filters"].id]        # words of a description
    assert look(item="mw-7") == [book["loan"].id]              # a loaned unit's serial
    assert look(item="tr-100") == [book["old"].id]             # the catalog SKU kept on the line
    assert look(item="100%") == []                             # LIKE wildcards are plain text
    assert look(product_id=book["tractor"].id) == [book["old"].id]
    assert look(party_id=book["farm"].id, item="hose", status="open") == [book["today"].id]
    records.archive_record(o, book["today"].id)
    assert book["today"].id not in look()


@pytest.mark.parametrize(("filters", "field"), [
    ({"status": "lost"}, "status"), ({"kind": "rental"}, "kind"), ({"date_from": "yesterday"}, "date_from"),
    ({"party_id": "abc"}, "party_id"), ({"date_from": "2026-03-02", "date_to": "2026-03-01"}, "date_to"),
    ({"colour": "red"}, "colour"), ({"item": "x" * 101}, "item"),
])
def test_bad_filters_are_named(o, filters, field):
    with pytest.raises(ValidationFailed) as exc:
        service.lookup_orders(o, filters)
    assert field in exc.value.errors


def test_pages_walk_every_order_once_newest_first(o):
    party = new_party(o)
    day = service.today(o)
    made = [service.create_order(o, {"party_id": party.id, "order_date": (day - dt.timedelta(days=i % 4)).isoformat()})
            for i in range(11)]
    seen, cursor = [], None
    while True:
        page = service.lookup_orders(o, {"party_id": party.id}, cursor=cursor, limit=4)
        assert str(page.total) == "11"
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(s.record_id for s in seen) == sorted(r.id for r in made) and len(seen) == 11
    keys = [(s.order_date, s.record_id) for s in seen]
    assert keys == sorted(keys, reverse=True)
    with pytest.raises(ValidationFailed) as exc:
        service.lookup_orders(o, cursor="not-a-cursor")
    assert "cursor" in exc.value.errors


def test_the_query_count_does_not_grow_with_the_page(o):
    counts = []
    for size in (2, 12):
        while len(service.lookup_orders(o, {}, limit=200).items) < size:
            service.create_order(o, {"party_id": new_party(o).id, "lines": [line()]})
        o.session.rollback()
        with statements(o) as seen:
            page = service.lookup_orders(o, {"item": "service", "status": "open"}, limit=200)
        assert len(page.items) == size and len(page.extra["party_names"]) == size
        counts.append(len([s for s in seen if not s.lstrip().upper().startswith(("BEGIN", "SAVEPOINT", "RELEASE"))]))
    assert counts[0] == counts[1] <= 6, counts


def test_the_lookup_page_costs_the_same_for_2_and_12_orders(o, client):
    counts = []
    for size in (2, 12):
        while len(service.lookup_orders(o, {}, limit=200).items) < size:
            loan = service.create_order(o, {"kind": "loaner", "party_id": new_party(o).id, "unit_description": "Unit",
                                            "lines": [line()]})
            service.hand_over(o, loan.id)
        o.session.rollback()
        client.get("/orders/")  # warm the caches (menu, business configuration)
        with statements(o) as seen:
            response = client.get("/orders/?kind=loaner&status=out")
        assert response.status_code == 200 and response.get_data(as_text=True).count('class="unit"') == size
        counts.append(len(seen))
    assert counts[0] == counts[1], counts


def test_the_record_statuses_hook_answers_with_one_query(o, other_o):
    from crm_orders.plugin import crm_record_statuses

    made = [service.create_order(o, {"party_id": new_party(o).id, "lines": [line()]}) for _ in range(12)]
    service.fulfil_order(o, made[0].id)
    theirs = service.create_order(other_o, {"party_id": new_party(other_o).id})
    o.session.rollback()
    with statements(o) as seen:
        answer = crm_record_statuses(ctx=o, record_type="sales_order", records=[*made, theirs])
    assert answer == {r.id: ("fulfilled" if r.id == made[0].id else "open") for r in made}
    assert len([s for s in seen if "orders_orders" in s]) == 1
    assert crm_record_statuses(ctx=o, record_type="deal", records=made) is None
    assert crm_record_statuses(ctx=o, record_type="sales_order", records=[]) == {}
