"""Custom-field definitions (reading for everyone; defining for admins)."""

from __future__ import annotations

from typing import Any

from crmcore.fields import service
from crmcore.fields.models import FieldDefinition
from crmcore.fields.schemas import FieldDefinitionSchema, FieldUpdateSchema
from crmcore.web.api.blueprint import ID, body, bp, ctx, no_body, query, reads, route, writes
from crmcore.web.api.schemas import FieldListQuery, FieldSchema, Text

TAG = "fields"


class FieldCreateInput(FieldDefinitionSchema):
    """A new custom field of ``target`` (party, contact or record:<type>)."""

    target = Text(64, required=True)


def field_out(definition: FieldDefinition) -> dict[str, Any]:
    out = {c: getattr(definition, c) for c in ("id", "target", "key", "label", "type", "required", "position",
                                               "help_text", "archived_at")}
    out["options"] = dict(definition.options or {})
    return out


@route("/fields", TAG, methods=["GET"])
@reads
@query(FieldListQuery)
@bp.response(200, FieldSchema(many=True))
def list_fields(args: dict[str, Any]) -> list[dict[str, Any]]:
    """List the custom fields of a target (party, contact or record:<type>)"""
    return [field_out(d) for d in service.list_fields(ctx(), args["target"], args["include_archived"])]


@route("/fields", TAG, methods=["POST"])
@writes
@bp.arguments(FieldCreateInput)
@bp.response(201, FieldSchema)
def create_field(_args: dict[str, Any]) -> dict[str, Any]:
    """Define a custom field (admins)"""
    data = body()
    target = data.pop("target")
    return field_out(service.define_field(ctx(), target, data))


@route(f"/fields/<{ID}:field_id>", TAG, methods=["PATCH"])
@writes
@bp.arguments(FieldUpdateSchema(partial=True))
@bp.response(200, FieldSchema)
def update_field(_args: dict[str, Any], field_id: int) -> dict[str, Any]:
    """Change a custom field's label, options, required flag, position or help text (admins)

    Its key and type cannot change.
    """
    return field_out(service.update_field(ctx(), field_id, body()))


@route(f"/fields/<{ID}:field_id>/archive", TAG, methods=["POST"])
@writes
@no_body
@bp.response(200, FieldSchema)
def archive_field(_args: dict[str, Any], field_id: int) -> dict[str, Any]:
    """Archive a custom field (admins)

    Hidden from forms; stored values stay and stay filterable.
    """
    return field_out(service.archive_field(ctx(), field_id))
