"""The bulk import path: every cell checked, all or nothing, duplicates caught, hooks honoured."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from crmcore import Veto, hookimpl
from crmcore.audit.models import AuditEntry
from crmcore.errors import PermissionDenied, ValidationFailed
from crmcore.fields import service as fields
from crmcore.lists import service as lists
from crmcore.outbox.models import OutboxMessage
from crmcore.parties import service as ps
from crmcore.parties.bulk import import_parties
from crmcore.parties.models import Address, Contact, ContactMechanism, Party, PartySalesRep, PartyTag, Tag


def count(ctx, model, *where):
    n = ctx.session.scalar(select(func.count()).select_from(model).where(*where))
    ctx.session.rollback()
    return n


@pytest.fixture
def shop(ctx, make_user, business):
    """A business with a custom field of each kind an import commonly fills, a tag and a rep."""
    fields.define_field(ctx, "party", {"key": "employees", "label": "Employees", "type": "integer"})
    fields.define_field(ctx, "party", {"key": "segment", "label": "Segment", "type": "choice", "options": {
        "choices": [{"value": "smb", "label": "Small business"}, {"value": "ent", "label": "Enterprise"}]}})
    fields.define_field(ctx, "party", {"key": "brands", "label": "Brands", "type": "multi_choice", "options": {
        "choices": [{"value": "deere", "label": "Deere"}, {"value": "kubota", "label": "Kubota"}]}})
    ps.create_party(ctx, {"kind": "organisation", "name": "Existing", "tags": ["VIP"],
                          "mechanisms": [{"kind": "email", "value": "taken@existing.example"}]})
    rep = make_user(business, "member", email="rep@shop.example")
    return {"rep_id": rep.user_id}


ROWS = [
    {"name": "Acme Tractors", "email": "Anna.Sales@Acme.example; info@acme.example", "phone": "+32 2 555 01 23",
     "address_line1": "1 Farm Road", "city": "Gent", "postal_code": "9000", "country": "be",
     "tags": "vip; Dealers", "sales_reps": "REP@shop.example", "prospect_status": "Qualified",
     "custom.employees": "12", "custom.segment": "smb", "custom.brands": "deere;kubota",
     "contact_first_name": "Ann", "contact_last_name": "Peeters", "contact_email": "ann@acme.example",
     "contact_phone": "02 555 01 24"},
    {"kind": "person", "first_name": "Jan", "last_name": "Smit", "is_customer": "yes", "reference": "OLD-17",
     "mobile": "+31 6 12345678", "address_purpose": "ship-to", "address_line1": "Dorpsstraat 1", "country": "NL"},
    {"name": "Bare Minimum", "email": "", "tags": ""},
]


def test_import_writes_every_part_of_a_row(ctx, shop):
    report = import_parties(ctx, ROWS)
    assert (report.rows, report.created, report.skipped, report.contacts) == (3, 3, 0, 1)
    acme = ctx.session.scalar(select(Party).where(Party.name == "Acme Tractors"))
    assert acme.reference.startswith("CU") and acme.reference.endswith("-0002")  # Existing took 0001
    assert acme.custom == {"employees": 12, "segment": "smb", "brands": ["deere", "kubota"]}
    assert acme.is_prospect and not acme.is_customer
    assert acme.prospect_status_id == lists.resolve_option(ctx, "prospect_status", "qualified", field="s").id
    mechanisms = ctx.session.execute(select(ContactMechanism.kind, ContactMechanism.value, ContactMechanism.normalized,
                                            ContactMechanism.is_primary)
                                     .where(ContactMechanism.party_id == acme.id)
                                     .order_by(ContactMechanism.position)).all()
    assert mechanisms == [("email", "Anna.Sales@acme.example", "anna.sales@acme.example", True),
                          ("email", "info@acme.example", "info@acme.example", False),
                          ("phone", "+32 2 555 01 23", "+3225550123", True)]
    address = ctx.session.scalar(select(Address).where(Address.party_id == acme.id))
    assert (address.purpose, address.city, address.country, address.is_default) == ("billing", "Gent", "BE", True)
    tags = set(ctx.session.scalars(select(Tag.name).join(PartyTag, PartyTag.tag_id == Tag.id)
                                   .where(PartyTag.party_id == acme.id)))
    assert tags == {"VIP", "Dealers"}  # the existing tag is reused, not duplicated
    assert count(ctx, Tag) == 2
    assert ctx.session.scalars(select(PartySalesRep.user_id).where(PartySalesRep.party_id == acme.id)).all() \
        == [shop["rep_id"]]
    contact = ctx.session.scalar(select(Contact).where(Contact.party_id == acme.id))
    assert contact.name == "Ann Peeters"
    # the contact's national number is read in the row's country
    assert ctx.session.scalar(select(ContactMechanism.normalized).where(
        ContactMechanism.contact_id == contact.id, ContactMechanism.kind == "phone")) == "+3225550124"

    jan = ctx.session.scalar(select(Party).where(Party.reference == "OLD-17"))
    assert (jan.kind, jan.name, jan.is_customer, jan.is_prospect, jan.prospect_status_id) == (
        "person", "Jan Smit", True, False, None)
    assert ctx.session.scalar(select(Address.purpose).where(Address.party_id == jan.id)) == "shipping"
    bare = ctx.session.scalar(select(Party).where(Party.name == "Bare Minimum"))
    assert bare.currency == ctx.business.currency and bare.custom == {}
    entry = ctx.session.scalar(select(AuditEntry).where(AuditEntry.action == "parties.imported"))
    assert entry.changes == {"rows": 3, "created": 3, "skipped": 0, "contacts": 1}


def test_imported_parties_are_found_by_the_list_filters(ctx, shop):
    import_parties(ctx, ROWS)
    page = ps.list_parties(ctx, {"prospect_status": "qualified", "tag": "dealers", "custom": {"segment": "smb"}})
    assert [p.name for p in page.items] == ["Acme Tractors"]
    assert [p.name for p in ps.list_parties(ctx, {"q": "anna.sales@acme.example"}).items] == ["Acme Tractors"]


def test_a_bad_row_refuses_the_whole_import_and_names_every_problem(ctx, shop):
    before = count(ctx, Party)
    rows = [
        {"name": "Good One", "email": "good@one.example"},
        {"name": "", "email": "not an email", "prospect_status": "nope", "sales_reps": "ghost@nowhere.example",
         "custom.employees": "many", "custom.segment": "huge", "address_line2": "no first line"},
        {"name": "Bad Phone", "phone": "12", "language": "klingon-xx-yy-zz", "is_customer": "perhaps"},
    ]
    with pytest.raises(ValidationFailed) as raised:
        import_parties(ctx, rows)
    assert "2 of 3 rows have errors; nothing was imported" in str(raised.value)
    errors = raised.value.errors["rows"]
    assert set(errors) == {3, 4}  # line numbers as in the file: header is line 1
    assert set(errors[3]) == {"name", "email", "prospect_status", "sales_reps", "custom.employees",
                              "custom.segment", "address_line1"}
    assert "'nope' is not in the list" in errors[3]["prospect_status"][0]
    assert set(errors[4]) == {"phone", "language", "is_customer"}
    assert count(ctx, Party) == before
    # the numbers the refused import would have taken are given back
    assert ps.create_party(ctx, {"kind": "organisation", "name": "Next"}).reference.endswith("-0002")


def test_unknown_columns_are_refused_before_any_row(ctx, shop):
    with pytest.raises(ValidationFailed) as raised:
        import_parties(ctx, [{"name": "X", "emial": "x@y.example", "custom.nope": "1"}])
    assert set(raised.value.errors["columns"]) == {"emial", "custom.nope"}
    assert "known columns: kind, name" in raised.value.errors["columns"]["emial"][0]


def test_rows_that_are_not_mappings_are_errors(ctx, shop):
    with pytest.raises(ValidationFailed) as raised:
        import_parties(ctx, [{"name": "Fine"}, ["a", "list"]])
    assert raised.value.errors["rows"] == {3: {"_row": ["expected a row of named cells"]}}


def test_duplicates_by_email_and_reference(ctx, shop):
    rows = [{"name": "Twin", "email": "TAKEN@existing.example"},
            {"name": "New", "email": "new@x.example", "reference": "R-1"},
            {"name": "New again", "email": "new@x.example"},
            {"name": "Same ref", "reference": "R-1"}]
    with pytest.raises(ValidationFailed) as raised:
        import_parties(ctx, rows, batch_size=2)  # the in-file twin sits in the next batch
    errors = raised.value.errors["rows"]
    assert "already the email of party 'Existing'" in errors[2]["email"][0]
    assert "also the email of an earlier row" in errors[4]["email"][0]
    assert errors[5] == {"reference": ["reference 'R-1' is already used"]}
    assert 3 not in errors

    report = import_parties(ctx, rows, on_duplicate="skip", batch_size=2)
    assert (report.created, report.skipped) == (1, 3)
    assert ctx.session.scalar(select(Party.reference).where(Party.name == "New")) == "R-1"
    with pytest.raises(ValidationFailed):
        import_parties(ctx, rows, on_duplicate="merge")


def test_dry_run_checks_and_counts_but_writes_nothing(ctx, shop):
    before = count(ctx, Party)
    report = import_parties(ctx, ROWS, dry_run=True)
    assert (report.created, report.contacts, report.dry_run) == (3, 1, True)
    assert count(ctx, Party) == before and count(ctx, Tag) == 1


def test_batches_give_every_party_its_own_ids_and_numbers(ctx, shop):
    rows = [{"name": f"Party {i:02d}", "email": f"p{i}@bulk.example", "contact_last_name": f"C{i}"}
            for i in range(7)]
    report = import_parties(ctx, rows, batch_size=3)
    assert report.created == 7 and len(set(report.party_ids)) == 7
    refs = ctx.session.scalars(select(Party.reference).where(Party.id.in_(report.party_ids))
                               .order_by(Party.id)).all()
    assert [r[-4:] for r in refs] == [f"{n:04d}" for n in range(2, 9)]
    pairs = ctx.session.execute(select(Contact.name, Party.name).join(Party, Party.id == Contact.party_id)
                                .order_by(Contact.id)).all()
    assert pairs == [(f"C{i}", f"Party {i:02d}") for i in range(7)]


def test_import_stays_in_its_business(ctx, other_ctx, shop):
    ps.create_party(other_ctx, {"kind": "organisation", "name": "Theirs", "tags": ["Dealers"],
                                "mechanisms": [{"kind": "email", "value": "shared@x.example"}]})
    report = import_parties(ctx, [{"name": "Ours", "email": "shared@x.example", "tags": "dealers"}])
    assert report.created == 1  # another business's email is not a duplicate here
    assert [p.name for p in ps.list_parties(other_ctx, {}).items] == ["Theirs"]
    ours = ctx.session.scalar(select(Party).where(Party.name == "Ours"))
    assert ours.business_id == ctx.business_id
    tag_business = ctx.session.scalar(select(Tag.business_id).join(PartyTag, PartyTag.tag_id == Tag.id)
                                      .where(PartyTag.party_id == ours.id))
    assert tag_business == ctx.business_id
    with pytest.raises(ValidationFailed) as raised:  # a user of another business is no rep here
        import_parties(ctx, [{"name": "X", "sales_reps": other_ctx.user.email}])
    assert "is not a user of this business" in raised.value.errors["rows"][2]["sales_reps"][0]


def test_members_cannot_import(ctx, make_user, business):
    member = make_user(business, "member")
    with pytest.raises(PermissionDenied):
        import_parties(member, [{"name": "X"}])


def test_required_and_archived_custom_fields(ctx, shop):
    fields.define_field(ctx, "party", {"key": "vat_checked", "label": "VAT checked", "type": "checkbox",
                                       "required": True})
    old = fields.define_field(ctx, "party", {"key": "legacy", "label": "Legacy", "type": "text"})
    fields.archive_field(ctx, old.id)
    with pytest.raises(ValidationFailed) as raised:
        import_parties(ctx, [{"name": "A", "custom.legacy": "x"}])
    assert set(raised.value.errors["rows"][2]) == {"custom.vat_checked", "custom.legacy"}
    assert import_parties(ctx, [{"name": "A", "custom.vat_checked": "true"}]).created == 1


def test_plugins_veto_rows_and_hear_about_created_parties(ctx, shop, register_plugin, crm):
    class NoTaxlessCustomers:
        seen: list[str] = []

        @hookimpl
        def crm_before_party_save(self, ctx, party, changes, created):
            if party.is_customer and not party.tax_id:
                raise Veto("customers need a tax id")

        @hookimpl
        def crm_after_party_created(self, ctx, party):
            self.seen.append(party.name)

    plugin = NoTaxlessCustomers()
    register_plugin(plugin, enable_for=ctx)
    with pytest.raises(ValidationFailed) as raised:
        import_parties(ctx, [{"name": "Fine"}, {"name": "Taxless", "is_customer": "1"}])
    assert raised.value.errors["rows"] == {3: {"_row": ["customers need a tax id"]}}
    report = import_parties(ctx, [{"name": "Fine"}, {"name": "Taxed", "is_customer": "1", "tax_id": "BE0123"}])
    assert report.created == 2
    assert sorted(plugin.seen) == ["Fine", "Taxed"]  # one react-hook job per party, run after commit
    assert count(ctx, OutboxMessage, OutboxMessage.topic == "crm_after_party_created") == 2


def test_worker_processes_check_rows_as_this_process_would(ctx, shop):
    """With rows checked in forked workers, the same rows are refused with the same messages
    at the same lines, and a clean file is written the same way."""
    rows = [{"name": f"Row {i}", "email": f"r{i}@x.example", "tags": "w", "custom.employees": str(i)}
            for i in range(10)]
    bad = [*rows[:4], {"name": "", "email": "nope"}, *rows[4:8], {"custom.segment": "huge", "name": "S"}]
    answers = []
    for processes in (0, 2):
        with pytest.raises(ValidationFailed) as raised:
            import_parties(ctx, bad, batch_size=3, processes=processes)
        answers.append(raised.value.errors)
    assert answers[0] == answers[1] and set(answers[1]["rows"]) == {6, 11}
    report = import_parties(ctx, rows, batch_size=3, processes=2)
    assert report.created == 10
    stored = ctx.session.execute(select(Party.name, Party.custom).where(Party.id.in_(report.party_ids))
                                 .order_by(Party.id)).all()
    assert stored == [(f"Row {i}", {"employees": i}) for i in range(10)]
