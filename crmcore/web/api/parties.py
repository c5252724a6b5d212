"""Parties, and their contact mechanisms and addresses."""

from __future__ import annotations

from typing import Any

from flask import request

from crmcore.parties import service
from crmcore.parties.models import Address, ContactMechanism, Party
from crmcore.parties.schemas import (
    AddressSchema,
    MechanismSchema,
    MechanismUpdateSchema,
    PartyCreateSchema,
    PartyUpdateSchema,
)
from crmcore.web.api import schemas as out
from crmcore.web.api.blueprint import ID, body, bp, ctx, no_body, query, reads, route, writes
from crmcore.web.api.schemas import (
    CUSTOM_PREFIX,
    PartyDetailSchema,
    PartyListQuery,
    PartyPageSchema,
    ProspectStatusInput,
)

TAG = "parties"


# --------------------------------------------------------------------------------------------
# answers


def total(count: Any) -> dict[str, Any] | None:
    return None if count is None else {"count": count.value, "capped": count.capped}


def party_out(party: Party, tags: list[Any], options: dict[int, Any]) -> dict[str, Any]:
    def value(option_id: int | None) -> str | None:
        option = options.get(option_id) if option_id is not None else None
        return option.value if option is not None else None

    out = {column: getattr(party, column) for column in (
        "id", "kind", "name", "first_name", "last_name", "reference", "is_prospect", "is_customer",
        "is_supplier", "language", "currency", "tax_id", "archived_at", "merged_into_id", "created_at",
        "updated_at")}
    out.update(custom=dict(party.custom or {}), tags=[t.name for t in tags],
               prospect_status=value(party.prospect_status_id), potential=value(party.potential_id))
    return out


def mechanism_out(m: ContactMechanism) -> dict[str, Any]:
    return {c: getattr(m, c) for c in ("id", "party_id", "contact_id", "kind", "value", "label", "is_primary")}


def address_out(a: Address) -> dict[str, Any]:
    return {c: getattr(a, c) for c in ("id", "party_id", "purpose", "label", "line1", "line2", "postal_code",
                                       "city", "region", "country", "is_default")}


def party_detail(party_id: int) -> dict[str, Any]:
    details = service.party_details(ctx(), party_id)
    options = {o.id: o for o in (details["prospect_status"], details["potential"]) if o is not None}
    out = party_out(details["party"], details["tags"], options)
    out.update(sales_rep_ids=[u.id for u in details["sales_reps"]],
               mechanisms=[mechanism_out(m) for m in details["mechanisms"]],
               addresses=[address_out(a) for a in details["addresses"]])
    return out


def custom_filters() -> dict[str, str]:
    """``custom.<key>=value`` query parameters as ``{key: value}``."""
    return {key[len(CUSTOM_PREFIX):]: request.args[key] for key in request.args if key.startswith(CUSTOM_PREFIX)}


# --------------------------------------------------------------------------------------------
# parties


@route("/parties", TAG, methods=["GET"])
@reads
@query(PartyListQuery)
@bp.response(200, PartyPageSchema)
def list_parties(args: dict[str, Any]) -> dict[str, Any]:
    """List parties

    One page of parties sorted by `sort`. Filter by any of the parameters, and by custom fields
    with `custom.<key>=value` (e.g. `custom.industry=retail`).
    """
    cursor, limit, sort = args.pop("cursor", None), args.pop("limit", None), args.pop("sort")
    custom = custom_filters()
    if custom:
        args["custom"] = custom
    page = service.list_parties(ctx(), args, sort=sort, cursor=cursor, limit=limit)
    tags, options = page.extra["tags"], page.extra["options"]
    return {"items": [party_out(p, tags.get(p.id, []), options) for p in page.items],
            "next_cursor": page.next_cursor, "total": total(page.total)}


@route("/parties", TAG, methods=["POST"])
@writes
@bp.arguments(PartyCreateSchema)
@bp.response(201, PartyDetailSchema)
def create_party(_args: dict[str, Any]) -> dict[str, Any]:
    """Create a party

    An organisation (`name`) or a person (`first_name`, `last_name`), with its mechanisms,
    addresses, tags, sales reps and custom values. Keys left out are filled from plugins' defaults.
    """
    party = service.create_party(ctx(), body())
    return party_detail(party.id)


@route(f"/parties/<{ID}:party_id>", TAG, methods=["GET"])
@reads
@bp.response(200, PartyDetailSchema)
def get_party(party_id: int) -> dict[str, Any]:
    """Get a party"""
    return party_detail(party_id)


@route(f"/parties/<{ID}:party_id>", TAG, methods=["PATCH"])
@writes
@bp.arguments(PartyUpdateSchema(partial=True))
@bp.response(200, PartyDetailSchema)
def update_party(_args: dict[str, Any], party_id: int) -> dict[str, Any]:
    """Change a party

    Only the given keys change; `tags` and `sales_rep_ids` replace the current sets, `custom`
    values merge into the stored ones (null clears one).
    """
    service.update_party(ctx(), party_id, body())
    return party_detail(party_id)


@route(f"/parties/<{ID}:party_id>/archive", TAG, methods=["POST"])
@writes
@no_body
@bp.response(200, PartyDetailSchema)
def archive_party(_args: dict[str, Any], party_id: int) -> dict[str, Any]:
    """Archive a party

    Hidden from lists and pickers; everything it has stays.
    """
    service.archive_party(ctx(), party_id)
    return party_detail(party_id)


@route(f"/parties/<{ID}:party_id>/restore", TAG, methods=["POST"])
@writes
@no_body
@bp.response(200, PartyDetailSchema)
def restore_party(_args: dict[str, Any], party_id: int) -> dict[str, Any]:
    """Bring an archived party back"""
    service.unarchive_party(ctx(), party_id)
    return party_detail(party_id)


@route(f"/parties/<{ID}:party_id>/prospect-status", TAG, methods=["PUT"])
@writes
@bp.arguments(ProspectStatusInput)
@bp.response(200, PartyDetailSchema)
def set_prospect_status(args: dict[str, Any], party_id: int) -> dict[str, Any]:
    """Set a party's prospect status"""
    service.set_prospect_status(ctx(), party_id, args["prospect_status"])
    return party_detail(party_id)


# --------------------------------------------------------------------------------------------
# contact mechanisms


@route(f"/parties/<{ID}:party_id>/mechanisms", TAG, methods=["GET"])
@reads
@bp.response(200, out.MechanismSchema(many=True))
def list_mechanisms(party_id: int) -> list[dict[str, Any]]:
    """List a party's own emails, phones, websites, ..."""
    return [mechanism_out(m) for m in service.party_details(ctx(), party_id)["mechanisms"]]


@route(f"/parties/<{ID}:party_id>/mechanisms", TAG, methods=["POST"])
@writes
@bp.arguments(MechanismSchema)
@bp.response(201, out.MechanismSchema)
def add_mechanism(_args: dict[str, Any], party_id: int) -> dict[str, Any]:
    """Add an email, phone, website, ... to a party

    The first of a kind becomes the primary one.
    """
    return mechanism_out(service.add_mechanism(ctx(), party_id=party_id, data=body()))


@route(f"/mechanisms/<{ID}:mechanism_id>", TAG, methods=["PATCH"])
@writes
@bp.arguments(MechanismUpdateSchema(partial=True))
@bp.response(200, out.MechanismSchema)
def update_mechanism(_args: dict[str, Any], mechanism_id: int) -> dict[str, Any]:
    """Change a contact mechanism (of a party or a contact)"""
    return mechanism_out(service.update_mechanism(ctx(), mechanism_id, body()))


@route(f"/mechanisms/<{ID}:mechanism_id>", TAG, methods=["DELETE"])
@writes
@bp.response(204)
def delete_mechanism(mechanism_id: int) -> None:
    """Delete a contact mechanism

    When it was the primary of its kind, the next one becomes primary.
    """
    service.remove_mechanism(ctx(), mechanism_id)


# --------------------------------------------------------------------------------------------
# addresses


@route(f"/parties/<{ID}:party_id>/addresses", TAG, methods=["GET"])
@reads
@bp.response(200, out.AddressSchema(many=True))
def list_addresses(party_id: int) -> list[dict[str, Any]]:
    """List a party's addresses"""
    return [address_out(a) for a in service.party_details(ctx(), party_id)["addresses"]]


@route(f"/parties/<{ID}:party_id>/addresses", TAG, methods=["POST"])
@writes
@bp.arguments(AddressSchema)
@bp.response(201, out.AddressSchema)
def add_address(_args: dict[str, Any], party_id: int) -> dict[str, Any]:
    """Add an address to a party

    `purpose` is billing (default), shipping, legal or other; the first of a purpose is its default.
    """
    return address_out(service.add_address(ctx(), party_id, body()))


@route(f"/addresses/<{ID}:address_id>", TAG, methods=["PATCH"])
@writes
@bp.arguments(AddressSchema(partial=True))
@bp.response(200, out.AddressSchema)
def update_address(_args: dict[str, Any], address_id: int) -> dict[str, Any]:
    """Change an address"""
    return address_out(service.update_address(ctx(), address_id, body()))


@route(f"/addresses/<{ID}:address_id>", TAG, methods=["DELETE"])
@writes
@bp.response(204)
def delete_address(address_id: int) -> None:
    """Delete an address"""
    service.remove_address(ctx(), address_id)
