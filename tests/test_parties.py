"""Parties: create, update, flags, lists, tags, sales reps, mechanisms, addresses, hooks, roles."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select

from crmcore import Veto, hookimpl
from crmcore.audit.models import AuditEntry
from crmcore.errors import NotFound, PermissionDenied, ValidationFailed
from crmcore.lists import service as lists
from crmcore.parties import service as ps
from crmcore.parties.models import Address, ContactMechanism, Party, PartyTag, Tag
from crmcore.timeline.models import TimelineEvent


def count(ctx, model, *where):
    n = ctx.session.scalar(select(func.count()).select_from(model).where(*where))
    ctx.session.rollback()
    return n


@contextmanager
def statements(engine):
    seen: list[str] = []

    def before(conn, cursor, statement, params, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def member_id(ctx, business, make_user, role="member"):
    return make_user(business, role).user_id


# --- create ------------------------------------------------------------------------------------


def test_create_organisation_with_everything(ctx, business, make_user):
    rep = member_id(ctx, business, make_user)
    party = ps.create_party(ctx, {
        "name": "  Acme \t Equipment  SA ",
        "tags": ["VIP", " vip ", "Dealer"],
        "sales_rep_ids": [rep, str(rep)],
        "language": "FR-be",
        "potential": "high",
        "tax_id": " BE0123456789 ",
        "mechanisms": [
            {"kind": "email", "value": " Jo.Smith@ACME.example "},
            {"kind": "phone", "value": "02 123 45 67", "label": "office"},
            {"kind": "website", "value": "WWW.Acme.example/"},
        ],
        "addresses": [{"purpose": "ship-to", "line1": " Rue Haute 1 ", "city": "Bruxelles", "country": "be"}],
    })
    assert (party.kind, party.name, party.name_key) == ("organisation", "Acme Equipment SA", "acme equipment sa")
    assert party.reference  # from the business's numbering rule for parties
    assert (party.currency, party.language, party.tax_id) == ("EUR", "fr-BE", "BE0123456789")
    assert party.is_prospect and not party.is_customer and not party.is_supplier
    details = ps.party_details(ctx, party.id)
    assert details["prospect_status"].value == "new"  # a new prospect starts at the first status
    assert details["potential"].value == "high"
    assert [t.name for t in details["tags"]] == ["Dealer", "VIP"]
    assert [u.id for u in details["sales_reps"]] == [rep]
    mechs = {m.kind: m for m in details["mechanisms"]}
    assert (mechs["email"].value, mechs["email"].normalized) == ("Jo.Smith@acme.example", "jo.smith@acme.example")
    assert mechs["phone"].normalized == "+3221234567"  # read in the address's country
    assert mechs["phone"].label == "office"
    assert (mechs["website"].value, mechs["website"].normalized) == ("https://www.acme.example", "acme.example")
    assert all(m.is_primary for m in details["mechanisms"])
    (address,) = details["addresses"]
    assert (address.purpose, address.line1, address.country, address.is_default) == ("shipping", "Rue Haute 1",
                                                                                       "BE", True)
    assert count(ctx, TimelineEvent, TimelineEvent.party_id == party.id, TimelineEvent.kind == "party_created") == 1
    assert count(ctx, AuditEntry, AuditEntry.action == "party.created", AuditEntry.entity_id == party.id) == 1


def test_create_person_derives_the_name(ctx):
    person = ps.create_party(ctx, {"kind": "person", "first_name": " Marie ", "last_name": "Curie  Skłodowska"})
    assert (person.name, person.name_key) == ("Marie Curie Skłodowska", "marie curie skłodowska")
    only_last = ps.create_party(ctx, {"kind": "person", "last_name": "Prince"})
    assert only_last.name == "Prince" and only_last.first_name is None
    with pytest.raises(ValidationFailed) as exc:
        ps.create_party(ctx, {"kind": "person", "name": "Just A Name"})
    assert "first_name" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        ps.create_party(ctx, {"kind": "organisation", "name": "Org", "first_name": "Bob"})
    assert "first_name" in exc.value.errors


def test_customer_or_supplier_is_not_a_prospect_unless_said(ctx):
    customer = ps.create_party(ctx, {"name": "Buyer", "is_customer": True})
    assert not customer.is_prospect and customer.prospect_status_id is None
    both = ps.create_party(ctx, {"name": "Both", "is_supplier": True, "is_prospect": True})
    assert both.is_prospect and both.is_supplier and both.prospect_status_id is not None


def test_currency_defaults_to_the_business_and_is_checked(ctx):
    assert ps.create_party(ctx, {"name": "A", "currency": "usd"}).currency == "USD"
    with pytest.raises(ValidationFailed) as exc:
        ps.create_party(ctx, {"name": "B", "currency": "dollars"})
    assert "currency" in exc.value.errors


def test_invalid_input_reports_every_field_and_writes_nothing(ctx):
    with pytest.raises(ValidationFailed) as exc:
        ps.create_party(ctx, {
            "name": "   ",
            "prospect_status": "bogus",
            "potential": "enormous",
            "sales_rep_ids": [999_999],
            "language": "english please",
            "tags": ["ok", ""],
            "mechanisms": [{"kind": "email", "value": "not-an-email"}, {"kind": "phone", "value": "02 123 45 67"},
                           {"kind": "pigeon", "value": "coo"}],
            "addresses": [{"purpose": "moon", "line1": "x"}],
        })
    errors = exc.value.errors
    assert set(errors) == {"language", "tags", "mechanisms", "addresses"}
    assert errors["tags"] == {1: ["must not be empty"]}
    assert list(errors["mechanisms"]) == [2] and "kind" in errors["mechanisms"][2]
    assert "purpose" in errors["addresses"][0]
    # the schema rejects shapes first; the rest is checked once the shapes are right
    with pytest.raises(ValidationFailed) as exc:
        ps.create_party(ctx, {
            "name": "   ", "prospect_status": "bogus", "potential": "enormous", "sales_rep_ids": [999_999],
            "mechanisms": [{"kind": "email", "value": "not-an-email"}, {"kind": "phone", "value": "02 123 45 67"}],
        })
    errors = exc.value.errors
    assert set(errors) == {"name", "prospect_status", "potential", "sales_rep_ids", "mechanisms"}
    assert "international form" in errors["mechanisms"][1]["value"][0]
    assert "not a member" in errors["sales_rep_ids"][0]
    with pytest.raises(ValidationFailed) as exc:
        ps.create_party(ctx, {"name": "X", "reference": "MINE-1"})
    assert "reference" in exc.value.errors  # the numbering rule gives it; nobody types it
    assert count(ctx, Party) == 0
    assert count(ctx, Tag) == 0
    assert count(ctx, ContactMechanism) == 0


def test_sales_reps_must_be_members_of_this_business(ctx, other_ctx, business, make_user):
    rep = member_id(ctx, business, make_user)
    with pytest.raises(ValidationFailed) as exc:
        ps.create_party(ctx, {"name": "A", "sales_rep_ids": [rep, other_ctx.user_id]})
    assert str(other_ctx.user_id) in exc.value.errors["sales_rep_ids"][0]
    party = ps.create_party(ctx, {"name": "A", "sales_rep_ids": [rep, ctx.user_id]})
    assert [u.id for u in ps.party_details(ctx, party.id)["sales_reps"]] != []


def test_one_primary_per_kind_and_one_default_per_purpose(ctx):
    party = ps.create_party(ctx, {"name": "A", "mechanisms": [
        {"kind": "email", "value": "a@x.example"},
        {"kind": "email", "value": "b@x.example", "is_primary": True},
        {"kind": "mobile", "value": "+32 470 12 34 56"},
    ], "addresses": [
        {"purpose": "billing", "line1": "One"},
        {"purpose": "billing", "line1": "Two", "is_default": True},
        {"purpose": "legal", "line1": "Three"},
    ]})
    details = ps.party_details(ctx, party.id)
    primaries = {(m.kind, m.value) for m in details["mechanisms"] if m.is_primary}
    assert primaries == {("email", "b@x.example"), ("mobile", "+32 470 12 34 56")}
    defaults = {(a.purpose, a.line1) for a in details["addresses"] if a.is_default}
    assert defaults == {("billing", "Two"), ("legal", "Three")}
    with pytest.raises(ValidationFailed) as exc:
        ps.create_party(ctx, {"name": "B", "mechanisms": [
            {"kind": "email", "value": "a@x.example", "is_primary": True},
            {"kind": "email", "value": "b@x.example", "is_primary": True},
            {"kind": "email", "value": "A@X.example"},
        ]})
    assert exc.value.errors["mechanisms"][1] == {"is_primary": ["only one email can be the primary one"]}
    assert "twice" in exc.value.errors["mechanisms"][2]["value"][0]


def test_reference_is_unique_and_never_changes(ctx):
    a = ps.create_party(ctx, {"name": "A"})
    b = ps.create_party(ctx, {"name": "B"})
    assert a.reference != b.reference
    ref = a.reference
    ps.update_party(ctx, a.id, {"name": "A renamed", "kind": "organisation"})
    assert ps.get_party(ctx, a.id).reference == ref
    with pytest.raises(ValidationFailed):
        ps.update_party(ctx, a.id, {"reference": "X"})


# --- update --------------------------------------------------------------------------------------


class Recorder:
    def __init__(self):
        self.before = []
        self.updated = []
        self.created = []

    @hookimpl
    def crm_before_party_save(self, ctx, party, changes, created):
        self.before.append((party.name, dict(changes), created))
        if party.name == "Forbidden":
            raise Veto("that name is not allowed here")

    @hookimpl
    def crm_after_party_created(self, ctx, party):
        self.created.append(party.id)

    @hookimpl
    def crm_after_party_updated(self, ctx, party, changes):
        self.updated.append((party.id, changes))


def test_update_records_changes_and_emits_only_when_something_changed(ctx, register_plugin):
    recorder = Recorder()
    register_plugin(recorder, enable_for=ctx)
    party = ps.create_party(ctx, {"name": "Acme", "language": "en"})
    assert recorder.created == [party.id]
    assert recorder.before[-1][2] is True and recorder.before[-1][1]["name"] == [None, "Acme"]
    ps.update_party(ctx, party.id, {"name": "Acme", "language": "EN"})  # nothing changes
    assert recorder.updated == []
    ps.update_party(ctx, party.id, {"name": "Acme Group", "is_customer": True, "potential": "medium"})
    (pid, changes), = recorder.updated
    assert pid == party.id
    assert changes == {"name": ["Acme", "Acme Group"], "is_customer": [False, True], "potential": [None, "medium"]}
    assert recorder.before[-1] == ("Acme Group", changes, False)
    reloaded = ps.get_party(ctx, party.id)
    assert reloaded.name_key == "acme group"
    entry = ctx.session.scalars(select(AuditEntry).where(AuditEntry.action == "party.updated")).one()
    assert entry.changes["name"] == ["Acme", "Acme Group"]


def test_update_can_switch_kind(ctx):
    party = ps.create_party(ctx, {"name": "Jane Doe Consulting"})
    with pytest.raises(ValidationFailed) as exc:
        ps.update_party(ctx, party.id, {"kind": "person"})
    assert "first_name" in exc.value.errors
    ps.update_party(ctx, party.id, {"kind": "person", "first_name": "Jane", "last_name": "Doe"})
    assert ps.get_party(ctx, party.id).name == "Jane Doe"
    ps.update_party(ctx, party.id, {"last_name": "Smith"})
    assert ps.get_party(ctx, party.id).name == "Jane Smith"
    with pytest.raises(ValidationFailed):
        ps.update_party(ctx, party.id, {"kind": "organisation"})  # an organisation needs a name
    ps.update_party(ctx, party.id, {"kind": "organisation", "name": "Smith & Co"})
    party = ps.get_party(ctx, party.id)
    assert (party.name, party.first_name, party.last_name) == ("Smith & Co", None, None)


def test_before_save_veto_writes_nothing(ctx, register_plugin):
    recorder = Recorder()
    register_plugin(recorder, enable_for=ctx)
    with pytest.raises(Veto) as exc:
        ps.create_party(ctx, {"name": "Forbidden", "tags": ["x"], "mechanisms": [{"kind": "email", "value": "a@b.cd"}]})
    assert exc.value.plugin is not None
    assert count(ctx, Party) == 0 and count(ctx, Tag) == 0 and count(ctx, ContactMechanism) == 0
    party = ps.create_party(ctx, {"name": "Allowed"})
    with pytest.raises(Veto):
        ps.update_party(ctx, party.id, {"name": "Forbidden", "tags": ["y"]})
    assert ps.get_party(ctx, party.id).name == "Allowed"
    assert count(ctx, PartyTag) == 0
    assert recorder.updated == []


def test_hooks_of_a_plugin_not_enabled_do_not_run(ctx, other_ctx, register_plugin):
    recorder = Recorder()
    register_plugin(recorder, enable_for=other_ctx)
    ps.create_party(ctx, {"name": "Forbidden"})
    assert recorder.before == [] and recorder.created == []


class Defaults:
    @hookimpl
    def crm_party_defaults(self, ctx, kind):
        if kind == "organisation":
            return {"language": "nl", "potential": "low", "is_supplier": True, "bogus_key": 1,
                    "tags": ["from-plugin"]}
        return None


def test_party_defaults_fill_only_what_the_caller_left_out(ctx, register_plugin):
    register_plugin(Defaults(), enable_for=ctx)
    party = ps.create_party(ctx, {"name": "Org", "language": "fr", "tags": []})
    details = ps.party_details(ctx, party.id)
    assert party.language == "fr" and party.is_supplier and details["potential"].value == "low"
    assert details["tags"] == []  # the caller gave tags (none)
    person = ps.create_party(ctx, {"kind": "person", "first_name": "Ann"})
    assert person.language is None and not person.is_supplier


def test_set_prospect_status_one_click(ctx):
    party = ps.create_party(ctx, {"name": "Lead Co"})
    ps.set_prospect_status(ctx, party.id, "qualified")
    qualified = lists.resolve_option(ctx, "prospect_status", "qualified", field="s")
    assert ps.get_party(ctx, party.id).prospect_status_id == qualified.id
    proposal = lists.resolve_option(ctx, "prospect_status", "proposal", field="s")
    ps.set_prospect_status(ctx, party.id, proposal.id)
    event_row = ctx.session.scalars(select(TimelineEvent).where(TimelineEvent.kind == "party_updated")
                                    .order_by(TimelineEvent.id.desc())).first()
    assert event_row.summary == "Prospect status: Qualified → Proposal"
    lists.deactivate_option(ctx, qualified.id)
    with pytest.raises(ValidationFailed) as exc:
        ps.set_prospect_status(ctx, party.id, "qualified")
    assert "prospect_status" in exc.value.errors
    ps.set_prospect_status(ctx, party.id, None)
    assert ps.get_party(ctx, party.id).prospect_status_id is None


def test_a_deactivated_status_can_stay_on_a_party(ctx):
    party = ps.create_party(ctx, {"name": "Old", "prospect_status": "dormant"})
    dormant = lists.resolve_option(ctx, "prospect_status", "dormant", field="s")
    lists.deactivate_option(ctx, dormant.id)
    ps.update_party(ctx, party.id, {"prospect_status": "dormant", "name": "Old Co"})  # re-saving a form
    assert ps.get_party(ctx, party.id).prospect_status_id == dormant.id


# --- tags, sales reps, archive ---------------------------------------------------------------------


def test_tags_are_shared_created_on_the_fly_and_removed(ctx):
    a = ps.create_party(ctx, {"name": "A", "tags": ["VIP"]})
    b = ps.create_party(ctx, {"name": "B"})
    ps.add_tags(ctx, b.id, ["vip", "New Tag"])
    assert count(ctx, Tag) == 2  # "vip" is the existing "VIP"
    assert [t.name for t in ps.party_details(ctx, b.id)["tags"]] == ["New Tag", "VIP"]
    ps.remove_tag(ctx, b.id, "VIP")
    ps.remove_tag(ctx, b.id, "never had it")
    assert [t.name for t in ps.party_details(ctx, b.id)["tags"]] == ["New Tag"]
    assert [t.name for t in ps.party_details(ctx, a.id)["tags"]] == ["VIP"]
    ps.update_party(ctx, a.id, {"tags": []})
    assert ps.party_details(ctx, a.id)["tags"] == []


def test_set_sales_reps_replaces_the_set(ctx, business, make_user):
    one, two = member_id(ctx, business, make_user), member_id(ctx, business, make_user)
    party = ps.create_party(ctx, {"name": "A", "sales_rep_ids": [one]})
    ps.set_sales_reps(ctx, party.id, [two, ctx.user_id])
    assert {u.id for u in ps.party_details(ctx, party.id)["sales_reps"]} == {two, ctx.user_id}
    ps.set_sales_reps(ctx, party.id, [])
    assert ps.party_details(ctx, party.id)["sales_reps"] == []


def test_archive_and_unarchive(ctx):
    party = ps.create_party(ctx, {"name": "Gone Soon"})
    ps.archive_party(ctx, party.id)
    assert ps.get_party(ctx, party.id).archived_at is not None
    assert ps.list_parties(ctx).items == []
    assert [p.id for p in ps.list_parties(ctx, {"archived": True}).items] == [party.id]
    assert [p.id for p in ps.list_parties(ctx, {"archived": None}).items] == [party.id]
    ps.archive_party(ctx, party.id)  # again: nothing to do
    ps.unarchive_party(ctx, party.id)
    assert [p.id for p in ps.list_parties(ctx).items] == [party.id]


# --- roles and isolation -----------------------------------------------------------------------------


def test_read_only_reads_but_cannot_write(ctx, business, make_user):
    party = ps.create_party(ctx, {"name": "A"})
    reader = make_user(business, "read_only")
    assert ps.get_party(reader, party.id).name == "A"
    assert ps.list_parties(reader).items[0].id == party.id
    for call in (lambda: ps.create_party(reader, {"name": "B"}),
                 lambda: ps.update_party(reader, party.id, {"name": "B"}),
                 lambda: ps.set_prospect_status(reader, party.id, "qualified"),
                 lambda: ps.add_tags(reader, party.id, ["x"]),
                 lambda: ps.archive_party(reader, party.id),
                 lambda: ps.add_address(reader, party.id, {"line1": "x"}),
                 lambda: ps.add_mechanism(reader, party_id=party.id, data={"kind": "email", "value": "a@b.cd"})):
        with pytest.raises(PermissionDenied):
            call()
    member = make_user(business, "member")
    assert ps.update_party(member, party.id, {"name": "By member"}).name == "By member"


def test_another_business_party_is_not_found(ctx, other_ctx):
    theirs = ps.create_party(other_ctx, {"name": "Theirs", "addresses": [{"line1": "x"}],
                                         "mechanisms": [{"kind": "email", "value": "t@their.example"}]})
    details = ps.party_details(other_ctx, theirs.id)
    for call in (lambda: ps.get_party(ctx, theirs.id),
                 lambda: ps.party_details(ctx, theirs.id),
                 lambda: ps.update_party(ctx, theirs.id, {"name": "Mine"}),
                 lambda: ps.archive_party(ctx, theirs.id),
                 lambda: ps.add_tags(ctx, theirs.id, ["x"]),
                 lambda: ps.add_address(ctx, theirs.id, {"line1": "x"}),
                 lambda: ps.update_address(ctx, details["addresses"][0].id, {"line1": "y"}),
                 lambda: ps.remove_mechanism(ctx, details["mechanisms"][0].id),
                 lambda: ps.add_mechanism(ctx, party_id=theirs.id, data={"kind": "email", "value": "a@b.cd"})):
        with pytest.raises(NotFound):
            call()
    assert ps.list_parties(ctx).items == []
    assert ps.find_duplicates(ctx, name="Theirs", email="t@their.example") == []
    assert ps.get_party(other_ctx, theirs.id).name == "Theirs"


# --- mechanisms and addresses ---------------------------------------------------------------------------


def test_mechanism_operations_keep_one_primary(ctx):
    party = ps.create_party(ctx, {"name": "A", "addresses": [{"line1": "x", "country": "FR"}]})
    first = ps.add_mechanism(ctx, party_id=party.id, data={"kind": "phone", "value": "01 23 45 67 89"})
    assert first.normalized == "+33123456789" and first.is_primary
    second = ps.add_mechanism(ctx, party_id=party.id, data={"kind": "phone", "value": "+32 2 555 12 12",
                                                            "is_primary": True})
    ctx.session.expire_all()
    assert second.is_primary and not ctx.session.get(ContactMechanism, first.id).is_primary
    with pytest.raises(ValidationFailed) as exc:
        ps.add_mechanism(ctx, party_id=party.id, data={"kind": "phone", "value": "+33 1 23 45 67 89"})
    assert "value" in exc.value.errors
    ps.update_mechanism(ctx, first.id, {"value": "01 23 45 67 00", "label": "desk"})
    ps.update_mechanism(ctx, second.id, {"is_primary": False})  # the other phone takes over
    ctx.session.expire_all()
    assert ctx.session.get(ContactMechanism, first.id).is_primary
    assert ctx.session.get(ContactMechanism, first.id).normalized == "+33123456700"
    ps.remove_mechanism(ctx, first.id)
    assert ctx.session.get(ContactMechanism, second.id).is_primary
    with pytest.raises(ValidationFailed) as exc:
        ps.update_mechanism(ctx, second.id, {"value": "nonsense"})
    assert "value" in exc.value.errors
    with pytest.raises(ValidationFailed):
        ps.add_mechanism(ctx, data={"kind": "email", "value": "a@b.cd"})
    with pytest.raises(ValidationFailed):
        ps.add_mechanism(ctx, party_id=party.id, contact_id=1, data={"kind": "email", "value": "a@b.cd"})


def test_address_operations_keep_one_default_per_purpose(ctx):
    party = ps.create_party(ctx, {"name": "A"})
    one = ps.add_address(ctx, party.id, {"line1": "One", "purpose": "billing"})
    two = ps.add_address(ctx, party.id, {"line1": "Two", "purpose": "billing"})
    assert one.is_default and not two.is_default
    ps.update_address(ctx, two.id, {"is_default": True})
    ctx.session.expire_all()
    assert not ctx.session.get(Address, one.id).is_default and ctx.session.get(Address, two.id).is_default
    ps.update_address(ctx, two.id, {"purpose": "shipping"})  # leaves billing: One is billing's default again
    ctx.session.expire_all()
    assert ctx.session.get(Address, one.id).is_default and ctx.session.get(Address, two.id).is_default
    three = ps.add_address(ctx, party.id, {"line1": "Three", "purpose": "shipping", "is_default": True})
    ps.remove_address(ctx, three.id)
    ctx.session.expire_all()
    assert ctx.session.get(Address, two.id).is_default
    ps.update_address(ctx, one.id, {"is_default": False})  # the only billing address stays its default
    assert ctx.session.get(Address, one.id).is_default
    four = ps.add_address(ctx, party.id, {"line1": "Four", "purpose": "shipping"})
    ps.update_address(ctx, two.id, {"is_default": False})  # the other shipping address takes over
    ctx.session.expire_all()
    assert ctx.session.get(Address, four.id).is_default and not ctx.session.get(Address, two.id).is_default
    defaults = ctx.session.scalars(select(Address.purpose).where(Address.party_id == party.id,
                                                                 Address.is_default)).all()
    assert sorted(defaults) == ["billing", "shipping"]
    with pytest.raises(ValidationFailed) as exc:
        ps.add_address(ctx, party.id, {"line1": "", "country": "Belgium"})
    assert set(exc.value.errors) == {"line1", "country"}
    with pytest.raises(ValidationFailed):
        ps.update_address(ctx, one.id, {"line1": "  "})


def test_party_details_runs_a_fixed_number_of_queries(ctx, business, make_user, crm):
    def make(n):
        party = ps.create_party(ctx, {"name": f"P{n}", "tags": [f"t{i}" for i in range(n)],
                                      "sales_rep_ids": [member_id(ctx, business, make_user) for _ in range(n)],
                                      "mechanisms": [{"kind": "email", "value": f"p{n}{i}@x.example"}
                                                     for i in range(n)],
                                      "addresses": [{"line1": f"l{i}"} for i in range(n)]})
        for i in range(n):
            ps.create_contact(ctx, {"party_id": party.id, "first_name": f"C{i}", "mechanisms": [
                {"kind": "email", "value": f"c{n}{i}@x.example"}, {"kind": "phone", "value": "+3221234567"}]})
        return party.id

    small, big = make(1), make(4)
    ps.party_details(ctx, small)
    with statements(crm.db.engine) as one:
        ps.party_details(ctx, small)
    with statements(crm.db.engine) as four:
        details = ps.party_details(ctx, big)
    assert len(one) == len(four)
    assert len(details["contacts"]) == 4 and all(len(c["mechanisms"]) == 2 for c in details["contacts"])
    assert len(details["mechanisms"]) == 4 and len(details["sales_reps"]) == 4


# --- duplicates -------------------------------------------------------------------------------------------


def test_find_duplicates_by_email_phone_and_name(ctx):
    acme = ps.create_party(ctx, {"name": "Acme Equipment", "mechanisms": [{"kind": "phone", "value": "+32 2 123 45 67"}]})
    ps.create_contact(ctx, {"party_id": acme.id, "first_name": "Jo",
                            "mechanisms": [{"kind": "email", "value": "jo@acme.example"}]})
    other = ps.create_party(ctx, {"name": "Acme Tools"})
    ps.create_party(ctx, {"name": "Beta"})
    assert [p.id for p in ps.find_duplicates(ctx, email="JO@acme.example")] == [acme.id]
    assert [p.id for p in ps.find_duplicates(ctx, phone="0032 2 123 45 67")] == [acme.id]
    assert [p.id for p in ps.find_duplicates(ctx, name="  ACME ")] == [acme.id, other.id]
    assert [p.id for p in ps.find_duplicates(ctx, name="acme t", email="jo@acme.example")] == [acme.id, other.id]
    assert ps.find_duplicates(ctx, phone="02 123 45 67") == []  # unreadable without a country: no guess
    assert len(ps.find_duplicates(ctx, name="acme", limit=1)) == 1


def test_a_tag_created_meanwhile_by_someone_else_is_reused(ctx):
    # the race (two saves creating the same new tag) cannot be staged through the API; the
    # fallback that settles it is exercised directly
    from crmcore.parties.service import _new_tag

    existing = ps.create_party(ctx, {"name": "A", "tags": ["Fresh"]})
    assert existing.id
    tag = _new_tag(ctx, "fresh", "FRESH")
    assert tag.name == "Fresh" and tag.id is not None
    ctx.session.commit()
    assert count(ctx, Tag) == 1
