"""Quotes through the service: creating them for a deal or a party, their lines priced from the
catalog for the party, totals by the shared rounding rule, bad input refused field by field
with nothing written, and another business's rows looking missing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from crm_catalog import service as catalog
from crm_quoting import service
from crm_quoting.lines import MANUAL_PRICE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from crmcore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crmcore.money import document_totals, line_amounts
from crmcore.parties.contacts import add_address
from crmcore.records import service as records
from crmcore.timeline.service import feed

from .conftest import line, new_contact, new_deal, new_party, new_product  # noqa: TID252


def count(ctx, sql):
    with ctx.crm.db.engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def rows(ctx):
    return (count(ctx, "select count(*) from records where type = 'quote'"),
            count(ctx, "select count(*) from quoting_quotes"), count(ctx, "select count(*) from quoting_quote_lines"))


# -- creating -------------------------------------------------------------------------------------


def test_a_quote_for_a_deal_takes_its_party_contact_addresses_and_currency(q):
    party = new_party(q, "Meadow Farms", currency="EUR")
    add_address(q, party.id, {"purpose": "billing", "line1": "1 Farm Road", "city": "Ghent", "country": "BE"})
    add_address(q, party.id, {"purpose": "shipping", "line1": "Barn 3", "city": "Aalst", "country": "BE"})
    contact = new_contact(q, party)
    deal = new_deal(q, party, contact_id=contact.id)
    record = service.create_quote_for_deal(q, deal.id)
    view = service.get_quote(q, record.id)
    assert record.type == "quote" and record.party_id == party.id and record.contact_id == contact.id
    assert record.reference.startswith("QT") and record.title == "Quote: New tractor"
    assert view.status == "draft" and view.quote.version == 1 and view.quote.currency == "EUR"
    assert view.quote.deal_id == deal.id and view.deal.id == deal.id
    assert view.quote.billing_address == {"line1": "1 Farm Road", "city": "Ghent", "country": "BE"}
    assert view.quote.shipping_address == {"line1": "Barn 3", "city": "Aalst", "country": "BE"}
    assert view.quote.quote_date == service.today(q)
    assert view.quote.valid_until == service.today(q) + dt.timedelta(days=30)
    assert view.lines == [] and view.totals.total == D("0.00")
    # linked from the deal by a core record link; a deal may have several quotes
    links = records.record_details(q, deal.id)["links_out"]
    assert [link["record"].id for link in links] == [record.id]
    second = service.create_quote_for_deal(q, deal.id)
    assert [s.record_id for s in service.quotes_for_deal(q, deal.id)] == [second.id, record.id]
    assert second.reference != record.reference


def test_a_standalone_quote_for_a_party_in_its_currency(q):
    party = new_party(q, "Tokyo Tractors", currency="JPY")
    record = service.create_quote(q, {"party_id": party.id, "lines": [line(unit_price="1234.5", quantity="1")]})
    view = service.get_quote(q, record.id)
    assert view.quote.deal_id is None and view.quote.currency == "JPY" and record.title == "Quote for Tokyo Tractors"
    assert view.lines[0].net_amount == D("1235") and view.totals.net == D("1235")  # yen: no minor unit
    assert [s.record_id for s in service.quotes_for_party(q, party.id)] == [record.id]
    service.accept_quote(q, record.id)
    assert "Quote accepted (JPY 1,494)" in [e.summary for e in feed(q, record_id=record.id).items]


def test_totals_are_the_sums_of_lines_rounded_one_by_one(q):
    party = new_party(q)
    record = service.create_quote(q, {"party_id": party.id, "lines": [
        line(description="Bolts", quantity="3", unit_price="0.3333", tax_rate="21"),       # 0.9999 -> 1.00, tax 0.21
        line(description="Washer", quantity="1", unit_price="0.005", tax_rate="21"),       # 0.01 (half up), tax 0.00
        line(description="Labour", quantity="2.5", unit_price="80", discount_percent="12.5", tax_rate="9"),  # 175.00
        line(description="Trade-in", quantity="1", unit_price="-50.555", tax_rate="0"),    # -50.56 (away from 0)
    ]})
    view = service.get_quote(q, record.id)
    nets = [ln.net_amount for ln in view.lines]
    taxes = [ln.tax_amount for ln in view.lines]
    assert nets == [D("1.00"), D("0.01"), D("175.00"), D("-50.56")]
    assert taxes == [D("0.21"), D("0.00"), D("15.75"), D("0.00")]
    assert (view.quote.net_amount, view.quote.tax_amount, view.quote.total_amount) == \
        (D("125.45"), D("15.96"), D("141.41"))
    assert view.totals.by_rate == {D(0): (D("-50.56"), D("0.00")), D(9): (D("175.00"), D("15.75")),
                                   D(21): (D("1.01"), D("0.21"))}
    # the record's amount (what lists show) is the net total, given when it was created
    assert records.get_record(q, record.id).amount == D("125.45")
    (event,) = feed(q, record_id=record.id).items  # no "updated: amount" after the create
    assert event.kind == "record_created" and event.summary.endswith(f"created: Quote for {party.name}")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(
    st.decimals(min_value=D("0.0001"), max_value=D("9999"), places=4),
    st.decimals(min_value=D("-99999"), max_value=D("99999"), places=4),
    st.decimals(min_value=D(0), max_value=D(100), places=2),
    st.sampled_from(["0", "9", "21"])), min_size=1, max_size=8))
def test_stored_amounts_follow_the_money_rule_for_any_lines(q, raw):
    party = new_party(q)
    given_lines = [line(quantity=str(qty), unit_price=str(price), discount_percent=str(disc), tax_rate=rate)
                   for qty, price, disc, rate in raw]
    record = service.create_quote(q, {"party_id": party.id, "lines": given_lines})
    view = service.get_quote(q, record.id)
    expected = [line_amounts(qty, price, "EUR", discount_percent=disc, tax_rate=D(rate)) for qty, price, disc, rate in raw]
    assert [(ln.net_amount, ln.tax_amount, ln.total_amount) for ln in view.lines] == \
        [(a.net, a.tax, a.total) for a in expected]
    totals = document_totals(expected, "EUR")
    assert (view.quote.net_amount, view.quote.tax_amount, view.quote.total_amount) == (totals.net, totals.tax, totals.total)
    assert [ln.quantity for ln in view.lines] == [qty for qty, *_ in raw]


# -- catalog lines --------------------------------------------------------------------------------


def test_catalog_lines_take_the_partys_special_price_automatically(q):
    tractor = new_product(q, sku="TR-100", name="Tractor T100", unit_price=D("50000"), tax_rate=D(21), unit="pc")
    vip, walk_in = new_party(q, "VIP Farms"), new_party(q, "Walk In")
    catalog.add_special_price(q, {"party_id": vip.id, "product_id": tractor.id, "unit_price": "45000"})
    quote = service.create_quote(q, {"party_id": vip.id, "lines": [{"product_id": tractor.id, "quantity": "2"}]})
    (ln,) = service.get_quote(q, quote.id).lines
    assert (ln.unit_price, ln.price_source, ln.sku, ln.description, ln.unit, ln.tax_rate) == \
        (D("45000"), "special price", "TR-100", "Tractor T100", "pc", D(21))
    assert (ln.net_amount, ln.tax_amount) == (D("90000.00"), D("18900.00"))
    other = service.create_quote(q, {"party_id": walk_in.id, "lines": [{"product_id": tractor.id}]})
    (ln,) = service.get_quote(q, other.id).lines
    assert (ln.unit_price, ln.price_source) == (D("50000"), "list price")


def test_a_typed_price_is_a_manual_price_and_a_quantity_change_prices_again(q):
    bolt = new_product(q, sku="B-1", name="Bolt", unit_price=D("2.00"))
    party = new_party(q)
    bulk = catalog.create_price_list(q, {"name": "Bulk"})
    catalog.set_price_list_item(q, bulk.id, {"product_id": bolt.id, "unit_price": "1.50", "min_quantity": "100"})
    catalog.add_special_price(q, {"party_id": party.id, "price_list_id": bulk.id})
    record = service.create_quote(q, {"party_id": party.id, "lines": [{"product_id": bolt.id, "quantity": "10"}]})
    (ln,) = service.get_quote(q, record.id).lines
    assert (ln.unit_price, ln.price_source) == (D("2.00"), "list price")
    # the quantity changes, the price is left as it was: priced again (the quantity break)
    service.update_line(q, ln.id, {"quantity": "100", "unit_price": str(ln.unit_price)})
    (ln,) = service.get_quote(q, record.id).lines
    assert (ln.unit_price, ln.price_source, ln.net_amount) == (D("1.50"), "price list Bulk", D("150.00"))
    # a typed price wins and says so; it stays manual when other fields change
    service.update_line(q, ln.id, {"unit_price": "1.25"})
    service.update_line(q, ln.id, {"discount_percent": "10"})
    (ln,) = service.get_quote(q, record.id).lines
    assert (ln.unit_price, ln.price_source, ln.net_amount) == (D("1.25"), MANUAL_PRICE, D("112.50"))
    # clearing the price takes the catalog's again
    service.update_line(q, ln.id, {"unit_price": None})
    (ln,) = service.get_quote(q, record.id).lines
    assert (ln.unit_price, ln.price_source) == (D("1.50"), "price list Bulk")
    # a price equal to the catalog's on a new line is the catalog's
    service.add_line(q, record.id, {"product_id": bolt.id, "quantity": "1", "unit_price": "2"})
    assert service.get_quote(q, record.id).lines[1].price_source == "list price"


def test_lines_are_added_edited_moved_and_removed_while_draft(q):
    party = new_party(q)
    record = service.create_quote(q, {"party_id": party.id, "lines": [line(description="A"), line(description="B")]})
    c = service.add_line(q, record.id, line(description="C", unit_price="5"), position=1)
    assert [ln.description for ln in service.get_quote(q, record.id).lines] == ["C", "A", "B"]
    service.move_line(q, c.id, 3)
    lines = service.get_quote(q, record.id).lines
    assert [(ln.description, ln.position) for ln in lines] == [("A", 1), ("B", 2), ("C", 3)]
    service.remove_line(q, lines[0].id)
    service.set_lines(q, record.id, [{"id": lines[2].id, "description": "C", "unit_price": "5"},
                                     line(description="D", unit_price="1")])
    view = service.get_quote(q, record.id)
    assert [ln.description for ln in view.lines] == ["C", "D"] and view.lines[0].id == lines[2].id
    assert view.quote.net_amount == D("6.00")
    for bad in (0, "2", True):
        with pytest.raises(ValidationFailed) as exc:
            service.move_line(q, c.id, bad)
        assert "position" in exc.value.errors
        with pytest.raises(ValidationFailed) as exc:
            service.add_line(q, record.id, line(), position=bad)
        assert "position" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        service.add_line(q, record.id, line(quantity="-2"))
    assert exc.value.errors == {"quantity": [
        "must be more than 0 (a credit, such as a trade-in, is a negative unit price)"]}
    for missing in (10**6, 2**70, "x"):
        with pytest.raises(NotFound):
            service.remove_line(q, missing)


def test_only_a_draft_changes(q):
    party = new_party(q)
    record = service.create_quote(q, {"party_id": party.id, "lines": [line()]})
    service.mark_sent(q, record.id)
    (ln,) = service.get_quote(q, record.id).lines
    for call in (lambda: service.set_lines(q, record.id, [line()]), lambda: service.add_line(q, record.id, line()),
                 lambda: service.update_line(q, ln.id, {"quantity": "2"}), lambda: service.remove_line(q, ln.id),
                 lambda: service.update_quote(q, record.id, {"intro": "Hi"})):
        with pytest.raises(Conflict, match="only a draft can be changed"):
            call()


# -- bad input ------------------------------------------------------------------------------------


def test_bad_lines_are_refused_beside_each_field_and_nothing_is_written(q, other_q):
    party = new_party(q)
    theirs = new_product(other_q, sku="THEIRS")
    dollars = new_product(q, sku="USD-1", currency="USD")
    before = rows(q)
    with pytest.raises(ValidationFailed) as exc:
        service.create_quote(q, {"party_id": party.id, "lines": [
            line(quantity="-1"),                         # a credit is a negative price, not quantity
            line(tax_rate="17"),                         # not a rate of the business
            line(discount_percent="101"),
            {"product_id": theirs.id},                   # another business's product
            {"product_id": dollars.id},                  # priced in another currency
            {"quantity": "1"},                           # free line: no description, no price
            line(unit_price="1.23456"),                  # more than 4 decimals
            line(quantity="0"),
            line(unit_price=1.5),                        # a float is not exact
        ]})
    errors = exc.value.errors
    assert "negative unit price" in errors["lines.0.quantity"][0]
    assert "17 is not a tax rate of this business; use one of 0, 9, 21" in errors["lines.1.tax_rate"][0]
    assert "0 to 100" in errors["lines.2.discount_percent"][0]
    assert f"no product {theirs.id}" in errors["lines.3.product_id"][0]
    assert "priced in USD" in errors["lines.4.product_id"][0]
    assert {"lines.5.description", "lines.5.unit_price"} <= set(errors)
    assert "decimals" in errors["lines.6.unit_price"][0]
    assert "lines.7.quantity" in errors and "lines.8.unit_price" in errors
    assert rows(q) == before


def test_another_business_party_deal_or_contact_is_a_field_error(q, other_q):
    mine = new_party(q)
    theirs = new_party(other_q)
    their_deal = new_deal(other_q, theirs)
    their_contact = new_contact(other_q, theirs)
    before = rows(q)
    for data, field in (({"party_id": theirs.id}, "party_id"), ({"deal_id": their_deal.id}, "deal_id"),
                        ({"party_id": mine.id, "contact_id": their_contact.id}, "contact_id"),
                        ({}, "party_id"), ({"party_id": "x"}, "party_id"),
                        ({"party_id": mine.id, "valid_until": "2020-01-01", "quote_date": "2021-01-01"}, "valid_until"),
                        ({"party_id": mine.id, "currency": "XYZ"}, "currency"),
                        ({"party_id": mine.id, "billing_address": {"city": "Ghent"}}, "billing_address.line1"),
                        ({"party_id": mine.id, "surprise": 1}, "surprise")):
        with pytest.raises(ValidationFailed) as exc:
            service.create_quote(q, data)
        assert field in exc.value.errors, (data, exc.value.errors)
    assert rows(q) == before
    # a deal for one party, a quote for another
    deal = new_deal(q, mine)
    with pytest.raises(ValidationFailed) as exc:
        service.create_quote(q, {"deal_id": deal.id, "party_id": new_party(q).id})
    assert "party_id" in exc.value.errors


def test_another_business_quote_looks_missing(q, other_q):
    record = service.create_quote(q, {"party_id": new_party(q).id, "lines": [line()]})
    (ln,) = service.get_quote(q, record.id).lines
    for call in (lambda: service.get_quote(other_q, record.id), lambda: service.accept_quote(other_q, record.id),
                 lambda: service.new_version(other_q, record.id), lambda: service.remove_line(other_q, ln.id),
                 lambda: service.set_lines(other_q, record.id, [])):
        with pytest.raises(NotFound):
            call()
    assert service.quotes_for_deal(other_q, record.id) == []
    deal = new_deal(q, new_party(q))
    with pytest.raises(NotFound):
        service.get_quote(q, deal.id)  # a deal is not a quote


def test_roles(q, make_user, business):
    reader = make_user(business, "read_only")
    member = make_user(business, "member")
    party = new_party(q)
    with pytest.raises(PermissionDenied):
        service.create_quote(reader, {"party_id": party.id})
    record = service.create_quote(member, {"party_id": party.id, "lines": [line()]})
    assert service.get_quote(reader, record.id).lines[0].description == "Service hour"
    with pytest.raises(PermissionDenied):
        service.accept_quote(reader, record.id)
    with pytest.raises(PermissionDenied):
        service.save_settings(member, {"validity_days": 10})
