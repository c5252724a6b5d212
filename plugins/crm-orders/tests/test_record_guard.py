"""The core's record service (its generic Edit form, the API, other plugins) cannot change what an
order says behind the plugin's back (``crm_before_record_save``): a locked order keeps its title,
party, contact, amount and currency; an open one keeps its party, and its amount and currency
follow its lines; harmless fields stay editable; the plugin's own writes still pass. And
accepting a quote where orders makes the order drafts no second invoice."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from crm_invoicing import service as invoicing
from crm_orders import NAME, service
from crm_quoting import service as quoting
from crm_quoting.testing import edit_form
from sqlalchemy import func, select

from crmcore.errors import Veto
from crmcore.plugins.service import disable_plugin, save_settings
from crmcore.records import service as records
from crmcore.records.models import Record
from crmcore.timeline.service import feed

from .conftest import accepted_quote, line, new_contact, new_party  # noqa: TID252


def fresh(ctx, record_id):
    ctx.session.rollback()
    return service.get_order(ctx, record_id)


def fulfilled(ctx, *, with_contact=True):
    party = new_party(ctx)
    contact = new_contact(ctx, party) if with_contact else None
    record = service.create_order(ctx, {"party_id": party.id, "contact_id": contact.id if contact else None,
                                        "lines": [line()]})
    service.fulfil_order(ctx, record.id)
    return record


def test_a_locked_order_keeps_what_it_says(o):
    record = fulfilled(o)
    other = new_party(o)
    before = fresh(o, record.id).record
    state = (before.title, before.party_id, before.contact_id, before.amount, before.currency)
    ref = before.reference
    for data, words in (({"party_id": other.id, "contact_id": None, "amount": "5"}, "party, contact and amount"),
                        ({"title": "Renamed"}, "title"),
                        ({"contact_id": None}, "contact"),
                        ({"currency": "USD"}, "currency"),
                        ({"title": "Renamed", "amount": "1", "description": "fine"}, "title and amount")):
        with pytest.raises(Veto) as exc:
            records.update_record(o, record.id, data)
        assert exc.value.message == f"Order {ref} is fulfilled: its {words} can no longer change"
        assert exc.value.plugin == NAME and all("the order is fulfilled" in m[0] for m in exc.value.errors.values())
        after = fresh(o, record.id).record
        assert (after.title, after.party_id, after.contact_id, after.amount, after.currency) == state
        assert after.description is None
    # harmless fields still save, and so does an amount that is what the lines say
    records.update_record(o, record.id, {"description": "Delivered Tuesday", "expected_close_date": "2026-05-01",
                                         "amount": "100.00"})
    after = fresh(o, record.id).record
    assert (after.description, after.expected_close_date) == ("Delivered Tuesday", dt.date(2026, 5, 1))
    assert after.amount == D("100") and fresh(o, record.id).status == "fulfilled"
    bare = fulfilled(o, with_contact=False)
    with pytest.raises(Veto) as exc:
        records.update_record(o, bare.id, {"party_id": other.id, "amount": "5"})
    assert exc.value.message == f"Order {fresh(o, bare.id).record.reference} is fulfilled: its party and amount " \
        "can no longer change"


def test_invoiced_cancelled_and_lent_orders_are_locked_too(inv):
    invoiced = service.create_order(inv, {"party_id": new_party(inv).id, "lines": [line()]})
    service.create_invoice(inv, invoiced.id)
    cancelled = service.create_order(inv, {"party_id": new_party(inv).id, "lines": [line()]})
    service.cancel_order(inv, cancelled.id, "Not needed")
    loan = service.create_order(inv, {"kind": "loaner", "party_id": new_party(inv).id, "unit_description": "Demo"})
    service.hand_over(inv, loan.id)
    for record, status in ((invoiced, "invoiced"), (cancelled, "cancelled"), (loan, "out")):
        with pytest.raises(Veto) as exc:
            records.update_record(inv, record.id, {"title": "Changed"})
        assert f"is {status}: its title can no longer change" in exc.value.message
        assert fresh(inv, record.id).record.title != "Changed"
    # the plugin's own write on a locked loaner (its charges change the amount) still passes
    service.create_invoice(inv, loan.id, {"charges": [line(description="Loan fee", unit_price="40")]})
    view = fresh(inv, loan.id)
    assert view.status == "out" and view.record.amount == D("40.00") == view.order.net_amount


def test_the_generic_edit_form_shows_the_refusal_and_keeps_the_order(o, client):
    record = fulfilled(o)
    before = fresh(o, record.id).record
    other = new_party(o)
    response = client.post(f"/records/{record.id}/edit", edit_form(before, party_id=other.id, contact_id=None,
                                                                  amount="1"))
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert f"Order {before.reference} is fulfilled: its party, contact and amount can no longer change" in page
    after = fresh(o, record.id).record
    assert (after.party_id, after.contact_id, after.amount) == (before.party_id, before.contact_id, before.amount)
    saved = client.post(f"/records/{record.id}/edit", edit_form(before, description="Signed for by Ann"))
    assert saved.status_code == 303
    assert fresh(o, record.id).record.description == "Signed for by Ann"


def test_an_open_order_keeps_its_party_and_its_amount_follows_its_lines(o):
    party = new_party(o)
    first, second = new_contact(o, party, "Ann Buyer"), new_contact(o, party, "Bob Buyer", email=None)
    record = service.create_order(o, {"party_id": party.id, "contact_id": first.id, "lines": [line()]})
    ref = fresh(o, record.id).record.reference
    with pytest.raises(Veto) as exc:
        records.update_record(o, record.id, {"amount": "999", "currency": "USD", "party_id": new_party(o).id,
                                             "contact_id": None})
    assert exc.value.message.startswith(f"Order {ref} was not saved: ")
    assert set(exc.value.errors) == {"amount", "currency", "party_id"}
    assert "net total of its lines (EUR 100.00)" in exc.value.errors["amount"][0]
    view = fresh(o, record.id)
    assert (view.record.amount, view.record.currency, view.record.party_id) == (D("100"), "EUR", party.id)
    # the title and a contact of the party may change; the order's details follow the contact
    records.update_record(o, record.id, {"title": "Spring order", "contact_id": second.id})
    view = fresh(o, record.id)
    assert (view.record.title, view.record.contact_id, view.order.contact_id) == ("Spring order", second.id,
                                                                                 second.id)
    # the plugin's own edits still write the record: lines (amount), title and contact
    service.save_order(o, record.id, {"title": "Spring order, revised", "contact_id": first.id},
                       [line(quantity="2"), line(description="Delivery", unit_price="35")])
    view = fresh(o, record.id)
    assert (view.record.amount, view.record.title, view.record.contact_id, view.order.contact_id) == \
        (D("235.00"), "Spring order, revised", first.id, first.id)
    service.fulfil_order(o, record.id)
    assert fresh(o, record.id).status == "fulfilled"


def test_an_order_made_by_the_core_form_stays_free_until_it_has_details(o, client):
    party = new_party(o)
    made = client.post("/records/sales_order/new", {"title": "Typed in", "party_id": str(party.id),
                                                    "amount": "500", "currency": "EUR"})
    assert made.status_code == 303
    record = o.session.scalars(select(Record).where(Record.title == "Typed in")).one()
    records.update_record(o, record.id, {"amount": "450", "party_id": new_party(o).id})  # no details yet
    service.set_lines(o, record.id, [line(unit_price="80")])
    view = fresh(o, record.id)
    assert (view.status, view.record.amount) == ("open", D("80.00"))
    with pytest.raises(Veto):
        records.update_record(o, record.id, {"amount": "450"})


def invoices_of(ctx, quote_id):
    ctx.session.rollback()
    from crm_invoicing.models import Invoice

    return ctx.session.scalar(select(func.count()).select_from(Invoice).where(Invoice.quote_id == quote_id))


def test_accepting_with_orders_on_makes_the_order_and_no_invoice_draft(inv):
    party = new_party(inv)
    quote = quoting.create_quote(inv, {"party_id": party.id, "lines": [line(quantity="2")]})
    quoting.mark_sent(inv, quote.id)
    result = quoting.accept_quote(inv, quote.id)
    assert result.invoice_id is None and result.invoiced_by_order and result.problems == []
    order = service.order_for_quote(inv, quote.id)
    assert order is not None and invoices_of(inv, quote.id) == 0
    events = [e.summary for e in feed(inv, record_id=quote.id).items]
    assert any("No invoice draft from this quote: the sales order made from it is invoiced instead" in s
               for s in events)
    # the order is invoiced, once: one invoice for the quote's work
    invoice = service.create_invoice(inv, order.id)
    found = invoicing.get_invoice(inv, invoice.id)
    assert found.invoice.quote_id == quote.id and found.invoice.net_amount == D("200.00")
    assert invoices_of(inv, quote.id) == 1
    # the quote, now accepted, keeps what it says; the invoice draft is still the user's
    with pytest.raises(Veto) as exc:
        records.update_record(inv, quote.id, {"title": "Changed"})
    assert "is accepted: its title can no longer change (an accepted quote is final)" in exc.value.message
    records.update_record(inv, invoice.id, {"title": "Invoice for the spring order"})


def test_accepting_with_order_on_accept_off_or_orders_off_drafts_the_invoice(inv):
    save_settings(inv, NAME, {"order_on_accept": False})
    quote = accepted_quote(inv, new_party(inv))
    assert service.order_for_quote(inv, quote.id) is None and invoices_of(inv, quote.id) == 1
    save_settings(inv, NAME, {"order_on_accept": True})
    disable_plugin(inv, NAME)
    party = new_party(inv)
    other = quoting.create_quote(inv, {"party_id": party.id, "lines": [line()]})
    result = quoting.accept_quote(inv, other.id)
    assert result.invoice_id is not None and not result.invoiced_by_order
    assert invoices_of(inv, other.id) == 1


def test_create_order_from_quote_still_works_with_the_guard(inv):
    save_settings(inv, NAME, {"order_on_accept": False})
    quoting.save_settings(inv, {"invoice_on_accept": False})
    quote = accepted_quote(inv, new_party(inv), [line(unit_price="70")])
    order = service.create_order_from_quote(inv, quote.id)
    view = fresh(inv, order.id)
    assert (view.record.amount, view.record.party_id, view.status) == (D("70.00"), quote.party_id, "open")
