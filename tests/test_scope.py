"""The tenant scope is one mandatory layer: every tenant-owned model, every query path."""

import pytest
from sqlalchemy import select, update

from crmcore.db import Base, tenant_classes
from crmcore.errors import ScopeError
from crmcore.lists.models import ChoiceOption


def _option(ctx, value):
    row = ChoiceOption(list_key="test", value=value, label=value)
    ctx.session.add(row)
    ctx.session.commit()
    return row


def test_every_table_with_business_id_is_tenant_scoped():
    import crmcore.models  # noqa: F401
    from crmcore.testing import all_metadata

    # the core's tables and those of every installed plugin (own MetaData, registered model_base)
    tables = [t for meta in all_metadata() for t in meta.sorted_tables]
    assert Base.metadata in all_metadata()
    scoped = {cls.__table__.name for cls in tenant_classes()}
    with_column = {t.name for t in tables if "business_id" in t.c}
    # every table with business_id is scoped (tests may register further scoped plugin models)
    assert with_column <= scoped, with_column - scoped
    # and every tenant table leads at least one index with business_id
    for table in tables:
        if "business_id" not in table.c:
            continue
        leading = [list(ix.columns)[0].name for ix in table.indexes]
        leading += [list(uc.columns)[0].name for uc in table.constraints if hasattr(uc, "columns")
                    and uc.columns and type(uc).__name__ == "UniqueConstraint"]
        assert "business_id" in leading, f"{table.name} has no index led by business_id"


def test_select_sees_only_own_business(ctx, other_ctx):
    _option(ctx, "mine")
    theirs = _option(other_ctx, "theirs")
    values = set(ctx.session.scalars(select(ChoiceOption.value).where(ChoiceOption.list_key == "test")))
    assert values == {"mine"}
    assert ctx.session.get(ChoiceOption, theirs.id) is None


def test_orm_update_cannot_reach_other_business(ctx, other_ctx):
    theirs = _option(other_ctx, "theirs")
    result = ctx.session.execute(update(ChoiceOption).where(ChoiceOption.id == theirs.id).values(label="x"))
    ctx.session.commit()
    assert result.rowcount == 0
    other_ctx.session.expire_all()
    assert other_ctx.session.get(ChoiceOption, theirs.id).label == "theirs"


def test_query_without_scope_is_refused(crm, business):
    session = crm.db.session()
    with pytest.raises(ScopeError):
        session.scalars(select(ChoiceOption)).all()
    session.close()


def test_write_into_other_business_is_refused(ctx, other_business):
    ctx.session.add(ChoiceOption(business_id=other_business.id, list_key="x", value="y", label="y"))
    with pytest.raises(ScopeError):
        ctx.session.flush()
    ctx.session.rollback()


def test_new_row_gets_session_business(ctx):
    row = _option(ctx, "auto")
    assert row.business_id == ctx.business_id


def test_count_naming_entity_only_in_from_is_scoped(ctx, other_ctx):
    from sqlalchemy import func

    _option(ctx, "mine")
    _option(other_ctx, "theirs")
    n = ctx.session.scalar(select(func.count()).select_from(ChoiceOption).where(ChoiceOption.list_key == "test"))
    assert n == 1


@pytest.mark.parametrize("shape", ["subquery", "nested", "cte", "scalar"])
def test_selects_over_subqueries_are_scoped(ctx, other_ctx, shape):
    """A tenant entity inside a subquery (the capped count of a list page wraps the page query)
    gets the scope too: once, a page's total counted every business's rows."""
    from sqlalchemy import func

    _option(ctx, "mine")
    _option(other_ctx, "theirs")
    inner = select(ChoiceOption).where(ChoiceOption.list_key == "test")
    if shape == "subquery":
        stmt = select(func.count()).select_from(inner.limit(10).subquery())
    elif shape == "nested":
        stmt = select(func.count()).select_from(select(inner.subquery()).subquery())
    elif shape == "cte":
        stmt = select(func.count()).select_from(inner.cte())
    else:
        stmt = select(select(func.count()).select_from(ChoiceOption)
                      .where(ChoiceOption.list_key == "test").scalar_subquery())
    assert ctx.session.scalar(stmt) == 1
    assert other_ctx.session.scalar(stmt) == 1


def test_count_over_a_subquery_without_scope_is_refused(crm, business):
    from sqlalchemy import func

    session = crm.db.session()
    with pytest.raises(ScopeError):
        session.scalar(select(func.count()).select_from(select(ChoiceOption).subquery()))
    session.close()


def test_count_without_scope_is_refused(crm, business):
    from sqlalchemy import func

    session = crm.db.session()
    with pytest.raises(ScopeError):
        session.scalar(select(func.count()).select_from(ChoiceOption))
    session.close()


def test_relationship_and_join_stay_in_business(ctx, other_ctx):
    from crmcore.parties.models import Party, PartyTag, Tag
    from crmcore.parties.service import add_tags, create_party

    mine = create_party(ctx, {"kind": "organisation", "name": "Mine"})
    theirs = create_party(other_ctx, {"kind": "organisation", "name": "Theirs"})
    add_tags(ctx, mine.id, ["vip"])
    add_tags(other_ctx, theirs.id, ["vip"])
    rows = ctx.session.execute(
        select(Party.name, Tag.name).join(PartyTag, PartyTag.party_id == Party.id).join(Tag, Tag.id == PartyTag.tag_id)
    ).all()
    assert rows == [("Mine", "vip")]
    tag_ids = set(ctx.session.scalars(select(PartyTag.tag_id)))
    assert len(tag_ids) == 1
