"""Merging a duplicate party into the party that is kept.

Every core table with a foreign key to ``parties.id`` is found by introspecting
``Base.metadata`` (so a table added later moves without touching this module) and its rows are
re-pointed with ORM-enabled ``UPDATE`` statements, which the tenant scope limits to the business.
Where the party column is part of a unique key (``party_tags``, ``party_sales_reps``: composite
primary keys), the duplicate's rows that the kept party already has are deleted first, so the
move never violates the key. Plugins move their own rows in ``crm_before_party_merge``.

The duplicate is not deleted: it keeps its id and reference, points at the kept party
(``merged_into_id``) and is archived; a :class:`PartyMerge` row keeps what it was and what moved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Table, UniqueConstraint, and_, delete, exists, func, select, update
from sqlalchemy.orm import aliased

from crmcore.audit import service as audit
from crmcore.context import get_or_404, use_case
from crmcore.db import Base, dumps, import_models, utcnow
from crmcore.errors import Conflict, ValidationFailed
from crmcore.fields.service import merge_custom_values
from crmcore.lists.models import ChoiceOption
from crmcore.parties.models import Address, ContactMechanism, Party, PartyMerge, PartySalesRep, PartyTag, Tag
from crmcore.tenancy.models import Role
from crmcore.timeline.service import log_event

if TYPE_CHECKING:
    from crmcore.context import Context

MERGE_RULES = ("fill", "duplicate", "keep")
#: party columns the duplicate fills on the kept party when they are empty there (rules fill/duplicate)
FILLED_COLUMNS = ("tax_id", "language", "prospect_status_id", "potential_id")
_NOT_MOVED = {("parties", "merged_into_id")}
_NOT_MOVED_TABLES = {"party_merges"}


@dataclass(frozen=True)
class PartyLink:
    """One column of a core table that points at ``parties.id``."""

    table: Table
    column: Column[Any]
    entity: Any  # the mapped class, or the Table when no class maps it
    attr: str
    #: for each unique key holding ``column``: the key's other columns (attribute names)
    unique_keys: tuple[tuple[str, ...], ...]
    label: str

    def col(self, entity: Any = None) -> Any:
        return _col(entity if entity is not None else self.entity, self.attr)


def _col(entity: Any, attr: str) -> Any:
    return entity.c[attr] if isinstance(entity, Table) else getattr(entity, attr)


def _mapped(table: Table) -> Any:
    for mapper in Base.registry.mappers:
        if mapper.local_table is table and not mapper.inherits:
            return mapper
    return None


def _unique_keys(table: Table) -> list[list[Column[Any]]]:
    keys = [list(table.primary_key.columns)]
    keys += [list(c.columns) for c in table.constraints if isinstance(c, UniqueConstraint)]
    keys += [list(ix.columns) for ix in table.indexes if ix.unique]
    return keys


@cache
def party_links() -> tuple[PartyLink, ...]:
    """Every core column referencing ``parties.id`` except the merge trace itself."""
    import_models()
    found: list[tuple[Table, Column[Any]]] = []
    for table in Base.metadata.sorted_tables:
        if table.name in _NOT_MOVED_TABLES:
            continue
        for fk in sorted(table.foreign_keys, key=lambda f: f.parent.name):
            target = fk.column
            if target.table.name == "parties" and target.name == "id" \
                    and (table.name, fk.parent.name) not in _NOT_MOVED:
                found.append((table, fk.parent))
    per_table: dict[str, int] = {}
    for table, _ in found:
        per_table[table.name] = per_table.get(table.name, 0) + 1
    links = []
    for table, column in found:
        mapper = _mapped(table)
        entity = mapper.class_ if mapper is not None else table

        def attr_of(c: Column[Any], mapper: Any = mapper) -> str:
            return mapper.get_property_by_column(c).key if mapper is not None else c.name

        keys = tuple(
            tuple(attr_of(c) for c in key if c is not column and c.name != "business_id")
            for key in _unique_keys(table) if column in key
        )
        label = table.name if per_table[table.name] == 1 else f"{table.name}.{column.name}"
        links.append(PartyLink(table, column, entity, attr_of(column), keys, label))
    return tuple(links)


def _scoped(ctx: Context, link: PartyLink, stmt: Any) -> Any:
    """Plain tables get the business criterion by hand; mapped ones get it from the session."""
    if isinstance(link.entity, Table) and "business_id" in link.table.c:
        return stmt.where(link.table.c.business_id == ctx.business_id)
    return stmt


def _conflicts(link: PartyLink, other: tuple[str, ...], kept_id: int) -> Any:
    """The row's key (``other`` columns) is one the kept party has already."""
    twin = link.entity.alias("twin") if isinstance(link.entity, Table) else aliased(link.entity)
    return exists().where(_col(twin, link.attr) == kept_id, *[_col(twin, a) == _col(link.entity, a) for a in other])


def _count(ctx: Context, link: PartyLink, where: Any) -> int:
    stmt = _scoped(ctx, link, select(func.count()).select_from(link.entity).where(where))
    return ctx.session.scalar(stmt) or 0


def _move_links(ctx: Context, kept_id: int, dup_id: int) -> tuple[dict[str, int], dict[str, int]]:
    moved: dict[str, int] = {}
    dropped: dict[str, int] = {}
    for link in party_links():
        gone = 0
        for other in link.unique_keys:
            stmt = delete(link.entity).where(link.col() == dup_id, _conflicts(link, other, kept_id))
            gone += ctx.session.execute(_scoped(ctx, link, stmt),
                                        execution_options={"synchronize_session": False}).rowcount or 0
        stmt = update(link.entity).where(link.col() == dup_id).values({link.attr: kept_id})
        n = ctx.session.execute(_scoped(ctx, link, stmt),
                                execution_options={"synchronize_session": False}).rowcount or 0
        if n:
            moved[link.label] = n
        if gone:
            dropped[link.label] = gone
    return moved, dropped


# --------------------------------------------------------------------------------------------
# what the core's own tables need beyond re-pointing


def _twin_mechanism() -> tuple[Any, Any]:
    twin = aliased(ContactMechanism)
    base = and_(ContactMechanism.contact_id.is_(None), twin.contact_id.is_(None), twin.kind == ContactMechanism.kind)
    return twin, base


def _same_mechanisms(kept_id: int, dup_id: int) -> Any:
    """The duplicate's own mechanisms whose value the kept party already has."""
    twin, base = _twin_mechanism()
    return and_(ContactMechanism.party_id == dup_id, ContactMechanism.contact_id.is_(None),
                exists().where(base, twin.party_id == kept_id, twin.normalized == ContactMechanism.normalized))


def _tidy_owned(ctx: Context, kept_id: int, dup_id: int) -> dict[str, int]:
    """Before the move: drop the duplicate's mechanisms the kept party has already, and take
    the primary / default flags off the duplicate's rows where the kept party has one, so the
    kept party ends with one primary per kind and one default address per purpose."""
    opts = {"synchronize_session": False}
    dropped = ctx.session.execute(delete(ContactMechanism).where(_same_mechanisms(kept_id, dup_id)),
                                  execution_options=opts).rowcount or 0
    twin, base = _twin_mechanism()
    ctx.session.execute(
        update(ContactMechanism)
        .where(ContactMechanism.party_id == dup_id, ContactMechanism.contact_id.is_(None), ContactMechanism.is_primary,
               exists().where(base, twin.party_id == kept_id, twin.is_primary))
        .values(is_primary=False), execution_options=opts)
    other = aliased(Address)
    ctx.session.execute(
        update(Address)
        .where(Address.party_id == dup_id, Address.is_default,
               exists().where(other.party_id == kept_id, other.purpose == Address.purpose, other.is_default))
        .values(is_default=False), execution_options=opts)
    return {"contact_mechanisms": dropped} if dropped else {}


# --------------------------------------------------------------------------------------------
# checks, snapshot, field merge


def _check_rule(rule: str) -> str:
    if rule not in MERGE_RULES:
        raise ValidationFailed(f"unknown custom-value rule {rule!r}",
                               {"custom_rule": [f"use one of: {', '.join(MERGE_RULES)}"]})
    return rule


def _pair(ctx: Context, kept_id: Any, duplicate_id: Any, *, lock: bool = False) -> tuple[Party, Party]:
    kept = get_or_404(ctx, Party, kept_id, "party")
    dup = get_or_404(ctx, Party, duplicate_id, "party")
    if kept.id == dup.id:
        raise ValidationFailed("a party cannot be merged into itself",
                               {"duplicate_id": ["pick another party than the one kept"]})
    if lock:  # PostgreSQL: a concurrent merge or edit of either party waits for this one
        ctx.session.scalars(select(Party.id).where(Party.id.in_([kept.id, dup.id])).order_by(Party.id)
                            .with_for_update()).all()
        ctx.session.refresh(kept)
        ctx.session.refresh(dup)
    if dup.merged_into_id is not None:
        raise Conflict(f"party {dup.name!r} was already merged into party {dup.merged_into_id}",
                       {"duplicate_id": ["already merged"]})
    if kept.merged_into_id is not None:
        raise Conflict(f"party {kept.name!r} was merged into party {kept.merged_into_id}; merge into that one",
                       {"kept_id": ["already merged into another party"]})
    return kept, dup


def _jsonable(value: Any) -> Any:
    return json.loads(dumps(value))


def _snapshot(ctx: Context, dup: Party) -> dict[str, Any]:
    columns = {c.key: getattr(dup, c.key) for c in Party.__mapper__.column_attrs}
    tags = ctx.session.scalars(select(Tag.name).join(PartyTag, PartyTag.tag_id == Tag.id)
                               .where(PartyTag.party_id == dup.id).order_by(Tag.name_key)).all()
    reps = ctx.session.scalars(select(PartySalesRep.user_id).where(PartySalesRep.party_id == dup.id)
                               .order_by(PartySalesRep.user_id)).all()
    return _jsonable({"party": columns, "tags": list(tags), "sales_rep_ids": list(reps)})


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def custom_conflicts(kept: dict[str, Any], dup: dict[str, Any]) -> list[dict[str, Any]]:
    """Keys both parties have a (different) value for: where the rule decides."""
    return [{"key": k, "kept": kept[k], "duplicate": dup[k]} for k in sorted(set(kept) & set(dup))
            if not _empty(kept[k]) and not _empty(dup[k]) and kept[k] != dup[k]]


def _merged_columns(kept: Party, dup: Party, rule: str) -> dict[str, Any]:
    """New values of the kept party's own columns: flags combine, empty fields are filled."""
    new: dict[str, Any] = {
        "is_customer": kept.is_customer or dup.is_customer,
        "is_supplier": kept.is_supplier or dup.is_supplier,
    }
    new["is_prospect"] = kept.is_prospect or (dup.is_prospect and not new["is_customer"])
    if rule != "keep":
        for column in FILLED_COLUMNS:
            if _empty(getattr(kept, column)) and not _empty(getattr(dup, column)):
                new[column] = getattr(dup, column)
    return {k: v for k, v in new.items() if getattr(kept, k) != v}


def _option_values(ctx: Context, ids: set[int]) -> dict[int, str]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    rows = ctx.session.execute(select(ChoiceOption.id, ChoiceOption.value).where(ChoiceOption.id.in_(ids)))
    return {option_id: value for option_id, value in rows}


def _change_log(ctx: Context, kept: Party, columns: dict[str, Any], custom: dict[str, Any]) -> dict[str, Any]:
    names = {"prospect_status_id": "prospect_status", "potential_id": "potential"}
    values = _option_values(ctx, {getattr(kept, c) for c in names} | {columns.get(c) for c in names})
    changes: dict[str, Any] = {}
    for column, value in columns.items():
        old = getattr(kept, column)
        if column in names:
            changes[names[column]] = [values.get(old), values.get(value)]
        else:
            changes[column] = [old, value]
    before = dict(kept.custom or {})
    for key in sorted(set(before) | set(custom)):
        if before.get(key) != custom.get(key):
            changes[f"custom.{key}"] = [before.get(key), custom.get(key)]
    return changes


def _merge_custom(ctx: Context, kept: Party, dup: Party, rule: str) -> dict[str, Any]:
    return dict(merge_custom_values(ctx, "party", dict(kept.custom or {}), dict(dup.custom or {}), rule))


# --------------------------------------------------------------------------------------------
# use cases


@use_case(Role.MEMBER)
def merge_parties(ctx: Context, kept_id: int, duplicate_id: int, *, custom_rule: str = "fill") -> PartyMerge:
    """Move everything of ``duplicate_id`` onto ``kept_id`` and retire the duplicate.

    ``custom_rule``: ``fill`` (the kept party's custom values win, the duplicate fills empty
    ones), ``duplicate`` (the duplicate's values win), ``keep`` (the kept party's values only).
    Flags combine (a customer on either side is a customer); empty tax id, language, prospect
    status and potential are filled from the duplicate unless the rule is ``keep``.
    """
    rule = _check_rule(custom_rule)
    kept, dup = _pair(ctx, kept_id, duplicate_id, lock=True)
    kept_pk, dup_pk = kept.id, dup.id
    snapshot = _snapshot(ctx, dup)
    ctx.session.flush()
    dropped = _tidy_owned(ctx, kept_pk, dup_pk)
    moved, gone = _move_links(ctx, kept_pk, dup_pk)
    for label, n in gone.items():
        dropped[label] = dropped.get(label, 0) + n
    ctx.session.expire_all()  # rows moved behind the identity map's back
    kept, dup = ctx.session.get(Party, kept_pk), ctx.session.get(Party, dup_pk)

    columns = _merged_columns(kept, dup, rule)
    custom = _merge_custom(ctx, kept, dup, rule)
    changes = _change_log(ctx, kept, columns, custom)
    for column, value in columns.items():
        setattr(kept, column, value)
    if custom != (kept.custom or {}):
        kept.custom = custom
    ctx.validate("crm_before_party_merge", kept=kept, duplicate=dup)

    now = utcnow()
    dup.merged_into_id = kept.id
    dup.archived_at = dup.archived_at or now
    dup.updated_at = now
    kept.updated_at = now
    trace = PartyMerge(kept_party_id=kept.id, merged_party_id=dup.id, merged_by_id=ctx.user_id, merged_at=now,
                       snapshot=snapshot, moved={**moved, **({"dropped": dropped} if dropped else {})},
                       custom_rule=rule)
    ctx.session.add(trace)
    ctx.session.flush()
    audit.record(ctx, "party.merged", kept, changes={"duplicate_id": dup.id, "duplicate_name": dup.name,
                                                      "moved": moved, "dropped": dropped, **changes})
    audit.record(ctx, "party.merged_away", dup, changes={"merged_into_id": [None, kept.id]})
    log_event(ctx, "party_merged", f"{dup.name} merged into {kept.name}", party_id=kept.id,
              ref_type="party_merge", ref_id=trace.id, data={"duplicate_id": dup.id, "moved": moved})
    ctx.emit("crm_after_party_merged", kept=kept, duplicate_id=dup.id)
    if changes and ctx.wants("crm_after_party_updated"):
        ctx.emit("crm_after_party_updated", party=kept, changes=_jsonable(changes))
    return trace


@use_case(Role.READ_ONLY, write=False)
def merge_preview(ctx: Context, kept_id: int, duplicate_id: int) -> dict[str, Any]:
    """What :func:`merge_parties` would do, without doing it.

    ``moves``: rows that would move, per table; ``dropped``: rows the kept party already has
    (tags, sales reps, identical mechanisms) that would be dropped; ``custom_conflicts``: keys
    both parties fill differently; ``custom``: the kept party's custom values under each rule;
    ``fields``: the kept party's columns that would change (rule ``fill``). Raises the same
    errors as the merge (itself, already merged, another business's party).
    """
    kept, dup = _pair(ctx, kept_id, duplicate_id)
    moves: dict[str, int] = {}
    dropped: dict[str, int] = {}
    same = ctx.session.scalar(select(func.count()).select_from(ContactMechanism)
                              .where(_same_mechanisms(kept.id, dup.id))) or 0
    if same:
        dropped["contact_mechanisms"] = same
    for link in party_links():
        gone = 0
        for other in link.unique_keys:
            gone += _count(ctx, link, and_(link.col() == dup.id, _conflicts(link, other, kept.id)))
        total = _count(ctx, link, link.col() == dup.id)
        if link.table.name == "contact_mechanisms":
            total -= same
        if total - gone:
            moves[link.label] = total - gone
        if gone:
            dropped[link.label] = dropped.get(link.label, 0) + gone
    kept_custom, dup_custom = dict(kept.custom or {}), dict(dup.custom or {})
    return {
        "kept": kept,
        "duplicate": dup,
        "moves": moves,
        "dropped": dropped,
        "custom_conflicts": custom_conflicts(kept_custom, dup_custom),
        "custom": {rule: merge_custom_values(ctx, "party", dict(kept_custom), dict(dup_custom), rule)
                   for rule in MERGE_RULES},
        "fields": _change_log(ctx, kept, _merged_columns(kept, dup, "fill"), kept_custom),
    }
