"""The quoting pages: the panels on deals, parties and quotes (rendered into the core's pages),
the line editor, the send and refuse forms, and the actions (new quote, accept, new version,
mark sent, PDF).

Views call services only. Every form works without JavaScript (``quoting.js`` adds a product
picker on the catalog's ``search.json`` and an "Add line" button); a refused form comes back
with each error beside its field and what was typed kept (422). Every POST carries the CSRF
token (Flask-WTF), GET pages need a member of the business (read-only included) and every
write is for members (the services check the role again).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.datastructures import MultiDict
from werkzeug.routing import BuildError

from crm_quoting import documents, service
from crm_quoting.line_form import (
    SPARE_ROWS,
    form_text,
    kept_rows,
    row_errors,
    rows_to_send,
    service_line,
    stored_rows,
)
from crm_quoting.models import Status
from crm_quoting.schemas import rate_text
from crmcore.errors import Conflict, CrmError, PermissionDenied, ValidationFailed
from crmcore.tenancy.models import Role

bp = Blueprint("quoting", __name__, url_prefix="/quotes", template_folder="templates", static_folder="static",
               static_url_path="/static")

ADDRESS_FIELDS = ("line1", "line2", "postal_code", "city", "region", "country")
HEADER_FIELDS = ("contact_id", "quote_date", "valid_until", "intro", "terms")


@bp.before_request
def _roles() -> None:
    ctx = g.get("ctx")
    needed = Role.READ_ONLY if request.method in ("GET", "HEAD") else Role.MEMBER
    if ctx is None or not ctx.role.allows(needed):
        role = ctx.role.value.replace("_", "-") if ctx is not None else "none"
        raise PermissionDenied(f"changing quotes is for members; you are {role}")


def _can_write() -> bool:
    return g.ctx.role.allows(Role.MEMBER)


def _render(name: str, status: int = 200, /, **context: Any) -> Any:
    return render_template(name, ctx=g.ctx, can_write=_can_write(), **context), status


def _see(url: str) -> Any:
    return redirect(url, code=303)


def _record_url(record_id: int) -> str:
    return url_for("records.detail", record_id=record_id)


def _safe_next(target: str | None) -> str | None:
    """Only same-site relative paths: never an open redirect."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _optional_url(endpoint: str, **values: Any) -> str | None:
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return None


# --------------------------------------------------------------------------------------------
# panels (rendered into the core's record and party pages)


def _static(filename: str) -> str:
    return url_for("quoting.static", filename=filename)


def deal_panel(ctx: Any, deal: Any) -> Markup:
    return Markup(render_template("quoting/_deal_panel.html", quotes=service.quotes_for_deal(ctx, deal.id),
                                  deal=deal, can_write=ctx.role.allows(Role.MEMBER), css=_static("quoting.css")))


def party_panel(ctx: Any, party: Any) -> Markup:
    return Markup(render_template("quoting/_party_panel.html", quotes=service.quotes_for_party(ctx, party.id),
                                  party=party, can_write=ctx.role.allows(Role.MEMBER) and party.archived_at is None,
                                  css=_static("quoting.css")))


def quote_panel(ctx: Any, record: Any) -> Markup:
    view = service.get_quote(ctx, record.id)
    return Markup(render_template("quoting/_quote_panel.html", view=view, actions=_actions(view),
                                  can_write=ctx.role.allows(Role.MEMBER) and record.archived_at is None,
                                  css=_static("quoting.css")))


def _actions(view: service.QuoteView) -> set[str]:
    """What may be done to the quote now (the services check again)."""
    status, has_lines = view.status, bool(view.lines)
    out = {"pdf"}
    if status == Status.DRAFT.value:
        out |= {"edit", "mark_sent"}
    if status in service.LIVE and has_lines:
        out |= {"send", "accept"}
    if status in (*service.LIVE, Status.EXPIRED.value):
        out.add("refuse")
    if status in service.REVISABLE and view.revised_by is None:
        out.add("version")
    return out


# --------------------------------------------------------------------------------------------
# creating


@bp.post("/new", endpoint="new")
def new_quote() -> Any:
    """"New quote" from a deal's panel (``deal_id``) or a party's (``party_id``)."""
    data = {key: request.form.get(key) or None for key in ("deal_id", "party_id")}
    back = _safe_next(request.form.get("next")) or url_for("pages.home")
    try:
        record = service.create_quote(g.ctx, {k: v for k, v in data.items() if v is not None})
    except (ValidationFailed, Conflict) as exc:
        flash(f"No quote was made: {exc.message}", "error")
        return _see(back)
    flash(f"Quote {record.reference or record.id} created: add its lines.", "success")
    return _see(url_for("quoting.edit", record_id=record.id))


# --------------------------------------------------------------------------------------------
# the editor


def _header_values(view: service.QuoteView) -> dict[str, Any]:
    quote = view.quote
    values = {"contact_id": form_text(quote.contact_id), "quote_date": form_text(quote.quote_date),
              "valid_until": form_text(quote.valid_until), "intro": quote.intro or "", "terms": quote.terms or ""}
    for kind in ("billing_address", "shipping_address"):
        address = getattr(quote, kind) or {}
        for name in ADDRESS_FIELDS:
            values[f"{kind}.{name}"] = address.get(name) or ""
    return values


def _editor(view: service.QuoteView, status: int = 200, *, values: dict[str, Any] | None = None,
            rows: list[dict[str, Any]] | None = None, failed: CrmError | None = None) -> Any:
    cfg = service.settings(g.ctx)
    contacts = documents.recipients(g.ctx, view)
    errors = (failed.errors if failed else {}) or {}
    general = {key: value for key, value in errors.items()
               if not key.startswith(("lines.", "billing_address.", "shipping_address.")) and key not in HEADER_FIELDS}
    rates = sorted({*cfg.tax_rates, *(ln.tax_rate for ln in view.lines)})
    return _render("quoting/editor.html", status, view=view, values=values or _header_values(view),
                   rows=rows or stored_rows(view.lines), errors=errors, general=general,
                   message=failed.message if failed else None, contacts=contacts,
                   rates=[rate_text(r) for r in rates], default_rate=rate_text(cfg.default_tax_rate),
                   search_url=_optional_url("catalog.search_json"), record_url=_record_url(view.record.id))


def _header(form: MultiDict) -> dict[str, Any]:
    header: dict[str, Any] = {name: (form.get(name) or "").strip() or None for name in HEADER_FIELDS}
    for kind in ("billing_address", "shipping_address"):
        address = {name: (form.get(f"{kind}.{name}") or "").strip() for name in ADDRESS_FIELDS}
        header[kind] = {k: v for k, v in address.items() if v} or None
    if header["quote_date"] is None:
        header.pop("quote_date")
    return header


@bp.route("/<int:record_id>/edit", methods=["GET", "POST"], endpoint="edit")
def edit(record_id: int) -> Any:
    """Header and lines of a draft in one form; "Save" stays here, "Save and close" goes to the
    quote's page."""
    view = service.get_quote(g.ctx, record_id)
    if view.status != Status.DRAFT.value:
        flash(f"This quote is {view.status}: only a draft can be changed. Make a new version to change it.", "error")
        return _see(_record_url(record_id))
    if request.method == "GET":
        return _editor(view)
    form = request.form
    rows, sent, errors = rows_to_send(g.ctx, form, view.record.party_id)
    try:
        if errors:
            raise ValidationFailed("the quote was not saved: check " + ", ".join(sorted(errors)), errors)
        service.save_draft(g.ctx, record_id, _header(form), [service_line(row) for row in sent])
    except (ValidationFailed, Conflict) as exc:
        failed = ValidationFailed("The quote was not saved: see the marked fields.",
                                  row_errors(exc.errors, sent)) if exc.errors else exc
        values = {name: form.get(name, "") for name in form if not name.startswith("lines.")}
        return _editor(service.get_quote(g.ctx, record_id), exc.status, values=values,
                       rows=kept_rows(rows, SPARE_ROWS), failed=failed)
    flash("Quote saved.", "success")
    if form.get("then") == "close":
        return _see(_record_url(record_id))
    return _see(url_for("quoting.edit", record_id=record_id))


# --------------------------------------------------------------------------------------------
# actions


def _action(record_id: int, fn: Any, done: str) -> Any:
    try:
        fn()
    except (ValidationFailed, Conflict) as exc:
        flash(exc.message, "error")
    else:
        flash(done, "success")
    return _see(_record_url(record_id))


@bp.post("/<int:record_id>/accept", endpoint="accept")
def accept(record_id: int) -> Any:
    try:
        result = service.accept_quote(g.ctx, record_id)
    except (ValidationFailed, Conflict) as exc:
        flash(exc.message, "error")
        return _see(_record_url(record_id))
    done = ["Quote accepted."]
    if result.party_became_customer:
        done.append("The party is now a customer.")
    if result.deal_moved_to:
        done.append(f"The deal is in {result.deal_moved_to}.")
    if result.invoice_id:
        done.append("An invoice draft was made.")
    if result.invoiced_by_order:
        done.append("The sales order made from it is what gets invoiced.")
    flash(" ".join(done), "success")
    for problem in result.problems or []:
        flash(f"Accepted, but {problem}.", "error")
    return _see(_record_url(record_id))


@bp.post("/<int:record_id>/mark-sent", endpoint="mark_sent")
def mark_sent(record_id: int) -> Any:
    return _action(record_id, lambda: service.mark_sent(g.ctx, record_id), "Quote marked as sent.")


@bp.post("/<int:record_id>/version", endpoint="version")
def version(record_id: int) -> Any:
    try:
        record = service.new_version(g.ctx, record_id)
    except (ValidationFailed, Conflict) as exc:
        flash(exc.message, "error")
        return _see(_record_url(record_id))
    flash(f"New version {record.reference or record.id}: the old one is superseded.", "success")
    return _see(url_for("quoting.edit", record_id=record.id))


@bp.route("/<int:record_id>/refuse", methods=["GET", "POST"], endpoint="refuse")
def refuse(record_id: int) -> Any:
    view = service.get_quote(g.ctx, record_id)
    if request.method == "GET":
        return _render("quoting/refuse.html", view=view, values={"reason": ""}, errors={}, message=None)
    reason = request.form.get("reason", "")
    try:
        service.refuse_quote(g.ctx, record_id, reason)
    except (ValidationFailed, Conflict) as exc:
        return _render("quoting/refuse.html", exc.status, view=service.get_quote(g.ctx, record_id),
                       values={"reason": reason}, errors=exc.errors or {}, message=exc.message)
    flash("Quote refused.", "success")
    return _see(_record_url(record_id))


@bp.route("/<int:record_id>/send", methods=["GET", "POST"], endpoint="send")
def send(record_id: int) -> Any:
    """Email the quote with its PDF to a contact of the party or a typed address."""
    view = service.get_quote(g.ctx, record_id)
    contacts = documents.recipients(g.ctx, view)
    chosen = view.quote.contact_id if view.quote.contact_id in contacts else None
    if request.method == "GET":
        values = {"contact_id": form_text(chosen), "to": "", "subject": documents.default_subject(g.ctx, view),
                  "message": documents.default_message(g.ctx, view, contacts[chosen]["name"] if chosen else None)}
        return _render("quoting/send.html", view=view, contacts=contacts, values=values, errors={}, message=None)
    values = {name: request.form.get(name, "") for name in ("contact_id", "to", "subject", "message")}
    try:
        service.send_quote(g.ctx, record_id, {k: v for k, v in values.items() if v.strip()})
    except (ValidationFailed, Conflict) as exc:
        return _render("quoting/send.html", exc.status, view=service.get_quote(g.ctx, record_id), contacts=contacts,
                       values=values, errors=exc.errors or {}, message=exc.message)
    flash("Quote sent: the email is on its way, the PDF is on the timeline.", "success")
    return _see(_record_url(record_id))


@bp.get("/<int:record_id>/quote.pdf", endpoint="pdf")
def pdf(record_id: int) -> Any:
    """The quote's PDF as it is now (a download; nothing is stored)."""
    name, data = documents.render(g.ctx, record_id)
    return Response(data, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "X-Content-Type-Options": "nosniff"})


@bp.post("/<int:record_id>/pdf", endpoint="store_pdf")
def store_pdf(record_id: int) -> Any:
    return _action(record_id, lambda: documents.generate(g.ctx, record_id), "PDF made and kept on the timeline.")


__all__ = ["bp", "deal_panel", "party_panel", "quote_panel"]
