"""The timeline's pages: notes, attachments and reminders posted from party and record pages,
the feed page by page, file downloads, and "My actions" (a user's due reminders).

Party and record pages render the panel with ``{% from "timeline/panel.html" import
timeline_panel %}``; the forms in it post here and come back to the page they were sent from.
A refused input shows the form again with the user's input and the reason (422); anything else
goes through the app's error pages.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BuildError

from crmcore.context import Context
from crmcore.db import utcnow
from crmcore.errors import PermissionDenied, ValidationFailed
from crmcore.tenancy.models import Role
from crmcore.timeline import service as timeline
from crmcore.timeline import storage

bp = Blueprint("timeline", __name__, template_folder="templates")

#: what a downloaded file may do in the browser: nothing (no script, no plugin, no same origin)
DOWNLOAD_CSP = "sandbox; default-src 'none'; img-src 'self'"

_TRUE = {"1", "on", "true", "yes"}


# --------------------------------------------------------------------------------------------
# request helpers


def _ctx() -> Context:
    return g.ctx


def _writer() -> Context:
    """The request's context, refusing read-only users before any input is looked at."""
    ctx = _ctx()
    ctx.require(Role.MEMBER)
    return ctx


def _is_fetch() -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


class _Form:
    """Form data -> service arguments; conversion errors collect per field like the service's."""

    def __init__(self, source: Any = None) -> None:
        self.raw = request.form if source is None else source
        self.errors: dict[str, list[str]] = {}

    def text(self, name: str, required: str | None = None) -> str | None:
        value = self.raw.get(name)
        if value is None or not value.strip():
            if required:
                self.errors[name] = [required]
            return None
        return value

    def id(self, name: str) -> int | None:
        value = (self.raw.get(name) or "").strip()
        if not value:
            return None
        if value.isascii() and value.isdigit() and 0 < int(value) < 2**63:
            return int(value)
        self.errors[name] = ["not a valid id"]
        return None

    def checked(self, name: str) -> bool:
        return any(v.strip().lower() in _TRUE for v in self.raw.getlist(name))

    def local_datetime(self, name: str, required: str) -> dt.datetime | None:
        """A ``datetime-local`` value, read in the business's time zone, as aware UTC."""
        value = (self.raw.get(name) or "").strip()
        if not value:
            self.errors[name] = [required]
            return None
        try:
            when = dt.datetime.fromisoformat(value)
            if when.tzinfo is None:
                when = when.replace(tzinfo=business_zone())
            return when.astimezone(dt.UTC)
        except (ValueError, OverflowError):
            self.errors[name] = ["enter a date and time like 2024-05-31 14:30"]
            return None

    def check(self, what: str) -> None:
        if self.errors:
            raise ValidationFailed(f"invalid {what}: check {', '.join(sorted(self.errors))}", self.errors)


def business_zone() -> ZoneInfo:
    try:
        return ZoneInfo(_ctx().business.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _same_site(url: str | None) -> str | None:
    """The path of ``url`` when it points into this site (never an open redirect)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("", "http", "https") or (parts.netloc and parts.netloc != request.host):
        return None
    path = parts.path or "/"
    if not path.startswith("/") or path.startswith("//"):
        return None
    return path + (f"?{parts.query}" if parts.query else "")


def subject_url(party_id: int | None = None, record_id: int | None = None) -> str | None:
    """The page of a record or a party, when the app has those pages."""
    views = current_app.view_functions
    try:
        if record_id is not None and "records.detail" in views:
            return url_for("records.detail", record_id=record_id)
        if party_id is not None and "parties.sheet" in views:
            return url_for("parties.sheet", party_id=party_id)
    except BuildError:
        return None
    return None


def _back(party_id: int | None = None, record_id: int | None = None, default: str | None = None) -> str:
    """Where a form goes after it is done: its party or record page, else the page it came from."""
    return (subject_url(party_id, record_id) or _same_site(request.referrer) or default
            or url_for("pages.home"))


def _back_from_form(default: str | None = None) -> str:
    form = _Form()
    return _back(form.id("party_id"), form.id("record_id"), default)


def _assignable(ctx: Context) -> list[tuple[int, str]]:
    """Members who can act on reminders, as (id, label) pairs."""
    from crmcore.tenancy.service import list_members

    return [(user.id, user.name or user.email) for user, role in list_members(ctx)
            if role != Role.READ_ONLY and user.is_active]


def _form_page(kind: str, exc: ValidationFailed, *, note_id: int | None = None) -> Any:
    """The refused form again, with the user's input and the reasons."""
    form = request.form
    members = _assignable(_ctx()) if kind == "reminder" else []
    # a checkbox posts a hidden "" before its "1": the last value given wins
    values = {key: next((v for v in reversed(form.getlist(key)) if v), "") for key in form}
    return render_template("timeline/form.html", kind=kind, message=exc.message, errors=exc.errors,
                           values=values, members=members, note_id=note_id, back=_back_from_form(),
                           party_id=values.get("party_id") or None,
                           record_id=values.get("record_id") or None), 422


# --------------------------------------------------------------------------------------------
# template helpers (globals, so imported macros can use them)


@bp.app_template_global("timeline_link")
def _timeline_link(party_id: int | None = None, record_id: int | None = None) -> str | None:
    return subject_url(party_id, record_id)


@bp.app_template_global("timeline_user")
def _timeline_user(user: Any) -> str:
    if user is None:
        return "System"
    return user.name or user.email.split("@", 1)[0]


@bp.app_template_global("timeline_size")
def human_size(size: int | None) -> str:
    if size is None:
        return ""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


@bp.app_template_global("timeline_members")
def _timeline_members(members: Any) -> list[tuple[int, str]]:
    """``members`` as (id, label) pairs, whether given as pairs, (user, role) tuples or users."""
    out: list[tuple[int, str]] = []
    for member in members or []:
        if isinstance(member, tuple | list) and member and isinstance(member[0], int):
            out.append((member[0], str(member[1]) if len(member) > 1 else str(member[0])))
            continue
        user = member[0] if isinstance(member, tuple | list) else member
        role = member[1] if isinstance(member, tuple | list) and len(member) > 1 else None
        if role == Role.READ_ONLY or not getattr(user, "is_active", True):
            continue
        out.append((user.id, user.name or user.email))
    return out


@bp.app_template_global("timeline_now")
def _timeline_now() -> dt.datetime:
    return utcnow()


# --------------------------------------------------------------------------------------------
# notes


@bp.post("/notes")
def add_note() -> Any:
    ctx = _writer()
    form = _Form()
    party_id, record_id = form.id("party_id"), form.id("record_id")
    body = form.text("body", required="write the note")
    try:
        form.check("note")
        timeline.add_note(ctx, body=body or "", party_id=party_id, record_id=record_id,
                          pinned=form.checked("pinned"))
    except ValidationFailed as exc:
        return _form_page("note", exc)
    flash("Note added.", "success")
    return redirect(_back(party_id, record_id))


@bp.post("/notes/<int:note_id>/edit")
def edit_note(note_id: int) -> Any:
    ctx = _writer()
    form = _Form()
    body = form.text("body", required="write the note")
    pinned = form.checked("pinned") if "pinned" in request.form else None
    try:
        form.check("note")
        timeline.update_note(ctx, note_id, body=body, pinned=pinned)
    except ValidationFailed as exc:
        return _form_page("edit_note", exc, note_id=note_id)
    flash("Note saved.", "success")
    return redirect(_back_from_form())


@bp.post("/notes/<int:note_id>/delete")
def delete_note(note_id: int) -> Any:
    timeline.delete_note(_writer(), note_id)
    flash("Note deleted.", "success")
    return redirect(_back_from_form())


# --------------------------------------------------------------------------------------------
# attachments


@bp.post("/attachments")
def upload() -> Any:
    ctx = _writer()
    form = _Form()
    party_id, record_id = form.id("party_id"), form.id("record_id")
    file = request.files.get("file", FileStorage())
    if not file.filename:
        form.errors["file"] = ["choose a file to upload"]
    try:
        form.check("attachment")
        attachment = timeline.add_attachment(ctx, filename=file.filename or "", content_type=file.mimetype or None,
                                             stream=file.stream, party_id=party_id, record_id=record_id)
    except ValidationFailed as exc:
        return _form_page("upload", exc)
    flash(f"{attachment.filename} attached.", "success")
    return redirect(_back(party_id, record_id))


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> Any:
    """A request past MAX_CONTENT_LENGTH never reaches the view: say why, in plain words."""
    from crmcore.web.errors import problem, wants_json

    limit = human_size(current_app.extensions["crm"].config.attachments_max_bytes)
    message = f"The upload is too large: a file may be at most {limit}. Nothing was saved."
    if wants_json():
        return problem(413, message, code="too_large")
    return render_template("error.html", status=413, message=message, errors={}), 413


@bp.get("/attachments/<int:attachment_id>")
def download(attachment_id: int) -> Any:
    """The file as a download with its stored type; it can never act as a page of this site."""
    attachment, path = timeline.open_attachment(_ctx(), attachment_id)
    response = send_file(path, mimetype=attachment.content_type, conditional=True, etag=attachment.sha256,
                         max_age=0)
    response.headers["Content-Disposition"] = storage.content_disposition(attachment)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.post("/attachments/<int:attachment_id>/delete")
def delete_attachment(attachment_id: int) -> Any:
    timeline.delete_attachment(_writer(), attachment_id)
    flash("Attachment deleted.", "success")
    return redirect(_back_from_form())


# --------------------------------------------------------------------------------------------
# reminders


@bp.post("/reminders")
def add_reminder() -> Any:
    ctx = _writer()
    form = _Form()
    party_id, record_id = form.id("party_id"), form.id("record_id")
    values: dict[str, Any] = {
        "title": form.text("title", required="give the reminder a title"),
        "due_at": form.local_datetime("due_at", required="say when it is due"),
        "assigned_to_id": form.id("assigned_to_id"),
        "description": form.text("description"),
    }
    try:
        form.check("reminder")
        timeline.add_reminder(ctx, **values, party_id=party_id, record_id=record_id)
    except ValidationFailed as exc:
        return _form_page("reminder", exc)
    flash("Reminder added.", "success")
    return redirect(_back(party_id, record_id, url_for("timeline.my_actions")))


@bp.post("/reminders/<int:reminder_id>/complete")
def complete_reminder(reminder_id: int) -> Any:
    reminder = timeline.complete_reminder(_writer(), reminder_id)
    return _reminder_answer(reminder, f"Done: {reminder.title}")


@bp.post("/reminders/<int:reminder_id>/reopen")
def reopen_reminder(reminder_id: int) -> Any:
    reminder = timeline.reopen_reminder(_writer(), reminder_id)
    return _reminder_answer(reminder, f"Reopened: {reminder.title}")


def _reminder_answer(reminder: Any, message: str) -> Any:
    """For crm.js (``data-inline``): the reminder's row again; for a plain form: back, with a message."""
    view = "actions" if request.form.get("view") == "actions" else "feed"
    if not _is_fetch():
        flash(message, "success")
        default = url_for("timeline.my_actions") if view == "actions" else None
        if view == "actions":
            return redirect(_same_site(request.referrer) or default)
        return redirect(_back_from_form(default))
    party = record = None
    if view == "actions":
        from crmcore.parties.service import get_party
        from crmcore.records.service import get_record

        party = get_party(_ctx(), reminder.party_id) if reminder.party_id is not None else None
        record = get_record(_ctx(), reminder.record_id) if reminder.record_id is not None else None
    form = _Form()
    return render_template("timeline/reminder_fragment.html", reminder=reminder, view=view,
                           party=party, record=record, party_id=form.id("party_id"),
                           record_id=form.id("record_id"))


# --------------------------------------------------------------------------------------------
# pages


@bp.get("/timeline/feed")
def feed_page() -> Any:
    """The whole feed of a party or a record, one keyset page at a time (oldest last)."""
    ctx = _ctx()
    form = _Form(request.args)
    party_id, record_id = form.id("party_id"), form.id("record_id")
    form.check("feed")
    subject = None
    if party_id is not None and record_id is None:
        from crmcore.parties.service import get_party

        subject = get_party(ctx, party_id).name
    elif record_id is not None and party_id is None:
        from crmcore.records.service import get_record

        subject = get_record(ctx, record_id).title
    members = _assignable(ctx) if ctx.role != Role.READ_ONLY else []
    # the feed comes last: a later use case would expire its rows and rendering would reload them
    page = timeline.feed(ctx, party_id=party_id, record_id=record_id, cursor=request.args.get("cursor") or None)
    return render_template("timeline/feed.html", page=page, party_id=party_id, record_id=record_id,
                           subject=subject, members=members,
                           subject_url=subject_url(party_id, record_id))


@bp.get("/actions/mine")
def my_actions() -> Any:
    """Overdue, today's and the next days' open reminders of the user (admins: of any member)."""
    ctx = _ctx()
    form = _Form(request.args)
    user_id = form.id("user_id")
    form.check("filter")
    is_admin = ctx.role.allows(Role.ADMIN)
    if user_id is not None and user_id != ctx.user_id and not is_admin:
        raise PermissionDenied("only admins may see the actions of other users")
    members = _assignable(ctx) if is_admin else []
    actions = timeline.my_actions(ctx, user_id=user_id)
    whose = None
    if user_id is not None and user_id != ctx.user_id:
        whose = dict(members).get(user_id, f"user {user_id}")
    return render_template("timeline/my_actions.html", actions=actions, members=members,
                           user_id=user_id or ctx.user_id, whose=whose, cap=timeline.ACTIONS_CAP)
