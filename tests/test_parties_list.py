"""Party lists: filters, sort orders, keyset pages (hypothesis), capped counts, fixed query counts."""

from __future__ import annotations

import itertools
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select

from crmcore.errors import ValidationFailed
from crmcore.fields import service as fields
from crmcore.parties import service as ps
from crmcore.parties.models import Party, PartyTag, Tag

_run = itertools.count()


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


def ids(page):
    return [p.id for p in page.items]


def all_pages(ctx, filters, sort, limit):
    out, cursor, pages = [], None, 0
    while True:
        page = ps.list_parties(ctx, filters, sort=sort, cursor=cursor, limit=limit, with_count=pages == 0)
        out.extend(ids(page))
        pages += 1
        if page.next_cursor is None:
            return out, pages
        cursor = page.next_cursor


def test_filters(ctx, business, make_user):
    rep = make_user(business, "member").user_id
    fields.define_field(ctx, "party", {"key": "region", "label": "Region", "type": "text"})
    acme = ps.create_party(ctx, {"name": "Acme", "is_customer": True, "tags": ["VIP", "Dealer"], "potential": "high",
                                 "language": "fr", "sales_rep_ids": [rep], "custom": {"region": "North"},
                                 "mechanisms": [{"kind": "email", "value": "sales@acme.example"}]})
    acorn = ps.create_party(ctx, {"name": "acorn ltd", "tags": ["VIP"], "prospect_status": "qualified",
                                  "custom": {"region": "South"}})
    bob = ps.create_party(ctx, {"kind": "person", "first_name": "Bob", "last_name": "Acker", "is_supplier": True})
    percent = ps.create_party(ctx, {"name": "100% Tools_Co"})

    def q(**filters):
        return ids(ps.list_parties(ctx, filters))

    assert q() == [percent.id, acme.id, acorn.id, bob.id]  # by name_key: "100% ...", "acme", "acorn", "bob"
    assert q(q="AC") == [acme.id, acorn.id]
    assert q(q="acme") == [acme.id]
    assert q(q=acorn.reference) == [acorn.id]
    assert q(q="SALES@acme.example") == [acme.id]
    assert q(q="100%") == [percent.id] and q(q="1%") == [] and q(q="100% tools_") == [percent.id]
    assert q(q="100_") == []  # LIKE wildcards are escaped
    assert q(kind="person") == [bob.id]
    assert q(is_customer=True) == [acme.id]
    assert q(is_supplier=True) == [bob.id]
    assert q(is_prospect=False) == [acme.id, bob.id]
    assert q(prospect_status="qualified") == [acorn.id]
    assert q(potential="high") == [acme.id]
    assert q(tag="vip") == [acme.id, acorn.id]
    assert q(tag=["VIP", "dealer"]) == [acme.id]
    assert q(tag=["VIP", "unknown"]) == []
    assert q(sales_rep_id=rep) == [acme.id]
    assert q(language="FR") == [acme.id]
    assert q(custom={"region": "South"}) == [acorn.id]
    assert q(tag="VIP", custom={"region": "North"}, is_customer=True) == [acme.id]


@pytest.mark.parametrize(("filters", "field"), [
    ({"colour": "red"}, "colour"),
    ({"kind": "robot"}, "kind"),
    ({"is_customer": "perhaps"}, "is_customer"),
    ({"prospect_status": "bogus"}, "prospect_status"),
    ({"tag": {"a": 1}}, "tag"),
    ({"custom": {"nope": "x"}}, "custom"),
])
def test_bad_filters_are_refused(ctx, filters, field):
    with pytest.raises(ValidationFailed) as exc:
        ps.list_parties(ctx, filters)
    assert field in exc.value.errors


def test_sorts_and_bad_cursors(ctx):
    made = [ps.create_party(ctx, {"name": name}) for name in ("b", "a", "c")]
    assert [p.name for p in ps.list_parties(ctx).items] == ["a", "b", "c"]
    assert ids(ps.list_parties(ctx, sort="-created")) == [p.id for p in reversed(made)]
    ps.update_party(ctx, made[0].id, {"name": "b2"})
    assert ids(ps.list_parties(ctx, sort="-updated"))[0] == made[0].id
    with pytest.raises(ValidationFailed) as exc:
        ps.list_parties(ctx, sort="name desc")
    assert "sort" in exc.value.errors
    name_cursor = ps.list_parties(ctx, limit=1).next_cursor
    with pytest.raises(ValidationFailed) as exc:
        ps.list_parties(ctx, sort="-created", cursor=name_cursor)
    assert "cursor" in exc.value.errors
    with pytest.raises(ValidationFailed):
        ps.list_parties(ctx, cursor="garbage!")
    with pytest.raises(ValidationFailed):
        ps.list_parties(ctx, limit=0)


def test_count_covers_all_pages(ctx, other_ctx):
    for i in range(4):
        ps.create_party(ctx, {"name": f"p{i}"})
    for i in range(3):  # another business's parties are not counted (they once were)
        ps.create_party(other_ctx, {"name": f"p{i}"})
    page = ps.list_parties(ctx, limit=2)
    assert (page.total.value, page.total.capped) == (4, False)
    assert ps.list_parties(other_ctx, limit=2).total.value == 3
    assert ps.list_parties(ctx, with_count=False).total is None


def test_list_runs_a_fixed_number_of_queries_whatever_the_page_size(ctx, crm):
    for i in range(12):
        ps.create_party(ctx, {"name": f"Party {i:02}", "tags": [f"t{i % 3}", "all"], "potential": "high",
                              "prospect_status": "contacted" if i % 2 else "new"})
    ps.list_parties(ctx, {"tag": "all"}, limit=2)  # warm up caches
    with statements(crm.db.engine) as small:
        page = ps.list_parties(ctx, {"tag": "all"}, limit=2)
    with statements(crm.db.engine) as large:
        big = ps.list_parties(ctx, {"tag": "all"}, limit=12)
    assert len(page.items) == 2 and len(big.items) == 12
    assert len(small) == len(large)
    assert all(len(big.extra["tags"][p.id]) == 2 for p in big.items)
    assert {big.extra["options"][p.prospect_status_id].value for p in big.items} == {"new", "contacted"}


names = st.text(alphabet="abAB é-", min_size=1, max_size=4).filter(lambda s: s.strip())


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(names, min_size=0, max_size=14), limit=st.integers(1, 6),
       sort=st.sampled_from(["name", "-created", "-updated"]))
def test_keyset_pages_concatenate_to_the_full_list(ctx, batch, limit, sort):
    tag = f"run-{next(_run)}"
    for name in batch:
        ps.create_party(ctx, {"name": name, "tags": [tag]})
    column, descending = {"name": (Party.name_key, False), "-created": (Party.created_at, True),
                          "-updated": (Party.updated_at, True)}[sort]
    order = [column.desc(), Party.id.desc()] if descending else [column, Party.id]
    expected = list(ctx.session.scalars(
        select(Party.id).join(PartyTag, PartyTag.party_id == Party.id).join(Tag, Tag.id == PartyTag.tag_id)
        .where(Tag.name_key == tag).order_by(*order)))
    ctx.session.rollback()
    got, pages = all_pages(ctx, {"tag": tag}, sort, limit)
    assert got == expected  # same order, nothing twice, nothing missing
    assert len(expected) == len(batch)
    assert pages == max(1, -(-len(batch) // limit))
    if sort == "name" and ctx.crm.db.dialect == "sqlite":  # PostgreSQL sorts by its collation instead
        keys = [ps.get_party(ctx, i).name_key for i in got]
        assert keys == sorted(" ".join(n.split()).casefold() for n in batch)


def test_tag_filter_ignores_a_same_named_tag_of_another_business(ctx, other_ctx, crm):
    """The tag filter resolves the tag's id in a subquery: it must be the business's own tag
    (another business's "dealer", created first, has the lower id)."""
    theirs = ps.create_party(other_ctx, {"name": "Theirs", "tags": ["Dealer"]})
    mine = ps.create_party(ctx, {"name": "Mine", "tags": ["dealer"]})
    ps.create_party(ctx, {"name": "Untagged"})
    assert ids(ps.list_parties(ctx, {"tag": "DEALER"})) == [mine.id]
    assert ids(ps.list_parties(other_ctx, {"tag": "dealer"})) == [theirs.id]
    assert ps.list_parties(ctx, {"tag": "dealer"}).total.value == 1
    assert ids(ps.list_parties(ctx, {"tag": "no-such-tag"})) == []
    with statements(crm.db.engine) as seen:
        ps.list_parties(ctx, {"tag": "dealer"}, with_count=False)
    listing = next(s for s in seen if "party_tags" in s and "FROM parties" in s)
    assert listing.count("business_id") >= 3  # parties, party_tags and tags are each scoped
