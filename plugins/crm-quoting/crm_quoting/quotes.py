"""Reading quotes and making them: loading a quote's record and details, the view pages use,
the lists of a deal's and a party's quotes, and creating a quote for a deal or a party (with
the lines other plugins propose).

Internal: import the use cases from :mod:`crm_quoting.service`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crm_quoting.lines import Pricing, price_lines, stored_amounts, write_lines
from crm_quoting.models import Quote, QuoteLine, Status
from crm_quoting.rules import Settings, effective_status, settings, today
from crm_quoting.schemas import (
    QuoteInput,
    load,
)
from crm_quoting.types import QUOTE
from crmcore.context import use_case
from crmcore.errors import Conflict, NotFound, ValidationFailed
from crmcore.money import Totals, document_totals
from crmcore.parties import service as parties
from crmcore.records import service as records
from crmcore.records.models import Record
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context


#: the kind of the core record link from a deal to its quotes
LINK_KIND = "quote"
ADDRESS_KEYS = ("label", "line1", "line2", "postal_code", "city", "region", "country")
#: the keys of a line another plugin proposes through crm_record_defaults
DEFAULT_LINE_KEYS = ("product_id", "sku", "description", "quantity", "unit", "unit_price", "discount_percent",
                     "tax_rate")

# --------------------------------------------------------------------------------------------
# loading


def load_record(ctx: Context, record_id: Any) -> Record:
    """The core record of a quote (another business's, another type's: not found)."""
    try:
        record = records.get_record(ctx, record_id)
    except NotFound:
        raise NotFound(f"quote {record_id} not found") from None
    if record.type != QUOTE.key:
        raise NotFound(f"quote {record_id} not found")
    return record


def details(ctx: Context, record: Record, *, lock: bool = False, create: bool = False) -> Quote:
    """The details row of ``record``. A quote made by the core's own "New quote" form has none
    yet: a draft is made from the record (``create``) or, when only reading, an unsaved draft
    stands in."""
    stmt = select(Quote).where(Quote.record_id == record.id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    quote = ctx.session.scalar(stmt)
    if quote is not None:
        return quote
    cfg = settings(ctx)
    day = today(ctx)
    quote = Quote(record_id=record.id, deal_id=_linked_deal(ctx, record) if create else None, version=1,
                  status=Status.DRAFT.value, currency=record.currency or ctx.business.currency or "EUR",
                  quote_date=day, valid_until=valid_until_for(cfg, day), contact_id=record.contact_id,
                  intro=cfg.default_intro, terms=cfg.default_terms, net_amount=Decimal(0), tax_amount=Decimal(0),
                  total_amount=Decimal(0))
    if create:
        if record.party_id is not None:
            quote.billing_address, quote.shipping_address = address_snapshots(ctx, record.party_id)
        ctx.session.add(quote)
        ctx.session.flush()
    return quote


def _linked_deal(ctx: Context, record: Record) -> int | None:
    """The deal a quote made by the core's forms was created from (its source link)."""
    details = records.record_details(ctx, record.id)
    return next((link["record"].id for link in details["links_in"] if link["record"].type == "deal"), None)


def lines_of(ctx: Context, quote_id: int | None) -> list[QuoteLine]:
    if quote_id is None:
        return []
    return list(ctx.session.scalars(select(QuoteLine).where(QuoteLine.quote_id == quote_id)
                                    .order_by(QuoteLine.position, QuoteLine.id)))


def writable(ctx: Context, record_id: Any) -> tuple[Record, Quote]:
    """The quote's record and details, locked, for a change (archived: restore it first)."""
    record = load_record(ctx, record_id)
    if record.archived_at is not None:
        raise Conflict(f"quote {record.reference or record.id} is archived; restore it first")
    return record, details(ctx, record, lock=True, create=True)


def label(record: Record, quote: Quote | None = None) -> str:
    ref = record.reference or f"#{record.id}"
    return f"quote {ref}" + (f" (version {quote.version})" if quote is not None and quote.version > 1 else "")


def require_draft(record: Record, quote: Quote) -> None:
    if quote.status != Status.DRAFT.value:
        raise Conflict(f"{label(record, quote)} is {quote.status}: only a draft can be changed; "
                       "make a new version to change it")


@dataclass
class QuoteView:
    """A quote as pages and callers read it."""

    record: Record
    quote: Quote
    lines: list[QuoteLine]
    totals: Totals
    #: the status as of today (a sent quote past its day is expired)
    status: str
    #: the quote this one revises, and the one that revised it (records), if any
    revises: Record | None
    revised_by: Record | None
    deal: Record | None


@use_case(Role.READ_ONLY, write=False)
def get_quote(ctx: Context, record_id: int) -> QuoteView:
    """The quote: record, details, lines in order, totals (with the tax summary by rate) and
    its versions' neighbours."""
    record = load_record(ctx, record_id)
    quote = details(ctx, record)
    lines = lines_of(ctx, quote.id)
    related = [i for i in (quote.revises_id, quote.deal_id) if i is not None]
    others = {r.id: r for r in ctx.session.scalars(select(Record).where(Record.id.in_(related)))} if related else {}
    newer = ctx.session.scalar(
        select(Record).join(Quote, Quote.record_id == Record.id).where(Quote.revises_id == record.id)
        .order_by(Record.id.desc()).limit(1)) if quote.id is not None else None
    return QuoteView(record=record, quote=quote, lines=lines,
                     totals=document_totals([stored_amounts(line) for line in lines], quote.currency),
                     status=effective_status(quote, today(ctx)), revises=others.get(quote.revises_id),
                     revised_by=newer, deal=others.get(quote.deal_id))


@dataclass(frozen=True)
class QuoteSummary:
    """One row of a deal's or a party's quote list."""

    record_id: int
    reference: str | None
    title: str
    version: int
    status: str
    currency: str
    net: Decimal
    total: Decimal
    valid_until: dt.date | None
    quote_date: dt.date


def _summaries(ctx: Context, where: Any, limit: int) -> list[QuoteSummary]:
    day = today(ctx)
    rows = ctx.session.execute(
        select(Quote, Record.reference, Record.title).join(Record, Record.id == Quote.record_id)
        .where(where, Record.archived_at.is_(None)).order_by(Quote.id.desc()).limit(limit)).all()
    return [QuoteSummary(record_id=q.record_id, reference=ref, title=title, version=q.version,
                         status=effective_status(q, day), currency=q.currency, net=q.net_amount,
                         total=q.total_amount, valid_until=q.valid_until, quote_date=q.quote_date)
            for q, ref, title in rows]


@use_case(Role.READ_ONLY, write=False)
def quotes_for_deal(ctx: Context, deal_id: int, *, limit: int = 50) -> list[QuoteSummary]:
    """The deal's quotes, newest first (one query)."""
    return _summaries(ctx, Quote.deal_id == deal_id, max(1, min(limit, 200)))


@use_case(Role.READ_ONLY, write=False)
def quotes_for_party(ctx: Context, party_id: int, *, limit: int = 20) -> list[QuoteSummary]:
    """The party's quotes, newest first (one query)."""
    return _summaries(ctx, Record.party_id == party_id, max(1, min(limit, 200)))


# --------------------------------------------------------------------------------------------
# creating


def valid_until_for(cfg: Settings, day: dt.date) -> dt.date | None:
    return day + dt.timedelta(days=cfg.validity_days) if cfg.validity_days else None


def _snapshot(address: Any) -> dict[str, Any]:
    return {key: getattr(address, key, None) for key in ADDRESS_KEYS if getattr(address, key, None)}


def address_snapshots(ctx: Context, party_id: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The party's billing and shipping addresses as they are now: the default one of each
    purpose (else the first); billing falls back to the legal address. No shipping address:
    None (the goods go to the billing address)."""
    addresses = parties.party_details(ctx, party_id)["addresses"]

    def pick(*purposes: str) -> dict[str, Any] | None:
        for purpose in purposes:
            found = [a for a in addresses if a.purpose == purpose]
            if found:
                return _snapshot(next((a for a in found if a.is_default), found[0]))
        return None

    return pick("billing", "legal"), pick("shipping")


def contacts_of(ctx: Context, party_id: int) -> dict[int, dict[str, Any]]:
    """The party's active contacts: id -> {name, email (primary first)}."""
    out: dict[int, dict[str, Any]] = {}
    for item in parties.party_details(ctx, party_id)["contacts"]:
        emails = sorted((m for m in item["mechanisms"] if m.kind == "email"), key=lambda m: (not m.is_primary, m.position))
        out[item["contact"].id] = {"name": item["contact"].name, "email": emails[0].value if emails else None}
    return out


def check_contact(ctx: Context, contact_id: int | None, party_id: int, errors: dict[str, list[str]],
                  document: str = "quote") -> None:
    """An error on ``contact_id`` unless it is None or an active contact of the party."""
    if contact_id is not None and contact_id not in contacts_of(ctx, party_id):
        errors["contact_id"] = [f"contact {contact_id} is not an active contact of the {document}'s party"]


def check_dates(quote_date: dt.date, valid_until: dt.date | None, errors: dict[str, list[str]]) -> None:
    if valid_until is not None and valid_until < quote_date:
        errors["valid_until"] = ["must be on or after the quote's date"]


def party_or_error(ctx: Context, party_id: int, errors: dict[str, list[str]], field: str = "party_id") -> Any:
    """The party a document is made out to, or None with the reason in ``errors[field]`` (not
    found, merged, archived)."""
    try:
        party = parties.get_party(ctx, party_id)
    except NotFound:
        errors[field] = [f"party {party_id} not found"]
        return None
    if party.merged_into_id is not None:
        errors[field] = [f"party {party.name!r} was merged into party {party.merged_into_id}"]
        return None
    if party.archived_at is not None:
        errors[field] = [f"party {party.name!r} is archived"]
        return None
    return party


def deal_or_error(ctx: Context, deal_id: int, errors: dict[str, list[str]]) -> Record | None:
    """The deal a document is made for, or None with the reason in ``errors["deal_id"]`` (not
    found, not a deal, archived)."""
    try:
        deal = records.get_record(ctx, deal_id)
    except NotFound:
        errors["deal_id"] = [f"deal {deal_id} not found"]
        return None
    if deal.type != "deal":
        errors["deal_id"] = [f"record {deal_id} is a {deal.type}, not a deal"]
        return None
    if deal.archived_at is not None:
        errors["deal_id"] = [f"deal {deal.reference or deal.id} is archived"]
        return None
    return deal


def _proposed_lines(ctx: Context, deal: Record | None, party: Any) -> list[tuple[str, dict[str, Any]]]:
    """Lines other plugins propose for a new quote through ``crm_record_defaults`` (``{"lines":
    [...]}``), with the plugin that gave each, every plugin's lines in call order
    (concatenated, not the first plugin's only). Their answers are read-only: a savepoint that
    is always rolled back."""
    savepoint = ctx.session.begin_nested()
    try:
        answers = ctx.collect("crm_record_defaults", record_type=QUOTE.key, source=deal, party=party)
    finally:
        if savepoint.is_active:
            savepoint.rollback()
    out: list[tuple[str, dict[str, Any]]] = []
    for plugin, answer in answers:
        proposed = answer.get("lines") if isinstance(answer, Mapping) else None
        if not isinstance(proposed, list | tuple):
            continue
        for line in proposed:
            if isinstance(line, Mapping):
                out.append((plugin, {k: line[k] for k in DEFAULT_LINE_KEYS if k in line}))
    return out


def _priced_defaults(ctx: Context, pricing: Pricing, proposed: list[tuple[str, dict[str, Any]]]
                     ) -> tuple[list[Any], list[str]]:
    """Each proposed line priced on its own: a line that does not validate is left out (a
    default never stops a create) and said why."""
    kept, dropped = [], []
    for plugin, line in proposed:
        try:
            kept.extend(price_lines(ctx, pricing, [line], {}, origins={0: plugin}))
        except ValidationFailed as exc:
            reasons = "; ".join(f"{k.split('.', 2)[-1]}: {' '.join(v)}" for k, v in exc.errors.items())
            dropped.append(f"a line from {plugin} ({line.get('description') or line.get('sku') or '?'}) "
                           f"was left out: {reasons}")
    return kept, dropped


@use_case(Role.MEMBER)
def create_quote(ctx: Context, data: Mapping[str, Any]) -> Record:
    """A new draft quote; returns its record.

    ``data``: ``deal_id`` (the quote is for the deal's party, linked from the deal) and/or
    ``party_id`` (a standalone quote), ``contact_id`` (of that party; default: the deal's
    contact), ``title``, ``currency`` (default: the party's, else the business's),
    ``quote_date`` (default: today; catalog prices are those of that day), ``valid_until``
    (default: the date plus the ``validity_days`` setting), ``intro`` and ``terms`` (default:
    the settings' texts), ``billing_address`` / ``shipping_address`` (default: snapshots of the
    party's addresses) and ``lines`` (see :func:`set_lines`). Without ``lines``, the lines
    other plugins propose through ``crm_record_defaults`` are used (a trade-in credit, an
    inventory unit); one that does not validate is left out and the timeline says why.
    """
    values = load(QuoteInput, data, "quote")
    cfg = settings(ctx)
    errors: dict[str, list[str]] = {}
    deal = deal_or_error(ctx, values["deal_id"], errors) if values["deal_id"] is not None else None
    party_id = values["party_id"]
    if deal is not None:
        if deal.party_id is None:
            errors["deal_id"] = ["the deal has no party: give it one first"]
        elif party_id is not None and party_id != deal.party_id:
            errors["party_id"] = [f"the deal is for party {deal.party_id}; a quote of a deal is for its party"]
        party_id = party_id or deal.party_id
    if party_id is None and "deal_id" not in errors:
        errors["party_id"] = ["a quote is for a party: give party_id (or a deal that has one)"]
    party = party_or_error(ctx, party_id, errors) if party_id is not None and "party_id" not in errors else None
    if errors:
        raise ValidationFailed("invalid quote: check " + ", ".join(sorted(errors)), errors)
    contact_id = values["contact_id"]
    if contact_id is None and deal is not None and deal.contact_id in contacts_of(ctx, party.id):
        contact_id = deal.contact_id
    check_contact(ctx, contact_id, party.id, errors)
    day = values["quote_date"] or today(ctx)
    valid_until = values["valid_until"] if "valid_until" in data else valid_until_for(cfg, day)
    check_dates(day, valid_until, errors)
    currency = values["currency"] or party.currency or ctx.business.currency or "EUR"
    pricing = Pricing(party.id, currency, day, cfg.tax_rates, cfg.default_tax_rate)
    priced, dropped = [], []
    if "lines" in data:
        try:
            priced = price_lines(ctx, pricing, values["lines"], {})
        except ValidationFailed as exc:
            errors.update(exc.errors)
    else:
        priced, dropped = _priced_defaults(ctx, pricing, _proposed_lines(ctx, deal, party))
    if errors:
        raise ValidationFailed("invalid quote: check " + ", ".join(sorted(errors)), errors)

    billing, shipping = address_snapshots(ctx, party.id)
    title = values["title"] or (f"Quote: {deal.title}" if deal is not None else f"Quote for {party.name}")
    record = records.create_record(ctx, QUOTE.key, {
        "title": title[:300], "party_id": party.id, "contact_id": contact_id, "currency": currency,
        "amount": _amount(document_totals([p.amounts for p in priced], currency)),
    }, source_id=deal.id if deal is not None else None, link_kind=LINK_KIND)
    quote = Quote(record_id=record.id, deal_id=deal.id if deal is not None else None, version=1,
                  status=Status.DRAFT.value, currency=currency, quote_date=day, valid_until=valid_until,
                  contact_id=contact_id, intro=values["intro"] if "intro" in data else cfg.default_intro,
                  terms=values["terms"] if "terms" in data else cfg.default_terms,
                  billing_address=values["billing_address"] if "billing_address" in data else billing,
                  shipping_address=values["shipping_address"] if "shipping_address" in data else shipping)
    ctx.session.add(quote)
    ctx.session.flush()
    write_lines(ctx, quote.id, priced, {})
    store_totals(ctx, record, quote)
    for reason in dropped:
        timeline(ctx, record, "quote_line_left_out", reason[:1].upper() + reason[1:])
    return record


@use_case(Role.MEMBER)
def create_quote_for_deal(ctx: Context, deal_id: int, data: Mapping[str, Any] | None = None) -> Record:
    """A new draft quote for ``deal_id`` (see :func:`create_quote`); a deal may have several."""
    return create_quote(ctx, {**dict(data or {}), "deal_id": deal_id})


def store_totals(ctx: Context, record: Record, quote: Quote) -> Totals:
    """The quote's totals from its lines (the sums of the lines' rounded amounts), and the
    record's ``amount`` (the net total, what lists show; None while it is negative)."""
    lines = lines_of(ctx, quote.id)
    totals = document_totals([stored_amounts(line) for line in lines], quote.currency)
    quote.net_amount, quote.tax_amount, quote.total_amount = totals.net, totals.tax, totals.total
    ctx.session.flush()
    amount = _amount(totals)
    if record.amount != amount or (amount is not None and record.currency != quote.currency):
        records.update_record(ctx, record.id, {"amount": amount, "currency": quote.currency})
    return totals


def _amount(totals: Totals) -> Decimal | None:
    """A quote record's ``amount``: its net total (None while negative: record amounts are not)."""
    return totals.net if totals.net >= 0 else None


def timeline(ctx: Context, record: Record, kind: str, summary: str, data: dict[str, Any] | None = None) -> None:
    from crmcore.timeline.service import log_event

    log_event(ctx, kind, summary, record_id=record.id, party_id=record.party_id, ref_type="record",
              ref_id=record.id, data=data or {})
