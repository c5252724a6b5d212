"""Use cases for parties, contacts, contact mechanisms, addresses, tags and sales reps.

Every write validates all of its input before the first row is written (errors for every field
at once, under their field paths), then runs the ``crm_before_party_save`` hook, writes, audits,
adds a timeline line and queues the react-hooks, all in the use case's one transaction.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, bindparam, delete, exists, insert, or_, select, union_all
from sqlalchemy.exc import IntegrityError

from crmcore.audit import service as audit
from crmcore.auth.models import User
from crmcore.context import get_or_404, use_case
from crmcore.db import utcnow
from crmcore.errors import ValidationFailed
from crmcore.fields import service as custom_fields
from crmcore.lists import service as lists
from crmcore.lists.models import POTENTIAL_LEVEL, PROSPECT_STATUS, ChoiceOption
from crmcore.numbering.service import assign_reference
from crmcore.paging import CappedCount, Page, capped_count, clamp_limit, keyset_page
from crmcore.parties import search
from crmcore.parties.contacts import (  # re-exported: one module for callers
    add_address,
    add_mechanism,
    archive_contact,
    contact_details,
    create_contact,
    get_contact,
    list_contacts,
    move_contact,
    remove_address,
    remove_mechanism,
    unarchive_contact,
    update_address,
    update_contact,
    update_mechanism,
)
from crmcore.parties.inputs import (
    Errors,
    address_row,
    check_cursor,
    clean_addresses,
    clean_mechanisms,
    load_input,
    mechanism_rows,
    region_of,
    tag_names,
    writable_party,
)
from crmcore.parties.merge import merge_parties, merge_preview
from crmcore.parties.models import (
    PARTY_KINDS,
    Address,
    Contact,
    ContactMechanism,
    Party,
    PartyMerge,
    PartySalesRep,
    PartyTag,
    Tag,
)
from crmcore.parties.normalize import (
    NormalizeError,
    clean_name,
    name_key,
    normalize_email,
    normalize_phone,
    person_name,
)
from crmcore.parties.schemas import SORTS, PartyCreateSchema, PartyFilterSchema, PartyUpdateSchema
from crmcore.tenancy.config import member_ids
from crmcore.tenancy.models import Role
from crmcore.timeline.service import log_event

if TYPE_CHECKING:
    import datetime as dt

    from crmcore.context import Context

log = logging.getLogger("crmcore.parties")

#: list-backed party fields: input key, list, column
_OPTION_FIELDS = (("prospect_status", PROSPECT_STATUS, "prospect_status_id"),
                  ("potential", POTENTIAL_LEVEL, "potential_id"))
#: scalar party columns a create or update sets directly from the validated input
_PARTY_COLUMNS = ("kind", "name", "first_name", "last_name", "is_prospect", "is_customer", "is_supplier",
                  "language", "currency", "tax_id")


def seed_defaults(ctx: Context) -> None:
    """Starting data of a new business for this feature (its lists)."""
    lists.seed_defaults(ctx)


# --------------------------------------------------------------------------------------------
# tags, sales reps, plugin defaults


def _tags_for(ctx: Context, names: Iterable[str]) -> list[Tag]:
    """The business's tags with these names, creating the missing ones."""
    wanted = tag_names(names)
    if not wanted:
        return []
    found = {t.name_key: t for t in ctx.session.scalars(select(Tag).where(Tag.name_key.in_(list(wanted))))}
    for key, name in wanted.items():
        if key not in found:
            found[key] = _new_tag(ctx, key, name)
    return [found[k] for k in wanted]


def _new_tag(ctx: Context, key: str, name: str) -> Tag:
    """Create a tag; when another transaction created the same one meanwhile, use that one."""
    tag = Tag(name=name, name_key=key)
    try:
        with ctx.session.begin_nested():
            ctx.session.add(tag)
    except IntegrityError:
        tag = ctx.session.scalars(select(Tag).where(Tag.name_key == key)).one()
    return tag


_tags_table, _party_tags_table = Tag.__table__, PartyTag.__table__
_tag_scope = bindparam("tag_business_id", type_=BigInteger())
# One Core INSERT .. SELECT tags the party with every wanted tag that exists. Core statements
# bypass the tenant scope: both the tags it reads and the rows it writes name the business.
_ATTACH_TAGS = insert(_party_tags_table).from_select(
    ["business_id", "party_id", "tag_id"],
    select(_tag_scope, bindparam("tag_party_id", type_=BigInteger()), _tags_table.c.id)
    .where(_tags_table.c.business_id == _tag_scope,
           _tags_table.c.name_key.in_(bindparam("tag_keys", expanding=True))),
).returning(_party_tags_table.c.tag_id)


def _attach_tags(ctx: Context, party_id: int, wanted: Mapping[str, str]) -> None:
    """Tag ``party_id`` with ``wanted`` (name_key -> name), creating the tags that do not exist
    yet: one statement when they all exist (the common case of a form or an import)."""
    if not wanted:
        return
    connection = ctx.session.connection()
    attached = set(connection.execute(_ATTACH_TAGS, {
        "tag_business_id": ctx.business_id, "tag_party_id": party_id, "tag_keys": list(wanted)}).scalars())
    if len(attached) == len(wanted):
        return
    rows = [{"business_id": ctx.business_id, "party_id": party_id, "tag_id": tag.id}  # explicit, as above
            for tag in _tags_for(ctx, wanted.values()) if tag.id not in attached]
    if rows:
        connection.execute(insert(_party_tags_table), rows)


def _check_members(ctx: Context, user_ids: Iterable[int], errs: Errors, field: str = "sales_rep_ids") -> list[int]:
    ids = list(dict.fromkeys(int(u) for u in user_ids))
    if not ids:
        return []
    members = member_ids(ctx)
    for uid in ids:
        if uid not in members:
            errs.add([field], f"user {uid} is not a member of this business")
    return [u for u in ids if u in members]


def _party_tags(ctx: Context, party_id: int) -> list[Tag]:
    return list(ctx.session.scalars(
        select(Tag).join(PartyTag, PartyTag.tag_id == Tag.id).where(PartyTag.party_id == party_id)
        .order_by(Tag.name_key)))


def _party_rep_ids(ctx: Context, party_id: int) -> list[int]:
    return sorted(ctx.session.scalars(select(PartySalesRep.user_id).where(PartySalesRep.party_id == party_id)))


#: schema instances are reused (building one deep-copies its fields: a tenth of a create's time);
#: marshmallow's ``load`` keeps no state on the instance
_CREATE_SCHEMA = PartyCreateSchema()
_UPDATE_SCHEMA = PartyUpdateSchema()
_DEFAULT_KEYS = frozenset(_CREATE_SCHEMA.fields) - {"kind"}


def _apply_defaults(ctx: Context, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """Fill keys the caller did not give from ``crm_party_defaults`` (first plugin wins per key;
    custom values merge per key)."""
    out = dict(data)
    for plugin, defaults in ctx.collect("crm_party_defaults", kind=kind):
        if not isinstance(defaults, Mapping):
            log.warning("plugin %s returned %r from crm_party_defaults; expected a dict", plugin, defaults)
            continue
        for key, value in defaults.items():
            if key not in _DEFAULT_KEYS:
                log.warning("plugin %s gave unknown party default %r; ignored", plugin, key)
            elif key == "custom" and isinstance(value, Mapping):
                out["custom"] = {**value, **(out.get("custom") or {})}
            else:
                out.setdefault(key, value)
    return out


# --------------------------------------------------------------------------------------------
# after a save: audit, timeline, react-hooks


def _saved(ctx: Context, party: Party, changes: dict[str, Any], *, created: bool = False,
           summary: str | None = None) -> None:
    if created:
        audit.record(ctx, "party.created", party, changes=changes)
        log_event(ctx, "party_created", f"{party.name} created", party_id=party.id)
        ctx.emit("crm_after_party_created", party=party)
        return
    if not changes:
        return
    audit.record(ctx, "party.updated", party, changes=changes)
    log_event(ctx, "party_updated", summary or _summary(changes), party_id=party.id, data={"fields": sorted(changes)})
    if ctx.wants("crm_after_party_updated"):
        ctx.emit("crm_after_party_updated", party=party, changes=changes)


def _summary(changes: Mapping[str, Any]) -> str:
    if set(changes) == {"archived_at"}:
        return "Archived" if changes["archived_at"][1] else "Restored from the archive"
    names = ", ".join(sorted(k.replace("_", " ") for k in changes))
    return f"Updated {names}"


# --------------------------------------------------------------------------------------------
# parties


def _kind_names(kind: str, given: Mapping[str, Any], current: Party | None, errs: Errors) -> dict[str, Any]:
    """The name columns for ``kind``: an organisation has a name; a person's name is derived."""
    def pick(key: str) -> Any:
        if key in given:
            return given[key]
        return getattr(current, key) if current is not None else None

    if kind == "person":
        if "name" in given and given["name"] is not None and not ({"first_name", "last_name"} & set(given)):
            errs.add(["first_name"], "a person's name comes from first_name and last_name; give those")
            return {}
        first, last = pick("first_name"), pick("last_name")
        if not (first or last):
            errs.add(["first_name"], "give a first name or a last name")
            return {}
        name = person_name(first, last)
        if len(name) > 300:
            errs.add(["last_name"], "the full name is longer than 300 characters")
            return {}
        return {"first_name": first, "last_name": last, "name": name, "name_key": name.casefold()}
    for key in ("first_name", "last_name"):
        if given.get(key):
            errs.add([key], "only a person has first and last names; give an organisation a name")
    name = clean_name(pick("name")) if ("name" in given or current is None or current.kind == kind) else ""
    if not name:
        errs.add(["name"], "give the organisation's name")
        return {}
    return {"first_name": None, "last_name": None, "name": name, "name_key": name.casefold()}


@use_case(Role.MEMBER)
def create_party(ctx: Context, data: Mapping[str, Any]) -> Party:
    """Create an organisation or a person with its mechanisms, addresses, tags and sales reps."""
    if data is not None and not isinstance(data, Mapping):
        raise ValidationFailed("invalid party", {"_schema": ["expected an object of fields"]})
    raw = dict(data or {})
    kind = raw["kind"] if raw.get("kind") in PARTY_KINDS else "organisation"
    values = load_input(_CREATE_SCHEMA, _apply_defaults(ctx, kind, raw), "party")
    kind = values.get("kind") or "organisation"
    errs = Errors()
    columns = {"kind": kind, **_kind_names(kind, values, None, errs)}
    for key in ("is_customer", "is_supplier", "language", "tax_id"):
        if key in values:
            columns[key] = values[key]
    columns["is_prospect"] = values.get(
        "is_prospect", not (columns.get("is_customer") or columns.get("is_supplier")))
    columns["currency"] = values.get("currency") or ctx.business.currency
    status = errs.call(lists.resolve_option, ctx, PROSPECT_STATUS, values.get("prospect_status"),
                       field="prospect_status")
    if status is None and "prospect_status" not in values and columns["is_prospect"]:
        status = next(iter(lists.active_options(ctx, PROSPECT_STATUS)), None)
    potential = errs.call(lists.resolve_option, ctx, POTENTIAL_LEVEL, values.get("potential"), field="potential")
    rep_ids = _check_members(ctx, values.get("sales_rep_ids") or [], errs)
    custom = errs.call(custom_fields.clean_custom_values, ctx, "party", values.get("custom") or {},
                       existing=None, partial=False, default={})
    addresses = clean_addresses(values.get("addresses") or [], errs)
    mechanisms = clean_mechanisms(values.get("mechanisms") or [], region_of(addresses), errs, "mechanisms")
    errs.raise_if_any("invalid party")

    party = Party(**columns, prospect_status_id=status.id if status else None,
                  potential_id=potential.id if potential else None, custom=custom,
                  reference=assign_reference(ctx, "party"), created_by_id=ctx.user_id)
    new_tags = list(tag_names(values.get("tags") or []).values())
    changes: dict[str, Any] = {k: [None, v] for k, v in columns.items() if v not in (None, False) and k != "name_key"}
    changes.update({k: [None, v] for k, v in (
        ("reference", party.reference), ("prospect_status", status.value if status else None),
        ("potential", potential.value if potential else None), ("tags", new_tags or None),
        ("sales_rep_ids", rep_ids or None)) if v})
    changes.update({f"custom.{k}": [None, v] for k, v in custom.items()})
    ctx.validate("crm_before_party_save", party=party, changes=changes, created=True)

    ctx.session.add(party)
    ctx.session.flush()
    _attach_tags(ctx, party.id, tag_names(new_tags))
    if rep_ids or mechanisms or addresses:
        ctx.session.add_all(PartySalesRep(party_id=party.id, user_id=uid) for uid in rep_ids)
        ctx.session.add_all(mechanism_rows(mechanisms, party_id=party.id))
        ctx.session.add_all(address_row(a, party.id) for a in addresses)
        ctx.session.flush()
    _saved(ctx, party, changes, created=True)
    return party


@use_case(Role.MEMBER)
def update_party(ctx: Context, party_id: int, data: Mapping[str, Any]) -> Party:
    """Change some fields of a party; ``tags`` and ``sales_rep_ids`` replace the current sets."""
    party = writable_party(ctx, party_id)
    values = load_input(_UPDATE_SCHEMA, data, "party", partial=True)
    new, rep_ids, custom = _checked_update(ctx, party, values)
    changes, labels = _column_changes(ctx, party, new)
    old_tags = _party_tags(ctx, party.id) if "tags" in values else []
    wanted = tag_names(values.get("tags") or [])
    if "tags" in values and set(wanted) != {t.name_key for t in old_tags}:
        changes["tags"] = [[t.name for t in old_tags], list(wanted.values())]
    old_reps = _party_rep_ids(ctx, party.id) if rep_ids is not None else []
    if rep_ids is not None and set(rep_ids) != set(old_reps):
        changes["sales_rep_ids"] = [old_reps, sorted(rep_ids)]
    before = dict(party.custom or {})
    if custom is not None:
        changes.update({f"custom.{k}": [before.get(k), custom.get(k)] for k in sorted(set(before) | set(custom))
                        if before.get(k) != custom.get(k)})
    if not changes:
        return party

    for column, value in new.items():
        if getattr(party, column) != value:
            setattr(party, column, value)
    if custom is not None and custom != before:
        party.custom = custom
    party.updated_at = utcnow()
    ctx.validate("crm_before_party_save", party=party, changes=changes, created=False)
    if "tags" in changes:
        _replace_tags(ctx, party.id, old_tags, wanted)
    if "sales_rep_ids" in changes:
        _replace_reps(ctx, party.id, old_reps, rep_ids or [])
    ctx.session.flush()
    _saved(ctx, party, changes, summary=labels)
    return party


def _checked_update(ctx: Context, party: Party, values: Mapping[str, Any]
                    ) -> tuple[dict[str, Any], list[int] | None, dict[str, Any] | None]:
    """New column values, sales reps and custom values of an update, all checked (every field's
    errors at once)."""
    errs = Errors()
    kind = values.get("kind") or party.kind
    new: dict[str, Any] = {k: v for k, v in values.items() if k in _PARTY_COLUMNS}
    new["kind"] = kind
    if {"kind", "name", "first_name", "last_name"} & set(values):
        new.update(_kind_names(kind, values, party, errs))
    if "currency" in new and new["currency"] is None:
        new["currency"] = ctx.business.currency
    for key, list_key, column in _OPTION_FIELDS:
        if key in values:
            option = errs.call(lists.resolve_option, ctx, list_key, values[key], field=key,
                               keep=getattr(party, column))
            new[column] = option.id if option else None
    rep_ids = _check_members(ctx, values["sales_rep_ids"], errs) if "sales_rep_ids" in values else None
    custom = None
    if "custom" in values:
        custom = errs.call(custom_fields.clean_custom_values, ctx, "party", values["custom"] or {},
                           existing=dict(party.custom or {}), partial=True)
    errs.raise_if_any("invalid party")
    return new, rep_ids, custom


def _column_changes(ctx: Context, party: Party, new: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """``{field: [old, new]}`` for the party's columns (list options by their value key), and a
    readable timeline summary when only the prospect status changed."""
    changes: dict[str, Any] = {}
    moved = {column: (getattr(party, column), value) for column, value in new.items()
             if column != "name_key" and getattr(party, column) != value}
    option_columns = {column: key for key, _, column in _OPTION_FIELDS}
    ids = {i for column in option_columns if column in moved for i in moved[column]} - {None}
    options = {o.id: o for o in ctx.session.scalars(select(ChoiceOption).where(ChoiceOption.id.in_(ids)))} if ids else {}
    for column, (old, value) in moved.items():
        if column in option_columns:
            changes[option_columns[column]] = [getattr(options.get(old), "value", None),
                                               getattr(options.get(value), "value", None)]
        else:
            changes[column] = [old, value]
    summary = None
    if set(moved) == {"prospect_status_id"}:
        old, value = moved["prospect_status_id"]
        summary = (f"Prospect status: {getattr(options.get(old), 'label', None) or '—'} → "
                   f"{getattr(options.get(value), 'label', None) or '—'}")
    return changes, summary


def _replace_tags(ctx: Context, party_id: int, old: list[Tag], wanted: dict[str, str]) -> None:
    keep = {t.name_key for t in old} & set(wanted)
    drop = [t.id for t in old if t.name_key not in keep]
    if drop:
        ctx.session.execute(delete(PartyTag).where(PartyTag.party_id == party_id, PartyTag.tag_id.in_(drop)))
    _attach_tags(ctx, party_id, {key: name for key, name in wanted.items() if key not in keep})


def _replace_reps(ctx: Context, party_id: int, old: list[int], new: list[int]) -> None:
    drop = set(old) - set(new)
    if drop:
        ctx.session.execute(delete(PartySalesRep).where(PartySalesRep.party_id == party_id,
                                                        PartySalesRep.user_id.in_(drop)))
    ctx.session.add_all(PartySalesRep(party_id=party_id, user_id=uid) for uid in new if uid not in set(old))


@use_case(Role.READ_ONLY, write=False)
def get_party(ctx: Context, party_id: int) -> Party:
    return get_or_404(ctx, Party, party_id, "party")


@use_case(Role.READ_ONLY, write=False)
def party_details(ctx: Context, party_id: int) -> dict[str, Any]:
    """Everything a party's sheet shows, in a fixed number of queries (one per relation)."""
    party = get_or_404(ctx, Party, party_id, "party")
    contacts = list(ctx.session.scalars(
        select(Contact).where(Contact.party_id == party.id, Contact.archived_at.is_(None))
        .order_by(Contact.name_key, Contact.id)))
    # the party's own mechanisms and its contacts' as two index lookups: written as one
    # ``party_id = x OR contact_id IN (...)``, PostgreSQL scans every mechanism (0.8 s at 2.5M)
    contact_ids = select(Contact.id).where(Contact.party_id == party.id)
    mine = union_all(select(ContactMechanism.id).where(ContactMechanism.party_id == party.id),
                     select(ContactMechanism.id).where(ContactMechanism.contact_id.in_(contact_ids)))
    mechanisms = list(ctx.session.scalars(
        select(ContactMechanism).where(ContactMechanism.id.in_(mine))
        .order_by(ContactMechanism.kind, ContactMechanism.position, ContactMechanism.id)))
    by_contact: dict[int, list[ContactMechanism]] = defaultdict(list)
    for m in mechanisms:
        if m.contact_id is not None:
            by_contact[m.contact_id].append(m)
    addresses = list(ctx.session.scalars(
        select(Address).where(Address.party_id == party.id)
        .order_by(Address.purpose, Address.is_default.desc(), Address.id)))
    reps = list(ctx.session.scalars(
        select(User).join(PartySalesRep, PartySalesRep.user_id == User.id)
        .where(PartySalesRep.party_id == party.id).order_by(User.name, User.id)))
    option_ids = [i for i in (party.prospect_status_id, party.potential_id) if i is not None]
    options = {o.id: o for o in ctx.session.scalars(
        select(ChoiceOption).where(ChoiceOption.id.in_(option_ids)))} if option_ids else {}
    merged_into = ctx.session.get(Party, party.merged_into_id) if party.merged_into_id else None
    return {
        "party": party,
        "mechanisms": [m for m in mechanisms if m.contact_id is None],
        "addresses": addresses,
        "contacts": [{"contact": c, "mechanisms": by_contact.get(c.id, [])} for c in contacts],
        "tags": _party_tags(ctx, party.id),
        "sales_reps": reps,
        "prospect_status": options.get(party.prospect_status_id),
        "potential": options.get(party.potential_id),
        "merged_into": merged_into,
    }


@use_case(Role.MEMBER)
def set_prospect_status(ctx: Context, party_id: int, status: str | int | None) -> Party:
    """The one-click status change from the party list."""
    return update_party(ctx, party_id, {"prospect_status": status})


def _set_archived(ctx: Context, party: Party, when: dt.datetime | None) -> Party:
    if (party.archived_at is None) == (when is None):
        return party
    changes = {"archived_at": [party.archived_at, when]}
    party.archived_at = when
    ctx.validate("crm_before_party_save", party=party, changes=changes, created=False)
    ctx.session.flush()
    _saved(ctx, party, changes)
    return party


@use_case(Role.MEMBER)
def archive_party(ctx: Context, party_id: int) -> Party:
    """Hide a party from lists and pickers; everything it has stays."""
    return _set_archived(ctx, writable_party(ctx, party_id), utcnow())


@use_case(Role.MEMBER)
def unarchive_party(ctx: Context, party_id: int) -> Party:
    return _set_archived(ctx, writable_party(ctx, party_id), None)


@use_case(Role.MEMBER)
def add_tags(ctx: Context, party_id: int, names: Iterable[str]) -> Party:
    party = writable_party(ctx, party_id)
    if isinstance(names, str):
        names = [names]
    current = [t.name for t in _party_tags(ctx, party.id)]
    return update_party(ctx, party.id, {"tags": current + list(names)})


@use_case(Role.MEMBER)
def remove_tag(ctx: Context, party_id: int, name: str) -> Party:
    """Take a tag off a party (a tag it does not have is nothing to do)."""
    party = writable_party(ctx, party_id)
    key = name_key(name)
    current = [t.name for t in _party_tags(ctx, party.id)]
    return update_party(ctx, party.id, {"tags": [n for n in current if n.casefold() != key]})


@use_case(Role.MEMBER)
def set_sales_reps(ctx: Context, party_id: int, user_ids: Iterable[int]) -> Party:
    return update_party(ctx, party_id, {"sales_rep_ids": list(user_ids)})


# --------------------------------------------------------------------------------------------
# listing


def _sort_order(sort: str) -> tuple[list[Any], bool, type]:
    if sort == "name":
        return [Party.name_key, Party.id], False, str
    if sort == "-created":
        return [Party.created_at, Party.id], True, _datetime_type()
    if sort == "-updated":
        return [Party.updated_at, Party.id], True, _datetime_type()
    raise ValidationFailed(f"unknown sort {sort!r}", {"sort": [f"use one of: {', '.join(SORTS)}"]})


def _datetime_type() -> type:
    import datetime as dt

    return dt.datetime


def _filter_option(ctx: Context, list_key: str, value: Any, field: str) -> int:
    """An option to filter by (from the configuration cache): deactivated options still filter
    (old rows keep them)."""
    found = None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        found = lists.option_by_id(ctx, int(value))
    else:
        found = next((o for o in lists.cached_options(ctx, list_key, include_inactive=True)
                      if o.value == str(value).lower()), None)
    if found is None or found.list_key != list_key:
        raise ValidationFailed(f"unknown {field.replace('_', ' ')} {value!r}", {field: [f"{value!r} is not in the list"]})
    return found.id


def _email_match(normalized: str) -> Any:
    """Parties whose own email, or a contact's email, is ``normalized``."""
    # one IN over a UNION of two lookups: an OR of an EXISTS and an IN cannot use the indexes
    # together on PostgreSQL, which then walks the parties
    own = select(ContactMechanism.party_id).where(ContactMechanism.kind == "email",
                                                  ContactMechanism.normalized == normalized,
                                                  ContactMechanism.party_id.is_not(None))
    via_contact = (select(Contact.party_id).join(ContactMechanism, ContactMechanism.contact_id == Contact.id)
                   .where(ContactMechanism.kind == "email", ContactMechanism.normalized == normalized))
    return Party.id.in_(union_all(own, via_contact))


def _search_filter(ctx: Context, q: str, matches: search.Matches | None) -> Any:
    """The search box: the parties the trigram index matched (any part of the name, of an email
    or phone of the party or its contacts, of the reference; crmcore.parties.search). A term
    too short for trigrams (or an SQLite without the index) uses the name-prefix btree, the
    exact reference and the exact email."""
    if matches is not None:
        return search.id_filter(ctx, matches.ids)
    terms = [search.name_prefix(ctx, name_key(q))]
    reference = search.exact_reference(ctx, q)
    if reference is not None:  # a probe first: an OR in every query would cost the name-ordered walk
        terms.append(Party.id == reference)
    if "@" in q:
        with contextlib.suppress(NormalizeError):
            terms.append(_email_match(normalize_email(q).normalized))
    return or_(*terms)


def _party_filters(ctx: Context, values: Mapping[str, Any], matches: search.Matches | None = None) -> list[Any]:
    where: list[Any] = []
    archived = values.get("archived", False)
    if archived is False:
        where.append(Party.archived_at.is_(None))
    elif archived is True:
        where.append(Party.archived_at.is_not(None))
    if values.get("q"):
        where.append(_search_filter(ctx, values["q"], matches))
    for key in ("kind", "is_prospect", "is_customer", "is_supplier", "language"):
        if values.get(key) is not None:
            where.append(getattr(Party, key) == values[key])
    if values.get("prospect_status") is not None:
        where.append(Party.prospect_status_id == _filter_option(ctx, PROSPECT_STATUS, values["prospect_status"],
                                                               "prospect_status"))
    if values.get("potential") is not None:
        where.append(Party.potential_id == _filter_option(ctx, POTENTIAL_LEVEL, values["potential"], "potential"))
    tags = values.get("tag")
    for key in tag_names([tags] if isinstance(tags, str) else tags or []):
        # the tag's id as a constant subquery: each candidate row costs one primary-key probe of
        # party_tags, not a join back to tags by name
        tag_id = select(Tag.id).where(Tag.name_key == key).scalar_subquery()
        where.append(exists().where(PartyTag.party_id == Party.id, PartyTag.tag_id == tag_id))
    if values.get("sales_rep_id") is not None:
        where.append(exists().where(PartySalesRep.party_id == Party.id,
                                    PartySalesRep.user_id == values["sales_rep_id"]))
    for key, value in (values.get("custom") or {}).items():
        where.append(custom_fields.custom_filter(ctx, "party", Party.custom, key, value, op="eq"))
    return where


@use_case(Role.READ_ONLY, write=False)
def list_parties(ctx: Context, filters: Mapping[str, Any] | None = None, *, sort: str = "name",
                 cursor: str | None = None, limit: int | None = 50, with_count: bool = True) -> Page[Party]:
    """One keyset page of parties. ``extra`` holds ``tags`` ({party_id: [Tag]}) and ``options``
    ({option_id: ChoiceOption} for statuses and potentials), one query each."""
    values = load_input(PartyFilterSchema(), filters, "filter")
    order, descending, first_type = _sort_order(sort)
    check_cursor(cursor, first_type)
    matches = search.find(ctx, values.get("q"))
    stmt = select(Party).where(*_party_filters(ctx, values, matches))
    # a search's matches are at most MATCH_CAP ids: its first page counts them in the same statement
    page = keyset_page(ctx.session, stmt, order, cursor=cursor, limit=limit, descending=descending,
                       count_small=with_count and matches is not None)
    if with_count:
        if page.total is None:
            page.total = capped_count(ctx.session, stmt)
        if matches is not None and matches.capped:  # "at least this many": the search stopped at its cap
            page.total = CappedCount(page.total.value, True)
    page.extra["search_capped"] = matches is not None and matches.capped
    page.extra["tags"] = _tags_by_party(ctx, [p.id for p in page.items])
    option_ids = {i for p in page.items for i in (p.prospect_status_id, p.potential_id) if i is not None}
    page.extra["options"] = {i: o for i in option_ids if (o := lists.option_by_id(ctx, i)) is not None}
    return page


@use_case(Role.READ_ONLY, write=False)
def count_parties(ctx: Context, filters: Mapping[str, Any] | None = None) -> CappedCount:
    """How many parties match ``filters`` (as :func:`list_parties` takes them), capped."""
    values = load_input(PartyFilterSchema(), filters, "filter")
    matches = search.find(ctx, values.get("q"))
    total = capped_count(ctx.session, select(Party).where(*_party_filters(ctx, values, matches)))
    if matches is not None and matches.capped:
        total = CappedCount(total.value, True)
    return total


def _tags_by_party(ctx: Context, party_ids: list[int]) -> dict[int, list[Tag]]:
    out: dict[int, list[Tag]] = {pid: [] for pid in party_ids}
    if not party_ids:
        return out
    rows = ctx.session.execute(
        select(PartyTag.party_id, Tag).join(Tag, Tag.id == PartyTag.tag_id)
        .where(PartyTag.party_id.in_(party_ids)).order_by(Tag.name_key))
    for pid, tag in rows:
        out[pid].append(tag)
    return out


@use_case(Role.READ_ONLY, write=False)
def find_duplicates(ctx: Context, *, name: str | None = None, email: str | None = None,
                    phone: str | None = None, limit: int = 10) -> list[Party]:
    """Parties that may be the one an intake path is about to create: exact email or phone
    (of the party or a contact at it) first, then names starting like ``name``. Merged parties
    are left out; archived ones are not (reviving one beats creating a twin)."""
    limit = min(clamp_limit(limit), 50)
    found: dict[int, Party] = {}
    base = select(Party).where(Party.merged_into_id.is_(None))
    matches: list[tuple[str, str]] = []
    if email:
        try:
            matches.append(("email", normalize_email(email).normalized))
        except NormalizeError:
            matches.append(("email", email.strip().lower()))
    if phone:
        with contextlib.suppress(NormalizeError):
            matches.append(("phone", normalize_phone(phone).normalized))
    for kind, normalized in matches:
        kinds = ["email"] if kind == "email" else ["phone", "mobile", "fax"]
        owned = select(ContactMechanism.party_id).where(
            ContactMechanism.kind.in_(kinds), ContactMechanism.normalized == normalized,
            ContactMechanism.party_id.is_not(None))
        via = (select(Contact.party_id).join(ContactMechanism, ContactMechanism.contact_id == Contact.id)
               .where(ContactMechanism.kind.in_(kinds), ContactMechanism.normalized == normalized))
        matched = base.where(Party.id.in_(union_all(owned, via)))  # one IN: see _email_match
        for party in ctx.session.scalars(matched.order_by(Party.name_key, Party.id).limit(limit)):
            found.setdefault(party.id, party)
    key = name_key(name)
    if key and len(found) < limit:
        stmt = base.where(Party.name_key.startswith(key, autoescape=True)).order_by(Party.name_key, Party.id)
        for party in ctx.session.scalars(stmt.limit(limit)):
            found.setdefault(party.id, party)
    return list(found.values())[:limit]


__all__ = [
    "PartyMerge", "add_address", "add_mechanism", "add_tags", "archive_contact", "archive_party", "contact_details",
    "count_parties", "create_contact", "create_party", "find_duplicates", "get_contact", "get_party", "list_contacts", "list_parties",
    "merge_parties", "merge_preview", "move_contact", "party_details", "remove_address", "remove_mechanism",
    "remove_tag", "seed_defaults", "set_prospect_status", "set_sales_reps", "unarchive_contact",
    "unarchive_party", "update_address", "update_contact", "update_mechanism", "update_party",
]
