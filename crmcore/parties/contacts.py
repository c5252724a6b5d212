"""Use cases for contacts, contact mechanisms and addresses (re-exported by ``service``).

A contact is a person at a party, or unassigned (``party_id`` NULL) until moved to one.
Mechanisms (emails, phones, websites, ...) belong to a party or to a contact; addresses to a
party, each with a purpose. A kind has one primary mechanism, a purpose one default address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, or_, select

from crmcore.audit import service as audit
from crmcore.context import get_or_404, use_case
from crmcore.db import utcnow
from crmcore.errors import ValidationFailed
from crmcore.fields import service as custom_fields
from crmcore.paging import Page, keyset_page
from crmcore.parties.inputs import (
    Errors,
    address_row,
    check_cursor,
    clean_addresses,
    clean_mechanisms,
    load_input,
    mechanism_rows,
    party_region,
    writable_party,
)
from crmcore.parties.models import Address, Contact, ContactMechanism, Party
from crmcore.parties.normalize import (
    NormalizeError,
    clean_name,
    normalize_email,
    normalize_mechanism,
    person_name,
)
from crmcore.parties.schemas import (
    AddressSchema,
    ContactCreateSchema,
    ContactUpdateSchema,
    MechanismSchema,
    MechanismUpdateSchema,
)
from crmcore.tenancy.models import Role
from crmcore.timeline.service import log_event

if TYPE_CHECKING:
    from crmcore.context import Context


# --------------------------------------------------------------------------------------------
# contact mechanisms


def _mechanism_owner(ctx: Context, party_id: int | None, contact_id: int | None) -> tuple[Party | None, Contact | None]:
    if (party_id is None) == (contact_id is None):
        raise ValidationFailed("give either a party or a contact", {"party_id": ["give party_id or contact_id"]})
    if party_id is not None:
        return writable_party(ctx, party_id), None
    return None, get_or_404(ctx, Contact, contact_id, "contact")


def _owner_filter(party_id: int | None, contact_id: int | None) -> Any:
    if contact_id is not None:
        return ContactMechanism.contact_id == contact_id
    return (ContactMechanism.party_id == party_id) & ContactMechanism.contact_id.is_(None)


def _owner_mechanisms(ctx: Context, m_party_id: int | None, m_contact_id: int | None) -> list[ContactMechanism]:
    return list(ctx.session.scalars(select(ContactMechanism).where(_owner_filter(m_party_id, m_contact_id))
                                    .order_by(ContactMechanism.position, ContactMechanism.id)))


def _mechanism_region(ctx: Context, mechanism_party_id: int | None, contact: Contact | None) -> str | None:
    return party_region(ctx, contact.party_id if contact is not None else mechanism_party_id)


def _touch(ctx: Context, party_id: int | None) -> None:
    if party_id is not None:
        party = ctx.session.get(Party, party_id)
        if party is not None:
            party.updated_at = utcnow()


def _audit_target(mechanism: ContactMechanism) -> tuple[str, int]:
    if mechanism.contact_id is not None:
        return "contact", mechanism.contact_id
    return "party", mechanism.party_id  # type: ignore[return-value]


@use_case(Role.MEMBER)
def add_mechanism(ctx: Context, *, party_id: int | None = None, contact_id: int | None = None,
                  data: Mapping[str, Any]) -> ContactMechanism:
    """Add an email, phone, website, ... to a party or a contact."""
    party, contact = _mechanism_owner(ctx, party_id, contact_id)
    values = load_input(MechanismSchema(), data, "contact mechanism")
    owner_party = party.id if party else None
    owner_contact = contact.id if contact else None
    existing = _owner_mechanisms(ctx, owner_party, owner_contact)
    errs = Errors()
    cleaned = clean_mechanisms(
        [values], _mechanism_region(ctx, owner_party, contact), errs, "mechanism",
        taken={(m.kind, m.normalized): m for m in existing},
        primary_kinds={m.kind for m in existing if m.is_primary})
    if errs.errors:
        raise ValidationFailed("invalid contact mechanism", errs.errors["mechanism"][0])
    item = cleaned[0]
    if item.get("is_primary"):
        for m in existing:
            if m.kind == item["kind"]:
                m.is_primary = False
    start = max((m.position for m in existing), default=-1) + 1
    row = mechanism_rows([item], party_id=owner_party, contact_id=owner_contact, start=start)[0]
    ctx.session.add(row)
    ctx.session.flush()
    entity_type, entity_id = _audit_target(row)
    audit.record(ctx, f"{entity_type}.mechanism_added", entity_type=entity_type, entity_id=entity_id,
                 changes={"mechanism_id": row.id, "kind": row.kind, "value": row.value, "is_primary": row.is_primary})
    _touch(ctx, owner_party)
    return row


@use_case(Role.MEMBER)
def update_mechanism(ctx: Context, mechanism_id: int, data: Mapping[str, Any]) -> ContactMechanism:
    """Change a mechanism's value, label or primary flag (its kind is fixed: add another)."""
    row = get_or_404(ctx, ContactMechanism, mechanism_id, "contact mechanism")
    if row.party_id is not None:
        writable_party(ctx, row.party_id)
    contact = ctx.session.get(Contact, row.contact_id) if row.contact_id else None
    values = load_input(MechanismUpdateSchema(), data, "contact mechanism", partial=True)
    siblings = [m for m in _owner_mechanisms(ctx, row.party_id, row.contact_id) if m.id != row.id]
    changes: dict[str, Any] = {}
    if "value" in values:
        try:
            norm = normalize_mechanism(row.kind, values["value"], _mechanism_region(ctx, row.party_id, contact))
        except NormalizeError as exc:
            raise ValidationFailed("invalid contact mechanism", {"value": [str(exc)]}) from exc
        if any(m.kind == row.kind and m.normalized == norm.normalized for m in siblings):
            raise ValidationFailed("invalid contact mechanism", {"value": [f"{norm.value} is already there"]})
        if norm.value != row.value:
            changes["value"] = [row.value, norm.value]
        row.value, row.normalized = norm.value, norm.normalized
    if "label" in values and values["label"] != row.label:
        changes["label"] = [row.label, values["label"]]
        row.label = values["label"]
    if values.get("is_primary") is not None and values["is_primary"] != row.is_primary:
        same_kind = [m for m in siblings if m.kind == row.kind]
        if values["is_primary"]:
            for m in same_kind:
                m.is_primary = False
            row.is_primary = True
            changes["is_primary"] = [False, True]
        elif same_kind:  # another one takes over: a kind always has one primary
            same_kind[0].is_primary = True
            row.is_primary = False
            changes["is_primary"] = [True, False]
    if changes:
        entity_type, entity_id = _audit_target(row)
        audit.record(ctx, f"{entity_type}.mechanism_updated", entity_type=entity_type, entity_id=entity_id,
                     changes={"mechanism_id": row.id, **changes})
        _touch(ctx, row.party_id)
    return row


@use_case(Role.MEMBER)
def remove_mechanism(ctx: Context, mechanism_id: int) -> None:
    """Delete a mechanism; when it was the primary of its kind, the next one becomes primary."""
    row = get_or_404(ctx, ContactMechanism, mechanism_id, "contact mechanism")
    if row.party_id is not None:
        writable_party(ctx, row.party_id)
    if row.is_primary:
        nxt = next((m for m in _owner_mechanisms(ctx, row.party_id, row.contact_id)
                    if m.id != row.id and m.kind == row.kind), None)
        if nxt is not None:
            nxt.is_primary = True
    entity_type, entity_id = _audit_target(row)
    audit.record(ctx, f"{entity_type}.mechanism_removed", entity_type=entity_type, entity_id=entity_id,
                 changes={"mechanism_id": row.id, "kind": row.kind, "value": row.value})
    _touch(ctx, row.party_id)
    ctx.session.delete(row)
    ctx.session.flush()


# --------------------------------------------------------------------------------------------
# addresses


def _party_addresses(ctx: Context, party_id: int) -> list[Address]:
    return list(ctx.session.scalars(select(Address).where(Address.party_id == party_id).order_by(Address.id)))


def _address_changes(row: Address, values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: [getattr(row, k), v] for k, v in values.items() if getattr(row, k) != v}


@use_case(Role.MEMBER)
def add_address(ctx: Context, party_id: int, data: Mapping[str, Any]) -> Address:
    """Add an address; the first of its purpose (or one marked default) is the default."""
    party = writable_party(ctx, party_id)
    values = load_input(AddressSchema(), data, "address")
    existing = _party_addresses(ctx, party.id)
    errs = Errors()
    item = clean_addresses([values], errs, default_purposes={a.purpose for a in existing if a.is_default})[0]
    if item.get("is_default"):
        for a in existing:
            if a.purpose == item["purpose"]:
                a.is_default = False
    row = address_row(item, party.id)
    ctx.session.add(row)
    ctx.session.flush()
    audit.record(ctx, "party.address_added", party, changes={"address_id": row.id, **{
        k: v for k, v in item.items() if k != "index"}})
    _touch(ctx, party.id)
    return row


@use_case(Role.MEMBER)
def update_address(ctx: Context, address_id: int, data: Mapping[str, Any]) -> Address:
    """Change an address; its purpose and default flag keep one default per purpose."""
    row = get_or_404(ctx, Address, address_id, "address")
    party = writable_party(ctx, row.party_id)
    values = load_input(AddressSchema(), data, "address", partial=True)
    if "line1" in values and not values["line1"]:
        raise ValidationFailed("invalid address", {"line1": ["must not be empty"]})
    if values.get("purpose") is None:
        values.pop("purpose", None)
    wants_default = values.pop("is_default", None)
    others = [a for a in _party_addresses(ctx, party.id) if a.id != row.id]
    changes = _address_changes(row, values)
    old_purpose, was_default = row.purpose, row.is_default
    for key, value in values.items():
        setattr(row, key, value)
    _settle_default(row, others, wants_default, old_purpose, was_default)
    if row.is_default != was_default:
        changes["is_default"] = [was_default, row.is_default]
    if changes:
        audit.record(ctx, "party.address_updated", party, changes={"address_id": row.id, **changes})
        _touch(ctx, party.id)
    ctx.session.flush()
    return row


def _settle_default(row: Address, others: list[Address], wants_default: bool | None, old_purpose: str,
                    was_default: bool) -> None:
    """One default per purpose after ``row`` changed: the purpose it left gets a successor, the
    purpose it is in keeps exactly one default (``row`` when asked for, or when it is alone)."""
    if old_purpose != row.purpose and was_default:
        successor = next((a for a in others if a.purpose == old_purpose), None)
        if successor is not None:
            successor.is_default = True
    same = [a for a in others if a.purpose == row.purpose]
    if wants_default:
        for a in same:
            a.is_default = False
        row.is_default = True
    elif wants_default is False and same:
        row.is_default = False
        if not any(a.is_default for a in same):
            same[0].is_default = True
    else:
        row.is_default = not any(a.is_default for a in same)


@use_case(Role.MEMBER)
def remove_address(ctx: Context, address_id: int) -> None:
    """Delete an address (refused while a document still points at it)."""
    row = get_or_404(ctx, Address, address_id, "address")
    party = writable_party(ctx, row.party_id)
    if row.is_default:
        nxt = next((a for a in _party_addresses(ctx, party.id) if a.id != row.id and a.purpose == row.purpose), None)
        if nxt is not None:
            nxt.is_default = True
    audit.record(ctx, "party.address_removed", party, changes={"address_id": row.id, "line1": row.line1})
    _touch(ctx, party.id)
    ctx.session.delete(row)
    ctx.session.flush()


# --------------------------------------------------------------------------------------------
# contacts


def _contact_party(ctx: Context, party_id: Any) -> Party | None:
    if party_id is None:
        return None
    return writable_party(ctx, party_id)


@use_case(Role.MEMBER)
def create_contact(ctx: Context, data: Mapping[str, Any]) -> Contact:
    """A person at a party, or unassigned (no ``party_id``) until moved to one."""
    values = load_input(ContactCreateSchema(), data, "contact")
    party = _contact_party(ctx, values.get("party_id"))
    errs = Errors()
    name = person_name(values.get("first_name"), values.get("last_name"))
    if not name:
        errs.add(["first_name"], "give a first name or a last name")
    elif len(name) > 300:
        errs.add(["last_name"], "the full name is longer than 300 characters")
    custom = errs.call(custom_fields.clean_custom_values, ctx, "contact", values.get("custom") or {},
                       existing=None, partial=False, default={})
    mechanisms = clean_mechanisms(values.get("mechanisms") or [], party_region(ctx, party.id if party else None),
                                   errs, "mechanisms")
    errs.raise_if_any("invalid contact")
    columns = {k: values.get(k) for k in ("first_name", "last_name", "job_title", "department", "language", "notes")}
    contact = Contact(party_id=party.id if party else None, name=name, name_key=name.casefold(), custom=custom,
                      **columns)
    ctx.session.add(contact)
    ctx.session.flush()
    ctx.session.add_all(mechanism_rows(mechanisms, contact_id=contact.id))
    ctx.session.flush()
    audit.record(ctx, "contact.created", contact, changes={
        "party_id": contact.party_id, "name": name, **{k: v for k, v in columns.items() if v}})
    if party is not None:
        log_event(ctx, "contact_added", f"Contact {name} added", party_id=party.id, ref_type="contact",
                  ref_id=contact.id)
    return contact


@use_case(Role.MEMBER)
def update_contact(ctx: Context, contact_id: int, data: Mapping[str, Any]) -> Contact:
    contact = get_or_404(ctx, Contact, contact_id, "contact")
    values = load_input(ContactUpdateSchema(), data, "contact", partial=True)
    errs = Errors()
    custom = None
    if "custom" in values:
        custom = errs.call(custom_fields.clean_custom_values, ctx, "contact", values.pop("custom") or {},
                           existing=dict(contact.custom or {}), partial=True)
    first = values.get("first_name", contact.first_name)
    last = values.get("last_name", contact.last_name)
    name = person_name(first, last)
    if not name:
        errs.add(["first_name"], "give a first name or a last name")
    elif len(name) > 300:
        errs.add(["last_name"], "the full name is longer than 300 characters")
    errs.raise_if_any("invalid contact")
    values.update(name=name, name_key=name.casefold())
    changes = {k: [getattr(contact, k), v] for k, v in values.items() if getattr(contact, k) != v}
    changes.pop("name_key", None)
    if custom is not None:
        before = dict(contact.custom or {})
        changes.update({f"custom.{k}": [before.get(k), custom.get(k)] for k in sorted(set(before) | set(custom))
                        if before.get(k) != custom.get(k)})
        if custom != before:
            contact.custom = custom
    for key, value in values.items():
        setattr(contact, key, value)
    if changes:
        audit.record(ctx, "contact.updated", contact, changes=changes)
    return contact


@use_case(Role.MEMBER)
def move_contact(ctx: Context, contact_id: int, party_id: int | None) -> Contact:
    """Move a contact to a party, or unassign it (``party_id`` None)."""
    contact = get_or_404(ctx, Contact, contact_id, "contact")
    party = _contact_party(ctx, party_id)
    new_id = party.id if party else None
    old_id = contact.party_id
    if new_id == old_id:
        return contact
    contact.party_id = new_id
    ctx.session.flush()
    audit.record(ctx, "contact.moved", contact, changes={"party_id": [old_id, new_id]})
    if old_id is not None:
        log_event(ctx, "contact_moved", f"Contact {contact.name} moved away", party_id=old_id,
                  ref_type="contact", ref_id=contact.id, data={"to_party_id": new_id})
    if party is not None:
        log_event(ctx, "contact_moved", f"Contact {contact.name} joined", party_id=party.id,
                  ref_type="contact", ref_id=contact.id, data={"from_party_id": old_id})
    return contact


def _set_contact_archived(ctx: Context, contact_id: int, archived: bool) -> Contact:
    contact = get_or_404(ctx, Contact, contact_id, "contact")
    if (contact.archived_at is not None) != archived:
        old, contact.archived_at = contact.archived_at, utcnow() if archived else None
        audit.record(ctx, "contact.archived" if archived else "contact.unarchived", contact,
                     changes={"archived_at": [old, contact.archived_at]})
    return contact


@use_case(Role.MEMBER)
def archive_contact(ctx: Context, contact_id: int) -> Contact:
    return _set_contact_archived(ctx, contact_id, True)


@use_case(Role.MEMBER)
def unarchive_contact(ctx: Context, contact_id: int) -> Contact:
    return _set_contact_archived(ctx, contact_id, False)


@use_case(Role.READ_ONLY, write=False)
def get_contact(ctx: Context, contact_id: int) -> Contact:
    return get_or_404(ctx, Contact, contact_id, "contact")


@use_case(Role.READ_ONLY, write=False)
def contact_details(ctx: Context, contact_id: int) -> dict[str, Any]:
    """What a contact's page shows: the contact, its party (None when unassigned) and its
    mechanisms, one query each."""
    contact = get_or_404(ctx, Contact, contact_id, "contact")
    party = ctx.session.get(Party, contact.party_id) if contact.party_id is not None else None
    mechanisms = list(ctx.session.scalars(
        select(ContactMechanism).where(ContactMechanism.contact_id == contact.id)
        .order_by(ContactMechanism.kind, ContactMechanism.position, ContactMechanism.id)))
    return {"contact": contact, "party": party, "mechanisms": mechanisms}


@use_case(Role.READ_ONLY, write=False)
def list_contacts(ctx: Context, *, party_id: int | None = None, unassigned: bool = False, q: str | None = None,
                  include_archived: bool = False, cursor: str | None = None, limit: int | None = 50) -> Page[Contact]:
    """One keyset page of contacts by name. ``extra`` holds ``mechanisms`` ({contact_id: [...]})
    and ``parties`` ({party_id: Party}), one query each."""
    if party_id is not None and unassigned:
        raise ValidationFailed("pick a party or the unassigned contacts, not both",
                               {"unassigned": ["cannot be combined with party_id"]})
    stmt = select(Contact)
    if party_id is not None:
        stmt = stmt.where(Contact.party_id == get_or_404(ctx, Party, party_id, "party").id)
    elif unassigned:
        stmt = stmt.where(Contact.party_id.is_(None))
    if not include_archived:
        stmt = stmt.where(Contact.archived_at.is_(None))
    text = clean_name(q)[:300]
    if text:
        terms = [Contact.name_key.startswith(text.casefold(), autoescape=True)]
        if "@" in text:
            try:
                email = normalize_email(text).normalized
                terms.append(exists().where(ContactMechanism.contact_id == Contact.id,
                                            ContactMechanism.kind == "email", ContactMechanism.normalized == email))
            except NormalizeError:
                pass
        stmt = stmt.where(or_(*terms))
    check_cursor(cursor, str)
    page = keyset_page(ctx.session, stmt, [Contact.name_key, Contact.id], cursor=cursor, limit=limit)
    ids = [c.id for c in page.items]
    mechanisms: dict[int, list[ContactMechanism]] = {cid: [] for cid in ids}
    if ids:
        for m in ctx.session.scalars(select(ContactMechanism).where(ContactMechanism.contact_id.in_(ids))
                                     .order_by(ContactMechanism.kind, ContactMechanism.position)):
            mechanisms[m.contact_id].append(m)  # type: ignore[index]
    party_ids = {c.party_id for c in page.items if c.party_id is not None}
    page.extra["mechanisms"] = mechanisms
    page.extra["parties"] = ({p.id: p for p in ctx.session.scalars(select(Party).where(Party.id.in_(party_ids)))}
                             if party_ids else {})
    return page

