"""The core's record service (its generic Edit form, the API, other plugins) cannot change what a
quote says behind the plugin's back (``crm_before_record_save``): past its draft a quote keeps
its title, party, contact, amount and currency; a draft keeps its party, and its amount and
currency follow its lines; harmless fields stay editable; the plugin's own steps (edit a draft,
new version, send, accept) still write the record."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from crm_quoting import NAME, service
from crm_quoting.testing import edit_form
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmcore.errors import Veto
from crmcore.records import service as records

from .conftest import line, new_contact, new_party  # noqa: TID252

WORDS = {"title": "title", "party_id": "party", "contact_id": "contact", "amount": "amount", "currency": "currency"}


def fresh(ctx, record_id):
    ctx.session.rollback()
    return service.get_quote(ctx, record_id)


def state(record):
    return record.title, record.party_id, record.contact_id, record.amount, record.currency, record.description


def sent(ctx, party=None, contact=None):
    party = party or new_party(ctx)
    record = service.create_quote(ctx, {"party_id": party.id, "contact_id": contact.id if contact else None,
                                        "lines": [line()]})
    service.mark_sent(ctx, record.id)
    return fresh(ctx, record.id).record


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(wanted=st.sets(st.sampled_from(["title", "party_id", "contact_id", "amount", "currency", "description"]),
                      min_size=1))
def test_a_sent_quote_refuses_exactly_the_fields_it_depends_on(q, wanted):
    party = new_party(q)
    contact = new_contact(q, party)
    other = new_party(q)
    record = sent(q, party, contact)
    values = {"title": "Changed", "party_id": other.id, "contact_id": None, "amount": "7.5", "currency": "USD",
              "description": "A note"}
    data = {k: values[k] for k in wanted}
    if "party_id" in data:
        data["contact_id"] = None  # the core refuses a contact of another party on its own
    refused = [f for f in WORDS if f in data]
    before = state(record)
    if not refused:
        records.update_record(q, record.id, data)
        assert fresh(q, record.id).record.description == "A note"
        return
    with pytest.raises(Veto) as exc:
        records.update_record(q, record.id, data)
    words = [WORDS[f] for f in refused]
    listed = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
    assert exc.value.message == (f"Quote {record.reference} is sent: its {listed} can no longer change "
                                 "(make a new version to change it)")
    assert sorted(exc.value.errors) == sorted(refused) and exc.value.plugin == NAME
    assert state(fresh(q, record.id).record) == before


def test_the_generic_edit_form_shows_the_refusal_and_keeps_the_quote(q, client):
    record = sent(q)
    response = client.post(f"/records/{record.id}/edit", edit_form(record, title="Cheaper now", amount="10"))
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert f"Quote {record.reference} is sent: its title and amount can no longer change" in page
    assert state(fresh(q, record.id).record) == state(record)
    saved = client.post(f"/records/{record.id}/edit", edit_form(record, description="Called on Monday"))
    assert saved.status_code == 303 and fresh(q, record.id).record.description == "Called on Monday"


def test_accepted_refused_and_superseded_quotes_are_locked(q):
    accepted = sent(q)
    service.accept_quote(q, accepted.id)
    refused = sent(q)
    service.refuse_quote(q, refused.id, "Too dear")
    revised = sent(q)
    newer = service.new_version(q, revised.id)
    for record, words in ((accepted, "is accepted: its title can no longer change (an accepted quote is final)"),
                          (refused, "is refused: its title can no longer change"),
                          (revised, "is superseded: its title can no longer change")):
        with pytest.raises(Veto) as exc:
            records.update_record(q, record.id, {"title": "Changed"})
        assert words in exc.value.message
    # the new version is a draft with its own amount from its lines
    assert fresh(q, newer.id).status == "draft" and fresh(q, newer.id).record.amount == D("100.00")


def test_a_draft_keeps_its_party_and_its_amount_follows_its_lines(q):
    party = new_party(q)
    first, second = new_contact(q, party, "Ann Buyer"), new_contact(q, party, "Bob Buyer", email=None)
    record = service.create_quote(q, {"party_id": party.id, "contact_id": first.id, "lines": [line()]})
    ref = fresh(q, record.id).record.reference
    with pytest.raises(Veto) as exc:
        records.update_record(q, record.id, {"amount": "1", "currency": "USD", "party_id": new_party(q).id,
                                             "contact_id": None})
    assert exc.value.message.startswith(f"Quote {ref} was not saved: it keeps its party")
    assert "its amount is the net total of its lines (EUR 100.00)" in exc.value.message
    assert set(exc.value.errors) == {"amount", "currency", "party_id"}
    view = fresh(q, record.id)
    assert (view.record.amount, view.record.currency, view.record.party_id) == (D("100"), "EUR", party.id)
    # title and contact are free on a draft; the quote's own contact (PDF, send form) follows
    records.update_record(q, record.id, {"title": "Quote: two tractors", "contact_id": second.id})
    view = fresh(q, record.id)
    assert (view.record.title, view.quote.contact_id) == ("Quote: two tractors", second.id)
    # the plugin's own writes: the editor's save (amount, title, contact), then send and accept
    service.save_draft(q, record.id, {"title": "Quote: three tractors", "contact_id": first.id},
                       [line(quantity="3")])
    view = fresh(q, record.id)
    assert (view.record.amount, view.record.title, view.record.contact_id, view.quote.contact_id) == \
        (D("300.00"), "Quote: three tractors", first.id, first.id)
    service.mark_sent(q, record.id)
    assert service.accept_quote(q, record.id).record.id == record.id
    assert fresh(q, record.id).status == "accepted"


def test_a_quote_made_by_the_core_form_is_free_until_it_has_details(q):
    party = new_party(q)
    bare = records.create_record(q, "quote", {"title": "Typed in", "party_id": party.id, "amount": "900"})
    records.update_record(q, bare.id, {"amount": "800", "party_id": new_party(q).id})
    service.set_lines(q, bare.id, [line(unit_price="40")])
    view = fresh(q, bare.id)
    assert (view.status, view.record.amount) == ("draft", D("40.00"))
    with pytest.raises(Veto):
        records.update_record(q, bare.id, {"amount": "800"})
