"""Invoice use cases: create (standalone, from a deal, from other plugins' lines), edit a draft,
activate, cancel, credit notes, payments and refunds recorded by staff, and reading.

An invoice is a core record (type ``invoice``; a credit note type ``credit_note``) plus an
:class:`~crm_invoicing.models.Invoice` row. Every change locks that row first (``SELECT ... FOR
UPDATE`` on PostgreSQL; SQLite writers are serialised by ``BEGIN IMMEDIATE``), so concurrent
payments, credit notes and cancellations of one invoice happen one after the other, and then
:func:`settle` derives ``paid_amount`` from the payment rows and the status from the amounts
(:mod:`crm_invoicing.rules`). Each public function is one transaction: on any error nothing is
written.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError as MarshmallowError
from sqlalchemy import func, select

from crm_invoicing import NAME, rules, tokens
from crm_invoicing.guard import own_write
from crm_invoicing.models import Invoice, InvoiceLine, Kind, Payment, PaymentAttempt, Status
from crm_invoicing.schemas import (
    CreditNoteInput,
    DraftUpdate,
    InvoiceInput,
    InvoicingSettings,
    LineInput,
    PaymentInput,
    RefundInput,
    load,
    rate_text,
)
from crm_invoicing.types import CREDIT_NOTE, INVOICE, TYPES
from crmcore.context import get_or_404, use_case
from crmcore.db import utcnow
from crmcore.errors import Conflict, CrmError, NotFound, ValidationFailed
from crmcore.money import LineAmounts, document_totals, line_amounts, quantum, round_money, to_decimal
from crmcore.paging import Page, capped_count, keyset_page
from crmcore.parties.models import Address, ContactMechanism, Party
from crmcore.records import service as records
from crmcore.records.models import Record
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

log = logging.getLogger("crm.invoicing")

ZERO = Decimal(0)
#: Numeric(18, 4) holds amounts below this
AMOUNT_LIMIT = Decimal(10) ** 14
#: statuses of an issued invoice with something left to pay
OPEN = (Status.ACTIVE.value, Status.PARTLY_PAID.value)
#: filters of the invoice list: the statuses, and "open" (active or partly paid)
LIST_STATUSES = (*(s.value for s in Status), "open")


# --------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class Settings:
    payment_terms_days: int
    tax_rates: tuple[Decimal, ...]
    default_tax_rate: Decimal
    paid_stage_id: int | None


def settings(ctx: Context) -> Settings:
    """The business's settings with the schema's defaults (stored values were validated when
    saved; a hand-edited row that no longer validates falls back to the defaults)."""
    stored = ctx.plugin_settings(NAME)
    try:
        values = InvoicingSettings().load({k: v for k, v in stored.items() if k in InvoicingSettings().fields})
    except MarshmallowError:  # a broken row must not stop invoicing
        log.warning("invoicing settings of business %s do not validate; using the defaults", ctx.business_id)
        values = InvoicingSettings().load({})
    return Settings(values["payment_terms_days"], tuple(Decimal(r) for r in values["tax_rates"]),
                    Decimal(values["default_tax_rate"]), values["paid_stage_id"])


@use_case(Role.ADMIN)
def save_settings(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and store the settings; ``paid_stage_id`` must be an active stage of one of the
    business's deal pipelines."""
    from crmcore.plugins.service import save_settings as store

    values = load(InvoicingSettings, data, "invoicing settings")
    stage_id = values.get("paid_stage_id")
    if stage_id is not None and stage_id not in {s["id"] for s in deal_stages(ctx)}:
        message = f"stage {stage_id} is not an active stage of a deal pipeline of this business"
        raise ValidationFailed(message, {"paid_stage_id": [message]})
    return store(ctx, NAME, dict(data))


@use_case(Role.READ_ONLY, write=False)
def deal_stages(ctx: Context) -> list[dict[str, Any]]:
    """The active stages of the business's deal pipelines: {id, name, pipeline, pipeline_id}."""
    from crmcore.pipelines.service import list_pipelines

    return [{"id": s.id, "name": s.name, "pipeline": p.name, "pipeline_id": p.id, "kind": s.kind}
            for p in list_pipelines(ctx, "deal") for s in p.stages if s.archived_at is None]


# --------------------------------------------------------------------------------------------
# loading


def today(ctx: Context) -> dt.date:
    """The business's calendar day now."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone: dt.tzinfo = ZoneInfo(ctx.business.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = dt.UTC
    return utcnow().astimezone(zone).date()


def _record(ctx: Context, record_id: Any, what: str = "invoice") -> Record:
    """The core record of an invoice or credit note (another business's: not found)."""
    try:
        record = records.get_record(ctx, record_id)
    except NotFound:
        raise NotFound(f"{what} {record_id} not found") from None
    if record.type not in TYPES:
        raise NotFound(f"{what} {record_id} not found")
    return record


def _invoice_row(ctx: Context, record: Record, *, lock: bool = False, create: bool = False) -> Invoice:
    """The details row of ``record`` (locked for update when ``lock``). A record made by the
    core's own "New invoice" form has none yet: a draft is created (``create``) or, when only
    reading, an unsaved empty draft stands in."""
    stmt = select(Invoice).where(Invoice.record_id == record.id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    invoice = ctx.session.scalar(stmt)
    if invoice is None:
        invoice = Invoice(record_id=record.id, kind=Kind.INVOICE.value if record.type == INVOICE.key
                          else Kind.CREDIT_NOTE.value, status=Status.DRAFT.value,
                          currency=record.currency or ctx.business.currency or "EUR", net_amount=ZERO,
                          tax_amount=ZERO, total_amount=ZERO, paid_amount=ZERO, credited_amount=ZERO)
        if create:
            ctx.session.add(invoice)
            ctx.session.flush()
    return invoice


def _locked(ctx: Context, record_id: Any, what: str = "invoice") -> tuple[Record, Invoice]:
    record = _record(ctx, record_id, what)
    if record.archived_at is not None:
        raise Conflict(f"{_label(record)} is archived; restore it first")
    return record, _invoice_row(ctx, record, lock=True, create=True)


def _label(record: Record) -> str:
    kind = "credit note" if record.type == CREDIT_NOTE.key else "invoice"
    return f"{kind} {record.reference}" if record.reference else f"draft {kind} {record.id}"


def _lines(ctx: Context, invoice_id: int | None) -> list[InvoiceLine]:
    if invoice_id is None:
        return []
    return list(ctx.session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id)
                                    .order_by(InvoiceLine.position, InvoiceLine.id)))


# --------------------------------------------------------------------------------------------
# lines and totals


def _rate_in(rate: Decimal, offered: tuple[Decimal, ...]) -> bool:
    return any(rate == r for r in offered)


def _priced(ctx: Context, lines: list[dict[str, Any]], currency: str, cfg: Settings,
            errors: dict[str, list[str]], field: str = "lines") -> list[dict[str, Any]]:
    """Lines with their amounts by crmcore.money's rule; problems go to ``errors`` by field."""
    offered = ", ".join(rate_text(r) for r in cfg.tax_rates)
    out = []
    for index, line in enumerate(lines):
        rate = line.get("tax_rate")
        rate = cfg.default_tax_rate if rate is None else rate
        if not _rate_in(rate, cfg.tax_rates):
            errors[f"{field}.{index}.tax_rate"] = [
                f"{rate.normalize():f} is not a tax rate of this business; use one of {offered}"]
            continue
        amounts = line_amounts(line["quantity"], line["unit_price"], currency,
                               discount_percent=line.get("discount_percent") or ZERO, tax_rate=rate)
        if abs(amounts.total) >= AMOUNT_LIMIT or abs(line["quantity"] * line["unit_price"]) >= AMOUNT_LIMIT:
            errors[f"{field}.{index}.unit_price"] = ["the line's amount is too large"]
            continue
        out.append({**line, "tax_rate": rate, "amounts": amounts})
    return out


def _load_with_rates(schema: type, data: Any, cfg: Settings) -> dict[str, Any]:
    """Load an invoice's input; when it is refused, the lines' tax rates are checked as well,
    so one answer names every problem."""
    try:
        return load(schema, data, "invoice")
    except ValidationFailed as exc:
        errors = dict(exc.errors)
        raw = data.get("lines") if isinstance(data, Mapping) else None
        for index, line in enumerate(raw if isinstance(raw, list) else []):
            rate = to_decimal(line.get("tax_rate")) if isinstance(line, Mapping) else None
            key = f"lines.{index}.tax_rate"
            if rate is not None and key not in errors and not _rate_in(rate, cfg.tax_rates):
                errors[key] = [f"{rate.normalize():f} is not a tax rate of this business; use one of "
                               + ", ".join(rate_text(r) for r in cfg.tax_rates)]
        raise ValidationFailed("invalid invoice: check " + ", ".join(sorted(errors)), errors) from None


def _write_lines(ctx: Context, invoice: Invoice, priced: list[dict[str, Any]]) -> None:
    for old in _lines(ctx, invoice.id):
        ctx.session.delete(old)
    ctx.session.flush()
    for position, line in enumerate(priced, start=1):
        amounts: LineAmounts = line["amounts"]
        ctx.session.add(InvoiceLine(
            invoice_id=invoice.id, position=position, description=line["description"], quantity=line["quantity"],
            unit=line.get("unit"), unit_price=line["unit_price"], discount_percent=line.get("discount_percent") or ZERO,
            tax_rate=amounts.tax_rate, net_amount=amounts.net, tax_amount=amounts.tax, total_amount=amounts.total,
            product_id=line.get("product_id"), source_kind=line.get("source_kind"), source_id=line.get("source_id"),
            credited_line_id=line.get("credited_line_id")))
    totals = document_totals([line["amounts"] for line in priced], invoice.currency)
    invoice.net_amount, invoice.tax_amount, invoice.total_amount = totals.net, totals.tax, totals.total
    ctx.session.flush()


# --------------------------------------------------------------------------------------------
# create and edit


def _check_source(ctx: Context, record_id: int | None, field: str, errors: dict[str, list[str]],
                  record_type: str | None = None) -> Record | None:
    if record_id is None:
        return None
    try:
        found = records.get_record(ctx, record_id)
    except NotFound:
        errors[field] = [f"record {record_id} not found"]
        return None
    if record_type is not None and found.type != record_type:
        errors[field] = [f"record {record_id} is a {found.type}, not a {record_type}"]
        return None
    return found


@use_case(Role.MEMBER)
def create_invoice(ctx: Context, data: Mapping[str, Any]) -> Record:
    """A draft invoice for a party of the business; returns its record.

    ``data``: ``party_id`` (required), ``contact_id``, ``title`` (default "Invoice for
    <party>"), ``currency`` (default: the party's, else the business's), ``deal_id`` /
    ``quote_id`` / ``order_id`` (the records it comes from: kept on the invoice, and the most
    specific one is linked to it), ``payment_terms_days`` (default: the setting),
    ``customer_note`` and ``lines``: each ``description``, ``quantity`` (> 0), ``unit``,
    ``unit_price`` (a trade-in credit may be negative), ``discount_percent`` (0-100),
    ``tax_rate`` (one of the business's rates; default: its default rate), and for plugins
    that invoice their own documents ``product_id``, ``source_kind`` and ``source_id``
    (kept as given, without a foreign key). Amounts follow :mod:`crmcore.money`.

    Bad input raises ValidationFailed naming each field (``lines.1.tax_rate``); nothing is
    written then.
    """
    cfg = settings(ctx)
    values = _load_with_rates(InvoiceInput, data, cfg)
    errors: dict[str, list[str]] = {}
    party = ctx.session.get(Party, values["party_id"])
    if party is None:
        errors["party_id"] = [f"party {values['party_id']} not found"]
    deal = _check_source(ctx, values["deal_id"], "deal_id", errors, "deal")
    quote = _check_source(ctx, values["quote_id"], "quote_id", errors)
    order = _check_source(ctx, values["order_id"], "order_id", errors)
    currency = values["currency"] or (party.currency if party is not None else None) or ctx.business.currency or "EUR"
    priced = _priced(ctx, values["lines"], currency, cfg, errors)
    if errors:
        raise ValidationFailed("invalid invoice: check " + ", ".join(sorted(errors)), errors)
    assert party is not None
    source = order or quote or deal
    title = values["title"] or f"Invoice for {party.name}"[:300]
    record = records.create_record(ctx, INVOICE.key, {
        "title": title, "party_id": party.id, "contact_id": values["contact_id"], "currency": currency,
    }, source_id=source.id if source is not None else None, link_kind="invoice")
    invoice = Invoice(record_id=record.id, kind=Kind.INVOICE.value, status=Status.DRAFT.value, currency=currency,
                      payment_terms_days=values["payment_terms_days"], customer_note=values["customer_note"],
                      deal_id=deal.id if deal else None, quote_id=quote.id if quote else None,
                      order_id=order.id if order else None, paid_amount=ZERO, credited_amount=ZERO)
    ctx.session.add(invoice)
    ctx.session.flush()
    _write_lines(ctx, invoice, priced)
    return record


@use_case(Role.MEMBER)
def create_invoice_from_deal(ctx: Context, deal_id: int, data: Mapping[str, Any] | None = None) -> Record:
    """A draft invoice for a deal: its party, contact and currency, linked to it (link kind
    ``invoice``). Its lines: ``data["lines"]``, else those enabled plugins propose through
    ``crm_record_defaults`` (record type ``invoice``, source the deal), else one line of the
    deal's amount (taken as the net price, at the default tax rate). Any key of
    :func:`create_invoice` in ``data`` overrides."""
    errors: dict[str, list[str]] = {}
    deal = _check_source(ctx, deal_id, "deal_id", errors, "deal")
    if deal is not None and deal.party_id is None:
        errors["deal_id"] = ["the deal has no party: give it one first"]
    if errors:
        raise ValidationFailed("cannot invoice this deal", errors)
    assert deal is not None
    given = dict(data or {})
    lines = _default_lines(ctx, deal) if "lines" not in given else []
    if not lines and deal.amount is not None and deal.amount > 0:
        lines = [{"description": deal.title[:500], "quantity": "1", "unit_price": str(deal.amount)}]
    values: dict[str, Any] = {"party_id": deal.party_id, "contact_id": deal.contact_id, "deal_id": deal.id,
                              "title": f"Invoice: {deal.title}"[:300], "lines": lines}
    if deal.currency:
        values["currency"] = deal.currency
    return create_invoice(ctx, {**values, **given})


def _default_lines(ctx: Context, deal: Record) -> list[dict[str, Any]]:
    """Lines enabled plugins propose for an invoice from this deal (``crm_record_defaults``:
    their ``lines`` are concatenated), with the keys a line takes."""
    proposed = records.record_defaults(ctx, INVOICE.key, source_id=deal.id).get("lines") or []
    keys = set(LineInput().fields)
    return [{k: v for k, v in line.items() if k in keys} for line in proposed if isinstance(line, Mapping)]


@use_case(Role.MEMBER)
def update_draft(ctx: Context, invoice_id: int, data: Mapping[str, Any]) -> Record:
    """Change a draft invoice: ``contact_id``, ``currency``, ``payment_terms_days``,
    ``customer_note`` and ``lines`` (replaces every line, in the order given). Only drafts."""
    record, invoice = _locked(ctx, invoice_id)
    if invoice.status != Status.DRAFT or invoice.kind != Kind.INVOICE:
        raise Conflict(f"{_label(record)} is {invoice.status.replace('_', ' ')}: only a draft invoice can be changed")
    cfg = settings(ctx)
    values = _load_with_rates(DraftUpdate, data, cfg)
    errors: dict[str, list[str]] = {}
    currency = values.get("currency", invoice.currency)
    if "lines" in values:
        lines = values["lines"]
    elif currency != invoice.currency:
        lines = [_line_values(line) for line in _lines(ctx, invoice.id)]
    else:
        lines = None
    priced = _priced(ctx, lines, currency, cfg, errors) if lines is not None else None
    if errors:
        raise ValidationFailed("invalid invoice: check " + ", ".join(sorted(errors)), errors)
    if "contact_id" in values and values["contact_id"] != record.contact_id:
        records.update_record(ctx, record.id, {"contact_id": values["contact_id"]})
    invoice.currency = currency
    for key in ("payment_terms_days", "customer_note"):
        if key in values:
            setattr(invoice, key, values[key])
    if priced is not None:
        _write_lines(ctx, invoice, priced)
    return record


def _line_values(line: InvoiceLine) -> dict[str, Any]:
    return {"description": line.description, "quantity": line.quantity, "unit": line.unit,
            "unit_price": line.unit_price, "discount_percent": line.discount_percent, "tax_rate": line.tax_rate,
            "product_id": line.product_id, "source_kind": line.source_kind, "source_id": line.source_id}


# --------------------------------------------------------------------------------------------
# activation


@dataclass(frozen=True)
class Activation:
    record: Record
    invoice: Invoice
    #: the payment link's token: shown once, stored only as a hash
    token: str


def pay_path(business_slug: str, token: str) -> str:
    """The public payment page's path (served by public.py)."""
    return f"/pay/{business_slug}/{token}"


def pay_url(ctx: Context, token: str) -> str | None:
    """The payment link as an absolute URL (the installation's public_url, else the current
    request's address; None outside a request without a public_url)."""
    path = pay_path(ctx.business.slug, token)
    base = (ctx.crm.config.public_url or "").strip().rstrip("/")
    if base:
        return base + path
    try:
        from flask import has_request_context

        if has_request_context():
            from crmcore.web.public import public_url

            return public_url(path)
    except ImportError:  # pragma: no cover - flask is a dependency of crmcore
        pass
    return None


@use_case(Role.MEMBER)
def activate_invoice(ctx: Context, invoice_id: int) -> Activation:
    """Issue a draft invoice: it takes the next number (gap-free: a rollback gives it back),
    today's date (the business's calendar), a due date after the payment terms, the party's
    name and billing address as they are now, and a payment link (returned once: only its hash
    is kept). Refused without a party or when the total is not above zero."""
    record, invoice = _locked(ctx, invoice_id)
    if invoice.kind != Kind.INVOICE:
        raise Conflict("a credit note is issued when it is made from an invoice")
    if invoice.status != Status.DRAFT:
        raise Conflict(f"{_label(record)} is {invoice.status.replace('_', ' ')}, not a draft")
    errors: dict[str, list[str]] = {}
    party = ctx.session.get(Party, record.party_id) if record.party_id is not None else None
    if party is None:
        errors["party_id"] = ["an invoice needs a party to bill"]
    elif party.archived_at is not None or party.merged_into_id is not None:
        errors["party_id"] = [f"party {party.name!r} is archived"]
    if not _lines(ctx, invoice.id):
        errors["lines"] = ["add at least one line"]
    elif invoice.total_amount <= 0:
        errors["lines"] = [f"the total is {money_text(invoice.total_amount, invoice.currency)}: an invoice must be for more than zero "
                           "(a credit note gives money back)"]
    if errors:
        raise ValidationFailed("the invoice cannot be issued yet", errors)
    assert party is not None
    day = today(ctx)
    numbered = records.assign_reference(ctx, record.id, when=day)
    if numbered.reference is None:
        raise Conflict("invoices have no active numbering rule: an admin sets one (record:invoice) "
                       "under Settings, Numbering")
    token, prefix, digest = tokens.new_token()
    cfg = settings(ctx)
    terms = invoice.payment_terms_days if invoice.payment_terms_days is not None else cfg.payment_terms_days
    invoice.issue_date, invoice.due_date = day, day + dt.timedelta(days=terms)
    invoice.billing_name, invoice.billing_address = party.name, _billing_address(ctx, party.id)
    invoice.token_prefix, invoice.token_hash = prefix, digest
    invoice.status, invoice.activated_at = Status.ACTIVE.value, utcnow()
    ctx.session.flush()
    records.update_record(ctx, record.id, {"amount": invoice.total_amount, "currency": invoice.currency})
    _timeline(ctx, record, "invoice_activated",
              f"Invoice {record.reference} issued: {money_text(invoice.total_amount, invoice.currency)}, due {invoice.due_date}")
    ctx.emit("crm_after_invoice_activated", invoice=record)
    _notify(ctx, "invoice.activated", record, invoice, pay_url(ctx, token))
    return Activation(record, invoice, token)


@use_case(Role.MEMBER)
def renew_payment_link(ctx: Context, invoice_id: int) -> str:
    """A new payment link for an issued invoice (returned once); the old one stops working."""
    record, invoice = _locked(ctx, invoice_id)
    if invoice.kind != Kind.INVOICE or invoice.status == Status.DRAFT:
        raise Conflict(f"{_label(record)} has no payment link: issue it first")
    token, invoice.token_prefix, invoice.token_hash = tokens.new_token()
    _timeline(ctx, record, "invoice_link_renewed", f"New payment link for invoice {record.reference}")
    return token


def _billing_address(ctx: Context, party_id: int) -> dict[str, Any] | None:
    """The party's default billing address (else its first billing one, else any default)."""
    found = sorted(ctx.session.scalars(select(Address).where(Address.party_id == party_id)),
                   key=lambda a: (a.purpose != "billing", not a.is_default, a.id))
    if not found:
        return None
    a = found[0]
    return {"label": a.label, "line1": a.line1, "line2": a.line2, "postal_code": a.postal_code, "city": a.city,
            "region": a.region, "country": a.country}


# --------------------------------------------------------------------------------------------
# cancel, credit notes


@use_case(Role.MEMBER)
def cancel_invoice(ctx: Context, invoice_id: int, reason: str | None = None) -> Record:
    """Withdraw a draft or an issued invoice that has no payments and no credit notes (it keeps
    its number). With payments, issue a credit note instead."""
    record, invoice = _locked(ctx, invoice_id)
    if invoice.kind != Kind.INVOICE:
        raise Conflict("a credit note cannot be cancelled: invoice the amount again instead")
    if invoice.status == Status.CANCELLED:
        return record
    if ctx.session.scalar(select(func.count()).select_from(Payment).where(Payment.invoice_id == invoice.id)):
        raise Conflict(f"{_label(record)} has payments: issue a credit note instead of cancelling it")
    if invoice.credited_amount != 0:
        raise Conflict(f"{_label(record)} has credit notes: credit the rest instead of cancelling it")
    invoice.status, invoice.cancelled_at = Status.CANCELLED.value, utcnow()
    note = (reason or "").strip()[:500]
    _timeline(ctx, record, "invoice_cancelled", f"{_label(record).capitalize()} cancelled" + (f": {note}" if note else ""))
    ctx.emit("crm_after_invoice_cancelled", invoice=record)
    return record


def _credited_quantities(ctx: Context, line_ids: list[int]) -> dict[int, tuple[Decimal, Decimal, Decimal]]:
    """Per invoice line: (quantity, net, tax) already credited (positive numbers)."""
    if not line_ids:
        return {}
    rows = ctx.session.execute(
        select(InvoiceLine.credited_line_id, func.sum(InvoiceLine.quantity), func.sum(InvoiceLine.net_amount),
               func.sum(InvoiceLine.tax_amount))
        .where(InvoiceLine.credited_line_id.in_(line_ids)).group_by(InvoiceLine.credited_line_id))
    return {line_id: (-Decimal(q), -Decimal(n), -Decimal(t)) for line_id, q, n, t in rows}


@use_case(Role.MEMBER)
def create_credit_note(ctx: Context, invoice_id: int, data: Mapping[str, Any] | None = None) -> Record:
    """Issue a credit note for an issued invoice: ``lines`` ([{line_id, quantity}], default:
    everything not credited yet), ``reason``. Its amounts are negative; it is numbered at once
    and reduces what is due on the invoice. Where the invoice was paid beyond what is now due,
    the excess of its payments becomes an overpayment (money to give back)."""
    record, invoice = _locked(ctx, invoice_id)
    if invoice.kind != Kind.INVOICE or invoice.status in (Status.DRAFT, Status.CANCELLED):
        raise Conflict(f"{_label(record)} is {invoice.status}: only an issued invoice can be credited")
    values = load(CreditNoteInput, data or {}, "credit note")
    lines = {line.id: line for line in _lines(ctx, invoice.id)}
    credited = _credited_quantities(ctx, list(lines))
    wanted = values["lines"] if values["lines"] is not None else [
        {"line_id": line_id, "quantity": None} for line_id in lines]
    errors: dict[str, list[str]] = {}
    priced: list[dict[str, Any]] = []
    seen: set[int] = set()
    for index, item in enumerate(wanted):
        line = lines.get(item["line_id"])
        if line is None or item["line_id"] in seen:
            errors[f"lines.{index}.line_id"] = [f"line {item['line_id']} is not a line of this invoice"
                                                if line is None else "this line is chosen twice"]
            continue
        seen.add(line.id)
        done_qty, done_net, done_tax = credited.get(line.id, (ZERO, ZERO, ZERO))
        left = line.quantity - done_qty
        quantity = item["quantity"] if item["quantity"] is not None else left
        if left <= 0:
            if values["lines"] is not None:
                errors[f"lines.{index}.quantity"] = ["this line is credited in full already"]
            continue
        if quantity > left:
            errors[f"lines.{index}.quantity"] = [f"at most {left.normalize():f} is left to credit on this line"]
            continue
        if quantity == left:  # the last of the line: exactly what is left, so the credits add up to it
            net, tax = -(line.net_amount - done_net), -(line.tax_amount - done_tax)
            amounts = LineAmounts(net=net, tax=tax, total=net + tax, tax_rate=line.tax_rate)
        else:
            amounts = line_amounts(-quantity, line.unit_price, invoice.currency,
                                   discount_percent=line.discount_percent, tax_rate=line.tax_rate)
        priced.append({**_line_values(line), "quantity": -quantity, "credited_line_id": line.id, "amounts": amounts})
    if errors:
        raise ValidationFailed("invalid credit note: check " + ", ".join(sorted(errors)), errors)
    total = sum((p["amounts"].total for p in priced), ZERO)
    due = invoice.total_amount - invoice.credited_amount
    if not priced or total >= 0:
        raise ValidationFailed("nothing to credit", {"lines": ["the invoice is credited in full already"
                                                               if not priced else "the credit note must be below zero"]})
    if -total > due:
        raise ValidationFailed("the credit note is more than what is left to credit",
                               {"lines": [f"at most {money_text(due, invoice.currency)} is left to credit"]})
    day = today(ctx)
    with own_write():  # the core's own "New credit note" form is refused (crm_invoicing.guard)
        note_record = records.create_record(ctx, CREDIT_NOTE.key, {
            "title": f"Credit note for {record.reference}", "party_id": record.party_id,
            "contact_id": record.contact_id, "currency": invoice.currency,
        }, source_id=record.id, link_kind="credit_note")
    note = Invoice(record_id=note_record.id, kind=Kind.CREDIT_NOTE.value, status=Status.ACTIVE.value,
                   currency=invoice.currency, credited_invoice_id=invoice.id, deal_id=invoice.deal_id,
                   customer_note=values["reason"], billing_name=invoice.billing_name,
                   billing_address=invoice.billing_address, paid_amount=ZERO, credited_amount=ZERO,
                   issue_date=day, activated_at=utcnow())
    ctx.session.add(note)
    ctx.session.flush()
    _write_lines(ctx, note, priced)
    if records.assign_reference(ctx, note_record.id, when=day).reference is None:
        raise Conflict("credit notes have no active numbering rule: an admin sets one (record:credit_note) "
                       "under Settings, Numbering")
    invoice.credited_amount += -note.total_amount
    _unapply_beyond_due(ctx, invoice)
    _timeline(ctx, record, "invoice_credited",
              f"Credit note {note_record.reference} for {money_text(-note.total_amount, invoice.currency)}")
    ctx.emit("crm_after_invoice_activated", invoice=note_record)
    settle(ctx, record, invoice)
    return note_record


def _positions(ctx: Context, invoice_id: int) -> dict[int, rules.PaymentPosition]:
    """Each payment of the invoice (not refund rows) with what is held and applied of it."""
    rows = list(ctx.session.scalars(select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.id)
                                    .execution_options(populate_existing=True)))
    refunds: dict[int, list[tuple[Decimal, Decimal]]] = {}
    for row in rows:
        if row.refund_of_id is not None:
            refunds.setdefault(row.refund_of_id, []).append((row.amount, row.applied_amount))
    return {row.id: rules.position(row.amount, row.applied_amount, refunds.get(row.id, ()))
            for row in rows if row.refund_of_id is None}


def held(ctx: Context, invoice_id: int, payment_id: int) -> Decimal:
    """What is still held of a payment (received minus refunded)."""
    where = _positions(ctx, invoice_id).get(payment_id)
    return where.held if where is not None else ZERO


def _unapply_beyond_due(ctx: Context, invoice: Invoice) -> None:
    """Keep paid <= total - credited: the newest payments' applied parts give way first."""
    ctx.session.flush()
    paid = _applied_sum(ctx, invoice.id)
    excess = paid - (invoice.total_amount - invoice.credited_amount)
    if excess <= 0:
        return
    taken = rules.unapply(list(_positions(ctx, invoice.id).items()), excess)
    for payment_id, amount in taken.items():
        payment = ctx.session.get(Payment, payment_id)
        assert payment is not None
        payment.applied_amount -= amount
    ctx.session.flush()


def _applied_sum(ctx: Context, invoice_id: int) -> Decimal:
    return Decimal(ctx.session.scalar(select(func.coalesce(func.sum(Payment.applied_amount), 0))
                                      .where(Payment.invoice_id == invoice_id)) or 0)


# --------------------------------------------------------------------------------------------
# payments


def money_text(amount: Decimal, currency: str) -> str:
    """An amount in messages: rounded to the currency ("121.00 EUR", not the stored 121.0000)."""
    return f"{round_money(amount, currency.upper())} {currency.upper()}"


def check_money(amount: Decimal, currency: str, field: str = "amount") -> None:
    """ValidationFailed naming ``field`` when ``amount`` has more decimals than ``currency``
    takes or is too large to store."""
    _check_money(amount, currency, field)


def _check_money(amount: Decimal, currency: str, field: str = "amount") -> None:
    if amount != round_money(amount, currency):
        places = -quantum(currency).as_tuple().exponent
        raise ValidationFailed(f"invalid {field}", {field: [f"{currency} amounts have at most {places} decimals"]})
    if abs(amount) >= AMOUNT_LIMIT:
        raise ValidationFailed(f"invalid {field}", {field: ["the amount is too large"]})


@use_case(Role.MEMBER)
def record_payment(ctx: Context, invoice_id: int, data: Mapping[str, Any]) -> Payment:
    """Record money received by hand: ``amount`` (> 0, in the invoice's currency, at most the
    balance unless ``overpayment`` is true: the excess is then kept as an overpayment),
    ``method`` (bank_transfer, cash, cheque, card, other), ``received_on`` (default today, not
    in the future), ``reference``, ``note``."""
    record, invoice = _locked(ctx, invoice_id)
    values = load(PaymentInput, data, "payment")
    if invoice.kind != Kind.INVOICE or invoice.status in (Status.DRAFT, Status.CANCELLED):
        raise Conflict(f"{_label(record)} is {invoice.status}: payments are for issued invoices")
    _check_money(values["amount"], invoice.currency)
    day = today(ctx)
    received_on = values["received_on"] or day
    if received_on > day:
        raise ValidationFailed("invalid payment", {"received_on": ["a payment cannot be received in the future"]})
    open_balance = rules.balance(invoice.total_amount, invoice.credited_amount, invoice.paid_amount)
    applied, overpaid = rules.split(values["amount"], open_balance)
    if overpaid > 0 and not values["overpayment"]:
        raise ValidationFailed("more than the balance", {"amount": [
            f"the balance is {money_text(open_balance, invoice.currency)}; tick 'overpayment' to record more "
            "(the excess is kept for a refund)"]})
    payment = Payment(invoice_id=invoice.id, gateway=None, method=values["method"], amount=values["amount"],
                      currency=invoice.currency, applied_amount=applied, received_on=received_on,
                      reference=values["reference"], note=values["note"], recorded_by_id=ctx.user_id)
    ctx.session.add(payment)
    ctx.session.flush()
    _timeline(ctx, record, "invoice_payment",
              f"Payment of {money_text(payment.amount, payment.currency)} ({payment.method.replace('_', ' ')}) recorded"
              + (f", {money_text(overpaid, payment.currency)} of it overpaid" if overpaid > 0 else ""))
    settle(ctx, record, invoice)
    return payment


def add_gateway_payment(ctx: Context, record: Record, invoice: Invoice, *, gateway: str, provider_payment_id: str,
                        amount: Decimal, currency: str, attempt: PaymentAttempt | None,
                        note: str | None = None) -> Payment | None:
    """Inside a use case that locked ``invoice``: record a payment a gateway reported, once.
    Returns None when (gateway, provider_payment_id) is recorded already: a redelivery, or a
    concurrent delivery that committed first (the unique constraint decides). Nothing beyond
    the balance is applied; money in another currency is applied not at all."""
    from sqlalchemy.exc import IntegrityError

    existing = ctx.session.scalar(select(Payment.id).where(Payment.gateway == gateway,
                                                           Payment.provider_payment_id == provider_payment_id))
    if existing is not None:
        return None
    open_balance = rules.balance(invoice.total_amount, invoice.credited_amount, invoice.paid_amount)
    payable = invoice.kind == Kind.INVOICE and invoice.status not in (Status.DRAFT, Status.CANCELLED)
    same_currency = currency.upper() == invoice.currency
    applied, overpaid = rules.split(amount, open_balance) if payable and same_currency else (ZERO, amount)
    payment = Payment(invoice_id=invoice.id, gateway=gateway, method=gateway, provider_payment_id=provider_payment_id,
                      amount=amount, currency=currency.upper(), applied_amount=applied, received_on=today(ctx),
                      attempt_id=attempt.id if attempt is not None else None, note=note)
    try:
        with ctx.session.begin_nested():
            ctx.session.add(payment)
    except IntegrityError:
        return None
    why = "" if overpaid <= 0 else (
        f", {money_text(overpaid, currency)} not applied: " + ("another currency" if not same_currency else
                                         "the invoice is " + invoice.status if not payable else "beyond the balance")
        + " (refund it)")
    _timeline(ctx, record, "invoice_payment", f"Payment of {money_text(amount, currency)} through {gateway}{why}")
    settle(ctx, record, invoice)
    return payment


@use_case(Role.MEMBER)
def record_refund(ctx: Context, payment_id: int, data: Mapping[str, Any]) -> Payment:
    """Record money given back for a payment (``amount`` > 0, at most what is still held of
    it). The overpaid part is given back first; the rest reopens the invoice's balance."""
    payment = get_or_404(ctx, Payment, payment_id, "payment")
    if payment.refund_of_id is not None:
        raise Conflict("this is a refund; refund the payment itself")
    record, invoice = _locked(ctx, _record_id_of(ctx, payment.invoice_id))
    values = load(RefundInput, data, "refund")
    _check_money(values["amount"], payment.currency)
    if values["received_on"] is not None and values["received_on"] > today(ctx):
        raise ValidationFailed("invalid refund", {"received_on": ["a refund cannot be made in the future"]})
    refund = _add_refund(ctx, record, invoice, payment, values["amount"], key=None, note=values["note"],
                         received_on=values["received_on"])
    assert refund is not None
    return refund


def _record_id_of(ctx: Context, invoice_id: int) -> int:
    row = ctx.session.get(Invoice, invoice_id)
    if row is None:
        raise NotFound(f"invoice {invoice_id} not found")
    return row.record_id


def add_refund(ctx: Context, record: Record, invoice: Invoice, payment: Payment, amount: Decimal, *, key: str,
               note: str | None = None, summary: str | None = None) -> Payment | None:
    """Inside a use case that locked ``invoice``: a refund a gateway made or reported (``key``
    identifies it: a redelivery is one refund). None when recorded already. ``summary`` is the
    timeline's line (default "Refund of ... recorded")."""
    return _add_refund(ctx, record, invoice, payment, amount, key=key, note=note, received_on=None, summary=summary)


def lock_invoice(ctx: Context, invoice_id: int, *, archived_ok: bool = False) -> tuple[Record, Invoice]:
    """Inside a use case: the invoice (by its row id) and its record, the row locked for update
    (every change to an invoice's money takes this lock first). An archived invoice is a
    Conflict unless ``archived_ok`` (recording what a provider already did)."""
    record_id = _record_id_of(ctx, invoice_id)
    if not archived_ok:
        return _locked(ctx, record_id)
    record = _record(ctx, record_id)
    return record, _invoice_row(ctx, record, lock=True, create=True)


def timeline(ctx: Context, record: Record, kind: str, summary: str) -> None:
    """An entry on the invoice's timeline (and its party's)."""
    _timeline(ctx, record, kind, summary)


def _add_refund(ctx: Context, record: Record, invoice: Invoice, payment: Payment, amount: Decimal, *,
                key: str | None, note: str | None, received_on: dt.date | None,
                summary: str | None = None) -> Payment | None:
    from sqlalchemy.exc import IntegrityError

    if key is not None and ctx.session.scalar(select(Payment.id).where(
            Payment.gateway == payment.gateway, Payment.provider_payment_id == key)) is not None:
        return None
    where = _positions(ctx, invoice.id).get(payment.id)
    assert where is not None
    if amount > where.held:
        message = f"at most {money_text(where.held, payment.currency)} of this payment is left to refund"
        if key is not None:  # a provider reporting more than it took: cap it, say so
            note = f"{note or ''} (reported {amount}, capped)".strip()
            amount = where.held
        else:
            raise ValidationFailed("more than the payment", {"amount": [message]})
    if amount <= 0:
        return None
    from_applied = rules.refund_split(where, amount)
    refund = Payment(invoice_id=invoice.id, gateway=payment.gateway, method=payment.method, provider_payment_id=key,
                     amount=-amount, currency=payment.currency, applied_amount=-from_applied,
                     refund_of_id=payment.id, received_on=received_on or today(ctx), note=note,
                     recorded_by_id=ctx.user_id)
    try:
        with ctx.session.begin_nested():
            ctx.session.add(refund)
    except IntegrityError:
        return None
    _timeline(ctx, record, "invoice_refund", summary or f"Refund of {money_text(amount, payment.currency)} recorded")
    settle(ctx, record, invoice)
    return refund


# --------------------------------------------------------------------------------------------
# settling: amounts -> status, and what follows from "paid"


def settle(ctx: Context, record: Record, invoice: Invoice) -> None:
    """Derive ``paid_amount`` from the payment rows and the status from the amounts; on the
    way into ``paid``: the paid date, the hook, the notification and the deal's move."""
    ctx.session.flush()
    invoice.paid_amount = _applied_sum(ctx, invoice.id)
    before = invoice.status
    invoice.status = rules.derive_status(invoice.kind, invoice.status, invoice.total_amount,
                                         invoice.credited_amount, invoice.paid_amount)
    if invoice.status == Status.PAID and before != Status.PAID:
        invoice.paid_at = utcnow()
        ctx.session.flush()
        _timeline(ctx, record, "invoice_paid", f"Invoice {record.reference} paid in full")
        ctx.emit("crm_after_invoice_paid", invoice=record)
        _notify(ctx, "invoice.paid", record, invoice, None)
        _move_deal(ctx, record, invoice)
    elif invoice.status != Status.PAID:
        invoice.paid_at = None
    ctx.session.flush()


def _move_deal(ctx: Context, record: Record, invoice: Invoice) -> None:
    """Move the invoice's deal to the stage the settings name, when it is in that stage's
    pipeline. A move the core or a plugin refuses is noted on the invoice; the payment stands."""
    from crmcore.pipelines.models import Stage

    stage_id = settings(ctx).paid_stage_id
    if stage_id is None or invoice.deal_id is None:
        return
    deal = ctx.session.get(Record, invoice.deal_id)
    stage = ctx.session.get(Stage, stage_id)
    if deal is None or deal.type != "deal" or deal.archived_at is not None or deal.stage_id == stage_id:
        return
    if stage is None or stage.archived_at is not None or stage.pipeline_id != deal.pipeline_id:
        return
    try:
        with ctx.session.begin_nested():
            records.move_stage(ctx, deal.id, stage.id, note=f"Invoice {record.reference} paid")
    except CrmError as exc:
        _timeline(ctx, record, "invoice_deal_not_moved", f"The deal was not moved to {stage.name}: {exc.message}")


def _timeline(ctx: Context, record: Record, kind: str, summary: str) -> None:
    from crmcore.timeline.service import log_event

    log_event(ctx, kind, summary, record_id=record.id, party_id=record.party_id, ref_type="record", ref_id=record.id)


def invoice_vars(record: Record, invoice: Invoice, link: str | None) -> dict[str, Any]:
    """What notification templates see as ``invoice``."""
    def money(amount: Decimal) -> str:
        return str(round_money(amount, invoice.currency))

    return {"number": record.reference, "title": record.title, "currency": invoice.currency,
            "total": money(invoice.total_amount), "paid": money(invoice.paid_amount),
            "balance": money(rules.balance(invoice.total_amount, invoice.credited_amount, invoice.paid_amount)),
            "issue_date": invoice.issue_date.isoformat() if invoice.issue_date else None,
            "due_date": invoice.due_date.isoformat() if invoice.due_date else None, "pay_url": link}


def _notify(ctx: Context, event: str, record: Record, invoice: Invoice, link: str | None) -> None:
    from crmcore.messaging.rules import notify

    notify(ctx, event, record=record, invoice=invoice_vars(record, invoice, link))


# --------------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True)
class InvoiceView:
    """An invoice as pages show it: plain values, read in a fixed number of queries."""

    record: Record
    invoice: Invoice
    lines: list[InvoiceLine]
    payments: list[Payment]
    attempts: list[PaymentAttempt]
    credit_notes: list[tuple[Record, Invoice]]
    credited_invoice: tuple[Record, Invoice] | None
    today: dt.date
    #: invoice line id -> quantity credited by credit notes
    credited_quantities: dict[int, Decimal]

    @property
    def balance(self) -> Decimal:
        i = self.invoice
        return rules.balance(i.total_amount, i.credited_amount, i.paid_amount)

    @property
    def overdue(self) -> bool:
        i = self.invoice
        return i.status in OPEN and i.due_date is not None and i.due_date < self.today

    @property
    def overpaid(self) -> Decimal:
        """Money held beyond what is applied (to give back)."""
        return sum((p.amount - p.applied_amount for p in self.payments), ZERO)

    def refundable(self, payment_id: int) -> Decimal:
        refunds = [(p.amount, p.applied_amount) for p in self.payments if p.refund_of_id == payment_id]
        payment = next(p for p in self.payments if p.id == payment_id)
        return rules.position(payment.amount, payment.applied_amount, refunds).held

    def credit_left(self, line: InvoiceLine) -> Decimal:
        return line.quantity - self.credited_quantities.get(line.id, ZERO)


@use_case(Role.READ_ONLY, write=False)
def get_invoice(ctx: Context, invoice_id: int) -> InvoiceView:
    """An invoice or credit note (by its record id) with lines, payments, attempts and credit notes."""
    record = _record(ctx, invoice_id)
    invoice = _invoice_row(ctx, record)
    lines = _lines(ctx, invoice.id)
    payments = list(ctx.session.scalars(select(Payment).where(Payment.invoice_id == invoice.id)
                                        .order_by(Payment.id))) if invoice.id else []
    attempts = list(ctx.session.scalars(select(PaymentAttempt).where(PaymentAttempt.invoice_id == invoice.id)
                                        .order_by(PaymentAttempt.id.desc()).limit(20))) if invoice.id else []
    notes: list[tuple[Record, Invoice]] = []
    if invoice.id and invoice.kind == Kind.INVOICE:
        rows = ctx.session.execute(select(Record, Invoice).join(Invoice, Invoice.record_id == Record.id)
                                   .where(Invoice.credited_invoice_id == invoice.id).order_by(Invoice.id)).all()
        notes = [(rec, note) for rec, note in rows]
    credited = None
    if invoice.credited_invoice_id is not None:
        row = ctx.session.execute(select(Record, Invoice).join(Invoice, Invoice.record_id == Record.id)
                                  .where(Invoice.id == invoice.credited_invoice_id)).first()
        credited = (row[0], row[1]) if row else None
    quantities = {line_id: q for line_id, (q, _n, _t) in _credited_quantities(ctx, [li.id for li in lines]).items()} \
        if notes else {}
    return InvoiceView(record, invoice, lines, payments, attempts, notes, credited, today(ctx), quantities)


@use_case(Role.READ_ONLY, write=False)
def list_invoices(ctx: Context, filters: Mapping[str, Any] | None = None, *, cursor: str | None = None,
                  limit: int | None = 50) -> Page[tuple[Record, Invoice]]:
    """Invoices and credit notes, newest first: ``status`` (a status, or ``open``),
    ``overdue`` (issued, unpaid, past due), ``kind``, ``party_id``, ``deal_id``. Items are
    (record, invoice) pairs; archived records are left out."""
    clean = dict(filters or {})
    stmt = select(Invoice).join(Record, Record.id == Invoice.record_id).where(
        Record.archived_at.is_(None), Record.type.in_(TYPES))
    status = clean.get("status") or None
    if status is not None:
        if status not in LIST_STATUSES:
            raise ValidationFailed("unknown status", {"status": [f"use one of {', '.join(LIST_STATUSES)}"]})
        stmt = stmt.where(Invoice.status.in_(OPEN) if status == "open" else Invoice.status == status)
    if clean.get("overdue") in (True, "1", "true", "yes"):
        stmt = stmt.where(Invoice.status.in_(OPEN), Invoice.due_date < today(ctx))
    kind = clean.get("kind") or None
    if kind is not None:
        if kind not in (Kind.INVOICE, Kind.CREDIT_NOTE):
            raise ValidationFailed("unknown kind", {"kind": ["use invoice or credit_note"]})
        stmt = stmt.where(Invoice.kind == kind)
    for key, column in (("party_id", Record.party_id), ("deal_id", Invoice.deal_id)):
        value = clean.get(key)
        if value not in (None, ""):
            if not str(value).isdigit():
                raise ValidationFailed(f"invalid {key}", {key: ["must be an id"]})
            stmt = stmt.where(column == int(value))
    page = keyset_page(ctx.session, stmt, [Invoice.id], cursor=cursor, limit=limit, descending=True)
    page.total = capped_count(ctx.session, stmt)
    by_id = {r.id: r for r in ctx.session.scalars(select(Record).where(
        Record.id.in_([i.record_id for i in page.items])))} if page.items else {}
    page.items = [(by_id[i.record_id], i) for i in page.items if i.record_id in by_id]
    party_ids = {r.party_id for r in by_id.values() if r.party_id is not None}
    page.extra["party_names"] = dict(ctx.session.execute(select(Party.id, Party.name).where(
        Party.id.in_(party_ids))).all()) if party_ids else {}
    return page


#: the status word a record shows (hook ``crm_record_statuses``): "active" reads "issued" there
STATUS_WORDS = {Status.DRAFT.value: "draft", Status.ACTIVE.value: "issued", Status.PARTLY_PAID.value: "partly paid",
                Status.PAID.value: "paid", Status.CREDITED.value: "credited", Status.CANCELLED.value: "cancelled"}


def record_statuses(ctx: Context, records: list[Record]) -> dict[int, str]:
    """``{record id: status}`` of the business's invoices and credit notes among ``records``, in
    one query (the core shows it instead of its own "open"). A record without details yet (made
    by the core's "New invoice" form) is a draft; another business's records are never answered."""
    mine = {r.id for r in records if r.business_id == ctx.business_id and r.type in TYPES}
    if not mine:
        return {}
    found = {record_id: status for record_id, status in ctx.session.execute(
        select(Invoice.record_id, Invoice.status).where(Invoice.record_id.in_(sorted(mine))))}
    return {record_id: STATUS_WORDS.get(found.get(record_id, Status.DRAFT.value), "draft") for record_id in mine}


def customer_email(ctx: Context, record: Record) -> str | None:
    """The email of the invoice's contact, else of its party (primary first)."""
    for column, value in ((ContactMechanism.contact_id, record.contact_id), (ContactMechanism.party_id, record.party_id)):
        if value is None:
            continue
        found = ctx.session.scalar(select(ContactMechanism.value).where(column == value, ContactMechanism.kind == "email")
                                   .order_by(ContactMechanism.is_primary.desc(), ContactMechanism.position,
                                             ContactMechanism.id).limit(1))
        if found:
            return found
    return None
