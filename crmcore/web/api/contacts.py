"""Contacts: people at a party, or unassigned until moved to one."""

from __future__ import annotations

from typing import Any

from crmcore.parties import service
from crmcore.parties.models import Contact
from crmcore.parties.schemas import ContactCreateSchema, ContactUpdateSchema, MechanismSchema
from crmcore.web.api import schemas as out
from crmcore.web.api.blueprint import ID, body, bp, ctx, query, reads, route, writes
from crmcore.web.api.parties import mechanism_out
from crmcore.web.api.schemas import (
    ContactListQuery,
    ContactMoveInput,
    ContactPageSchema,
    ContactSchema,
)

TAG = "contacts"

_COLUMNS = ("id", "party_id", "name", "first_name", "last_name", "job_title", "department", "language", "notes",
            "archived_at", "created_at", "updated_at")


def contact_out(contact: Contact, mechanisms: list[Any] | None = None) -> dict[str, Any]:
    out = {column: getattr(contact, column) for column in _COLUMNS}
    out["custom"] = dict(contact.custom or {})
    if mechanisms is not None:
        out["mechanisms"] = [mechanism_out(m) for m in mechanisms]
    return out


@route("/contacts", TAG, methods=["GET"])
@reads
@query(ContactListQuery)
@bp.response(200, ContactPageSchema)
def list_contacts(args: dict[str, Any]) -> dict[str, Any]:
    """List contacts

    By name; of one party (`party_id`), or the ones not at any party (`unassigned=true`), each
    with its mechanisms. No total is counted (`total` is null).
    """
    page = service.list_contacts(ctx(), party_id=args.get("party_id"), unassigned=args.get("unassigned", False),
                                 q=args.get("q"), include_archived=args["include_archived"],
                                 cursor=args.get("cursor"), limit=args.get("limit"))
    mechanisms = page.extra["mechanisms"]
    return {"items": [contact_out(c, mechanisms.get(c.id, [])) for c in page.items],
            "next_cursor": page.next_cursor, "total": None}


@route("/contacts", TAG, methods=["POST"])
@writes
@bp.arguments(ContactCreateSchema)
@bp.response(201, ContactSchema)
def create_contact(_args: dict[str, Any]) -> dict[str, Any]:
    """Create a contact

    At a party (`party_id`) or unassigned, with its emails, phones, ... (`mechanisms`).
    """
    return contact_out(service.create_contact(ctx(), body()))


@route(f"/contacts/<{ID}:contact_id>", TAG, methods=["GET"])
@reads
@bp.response(200, ContactSchema)
def get_contact(contact_id: int) -> dict[str, Any]:
    """Get a contact"""
    return contact_out(service.get_contact(ctx(), contact_id))


@route(f"/contacts/<{ID}:contact_id>", TAG, methods=["PATCH"])
@writes
@bp.arguments(ContactUpdateSchema(partial=True))
@bp.response(200, ContactSchema)
def update_contact(_args: dict[str, Any], contact_id: int) -> dict[str, Any]:
    """Change a contact

    Only the given keys change (move it to another party with `POST /contacts/{id}/move`).
    """
    return contact_out(service.update_contact(ctx(), contact_id, body()))


@route(f"/contacts/<{ID}:contact_id>/move", TAG, methods=["POST"])
@writes
@bp.arguments(ContactMoveInput)
@bp.response(200, ContactSchema)
def move_contact(args: dict[str, Any], contact_id: int) -> dict[str, Any]:
    """Move a contact to a party (or unassign it with `party_id: null`)"""
    return contact_out(service.move_contact(ctx(), contact_id, args["party_id"]))


@route(f"/contacts/<{ID}:contact_id>/mechanisms", TAG, methods=["POST"])
@writes
@bp.arguments(MechanismSchema)
@bp.response(201, out.MechanismSchema)
def add_contact_mechanism(_args: dict[str, Any], contact_id: int) -> dict[str, Any]:
    """Add an email, phone, ... to a contact

    Change or delete it with `/mechanisms/{id}`.
    """
    return mechanism_out(service.add_mechanism(ctx(), contact_id=contact_id, data=body()))
