"""The party search box: any part of a name, email, phone or reference (trigram index: SQLite FTS5,
PostgreSQL pg_trgm), kept right by every write path, inside one business, paged by cursor."""

from __future__ import annotations

import logging

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, event, insert, inspect, select, text

from crmcore.auth.service import create_api_token
from crmcore.db import Base, Database, import_models, utcnow
from crmcore.migrations import runner
from crmcore.parties import search
from crmcore.parties import service as ps
from crmcore.parties.models import Contact, ContactMechanism, Party
from crmcore.parties.normalize import name_key


def found(ctx, q, **filters):
    return [p.id for p in ps.list_parties(ctx, {"q": q, **filters}, limit=200).items]


def on_sqlite(ctx):
    return ctx.crm.db.dialect == "sqlite"


@pytest.fixture
def acme(ctx):
    """A small business: organisations with emails (own and contacts'), a person, phones."""
    made = {
        "group": ps.create_party(ctx, {"name": "The Acme Group", "mechanisms": [
            {"kind": "email", "value": "info@acme.com"}, {"kind": "phone", "value": "+32 2 123 45 67"}]}),
        "corp": ps.create_party(ctx, {"name": "Acme Corp"}),
        "smith": ps.create_party(ctx, {"kind": "person", "first_name": "John", "last_name": "Smith",
                                       "mechanisms": [{"kind": "email", "value": "JSmith@Example.org"}]}),
        "globex": ps.create_party(ctx, {"name": "Globex", "mechanisms": [{"kind": "website", "value": "acme.io"}]}),
    }
    made["jane"] = ps.create_contact(ctx, {"party_id": made["globex"].id, "first_name": "Jane", "last_name": "Doe",
                                           "mechanisms": [{"kind": "email", "value": "jane.doe@acme.com"},
                                                          {"kind": "mobile", "value": "+33 6 12 34 56 78"}]})
    return made


def test_substring_prefix_email_phone_and_reference(ctx, acme):
    group, corp, smith, globex = acme["group"].id, acme["corp"].id, acme["smith"].id, acme["globex"].id
    assert found(ctx, "acme") == [corp, globex, group]  # by name; globex through its contact's email
    assert found(ctx, "acme g") == [group]
    assert found(ctx, "cme gr") == [group]  # any part, spaces included
    assert found(ctx, "The Ac") == [group] and found(ctx, "acme\u00a0 group") == [group]  # any whitespace
    assert found(ctx, "jsmith@") == [smith]  # email prefix, any case
    assert found(ctx, "MITH@EXAMPLE") == [smith]
    assert found(ctx, "@acme.com") == [globex, group]  # the party's own email, and a contact's
    assert found(ctx, "jane.doe@acme.com") == [globex]
    assert found(ctx, "acme.io") == []  # websites are not searched
    assert found(ctx, "2 123 45") == [group]  # phone digits, however they are grouped
    assert found(ctx, "02 123 45 67") == [group]  # national form: the trunk 0 is dropped
    assert found(ctx, "0033 6 12 34") == [globex]  # a contact's mobile, international 00 form
    ref = ps.get_party(ctx, corp).reference
    assert ref and found(ctx, ref) == [corp] and found(ctx, ref.lower()) == [corp]
    assert found(ctx, "zebra") == []


def test_short_terms_use_the_name_prefix(ctx, acme):
    assert found(ctx, "ac") == [acme["corp"].id]  # "the acme group" does not start with "ac"
    assert found(ctx, "T") == [acme["group"].id]
    assert found(ctx, "me") == []  # no substring match under three characters
    assert found(ctx, "  ") == found(ctx, "")  # blank: no search at all
    assert len(found(ctx, "")) == 4


def test_terms_without_a_three_letter_word(ctx):
    """``an s`` or ``e@o``: SQLite's trigrams include spaces and punctuation, pg_trgm's are made of
    words, so PostgreSQL searches such a term as a name prefix (plus exact reference and email)."""
    dean = ps.create_party(ctx, {"name": "Dean Stone", "mechanisms": [{"kind": "email", "value": "a@b.co"}]}).id
    ann = ps.create_party(ctx, {"name": "An Sa"}).id
    assert found(ctx, "a@b.co") == [dean] and found(ctx, "A@B.CO") == [dean]
    assert found(ctx, "an s") == ([ann, dean] if on_sqlite(ctx) else [ann])
    assert found(ctx, "n s") == ([ann, dean] if on_sqlite(ctx) else [])


def test_case_and_accents(ctx):
    strasse = ps.create_party(ctx, {"name": "Straße Bau GmbH"}).id
    societe = ps.create_party(ctx, {"name": "Société Générale"}).id
    assert found(ctx, "STRASSE") == [strasse] and found(ctx, "straße") == [strasse]  # casefolded
    assert found(ctx, "SOCIÉTÉ") == [societe] and found(ctx, "été gén") == [societe]
    # accents are significant (documented in docs/architecture.md, "Search")
    assert found(ctx, "societe") == []


@pytest.mark.parametrize("q", ['"', '""', '"acme', "acme*", "NEAR(acme group)", "acme AND group", "acme OR x",
                               "name_key:acme", "{name_key}: acme", "^acme", "-acme", "%%%", "___", "a%c", "\\\\x",
                               "'; drop table parties; --", "ac)me(", "x" * 300])
def test_search_syntax_is_plain_text(ctx, acme, q):
    assert found(ctx, q) == []


def test_special_characters_are_found_literally(ctx):
    obrien = ps.create_party(ctx, {"name": "O'Brien & Sons"}).id
    quoted = ps.create_party(ctx, {"name": '100% "Best" Tools_Co'}).id
    near = ps.create_party(ctx, {"name": "Near East AND West"}).id
    assert found(ctx, "o'brien") == [obrien] and found(ctx, "n & sons") == [obrien]
    assert found(ctx, '"best"') == [quoted] and found(ctx, '100% "b') == [quoted] and found(ctx, "tools_c") == [quoted]
    assert found(ctx, "100%") == [quoted] and found(ctx, "ols_co") == [quoted]
    assert found(ctx, "tools%co") == [] and found(ctx, "100_") == []  # % and _ are not wildcards
    assert found(ctx, "near") == [near] and found(ctx, "t and w") == [near]
    # no three-letter word: substrings on SQLite, name prefixes on PostgreSQL
    assert found(ctx, "& so") == ([obrien] if on_sqlite(ctx) else [])
    assert found(ctx, "s_co") == ([quoted] if on_sqlite(ctx) else [])
    assert found(ctx, "o'b") == [obrien] and found(ctx, "10") == [quoted]


def test_api_search_never_fails_on_syntax(ctx, app, acme):
    client = app.test_client()
    headers = {"Authorization": f"Bearer {create_api_token(ctx, 'tests')[1]}"}
    for q in ('"', 'acme"', "acme*", "NEAR(a b)", "%_%", "AND", "@acme.com", "x:y"):
        response = client.get("/api/v1/parties", query_string={"q": q}, headers=headers)
        assert response.status_code == 200, (q, response.get_data(as_text=True))
    body = client.get("/api/v1/parties", query_string={"q": "@ACME.com"}, headers=headers).get_json()
    assert [item["id"] for item in body["items"]] == [acme["globex"].id, acme["group"].id]


def test_search_follows_every_change(ctx, acme):
    group, globex, smith = acme["group"].id, acme["globex"].id, acme["smith"].id
    ps.update_party(ctx, group, {"name": "Zenith Holdings"})
    assert found(ctx, "acme group") == [] and found(ctx, "nith hold") == [group]
    assert found(ctx, "info@acme") == [group]  # its email is still there

    mechanisms = ps.party_details(ctx, group)["mechanisms"]
    email = next(m for m in mechanisms if m.kind == "email")
    ps.update_mechanism(ctx, email.id, {"value": "hello@zenith.example"})
    assert found(ctx, "info@acme") == [] and found(ctx, "hello@zen") == [group]
    ps.remove_mechanism(ctx, email.id)
    assert found(ctx, "hello@zen") == []
    added = ps.add_mechanism(ctx, party_id=smith, data={"kind": "email", "value": "john@smith.example"})
    assert found(ctx, "john@smith") == [smith]
    ps.remove_mechanism(ctx, added.id)
    assert found(ctx, "john@smith") == []

    jane = acme["jane"].id
    ps.move_contact(ctx, jane, smith)  # a contact's email follows the contact
    assert found(ctx, "jane.doe@") == [smith]
    ps.move_contact(ctx, jane, None)  # unassigned: finds no party
    assert found(ctx, "jane.doe@") == []
    ps.add_mechanism(ctx, contact_id=jane, data={"kind": "email", "value": "jd@acme.com"})
    ps.move_contact(ctx, jane, globex)
    assert found(ctx, "jd@acme") == [globex] and found(ctx, "jane.doe") == [globex]

    ps.archive_party(ctx, globex)  # archived parties stay searchable with the archive filter
    assert found(ctx, "jd@acme") == [] and found(ctx, "jd@acme", archived=True) == [globex]


def test_search_after_merge(ctx, acme):
    kept, dup = acme["smith"].id, acme["globex"].id
    ps.merge_parties(ctx, kept, dup)
    # the duplicate's contact (and her email) moved onto the kept party; the duplicate is archived
    assert found(ctx, "jane.doe@acme") == [kept]
    assert found(ctx, "globex") == [] and found(ctx, "globex", archived=None) == [dup]


def test_core_writes_and_deletes_are_indexed(ctx, crm, business):
    """Paths without the services (a bulk import's Core INSERTs, cascading deletes) stay right:
    on SQLite the triggers do it, on PostgreSQL the columns themselves are indexed."""
    now = utcnow()
    with crm.db.engine.begin() as conn:
        party_id = conn.execute(insert(Party).values(
            business_id=business.id, kind="organisation", name="Bulk Loaded", name_key="bulk loaded",
            reference="BULK-1", custom={}, created_at=now, updated_at=now)).inserted_primary_key[0]
        contact_id = conn.execute(insert(Contact).values(
            business_id=business.id, party_id=party_id, name="Ann Bulk", name_key="ann bulk", custom={},
            created_at=now, updated_at=now)).inserted_primary_key[0]
        conn.execute(insert(ContactMechanism).values(
            business_id=business.id, contact_id=contact_id, kind="email", value="ann@bulk.example",
            normalized="ann@bulk.example", created_at=now, updated_at=now))
    assert found(ctx, "lk loa") == [party_id] and found(ctx, "ann@bulk") == [party_id]
    assert found(ctx, "bulk-1") == [party_id]
    with crm.db.engine.begin() as conn:
        conn.execute(delete(Contact).where(Contact.id == contact_id))  # cascades to the email
    assert found(ctx, "ann@bulk") == []
    with crm.db.engine.begin() as conn:
        conn.execute(delete(Party).where(Party.id == party_id))
    assert found(ctx, "lk loa") == []
    if on_sqlite(ctx):
        with crm.db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM party_search WHERE rowid = :id"), {"id": party_id}).scalar() == 0


def test_bulk_insert_block(ctx, crm, business):
    now = utcnow()
    with crm.db.engine.begin() as conn, search.bulk_insert(conn):
        conn.execute(insert(Party), [
            {"business_id": business.id, "kind": "organisation", "name": f"Batch {i}", "name_key": f"batch {i}",
             "custom": {}, "created_at": now, "updated_at": now} for i in range(3)])
        first = conn.execute(select(Party.id).where(Party.name_key == "batch 0")).scalar_one()
        conn.execute(insert(ContactMechanism), [
            {"business_id": business.id, "party_id": first, "kind": kind, "value": value, "normalized": value,
             "created_at": now, "updated_at": now}
            for kind, value in (("email", "batch@bulk.example"), ("website", "bulk.example/batch"))])
        conn.execute(Party.__table__.update().where(Party.id == first).values(name_key="batch zero"))
    assert len(found(ctx, "batch")) == 3 and found(ctx, "batch zero") == [first]
    assert found(ctx, "batch@bulk") == [first] and found(ctx, "example/batch") == []
    if on_sqlite(ctx):
        with crm.db.engine.connect() as conn:
            triggers = set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").scalars())
        assert set(search.TRIGGERS) <= triggers
        with pytest.raises(RuntimeError), crm.db.engine.begin() as conn, search.bulk_insert(conn):
            raise RuntimeError("import failed")
        with crm.db.engine.connect() as conn:
            triggers = set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").scalars())
        assert set(search.TRIGGERS) <= triggers


def test_other_business_is_never_found(ctx, other_ctx, acme):
    theirs = ps.create_party(other_ctx, {"name": "The Acme Group", "mechanisms": [
        {"kind": "email", "value": "info@acme.com"}, {"kind": "phone", "value": "+32 2 123 45 67"}]})
    ps.create_contact(other_ctx, {"party_id": theirs.id, "first_name": "Jane", "last_name": "Doe",
                                  "mechanisms": [{"kind": "email", "value": "jane.doe@acme.com"}]})
    for q in ("acme group", "info@acme", "jane.doe", "2 123 45", theirs.reference):
        assert theirs.id not in found(ctx, q, archived=None)
    assert found(other_ctx, "acme") == [theirs.id] and found(other_ctx, "jane.doe") == [theirs.id]
    assert found(ctx, "info@acme.com") == [acme["group"].id]


def test_paging_through_results(ctx, other_ctx):
    names = [f"Widget {c} Ltd" for c in "GBEAFDC"]
    made = {name: ps.create_party(ctx, {"name": name}).id for name in names}
    ps.create_party(ctx, {"name": "Gadget Ltd"})
    ps.create_party(other_ctx, {"name": "Widget Z Ltd"})
    seen, cursor = [], None
    for page_no in range(10):
        page = ps.list_parties(ctx, {"q": "widget"}, cursor=cursor, limit=3, with_count=page_no == 0)
        if page_no == 0:
            assert (page.total.value, page.total.capped) == (7, False) and not page.extra["search_capped"]
        seen += [p.id for p in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [made[n] for n in sorted(names, key=name_key)]
    newest = ps.list_parties(ctx, {"q": "widget"}, sort="-created", limit=2)
    assert [p.id for p in newest.items] == [made["Widget C Ltd"], made["Widget D Ltd"]]


def test_a_search_counts_its_filtered_matches_in_the_page_statement(ctx):
    """The first page of a search counts its matches with the page (``count(*) OVER ()``); the
    count must be the same one the separate count and later pages give, list filters applied."""
    tagged = [ps.create_party(ctx, {"name": f"Sprocket {i}", "tags": ["dealer"] if i % 2 else []}).id
              for i in range(7)]
    ps.create_party(ctx, {"name": "Unrelated"})
    statements = []

    def seen(_conn, _cursor, statement, *_args):
        statements.append(statement)

    engine = ctx.crm.db.engine
    for filters, expected in (({}, 7), ({"tag": "dealer"}, 3), ({"tag": "nobody"}, 0)):
        event.listen(engine, "before_cursor_execute", seen)
        try:
            statements.clear()
            page = ps.list_parties(ctx, {"q": "sprocket", **filters}, limit=2)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert (page.total.value, page.total.capped) == (expected, False)
        counts = [s for s in statements if s.startswith("SELECT count(*)") and "parties.kind" in s]  # capped_count
        assert counts == [], "the first page needs no count statement of its own"
        assert sum(s == "SET LOCAL jit = off" for s in statements) == (0 if on_sqlite(ctx) else 1)
        assert ps.count_parties(ctx, {"q": "sprocket", **filters}).value == expected
        assert len(page.items) == min(2, expected)
        if page.next_cursor:
            later = ps.list_parties(ctx, {"q": "sprocket", **filters}, cursor=page.next_cursor, limit=2)
            assert later.total.value == expected  # counted by its own statement (the page sees only the rest)
    assert sorted(p.id for p in ps.list_parties(ctx, {"q": "sprocket", "tag": "dealer"}).items) == tagged[1::2]


_runs = iter(range(10**6))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.tuples(st.sampled_from(["Gearbox", "Gears", "Cogwheel", "Axle", "Bolt"]), st.booleans()),
                      max_size=10),
       term=st.sampled_from(["gear", "ear", "cog", "axle", "xyz"]), limit=st.integers(1, 4),
       sort=st.sampled_from(["name", "-created"]))
def test_a_search_counts_what_its_pages_show(ctx, batch, term, limit, sort):
    """Whatever the matches, the sort and the archived ones among them, the count the first page
    takes from its own statement is what walking every page finds, and what the count alone says."""
    run = f"run{next(_runs)}"
    expected = set()
    for word, archived in batch:
        party = ps.create_party(ctx, {"name": f"{word} {run}", "tags": [run]})
        if archived:
            ps.archive_party(ctx, party.id)
        elif term in word.casefold():
            expected.add(party.id)
    filters = {"q": term, "tag": run}
    first = ps.list_parties(ctx, filters, sort=sort, limit=limit)
    seen, page = [], first
    while True:
        seen += [p.id for p in page.items]
        if page.next_cursor is None:
            break
        page = ps.list_parties(ctx, filters, sort=sort, cursor=page.next_cursor, limit=limit, with_count=False)
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))
    assert (first.total.value, first.total.capped) == (len(expected), False)
    assert ps.count_parties(ctx, filters).value == len(expected)


def test_more_matches_than_the_cap_say_so(ctx, monkeypatch):
    monkeypatch.setattr(search, "MATCH_CAP", 3)
    for i in range(5):
        ps.create_party(ctx, {"name": f"Common {i}"})
    page = ps.list_parties(ctx, {"q": "common"}, limit=2)
    assert page.extra["search_capped"] and page.total.capped and page.total.value == 3
    assert len(page.items) == 2
    rest = ps.list_parties(ctx, {"q": "common"}, cursor=page.next_cursor, limit=2)
    assert len(rest.items) == 1 and rest.next_cursor is None  # the first 3 matches, in name order
    assert not ps.list_parties(ctx, {"q": "common 4"}).extra["search_capped"]


def test_a_common_term_is_found_by_walking_the_names_in_order(ctx, monkeypatch):
    """PostgreSQL: a term in many of the first names is looked for along the name index (no
    trigram bitmap of every match); the capped result is the first names in sort order, and the
    other business's names never count. A term rare at the start falls back to the index."""
    if on_sqlite(ctx):
        pytest.skip("the name walk is PostgreSQL's plan for common terms; SQLite's FTS5 has no such cost")
    monkeypatch.setattr(search, "MATCH_CAP", 4)
    monkeypatch.setattr(search, "PG_PROBE_NAMES", 10)
    monkeypatch.setattr(search, "PG_COMMON_SHARE", 0.2)
    monkeypatch.setattr(search, "PG_WALK_NAMES", 30)
    names = [f"Straw {c} Farm" for c in "ABCDEFGH"] + [f"Beta {c}" for c in "ABCDEFGH"]
    made = {n: ps.create_party(ctx, {"name": n}).id for n in names}
    walked = []
    real = search._pg_common_name_ids
    monkeypatch.setattr(search, "_pg_common_name_ids", lambda *a: walked.append(r := real(*a)) or r)
    page = ps.list_parties(ctx, {"q": "straw"}, limit=10)
    assert walked[-1] is not None  # common: the walk answered
    assert page.extra["search_capped"] and [p.id for p in page.items] == [made[f"Straw {c} Farm"] for c in "ABCD"]
    # the first 10 names are Beta A-H, Straw A-B: 2 hold "straw" (common), 1 holds "eta h" (rare)
    assert found(ctx, "eta h") == [made["Beta H"]] and walked[-1] is None


def test_a_term_common_early_and_rare_later_is_complete(ctx, monkeypatch):
    """The walk is bounded: when it runs out before the cap, the trigram index answers, so no
    match past the walked names is lost."""
    if on_sqlite(ctx):
        pytest.skip("PostgreSQL's plan only")
    monkeypatch.setattr(search, "MATCH_CAP", 5)
    monkeypatch.setattr(search, "PG_PROBE_NAMES", 4)
    monkeypatch.setattr(search, "PG_COMMON_SHARE", 0.5)
    monkeypatch.setattr(search, "PG_WALK_NAMES", 6)
    early = [ps.create_party(ctx, {"name": f"Aa Zeno {i}"}).id for i in range(3)]
    filler = [ps.create_party(ctx, {"name": f"Mm Filler {i}"}).id for i in range(6)]
    late = ps.create_party(ctx, {"name": "Zz Zeno last"}).id
    assert sorted(found(ctx, "zeno")) == sorted([*early, late]) and filler


def test_list_page_says_refine(client, ctx, monkeypatch):
    monkeypatch.setattr(search, "MATCH_CAP", 2)
    for i in range(3):
        ps.create_party(ctx, {"name": f"Refine {i}"})
    html = client.get("/parties/", query_string={"q": "refine"}).get_data(as_text=True)
    assert "refine the search" in html.lower()
    html = client.get("/parties/", query_string={"q": "refine 1"}).get_data(as_text=True)
    assert "refine the search" not in html.lower() and "Refine 1" in html


_NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Co", "Cn"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(_NAME_CHARS, min_size=3, max_size=40), data=st.data())
def test_any_part_of_a_name_finds_it(ctx, name, data):
    assume(len(name_key(name)) >= 3)
    party = ps.create_party(ctx, {"name": name})
    start = data.draw(st.integers(0, len(party.name) - 3))
    end = data.draw(st.integers(start + 3, len(party.name)))
    part = party.name[start:end]
    assume(len(name_key(part)) >= search.MIN_TERM)
    # PostgreSQL searches a term without a three-letter word as a name prefix (see above)
    assume(on_sqlite(ctx) or search.pg_trigram_friendly(search.terms_of(part)))
    assert party.id in found(ctx, part)


def test_fallback_without_the_index(ctx, crm, caplog):
    if not on_sqlite(ctx):
        pytest.skip("the FTS5 index is SQLite's")
    group = ps.create_party(ctx, {"name": "The Acme Group", "mechanisms": [{"kind": "email", "value": "a@b.example"}]})
    with crm.db.engine.begin() as conn:
        for statement in search.SQLITE_DROP:
            conn.exec_driver_sql(statement)
    ctx.close()
    old = crm.db
    crm.db = Database(old.url)  # a new engine: the index is looked up again
    try:
        with caplog.at_level(logging.WARNING, logger="crmcore.parties.search"):
            assert found(ctx, "acme") == [] and found(ctx, "the acme") == [group.id]  # name prefix
            assert found(ctx, "A@b.example") == [group.id]  # exact email
        assert "missing or unreadable" in caplog.text
    finally:
        ctx.close()
        crm.db.dispose()
        crm.db = old


def test_migration_builds_the_index_and_backfills(tmp_path):
    """``crm db upgrade`` from before the search revision indexes the rows already there, and
    builds what ``create_all`` builds."""
    import os

    if os.environ.get("CRM_TEST_DATABASE_URL"):
        pytest.skip("PostgreSQL: test_migrations checks the GIN indexes against the models")
    engine = Database(f"sqlite:///{tmp_path / 'm.sqlite'}").engine
    runner._run(engine, runner.core_set(), "0002")
    now = utcnow().replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO businesses (id, slug, name, currency, language, timezone, plugins_version, "
                          "config_version, created_at, updated_at) VALUES (1, 'b', 'B', 'EUR', 'en', 'UTC', 0, 0, "
                          ":now, :now)"), {"now": now})
        conn.execute(text("INSERT INTO parties (id, business_id, kind, name, name_key, is_prospect, is_customer, "
                          "is_supplier, custom, created_at, updated_at) VALUES (7, 1, 'organisation', 'Old Timer', "
                          "'old timer', 1, 0, 0, '{}', :now, :now)"), {"now": now})
        conn.execute(text("INSERT INTO contact_mechanisms (business_id, party_id, kind, value, normalized, "
                          "is_primary, position, created_at, updated_at) VALUES (1, 7, 'email', 'x@old.example', "
                          "'x@old.example', 1, 0, :now, :now)"), {"now": now})
    runner.upgrade(engine, include_plugins=False)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT rowid FROM party_search WHERE party_search MATCH '\"d tim\"'").scalars().all() == [7]
        assert conn.exec_driver_sql("SELECT count(*) FROM mechanism_search WHERE mechanism_search MATCH '\"old.ex\"'").scalar() == 1
        migrated = _search_schema(conn)
    fresh = Database(f"sqlite:///{tmp_path / 'c.sqlite'}")
    fresh.create_all()
    with fresh.engine.connect() as conn:
        assert _search_schema(conn) == migrated and len(migrated) == 2 + len(search.TRIGGERS)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(runner.core_set().location))
    cfg.set_main_option("sqlalchemy.url", str(engine.url))
    command.downgrade(cfg, "0002")  # the downgrade takes it all away
    with engine.connect() as conn:
        assert _search_schema(conn) == {}
    assert "party_search" not in inspect(engine).get_table_names()
    engine.dispose()
    fresh.dispose()


def _search_schema(conn):
    rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'trigger') "
                                "AND (name LIKE 'party_search%' OR name LIKE 'mechanism_search%') "
                                "AND name NOT LIKE '%\\_data' ESCAPE '\\' AND name NOT LIKE '%\\_idx' ESCAPE '\\' "
                                "AND name NOT LIKE '%\\_content' ESCAPE '\\' AND name NOT LIKE '%\\_docsize' ESCAPE '\\' "
                                "AND name NOT LIKE '%\\_config' ESCAPE '\\'").all()
    return dict(rows)


def test_models_declare_the_postgresql_indexes():
    import_models()
    indexes = {ix.name: ix for t in Base.metadata.tables.values() for ix in t.indexes}
    for name in ("ix_parties_search_trgm", "ix_contact_mechanisms_search_trgm"):
        assert indexes[name].dialect_options["postgresql"]["using"] == "gin"
