"""The business's settings and the rules every step shares: today in the business's time
zone, the status a quote has today, money as plain text.

Internal: import the use cases from :mod:`crm_quoting.service`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crm_quoting import NAME
from crm_quoting.models import Quote, Status
from crm_quoting.schemas import (
    QuotingSettings,
    load,
    parse_rates,
)
from crmcore.context import use_case
from crmcore.db import utcnow
from crmcore.errors import ValidationFailed
from crmcore.money import round_money
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

log = logging.getLogger("crm_quoting")

#: statuses from which a quote can still change hands (sent, accepted, refused)
LIVE = (Status.DRAFT.value, Status.SENT.value)
#: statuses a new version may revise (an accepted quote is final; a superseded one has a newer)
REVISABLE = (Status.DRAFT.value, Status.SENT.value, Status.EXPIRED.value, Status.REFUSED.value)

# --------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class Settings:
    tax_rates: tuple[Decimal, ...]
    default_tax_rate: Decimal
    validity_days: int
    accepted_stage_id: int | None
    invoice_on_accept: bool
    default_intro: str | None
    default_terms: str | None


def settings(ctx: Context) -> Settings:
    """The business's settings with the schema's defaults (a stored row that no longer
    validates falls back to the defaults rather than stopping quoting)."""
    stored = ctx.plugin_settings(NAME)
    fields_ = QuotingSettings().fields
    try:
        values = QuotingSettings().load({k: v for k, v in stored.items() if k in fields_})
    except Exception:  # noqa: BLE001 - a hand-edited row must not stop quoting
        log.warning("quoting settings of business %s do not validate; using the defaults", ctx.business_id)
        values = QuotingSettings().load({})
    return Settings(parse_rates(values["tax_rates"]), Decimal(values["default_tax_rate"]),
                    values["validity_days"], values["accepted_stage_id"], values["invoice_on_accept"],
                    values["default_intro"], values["default_terms"])


@use_case(Role.READ_ONLY, write=False)
def deal_stages(ctx: Context) -> list[dict[str, Any]]:
    """The active open and won stages of the business's deal pipelines (what an accepted quote
    may move its deal to): {id, name, kind, pipeline, pipeline_id}."""
    from crmcore.pipelines.service import list_pipelines

    return [{"id": s.id, "name": s.name, "kind": s.kind, "pipeline": p.name, "pipeline_id": p.id}
            for p in list_pipelines(ctx, "deal") for s in p.stages
            if s.archived_at is None and s.kind != "lost"]


@use_case(Role.ADMIN)
def save_settings(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and store the settings; ``accepted_stage_id`` must be an active open or won
    stage of one of the business's deal pipelines (a lost stage needs a reason)."""
    from crmcore.plugins.service import save_settings as store

    values = load(QuotingSettings, data, "quoting settings")
    stage_id = values.get("accepted_stage_id")
    if stage_id is not None and stage_id not in {s["id"] for s in deal_stages(ctx)}:
        message = f"stage {stage_id} is not an active open or won stage of a deal pipeline of this business"
        raise ValidationFailed(message, {"accepted_stage_id": [message]})
    return store(ctx, NAME, {key: data[key] for key in data if key in QuotingSettings().fields})


def today(ctx: Context) -> dt.date:
    """The business's calendar day now: a quote valid until the 30th is valid all that day there."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone: dt.tzinfo = ZoneInfo(ctx.business.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = dt.UTC
    return utcnow().astimezone(zone).date()


def money_text(amount: Decimal, currency: str) -> str:
    """``EUR 1,234.50``, ``JPY 1,235``: plain text for timelines and emails."""
    return f"{currency} {round_money(Decimal(amount), currency):,f}"


def effective_status(quote: Quote, on: dt.date) -> str:
    """The status as of ``on``: a sent quote past its valid-until day is expired even before
    the expiry job stored it."""
    if quote.status == Status.SENT.value and quote.valid_until is not None and quote.valid_until < on:
        return Status.EXPIRED.value
    return quote.status
