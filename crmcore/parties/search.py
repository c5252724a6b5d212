"""Party search: any part of a party's name, of its own or its contacts' emails and phone
numbers, or of its reference, fast at a million parties (see docs/architecture.md, "Search").

* SQLite: two FTS5 tables with the ``trigram`` tokenizer mirror the searched columns row for
  row: ``party_search`` (rowid = party id: name key, reference) and ``mechanism_search`` (rowid =
  contact mechanism id: the normalized email or phone). SQLite triggers on ``parties`` and
  ``contact_mechanisms`` keep them in step, so every write path (services, merge, Core bulk
  inserts, raw SQL) is covered without calling anything here. Which party a mechanism belongs to
  (its own, or through its contact) is resolved when searching, so moving a contact or merging
  parties rewrites nothing in the index.
* PostgreSQL: ``pg_trgm`` GIN indexes on ``parties (name_key, reference)`` and
  ``contact_mechanisms (normalized)`` (declared in the models) serve ``LIKE '%term%'``. pg_trgm
  makes trigrams of words only, so a term without a three-letter word (``an s``) is searched
  there as a name prefix.

A search first collects at most :data:`MATCH_CAP` matching party ids from the index (cheap
whatever the term), then the list filters, sorts and pages those (:func:`find`,
:func:`id_filter`). A term that matches more parties than that is reported as capped ("refine
the search"): sorting a hundred thousand matches by name on every keystroke would cost more than
the page. Terms under three characters use the name btree (:func:`name_prefix`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sqlite3
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Engine,
    Text,
    and_,
    bindparam,
    cast,
    column,
    event,
    func,
    literal_column,
    or_,
    select,
    table,
    text,
    union,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from crmcore.db import Base
from crmcore.parties.models import Contact, ContactMechanism, Party
from crmcore.parties.normalize import PHONE_KINDS, NormalizeError, name_key, normalize_email

if TYPE_CHECKING:
    from crmcore.context import Context

log = logging.getLogger("crmcore.parties.search")

#: at most this many matching parties are sorted and paged; more is "refine the search"
MATCH_CAP = 1000
#: trigrams need three characters: shorter terms use the name-prefix btree instead
MIN_TERM = 3
#: SQLite got the FTS5 trigram tokenizer in 3.34.0
MIN_SQLITE = (3, 34, 0)
#: FTS5 tables (SQLite): rowid = parties.id, and rowid = contact_mechanisms.id
PARTY_INDEX = "party_search"
MECHANISM_INDEX = "mechanism_search"

_EMAIL_KINDS = ("email",)
_PHONE_KINDS = tuple(sorted(PHONE_KINDS))
#: what pg_trgm makes trigrams of: runs of letters and digits
_WORD = re.compile(r"[^\W_]+")
_PHONE_TERM = re.compile(r"^\+?[\d\s().\-/]+$")


# --------------------------------------------------------------------------------------------
# SQLite schema: two FTS5 tables and the triggers that keep them in step


def _kinds(kinds: tuple[str, ...]) -> str:
    return ", ".join(f"'{k}'" for k in kinds)


_SEARCHED = _kinds(_EMAIL_KINDS + _PHONE_KINDS)

_TABLES = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {PARTY_INDEX} USING fts5(name_key, reference, tokenize = 'trigram')",
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {MECHANISM_INDEX} USING fts5(normalized, tokenize = 'trigram')",
)
_PARTY_ROW = f"INSERT OR REPLACE INTO {PARTY_INDEX} (rowid, name_key, reference) VALUES (NEW.id, NEW.name_key, NEW.reference);"
#: trigger name -> its ``CREATE TRIGGER`` statement
TRIGGERS: dict[str, str] = {
    f"{PARTY_INDEX}_insert": f"AFTER INSERT ON parties BEGIN {_PARTY_ROW} END",
    f"{PARTY_INDEX}_update": (
        "AFTER UPDATE OF name_key, reference ON parties "
        "WHEN OLD.name_key IS NOT NEW.name_key OR OLD.reference IS NOT NEW.reference BEGIN "
        f"DELETE FROM {PARTY_INDEX} WHERE rowid = OLD.id; {_PARTY_ROW} END"),
    f"{PARTY_INDEX}_delete": f"AFTER DELETE ON parties BEGIN DELETE FROM {PARTY_INDEX} WHERE rowid = OLD.id; END",
    f"{MECHANISM_INDEX}_insert": (
        f"AFTER INSERT ON contact_mechanisms WHEN NEW.kind IN ({_SEARCHED}) BEGIN "
        f"INSERT OR REPLACE INTO {MECHANISM_INDEX} (rowid, normalized) VALUES (NEW.id, NEW.normalized); END"),
    f"{MECHANISM_INDEX}_update": (
        "AFTER UPDATE OF kind, normalized ON contact_mechanisms "
        "WHEN OLD.kind IS NOT NEW.kind OR OLD.normalized IS NOT NEW.normalized BEGIN "
        f"DELETE FROM {MECHANISM_INDEX} WHERE rowid = OLD.id; "
        f"INSERT OR REPLACE INTO {MECHANISM_INDEX} (rowid, normalized) SELECT NEW.id, NEW.normalized "
        f"WHERE NEW.kind IN ({_SEARCHED}); END"),
    f"{MECHANISM_INDEX}_delete": (
        f"AFTER DELETE ON contact_mechanisms WHEN OLD.kind IN ({_SEARCHED}) BEGIN "
        f"DELETE FROM {MECHANISM_INDEX} WHERE rowid = OLD.id; END"),
}
_INSERT_TRIGGERS = (f"{PARTY_INDEX}_insert", f"{MECHANISM_INDEX}_insert")

SQLITE_DDL: tuple[str, ...] = _TABLES + tuple(
    f"CREATE TRIGGER IF NOT EXISTS {name} {body}" for name, body in TRIGGERS.items())


def _backfill(party_after: int = 0, mechanism_after: int = 0) -> tuple[str, ...]:
    """Index the rows with ids above these (that are not indexed yet)."""
    return (
        f"INSERT INTO {PARTY_INDEX} (rowid, name_key, reference) SELECT id, name_key, reference "
        f"FROM parties WHERE id > {int(party_after)} "
        f"AND id NOT IN (SELECT rowid FROM {PARTY_INDEX} WHERE rowid > {int(party_after)})",
        f"INSERT INTO {MECHANISM_INDEX} (rowid, normalized) SELECT id, normalized FROM contact_mechanisms "
        f"WHERE id > {int(mechanism_after)} AND kind IN ({_SEARCHED}) "
        f"AND id NOT IN (SELECT rowid FROM {MECHANISM_INDEX} WHERE rowid > {int(mechanism_after)})",
    )


#: fill both tables from the rows already there (the migration's backfill)
SQLITE_BACKFILL = _backfill()

SQLITE_DROP: tuple[str, ...] = tuple(f"DROP TRIGGER IF EXISTS {name}" for name in TRIGGERS) + (
    f"DROP TABLE IF EXISTS {PARTY_INDEX}", f"DROP TABLE IF EXISTS {MECHANISM_INDEX}")


@contextmanager
def bulk_insert(connection: Connection) -> Iterator[None]:
    """Index rows inserted inside the block in one statement per table at its end, instead of one
    trigger run per row. FTS5 flushes its pending index data at every statement that writes it,
    so a trigger-fed bulk import of parties and mechanisms runs about 3x slower than without the
    index; with this block it costs about what a plain ``INSERT ... SELECT`` into the index costs.

    For bulk *inserts* of parties and contact mechanisms, inside the caller's write transaction
    (SQLite has one writer: nothing else can write between the two ends). Updates and deletes in
    the block are still indexed by their triggers. On PostgreSQL, or without the index, it does
    nothing. If the block raises, the insert triggers are put back and the caller rolls back."""
    if connection.dialect.name != "sqlite" or not _has_index(connection):
        yield
        return
    for name in _INSERT_TRIGGERS:
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    # after the DROP this transaction holds the write lock: the maxima cannot move under us
    party_max = connection.exec_driver_sql("SELECT coalesce(max(id), 0) FROM parties").scalar()
    mechanism_max = connection.exec_driver_sql("SELECT coalesce(max(id), 0) FROM contact_mechanisms").scalar()
    try:
        yield
        for statement in _backfill(party_max or 0, mechanism_max or 0):
            connection.exec_driver_sql(statement)
    finally:
        for name in _INSERT_TRIGGERS:
            connection.exec_driver_sql(f"CREATE TRIGGER IF NOT EXISTS {name} {TRIGGERS[name]}")


def _has_index(connection: Connection) -> bool:
    return connection.exec_driver_sql(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)",
        (PARTY_INDEX, MECHANISM_INDEX)).scalar() == 2


#: the FTS5 table itself and the shadow tables FTS5 keeps beside it
_FTS5_SHADOWS = ("", "_data", "_idx", "_content", "_docsize", "_config")


def alembic_include_name(name: str | None, type_: str, _parent: Any) -> bool:
    """Alembic ``include_name``: leave the FTS tables (and their shadow tables), which no model
    describes, out of autogenerate comparisons."""
    if type_ != "table" or name is None:
        return True
    return name not in {f"{t}{suffix}" for t in (PARTY_INDEX, MECHANISM_INDEX) for suffix in _FTS5_SHADOWS}


def sqlite_supports_trigram(conn: Connection) -> bool:
    """The linked SQLite has FTS5 and is new enough for its ``trigram`` tokenizer."""
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        return False
    options = {row[0] for row in conn.exec_driver_sql("PRAGMA compile_options")}
    return "ENABLE_FTS5" in options


@event.listens_for(Base.metadata, "before_create")
def _before_create(_target: Any, connection: Connection, **_kw: Any) -> None:
    if connection.dialect.name == "postgresql":
        # trusted extension (PostgreSQL 13+): a database owner may create it
        connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")


@event.listens_for(Base.metadata, "after_create")
def _after_create(_target: Any, connection: Connection, **_kw: Any) -> None:
    if connection.dialect.name != "sqlite":
        return
    if not sqlite_supports_trigram(connection):
        log.warning("SQLite %s has no FTS5 trigram tokenizer (needs %s): party search falls back to "
                    "name prefix, exact reference and exact email", sqlite3.sqlite_version,
                    ".".join(map(str, MIN_SQLITE)))
        return
    for statement in SQLITE_DDL:
        connection.exec_driver_sql(statement)


@event.listens_for(Base.metadata, "before_drop")
def _before_drop(_target: Any, connection: Connection, **_kw: Any) -> None:
    if connection.dialect.name == "sqlite":
        for statement in SQLITE_DROP:
            connection.exec_driver_sql(statement)


_available: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def sqlite_index_ready(ctx: Context) -> bool:
    """The database has the search table and this SQLite can read it (checked once per engine;
    a database made by an older SQLite, or this SQLite being too old, falls back with a warning)."""
    engine = ctx.session.get_bind()
    if not isinstance(engine, Engine):  # a session bound to a connection (tests): look each time
        engine = engine.engine
    ready = _available.get(engine)
    if ready is None:
        with engine.connect() as conn:
            ready = sqlite_supports_trigram(conn) and _has_index(conn)
        if not ready:
            log.warning("party search tables are missing or unreadable with SQLite %s: searching "
                        "by name prefix, exact reference and exact email only (run `crm db upgrade` "
                        "with SQLite >= %s)", sqlite3.sqlite_version,
                        ".".join(map(str, MIN_SQLITE)))
        _available[engine] = ready
    return ready


# --------------------------------------------------------------------------------------------
# queries


@dataclass(frozen=True)
class Terms:
    """What one search box entry is matched as."""

    #: the entry as names are keyed (cleaned, casefolded) and as emails are stored (lowercased);
    #: usually one string, two when casefolding changes more than case (``ß`` -> ``ss``)
    texts: tuple[str, ...]
    #: the digits of a phone-like entry, without an international ``00`` or trunk ``0`` prefix
    digits: str | None


def terms_of(q: str) -> Terms | None:
    """The trigram terms of a search entry, or None when it is too short for trigrams."""
    key = name_key(q)
    if len(key) < MIN_TERM:
        return None
    texts = tuple(dict.fromkeys((key, " ".join(q.split()).lower())))
    digits = None
    if _PHONE_TERM.match(key):
        digits = re.sub(r"\D", "", key)
        digits = digits[2:] if digits.startswith("00") else digits.removeprefix("0")
        if len(digits) < MIN_TERM or digits in texts:
            digits = None
    return Terms(texts, digits)


def _fts_phrase(text: str) -> str:
    """``text`` as one FTS5 string: everything in it is plain characters (quotes doubled), so
    ``AND``, ``NEAR``, ``*``, ``:`` and ``"`` in the search box are searched for, not parsed."""
    return '"' + text.replace('"', '""') + '"'


def fts_query(texts: tuple[str, ...], digits: str | None = None) -> str:
    """An FTS5 query matching any of ``texts`` (or ``digits``) as a substring."""
    return " OR ".join(_fts_phrase(t) for t in (*texts, *([digits] if digits else [])))


def like_pattern(text: str) -> str:
    """``%text%`` for ``LIKE ... ESCAPE '\\'`` with the user's ``%``, ``_`` and ``\\`` literal."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class Matches:
    """The parties a search entry matched: at most :data:`MATCH_CAP` ids, and whether more did."""

    ids: list[int]
    capped: bool


def find(ctx: Context, q: str | None) -> Matches | None:
    """The parties matching search box entry ``q``, or None when the caller is to filter by
    :func:`name_prefix` / :func:`exact_reference` itself (no entry; on SQLite a term under three
    characters, which the name btree serves exactly, or a database without the index)."""
    if not name_key(q or ""):
        return None
    terms = terms_of(q or "")
    postgresql = ctx.session.get_bind().dialect.name == "postgresql"
    if postgresql and (terms is None or not pg_trigram_friendly(terms)):
        return _pg_prefix_ids(ctx, q or "", MATCH_CAP)
    if terms is None or (not postgresql and not sqlite_index_ready(ctx)):
        return None
    ids, capped = matching_ids(ctx, terms, MATCH_CAP)
    return Matches(ids, capped)


def pg_trigram_friendly(terms: Terms) -> bool:
    """pg_trgm makes trigrams of words (runs of letters and digits): ``an s`` or ``e@o`` give only
    padded one- and two-letter trigrams that half the table holds, and a 1M-party search turns
    into a 100-300 ms recheck. Such a term is searched as a name prefix on PostgreSQL."""
    return any(len(run) >= MIN_TERM for text in terms.texts for run in _WORD.findall(text)) \
        or terms.digits is not None


def _pg_prefix_ids(ctx: Context, q: str, cap: int) -> Matches:
    """Names starting with ``q`` (and the party whose reference is ``q``), at most ``cap``: the
    ``text_pattern_ops`` index finds them, the list sorts them. (Walking the name index in sort
    order and filtering by the prefix, the plan PostgreSQL picks otherwise, reads every name
    before the prefix: half a second for "jo" at a million parties.)"""
    match = name_prefix(ctx, name_key(q))
    prefix = _pg_branch(select(Party.id.label("id")).where(Party.business_id == ctx.business_id, match),
                        "by_prefix", cap)
    _pg_no_jit(ctx)
    found = list(ctx.session.scalars(prefix))
    exact = [exact_reference(ctx, q)]
    if "@" in q:
        with contextlib.suppress(NormalizeError):
            exact += _email_owners(ctx, normalize_email(q).normalized)
    found = list(dict.fromkeys([i for i in exact if i is not None] + found))
    return Matches(found[:cap], len(found) > cap)


def _email_owners(ctx: Context, email: str) -> list[int]:
    """Parties whose own email, or a contact's, is exactly ``email`` (the lookup index)."""
    owner = func.coalesce(ContactMechanism.party_id, Contact.party_id)
    return list(ctx.session.scalars(
        select(owner).select_from(ContactMechanism)
        .outerjoin(Contact, Contact.id == ContactMechanism.contact_id)
        .where(ContactMechanism.kind == "email", ContactMechanism.normalized == email, owner.is_not(None))))


def name_prefix(ctx: Context, key: str) -> Any:
    """Names starting with ``key`` (a name key), as a range of the ``(business_id, name_key, id)``
    btree. SQLite's LIKE is case-insensitive, so it cannot use a BINARY index and walks the
    whole business instead (a second for a common prefix at a million parties); a range can.
    PostgreSQL compares text in the database's collation, where a range is not a prefix: its
    ``LIKE 'abc%'`` uses the ``text_pattern_ops`` index."""
    if ctx.session.get_bind().dialect.name == "sqlite":
        return and_(Party.name_key >= key, Party.name_key < key + "\U0010ffff")
    return Party.name_key.startswith(key, autoescape=True)


def exact_reference(ctx: Context, q: str) -> int | None:
    """The party whose reference is exactly ``q`` (one probe of the unique index)."""
    return ctx.session.scalar(select(Party.id).where(Party.reference == q.strip()))


def matching_ids(ctx: Context, terms: Terms, cap: int = MATCH_CAP) -> tuple[list[int], bool]:
    """Ids of up to ``cap`` parties of the business matching ``terms``, and whether there are
    more. Archived and merged parties are included: the list's own filters come after."""
    if ctx.session.get_bind().dialect.name == "postgresql":
        return _pg_ids(ctx, terms, cap)
    return _sqlite_ids(ctx, terms, cap)


_party_fts = table(PARTY_INDEX, column("rowid"))
_mechanism_fts = table(MECHANISM_INDEX, column("rowid"))


def _sqlite_ids(ctx: Context, terms: Terms, cap: int) -> tuple[list[int], bool]:
    """The same two sources as on PostgreSQL, each an FTS5 trigram lookup with its own LIMIT.
    The FTS tables are not mapped classes, so the tenant scope of crmcore.db cannot see them:
    every branch names its business itself, on the table it joins (``crmcore.db`` adds the same
    criterion to the ORM entities again, but the safety of this query must not depend on how far
    that reaches into a UNION of subqueries)."""
    business = ctx.business_id
    by_name = (select(Party.id.label("id")).select_from(_party_fts).join(Party, Party.id == _party_fts.c.rowid)
               .where(literal_column(PARTY_INDEX).op("MATCH")(fts_query(terms.texts)),
                      Party.business_id == business)
               .limit(cap + 1))
    owner = func.coalesce(ContactMechanism.party_id, Contact.party_id)
    by_mechanism = (
        select(owner.label("id")).select_from(_mechanism_fts)
        .join(ContactMechanism, ContactMechanism.id == _mechanism_fts.c.rowid)
        .outerjoin(Contact, (Contact.id == ContactMechanism.contact_id) & (Contact.business_id == business))
        .where(literal_column(MECHANISM_INDEX).op("MATCH")(fts_query(terms.texts, terms.digits)),
               ContactMechanism.business_id == business, owner.is_not(None))
        .limit(cap + 1))
    return _dedupe(ctx, [by_name, by_mechanism], cap)


def _dedupe(ctx: Context, branches: list[Any], cap: int) -> tuple[list[int], bool]:
    """Run the branches as one UNION and bring the ids back as ONE value (a JSON array on
    SQLite, an array on PostgreSQL): thousands of one-column rows through the driver and the
    result machinery cost more than the index lookups that found them."""
    ids = union(*[select(b.subquery()) for b in branches]).subquery()
    limited = select(ids.c.id).limit(cap + 1).subquery()
    if ctx.session.get_bind().dialect.name == "sqlite":
        found = json.loads(ctx.session.scalar(select(func.json_group_array(limited.c.id))) or "[]")
    else:
        _pg_no_jit(ctx)
        found = ctx.session.scalar(select(func.array_agg(limited.c.id))) or []
    return found[:cap], len(found) > cap


def id_filter(ctx: Context, ids: list[int]) -> Any:
    """``parties.id`` is one of ``ids``, bound as ONE parameter (a JSON text read by
    ``json_each`` on SQLite, an array on PostgreSQL) rather than an ``IN`` list of thousands of
    parameters, which SQLAlchemy would render and bind one by one for every query of the page."""
    if ctx.session.get_bind().dialect.name == "sqlite":
        each = func.json_each(json.dumps(ids)).table_valued("value")
        return Party.id.in_(select(each.c.value))
    # IN (SELECT unnest(...)) rather than = ANY(...): with the array as a join input the planner
    # looks the ids up by primary key and sorts them, instead of walking the whole name index
    # in sort order probing each row against the array (100 ms at a million parties)
    # the array bound as its text form: psycopg's array dumper checked each of the thousand ids
    # with a regular expression (~2 ms a page with its count)
    return Party.id.in_(select(func.unnest(cast(
        bindparam("party_ids", "{" + ",".join(str(int(i)) for i in ids) + "}", type_=Text),
        ARRAY(BigInteger)))))


#: names read from the start of the name index to judge whether a term is common
PG_PROBE_NAMES = 2000
#: a term in at least this share of the probed names is looked for by walking the name index
PG_COMMON_SHARE = 0.03
#: the walk reads at most this many names; a term that needed more goes to the GIN index
PG_WALK_NAMES = 40_000


def _pg_common_name_ids(ctx: Context, patterns: list[str], cap: int) -> list[int] | None:
    """The first ``cap + 1`` names in name order containing a COMMON term, or None for a term
    that is not common (the caller uses the trigram index then).

    A trigram bitmap is built whole before its first row is read: for a term in 16% of a
    million names (``stra``) that is 160,000 row pointers and 45-65 ms, although only a capped
    list of 1,000 is wanted. Walking the ``(business_id, name_key, id)`` index in name order
    (an index-only scan) finds those 1,000 after ~6,000 names: 4 ms. Which plan wins depends on
    how common the term is, which PostgreSQL cannot estimate for ``LIKE '%...%'`` (pg_trgm's
    guess was off by 100x both ways when we tried to switch on EXPLAIN's estimate). So the
    first :data:`PG_PROBE_NAMES` names decide (about 1-2 ms, the price a rare term pays), and
    the walk is bounded by :data:`PG_WALK_NAMES`: a term common at the start of the alphabet
    and rare after it falls back to the index instead of reading the whole business. The
    capped result is then also the right one to show: the first names in sort order."""
    business = ctx.business_id

    def window(size: int) -> Any:
        return (select(Party.id.label("id"), Party.name_key.label("name_key"))
                .where(Party.business_id == business)
                .order_by(Party.business_id, Party.name_key, Party.id).limit(size).subquery())

    probe = window(PG_PROBE_NAMES)
    hits = ctx.session.scalar(select(func.count()).select_from(probe).where(
        _any([probe.c.name_key.like(p, escape="\\") for p in patterns])))
    if not hits or hits < PG_PROBE_NAMES * PG_COMMON_SHARE:
        return None
    walk = window(PG_WALK_NAMES)
    found = select(walk.c.id).where(_any([walk.c.name_key.like(p, escape="\\") for p in patterns])).limit(cap + 1)
    ids = ctx.session.scalar(select(func.array_agg(found.subquery().c.id))) or []
    return ids if len(ids) > cap else None


def _pg_ids(ctx: Context, terms: Terms, cap: int) -> tuple[list[int], bool]:
    """Two sources (the party's name or reference; an email or phone of the party or of one of
    its contacts), each a GIN bitmap scan read only up to its LIMIT (:func:`_pg_branch`); a term
    common enough to cap the result is found by walking the names instead
    (:func:`_pg_common_name_ids`)."""
    patterns = [like_pattern(t) for t in terms.texts]
    _pg_no_jit(ctx)
    common = _pg_common_name_ids(ctx, patterns, cap)
    if common is not None:
        return common[:cap], True
    name_match = [Party.name_key.like(p, escape="\\") for p in patterns]
    name_match += [Party.reference.ilike(p, escape="\\") for p in patterns]
    # ``kind || ''``: compared as a plain expression, so that the planner cannot AND the GIN
    # bitmap with a (business_id, kind) bitmap of every email of the business (90 ms, and a
    # cost estimate high enough to switch JIT compilation on: 300 ms more)
    kind = ContactMechanism.kind.concat("")
    mechanism_match = [kind.in_(_EMAIL_KINDS) & _any(
        [ContactMechanism.normalized.like(p, escape="\\") for p in patterns])]
    if terms.digits:
        mechanism_match.append(kind.in_(_PHONE_KINDS)
                               & ContactMechanism.normalized.like(like_pattern(terms.digits), escape="\\"))
    # every branch names its business itself, the contact lookup too (see _sqlite_ids)
    business = ctx.business_id
    by_name = select(Party.id.label("id")).where(Party.business_id == business, _any(name_match))
    # the owner through a correlated lookup, not a join: a join lets the planner pick a merge
    # join that walks the mechanisms in contact order (party-owned ones last: 400k rows)
    contact_party = (select(Contact.party_id).where(Contact.id == ContactMechanism.contact_id,
                                                    Contact.business_id == business).scalar_subquery())
    owner = func.coalesce(ContactMechanism.party_id, contact_party)
    by_mechanism = (select(owner.label("id"))  # not NULL: not an unassigned contact's
                    .where(ContactMechanism.business_id == business, _any(mechanism_match), owner.is_not(None)))
    branches = [
        _pg_branch(by_name, "by_name", cap),
        _pg_branch(by_mechanism, "by_mechanism", cap),
    ]
    return _dedupe(ctx, branches, cap)


def _pg_branch(stmt: Any, name: str, cap: int) -> Any:
    """``WITH name AS MATERIALIZED (stmt) SELECT id FROM name LIMIT cap + 1``.

    PostgreSQL cannot estimate how many rows ``LIKE '%term%'`` matches (it assumes about 1%).
    Planned under the LIMIT, a substring filter then becomes a sequential scan "until enough
    rows are found", which reads a quarter of the table for a term rarer than that (``john``:
    120 ms at a million parties). A materialized CTE is planned for all its rows, i.e. as a
    GIN bitmap scan, and is still read only as far as the LIMIT asks. (An ``OFFSET 0``
    subquery is no fence here: PostgreSQL hands the outer LIMIT down into it.)"""
    fenced = stmt.cte(name).prefix_with("MATERIALIZED")
    return select(fenced.c.id).limit(cap + 1)


def _pg_no_jit(ctx: Context) -> None:
    """No JIT compilation for the rest of this (read) transaction, said once per transaction.
    A fenced CTE is costed for all its rows, which crosses PostgreSQL's default
    ``jit_above_cost``: compiling the query then takes ~250 ms of a 25 ms search."""
    session = ctx.session
    transaction = session.get_transaction()
    if transaction is not None and session.info.get("crm_no_jit") is transaction:
        return
    session.execute(text("SET LOCAL jit = off"))
    session.info["crm_no_jit"] = session.get_transaction()


def _any(clauses: list[Any]) -> Any:
    return clauses[0] if len(clauses) == 1 else or_(*clauses)
