"""The public route SMS providers call with delivery reports: ``/hooks/sms/<provider>/<business>``.

Providers cannot log in or carry a CSRF token, so the route is public and exempt from both; the
provider's own check (a signature over the URL and body, keyed by a secret in the plugin's
settings) is what authenticates a report, and a provider with a signature scheme must verify it
in ``parse_callback``. Answers: 404 for an unknown business, or a provider not installed or not
enabled there (the same answer, so a caller learns nothing); 403 for a report that fails its
check; 413 for an oversized body; 503 when the report could not be recorded (the provider
retries); 200 otherwise. Garbage never produces a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from crmcore.errors import CrmError, NotFound, PermissionDenied
from crmcore.messaging.providers import CallbackRequest, InvalidCallback, StatusUpdate
from crmcore.messaging.sms import sms_provider, sms_provider_settings
from crmcore.messaging.status import apply_status_updates, status_callback_url
from crmcore.tenancy.service import SLUG_RE

log = logging.getLogger("crmcore.messaging")

bp = Blueprint("sms_hooks", __name__)

#: a delivery report is a few hundred bytes; anything much larger is not one
MAX_BODY = 64 * 1024
ENDPOINT = "sms_hooks.status_callback"


class CallbackHeaders(Mapping[str, str]):
    """Request headers with case-insensitive lookup, independent of Flask."""

    def __init__(self, items: Any) -> None:
        self._items = {str(k).lower(): str(v) for k, v in items}

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:  # header values may hold signatures: never printed whole
        return f"CallbackHeaders({sorted(self._items)})"


def _text(message: str, status: int) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


@bp.route("/hooks/sms/<provider>/<business>", methods=["GET", "POST"], endpoint="status_callback")
def status_callback(provider: str, business: str) -> Response:
    crm = current_app.extensions["crm"]
    if not SLUG_RE.fullmatch(business):  # not a slug (a NUL byte would reach the database): no such business
        return _text("not found", 404)
    try:
        ctx = crm.context(business, system=True)
    except (NotFound, PermissionDenied):
        return _text("not found", 404)
    try:
        found = sms_provider(ctx, provider)
        if found is None:
            return _text("not found", 404)
        driver, plugin = found
        request.max_content_length = MAX_BODY  # Flask >= 3.1: a 413 before the body is read
        body = request.get_data(cache=True)  # first: the form is then parsed from the cached body
        callback = CallbackRequest(
            method=request.method,
            url=_public_url(crm.config, provider, ctx.business.slug),
            headers=CallbackHeaders(request.headers.items()),
            query=request.args.to_dict(flat=True),
            form=request.form.to_dict(flat=True),
            body=body,
        )
        try:
            settings = sms_provider_settings(ctx, plugin)
        except CrmError as exc:  # e.g. a secret the instance's key cannot decrypt
            log.error("SMS callback for %s in business %s: settings unreadable: %s", provider, business,
                      exc.message)
            return _text("provider not configured", 503)
        try:
            updates = driver.parse_callback(callback, settings)
        except InvalidCallback as exc:
            log.warning("SMS callback for %s in business %s refused: %s", provider, business, exc)
            return _text("forbidden", 403)
        except Exception:  # a provider's bug on odd input must not become a 500
            log.exception("SMS provider %s failed to read a callback (business %s)", provider, business)
            return _text("unreadable report", 400)
        updates = [u for u in (updates or []) if isinstance(u, StatusUpdate)]
        try:
            result = apply_status_updates(ctx, ctx.business_id, provider, updates)
        except Exception:
            log.exception("SMS callback for %s in business %s could not be recorded", provider, business)
            return _text("try again later", 503)
        log.debug("SMS callback %s/%s: %s", provider, business, result)
        return _text("OK", 200)
    finally:
        ctx.close()


def _public_url(config: Any, provider: str, slug: str) -> str:
    """The URL the provider called, as it signed it: built from ``public_url`` the same way as
    the URL handed to it at send time (behind a proxy ``request.url`` is the internal address);
    without ``public_url``, the request's own URL."""
    base = status_callback_url(config, provider, slug)
    if base is None:
        base = request.host_url.rstrip("/") + request.script_root + request.path
    query = request.query_string.decode("latin-1")
    return f"{base}?{query}" if query else base


def init_app(app: Flask) -> None:
    """Register the route: public (no login, no business in the session) and CSRF-exempt."""
    from crmcore.web.app import csrf
    from crmcore.web.requestctx import PUBLIC_ENDPOINTS

    PUBLIC_ENDPOINTS.add(ENDPOINT)
    csrf.exempt(bp)
    app.register_blueprint(bp)
