"""The party and contact pages of the admin.

Routes call the services only. A use case expires what the session loaded before it (so no
page acts on stale rows), which would make a template reload every row of an earlier call one
by one; so the results of every call but the last one a page makes are copied into plain
objects (:func:`plain`) right away, and list pages make their list call last.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from werkzeug.routing import BuildError

from crmcore.errors import Conflict, NotFound, ValidationFailed, Veto
from crmcore.fields.service import list_fields, render_inputs, render_values
from crmcore.lists.models import POTENTIAL_LEVEL, PROSPECT_STATUS
from crmcore.lists.service import cached_options, list_options
from crmcore.paging import Page
from crmcore.parties import forms
from crmcore.parties import service as parties
from crmcore.parties.models import PARTY_KINDS
from crmcore.parties.schemas import SORTS
from crmcore.tenancy.models import Role
from crmcore.tenancy.service import list_members
from crmcore.web.counts import count_answer

bp = Blueprint("parties", __name__, url_prefix="/parties", template_folder="templates")
contacts_bp = Blueprint("contacts", __name__, url_prefix="/contacts", template_folder="templates")

SORT_LABELS = {"name": "Name", "-created": "Newest first", "-updated": "Recently changed"}
#: records of each type shown on a party's sheet (the rest: the records pages)
RECORDS_PER_TYPE = 10
FEED_LIMIT = 30
NOTES_LIMIT = 10


# --------------------------------------------------------------------------------------------
# helpers


def plain(value: Any) -> Any:
    """A copy of a service result without ORM instances (their loaded columns as attributes),
    so a later use case expiring the session does not make the template reload them."""
    if hasattr(value, "_sa_instance_state"):
        return SimpleNamespace(**{k: plain(v) for k, v in vars(value).items() if not k.startswith("_sa")})
    if isinstance(value, Page):
        return Page(items=plain(value.items), next_cursor=value.next_cursor, total=value.total,
                    extra=plain(value.extra))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    return value


def is_fetch() -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


def can_write() -> bool:
    """Whether the user may change parties and contacts (pages hide the controls otherwise)."""
    ctx = g.get("ctx")
    return ctx is not None and ctx.role.allows(Role.MEMBER)


def require_write() -> None:
    """A read-only user gets 403 before a form is shown or anything is looked at."""
    g.ctx.require(Role.MEMBER)


def maybe_url(endpoint: str, **values: Any) -> str | None:
    """The URL of another feature's page, or None while that feature has no such page."""
    if endpoint not in current_app.view_functions:
        return None
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return None


def record_url(record: Any) -> str | None:
    """A record's page (the records blueprint), when the app has it."""
    return maybe_url("records.detail", record_id=record.id)


def safe_next(default: str) -> str:
    """The ``next`` form value when it is a path of this site, else ``default``."""
    from crmcore.web.auth import _safe_next

    return _safe_next(request.values.get("next")) or default


def int_or_none(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def error_text(exc: ValidationFailed | Conflict | Veto) -> str:
    """A refusal in one line, for a flash message."""
    details = forms.flat_errors(exc.errors)
    if not details:
        return exc.message
    return exc.message + ": " + "; ".join(f"{k.replace('_', ' ')}: {' '.join(v)}" for k, v in details.items())


def _page_helpers() -> dict[str, Any]:
    return {"can_write": can_write(), "maybe_url": maybe_url, "record_url": record_url,
            "current_app": current_app._get_current_object(),  # type: ignore[attr-defined]
            "mechanism_choices": forms.MECHANISM_CHOICES, "purpose_choices": forms.PURPOSE_CHOICES}


@bp.before_request
@contacts_bp.before_request
def _writes_need_a_member() -> None:
    """Every POST here changes data: a read-only user is refused before anything runs."""
    if request.method == "POST" and g.get("ctx") is not None:
        require_write()


bp.context_processor(_page_helpers)
contacts_bp.context_processor(_page_helpers)


# --------------------------------------------------------------------------------------------
# the party list


def _filter_input(args: Any, definitions: list[Any]) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    for key in ("q", "kind", "prospect_status", "potential", "tag", "sales_rep_id", "language"):
        value = forms.text(args, key)
        if value is not None:
            filters[key] = value
    for key in forms.PARTY_FLAGS:
        flag = forms.tristate(args.get(key))
        if flag is not None:
            filters[key] = flag
    archived = args.get("archived")
    if archived == "archived":
        filters["archived"] = True
    elif archived == "all":
        filters["archived"] = None
    custom = {}
    for definition in definitions:
        value = forms.text(args, "custom." + definition.key)
        if value is not None:
            custom[definition.key] = value
    if custom:
        filters["custom"] = custom
    return filters


@bp.get("/")
def list_page() -> Any:
    ctx = g.ctx
    statuses = cached_options(ctx, PROSPECT_STATUS, include_inactive=True)
    potentials = cached_options(ctx, POTENTIAL_LEVEL, include_inactive=True)
    members = plain(list_members(ctx))
    definitions = plain(list_fields(ctx, "party"))
    filters = _filter_input(request.args, definitions)
    sort = request.args.get("sort") or "name"
    errors: dict[str, list[str]] = {}
    message = None
    # the page never waits for its count: crm.js fetches it from parties.count (without
    # JavaScript, ?count=1 asks for it inline); the count is most of a filtered list's cost
    with_count = request.args.get("count") == "1"
    try:
        page = parties.list_parties(ctx, filters, sort=sort, cursor=request.args.get("cursor") or None,
                                    limit=request.args.get("limit") or None, with_count=with_count)
    except ValidationFailed as exc:
        page, message, errors = Page(items=[]), exc.message, forms.flat_errors(exc.errors)
    return render_template(
        "parties/list.html", page=page, statuses=statuses, errors=errors, message=message,
        status_choices=[(o.value, o.label) for o in statuses],
        potential_choices=[(o.value, o.label) for o in potentials],
        member_choices=[(u.id, u.name or u.email) for u, _role in members],
        custom_filters=[_custom_filter(d) for d in definitions],
        sorts=[(s, SORT_LABELS.get(s, s)) for s in SORTS], kinds=forms.choices(PARTY_KINDS),
        next_url=request.full_path,
    ), (422 if message else 200)


@bp.get("/count")
def count() -> Any:
    """How many parties match the list's filters, capped ("1,000+"): ``{"count", "capped",
    "text"}``, fetched by the list page after it is shown."""
    ctx = g.ctx
    filters = _filter_input(request.args, plain(list_fields(ctx, "party")))
    return count_answer(parties.count_parties(ctx, filters))


#: filter controls of custom-field types that are not text inputs
_FILTER_INPUT_TYPES = {"integer": "number", "party_ref": "number",
                       "date": "date", "datetime": "datetime-local"}


def _custom_filter(definition: Any) -> dict[str, Any]:
    """One filter control for a custom field (the list filters by equality)."""
    control: dict[str, Any] = {"name": "custom." + definition.key, "label": definition.label}
    if definition.type in ("choice", "multi_choice"):
        choices = (definition.options or {}).get("choices") or []
        control["choices"] = [(c["value"], c.get("label") or c["value"]) for c in choices]
    elif definition.type == "checkbox":
        control["choices"] = [("true", "Yes"), ("false", "No")]
    else:
        control["input_type"] = _FILTER_INPUT_TYPES.get(definition.type, "text")
    return control


@bp.post("/<int:party_id>/status")
def set_status(party_id: int) -> Any:
    """The one-click status change of a list row: the row again for crm.js, else back to the list."""
    back = safe_next(url_for("parties.list_page"))
    try:
        parties.set_prospect_status(g.ctx, party_id, forms.text(request.form, "status"))
    except (ValidationFailed, Conflict, Veto) as exc:
        if is_fetch():
            raise
        flash(error_text(exc), "error")
        return redirect(back)
    if not is_fetch():
        flash("Status changed.", "success")
        return redirect(back)
    statuses = plain(list_options(g.ctx, PROSPECT_STATUS, include_inactive=True))
    details = parties.party_details(g.ctx, party_id)
    return render_template("parties/_row.html", party=details["party"], tags=details["tags"],
                           status=details["prospect_status"], potential=details["potential"],
                           statuses=statuses, next_url=back)


# --------------------------------------------------------------------------------------------
# create and edit


def _form_choices(ctx: Any) -> dict[str, Any]:
    """Options of the party form (inactive list options too: a party may still have one)."""
    statuses = plain(list_options(ctx, PROSPECT_STATUS, include_inactive=True))
    potentials = plain(list_options(ctx, POTENTIAL_LEVEL, include_inactive=True))
    return {
        "status_choices": [(o.value, o.label) for o in statuses],
        "potential_choices": [(o.value, o.label) for o in potentials],
        "member_choices": [(str(u.id), u.name or u.email) for u, _role in plain(list_members(ctx))],
        "definitions": plain(list_fields(ctx, "party")),
        "kinds": forms.choices(PARTY_KINDS),
    }


def _render_party_form(*, party: Any, shown: dict[str, Any], choices: dict[str, Any],
                       errors: dict[str, list[str]] | None = None, message: str | None = None,
                       status: int = 200) -> Any:
    ctx = g.ctx
    custom_inputs = render_inputs(ctx, "party", _showable(shown.get("custom") or {}, choices["definitions"]))
    return render_template("parties/form.html", party=party, values=shown, custom_inputs=custom_inputs,
                           errors=errors or {}, message=message, **choices), status


def _showable(custom: dict[str, Any], definitions: list[Any]) -> dict[str, Any]:
    """Typed custom values as ``render_inputs`` reads them (a ticked box is True)."""
    types = {d.key: d.type for d in definitions}
    return {k: (v in (True, "1", "true") if types.get(k) == "checkbox" else v) for k, v in custom.items()}


@bp.route("/new", methods=["GET", "POST"])
def new() -> Any:
    require_write()
    ctx = g.ctx
    choices = _form_choices(ctx)
    if request.method == "GET":
        shown = {"kind": request.args.get("kind") if request.args.get("kind") in PARTY_KINDS else "organisation",
                 "is_prospect": True, "mechanisms": forms.blank_mechanisms(forms.NEW_MECHANISM_KINDS),
                 "addresses": [forms.blank_address()]}
        return _render_party_form(party=None, shown=shown, choices=choices)
    data, shown, origins = forms.party_input(request.form, choices["definitions"], creating=True)
    shown["mechanisms"] = shown["mechanisms"] or forms.blank_mechanisms(forms.NEW_MECHANISM_KINDS)
    shown["addresses"] = shown["addresses"] or [forms.blank_address()]
    try:
        party = parties.create_party(ctx, data)
    except ValidationFailed as exc:
        return _render_party_form(party=None, shown=shown, choices=choices, message=exc.message,
                                  errors=forms.flat_errors(exc.errors, origins), status=422)
    except Veto as exc:
        return _render_party_form(party=None, shown=shown, choices=choices, message=exc.message,
                                  errors=forms.flat_errors(exc.errors, origins), status=exc.status)
    flash(f"{party.name} was created.", "success")
    return redirect(url_for("parties.sheet", party_id=party.id))


@bp.route("/<int:party_id>/edit", methods=["GET", "POST"])
def edit(party_id: int) -> Any:
    require_write()
    ctx = g.ctx
    choices = _form_choices(ctx)
    details = plain(parties.party_details(ctx, party_id))
    party = details["party"]
    if request.method == "GET":
        return _render_party_form(party=party, shown=forms.party_shown(details), choices=choices)
    data, shown, _origins = forms.party_input(request.form, choices["definitions"], creating=False)
    try:
        parties.update_party(ctx, party_id, data)
    except ValidationFailed as exc:
        return _render_party_form(party=party, shown=shown, choices=choices, message=exc.message,
                                  errors=forms.flat_errors(exc.errors), status=422)
    except (Veto, Conflict) as exc:
        return _render_party_form(party=party, shown=shown, choices=choices, message=exc.message,
                                  errors=forms.flat_errors(exc.errors), status=exc.status)
    flash("Saved.", "success")
    return redirect(url_for("parties.sheet", party_id=party_id))


# --------------------------------------------------------------------------------------------
# the sheet


def _panels(ctx: Any, party: Any) -> list[dict[str, Any]]:
    """Plugin panels (``crm_party_panels``) by ``order``; a malformed one is left out."""
    panels = []
    for plugin, result in ctx.collect("crm_party_panels", party=party):
        for panel in result if isinstance(result, list) else [result]:
            if isinstance(panel, dict) and "title" in panel:
                order = panel.get("order")
                panels.append({"html": "", **panel, "plugin": plugin,
                               "order": order if isinstance(order, int | float) else 100})
    return sorted(panels, key=lambda p: (p["order"], p["plugin"]))


def _record_types(ctx: Any) -> list[Any]:
    """The business's record types: the core's in their order, then the plugins' by label."""
    from crmcore.records.types import CORE_TYPES, record_types

    types = record_types(ctx)
    core = [t for t in CORE_TYPES if t.key in types]
    return core + sorted((t for t in types.values() if t not in core), key=lambda t: t.label)


@bp.get("/<int:party_id>")
def sheet(party_id: int) -> Any:
    from crmcore.records.service import list_records
    from crmcore.records.statuses import record_statuses
    from crmcore.timeline.service import feed

    ctx = g.ctx
    found = parties.party_details(ctx, party_id)
    # copied before the panels: a plugin's panel runs its own use case, which expires what
    # this one loaded (the contact mechanisms are built from a UNION and cannot be reloaded)
    details = plain(found)
    panels = _panels(ctx, found["party"])
    custom_values = render_values(ctx, "party", details["party"].custom)
    members = plain(list_members(ctx))
    related = []
    for rtype in _record_types(ctx):
        page = list_records(ctx, record_type=rtype.key, filters={"party_id": party_id}, limit=RECORDS_PER_TYPE)
        related.append({"type": rtype, "statuses": record_statuses(ctx, page.items), "page": plain(page)})
    notes = plain(feed(ctx, party_id=party_id, kinds=["note"], limit=NOTES_LIMIT))
    files = plain(feed(ctx, party_id=party_id, kinds=["attachment"], limit=NOTES_LIMIT))
    timeline = feed(ctx, party_id=party_id, cursor=request.args.get("feed") or None, limit=FEED_LIMIT)
    return render_template("parties/sheet.html", d=details, party=details["party"], panels=panels,
                           custom_values=custom_values, related=related, notes=notes, files=files,
                           timeline=timeline, members=members)


def _back_to_sheet(party_id: int, anchor: str | None = None) -> Any:
    return redirect(url_for("parties.sheet", party_id=party_id, _anchor=anchor))


@bp.post("/<int:party_id>/archive")
def archive(party_id: int) -> Any:
    party = parties.archive_party(g.ctx, party_id)
    flash(f"{party.name} was archived.", "success")
    return _back_to_sheet(party_id)


@bp.post("/<int:party_id>/unarchive")
def unarchive(party_id: int) -> Any:
    party = parties.unarchive_party(g.ctx, party_id)
    flash(f"{party.name} was restored from the archive.", "success")
    return _back_to_sheet(party_id)


def _attempt(action: Any, success: str, party_id: int, anchor: str) -> Any:
    """Run a small change from the sheet; a refusal is flashed (the sheet keeps its place)."""
    try:
        action()
    except (ValidationFailed, Conflict, Veto) as exc:
        flash(error_text(exc), "error")
    else:
        flash(success, "success")
    return _back_to_sheet(party_id, anchor)


def _party_mechanism(party_id: int, mechanism_id: int) -> None:
    """404 unless the mechanism is one of the party's own."""
    details = plain(parties.party_details(g.ctx, party_id))
    if mechanism_id not in {m.id for m in details["mechanisms"]}:
        raise NotFound(f"contact mechanism {mechanism_id} not found")


def _party_address(party_id: int, address_id: int) -> None:
    details = plain(parties.party_details(g.ctx, party_id))
    if address_id not in {a.id for a in details["addresses"]}:
        raise NotFound(f"address {address_id} not found")


@bp.post("/<int:party_id>/mechanisms")
def add_mechanism(party_id: int) -> Any:
    data = forms.mechanism_input(request.form)
    return _attempt(lambda: parties.add_mechanism(g.ctx, party_id=party_id, data=data),
                    "Added.", party_id, "mechanisms")


@bp.post("/<int:party_id>/mechanisms/<int:mechanism_id>/primary")
def primary_mechanism(party_id: int, mechanism_id: int) -> Any:
    _party_mechanism(party_id, mechanism_id)
    return _attempt(lambda: parties.update_mechanism(g.ctx, mechanism_id, {"is_primary": True}),
                    "Made primary.", party_id, "mechanisms")


@bp.post("/<int:party_id>/mechanisms/<int:mechanism_id>/delete")
def remove_mechanism(party_id: int, mechanism_id: int) -> Any:
    _party_mechanism(party_id, mechanism_id)
    return _attempt(lambda: parties.remove_mechanism(g.ctx, mechanism_id), "Removed.", party_id, "mechanisms")


@bp.post("/<int:party_id>/addresses")
def add_address(party_id: int) -> Any:
    data = forms.address_input(request.form)
    return _attempt(lambda: parties.add_address(g.ctx, party_id, data), "Address added.", party_id, "addresses")


@bp.post("/<int:party_id>/addresses/<int:address_id>/default")
def default_address(party_id: int, address_id: int) -> Any:
    _party_address(party_id, address_id)
    return _attempt(lambda: parties.update_address(g.ctx, address_id, {"is_default": True}),
                    "Made the default.", party_id, "addresses")


@bp.post("/<int:party_id>/addresses/<int:address_id>/delete")
def remove_address(party_id: int, address_id: int) -> Any:
    _party_address(party_id, address_id)
    return _attempt(lambda: parties.remove_address(g.ctx, address_id), "Address removed.", party_id, "addresses")


@bp.post("/<int:party_id>/contacts")
def add_contact(party_id: int) -> Any:
    """The sheet's quick contact form: a name, a job title, an email and a phone."""
    form = request.form
    data: dict[str, Any] = {"party_id": party_id, **{k: forms.text(form, k) for k in (
        "first_name", "last_name", "job_title") if forms.text(form, k)}}
    data["mechanisms"] = [{"kind": kind, "value": forms.text(form, kind)} for kind in ("email", "phone")
                          if forms.text(form, kind)]
    return _attempt(lambda: parties.create_contact(g.ctx, data), "Contact added.", party_id, "contacts")


# --------------------------------------------------------------------------------------------
# merge


@bp.route("/<int:party_id>/merge", methods=["GET", "POST"])
def merge(party_id: int) -> Any:
    """Pick the duplicate (search or id), see what would move, confirm."""
    ctx = g.ctx
    if request.method == "POST":
        duplicate_id = int_or_none(request.form.get("duplicate_id"))
        rule = request.form.get("custom_rule") or "fill"
        if duplicate_id is None:
            flash("Give the id of the duplicate party.", "error")
            return redirect(url_for("parties.merge", party_id=party_id))
        try:
            trace = parties.merge_parties(ctx, party_id, duplicate_id, custom_rule=rule)
        except (ValidationFailed, Conflict, Veto) as exc:
            flash(error_text(exc), "error")
            return redirect(url_for("parties.merge", party_id=party_id, duplicate_id=duplicate_id))
        moved = trace.moved or {}
        what = ", ".join(f"{n} {label.replace('_', ' ')}" for label, n in moved.items() if isinstance(n, int))
        flash(f"Party {duplicate_id} was merged into this one" + (f" ({what} moved)." if what else "."), "success")
        return _back_to_sheet(party_id)

    require_write()
    definitions = plain(list_fields(ctx, "party"))
    party = plain(parties.get_party(ctx, party_id))
    q = forms.text(request.args, "q")
    raw_id = forms.text(request.args, "duplicate_id")
    duplicate_id = int_or_none(raw_id)
    problem = None
    if raw_id is not None and duplicate_id is None:
        problem = f"{raw_id!r} is not a party id."
    candidates = None
    if q:
        found = plain(parties.list_parties(ctx, {"q": q}, limit=20, with_count=False))
        candidates = [p for p in found.items if p.id != party_id]
    preview = None
    if duplicate_id is not None:
        try:
            preview = plain(parties.merge_preview(ctx, party_id, duplicate_id))
        except (ValidationFailed, Conflict) as exc:
            problem = error_text(exc)
    labels = {d.key: d.label for d in definitions}
    page = render_template("parties/merge.html", party=party, q=q or "", raw_id=raw_id or "",
                           candidates=candidates, preview=preview, problem=problem, labels=labels)
    return page, (422 if problem else 200)


# --------------------------------------------------------------------------------------------
# contacts


@contacts_bp.get("/", endpoint="list_page")
def contact_list() -> Any:
    ctx = g.ctx
    party_id = int_or_none(request.args.get("party_id"))
    unassigned = request.args.get("unassigned") == "1"
    party = None
    errors: dict[str, list[str]] = {}
    message = None
    if request.args.get("party_id") and party_id is None:
        message, errors = "invalid filter", {"party_id": ["give a party id"]}
    elif party_id is not None:
        party = plain(parties.get_party(ctx, party_id))
    try:
        if message:
            raise ValidationFailed(message, errors)
        page = parties.list_contacts(ctx, party_id=party_id, unassigned=unassigned and party_id is None,
                                     q=forms.text(request.args, "q"),
                                     include_archived=request.args.get("archived") == "1",
                                     cursor=request.args.get("cursor") or None,
                                     limit=request.args.get("limit") or None)
    except ValidationFailed as exc:
        page, message, errors = Page(items=[]), exc.message, forms.flat_errors(exc.errors)
    return render_template("parties/contacts_list.html", page=page, party=party, unassigned=unassigned,
                           errors=errors, message=message), (422 if message else 200)


def _render_contact_form(*, contact: Any, shown: dict[str, Any], definitions: list[Any], party: Any = None,
                         errors: dict[str, list[str]] | None = None, message: str | None = None,
                         status: int = 200) -> Any:
    custom_inputs = render_inputs(g.ctx, "contact", _showable(shown.get("custom") or {}, definitions))
    return render_template("parties/contact_form.html", contact=contact, values=shown, party=party,
                           definitions=definitions, custom_inputs=custom_inputs, errors=errors or {},
                           message=message), status


@contacts_bp.route("/new", methods=["GET", "POST"], endpoint="new")
def new_contact() -> Any:
    require_write()
    ctx = g.ctx
    definitions = plain(list_fields(ctx, "contact"))
    source = request.form if request.method == "POST" else request.args
    party_id = int_or_none(source.get("party_id"))
    party = plain(parties.get_party(ctx, party_id)) if party_id is not None else None
    if request.method == "GET":
        shown = {"party_id": str(party_id) if party_id else "",
                 "mechanisms": forms.blank_mechanisms(forms.NEW_CONTACT_MECHANISM_KINDS)}
        return _render_contact_form(contact=None, shown=shown, definitions=definitions, party=party)
    data, shown, origins = forms.contact_input(request.form, definitions, creating=True)
    shown["mechanisms"] = shown["mechanisms"] or forms.blank_mechanisms(forms.NEW_CONTACT_MECHANISM_KINDS)
    try:
        contact = parties.create_contact(ctx, data)
    except ValidationFailed as exc:
        return _render_contact_form(contact=None, shown=shown, definitions=definitions, party=party,
                                    message=exc.message, errors=forms.flat_errors(exc.errors, origins), status=422)
    except (Veto, Conflict) as exc:
        return _render_contact_form(contact=None, shown=shown, definitions=definitions, party=party,
                                    message=exc.message, errors=forms.flat_errors(exc.errors), status=exc.status)
    flash(f"{contact.name} was added.", "success")
    return redirect(url_for("contacts.detail", contact_id=contact.id))


@contacts_bp.get("/<int:contact_id>")
def detail(contact_id: int) -> Any:
    details = parties.contact_details(g.ctx, contact_id)
    custom_values = render_values(g.ctx, "contact", details["contact"].custom)
    return render_template("parties/contact.html", contact=details["contact"], party=details["party"],
                           mechanisms=details["mechanisms"], custom_values=custom_values)


@contacts_bp.route("/<int:contact_id>/edit", methods=["GET", "POST"], endpoint="edit")
def edit_contact(contact_id: int) -> Any:
    require_write()
    ctx = g.ctx
    definitions = plain(list_fields(ctx, "contact"))
    details = plain(parties.contact_details(ctx, contact_id))
    contact = details["contact"]
    if request.method == "GET":
        return _render_contact_form(contact=contact, shown=forms.contact_shown(contact), definitions=definitions,
                                    party=details["party"])
    data, shown, _origins = forms.contact_input(request.form, definitions, creating=False)
    try:
        parties.update_contact(ctx, contact_id, data)
    except ValidationFailed as exc:
        return _render_contact_form(contact=contact, shown=shown, definitions=definitions, party=details["party"],
                                    message=exc.message, errors=forms.flat_errors(exc.errors), status=422)
    flash("Saved.", "success")
    return redirect(url_for("contacts.detail", contact_id=contact_id))


@contacts_bp.route("/<int:contact_id>/move", methods=["GET", "POST"])
def move(contact_id: int) -> Any:
    """Move a contact to a party (found by name or id), or unassign it (no party)."""
    ctx = g.ctx
    if request.method == "POST":
        raw = forms.text(request.form, "party_id")
        party_id = int_or_none(raw)
        if party_id is None and request.form.get("unassign") != "1":
            flash(f"{raw!r} is not a party id." if raw else "Pick the party to move to.", "error")
            return redirect(url_for("contacts.move", contact_id=contact_id))
        contact = parties.move_contact(ctx, contact_id, party_id)
        flash(f"{contact.name} was moved." if party_id else f"{contact.name} is now unassigned.", "success")
        return redirect(url_for("contacts.detail", contact_id=contact_id))
    require_write()
    details = plain(parties.contact_details(ctx, contact_id))
    q = forms.text(request.args, "q")
    candidates = plain(parties.list_parties(ctx, {"q": q}, limit=20, with_count=False)).items if q else None
    return render_template("parties/contact_move.html", contact=details["contact"], party=details["party"],
                           q=q or "", candidates=candidates)


def _contact_mechanism(contact_id: int, mechanism_id: int) -> None:
    details = plain(parties.contact_details(g.ctx, contact_id))
    if mechanism_id not in {m.id for m in details["mechanisms"]}:
        raise NotFound(f"contact mechanism {mechanism_id} not found")


def _contact_attempt(action: Any, success: str, contact_id: int) -> Any:
    try:
        action()
    except (ValidationFailed, Conflict, Veto) as exc:
        flash(error_text(exc), "error")
    else:
        flash(success, "success")
    return redirect(url_for("contacts.detail", contact_id=contact_id, _anchor="mechanisms"))


@contacts_bp.post("/<int:contact_id>/mechanisms", endpoint="add_mechanism")
def add_mechanism_to_contact(contact_id: int) -> Any:
    data = forms.mechanism_input(request.form)
    return _contact_attempt(lambda: parties.add_mechanism(g.ctx, contact_id=contact_id, data=data),
                            "Added.", contact_id)


@contacts_bp.post("/<int:contact_id>/mechanisms/<int:mechanism_id>/primary", endpoint="primary_mechanism")
def primary_contact_mechanism(contact_id: int, mechanism_id: int) -> Any:
    _contact_mechanism(contact_id, mechanism_id)
    return _contact_attempt(lambda: parties.update_mechanism(g.ctx, mechanism_id, {"is_primary": True}),
                            "Made primary.", contact_id)


@contacts_bp.post("/<int:contact_id>/mechanisms/<int:mechanism_id>/delete", endpoint="remove_mechanism")
def remove_contact_mechanism(contact_id: int, mechanism_id: int) -> Any:
    _contact_mechanism(contact_id, mechanism_id)
    return _contact_attempt(lambda: parties.remove_mechanism(g.ctx, mechanism_id), "Removed.", contact_id)


@contacts_bp.post("/<int:contact_id>/archive", endpoint="archive")
def archive_contact(contact_id: int) -> Any:
    contact = parties.archive_contact(g.ctx, contact_id)
    flash(f"{contact.name} was archived.", "success")
    return redirect(url_for("contacts.detail", contact_id=contact_id))


@contacts_bp.post("/<int:contact_id>/unarchive", endpoint="unarchive")
def unarchive_contact(contact_id: int) -> Any:
    contact = parties.unarchive_contact(g.ctx, contact_id)
    flash(f"{contact.name} was restored.", "success")
    return redirect(url_for("contacts.detail", contact_id=contact_id))


__all__ = ["bp", "contacts_bp", "plain"]
