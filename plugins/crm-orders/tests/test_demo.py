"""Orders' demo data (hook ``crm_seed_demo``): the order of each accepted quote, the first
fulfilled and invoiced where invoicing is on, and a loaner out past its due-back day."""

from __future__ import annotations

from crm_orders import service
from crm_orders.plugin import crm_seed_demo

from crmcore.records import service as records

from .conftest import accepted_quote, line, new_party  # noqa: TID252


def test_seed_demo_orders_the_accepted_quotes_and_lends_a_loader(inv):
    customer = new_party(inv, "Stonebridge Construction", is_customer=True)
    first = accepted_quote(inv, customer, [line(quantity="2")])
    second = accepted_quote(inv, customer)
    # the react hook already made the orders in tests: the demo finds them and makes no other
    before = {service.order_for_quote(inv, q.id).id for q in (first, second)}

    lines = crm_seed_demo(inv)
    assert len(lines) == 1 and lines[0].startswith("3 orders: ")
    orders = {q.id: service.order_for_quote(inv, q.id) for q in (first, second)}
    assert {o.id for o in orders.values()} == before
    fulfilled = service.get_order(inv, orders[first.id].id)
    assert fulfilled.status == "invoiced" and fulfilled.locked
    assert fulfilled.invoice is not None
    assert service.get_order(inv, orders[second.id].id).status == "open"

    loaners = service.lookup_orders(inv, {"kind": "loaner", "status": "overdue"}).items
    assert len(loaners) == 1
    loaner = service.get_order(inv, loaners[0].record_id)
    assert loaner.order.unit_serial == "CL35-L-0042" and (loaner.order.status, loaner.status) == ("out", "overdue")
    assert loaner.order.lent_on < loaner.order.due_back < service.today(inv)
    assert records.get_record(inv, loaner.record.id).party_id == customer.id


def test_seed_demo_without_invoicing_or_quotes(o):
    assert crm_seed_demo(o) == []  # no customer, no accepted quote: nothing to show
    customer = new_party(o, "Oakdale Farms", is_customer=True)
    quote = accepted_quote(o, customer)
    lines = crm_seed_demo(o)
    assert lines and "fulfilled" in lines[0] and "invoiced" not in lines[0]
    assert service.get_order(o, service.order_for_quote(o, quote.id).id).status == "fulfilled"
