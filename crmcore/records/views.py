"""The records pages: a pipeline's board, record lists, the record page with its actions, and the
create / edit forms.

Views call services only. A use case starts by expiring every row the session holds, so a row
returned by one use case would be loaded again, one query per row, if a later use case ran before
the page is rendered. Each view therefore turns what it keeps into plain values at once and calls
the use case whose rows it renders last: a page costs a fixed number of queries however many
records it shows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, g, jsonify, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.routing import BuildError

from crmcore.db import utcnow
from crmcore.errors import CrmError, NotFound, ValidationFailed, Veto
from crmcore.fields.service import list_fields, render_inputs, render_values
from crmcore.lists.service import list_options
from crmcore.parties.contacts import list_contacts
from crmcore.parties.service import get_party
from crmcore.pipelines.service import list_pipelines
from crmcore.records import service as records
from crmcore.records.statuses import record_statuses, shown_status
from crmcore.records.types import RecordType, record_types
from crmcore.tenancy.models import Role
from crmcore.tenancy.service import list_members
from crmcore.web.counts import count_answer

bp = Blueprint("records", __name__, url_prefix="/records", template_folder="templates")

#: the plain fields of the create and edit forms (custom fields and the stage come apart)
FORM_FIELDS = ("title", "party_id", "contact_id", "owner_id", "amount", "currency", "expected_close_date",
               "description", "proposed_solution")
#: types whose page shows the sales team, stakeholders, competitors and the proposed solution
DEAL_SECTIONS = ("deal",)
LINK_LABELS = {"next_step": "Next step", "qualified_into": "Qualified into", "related": "Related",
               "quote": "Quote", "order": "Order", "invoice": "Invoice", "credit_note": "Credit note"}
CONTACTS_SHOWN = 200
FEED_SHOWN = 30


# ---------------------------------------------------------------------------------------------
# helpers


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {"can_write": can_write(), "duration": duration, "optional_url": optional_url,
            "link_labels": LINK_LABELS}


def can_write() -> bool:
    """Members and up change records; read-only users see the pages without the forms."""
    ctx = g.get("ctx")
    return ctx is not None and ctx.role.allows(Role.MEMBER)


def duration(seconds: int | float | None) -> str:
    """How long something lasted, in the two largest units ("3 d 4 h", "5 min")."""
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    if not parts:
        return f"{seconds} s"
    return " ".join(parts[:2])


def optional_url(endpoint: str, **values: Any) -> str | None:
    """The URL of another feature's page, or None while that feature has no such page."""
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return None


def _type(record_type: str) -> RecordType:
    """The record type of the URL; an unknown one (or one whose plugin is off here) is a 404."""
    found = record_types(g.ctx).get(record_type)
    if found is None:
        raise NotFound(f"there are no {record_type!r} records here")
    return found


def _id_arg(value: Any, what: str) -> int | None:
    """An id from the query string: none, or a whole number (anything else is "not found")."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if not text.isdigit():
        raise NotFound(f"{what} {text!r} not found")
    return int(text)


def _is_fetch() -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


def _safe_next(target: str | None) -> str | None:
    """Only same-site relative paths: never an open redirect."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _blank(value: Any) -> Any:
    """A form value: surrounding space is the service's business, an empty field is None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value


def _see(endpoint: str, **values: Any) -> Any:
    return redirect(url_for(endpoint, **values), code=303)


def _show_url(record_id: int) -> str:
    return url_for("records.detail", record_id=record_id)


# ---------------------------------------------------------------------------------------------
# plain values (taken at once: the next use case expires the rows)


def _pipelines(record_type: str) -> list[dict[str, Any]]:
    """The type's active pipelines with their active stages, default first."""
    out = []
    for pipeline in list_pipelines(g.ctx, record_type):
        out.append({
            "id": pipeline.id, "name": pipeline.name, "is_default": pipeline.is_default,
            "stages": [{"id": s.id, "name": s.name, "kind": s.kind, "probability": s.probability}
                       for s in pipeline.active_stages()],
        })
    out.sort(key=lambda p: not p["is_default"])
    return out


def _members() -> list[dict[str, Any]]:
    return [{"id": user.id, "name": user.name or user.email} for user, _role in list_members(g.ctx)]


def _options(list_key: str) -> list[tuple[Any, str]]:
    return [(o.id, o.label) for o in list_options(g.ctx, list_key)]


def _definitions(record_type: str) -> list[dict[str, Any]]:
    """The type's custom fields: key, label, type and (choice fields) their (value, label) pairs."""
    return [{"key": d.key, "label": d.label, "type": d.type,
             "choices": [(c["value"], c.get("label") or c["value"]) for c in (d.options or {}).get("choices") or []]}
            for d in list_fields(g.ctx, f"record:{record_type}")]


def _party_name(party_id: Any) -> str | None:
    """The party's name for the forms, None when the id is not one of this business's parties."""
    if party_id is None or not str(party_id).strip().isdigit():
        return None
    try:
        return get_party(g.ctx, int(party_id)).name
    except NotFound:
        return None


def _contacts(party_id: Any) -> list[tuple[int, str]]:
    """The party's contacts to pick from (none without a party)."""
    if party_id is None or not str(party_id).strip().isdigit():
        return []
    try:
        page = list_contacts(g.ctx, party_id=int(party_id), limit=CONTACTS_SHOWN)
    except CrmError:
        return []
    return [(c.id, c.name) for c in page.items]


def _field_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """Service values as the form shows them (Decimal and dates as text)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Decimal):
            out[key] = format(value.normalize(), "f")
        elif isinstance(value, dt.date):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# form input -> service input


def custom_input(form: MultiDict, definitions: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``custom.<key>`` form fields -> ``{key: value}``: a checkbox (hidden "0" before the box)
    is True or False, a multiple choice a list (none chosen: []), an empty field None."""
    out: dict[str, Any] = {}
    for definition in definitions:
        key, kind = definition["key"], definition["type"]
        values = form.getlist(f"custom.{key}")
        if kind == "checkbox":
            if values:
                out[key] = values[-1] == "1"
        elif kind == "multi_choice":
            out[key] = [v for v in values if v.strip()]
        elif values:
            filled = [v for v in values if v.strip()]
            out[key] = None if not filled else filled[0] if len(filled) == 1 else filled
    return out


def record_input(form: MultiDict, definitions: list[dict[str, Any]]) -> dict[str, Any]:
    """The record fields of the create / edit form as the services take them."""
    data = {name: _blank(form.get(name)) for name in FORM_FIELDS if name in form}
    if definitions:
        data["custom"] = custom_input(form, definitions)
    return data


def _placement(form: MultiDict, pipelines: list[dict[str, Any]]) -> dict[str, Any]:
    """The stage picked on the create form, with its pipeline (one select for both)."""
    chosen = _blank(form.get("stage_id"))
    if chosen is None:
        return {}
    for pipeline in pipelines:
        for stage in pipeline["stages"]:
            if str(stage["id"]) == str(chosen).strip():
                return {"pipeline_id": pipeline["id"], "stage_id": stage["id"]}
    return {"stage_id": chosen}  # the service says what is wrong with it


# ---------------------------------------------------------------------------------------------
# the board


@bp.get("/<record_type>/board")
def board(record_type: str) -> Any:
    """A pipeline as columns of cards; cards move by drag and drop (crm.js) or their select."""
    rtype = _type(record_type)
    if not rtype.has_pipeline:
        return _see("records.list", record_type=rtype.key)
    pipelines = _pipelines(rtype.key)
    wanted = _id_arg(request.args.get("pipeline_id"), "pipeline")
    if wanted is None:
        if not pipelines:
            return render_template("records/board.html", rtype=rtype, pipelines=[], pipeline=None, columns=[])
        wanted = pipelines[0]["id"]
    members = {m["id"]: m["name"] for m in _members()}
    data = records.board(g.ctx, wanted)
    pipeline = data["pipeline"]
    if pipeline.record_type != rtype.key:
        raise NotFound(f"pipeline {wanted} not found")
    now = utcnow()
    parties = {pid: p.name for pid, p in data["parties"].items()}
    columns = []
    for column in data["columns"]:
        stage = column["stage"]
        cards = [{
            "id": r.id, "title": r.title, "reference": r.reference, "party": parties.get(r.party_id),
            "amount": r.amount, "currency": r.currency, "owner": members.get(r.owner_id),
            "days": (now - r.stage_entered_at).days if r.stage_entered_at else None, "stage_id": r.stage_id,
        } for r in column["records"]]
        columns.append({"id": stage.id, "name": stage.name, "kind": stage.kind, "count": str(column["count"]),
                        "more": column["more"], "cards": cards})
    current = {"id": pipeline.id, "name": pipeline.name}
    if all(p["id"] != pipeline.id for p in pipelines):  # an archived pipeline, opened by its id
        pipelines.append({"id": pipeline.id, "name": pipeline.name, "is_default": False, "stages": []})
    return render_template("records/board.html", rtype=rtype, pipelines=pipelines, pipeline=current,
                           columns=columns)


@bp.post("/<int:record_id>/move")
def move(record_id: int) -> Any:
    """Move a record to ``stage_id`` (the board's drag and drop, its select, the record page).

    A won stage closes it as won; a lost stage needs a reason, given on the record page. A fetch
    (crm.js) gets JSON on success and the error page with its status otherwise."""
    stage_id = _blank(request.form.get("stage_id"))
    try:
        record = records.move_stage(g.ctx, record_id, stage_id, note=_blank(request.form.get("note")))
    except ValidationFailed as exc:
        if "lost_reason" in exc.errors:
            exc = ValidationFailed(f"{exc.message}: open it and use “Lost” to give the reason",
                                   exc.errors)
        if not _is_fetch() and request.form.get("return") == "record":
            return _record_page(record_id, failed=("move", exc))
        raise exc from None
    if _is_fetch():
        return jsonify({"record_id": record.id, "stage_id": record.stage_id, "status": record.status})
    flash(f"{record.title} moved.", "success")
    target = _safe_next(request.form.get("next"))
    return redirect(target or _show_url(record.id), code=303)


# ---------------------------------------------------------------------------------------------
# lists


def _list_filters(rtype: RecordType, definitions: list[dict[str, Any]]) -> dict[str, Any]:
    args = request.args
    filters: dict[str, Any] = {}
    names = ["status", "owner_id", "party_id", "q"] + (["pipeline_id", "stage_id"] if rtype.has_pipeline else [])
    for name in names:
        value = _blank(args.get(name))
        if value is not None:
            filters[name] = value
    custom = {}
    for definition in definitions:
        value = _blank(args.get(f"custom.{definition['key']}"))
        if value is not None:
            custom[definition["key"]] = value
    if custom:
        filters["custom"] = custom
    return filters


@bp.get("/<record_type>/", endpoint="list")
def list_page(record_type: str) -> Any:
    """Records of one type: filters (status, pipeline, stage, owner, party, title, custom fields)
    and keyset pages. The page does not wait for its capped count: crm.js fills it in from
    :func:`count` (``?count=1`` puts it in the page for a browser without JavaScript)."""
    rtype = _type(record_type)
    definitions = _definitions(rtype.key)
    pipelines = _pipelines(rtype.key) if rtype.has_pipeline else []
    members = _members()
    filters = _list_filters(rtype, definitions)
    stage_names = {s["id"]: s["name"] for p in pipelines for s in p["stages"]}
    owners = {m["id"]: m["name"] for m in members}
    error = None
    try:
        page = records.list_records(g.ctx, record_type=rtype.key, filters=filters,
                                    cursor=_blank(request.args.get("cursor")),
                                    limit=_blank(request.args.get("limit")),
                                    with_count=request.args.get("count") == "1")
    except ValidationFailed as exc:
        error, page = exc, None
    rows = []
    if page is not None:
        parties = page.extra.get("parties", {})
        statuses = record_statuses(g.ctx, page.items)
        rows = [{
            "id": r.id, "reference": r.reference, "title": r.title, "status": r.status,
            "status_label": shown_status(r, statuses),
            "party": parties[r.party_id].name if r.party_id in parties else None,
            "stage": stage_names.get(r.stage_id), "owner": owners.get(r.owner_id), "amount": r.amount,
            "currency": r.currency, "expected_close_date": r.expected_close_date, "updated_at": r.updated_at,
        } for r in page.items]
    filter_values = {k: v for k, v in request.args.items() if k not in ("cursor", "limit", "count") and v != ""}
    return render_template(
        "records/list.html", rtype=rtype, rows=rows, page=page, pipelines=pipelines, definitions=definitions,
        pipeline_options=[(p["id"], p["name"]) for p in pipelines],
        owner_options=[(m["id"], m["name"]) for m in members], values=filter_values, error=error,
        errors=flat_errors(error.errors) if error else {},
        count_url=url_for("records.count", record_type=rtype.key, **_count_args()),
    ), (422 if error else 200)


def _count_args() -> dict[str, list[str]]:
    """The list's query arguments that choose rows (not the page, its size or ``count``)."""
    return {k: v for k, v in request.args.to_dict(flat=False).items() if k not in ("cursor", "limit", "count")}


@bp.get("/<record_type>/count")
def count(record_type: str) -> Any:
    """How many records of the list's filters there are, capped (``{"count", "capped",
    "text"}``, the parties' shape): fetched by the list page after it is shown. Bad filters are
    a 422 naming the field, like the page."""
    rtype = _type(record_type)
    filters = _list_filters(rtype, _definitions(rtype.key))
    try:
        total = records.count_records(g.ctx, record_type=rtype.key, filters=filters)
    except ValidationFailed as exc:  # named as the query argument: custom.<key>, not {"custom": ...}
        raise ValidationFailed(exc.message, flat_errors(exc.errors)) from None
    return count_answer(total)


# ---------------------------------------------------------------------------------------------
# create and edit


def flat_errors(errors: Mapping[str, Any]) -> dict[str, Any]:
    """Service errors keyed like the form fields: ``{"custom": {key: [...]}}`` -> ``custom.<key>``."""
    out = {k: v for k, v in errors.items() if k != "custom"}
    custom = errors.get("custom")
    if isinstance(custom, Mapping):
        out.update({f"custom.{key}": messages for key, messages in custom.items()})
    elif custom:
        out["custom"] = custom
    return out


def _form_page(args: dict[str, Any], rtype: RecordType, values: dict[str, Any],
               custom_values: Mapping[str, Any] | None, definitions: list[dict[str, Any]],
               errors: Mapping[str, Any], status: int) -> Any:
    """Render the create / edit form; the custom inputs are built last (after every use case)."""
    labels = {f"custom.{d['key']}": d["label"] for d in definitions}
    flat = flat_errors(errors)
    custom_errors = [(labels.get(key, key), msgs if isinstance(msgs, list) else [str(msgs)])
                     for key, msgs in flat.items() if key.startswith("custom")]
    custom = [control for _definition, control in render_inputs(g.ctx, f"record:{rtype.key}", custom_values)]
    members = args.pop("members")
    return render_template("records/form.html", rtype=rtype, values=values, custom=custom, errors=flat,
                           custom_errors=custom_errors, owner_options=[(m["id"], m["name"]) for m in members],
                           **args), status


@bp.route("/<record_type>/new", methods=["GET", "POST"])
def new(record_type: str) -> Any:
    """The create form, prefilled from the smart defaults (``party_id``, or ``source_id`` for a
    next step); saving links the new record from its source."""
    rtype = _type(record_type)
    source_id = _id_arg(request.values.get("source_id"), "source record")
    party_arg = _id_arg(request.args.get("party_id"), "party")
    if party_arg is not None:
        get_party(g.ctx, party_arg)  # another business's party is not found
    source = records.get_record(g.ctx, source_id) if source_id is not None else None
    source_info = {"id": source.id, "title": source.title, "type": source.type} if source is not None else None
    pipelines = _pipelines(rtype.key) if rtype.has_pipeline else []
    definitions = _definitions(rtype.key)
    errors: dict[str, Any] = {}
    message = None
    if request.method == "POST":
        data = {**record_input(request.form, definitions), **_placement(request.form, pipelines)}
        try:
            record = records.create_record(g.ctx, rtype.key, data, source_id=source_id)
        except (ValidationFailed, Veto) as exc:
            # a plugin's veto (crm_before_record_save) is shown like a validation error: the
            # form again, with what the user typed
            errors, message = exc.errors or {}, exc.message
            values = {k: v for k, v in request.form.items() if not k.startswith("custom.")}
            custom_values = data.get("custom")
            status = exc.status
        else:
            flash(f"{rtype.label} created.", "success")
            return _see("records.detail", record_id=record.id)
    else:
        defaults = records.record_defaults(g.ctx, rtype.key, source_id=source_id, party_id=party_arg)
        values = _field_values({k: v for k, v in defaults.items() if k != "custom"})
        custom_values = defaults.get("custom")
        status = 200
    party_id = values.get("party_id")
    args = {
        "mode": "new", "source": source_info, "pipelines": pipelines, "members": _members(),
        "contacts": _contacts(party_id), "party_name": _party_name(party_id), "message": message, "action": url_for("records.new", record_type=rtype.key, source_id=source_id),
        "cancel": _show_url(source_id) if source_id else url_for("records.list", record_type=rtype.key),
    }
    return _form_page(args, rtype, values, custom_values, definitions, errors, status)


@bp.route("/<int:record_id>/edit", methods=["GET", "POST"])
def edit(record_id: int) -> Any:
    """Change a record's fields and custom values (the stage moves on the record page)."""
    record = records.get_record(g.ctx, record_id)
    rtype = _type(record.type)
    stored = {name: getattr(record, name) for name in FORM_FIELDS}
    stored_custom = dict(record.custom or {})
    info = {"id": record.id, "title": record.title, "reference": record.reference,
            "archived": record.archived_at is not None}
    definitions = _definitions(rtype.key)
    errors: dict[str, Any] = {}
    message = None
    status = 200
    values = _field_values(stored)
    custom_values: Mapping[str, Any] | None = stored_custom
    if request.method == "POST":
        data = record_input(request.form, definitions)
        try:
            records.update_record(g.ctx, record_id, data)
        except (ValidationFailed, Veto) as exc:
            errors, message, status = exc.errors or {}, exc.message, exc.status
            values = {k: v for k, v in request.form.items() if not k.startswith("custom.")}
            custom_values = data.get("custom")
        else:
            flash(f"{rtype.label} saved.", "success")
            return _see("records.detail", record_id=record_id)
    party_id = values.get("party_id")
    args = {
        "mode": "edit", "record": info, "source": None, "pipelines": [], "members": _members(),
        "contacts": _contacts(party_id), "party_name": _party_name(party_id), "message": message, "action": url_for("records.edit", record_id=record_id),
        "cancel": _show_url(record_id),
    }
    return _form_page(args, rtype, values, custom_values, definitions, errors, status)


@bp.post("/<int:record_id>/archive")
def archive(record_id: int) -> Any:
    record = records.archive_record(g.ctx, record_id)
    flash(f"{record.title} archived.", "success")
    return _see("records.list", record_type=record.type)


@bp.post("/<int:record_id>/restore")
def restore(record_id: int) -> Any:
    records.restore_record(g.ctx, record_id)
    flash("Restored.", "success")
    return _see("records.detail", record_id=record_id)


# ---------------------------------------------------------------------------------------------
# the record page


def _plain_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """What the record page shows of :func:`records.record_details`, as plain values."""
    record = details["record"]
    pipeline, stage = details["pipeline"], details["stage"]
    party, contact, owner, reason = details["party"], details["contact"], details["owner"], details["lost_reason"]
    out: dict[str, Any] = {name: getattr(record, name) for name in (
        "id", "type", "reference", "title", "description", "party_id", "contact_id", "owner_id", "amount",
        "currency", "expected_close_date", "pipeline_id", "stage_id", "stage_entered_at", "status", "lost_note",
        "closed_at", "proposed_solution", "created_at", "updated_at", "archived_at")}
    out["custom"] = dict(record.custom or {})
    out["party"] = {"id": party.id, "name": party.name} if party is not None else None
    out["contact"] = {"id": contact.id, "name": contact.name} if contact is not None else None
    out["owner"] = (owner.name or owner.email) if owner is not None else None
    out["lost_reason"] = reason.label if reason is not None else None
    out["pipeline"] = {"id": pipeline.id, "name": pipeline.name} if pipeline is not None else None
    out["stage"] = {"id": stage.id, "name": stage.name, "kind": stage.kind} if stage is not None else None
    out["stages"] = ([{"id": s.id, "name": s.name, "kind": s.kind, "probability": s.probability}
                      for s in pipeline.active_stages()] if pipeline is not None else [])
    out["lost_stages"] = [(s["id"], s["name"]) for s in out["stages"] if s["kind"] == "lost"]
    out["team"] = [{"user_id": row["user"].id, "name": row["user"].name or row["user"].email,
                    "role": row["role"].label if row["role"] is not None else None} for row in details["team"]]
    out["stakeholders"] = [{"id": row["stakeholder"].id, "contact": row["contact"].name,
                            "role": row["role"].label if row["role"] is not None else None,
                            "notes": row["stakeholder"].notes} for row in details["stakeholders"]]
    out["competitors"] = [{"id": row["entry"].id, "label": row["competitor"].label, "notes": row["entry"].notes}
                          for row in details["competitors"]]
    for key in ("links_out", "links_in"):
        out[key] = [{"kind": row["kind"], "id": row["record"].id, "title": row["record"].title,
                     "type": row["record"].type, "reference": row["record"].reference,
                     "status": row["record"].status} for row in details[key]]
    out["history"] = [{
        "from": change.from_stage.name if change.from_stage is not None else None,
        "to": change.to_stage.name, "who": (change.user.name or change.user.email) if change.user else None,
        "at": change.changed_at, "stayed": change.seconds_in_from_stage, "note": change.note,
    } for change in details["history"]]
    return out


def _record_page(record_id: int, *, failed: tuple[str, ValidationFailed] | None = None) -> Any:
    """The record page; ``failed`` = (form name, error) re-renders it with the error beside that
    form and the user's input kept (422)."""
    from crmcore.timeline.service import feed

    ctx = g.ctx
    details = records.record_details(ctx, record_id)
    record = _plain_details(details)
    record["shown_status"] = shown_status(details["record"], record_statuses(ctx, [details["record"]]))
    rtype = _type(record["type"])
    panels = [{"title": p["title"], "html": p.get("html", ""), "plugin": p["plugin"]}
              for p in records.record_panels(ctx, record_id)]
    deal_like = rtype.key in DEAL_SECTIONS
    choices = {"lost_reason": _options("lost_reason")}
    if deal_like:
        choices.update(competitor=_options("competitor"), stakeholder_role=_options("stakeholder_role"),
                       team_role=_options("team_role"))
    members = _members()
    contacts = _contacts(record["party_id"]) if deal_like else []
    custom_values = [(d.label, value) for d, value in render_values(ctx, f"record:{rtype.key}", record["custom"])]
    form_state = None
    if failed is not None:
        name, exc = failed
        form_state = {"name": name, "message": exc.message, "errors": exc.errors, "kept": request.form}
    entered = record["stage_entered_at"]
    # the feed comes last: its rows are rendered by the timeline's panel as they are
    timeline = feed(ctx, record_id=record_id, limit=FEED_SHOWN)
    return render_template(
        "records/show.html", record=record, rtype=rtype, custom_values=custom_values, panels=panels,
        timeline=timeline, has_timeline="timeline.add_note" in current_app.view_functions,
        choices=choices, members=members, member_pairs=[(m["id"], m["name"]) for m in members],
        contacts=contacts, types=list(record_types(ctx).values()), deal_like=deal_like, failed=form_state,
        in_stage_seconds=(utcnow() - entered).total_seconds() if entered else None,
    ), (422 if failed is not None else 200)


@bp.get("/<int:record_id>")
def detail(record_id: int) -> Any:
    """Details, custom values, stage progress and history, the actions, links, the deal's team,
    stakeholders and competitors, next steps, the timeline and plugin panels."""
    return _record_page(record_id)


def _act(record_id: int, form_name: str, action: Any, done: str) -> Any:
    """Run a record-page action; its ValidationFailed re-renders the page beside that form."""
    try:
        action()
    except ValidationFailed as exc:
        return _record_page(record_id, failed=(form_name, exc))
    flash(done, "success")
    return _see("records.detail", record_id=record_id)


@bp.post("/<int:record_id>/won")
def won(record_id: int) -> Any:
    form = request.form
    return _act(record_id, "won", lambda: records.close_won(
        g.ctx, record_id, stage_id=_blank(form.get("stage_id")), note=_blank(form.get("note"))), "Closed as won.")


@bp.post("/<int:record_id>/lost")
def lost(record_id: int) -> Any:
    form = request.form
    return _act(record_id, "lost", lambda: records.close_lost(
        g.ctx, record_id, _blank(form.get("lost_reason")), stage_id=_blank(form.get("stage_id")),
        note=_blank(form.get("note"))), "Closed as lost.")


@bp.post("/<int:record_id>/reopen")
def reopen(record_id: int) -> Any:
    form = request.form
    return _act(record_id, "reopen", lambda: records.reopen(
        g.ctx, record_id, stage_id=_blank(form.get("stage_id")), note=_blank(form.get("note"))), "Reopened.")


@bp.post("/<int:record_id>/qualify")
def qualify(record_id: int) -> Any:
    """Turn the lead into a deal and open the deal."""
    try:
        deal = records.qualify_lead(g.ctx, record_id)
    except ValidationFailed as exc:
        return _record_page(record_id, failed=("qualify", exc))
    flash("Lead qualified into this deal.", "success")
    return _see("records.detail", record_id=deal.id)


@bp.post("/<int:record_id>/solution")
def solution(record_id: int) -> Any:
    text = request.form.get("proposed_solution")
    return _act(record_id, "solution", lambda: records.update_record(
        g.ctx, record_id, {"proposed_solution": _blank(text)}), "Proposed solution saved.")


@bp.post("/<int:record_id>/team")
def team_add(record_id: int) -> Any:
    form = request.form
    return _act(record_id, "team", lambda: records.add_team_member(
        g.ctx, record_id, _blank(form.get("user_id")), _blank(form.get("role"))), "Added to the team.")


@bp.post("/<int:record_id>/team/<int:user_id>/remove")
def team_remove(record_id: int, user_id: int) -> Any:
    records.remove_team_member(g.ctx, record_id, user_id)
    flash("Removed from the team.", "success")
    return _see("records.detail", record_id=record_id)


@bp.post("/<int:record_id>/stakeholders")
def stakeholder_add(record_id: int) -> Any:
    form = request.form
    return _act(record_id, "stakeholder", lambda: records.add_stakeholder(
        g.ctx, record_id, _blank(form.get("contact_id")), _blank(form.get("role")), _blank(form.get("notes"))),
        "Stakeholder added.")


def _owned(record_id: int, key: str, entry_key: str, entry_id: int, what: str) -> None:
    """A row removed through a record's URL must be that record's (else: not found)."""
    details = records.record_details(g.ctx, record_id)
    if all(row[entry_key].id != entry_id for row in details[key]):
        raise NotFound(f"{what} {entry_id} not found")


@bp.post("/<int:record_id>/stakeholders/<int:stakeholder_id>/remove")
def stakeholder_remove(record_id: int, stakeholder_id: int) -> Any:
    _owned(record_id, "stakeholders", "stakeholder", stakeholder_id, "stakeholder")
    records.remove_stakeholder(g.ctx, stakeholder_id)
    flash("Stakeholder removed.", "success")
    return _see("records.detail", record_id=record_id)


@bp.post("/<int:record_id>/competitors")
def competitor_add(record_id: int) -> Any:
    form = request.form
    return _act(record_id, "competitor", lambda: records.add_competitor(
        g.ctx, record_id, _blank(form.get("competitor")), _blank(form.get("notes"))), "Competitor added.")


@bp.post("/<int:record_id>/competitors/<int:entry_id>/remove")
def competitor_remove(record_id: int, entry_id: int) -> Any:
    _owned(record_id, "competitors", "entry", entry_id, "competitor entry")
    records.remove_competitor(g.ctx, entry_id)
    flash("Competitor removed.", "success")
    return _see("records.detail", record_id=record_id)
