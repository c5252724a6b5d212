"""Notes on parties and records."""

from __future__ import annotations

from typing import Any

from crmcore.timeline import service
from crmcore.timeline.models import Note
from crmcore.timeline.schemas import NoteCreate
from crmcore.web.api.blueprint import body, bp, ctx, query, reads, route, writes
from crmcore.web.api.schemas import NoteListQuery, NotePageSchema, NoteSchema

TAG = "notes"


def note_out(note: Note) -> dict[str, Any]:
    return {c: getattr(note, c) for c in ("id", "body", "pinned", "party_id", "record_id", "author_id",
                                          "created_at", "updated_at")}


@route("/notes", TAG, methods=["GET"])
@reads
@query(NoteListQuery)
@bp.response(200, NotePageSchema)
def list_notes(args: dict[str, Any]) -> dict[str, Any]:
    """List the notes of a party (its records' notes included) or of a record

    Newest first; give exactly one of `party_id` and `record_id`. No total is counted.
    """
    page = service.feed(ctx(), party_id=args.get("party_id"), record_id=args.get("record_id"), kinds=["note"],
                        cursor=args.get("cursor"), limit=args.get("limit"))
    notes = page.extra["refs"].get("note", {})
    items = [note_out(notes[e.ref_id]) for e in page.items if e.ref_id in notes]
    return {"items": items, "next_cursor": page.next_cursor, "total": None}


@route("/notes", TAG, methods=["POST"])
@writes
@bp.arguments(NoteCreate)
@bp.response(201, NoteSchema)
def create_note(_args: dict[str, Any]) -> dict[str, Any]:
    """Add a note to a party and/or a record

    A record's note also shows on its party.
    """
    data = body()
    return note_out(service.add_note(ctx(), body=data.get("body"), party_id=data.get("party_id"),
                                     record_id=data.get("record_id"), pinned=data.get("pinned", False)))
