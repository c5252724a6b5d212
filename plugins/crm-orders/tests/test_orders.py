"""Orders entered directly: for a party or a deal, catalog lines at the party's price (quoting's
rule, the same amounts as a quote), free lines, loaners; the header and lines editable while
open and refused once locked; bad input named by field with nothing written; another business's
party, deal and order are not found."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from crm_catalog import service as catalog
from crm_orders import service
from crm_orders.models import Order, OrderLine
from crm_quoting import service as quoting
from sqlalchemy import func, select

from crmcore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crmcore.records import service as records

from .conftest import line, new_contact, new_deal, new_party, new_product  # noqa: TID252


def count(ctx, model):
    return ctx.session.scalar(select(func.count()).select_from(model))


def test_a_sales_order_with_a_catalog_line_at_the_party_price_and_a_free_line(o):
    party = new_party(o, "Meadow Farms", currency="EUR",
                      addresses=[{"purpose": "billing", "line1": "Farm road 1", "city": "Ghent", "country": "BE",
                                  "is_default": True}])
    contact = new_contact(o, party)
    tractor = new_product(o, sku="TR-100", name="Tractor T100", unit_price=D("50000"), tax_rate=D(21), unit="pc")
    catalog.add_special_price(o, {"party_id": party.id, "product_id": tractor.id, "unit_price": "45000"})
    record = service.create_order(o, {"party_id": party.id, "contact_id": contact.id, "customer_reference": "PO-77",
                                      "lines": [{"product_id": tractor.id, "quantity": "2"},
                                                line(description="Delivery", unit_price="350")]})
    view = service.get_order(o, record.id)
    assert record.type == "sales_order" and record.reference.startswith("SO")
    assert (view.order.kind, view.status, view.order.currency) == ("sales", "open", "EUR")
    assert view.order.customer_reference == "PO-77" and view.order.contact_id == contact.id
    assert view.order.billing_address["city"] == "Ghent" and view.order.shipping_address is None
    first, second = view.lines
    assert (first.sku, first.description, first.unit_price, first.price_source) == \
        ("TR-100", "Tractor T100", D("45000"), "special price")
    assert (second.product_id, second.net_amount, second.tax_amount) == (None, D("350.00"), D("73.50"))
    assert (view.totals.net, view.totals.tax, view.totals.total) == (D("90350.00"), D("18973.50"), D("109323.50"))
    assert (view.order.net_amount, view.order.total_amount) == (D("90350.00"), D("109323.50"))
    assert records.get_record(o, record.id).amount == D("90350.00")  # lists show the net total
    assert not view.locked and {"edit", "fulfil", "cancel"} <= view.actions


def test_the_same_lines_cost_the_same_on_a_quote_and_an_order(o):
    party = new_party(o)
    awkward = [line(quantity="3", unit_price="0.3333", discount_percent="12.5", tax_rate="9"),
               line(quantity="1.5", unit_price="19.99", tax_rate="21"), line(unit_price="-5.555", tax_rate="0")]
    quote = quoting.get_quote(o, quoting.create_quote(o, {"party_id": party.id, "lines": awkward}).id)
    order = service.get_order(o, service.create_order(o, {"party_id": party.id, "lines": awkward}).id)
    assert [ln.net_amount for ln in order.lines] == [ln.net_amount for ln in quote.lines]
    assert [ln.tax_amount for ln in order.lines] == [ln.tax_amount for ln in quote.lines]
    assert order.totals == quote.totals


def test_an_order_of_a_deal_takes_its_party_and_contact_and_is_linked(o):
    party = new_party(o)
    contact = new_contact(o, party)
    deal = new_deal(o, party, contact_id=contact.id)
    record = service.create_order(o, {"deal_id": deal.id})
    view = service.get_order(o, record.id)
    assert (record.party_id, view.order.contact_id, view.order.deal_id) == (party.id, contact.id, deal.id)
    assert record.title == "Order: New tractor"
    links = records.record_details(o, record.id)["links_in"]
    assert [(link["kind"], link["record"].id) for link in links] == [("order", deal.id)]
    assert [s.record_id for s in service.orders_for_deal(o, deal.id)] == [record.id]
    assert [s.record_id for s in service.orders_for_party(o, party.id)] == [record.id]


def test_a_loaner_order_with_its_unit_and_a_default_due_back_day(o):
    party = new_party(o)
    unit = new_product(o, sku="DEMO-1", name="Demo tractor")
    record = service.create_order(o, {"kind": "loaner", "party_id": party.id, "unit_description": "Demo tractor T100",
                                      "unit_serial": "T100-0042", "unit_product_id": unit.id})
    view = service.get_order(o, record.id)
    assert record.type == "loaner_order" and record.reference.startswith("LO")
    assert record.title == f"Loan for {party.name}"
    assert (view.order.kind, view.order.unit_serial, view.order.unit_product_id) == ("loaner", "T100-0042", unit.id)
    assert view.order.due_back == view.order.order_date + dt.timedelta(days=14)  # the loan_days setting
    assert view.lines == [] and "hand_over" in view.actions and "fulfil" not in view.actions


@pytest.mark.parametrize(("data", "field", "words"), [
    ({}, "party_id", "an order is for a party"),
    ({"party_id": "x"}, "party_id", "must be an id"),
    ({"party_id": 10**9}, "party_id", "not found"),
    ({"kind": "rental"}, "kind", "sales or loaner"),
    ({"currency": "EURO"}, "currency", "currency code"),
    ({"order_date": "2026-02-30"}, "order_date", "date"),
    ({"billing_address": {"city": "Ghent"}}, "billing_address.line1", "required"),
    ({"unit_description": "A unit"}, "unit_description", "only a loaner order"),
    ({"kind": "loaner", "order_date": "2026-03-10", "due_back": "2026-03-01"}, "due_back", "on or after"),
    ({"lines": [line(), line(quantity="0")]}, "lines.1.quantity", "more than 0"),
    ({"lines": [line(), line(description=None)]}, "lines.1.description", "needs a description"),
    ({"lines": [line(tax_rate="17")]}, "lines.0.tax_rate", "not a tax rate of this business"),
    ({"lines": [{"product_id": 10**9}]}, "lines.0.product_id", "no product"),
    ({"lines": [line(colour="red")]}, "lines.0.colour", "Unknown field"),
    ({"lines": "two tractors"}, "lines", "list"),
    ({"notes": "x" * 5001}, "notes", "at most 5000"),
    ({"surprise": 1}, "surprise", "Unknown field"),
])
def test_bad_input_names_the_field_and_writes_nothing(o, data, field, words):
    party = new_party(o)
    before = (count(o, Order), count(o, OrderLine))
    with pytest.raises(ValidationFailed) as exc:
        service.create_order(o, {"party_id": party.id, **data} if "party_id" not in data and data else data)
    assert field in exc.value.errors, exc.value.errors
    assert words in " ".join(exc.value.errors[field])
    assert (count(o, Order), count(o, OrderLine)) == before


def test_every_bad_line_is_named_at_once(o):
    party = new_party(o)
    with pytest.raises(ValidationFailed) as exc:
        service.create_order(o, {"party_id": party.id, "lines": [
            line(quantity="-1"), line(), line(unit_price="abc"), line(discount_percent="120")]})
    assert {"lines.0.quantity", "lines.2.unit_price", "lines.3.discount_percent"} <= set(exc.value.errors)
    assert "lines.1.quantity" not in exc.value.errors


def test_another_business_party_deal_contact_and_order_are_not_found(o, other_o):
    mine, theirs = new_party(o), new_party(other_o)
    their_deal = new_deal(other_o, theirs)
    their_contact = new_contact(other_o, theirs)
    their_order = service.create_order(other_o, {"party_id": theirs.id, "lines": [line()]})
    for data, field in (({"party_id": theirs.id}, "party_id"), ({"deal_id": their_deal.id}, "deal_id"),
                        ({"party_id": mine.id, "contact_id": their_contact.id}, "contact_id")):
        with pytest.raises(ValidationFailed) as exc:
            service.create_order(o, data)
        assert field in exc.value.errors
    for call in (lambda: service.get_order(o, their_order.id), lambda: service.fulfil_order(o, their_order.id),
                 lambda: service.set_lines(o, their_order.id, [line()]),
                 lambda: service.update_order(o, their_order.id, {"notes": "mine now"}),
                 lambda: service.cancel_order(o, their_order.id, "no")):
        with pytest.raises(NotFound):
            call()
    assert service.lookup_orders(o).items == []
    assert service.get_order(other_o, their_order.id).order.notes is None


def test_an_open_order_is_edited_header_and_lines(o):
    party = new_party(o)
    contact = new_contact(o, party)
    record = service.create_order(o, {"party_id": party.id, "lines": [line(), line(description="Parts")]})
    first, second = service.get_order(o, record.id).lines
    service.update_order(o, record.id, {"contact_id": contact.id, "promised_date": "2026-05-01",
                                        "notes": "Gate code 1234", "title": "Spring service"})
    totals = service.set_lines(o, record.id, [{"id": second.id, "description": "Parts", "quantity": "3",
                                                "unit_price": "100.00", "tax_rate": "21"}, line(unit_price="10")])
    view = service.get_order(o, record.id)
    assert (view.order.contact_id, view.order.promised_date, view.order.notes) == \
        (contact.id, dt.date(2026, 5, 1), "Gate code 1234")
    assert view.record.title == "Spring service"
    assert [ln.id for ln in view.lines][0] == second.id and first.id not in [ln.id for ln in view.lines]
    assert totals.net == D("310.00") and view.order.net_amount == D("310.00")


def test_the_editor_save_is_all_or_nothing(o):
    party = new_party(o)
    record = service.create_order(o, {"party_id": party.id, "lines": [line()]})
    with pytest.raises(ValidationFailed) as exc:
        service.save_order(o, record.id, {"notes": "changed", "contact_id": 10**9},
                           [line(description="New"), line(quantity="0")])
    assert {"contact_id", "lines.1.quantity"} <= set(exc.value.errors)
    view = service.get_order(o, record.id)
    assert view.order.notes is None and [ln.description for ln in view.lines] == ["Service hour"]
    service.save_order(o, record.id, {"notes": "changed"}, [line(description="New")])
    assert [ln.description for ln in service.get_order(o, record.id).lines] == ["New"]


@pytest.mark.parametrize("step", ["fulfil", "cancel"])
def test_a_locked_order_refuses_every_edit(o, step):
    party = new_party(o)
    record = service.create_order(o, {"party_id": party.id, "lines": [line()]})
    if step == "fulfil":
        service.fulfil_order(o, record.id)
    else:
        service.cancel_order(o, record.id, "Customer changed their mind")
    before = service.get_order(o, record.id)
    edits = (lambda: service.update_order(o, record.id, {"notes": "late change"}),
             lambda: service.set_lines(o, record.id, [line(unit_price="1")]),
             lambda: service.save_order(o, record.id, {}, [line()]))
    for edit in edits:
        with pytest.raises(Conflict) as exc:
            edit()
        assert "locked" in exc.value.message and "only an open order" in exc.value.message
    after = service.get_order(o, record.id)
    assert after.order.notes is None and [ln.unit_price for ln in after.lines] == [ln.unit_price for ln in before.lines]
    assert after.locked and "edit" not in after.actions


def test_read_only_users_read_but_do_not_write(o, make_user):
    party = new_party(o)
    record = service.create_order(o, {"party_id": party.id, "lines": [line()]})
    reader = make_user(o.business, "read_only")
    assert service.get_order(reader, record.id).record.id == record.id
    with pytest.raises(PermissionDenied):
        service.create_order(reader, {"party_id": party.id})
    with pytest.raises(PermissionDenied):
        service.fulfil_order(reader, record.id)


def test_an_order_made_by_the_core_form_gets_its_details_when_first_changed(o):
    party = new_party(o)
    record = records.create_record(o, "sales_order", {"title": "Typed in the core's form", "party_id": party.id})
    view = service.get_order(o, record.id)
    assert view.order.id is None and view.status == "open"
    service.set_lines(o, record.id, [line()])
    view = service.get_order(o, record.id)
    assert view.order.id is not None and view.order.kind == "sales" and view.totals.net == D("100.00")
