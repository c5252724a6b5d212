"""The per-business configuration cache (crmcore.tenancy.config): what a write reads without a
statement, and that every configuration change is seen at once by every context and process."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select, update

from crmcore import hookimpl
from crmcore.audit import service as audit
from crmcore.context import Context, use_case
from crmcore.db import Database
from crmcore.errors import ValidationFailed
from crmcore.fields import service as fields
from crmcore.lists import service as lists
from crmcore.lists.models import ChoiceOption
from crmcore.numbering import service as numbering
from crmcore.parties import service as parties
from crmcore.pipelines import service as pipelines
from crmcore.records import service as records
from crmcore.runtime import Crm
from crmcore.tenancy import config
from crmcore.tenancy.models import Business, Role
from crmcore.tenancy.service import add_member, remove_member


@pytest.fixture
def worker(crm: Crm, business) -> Context:
    """The same business as ``ctx``, through a second installation object on the same database:
    its own engine and its own cache, like a second gunicorn worker."""
    second = Crm(config=crm.config, db=Database(crm.config.database_url), registry=crm.registry)
    context = Context.open(second, business.slug, f"owner@{business.slug}.example")
    yield context
    context.close()
    second.db.dispose()


class Statements:
    """The SQL statements an engine runs while ``on``."""

    def __init__(self, crm: Crm) -> None:
        self.seen: list[str] = []
        self.on = False
        event.listen(crm.db.engine, "before_cursor_execute", self._record)

    def _record(self, _conn, _cursor, statement, *_args) -> None:
        if self.on:
            self.seen.append(" ".join(statement.split()))

    def during(self, fn, *args, **kwargs):
        self.seen.clear()
        self.on = True
        try:
            return fn(*args, **kwargs)
        finally:
            self.on = False

    def reading(self, table: str) -> list[str]:
        return [s for s in self.seen if s.startswith("SELECT") and f"FROM {table}" in s]


def _party(ctx: Context, **data):
    return parties.create_party(ctx, {"kind": "organisation", "name": "Cached Ltd", **data})


@use_case(Role.READ_ONLY, write=False)
def _option(ctx: Context, list_key: str, value: str):
    """Resolve in a transaction of its own (as a request would): reads outside use cases share
    one transaction, and with it one configuration version."""
    return lists.resolve_option(ctx, list_key, value, field="x")


def _version(ctx: Context) -> int:
    ctx.session.rollback()
    return ctx.session.scalar(select(Business.config_version).where(Business.id == ctx.business_id))


# --------------------------------------------------------------------------------------------
# what is cached


def test_a_warm_create_reads_no_configuration_rows(crm, ctx):
    statements = Statements(crm)
    _party(ctx, tags=["vip"], custom={})
    party = statements.during(_party, ctx, tags=["vip"], custom={})
    for table in ("choice_options", "field_definitions", "numbering_rules", "memberships"):
        assert statements.reading(table) == [], table
    assert party.prospect_status_id == _option(ctx, "prospect_status", "new").id
    assert party.reference.startswith("CU")


def test_a_warm_stage_move_reads_no_pipeline_rows(crm, ctx):
    deal = records.create_record(ctx, "deal", {"title": "Cached deal"})
    sales = pipelines.get_pipeline(ctx, deal.pipeline_id)
    open_ids = [s.id for s in sales.stages if s.kind == "open"]
    records.move_stage(ctx, deal.id, open_ids[1])
    statements = Statements(crm)
    moved = statements.during(records.move_stage, ctx, deal.id, open_ids[2])
    assert moved.stage_id == open_ids[2]
    assert statements.reading("pipelines") == [] and statements.reading("stages") == []


def test_ordinary_writes_do_not_bump_the_version(ctx):
    before = _version(ctx)
    party = _party(ctx, tags=["x"])
    parties.update_party(ctx, party.id, {"name": "Renamed"})
    records.create_record(ctx, "deal", {"title": "d", "party_id": party.id})
    assert _version(ctx) == before


# --------------------------------------------------------------------------------------------
# invalidation: another context of the same process, and another "worker" (its own cache)


@pytest.mark.parametrize("other", ["same_process", "other_worker"])
def test_list_changes_are_seen_without_restart(request, ctx, business, make_user, other):
    admin = make_user(business, "admin") if other == "same_process" else request.getfixturevalue("worker")
    assert _party(ctx).prospect_status_id == _option(ctx, "prospect_status", "new").id  # warms the cache
    new = _option(admin, "prospect_status", "new")
    lists.deactivate_option(admin, new.id)
    contacted = _option(ctx, "prospect_status", "contacted")
    assert _party(ctx).prospect_status_id == contacted.id  # the default is the first active option
    with pytest.raises(ValidationFailed, match="has been deactivated"):
        _party(ctx, prospect_status="new")
    lists.add_option(admin, "prospect_status", {"value": "hot", "label": "Hot"})
    assert _party(ctx, prospect_status="hot").prospect_status_id == _option(ctx, "prospect_status", "hot").id
    lists.update_option(admin, _option(admin, "prospect_status", "hot").id, {"label": "Very hot"})
    assert _option(ctx, "prospect_status", "hot").label == "Very hot"


@pytest.mark.parametrize("other", ["same_process", "other_worker"])
def test_numbering_rule_changes_are_seen_without_restart(request, ctx, other):
    admin = request.getfixturevalue("worker") if other == "other_worker" else ctx
    assert _party(ctx).reference.startswith("CU")
    numbering.set_rule(admin, "party", "P-{0000}")
    assert _party(ctx).reference == "P-0001"
    numbering.set_rule(admin, "party", "P-{0000}", is_active=False)
    assert _party(ctx).reference is None
    numbering.set_rule(admin, "party", "Q-{0000}", is_active=True)
    assert _party(ctx).reference == "Q-0002"  # same period key: the counter goes on


@pytest.mark.parametrize("other", ["same_process", "other_worker"])
def test_field_definition_changes_are_seen_without_restart(request, ctx, other):
    admin = request.getfixturevalue("worker") if other == "other_worker" else ctx
    with pytest.raises(ValidationFailed, match="custom"):
        _party(ctx, custom={"size": 5})
    field = fields.define_field(admin, "party", {"key": "size", "label": "Size", "type": "integer"})
    assert _party(ctx, custom={"size": 5}).custom == {"size": 5}
    fields.update_field(admin, field.id, {"required": True})
    with pytest.raises(ValidationFailed) as exc:
        _party(ctx)
    assert exc.value.errors["custom"] == {"size": ["This field is required."]}
    fields.archive_field(admin, field.id)
    assert _party(ctx).custom == {}
    with pytest.raises(ValidationFailed, match="custom"):
        _party(ctx, custom={"size": 6})


@pytest.mark.parametrize("other", ["same_process", "other_worker"])
def test_membership_changes_are_seen_without_restart(request, ctx, business, make_user, other):
    admin = request.getfixturevalue("worker") if other == "other_worker" else ctx
    rep = make_user(business, "member")
    assert _party(ctx, sales_rep_ids=[rep.user_id]).id
    remove_member(admin, rep.user_id)
    with pytest.raises(ValidationFailed, match="not a member"):
        _party(ctx, sales_rep_ids=[rep.user_id])
    add_member(admin, rep.user.email, "member")
    assert _party(ctx, sales_rep_ids=[rep.user_id]).id


@pytest.mark.parametrize("other", ["same_process", "other_worker"])
def test_stage_changes_are_seen_without_restart(request, ctx, other):
    admin = request.getfixturevalue("worker") if other == "other_worker" else ctx
    deal = records.create_record(ctx, "deal", {"title": "Moving"})
    sales = pipelines.get_pipeline(ctx, deal.pipeline_id)
    first, target = [(s.id, s.name) for s in sales.stages if s.kind == "open"][:2]
    assert deal.stage_id == first[0]
    records.move_stage(ctx, deal.id, target[0])  # warms the cache
    records.move_stage(ctx, deal.id, first[0])
    pipelines.archive_stage(admin, target[0])
    with pytest.raises(ValidationFailed, match="archived"):
        records.move_stage(ctx, deal.id, target[0])
    added = pipelines.add_stage(admin, sales.id, {"name": "Demo", "kind": "open"})
    assert records.move_stage(ctx, deal.id, added.id).stage_id == added.id
    pipelines.update_stage(admin, added.id, {"name": "Live demo"})
    records.move_stage(ctx, deal.id, first[0])
    assert audit.history(ctx, "record", deal.id)[0].changes["stage"] == ["Live demo", first[1]]


# --------------------------------------------------------------------------------------------
# the changing transaction itself, rollbacks, statements that bypass flush


def test_a_transaction_sees_its_own_changes_and_a_rollback_leaves_no_trace(ctx):
    class Undo(Exception):
        pass

    @use_case(Role.ADMIN)
    def add_and_use(c: Context, fail: bool) -> tuple[str, str]:
        lists.add_option(c, "prospect_status", {"value": "warm", "label": "Warm"})
        warm = _option(c, "prospect_status", "warm")
        lists.update_option(c, warm.id, {"label": "Lukewarm"})  # pending, not flushed yet
        label = _option(c, "prospect_status", "warm").label
        status = parties.create_party(c, {"kind": "organisation", "name": "Inside", "prospect_status": "warm"})
        if fail:
            raise Undo
        return label, status.prospect_status_id

    _option(ctx, "prospect_status", "new")  # warm the cache before
    with pytest.raises(Undo):
        add_and_use(ctx, True)
    with pytest.raises(ValidationFailed, match="not in the prospect status list"):
        _option(ctx, "prospect_status", "warm")
    label, status_id = add_and_use(ctx, False)
    assert label == "Lukewarm" and status_id == _option(ctx, "prospect_status", "warm").id


def test_a_change_after_a_rolled_back_savepoint_still_bumps(ctx, worker):
    assert _option(worker, "prospect_status", "new").label == "New"  # the worker's cache is warm

    @use_case(Role.ADMIN)
    def change(c: Context) -> None:
        savepoint = c.session.begin_nested()
        lists.add_option(c, "prospect_status", {"value": "gone", "label": "Gone"})  # bumps, inside
        savepoint.rollback()
        lists.update_option(c, _option(c, "prospect_status", "new").id, {"label": "Brand new"})

    before = _version(ctx)
    change(ctx)
    assert _version(ctx) == before + 1
    assert _option(worker, "prospect_status", "new").label == "Brand new"
    with pytest.raises(ValidationFailed):
        _option(worker, "prospect_status", "gone")


def test_bulk_statements_on_config_tables_bump_the_version(ctx, other_ctx):
    _option(ctx, "prospect_status", "new")
    before, theirs = _version(ctx), _version(other_ctx)

    @use_case(Role.ADMIN)
    def rename_all(c: Context) -> None:
        c.session.execute(update(ChoiceOption).where(ChoiceOption.value == "new").values(label="Fresh"))

    rename_all(ctx)
    assert _version(ctx) == before + 1 and _version(other_ctx) == theirs
    assert _option(ctx, "prospect_status", "new").label == "Fresh"
    assert _option(other_ctx, "prospect_status", "new").label == "New"


def test_config_changed_by_hand_for_raw_connection_writes(ctx):
    _option(ctx, "prospect_status", "new")
    table = ChoiceOption.__table__

    @use_case(Role.ADMIN)
    def raw(c: Context) -> None:
        c.session.connection().execute(  # Core on the raw connection: scoped by hand, bumped by hand
            update(table).where(table.c.business_id == c.business_id, table.c.value == "new").values(label="Raw"))
        config.config_changed(c.session)

    raw(ctx)
    assert _option(ctx, "prospect_status", "new").label == "Raw"


def test_a_plugin_registers_its_own_config_model(ctx, monkeypatch):
    from crmcore.parties.models import Tag

    monkeypatch.setattr(config, "CONFIG_MODELS", set(config.CONFIG_MODELS))
    monkeypatch.setattr(config, "_tables", {})
    before = _version(ctx)
    _party(ctx, tags=["not config yet"])
    assert _version(ctx) == before
    config.register_config_model(Tag)
    _party(ctx, tags=["config now"])  # a new Tag row: flushed through the session
    assert _version(ctx) == before + 1


def test_caches_are_per_business(ctx, other_ctx):
    lists.add_option(ctx, "prospect_status", {"value": "mine", "label": "Mine"})
    assert _option(ctx, "prospect_status", "mine").label == "Mine"
    with pytest.raises(ValidationFailed):
        _option(other_ctx, "prospect_status", "mine")
    mine = _option(ctx, "prospect_status", "mine")
    with pytest.raises(ValidationFailed):  # another business's option id is unknown here
        lists.resolve_option(other_ctx, "prospect_status", mine.id, field="x")


def test_tags_attach_within_the_business(ctx, other_ctx):
    mine = _party(ctx, tags=["VIP"])
    theirs = _party(other_ctx, tags=["vip", "Export"])
    again = _party(ctx, tags=["vip", "New one"])
    names = {p: [t.name for t in parties.party_details(c, p.id)["tags"]]
             for c, p in ((ctx, mine), (other_ctx, theirs), (ctx, again))}
    assert names == {mine: ["VIP"], theirs: ["Export", "vip"], again: ["New one", "VIP"]}


def test_a_pipeline_newer_than_the_cached_version_is_read_from_its_rows(ctx, register_plugin, monkeypatch):
    """Under READ COMMITTED a record may sit in a pipeline or stage committed after this
    transaction read its configuration version: the move reads those rows instead."""
    seen = []

    class Watcher:
        @hookimpl
        def crm_before_stage_change(self, ctx, record, from_stage, to_stage):
            seen.append((type(from_stage).__name__, from_stage.name, to_stage.name))

    register_plugin(Watcher(), enable_for=ctx)
    deal = records.create_record(ctx, "deal", {"title": "Racing"})
    sales = pipelines.get_pipeline(ctx, deal.pipeline_id)
    first, second = [(s.id, s.name) for s in sales.stages if s.kind == "open"][:2]
    monkeypatch.setattr(records, "_load_pipelines", lambda c: {})
    monkeypatch.setattr(config, "_caches", type(config._caches)())
    assert records.move_stage(ctx, deal.id, second[0]).stage_id == second[0]
    assert seen == [("Stage", first[1], second[1])]
