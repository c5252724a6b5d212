"""The core's page plumbing: home, the menu, template helpers and filters."""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
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
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return format_datetime(value, "medium", tzinfo=_tz(), locale=_locale())
    return format_date(value, "medium", locale=_locale())


def _tz() -> Any:
    from zoneinfo import ZoneInfo

    ctx = g.get("ctx")
    try:
        return ZoneInfo(ctx.business.timezone if ctx is not None else "UTC")
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
    app.jinja_env.filters.update(money=money, number=number, date=date)
    app.jinja_env.globals.update(menu=menu, businesses=businesses, csrf_token=generate_csrf, url_with=url_with)
    app.jinja_env.autoescape = True
