"""Rendering a business document (quote, invoice, credit note, order) to PDF, and keeping it
on its record's timeline.

Templates are Jinja, autoescaped, found in this order:

1. the core's ``crmcore/documents/templates`` (``documents/base.html``, ``documents/macros.html``,
   ``documents/standard.html``);
2. the ``templates/`` folder beside each installed plugin's module (the folder its Flask
   blueprint uses too), so a plugin's document templates are found in a web request and in the
   outbox worker alike;
3. in a web request only, the Flask app's loader (blueprints with other template folders).

The environment never has Flask's globals (``url_for``, ``request``): a document renders the same
wherever it is rendered. Every fetch goes through :class:`~crmcore.documents.fetcher.DocumentFetcher`.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import sys
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, format_percent
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, pass_context
from jinja2.loaders import BaseLoader
from markupsafe import Markup

from crmcore.context import Context, use_case
from crmcore.documents.logo import read_logo
from crmcore.documents.profile import BusinessProfile, address_lines, business_profile
from crmcore.errors import ValidationFailed
from crmcore.money import to_decimal
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.runtime import Crm
    from crmcore.timeline.models import Attachment

log = logging.getLogger("crmcore.documents")

BASE_TEMPLATE = "documents/base.html"
#: ``<img src="{{ logo_url }}">``: the business logo, served from memory by the fetcher
LOGO_URL = "crm-document:logo"
#: a document longer than this is refused rather than written (a runaway template or data)
MAX_PAGES = 500
#: the rendered HTML of one document, at most
MAX_HTML_BYTES = 8 * 1024 * 1024

#: the words documents print; a plugin passes ``labels={...}`` to translate or rename them
LABELS: dict[str, str] = {
    "bill_to": "Bill to", "ship_to": "Ship to", "contact": "Contact", "tax_id": "Tax ID",
    "email": "Email", "phone": "Phone", "website": "Web", "number": "No.", "reference": "Reference",
    "position": "#", "description": "Description", "quantity": "Qty", "unit": "Unit",
    "unit_price": "Unit price", "discount": "Discount", "tax_rate": "Tax", "net": "Net",
    "net_total": "Net total", "tax": "Tax", "tax_on": "on", "total": "Total", "tax_summary": "Tax summary",
    "payment_terms": "Payment terms", "bank_details": "Bank details", "notes": "Notes",
    "page": "Page", "of": "of",
}


# --------------------------------------------------------------------------------------------
# formatting (filters; the locale and currency come from the render's context)


def _locale(context: Any) -> str:
    return context.get("locale") or "en"


@pass_context
def money_filter(context: Any, amount: Any, currency: str | None = None) -> str:
    """``{{ line.net | money }}``: the amount in the document's currency, the business's locale."""
    number = to_decimal(amount)
    if number is None:
        return "" if amount is None else str(amount)
    return format_currency(number, currency or context.get("currency") or "EUR", locale=_locale(context))


@pass_context
def number_filter(context: Any, value: Any) -> str:
    """A quantity: as many decimals as it has (up to 3), grouped the locale's way."""
    number = to_decimal(value)
    if number is None:
        return "" if value is None else str(value)
    return format_decimal(number.normalize() if number == number.to_integral() else number, format="#,##0.###",
                          locale=_locale(context))


@pass_context
def percent_filter(context: Any, value: Any) -> str:
    """``19`` -> ``19%`` (``19 %`` in German): a percentage given as a number of hundredths."""
    number = to_decimal(value)
    if number is None:
        return "" if value is None else str(value)
    return format_percent(number / 100, locale=_locale(context), decimal_quantization=False)


@pass_context
def date_filter(context: Any, value: Any, fmt: str = "medium") -> str:
    """A date (or the date of a datetime) the locale's way; text is shown as given."""
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return format_date(value, format=fmt, locale=_locale(context))
    return "" if value is None else str(value)


@pass_context
def address_filter(context: Any, value: Any) -> list[str]:
    """An address (a crmcore ``Address``, a mapping with ``line1`` ... ``country``, or a list
    of ready lines) as printed lines; the business's own country is left out."""
    if value is None:
        return []
    if isinstance(value, str):
        return [line for line in value.splitlines() if line.strip()]
    if isinstance(value, list | tuple):
        return [str(line) for line in value if line]

    def get(name: str, *others: str) -> Any:
        for key in (name, *others):
            found = value.get(key) if isinstance(value, Mapping) else getattr(value, key, None)
            if found:
                return found
        return None

    business = context.get("business")
    return address_lines(get("line1", "address_line1"), get("line2", "address_line2"),
                         get("postal_code", "postcode"), get("city"), get("region"), get("country"),
                         locale=_locale(context), home_country=getattr(business, "country", None))


def css_string(value: Any) -> Markup:
    """A value as the inside of a CSS string (``content: "{{ x | css_string }}"``): quotes,
    backslashes, line breaks and ``<`` become CSS escapes, so nothing leaves the string or the
    ``<style>`` element."""
    out = []
    for ch in str(value):
        if ch in "\"'\\<>&" or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):06x}")
        else:
            out.append(ch)
    return Markup("".join(out))


def lines_filter(value: Any) -> list[str]:
    """Multi-line text as its non-empty lines (bank details, notes)."""
    return [line for line in str(value or "").splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------
# templates


def plugin_template_folders(crm: Crm) -> list[Path]:
    """The ``templates/`` folder beside the module of every installed plugin that has one."""
    folders: list[Path] = []
    for plugin in crm.registry.plugins.values():
        if plugin.source == "core":
            continue
        obj = plugin.obj
        module = obj if hasattr(obj, "__file__") else sys.modules.get(getattr(obj, "__module__", "") or "")
        file = getattr(module, "__file__", None)
        if not file:
            continue
        folder = Path(file).resolve().parent / "templates"
        if folder.is_dir() and folder not in folders:
            folders.append(folder)
    return folders


def _new_environment(loaders: list[BaseLoader]) -> Environment:
    env = Environment(loader=ChoiceLoader(loaders), autoescape=True, trim_blocks=True, lstrip_blocks=True,
                      auto_reload=False)
    env.filters.update(money=money_filter, number=number_filter, percent=percent_filter, date=date_filter,
                       address=address_filter, css_string=css_string, lines=lines_filter)
    return env


_lock = threading.Lock()
_offline: dict[tuple[int, int], Environment] = {}
_per_app: weakref.WeakKeyDictionary[Any, tuple[tuple[int, int], Environment]] = weakref.WeakKeyDictionary()


def template_environment(crm: Crm, app: Any = None) -> Environment:
    """The documents' Jinja environment (cached per registry generation, and per Flask app when
    ``app`` is given: then the app's loader is the last place looked in)."""
    key = (id(crm.registry), crm.registry.generation)
    with _lock:
        if app is not None:
            cached = _per_app.get(app)
            if cached is not None and cached[0] == key:
                return cached[1]
        elif key in _offline:
            return _offline[key]
        loaders: list[BaseLoader] = [PackageLoader("crmcore.documents", "templates")]
        loaders += [FileSystemLoader(str(folder)) for folder in plugin_template_folders(crm)]
        if app is not None and app.jinja_env.loader is not None:
            loaders.append(app.jinja_env.loader)
        env = _new_environment(loaders)
        if app is not None:
            _per_app[app] = (key, env)
        else:
            _offline.clear()
            _offline[key] = env
        return env


def _request_app() -> Any:
    try:
        from flask import current_app, has_request_context
    except ImportError:  # pragma: no cover - flask is a dependency; the worker never needs it
        return None
    return current_app._get_current_object() if has_request_context() else None


# --------------------------------------------------------------------------------------------
# rendering


def render_html(ctx: Context, template: str, context: Mapping[str, Any], *,
                base_template: str = BASE_TEMPLATE, profile: BusinessProfile | None = None) -> str:
    """The document as HTML (what :func:`render_pdf` converts). The template sees ``context``
    plus ``business`` (the profile), ``labels``, ``locale``, ``currency``, ``language``,
    ``page_size``, ``logo_url`` (None without a logo) and ``base_template`` (to extend)."""
    profile = profile or business_profile(ctx)
    env = template_environment(ctx.crm, _request_app())
    labels = {**LABELS, **dict(context.get("labels") or {})}
    values = {
        **dict(context),
        "currency": context.get("currency") or profile.currency,
        "business": profile,
        "labels": labels,
        "locale": profile.locale,
        "language": profile.locale.split("_")[0],
        "page_size": profile.page_size,
        "logo_url": LOGO_URL if profile.has_logo else None,
        "base_template": base_template,
    }
    return env.get_template(template).render(values)


def render_pdf(ctx: Context, template: str, context: Mapping[str, Any], *,
               base_template: str = BASE_TEMPLATE) -> bytes:
    """Render ``template`` with ``context`` and convert it to PDF with WeasyPrint.

    No request is needed (the outbox worker renders too). Only ``data:`` URIs and the business
    logo (``logo_url``) are fetched; any other URL in the document is left out. Raises
    ValidationFailed when the document passes :data:`MAX_PAGES` pages.
    """
    import weasyprint  # imported here: half a second, and only rendering needs it

    from crmcore.documents.fetcher import DocumentFetcher

    profile = business_profile(ctx)
    html = render_html(ctx, template, context, base_template=base_template, profile=profile)
    if len(html.encode("utf-8")) > MAX_HTML_BYTES:
        raise ValidationFailed(f"the document is too large to print (over {MAX_HTML_BYTES // (1024 * 1024)} MB of HTML)")
    logo = read_logo(ctx, profile)
    resources = {LOGO_URL: (logo.data, logo.content_type)} if logo else {}
    fetcher = DocumentFetcher(resources)
    document = weasyprint.HTML(string=html, url_fetcher=fetcher, media_type="print").render()
    if len(document.pages) > MAX_PAGES:
        raise ValidationFailed(f"the document has {len(document.pages)} pages; at most {MAX_PAGES} are printed")
    if fetcher.refused:
        log.warning("business %s: %s refused %d fetch(es): %s", ctx.business_id, template, len(fetcher.refused),
                    ", ".join(fetcher.refused[:5]))
    return document.write_pdf()


# --------------------------------------------------------------------------------------------
# keeping it


@use_case(Role.MEMBER)
def store_pdf(ctx: Context, *, record_id: int, filename: str, pdf: bytes, summary: str) -> Attachment:
    """Attach ``pdf`` to the record's timeline as ``filename`` (``.pdf`` is added when missing),
    with ``summary`` as its line in the feed (``"Invoice INV-0042 issued"``). It downloads like
    any attachment, only within the business. Returns the attachment."""
    from sqlalchemy import update

    from crmcore.timeline import service as timeline
    from crmcore.timeline.models import TimelineEvent

    if not isinstance(pdf, bytes | bytearray) or not bytes(pdf[:5]) == b"%PDF-":
        raise ValidationFailed("not a PDF document", {"pdf": ["the bytes are not a PDF document"]})
    summary = " ".join(str(summary or "").split())
    if not summary:
        raise ValidationFailed("a stored document needs a summary", {"summary": ["required"]})
    name = (filename or "").strip()
    if not name.lower().endswith(".pdf"):
        name = f"{name}.pdf" if name else "document.pdf"
    attachment = timeline.add_attachment(ctx, filename=name, content_type="application/pdf",
                                         stream=io.BytesIO(bytes(pdf)), record_id=record_id)
    ctx.session.execute(
        update(TimelineEvent)
        .where(TimelineEvent.ref_type == "attachment", TimelineEvent.ref_id == attachment.id)
        .values(summary=summary[: timeline.SUMMARY_MAX])
        .execution_options(synchronize_session=False)
    )
    return attachment


__all__ = ["BASE_TEMPLATE", "LABELS", "MAX_PAGES", "css_string", "plugin_template_folders", "render_html",
           "render_pdf", "store_pdf", "template_environment"]
