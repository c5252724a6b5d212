"""An accepted quote becomes a sales order: through quoting's react hook
(``crm_after_quote_accepted``, which may run twice: one order), or with "Create order". The
order takes the quote's party, contact, addresses, currency and lines with identical amounts, is
linked from the quote and from its deal."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from crm_catalog import service as catalog
from crm_orders import plugin, service
from crm_orders.models import Order
from crm_quoting import service as quoting
from sqlalchemy import func, select

from crmcore.errors import Conflict, NotFound
from crmcore.plugins.service import save_settings
from crmcore.records import service as records

from .conftest import accepted_quote, line, new_contact, new_deal, new_party, new_product  # noqa: TID252


def orders_of_quote(ctx, quote_id):
    return ctx.session.scalar(select(func.count()).select_from(Order).where(Order.quote_id == quote_id))


def test_accepting_a_quote_makes_its_order(o):
    party = new_party(o, "Meadow Farms", addresses=[
        {"purpose": "billing", "line1": "Farm road 1", "city": "Ghent", "country": "BE", "is_default": True},
        {"purpose": "shipping", "line1": "Barn 7", "city": "Aalst", "country": "BE", "is_default": True}])
    contact = new_contact(o, party)
    deal = new_deal(o, party, title="Fleet renewal", contact_id=contact.id)
    tractor = new_product(o, sku="TR-100", name="Tractor T100", unit_price=D("50000"), tax_rate=D(21))
    catalog.add_special_price(o, {"party_id": party.id, "product_id": tractor.id, "unit_price": "45000"})
    quote = quoting.create_quote_for_deal(o, deal.id, {"lines": [
        {"product_id": tractor.id, "quantity": "2"},
        {"description": "Trade-in: old tractor", "unit_price": "-8000", "tax_rate": "0"},
        line(quantity="3", unit_price="0.3333", discount_percent="12.5", tax_rate="9")]})
    quoting.mark_sent(o, quote.id)
    quoting.accept_quote(o, quote.id)  # the react hook runs right after the commit in tests

    order_record = service.order_for_quote(o, quote.id)
    assert order_record is not None and order_record.type == "sales_order"
    view = service.get_order(o, order_record.id)
    q = quoting.get_quote(o, quote.id)
    assert (view.order.quote_id, view.order.deal_id, view.order.contact_id) == (quote.id, deal.id, contact.id)
    assert (order_record.party_id, view.order.currency) == (party.id, "EUR")
    assert order_record.title == "Order: Fleet renewal" and order_record.reference.startswith("SO")
    assert view.order.billing_address == q.quote.billing_address and view.order.shipping_address["city"] == "Aalst"
    assert [(ln.description, ln.quantity, ln.unit_price, ln.net_amount, ln.tax_amount, ln.price_source)
            for ln in view.lines] == \
        [(ln.description, ln.quantity, ln.unit_price, ln.net_amount, ln.tax_amount, ln.price_source) for ln in q.lines]
    assert [ln.source_quote_line_id for ln in view.lines] == [ln.id for ln in q.lines]
    assert view.totals == q.totals and view.order.total_amount == q.quote.total_amount
    links = records.record_details(o, order_record.id)["links_in"]
    assert [(link["kind"], link["record"].id) for link in links] == [("order", quote.id), ("order", deal.id)]
    assert [s.record_id for s in service.orders_for_deal(o, deal.id)] == [order_record.id]
    assert view.status == "open" and not view.locked  # an order from a quote can still be completed


def test_the_hook_running_twice_makes_one_order(o):
    party = new_party(o)
    quote = accepted_quote(o, party)
    first = service.order_for_quote(o, quote.id)
    plugin.crm_after_quote_accepted(ctx=o, quote=quote)  # the outbox runs the job again
    plugin.crm_after_quote_accepted(ctx=o, quote=quote)
    assert service.order_for_quote(o, quote.id).id == first.id
    assert orders_of_quote(o, quote.id) == 1
    assert service.create_order_from_quote(o, quote.id).id == first.id


def test_one_order_per_quote_even_when_two_makers_race(o):
    """The unique (business, quote) index stops a second order that slipped past the check."""
    party = new_party(o)
    quote = accepted_quote(o, party)
    assert service.order_for_quote(o, quote.id) is not None
    with pytest.raises(Conflict):
        _force_second_order(o, quote.id)
    assert orders_of_quote(o, quote.id) == 1


def _force_second_order(ctx, quote_id):
    """Insert a second details row for the quote directly (what a racing job would write)."""
    from crmcore.context import use_case
    from crmcore.tenancy.models import Role

    @use_case(Role.MEMBER)
    def write(ctx):
        record = records.create_record(ctx, "sales_order", {"title": "Racing copy"})
        ctx.session.add(Order(record_id=record.id, kind="sales", status="open", quote_id=quote_id, currency="EUR",
                              order_date=service.today(ctx), net_amount=0, tax_amount=0, total_amount=0))
        ctx.session.flush()

    write(ctx)


def test_with_order_on_accept_off_create_order_makes_it(o):
    save_settings(o, "orders", {"order_on_accept": False})
    party = new_party(o)
    quote = accepted_quote(o, party)
    assert service.order_for_quote(o, quote.id) is None
    made = service.create_order_from_quote(o, quote.id)
    assert service.create_order_from_quote(o, quote.id).id == made.id
    assert orders_of_quote(o, quote.id) == 1


def test_only_an_accepted_quote_becomes_an_order(o):
    party = new_party(o)
    draft = quoting.create_quote(o, {"party_id": party.id, "lines": [line()]})
    with pytest.raises(Conflict) as exc:
        service.create_order_from_quote(o, draft.id)
    assert "is draft" in exc.value.message and "only an accepted quote" in exc.value.message
    refused = quoting.create_quote(o, {"party_id": party.id, "lines": [line()]})
    quoting.refuse_quote(o, refused.id, "Too dear")
    with pytest.raises(Conflict):
        service.create_order_from_quote(o, refused.id)
    assert service.lookup_orders(o).items == []


def test_another_business_quote_is_not_found(o, other_o):
    theirs = accepted_quote(other_o, new_party(other_o))
    with pytest.raises(NotFound):
        service.create_order_from_quote(o, theirs.id)
    assert service.order_for_quote(o, theirs.id) is None
    assert service.order_for_quote(other_o, theirs.id) is not None


def test_a_quote_accepted_where_orders_is_off_makes_no_order(ctx):
    from crmcore.plugins.service import enable_plugin

    enable_plugin(ctx, "catalog")
    enable_plugin(ctx, "quoting")
    party = new_party(ctx)
    quote = accepted_quote(ctx, party)
    enable_plugin(ctx, "orders")
    assert service.order_for_quote(ctx, quote.id) is None
    assert service.create_order_from_quote(ctx, quote.id).type == "sales_order"
