"""The core's page plumbing: home, the menu, template helpers and filters."""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, parse_pattern
from babel.numbers import format_currency, format_decimal
from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

bp = Blueprint("pages", __name__)


@bp.route("/")
def home() -> Any:
    """The first page of the main menu (parties, with the core's features)."""
    entries = [e for e in menu() if e["section"] == "main" and e.get("url")]
    if entries:
        return redirect(entries[0]["url"])
    return render_template("home.html")


def _locale() -> Locale:
    ctx = g.get("ctx")
    return _parsed_locale((ctx.business.language if ctx is not None else None) or "en")


@functools.lru_cache(maxsize=64)
def _parsed_locale(language: str) -> Locale:
    """Babel parses a locale name on every format call: a board of 350 cards paid it 350 times."""
    try:
        return Locale.parse(language.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return Locale.parse("en")


def money(amount: Decimal | None, currency: str | None) -> str:
    if amount is None:
        return ""
    return format_currency(amount, currency or "EUR", locale=_locale())


def number(value: Any) -> str:
    return "" if value is None else format_decimal(value, locale=_locale())


def date(value: dt.date | dt.datetime | None) -> str:
    """A date, or a datetime in the business's time zone, in the language's medium format."""
    if value is None:
        return ""
    language, zone = _preferences()
    if isinstance(value, dt.datetime):
        combined, date_pattern, time_pattern = _datetime_patterns(language)
        local = _local(value, zone)
        locale = _parsed_locale(language)
        return combined.replace("{0}", time_pattern.apply(local, locale)).replace(
            "{1}", date_pattern.apply(local, locale))
    return _format_day(value, language)


def day(value: dt.date | dt.datetime | None) -> str:
    """The local date alone (list columns): cached per day, as a page of rows shares few days."""
    if value is None:
        return ""
    language, zone = _preferences()
    if isinstance(value, dt.datetime):
        value = _local(value, zone).date()
    return _format_day(value, language)


@functools.lru_cache(maxsize=4096)
def _format_day(value: dt.date, language: str) -> str:
    return format_date(value, "medium", locale=_parsed_locale(language))


@functools.lru_cache(maxsize=64)
def _datetime_patterns(language: str) -> tuple[str, Any, Any]:
    """Babel's medium datetime format, its patterns parsed once per language (``format_datetime``
    looks them up and parses them again on every call: a quarter of a list row's rendering)."""
    locale = _parsed_locale(language)
    combined = str(locale.datetime_formats["medium"]).replace("'", "")
    return (combined, parse_pattern(str(locale.date_formats["medium"])),
            parse_pattern(str(locale.time_formats["medium"])))


def _local(value: dt.datetime, zone: str) -> dt.datetime:
    """In the business's time zone; a naive value is taken as UTC (as Babel does)."""
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return aware.astimezone(_zone(zone))


def _preferences() -> tuple[str, str]:
    """The business's language and time zone (English and UTC outside a business)."""
    ctx = g.get("ctx")
    if ctx is None:
        return "en", "UTC"
    return ctx.business.language or "en", ctx.business.timezone or "UTC"


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except Exception:
        return ZoneInfo("UTC")


def menu() -> list[dict[str, Any]]:
    """Menu entries from every enabled plugin (the core's included), resolved and sorted."""
    ctx = g.get("ctx")
    if ctx is None:
        return []
    entries = []
    for plugin, items in ctx.collect("crm_admin_menu", ctx=ctx):
        for item in items or []:
            if not isinstance(item, dict) or "label" not in item:
                continue
            url = item.get("url")
            if url is None and item.get("endpoint"):
                try:
                    url = url_for(item["endpoint"])
                except Exception:  # a plugin's bad endpoint must not break every page
                    current_app.logger.warning("plugin %s: menu endpoint %r unknown", plugin, item["endpoint"])
                    continue
            entries.append({**item, "url": url, "plugin": plugin,
                            "section": item.get("section", "main"), "order": item.get("order", 100)})
    return sorted(entries, key=lambda e: (e["order"], e["label"]))


def businesses() -> list[Any]:
    from crmcore.auth.service import businesses_of

    if not current_user.is_authenticated:
        return []
    return businesses_of(current_app.extensions["crm"], current_user.id)


def url_with(**changes: Any) -> str:
    """The current URL with query arguments changed (None removes one): filters and pages."""
    args = request.args.to_dict(flat=False)
    for key, value in changes.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = [value]
    return url_for(request.endpoint, **(request.view_args or {}), **args)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.jinja_env.filters.update(money=money, number=number, date=date, day=day)
    app.jinja_env.globals.update(menu=menu, businesses=businesses, csrf_token=generate_csrf, url_with=url_with)
    app.jinja_env.autoescape = True
