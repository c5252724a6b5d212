"""Contacts: people at a party or unassigned, moved to a party later; their mechanisms; listing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from crmcore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crmcore.fields import service as fields
from crmcore.parties import service as ps
from crmcore.parties.models import Contact, ContactMechanism
from crmcore.timeline.models import TimelineEvent


def names(page):
    return [c.name for c in page.items]


def test_seed_scenario_unassigned_contacts_moved_to_a_new_customer(ctx):
    ann = ps.create_contact(ctx, {"first_name": "Ann", "last_name": "Lee", "job_title": "Buyer",
                                  "mechanisms": [{"kind": "email", "value": "ann@newco.example"},
                                                 {"kind": "mobile", "value": "+32 470 11 22 33"}]})
    bob = ps.create_contact(ctx, {"first_name": "Bob"})
    assert ann.party_id is None and ann.name == "Ann Lee" and ann.name_key == "ann lee"
    assert names(ps.list_contacts(ctx, unassigned=True)) == ["Ann Lee", "Bob"]

    customer = ps.create_party(ctx, {"name": "NewCo", "is_customer": True})
    ps.move_contact(ctx, ann.id, customer.id)
    ps.move_contact(ctx, bob.id, customer.id)
    assert names(ps.list_contacts(ctx, unassigned=True)) == []
    page = ps.list_contacts(ctx, party_id=customer.id)
    assert names(page) == ["Ann Lee", "Bob"]
    assert page.extra["parties"][customer.id].name == "NewCo"
    assert {m.kind for m in page.extra["mechanisms"][ann.id]} == {"email", "mobile"}
    details = ps.party_details(ctx, customer.id)
    assert [c["contact"].id for c in details["contacts"]] == [ann.id, bob.id]
    joined = ctx.session.scalars(select(TimelineEvent.summary).where(
        TimelineEvent.party_id == customer.id, TimelineEvent.kind == "contact_moved")).all()
    assert sorted(joined) == ["Contact Ann Lee joined", "Contact Bob joined"]
    # a contact found by its email finds its party too
    assert [p.id for p in ps.find_duplicates(ctx, email="ANN@newco.example")] == [customer.id]


def test_move_between_parties_and_unassign(ctx):
    one = ps.create_party(ctx, {"name": "One"})
    two = ps.create_party(ctx, {"name": "Two"})
    contact = ps.create_contact(ctx, {"party_id": one.id, "last_name": "Moved"})
    ps.move_contact(ctx, contact.id, two.id)
    assert ps.get_contact(ctx, contact.id).party_id == two.id
    ps.move_contact(ctx, contact.id, two.id)  # already there: nothing to do
    ps.move_contact(ctx, contact.id, None)
    assert ps.get_contact(ctx, contact.id).party_id is None
    kinds = ctx.session.execute(select(TimelineEvent.party_id, TimelineEvent.summary)
                                .where(TimelineEvent.kind == "contact_moved").order_by(TimelineEvent.id)).all()
    assert [tuple(k) for k in kinds] == [(one.id, "Contact Moved moved away"), (two.id, "Contact Moved joined"),
                                         (two.id, "Contact Moved moved away")]


def test_contact_needs_a_name_and_valid_fields(ctx):
    with pytest.raises(ValidationFailed) as exc:
        ps.create_contact(ctx, {"job_title": "Nobody", "mechanisms": [{"kind": "email", "value": "nope"}],
                                "language": "xx-yy-zz-long-tag"})
    assert set(exc.value.errors) == {"language"}
    with pytest.raises(ValidationFailed) as exc:
        ps.create_contact(ctx, {"job_title": "Nobody", "mechanisms": [{"kind": "email", "value": "nope"}]})
    assert set(exc.value.errors) == {"first_name", "mechanisms"}
    with pytest.raises(ValidationFailed) as exc:
        ps.create_contact(ctx, {"first_name": "A", "party_id": 1, "unknown": 1})
    assert "unknown" in exc.value.errors
    assert ctx.session.scalar(select(func.count()).select_from(Contact)) == 0


def test_contact_phones_read_in_the_party_country(ctx):
    party = ps.create_party(ctx, {"name": "Paris SA", "addresses": [{"line1": "Rue", "country": "FR"}]})
    contact = ps.create_contact(ctx, {"party_id": party.id, "first_name": "Luc",
                                      "mechanisms": [{"kind": "phone", "value": "01 23 45 67 89"}]})
    assert ps.list_contacts(ctx, party_id=party.id).extra["mechanisms"][contact.id][0].normalized == "+33123456789"
    added = ps.add_mechanism(ctx, contact_id=contact.id, data={"kind": "email", "value": "Luc@Paris.example"})
    assert added.contact_id == contact.id and added.party_id is None and added.is_primary
    loose = ps.create_contact(ctx, {"first_name": "Loose"})
    with pytest.raises(ValidationFailed) as exc:
        ps.add_mechanism(ctx, contact_id=loose.id, data={"kind": "phone", "value": "01 23 45 67 89"})
    assert "international form" in exc.value.errors["value"][0]


def test_update_contact(ctx):
    fields.define_field(ctx, "contact", {"key": "hobby", "label": "Hobby", "type": "text"})
    contact = ps.create_contact(ctx, {"first_name": "Ann", "last_name": "Lee", "custom": {"hobby": "chess"}})
    ps.update_contact(ctx, contact.id, {"last_name": "Smith", "department": " Sales ", "custom": {"hobby": "go"}})
    contact = ps.get_contact(ctx, contact.id)
    assert (contact.name, contact.name_key, contact.department, contact.custom) == (
        "Ann Smith", "ann smith", "Sales", {"hobby": "go"})
    with pytest.raises(ValidationFailed) as exc:
        ps.update_contact(ctx, contact.id, {"first_name": None, "last_name": ""})
    assert "first_name" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        ps.update_contact(ctx, contact.id, {"party_id": 5})  # moving says so: move_contact
    assert "party_id" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        ps.update_contact(ctx, contact.id, {"custom": {"shoe_size": 44}})
    assert "custom" in exc.value.errors


def test_archive_hides_from_lists(ctx):
    party = ps.create_party(ctx, {"name": "P"})
    contact = ps.create_contact(ctx, {"party_id": party.id, "first_name": "Old"})
    ps.archive_contact(ctx, contact.id)
    assert names(ps.list_contacts(ctx, party_id=party.id)) == []
    assert names(ps.list_contacts(ctx, party_id=party.id, include_archived=True)) == ["Old"]
    assert ps.party_details(ctx, party.id)["contacts"] == []
    ps.unarchive_contact(ctx, contact.id)
    assert names(ps.list_contacts(ctx, party_id=party.id)) == ["Old"]


def test_search_and_pages(ctx):
    for first in ["Zoe", "adam", "Ada", "Bert", "ada"]:
        ps.create_contact(ctx, {"first_name": first, "mechanisms": [{"kind": "email",
                                                                     "value": f"{first.lower()}{len(first)}@x.example"}]})
    assert [n.casefold() for n in names(ps.list_contacts(ctx, q="AD"))] == ["ada", "ada", "adam"]
    assert names(ps.list_contacts(ctx, q="bert4@X.example")) == ["Bert"]
    seen, cursor = [], None
    while True:
        page = ps.list_contacts(ctx, cursor=cursor, limit=2)
        seen += [c.id for c in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    with pytest.raises(ValidationFailed):
        ps.list_contacts(ctx, party_id=1, unassigned=True)


def test_isolation_and_roles(ctx, other_ctx, business, make_user):
    mine = ps.create_party(ctx, {"name": "Mine"})
    theirs = ps.create_party(other_ctx, {"name": "Theirs"})
    their_contact = ps.create_contact(other_ctx, {"first_name": "Secret"})
    contact = ps.create_contact(ctx, {"first_name": "Ann"})
    with pytest.raises(NotFound):
        ps.move_contact(ctx, contact.id, theirs.id)
    with pytest.raises(NotFound):
        ps.create_contact(ctx, {"first_name": "X", "party_id": theirs.id})
    with pytest.raises(NotFound):
        ps.move_contact(ctx, their_contact.id, mine.id)
    with pytest.raises(NotFound):
        ps.update_contact(ctx, their_contact.id, {"first_name": "Mine"})
    with pytest.raises(NotFound):
        ps.list_contacts(ctx, party_id=theirs.id)
    with pytest.raises(NotFound):
        ps.add_mechanism(ctx, contact_id=their_contact.id, data={"kind": "email", "value": "a@b.cd"})
    assert names(ps.list_contacts(ctx, unassigned=True)) == ["Ann"]
    reader = make_user(business, "read_only")
    assert names(ps.list_contacts(reader)) == ["Ann"]
    with pytest.raises(PermissionDenied):
        ps.create_contact(reader, {"first_name": "No"})
    with pytest.raises(PermissionDenied):
        ps.move_contact(reader, contact.id, mine.id)


def test_no_contacts_onto_a_merged_party(ctx):
    kept = ps.create_party(ctx, {"name": "Kept"})
    dup = ps.create_party(ctx, {"name": "Dup"})
    ps.merge_parties(ctx, kept.id, dup.id)
    contact = ps.create_contact(ctx, {"first_name": "Late"})
    with pytest.raises(Conflict) as exc:
        ps.move_contact(ctx, contact.id, dup.id)
    assert "merged into" in exc.value.message
    assert ctx.session.scalar(select(func.count()).select_from(ContactMechanism)) == 0
