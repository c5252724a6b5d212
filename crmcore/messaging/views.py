"""The message pages: the log (members), templates, rules and opt-outs (admins), and the public
unsubscribe page.

Views call services only; every input goes through the services' marshmallow schemas, and a
refused form is shown again with each error beside its field (422). The log pages by keyset.
A message's HTML body is never inlined into a page: it is served as its own document under a
sandboxing Content-Security-Policy and shown in an iframe, so a template's markup cannot run
script or restyle the admin.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

from crmcore.errors import Conflict, CrmError, NotFound, PermissionDenied, ValidationFailed, Veto
from crmcore.messaging import rules as rules_service
from crmcore.messaging import service
from crmcore.messaging.models import Channel, MessageStatus
from crmcore.messaging.schemas import CHANNELS, RECIPIENT_LABELS, STATUSES
from crmcore.tenancy.models import Role

bp = Blueprint("messaging", __name__, url_prefix="/messages", template_folder="templates", static_folder="static")
public_bp = Blueprint("messaging_public", __name__, template_folder="templates")

#: the pages members may see; the rest are for admins
MEMBER_ENDPOINTS = {"messaging.log", "messaging.message", "messaging.message_html"}
#: the message HTML document: no script, no plugins, no forms, no navigation, images from anywhere
HTML_CSP = ("default-src 'none'; img-src data: https: http:; style-src 'unsafe-inline'; "
            "font-src data: https:; sandbox; frame-ancestors 'self'; form-action 'none'; base-uri 'none'")


@bp.before_request
def _roles() -> None:
    ctx = g.get("ctx")
    needed = Role.MEMBER if request.endpoint in MEMBER_ENDPOINTS else Role.ADMIN
    if ctx is None or not ctx.role.allows(needed):
        role = ctx.role.value.replace("_", "-") if ctx is not None else "none"
        what = "the message log is for members" if needed == Role.MEMBER else "messaging settings are for admins"
        raise PermissionDenied(f"{what}; you are {role}")


def _render(name: str, status: int = 200, /, **context: Any) -> Any:
    return render_template(name, ctx=g.ctx, is_admin=g.ctx.role.allows(Role.ADMIN), **context), status


def _flat(errors: dict[str, Any]) -> dict[str, list[str]]:
    from crmcore.web.settings.common import flat_errors

    return flat_errors(errors)


def _state(exc: CrmError, values: dict[str, Any]) -> dict[str, Any]:
    return {"message": exc.message, "errors": _flat(exc.errors), "values": values}


def _text(name: str) -> str:
    return request.form.get(name, "")


def _checked(name: str) -> bool:
    return "1" in request.form.getlist(name)


# --------------------------------------------------------------------------------------------
# the log


@bp.get("/", endpoint="log")
def log_page() -> Any:
    filters = {k: request.args.get(k) or None for k in ("channel", "status", "party_id", "record_id")}
    for key in ("party_id", "record_id"):
        if filters[key] is not None:
            try:
                filters[key] = int(filters[key])
            except ValueError:
                raise ValidationFailed("invalid filter", {key: ["not an id"]}) from None
    page = service.list_messages(g.ctx, filters, cursor=request.args.get("cursor") or None)
    return _render("messaging/log.html", page=page, filters=filters, channels=CHANNELS, statuses=STATUSES)


@bp.get("/<int:message_id>", endpoint="message")
def message_page(message_id: int) -> Any:
    message = service.get_message(g.ctx, message_id)
    return _render("messaging/message.html", message=message)


@bp.get("/<int:message_id>/html", endpoint="message_html")
def message_html(message_id: int) -> Any:
    message = service.get_message(g.ctx, message_id)
    if not message.body_html:
        abort(404)
    return sandboxed_html(message.body_html)


def sandboxed_html(html: str) -> Response:
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = HTML_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


# --------------------------------------------------------------------------------------------
# templates


TEMPLATE_FIELDS = ("key", "name", "subject", "body_text", "body_html", "sms_text")


def _template_form() -> dict[str, Any]:
    data: dict[str, Any] = {name: _text(name) for name in TEMPLATE_FIELDS}
    data["active"] = _checked("active")
    return data


@bp.get("/templates", endpoint="templates")
def templates_page() -> Any:
    return _render("messaging/templates.html", templates=service.list_templates(g.ctx),
                   events=rules_service.events(g.ctx))


@bp.post("/templates/defaults", endpoint="seed_templates")
def seed_templates() -> Any:
    created = service.seed_default_templates(g.ctx)
    flash(f"{len(created)} default template(s) added." if created else "The default templates exist already.",
          "success")
    return redirect(url_for("messaging.templates"))


def _edit_page(template: Any, status: int = 200, state: dict[str, Any] | None = None,
               preview: Any = None) -> Any:
    from crmcore.messaging.sms import sms_parts

    values = state["values"] if state else (
        {name: getattr(template, name) or "" for name in TEMPLATE_FIELDS} | {"active": template.active}
        if template is not None else {"active": True, "key": request.args.get("key", "")})
    sms = sms_parts(preview.sms) if preview is not None and preview.sms else None
    return _render("messaging/template_form.html", status, template=template, values=values, state=state,
                   preview=preview, sms=sms, events=rules_service.events(g.ctx))


@bp.route("/templates/new", methods=["GET", "POST"], endpoint="new_template")
def new_template() -> Any:
    if request.method == "GET":
        return _edit_page(None)
    return _save_template(None)


@bp.route("/templates/<int:template_id>", methods=["GET", "POST"], endpoint="edit_template")
def edit_template(template_id: int) -> Any:
    template = service.get_template(g.ctx, template_id)
    if request.method == "GET":
        return _edit_page(template)
    return _save_template(template)


def _save_template(template: Any) -> Any:
    """"Preview" renders what was typed against the sample (nothing saved); "Save" stores it."""
    data = _template_form()
    try:
        if request.form.get("action") == "preview":
            preview = service.preview_template(g.ctx, data)
            return _edit_page(template, 200, {"values": data, "errors": {}, "message": None}, preview)
        if template is None:
            saved = service.create_template(g.ctx, data)
        else:
            saved = service.update_template(g.ctx, template.id, data)
    except ValidationFailed as exc:
        return _edit_page(template, 422, _state(exc, data))
    flash(f"Template {saved.key} saved.", "success")
    return redirect(url_for("messaging.edit_template", template_id=saved.id))


@bp.post("/templates/<int:template_id>/delete", endpoint="delete_template")
def delete_template(template_id: int) -> Any:
    try:
        service.delete_template(g.ctx, template_id)
    except Conflict as exc:
        flash(exc.message, "error")
        return redirect(url_for("messaging.edit_template", template_id=template_id))
    flash("Template deleted.", "success")
    return redirect(url_for("messaging.templates"))


# --------------------------------------------------------------------------------------------
# rules


def _rule_form() -> dict[str, Any]:
    template_id: Any = _text("template_id").strip() or None
    if template_id is not None and template_id.isdecimal() and len(template_id) <= 18:
        template_id = int(template_id)  # anything else stays text: the schema names the problem
    return {"event": _text("event"), "channel": _text("channel"), "recipient": _text("recipient"),
            "template_id": template_id, "active": _checked("active")}


def rules_page(status: int = 200, forms: dict[str, dict[str, Any]] | None = None) -> Any:
    return _render("messaging/rules.html", status, rules=rules_service.list_rules(g.ctx),
                   events=rules_service.rule_events(g.ctx), templates=service.list_templates(g.ctx),
                   recipients=RECIPIENT_LABELS, channels=CHANNELS, forms=forms or {},
                   running=g.ctx.is_enabled(rules_service.NAME))


@bp.get("/rules", endpoint="rules")
def rules_index() -> Any:
    return rules_page()


@bp.post("/rules", endpoint="create_rule")
def create_rule() -> Any:
    data = _rule_form()
    try:
        rules_service.create_rule(g.ctx, data)
    except (ValidationFailed, Conflict, Veto) as exc:
        return rules_page(exc.status, {"new-rule": _state(exc, data)})
    flash("Rule added.", "success")
    return redirect(url_for("messaging.rules"))


@bp.post("/rules/<int:rule_id>", endpoint="update_rule")
def update_rule(rule_id: int) -> Any:
    data = _rule_form()
    try:
        rules_service.update_rule(g.ctx, rule_id, data)
    except (ValidationFailed, Conflict, Veto) as exc:
        return rules_page(exc.status, {f"rule-{rule_id}": _state(exc, data)})
    flash("Rule saved.", "success")
    return redirect(url_for("messaging.rules") + f"#rule-{rule_id}")


@bp.post("/rules/<int:rule_id>/delete", endpoint="delete_rule")
def delete_rule(rule_id: int) -> Any:
    rules_service.delete_rule(g.ctx, rule_id)
    flash("Rule deleted.", "success")
    return redirect(url_for("messaging.rules"))


# --------------------------------------------------------------------------------------------
# opt-outs


def opt_outs_page(status: int = 200, state: dict[str, Any] | None = None) -> Any:
    channel = request.args.get("channel") or None
    page = service.list_opt_outs(g.ctx, channel=channel, cursor=request.args.get("cursor") or None)
    return _render("messaging/opt_outs.html", status, page=page, channel=channel, channels=CHANNELS,
                   state=state)


@bp.get("/opt-outs", endpoint="opt_outs")
def opt_outs_index() -> Any:
    return opt_outs_page()


@bp.post("/opt-outs", endpoint="add_opt_out")
def add_opt_out() -> Any:
    data = {"channel": _text("channel"), "address": _text("address"), "reason": _text("reason")}
    try:
        service.opt_out(g.ctx, data["channel"], data["address"], reason=data["reason"] or None)
    except (ValidationFailed, Conflict) as exc:
        return opt_outs_page(exc.status, _state(exc, data))
    flash(f"{data['address'].strip()} will receive no {data['channel']} any more.", "success")
    return redirect(url_for("messaging.opt_outs"))


@bp.post("/opt-outs/<int:opt_out_id>/delete", endpoint="remove_opt_out")
def remove_opt_out(opt_out_id: int) -> Any:
    service.remove_opt_out(g.ctx, opt_out_id)
    flash("Opt-out removed: messages are sent to this address again.", "success")
    return redirect(url_for("messaging.opt_outs"))


# --------------------------------------------------------------------------------------------
# the public unsubscribe page


@public_bp.route("/unsubscribe/<token>", methods=["GET", "POST"], endpoint="unsubscribe")
def unsubscribe(token: str) -> Any:
    """GET shows what the link is for and one button (a link checker or a mail scanner fetching
    the URL unsubscribes nobody); POST, from that button or a mail client's one-click
    (RFC 8058 ``List-Unsubscribe-Post``), records the opt-out. Idempotent. The signed token is
    the whole authority, so the POST needs no CSRF token: a forged POST could only unsubscribe
    the address the token names, which is what its owner asked for."""
    crm = current_app.extensions["crm"]
    if len(token) > 2000:
        abort(404)
    try:
        result = service.unsubscribe(crm, token, confirm=request.method == "POST")
    except NotFound:
        return render_template("messaging/unsubscribe.html", invalid=True, result=None, token=token), 404
    return render_template("messaging/unsubscribe.html", invalid=False, result=result, token=token,
                           channel_label="emails" if result["channel"] == Channel.EMAIL else "text messages")


def init_public(app: Flask) -> None:
    """Register the public unsubscribe page: no login, no business in the session, no CSRF."""
    from crmcore.web.app import csrf
    from crmcore.web.requestctx import PUBLIC_ENDPOINTS

    PUBLIC_ENDPOINTS.add("messaging_public.unsubscribe")
    csrf.exempt(public_bp)
    app.register_blueprint(public_bp)


__all__ = ["MessageStatus", "bp", "init_public", "public_bp"]
