"""The app factory."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask, g, request
from flask_wtf.csrf import CSRFProtect

from crmcore.config import Config
from crmcore.runtime import Crm

csrf = CSRFProtect()


def create_app(config: Config | None = None, *, crm: Crm | None = None, testing: bool = False) -> Flask:
    """Build the admin + API app for ``config`` (default: ``Config.load()``, i.e. ``./instance``
    and ``CRM_*`` variables), or around an existing :class:`Crm` (tests)."""
    if crm is None:
        config = (config or Config.load()).ensure_instance()
        crm = Crm.from_config(config)
    app = Flask("crmcore.web", instance_path=str(crm.config.instance_path), static_folder="static",
                template_folder="templates")
    app.config.update(
        SECRET_KEY=crm.config.secret_key or _missing_key(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="crm_session",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=12),
        MAX_CONTENT_LENGTH=crm.config.attachments_max_bytes + 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,
        TESTING=testing,
        JSON_SORT_KEYS=False,
    )
    app.extensions["crm"] = crm
    csrf.init_app(app)

    from crmcore.messaging import views as messaging_views
    from crmcore.web import auth, errors, pages, requestctx, security, sms_callbacks, unstorable
    from crmcore.web.api import init_api
    from crmcore.web.settings import outbox_pages

    unstorable.init_app(app)  # before the login loader and any query: NUL bytes answer 422
    requestctx.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    csrf.exempt(init_api(app))  # the API authenticates with bearer tokens, not session cookies
    pages.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(outbox_pages.bp)  # /settings/outbox: the jobs of the business (admins)
    sms_callbacks.init_app(app)  # public provider callbacks: /hooks/sms/<provider>/<business>
    messaging_views.init_public(app)  # the public unsubscribe page: /unsubscribe/<token>
    _register_plugin_blueprints(app, crm)
    return app


def _missing_key() -> str:
    raise RuntimeError("no secret_key configured: run `crm init` (it writes instance/crm.toml)")


def _register_plugin_blueprints(app: Flask, crm: Crm) -> None:
    """Blueprints from every installed plugin (the core's features included), remembering which
    plugin owns which blueprint so a disabled plugin's pages answer 404."""
    owners: dict[str, str] = {}
    hook = crm.registry.pm.hook.crm_register_blueprints
    for impl in reversed(hook.get_hookimpls()):
        try:
            blueprints = impl.function(app) if "app" in impl.argnames else impl.function()
        except Exception as exc:  # one broken plugin must not keep the admin from starting
            app.logger.error("plugin %s failed in crm_register_blueprints: %s", impl.plugin_name, exc)
            continue
        for blueprint in blueprints or []:
            if blueprint.name in app.blueprints:
                app.logger.error("plugin %s: blueprint %r already registered", impl.plugin_name, blueprint.name)
                continue
            app.register_blueprint(blueprint)
            owners[blueprint.name] = impl.plugin_name
    app.extensions["crm_blueprint_owners"] = owners


def current_crm() -> Crm:
    from flask import current_app

    return current_app.extensions["crm"]


def blueprint_owner(app: Flask, blueprint: str | None) -> str | None:
    if blueprint is None:
        return None
    owners: dict[str, Any] = app.extensions.get("crm_blueprint_owners", {})
    return owners.get(blueprint.split(".")[0])


__all__ = ["create_app", "current_crm", "csrf", "g", "request"]
