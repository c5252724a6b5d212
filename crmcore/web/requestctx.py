"""Who is asking: the logged-in user, the current business, and the request's Context.

Every page request of a logged-in user gets ``g.ctx``: a :class:`~crmcore.context.Context` for
the business chosen in the session (the switcher changes it), closed at teardown. Services do
the rest: scope, roles, transactions.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, current_app, g, redirect, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user

from crmcore.errors import NotFound, PermissionDenied
from crmcore.web.public import is_public

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = None
login_manager.session_protection = "strong"

#: endpoints reachable without a login (and without a business)
PUBLIC_ENDPOINTS = {"auth.login", "static", "auth.logout"}


class WebUser(UserMixin):
    """The session's user (id, email, name), without keeping an ORM object across requests."""

    def __init__(self, user: Any) -> None:
        self.id = user.id
        self.email = user.email
        self.name = user.name or user.email

    def get_id(self) -> str:
        return str(self.id)


@login_manager.user_loader
def _load_user(user_id: str) -> WebUser | None:
    from crmcore.auth.models import User

    crm = current_app.extensions["crm"]
    try:
        uid = int(user_id)
    except (TypeError, ValueError):
        return None
    with crm.db.session() as db_session:
        user = db_session.get(User, uid)
        if user is None or not user.is_active:
            return None
        db_session.expunge(user)
    g.crm_user = user  # read in this request: the request's Context takes it as it is
    return WebUser(user)


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    app.before_request(_open_context)
    app.teardown_request(_close_context)


def _open_context() -> Any:
    if request.endpoint is None or request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if request.blueprint in ("api", "api-docs"):
        return None  # the API authenticates with tokens (crmcore.web.api)
    if is_public(request.blueprint):
        return None  # a plugin's public page or webhook opens its business from the URL (crmcore.web.public)
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    from crmcore.auth.service import businesses_of
    from crmcore.context import Context

    crm = current_app.extensions["crm"]
    business_id = session.get("business_id")
    ctx = None
    user = g.get("crm_user")
    if user is None or user.id != current_user.id:
        user = current_user.id
    if business_id is not None:
        try:
            ctx = Context.open(crm, int(business_id), user, fresh_user=True)
        except (NotFound, PermissionDenied):
            session.pop("business_id", None)
    if ctx is None:
        memberships = businesses_of(crm, current_user.id)
        if not memberships:
            if request.endpoint == "auth.no_business":
                return None
            return redirect(url_for("auth.no_business"))
        session["business_id"] = memberships[0][0].id
        ctx = crm.context(memberships[0][0].id, current_user.id)
    g.ctx = ctx
    owner = _plugin_of_endpoint(app=current_app)
    if owner is not None and not ctx.is_enabled(owner):
        abort(404)
    return None


def _plugin_of_endpoint(app: Flask) -> str | None:
    from crmcore.web.app import blueprint_owner

    return blueprint_owner(app, request.blueprint)


def _close_context(_exc: BaseException | None) -> None:
    ctx = g.pop("ctx", None)
    if ctx is not None:
        ctx.close()
