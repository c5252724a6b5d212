"""Public pages and webhooks of plugins: routes that need no login.

A plugin's blueprint made by :func:`public_blueprint` is reachable without a session (an invoice's
payment page, a provider's webhook). Nothing about the business comes from a session there: the
view opens the business named by the URL with :func:`public_context`, which answers None (show
404) when the URL does not name a business where the plugin is enabled, so a public route of a
plugin switched off for a business behaves as if it did not exist.

Forms on public pages keep CSRF protection (an anonymous session carries the token); a webhook
view, called by a provider's server, is exempted with :func:`csrf_exempt`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Blueprint, current_app, request

from crmcore.errors import NotFound, PermissionDenied
from crmcore.tenancy.service import SLUG_RE

if TYPE_CHECKING:
    from crmcore.context import Context

F = TypeVar("F", bound=Callable[..., Any])

#: the attribute that marks a blueprint public (read by crmcore.web.requestctx)
PUBLIC_MARK = "crm_public"


def public_blueprint(name: str, import_name: str, **kwargs: Any) -> Blueprint:
    """A Flask blueprint whose routes need no login and get no ``g.ctx``."""
    blueprint = Blueprint(name, import_name, **kwargs)
    setattr(blueprint, PUBLIC_MARK, True)
    return blueprint


def is_public(blueprint_name: str | None) -> bool:
    if not blueprint_name:
        return False
    blueprint = current_app.blueprints.get(blueprint_name.split(".", 1)[0])
    return bool(getattr(blueprint, PUBLIC_MARK, False))


def public_context(business: str, plugin: str | None = None) -> Context | None:
    """A system :class:`~crmcore.context.Context` (no user) for the business whose slug is
    ``business``, or None when there is none or ``plugin`` is not enabled there. The caller
    closes it (``with`` or ``ctx.close()``)."""
    if not isinstance(business, str) or not SLUG_RE.fullmatch(business):
        return None  # not a slug: no query at all (a NUL byte would reach the database)
    crm = current_app.extensions["crm"]
    try:
        ctx = crm.context(business, system=True)
    except (NotFound, PermissionDenied):
        return None
    if plugin is not None and not ctx.is_enabled(plugin):
        ctx.close()
        return None
    return ctx


def csrf_exempt(view: F) -> F:
    """Exempt a webhook view from CSRF (providers post without a token; verify their signature)."""
    from crmcore.web.app import csrf

    return csrf.exempt(view)


def public_url(path: str) -> str:
    """``path`` as an absolute URL a payer or a provider can reach: the installation's
    ``public_url`` when set (behind a proxy ``request.host_url`` is the internal address), else
    the address of the current request."""
    base = (current_app.extensions["crm"].config.public_url or "").strip().rstrip("/")
    if not base:
        base = request.host_url.rstrip("/") + request.script_root
    return base + path
