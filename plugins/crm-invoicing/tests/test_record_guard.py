"""The core's record service (its generic New and Edit forms, the API, other plugins) cannot
change what an issued invoice or a credit note says behind the plugin's back
(``crm_before_record_save``): whom it bills, whom it goes to, its amount and currency; a
credit note is made only from its invoice. Drafts stay the user's; the plugin's own steps
(edit a draft, issue it, credit it) still write the record."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from crm_invoicing import NAME, service

from crmcore.errors import Veto
from crmcore.parties.contacts import create_contact
from crmcore.parties.service import create_party
from crmcore.records import service as records

from .conftest import line  # noqa: TID252


def view(ctx, record_id):
    ctx.session.rollback()
    return service.get_invoice(ctx, record_id)


def state(record):
    return record.party_id, record.contact_id, record.amount, record.currency, record.title


def form_of(record, **changes):
    """The core's Edit form as the browser posts it: every field with its current value."""
    data = {"title": record.title, "party_id": record.party_id, "contact_id": record.contact_id,
            "owner_id": record.owner_id, "amount": record.amount, "currency": record.currency,
            "expected_close_date": record.expected_close_date, "description": record.description,
            "proposed_solution": record.proposed_solution}
    data.update(changes)
    return {k: "" if v is None else str(v) for k, v in data.items()}


@pytest.fixture
def contact(inv, party):
    return create_contact(inv, {"party_id": party.id, "first_name": "Bill", "last_name": "Lumbergh"})


@pytest.fixture
def other(inv):
    return create_party(inv, {"kind": "organisation", "name": "Globex Corp"})


def issued(ctx, party, contact=None):
    record = service.create_invoice(ctx, {"party_id": party.id, "contact_id": contact.id if contact else None,
                                          "lines": [line()]})
    service.activate_invoice(ctx, record.id)
    return view(ctx, record.id).record


def test_an_issued_invoice_keeps_whom_it_bills_and_its_amount(inv, party, contact, other):
    record = issued(inv, party, contact)
    before = state(record)
    assert before[2:4] == (Decimal("121.00"), "EUR")
    for data, words in (({"party_id": other.id, "contact_id": None, "amount": "5"}, "party, contact and amount"),
                        ({"currency": "USD"}, "currency"),
                        ({"contact_id": None, "description": "a note"}, "contact")):
        with pytest.raises(Veto) as exc:
            records.update_record(inv, record.id, data)
        assert exc.value.message == (f"Invoice {record.reference} is issued: its {words} can no longer change "
                                     "(a credit note and a new invoice correct an issued invoice)")
        assert exc.value.plugin == NAME
        after = view(inv, record.id).record
        assert state(after) == before and after.description is None
    # its title (not printed), description, owner, expected close date are the user's
    records.update_record(inv, record.id, {"title": "Printers, March", "description": "Paid by PO 7",
                                           "expected_close_date": "2026-04-01", "amount": "121"})
    after = view(inv, record.id).record
    assert (after.title, after.description, after.expected_close_date) == ("Printers, March", "Paid by PO 7",
                                                                            dt.date(2026, 4, 1))
    # a partly paid one names its status
    service.record_payment(inv, record.id, {"amount": "21"})
    with pytest.raises(Veto) as exc:
        records.update_record(inv, record.id, {"amount": "100"})
    assert exc.value.message.startswith(f"Invoice {record.reference} is partly paid: its amount can no longer")


def test_the_generic_edit_form_shows_the_refusal(inv, party, other, client):
    record = issued(inv, party)
    response = client.post(f"/records/{record.id}/edit", form_of(record, party_id=other.id))
    assert response.status_code == 409
    assert f"Invoice {record.reference} is issued: its party can no longer change" in response.get_data(as_text=True)
    assert view(inv, record.id).record.party_id == party.id
    saved = client.post(f"/records/{record.id}/edit", form_of(record, description="Sent by post too"))
    assert saved.status_code == 303 and view(inv, record.id).record.description == "Sent by post too"


def test_a_draft_is_the_users_and_issuing_still_writes_the_record(inv, party, contact, other):
    record = service.create_invoice(inv, {"party_id": other.id, "lines": [line()]})
    records.update_record(inv, record.id, {"party_id": party.id, "amount": "3", "currency": "USD",
                                           "title": "Printers"})
    service.update_draft(inv, record.id, {"contact_id": contact.id, "lines": [line(quantity="3")]})
    activation = service.activate_invoice(inv, record.id)
    found = view(inv, record.id)
    assert found.invoice.status == "active" and activation.record.reference
    assert state(found.record) == (party.id, contact.id, Decimal("181.50"), "EUR", "Printers")
    assert found.invoice.billing_name == party.name


def test_a_credit_note_comes_only_from_its_invoice(inv, party, other, client):
    with pytest.raises(Veto) as exc:
        records.create_record(inv, "credit_note", {"title": "Typed by hand", "party_id": party.id})
    assert exc.value.message == "A credit note is made from an issued invoice: open the invoice and choose Credit note"
    response = client.post("/records/credit_note/new", {"title": "Typed by hand", "party_id": str(party.id)})
    assert response.status_code == 409 and "open the invoice and choose Credit note" in response.get_data(as_text=True)
    invoice = issued(inv, party)
    note = service.create_credit_note(inv, invoice.id, {"reason": "Returned"})
    found = view(inv, note.id)
    assert found.invoice.kind == "credit_note" and found.record.reference
    with pytest.raises(Veto) as exc:
        records.update_record(inv, note.id, {"party_id": other.id, "amount": "10"})
    assert exc.value.message == f"Credit note {found.record.reference} is issued: its party and amount can no longer change"
    assert view(inv, note.id).record.party_id == party.id
    # a bare invoice from the core's form is a draft like any other
    bare = records.create_record(inv, "invoice", {"title": "Typed by hand", "party_id": party.id})
    assert view(inv, bare.id).invoice.status == "draft"
