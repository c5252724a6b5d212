"""The outbox page: the business's side-effect jobs by status, with retry and discard.

Its own blueprint under ``/settings/outbox`` (registered by the app factory), admins and owners
only, drawn in the settings layout. Errors are shown escaped and cut short; the full text (at
most 2,000 characters, secrets redacted when it was recorded) opens on demand.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, request, url_for

from crmcore.errors import PermissionDenied, ValidationFailed
from crmcore.outbox import admin
from crmcore.outbox.schemas import VIEWS
from crmcore.tenancy.models import Role
from crmcore.web.settings.common import attempt, render

bp = Blueprint("outbox_admin", __name__, url_prefix="/settings/outbox", template_folder="templates")

#: (view, tab label) in tab order
TABS = (("queued", "Queued"), ("running", "Running"), ("failed", "Failed"), ("parked", "Parked"),
        ("done", "Done (recent)"), ("discarded", "Discarded"))
#: characters of an error shown in the row; the rest opens on demand
SHORT_ERROR = 160


@bp.before_request
def _admins_only() -> None:
    ctx = g.get("ctx")
    if ctx is None or not ctx.role.allows(Role.ADMIN):
        role = ctx.role.value.replace("_", "-") if ctx is not None else "none"
        raise PermissionDenied(f"the outbox is for admins and owners; you are {role}")


def _view() -> str | None:
    """The tab asked for; None when none was (the page picks the one that needs attention)."""
    return request.values.get("view") or None


@bp.get("/")
def index() -> Any:
    return outbox_page()


def outbox_page(status: int = 200, forms: dict[str, dict[str, Any]] | None = None) -> Any:
    counts = admin.view_counts(g.ctx)
    view = _view()
    if view is None:  # open on what needs attention
        view = next((v for v in ("parked", "failed") if counts[v].value), "queued")
    try:
        page = admin.list_messages(g.ctx, view, cursor=request.args.get("cursor"),
                                   limit=request.args.get("limit"))
    except ValidationFailed as exc:
        if "view" in exc.errors:
            raise ValidationFailed("unknown outbox view", {"view": [f"choose one of {', '.join(VIEWS)}"]}) from exc
        raise
    return render("settings/outbox.html", status, view=view, tabs=TABS, counts=counts, page=page,
                  forms=forms or {}, short=SHORT_ERROR, config=g.ctx.crm.config)


def _back() -> str:
    view = request.values.get("view")
    return url_for("outbox_admin.index", view=view if view in VIEWS else None)


@bp.post("/<int:message_id>/retry")
def retry(message_id: int) -> Any:
    return attempt(lambda: admin.retry_message(g.ctx, message_id), outbox_page, f"job-{message_id}",
                   done=f"Job {message_id} queued to run again.", then=_back())


@bp.post("/<int:message_id>/discard")
def discard(message_id: int) -> Any:
    return attempt(lambda: admin.discard_message(g.ctx, message_id), outbox_page, f"job-{message_id}",
                   done=f"Job {message_id} discarded: it will not run.", then=_back())
