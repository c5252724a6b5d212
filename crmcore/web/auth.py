"""Login, logout, password change and the business switcher."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from crmcore.errors import CrmError, PermissionDenied, ValidationFailed
from crmcore.web.requestctx import WebUser

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    """Only same-site relative paths: never an open redirect."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    from crmcore.auth.service import authenticate, businesses_of

    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("pages.home"))
    email = request.form.get("email", "")
    error = None
    if request.method == "POST":
        try:
            user = authenticate(current_app.extensions["crm"], email, request.form.get("password", ""))
        except PermissionDenied as exc:
            error = exc.message
        else:
            next_url = _safe_next(request.args.get("next"))
            session.clear()  # a fresh session at login: nothing from before survives (fixation)
            login_user(WebUser(user))
            memberships = businesses_of(current_app.extensions["crm"], user.id)
            if memberships:
                session["business_id"] = memberships[0][0].id
            return redirect(next_url or url_for("pages.home"))
    return render_template("login.html", email=email, error=error), (401 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def password() -> Any:
    from crmcore.auth.service import change_password

    errors: dict[str, Any] = {}
    if request.method == "POST":
        new = request.form.get("new_password", "")
        if new != request.form.get("confirm_password", ""):
            errors = {"confirm_password": ["the two new passwords differ"]}
        else:
            try:
                change_password(current_app.extensions["crm"], current_user.id,
                                request.form.get("current_password", ""), new)
            except ValidationFailed as exc:
                errors = dict(exc.errors) or {"new_password": [exc.message]}
                if "password" in errors:  # the service names the value, the form names the field
                    errors["new_password"] = errors.pop("password")
            else:
                flash("Your password was changed.", "success")
                return redirect(url_for("pages.home"))
    return render_template("password.html", errors=errors), (422 if errors else 200)


@bp.route("/account/business", methods=["POST"])
@login_required
def switch_business() -> Any:
    from crmcore.auth.service import businesses_of

    try:
        wanted = int(request.form.get("business_id", ""))
    except ValueError:
        wanted = -1
    ids = {b.id for b, _role in businesses_of(current_app.extensions["crm"], current_user.id)}
    if wanted not in ids:
        raise CrmError("you are not a member of that business")
    session["business_id"] = wanted
    return redirect(url_for("pages.home"))


@bp.route("/account/no-business")
@login_required
def no_business() -> Any:
    return render_template("no_business.html"), 403


def current_ctx() -> Any:
    return g.ctx
