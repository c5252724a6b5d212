"""The mass-mail pages: campaigns (members read, admins write), a campaign with start and
cancel, its recipients with their message status.

Views call services only; the form goes through the services' marshmallow schemas and a
refused form is shown again with each error beside its field (422). Lists page by keyset.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from crm_mass_mail import service
from crm_mass_mail.models import CampaignStatus
from crmcore.errors import Conflict, CrmError, PermissionDenied, ValidationFailed
from crmcore.tenancy.models import Role

bp = Blueprint("mass_mail", __name__, url_prefix="/mass-mail", template_folder="templates")

#: pages members may see; every other page (and every POST) is for admins
MEMBER_ENDPOINTS = {"mass_mail.campaigns", "mass_mail.campaign", "mass_mail.recipients"}
#: the audience fields the form offers; any other filter key goes in the JSON box
SIMPLE_FILTERS = ("q", "kind", "tag", "is_customer", "is_prospect", "is_supplier")
KINDS = (("organisation", "Organisations"), ("person", "People"))
YES_NO = (("true", "yes"), ("false", "no"))


@bp.before_request
def _roles() -> None:
    ctx = g.get("ctx")
    needed = Role.MEMBER if request.endpoint in MEMBER_ENDPOINTS and request.method == "GET" else Role.ADMIN
    if ctx is None or not ctx.role.allows(needed):
        role = ctx.role.value.replace("_", "-") if ctx is not None else "none"
        what = "campaigns are for members" if needed == Role.MEMBER else "writing campaigns is for admins"
        raise PermissionDenied(f"{what}; you are {role}")


def _render(name: str, status: int = 200, /, **context: Any) -> Any:
    return render_template(name, ctx=g.ctx, is_admin=g.ctx.role.allows(Role.ADMIN), **context), status


def _flat(errors: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in (errors or {}).items():
        out[key] = [service.error_text(value)]
    return out


# --------------------------------------------------------------------------------------------
# the form


def _form_values() -> dict[str, Any]:
    return {name: request.form.get(name, "") for name in ("name", "template_key", "throttle", "audience",
                                                          *[f"f_{k}" for k in SIMPLE_FILTERS])}


def _form_data(values: dict[str, Any]) -> dict[str, Any]:
    """The campaign as the service takes it; the audience is the simple fields over the JSON."""
    raw = values["audience"].strip()
    try:
        audience = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise ValidationFailed("the audience filter is not JSON", {"audience": [f"not JSON: {exc}"]}) from None
    if not isinstance(audience, dict):
        raise ValidationFailed("the audience filter is not JSON", {"audience": ["give a JSON object"]})
    for key in SIMPLE_FILTERS:
        value = values[f"f_{key}"].strip()
        if not value:
            continue
        if key == "tag":
            tags = [t.strip() for t in value.split(",") if t.strip()]
            audience[key] = tags[0] if len(tags) == 1 else tags
        elif key.startswith("is_"):
            audience[key] = value == "true"
        else:
            audience[key] = value
    return {"name": values["name"], "template_key": values["template_key"], "throttle": values["throttle"] or None,
            "audience": audience}


def _values_of(campaign: Any) -> dict[str, Any]:
    audience = dict(campaign.audience or {})
    values: dict[str, Any] = {"name": campaign.name, "template_key": campaign.template_key,
                              "throttle": campaign.throttle}
    for key in SIMPLE_FILTERS:
        value = audience.pop(key, None)
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list):
            value = ", ".join(value)
        values[f"f_{key}"] = value or ""
    values["audience"] = json.dumps(audience, indent=1, ensure_ascii=False) if audience else ""
    return values


def _form_page(campaign: Any, status: int = 200, state: dict[str, Any] | None = None) -> Any:
    from crmcore.messaging.service import list_templates

    values = state["values"] if state else (_values_of(campaign) if campaign else {"throttle": 60})
    templates = [(t.key, f"{t.key} — {t.name}") for t in list_templates(g.ctx) if t.active]
    return _render("mass_mail/form.html", status, campaign=campaign, values=values, state=state,
                   templates=templates, kinds=KINDS, yes_no=YES_NO)


def _save(campaign: Any) -> Any:
    values = _form_values()
    try:
        data = _form_data(values)
        if campaign is None:
            saved = service.create_campaign(g.ctx, data)
        else:
            saved = service.update_campaign(g.ctx, campaign.id, data)
    except (ValidationFailed, Conflict) as exc:
        return _form_page(campaign, exc.status, _state(exc, values))
    flash(f"Campaign {saved.name} saved.", "success")
    return redirect(url_for("mass_mail.campaign", campaign_id=saved.id))


def _state(exc: CrmError, values: dict[str, Any]) -> dict[str, Any]:
    return {"message": exc.message, "errors": _flat(exc.errors), "values": values}


# --------------------------------------------------------------------------------------------
# pages


@bp.get("/", endpoint="campaigns")
def campaigns_page() -> Any:
    page = service.list_campaigns(g.ctx, cursor=request.args.get("cursor") or None)
    return _render("mass_mail/campaigns.html", page=page)


@bp.route("/new", methods=["GET", "POST"], endpoint="new")
def new_campaign() -> Any:
    return _form_page(None) if request.method == "GET" else _save(None)


@bp.route("/<int:campaign_id>/edit", methods=["GET", "POST"], endpoint="edit")
def edit_campaign(campaign_id: int) -> Any:
    campaign = service.get_campaign(g.ctx, campaign_id)
    if campaign.status != CampaignStatus.DRAFT:
        flash(f"The campaign is {campaign.status}: only a draft can be edited.", "error")
        return redirect(url_for("mass_mail.campaign", campaign_id=campaign.id))
    return _form_page(campaign) if request.method == "GET" else _save(campaign)


@bp.get("/<int:campaign_id>", endpoint="campaign")
def campaign_page(campaign_id: int) -> Any:
    campaign = service.get_campaign(g.ctx, campaign_id)
    return _render("mass_mail/campaign.html", campaign=campaign, counts=service.recipient_counts(g.ctx, campaign.id),
                   audience_size=service.audience_size(g.ctx, campaign.id))


def _action(campaign_id: int, fn: Any, done: str) -> Any:
    try:
        fn(g.ctx, campaign_id)
    except (ValidationFailed, Conflict) as exc:
        flash(exc.message, "error")
    else:
        flash(done, "success")
    return redirect(url_for("mass_mail.campaign", campaign_id=campaign_id))


@bp.post("/<int:campaign_id>/start", endpoint="start")
def start(campaign_id: int) -> Any:
    return _action(campaign_id, service.start_campaign, "Campaign started: its batches are queued.")


@bp.post("/<int:campaign_id>/cancel", endpoint="cancel")
def cancel(campaign_id: int) -> Any:
    return _action(campaign_id, service.cancel_campaign, "Campaign cancelled: batches not sent yet will not be.")


@bp.post("/<int:campaign_id>/delete", endpoint="delete")
def delete(campaign_id: int) -> Any:
    try:
        service.delete_campaign(g.ctx, campaign_id)
    except Conflict as exc:
        flash(exc.message, "error")
        return redirect(url_for("mass_mail.campaign", campaign_id=campaign_id))
    flash("Campaign deleted.", "success")
    return redirect(url_for("mass_mail.campaigns"))


@bp.get("/<int:campaign_id>/recipients", endpoint="recipients")
def recipients_page(campaign_id: int) -> Any:
    campaign = service.get_campaign(g.ctx, campaign_id)
    status = request.args.get("status") or None
    page = service.list_recipients(g.ctx, campaign.id, {"status": status}, cursor=request.args.get("cursor") or None)
    return _render("mass_mail/recipients.html", campaign=campaign, page=page, status=status,
                   statuses=service.STATUSES, counts=service.recipient_counts(g.ctx, campaign.id))
