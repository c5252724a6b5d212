"""Staff pages under ``/invoicing``: the invoice list (status and overdue filters), the line
editor of a draft, issuing (which shows the payment link once), payments, refunds, credit
notes, cancelling, and the admin's settings with the gateways' webhook addresses and events.

Views call services only; roles come from the use cases (members write, read-only users read,
admins change settings). A refused form is shown again with each error beside its field and
what was typed kept (422). Every POST carries the CSRF token (the app checks it).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for

from crm_invoicing import documents, payments, refunds, service
from crm_invoicing.models import MANUAL_METHODS, Kind
from crm_invoicing.schemas import rate_text
from crmcore.errors import Conflict, CrmError, PermissionDenied, ValidationFailed
from crmcore.money import round_money
from crmcore.tenancy.models import Role

bp = Blueprint("invoicing", __name__, url_prefix="/invoicing", template_folder="templates")

LINE_FIELDS = ("description", "quantity", "unit", "unit_price", "discount_percent", "tax_rate")
#: blank rows the editor offers below the lines
BLANK_ROWS = 1
MAX_ROWS = 500
STATUS_FILTERS = (("", "Any status"), ("draft", "Draft"), ("open", "Open (issued, unpaid)"),
                  ("active", "Issued"), ("partly_paid", "Partly paid"), ("paid", "Paid"),
                  ("credited", "Credited"), ("cancelled", "Cancelled"))


def _see(endpoint: str, **values: Any) -> Any:
    return redirect(url_for(endpoint, **values), code=303)


def _record_page(record_id: int) -> Any:
    return _see("records.detail", record_id=record_id)


def _render(name: str, status: int = 200, /, **context: Any) -> Any:
    return render_template(name, ctx=g.ctx, can_write=g.ctx.role.allows(Role.MEMBER), **context), status


# --------------------------------------------------------------------------------------------
# list


@bp.get("/", endpoint="invoices")
def invoices_page() -> Any:
    filters = {key: request.args.get(key, "") for key in ("status", "overdue", "kind", "party_id", "deal_id")}
    error = None
    try:
        page = service.list_invoices(g.ctx, filters, cursor=request.args.get("cursor") or None)
    except ValidationFailed as exc:
        page, error = None, exc
    rows = []
    if page is not None:
        names = page.extra["party_names"]
        today = service.today(g.ctx)
        for record, invoice in page.items:
            balance = invoice.total_amount - invoice.credited_amount - invoice.paid_amount
            rows.append({"id": record.id, "reference": record.reference, "title": record.title,
                         "party": names.get(record.party_id), "kind": invoice.kind, "status": invoice.status,
                         "overdue": invoice.status in service.OPEN and invoice.due_date is not None
                         and invoice.due_date < today, "issue_date": invoice.issue_date,
                         "due_date": invoice.due_date, "total": invoice.total_amount, "balance": balance,
                         "currency": invoice.currency})
    return _render("invoicing/list.html", 422 if error else 200, rows=rows, page=page, filters=filters,
                   statuses=STATUS_FILTERS, error=error)


# --------------------------------------------------------------------------------------------
# create


@bp.post("/from-deal/<int:deal_id>", endpoint="from_deal")
def from_deal(deal_id: int) -> Any:
    try:
        record = service.create_invoice_from_deal(g.ctx, deal_id)
    except ValidationFailed as exc:
        flash(f"{exc.message}: {'; '.join(m for ms in exc.errors.values() for m in ms)}", "error")
        return _record_page(deal_id)
    flash("Draft invoice created: check its lines, then issue it.", "success")
    return _see("invoicing.edit", invoice_id=record.id)


@bp.post("/for-party/<int:party_id>", endpoint="for_party")
def for_party(party_id: int) -> Any:
    try:
        record = service.create_invoice(g.ctx, {"party_id": party_id})
    except ValidationFailed as exc:
        flash(exc.message, "error")
        return _see("invoicing.invoices")
    return _see("invoicing.edit", invoice_id=record.id)


# --------------------------------------------------------------------------------------------
# the line editor


def _rows_from_form() -> list[dict[str, Any]]:
    """The editor's rows as typed: ``lines-<n>-<field>`` (with ``position`` and ``remove``)."""
    numbers = sorted({int(key.split("-")[1]) for key in request.form
                      if key.startswith("lines-") and key.count("-") >= 2 and key.split("-")[1].isdigit()})
    rows = []
    for n in numbers[:MAX_ROWS]:
        row = {f: request.form.get(f"lines-{n}-{f}", "").strip() for f in (*LINE_FIELDS, "position")}
        row["n"] = n
        row["remove"] = bool(request.form.get(f"lines-{n}-remove"))
        rows.append(row)
    return rows


def _is_blank(row: dict[str, Any]) -> bool:
    return not any(row.get(f) for f in ("description", "quantity", "unit_price", "unit", "discount_percent"))


def _position(row: dict[str, Any]) -> tuple[Decimal, int]:
    try:
        return Decimal(row["position"]), row["n"]
    except Exception:  # noqa: BLE001 - a position that is no number keeps the row where it was
        return Decimal(row["n"]), row["n"]


def _stored_rows(view: service.InvoiceView) -> list[dict[str, Any]]:
    return [{"n": i, "position": str(i + 1), "remove": False, "description": line.description,
             "quantity": _plain(line.quantity), "unit": line.unit or "", "unit_price": _plain(line.unit_price),
             "discount_percent": _plain(line.discount_percent) if line.discount_percent else "",
             "tax_rate": rate_text(line.tax_rate)} for i, line in enumerate(view.lines)]


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _editor(view: service.InvoiceView, rows: list[dict[str, Any]], values: dict[str, Any],
            errors: dict[str, list[str]] | None = None, message: str | None = None, status: int = 200) -> Any:
    cfg = service.settings(g.ctx)
    top = max([r["n"] for r in rows], default=-1)
    shown = rows + [{"n": top + 1 + i, "position": "", "remove": False, "description": "", "quantity": "",
                     "unit": "", "unit_price": "", "discount_percent": "",
                     "tax_rate": rate_text(cfg.default_tax_rate)} for i in range(BLANK_ROWS)]
    return _render("invoicing/editor.html", status, view=view, rows=shown, values=values, errors=errors or {},
                   message=message, rates=[rate_text(r) for r in cfg.tax_rates])


@bp.route("/<int:invoice_id>/edit", methods=["GET", "POST"], endpoint="edit")
def edit(invoice_id: int) -> Any:
    view = service.get_invoice(g.ctx, invoice_id)
    if view.invoice.status != "draft" or view.invoice.kind != Kind.INVOICE:
        flash(f"Invoice {view.record.reference} is issued: only a draft's lines can be changed.", "error")
        return _record_page(invoice_id)
    if request.method == "GET":
        return _editor(view, _stored_rows(view), {"currency": view.invoice.currency,
                                                   "payment_terms_days": view.invoice.payment_terms_days or "",
                                                   "customer_note": view.invoice.customer_note or ""})
    values = {key: request.form.get(key, "") for key in ("currency", "payment_terms_days", "customer_note")}
    rows = [r for r in _rows_from_form() if not r["remove"] and not _is_blank(r)]
    rows.sort(key=_position)
    for index, row in enumerate(rows):
        row["position"] = str(index + 1)
    if request.form.get("action") == "add":
        return _editor(view, rows, values)
    data: dict[str, Any] = {
        "currency": values["currency"] or view.invoice.currency,
        "payment_terms_days": values["payment_terms_days"] or None,
        "customer_note": values["customer_note"] or None,
        "lines": [{f: row[f] for f in LINE_FIELDS if row[f] != "" or f in ("description", "quantity", "unit_price")}
                  for row in rows],
    }
    try:
        service.update_draft(g.ctx, invoice_id, data)
    except (ValidationFailed, Conflict) as exc:
        errors = _row_errors(exc.errors, rows) if isinstance(exc, ValidationFailed) else {}
        return _editor(view, rows, values, errors, exc.message, exc.status)
    if request.form.get("action") == "activate":
        return activate(invoice_id)
    flash("Draft saved.", "success")
    return _see("invoicing.edit", invoice_id=invoice_id) if request.form.get("action") == "stay" \
        else _record_page(invoice_id)


def _row_errors(errors: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Service errors (``lines.<index>.<field>``) keyed by the editor's row numbers."""
    out: dict[str, list[str]] = {}
    for key, messages in errors.items():
        parts = key.split(".")
        if parts[0] == "lines" and len(parts) >= 3 and parts[1].isdigit() and int(parts[1]) < len(rows):
            key = f"lines-{rows[int(parts[1])]['n']}-{parts[2]}"
        out[key] = messages if isinstance(messages, list) else [str(messages)]
    return out


# --------------------------------------------------------------------------------------------
# actions


def _refused(invoice_id: int, exc: CrmError) -> Any:
    details = "; ".join(f"{k}: {' '.join(v) if isinstance(v, list) else v}" for k, v in exc.errors.items())
    flash(exc.message + (f" ({details})" if details else ""), "error")
    return _record_page(invoice_id)


def _act(invoice_id: int, call: Any, done: str) -> Any:
    try:
        call()
    except (ValidationFailed, Conflict) as exc:
        return _refused(invoice_id, exc)
    flash(done, "success")
    return _record_page(invoice_id)


def _link_page(record_id: int, token: str, heading: str) -> Any:
    view = service.get_invoice(g.ctx, record_id)
    return _render("invoicing/link.html", view=view, heading=heading, link=service.pay_url(g.ctx, token))


@bp.post("/<int:invoice_id>/activate", endpoint="activate")
def activate(invoice_id: int) -> Any:
    """Issue the invoice and show its payment link (once: only a hash is kept)."""
    try:
        done = service.activate_invoice(g.ctx, invoice_id)
    except (ValidationFailed, Conflict) as exc:
        return _refused(invoice_id, exc)
    return _link_page(invoice_id, done.token, f"Invoice {done.record.reference} issued")


@bp.post("/<int:invoice_id>/link", endpoint="renew_link")
def renew_link(invoice_id: int) -> Any:
    try:
        token = service.renew_payment_link(g.ctx, invoice_id)
    except Conflict as exc:
        return _refused(invoice_id, exc)
    return _link_page(invoice_id, token, "New payment link")


@bp.post("/<int:invoice_id>/cancel", endpoint="cancel")
def cancel(invoice_id: int) -> Any:
    return _act(invoice_id, lambda: service.cancel_invoice(g.ctx, invoice_id, request.form.get("reason")),
                "Invoice cancelled.")


@bp.route("/<int:invoice_id>/payment", methods=["GET", "POST"], endpoint="payment")
def payment(invoice_id: int) -> Any:
    view = service.get_invoice(g.ctx, invoice_id)
    values = {"amount": str(round_money(view.balance, view.invoice.currency)) if view.balance > 0 else "",
              "method": "bank_transfer", "received_on": service.today(g.ctx).isoformat(), "reference": "",
              "note": "", "overpayment": ""}
    if request.method == "GET":
        return _render("invoicing/payment.html", view=view, values=values, methods=MANUAL_METHODS, state=None)
    values = {key: request.form.get(key, "") for key in values}
    data = {"amount": values["amount"], "method": values["method"], "received_on": values["received_on"] or None,
            "reference": values["reference"] or None, "note": values["note"] or None,
            "overpayment": bool(values["overpayment"])}
    try:
        service.record_payment(g.ctx, invoice_id, data)
    except (ValidationFailed, Conflict) as exc:
        return _render("invoicing/payment.html", exc.status, view=view, values=values, methods=MANUAL_METHODS,
                       state={"message": exc.message, "errors": exc.errors})
    flash("Payment recorded.", "success")
    return _record_page(invoice_id)


def _refund_page(payment_id: int, status: int = 200, **forms: Any) -> Any:
    """The refund page: through the payment's gateway when it can, else (or also) by hand."""
    opts = refunds.options(g.ctx, payment_id)
    view = service.get_invoice(g.ctx, opts.record.id)
    page = {"values": {"amount": "", "received_on": service.today(g.ctx).isoformat(), "note": ""}, "state": None,
            "gateway_values": {"amount": "", "reason": ""}, "gateway_state": None, **forms}
    retryable = {r.id for r in opts.requests if refunds.retry_allowed(r)}
    return _render("invoicing/refund.html", status, view=view, opts=opts, retryable=retryable, **page)


@bp.route("/payments/<int:payment_id>/refund", methods=["GET", "POST"], endpoint="refund")
def refund(payment_id: int) -> Any:
    if request.method == "GET":
        return _refund_page(payment_id)
    if request.form.get("mode") == "gateway":
        return _gateway_refund(payment_id)
    values = {key: request.form.get(key, "") for key in ("amount", "received_on", "note")}
    try:
        service.record_refund(g.ctx, payment_id, {"amount": values["amount"], "note": values["note"] or None,
                                                  "received_on": values["received_on"] or None})
    except (ValidationFailed, Conflict) as exc:
        return _refund_page(payment_id, exc.status, values=values, state={"message": exc.message, "errors": exc.errors})
    flash("Refund recorded.", "success")
    return _record_page(_record_of_payment(payment_id))


def _record_of_payment(payment_id: int) -> int:
    from crm_invoicing.models import Invoice, Payment
    from crmcore.context import get_or_404

    paid = get_or_404(g.ctx, Payment, payment_id, "payment")
    return get_or_404(g.ctx, Invoice, paid.invoice_id, "invoice").record_id


def _gateway_refund(payment_id: int) -> Any:
    """Ask the payment's gateway to give money back: the request (and its idempotency key) is
    committed before the call; a refusal or failure changes nothing and is shown here."""
    values = {key: request.form.get(key, "") for key in ("amount", "reason")}
    try:
        call = refunds.start_refund(g.ctx, payment_id, values)
    except (ValidationFailed, Conflict) as exc:
        return _refund_page(payment_id, exc.status, gateway_values=values,
                            gateway_state={"message": exc.message, "errors": exc.errors})
    return _refund_outcome(payment_id, refunds.run(g.ctx, call), values)


def _refund_outcome(payment_id: int, done: Any, values: dict[str, str] | None = None) -> Any:
    """Back to the invoice when the gateway refunded; the refund page with the gateway's answer
    (502: the gateway failed us) when it did not."""
    from crmcore.payments.gateways import get_gateway

    enabled = get_gateway(g.ctx, done.gateway)
    name = enabled.gateway.title if enabled is not None else done.gateway
    if done.status == "failed":
        message = f"{name} did not refund {service.money_text(done.amount, done.currency)}: {done.error}"
        if done.retryable:
            message += " It may have reached the provider: try it again below (it is refunded once)."
        return _refund_page(payment_id, 502, gateway_values=values or {"amount": "", "reason": ""},
                            gateway_state={"message": message, "errors": {}})
    flash(f"{service.money_text(done.amount, done.currency)} refunded through {name}"
          + (" (pending at the provider)." if done.status == "pending" else "."), "success")
    return _record_page(_record_of_payment(payment_id))


@bp.post("/refunds/<int:request_id>/retry", endpoint="refund_retry")
def refund_retry(request_id: int) -> Any:
    payment_id = _payment_of_request(request_id)
    try:
        call = refunds.retry_refund(g.ctx, request_id)
    except (ValidationFailed, Conflict) as exc:
        return _refund_page(payment_id, exc.status, gateway_state={"message": exc.message, "errors": {}})
    return _refund_outcome(payment_id, refunds.run(g.ctx, call))


@bp.post("/refunds/<int:request_id>/dismiss", endpoint="refund_dismiss")
def refund_dismiss(request_id: int) -> Any:
    payment_id = _payment_of_request(request_id)
    try:
        refunds.dismiss_refund(g.ctx, request_id)
    except Conflict as exc:
        return _refund_page(payment_id, exc.status, gateway_state={"message": exc.message, "errors": {}})
    flash("Refund dismissed.", "success")
    return _see("invoicing.refund", payment_id=payment_id)


def _payment_of_request(request_id: int) -> int:
    from crm_invoicing.models import RefundRequest
    from crmcore.context import get_or_404

    return get_or_404(g.ctx, RefundRequest, request_id, "refund").payment_id


@bp.route("/<int:invoice_id>/credit-note", methods=["GET", "POST"], endpoint="credit_note")
def credit_note(invoice_id: int) -> Any:
    view = service.get_invoice(g.ctx, invoice_id)
    left = {line.id: view.credit_left(line) for line in view.lines}
    values = {f"qty-{line.id}": _plain(left[line.id]) if left[line.id] > 0 else "" for line in view.lines}
    values["reason"] = ""
    if request.method == "GET":
        return _render("invoicing/credit_note.html", view=view, values=values, left=left, state=None)
    values = {key: request.form.get(key, "") for key in values}
    chosen = [(line, values[f"qty-{line.id}"].strip()) for line in view.lines]
    data = {"lines": [{"line_id": line.id, "quantity": qty} for line, qty in chosen if qty not in ("", "0")],
            "reason": values["reason"] or None}
    if not data["lines"]:
        data["lines"] = []
    try:
        note = service.create_credit_note(g.ctx, invoice_id, data)
    except (ValidationFailed, Conflict) as exc:
        errors: dict[str, Any] = {}
        sent = [line for line, qty in chosen if qty not in ("", "0")]
        for key, messages in (exc.errors if isinstance(exc, ValidationFailed) else {}).items():
            parts = key.split(".")
            if parts[0] == "lines" and len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) < len(sent):
                key = f"qty-{sent[int(parts[1])].id}"
            errors[key] = messages
        return _render("invoicing/credit_note.html", exc.status, view=view, values=values, left=left,
                       state={"message": exc.message, "errors": errors})
    flash(f"Credit note {note.reference} issued.", "success")
    return _record_page(note.id)


@bp.get("/<int:invoice_id>/document.pdf", endpoint="pdf")
def pdf(invoice_id: int) -> Any:
    """The PDF as the document is now (a download; nothing is stored; a draft is watermarked)."""
    name, data = documents.render(g.ctx, invoice_id)
    return Response(data, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "X-Content-Type-Options": "nosniff"})


@bp.post("/<int:invoice_id>/pdf", endpoint="store_pdf")
def store_pdf(invoice_id: int) -> Any:
    return _act(invoice_id, lambda: documents.generate(g.ctx, invoice_id), "PDF made and kept on the timeline.")


@bp.route("/<int:invoice_id>/send", methods=["GET", "POST"], endpoint="send")
def send(invoice_id: int) -> Any:
    """Email the invoice or credit note with its PDF to a contact of the party or a typed address."""
    view = service.get_invoice(g.ctx, invoice_id)
    contacts = documents.recipients(g.ctx, view)
    page = {"view": view, "contacts": contacts, "offers_link": documents.offers_link(view),
            "filename": documents.filename(view), "title": "Credit note" if view.invoice.kind == Kind.CREDIT_NOTE
            else "Invoice"}
    if request.method == "GET":
        if not g.ctx.role.allows(Role.MEMBER):
            raise PermissionDenied("sending invoices is for members")
        try:
            documents.check_sendable(view)
        except Conflict as exc:
            return _refused(invoice_id, exc)
        chosen = view.record.contact_id if view.record.contact_id in contacts else None
        values = {"contact_id": str(chosen or ""), "to": "", "subject": documents.default_subject(g.ctx, view),
                  "message": documents.default_message(g.ctx, view, contacts[chosen]["name"] if chosen else None),
                  "include_link": True}
        return _render("invoicing/send.html", **page, values=values, errors={}, message=None)
    values = {name: request.form.get(name, "") for name in ("contact_id", "to", "subject", "message")}
    data: dict[str, Any] = {k: v for k, v in values.items() if v.strip()}
    data["include_link"] = "1" in request.form.getlist("include_link")
    try:
        documents.send(g.ctx, invoice_id, data)
    except ValidationFailed as exc:
        return _render("invoicing/send.html", exc.status, **page, values={**values, **data},
                       errors=exc.errors or {}, message=exc.message)
    except Conflict as exc:
        return _refused(invoice_id, exc)
    flash("Sent: the email is on its way, the PDF is on the timeline.", "success")
    return _record_page(invoice_id)


# --------------------------------------------------------------------------------------------
# settings (admins)


@bp.route("/settings", methods=["GET", "POST"], endpoint="settings")
def settings_page() -> Any:
    if not g.ctx.role.allows(Role.ADMIN):
        raise PermissionDenied("the invoicing settings are for admins")
    cfg = service.settings(g.ctx)
    values = {"payment_terms_days": str(cfg.payment_terms_days),
              "tax_rates": ", ".join(rate_text(r) for r in cfg.tax_rates),
              "default_tax_rate": rate_text(cfg.default_tax_rate),
              "paid_stage_id": str(cfg.paid_stage_id or "")}
    state = None
    status = 200
    if request.method == "POST":
        values = {key: request.form.get(key, "") for key in values}
        data = {"payment_terms_days": values["payment_terms_days"],
                "tax_rates": [r.strip() for r in values["tax_rates"].split(",") if r.strip()],
                "default_tax_rate": values["default_tax_rate"], "paid_stage_id": values["paid_stage_id"] or None}
        try:
            service.save_settings(g.ctx, data)
        except CrmError as exc:
            errors = {key.split(".")[0]: messages for key, messages in exc.errors.items()}
            state, status = {"message": exc.message, "errors": errors}, exc.status
        else:
            flash("Invoicing settings saved.", "success")
            return _see("invoicing.settings")
    stages = [(s["id"], f"{s['pipeline']}: {s['name']}" + (" (won)" if s["kind"] == "won" else ""))
              for s in service.deal_stages(g.ctx)]
    from crmcore.payments.gateways import enabled_gateways
    from crmcore.web.public import public_url

    hooks = [(gw.gateway.title, public_url(url_for("invoicing_pay.webhook", gateway=name,
                                                   business=g.ctx.business.slug)))
             for name, gw in enabled_gateways(g.ctx).items() if not gw.gateway.offline]
    events = payments.recent_events(g.ctx)
    return _render("invoicing/settings.html", status, values=values, state=state, stages=stages, hooks=hooks,
                   events=events)
