"""Records: types, create with defaults, update, lists, boards, details, team and stakeholders."""

import datetime as dt
from contextlib import contextmanager
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from crmcore.audit.models import AuditEntry
from crmcore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crmcore.outbox.models import OutboxMessage
from crmcore.pipelines import service as pipelines
from crmcore.pipelines.models import StageChange
from crmcore.records import service as records
from crmcore.records.models import Record, RecordLink
from crmcore.records.types import DEAL, LEAD, RecordType, get_record_type, record_types
from crmcore.timeline.models import TimelineEvent


@pytest.fixture
def party(ctx):
    from crmcore.parties.service import create_party

    return create_party(ctx, {"kind": "organisation", "name": "Initech", "currency": "USD"})


@pytest.fixture
def contact(ctx, party):
    from crmcore.parties.service import create_contact

    return create_contact(ctx, {"first_name": "Peter", "last_name": "Gibbons", "party_id": party.id})


def _sales(ctx):
    return pipelines.list_pipelines(ctx, "deal")[0]


def _count(ctx, model):
    ctx.session.rollback()
    return ctx.session.scalar(select(func.count()).select_from(model))


@contextmanager
def count_queries(ctx):
    statements = []

    def on_execute(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(ctx.crm.db.engine, "before_cursor_execute", on_execute)
    try:
        yield statements
    finally:
        event.remove(ctx.crm.db.engine, "before_cursor_execute", on_execute)


# ---------------------------------------------------------------------------------------------
# types


def test_core_record_types_come_from_entry_points(ctx):
    types = record_types(ctx)
    assert {"lead", "deal", "incident", "action"} <= set(types)
    assert types["deal"] is DEAL and DEAL.reference_target == "record:deal"
    assert get_record_type(ctx, "lead") is LEAD
    with pytest.raises(ValidationFailed) as exc:
        get_record_type(ctx, "spaceship")
    assert "type" in exc.value.errors


def test_plugin_record_type_exists_only_where_the_plugin_is_enabled(ctx, other_ctx, register_plugin):
    from crmcore.plugins.drivers import register_driver, unregister_driver

    quote = RecordType("quote", "Quote", "Quotes", has_pipeline=False, reference_target="record:quote")

    class QuotingPlugin:
        pass

    name = register_plugin(QuotingPlugin(), enable_for=ctx)
    register_driver("crmcore.record_types", "quote", quote, name)
    try:
        assert "quote" in record_types(ctx)
        assert "quote" not in record_types(other_ctx)
        with pytest.raises(ValidationFailed):
            records.create_record(other_ctx, "quote", {"title": "Q"})
        made = records.create_record(ctx, "quote", {"title": "Quote for Initech"})
        assert (made.pipeline_id, made.stage_id, made.status) == (None, None, "open")
        with pytest.raises(Conflict, match="no stages"):
            records.close_won(ctx, made.id)
        from crmcore.plugins.service import disable_plugin

        disable_plugin(ctx, name)
        with pytest.raises(NotFound):  # its records are kept but hidden while it is disabled
            records.get_record(ctx, made.id)
        assert made.id not in {r.id for r in records.list_records(ctx).items}
    finally:
        unregister_driver("crmcore.record_types", "quote")


# ---------------------------------------------------------------------------------------------
# create


def test_create_deal_with_defaults(ctx):
    deal = records.create_record(ctx, "deal", {"title": "  Printers  "})
    sales = _sales(ctx)
    assert deal.title == "Printers"
    assert deal.type == "deal" and deal.status == "open"
    assert deal.pipeline_id == sales.id and deal.stage_id == sales.stages[0].id
    assert deal.owner_id == ctx.user_id and deal.created_by_id == ctx.user_id
    assert deal.currency == "EUR"  # the business's
    assert deal.reference and deal.reference.startswith("DL")
    assert deal.stage_entered_at is not None
    history = records.stage_history(ctx, deal.id)
    assert len(history) == 1
    assert (history[0].from_stage_id, history[0].to_stage.name, history[0].seconds_in_from_stage) == (
        None, "Qualification", None)
    assert ctx.session.scalar(select(AuditEntry).where(AuditEntry.action == "record.created",
                                                       AuditEntry.entity_id == deal.id)) is not None
    event_row = ctx.session.scalar(select(TimelineEvent).where(TimelineEvent.record_id == deal.id))
    assert event_row.kind == "record_created"
    assert event_row.summary == f"Deal {deal.reference} created: Printers"  # the reference's case kept


def test_create_with_party_contact_amount(ctx, party, contact):
    deal = records.create_record(ctx, "deal", {
        "title": "Printers", "party_id": party.id, "contact_id": contact.id, "amount": "1234.5",
        "expected_close_date": "2030-01-31", "proposed_solution": "Two laser printers",
    })
    assert deal.amount == Decimal("1234.5") and isinstance(deal.amount, Decimal)
    assert deal.currency == "USD"  # the party's
    assert deal.expected_close_date == dt.date(2030, 1, 31)
    event_row = ctx.session.scalar(select(TimelineEvent).where(TimelineEvent.record_id == deal.id))
    assert event_row.party_id == party.id
    explicit = records.create_record(ctx, "deal", {"title": "x", "party_id": party.id, "currency": "gbp"})
    assert explicit.currency == "GBP"


def test_contact_alone_brings_its_party(ctx, party, contact):
    deal = records.create_record(ctx, "deal", {"title": "x", "contact_id": contact.id})
    assert deal.party_id == party.id


def test_unassigned_contact_is_accepted_with_any_party(ctx, party):
    from crmcore.parties.service import create_contact

    loose = create_contact(ctx, {"first_name": "Milton"})
    deal = records.create_record(ctx, "deal", {"title": "x", "party_id": party.id, "contact_id": loose.id})
    assert deal.contact_id == loose.id


@pytest.mark.parametrize("data, field", [
    ({}, "title"),
    ({"title": "   "}, "title"),
    ({"title": "x" * 301}, "title"),
    ({"title": "x", "amount": "-1"}, "amount"),
    ({"title": "x", "amount": "1.00001"}, "amount"),
    ({"title": "x", "amount": "123456789012345"}, "amount"),
    ({"title": "x", "amount": "NaN"}, "amount"),
    ({"title": "x", "amount": True}, "amount"),
    ({"title": "x", "currency": "EURO"}, "currency"),
    ({"title": "x", "expected_close_date": "soon"}, "expected_close_date"),
    ({"title": "x", "party_id": 999_999}, "party_id"),
    ({"title": "x", "party_id": "abc"}, "party_id"),
    ({"title": "x", "contact_id": 999_999}, "contact_id"),
    ({"title": "x", "owner_id": 999_999}, "owner_id"),
    ({"title": "x", "pipeline_id": 999_999}, "pipeline_id"),
    ({"title": "x", "stage_id": 999_999}, "stage_id"),
    ({"title": "x", "custom": {"nope": 1}}, "custom"),
    ({"title": "x", "status": "won"}, "status"),
])
def test_create_rejects_bad_input(ctx, data, field):
    with pytest.raises(ValidationFailed) as exc:
        records.create_record(ctx, "deal", data)
    assert field in exc.value.errors, exc.value.errors
    assert _count(ctx, Record) == 0
    assert _count(ctx, StageChange) == 0


def test_amount_limits(ctx):
    deal = records.create_record(ctx, "deal", {"title": "x", "amount": "99999999999999.9999"})
    assert deal.amount == Decimal("99999999999999.9999")
    assert records.create_record(ctx, "deal", {"title": "x", "amount": 0.1}).amount == Decimal("0.1")
    assert records.create_record(ctx, "deal", {"title": "x", "amount": "1.50000"}).amount == Decimal("1.5")


def test_contact_of_another_party_is_refused(ctx, party, contact):
    from crmcore.parties.service import create_party

    other = create_party(ctx, {"kind": "organisation", "name": "Initrode"})
    with pytest.raises(ValidationFailed) as exc:
        records.create_record(ctx, "deal", {"title": "x", "party_id": other.id, "contact_id": contact.id})
    assert "another party" in exc.value.errors["contact_id"][0]


def test_owner_must_be_a_member(ctx, other_ctx, business, make_user):
    member = make_user(business, "member")
    deal = records.create_record(ctx, "deal", {"title": "x", "owner_id": member.user_id})
    assert deal.owner_id == member.user_id
    with pytest.raises(ValidationFailed) as exc:
        records.create_record(ctx, "deal", {"title": "x", "owner_id": other_ctx.user_id})
    assert "not an active member" in exc.value.errors["owner_id"][0]


def test_pipeline_and_stage_choice(ctx):
    renewals = pipelines.create_pipeline(ctx, "deal", {"name": "Renewals", "stages": [
        {"name": "Due"}, {"name": "Talking"}, {"name": "Renewed", "kind": "won"}, {"name": "Churned", "kind": "lost"}]})
    deal = records.create_record(ctx, "deal", {"title": "x", "pipeline_id": renewals.id,
                                               "stage_id": renewals.stages[1].id})
    assert (deal.pipeline_id, deal.stage_id) == (renewals.id, renewals.stages[1].id)
    with pytest.raises(ValidationFailed) as exc:
        records.create_record(ctx, "deal", {"title": "x", "stage_id": renewals.stages[0].id})
    assert "belongs to pipeline 'Renewals'" in exc.value.errors["stage_id"][0]
    with pytest.raises(ValidationFailed) as exc:
        records.create_record(ctx, "deal", {"title": "x", "pipeline_id": renewals.id,
                                            "stage_id": renewals.stages[2].id})
    assert "open stage" in exc.value.errors["stage_id"][0]
    service = pipelines.list_pipelines(ctx, "incident")[0]
    with pytest.raises(ValidationFailed) as exc:
        records.create_record(ctx, "deal", {"title": "x", "pipeline_id": service.id})
    assert "is for incident records" in exc.value.errors["pipeline_id"][0]
    pipelines.set_default_pipeline(ctx, renewals.id)
    assert records.create_record(ctx, "deal", {"title": "y"}).pipeline_id == renewals.id


def test_custom_values_are_validated_by_the_fields_service(ctx):
    from crmcore.fields.service import define_field

    define_field(ctx, "record:deal", {"key": "seats", "label": "Seats", "type": "integer"})
    deal = records.create_record(ctx, "deal", {"title": "x", "custom": {"seats": "12"}})
    assert deal.custom == {"seats": 12}
    with pytest.raises(ValidationFailed) as exc:
        records.create_record(ctx, "deal", {"title": "x", "custom": {"seats": "many"}})
    assert "seats" in exc.value.errors["custom"]
    with pytest.raises(ValidationFailed):  # fields of deals are not fields of incidents
        records.create_record(ctx, "incident", {"title": "x", "custom": {"seats": 1}})


def test_read_only_cannot_create_or_update(ctx, business, make_user):
    reader = make_user(business, "read_only")
    with pytest.raises(PermissionDenied):
        records.create_record(reader, "deal", {"title": "x"})
    deal = records.create_record(ctx, "deal", {"title": "x"})
    with pytest.raises(PermissionDenied):
        records.update_record(reader, deal.id, {"title": "y"})
    with pytest.raises(PermissionDenied):
        records.archive_record(reader, deal.id)
    assert records.get_record(reader, deal.id).title == "x"


def test_another_business_cannot_see_or_touch_a_record(ctx, other_ctx, party):
    deal = records.create_record(ctx, "deal", {"title": "x", "party_id": party.id})
    for call in (
        lambda: records.get_record(other_ctx, deal.id),
        lambda: records.record_details(other_ctx, deal.id),
        lambda: records.update_record(other_ctx, deal.id, {"title": "mine"}),
        lambda: records.stage_history(other_ctx, deal.id),
        lambda: records.archive_record(other_ctx, deal.id),
        lambda: records.create_next_step(other_ctx, deal.id, "action"),
        lambda: records.add_competitor(other_ctx, deal.id, "acme"),
    ):
        with pytest.raises(NotFound):
            call()
    assert records.list_records(other_ctx).items == []
    with pytest.raises(ValidationFailed):  # their party is not ours
        records.create_record(other_ctx, "deal", {"title": "x", "party_id": party.id})
    with pytest.raises(NotFound):
        records.board(other_ctx, deal.pipeline_id)


# ---------------------------------------------------------------------------------------------
# defaults and next steps


def test_next_step_copies_from_the_source(ctx, party, contact, business, make_user):
    member = make_user(business, "member")
    deal = records.create_record(ctx, "deal", {
        "title": "Printers", "party_id": party.id, "contact_id": contact.id, "amount": "500",
        "currency": "CHF", "owner_id": member.user_id})
    defaults = records.record_defaults(ctx, "action", source_id=deal.id)
    assert defaults == {"party_id": party.id, "contact_id": contact.id, "amount": Decimal("500"),
                        "currency": "CHF", "owner_id": member.user_id, "title": "Follow-up: Printers"}
    step = records.create_next_step(ctx, deal.id, "action", {"title": "Call Peter"})
    assert step.title == "Call Peter"
    assert (step.party_id, step.contact_id, step.owner_id, step.currency) == (
        party.id, contact.id, member.user_id, "CHF")
    link = ctx.session.scalar(select(RecordLink).where(RecordLink.to_record_id == step.id))
    assert (link.from_record_id, link.kind) == (deal.id, "next_step")
    untitled = records.create_next_step(ctx, deal.id, "action")
    assert untitled.title == "Follow-up: Printers"
    source_feed = ctx.session.scalars(select(TimelineEvent.kind).where(TimelineEvent.record_id == deal.id)).all()
    assert "next_step_created" in source_feed


def test_party_defaults_give_its_currency(ctx, party):
    assert records.record_defaults(ctx, "deal", party_id=party.id) == {"party_id": party.id, "currency": "USD"}
    assert records.record_defaults(ctx, "deal") == {}
    with pytest.raises(ValidationFailed):
        records.record_defaults(ctx, "deal", party_id=999_999)


def test_next_step_for_another_party_drops_the_source_contact(ctx, party, contact):
    from crmcore.parties.service import create_party

    other = create_party(ctx, {"kind": "organisation", "name": "Initrode"})
    deal = records.create_record(ctx, "deal", {"title": "x", "party_id": party.id, "contact_id": contact.id})
    step = records.create_next_step(ctx, deal.id, "action", {"party_id": other.id})
    assert (step.party_id, step.contact_id) == (other.id, None)


def test_next_step_owner_who_left_falls_back_to_the_acting_user(ctx, business, make_user):
    from crmcore.tenancy.service import remove_member

    member = make_user(business, "member")
    deal = records.create_record(ctx, "deal", {"title": "x", "owner_id": member.user_id})
    remove_member(ctx, member.user_id)
    assert records.create_next_step(ctx, deal.id, "action").owner_id == ctx.user_id


# ---------------------------------------------------------------------------------------------
# update and archive


def test_update_record(ctx, party, contact):
    deal = records.create_record(ctx, "deal", {"title": "x", "party_id": party.id})
    updated = records.update_record(ctx, deal.id, {"title": "Printers", "amount": "10.25", "contact_id": contact.id})
    assert (updated.title, updated.amount, updated.contact_id) == ("Printers", Decimal("10.25"), contact.id)
    entry = ctx.session.scalar(select(AuditEntry).where(AuditEntry.action == "record.updated"))
    assert entry.changes["title"] == ["x", "Printers"]
    assert entry.changes["amount"] == [None, "10.25"]
    before = _count(ctx, AuditEntry)
    records.update_record(ctx, deal.id, {"title": "Printers"})  # nothing changes: nothing written
    assert _count(ctx, AuditEntry) == before


@pytest.mark.parametrize("data, field", [
    ({"title": ""}, "title"),
    ({"stage_id": 1}, "stage_id"),
    ({"status": "won"}, "status"),
    ({"pipeline_id": 1}, "pipeline_id"),
    ({"amount": "-5"}, "amount"),
    ({"owner_id": 999_999}, "owner_id"),
    ({"color": "red"}, "color"),
])
def test_update_rejects_bad_input(ctx, data, field):
    deal = records.create_record(ctx, "deal", {"title": "x"})
    with pytest.raises(ValidationFailed) as exc:
        records.update_record(ctx, deal.id, data)
    assert field in exc.value.errors
    if field in ("stage_id", "status", "pipeline_id"):
        assert "move_stage" in exc.value.errors[field][0]
    assert records.get_record(ctx, deal.id).title == "x"


def test_update_party_needs_a_fitting_contact(ctx, party, contact):
    from crmcore.parties.service import create_party

    other = create_party(ctx, {"kind": "organisation", "name": "Initrode"})
    deal = records.create_record(ctx, "deal", {"title": "x", "party_id": party.id, "contact_id": contact.id})
    with pytest.raises(ValidationFailed) as exc:
        records.update_record(ctx, deal.id, {"party_id": other.id})
    assert "contact_id" in exc.value.errors
    moved = records.update_record(ctx, deal.id, {"party_id": other.id, "contact_id": None})
    assert (moved.party_id, moved.contact_id) == (other.id, None)


def test_update_custom_values_merges_and_clears(ctx):
    from crmcore.fields.service import define_field

    define_field(ctx, "record:deal", {"key": "seats", "label": "Seats", "type": "integer"})
    define_field(ctx, "record:deal", {"key": "notes2", "label": "Notes", "type": "text"})
    deal = records.create_record(ctx, "deal", {"title": "x", "custom": {"seats": 3, "notes2": "hi"}})
    assert records.update_record(ctx, deal.id, {"custom": {"seats": 4}}).custom == {"seats": 4, "notes2": "hi"}
    assert records.update_record(ctx, deal.id, {"custom": {"notes2": None}}).custom == {"seats": 4}


def test_archive_and_restore(ctx):
    deal = records.create_record(ctx, "deal", {"title": "x"})
    records.archive_record(ctx, deal.id)
    assert records.list_records(ctx).items == []
    assert [r.id for r in records.list_records(ctx, filters={"include_archived": True}).items] == [deal.id]
    with pytest.raises(Conflict, match="archived"):
        records.update_record(ctx, deal.id, {"title": "y"})
    with pytest.raises(Conflict, match="archived"):
        records.move_stage(ctx, deal.id, _sales(ctx).stages[1].id)
    records.restore_record(ctx, deal.id)
    assert records.update_record(ctx, deal.id, {"title": "y"}).title == "y"


# ---------------------------------------------------------------------------------------------
# lists and boards


def test_list_records_filters_and_pages(ctx, party, business, make_user):
    member = make_user(business, "member")
    made = [records.create_record(ctx, "deal", {"title": f"Deal {n:02}", "party_id": party.id if n % 2 else None,
                                                "owner_id": member.user_id if n % 3 == 0 else None})
            for n in range(7)]
    records.create_record(ctx, "incident", {"title": "Broken printer"})
    page = records.list_records(ctx, record_type="deal", limit=3)
    assert [r.title for r in page.items] == ["Deal 06", "Deal 05", "Deal 04"]
    assert str(page.total) == "7"
    second = records.list_records(ctx, record_type="deal", limit=3, cursor=page.next_cursor)
    assert [r.title for r in second.items] == ["Deal 03", "Deal 02", "Deal 01"]
    assert len(records.list_records(ctx).items) == 8
    assert {r.id for r in records.list_records(ctx, filters={"party_id": party.id}).items} == {
        made[1].id, made[3].id, made[5].id}
    assert {r.id for r in records.list_records(ctx, filters={"owner_id": member.user_id}).items} == {
        made[0].id, made[3].id, made[6].id}
    assert [r.title for r in records.list_records(ctx, filters={"q": "broken"}).items] == ["Broken printer"]
    assert records.list_records(ctx, filters={"q": "deal_"}).items == []  # LIKE wildcards are literal
    by_title = records.list_records(ctx, record_type="deal", sort="title", limit=2)
    assert [r.title for r in by_title.items] == ["Deal 00", "Deal 01"]
    records.close_won(ctx, made[0].id)
    assert [r.id for r in records.list_records(ctx, filters={"status": "won"}).items] == [made[0].id]
    stage = _sales(ctx).stages[0]
    assert len(records.list_records(ctx, filters={"stage_id": stage.id}).items) == 6


@pytest.mark.parametrize("kwargs, field", [
    ({"sort": "amount"}, "sort"),
    ({"filters": {"status": "maybe"}}, "status"),
    ({"filters": {"nope": 1}}, "nope"),
    ({"filters": {"custom": {"seats": 1}}}, "custom"),
    ({"limit": 0}, "limit"),
    ({"cursor": "garbage!"}, "cursor"),
])
def test_list_records_rejects_bad_arguments(ctx, kwargs, field):
    with pytest.raises(ValidationFailed) as exc:
        records.list_records(ctx, **kwargs)
    assert field in exc.value.errors


def test_list_records_custom_filter(ctx):
    from crmcore.fields.service import define_field

    define_field(ctx, "record:deal", {"key": "seats", "label": "Seats", "type": "integer"})
    small = records.create_record(ctx, "deal", {"title": "small", "custom": {"seats": 2}})
    records.create_record(ctx, "deal", {"title": "big", "custom": {"seats": 200}})
    found = records.list_records(ctx, record_type="deal", filters={"custom": {"seats": "2"}})
    assert [r.id for r in found.items] == [small.id]


def test_board(ctx, party):
    sales = _sales(ctx)
    made = [records.create_record(ctx, "deal", {"title": f"D{n}", "party_id": party.id}) for n in range(5)]
    records.move_stage(ctx, made[4].id, sales.stages[2].id)
    records.close_won(ctx, made[3].id)
    with count_queries(ctx) as statements:
        result = records.board(ctx, sales.id, per_stage=2)
    columns = {c["stage"].name: c for c in result["columns"]}
    assert list(columns) == [s.name for s in sales.stages]
    assert [r.title for r in columns["Qualification"]["records"]] == ["D0", "D1"]
    assert str(columns["Qualification"]["count"]) == "3" and columns["Qualification"]["more"]
    assert [r.title for r in columns["Proposal"]["records"]] == ["D4"]
    assert [r.title for r in columns["Won"]["records"]] == ["D3"]
    assert result["parties"] == {party.id: party}
    assert sum("FROM records" in s for s in statements) == 2 * len(sales.stages)  # page + capped count
    rest = records.stage_records(ctx, sales.stages[0].id, cursor=None, limit=2)
    more = records.stage_records(ctx, sales.stages[0].id, cursor=rest.next_cursor, limit=2)
    assert [r.title for r in rest.items + more.items] == ["D0", "D1", "D2"]


def test_board_queries_do_not_grow_with_records(ctx):
    sales = _sales(ctx)
    for n in range(3):
        records.create_record(ctx, "deal", {"title": f"D{n}"})
    with count_queries(ctx) as few:
        records.board(ctx, sales.id)
    for n in range(20):
        records.create_record(ctx, "deal", {"title": f"E{n}"})
    with count_queries(ctx) as many:
        records.board(ctx, sales.id)
    assert len(many) == len(few)


# ---------------------------------------------------------------------------------------------
# details, team, stakeholders, competitors


def _competitor(ctx, value):
    from crmcore.lists.service import add_option

    return add_option(ctx, "competitor", {"value": value, "label": value.title()})


def _fill(ctx, deal, party, n, members):
    from crmcore.parties.service import create_contact

    for i in range(n):
        contact = create_contact(ctx, {"first_name": f"C{deal.id}-{i}", "party_id": party.id})
        records.add_stakeholder(ctx, deal.id, contact.id, role="influencer", notes="likes us")
        records.add_competitor(ctx, deal.id, _competitor(ctx, f"rival{deal.id}x{i}").value)
        records.add_team_member(ctx, deal.id, members[i].user_id, role="sales_engineer")
        records.create_next_step(ctx, deal.id, "action")
        records.move_stage(ctx, deal.id, _sales(ctx).stages[1 + i % 2].id)


def test_record_details_in_constant_queries(ctx, party, contact, business, make_user):
    members = [make_user(business, "member") for _ in range(4)]
    small = records.create_record(ctx, "deal", {"title": "small", "party_id": party.id, "contact_id": contact.id})
    big = records.create_record(ctx, "deal", {"title": "big", "party_id": party.id})
    _fill(ctx, small, party, 1, members)
    _fill(ctx, big, party, 4, members)
    small_id, big_id, party_id, contact_id = small.id, big.id, party.id, contact.id
    ctx.session.expunge_all()
    with count_queries(ctx) as one:
        details = records.record_details(ctx, small_id)
    ctx.session.expunge_all()
    with count_queries(ctx) as four:
        big_details = records.record_details(ctx, big_id)
    assert len(one) == len(four)
    assert details["party"].id == party_id and details["contact"].id == contact_id
    assert details["owner"].id == ctx.user_id
    assert details["pipeline"].name == "Sales" and details["stage"].name == "Needs analysis"
    assert [t["role"].value for t in details["team"]] == ["sales_engineer"]
    assert details["stakeholders"][0]["role"].value == "influencer"
    assert details["stakeholders"][0]["stakeholder"].notes == "likes us"
    assert len(big_details["competitors"]) == 4 and len(big_details["team"]) == 4
    assert [link["kind"] for link in big_details["links_out"]] == ["next_step"] * 4
    assert len(big_details["history"]) == 5
    step = big_details["links_out"][0]["record"]
    assert records.record_details(ctx, step.id)["links_in"][0]["record"].id == big_id


def test_team_members(ctx, other_ctx, business, make_user):
    member = make_user(business, "member")
    deal = records.create_record(ctx, "deal", {"title": "x"})
    row = records.add_team_member(ctx, deal.id, member.user_id, role="manager")
    assert row.role_id is not None
    with pytest.raises(Conflict):
        records.add_team_member(ctx, deal.id, member.user_id)
    with pytest.raises(ValidationFailed) as exc:
        records.add_team_member(ctx, deal.id, other_ctx.user_id)
    assert "user_id" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        records.add_team_member(ctx, deal.id, ctx.user_id, role="juggler")
    assert "role" in exc.value.errors
    records.remove_team_member(ctx, deal.id, member.user_id)
    with pytest.raises(NotFound):
        records.remove_team_member(ctx, deal.id, member.user_id)


def test_stakeholders(ctx, party, contact):
    from crmcore.parties.service import create_contact, create_party

    deal = records.create_record(ctx, "deal", {"title": "x", "party_id": party.id})
    row = records.add_stakeholder(ctx, deal.id, contact.id, role="decision_maker")
    with pytest.raises(Conflict):
        records.add_stakeholder(ctx, deal.id, contact.id)
    updated = records.update_stakeholder(ctx, row.id, {"role": "champion", "notes": " ally "})
    assert updated.notes == "ally"
    assert records.record_details(ctx, deal.id)["stakeholders"][0]["role"].value == "champion"
    other = create_party(ctx, {"kind": "organisation", "name": "Initrode"})
    stranger = create_contact(ctx, {"first_name": "Bob", "party_id": other.id})
    with pytest.raises(ValidationFailed) as exc:
        records.add_stakeholder(ctx, deal.id, stranger.id)
    assert "another party" in exc.value.errors["contact_id"][0]
    with pytest.raises(ValidationFailed):
        records.update_stakeholder(ctx, row.id, {"role": "wizard"})
    records.remove_stakeholder(ctx, row.id)
    with pytest.raises(NotFound):
        records.remove_stakeholder(ctx, row.id)


def test_competitors(ctx, other_ctx):
    deal = records.create_record(ctx, "deal", {"title": "x"})
    rival = _competitor(ctx, "initrode")
    other = _competitor(ctx, "umbrella")
    with pytest.raises(ValidationFailed) as exc:
        records.add_competitor(ctx, deal.id, None)
    assert "competitor" in exc.value.errors
    with pytest.raises(ValidationFailed):
        records.add_competitor(ctx, deal.id, "nobody")
    entry = records.add_competitor(ctx, deal.id, rival.id, notes="cheaper")
    with pytest.raises(Conflict):
        records.add_competitor(ctx, deal.id, "initrode")
    records.update_competitor(ctx, entry.id, {"competitor": "umbrella", "notes": "faster"})
    details = records.record_details(ctx, deal.id)
    assert [(c["competitor"].id, c["entry"].notes) for c in details["competitors"]] == [(other.id, "faster")]
    with pytest.raises(NotFound):
        records.update_competitor(other_ctx, entry.id, {"notes": "theirs"})
    records.remove_competitor(ctx, entry.id)
    assert records.record_details(ctx, deal.id)["competitors"] == []


def test_outbox_rows_only_for_implementers(ctx):
    records.create_record(ctx, "deal", {"title": "x"})
    assert _count(ctx, OutboxMessage) == 0
