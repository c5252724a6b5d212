"""Pipeline administration: seeded defaults, pipelines, stages, order, archiving."""

from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select

from crmcore.audit.models import AuditEntry
from crmcore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crmcore.pipelines import service as pipelines
from crmcore.pipelines.models import Pipeline, Stage

DEAL_STAGES = [
    ("Qualification", "open", 10), ("Needs analysis", "open", 25), ("Proposal", "open", 50),
    ("Negotiation", "open", 75), ("Won", "won", 100), ("Lost", "lost", 0),
]


def _stages(kinds="open,open,won,lost"):
    return [{"name": f"S{i} {k}", "kind": k} for i, k in enumerate(kinds.split(","))]


def _pipeline(ctx, record_type="deal", name="Renewals", kinds="open,open,won,lost", **extra):
    return pipelines.create_pipeline(ctx, record_type, {"name": name, "stages": _stages(kinds), **extra})


def _positions(pipeline):
    return [s.position for s in pipeline.stages]


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


def test_new_business_has_default_pipelines(ctx):
    found = {p.record_type: p for p in pipelines.list_pipelines(ctx)}
    assert set(found) == {"lead", "deal", "incident", "action"}
    sales = found["deal"]
    assert sales.name == "Sales" and sales.is_default
    assert [(s.name, s.kind, s.probability) for s in sales.stages] == DEAL_STAGES
    assert [(s.name, s.kind) for s in found["lead"].stages] == [
        ("New", "open"), ("Contacted", "open"), ("Qualified", "won"), ("Disqualified", "lost")]
    assert [(s.name, s.kind) for s in found["incident"].stages] == [
        ("Open", "open"), ("In progress", "open"), ("Waiting for customer", "open"),
        ("Resolved", "won"), ("Closed unresolved", "lost")]
    assert [(s.name, s.kind) for s in found["action"].stages] == [
        ("To do", "open"), ("In progress", "open"), ("Done", "won"), ("Cancelled", "lost")]
    for pipeline in found.values():
        assert _positions(pipeline) == list(range(len(pipeline.stages)))


def test_seeding_twice_adds_nothing(ctx):
    from crmcore.context import use_case
    from crmcore.tenancy.models import Role

    @use_case(Role.OWNER)
    def seed(c):
        pipelines.seed_defaults(c)

    seed(ctx)
    assert ctx.session.scalar(select(func.count()).select_from(Pipeline)) == 4


def test_businesses_do_not_see_each_others_pipelines(ctx, other_ctx):
    mine = _pipeline(ctx)
    assert mine.id not in {p.id for p in pipelines.list_pipelines(other_ctx, "deal")}
    with pytest.raises(NotFound):
        pipelines.get_pipeline(other_ctx, mine.id)
    with pytest.raises(NotFound):
        pipelines.rename_pipeline(other_ctx, mine.id, "Mine now")
    with pytest.raises(NotFound):
        pipelines.archive_stage(other_ctx, mine.stages[0].id)


def test_create_pipeline(ctx):
    pipeline = pipelines.create_pipeline(ctx, "deal", {
        "name": "  Renewals ", "stages": [
            {"name": "Due", "kind": "open", "probability": 40},
            {"name": "Renewed", "kind": "won"},
            {"name": "Churned", "kind": "lost"},
        ]})
    assert pipeline.name == "Renewals" and not pipeline.is_default
    assert [(s.name, s.kind, s.probability, s.position) for s in pipeline.stages] == [
        ("Due", "open", 40, 0), ("Renewed", "won", 100, 1), ("Churned", "lost", 0, 2)]
    entry = ctx.session.scalar(select(AuditEntry).where(AuditEntry.action == "pipeline.created",
                                                        AuditEntry.entity_id == pipeline.id))
    assert entry.changes["stages"][0] == ["Due", "open", 40]


@pytest.mark.parametrize("kinds, message", [
    ("open,open,won", "at least one lost stage"),
    ("open,lost,lost", "at least one won stage"),
    ("won,lost,lost", "at least one open stage"),
])
def test_pipeline_needs_open_won_and_lost_stages(ctx, kinds, message):
    with pytest.raises(ValidationFailed) as exc:
        _pipeline(ctx, kinds=kinds)
    assert any(message in m for m in exc.value.errors["stages"])
    assert pipelines.list_pipelines(ctx, "deal")[-1].name == "Sales"


@pytest.mark.parametrize("data, field", [
    ({"stages": _stages()}, "name"),
    ({"name": "", "stages": _stages()}, "name"),
    ({"name": "x" * 101, "stages": _stages()}, "name"),
    ({"name": "P"}, "stages"),
    ({"name": "P", "stages": _stages("open,won")}, "stages"),
    ({"name": "P", "stages": [{"name": "A", "kind": "maybe"}, *_stages()]}, "stages"),
    ({"name": "P", "stages": [{"name": "A", "probability": 101}, *_stages()]}, "stages"),
    ({"name": "P", "stages": _stages(), "color": "red"}, "color"),
])
def test_create_pipeline_rejects_bad_input(ctx, data, field):
    with pytest.raises(ValidationFailed) as exc:
        pipelines.create_pipeline(ctx, "deal", data)
    assert field in exc.value.errors
    assert ctx.session.scalar(select(func.count()).select_from(Pipeline)) == 4


def test_pipeline_names_are_unique_per_type_and_stage_names_per_pipeline(ctx):
    with pytest.raises(ValidationFailed) as exc:
        _pipeline(ctx, name="sales")
    assert "already exists" in exc.value.errors["name"][0]
    _pipeline(ctx, record_type="incident", name="Renewals")
    _pipeline(ctx, record_type="deal", name="Renewals")
    with pytest.raises(ValidationFailed) as exc:
        pipelines.create_pipeline(ctx, "deal", {"name": "Dup", "stages": [
            {"name": "A"}, {"name": "a"}, {"name": "W", "kind": "won"}, {"name": "L", "kind": "lost"}]})
    assert "used more than once" in exc.value.errors["stages"][0]


def test_unknown_record_type(ctx):
    with pytest.raises(ValidationFailed) as exc:
        _pipeline(ctx, record_type="spaceship")
    assert "type" in exc.value.errors
    with pytest.raises(ValidationFailed):
        pipelines.list_pipelines(ctx, "spaceship")


def test_only_admins_configure_pipelines(ctx, business, make_user):
    member = make_user(business, "member")
    reader = make_user(business, "read_only")
    sales = pipelines.list_pipelines(reader, "deal")[0]
    with pytest.raises(PermissionDenied):
        _pipeline(member)
    with pytest.raises(PermissionDenied):
        pipelines.add_stage(member, sales.id, {"name": "X"})
    with pytest.raises(PermissionDenied):
        pipelines.reorder_stages(reader, sales.id, [s.id for s in sales.stages])
    admin = make_user(business, "admin")
    assert _pipeline(admin).name == "Renewals"


def test_default_pipeline(ctx):
    sales = pipelines.list_pipelines(ctx, "deal")[0]
    other = _pipeline(ctx, is_default=True)
    ctx.session.expire_all()
    assert pipelines.get_pipeline(ctx, other.id).is_default
    assert not pipelines.get_pipeline(ctx, sales.id).is_default
    pipelines.set_default_pipeline(ctx, sales.id)
    defaults = ctx.session.scalars(select(Pipeline.id).where(Pipeline.record_type == "deal",
                                                             Pipeline.is_default.is_(True))).all()
    assert defaults == [sales.id]


def test_rename_and_archive_pipeline(ctx):
    sales = pipelines.list_pipelines(ctx, "deal")[0]
    other = _pipeline(ctx)
    assert pipelines.rename_pipeline(ctx, other.id, " Upsell ").name == "Upsell"
    with pytest.raises(ValidationFailed):
        pipelines.rename_pipeline(ctx, other.id, "SALES")
    with pytest.raises(Conflict, match="default"):
        pipelines.archive_pipeline(ctx, sales.id)
    pipelines.archive_pipeline(ctx, other.id)
    assert [p.name for p in pipelines.list_pipelines(ctx, "deal")] == ["Sales"]
    assert [p.name for p in pipelines.list_pipelines(ctx, "deal", include_archived=True)] == ["Sales", "Upsell"]
    with pytest.raises(Conflict, match="archived"):
        pipelines.set_default_pipeline(ctx, other.id)
    pipelines.restore_pipeline(ctx, other.id)
    assert len(pipelines.list_pipelines(ctx, "deal")) == 2


def test_add_stage_goes_before_closing_stages_by_default(ctx):
    sales = pipelines.list_pipelines(ctx, "deal")[0]
    stage = pipelines.add_stage(ctx, sales.id, {"name": "Contract", "probability": 90})
    names = [s.name for s in pipelines.get_pipeline(ctx, sales.id).stages]
    assert names == ["Qualification", "Needs analysis", "Proposal", "Negotiation", "Contract", "Won", "Lost"]
    assert stage.position == 4
    pipelines.add_stage(ctx, sales.id, {"name": "Lead in", "position": 0})
    pipelines.add_stage(ctx, sales.id, {"name": "Lost to nobody", "kind": "lost"})
    refreshed = pipelines.get_pipeline(ctx, sales.id)
    assert [s.name for s in refreshed.stages][0] == "Lead in"
    assert refreshed.stages[-1].name == "Lost to nobody" and refreshed.stages[-1].probability == 0
    assert _positions(refreshed) == list(range(9))
    with pytest.raises(ValidationFailed) as exc:
        pipelines.add_stage(ctx, sales.id, {"name": "won"})
    assert "already has a stage" in exc.value.errors["name"][0]


def test_update_stage(ctx):
    sales = pipelines.list_pipelines(ctx, "deal")[0]
    stage = pipelines.update_stage(ctx, sales.stages[0].id, {"name": "Discovery", "probability": 5})
    assert (stage.name, stage.probability) == ("Discovery", 5)
    with pytest.raises(ValidationFailed) as exc:
        pipelines.update_stage(ctx, sales.stages[0].id, {"name": "Proposal"})
    assert "name" in exc.value.errors
    # the only won stage cannot become open: the pipeline would have no won stage
    with pytest.raises(ValidationFailed) as exc:
        pipelines.update_stage(ctx, sales.stages[4].id, {"kind": "open"})
    assert "won stage" in exc.value.errors["kind"][0]
    # an empty open stage may become a second won stage
    assert pipelines.update_stage(ctx, sales.stages[3].id, {"kind": "won"}).kind == "won"
    with pytest.raises(ValidationFailed):
        pipelines.update_stage(ctx, sales.stages[3].id, {"kind": "closed"})


def test_reorder_stages(ctx):
    sales = pipelines.list_pipelines(ctx, "deal")[0]
    ids = [s.id for s in sales.stages]
    wanted = [ids[5], ids[4], ids[0], ids[1], ids[2], ids[3]]
    result = pipelines.reorder_stages(ctx, sales.id, wanted)
    assert [s.id for s in result.stages] == wanted
    assert _positions(pipelines.get_pipeline(ctx, sales.id)) == list(range(6))


@pytest.mark.parametrize("mangle, message", [
    (lambda ids: ids[:-1], "missing"),
    (lambda ids: [*ids, ids[0]], "more than once"),
    (lambda ids: [*ids[:-1], 999_999], "not active stages"),
])
def test_reorder_needs_a_permutation(ctx, mangle, message):
    sales = pipelines.list_pipelines(ctx, "deal")[0]
    ids = [s.id for s in sales.stages]
    with pytest.raises(ValidationFailed) as exc:
        pipelines.reorder_stages(ctx, sales.id, mangle(ids))
    assert any(message in m for m in exc.value.errors["stage_ids"])
    assert [s.id for s in pipelines.get_pipeline(ctx, sales.id).stages] == ids


def test_archive_stage_keeps_positions_a_permutation(ctx):
    sales = pipelines.list_pipelines(ctx, "deal")[0]
    needs = sales.stages[1]
    pipelines.archive_stage(ctx, needs.id)
    refreshed = pipelines.get_pipeline(ctx, sales.id)
    assert [s.name for s in refreshed.active_stages()] == ["Qualification", "Proposal", "Negotiation", "Won", "Lost"]
    assert _positions(refreshed) == list(range(6))
    assert refreshed.stages[-1].id == needs.id
    active = [s.id for s in refreshed.active_stages()]
    with pytest.raises(ValidationFailed):  # an archived stage is not part of the order
        pipelines.reorder_stages(ctx, sales.id, [*active, needs.id])
    pipelines.reorder_stages(ctx, sales.id, list(reversed(active)))
    assert _positions(pipelines.get_pipeline(ctx, sales.id)) == list(range(6))
    pipelines.restore_stage(ctx, needs.id)
    assert pipelines.get_pipeline(ctx, sales.id).active_stages()[-1].id == needs.id


def test_archive_stage_keeps_one_stage_of_each_kind(ctx):
    ids = [s.id for s in pipelines.list_pipelines(ctx, "deal")[0].stages]
    with pytest.raises(Conflict, match="won stage"):
        pipelines.archive_stage(ctx, ids[4])
    with pytest.raises(Conflict, match="lost stage"):
        pipelines.archive_stage(ctx, ids[5])
    for stage_id in ids[:3]:
        pipelines.archive_stage(ctx, stage_id)
    with pytest.raises(Conflict, match="open stage"):
        pipelines.archive_stage(ctx, ids[3])


def test_archive_stage_refused_while_open_records_sit_in_it(ctx):
    from crmcore.records import service as records

    sales = pipelines.list_pipelines(ctx, "deal")[0]
    for n in range(3):
        records.create_record(ctx, "deal", {"title": f"Deal {n}"})
    with pytest.raises(Conflict, match="3 open records are in stage 'Qualification'"):
        pipelines.archive_stage(ctx, sales.stages[0].id)
    with pytest.raises(Conflict, match="holds 3 records"):
        pipelines.update_stage(ctx, sales.stages[0].id, {"kind": "won"})
    assert ctx.session.get(Stage, sales.stages[0].id).archived_at is None


def test_list_pipelines_loads_stages_in_one_query(ctx):
    for n in range(4):
        _pipeline(ctx, name=f"Extra {n}")
    ctx.session.expunge_all()
    with count_queries(ctx) as statements:
        found = pipelines.list_pipelines(ctx)
        names = [s.name for p in found for s in p.stages]
    assert len(found) == 8 and len(names) > 30
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert sum("FROM stages" in s for s in selects) == 1
    assert sum("FROM pipelines" in s for s in selects) == 1
