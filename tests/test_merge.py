"""Merging parties: everything moves, composite keys never clash, a trace stays, hooks run."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from crmcore import Veto, hookimpl
from crmcore.db import Base, import_models
from crmcore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crmcore.fields import service as fields
from crmcore.parties import service as ps
from crmcore.parties.merge import party_links
from crmcore.parties.models import (
    Address,
    Contact,
    ContactMechanism,
    Party,
    PartyMerge,
    PartySalesRep,
    PartyTag,
)
from crmcore.records.models import Record
from crmcore.timeline.models import Note, Reminder, TimelineEvent


def rows(ctx, model, **where):
    stmt = select(func.count()).select_from(model)
    for key, value in where.items():
        stmt = stmt.where(getattr(model, key) == value)
    n = ctx.session.scalar(stmt)
    ctx.session.rollback()
    return n


def add_rows(ctx, party_id, n_records=2, n_notes=1):
    for i in range(n_records):
        ctx.session.add(Record(type="deal", title=f"Deal {i}", party_id=party_id))
    for i in range(n_notes):
        ctx.session.add(Note(party_id=party_id, body=f"note {i}"))
    ctx.session.add(Reminder(party_id=party_id, title="call back", due_at=dt.datetime.now(dt.UTC)))
    ctx.session.commit()


@pytest.fixture
def pair(ctx, business, make_user):
    """Two records of one company: tags, reps, mechanisms and addresses partly overlap."""
    shared_rep, own_rep = make_user(business).user_id, make_user(business).user_id
    kept = ps.create_party(ctx, {
        "name": "Acme", "tags": ["VIP", "Dealer"], "sales_rep_ids": [shared_rep],
        "mechanisms": [{"kind": "email", "value": "sales@acme.example"}, {"kind": "phone", "value": "+3221111111"}],
        "addresses": [{"purpose": "billing", "line1": "Kept street"}],
    })
    dup = ps.create_party(ctx, {
        "name": "ACME sa", "tags": ["vip", "Old"], "sales_rep_ids": [shared_rep, own_rep], "tax_id": "BE0999",
        "is_customer": True, "prospect_status": "qualified",
        "mechanisms": [{"kind": "email", "value": "SALES@acme.example"}, {"kind": "email", "value": "info@acme.example"},
                       {"kind": "phone", "value": "+3222222222"}],
        "addresses": [{"purpose": "billing", "line1": "Dup street"}, {"purpose": "shipping", "line1": "Dock 4"}],
    })
    for name in ("Ann", "Bob"):
        ps.create_contact(ctx, {"party_id": dup.id, "first_name": name,
                                "mechanisms": [{"kind": "email", "value": f"{name.lower()}@acme.example"}]})
    add_rows(ctx, dup.id)
    add_rows(ctx, kept.id, n_records=1, n_notes=0)
    return kept, dup, {"shared_rep": shared_rep, "own_rep": own_rep}


def test_every_party_foreign_key_is_covered():
    import_models()
    expected = {(t.name, fk.parent.name) for t in Base.metadata.sorted_tables for fk in t.foreign_keys
                if fk.column.table.name == "parties" and fk.column.name == "id"}
    expected -= {("parties", "merged_into_id"), ("party_merges", "kept_party_id"), ("party_merges", "merged_party_id")}
    covered = {(link.table.name, link.column.name) for link in party_links()}
    assert covered == expected
    assert {"contacts", "addresses", "contact_mechanisms", "party_tags", "party_sales_reps", "records", "notes",
            "timeline_events"} <= {t for t, _ in covered}
    keys = {link.table.name: link.unique_keys for link in party_links()}
    assert keys["party_tags"] == (("tag_id",),) and keys["party_sales_reps"] == (("user_id",),)


def test_merge_moves_everything_and_leaves_a_trace(ctx, pair):
    kept, dup, reps = pair
    preview = ps.merge_preview(ctx, kept.id, dup.id)
    trace = ps.merge_parties(ctx, kept.id, dup.id)

    assert rows(ctx, Contact, party_id=dup.id) == 0 and rows(ctx, Contact, party_id=kept.id) == 2
    assert rows(ctx, Record, party_id=kept.id) == 3
    assert rows(ctx, Note, party_id=kept.id) == 1
    assert rows(ctx, Reminder, party_id=kept.id) == 2
    for model in (Address, ContactMechanism, PartyTag, PartySalesRep, Record, Note, Reminder, TimelineEvent):
        assert rows(ctx, model, party_id=dup.id) == 0, model
    details = ps.party_details(ctx, kept.id)
    assert [t.name for t in details["tags"]] == ["Dealer", "Old", "VIP"]
    assert {u.id for u in details["sales_reps"]} == {reps["shared_rep"], reps["own_rep"]}
    emails = sorted((m.normalized, m.is_primary) for m in details["mechanisms"] if m.kind == "email")
    assert emails == [("info@acme.example", False), ("sales@acme.example", True)]  # the twin was dropped
    phones = sorted((m.normalized, m.is_primary) for m in details["mechanisms"] if m.kind == "phone")
    assert phones == [("+3221111111", True), ("+3222222222", False)]
    defaults = sorted((a.line1, a.is_default) for a in details["addresses"])
    assert defaults == [("Dock 4", True), ("Dup street", False), ("Kept street", True)]
    assert len(details["contacts"]) == 2 and all(c["mechanisms"] for c in details["contacts"])

    kept_now, dup_now = ps.get_party(ctx, kept.id), ps.get_party(ctx, dup.id)
    assert dup_now.merged_into_id == kept.id and dup_now.archived_at is not None
    assert kept_now.merged_into_id is None and kept_now.archived_at is None
    assert kept_now.is_customer and kept_now.tax_id == "BE0999"  # flags combine, empty fields fill
    assert details["prospect_status"].value == "new"  # kept had one: it stays

    assert (trace.kept_party_id, trace.merged_party_id, trace.custom_rule) == (kept.id, dup.id, "fill")
    assert trace.snapshot["party"]["name"] == "ACME sa" and trace.snapshot["tags"] == ["Old", "VIP"]
    assert trace.snapshot["sales_rep_ids"] == sorted([reps["shared_rep"], reps["own_rep"]])
    assert trace.moved["contacts"] == 2 and trace.moved["records"] == 2 and trace.moved["party_tags"] == 1
    assert trace.moved["dropped"] == {"contact_mechanisms": 1, "party_tags": 1, "party_sales_reps": 1}
    # the preview said what would happen
    assert {k: v for k, v in trace.moved.items() if k != "dropped"} == preview["moves"]
    assert preview["dropped"] == trace.moved["dropped"]
    events = ctx.session.scalars(select(TimelineEvent.kind).where(TimelineEvent.party_id == kept.id)).all()
    assert "party_merged" in events and events.count("party_created") == 2  # the duplicate's feed came along


def test_merged_party_is_retired(ctx, pair):
    kept, dup, _ = pair
    ps.merge_parties(ctx, kept.id, dup.id)
    assert [p.id for p in ps.list_parties(ctx).items] == [kept.id]
    assert [p.id for p in ps.find_duplicates(ctx, name="acme")] == [kept.id]
    assert ps.party_details(ctx, dup.id)["merged_into"].id == kept.id
    for call in (lambda: ps.update_party(ctx, dup.id, {"name": "Back"}),
                 lambda: ps.unarchive_party(ctx, dup.id),
                 lambda: ps.add_tags(ctx, dup.id, ["x"]),
                 lambda: ps.add_address(ctx, dup.id, {"line1": "x"})):
        with pytest.raises(Conflict):
            call()


def test_refusals_write_nothing(ctx, other_ctx, pair, business, make_user):
    kept, dup, _ = pair
    theirs = ps.create_party(other_ctx, {"name": "Theirs"})
    with pytest.raises(ValidationFailed) as exc:
        ps.merge_parties(ctx, kept.id, kept.id)
    assert "itself" in exc.value.message
    with pytest.raises(NotFound):
        ps.merge_parties(ctx, kept.id, theirs.id)
    with pytest.raises(NotFound):
        ps.merge_parties(ctx, theirs.id, kept.id)
    with pytest.raises(NotFound):
        ps.merge_preview(ctx, kept.id, theirs.id)
    with pytest.raises(ValidationFailed) as exc:
        ps.merge_parties(ctx, kept.id, dup.id, custom_rule="newest")
    assert "custom_rule" in exc.value.errors
    with pytest.raises(PermissionDenied):
        ps.merge_parties(make_user(business, "read_only"), kept.id, dup.id)
    assert rows(ctx, PartyMerge) == 0 and rows(ctx, Contact, party_id=dup.id) == 2

    third = ps.create_party(ctx, {"name": "Third"})
    ps.merge_parties(ctx, kept.id, dup.id)
    with pytest.raises(Conflict) as exc:
        ps.merge_parties(ctx, third.id, dup.id)
    assert "already merged" in exc.value.message
    with pytest.raises(Conflict):
        ps.merge_parties(ctx, dup.id, third.id)
    with pytest.raises(Conflict):
        ps.merge_preview(ctx, third.id, dup.id)
    assert rows(ctx, PartyMerge) == 1
    assert ps.get_party(other_ctx, theirs.id).merged_into_id is None


@pytest.mark.parametrize(("rule", "expected"), [
    ("fill", {"region": "North", "size": "big", "code": "K"}),
    ("duplicate", {"region": "South", "size": "big", "code": "K"}),
    ("keep", {"region": "North", "code": "K"}),
])
def test_custom_values_follow_the_rule(ctx, rule, expected):
    for key in ("region", "size", "code"):
        fields.define_field(ctx, "party", {"key": key, "label": key.title(), "type": "text"})
    kept = ps.create_party(ctx, {"name": "K", "custom": {"region": "North", "code": "K"}})
    dup = ps.create_party(ctx, {"name": "D", "custom": {"region": "South", "size": "big", "code": ""}})
    preview = ps.merge_preview(ctx, kept.id, dup.id)
    assert preview["custom_conflicts"] == [{"key": "region", "kept": "North", "duplicate": "South"}]
    assert preview["custom"][rule] == expected
    trace = ps.merge_parties(ctx, kept.id, dup.id, custom_rule=rule)
    assert ps.get_party(ctx, kept.id).custom == expected
    assert trace.snapshot["party"]["custom"] == {"region": "South", "size": "big"}


class MergePlugin:
    def __init__(self, veto=False):
        self.veto = veto
        self.seen = []
        self.after = []

    @hookimpl
    def crm_before_party_merge(self, ctx, kept, duplicate):
        # the core's rows have moved already; the duplicate is not retired yet
        moved = ctx.session.scalar(select(func.count()).select_from(Contact).where(Contact.party_id == kept.id))
        self.seen.append((kept.id, duplicate.id, moved, duplicate.merged_into_id))
        # a plugin re-points its own rows here; a core row stands in for them in this test
        ctx.session.add(Note(party_id=kept.id, body=f"moved by plugin from {duplicate.id}"))
        if self.veto:
            raise Veto("an open invoice still points at the duplicate")

    @hookimpl
    def crm_after_party_merged(self, ctx, kept, duplicate_id):
        self.after.append((kept.id, duplicate_id))


def test_hooks_run_inside_and_after_the_merge(ctx, pair, register_plugin):
    kept, dup, _ = pair
    plugin = MergePlugin()
    register_plugin(plugin, enable_for=ctx)
    ps.merge_parties(ctx, kept.id, dup.id)
    assert plugin.seen == [(kept.id, dup.id, 2, None)]
    assert plugin.after == [(kept.id, dup.id)]
    assert rows(ctx, Note, party_id=kept.id) == 2


def test_a_veto_rolls_the_whole_merge_back(ctx, pair, register_plugin):
    kept, dup, _ = pair
    plugin = MergePlugin(veto=True)
    register_plugin(plugin, enable_for=ctx)
    with pytest.raises(Veto) as exc:
        ps.merge_parties(ctx, kept.id, dup.id)
    assert "open invoice" in exc.value.message
    assert plugin.after == []
    assert rows(ctx, PartyMerge) == 0
    assert rows(ctx, Contact, party_id=dup.id) == 2 and rows(ctx, Record, party_id=dup.id) == 2
    assert rows(ctx, PartyTag, party_id=dup.id) == 2 and rows(ctx, PartySalesRep, party_id=dup.id) == 2
    assert rows(ctx, ContactMechanism, party_id=dup.id) == 3
    assert rows(ctx, Note, party_id=kept.id) == 0
    assert ps.get_party(ctx, dup.id).merged_into_id is None


def test_merge_stays_in_its_business(ctx, other_ctx, pair):
    kept, dup, _ = pair
    theirs_kept = ps.create_party(other_ctx, {"name": "TK", "tags": ["VIP"]})
    theirs_dup = ps.create_party(other_ctx, {"name": "TD", "tags": ["VIP"]})
    add_rows(other_ctx, theirs_dup.id)
    ps.merge_parties(ctx, kept.id, dup.id)
    assert rows(other_ctx, Record, party_id=theirs_dup.id) == 2
    assert rows(other_ctx, PartyTag, party_id=theirs_dup.id) == 1
    ps.merge_parties(other_ctx, theirs_kept.id, theirs_dup.id)
    assert rows(other_ctx, Record, party_id=theirs_kept.id) == 2
    assert rows(ctx, Record, party_id=kept.id) == 3


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kept_tags=st.sets(st.sampled_from("abcde")), dup_tags=st.sets(st.sampled_from("abcde")),
       kept_reps=st.sets(st.integers(0, 2)), dup_reps=st.sets(st.integers(0, 2)))
def test_overlapping_tags_and_reps_end_as_the_union(ctx, three_reps, kept_tags, dup_tags, kept_reps, dup_reps):
    kept = ps.create_party(ctx, {"name": "K", "tags": sorted(kept_tags),
                                 "sales_rep_ids": [three_reps[i] for i in sorted(kept_reps)]})
    dup = ps.create_party(ctx, {"name": "D", "tags": sorted(dup_tags),
                                "sales_rep_ids": [three_reps[i] for i in sorted(dup_reps)]})
    trace = ps.merge_parties(ctx, kept.id, dup.id)
    details = ps.party_details(ctx, kept.id)
    assert {t.name for t in details["tags"]} == kept_tags | dup_tags
    assert {u.id for u in details["sales_reps"]} == {three_reps[i] for i in kept_reps | dup_reps}
    assert trace.moved.get("party_tags", 0) == len(dup_tags - kept_tags)
    assert trace.moved.get("dropped", {}).get("party_tags", 0) == len(dup_tags & kept_tags)
    assert rows(ctx, PartyTag, party_id=dup.id) == 0


@pytest.fixture
def three_reps(business, make_user):
    return [make_user(business).user_id for _ in range(3)]


def test_merge_chain_keeps_each_trace(ctx):
    a, b, c = (ps.create_party(ctx, {"name": n}) for n in "abc")
    ps.merge_parties(ctx, b.id, a.id)
    ps.merge_parties(ctx, c.id, b.id)
    assert ps.get_party(ctx, a.id).merged_into_id == b.id
    assert ps.get_party(ctx, b.id).merged_into_id == c.id
    assert rows(ctx, PartyMerge) == 2
    assert rows(ctx, Party, merged_into_id=None) == 1
